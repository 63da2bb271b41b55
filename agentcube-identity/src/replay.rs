//! The optional `jti` replay guard.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use agentcube_auth_core::AuthError;

/// Remembers the `jti` of every token accepted until that token could no longer verify
/// (`exp` + leeway), and rejects a second use with `token_replayed`.
///
/// Bounded: when full, entries whose tokens have expired are purged; if it is still full of
/// live entries, new tokens are refused with [`AuthError::ReplayGuardFull`] (HTTP 503)
/// rather than forgetting one that might be replayed. Only tokens that passed every other
/// check are recorded, so nobody without the signing key can fill it.
///
/// **Single use is incompatible with token reuse**: the Router's [`TokenMinter`](crate::TokenMinter)
/// reuses a token for the same principal until near expiry, and each reuse would be a
/// replay. Enable the guard only on a verifier whose tokens are minted fresh for every request
/// (`TokenMinter::mint_identity`/`mint_sandbox`, or a minter whose
/// [`MinterConfig::cache_capacity`](crate::MinterConfig::cache_capacity) is 0).
///
/// The guard runs on every verification, answers from the verifier's verified-token cache
/// included, so it sees every use of a token.
///
/// Share one guard (in an `Arc`) between verifiers that must not accept the same token twice.
pub struct ReplayGuard {
    seen: Mutex<HashMap<Box<str>, i64>>,
    capacity: usize,
}

impl ReplayGuard {
    /// The capacity of [`ReplayGuard::default`].
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A guard remembering at most `capacity` live tokens (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The number of remembered tokens (some may have expired and not yet been purged).
    pub fn len(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no token is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `jti` as used until `forget_after` (inclusive), or fails if it already is.
    pub(crate) fn check_and_record(
        &self,
        jti: &str,
        forget_after: i64,
        now: i64,
    ) -> Result<(), AuthError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(until) = seen.get_mut(jti) {
            if now <= *until {
                return Err(AuthError::TokenReplayed);
            }
            *until = forget_after;
            return Ok(());
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| now <= *until);
            if seen.len() >= self.capacity {
                return Err(AuthError::ReplayGuardFull);
            }
        }
        seen.insert(Box::from(jti), forget_after);
        Ok(())
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_forgotten_and_a_full_guard_fails_closed() {
        let guard = ReplayGuard::new(2);
        guard.check_and_record("a", 100, 50).unwrap();
        assert_eq!(
            guard.check_and_record("a", 100, 100).unwrap_err(),
            AuthError::TokenReplayed
        );
        guard.check_and_record("b", 200, 60).unwrap();
        assert_eq!(
            guard.check_and_record("c", 200, 60).unwrap_err(),
            AuthError::ReplayGuardFull
        );
        // "a" expires after 100: purged to make room.
        guard.check_and_record("c", 200, 101).unwrap();
        assert_eq!(guard.len(), 2);
        // An entry found after its token expired is simply renewed.
        guard.check_and_record("b", 300, 201).unwrap();
    }
}

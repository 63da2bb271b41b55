//! The minting cache: reuse a signed token for the same principal and audience until shortly
//! before it expires.
//!
//! The key is a keyed 128-bit [`Digest`] of what goes into the token (kind, subject, issuer,
//! email, session), so the map holds no principal data in its keys; [`DigestHasher`] passes the
//! digest through instead of hashing it again. The digest only finds the entry: every hit
//! compares each of those fields (and the roles, when tokens carry them) with the stored
//! principal, so a digest collision can only cause a miss, never a wrong token. A hit also
//! requires the signing key to still be the ring's active key, so a rotation invalidates every
//! cached token.
//!
//! The map is a `moka` cache bounded by entry count (its eviction policy decides what goes when
//! full: the cost is a re-sign, never a wrong token) with a time-to-live of the longest token
//! lifetime, so stale entries do not linger. Whether a token may still be reused is decided by
//! the minter's clock on every hit, not by the cache's timer.

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::Principal;
use agentcube_auth_core::digest::{Digest, DigestHasher};
use agentcube_auth_core::jose::SigningKey;

use crate::mint::{MintedToken, Target};

/// What a cached token was minted for.
pub(crate) struct Entry {
    pub(crate) target: Target<Box<str>>,
    pub(crate) principal: Principal,
    /// The key that signed it: after a rotation the entry is stale.
    pub(crate) key: Arc<SigningKey>,
    /// Reuse while `now < refresh_at`.
    pub(crate) refresh_at: i64,
    pub(crate) token: MintedToken,
}

impl Entry {
    fn matches(&self, principal: &Principal, target: Target<&str>, compare_roles: bool) -> bool {
        self.target.borrowed() == target
            && self.principal.subject() == principal.subject()
            && self.principal.issuer() == principal.issuer()
            && self.principal.email() == principal.email()
            && (!compare_roles || self.principal.roles() == principal.roles())
    }
}

pub(crate) struct MintCache {
    map: moka::sync::Cache<Digest, Arc<Entry>, DigestHasher>,
    compare_roles: bool,
}

impl MintCache {
    /// A cache of at most `capacity` tokens, each kept at most `time_to_live` (real time).
    pub(crate) fn new(capacity: u64, time_to_live: Duration, compare_roles: bool) -> Self {
        Self {
            map: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(time_to_live)
                .build_with_hasher(DigestHasher::default()),
            compare_roles,
        }
    }

    /// The key of the entry for `principal` and `target`. Each field is length-prefixed by the
    /// digest, and the email carries a presence flag, so no two distinct inputs share fields.
    pub(crate) fn digest(principal: &Principal, target: Target<&str>) -> Digest {
        let (kind, session): (&[u8], &str) = match target {
            Target::Identity => (b"identity", ""),
            Target::Sandbox(session) => (b"sandbox", session),
        };
        let (has_email, email): (&[u8], &str) = match principal.email() {
            Some(email) => (b"1", email),
            None => (b"0", ""),
        };
        Digest::of_fields([
            kind,
            principal.subject().as_bytes(),
            principal.issuer().as_bytes(),
            has_email,
            email.as_bytes(),
            session.as_bytes(),
        ])
    }

    /// A reusable token, if one is cached.
    pub(crate) fn get(
        &self,
        digest: Digest,
        principal: &Principal,
        target: Target<&str>,
        active: &Arc<SigningKey>,
        now: i64,
    ) -> Option<MintedToken> {
        let entry = self.map.get(&digest)?;
        (now < entry.refresh_at
            && Arc::ptr_eq(&entry.key, active)
            && entry.matches(principal, target, self.compare_roles))
        .then(|| entry.token.clone())
    }

    /// Caches `entry`, replacing whatever `digest` held (a stale token, or another principal's
    /// after a collision).
    pub(crate) fn insert(&self, digest: Digest, entry: Entry) {
        self.map.insert(digest, Arc::new(entry));
    }

    /// Drops the entries whose principal `matches`; returns how many.
    pub(crate) fn forget(&self, matches: impl Fn(&Principal) -> bool) -> u64 {
        let mut dropped = 0;
        for (digest, entry) in &self.map {
            if matches(&entry.principal) {
                self.map.invalidate(&*digest);
                dropped += 1;
            }
        }
        dropped
    }

    /// The number of cached tokens, after the cache's pending evictions.
    pub(crate) fn len(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }
}

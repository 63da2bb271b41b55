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
//! The map is a `quick_cache` bounded by entry count, as the verified-token cache is (its
//! eviction policy decides what goes when full: the cost is a re-sign, never a wrong token).
//! Whether a token may still be reused is decided by the minter's clock on every hit; an entry
//! past its time is replaced by the next mint for the same principal, or evicted.

use std::sync::Arc;

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
    map: quick_cache::sync::Cache<Digest, Arc<Entry>, quick_cache::UnitWeighter, DigestHasher>,
    compare_roles: bool,
}

impl MintCache {
    /// A cache of at most `capacity` tokens.
    pub(crate) fn new(capacity: u64, compare_roles: bool) -> Self {
        Self {
            map: quick_cache::sync::Cache::with(
                usize::try_from(capacity).unwrap_or(usize::MAX),
                capacity,
                quick_cache::UnitWeighter,
                DigestHasher::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
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
        let dropped = std::sync::atomic::AtomicU64::new(0);
        self.map.retain(|_, entry| {
            let keep = !matches(&entry.principal);
            if !keep {
                dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            keep
        });
        dropped.into_inner()
    }

    /// The number of cached tokens.
    pub(crate) fn len(&self) -> u64 {
        u64::try_from(self.map.len()).unwrap_or(u64::MAX)
    }
}

//! The verified-token cache every verifier in the workspace shares (feature `cache`): a repeat
//! of a token already verified costs one keyed hash and one lookup.
//!
//! * The key is the keyed 128-bit [`Digest`] of the token: the map holds no token, and without
//!   the per-process key nobody can aim a token at another token's entry.
//! * An entry lives no longer than the token's `exp` (and at most the configured TTL); a token
//!   at or past its `exp` (accepted inside the leeway) is not stored. The caller re-checks the
//!   window on every hit with [`Cached::is_current`], the rule it applied when it accepted the
//!   token, so an entry never outlives its token even if the cache's own timer is late.
//! * The map is bounded by entry count; only tokens that passed every check go in, so nobody
//!   without a signing key can fill it, and an eviction costs a verification, never a wrong
//!   answer.
//!
//! What else a hit must re-check (the key that verified the token is still trusted, a
//! revocation) is the verifier's: it differs between a remote issuer and an in-process key ring.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::digest::{Digest, DigestHasher};
use crate::jose::Validity;

/// A cached verification result and the time window it is valid in.
#[derive(Debug)]
pub struct Cached<V> {
    value: V,
    validity: Validity,
    ttl: Duration,
}

impl<V> Cached<V> {
    /// What the verifier stored.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The token's validity window.
    pub fn validity(&self) -> &Validity {
        &self.validity
    }

    /// Whether the token is still inside its window at `now` with `leeway`
    /// ([`Validity::is_current`]).
    pub fn is_current(&self, now: i64, leeway: Duration) -> bool {
        self.validity.is_current(now, leeway)
    }
}

/// Each entry expires after its own time to live.
struct PerEntryTtl;

impl<V: Send + Sync + 'static> moka::Expiry<Digest, Arc<Cached<V>>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Arc<Cached<V>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A bounded map from token digest to verification result.
pub struct VerifiedTokenCache<V> {
    map: moka::sync::Cache<Digest, Arc<Cached<V>>, DigestHasher>,
    max_ttl: Duration,
}

impl<V: Send + Sync + 'static> VerifiedTokenCache<V> {
    /// A cache of at most `max_entries` tokens, each kept at most `max_ttl`; `None` when either
    /// is zero (no cache).
    pub fn new(max_entries: u64, max_ttl: Duration) -> Option<Self> {
        (max_entries > 0 && !max_ttl.is_zero()).then(|| Self {
            map: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .build_with_hasher(DigestHasher::default()),
            max_ttl,
        })
    }

    /// The entry of the token with `digest`, if cached (the caller re-checks it).
    pub fn get(&self, digest: &Digest) -> Option<Arc<Cached<V>>> {
        self.map.get(digest)
    }

    /// Drops the entry of the token with `digest`.
    pub fn remove(&self, digest: &Digest) {
        self.map.invalidate(digest);
    }

    /// Caches `value` for a token verified at `now` until `min(exp, now + max_ttl)`; a token
    /// at or past its `exp` is not cached.
    pub fn insert(&self, digest: Digest, now: i64, validity: Validity, value: V) {
        let Ok(remaining) = u64::try_from(validity.expires_at.saturating_sub(now)) else {
            return;
        };
        if remaining == 0 {
            return;
        }
        let ttl = Duration::from_secs(remaining).min(self.max_ttl);
        self.map.insert(
            digest,
            Arc::new(Cached {
                value,
                validity,
                ttl,
            }),
        );
    }

    /// The number of cached tokens, after the cache's pending evictions.
    pub fn len(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<V> std::fmt::Debug for VerifiedTokenCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokenCache")
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(cache: &VerifiedTokenCache<u8>, token: &[u8], now: i64, exp: i64) {
        let validity = Validity {
            expires_at: exp,
            issued_at: Some(0),
            not_before: None,
        };
        cache.insert(Digest::of(token), now, validity, 1);
    }

    #[test]
    fn entries_are_found_by_the_digest_of_their_token_only() {
        let cache = VerifiedTokenCache::new(10, Duration::from_secs(300)).unwrap();
        put(&cache, b"a.b.c", 0, 100);
        assert_eq!(
            cache.get(&Digest::of(b"a.b.c")).map(|e| *e.value()),
            Some(1)
        );
        assert!(cache.get(&Digest::of(b"a.b.d")).is_none());
        cache.remove(&Digest::of(b"a.b.c"));
        assert!(cache.get(&Digest::of(b"a.b.c")).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn entries_live_until_exp_capped_by_the_ttl_and_expired_tokens_are_not_kept() {
        let cache = VerifiedTokenCache::new(10, Duration::from_secs(60)).unwrap();
        put(&cache, b"short", 0, 10);
        put(&cache, b"long", 0, 1000);
        put(&cache, b"at_exp", 10, 10);
        put(&cache, b"past", 11, 10);
        let ttl = |token: &[u8]| cache.get(&Digest::of(token)).map(|e| e.ttl);
        assert_eq!(ttl(b"short"), Some(Duration::from_secs(10)));
        assert_eq!(ttl(b"long"), Some(Duration::from_secs(60)));
        assert_eq!(ttl(b"at_exp"), None);
        assert_eq!(ttl(b"past"), None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn entries_are_current_only_inside_their_window() {
        let cache = VerifiedTokenCache::new(10, Duration::from_secs(300)).unwrap();
        let validity = Validity {
            expires_at: 100,
            issued_at: Some(40),
            not_before: Some(50),
        };
        cache.insert(Digest::of(b"t"), 0, validity, ());
        let e = cache.get(&Digest::of(b"t")).unwrap();
        assert!(e.is_current(100, Duration::ZERO));
        assert!(!e.is_current(101, Duration::ZERO));
        assert!(!e.is_current(49, Duration::ZERO));
        assert!(e.is_current(20, Duration::from_secs(30)));
        assert_eq!(e.validity(), &validity);
    }

    #[test]
    fn zero_entries_or_a_zero_ttl_is_no_cache() {
        assert!(VerifiedTokenCache::<u8>::new(0, Duration::from_secs(60)).is_none());
        assert!(VerifiedTokenCache::<u8>::new(10, Duration::ZERO).is_none());
    }
}

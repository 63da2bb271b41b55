//! The verified-token cache every verifier in the workspace shares (feature `cache`): a repeat
//! of a token already verified costs one keyed hash and one lookup.
//!
//! * The key is the keyed 128-bit [`Digest`] of the token: the map holds no token, and without
//!   the per-process key nobody can aim a token at another token's entry.
//! * An entry serves no longer than the token's `exp` (and at most the configured TTL after it
//!   was stored); a token at or past its `exp` (accepted inside the leeway) is not stored. The
//!   caller checks both on every hit with [`Cached::is_current`], on the verifier's own clock
//!   (so an injected clock governs the cache as it governs verification), and drops an entry
//!   that is no longer current.
//! * The map is bounded by entry count (quick_cache's CLOCK-Pro eviction); only tokens that
//!   passed every check go in, so nobody without a signing key can fill it, and an eviction
//!   costs a verification, never a wrong answer. Entries past their time stay until they are
//!   looked up or evicted, within the same bound.
//! * A hit is a read lock on one shard and a reference-count increment: no allocation, no
//!   clock read of the cache's own, no bookkeeping queue (moka, used before, spent half of a
//!   hit's time on its read log and timers).
//!
//! What else a hit must re-check (the key that verified the token is still trusted, a
//! revocation) is the verifier's: it differs between a remote issuer and an in-process key ring.

use std::sync::Arc;
use std::time::Duration;

use crate::digest::{Digest, DigestHasher};
use crate::jose::Validity;

/// A cached verification result and the time window it is valid in.
#[derive(Debug)]
pub struct Cached<V> {
    value: V,
    validity: Validity,
    /// The end of the entry's time to live (seconds since the epoch, exclusive).
    stored_until: i64,
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

    /// Whether the entry may still be served at `now`: the token is inside its window with
    /// `leeway` ([`Validity::is_current`]) and the entry inside its time to live.
    pub fn is_current(&self, now: i64, leeway: Duration) -> bool {
        now < self.stored_until && self.validity.is_current(now, leeway)
    }
}

/// A bounded map from token digest to verification result.
pub struct VerifiedTokenCache<V> {
    map: quick_cache::sync::Cache<Digest, Arc<Cached<V>>, quick_cache::UnitWeighter, DigestHasher>,
    max_ttl: Duration,
}

impl<V: Send + Sync + 'static> VerifiedTokenCache<V> {
    /// A cache of at most `max_entries` tokens, each kept at most `max_ttl`; `None` when either
    /// is zero (no cache).
    pub fn new(max_entries: u64, max_ttl: Duration) -> Option<Self> {
        let items = usize::try_from(max_entries).unwrap_or(usize::MAX);
        (max_entries > 0 && !max_ttl.is_zero()).then(|| Self {
            map: quick_cache::sync::Cache::with(
                items,
                max_entries,
                quick_cache::UnitWeighter,
                DigestHasher::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            max_ttl,
        })
    }

    /// The entry of the token with `digest`, if cached (the caller re-checks it).
    pub fn get(&self, digest: &Digest) -> Option<Arc<Cached<V>>> {
        self.map.get(digest)
    }

    /// Drops the entry of the token with `digest`.
    pub fn remove(&self, digest: &Digest) {
        self.map.remove(digest);
    }

    /// Caches `value` for a token verified at `now` until `min(exp, now + max_ttl)`; a token
    /// at or past its `exp` is not cached.
    pub fn insert(&self, digest: Digest, now: i64, validity: Validity, value: V) {
        if validity.expires_at <= now {
            return;
        }
        // The token's own window ends the entry at `exp`; this caps it at the TTL (whole
        // seconds, rounded up, as the clock the caller passes is).
        let ttl = self.max_ttl.as_secs() + u64::from(self.max_ttl.subsec_nanos() > 0);
        let stored_until = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
        self.map.insert(
            digest,
            Arc::new(Cached {
                value,
                validity,
                stored_until,
            }),
        );
    }

    /// The number of cached tokens (entries past their time included until they are dropped).
    pub fn len(&self) -> u64 {
        u64::try_from(self.map.len()).unwrap_or(u64::MAX)
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
        let served_at = |token: &[u8], now: i64| {
            cache
                .get(&Digest::of(token))
                .is_some_and(|e| e.is_current(now, Duration::ZERO))
        };
        // Until `exp` for a short-lived token, until the TTL for a long-lived one.
        assert!(served_at(b"short", 10) && !served_at(b"short", 11));
        assert!(served_at(b"long", 59) && !served_at(b"long", 60));
        let ttl = |token: &[u8]| cache.get(&Digest::of(token)).map(|e| e.stored_until);
        assert_eq!(ttl(b"long"), Some(60));
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
    fn the_map_is_bounded_by_its_entry_count() {
        let cache = VerifiedTokenCache::new(50, Duration::from_secs(300)).unwrap();
        for i in 0..1000u32 {
            put(&cache, &i.to_le_bytes(), 0, 100);
        }
        assert!(cache.len() <= 50, "{}", cache.len());
        assert!(!cache.is_empty());
    }

    #[test]
    fn zero_entries_or_a_zero_ttl_is_no_cache() {
        assert!(VerifiedTokenCache::<u8>::new(0, Duration::from_secs(60)).is_none());
        assert!(VerifiedTokenCache::<u8>::new(10, Duration::ZERO).is_none());
    }
}

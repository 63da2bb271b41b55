//! The verified-token cache: a repeat of a token already verified costs one keyed hash and one
//! lookup.
//!
//! * The key is a 128-bit SipHash-1-3 of the token under a random per-process key: a dump of the
//!   cache reveals no token, and without the key nobody can aim a token at another token's
//!   entry.
//! * An entry lives no longer than the token's `exp` (and at most the configured TTL); on every
//!   hit `exp`/`nbf`/`iat` are re-checked against the verifier's clock, so an entry never
//!   outlives its token even if the cache's own timer is late.
//! * An entry records the RFC 7638 thumbprint of the key that verified it and is served only
//!   while that key is in the current key set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentcube_auth_core::digest::{Digest, DigestHasher};
use agentcube_auth_core::jose::Validity;

use crate::verifier::VerifiedToken;

/// Verified-token cache settings.
///
/// Every combination is valid: zero entries or a zero TTL turns the cache off.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct CacheConfig {
    max_entries: u64,
    max_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            max_ttl: Self::DEFAULT_MAX_TTL,
        }
    }
}

impl CacheConfig {
    /// The default cache bound: 10,000 tokens.
    pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

    /// The default longest time a verified token is served from the cache: 5 min.
    pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(300);

    /// The defaults: [`CacheConfig::DEFAULT_MAX_ENTRIES`] entries, each served for at most
    /// [`CacheConfig::DEFAULT_MAX_TTL`].
    pub fn new() -> Self {
        Self::default()
    }

    /// No cache: every token is verified in full.
    pub fn disabled() -> Self {
        Self {
            max_entries: 0,
            max_ttl: Duration::ZERO,
        }
    }

    /// The most tokens kept (least recently / frequently used are evicted first).
    pub fn max_entries(mut self, entries: u64) -> Self {
        self.max_entries = entries;
        self
    }

    /// The longest an entry is served, whatever the token's `exp`.
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.max_entries > 0 && !self.max_ttl.is_zero()
    }
}

/// What a hit returns: the verified token (its `from_cache` is `false`; the verifier sets it
/// when serving the entry) and its validity window, re-checked on every hit.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) token: VerifiedToken,
    validity: Validity,
    ttl: Duration,
}

impl Entry {
    /// Whether the token is still inside its validity window at `now` with `leeway`: the rule
    /// the verifier applied when it accepted the token.
    pub(crate) fn is_current(&self, now: i64, leeway: Duration) -> bool {
        self.validity.is_current(now, leeway)
    }
}

struct PerEntryTtl;

impl moka::Expiry<Digest, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

type Map = moka::sync::Cache<Digest, Arc<Entry>, DigestHasher>;

/// A bounded map from token hash to verified principal.
pub(crate) struct TokenCache {
    map: Map,
    max_ttl: Duration,
}

impl TokenCache {
    pub(crate) fn new(config: &CacheConfig) -> Option<Self> {
        if !config.is_enabled() {
            return None;
        }
        let map = moka::sync::Cache::builder()
            .max_capacity(config.max_entries)
            .expire_after(PerEntryTtl)
            .build_with_hasher(DigestHasher::default());
        Some(Self {
            map,
            max_ttl: config.max_ttl,
        })
    }

    pub(crate) fn get(&self, key: &Digest) -> Option<Arc<Entry>> {
        self.map.get(key)
    }

    pub(crate) fn remove(&self, key: &Digest) {
        self.map.invalidate(key);
    }

    /// Caches a verified token until `min(exp, now + max_ttl)`; a token already inside its
    /// leeway window (at or past `exp`) is not cached.
    pub(crate) fn insert(&self, key: Digest, now: i64, token: &VerifiedToken, validity: Validity) {
        let remaining = validity.expires_at.saturating_sub(now);
        let Ok(remaining) = u64::try_from(remaining) else {
            return;
        };
        if remaining == 0 {
            return;
        }
        let ttl = Duration::from_secs(remaining).min(self.max_ttl);
        self.map.insert(
            key,
            Arc::new(Entry {
                token: token.clone(),
                validity,
                ttl,
            }),
        );
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentcube_auth_core::Principal;
    use agentcube_auth_core::jose::Algorithm;

    fn verified(expires_at: i64, issued_at: Option<i64>) -> VerifiedToken {
        VerifiedToken {
            principal: Principal::builder("i", "s").build(),
            algorithm: Algorithm::RS256,
            kid: None,
            key_thumbprint: "t".into(),
            expires_at,
            issued_at,
            from_cache: false,
            revocation: None,
        }
    }

    fn validity(expires_at: i64, issued_at: Option<i64>, not_before: Option<i64>) -> Validity {
        Validity {
            expires_at,
            issued_at,
            not_before,
        }
    }

    /// Caches `token` (expiring at `exp`) as verified at `now`.
    fn put(cache: &TokenCache, token: &[u8], now: i64, exp: i64) {
        let validity = validity(exp, None, None);
        cache.insert(Digest::of(token), now, &verified(exp, None), validity);
    }

    #[test]
    fn entries_are_found_by_the_digest_of_their_token_only() {
        let cache = TokenCache::new(&CacheConfig::new()).unwrap();
        put(&cache, b"a.b.c", 0, 100);
        assert!(cache.get(&Digest::of(b"a.b.c")).is_some());
        assert!(cache.get(&Digest::of(b"a.b.d")).is_none());
        cache.remove(&Digest::of(b"a.b.c"));
        assert!(cache.get(&Digest::of(b"a.b.c")).is_none());
    }

    #[test]
    fn entries_live_until_exp_capped_by_the_ttl_and_expired_tokens_are_not_kept() {
        let cache = TokenCache::new(&CacheConfig::new().max_ttl(Duration::from_secs(60))).unwrap();
        put(&cache, b"short", 0, 10);
        put(&cache, b"long", 0, 1000);
        put(&cache, b"at_exp", 10, 10);
        put(&cache, b"past", 11, 10);
        let ttl = |token: &[u8]| cache.get(&Digest::of(token)).map(|e| e.ttl);
        assert_eq!(ttl(b"short"), Some(Duration::from_secs(10)));
        assert_eq!(ttl(b"long"), Some(Duration::from_secs(60)));
        assert_eq!(ttl(b"at_exp"), None);
        assert_eq!(ttl(b"past"), None);
        assert_eq!(cache.entry_count(), 2);
    }

    #[test]
    fn a_disabled_cache_is_not_built() {
        assert!(TokenCache::new(&CacheConfig::disabled()).is_none());
        assert!(TokenCache::new(&CacheConfig::new().max_entries(0)).is_none());
        assert!(TokenCache::new(&CacheConfig::new().max_ttl(Duration::ZERO)).is_none());
    }

    #[test]
    fn entries_are_current_only_inside_the_window() {
        let e = Entry {
            token: verified(100, Some(40)),
            validity: validity(100, Some(40), Some(50)),
            ttl: Duration::from_secs(1),
        };
        let secs = Duration::from_secs;
        assert!(e.is_current(100, secs(0)));
        assert!(!e.is_current(101, secs(0)));
        assert!(e.is_current(130, secs(30)));
        assert!(!e.is_current(131, secs(30)));
        assert!(!e.is_current(49, secs(0)));
        assert!(e.is_current(20, secs(30)));
        assert!(!e.is_current(19, secs(30)));
        // `iat` in the future beyond the leeway.
        let future = Entry {
            token: verified(100, Some(60)),
            validity: validity(100, Some(60), None),
            ttl: Duration::from_secs(1),
        };
        assert!(!future.is_current(29, secs(30)));
        assert!(future.is_current(30, secs(30)));
    }
}

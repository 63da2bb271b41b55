//! The verifier's settings of the workspace's verified-token cache
//! (`agentcube_auth_core::token_cache`: keyed digests, entries until `exp` at most, the window
//! re-checked on every hit). What this verifier adds on a hit: the entry records the RFC 7638
//! thumbprint of the key that verified it and is served only while that key is in the current
//! key set, and a revocation is checked.

use std::time::Duration;

use agentcube_auth_core::token_cache::{Cached, VerifiedTokenCache};

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

/// A cached verification: the verified token (its `from_cache` is `false`; the verifier sets
/// it when serving the entry) and its validity window.
pub(crate) type Entry = Cached<VerifiedToken>;

/// The verifier's cache: the workspace's verified-token cache of [`VerifiedToken`]s.
pub(crate) type TokenCache = VerifiedTokenCache<VerifiedToken>;

/// The cache `config` asks for; `None` when it is disabled.
pub(crate) fn token_cache(config: &CacheConfig) -> Option<TokenCache> {
    if !config.is_enabled() {
        return None;
    }
    VerifiedTokenCache::new(config.max_entries, config.max_ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_cache_is_not_built() {
        assert!(token_cache(&CacheConfig::disabled()).is_none());
        assert!(token_cache(&CacheConfig::new().max_entries(0)).is_none());
        assert!(token_cache(&CacheConfig::new().max_ttl(Duration::ZERO)).is_none());
        assert!(token_cache(&CacheConfig::new()).is_some());
    }
}

//! The verified-token cache: the Router reuses one minted token for the same caller (and
//! session) until shortly before it expires, so a workload manager or a sandbox sees the same
//! token on request after request. A repeat costs one keyed hash, one lookup and one key lookup
//! instead of a signature check.
//!
//! * The key is auth-core's keyed 128-bit [`Digest`] of the token: the map holds no token, and
//!   without the per-process key nobody can aim a token at another token's entry (see
//!   `agentcube_auth_core::digest` for why SipHash-1-3 is enough). [`DigestHasher`] uses the
//!   digest as the map's hash as it is.
//! * Only tokens that passed every check are stored, so nobody without the signing key can fill
//!   the cache; it is bounded by entry count (its eviction policy decides what goes when full:
//!   the cost is a signature check, never a wrong answer).
//! * An entry expires no later than the token's `exp` (capped by the verifier's lifetime cap),
//!   and every hit re-checks `exp`/`iat` with the verifier's clock and leeway through
//!   [`Validity::is_current`], the rule `check_times` applied when the token was accepted, so
//!   an entry never outlives its token even if the cache's own timer is late.
//! * Every hit asks the key source again for the key of the entry's `kid` and algorithm and
//!   serves the entry only if it is the key that verified the token (the same `Arc`, or the
//!   same RFC 7638 thumbprint): a key removed from the source, or a `kid` now naming other key
//!   material, drops the entry and the token is verified in full, which gives the precise error.
//!
//! The verifier's other rules (size, allowlist, `typ`, issuer, audience or session binding, the
//! kind's claims, the lifetime cap) are fixed when it is built, so a token that passed them once
//! passes them again; each verifier owns its cache, so an entry is only ever served by the
//! verifier whose checks accepted it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentcube_auth_core::digest::{Digest, DigestHasher};
use agentcube_auth_core::jose::{Validity, VerificationKey};

use crate::kind::{TokenKind, Verified};

/// A verified token with what a hit re-checks.
pub(crate) struct Entry<T> {
    pub(crate) verified: Verified<T>,
    /// The token's time window, re-checked on every hit.
    pub(crate) validity: Validity,
    /// The key that verified the signature: served only while the key source still returns it.
    pub(crate) key: Arc<VerificationKey>,
    ttl: Duration,
}

impl<T> Entry<T> {
    /// Whether `current`, the key source's answer for the entry's `kid` and algorithm now, is
    /// the key that verified the token. Pointer equality is the common case (a static set, or
    /// a ring that has not changed); a source rebuilt with the same key material (a ring after
    /// a rotation, a refreshed JWKS) has another `Arc` with the same thumbprint.
    pub(crate) fn verified_by(&self, current: &Arc<VerificationKey>) -> bool {
        Arc::ptr_eq(current, &self.key) || current.thumbprint() == self.key.thumbprint()
    }
}

/// Each entry expires after its own time-to-live.
struct PerEntryTtl;

impl<T: TokenKind> moka::Expiry<Digest, Arc<Entry<T>>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Arc<Entry<T>>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A bounded map from token digest to verified token.
pub(crate) struct VerifiedCache<T> {
    map: moka::sync::Cache<Digest, Arc<Entry<T>>, DigestHasher>,
    max_ttl: Duration,
}

impl<T: TokenKind> VerifiedCache<T> {
    /// A cache of at most `capacity` tokens, each kept at most `max_ttl`; `None` for a capacity
    /// of 0 (the cache is off).
    pub(crate) fn new(capacity: u64, max_ttl: Duration) -> Option<Self> {
        (capacity > 0).then(|| Self {
            map: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntryTtl)
                .build_with_hasher(DigestHasher::default()),
            max_ttl,
        })
    }

    pub(crate) fn get(&self, digest: &Digest) -> Option<Arc<Entry<T>>> {
        self.map.get(digest)
    }

    pub(crate) fn remove(&self, digest: &Digest) {
        self.map.invalidate(digest);
    }

    /// Caches a token verified at `now` until `min(exp, now + max_ttl)`; a token at or past
    /// its `exp` (accepted inside the leeway) is not cached.
    pub(crate) fn insert(
        &self,
        digest: Digest,
        now: i64,
        verified: &Verified<T>,
        validity: Validity,
        key: Arc<VerificationKey>,
    ) {
        let remaining = validity.expires_at.saturating_sub(now);
        let Ok(remaining) = u64::try_from(remaining) else {
            return;
        };
        if remaining == 0 {
            return;
        }
        let entry = Entry {
            verified: verified.clone(),
            validity,
            key,
            ttl: Duration::from_secs(remaining).min(self.max_ttl),
        };
        self.map.insert(digest, Arc::new(entry));
    }

    /// The number of cached tokens, after the cache's pending evictions.
    pub(crate) fn len(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{Identity, TokenMeta};
    use agentcube_auth_core::Claims;
    use agentcube_auth_core::jose::{Algorithm, SigningKey};
    use serde_json::json;

    fn verified(exp: i64) -> Verified<Identity> {
        let claims = Claims::try_from(json!({"sub": "alice", "exp": exp})).unwrap();
        let kind = <Identity as crate::kind::sealed::Kind>::read(&claims, "wm", "router").unwrap();
        Verified::new(
            kind,
            TokenMeta {
                kid: "k".into(),
                algorithm: Algorithm::EdDSA,
                issued_at: 0,
                expires_at: exp,
                jwt_id: "j".into(),
                claims,
            },
        )
    }

    fn key() -> Arc<VerificationKey> {
        Arc::clone(
            SigningKey::generate(Algorithm::EdDSA)
                .unwrap()
                .verification_key(),
        )
    }

    fn put(cache: &VerifiedCache<Identity>, token: &[u8], now: i64, exp: i64) {
        let validity = Validity {
            expires_at: exp,
            issued_at: Some(0),
            not_before: None,
        };
        cache.insert(Digest::of(token), now, &verified(exp), validity, key());
    }

    #[test]
    fn entries_are_found_by_the_digest_of_their_token_only() {
        let cache = VerifiedCache::new(10, Duration::from_secs(300)).unwrap();
        put(&cache, b"a.b.c", 0, 100);
        assert!(cache.get(&Digest::of(b"a.b.c")).is_some());
        assert!(cache.get(&Digest::of(b"a.b.d")).is_none());
        cache.remove(&Digest::of(b"a.b.c"));
        assert!(cache.get(&Digest::of(b"a.b.c")).is_none());
    }

    #[test]
    fn entries_live_until_exp_capped_and_tokens_at_or_past_exp_are_not_kept() {
        let cache = VerifiedCache::new(10, Duration::from_secs(60)).unwrap();
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
    fn a_zero_capacity_is_no_cache() {
        assert!(VerifiedCache::<Identity>::new(0, Duration::from_secs(60)).is_none());
    }

    #[test]
    fn an_entry_is_served_only_for_the_key_that_verified_it() {
        let cache = VerifiedCache::new(10, Duration::from_secs(60)).unwrap();
        let signer = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let original = Arc::clone(signer.verification_key());
        let validity = Validity {
            expires_at: 100,
            issued_at: Some(0),
            not_before: None,
        };
        let digest = Digest::of(b"t");
        cache.insert(digest, 0, &verified(100), validity, Arc::clone(&original));
        let entry = cache.get(&digest).unwrap();
        // The same key: the same Arc, or the same material parsed again.
        assert!(entry.verified_by(&original));
        let reparsed = Arc::new(VerificationKey::from_jwk(signer.public_jwk()).unwrap());
        assert!(!Arc::ptr_eq(&reparsed, &original));
        assert!(entry.verified_by(&reparsed));
        // Other key material under the same kid.
        let other = SigningKey::generate(Algorithm::EdDSA)
            .unwrap()
            .with_kid(signer.kid());
        assert!(!entry.verified_by(other.verification_key()));
    }
}

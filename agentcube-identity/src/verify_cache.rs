//! The verified-token cache: the Router reuses one minted token for the same caller (and
//! session) until shortly before it expires, so a workload manager or a sandbox sees the same
//! token on request after request. A repeat costs one keyed hash, one lookup and one key lookup
//! instead of a signature check.
//!
//! The map is the workspace's verified-token cache (`agentcube_auth_core::token_cache`, shared
//! with the OIDC verifier): keyed by the token's keyed digest, bounded, an entry expiring no
//! later than the token's `exp` (capped by the verifier's lifetime cap), its window re-checked on
//! every hit with the verifier's clock and leeway. What this verifier adds:
//!
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

use agentcube_auth_core::jose::VerificationKey;
use agentcube_auth_core::token_cache::VerifiedTokenCache;

use crate::kind::Verified;

/// A verified token and the key that verified its signature.
pub(crate) struct Entry<T> {
    pub(crate) verified: Verified<T>,
    /// Served only while the key source still returns this key.
    pub(crate) key: Arc<VerificationKey>,
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

/// The verifier's cache: the workspace's verified-token cache of [`Entry`]s.
pub(crate) type VerifiedCache<T> = VerifiedTokenCache<Entry<T>>;

//! Sets of verification keys and the [`KeySource`] seam through which verifiers find them.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::algorithm::Algorithm;
use super::key::{Jwk, SkipReason, VerificationKey};
use crate::error::{AuthError, KeysUnavailableReason};
use crate::rejection::Code;

/// The default cap on keys read from one JWKS document.
pub const DEFAULT_MAX_KEYS: usize = 32;

/// Finds the key that should verify a token with the given `kid` and `alg`.
///
/// A static [`KeySet`] implements it; `agentcube-oidc`'s remote key store implements it with
/// discovery, caching and rate-limited refresh. Identity-token verifiers take any implementation,
/// so a workload manager can use a PEM file or the Router's published JWKS interchangeably.
pub trait KeySource: Send + Sync {
    /// Returns the key for `kid`/`alg`.
    ///
    /// # Errors
    /// `unknown_kid`, `key_algorithm_mismatch`, or `keys_unavailable` when the source has no
    /// keys yet.
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send;

    /// Whether the source holds keys now.
    fn is_ready(&self) -> bool;
}

impl<S: KeySource + ?Sized> KeySource for Arc<S> {
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send {
        (**self).key_for(kid, alg)
    }

    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
}

/// A key from a JWKS document that was not used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKey {
    /// The key's `kid`, if it had one.
    pub kid: Option<String>,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// Why a JWKS document could not be read at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The document is not JSON, or has no `keys` array.
    #[error("jwks document is not a json object with a keys array")]
    InvalidDocument,
    /// More keys than the configured cap.
    #[error("jwks document has {count} keys, over the limit of {limit}")]
    TooManyKeys {
        /// Keys in the document.
        count: usize,
        /// The cap.
        limit: usize,
    },
}

impl JwksError {
    /// A stable snake_case code.
    pub const fn code(&self) -> Code {
        match self {
            Self::InvalidDocument => Code::new("invalid_jwks"),
            Self::TooManyKeys { .. } => Code::new("too_many_keys"),
        }
    }
}

/// An immutable set of verification keys.
///
/// Lookups scan a short slice comparing `kid`s: for the handful of keys an issuer publishes this
/// beats hashing, and it allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Arc<[Arc<VerificationKey>]>,
}

impl KeySet {
    /// A set of the given keys.
    pub fn new(keys: impl IntoIterator<Item = VerificationKey>) -> Self {
        Self {
            keys: keys.into_iter().map(Arc::new).collect(),
        }
    }

    /// A set of keys that are already shared (for example a
    /// [`SigningKey::verification_key`](super::SigningKey::verification_key)), without
    /// parsing them again.
    pub fn from_shared(keys: impl IntoIterator<Item = Arc<VerificationKey>>) -> Self {
        Self {
            keys: keys.into_iter().collect(),
        }
    }

    /// Parses a JWKS document, keeping usable signing keys and reporting the others.
    ///
    /// # Errors
    /// [`JwksError`] when the document as a whole is unusable; a bad key never fails the set.
    pub fn from_jwks(json: &[u8], max_keys: usize) -> Result<(Self, Vec<SkippedKey>), JwksError> {
        let doc: Value = serde_json::from_slice(json).map_err(|_| JwksError::InvalidDocument)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::InvalidDocument)?;
        if keys.len() > max_keys {
            return Err(JwksError::TooManyKeys {
                count: keys.len(),
                limit: max_keys,
            });
        }
        let mut usable = Vec::with_capacity(keys.len());
        let mut skipped = Vec::new();
        for value in keys {
            let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
            let parsed = serde_json::from_value::<Jwk>(value.clone())
                .map_err(|_| SkipReason::InvalidJson)
                .and_then(|jwk| VerificationKey::from_jwk(&jwk));
            match parsed {
                Ok(key) => usable.push(key),
                Err(reason) => skipped.push(SkippedKey { kid, reason }),
            }
        }
        Ok((Self::new(usable), skipped))
    }

    /// The keys.
    pub fn keys(&self) -> &[Arc<VerificationKey>] {
        &self.keys
    }

    /// Whether the set has no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether a key with this thumbprint is in the set.
    pub fn contains_thumbprint(&self, thumbprint: &str) -> bool {
        self.keys.iter().any(|k| k.thumbprint() == thumbprint)
    }

    /// Whether any key has this `kid` (whatever its algorithms).
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    /// Finds the key for a token.
    ///
    /// With a `kid`: the key with that id that supports `alg` (`unknown_kid` if no key has the
    /// id, `key_algorithm_mismatch` if one does but not for `alg`). Without a `kid`: the only key
    /// that supports `alg`; when several do, the token is `unknown_kid` rather than tried against
    /// each, so one request never costs more than one signature check.
    ///
    /// # Errors
    /// As above.
    pub fn find(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&Arc<VerificationKey>, AuthError> {
        match kid {
            Some(kid) => {
                let mut seen = false;
                for key in self.keys.iter().filter(|k| k.kid() == Some(kid)) {
                    seen = true;
                    if key.algorithms().contains(alg) {
                        return Ok(key);
                    }
                }
                Err(if seen {
                    AuthError::KeyAlgorithmMismatch
                } else {
                    AuthError::UnknownKid
                })
            }
            None => {
                let mut candidates = self.keys.iter().filter(|k| k.algorithms().contains(alg));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Ok(only),
                    _ => Err(AuthError::UnknownKid),
                }
            }
        }
    }
}

impl KeySource for KeySet {
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send {
        // An empty static set is a deployment without keys: fail closed as "unavailable" (503),
        // not as a bad token.
        std::future::ready(if self.is_empty() {
            Err(AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded))
        } else {
            self.find(kid, alg).cloned()
        })
    }

    fn is_ready(&self) -> bool {
        !self.is_empty()
    }
}

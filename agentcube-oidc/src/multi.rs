//! Several issuers behind one verifier, routed by the token's (unverified) `iss`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use agentcube_auth_core::digest::Digest;
use agentcube_auth_core::jose::UnverifiedJws;
use agentcube_auth_core::{AuthError, ErrorCode, Principal, TokenVerifier};

use crate::config::ConfigError;
use crate::metrics::{IssuerMetrics, Started};
use crate::stats::{RejectionCounters, VerifierStats};
use crate::verifier::OidcVerifier;

/// Routes each token to the [`OidcVerifier`] configured for its issuer.
///
/// The `iss` is read from the payload after framing, before anything is trusted; it only selects
/// the verifier, which then applies every rule of its own configuration (including an exact
/// `iss` check after the signature). A token naming an issuer that is not configured is rejected
/// with `unknown_issuer` without any network access.
///
/// A token already verified costs one keyed hash and one cache lookup per configured issuer.
///
/// Ordering note: framing (step 1) is checked here before routing; header rules (step 2) are the
/// routed verifier's, so for a token with an unknown issuer *and* a bad header the answer is
/// `unknown_issuer`.
#[derive(Clone)]
pub struct MultiIssuerVerifier {
    verifiers: Box<[OidcVerifier]>,
    max_token_bytes: usize,
    any_cache: bool,
    rejections: std::sync::Arc<RejectionCounters>,
}

/// A point-in-time copy of a multi-issuer verifier's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MultiIssuerStats {
    /// Each issuer's counters, in configuration order.
    pub issuers: Vec<VerifierStats>,
    /// Rejections decided before a verifier was chosen (size, framing, `unknown_issuer`).
    pub unrouted_rejections: BTreeMap<ErrorCode, u64>,
}

impl MultiIssuerVerifier {
    /// A verifier over `verifiers`, one per issuer.
    ///
    /// # Errors
    /// [`ConfigError::NoIssuers`] for an empty list (nothing could ever be accepted),
    /// [`ConfigError::DuplicateIssuer`] if two verifiers have the same issuer.
    pub fn new(verifiers: impl IntoIterator<Item = OidcVerifier>) -> Result<Self, ConfigError> {
        let verifiers: Box<[OidcVerifier]> = verifiers.into_iter().collect();
        for (i, v) in verifiers.iter().enumerate() {
            if verifiers
                .iter()
                .skip(i + 1)
                .any(|w| w.issuer() == v.issuer())
            {
                return Err(ConfigError::DuplicateIssuer);
            }
        }
        let Some(max_token_bytes) = verifiers.iter().map(OidcVerifier::max_token_bytes).max()
        else {
            return Err(ConfigError::NoIssuers);
        };
        let any_cache = verifiers.iter().any(OidcVerifier::has_cache);
        Ok(Self {
            verifiers,
            max_token_bytes,
            any_cache,
            rejections: std::sync::Arc::default(),
        })
    }

    /// The configured issuers.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.verifiers.iter().map(OidcVerifier::issuer)
    }

    /// The verifier for `issuer`.
    pub fn verifier(&self, issuer: &str) -> Option<&OidcVerifier> {
        self.verifiers.iter().find(|v| v.issuer() == issuer)
    }

    /// Verifies `token` with the verifier of its issuer.
    ///
    /// # Errors
    /// `unknown_issuer` for an issuer that is not configured, a framing error, or whatever the
    /// routed verifier answers.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let started = Started::now();
        if token.len() > self.max_token_bytes {
            return Err(self.reject(
                AuthError::TokenTooLarge {
                    size: token.len(),
                    limit: self.max_token_bytes,
                },
                started,
            ));
        }
        let key = self.any_cache.then(|| Digest::of_token(token));
        if let Some(key) = &key {
            for v in &*self.verifiers {
                if let Some(result) = v.cached_principal(key) {
                    v.observe_cached(&result, started);
                    return result;
                }
            }
        }
        let verifier = self.route(token).map_err(|err| self.reject(err, started))?;
        verifier.verify_routed(token, key).await
    }

    /// Ready when at least one issuer's keys are usable (a service can still serve that
    /// issuer's callers); see [`all_ready`](Self::all_ready) for the strict form.
    pub fn is_ready(&self) -> bool {
        self.verifiers.iter().any(OidcVerifier::is_ready)
    }

    /// Whether every issuer's keys are usable.
    pub fn all_ready(&self) -> bool {
        self.verifiers.iter().all(OidcVerifier::is_ready)
    }

    /// Spawns every verifier's background key refresh on the current tokio runtime.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn spawn_background_refresh(&self) -> Vec<tokio::task::JoinHandle<()>> {
        self.verifiers
            .iter()
            .filter_map(OidcVerifier::spawn_background_refresh)
            .collect()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> MultiIssuerStats {
        MultiIssuerStats {
            issuers: self.verifiers.iter().map(OidcVerifier::stats).collect(),
            unrouted_rejections: self.rejections.snapshot(),
        }
    }

    /// The verifier named by the token's `iss`, read after checking the framing (three
    /// unpadded base64url segments, a strict JSON object payload). Nothing read here is
    /// trusted: the routed verifier re-does everything.
    fn route(&self, token: &str) -> Result<&OidcVerifier, AuthError> {
        let claims = UnverifiedJws::peek_claims(token, self.max_token_bytes)?;
        let iss = claims
            .issuer()?
            .ok_or(AuthError::MissingClaim(Cow::Borrowed("iss")))?;
        self.verifier(iss).ok_or_else(|| {
            tracing::debug!(code = %ErrorCode::UnknownIssuer, "token rejected");
            AuthError::UnknownIssuer
        })
    }

    fn reject(&self, err: AuthError, started: Started) -> AuthError {
        self.rejections.record(err.code());
        IssuerMetrics::unrouted().verification(Err(err.code()), started);
        err
    }
}

impl TokenVerifier for MultiIssuerVerifier {
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send {
        MultiIssuerVerifier::verify(self, token)
    }

    fn is_ready(&self) -> bool {
        MultiIssuerVerifier::is_ready(self)
    }
}

impl fmt::Debug for MultiIssuerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiIssuerVerifier")
            .field("verifiers", &self.verifiers)
            .finish_non_exhaustive()
    }
}

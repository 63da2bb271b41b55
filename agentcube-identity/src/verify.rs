//! The receiving side: one fail-closed verifier, generic over the token kind, for identity
//! tokens (workload manager) and sandbox tokens (sandbox agent).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::digest::Digest;
use agentcube_auth_core::jose::{
    self, Algorithm, AlgorithmSet, DEFAULT_MAX_TOKEN_BYTES, JwsPolicy, KeySource, TimeRules,
    TypePolicy, UnverifiedJws, Validity, VerificationKey,
};
use agentcube_auth_core::{AuthError, Clock, Principal, SystemClock, TokenVerifier};

use crate::error::ConfigError;
use crate::kind::{
    AudienceRule, Identity, Sandbox, SessionBinding, TokenKind, TokenMeta, Verified,
};
use crate::replay::ReplayGuard;
use crate::verify_cache::{Entry, VerifiedCache};
use crate::{DEFAULT_IDENTITY_AUDIENCE, DEFAULT_ISSUER, MAX_LIFETIME, sandbox_audience};

/// The longest `jti` accepted (the minter's are 22 characters).
const MAX_JTI_BYTES: usize = 128;

/// What a verifier accepts: built with [`VerifierConfig::new`] (the defaults) and the setters
/// below, checked when the verifier is built.
///
/// | setting | default |
/// |---|---|
/// | [`issuer`](Self::issuer) | [`DEFAULT_ISSUER`] (`agentcube-router`) |
/// | [`identity_audience`](Self::identity_audience) | [`DEFAULT_IDENTITY_AUDIENCE`] (`workloadmanager`) |
/// | [`leeway`](Self::leeway) | [`VerifierConfig::DEFAULT_LEEWAY`] (5 s) |
/// | [`max_lifetime`](Self::max_lifetime) | [`MAX_LIFETIME`] (5 min) |
/// | [`algorithms`](Self::algorithms) | [`VerifierConfig::DEFAULT_ALGORITHMS`] (`EdDSA`, `ES256`, `RS256`) |
/// | [`max_token_bytes`](Self::max_token_bytes) | [`VerifierConfig::DEFAULT_MAX_TOKEN_BYTES`] (8 KiB) |
/// | [`cache_capacity`](Self::cache_capacity) | [`VerifierConfig::DEFAULT_CACHE_CAPACITY`] (10,000 tokens); 0 turns the cache off |
///
/// `iat` and `jti` are always required, and every token must name its key (`kid`).
///
/// ```
/// use std::time::Duration;
/// use agentcube_identity::{IdentityVerifier, KeyRing, VerifierConfig};
///
/// let config = VerifierConfig::new()
///     .identity_audience("workloadmanager-eu")
///     .leeway(Duration::from_secs(2));
/// let verifier = IdentityVerifier::with_config(KeyRing::empty(), config)?;
/// assert!(!verifier.is_ready());
/// # Ok::<(), agentcube_identity::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct VerifierConfig {
    issuer: String,
    identity_audience: String,
    leeway: Duration,
    max_lifetime: Duration,
    algorithms: AlgorithmSet,
    max_token_bytes: usize,
    cache_capacity: u64,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            identity_audience: DEFAULT_IDENTITY_AUDIENCE.to_owned(),
            leeway: Self::DEFAULT_LEEWAY,
            max_lifetime: MAX_LIFETIME,
            algorithms: Self::DEFAULT_ALGORITHMS,
            max_token_bytes: Self::DEFAULT_MAX_TOKEN_BYTES,
            cache_capacity: Self::DEFAULT_CACHE_CAPACITY,
        }
    }
}

impl VerifierConfig {
    /// The default clock-skew leeway: 5 s. The Router and its receivers run in one cluster
    /// with synchronised clocks, so this is much smaller than what an external identity
    /// provider needs.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

    /// The default algorithm allowlist: `EdDSA` (what the minter's generated keys use),
    /// `ES256`, and `RS256` (existing RSA keys). The key found by `kid` must also be for the
    /// token's algorithm, and every key this crate produces or loads is pinned to one.
    pub const DEFAULT_ALGORITHMS: AlgorithmSet = AlgorithmSet::only(Algorithm::EdDSA)
        .with(Algorithm::ES256)
        .with(Algorithm::RS256);

    /// The default size limit of a token, checked before anything is decoded: 8 KiB.
    pub const DEFAULT_MAX_TOKEN_BYTES: usize = DEFAULT_MAX_TOKEN_BYTES;

    /// The default number of verified tokens a verifier remembers: 10,000.
    pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;

    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// The exact `iss` (no normalisation). Must not be empty.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// The exact `aud` of identity tokens. Must not be empty. Sandbox tokens are bound to
    /// `sandbox:<session id>` instead (see [`SessionBinding`]).
    pub fn identity_audience(mut self, audience: impl Into<String>) -> Self {
        self.identity_audience = audience.into();
        self
    }

    /// The clock-skew leeway for `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest accepted `exp - iat`: at least 1 s.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// The algorithm allowlist: not empty. `none` and HMAC cannot be named.
    pub fn algorithms(mut self, algorithms: AlgorithmSet) -> Self {
        self.algorithms = algorithms;
        self
    }

    /// The longest token accepted, checked before decoding: not zero.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// How many verified tokens to remember, so that a token seen again (the Router reuses a
    /// minted token until shortly before it expires) costs a lookup instead of a signature
    /// check; `0` turns the cache off (every token is verified in full). See
    /// [`InternalVerifier`] for what a hit re-checks.
    pub fn cache_capacity(mut self, tokens: u64) -> Self {
        self.cache_capacity = tokens;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.identity_audience.is_empty() {
            return Err(ConfigError::EmptyAudience);
        }
        if self.max_lifetime.as_secs() == 0 {
            return Err(ConfigError::LifetimeTooShort);
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::ZeroTokenLimit);
        }
        Ok(())
    }
}

/// Verifies internal tokens of kind `T`, failing closed. Use the aliases
/// [`IdentityVerifier`] (the workload manager's side) and [`SandboxVerifier`] (a sandbox's).
///
/// Generic over the [`KeySource`]: a [`KeyRing`](crate::KeyRing) (in-process, or from the
/// Router's `public.pem` via [`KeyRing::from_public_pem`](crate::KeyRing::from_public_pem)), a
/// static [`KeySet`](agentcube_auth_core::jose::KeySet), or a remote JWKS store such as
/// `agentcube-oidc`'s, pointed at the Router's JWKS endpoint.
///
/// Checks, cheapest first: size and framing; `alg` in the allowlist; header `typ` exactly the
/// kind's ([`TokenKind::TYPE`]); no `crit`; a `kid`; the key for `kid` and `alg` (unknown →
/// `unknown_kid`; none loaded → `keys_unavailable`, 503); the signature; `iss` exactly; `aud`
/// a single string accepted by the kind's audience rule; `exp` and `iat` required, with leeway
/// and the lifetime cap; a `jti`; the kind's claims (identity: a non-empty `sub`; sandbox: a
/// `session_id` equal to the audience's session and a non-empty `user_sub`); then, if enabled,
/// the replay guard.
///
/// **Verified-token cache** (on by default, [`VerifierConfig::cache_capacity`]): a token that
/// passed every check is remembered under a keyed hash of the token (the cache holds no
/// token), until its `exp` at the latest. Seen again, it costs one hash, one lookup and one
/// key lookup instead of a signature check ([`Verified::from_cache`] says which happened). On
/// every hit the verifier re-checks, with its clock and leeway, that the token is inside its
/// validity window (the rule it applied when it accepted the token), and asks the key source
/// for the key of the token's `kid` and algorithm again: if the key was removed (or the `kid`
/// now names other key material) the entry is dropped and the token verified in full, which
/// answers `unknown_kid` (or `invalid_signature`). Every other rule is fixed when the verifier
/// is built, so a token that passed it once passes it again, and each verifier owns its cache:
/// an entry is only ever served by the verifier that accepted the token, so a sandbox verifier
/// bound to session B never answers from the entries of one bound to session A. With a replay
/// guard, the guard still sees every use: it runs after the cache, on hits too, so a second use
/// is `token_replayed` whether or not the token was cached (a replayed token then costs a
/// lookup, not a signature check).
///
/// Every failure is an [`AuthError`]: `keys_unavailable` and `replay_guard_full` answer 503
/// (the verifier cannot decide now), everything else 401. A verifier is also a
/// [`TokenVerifier`], so auth-core's `AuthLayer` runs it in front of a service: give it
/// `TokenLocation::header(IDENTITY_HEADER)` for identity tokens, the default
/// `Authorization: Bearer` for sandbox tokens; a missing header is then
/// `missing_authorization` (401).
pub struct InternalVerifier<K, T> {
    keys: K,
    config: VerifierConfig,
    policy: JwsPolicy,
    rules: TimeRules,
    audience: AudienceRule,
    clock: Arc<dyn Clock>,
    replay: Option<Arc<ReplayGuard>>,
    cache: Option<VerifiedCache<T>>,
    kind: PhantomData<fn() -> T>,
}

/// Verifies identity tokens (the workload manager's side): `aud` exactly the configured
/// identity audience.
///
/// ```
/// # use std::sync::Arc;
/// # use agentcube_auth_core::Principal;
/// use agentcube_identity::{IdentityVerifier, KeyRing, TokenMinter};
///
/// let ring = Arc::new(KeyRing::generate()?);
/// let minter = TokenMinter::new(Arc::clone(&ring));
/// let verifier = IdentityVerifier::new(ring);
/// let token = minter.identity_token(&Principal::builder("https://kc", "alice-id").build())?;
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let caller = verifier.verify(token.as_str()).await?;
/// assert_eq!(caller.subject(), "alice-id");
/// # Ok::<(), agentcube_auth_core::AuthError>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type IdentityVerifier<K> = InternalVerifier<K, Identity>;

/// Verifies sandbox tokens (a sandbox agent's side), bound by a [`SessionBinding`]: a token for
/// another session is `audience_mismatch`.
pub type SandboxVerifier<K> = InternalVerifier<K, Sandbox>;

impl<K: KeySource> InternalVerifier<K, Identity> {
    /// A verifier with the default [`VerifierConfig`] and the system clock.
    pub fn new(keys: K) -> Self {
        Self::build(
            keys,
            VerifierConfig::default(),
            AudienceRule::Exact(Box::from(DEFAULT_IDENTITY_AUDIENCE)),
        )
    }

    /// A verifier with `config`.
    ///
    /// # Errors
    /// [`ConfigError`] for a configuration that cannot work (see [`VerifierConfig`]).
    pub fn with_config(keys: K, config: VerifierConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let audience = AudienceRule::Exact(Box::from(config.identity_audience.as_str()));
        Ok(Self::build(keys, config, audience))
    }
}

impl<K: KeySource> InternalVerifier<K, Sandbox> {
    /// A verifier for the sessions `binding` names, with the default [`VerifierConfig`].
    ///
    /// # Errors
    /// [`ConfigError::InvalidSessionId`] for a [`SessionBinding::Session`] whose id is empty
    /// or longer than [`MAX_SESSION_ID_BYTES`](crate::MAX_SESSION_ID_BYTES).
    pub fn new(keys: K, binding: SessionBinding) -> Result<Self, ConfigError> {
        Self::with_config(keys, binding, VerifierConfig::default())
    }

    /// A verifier for the sessions `binding` names, with `config` (whose identity audience is
    /// not used).
    ///
    /// # Errors
    /// As [`SandboxVerifier::new`], and [`ConfigError`] for a configuration that cannot work.
    pub fn with_config(
        keys: K,
        binding: SessionBinding,
        config: VerifierConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let audience = match binding {
            SessionBinding::Session(id) if crate::valid_session_id(&id) => {
                // Precomputed: a request compares, it never formats.
                AudienceRule::Exact(sandbox_audience(&id).into_boxed_str())
            }
            SessionBinding::Session(_) => return Err(ConfigError::InvalidSessionId),
            SessionBinding::AnySession => AudienceRule::AnySandbox,
        };
        Ok(Self::build(keys, config, audience))
    }
}

impl<K: KeySource, T: TokenKind> InternalVerifier<K, T> {
    /// A verifier with a `config` known to be valid.
    fn build(keys: K, config: VerifierConfig, audience: AudienceRule) -> Self {
        let policy = JwsPolicy {
            max_token_bytes: config.max_token_bytes,
            algorithms: config.algorithms,
            types: TypePolicy::exactly(T::TYPE),
        };
        let rules = TimeRules {
            leeway: config.leeway,
            max_lifetime: Some(config.max_lifetime),
            require_iat: true,
        };
        // An entry never outlives its token, whose lifetime is capped.
        let cache = VerifiedCache::new(config.cache_capacity, config.max_lifetime);
        Self {
            keys,
            config,
            policy,
            rules,
            audience,
            clock: Arc::new(SystemClock),
            replay: None,
            cache,
            kind: PhantomData,
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Rejects a second use of the same token (see [`ReplayGuard`] for when this fits).
    #[must_use]
    pub fn with_replay_guard(mut self, guard: Arc<ReplayGuard>) -> Self {
        self.replay = Some(guard);
        self
    }

    /// The key source.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Whether the key source has keys (report it on the readiness endpoint).
    pub fn is_ready(&self) -> bool {
        self.keys.is_ready()
    }

    /// The number of tokens in the verified-token cache (for metrics; 0 when the cache is
    /// off). Settles the cache's pending evictions first.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.as_ref().map_or(0, VerifiedCache::len)
    }

    /// Verifies a bare token (the header value, without any `Bearer ` prefix): a
    /// [`VerifiedIdentity`](crate::VerifiedIdentity) for an [`IdentityVerifier`], a
    /// [`VerifiedSandbox`](crate::VerifiedSandbox) for a [`SandboxVerifier`].
    ///
    /// To read the token out of a header without an HTTP stack, use
    /// `agentcube_auth_core::bearer::header_token` (identity header) or
    /// `agentcube_auth_core::bearer::bearer_token` (`Authorization`): they answer a missing or
    /// malformed header with the same codes as the `AuthLayer`.
    ///
    /// # Errors
    /// [`AuthError::KeysUnavailable`] (503) when the key source has no keys; with a replay
    /// guard, `token_replayed` (401) or [`AuthError::ReplayGuardFull`] (503); otherwise the
    /// [`AuthError`] (401) of the first check that failed.
    pub async fn verify(&self, token: &str) -> Result<Verified<T>, AuthError> {
        let result = self.verify_uncounted(token).await;
        // Counted once per call, cache hits and replays included (feature `metrics`).
        crate::metrics::verification(crate::metrics::kind_label::<T>(), &result);
        result
    }

    /// [`verify`](Self::verify) without the metrics.
    async fn verify_uncounted(&self, token: &str) -> Result<Verified<T>, AuthError> {
        // One reading of the clock for every time rule of this verification.
        let now = self.clock.now_unix();
        let (verified, fresh) = match &self.cache {
            // An oversized token is never hashed: the full path refuses it first.
            Some(cache) if token.len() <= self.policy.max_token_bytes => {
                let digest = Digest::of_token(token);
                match self.cached(cache, &digest, now).await {
                    Some(hit) => (hit, None),
                    None => {
                        let (verified, validity, key) = self.verify_signed(token, now).await?;
                        (verified, Some((digest, validity, key)))
                    }
                }
            }
            _ => (self.verify_signed(token, now).await?.0, None),
        };
        // The last step, after every other check passed, on cache hits too: the guard sees
        // every use, and only valid tokens are remembered.
        if let Some(guard) = &self.replay {
            let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
            let forget_after = verified.expires_at().saturating_add(leeway);
            guard.check_and_record(verified.jwt_id(), forget_after, now)?;
        }
        if let (Some(cache), Some((digest, validity, key))) = (&self.cache, fresh) {
            cache.insert(
                digest,
                now,
                validity,
                Entry {
                    verified: verified.clone(),
                    key,
                },
            );
        }
        Ok(verified)
    }

    /// The cached answer for the token whose digest is `digest`, if there is one that may
    /// still be served at `now`: inside its validity window, and its key still the one the
    /// key source returns for its `kid` and algorithm. An entry that may not is dropped.
    async fn cached(
        &self,
        cache: &VerifiedCache<T>,
        digest: &Digest,
        now: i64,
    ) -> Option<Verified<T>> {
        let hit = cache.get(digest)?;
        let entry = hit.value();
        let servable = hit.is_current(now, self.config.leeway)
            && self
                .keys
                .key_for(Some(entry.verified.kid()), entry.verified.algorithm())
                .await
                .is_ok_and(|key| entry.verified_by(&key));
        if servable {
            Some(entry.verified.served_from_cache())
        } else {
            // Expired, or its key left the source: the full path gives the precise error.
            cache.remove(digest);
            None
        }
    }

    /// Every check but the replay guard, with the signature: the verified token, its validity
    /// window and the key that verified it.
    async fn verify_signed(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Verified<T>, Validity, Arc<VerificationKey>), AuthError> {
        // Framing and header first: nothing that fails them reaches the key source.
        let jws = UnverifiedJws::parse(token, &self.policy)?;
        // Every internal token names its key; a token without `kid` is not one of ours.
        let kid = jws.header().kid.clone().ok_or(AuthError::UnknownKid)?;
        let algorithm = jws.header().alg;
        let key = self.keys.key_for(Some(&kid), algorithm).await?;
        let (_header, claims) = jws.verify(&key)?;
        jose::check_issuer(&claims, &self.config.issuer)?;
        let audience = self.audience.check(&claims)?;
        let validity = jose::check_times(&claims, now, &self.rules)?;
        // `require_iat` made `check_times` refuse a token without one.
        let issued_at = validity
            .issued_at
            .ok_or(AuthError::MissingClaim(Cow::Borrowed("iat")))?;
        let jwt_id = match claims.jwt_id()? {
            Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => Box::from(jti),
            Some(_) => return Err(AuthError::InvalidClaim(Cow::Borrowed("jti"))),
            None => return Err(AuthError::MissingClaim(Cow::Borrowed("jti"))),
        };
        let kind = T::read(&claims, audience, &self.config.issuer)?;
        let verified = Verified::new(
            kind,
            TokenMeta {
                kid,
                algorithm,
                issued_at,
                expires_at: validity.expires_at,
                jwt_id,
                claims,
            },
        );
        Ok((verified, validity, key))
    }
}

/// The verified caller as a [`Principal`] (see [`Verified::to_principal`]), so one `AuthLayer`
/// or extractor serves the workload manager and the sandbox as it serves the Router.
impl<K: KeySource, T: TokenKind> TokenVerifier for InternalVerifier<K, T> {
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send {
        let verified = InternalVerifier::verify(self, token);
        async move { Ok(verified.await?.to_principal()) }
    }

    fn is_ready(&self) -> bool {
        self.keys.is_ready()
    }
}

impl<K, T: TokenKind> fmt::Debug for InternalVerifier<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalVerifier")
            .field("typ", &T::TYPE)
            .field("audience", &self.audience)
            .field("config", &self.config)
            .field("replay_guard", &self.replay.is_some())
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyRing, TokenMinter};
    use agentcube_auth_core::ManualClock;

    const NOW: i64 = 1_800_000_000;

    /// What the cache saves is the signature check: an entry planted under a token whose
    /// signature is garbage is served as it is (the entry was made by a full verification of
    /// the genuine token, which is the only way entries are made).
    #[tokio::test]
    async fn a_hit_is_answered_without_a_signature_check() {
        let ring = Arc::new(KeyRing::generate().unwrap());
        let clock = ManualClock::new(NOW);
        let minter = TokenMinter::new(Arc::clone(&ring)).with_clock(clock.clone());
        let verifier = IdentityVerifier::new(ring).with_clock(clock);
        let token = minter
            .identity_token(&Principal::builder("https://kc", "alice-id").build())
            .unwrap();
        verifier.verify(token.as_str()).await.unwrap();
        let (input, _) = token.as_str().rsplit_once('.').unwrap();
        let forged = format!("{input}.{}", "A".repeat(86));
        assert_eq!(
            verifier.verify(&forged).await.unwrap_err(),
            AuthError::InvalidSignature
        );
        let cache = verifier.cache.as_ref().unwrap();
        let hit = cache.get(&Digest::of_token(token.as_str())).unwrap();
        cache.insert(
            Digest::of_token(&forged),
            NOW,
            *hit.validity(),
            Entry {
                verified: hit.value().verified.clone(),
                key: Arc::clone(&hit.value().key),
            },
        );
        let served = verifier.verify(&forged).await.unwrap();
        assert!(served.from_cache());
        assert_eq!(served.subject(), "alice-id");
    }
}

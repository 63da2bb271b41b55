//! The access-token verifier: every check, cheapest first, against one issuer.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use agentcube_auth_core::digest::Digest;
// The two kinds of key source, named for what they are here.
use agentcube_auth_core::jose::EitherKeySource::{Left as Remote, Right as Static};
use agentcube_auth_core::jose::{
    self, Algorithm, EitherKeySource, JwsHeader, JwsPolicy, KeySet, KeySource, TimeRules,
    UnverifiedJws, Validity, VerificationKey,
};
use agentcube_auth_core::{
    AuthError, ClaimMapper, Claims, Clock, Principal, RevocationProbe, RevocationSet,
    TokenVerifier, TypeLocation, Untrusted,
};

use crate::cache::{Entry, TokenCache, token_cache};
use crate::config::{ConfigError, KeysConfig, OidcConfig};
use crate::key_store::{FetchError, RefreshOutcome, RemoteKeySet};
use crate::metrics::{IssuerMetrics, KeyStoreMetrics, Started};
use crate::stats::{Counter, KeyStoreStats, RejectionCounters, VerifierStats};

/// A verified token with the details an operator may want (the `verify-token` tool prints them).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedToken {
    /// The caller.
    pub principal: Principal,
    /// The signing algorithm.
    pub algorithm: Algorithm,
    /// The header `kid`, if any.
    pub kid: Option<Box<str>>,
    /// The RFC 7638 thumbprint of the key that verified the signature.
    pub key_thumbprint: Arc<str>,
    /// `exp`.
    pub expires_at: i64,
    /// `iat`, if present.
    pub issued_at: Option<i64>,
    /// Whether the answer came from the verified-token cache.
    pub from_cache: bool,
    /// What a revocation check needs (kept with the cached entry), when revocations are
    /// configured.
    pub(crate) revocation: Option<RevocationProbe>,
}

/// Verifies access tokens of one OIDC issuer (Keycloak by default).
///
/// Steps, cheapest first; nothing before step 3 touches the network:
///
/// 0. size limit, then the verified-token cache (one keyed hash, one lookup);
/// 1. framing: three unpadded base64url segments, JSON objects without duplicate members,
///    no JWE;
/// 2. header: `alg` in the allowlist, `typ` accepted, no `crit`; `jku`/`x5u`/`jwk`/`x5c`
///    ignored;
/// 3. key by `kid` from the issuer's key set ([`RemoteKeySet`]), bound to the key's type;
/// 4. signature over the received bytes;
/// 5. claims: `iss` exact, `aud`, `exp`/`nbf`/`iat` with leeway (and lifetime cap), `sub`,
///    payload `typ`, `azp` allowlist, required claims;
/// 6. the [`ClaimMapper`] builds the [`Principal`].
///
/// Cloning is cheap and shares everything (keys, cache, counters).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use agentcube_oidc::{OidcConfig, OidcVerifier};
///
/// let verifier = OidcVerifier::new(OidcConfig::new("https://keycloak.example/realms/agentcube"))?;
/// verifier.spawn_background_refresh(); // keeps keys fresh; the first fetch starts now
/// let principal = verifier.verify("eyJ...").await?;
/// println!("{} {:?}", principal.subject(), principal.roles());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: Box<str>,
    audiences: Box<[String]>,
    policy: JwsPolicy,
    time_rules: TimeRules,
    payload_type: Option<Box<str>>,
    allowed_azp: Option<Box<[String]>>,
    required_claims: Box<[String]>,
    mapper: Arc<dyn ClaimMapper>,
    clock: Arc<dyn Clock>,
    keys: Keys,
    cache: Option<TokenCache>,
    revocations: Option<Arc<dyn RevocationSet>>,
    accepted: Counter,
    cache_hits: Counter,
    cache_misses: Counter,
    rejections: RejectionCounters,
    /// The facade's handles (nothing without the feature `metrics`).
    metrics: IssuerMetrics,
}

/// The issuer's keys: fetched and refreshed, or fixed at start-up.
type Keys = EitherKeySource<RemoteKeySet, KeySet>;

/// Whether the key that verified a cached token is still trusted.
fn trusts(keys: &Keys, thumbprint: &str) -> bool {
    match keys {
        Remote(remote) => remote.trusts(thumbprint),
        Static(set) => set.contains_thumbprint(thumbprint),
    }
}

/// What the internal pipeline produced.
enum Verified {
    Cached(Arc<Entry>),
    Fresh(VerifiedToken),
}

impl Verified {
    fn into_principal(self) -> Principal {
        match self {
            Self::Cached(entry) => entry.value().principal.clone(),
            Self::Fresh(token) => token.principal,
        }
    }

    fn into_details(self) -> VerifiedToken {
        match self {
            Self::Cached(entry) => VerifiedToken {
                from_cache: true,
                ..entry.value().clone()
            },
            Self::Fresh(token) => token,
        }
    }
}

impl OidcVerifier {
    /// Builds a verifier. No network access happens here: with remote keys the verifier starts
    /// not ready and answers `keys_unavailable` until the first fetch succeeds (the first
    /// verification triggers it, or call [`spawn_background_refresh`](Self::spawn_background_refresh)
    /// or [`refresh_keys`](Self::refresh_keys) at start-up).
    ///
    /// # Errors
    /// [`ConfigError`] for a configuration that cannot work (invalid issuer or URLs, no audience,
    /// no algorithm, an empty `azp` allowlist) or an HTTP client that cannot be built.
    pub fn new(config: OidcConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let keys = match &config.keys {
            KeysConfig::Static(set) => {
                KeyStoreMetrics::new(&config.issuer).ready(!set.is_empty());
                Static(set.clone())
            }
            KeysConfig::Jwks(url) => Remote(RemoteKeySet::from_jwks_url_of(
                &config.issuer,
                url,
                config.key_store.clone(),
            )?),
            KeysConfig::Discovery(None) => Remote(RemoteKeySet::from_issuer(
                &config.issuer,
                config.key_store.clone(),
            )?),
            KeysConfig::Discovery(Some(url)) => Remote(RemoteKeySet::from_discovery_url(
                &config.issuer,
                url,
                config.key_store.clone(),
            )?),
        };
        let policy = JwsPolicy {
            max_token_bytes: config.max_token_bytes,
            algorithms: config.algorithms,
            types: config.header_types.clone(),
        };
        let time_rules = TimeRules {
            leeway: config.leeway,
            max_lifetime: config.max_lifetime,
            require_iat: config.require_iat,
        };
        let cache = token_cache(&config.cache);
        let metrics = IssuerMetrics::new(&config.issuer);
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: config.issuer.into_boxed_str(),
                audiences: config.audiences.into_boxed_slice(),
                policy,
                time_rules,
                payload_type: config.payload_type.map(String::into_boxed_str),
                allowed_azp: config.allowed_azp.map(Vec::into_boxed_slice),
                required_claims: config.required_claims.into_boxed_slice(),
                mapper: config.mapper,
                clock: config.clock,
                keys,
                cache,
                revocations: config.revocations,
                accepted: Counter::default(),
                cache_hits: Counter::default(),
                cache_misses: Counter::default(),
                rejections: RejectionCounters::default(),
                metrics,
            }),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The longest token this verifier accepts.
    pub fn max_token_bytes(&self) -> usize {
        self.inner.policy.max_token_bytes
    }

    /// Verifies `token` (without the `Bearer ` prefix) and returns the caller.
    ///
    /// # Errors
    /// An [`AuthError`] whose [`code`](AuthError::code) says which rule failed;
    /// `keys_unavailable` (HTTP 503) while the issuer's keys cannot be had.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.run(token, Route::Direct)
            .await
            .map(Verified::into_principal)
    }

    /// Like [`verify`](Self::verify), with the algorithm, key and validity that were used.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub async fn verify_with_details(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        self.run(token, Route::Direct)
            .await
            .map(Verified::into_details)
    }

    /// Whether the verifier has usable keys (for a readiness endpoint).
    pub fn is_ready(&self) -> bool {
        self.inner.keys.is_ready()
    }

    /// Fetches the issuer's keys now (ignoring the cooldown). Useful at start-up to fail fast
    /// or log a clear error; the verifier works without it.
    ///
    /// # Errors
    /// The [`FetchError`]; with static keys this always succeeds with `NotModified`.
    pub async fn refresh_keys(&self) -> Result<RefreshOutcome, FetchError> {
        match &self.inner.keys {
            Remote(remote) => remote.refresh_now().await,
            Static(_) => Ok(RefreshOutcome::NotModified),
        }
    }

    /// Spawns the key store's background refresh on the current tokio runtime (see
    /// [`RemoteKeySet::background_refresh`]); `None` with static keys. The task ends when the
    /// last clone of the verifier is dropped.
    ///
    /// # Panics
    /// When called outside a tokio runtime with remote keys.
    pub fn spawn_background_refresh(&self) -> Option<tokio::task::JoinHandle<()>> {
        match &self.inner.keys {
            Remote(remote) => Some(remote.spawn_background_refresh()),
            Static(_) => None,
        }
    }

    /// The remote key store, if the keys are remote.
    pub fn key_store(&self) -> Option<&RemoteKeySet> {
        match &self.inner.keys {
            Remote(remote) => Some(remote),
            Static(_) => None,
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> VerifierStats {
        let inner = &self.inner;
        let keys = match &inner.keys {
            Remote(remote) => remote.stats(),
            Static(set) => KeyStoreStats {
                keys: set.len(),
                ready: !set.is_empty(),
                ..KeyStoreStats::default()
            },
        };
        VerifierStats {
            issuer: inner.issuer.to_string(),
            accepted: inner.accepted.get(),
            cache_hits: inner.cache_hits.get(),
            cache_misses: inner.cache_misses.get(),
            cache_entries: inner.cache.as_ref().map_or(0, TokenCache::len),
            rejections: inner.rejections.snapshot(),
            keys,
        }
    }

    /// The revocation set, if configured.
    pub fn revocations(&self) -> Option<&Arc<dyn RevocationSet>> {
        self.inner.revocations.as_ref()
    }

    /// The cache lookup of a multi-issuer verifier: a servable entry counts as a hit here (a
    /// revoked one is answered `token_revoked` at once); absence is not counted (the routed
    /// verifier counts the miss).
    pub(crate) fn cached_principal(&self, key: &Digest) -> Option<Result<Principal, AuthError>> {
        let hit = self.cache_hit(key)?;
        self.inner.cache_hits.incr();
        match &hit {
            Ok(_) => self.inner.accepted.incr(),
            Err(err) => self.record_rejection(err),
        }
        Some(hit.map(|entry| entry.value().principal.clone()))
    }

    pub(crate) fn has_cache(&self) -> bool {
        self.inner.cache.is_some()
    }

    /// The issuer's key for `kid`/`alg`, as this verifier finds it (a back-channel logout
    /// token is signed with the same keys as the access tokens).
    pub(crate) async fn issuer_key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, AuthError> {
        self.inner.keys.key_for(kid, alg).await
    }

    /// The algorithm allowlist, the leeway and the clock (shared with the back-channel logout
    /// receiver).
    pub(crate) fn rules(&self) -> (jose::AlgorithmSet, std::time::Duration, &Arc<dyn Clock>) {
        (
            self.inner.policy.algorithms,
            self.inner.time_rules.leeway,
            &self.inner.clock,
        )
    }

    /// Verification after a multi-issuer verifier found no cache entry.
    pub(crate) async fn verify_routed(
        &self,
        token: &str,
        key: Option<Digest>,
    ) -> Result<Principal, AuthError> {
        self.run(token, Route::Routed(key))
            .await
            .map(Verified::into_principal)
    }

    pub(crate) fn record_rejection(&self, err: &AuthError) {
        self.inner.rejections.record(err.code());
    }

    /// A cache hit: the entry, or `token_revoked` when a revocation covers it (the entry stays:
    /// the next request with that token is refused as cheaply).
    fn cache_hit(&self, key: &Digest) -> Option<Result<Arc<Entry>, AuthError>> {
        let entry = self.servable(key)?;
        Some(self.check_revoked(entry.value()).map(|()| entry))
    }

    /// The revocation check of a verified token.
    fn check_revoked(&self, token: &VerifiedToken) -> Result<(), AuthError> {
        match (&self.inner.revocations, &token.revocation) {
            (Some(set), Some(probe)) => set.check(probe),
            _ => Ok(()),
        }
    }

    fn servable(&self, key: &Digest) -> Option<Arc<Entry>> {
        let cache = self.inner.cache.as_ref()?;
        let entry = cache.get(key)?;
        let now = self.inner.clock.now_unix();
        if entry.is_current(now, self.inner.time_rules.leeway)
            && trusts(&self.inner.keys, &entry.value().key_thumbprint)
        {
            Some(entry)
        } else {
            // Expired, or its key left the set (or the set became unusable): verify in full,
            // which gives the precise error.
            cache.remove(key);
            None
        }
    }

    async fn run(&self, token: &str, route: Route) -> Result<Verified, AuthError> {
        let started = Started::now();
        let result = self.pipeline(token, route).await;
        match &result {
            Ok(_) => self.inner.accepted.incr(),
            Err(err) => self.record_rejection(err),
        }
        self.inner
            .metrics
            .verification(result.as_ref().map(drop).map_err(AuthError::code), started);
        result
    }

    /// The metrics of a multi-issuer verifier's cache hit on this verifier (its counters are
    /// kept by [`cached_principal`](Self::cached_principal)).
    pub(crate) fn observe_cached(&self, result: &Result<Principal, AuthError>, started: Started) {
        self.inner.metrics.cache_hit();
        self.inner
            .metrics
            .verification(result.as_ref().map(drop).map_err(AuthError::code), started);
    }

    async fn pipeline(&self, token: &str, route: Route) -> Result<Verified, AuthError> {
        let inner = &*self.inner;
        // The size limit comes first: an oversized token is never hashed or decoded.
        if token.len() > inner.policy.max_token_bytes {
            let err = AuthError::TokenTooLarge {
                size: token.len(),
                limit: inner.policy.max_token_bytes,
            };
            tracing::debug!(issuer = %inner.issuer, code = %err.code(), "token rejected");
            return Err(err);
        }
        let key = match (&inner.cache, route) {
            (None, _) => None,
            (Some(_), Route::Routed(key)) => {
                inner.cache_misses.incr();
                inner.metrics.cache_miss();
                key
            }
            (Some(_), Route::Direct) => {
                let key = Digest::of_token(token);
                if let Some(hit) = self.cache_hit(&key) {
                    inner.cache_hits.incr();
                    inner.metrics.cache_hit();
                    return hit.map(Verified::Cached);
                }
                inner.cache_misses.incr();
                inner.metrics.cache_miss();
                Some(key)
            }
        };
        let verified = self.verify_uncached(token).await?;
        if let (Some(cache), Some(key)) = (&inner.cache, key) {
            cache.insert(
                key,
                inner.clock.now_unix(),
                verified.validity,
                verified.token.clone(),
            );
        }
        Ok(Verified::Fresh(verified.token))
    }

    async fn verify_uncached(&self, token: &str) -> Result<Fresh, AuthError> {
        let inner = &*self.inner;
        let rejected = |kid: Option<&str>, alg: Option<Algorithm>, err: &AuthError| {
            tracing::debug!(
                issuer = %inner.issuer,
                kid = kid.unwrap_or(""),
                alg = alg.map_or("", Algorithm::as_str),
                code = %err.code(),
                "token rejected"
            );
        };
        // Steps 1-2: framing and header. Pure computation, no key lookup.
        let jws = UnverifiedJws::parse(token, &inner.policy)
            .inspect_err(|err| rejected(None, None, err))?;
        let alg = jws.header().alg;
        // Step 3: the key, by kid, bound to the algorithm's key type.
        let key = inner
            .keys
            .key_for(jws.header().kid.as_deref(), alg)
            .await
            .inspect_err(|err| rejected(jws.header().kid.as_deref(), Some(alg), err))?;
        // Step 4: the signature over the received bytes. The header (consumed here) is only
        // returned on success; a key found for a `kid` carries that `kid`.
        let (header, claims) = jws
            .verify(&key)
            .inspect_err(|err| rejected(key.kid(), Some(alg), err))?;
        self.check_and_map(header, claims, &key)
            .inspect_err(|err| rejected(key.kid(), Some(alg), err))
    }

    /// Steps 5 and 6 on a token whose signature verified with `key`.
    fn check_and_map(
        &self,
        header: JwsHeader,
        claims: Claims,
        key: &VerificationKey,
    ) -> Result<Fresh, AuthError> {
        let inner = &*self.inner;
        // Step 5: claims.
        let now = inner.clock.now_unix();
        let validity = self.check_claims(&claims, now)?;
        // Revocation: the token is genuine and current; was it taken back since it was issued?
        let revocation = match &inner.revocations {
            Some(set) => {
                let probe = RevocationProbe::from_claims(&inner.issuer, &claims)?;
                set.check(&probe)?;
                Some(probe)
            }
            None => None,
        };
        // Step 6: mapping.
        let principal = inner.mapper.map(claims)?;
        tracing::trace!(issuer = %inner.issuer, kid = header.kid.as_deref().unwrap_or(""), "token verified");
        Ok(Fresh {
            token: VerifiedToken {
                principal,
                algorithm: header.alg,
                kid: header.kid,
                key_thumbprint: key.shared_thumbprint(),
                expires_at: validity.expires_at,
                issued_at: validity.issued_at,
                from_cache: false,
                revocation,
            },
            validity,
        })
    }

    /// Step 5, in its order: `iss`, `aud`, `exp`/`nbf`/`iat` (with the lifetime
    /// cap), `sub`, payload `typ`, `azp`, then the configured required claims.
    fn check_claims(&self, claims: &Claims, now: i64) -> Result<Validity, AuthError> {
        let inner = &*self.inner;
        jose::check_issuer(claims, &inner.issuer)?;
        jose::check_audience(claims, &inner.audiences)?;
        let validity = jose::check_times(claims, now, &inner.time_rules)?;
        jose::require_subject(claims)?;
        if let Some(expected) = &inner.payload_type
            && let Some(typ) = claims.string("typ")?
            && !typ.eq_ignore_ascii_case(expected)
        {
            return Err(AuthError::TokenTypeMismatch {
                location: TypeLocation::Payload,
                found: Untrusted::new(typ),
            });
        }
        if let Some(allowed) = &inner.allowed_azp {
            match claims.authorized_party()? {
                None => return Err(AuthError::MissingClaim(Cow::Borrowed("azp"))),
                Some(azp) if allowed.iter().any(|a| a == azp) => {}
                Some(_) => return Err(AuthError::AzpNotAllowed),
            }
        }
        for name in &*inner.required_claims {
            if !claims.contains(name) {
                return Err(AuthError::MissingClaim(Cow::Owned(name.clone())));
            }
        }
        Ok(validity)
    }
}

/// Where a verification comes from.
#[derive(Clone, Copy)]
enum Route {
    /// A direct call: this verifier hashes the token and looks it up.
    Direct,
    /// A multi-issuer verifier already looked up this key (present when some verifier has a
    /// cache) and found nothing.
    Routed(Option<Digest>),
}

struct Fresh {
    token: VerifiedToken,
    validity: Validity,
}

impl TokenVerifier for OidcVerifier {
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send {
        OidcVerifier::verify(self, token)
    }

    fn is_ready(&self) -> bool {
        OidcVerifier::is_ready(self)
    }
}

impl fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let mut s = f.debug_struct("OidcVerifier");
        s.field("issuer", &inner.issuer)
            .field("audiences", &inner.audiences)
            .field("algorithms", &inner.policy.algorithms);
        match &inner.keys {
            Remote(remote) => s.field("keys", remote),
            Static(set) => s.field("static_keys", &set.len()),
        };
        s.field("cache", &inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

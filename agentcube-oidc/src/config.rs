//! Verifier configuration with secure defaults.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::{
    Algorithm, AlgorithmSet, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, KeySet, TypePolicy,
};
use agentcube_auth_core::{ClaimMapper, Clock, KeycloakClaimMapper, RevocationSet, SystemClock};

use crate::cache::CacheConfig;
use crate::http::HttpUrl;
use crate::key_store::KeyStoreConfig;

/// The payload `typ` a Keycloak access token carries. ID (`ID`), refresh (`Refresh`) and logout
/// (`Logout`) tokens carry others and are rejected.
const KEYCLOAK_ACCESS_TOKEN_TYPE: &str = "Bearer";

/// A configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is empty, not an http(s) URL, or has a query or fragment.
    #[error("issuer must be an http(s) url without query or fragment")]
    InvalidIssuer,
    /// A configured URL is not an http(s) URL.
    #[error("{0} must be an http(s) url")]
    InvalidUrl(&'static str),
    /// No audience is accepted, so no token could ever pass.
    #[error("at least one audience must be accepted")]
    NoAudience,
    /// The algorithm allowlist is empty.
    #[error("at least one signing algorithm must be allowed")]
    NoAlgorithms,
    /// The `azp` allowlist was set but is empty.
    #[error("the azp allowlist is empty")]
    EmptyAzpAllowlist,
    /// The `max_token_bytes` limit is zero.
    #[error("max_token_bytes must be positive")]
    ZeroTokenLimit,
    /// A key-store setting that must be positive is zero (`max_response_bytes`, `max_keys`,
    /// the minimum refresh interval).
    #[error("key store {0} must be positive")]
    ZeroKeyStoreLimit(&'static str),
    /// A multi-issuer verifier was given no verifier, so no token could ever pass.
    #[error("at least one issuer must be configured")]
    NoIssuers,
    /// Two verifiers of a multi-issuer verifier have the same issuer.
    #[error("issuer configured twice")]
    DuplicateIssuer,
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    HttpClient(String),
    /// A back-channel logout receiver was given a verifier without a revocation set, so the
    /// logouts it receives could never refuse a token.
    #[error("the verifier has no revocation set")]
    NoRevocationSet,
}

/// Where the verifier gets its keys.
#[derive(Clone, Debug)]
pub(crate) enum KeysConfig {
    /// Discovery at `{issuer}/.well-known/openid-configuration`, or at this URL.
    Discovery(Option<String>),
    /// A JWKS URL, without discovery.
    Jwks(String),
    /// A fixed key set: no network at all.
    Static(KeySet),
}

/// Configuration of an [`OidcVerifier`](crate::OidcVerifier).
///
/// Only the issuer is required; every other setting has a secure default (see each setter and
/// the [`manual`](crate::manual)):
///
/// | setting | default |
/// |---|---|
/// | audiences | [`OidcConfig::DEFAULT_AUDIENCE`] (`agentcube-api`) |
/// | algorithms | `RS256` only |
/// | leeway | 30 s |
/// | max token size | 8 KiB |
/// | header `typ` | `JWT`, `at+jwt` or absent |
/// | payload `typ` | `Bearer` when present |
/// | `azp` allowlist, lifetime cap, required claims | none |
/// | claim mapper | [`KeycloakClaimMapper`] |
/// | keys | discovery at `{issuer}/.well-known/openid-configuration` |
/// | key store | [`KeyStoreConfig::new`] |
/// | cache | [`CacheConfig::new`]: 10,000 entries, at most 5 min and never past `exp` |
/// | revocations | none |
///
/// Settings that cannot work (see [`ConfigError`]) are refused by
/// [`OidcVerifier::new`](crate::OidcVerifier::new).
///
/// ```
/// use agentcube_oidc::OidcConfig;
/// use agentcube_auth_core::jose::AlgorithmSet;
/// use std::time::Duration;
///
/// let config = OidcConfig::new("https://keycloak.example/realms/agentcube")
///     .algorithms(AlgorithmSet::parse_list("RS256,ES256").unwrap())
///     .leeway(Duration::from_secs(10))
///     .allowed_azp(["agentcube-cli", "agentcube-app"]);
/// ```
#[derive(Clone)]
#[must_use]
pub struct OidcConfig {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) leeway: Duration,
    pub(crate) max_token_bytes: usize,
    pub(crate) header_types: TypePolicy,
    pub(crate) payload_type: Option<String>,
    pub(crate) allowed_azp: Option<Vec<String>>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) require_iat: bool,
    pub(crate) required_claims: Vec<String>,
    pub(crate) mapper: Arc<dyn ClaimMapper>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) keys: KeysConfig,
    pub(crate) key_store: KeyStoreConfig,
    pub(crate) cache: CacheConfig,
    pub(crate) revocations: Option<Arc<dyn RevocationSet>>,
}

impl OidcConfig {
    /// The audience accepted by default: the one Keycloak's audience mapper adds for AgentCube.
    pub const DEFAULT_AUDIENCE: &'static str = "agentcube-api";

    /// A configuration for tokens issued by `issuer` (compared exactly with `iss`: no trailing
    /// slash or case normalisation), with the defaults above.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: vec![Self::DEFAULT_AUDIENCE.to_owned()],
            algorithms: AlgorithmSet::only(Algorithm::RS256),
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            header_types: TypePolicy::access_token(),
            payload_type: Some(KEYCLOAK_ACCESS_TOKEN_TYPE.to_owned()),
            allowed_azp: None,
            max_lifetime: None,
            require_iat: false,
            required_claims: Vec::new(),
            mapper: Arc::new(KeycloakClaimMapper::new()),
            clock: Arc::new(SystemClock),
            keys: KeysConfig::Discovery(None),
            key_store: KeyStoreConfig::default(),
            cache: CacheConfig::default(),
            revocations: None,
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Accepts tokens whose `aud` contains `audience` (replacing the accepted list).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.audiences([audience])
    }

    /// Accepts tokens whose `aud` contains any of `audiences` (replacing the accepted list).
    /// Keycloak's `account` audience is never accepted unless listed here.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// The signing-algorithm allowlist. Default `RS256`. `none` and HMAC cannot be named.
    /// Each algorithm is bound to its key type: an `RS256` token never verifies with an EC key.
    pub fn algorithms(mut self, algorithms: AlgorithmSet) -> Self {
        self.algorithms = algorithms;
        self
    }

    /// Clock-skew tolerance for `exp`, `nbf` and `iat`. Default 30 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest token accepted, checked before any decoding (and before the cache hashes the
    /// token). Default 8 KiB.
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// Accepted JOSE header `typ` values. Default [`TypePolicy::access_token`]: `JWT`,
    /// `at+jwt` or absent.
    pub fn header_types(mut self, types: TypePolicy) -> Self {
        self.header_types = types;
        self
    }

    /// The payload `typ` required when the claim is present (compared case-insensitively).
    /// Default `Some("Bearer")`, which rejects Keycloak ID, refresh and logout tokens with
    /// `token_type_mismatch`. `None` disables the check (for issuers that put other values
    /// there).
    pub fn payload_type(mut self, typ: Option<&str>) -> Self {
        self.payload_type = typ.map(str::to_owned);
        self
    }

    /// Accepts only tokens whose `azp` (authorized party: the OAuth client the token was
    /// issued to) is one of `clients`. A token without `azp` is then rejected with
    /// `missing_claim`, one with another `azp` with `azp_not_allowed`. Default: no allowlist.
    pub fn allowed_azp<I, S>(mut self, clients: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_azp = Some(clients.into_iter().map(Into::into).collect());
        self
    }

    /// Rejects tokens whose `exp - iat` (or `exp - now` without `iat`) exceeds `lifetime`, with
    /// `lifetime_too_long`. Default: no cap.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// Requires `iat`. Default `false` (Keycloak always sends it; other issuers may not).
    pub fn require_iat(mut self, require: bool) -> Self {
        self.require_iat = require;
        self
    }

    /// Claims that must be present and not `null` (`missing_claim` otherwise), checked after the
    /// registered claims. Default: none beyond `iss`, `aud`, `exp` and `sub`.
    pub fn required_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// The claim mapper. Default [`KeycloakClaimMapper`].
    pub fn mapper(mut self, mapper: impl ClaimMapper + 'static) -> Self {
        self.mapper = Arc::new(mapper);
        self
    }

    /// The wall clock for `exp`/`nbf`/`iat` (and for re-checking cache hits). Default
    /// [`SystemClock`]. Key-store timing (cooldowns, refresh) uses tokio time instead, so tests
    /// can pause it.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Fetches the discovery document from `url` instead of
    /// `{issuer}/.well-known/openid-configuration` (for an issuer reachable at another address
    /// than its name). The document's `issuer` must still equal the configured issuer.
    pub fn discovery_url(mut self, url: impl Into<String>) -> Self {
        self.keys = KeysConfig::Discovery(Some(url.into()));
        self
    }

    /// Fetches keys from this JWKS URL directly, without discovery.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.keys = KeysConfig::Jwks(url.into());
        self
    }

    /// Verifies with a fixed key set: no network access at all (tests, benchmarks, air-gapped
    /// deployments with keys from configuration).
    pub fn static_keys(mut self, keys: KeySet) -> Self {
        self.keys = KeysConfig::Static(keys);
        self
    }

    /// Key-store settings (cooldown, refresh intervals, staleness, caps, timeouts).
    pub fn key_store(mut self, config: KeyStoreConfig) -> Self {
        self.key_store = config;
        self
    }

    /// Verified-token cache settings; [`CacheConfig::disabled`] turns it off.
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// Refuses tokens that `revocations` covers with `token_revoked`: on every verification,
    /// verified-token cache hits included (see [`RevocationSet`]). The verifier reads the
    /// token's `sid`, `sub`, `azp` (else `client_id`) and `iat` once, when it verifies it in
    /// full; a cache hit then costs one atomic load while nothing was revoked since the token
    /// was last checked, and a few map lookups otherwise. Share one set between the verifiers
    /// of a service (and, with a shared implementation, between its replicas); a
    /// [`BackchannelLogout`](crate::BackchannelLogout) built from this verifier records
    /// logouts into it. Default: none (no token is ever refused as revoked).
    pub fn revocations(mut self, revocations: Arc<dyn RevocationSet>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let issuer = HttpUrl::parse(&self.issuer).map_err(|_| ConfigError::InvalidIssuer)?;
        if issuer.url().query().is_some() || issuer.url().fragment().is_some() {
            return Err(ConfigError::InvalidIssuer);
        }
        if self.audiences.is_empty() {
            return Err(ConfigError::NoAudience);
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithms);
        }
        if self.allowed_azp.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::EmptyAzpAllowlist);
        }
        if self.max_token_bytes == 0 {
            return Err(ConfigError::ZeroTokenLimit);
        }
        self.key_store.validate()
    }
}

impl fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("max_token_bytes", &self.max_token_bytes)
            .field("header_types", &self.header_types)
            .field("payload_type", &self.payload_type)
            .field("allowed_azp", &self.allowed_azp)
            .field("max_lifetime", &self.max_lifetime)
            .field("require_iat", &self.require_iat)
            .field("required_claims", &self.required_claims)
            .field("clock", &self.clock)
            .field("keys", &self.keys)
            .field("key_store", &self.key_store)
            .field("cache", &self.cache)
            .field("revocations", &self.revocations)
            .finish_non_exhaustive()
    }
}

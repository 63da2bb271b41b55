//! The receiving side: fail-closed verifiers for identity tokens (workload manager) and sandbox
//! tokens (sandbox agent).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::{
    self, Algorithm, AlgorithmSet, DEFAULT_MAX_TOKEN_BYTES, JwsPolicy, KeySource, TimeRules,
    TypePolicy, UnverifiedJws,
};
use agentcube_auth_core::{
    AuthError, Claims, Clock, KeysUnavailableReason, Principal, Role, RoleSet, SystemClock,
};
use serde_json::Value;

use crate::replay::ReplayGuard;
use crate::{
    DEFAULT_IDENTITY_AUDIENCE, DEFAULT_ISSUER, IDENTITY_TOKEN_TYPE, MAX_LIFETIME,
    SANDBOX_TOKEN_TYPE, sandbox_audience,
};

/// Default clock-skew leeway for internal tokens: the Router and its receivers run in one
/// cluster with synchronised clocks, so this is much smaller than the 30 s used for an IdP.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// The algorithms internal tokens may use: EdDSA (the default), ES256 and RS256 (existing
/// keys). The key found by `kid` must also be for the token's algorithm, and every key this
/// crate produces or loads is pinned to exactly one algorithm.
pub const INTERNAL_ALGORITHMS: AlgorithmSet = AlgorithmSet::only(Algorithm::EdDSA)
    .with(Algorithm::ES256)
    .with(Algorithm::RS256);

/// The longest `jti` accepted (the minter's are 22 characters).
const MAX_JTI_BYTES: usize = 128;

/// What a verifier accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// The exact `iss`. Default `agentcube-router`.
    pub issuer: String,
    /// The exact `aud` of identity tokens. Default `workloadmanager`. (Sandbox tokens are bound
    /// to `sandbox:<session id>` instead; see [`sandbox_audience`].)
    pub identity_audience: String,
    /// Clock-skew leeway for `exp` and `iat`. Default 5 s.
    pub leeway: Duration,
    /// The longest accepted `exp - iat`. Default [`MAX_LIFETIME`] (5 min).
    pub max_lifetime: Duration,
    /// The algorithm allowlist. Default [`INTERNAL_ALGORITHMS`].
    pub algorithms: AlgorithmSet,
    /// The longest token accepted, checked before decoding. Default 8 KiB.
    pub max_token_bytes: usize,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            identity_audience: DEFAULT_IDENTITY_AUDIENCE.to_owned(),
            leeway: DEFAULT_LEEWAY,
            max_lifetime: MAX_LIFETIME,
            algorithms: INTERNAL_ALGORITHMS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

/// Why an internal token was not accepted. Three kinds, each with its own HTTP status:
///
/// | variant | status | meaning |
/// |---|---|---|
/// | [`MissingHeader`](Self::MissingHeader) | 401 | no token was sent |
/// | [`KeysUnavailable`](Self::KeysUnavailable), [`ReplayGuardFull`](Self::ReplayGuardFull) | 503 | the verifier cannot decide now |
/// | [`Invalid`](Self::Invalid) | 401 | the token is bad; the [`AuthError`] says why |
///
/// The workload manager must answer these with their status, never create an ownerless
/// resource, and never surface them as a 500.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No token: the header is absent or empty.
    #[error("token header absent")]
    MissingHeader,
    /// The key source has no keys yet (not loaded, or too stale).
    #[error("verification keys are unavailable")]
    KeysUnavailable(KeysUnavailableReason),
    /// The replay guard is full of live tokens and cannot record another.
    #[error("replay guard is full")]
    ReplayGuardFull,
    /// The token is invalid.
    #[error("invalid token: {0}")]
    Invalid(#[source] AuthError),
}

impl From<AuthError> for IdentityError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::KeysUnavailable(reason) => Self::KeysUnavailable(reason),
            other => Self::Invalid(other),
        }
    }
}

impl IdentityError {
    /// A stable snake_case code: `missing_authorization`, `keys_unavailable`,
    /// `replay_guard_full`, or the [`ErrorCode`](agentcube_auth_core::ErrorCode) of the wrapped
    /// [`AuthError`] (`audience_mismatch`, `expired`, `token_replayed`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingHeader => agentcube_auth_core::ErrorCode::MissingAuthorization.as_str(),
            Self::KeysUnavailable(_) => agentcube_auth_core::ErrorCode::KeysUnavailable.as_str(),
            Self::ReplayGuardFull => "replay_guard_full",
            Self::Invalid(e) => e.code().as_str(),
        }
    }

    /// 401 for a missing or invalid token, 503 when the verifier cannot decide.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::MissingHeader | Self::Invalid(_) => 401,
            Self::KeysUnavailable(_) | Self::ReplayGuardFull => 503,
        }
    }

    /// The wrapped [`AuthError`] of an invalid token.
    pub fn auth_error(&self) -> Option<&AuthError> {
        match self {
            Self::Invalid(e) => Some(e),
            _ => None,
        }
    }

    /// The message a caller may see: vague for invalid tokens (the code and the logs say why).
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            Self::Invalid(e) => e.public_message(),
            other => Cow::Owned(other.to_string()),
        }
    }
}

/// Parsing, key lookup, signature and the claims both kinds share.
struct Core<K> {
    keys: K,
    config: VerifierConfig,
    policy: JwsPolicy,
    rules: TimeRules,
    clock: Arc<dyn Clock>,
    replay: Option<Arc<ReplayGuard>>,
}

/// A token that passed [`Core::check`], and when it was checked.
struct Checked {
    token: TokenMeta,
    now: i64,
}

/// What every verified token carries, whatever its kind.
#[derive(Clone)]
struct TokenMeta {
    kid: Box<str>,
    algorithm: Algorithm,
    issued_at: i64,
    expires_at: i64,
    claims: Claims,
}

impl TokenMeta {
    /// The `jti`, which [`Core::check`] made sure is a non-empty string.
    fn jwt_id(&self) -> &str {
        self.claims.jwt_id().ok().flatten().unwrap_or_default()
    }
}

impl<K: KeySource> Core<K> {
    fn new(keys: K, config: VerifierConfig, typ: &'static str) -> Self {
        let policy = JwsPolicy {
            max_token_bytes: config.max_token_bytes,
            algorithms: config.algorithms,
            types: TypePolicy::exactly(typ),
        };
        let rules = TimeRules {
            leeway: config.leeway,
            max_lifetime: Some(config.max_lifetime),
            require_iat: true,
        };
        Self {
            keys,
            config,
            policy,
            rules,
            clock: Arc::new(SystemClock),
            replay: None,
        }
    }

    async fn check(&self, token: &str, audience: &str) -> Result<Checked, IdentityError> {
        // Framing and header first: nothing that fails them reaches the key source.
        let jws = UnverifiedJws::parse(token, &self.policy)?;
        // Every internal token names its key; a token without `kid` is not one of ours.
        let kid: Box<str> = jws.header().kid.clone().ok_or(AuthError::UnknownKid)?;
        let algorithm = jws.header().alg;
        let key = self.keys.key_for(Some(&kid), algorithm).await?;
        let (_header, claims) = jws.verify(&key)?;
        jose::check_issuer(&claims, &self.config.issuer)?;
        jose::check_audience(&claims, &[audience])?;
        // Internal tokens carry exactly one audience.
        if !matches!(claims.audience()?, agentcube_auth_core::Audience::One(_)) {
            return Err(AuthError::AudienceMismatch.into());
        }
        let now = self.clock.now_unix();
        let validity = jose::check_times(&claims, now, &self.rules)?;
        match claims.jwt_id()? {
            Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => {}
            Some(_) => return Err(AuthError::InvalidClaim(Cow::Borrowed("jti")).into()),
            None => return Err(AuthError::MissingClaim(Cow::Borrowed("jti")).into()),
        }
        Ok(Checked {
            token: TokenMeta {
                kid,
                algorithm,
                issued_at: validity.issued_at.unwrap_or_default(),
                expires_at: validity.expires_at,
                claims,
            },
            now,
        })
    }

    /// The last step, after every other check passed.
    fn record(&self, checked: &Checked) -> Result<(), IdentityError> {
        if let Some(guard) = &self.replay {
            let jti = checked.token.jwt_id();
            let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
            let forget_after = checked.token.expires_at.saturating_add(leeway);
            guard.check_and_record(jti, forget_after, checked.now)?;
        }
        Ok(())
    }
}

fn header_token<V: AsRef<[u8]>>(value: Option<&V>) -> Result<&str, IdentityError> {
    let bytes = value.map(AsRef::as_ref).unwrap_or_default();
    let text = std::str::from_utf8(bytes)
        .map_err(|_| AuthError::Malformed(agentcube_auth_core::MalformedReason::Base64))?
        .trim();
    if text.is_empty() {
        return Err(IdentityError::MissingHeader);
    }
    Ok(text)
}

fn bearer_token<V: AsRef<[u8]>>(value: Option<&V>) -> Result<&str, IdentityError> {
    let text = std::str::from_utf8(value.map(AsRef::as_ref).unwrap_or_default())
        .map_err(|_| AuthError::InvalidAuthorizationFormat)?
        .trim();
    if text.is_empty() {
        return Err(IdentityError::MissingHeader);
    }
    let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::InvalidAuthorizationFormat.into());
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err(AuthError::EmptyBearerToken.into());
    }
    if token.contains(char::is_whitespace) {
        return Err(AuthError::InvalidAuthorizationFormat.into());
    }
    Ok(token)
}

fn optional_string(claims: &Claims, name: &'static str) -> Result<Option<Box<str>>, AuthError> {
    Ok(claims.string(name)?.map(Box::from))
}

fn roles_from(claims: &Claims) -> Result<RoleSet, AuthError> {
    let invalid = |name| AuthError::InvalidClaim(Cow::Borrowed(name));
    let mut roles = Vec::new();
    match claims.get("roles") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                roles.push(Role::realm(item.as_str().ok_or_else(|| invalid("roles"))?));
            }
        }
        Some(_) => return Err(invalid("roles")),
    }
    match claims.get("client_roles") {
        None | Some(Value::Null) => {}
        Some(Value::Object(clients)) => {
            for (client, names) in clients {
                let names = names.as_array().ok_or_else(|| invalid("client_roles"))?;
                for name in names {
                    let name = name.as_str().ok_or_else(|| invalid("client_roles"))?;
                    roles.push(Role::client(client.as_str(), name));
                }
            }
        }
        Some(_) => return Err(invalid("client_roles")),
    }
    Ok(roles.into_iter().collect())
}

/// The verified content of an identity token.
#[derive(Clone)]
pub struct VerifiedIdentity {
    subject: Box<str>,
    email: Option<Box<str>>,
    idp_issuer: Option<Box<str>>,
    roles: RoleSet,
    issuer: Box<str>,
    token: TokenMeta,
}

impl VerifiedIdentity {
    /// The caller's subject at its identity provider (`sub`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The caller's email (`email`), if the Router knew it. Display only, never an identifier.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The caller's identity provider (`idp_iss`), to qualify the owner when several issuers
    /// are configured.
    pub fn idp_issuer(&self) -> Option<&str> {
        self.idp_issuer.as_deref()
    }

    /// The caller's roles as the Router saw them (`roles`, `client_roles`), for the admin
    /// bypass. Empty when the Router does not include roles.
    pub fn roles(&self) -> &RoleSet {
        &self.roles
    }

    /// The token's issuer (the Router, `iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` of the key that signed the token.
    pub fn kid(&self) -> &str {
        &self.token.kid
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.token.algorithm
    }

    /// `iat`, seconds since the epoch.
    pub fn issued_at(&self) -> i64 {
        self.token.issued_at
    }

    /// `exp`, seconds since the epoch.
    pub fn expires_at(&self) -> i64 {
        self.token.expires_at
    }

    /// The token's id (`jti`).
    pub fn jwt_id(&self) -> &str {
        self.token.jwt_id()
    }

    /// The full verified payload.
    pub fn claims(&self) -> &Claims {
        &self.token.claims
    }

    /// The caller as a [`Principal`]: issuer = `idp_iss` (or the Router when absent), subject,
    /// email (not marked verified: the identity token does not say), roles and claims. This is
    /// what an ownership policy takes.
    pub fn to_principal(&self) -> Principal {
        let issuer = self.idp_issuer.as_deref().unwrap_or(&self.issuer);
        let mut builder = Principal::builder(issuer, &*self.subject)
            .roles(self.roles.iter().cloned())
            .claims(self.token.claims.clone());
        if let Some(email) = &self.email {
            builder = builder.email(&**email, false);
        }
        builder.build()
    }
}

/// Identity and roles; email and raw claims are left out (personal data).
impl fmt::Debug for VerifiedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedIdentity")
            .field("subject", &self.subject)
            .field("idp_issuer", &self.idp_issuer)
            .field("roles", &self.roles)
            .field("kid", &self.token.kid)
            .field("expires_at", &self.token.expires_at)
            .finish_non_exhaustive()
    }
}

/// Verifies identity tokens (the workload manager's side).
///
/// Generic over the [`KeySource`]: a [`KeyRing`](crate::KeyRing) (in-process, or from the
/// Router's `public.pem` via [`KeyRing::from_public_pem`](crate::KeyRing::from_public_pem)), a
/// static [`KeySet`](agentcube_auth_core::jose::KeySet), or a remote JWKS store such as
/// `agentcube-oidc`'s, pointed at the Router's `/.well-known/agentcube/jwks.json`.
///
/// Checks, cheapest first: size and framing; `alg` in the allowlist; header `typ` exactly
/// `agentcube-identity+jwt`; no `crit`; a `kid`; the key for `kid` and `alg` (unknown →
/// `unknown_kid`; none loaded → 503); the signature; `iss` and `aud` exactly (one string);
/// `exp` and `iat` required, with leeway and the lifetime cap; a `jti`; a non-empty `sub`;
/// then, if enabled, the replay guard.
pub struct IdentityVerifier<K> {
    core: Core<K>,
}

impl<K: KeySource> IdentityVerifier<K> {
    /// A verifier with the default [`VerifierConfig`].
    pub fn new(keys: K) -> Self {
        Self::with_config(keys, VerifierConfig::default())
    }

    /// A verifier with `config`.
    pub fn with_config(keys: K, config: VerifierConfig) -> Self {
        Self {
            core: Core::new(keys, config, IDENTITY_TOKEN_TYPE),
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.core.clock = Arc::new(clock);
        self
    }

    /// Rejects a second use of the same token (see [`ReplayGuard`] for when this fits).
    #[must_use]
    pub fn with_replay_guard(mut self, guard: Arc<ReplayGuard>) -> Self {
        self.core.replay = Some(guard);
        self
    }

    /// The key source.
    pub fn keys(&self) -> &K {
        &self.core.keys
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.core.config
    }

    /// Whether the key source has keys (report it on the readiness endpoint).
    pub fn is_ready(&self) -> bool {
        self.core.keys.is_ready()
    }
}

impl<K> fmt::Debug for IdentityVerifier<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityVerifier")
            .field("config", &self.core.config)
            .field("replay_guard", &self.core.replay.is_some())
            .finish_non_exhaustive()
    }
}

impl<K: KeySource> IdentityVerifier<K> {
    /// Verifies the value of the [`IDENTITY_HEADER`](crate::IDENTITY_HEADER); `None` or an empty
    /// value is [`IdentityError::MissingHeader`]. Accepts anything byte-like, such as
    /// `http::HeaderValue`.
    ///
    /// # Errors
    /// [`IdentityError`].
    pub async fn verify_header<V: AsRef<[u8]>>(
        &self,
        value: Option<V>,
    ) -> Result<VerifiedIdentity, IdentityError> {
        let token = header_token(value.as_ref())?;
        self.verify(token).await
    }

    /// Verifies a bare identity token.
    ///
    /// # Errors
    /// [`IdentityError::KeysUnavailable`] (503) or [`IdentityError::Invalid`] (401); with a
    /// replay guard also `token_replayed` and [`IdentityError::ReplayGuardFull`].
    pub async fn verify(&self, token: &str) -> Result<VerifiedIdentity, IdentityError> {
        let checked = self
            .core
            .check(token, &self.core.config.identity_audience)
            .await?;
        let claims = &checked.token.claims;
        let subject = Box::from(jose::require_subject(claims)?);
        let email = optional_string(claims, "email")?;
        let idp_issuer = optional_string(claims, "idp_iss")?;
        let roles = roles_from(claims)?;
        self.core.record(&checked)?;
        Ok(VerifiedIdentity {
            subject,
            email,
            idp_issuer,
            roles,
            issuer: Box::from(self.core.config.issuer.as_str()),
            token: checked.token,
        })
    }
}

/// The verified content of a sandbox token.
#[derive(Clone)]
pub struct VerifiedSandbox {
    session_id: Box<str>,
    user_sub: Box<str>,
    user_email: Option<Box<str>>,
    token: TokenMeta,
}

impl VerifiedSandbox {
    /// The session the token is bound to (equal to the one the verifier was asked about).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The caller's subject (`user_sub`).
    pub fn user_sub(&self) -> &str {
        &self.user_sub
    }

    /// The caller's email (`user_email`), if known. Display only.
    pub fn user_email(&self) -> Option<&str> {
        self.user_email.as_deref()
    }

    /// The `kid` of the key that signed the token.
    pub fn kid(&self) -> &str {
        &self.token.kid
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.token.algorithm
    }

    /// `iat`, seconds since the epoch.
    pub fn issued_at(&self) -> i64 {
        self.token.issued_at
    }

    /// `exp`, seconds since the epoch.
    pub fn expires_at(&self) -> i64 {
        self.token.expires_at
    }

    /// The token's id (`jti`).
    pub fn jwt_id(&self) -> &str {
        self.token.jwt_id()
    }

    /// The full verified payload.
    pub fn claims(&self) -> &Claims {
        &self.token.claims
    }
}

impl fmt::Debug for VerifiedSandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedSandbox")
            .field("session_id", &self.session_id)
            .field("user_sub", &self.user_sub)
            .field("kid", &self.token.kid)
            .field("expires_at", &self.token.expires_at)
            .finish_non_exhaustive()
    }
}

/// Verifies sandbox tokens (the sandbox agent's side), bound to one session.
///
/// The same checks as [`IdentityVerifier`], with header `typ` `agentcube-sandbox+jwt`, `aud`
/// exactly `sandbox:<session id>` for the session asked about (a token for another session is
/// `audience_mismatch`), a matching `session_id` claim and a non-empty `user_sub`.
///
/// Pass the session the sandbox itself serves (from its own configuration), not a value the
/// request chose, unless the network guarantees that only the Router reaches the sandbox.
pub struct SandboxVerifier<K> {
    core: Core<K>,
}

impl<K: KeySource> SandboxVerifier<K> {
    /// A verifier with the default [`VerifierConfig`].
    pub fn new(keys: K) -> Self {
        Self::with_config(keys, VerifierConfig::default())
    }

    /// A verifier with `config` (its `identity_audience` is not used).
    pub fn with_config(keys: K, config: VerifierConfig) -> Self {
        Self {
            core: Core::new(keys, config, SANDBOX_TOKEN_TYPE),
        }
    }

    /// Uses `clock` instead of the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.core.clock = Arc::new(clock);
        self
    }

    /// Rejects a second use of the same token (see [`ReplayGuard`] for when this fits).
    #[must_use]
    pub fn with_replay_guard(mut self, guard: Arc<ReplayGuard>) -> Self {
        self.core.replay = Some(guard);
        self
    }

    /// The key source.
    pub fn keys(&self) -> &K {
        &self.core.keys
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.core.config
    }

    /// Whether the key source has keys.
    pub fn is_ready(&self) -> bool {
        self.core.keys.is_ready()
    }
}

impl<K> fmt::Debug for SandboxVerifier<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxVerifier")
            .field("config", &self.core.config)
            .field("replay_guard", &self.core.replay.is_some())
            .finish_non_exhaustive()
    }
}

impl<K: KeySource> SandboxVerifier<K> {
    /// Verifies an `Authorization: Bearer <token>` value for `session_id`. `None` or an empty
    /// value is [`IdentityError::MissingHeader`]; another scheme is
    /// `invalid_authorization_format`; `Bearer` alone is `empty_bearer_token`.
    ///
    /// # Errors
    /// [`IdentityError`].
    pub async fn verify_authorization<V: AsRef<[u8]>>(
        &self,
        value: Option<V>,
        session_id: &str,
    ) -> Result<VerifiedSandbox, IdentityError> {
        let token = bearer_token(value.as_ref())?;
        self.verify(token, session_id).await
    }

    /// Verifies a bare sandbox token for `session_id`.
    ///
    /// # Errors
    /// As [`IdentityVerifier::verify`]; a token for another session is `audience_mismatch`.
    pub async fn verify(
        &self,
        token: &str,
        session_id: &str,
    ) -> Result<VerifiedSandbox, IdentityError> {
        let audience = sandbox_audience(session_id);
        let checked = self.core.check(token, &audience).await?;
        let claims = &checked.token.claims;
        match claims.string("session_id")? {
            Some(s) if !session_id.is_empty() && s == session_id => {}
            Some(_) => return Err(AuthError::AudienceMismatch.into()),
            None => return Err(AuthError::MissingClaim(Cow::Borrowed("session_id")).into()),
        }
        let user_sub = match claims.string("user_sub")? {
            Some(s) if !s.is_empty() => Box::from(s),
            _ => return Err(AuthError::MissingClaim(Cow::Borrowed("user_sub")).into()),
        };
        let user_email = optional_string(claims, "user_email")?;
        self.core.record(&checked)?;
        Ok(VerifiedSandbox {
            session_id: Box::from(session_id),
            user_sub,
            user_email,
            token: checked.token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(r: Result<T, IdentityError>) -> &'static str {
        r.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn header_values() {
        assert_eq!(code(header_token::<&str>(None)), "missing_authorization");
        assert_eq!(code(header_token(Some(&"  "))), "missing_authorization");
        assert_eq!(code(header_token(Some(&&b"\xff"[..]))), "malformed");
        assert_eq!(header_token(Some(&" a.b.c ")).unwrap(), "a.b.c");
    }

    #[test]
    fn bearer_values() {
        assert_eq!(code(bearer_token::<&str>(None)), "missing_authorization");
        assert_eq!(code(bearer_token(Some(&""))), "missing_authorization");
        assert_eq!(
            code(bearer_token(Some(&"Basic x"))),
            "invalid_authorization_format"
        );
        assert_eq!(code(bearer_token(Some(&"Bearer"))), "empty_bearer_token");
        assert_eq!(code(bearer_token(Some(&"Bearer   "))), "empty_bearer_token");
        assert_eq!(
            code(bearer_token(Some(&"Bearer a b"))),
            "invalid_authorization_format"
        );
        assert_eq!(
            code(bearer_token(Some(&"Bearerx"))),
            "invalid_authorization_format"
        );
        assert_eq!(bearer_token(Some(&"bearer a.b.c")).unwrap(), "a.b.c");
    }

    #[test]
    fn statuses() {
        assert_eq!(IdentityError::MissingHeader.http_status(), 401);
        assert_eq!(
            IdentityError::KeysUnavailable(KeysUnavailableReason::NotLoaded).http_status(),
            503
        );
        assert_eq!(IdentityError::ReplayGuardFull.http_status(), 503);
        assert_eq!(
            IdentityError::Invalid(AuthError::Expired).http_status(),
            401
        );
        assert_eq!(
            IdentityError::Invalid(AuthError::Expired).public_message(),
            "invalid or expired token"
        );
    }
}

//! The Router side: minting identity and sandbox tokens, with reuse.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::SignError;
use agentcube_auth_core::{Clock, Principal, Revocation, SystemClock};
use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::Serialize;

use crate::cache::{Entry, MintCache};
use crate::error::{ConfigError, MintError};
use crate::ring::{KeyRing, Signer};
use crate::{
    DEFAULT_IDENTITY_AUDIENCE, DEFAULT_ISSUER, MAX_LIFETIME, sandbox_audience, valid_session_id,
};

/// What a token is minted for: the workload manager, or one session's sandbox. `S` holds the
/// session id: borrowed while minting, owned in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target<S> {
    Identity,
    Sandbox(S),
}

impl<S: AsRef<str>> Target<S> {
    pub(crate) fn borrowed(&self) -> Target<&str> {
        match self {
            Self::Identity => Target::Identity,
            Self::Sandbox(session) => Target::Sandbox(session.as_ref()),
        }
    }
}

impl Target<&str> {
    pub(crate) fn into_owned(self) -> Target<Box<str>> {
        match self {
            Self::Identity => Target::Identity,
            Self::Sandbox(session) => Target::Sandbox(Box::from(session)),
        }
    }
}

/// How tokens are minted: built with [`MinterConfig::new`] (the defaults) and the setters below,
/// checked when the minter is built ([`TokenMinter::with_config`]).
///
/// | setting | default |
/// |---|---|
/// | [`issuer`](Self::issuer) | [`DEFAULT_ISSUER`] (`agentcube-router`) |
/// | [`identity_audience`](Self::identity_audience) | [`DEFAULT_IDENTITY_AUDIENCE`] (`workloadmanager`) |
/// | [`identity_lifetime`](Self::identity_lifetime) | 30 s, at most [`MAX_LIFETIME`] |
/// | [`sandbox_lifetime`](Self::sandbox_lifetime) | 60 s, at most [`MAX_LIFETIME`] |
/// | [`refresh_margin`](Self::refresh_margin) | 10 s, shorter than both lifetimes |
/// | [`cache_capacity`](Self::cache_capacity) | 10,000 tokens; 0 turns reuse off |
/// | [`include_roles`](Self::include_roles) | `true` |
///
/// ```
/// use std::time::Duration;
/// use agentcube_identity::{KeyRing, MinterConfig, TokenMinter};
///
/// let config = MinterConfig::new()
///     .identity_lifetime(Duration::from_secs(20))
///     .include_roles(false);
/// let minter = TokenMinter::with_config(KeyRing::generate()?, config)?;
/// # let _ = minter;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct MinterConfig {
    issuer: String,
    identity_audience: String,
    identity_lifetime: Duration,
    sandbox_lifetime: Duration,
    refresh_margin: Duration,
    cache_capacity: u64,
    include_roles: bool,
}

impl Default for MinterConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            identity_audience: DEFAULT_IDENTITY_AUDIENCE.to_owned(),
            identity_lifetime: Self::DEFAULT_IDENTITY_LIFETIME,
            sandbox_lifetime: Self::DEFAULT_SANDBOX_LIFETIME,
            refresh_margin: Self::DEFAULT_REFRESH_MARGIN,
            cache_capacity: Self::DEFAULT_CACHE_CAPACITY,
            include_roles: true,
        }
    }
}

impl MinterConfig {
    /// The default lifetime of an identity token: 30 s.
    pub const DEFAULT_IDENTITY_LIFETIME: Duration = Duration::from_secs(30);

    /// The default lifetime of a sandbox token: 60 s.
    pub const DEFAULT_SANDBOX_LIFETIME: Duration = Duration::from_secs(60);

    /// The default refresh margin: a cached token is reused only while it has more than this
    /// left, so a token that leaves the Router is valid for at least this long (plus the
    /// verifier's leeway): 10 s.
    pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(10);

    /// The default number of cached tokens: 10,000.
    pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;

    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// `iss` of both token kinds. Must not be empty.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// `aud` of identity tokens. Must not be empty.
    pub fn identity_audience(mut self, audience: impl Into<String>) -> Self {
        self.identity_audience = audience.into();
        self
    }

    /// The lifetime of identity tokens: at least 1 s, at most [`MAX_LIFETIME`] (whole seconds;
    /// a fraction is dropped).
    pub fn identity_lifetime(mut self, lifetime: Duration) -> Self {
        self.identity_lifetime = lifetime;
        self
    }

    /// The lifetime of sandbox tokens: at least 1 s, at most [`MAX_LIFETIME`].
    pub fn sandbox_lifetime(mut self, lifetime: Duration) -> Self {
        self.sandbox_lifetime = lifetime;
        self
    }

    /// How long before expiry a cached token stops being reused. Must be shorter than both
    /// lifetimes while the cache is on.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// How many tokens to cache; `0` turns reuse off (every call signs).
    pub fn cache_capacity(mut self, tokens: u64) -> Self {
        self.cache_capacity = tokens;
        self
    }

    /// Whether identity tokens carry the principal's roles (`roles`, `client_roles`), so the
    /// workload manager can apply the admin bypass.
    pub fn include_roles(mut self, include: bool) -> Self {
        self.include_roles = include;
        self
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.identity_audience.is_empty() {
            return Err(ConfigError::EmptyAudience);
        }
        for lifetime in [self.identity_lifetime, self.sandbox_lifetime] {
            if lifetime.as_secs() == 0 {
                return Err(ConfigError::LifetimeTooShort);
            }
            if lifetime > MAX_LIFETIME {
                return Err(ConfigError::LifetimeTooLong);
            }
            if self.cache_capacity > 0 && self.refresh_margin >= lifetime {
                return Err(ConfigError::RefreshMarginTooLong);
            }
        }
        Ok(())
    }

    fn lifetime<S>(&self, target: &Target<S>) -> Duration {
        match target {
            Target::Identity => self.identity_lifetime,
            Target::Sandbox(_) => self.sandbox_lifetime,
        }
    }
}

/// A signed token and its validity window. Cloning is cheap (the text is shared).
///
/// `Debug` is redacted: a token is a bearer credential. There is no `Display`, so a token is
/// not logged by accident.
#[derive(Clone)]
pub struct MintedToken {
    token: Arc<str>,
    /// `Bearer <token>` as a header value, built once: every reuse of the token is then a
    /// reference-count increment, not an 800-byte copy and check per proxied request.
    bearer: HeaderValue,
    issued_at: i64,
    expires_at: i64,
}

impl MintedToken {
    fn new(token: String, issued_at: i64, expires_at: i64) -> Self {
        // A compact JWS is base64url and dots, always a valid header value; were it not, the
        // empty value would be refused by the sandbox (fail closed), never sent half-made.
        let mut bearer = HeaderValue::try_from(format!("Bearer {token}"))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        // Never indexed by an HTTP/2 encoder, and shown as `Sensitive` by `Debug`.
        bearer.set_sensitive(true);
        Self {
            token: Arc::from(token),
            bearer,
            issued_at,
            expires_at,
        }
    }

    /// `Bearer <token>` as an `Authorization` header value for a sandbox request (a cheap
    /// clone of the value built when the token was minted).
    pub fn bearer_header(&self) -> HeaderValue {
        self.bearer.clone()
    }

    /// The compact JWS, e.g. the value of the [`IDENTITY_HEADER`](crate::IDENTITY_HEADER).
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// `Bearer <token>`, the `Authorization` value for a sandbox request.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `iat`, seconds since the epoch.
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// `exp`, seconds since the epoch.
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// Whether two handles share the same signed text (a reused token).
    pub fn same_token(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.token, &other.token) || self.token == other.token
    }
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &"<redacted>")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Mints identity tokens (Router → workload manager) and sandbox tokens (Router → sandbox) with
/// the key ring's active key, reusing a token for the same principal and audience until
/// [`MinterConfig::refresh_margin`] before it expires.
///
/// ```
/// use std::sync::Arc;
/// use agentcube_auth_core::Principal;
/// use agentcube_identity::{KeyRing, TokenMinter, IDENTITY_HEADER};
///
/// let minter = TokenMinter::new(Arc::new(KeyRing::generate()?));
/// let alice = Principal::builder("https://kc/realms/agentcube", "alice-id").build();
/// let token = minter.identity_token(&alice)?;
/// let header = (IDENTITY_HEADER, token.as_str());
/// assert!(minter.identity_token(&alice)?.same_token(&token)); // reused, not re-signed
/// # let _ = header;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TokenMinter {
    ring: Arc<KeyRing>,
    config: MinterConfig,
    clock: Arc<dyn Clock>,
    cache: Option<MintCache>,
}

impl TokenMinter {
    /// A minter with the default [`MinterConfig`] and the system clock.
    pub fn new(ring: impl Into<Arc<KeyRing>>) -> Self {
        Self::unchecked(ring.into(), MinterConfig::default())
    }

    /// A minter with `config`.
    ///
    /// # Errors
    /// [`ConfigError`] for an empty issuer or audience, a lifetime under 1 s or over
    /// [`MAX_LIFETIME`], or a refresh margin not shorter than a lifetime (while caching).
    pub fn with_config(
        ring: impl Into<Arc<KeyRing>>,
        config: MinterConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::unchecked(ring.into(), config))
    }

    /// A minter with a `config` known to be valid, and the system clock.
    fn unchecked(ring: Arc<KeyRing>, config: MinterConfig) -> Self {
        Self {
            ring,
            cache: (config.cache_capacity > 0)
                .then(|| MintCache::new(config.cache_capacity, config.include_roles)),
            config,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses `clock` instead of the system clock (tests use a `ManualClock`).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The key ring (serve its [`jwks_json`](KeyRing::jwks_json); rotate it).
    pub fn key_ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// The configuration.
    pub fn config(&self) -> &MinterConfig {
        &self.config
    }

    /// The number of cached tokens (for metrics). Settles the cache's pending evictions
    /// first, so it costs more than a field read.
    pub fn cached_tokens(&self) -> u64 {
        self.cache.as_ref().map_or(0, MintCache::len)
    }

    /// Drops every cached token (identity and sandbox) minted for `subject` of `issuer`, so
    /// none is handed out again: call it when that principal's access is revoked (a
    /// back-channel logout names the subject). Returns how many were dropped. A walk over the
    /// cache: for revocations, not for the request path.
    pub fn forget(&self, issuer: &str, subject: &str) -> u64 {
        self.forget_where(|p| p.issuer() == issuer && p.subject() == subject)
    }

    /// Drops every cached token minted for a principal that `revocation` refuses (its session,
    /// subject or client, with a token issued at or before the revocation; see
    /// [`Revocation::matches`]). Subscribe it to the service's revocation set so that
    /// revocations other replicas record drop this replica's tokens too. Returns how many
    /// were dropped.
    pub fn forget_revoked(&self, revocation: &Revocation) -> u64 {
        self.forget_where(|p| revocation.matches(p))
    }

    fn forget_where(&self, matches: impl Fn(&Principal) -> bool) -> u64 {
        self.cache.as_ref().map_or(0, |cache| cache.forget(matches))
    }

    /// An identity token for `principal`, reused from the cache when possible.
    ///
    /// # Errors
    /// [`MintError::NoSigningKey`], [`MintError::EmptySubject`], [`MintError::Signing`].
    pub fn identity_token(&self, principal: &Principal) -> Result<MintedToken, MintError> {
        self.cached(principal, Target::Identity)
    }

    /// A sandbox token for `principal` bound to `session_id`, reused from the cache when
    /// possible.
    ///
    /// # Errors
    /// As [`identity_token`](Self::identity_token), and [`MintError::InvalidSessionId`].
    pub fn sandbox_token(
        &self,
        principal: &Principal,
        session_id: &str,
    ) -> Result<MintedToken, MintError> {
        self.cached(principal, Target::Sandbox(session_id))
    }

    /// A freshly signed identity token (never from the cache, and not cached).
    ///
    /// # Errors
    /// As [`identity_token`](Self::identity_token).
    pub fn mint_identity(&self, principal: &Principal) -> Result<MintedToken, MintError> {
        self.fresh(principal, Target::Identity)
    }

    /// A freshly signed sandbox token (never from the cache, and not cached).
    ///
    /// # Errors
    /// As [`sandbox_token`](Self::sandbox_token).
    pub fn mint_sandbox(
        &self,
        principal: &Principal,
        session_id: &str,
    ) -> Result<MintedToken, MintError> {
        self.fresh(principal, Target::Sandbox(session_id))
    }

    fn fresh(&self, principal: &Principal, target: Target<&str>) -> Result<MintedToken, MintError> {
        check_request(principal, target)?;
        let state = self.ring.snapshot();
        let signer = state.active.as_ref().ok_or(MintError::NoSigningKey)?;
        self.mint(signer, principal, target, self.clock.now_unix())
    }

    fn cached(
        &self,
        principal: &Principal,
        target: Target<&str>,
    ) -> Result<MintedToken, MintError> {
        check_request(principal, target)?;
        let state = self.ring.snapshot();
        let signer = state.active.as_ref().ok_or(MintError::NoSigningKey)?;
        let now = self.clock.now_unix();
        let Some(cache) = &self.cache else {
            return self.mint(signer, principal, target, now);
        };
        let digest = MintCache::digest(principal, target);
        if let Some(token) = cache.get(digest, principal, target, &signer.key, now) {
            return Ok(token);
        }
        let token = self.mint(signer, principal, target, now)?;
        let margin = i64::try_from(self.config.refresh_margin.as_secs()).unwrap_or(i64::MAX);
        cache.insert(
            digest,
            Entry {
                target: target.into_owned(),
                principal: principal.clone(),
                key: Arc::clone(&signer.key),
                refresh_at: token.expires_at.saturating_sub(margin),
                token: token.clone(),
            },
        );
        Ok(token)
    }

    /// Signs a token for `target`; `check_request` has passed.
    fn mint(
        &self,
        signer: &Signer,
        principal: &Principal,
        target: Target<&str>,
        now: i64,
    ) -> Result<MintedToken, MintError> {
        let lifetime = self.config.lifetime(&target);
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        let jti = Jti::new()?;
        let payload = match target {
            Target::Identity => {
                let (roles, client_roles) = if self.config.include_roles {
                    split_roles(principal)
                } else {
                    (Vec::new(), BTreeMap::new())
                };
                serde_json::to_vec(&IdentityPayload {
                    iss: &self.config.issuer,
                    aud: &self.config.identity_audience,
                    sub: principal.subject(),
                    email: principal.email(),
                    idp_iss: Some(principal.issuer()).filter(|s| !s.is_empty()),
                    roles,
                    client_roles,
                    iat: now,
                    exp,
                    jti: jti.as_str(),
                })
            }
            Target::Sandbox(session) => serde_json::to_vec(&SandboxPayload {
                iss: &self.config.issuer,
                aud: &sandbox_audience(session),
                session_id: session,
                user_sub: principal.subject(),
                user_email: principal.email(),
                iat: now,
                exp,
                jti: jti.as_str(),
            }),
        }
        .map_err(|_| SignError::Payload)?;
        let token = signer.key.sign(signer.header(&target), &payload)?;
        crate::metrics::minted(match target {
            Target::Identity => crate::metrics::KIND_IDENTITY,
            Target::Sandbox(_) => crate::metrics::KIND_SANDBOX,
        });
        Ok(MintedToken::new(token, now, exp))
    }
}

/// The checks on what a token is asked for, before any key or cache is touched.
fn check_request(principal: &Principal, target: Target<&str>) -> Result<(), MintError> {
    if principal.subject().is_empty() {
        return Err(MintError::EmptySubject);
    }
    match target {
        Target::Sandbox(session) if !valid_session_id(session) => Err(MintError::InvalidSessionId),
        _ => Ok(()),
    }
}

impl fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenMinter")
            .field("ring", &self.ring)
            .field("config", &self.config)
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct IdentityPayload<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idp_iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    client_roles: BTreeMap<&'a str, Vec<&'a str>>,
    iat: i64,
    exp: i64,
    jti: &'a str,
}

#[derive(Serialize)]
struct SandboxPayload<'a> {
    iss: &'a str,
    aud: &'a str,
    session_id: &'a str,
    user_sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_email: Option<&'a str>,
    iat: i64,
    exp: i64,
    jti: &'a str,
}

type RoleLists<'a> = (Vec<&'a str>, BTreeMap<&'a str, Vec<&'a str>>);

fn split_roles(principal: &Principal) -> RoleLists<'_> {
    let mut realm = Vec::new();
    let mut clients: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for role in principal.roles() {
        match role.client_id() {
            None => realm.push(role.name()),
            Some(client) => clients.entry(client).or_default().push(role.name()),
        }
    }
    (realm, clients)
}

/// A `jti`: 128 random bits, base64url, 22 characters on the stack.
struct Jti([u8; 22]);

impl Jti {
    fn new() -> Result<Self, MintError> {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes).map_err(|_| SignError::Crypto)?;
        let mut out = [0u8; 22];
        URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut out)
            .map_err(|_| SignError::Crypto)?;
        Ok(Self(out))
    }

    #[allow(
        clippy::expect_used,
        reason = "base64url output is ASCII; an empty jti would be a silent failure"
    )]
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("invariant: base64url output is ascii")
    }
}

#[cfg(test)]
mod tests {
    use agentcube_auth_core::Role;
    use agentcube_auth_core::jose::{Algorithm, SigningKey};

    use super::*;

    #[test]
    fn the_bearer_header_is_the_token_marked_sensitive() {
        let token = MintedToken::new("a.b.c".to_owned(), 0, 100);
        let header = token.bearer_header();
        assert_eq!(header.as_bytes(), b"Bearer a.b.c");
        assert!(header.is_sensitive());
        assert_eq!(token.bearer(), "Bearer a.b.c");
        assert!(!format!("{header:?}").contains("a.b.c"));
    }

    #[test]
    fn a_digest_collision_or_any_changed_field_is_a_miss() {
        let ring = KeyRing::generate().unwrap();
        let state = ring.snapshot();
        let key = &state.active.as_ref().unwrap().key;
        let cache = MintCache::new(10, true);
        let alice = Principal::builder("iss", "alice").build();
        let digest = MintCache::digest(&alice, Target::Identity);
        cache.insert(
            digest,
            Entry {
                target: Target::Identity,
                principal: alice.clone(),
                key: Arc::clone(key),
                refresh_at: 90,
                token: MintedToken::new("a.b.c".to_owned(), 0, 100),
            },
        );
        assert!(
            cache
                .get(digest, &alice, Target::Identity, key, 89)
                .is_some()
        );
        // Other principals whose digest would (by collision) be alice's.
        for other in [
            Principal::builder("iss", "bob").build(),
            Principal::builder("other-iss", "alice").build(),
            Principal::builder("iss", "alice")
                .email("a@x", true)
                .build(),
            Principal::builder("iss", "alice")
                .roles([Role::realm("admin")])
                .build(),
        ] {
            assert!(
                cache
                    .get(digest, &other, Target::Identity, key, 0)
                    .is_none()
            );
        }
        assert!(
            cache
                .get(digest, &alice, Target::Sandbox("s"), key, 0)
                .is_none()
        );
        // Past the refresh point, or signed by a key that is no longer active.
        assert!(
            cache
                .get(digest, &alice, Target::Identity, key, 90)
                .is_none()
        );
        let rotated = Arc::new(SigningKey::generate(Algorithm::EdDSA).unwrap());
        assert!(
            cache
                .get(digest, &alice, Target::Identity, &rotated, 0)
                .is_none()
        );
        // The digest separates kinds and sessions.
        assert_ne!(digest, MintCache::digest(&alice, Target::Sandbox("")));
        assert_ne!(
            MintCache::digest(&alice, Target::Sandbox("s1")),
            MintCache::digest(&alice, Target::Sandbox("s2"))
        );
    }
}

//! The Router side: minting identity and sandbox tokens, with reuse.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::{Clock, Principal, SystemClock};
use aws_lc_rs::rand;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::cache::{Entry, MintCache};
use crate::keys::{MintError, SigningKey};
use crate::ring::KeyRing;
use crate::{
    DEFAULT_IDENTITY_AUDIENCE, DEFAULT_ISSUER, MAX_LIFETIME, MAX_SESSION_ID_BYTES, TokenKind,
    sandbox_audience,
};

/// Default lifetime of an identity token.
pub const DEFAULT_IDENTITY_LIFETIME: Duration = Duration::from_secs(30);

/// Default lifetime of a sandbox token.
pub const DEFAULT_SANDBOX_LIFETIME: Duration = Duration::from_secs(60);

/// Default refresh margin: a cached token is reused only while it has more than this left, so a
/// token that leaves the Router is always valid for at least this long (plus the verifier's
/// leeway).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(10);

/// Default number of cached tokens.
pub const DEFAULT_MINT_CACHE_CAPACITY: usize = 10_000;

/// How tokens are minted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MinterConfig {
    /// `iss` of both token kinds. Default `agentcube-router`.
    pub issuer: String,
    /// `aud` of identity tokens. Default `workloadmanager`.
    pub identity_audience: String,
    /// Identity token lifetime. Default 30 s; at most [`MAX_LIFETIME`].
    pub identity_lifetime: Duration,
    /// Sandbox token lifetime. Default 60 s; at most [`MAX_LIFETIME`].
    pub sandbox_lifetime: Duration,
    /// How long before expiry a cached token stops being reused. Default 10 s; must be
    /// shorter than both lifetimes.
    pub refresh_margin: Duration,
    /// How many tokens to cache; `0` disables reuse (every call signs).
    pub cache_capacity: usize,
    /// Whether identity tokens carry the principal's roles (`roles`, `client_roles`), so the
    /// workload manager can apply the admin bypass. Default `true`.
    pub include_roles: bool,
}

impl Default for MinterConfig {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_ISSUER.to_owned(),
            identity_audience: DEFAULT_IDENTITY_AUDIENCE.to_owned(),
            identity_lifetime: DEFAULT_IDENTITY_LIFETIME,
            sandbox_lifetime: DEFAULT_SANDBOX_LIFETIME,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            cache_capacity: DEFAULT_MINT_CACHE_CAPACITY,
            include_roles: true,
        }
    }
}

impl MinterConfig {
    fn validate(&self) -> Result<(), MintError> {
        let bad = MintError::InvalidConfig;
        if self.issuer.is_empty() {
            return Err(bad("issuer is empty"));
        }
        if self.identity_audience.is_empty() {
            return Err(bad("identity audience is empty"));
        }
        for lifetime in [self.identity_lifetime, self.sandbox_lifetime] {
            if lifetime.as_secs() == 0 {
                return Err(bad("lifetime is under one second"));
            }
            if lifetime > MAX_LIFETIME {
                return Err(bad("lifetime exceeds the maximum"));
            }
            if self.cache_capacity > 0 && self.refresh_margin >= lifetime {
                return Err(bad("refresh margin is not shorter than the lifetime"));
            }
        }
        Ok(())
    }
}

/// A signed token and its validity window. Cloning is cheap (the text is shared).
///
/// `Debug` is redacted: a token is a bearer credential. There is no `Display`, so a token is
/// not logged by accident.
#[derive(Clone)]
pub struct MintedToken {
    token: Arc<str>,
    issued_at: i64,
    expires_at: i64,
}

impl MintedToken {
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
    /// [`MintError::InvalidConfig`] for an empty issuer or audience, a lifetime of zero or over
    /// [`MAX_LIFETIME`], or a refresh margin not shorter than a lifetime (when caching).
    pub fn with_config(
        ring: impl Into<Arc<KeyRing>>,
        config: MinterConfig,
    ) -> Result<Self, MintError> {
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

    /// The number of cached tokens (for metrics).
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, MintCache::len)
    }

    /// An identity token for `principal`, reused from the cache when possible.
    ///
    /// # Errors
    /// [`MintError::NoSigningKey`], [`MintError::EmptySubject`], [`MintError::Signing`].
    pub fn identity_token(&self, principal: &Principal) -> Result<MintedToken, MintError> {
        self.cached(TokenKind::Identity, principal, None)
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
        self.cached(TokenKind::Sandbox, principal, Some(session_id))
    }

    /// A freshly signed identity token (never from the cache, and not cached).
    ///
    /// # Errors
    /// As [`identity_token`](Self::identity_token).
    pub fn mint_identity(&self, principal: &Principal) -> Result<MintedToken, MintError> {
        let key = self.active_key()?;
        self.mint(&key, TokenKind::Identity, principal, None)
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
        let key = self.active_key()?;
        self.mint(&key, TokenKind::Sandbox, principal, Some(session_id))
    }

    fn active_key(&self) -> Result<Arc<SigningKey>, MintError> {
        self.ring.active().ok_or(MintError::NoSigningKey)
    }

    fn cached(
        &self,
        kind: TokenKind,
        principal: &Principal,
        session: Option<&str>,
    ) -> Result<MintedToken, MintError> {
        let state = self.ring.snapshot();
        let key = state.active.as_ref().ok_or(MintError::NoSigningKey)?;
        let Some(cache) = &self.cache else {
            return self.mint(key, kind, principal, session);
        };
        let now = self.clock.now_unix();
        let hash = cache.hash(kind, principal, session);
        if let Some(token) = cache.get(hash, kind, principal, session, key, now) {
            return Ok(token);
        }
        let token = self.mint(key, kind, principal, session)?;
        let margin = i64::try_from(self.config.refresh_margin.as_secs()).unwrap_or(i64::MAX);
        cache.insert(
            hash,
            Entry {
                kind,
                principal: principal.clone(),
                session: session.map(Box::from),
                key: Arc::clone(key),
                refresh_at: token.expires_at.saturating_sub(margin),
                token: token.clone(),
            },
            now,
        );
        Ok(token)
    }

    fn mint(
        &self,
        key: &SigningKey,
        kind: TokenKind,
        principal: &Principal,
        session: Option<&str>,
    ) -> Result<MintedToken, MintError> {
        let subject = principal.subject();
        if subject.is_empty() {
            return Err(MintError::EmptySubject);
        }
        let now = self.clock.now_unix();
        let lifetime = match kind {
            TokenKind::Identity => self.config.identity_lifetime,
            TokenKind::Sandbox => self.config.sandbox_lifetime,
        };
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        let jti_buf = new_jti()?;
        let jti = jti_str(&jti_buf);
        let payload = match (kind, session) {
            (TokenKind::Identity, _) => {
                let (roles, client_roles) = if self.config.include_roles {
                    split_roles(principal)
                } else {
                    (Vec::new(), BTreeMap::new())
                };
                serde_json::to_vec(&IdentityPayload {
                    iss: &self.config.issuer,
                    aud: &self.config.identity_audience,
                    sub: subject,
                    email: principal.email(),
                    idp_iss: Some(principal.issuer()).filter(|s| !s.is_empty()),
                    roles,
                    client_roles,
                    iat: now,
                    exp,
                    jti,
                })
            }
            (TokenKind::Sandbox, session) => {
                let session = session.unwrap_or_default();
                if session.is_empty() || session.len() > MAX_SESSION_ID_BYTES {
                    return Err(MintError::InvalidSessionId);
                }
                serde_json::to_vec(&SandboxPayload {
                    iss: &self.config.issuer,
                    aud: &sandbox_audience(session),
                    session_id: session,
                    user_sub: subject,
                    user_email: principal.email(),
                    iat: now,
                    exp,
                    jti,
                })
            }
        }
        .map_err(|_| MintError::Signing)?;
        let token = key.sign_with_header(key.header_for(kind), &payload)?;
        Ok(MintedToken {
            token: Arc::from(token),
            issued_at: now,
            expires_at: exp,
        })
    }
}

impl fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenMinter")
            .field("ring", &self.ring)
            .field("config", &self.config)
            .field("cached_tokens", &self.cached_tokens())
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

/// 128 random bits, base64url: 22 characters.
type JtiBuf = [u8; 22];

fn new_jti() -> Result<JtiBuf, MintError> {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes).map_err(|_| MintError::Signing)?;
    let mut out = [0u8; 22];
    URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut out)
        .map_err(|_| MintError::Signing)?;
    Ok(out)
}

fn jti_str(buf: &JtiBuf) -> &str {
    // base64url output is ASCII.
    std::str::from_utf8(buf).unwrap_or_default()
}

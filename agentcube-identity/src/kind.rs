//! The two kinds of internal token, what each checks beyond the rules they share, and what a
//! verified token of each kind says.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use agentcube_auth_core::jose::Algorithm;
use agentcube_auth_core::{Audience, AuthError, Claims, Principal, Role, RoleSet};
use serde_json::Value;

use crate::{IDENTITY_TOKEN_TYPE, SANDBOX_AUDIENCE_PREFIX, SANDBOX_TOKEN_TYPE, valid_session_id};

/// A kind of internal token: [`Identity`] (Router → workload manager) or [`Sandbox`] (Router →
/// sandbox). It names the JOSE header `typ` the verifier demands and what a verified token of
/// the kind says; [`InternalVerifier`](crate::InternalVerifier) is generic over it.
///
/// Sealed: the two kinds are the only ones.
pub trait TokenKind: sealed::Kind + Clone + fmt::Debug + Send + Sync + 'static {
    /// The JOSE header `typ` of this kind (compared as RFC 7515 says: case-insensitively, with
    /// an optional `application/` prefix).
    const TYPE: &'static str;
}

/// The identity token kind, and the verified content of one: read it through
/// [`VerifiedIdentity`].
#[derive(Clone)]
pub struct Identity {
    subject: Box<str>,
    email: Option<Box<str>>,
    idp_issuer: Option<Box<str>>,
    roles: RoleSet,
    issuer: Box<str>,
}

/// The sandbox token kind, and the verified content of one: read it through
/// [`VerifiedSandbox`].
#[derive(Clone)]
pub struct Sandbox {
    session_id: Box<str>,
    user_sub: Box<str>,
    user_email: Option<Box<str>>,
    issuer: Box<str>,
}

impl TokenKind for Identity {
    const TYPE: &'static str = IDENTITY_TOKEN_TYPE;
}

impl TokenKind for Sandbox {
    const TYPE: &'static str = SANDBOX_TOKEN_TYPE;
}

/// What a sandbox verifier accepts a token for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionBinding {
    /// A sandbox that serves exactly this session: the token must have `aud`
    /// `sandbox:<session id>` and a `session_id` claim equal to it. A token minted for any other
    /// session is `audience_mismatch`. The id comes from the sandbox's own configuration, never
    /// from the request.
    Session(String),
    /// A shared development sandbox that serves every session.
    ///
    /// It accepts a token for **any** session: `aud` must be `sandbox:<x>` and the token's
    /// `session_id` claim must equal that `x` (so the token is internally consistent), but
    /// nothing ties `x` to the request being served.
    ///
    /// **What this proves**: the Router signed a sandbox token for the caller
    /// ([`VerifiedSandbox::user_sub`]) and for session `x`
    /// ([`VerifiedSandbox::session_id`], or [`sandbox_session`] behind an `AuthLayer`).
    ///
    /// **What it does not prove**: that the request is for session `x`. A token captured from
    /// session A's traffic is accepted for a request about session B unless the handler
    /// compares the token's session with the session the request names (for example its
    /// session header) and refuses a mismatch. Every handler behind such a verifier must make
    /// that comparison. Use [`SessionBinding::Session`] in production.
    AnySession,
}

impl SessionBinding {
    /// [`SessionBinding::Session`] for `session_id`.
    pub fn session(session_id: impl Into<String>) -> Self {
        Self::Session(session_id.into())
    }
}

/// What every verified token carries, whatever its kind.
#[derive(Clone)]
pub struct TokenMeta {
    pub(crate) kid: Box<str>,
    pub(crate) algorithm: Algorithm,
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) jwt_id: Box<str>,
    pub(crate) claims: Claims,
}

/// The kind-specific half of verification.
pub(crate) mod sealed {
    use super::{AuthError, Claims, Principal, TokenMeta};

    /// Implemented by [`Identity`](super::Identity) and [`Sandbox`](super::Sandbox) only.
    pub trait Kind: Sized {
        /// Reads the kind's claims from a token that passed every shared check. `audience` is
        /// its one `aud`, already accepted by the verifier's audience rule; `issuer` is its
        /// `iss`, equal to the configured one.
        fn read(claims: &Claims, audience: &str, issuer: &str) -> Result<Self, AuthError>;

        /// The verified caller as a [`Principal`].
        fn principal(&self, token: &TokenMeta) -> Principal;
    }
}

impl sealed::Kind for Identity {
    fn read(claims: &Claims, _audience: &str, issuer: &str) -> Result<Self, AuthError> {
        Ok(Self {
            subject: Box::from(agentcube_auth_core::jose::require_subject(claims)?),
            email: optional_string(claims, "email")?,
            idp_issuer: optional_string(claims, "idp_iss")?,
            roles: roles_from(claims)?,
            issuer: Box::from(issuer),
        })
    }

    /// Issuer = `idp_iss` (or the Router when absent), subject, email (not marked verified: the
    /// identity token does not say), roles and claims.
    fn principal(&self, token: &TokenMeta) -> Principal {
        let issuer = self.idp_issuer.as_deref().unwrap_or(&self.issuer);
        let mut builder = Principal::builder(issuer, &*self.subject)
            .roles(self.roles.iter().cloned())
            .claims(token.claims.clone());
        if let Some(email) = &self.email {
            builder = builder.email(&**email, false);
        }
        builder.build()
    }
}

impl sealed::Kind for Sandbox {
    fn read(claims: &Claims, audience: &str, issuer: &str) -> Result<Self, AuthError> {
        // The audience rule accepted `sandbox:<x>`; the token must be for that same session.
        let bound = audience
            .strip_prefix(SANDBOX_AUDIENCE_PREFIX)
            .ok_or(AuthError::AudienceMismatch)?;
        let session_id = match claims.string("session_id")? {
            Some(s) if s == bound && valid_session_id(s) => Box::from(s),
            Some(_) => return Err(AuthError::AudienceMismatch),
            None => return Err(AuthError::MissingClaim(Cow::Borrowed("session_id"))),
        };
        let user_sub = match claims.string("user_sub")? {
            Some(s) if !s.is_empty() => Box::from(s),
            _ => return Err(AuthError::MissingClaim(Cow::Borrowed("user_sub"))),
        };
        Ok(Self {
            session_id,
            user_sub,
            user_email: optional_string(claims, "user_email")?,
            issuer: Box::from(issuer),
        })
    }

    /// Issuer = the Router (`iss`), subject = `user_sub`, email = `user_email` (not marked
    /// verified), claims (among them `session_id`, see [`sandbox_session`]).
    fn principal(&self, token: &TokenMeta) -> Principal {
        let mut builder =
            Principal::builder(&*self.issuer, &*self.user_sub).claims(token.claims.clone());
        if let Some(email) = &self.user_email {
            builder = builder.email(&**email, false);
        }
        builder.build()
    }
}

/// A verified internal token of kind `T`: what every kind carries (key, times, `jti`, claims)
/// plus the kind's own content. Produced only by a verifier.
///
/// Cloning is a reference-count increment: the verified-token cache hands out clones of the
/// value it stored, and [`Verified::to_principal`] builds the principal once per token.
///
/// Use the aliases [`VerifiedIdentity`] and [`VerifiedSandbox`].
pub struct Verified<T> {
    shared: Arc<Shared<T>>,
    from_cache: bool,
}

/// What every clone of one verified token shares.
struct Shared<T> {
    kind: T,
    token: TokenMeta,
    principal: OnceLock<Principal>,
}

impl<T> Clone for Verified<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            from_cache: self.from_cache,
        }
    }
}

/// A verified identity token.
pub type VerifiedIdentity = Verified<Identity>;

/// A verified sandbox token.
pub type VerifiedSandbox = Verified<Sandbox>;

impl<T: TokenKind> Verified<T> {
    pub(crate) fn new(kind: T, token: TokenMeta) -> Self {
        Self {
            shared: Arc::new(Shared {
                kind,
                token,
                principal: OnceLock::new(),
            }),
            from_cache: false,
        }
    }

    /// The same verified token, answered from the verifier's cache.
    pub(crate) fn served_from_cache(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            from_cache: true,
        }
    }

    /// Whether this answer came from the verifier's verified-token cache (the token was
    /// verified in full earlier, and its time window and key were checked again now) rather
    /// than from a signature check. For metrics and logs; both answers are equally valid.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The `kid` of the key that signed the token.
    pub fn kid(&self) -> &str {
        &self.shared.token.kid
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.shared.token.algorithm
    }

    /// `iat`, seconds since the epoch (internal tokens always carry it).
    pub fn issued_at(&self) -> i64 {
        self.shared.token.issued_at
    }

    /// `exp`, seconds since the epoch.
    pub fn expires_at(&self) -> i64 {
        self.shared.token.expires_at
    }

    /// The token's id (`jti`).
    pub fn jwt_id(&self) -> &str {
        &self.shared.token.jwt_id
    }

    /// The full verified payload.
    pub fn claims(&self) -> &Claims {
        &self.shared.token.claims
    }

    /// The caller as a [`Principal`], as the verifier's
    /// [`TokenVerifier`](agentcube_auth_core::TokenVerifier) implementation returns it.
    ///
    /// - identity token: issuer = `idp_iss` (the caller's identity provider; the Router when
    ///   absent), subject = `sub`, email not marked verified (the token does not say), roles,
    ///   claims. This is what an ownership policy takes.
    /// - sandbox token: issuer = the Router (`iss`), subject = `user_sub`, email =
    ///   `user_email` not marked verified, no roles, claims (read the session back with
    ///   [`sandbox_session`]).
    ///
    /// Built on the first call and shared by every clone (a cache hit answers with a clone).
    pub fn to_principal(&self) -> Principal {
        let shared = &*self.shared;
        shared
            .principal
            .get_or_init(|| sealed::Kind::principal(&shared.kind, &shared.token))
            .clone()
    }
}

impl Verified<Identity> {
    /// The caller's subject at its identity provider (`sub`).
    pub fn subject(&self) -> &str {
        &self.shared.kind.subject
    }

    /// The caller's email (`email`), if the Router knew it. Display only, never an identifier.
    pub fn email(&self) -> Option<&str> {
        self.shared.kind.email.as_deref()
    }

    /// The caller's identity provider (`idp_iss`), to qualify the owner when several issuers
    /// are configured.
    pub fn idp_issuer(&self) -> Option<&str> {
        self.shared.kind.idp_issuer.as_deref()
    }

    /// The caller's roles as the Router saw them (`roles`, `client_roles`), for the admin
    /// bypass. Empty when the Router does not include roles.
    pub fn roles(&self) -> &RoleSet {
        &self.shared.kind.roles
    }

    /// The token's issuer (the Router, `iss`).
    pub fn issuer(&self) -> &str {
        &self.shared.kind.issuer
    }
}

impl Verified<Sandbox> {
    /// The session the token is bound to: the verifier's session for
    /// [`SessionBinding::Session`]; for [`SessionBinding::AnySession`], the token's own, which
    /// the handler must compare with the request's.
    pub fn session_id(&self) -> &str {
        &self.shared.kind.session_id
    }

    /// The caller's subject (`user_sub`).
    pub fn user_sub(&self) -> &str {
        &self.shared.kind.user_sub
    }

    /// The caller's email (`user_email`), if known. Display only.
    pub fn user_email(&self) -> Option<&str> {
        self.shared.kind.user_email.as_deref()
    }

    /// The token's issuer (the Router, `iss`).
    pub fn issuer(&self) -> &str {
        &self.shared.kind.issuer
    }
}

/// The session a sandbox token bound the request to, read from a [`Principal`] that a
/// [`SandboxVerifier`](crate::SandboxVerifier) produced (its `session_id` claim); `None` for a
/// principal without one.
///
/// Behind an `AuthLayer` with a sandbox verifier bound to [`SessionBinding::AnySession`], a
/// handler must compare this with the session the request names and refuse a mismatch (or a
/// `None`).
pub fn sandbox_session(principal: &Principal) -> Option<&str> {
    principal.claims().string("session_id").ok().flatten()
}

/// Identity and roles; email and raw claims are left out (personal data).
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("idp_issuer", &self.idp_issuer)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Session and subject; email and raw claims are left out (personal data).
impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("session_id", &self.session_id)
            .field("user_sub", &self.user_sub)
            .finish_non_exhaustive()
    }
}

impl<T: fmt::Debug> fmt::Debug for Verified<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("token", &self.shared.kind)
            .field("kid", &self.shared.token.kid)
            .field("expires_at", &self.shared.token.expires_at)
            .field("from_cache", &self.from_cache)
            .finish_non_exhaustive()
    }
}

/// Which audiences a verifier accepts. Internal tokens carry exactly one `aud`, a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AudienceRule {
    /// Exactly this audience: the identity audience, or `sandbox:<session id>` precomputed for
    /// [`SessionBinding::Session`].
    Exact(Box<str>),
    /// `sandbox:<x>` for any valid session id `x` ([`SessionBinding::AnySession`]).
    AnySandbox,
}

impl AudienceRule {
    /// The token's one audience, if this rule accepts it.
    ///
    /// # Errors
    /// `missing_claim` without `aud`, `invalid_claim` for a wrong type, `audience_mismatch`
    /// for an array (even of one string) or another audience.
    pub(crate) fn check<'c>(&self, claims: &'c Claims) -> Result<&'c str, AuthError> {
        let aud = match claims.audience()? {
            Audience::One(aud) => aud,
            Audience::Absent => return Err(AuthError::MissingClaim(Cow::Borrowed("aud"))),
            Audience::Many(_) => return Err(AuthError::AudienceMismatch),
        };
        let accepted = match self {
            Self::Exact(expected) => aud == &**expected,
            Self::AnySandbox => aud
                .strip_prefix(SANDBOX_AUDIENCE_PREFIX)
                .is_some_and(valid_session_id),
        };
        if accepted {
            Ok(aud)
        } else {
            Err(AuthError::AudienceMismatch)
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        Claims::try_from(v).unwrap()
    }

    fn code(rule: &AudienceRule, v: Value) -> &'static str {
        rule.check(&claims(v))
            .map_or_else(|e| e.code().as_str(), |_| "ok")
    }

    #[test]
    fn audience_rules_want_exactly_one_string() {
        let exact = AudienceRule::Exact("sandbox:s1".into());
        assert_eq!(code(&exact, json!({"aud": "sandbox:s1"})), "ok");
        assert_eq!(
            code(&exact, json!({"aud": ["sandbox:s1"]})),
            "audience_mismatch"
        );
        assert_eq!(
            code(&exact, json!({"aud": "sandbox:s2"})),
            "audience_mismatch"
        );
        assert_eq!(code(&exact, json!({})), "missing_claim");
        assert_eq!(code(&exact, json!({"aud": 1})), "invalid_claim");
        let any = AudienceRule::AnySandbox;
        assert_eq!(code(&any, json!({"aud": "sandbox:s2"})), "ok");
        assert_eq!(code(&any, json!({"aud": "sandbox:"})), "audience_mismatch");
        assert_eq!(
            code(&any, json!({"aud": "workloadmanager"})),
            "audience_mismatch"
        );
        let long = format!("sandbox:{}", "x".repeat(crate::MAX_SESSION_ID_BYTES + 1));
        assert_eq!(code(&any, json!({ "aud": long })), "audience_mismatch");
    }
}

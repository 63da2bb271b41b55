//! OpenID Connect Back-Channel Logout 1.0, the receiving end: the identity provider posts a
//! signed *logout token* when a session ends (the user logged out, an administrator ended the
//! session, the session expired), and the service revokes what that session had.
//!
//! A logout token goes through the same strict pipeline as an access token, with the rules of
//! the specification on top (§2.4, §2.6):
//!
//! | check | refusal ([`LogoutError::code`]) |
//! |---|---|
//! | size, framing, no JWE, no `crit`, `alg` in the verifier's allowlist | as for access tokens |
//! | header `typ`: `logout+jwt` or absent (Keycloak 26 sends none) | `token_type_mismatch` |
//! | key by `kid` from the issuer's key set, signature | `unknown_kid`, `invalid_signature`, … |
//! | `iss` exactly the verifier's issuer | `issuer_mismatch` (`unknown_issuer` when several issuers are configured and none matches) |
//! | `aud` contains one of the receiving client ids | `audience_mismatch` |
//! | `iat` present and within the leeway of now (neither older nor newer) | `missing_claim`, `expired`, `issued_in_future` |
//! | `exp`, when present, not past (with the leeway) | `expired` |
//! | payload `typ`, when present, `Logout` (Keycloak's) | `token_type_mismatch` |
//! | `jti` present, and not seen before | `missing_claim`, `token_replayed` |
//! | `events` is an object with the member `http://schemas.openid.net/event/backchannel-logout` (an object) | `missing_logout_event` |
//! | no `nonce` (it would make an ID token look like a logout token) | `nonce_present` |
//! | `sid`, `sub`, or both | `missing_sid_and_sub` |
//!
//! A token that passes becomes one [`Revocation`] in the verifier's [`RevocationSet`]: of the
//! session (`sid`) when the token names one, else of the subject (`sub`: every session of the
//! user), effective for tokens issued at or before the logout token's `iat`. Both times come
//! from the identity provider's clock, so a skew between its clock and this service's does not
//! open a gap; and recording the same logout twice changes nothing, so a logout token replayed
//! to another replica (whose replay set has not seen it) cannot revoke anything new.
//!
//! The replay set holds each `jti` (per issuer) until the token's `iat` leaves the leeway, after
//! which the `iat` rule refuses it anyway; it is bounded ([`BackchannelLogout::with_replay_capacity`])
//! and refuses with `replay_guard_full` rather than forget a live entry.
//!
//! The HTTP side (`POST` of a form with one `logout_token`, `200` on success, `400` with
//! `{"error":"invalid_request","error_description":…}` otherwise, `Cache-Control: no-store`) is
//! the service's: [`BackchannelLogout::receive_form`] takes the body, [`LogoutError::to_json`]
//! renders the error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use agentcube_auth_core::digest::{Digest, DigestHasher};
use agentcube_auth_core::jose::{self, JwsPolicy, TypePolicy, UnverifiedJws};
use agentcube_auth_core::{
    AuthError, Claims, Code, Rejection, Revocation, RevocationError, RevocationSet,
    RevocationTarget, TypeLocation, Untrusted,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::config::ConfigError;
use crate::verifier::OidcVerifier;

/// The member of the `events` claim that makes a JWT a back-channel logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The header `typ` of a logout token (Back-Channel Logout 1.0 §2.4).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// The payload `typ` Keycloak puts into its logout tokens.
const KEYCLOAK_LOGOUT_TYPE: &str = "Logout";

/// The form field of the logout request.
pub const LOGOUT_TOKEN_FIELD: &str = "logout_token";

/// Why a logout request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogoutError {
    /// The body is not a form with exactly one `logout_token`.
    #[error("request must be a form with one logout_token")]
    InvalidRequest,
    /// The token failed a rule it shares with access tokens (framing, header, key, signature,
    /// `iss`, `aud`, times, `jti`, replay).
    #[error("logout token refused: {0}")]
    Token(AuthError),
    /// No `events` object with the back-channel logout event.
    #[error("logout token has no back-channel logout event")]
    MissingEvent,
    /// The token carries a `nonce`, which a logout token must not.
    #[error("logout token carries a nonce")]
    NoncePresent,
    /// The token names neither a session (`sid`) nor a subject (`sub`).
    #[error("logout token names neither sid nor sub")]
    MissingSessionAndSubject,
    /// The token is valid but the revocation could not be recorded.
    #[error("logout could not be recorded: {0}")]
    Revocation(RevocationError),
}

impl LogoutError {
    /// `invalid_request`.
    pub const INVALID_REQUEST: Code = Code::new("invalid_request");
    /// `missing_logout_event`.
    pub const MISSING_EVENT: Code = Code::new("missing_logout_event");
    /// `nonce_present`.
    pub const NONCE_PRESENT: Code = Code::new("nonce_present");
    /// `missing_sid_and_sub`.
    pub const MISSING_SESSION_AND_SUBJECT: Code = Code::new("missing_sid_and_sub");

    /// The stable code: an [`AuthError`]'s own code, or one of the constants above, or the
    /// [`RevocationError`]'s.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidRequest => Self::INVALID_REQUEST,
            Self::Token(err) => err.code().code(),
            Self::MissingEvent => Self::MISSING_EVENT,
            Self::NoncePresent => Self::NONCE_PRESENT,
            Self::MissingSessionAndSubject => Self::MISSING_SESSION_AND_SUBJECT,
            Self::Revocation(err) => Rejection::code(err),
        }
    }

    /// The OAuth error of the response body: `invalid_request`, or `temporarily_unavailable`
    /// when a valid logout could not be recorded.
    pub fn oauth_error(&self) -> &'static str {
        match self {
            Self::Revocation(_) => "temporarily_unavailable",
            _ => "invalid_request",
        }
    }

    /// The response body (Back-Channel Logout 1.0 §2.8):
    /// `{"error":"invalid_request","error_description":"<message>"}`. The description names
    /// the rule (its stable code and the message), never the token.
    pub fn to_json(&self) -> String {
        let description = match self {
            Self::Token(err) => format!("{}: {}", err.code(), err.public_message()),
            Self::Revocation(err) => err.public_message().into_owned(),
            other => other.to_string(),
        };
        serde_json::json!({
            "error": self.oauth_error(),
            "error_description": description,
        })
        .to_string()
    }

    /// The HTTP status to answer with: always 400 (the specification's one failure status).
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

impl From<AuthError> for LogoutError {
    fn from(err: AuthError) -> Self {
        Self::Token(err)
    }
}

/// A logout that was verified and recorded.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Logout {
    /// The revocation recorded.
    pub revocation: Revocation,
    /// The token's `sub`, when present (with a `sid`, the revocation is of the session only).
    pub subject: Option<Box<str>>,
    /// Whether the token named a session (`sid`).
    pub has_session: bool,
    /// The header `typ` the token carried (`logout+jwt`, or none).
    pub header_type: Option<Box<str>>,
}

impl Logout {
    /// The issuer of the ended session.
    pub fn issuer(&self) -> &str {
        self.revocation.issuer()
    }
}

/// The session id is not shown.
impl fmt::Debug for Logout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logout")
            .field("revocation", &self.revocation)
            .field("subject", &self.subject)
            .field("has_session", &self.has_session)
            .field("header_type", &self.header_type)
            .finish()
    }
}

/// Receives back-channel logout tokens for the issuers of one or more [`OidcVerifier`]s and
/// records each logout in that verifier's [`RevocationSet`], so the verifier refuses the ended
/// session's access tokens from then on (cache hits included).
///
/// Built from the verifiers themselves: same keys (no second key store), same algorithm
/// allowlist, leeway and clock, and the same revocation set. Cloning is cheap and shares the
/// replay set.
///
/// ```no_run
/// # async fn run(body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use agentcube_auth_core::MemoryRevocationSet;
/// use agentcube_oidc::{BackchannelLogout, OidcConfig, OidcVerifier};
///
/// let revocations = Arc::new(MemoryRevocationSet::new());
/// let verifier = OidcVerifier::new(
///     OidcConfig::new("https://keycloak.example/realms/agentcube").revocations(revocations),
/// )?;
/// // The client whose back-channel logout URL points here (the logout token's `aud`).
/// let logout = BackchannelLogout::new([&verifier], ["agentcube-cli"])?;
/// match logout.receive_form(body).await {
///     Ok(done) => println!("revoked {:?}", done.revocation.target().kind()),
///     Err(err) => println!("400 {}", err.to_json()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BackchannelLogout {
    inner: Arc<Inner>,
}

struct Inner {
    receivers: Box<[Receiver]>,
    audiences: Box<[String]>,
    replay: Mutex<ReplaySet>,
}

struct Receiver {
    verifier: OidcVerifier,
    revocations: Arc<dyn RevocationSet>,
    policy: JwsPolicy,
}

impl BackchannelLogout {
    /// The default bound of the replay set: 10,000 live logout tokens.
    pub const DEFAULT_REPLAY_CAPACITY: usize = 10_000;

    /// A receiver for the issuers of `verifiers`, accepting logout tokens whose `aud` contains
    /// one of `client_ids` (the clients whose back-channel logout URL points at this service).
    ///
    /// # Errors
    /// [`ConfigError::NoIssuers`] without a verifier, [`ConfigError::DuplicateIssuer`],
    /// [`ConfigError::NoAudience`] without a client id, [`ConfigError::NoRevocationSet`] for a
    /// verifier configured without revocations (its tokens could never be refused).
    pub fn new<'a, I, C, S>(verifiers: I, client_ids: C) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = &'a OidcVerifier>,
        C: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut receivers: Vec<Receiver> = Vec::new();
        for verifier in verifiers {
            if receivers
                .iter()
                .any(|r| r.verifier.issuer() == verifier.issuer())
            {
                return Err(ConfigError::DuplicateIssuer);
            }
            let revocations = verifier
                .revocations()
                .cloned()
                .ok_or(ConfigError::NoRevocationSet)?;
            let (algorithms, _, _) = verifier.rules();
            receivers.push(Receiver {
                verifier: verifier.clone(),
                revocations,
                policy: JwsPolicy {
                    max_token_bytes: verifier.max_token_bytes(),
                    algorithms,
                    types: TypePolicy::new([LOGOUT_TOKEN_TYPE], true),
                },
            });
        }
        if receivers.is_empty() {
            return Err(ConfigError::NoIssuers);
        }
        let audiences: Box<[String]> = client_ids.into_iter().map(Into::into).collect();
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err(ConfigError::NoAudience);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                receivers: receivers.into_boxed_slice(),
                audiences,
                replay: Mutex::new(ReplaySet::new(Self::DEFAULT_REPLAY_CAPACITY)),
            }),
        })
    }

    /// The same receiver with a replay set of at most `capacity` live tokens (a new, empty
    /// set). Call before sharing the receiver.
    #[must_use]
    pub fn with_replay_capacity(self, capacity: usize) -> Self {
        let inner = Inner {
            receivers: self
                .inner
                .receivers
                .iter()
                .map(|r| Receiver {
                    verifier: r.verifier.clone(),
                    revocations: Arc::clone(&r.revocations),
                    policy: r.policy.clone(),
                })
                .collect(),
            audiences: self.inner.audiences.clone(),
            replay: Mutex::new(ReplaySet::new(capacity)),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The accepted audiences (client ids).
    pub fn client_ids(&self) -> &[String] {
        &self.inner.audiences
    }

    /// The issuers served.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.inner.receivers.iter().map(|r| r.verifier.issuer())
    }

    /// Takes the body of a logout request (`application/x-www-form-urlencoded`) and
    /// [`receive`](Self::receive)s its one `logout_token`.
    ///
    /// # Errors
    /// [`LogoutError::InvalidRequest`] when there is not exactly one non-empty `logout_token`,
    /// else as [`receive`](Self::receive).
    pub async fn receive_form(&self, body: &[u8]) -> Result<Logout, LogoutError> {
        let mut tokens = url::form_urlencoded::parse(body)
            .filter(|(name, _)| name == LOGOUT_TOKEN_FIELD)
            .map(|(_, value)| value);
        let (Some(token), None) = (tokens.next(), tokens.next()) else {
            return Err(LogoutError::InvalidRequest);
        };
        if token.is_empty() {
            return Err(LogoutError::InvalidRequest);
        }
        self.receive(&token).await
    }

    /// Verifies `logout_token` (every rule in the [module docs](self)) and records the logout.
    ///
    /// # Errors
    /// The [`LogoutError`] of the first rule that fails; [`LogoutError::Revocation`] when the
    /// revocation could not be recorded (the `jti` is then forgotten, so the same token may be
    /// sent again).
    pub async fn receive(&self, logout_token: &str) -> Result<Logout, LogoutError> {
        let result = self.verify_and_record(logout_token).await;
        match &result {
            Ok(logout) => tracing::info!(
                issuer = logout.issuer(),
                kind = %logout.revocation.target().kind(),
                subject = logout.subject.as_deref().unwrap_or(""),
                revoked_at = logout.revocation.revoked_at(),
                header_typ = logout.header_type.as_deref().unwrap_or("(none)"),
                "back-channel logout: revoked"
            ),
            Err(err) => {
                tracing::info!(code = %err.code(), reason = %err, "back-channel logout refused");
            }
        }
        result
    }

    async fn verify_and_record(&self, logout_token: &str) -> Result<Logout, LogoutError> {
        let receiver = self.route(logout_token)?;
        let verifier = &receiver.verifier;
        let (_, leeway, clock) = verifier.rules();
        // Framing and header: no key is looked up for a token that fails them.
        let jws = UnverifiedJws::parse(logout_token, &receiver.policy)?;
        let header = jws.header();
        let header_type = header.typ.clone();
        let key = verifier
            .issuer_key(header.kid.as_deref(), header.alg)
            .await?;
        let (_, claims) = jws.verify(&key)?;
        let now = clock.now_unix();
        let checked = check_claims(
            &claims,
            verifier.issuer(),
            &self.inner.audiences,
            now,
            leeway,
        )?;
        // Replay: the jti is remembered until the iat rule would refuse the token anyway.
        let replay_key = Digest::of_fields([verifier.issuer().as_bytes(), checked.jti.as_bytes()]);
        let until = checked.issued_at.saturating_add(secs(leeway));
        self.replay().record(replay_key, until, now)?;
        let target = match &checked.session {
            Some(sid) => RevocationTarget::Session(sid.as_str().into()),
            None => match &checked.subject {
                Some(sub) => RevocationTarget::Subject(sub.as_str().into()),
                None => return Err(LogoutError::MissingSessionAndSubject),
            },
        };
        let revocation = Revocation::new(verifier.issuer(), target, checked.issued_at);
        if let Err(err) = receiver.revocations.revoke(revocation.clone()).await {
            self.replay().forget(&replay_key);
            return Err(LogoutError::Revocation(err));
        }
        Ok(Logout {
            revocation,
            subject: checked.subject.map(String::into_boxed_str),
            has_session: checked.session.is_some(),
            header_type,
        })
    }

    /// The receiver of the token's issuer: the only one, or the one its (unverified) `iss`
    /// names; the verifier checks `iss` again after the signature.
    fn route(&self, token: &str) -> Result<&Receiver, LogoutError> {
        let receivers = &self.inner.receivers;
        if let [only] = &**receivers {
            return Ok(only);
        }
        let limit = receivers
            .iter()
            .map(|r| r.policy.max_token_bytes)
            .max()
            .unwrap_or(0);
        if token.len() > limit {
            return Err(AuthError::TokenTooLarge {
                size: token.len(),
                limit,
            }
            .into());
        }
        let claims = UnverifiedJws::peek_claims(token, limit)?;
        let iss = claims.issuer()?.ok_or(AuthError::UnknownIssuer)?;
        receivers
            .iter()
            .find(|r| r.verifier.issuer() == iss)
            .ok_or(LogoutError::Token(AuthError::UnknownIssuer))
    }

    fn replay(&self) -> std::sync::MutexGuard<'_, ReplaySet> {
        self.inner
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for BackchannelLogout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackchannelLogout")
            .field("issuers", &self.issuers().collect::<Vec<_>>())
            .field("client_ids", &self.inner.audiences)
            .finish_non_exhaustive()
    }
}

/// The claims a logout token must carry, checked.
struct Checked {
    issued_at: i64,
    jti: String,
    session: Option<String>,
    subject: Option<String>,
}

/// The claim rules, in order: `iss`, `aud`, `iat`, `exp`, payload `typ`, `jti`, `events`,
/// `nonce`, `sid`/`sub`.
fn check_claims(
    claims: &Claims,
    issuer: &str,
    audiences: &[String],
    now: i64,
    leeway: Duration,
) -> Result<Checked, LogoutError> {
    jose::check_issuer(claims, issuer)?;
    jose::check_audience(claims, audiences)?;
    let leeway = secs(leeway);
    let issued_at = claims
        .issued_at()?
        .ok_or(AuthError::MissingClaim(Cow::Borrowed("iat")))?;
    if issued_at > now.saturating_add(leeway) {
        return Err(AuthError::IssuedInFuture.into());
    }
    if issued_at < now.saturating_sub(leeway) {
        return Err(AuthError::Expired.into());
    }
    if claims
        .expires_at()?
        .is_some_and(|exp| now > exp.saturating_add(leeway))
    {
        return Err(AuthError::Expired.into());
    }
    if let Some(typ) = claims.string("typ")?
        && !typ.eq_ignore_ascii_case(KEYCLOAK_LOGOUT_TYPE)
    {
        return Err(AuthError::TokenTypeMismatch {
            location: TypeLocation::Payload,
            found: Untrusted::new(typ),
        }
        .into());
    }
    let jti = claims
        .jwt_id()?
        .filter(|j| !j.is_empty())
        .ok_or(AuthError::MissingClaim(Cow::Borrowed("jti")))?
        .to_owned();
    let has_event = match claims.get("events") {
        Some(Value::Object(events)) => {
            matches!(events.get(BACKCHANNEL_LOGOUT_EVENT), Some(Value::Object(_)))
        }
        _ => false,
    };
    if !has_event {
        return Err(LogoutError::MissingEvent);
    }
    if claims.get("nonce").is_some() {
        return Err(LogoutError::NoncePresent);
    }
    let session = claims
        .string("sid")?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let subject = claims
        .subject()?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if session.is_none() && subject.is_none() {
        return Err(LogoutError::MissingSessionAndSubject);
    }
    Ok(Checked {
        issued_at,
        jti,
        session,
        subject,
    })
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The `jti`s of live logout tokens (per issuer), each until the time after which the `iat`
/// rule refuses its token.
struct ReplaySet {
    seen: HashMap<Digest, i64, DigestHasher>,
    capacity: usize,
}

impl ReplaySet {
    fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::default(),
            capacity,
        }
    }

    fn record(&mut self, key: Digest, until: i64, now: i64) -> Result<(), AuthError> {
        if self.seen.get(&key).is_some_and(|&t| t >= now) {
            return Err(AuthError::TokenReplayed);
        }
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, t| *t >= now);
            if self.seen.len() >= self.capacity {
                return Err(AuthError::ReplayGuardFull);
            }
        }
        self.seen.insert(key, until);
        Ok(())
    }

    fn forget(&mut self, key: &Digest) {
        self.seen.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_set_refuses_live_repeats_and_is_bounded() {
        let mut set = ReplaySet::new(2);
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        assert_eq!(set.record(a, 130, 100), Ok(()));
        assert_eq!(set.record(a, 130, 120), Err(AuthError::TokenReplayed));
        assert_eq!(set.record(b, 140, 120), Ok(()));
        assert_eq!(set.record(c, 150, 120), Err(AuthError::ReplayGuardFull));
        // Once a's window is over, its slot is free again.
        assert_eq!(set.record(c, 160, 131), Ok(()));
        set.forget(&c);
        assert_eq!(set.record(c, 160, 132), Ok(()));
    }

    #[test]
    fn error_bodies_are_oidc_errors_with_the_code() {
        let body: Value = serde_json::from_str(&LogoutError::NoncePresent.to_json()).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], "logout token carries a nonce");
        let body: Value =
            serde_json::from_str(&LogoutError::Token(AuthError::AudienceMismatch).to_json())
                .unwrap();
        assert_eq!(
            body["error_description"],
            "audience_mismatch: invalid or expired token"
        );
        let err = LogoutError::Revocation(RevocationError::Unavailable("down".into()));
        assert_eq!(err.code(), "revocation_store_unavailable");
        assert!(!err.to_json().contains("down"));
    }
}

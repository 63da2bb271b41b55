//! Rejections: one error type for authentication and authorization, with a stable machine code,
//! an HTTP status and the RFC 6750 challenge.
//!
//! Messages are lowercase, have no trailing period and never contain the token. Values that come
//! from an attacker (an `alg` name, a claim name) are bounded and sanitised before they are stored.

use std::borrow::Cow;
use std::fmt;

use ::http::StatusCode;

use crate::rejection::{Code, Rejection, ServiceError};
use crate::role::Role;

/// A stable, machine-readable code for every rejection.
///
/// The string forms ([`ErrorCode::as_str`]) are part of the public contract: logs, metrics, JSON
/// error bodies and the `verify-token` tool all use them. New codes may be added; existing ones
/// never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No `Authorization` header (or other credential carrier) was sent.
    MissingAuthorization,
    /// The `Authorization` header is not `Bearer <token>`.
    InvalidAuthorizationFormat,
    /// `Bearer` followed by nothing but whitespace.
    EmptyBearerToken,
    /// The token is not a well-formed compact JWS.
    Malformed,
    /// The token is longer than the configured limit.
    TokenTooLarge,
    /// The header `alg` is not in the allowlist (this includes `none` and HMAC for remote keys).
    AlgorithmNotAllowed,
    /// The header carries a `crit` member; no extension is understood, so all are rejected.
    UnsupportedCriticalHeader,
    /// The header or payload `typ` names a kind of token that is not accepted here.
    TokenTypeMismatch,
    /// No key in the key set has the token's `kid`.
    UnknownKid,
    /// A key with the token's `kid` exists but cannot be used with the token's `alg`.
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    InvalidSignature,
    /// The token's issuer is not one of the configured issuers.
    UnknownIssuer,
    /// `iss` differs from the configured issuer.
    IssuerMismatch,
    /// `aud` contains none of the accepted audiences.
    AudienceMismatch,
    /// `exp` is in the past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    IssuedInFuture,
    /// A required claim is absent or empty.
    MissingClaim,
    /// A claim has the wrong JSON type or an impossible value.
    InvalidClaim,
    /// `exp - iat` is longer than the configured maximum lifetime.
    LifetimeTooLong,
    /// `azp` is not in the configured allowlist.
    AzpNotAllowed,
    /// The token's `jti` was already used.
    TokenReplayed,
    /// No verification keys are available yet (the issuer is unreachable or not loaded).
    KeysUnavailable,
    /// The caller is authenticated but lacks a required role.
    InsufficientRole,
    /// The replay guard is full of live tokens and cannot record another, so it cannot
    /// decide whether this one was used before.
    ReplayGuardFull,
    /// The caller is authenticated but the token lacks a required OAuth scope.
    InsufficientScope,
    /// The caller is authenticated but lacks a required permission (a permissions claim such
    /// as Auth0's `permissions`).
    InsufficientPermission,
    /// A claim mapper, verifier or service refused the caller with a code of its own
    /// ([`AuthError::Custom`]). The response carries that [`ServiceError`]'s code, status and
    /// message; `custom` only names the kind, for code that matches on [`ErrorCode`].
    Custom,
    /// The token is genuine and current, but was revoked after it was issued: its session was
    /// logged out at the identity provider, or its subject or client was revoked by hand
    /// (see [`RevocationSet`](crate::RevocationSet)).
    TokenRevoked,
}

impl ErrorCode {
    /// Every code, in declaration order (useful for metrics tables and exhaustive tests).
    pub const ALL: [ErrorCode; 29] = [
        Self::MissingAuthorization,
        Self::InvalidAuthorizationFormat,
        Self::EmptyBearerToken,
        Self::Malformed,
        Self::TokenTooLarge,
        Self::AlgorithmNotAllowed,
        Self::UnsupportedCriticalHeader,
        Self::TokenTypeMismatch,
        Self::UnknownKid,
        Self::KeyAlgorithmMismatch,
        Self::InvalidSignature,
        Self::UnknownIssuer,
        Self::IssuerMismatch,
        Self::AudienceMismatch,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::MissingClaim,
        Self::InvalidClaim,
        Self::LifetimeTooLong,
        Self::AzpNotAllowed,
        Self::TokenReplayed,
        Self::KeysUnavailable,
        Self::InsufficientRole,
        Self::ReplayGuardFull,
        Self::InsufficientScope,
        Self::InsufficientPermission,
        Self::Custom,
        Self::TokenRevoked,
    ];

    /// The stable snake_case name of the code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingAuthorization => "missing_authorization",
            Self::InvalidAuthorizationFormat => "invalid_authorization_format",
            Self::EmptyBearerToken => "empty_bearer_token",
            Self::Malformed => "malformed",
            Self::TokenTooLarge => "token_too_large",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCriticalHeader => "unsupported_critical_header",
            Self::TokenTypeMismatch => "token_type_mismatch",
            Self::UnknownKid => "unknown_kid",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::InvalidSignature => "invalid_signature",
            Self::UnknownIssuer => "unknown_issuer",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::AudienceMismatch => "audience_mismatch",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::AzpNotAllowed => "azp_not_allowed",
            Self::TokenReplayed => "token_replayed",
            Self::KeysUnavailable => "keys_unavailable",
            Self::InsufficientRole => "insufficient_role",
            Self::ReplayGuardFull => "replay_guard_full",
            Self::InsufficientScope => "insufficient_scope",
            Self::InsufficientPermission => "insufficient_permission",
            Self::Custom => "custom",
            Self::TokenRevoked => "token_revoked",
        }
    }

    /// The code as the workspace-wide [`Code`] type.
    pub const fn code(self) -> Code {
        Code::new(self.as_str())
    }

    /// The HTTP status a server should answer with: 401, 403 or 503.
    ///
    /// `custom` is 403 here; an [`AuthError::Custom`] answers with its own status.
    pub const fn http_status(self) -> StatusCode {
        match self {
            Self::InsufficientRole
            | Self::InsufficientScope
            | Self::InsufficientPermission
            | Self::Custom => StatusCode::FORBIDDEN,
            Self::KeysUnavailable | Self::ReplayGuardFull => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` challenge for this code (RFC 6750 §3), if the response carries one.
    ///
    /// A request without credentials gets a bare `Bearer` challenge (RFC 6750 §3.1 says not to
    /// name an error then); a bad token gets `invalid_token`; a missing role gets
    /// `insufficient_scope`; an unavailable key set (503) gets none, since the client did
    /// nothing wrong.
    ///
    /// A missing role, scope or permission gets `insufficient_scope` (RFC 6750's one error for
    /// "the token does not grant enough"); [`Rejection::challenge`] of an
    /// [`AuthError::InsufficientScope`] adds the `scope` attribute naming the scope. `custom`
    /// has none here; an [`AuthError::Custom`] carries its own.
    pub const fn www_authenticate(self) -> Option<&'static str> {
        match self {
            Self::MissingAuthorization => Some("Bearer"),
            Self::InsufficientRole | Self::InsufficientScope | Self::InsufficientPermission => {
                Some("Bearer error=\"insufficient_scope\"")
            }
            Self::KeysUnavailable | Self::ReplayGuardFull | Self::Custom => None,
            _ => Some("Bearer error=\"invalid_token\""),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token is not a well-formed compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedReason {
    /// The token is empty.
    Empty,
    /// The token does not have exactly three dot-separated segments.
    SegmentCount,
    /// A segment is not unpadded base64url.
    Base64,
    /// The header is not a JSON object.
    HeaderJson,
    /// The payload is not a JSON object.
    PayloadJson,
    /// A JSON object in the header or payload has the same member twice.
    DuplicateMember,
    /// The header has no `alg`, or a member of the wrong type.
    HeaderField,
    /// The token is an encrypted JWT (JWE), which is not accepted.
    Encrypted,
    /// The signature has the wrong length or encoding for the algorithm.
    SignatureEncoding,
    /// The `kid` is empty, too long or not printable.
    KeyId,
    /// The decoded header is larger than [`MAX_HEADER_BYTES`](crate::jose::MAX_HEADER_BYTES).
    HeaderTooLarge,
}

impl MalformedReason {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty token",
            Self::SegmentCount => "expected three dot-separated segments",
            Self::Base64 => "segment is not unpadded base64url",
            Self::HeaderJson => "header is not a json object",
            Self::PayloadJson => "payload is not a json object",
            Self::DuplicateMember => "duplicate json member",
            Self::HeaderField => "header member missing or of the wrong type",
            Self::Encrypted => "encrypted tokens are not accepted",
            Self::SignatureEncoding => "signature has the wrong length or encoding",
            Self::KeyId => "kid is empty, too long or not printable",
            Self::HeaderTooLarge => "header is larger than 1024 bytes",
        }
    }
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of the token carried an unacceptable `typ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeLocation {
    /// The JOSE header `typ`.
    Header,
    /// The payload `typ` claim (Keycloak: `Bearer`, `ID`, `Refresh`, `Logout`).
    Payload,
}

/// Why verification keys are unavailable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeysUnavailableReason {
    /// No key set has been loaded yet and the last attempt failed (or none was made).
    NotLoaded,
    /// The last good key set is older than the permitted staleness and refreshes keep failing.
    TooStale,
}

/// A short, printable, bounded copy of a value the attacker chose (an `alg`, a claim name).
///
/// Keeps at most 32 characters; anything outside printable ASCII becomes `?`.
#[derive(Clone, PartialEq, Eq)]
pub struct Untrusted(Box<str>);

impl Untrusted {
    const MAX: usize = 32;

    /// Copies and sanitises `value`.
    pub fn new(value: &str) -> Self {
        let mut out = String::with_capacity(value.len().min(Self::MAX));
        for c in value.chars().take(Self::MAX) {
            out.push(if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            });
        }
        Self(out.into_boxed_str())
    }

    /// The sanitised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every reason a request is not authenticated or not authorized.
///
/// Use [`AuthError::code`] for decisions and metrics, never the message text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// See [`ErrorCode::MissingAuthorization`].
    #[error("missing authorization header")]
    MissingAuthorization,
    /// See [`ErrorCode::InvalidAuthorizationFormat`].
    #[error("invalid authorization header format")]
    InvalidAuthorizationFormat,
    /// See [`ErrorCode::EmptyBearerToken`].
    #[error("empty bearer token")]
    EmptyBearerToken,
    /// See [`ErrorCode::Malformed`].
    #[error("malformed token: {0}")]
    Malformed(MalformedReason),
    /// See [`ErrorCode::TokenTooLarge`].
    #[error("token is {size} bytes, over the limit of {limit}")]
    TokenTooLarge {
        /// The token's length in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// See [`ErrorCode::AlgorithmNotAllowed`].
    #[error("signing algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(Untrusted),
    /// See [`ErrorCode::UnsupportedCriticalHeader`].
    #[error("token has critical header extensions, which are not supported")]
    UnsupportedCriticalHeader,
    /// See [`ErrorCode::TokenTypeMismatch`].
    #[error("token type {found:?} in the {location:?} is not accepted")]
    TokenTypeMismatch {
        /// Where the `typ` was found.
        location: TypeLocation,
        /// The value found.
        found: Untrusted,
    },
    /// See [`ErrorCode::UnknownKid`].
    #[error("no verification key matches the token's key id")]
    UnknownKid,
    /// See [`ErrorCode::KeyAlgorithmMismatch`].
    #[error("the key for this token cannot be used with its signing algorithm")]
    KeyAlgorithmMismatch,
    /// See [`ErrorCode::InvalidSignature`].
    #[error("token signature is invalid")]
    InvalidSignature,
    /// See [`ErrorCode::UnknownIssuer`].
    #[error("token issuer is not configured")]
    UnknownIssuer,
    /// See [`ErrorCode::IssuerMismatch`].
    #[error("token issuer does not match the configured issuer")]
    IssuerMismatch,
    /// See [`ErrorCode::AudienceMismatch`].
    #[error("token audience does not include an accepted audience")]
    AudienceMismatch,
    /// See [`ErrorCode::Expired`].
    #[error("token has expired")]
    Expired,
    /// See [`ErrorCode::NotYetValid`].
    #[error("token is not yet valid")]
    NotYetValid,
    /// See [`ErrorCode::IssuedInFuture`].
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// See [`ErrorCode::MissingClaim`].
    #[error("token is missing the required {0:?} claim")]
    MissingClaim(Cow<'static, str>),
    /// See [`ErrorCode::InvalidClaim`].
    #[error("token claim {0:?} has the wrong type or value")]
    InvalidClaim(Cow<'static, str>),
    /// See [`ErrorCode::LifetimeTooLong`].
    #[error("token lifetime of {lifetime_secs} s exceeds the maximum of {max_secs} s")]
    LifetimeTooLong {
        /// `exp - iat` in seconds.
        lifetime_secs: i64,
        /// The configured cap in seconds.
        max_secs: u64,
    },
    /// See [`ErrorCode::AzpNotAllowed`].
    #[error("token authorized party is not allowed")]
    AzpNotAllowed,
    /// See [`ErrorCode::TokenReplayed`].
    #[error("token was already used")]
    TokenReplayed,
    /// See [`ErrorCode::KeysUnavailable`].
    #[error("verification keys are unavailable")]
    KeysUnavailable(KeysUnavailableReason),
    /// See [`ErrorCode::InsufficientRole`].
    #[error("insufficient permissions: missing role {0}")]
    InsufficientRole(Role),
    /// See [`ErrorCode::ReplayGuardFull`].
    #[error("replay guard is full")]
    ReplayGuardFull,
    /// See [`ErrorCode::InsufficientScope`]: the scope that was required and not granted.
    #[error("insufficient permissions: missing scope {0}")]
    InsufficientScope(Box<str>),
    /// See [`ErrorCode::InsufficientPermission`]: the permission that was required and not
    /// granted.
    #[error("insufficient permissions: missing permission {0}")]
    InsufficientPermission(Box<str>),
    /// See [`ErrorCode::Custom`]: a refusal with the service's own code, status, message and
    /// challenge (a suspended tenant), answered exactly as the [`ServiceError`] would be.
    /// Build one with [`AuthError::custom`] or `From<ServiceError>`.
    #[error("{0}")]
    Custom(Box<ServiceError>),
    /// See [`ErrorCode::TokenRevoked`].
    #[error("token was revoked")]
    TokenRevoked,
}

impl AuthError {
    /// The stable machine code of this error.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::MissingAuthorization => ErrorCode::MissingAuthorization,
            Self::InvalidAuthorizationFormat => ErrorCode::InvalidAuthorizationFormat,
            Self::EmptyBearerToken => ErrorCode::EmptyBearerToken,
            Self::Malformed(_) => ErrorCode::Malformed,
            Self::TokenTooLarge { .. } => ErrorCode::TokenTooLarge,
            Self::AlgorithmNotAllowed(_) => ErrorCode::AlgorithmNotAllowed,
            Self::UnsupportedCriticalHeader => ErrorCode::UnsupportedCriticalHeader,
            Self::TokenTypeMismatch { .. } => ErrorCode::TokenTypeMismatch,
            Self::UnknownKid => ErrorCode::UnknownKid,
            Self::KeyAlgorithmMismatch => ErrorCode::KeyAlgorithmMismatch,
            Self::InvalidSignature => ErrorCode::InvalidSignature,
            Self::UnknownIssuer => ErrorCode::UnknownIssuer,
            Self::IssuerMismatch => ErrorCode::IssuerMismatch,
            Self::AudienceMismatch => ErrorCode::AudienceMismatch,
            Self::Expired => ErrorCode::Expired,
            Self::NotYetValid => ErrorCode::NotYetValid,
            Self::IssuedInFuture => ErrorCode::IssuedInFuture,
            Self::MissingClaim(_) => ErrorCode::MissingClaim,
            Self::InvalidClaim(_) => ErrorCode::InvalidClaim,
            Self::LifetimeTooLong { .. } => ErrorCode::LifetimeTooLong,
            Self::AzpNotAllowed => ErrorCode::AzpNotAllowed,
            Self::TokenReplayed => ErrorCode::TokenReplayed,
            Self::KeysUnavailable(_) => ErrorCode::KeysUnavailable,
            Self::InsufficientRole(_) => ErrorCode::InsufficientRole,
            Self::ReplayGuardFull => ErrorCode::ReplayGuardFull,
            Self::InsufficientScope(_) => ErrorCode::InsufficientScope,
            Self::InsufficientPermission(_) => ErrorCode::InsufficientPermission,
            Self::Custom(_) => ErrorCode::Custom,
            Self::TokenRevoked => ErrorCode::TokenRevoked,
        }
    }

    /// A refusal with the service's own code and status (see [`AuthError::Custom`]).
    pub fn custom(error: ServiceError) -> Self {
        Self::Custom(Box::new(error))
    }

    /// The HTTP status for this error (see [`ErrorCode::http_status`]); an
    /// [`AuthError::Custom`] answers with its own.
    pub const fn http_status(&self) -> StatusCode {
        match self {
            Self::Custom(error) => error.status,
            _ => self.code().http_status(),
        }
    }

    /// The `WWW-Authenticate` value of this error's code (see [`ErrorCode::www_authenticate`]).
    ///
    /// Responses use [`Rejection::challenge`], which is this value plus what the error itself
    /// carries: the `scope` attribute of an [`AuthError::InsufficientScope`], the service's
    /// own challenge of an [`AuthError::Custom`].
    pub const fn www_authenticate(&self) -> Option<&'static str> {
        self.code().www_authenticate()
    }

    /// The message a client may see.
    ///
    /// For a bad token this is `invalid or expired token`, the one message existing clients
    /// match on; for the other errors it is the [`Display`](fmt::Display) text. The precise
    /// reason is [`AuthError::code`], and a response carries it too (the `code` member of the
    /// JSON error body the `http` feature renders): programs, the command-line tools and
    /// external tests branch on it, and it names only which rule the token broke,
    /// which the caller can work out anyway (a token's claims are readable without a key, an
    /// issuer's keys are public). What stays in the server's logs is the detail behind the
    /// code: which claim, which `kid`, the sanitised copies of the token's values in the
    /// [`Display`](fmt::Display) text.
    pub fn public_message(&self) -> Cow<'static, str> {
        match self {
            Self::MissingAuthorization
            | Self::InvalidAuthorizationFormat
            | Self::EmptyBearerToken
            | Self::KeysUnavailable(_)
            | Self::ReplayGuardFull
            | Self::InsufficientRole(_)
            | Self::InsufficientScope(_)
            | Self::InsufficientPermission(_) => Cow::Owned(self.to_string()),
            Self::Custom(error) => error.public_message(),
            _ => Cow::Borrowed("invalid or expired token"),
        }
    }
}

impl From<ServiceError> for AuthError {
    fn from(error: ServiceError) -> Self {
        Self::custom(error)
    }
}

impl Rejection for AuthError {
    fn code(&self) -> Code {
        match self {
            Self::Custom(error) => error.code(),
            _ => AuthError::code(self).code(),
        }
    }

    fn status(&self) -> StatusCode {
        self.http_status()
    }

    fn public_message(&self) -> Cow<'static, str> {
        AuthError::public_message(self)
    }

    /// [`AuthError::www_authenticate`], with `scope="<scope>"` for a missing scope (RFC 6750
    /// §3; left out when the name is not a valid scope token) and the service's own challenge
    /// for [`AuthError::Custom`].
    fn challenge(&self) -> Option<Cow<'static, str>> {
        match self {
            Self::InsufficientScope(scope) if is_scope_token(scope) => Some(Cow::Owned(format!(
                "Bearer error=\"insufficient_scope\", scope=\"{scope}\""
            ))),
            Self::Custom(error) => error.challenge(),
            _ => self.www_authenticate().map(Cow::Borrowed),
        }
    }
}

/// An OAuth scope token (RFC 6749 §3.3: printable ASCII without space, `"` and `\\`), which can
/// be quoted in a challenge as it is.
fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

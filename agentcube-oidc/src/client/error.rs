//! [`ClientError`]: why a token could not be obtained or used.

use std::fmt;

use agentcube_auth_core::Code;

use crate::http::{DiscoveryError, HttpError, MAX_ISSUER_IN_ERROR, printable};

/// Why a token could not be obtained, or an authorized request could not be sent.
///
/// Use [`ClientError::code`] for decisions, metrics and logs, never the message text. Messages are
/// lowercase and never contain a token, a client secret, a refresh token, an authorization code or
/// a device code. Text that comes from the authorization server (`error`, `error_description`) is
/// bounded and reduced to printable ASCII before it is stored.
///
/// The error is `Clone` because one token request may answer many concurrent callers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A static token is empty or whitespace. Code `empty_token`.
    #[error("token must not be empty")]
    EmptyToken,
    /// A token contains characters that cannot be sent in an HTTP header. Code `invalid_token`.
    #[error("token contains characters that are not allowed in an http header")]
    InvalidToken,
    /// The configuration is incomplete or invalid (a URL, a missing endpoint).
    /// Code `invalid_config`.
    #[error("invalid client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The discovery document could not be used. Code `discovery_failed`.
    #[error("openid discovery failed: {reason}")]
    Discovery {
        /// What is wrong.
        reason: String,
    },
    /// The discovery document names another issuer than the configured one. Code `issuer_mismatch`.
    #[error(
        "discovery document issuer {found:?} does not match the configured issuer {expected:?}"
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the document (bounded, printable ASCII).
        found: String,
    },
    /// The request could not be sent or its response not read (connection refused, DNS, TLS,
    /// reset). Retried with backoff before it is returned. Code `network_error`.
    #[error("request to the {endpoint} failed: {message}")]
    Network {
        /// Which endpoint was called (`token endpoint`, `discovery document`, …).
        endpoint: &'static str,
        /// What went wrong, without the URL.
        message: String,
    },
    /// The request timed out (connect or total). Retried with backoff before it is returned.
    /// Code `timeout`.
    #[error("request to the {endpoint} timed out")]
    Timeout {
        /// Which endpoint was called.
        endpoint: &'static str,
    },
    /// The endpoint answered a non-success status without an OAuth error body. 5xx answers are
    /// retried with backoff before this is returned; 4xx answers are not retried.
    /// Code `http_status`.
    #[error("the {endpoint} answered http {status}")]
    HttpStatus {
        /// Which endpoint was called.
        endpoint: &'static str,
        /// The HTTP status code.
        status: u16,
    },
    /// The authorization server answered with an OAuth error (`error`, `error_description`), e.g.
    /// `invalid_client` for a wrong secret or `invalid_grant` for an expired refresh token.
    /// Code `oauth_error`.
    #[error("{}", OAuthDisplay { error, description: description.as_deref(), status: *status })]
    OAuth {
        /// The OAuth `error` code (bounded, printable ASCII).
        error: String,
        /// The `error_description`, if any (bounded, printable ASCII).
        description: Option<String>,
        /// The HTTP status of the answer; `None` for an error delivered to the redirect URI.
        status: Option<u16>,
    },
    /// A success response is not a usable token response or document (malformed JSON, missing
    /// or empty `access_token`, a field of the wrong type). Code `invalid_response`.
    #[error("invalid response from the {endpoint}: {reason}")]
    InvalidResponse {
        /// Which endpoint was called.
        endpoint: &'static str,
        /// What is wrong (never a field's value).
        reason: &'static str,
    },
    /// The token response's `token_type` is not `Bearer` (compared case-insensitively), e.g.
    /// `DPoP` or `mac`; such a token cannot be sent as a bearer token. Code
    /// `unsupported_token_type`.
    #[error("token type {found:?} is not supported, only bearer tokens are")]
    UnsupportedTokenType {
        /// The `token_type` received (bounded, printable ASCII).
        found: String,
    },
    /// The user or the server denied the authorization (`access_denied`). Code `access_denied`.
    #[error("authorization was denied{}", Suffix(description.as_deref()))]
    AccessDenied {
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The device code expired before the user approved the request (`expired_token`, or the
    /// `expires_in` of the device authorization passed). Code `expired_token`.
    #[error("the device code expired before the user approved the request")]
    ExpiredToken,
    /// The redirect carried a `state` other than the one sent (a forged or stale callback).
    /// Code `state_mismatch`.
    #[error("the authorization callback has a state that does not match the request")]
    StateMismatch,
    /// The ID token returned with the code exchange has no `nonce` or another one than sent.
    /// Code `nonce_mismatch`.
    #[error("the id token nonce does not match the authorization request")]
    NonceMismatch,
    /// The authorization callback is not usable (no `code`, malformed request). Code
    /// `invalid_callback`.
    #[error("invalid authorization callback: {reason}")]
    InvalidCallback {
        /// What is wrong.
        reason: &'static str,
    },
    /// No authorization callback arrived within the allowed time. Code `callback_timeout`.
    #[error("no authorization callback arrived in time")]
    CallbackTimeout,
    /// A local I/O operation failed (binding the loopback listener). Code `io_error`.
    #[error("i/o error: {message}")]
    Io {
        /// What went wrong.
        message: String,
    },
    /// The token response has no refresh token, so the access token cannot be renewed.
    /// Code `no_refresh_token`.
    #[error("no refresh token was issued, so the access token cannot be renewed")]
    NoRefreshToken,
    /// The task fetching the token ended without an answer (the runtime is shutting down).
    /// Code `cancelled`.
    #[error("the token request was cancelled")]
    Cancelled,
}

impl ClientError {
    /// The stable snake_case code of the error.
    ///
    /// The codes are part of the public contract: `empty_token`, `invalid_token`,
    /// `invalid_config`, `discovery_failed`, `issuer_mismatch`, `network_error`, `timeout`,
    /// `http_status`, `oauth_error`, `invalid_response`, `unsupported_token_type`,
    /// `access_denied`, `expired_token`, `state_mismatch`, `nonce_mismatch`, `invalid_callback`,
    /// `callback_timeout`, `io_error`, `no_refresh_token`, `cancelled`.
    pub const fn code(&self) -> Code {
        match self {
            Self::EmptyToken => Code::new("empty_token"),
            Self::InvalidToken => Code::new("invalid_token"),
            Self::Config { .. } => Code::new("invalid_config"),
            Self::Discovery { .. } => Code::new("discovery_failed"),
            Self::IssuerMismatch { .. } => Code::new("issuer_mismatch"),
            Self::Network { .. } => Code::new("network_error"),
            Self::Timeout { .. } => Code::new("timeout"),
            Self::HttpStatus { .. } => Code::new("http_status"),
            Self::OAuth { .. } => Code::new("oauth_error"),
            Self::InvalidResponse { .. } => Code::new("invalid_response"),
            Self::UnsupportedTokenType { .. } => Code::new("unsupported_token_type"),
            Self::AccessDenied { .. } => Code::new("access_denied"),
            Self::ExpiredToken => Code::new("expired_token"),
            Self::StateMismatch => Code::new("state_mismatch"),
            Self::NonceMismatch => Code::new("nonce_mismatch"),
            Self::InvalidCallback { .. } => Code::new("invalid_callback"),
            Self::CallbackTimeout => Code::new("callback_timeout"),
            Self::Io { .. } => Code::new("io_error"),
            Self::NoRefreshToken => Code::new("no_refresh_token"),
            Self::Cancelled => Code::new("cancelled"),
        }
    }

    /// The OAuth `error` code when the server sent one (`invalid_client`, `invalid_grant`, …).
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::OAuth { error, .. } => Some(error),
            Self::AccessDenied { .. } => Some("access_denied"),
            Self::ExpiredToken => Some("expired_token"),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: network errors, timeouts and 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network { .. } | Self::Timeout { .. } => true,
            Self::HttpStatus { status, .. } => *status >= 500,
            Self::OAuth {
                status: Some(status),
                ..
            } => *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config {
            reason: reason.into(),
        }
    }

    pub(crate) fn discovery(reason: impl Into<String>) -> Self {
        Self::Discovery {
            reason: reason.into(),
        }
    }

    /// An OAuth error answer (`error`, `error_description`) with its HTTP status, bounded and
    /// reduced to printable ASCII.
    pub(crate) fn oauth(error: &str, description: Option<&str>, status: u16) -> Self {
        Self::OAuth {
            error: printable(error, 64),
            description: description
                .filter(|d| !d.is_empty())
                .map(|d| printable(d, 300)),
            status: Some(status),
        }
    }

    /// A request to `endpoint` that got no answer.
    pub(crate) fn from_http(endpoint: &'static str, error: HttpError) -> Self {
        match error {
            HttpError::Network(message) => Self::Network { endpoint, message },
            HttpError::Timeout => Self::Timeout { endpoint },
            HttpError::TooLarge { .. } => Self::InvalidResponse {
                endpoint,
                reason: "response body is too large",
            },
        }
    }

    /// A discovery document of `issuer` that cannot be used.
    pub(crate) fn from_discovery(issuer: &str, error: &DiscoveryError) -> Self {
        match error {
            DiscoveryError::IssuerMismatch { found } => Self::IssuerMismatch {
                expected: printable(issuer, MAX_ISSUER_IN_ERROR),
                found: found.clone(),
            },
            other => Self::discovery(other.reason()),
        }
    }
}

struct OAuthDisplay<'a> {
    error: &'a str,
    description: Option<&'a str>,
    status: Option<u16>,
}

impl fmt::Display for OAuthDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authorization server error {}", self.error)?;
        if let Some(description) = self.description {
            write!(f, ": {description}")?;
        }
        if let Some(status) = self.status {
            write!(f, " (http {status})")?;
        }
        Ok(())
    }
}

struct Suffix<'a>(Option<&'a str>);

impl fmt::Display for Suffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(text) => write!(f, ": {text}"),
            None => Ok(()),
        }
    }
}

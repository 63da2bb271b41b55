//! The one error contract: what every error that can reach a client says about itself.
//!
//! Token rejections ([`AuthError`](crate::AuthError)), ownership denials, store outages and a
//! service's own refusals all answer the same four questions — a stable code, an HTTP status, a
//! message safe to show, and an optional RFC 6750 challenge — so one renderer turns any of them
//! into a response and one metrics label set covers them all.

use std::borrow::Cow;
use std::fmt;

use ::http::StatusCode;

/// A stable, machine-readable snake_case error code (`expired`, `not_owner`,
/// `store_unavailable`, …).
///
/// The text is part of the public contract of whichever crate defines it: logs, metrics and
/// JSON error bodies use it, and it never changes meaning. Compare codes, never messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(&'static str);

impl Code {
    /// A code from its snake_case text.
    ///
    /// # Panics
    /// At compile time (in a `const`) or at once, if `code` is empty or not lowercase ASCII
    /// letters, digits and underscores: codes are constants, so a bad one is a programming
    /// error.
    #[allow(clippy::panic, clippy::indexing_slicing)] // `i < len`; a bad constant is a bug
    pub const fn new(code: &'static str) -> Self {
        let bytes = code.as_bytes();
        assert!(!bytes.is_empty(), "an error code is not empty");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
                "an error code is snake_case"
            );
            i += 1;
        }
        Self(code)
    }

    /// The code's text.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Code> for &str {
    fn eq(&self, other: &Code) -> bool {
        *self == other.0
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// An error that can reach a client: it knows its stable code, its HTTP status, the message a
/// client may see and the `WWW-Authenticate` challenge, if any.
///
/// Implemented by every error type in this workspace that a service answers with. Render one
/// with `http::error_response` (feature `http`), or convert it into a [`ServiceError`] to
/// return it from an axum handler (feature `axum`).
pub trait Rejection {
    /// The stable machine code.
    fn code(&self) -> Code;

    /// The HTTP status to answer with.
    fn status(&self) -> StatusCode;

    /// The message a client may see: lowercase, no trailing period, never a token, a secret or
    /// anything the caller should not learn.
    fn public_message(&self) -> Cow<'static, str>;

    /// The `WWW-Authenticate` value (RFC 6750 §3), for errors that carry one. Default: none.
    ///
    /// Usually a constant (`Bearer`, `Bearer error="invalid_token"`); built for errors that name
    /// what they need, such as `Bearer error="insufficient_scope", scope="admin:write"`. A value
    /// that is not a valid header value is left out of the response.
    fn challenge(&self) -> Option<Cow<'static, str>> {
        None
    }

    /// The same answer as a [`ServiceError`] value (code, status, message, challenge).
    fn to_service_error(&self) -> ServiceError {
        ServiceError {
            code: self.code(),
            status: self.status(),
            message: self.public_message(),
            challenge: self.challenge(),
        }
    }
}

impl<R: Rejection + ?Sized> Rejection for &R {
    fn code(&self) -> Code {
        (**self).code()
    }
    fn status(&self) -> StatusCode {
        (**self).status()
    }
    fn public_message(&self) -> Cow<'static, str> {
        (**self).public_message()
    }
    fn challenge(&self) -> Option<Cow<'static, str>> {
        (**self).challenge()
    }
}

/// A rejection defined by a service, a claim mapper or a handler: its own stable code, status
/// and message (a suspended tenant, an unknown session, an upstream failure), answered exactly
/// like the library's own errors.
///
/// # Example
/// ```
/// use agentcube_auth_core::{Code, Rejection, ServiceError};
/// use http::StatusCode;
///
/// const TENANT_SUSPENDED: Code = Code::new("tenant_suspended");
///
/// let err = ServiceError::new(StatusCode::FORBIDDEN, TENANT_SUSPENDED, "tenant is suspended");
/// assert_eq!(err.code(), "tenant_suspended");
/// assert_eq!(err.status(), StatusCode::FORBIDDEN);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    code: Code,
    pub(crate) status: StatusCode,
    message: Cow<'static, str>,
    challenge: Option<Cow<'static, str>>,
}

impl ServiceError {
    /// A rejection with `status`, `code` and a client-safe `message`.
    pub fn new(status: StatusCode, code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
            challenge: None,
        }
    }

    /// Adds a `WWW-Authenticate` challenge (for a 401 or 403 of the service's own).
    #[must_use]
    pub fn with_challenge(mut self, challenge: impl Into<Cow<'static, str>>) -> Self {
        self.challenge = Some(challenge.into());
        self
    }
}

impl Rejection for ServiceError {
    fn code(&self) -> Code {
        self.code
    }
    fn status(&self) -> StatusCode {
        self.status
    }
    fn public_message(&self) -> Cow<'static, str> {
        self.message.clone()
    }
    fn challenge(&self) -> Option<Cow<'static, str>> {
        self.challenge.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_compare_with_text() {
        const C: Code = Code::new("not_owner");
        assert_eq!(C, "not_owner");
        assert_eq!("not_owner", C);
        assert_eq!(C.to_string(), "not_owner");
        assert_eq!(format!("{C:?}"), "\"not_owner\"");
    }

    #[test]
    #[should_panic(expected = "snake_case")]
    fn a_code_that_is_not_snake_case_is_refused() {
        let _ = Code::new("Not-Owner");
    }

    #[test]
    fn a_service_error_is_a_rejection() {
        let err = ServiceError::new(
            StatusCode::NOT_FOUND,
            Code::new("session_not_found"),
            "session not found",
        );
        let same = err.to_service_error();
        assert_eq!(same, err);
        assert_eq!(err.challenge(), None);
        assert_eq!(err.to_string(), "session not found");
        let with = err.with_challenge("Bearer");
        assert_eq!(with.challenge().as_deref(), Some("Bearer"));
    }
}

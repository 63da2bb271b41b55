//! Rendering a [`Rejection`] as an HTTP response (RFC 6750 §3).

use ::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use ::http::{HeaderValue, Response, StatusCode};
use bytes::Bytes;

use crate::rejection::Rejection;

/// The `Retry-After` value, in seconds, of every 503 that [`error_response`] renders.
///
/// A 503 here means "not yet, try again": the verification keys are not loaded (the identity
/// provider or the Router is not reachable yet, or was restarted) or a dependency is briefly
/// unavailable. A key source that has never loaded keys retries after 100 ms, doubling, so a
/// service usually becomes ready within about a second of its dependency answering; one second
/// lets a well-behaved client come back about then, without hammering a service that is still
/// starting. It is a hint for the client's first retry, not a promise: a client should keep
/// backing off if the next answer is a 503 again.
pub const RETRY_AFTER_SECS: u32 = 1;

/// Renders `err` — an [`AuthError`](crate::AuthError), a
/// [`ServiceError`](crate::ServiceError) or any other [`Rejection`] — as the response a client
/// sees.
///
/// - status: [`Rejection::status`] (401, 403 and 503 for authentication errors);
/// - `content-type: application/json`;
/// - `WWW-Authenticate`: [`Rejection::challenge`] when there is one (never for a 503);
/// - `Retry-After: 1` ([`RETRY_AFTER_SECS`]) on every 503, whatever the rejection, and on no
///   other status;
/// - body: `{"error":"<public message>","code":"<stable code>"}`, built with `serde_json`, so the
///   message is escaped correctly. The message is [`Rejection::public_message`]: it never
///   contains the token. The code is the precise, stable reason (e.g. `expired`,
///   `invalid_signature`), meant for programs; the message may be vaguer (a bad token is
///   `invalid or expired token`), meant for people — see [`AuthError::public_message`](crate::AuthError::public_message).
///
/// The body is plain [`Bytes`]; wrap it as the stack needs, e.g.
/// `error_response(&err).map(axum::body::Body::from)` or `.map(http_body_util::Full::new)`.
///
/// # Example
/// ```
/// use agentcube_auth_core::{AuthError, http::error_response};
///
/// let res = error_response(&AuthError::MissingAuthorization);
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], "Bearer");
/// assert_eq!(
///     res.body().as_ref(),
///     br#"{"error":"missing authorization header","code":"missing_authorization"}"#
/// );
/// ```
pub fn error_response<E: Rejection + ?Sized>(err: &E) -> Response<Bytes> {
    let mut res = Response::new(error_body(err));
    *res.status_mut() = err.status();
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(challenge) = err.challenge().and_then(challenge_value) {
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
    if err.status() == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    res
}

/// The challenge as a header value: a constant without copying, a built one as it is; `None`
/// (the header is left out) for a value that is not a valid header value.
fn challenge_value(challenge: std::borrow::Cow<'static, str>) -> Option<HeaderValue> {
    let valid = |s: &str| s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
    match challenge {
        // Checked first, so `from_static` cannot panic.
        std::borrow::Cow::Borrowed(s) if valid(s) => Some(HeaderValue::from_static(s)),
        std::borrow::Cow::Borrowed(_) => None,
        std::borrow::Cow::Owned(s) => HeaderValue::try_from(s).ok(),
    }
}

/// The JSON body of [`error_response`].
fn error_body<E: Rejection + ?Sized>(err: &E) -> Bytes {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        error: &'a str,
        code: &'static str,
    }
    let message = err.public_message();
    let body = Body {
        error: &message,
        code: err.code().as_str(),
    };
    // Serialising two strings cannot fail; the fallback keeps the function total anyway.
    match serde_json::to_vec(&body) {
        Ok(json) => Bytes::from(json),
        Err(_) => Bytes::from_static(br#"{"error":"unauthorized","code":"unauthorized"}"#),
    }
}

#[cfg(feature = "axum")]
mod axum_impls {
    use axum::response::{IntoResponse, Response};

    use super::error_response;
    use crate::error::AuthError;
    use crate::rejection::ServiceError;

    /// The rendering of [`error_response`], for handlers that return `Result<_, AuthError>`.
    impl IntoResponse for AuthError {
        fn into_response(self) -> Response {
            error_response(&self).map(axum::body::Body::from)
        }
    }

    /// The rendering of [`error_response`]. Any other [`Rejection`](crate::Rejection) becomes
    /// one with [`Rejection::to_service_error`](crate::Rejection::to_service_error).
    impl IntoResponse for ServiceError {
        fn into_response(self) -> Response {
            error_response(&self).map(axum::body::Body::from)
        }
    }
}

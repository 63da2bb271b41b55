//! Rendering a [`Rejection`] as an HTTP response (RFC 6750 §3).

use ::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use ::http::{HeaderValue, Response};
use bytes::Bytes;

use crate::rejection::Rejection;

/// Renders `err` — an [`AuthError`](crate::AuthError), a
/// [`ServiceError`](crate::ServiceError) or any other [`Rejection`] — as the response a client
/// sees.
///
/// - status: [`Rejection::status`] (401, 403 and 503 for authentication errors);
/// - `content-type: application/json`;
/// - `WWW-Authenticate`: [`Rejection::challenge`] when there is one (never for a 503);
/// - body: `{"error":"<public message>","code":"<stable code>"}`, built with `serde_json`, so the
///   message is escaped correctly. The message is [`Rejection::public_message`]: it never
///   contains the token.
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
    if let Some(challenge) = err.challenge() {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    res
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

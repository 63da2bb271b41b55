//! Rendering an [`AuthError`] as an HTTP response (RFC 6750 §3).

use ::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use ::http::{HeaderValue, Response, StatusCode};
use bytes::Bytes;

use crate::error::AuthError;

/// Renders `err` as the response a client sees.
///
/// - status: [`AuthError::http_status`] (401, 403 or 503);
/// - `content-type: application/json`;
/// - `WWW-Authenticate`: [`AuthError::www_authenticate`] when there is one (not for 503);
/// - body: `{"error":"<public message>","code":"<stable code>"}`, built with `serde_json`, so the
///   message is escaped correctly. The message is [`AuthError::public_message`]: it never
///   contains the token, and a bad token is reported only as `invalid or expired token`.
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
pub fn error_response(err: &AuthError) -> Response<Bytes> {
    let mut res = Response::new(error_body(err));
    *res.status_mut() = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(challenge) = err.www_authenticate() {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    res
}

/// The JSON body of [`error_response`].
fn error_body(err: &AuthError) -> Bytes {
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

//! The sandbox agent (PicoD's role): verifies the Router's session-bound sandbox token and
//! echoes the request.
//!
//! Every request but `GET /health` must carry `x-agentcube-session-id` and
//! `Authorization: Bearer <sandbox token>`, where the token was minted for exactly that session
//! (`aud = sandbox:<session id>`, `session_id` claim): a token captured from one session's
//! traffic is refused by another session's sandbox (`audience_mismatch`, 401). A keys-not-ready
//! verifier answers 503. A real sandbox knows its own session id; this one stands in for every
//! session and takes it from the header, which makes no difference to the check.
//!
//! The echo is `{"session_id", "user_sub", "user_email", "method", "path", "query", "body",
//! "headers"}`: `body` as text, `headers` the *names* of the request headers as received, in
//! order, with repeats (never their values), so tests can see which headers reached the sandbox.
//! `?delay_ms=N` (at most 10 000) delays the answer, for concurrency tests.

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::AuthError;
use agentcube_auth_core::jose::KeySource;
use agentcube_identity::{IdentityError, SandboxVerifier};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::server::{self, ApiError, Server};

/// The header naming the session, set by the Router.
pub const SESSION_HEADER: &str = "x-agentcube-session-id";

/// The longest delay `?delay_ms=` may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// The sandbox app: `GET /health` and every other path (any method) echoed after verification.
pub fn app<K: KeySource + 'static>(verifier: SandboxVerifier<K>) -> Router {
    let app = Router::new()
        .route("/health", get(server::live))
        .fallback(echo::<K>)
        .with_state(Arc::new(verifier));
    server::instrument(app, "sandbox")
}

/// Starts the sandbox on an ephemeral loopback port.
///
/// # Errors
/// The bind error.
pub async fn serve<K: KeySource + 'static>(
    verifier: SandboxVerifier<K>,
) -> std::io::Result<Server> {
    server::serve(app(verifier)).await
}

/// `delay_ms=N` from the query string.
fn delay_ms(uri: &Uri) -> Option<u64> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("delay_ms="))
        .and_then(|v| v.parse().ok())
}

async fn echo<K: KeySource + 'static>(
    State(verifier): State<Arc<SandboxVerifier<K>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(session_id) = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing x-agentcube-session-id header",
            "missing_session_id",
        )
        .into_response();
    };
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let first = authorization.next();
    if authorization.next().is_some() {
        let err = IdentityError::Invalid(AuthError::InvalidAuthorizationFormat);
        return ApiError::identity(&err).into_response();
    }
    let verified = match verifier.verify_authorization(first, session_id).await {
        Ok(v) => v,
        Err(err) => {
            tracing::info!(code = err.code(), reason = %err, "sandbox token rejected");
            return ApiError::identity(&err).into_response();
        }
    };
    if let Some(ms) = delay_ms(&uri) {
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
    }
    tracing::info!(
        session_id,
        user_sub = verified.user_sub(),
        "sandbox request"
    );
    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    axum::Json(json!({
        "session_id": verified.session_id(),
        "user_sub": verified.user_sub(),
        "user_email": verified.user_email(),
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "body": String::from_utf8_lossy(&body),
        "headers": names,
    }))
    .into_response()
}

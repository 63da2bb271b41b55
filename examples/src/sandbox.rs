//! The sandbox agent (PicoD's role): verifies the Router's session-bound sandbox token and
//! echoes the request.
//!
//! Every request but `GET /health` must carry `Authorization: Bearer <sandbox token>`,
//! verified by the same `AuthLayer` the Router and the workload manager use, where the token was
//! minted for exactly one session (`aud = sandbox:<session id>`, `session_id` claim). Two modes:
//!
//! - **Per-session** (`sandbox --session-id ID`, as sandboxes run in production): the sandbox is
//!   bound to the session it was started for. A token minted for any other session is refused
//!   (`audience_mismatch`, 401) whatever headers the request carries, so a token captured from
//!   one session's traffic is useless against another session's sandbox.
//! - **Shared** (no `--session-id`; the quickstart and the tests run one sandbox for every
//!   session): the token must name *some* session, and the request's `x-agentcube-session-id`
//!   must be that same session (missing → 400 `missing_session_id`, another → 401
//!   `audience_mismatch`). This proves the Router minted the token for the session the request
//!   names; it does not prove this process *is* that session's sandbox — anyone who can reach it
//!   with a valid token of session A and header A is served. That is the development shortcut,
//!   and why production binds the session.
//!
//! A verifier without keys answers 503.
//!
//! # Authentication disabled
//!
//! [`app_auth_disabled`] (the binary's `--auth-mode disabled`, env `AGENTCUBE_AUTH_MODE`;
//! default `enabled`) is the sandbox of a deployment whose Router runs with authentication
//! disabled (it sends no sandbox token): for benchmarks and migrations. It logs a warning at
//! start-up that every caller is unauthenticated, reads and verifies no token (an
//! `Authorization` header is ignored; the binary refuses `--router-jwks-url` and
//! `--router-public-key` with it), and echoes `"user_sub": null` and `"user_email": null`. The
//! session still comes from the request: a shared sandbox requires `x-agentcube-session-id`
//! (400 `missing_session_id`; 400 `invalid_session_id` for an id the Router would refuse too:
//! empty, longer than 256 bytes, or not visible ASCII), a bound one serves its `--session-id` and refuses a request
//! naming another session (400 `session_mismatch`) — a routing check, no longer a security one.
//! With authentication enabled (the default) a request without a valid sandbox token is
//! refused 401 as always.
//!
//! The echo is `{"session_id", "user_sub", "user_email", "method", "path", "query", "body",
//! "headers"}`: `body` as text, `headers` the *names* of the request headers as received, in
//! order, with repeats (never their values), so tests can see which headers reached the sandbox.
//! `?delay_ms=N` (at most 10 000) delays the answer, for concurrency tests.

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::audit::{AuditEvent, AuditResource};
use agentcube_auth_core::http::{AuthLayer, AuthenticatedPrincipal};
use agentcube_auth_core::jose::KeySource;
use agentcube_auth_core::{AuthError, Code, Principal, Rejection as _, ServiceError};
use agentcube_identity::{ConfigError, SandboxVerifier, SessionBinding, sandbox_session};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::handler::Handler as _;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_layer::Layer as _;

use crate::server::{self, RequestId, Server};

/// The header naming the session, set by the Router.
pub const SESSION_HEADER: &str = "x-agentcube-session-id";

/// The audit action of a sandbox request.
const INVOKE: Code = Code::new("invoke");

/// The audit reason of a request whose token is bound to the session it names.
const SESSION_BOUND: Code = Code::new("session_bound");

/// Whether the sandbox verifies tokens, and which session it serves (the handler's state).
struct Mode {
    /// `false` with authentication disabled.
    auth: bool,
    session: SandboxSession,
}

/// The longest delay `?delay_ms=` may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// Which session a sandbox serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxSession {
    /// The one session the sandbox was started for (`--session-id`).
    Bound(String),
    /// Whichever session each request names (development: one sandbox for every session).
    Shared,
}

impl SandboxSession {
    /// `Bound` for `Some(id)`, `Shared` for `None`.
    pub fn from_flag(session_id: Option<String>) -> Self {
        session_id.map_or(Self::Shared, Self::Bound)
    }

    /// Refuses a bound id that no request could name: one that is not a
    /// [`server::valid_session_id`] (empty, longer than 256 bytes, not visible ASCII). Both apps
    /// check it, so a sandbox takes the same ids with authentication on and off.
    fn check(&self) -> Result<(), ConfigError> {
        match self {
            Self::Bound(id) if !server::valid_session_id(id) => Err(ConfigError::InvalidSessionId),
            _ => Ok(()),
        }
    }

    fn binding(&self) -> SessionBinding {
        match self {
            Self::Bound(id) => SessionBinding::Session(id.clone()),
            Self::Shared => SessionBinding::AnySession,
        }
    }
}

/// The sandbox app: `GET /health` and every other path (any method) echoed after verification
/// of a sandbox token against `keys` (the Router's).
///
/// # Errors
/// [`ConfigError`] for an unusable bound session id (empty, too long, not visible ASCII).
pub fn app<K: KeySource + 'static>(
    keys: K,
    session: &SandboxSession,
) -> Result<Router, ConfigError> {
    session.check()?;
    let verifier = SandboxVerifier::new(keys, session.binding())?;
    let auth = AuthLayer::new(verifier)
        .on_rejection(server::AuditRejections::new("sandbox token rejected"));
    let mode = Mode {
        auth: true,
        session: session.clone(),
    };
    // The layer wraps the handler itself, not a route: a route layer would box the handler
    // once more, and a request would clone that box.
    let echo = auth.layer(echo.with_state(Arc::new(mode)));
    let app = Router::new()
        .route("/health", get(server::live))
        .fallback_service(echo);
    Ok(server::instrument(app, "sandbox"))
}

/// The sandbox **without authentication** (`--auth-mode disabled`; see "Authentication
/// disabled" in the module docs): every path echoed without any token check, `user_sub` null.
/// Logs a warning saying so.
///
/// # Errors
/// [`ConfigError::InvalidSessionId`] for an unusable bound session id, as [`app`].
pub fn app_auth_disabled(session: &SandboxSession) -> Result<Router, ConfigError> {
    session.check()?;
    server::warn_auth_disabled(
        "sandbox",
        "no sandbox token is verified and any caller that can reach it is served",
    );
    let mode = Mode {
        auth: false,
        session: session.clone(),
    };
    let app = Router::new()
        .route("/health", get(server::live))
        .fallback(echo)
        .with_state(Arc::new(mode));
    Ok(server::instrument(app, "sandbox"))
}

/// Why a sandbox did not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The session id is unusable (empty or too long).
    #[error("invalid session: {0}")]
    Config(#[from] ConfigError),
    /// The listener could not bind.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Starts the sandbox without authentication ([`app_auth_disabled`]) on an ephemeral loopback
/// port.
///
/// # Errors
/// [`SandboxError`].
pub async fn serve_auth_disabled(session: &SandboxSession) -> Result<Server, SandboxError> {
    Ok(server::serve(app_auth_disabled(session)?).await?)
}

/// Starts the sandbox on an ephemeral loopback port.
///
/// # Errors
/// [`SandboxError`].
pub async fn serve<K: KeySource + 'static>(
    keys: K,
    session: &SandboxSession,
) -> Result<Server, SandboxError> {
    Ok(server::serve(app(keys, session)?).await?)
}

/// `delay_ms=N` from the query string.
fn delay_ms(uri: &Uri) -> Option<u64> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("delay_ms="))
        .and_then(|v| v.parse().ok())
}

/// The session the request may act on: the token's, after checking the request names the
/// same one (a shared sandbox must see the header; a bound one accepts it when it agrees).
fn session_of<'p>(
    principal: &'p Principal,
    headers: &HeaderMap,
    shared: bool,
) -> Result<&'p str, ServiceError> {
    // The verifier only returns sandbox principals, which always carry their session.
    let bound =
        sandbox_session(principal).ok_or_else(|| AuthError::AudienceMismatch.to_service_error())?;
    match headers.get(SESSION_HEADER).map(|v| v.to_str()) {
        None if shared => Err(missing_session_id()),
        None => Ok(bound),
        Some(Ok(named)) if named == bound => Ok(bound),
        Some(_) => Err(AuthError::AudienceMismatch.to_service_error()),
    }
}

/// With authentication disabled: the session the request names, which must be the bound one
/// (a routing check: nothing proves who sent it).
fn unauthenticated_session<'a>(
    session: &'a SandboxSession,
    headers: &'a HeaderMap,
) -> Result<&'a str, ServiceError> {
    let named = server::requested_session_id(headers)?;
    match (session, named) {
        (SandboxSession::Shared, Some(named)) => Ok(named),
        (SandboxSession::Shared, None) => Err(missing_session_id()),
        (SandboxSession::Bound(bound), None) => Ok(bound),
        (SandboxSession::Bound(bound), Some(named)) if named == bound => Ok(bound),
        (SandboxSession::Bound(_), Some(_)) => Err(ServiceError::new(
            StatusCode::BAD_REQUEST,
            Code::new("session_mismatch"),
            "x-agentcube-session-id names another session than this sandbox serves",
        )),
    }
}

fn missing_session_id() -> ServiceError {
    ServiceError::new(
        StatusCode::BAD_REQUEST,
        Code::new("missing_session_id"),
        "missing x-agentcube-session-id header",
    )
}

async fn echo(
    State(mode): State<Arc<Mode>>,
    principal: Option<AuthenticatedPrincipal>,
    request_id: Option<Extension<RequestId>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = request_id.as_ref().map(|Extension(r)| r.0.as_str());
    // A refused session is audited in both modes: routing with authentication off, the
    // sandbox's authorization decision with it on.
    let refuse = |refused: ServiceError, principal: Option<&Principal>| {
        server::audit_refusal(
            refused,
            INVOKE,
            AuditResource::Route(uri.path()),
            principal,
            request_id,
        )
        .into_response()
    };
    let principal = match (mode.auth, principal) {
        (true, Some(AuthenticatedPrincipal(principal))) => principal,
        // Behind the layer there is always a principal; fail closed if not.
        (true, None) => {
            return AuthError::MissingAuthorization
                .to_service_error()
                .into_response();
        }
        (false, _) => {
            let session_id = match unauthenticated_session(&mode.session, &headers) {
                Ok(session) => session,
                Err(refused) => return refuse(refused, None),
            };
            AuditEvent::allow(
                INVOKE,
                AuditResource::Session(session_id),
                agentcube_rlac::Reason::AuthDisabled.code(),
            )
            .request_id(request_id)
            .emit();
            return echo_response(session_id, None, &method, &uri, &headers, &body).await;
        }
    };
    let shared = mode.session == SandboxSession::Shared;
    let session_id = match session_of(&principal, &headers, shared) {
        Ok(session) => session,
        Err(refused) => return refuse(refused, Some(&principal)),
    };
    AuditEvent::allow(INVOKE, AuditResource::Session(session_id), SESSION_BOUND)
        .request_id(request_id)
        .principal(Some(&principal))
        .emit();
    echo_response(session_id, Some(&principal), &method, &uri, &headers, &body).await
}

/// The echo (after `?delay_ms=`): `user_sub` and `user_email` are null without a principal.
async fn echo_response(
    session_id: &str,
    principal: Option<&Principal>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Some(ms) = delay_ms(uri) {
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_DELAY)).await;
    }
    tracing::info!(
        session_id,
        user_sub = principal.map(Principal::subject),
        "sandbox request"
    );
    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    axum::Json(json!({
        "session_id": session_id,
        "user_sub": principal.map(Principal::subject),
        "user_email": principal.and_then(Principal::email),
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "body": String::from_utf8_lossy(body),
        "headers": names,
    }))
    .into_response()
}

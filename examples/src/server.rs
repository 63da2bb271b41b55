//! What every example service shares: serving an axum app on a socket with a shutdown handle,
//! JSON error bodies, request ids, and logging set-up.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use agentcube_auth_core::audit::{self, AuditEvent, AuditResource};
use agentcube_auth_core::http::{OnRejection, RejectedRequest};
use agentcube_auth_core::{AuthError, Code, ErrorCode, Principal, Rejection as _, ServiceError};
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

/// The request-id header: taken from the request when it is sane, generated otherwise, echoed
/// on the response and passed on to upstream services.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the current request (in the request extensions).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    /// The request id among a request's `extensions`, if the request-id middleware ran.
    pub fn of(extensions: &axum::http::Extensions) -> Option<&str> {
        extensions.get::<Self>().map(|id| id.0.as_str())
    }
}

/// The rejection hook of every service's `AuthLayer`: one audit event per refused request
/// ([`AuditEvent`], target `agentcube::audit`) with the request id, the path, the caller when
/// the token verified but a requirement refused it, the code the client receives and the
/// status; and a log line with the precise reason (server-side only). Never the token: the
/// hook sees the request's method, path and extensions, not its headers.
#[derive(Clone, Copy, Debug)]
pub struct AuditRejections {
    message: &'static str,
}

impl AuditRejections {
    /// A hook whose log line says `message` (e.g. `authentication failed`).
    pub const fn new(message: &'static str) -> Self {
        Self { message }
    }
}

impl OnRejection for AuditRejections {
    fn on_rejection(&self, error: &AuthError) {
        tracing::info!(code = %error.code(), reason = %error, "{}", self.message);
    }

    fn on_rejected_request(&self, request: &RejectedRequest<'_>, error: &AuthError) {
        self.on_rejection(error);
        let status = error.status();
        let action = if status == StatusCode::FORBIDDEN {
            audit::AUTHORIZE
        } else {
            audit::AUTHENTICATE
        };
        AuditEvent::deny(
            action,
            AuditResource::Route(request.path()),
            agentcube_auth_core::Rejection::code(error),
        )
        .request_id(RequestId::of(request.extensions()))
        .principal(request.principal())
        .status(status.as_u16())
        .emit();
    }
}

/// Writes the audit event of `refusal`, an authentication or authorization refusal decided
/// outside the policy (a caller whose token lacks what an owner id needs, a sandbox token for
/// another session), and returns it.
pub fn audit_refusal(
    refusal: ServiceError,
    action: Code,
    resource: AuditResource<'_>,
    principal: Option<&Principal>,
    request_id: Option<&str>,
) -> ServiceError {
    AuditEvent::deny(action, resource, refusal.code())
        .request_id(request_id)
        .principal(principal)
        .status(refusal.status().as_u16())
        .emit();
    refusal
}

/// Authorizes a session creation and names its owner: the policy's create decision (audited),
/// then the owner id the Router and the workload manager both record. A caller whose token
/// lacks what an owner id needs is refused 401 `missing_claim` (audited).
///
/// Without a principal (`None`: authentication disabled) the policy decides alone: it allows
/// with `auth_disabled` when it runs in [`AuthMode::Disabled`](agentcube_rlac::AuthMode), and
/// there is no owner (`Ok(None)`); with authentication on it denies (401 `unauthenticated`).
///
/// # Errors
/// The policy's refusal, or the 401.
pub fn authorize_creation(
    policy: &agentcube_rlac::OwnerPolicy,
    principal: Option<&Principal>,
    request_id: Option<&str>,
) -> Result<Option<agentcube_rlac::OwnerId>, ServiceError> {
    enforce(
        policy,
        &agentcube_rlac::AccessRequest::create(principal).with_request_id(request_id),
    )?;
    let Some(principal) = principal else {
        return Ok(None);
    };
    agentcube_rlac::OwnerId::from_principal(principal, policy.owner_scheme())
        .map(Some)
        .map_err(|e| {
            audit_refusal(
                ServiceError::new(
                    StatusCode::UNAUTHORIZED,
                    Code::new("missing_claim"),
                    e.to_string(),
                )
                .with_challenge("Bearer"),
                agentcube_rlac::Action::Create.code(),
                AuditResource::NewSession,
                Some(principal),
                request_id,
            )
        })
}

/// A running server: its address and a handle to stop it.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Server {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish (at most 5 s), and waits
    /// until the server has stopped, so the port can be bound again.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            abort.abort();
            let _ = (&mut self.task).await;
        }
    }

    /// Runs until Ctrl-C (or SIGTERM on Unix), then shuts down gracefully.
    ///
    /// # Errors
    /// The server's I/O error if it stopped on its own.
    pub async fn run_until_signal(mut self) -> io::Result<()> {
        tokio::select! {
            result = &mut self.task => {
                return result.unwrap_or_else(|e| Err(io::Error::other(e)));
            }
            () = shutdown_signal() => {}
        }
        tracing::info!("shutting down");
        self.shutdown().await;
        Ok(())
    }
}

/// Resolves at Ctrl-C (or SIGTERM on Unix): what [`Server::run_until_signal`] waits for, for
/// programs that serve something else (the development IdP binary).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Binds `127.0.0.1:0` (an ephemeral loopback port).
///
/// # Errors
/// The bind error.
pub async fn bind_loopback() -> io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", 0)).await
}

/// Serves `app` on an ephemeral loopback port.
///
/// # Errors
/// The bind error.
pub async fn serve(app: Router) -> io::Result<Server> {
    serve_listener(bind_loopback().await?, app)
}

/// Serves `app` on `addr`.
///
/// # Errors
/// The bind error.
pub async fn serve_on(addr: SocketAddr, app: Router) -> io::Result<Server> {
    serve_listener(TcpListener::bind(addr).await?, app)
}

/// Serves `app` on an already bound listener (so a service's address can be known, and given
/// to others, before it starts). Handlers see the peer address as
/// `ConnectInfo<SocketAddr>`.
///
/// # Errors
/// The listener's `local_addr` error.
pub fn serve_listener(listener: TcpListener, app: Router) -> io::Result<Server> {
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = rx.await;
        })
        .await
    });
    Ok(Server {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Logs, once at start-up, that `service` runs with authentication disabled, and what it
/// therefore does not do (`skipped`). A `warn!` with `auth_mode = "disabled"`: loud enough to
/// be seen in any log, and never repeated per request.
pub fn warn_auth_disabled(service: &'static str, skipped: &'static str) {
    tracing::warn!(
        service,
        auth_mode = "disabled",
        "AUTHENTICATION IS DISABLED (--auth-mode disabled): every caller is unauthenticated; \
         {skipped}. For benchmarks and migrations only: never expose this {service}"
    );
}

/// Whether `id` is a session id a client may name: one a sandbox token can be bound to
/// ([`agentcube_identity::valid_session_id`]: not empty, at most 256 bytes), in visible ASCII.
pub fn valid_session_id(id: &str) -> bool {
    agentcube_identity::valid_session_id(id) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The `x-agentcube-session-id` a request names, if any; 400 `invalid_session_id` for a value
/// that is not a [`valid_session_id`]. The Router and a sandbox read the header through this.
///
/// # Errors
/// 400 `invalid_session_id` (the header is not a [`valid_session_id`]).
pub fn requested_session_id(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ServiceError> {
    headers
        .get(crate::sandbox::SESSION_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .filter(|id| valid_session_id(id))
                .ok_or_else(invalid_session_id)
        })
        .transpose()
}

/// 400 `invalid_session_id`: an `x-agentcube-session-id` header that is not a
/// [`valid_session_id`] (empty, longer than 256 bytes, not visible ASCII).
fn invalid_session_id() -> ServiceError {
    ServiceError::new(
        StatusCode::BAD_REQUEST,
        Code::new("invalid_session_id"),
        "invalid x-agentcube-session-id header",
    )
}

/// 404 `session_not_found`.
pub fn session_not_found() -> ServiceError {
    ServiceError::new(
        StatusCode::NOT_FOUND,
        Code::new("session_not_found"),
        "session not found",
    )
}

/// An owner-store failure (503 unavailable, 500 malformed record), logged with its reason.
pub fn store_failed(err: &agentcube_rlac::StoreError) -> ServiceError {
    let answer = err.to_service_error();
    tracing::warn!(code = %answer.code(), error = %err, "session store error");
    answer
}

/// Runs `policy` on `request`, writes the audit event (with the request id the request carries:
/// [`AccessRequest::with_request_id`](agentcube_rlac::AccessRequest::with_request_id)) and counts
/// the decision, and turns a denial into its 403; the reason of an allowed request otherwise.
///
/// # Errors
/// The denial's 403.
pub fn enforce(
    policy: &impl agentcube_rlac::AccessPolicy,
    request: &agentcube_rlac::AccessRequest<'_>,
) -> Result<agentcube_rlac::Reason, ServiceError> {
    let decision = policy.decide(request);
    agentcube_rlac::audit(request, &decision);
    decision
        .into_result()
        .map_err(|denied| denied.to_service_error())
}

/// `{"error": message, "code": code}` with `status`.
pub fn json_error(
    status: StatusCode,
    code: Code,
    message: impl Into<Cow<'static, str>>,
) -> Response {
    ServiceError::new(status, code, message).into_response()
}

/// `GET /health/live`: 200 `{"status":"ok"}`.
pub async fn live() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /health/ready`: 200 `{"status":"ready"}`, or 503 `keys_unavailable` with `message`
/// and `Retry-After: 1` ([`RETRY_AFTER_SECS`](agentcube_auth_core::http::RETRY_AFTER_SECS)),
/// like every 503 the services answer: a service that is not ready yet usually is about a
/// second later.
pub fn readiness(ready: bool, message: &'static str) -> Response {
    if ready {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::KeysUnavailable.code(),
            message,
        )
    }
}

/// The JSON 404 for unknown routes.
pub async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, Code::new("not_found"), "not found")
}

/// The JSON 405 for known routes with another method.
pub async fn method_not_allowed() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::new("method_not_allowed"),
        "method not allowed",
    )
}

/// Adds the JSON 404/405 fallbacks and the request-id/logging middleware to `app`.
pub fn finish(app: Router, service: &'static str) -> Router {
    instrument(
        app.fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed),
        service,
    )
}

/// Adds the request-id/logging middleware to `app`.
pub fn instrument(app: Router, service: &'static str) -> Router {
    app.layer(axum::middleware::from_fn(move |req, next| {
        trace_request(service, req, next)
    }))
}

/// Request id, a span for the request, and one log line per response. Only the method and the
/// path are logged: never a header value, a query string or a body (they may hold tokens).
async fn trace_request(service: &'static str, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        service,
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = std::time::Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "request completed"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Installs a `tracing` subscriber writing to stderr, filtered by `RUST_LOG` or `default`.
pub fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;
    use axum::http::header::RETRY_AFTER;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn not_ready_is_503_keys_unavailable_with_retry_after() {
        let response = readiness(false, "keys are unavailable");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert_eq!(
            body(response).await,
            serde_json::json!({"error": "keys are unavailable", "code": "keys_unavailable"})
        );
        let response = readiness(true, "keys are unavailable");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get(RETRY_AFTER).is_none());
        assert_eq!(body(response).await, serde_json::json!({"status": "ready"}));
    }

    #[tokio::test]
    async fn only_503_answers_carry_retry_after() {
        let unavailable = json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::new("workload_manager_unavailable"),
            "workload manager unavailable",
        );
        assert_eq!(unavailable.headers()[RETRY_AFTER], "1");
        for response in [
            session_not_found().into_response(),
            not_found().await,
            method_not_allowed().await,
        ] {
            assert!(response.headers().get(RETRY_AFTER).is_none());
        }
    }
}

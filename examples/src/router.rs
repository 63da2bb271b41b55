//! The Router: the public edge. It authenticates the caller's access token, checks the role and
//! the session's owner, creates sessions through the workload manager with the caller's identity,
//! and proxies requests to the sandbox with a session-bound sandbox token.
//!
//! # Routes
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /health/live` | none | 200 |
//! | `GET /health/ready` | none | 200 once the IdP's keys are loaded, 503 `keys_unavailable` before |
//! | `GET /.well-known/agentcube/jwks.json` | none | the public identity keys |
//! | `GET\|POST /v1/namespaces/{ns}/agent-runtimes/{name}/invocations/{*path}` | token + role | create or reuse a session, proxy to its sandbox |
//! | `GET\|POST /v1/namespaces/{ns}/code-interpreters/{name}/invocations/{*path}` | token + role | the same for code interpreters |
//! | `DELETE /v1/sessions/{id}` | token + role, owner or admin | forwarded to the workload manager |
//!
//! # Order on `/v1/*`
//!
//! request id and log span → [`AuthLayer`] (bearer token → [`TokenVerifier`] → the required
//! role through the [`RoleHierarchy`]; 401/403/503) → concurrency limit (429
//! `server_overloaded`; rejected requests never take a slot) → handler:
//!
//! - **no `x-agentcube-session-id`**: mint an identity token for the caller (a signing failure
//!   is a 500 `jwt_signing_failed`: a session is never requested without an identity), `POST` the
//!   workload manager with it, check that the owner it recorded is the caller, keep the record
//!   in the owner store, and proxy; the response carries the new `x-agentcube-session-id`.
//! - **with it**: owner store lookup (unknown → 404 `session_not_found`), then the rlac decision
//!   (owner, or admin through the hierarchy; otherwise 403 `not_owner` "you do not own this
//!   sandbox" / `no_owner_record` "sandbox has no owner record"), then proxy.
//!
//! Proxying sends `Authorization: Bearer <sandbox token>` (bound to that session), the session
//! header, `X-Forwarded-For/Host/Proto`, and the client's other headers — never the client's
//! `Authorization`, its `X-AgentCube-User-Identity`, hop-by-hop headers, or the
//! `X-Forwarded-Host/Proto` it sent (its `X-Forwarded-For` is extended with its address).
//!
//! # Workload manager errors
//!
//! | WM answer | Router answer |
//! |---|---|
//! | 401 (identity token refused: key mismatch, clock skew) | 502 `identity_rejected` |
//! | 503, unreachable, timeout | 503 `workload_manager_unavailable` |
//! | 404 | 404 `not_found` |
//! | 400 | 400 with the WM's code |
//! | 403 (delete) | 403 with the WM's code |
//! | anything else | 502 `workload_manager_error` |
//!
//! # Decisions
//!
//! - Unknown session ids are answered 404 before the ownership check, as in the reference
//!   system (it reveals that an id does not exist, never whose it is; ids are random UUIDs).
//! - The owner store is the Router's own (in memory), or the Redis it shares with the workload
//!   manager: after a create, a record the WM already wrote there is used as is.
//! - A session is reachable through either invocations route (agent runtime or code
//!   interpreter) and any `{ns}/{name}`: the record's entry point decides where it goes, and
//!   ownership is what is checked.
//! - The owner the workload manager reports for a new session must be the caller's owner id
//!   (502 `owner_mismatch` otherwise), so a misconfigured WM cannot hand out sessions owned by
//!   someone else.
//! - Internal HTTP calls (WM, sandbox) follow no redirects and use no HTTP proxy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::http::{AuthLayer, AuthenticatedPrincipal};
use agentcube_auth_core::jose::AlgorithmSet;
use agentcube_auth_core::{
    AuthError, ClaimPathMapper, Code, Principal, Requirement, RoleHierarchy, ServiceError,
    TokenVerifier,
};
use agentcube_identity::{IDENTITY_HEADER, MintError, TokenMinter};
use agentcube_oidc::{ConfigError, KeyStoreConfig, OidcConfig, OidcVerifier};
use agentcube_rlac::{
    AccessRequest, Action, OwnerId, OwnerIdScheme, OwnerPolicy, OwnerStore, SessionRecord,
};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::sandbox::SESSION_HEADER;
use crate::server::{self, REQUEST_ID_HEADER, RequestId, Server};
use crate::workload_manager::{CreateSessionResponse, SessionKind};

/// Where the Router serves its public identity keys.
pub const JWKS_PATH: &str = "/.well-known/agentcube/jwks.json";

/// The reference Router's algorithm allowlist (`--jwt-algorithms` default), each bound to its
/// key type.
pub const REFERENCE_ALGORITHMS: &str = "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,EdDSA";

/// The default role claim: Keycloak's realm roles (client roles are read too, namespaced).
pub const DEFAULT_ROLE_CLAIM: &str = "realm_access.roles";

/// The default required role.
pub const DEFAULT_REQUIRED_ROLE: &str = "sandbox:invoke";

/// The reference Router's WM timeout.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// The default concurrency limit.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1000;

/// The longest request body proxied.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// How the Router verifies access tokens (its `--jwt-*` flags).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OidcOptions {
    /// `--jwt-issuer-url`: compared exactly with `iss`; discovery at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// `--jwt-audience`, default `agentcube-api`.
    pub audience: String,
    /// `--jwt-role-claim`, default `realm_access.roles` (the Keycloak mapper); any other path
    /// reads realm roles from that claim (a top-level key equal to the path wins, then dots).
    pub role_claim: String,
    /// `--jwt-algorithms`, default [`REFERENCE_ALGORITHMS`].
    pub algorithms: AlgorithmSet,
    /// Minimum time between two JWKS fetches caused by unknown `kid`s or missing keys
    /// (default 30 s).
    pub jwks_refresh_cooldown: Duration,
}

impl OidcOptions {
    /// The defaults for `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: OidcConfig::DEFAULT_AUDIENCE.to_owned(),
            role_claim: DEFAULT_ROLE_CLAIM.to_owned(),
            // Every supported algorithm: the same set as [`REFERENCE_ALGORITHMS`] (tested).
            algorithms: AlgorithmSet::ALL,
            jwks_refresh_cooldown: KeyStoreConfig::DEFAULT_REFRESH_COOLDOWN,
        }
    }

    /// Sets the JWKS refresh cooldown.
    #[must_use]
    pub fn jwks_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_refresh_cooldown = cooldown;
        self
    }

    /// Sets the audience.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Sets the role claim.
    #[must_use]
    pub fn role_claim(mut self, claim: impl Into<String>) -> Self {
        self.role_claim = claim.into();
        self
    }

    /// Sets the algorithms.
    #[must_use]
    pub fn algorithms(mut self, algorithms: AlgorithmSet) -> Self {
        self.algorithms = algorithms;
        self
    }

    /// Builds the verifier and starts its background key refresh (call inside a Tokio
    /// runtime). No request to the IdP is awaited: the Router starts while the IdP is down and
    /// reports not-ready until the keys arrive.
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn build(&self) -> Result<OidcVerifier, ConfigError> {
        let mut config = OidcConfig::new(self.issuer.as_str())
            .audience(self.audience.as_str())
            .algorithms(self.algorithms)
            .key_store(KeyStoreConfig::new().refresh_cooldown(self.jwks_refresh_cooldown));
        if self.role_claim != DEFAULT_ROLE_CLAIM {
            config = config.mapper(ClaimPathMapper::new(self.role_claim.as_str()));
        }
        let verifier = OidcVerifier::new(config)?;
        verifier.spawn_background_refresh();
        Ok(verifier)
    }
}

/// Router settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RouterConfig {
    /// `--workload-manager-url`.
    pub workload_manager_url: String,
    /// `--jwt-required-role` (a realm role), required on `/v1/*`.
    pub required_role: String,
    /// `--admin-role`: bypasses ownership, evaluated through the hierarchy.
    pub admin_role: String,
    /// The role hierarchy (default: the realm's composites).
    pub hierarchy: Arc<RoleHierarchy>,
    /// How owner ids are formed; must match the workload manager's.
    pub owner_scheme: OwnerIdScheme,
    /// Requests served at once on `/v1/*`; more are answered 429.
    pub max_concurrent_requests: usize,
    /// Timeout of calls to the workload manager and the sandbox.
    pub upstream_timeout: Duration,
    /// The longest request body accepted.
    pub max_body_bytes: usize,
}

impl RouterConfig {
    /// The defaults, with the workload manager at `workload_manager_url`.
    pub fn new(workload_manager_url: impl Into<String>) -> Self {
        Self {
            workload_manager_url: workload_manager_url.into(),
            required_role: DEFAULT_REQUIRED_ROLE.to_owned(),
            admin_role: agentcube_rlac::DEFAULT_ADMIN_ROLE.to_owned(),
            hierarchy: Arc::new(crate::realm_hierarchy()),
            owner_scheme: OwnerIdScheme::SubjectOnly,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Sets the concurrency limit.
    #[must_use]
    pub fn max_concurrent_requests(mut self, limit: usize) -> Self {
        self.max_concurrent_requests = limit;
        self
    }

    /// Sets the admin role.
    #[must_use]
    pub fn admin_role(mut self, role: impl Into<String>) -> Self {
        self.admin_role = role.into();
        self
    }

    /// Sets the required role.
    #[must_use]
    pub fn required_role(mut self, role: impl Into<String>) -> Self {
        self.required_role = role.into();
        self
    }

    /// Sets the role hierarchy.
    #[must_use]
    pub fn hierarchy(mut self, hierarchy: Arc<RoleHierarchy>) -> Self {
        self.hierarchy = hierarchy;
        self
    }

    /// Sets the upstream timeout.
    #[must_use]
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }
}

/// Errors building the Router.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// The listener could not bind.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

struct Shared {
    minter: Arc<TokenMinter>,
    store: Arc<dyn OwnerStore>,
    policy: OwnerPolicy,
    http: reqwest::Client,
    wm_url: String,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
    max_body_bytes: usize,
}

/// The Router app.
///
/// `verifier` authenticates access tokens (an [`OidcVerifier`] in the binaries; anything
/// implementing [`TokenVerifier`]); `minter` signs identity and sandbox tokens with the Router's
/// key ring (whose JWKS is served); `store` holds session owners.
///
/// # Errors
/// [`RouterError::Http`] if the HTTP client cannot be built.
pub fn app<V: TokenVerifier + 'static>(
    verifier: Arc<V>,
    minter: Arc<TokenMinter>,
    store: Arc<dyn OwnerStore>,
    config: RouterConfig,
) -> Result<Router, RouterError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(config.upstream_timeout)
        .build()?;
    let policy = crate::owner_policy(&config.hierarchy, &config.admin_role, config.owner_scheme);
    let ready_verifier = Arc::clone(&verifier);
    let shared = Arc::new(Shared {
        minter,
        store,
        policy,
        http,
        wm_url: trim_slashes(config.workload_manager_url),
        ready: Box::new(move || ready_verifier.is_ready()),
        max_body_bytes: config.max_body_bytes,
    });
    let auth = AuthLayer::from_arc(verifier)
        .require(Requirement::realm_role(config.required_role.as_str()))
        .hierarchy(Arc::clone(&config.hierarchy))
        .on_rejection(|err: &AuthError| {
            tracing::info!(code = err.code().as_str(), reason = %err, "authentication failed");
        });
    let limit = Arc::new(Semaphore::new(config.max_concurrent_requests.max(1)));
    let ar = "/v1/namespaces/{namespace}/agent-runtimes/{name}/invocations";
    let ci = "/v1/namespaces/{namespace}/code-interpreters/{name}/invocations";
    let (invoke_ar, invoke_ci) = (
        invoke_route(SessionKind::AgentRuntime),
        invoke_route(SessionKind::CodeInterpreter),
    );
    let v1 = Router::new()
        .route(&format!("{ar}/{{*path}}"), invoke_ar.clone())
        .route(&format!("{ar}/"), invoke_ar)
        .route(&format!("{ci}/{{*path}}"), invoke_ci.clone())
        .route(&format!("{ci}/"), invoke_ci)
        .route("/v1/sessions/{id}", delete(delete_session))
        .route_layer(axum::middleware::from_fn_with_state(
            limit,
            concurrency_limit,
        ))
        .route_layer(auth);
    let app = Router::new()
        .route("/health/live", get(server::live))
        .route("/health/ready", get(ready))
        .route(JWKS_PATH, get(jwks))
        .merge(v1)
        .with_state(shared);
    Ok(server::finish(app, "router"))
}

/// Starts the Router on an ephemeral loopback port.
///
/// # Errors
/// [`RouterError`].
pub async fn serve<V: TokenVerifier + 'static>(
    verifier: Arc<V>,
    minter: Arc<TokenMinter>,
    store: Arc<dyn OwnerStore>,
    config: RouterConfig,
) -> Result<Server, RouterError> {
    Ok(server::serve(app(verifier, minter, store, config)?).await?)
}

async fn concurrency_limit(
    State(limit): State<Arc<Semaphore>>,
    req: Request,
    next: Next,
) -> Response {
    match limit.try_acquire() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            tracing::warn!("concurrency limit reached");
            server::json_error(
                StatusCode::TOO_MANY_REQUESTS,
                Code::new("server_overloaded"),
                "server overloaded, please try again later",
            )
        }
    }
}

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    server::readiness((shared.ready)(), "token verification keys are unavailable")
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let body = shared.minter.key_ring().jwks_json();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The invocation route of `kind` (`GET` and `POST`).
fn invoke_route(kind: SessionKind) -> MethodRouter<Arc<Shared>> {
    let handler =
        move |State(shared): State<Arc<Shared>>,
              Path(params): Path<HashMap<String, String>>,
              AuthenticatedPrincipal(principal): AuthenticatedPrincipal,
              req: Request| async move { shared.invoke(kind, &params, &principal, req).await };
    get(handler).post(handler)
}

async fn delete_session(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    AuthenticatedPrincipal(principal): AuthenticatedPrincipal,
    req: Request,
) -> Result<Response, ServiceError> {
    let request_id = request_id(&req);
    shared.delete(&id, &principal, request_id.as_deref()).await
}

fn trim_slashes(mut url: String) -> String {
    while url.ends_with('/') {
        url.pop();
    }
    url
}

fn request_id(req: &Request) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

fn signing_failed(err: &MintError) -> ServiceError {
    tracing::error!(error = %err, "signing an internal token failed");
    jwt_signing_failed()
}

fn jwt_signing_failed() -> ServiceError {
    ServiceError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        Code::new("jwt_signing_failed"),
        "failed to sign request",
    )
}

fn wm_unavailable() -> ServiceError {
    ServiceError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::new("workload_manager_unavailable"),
        "workload manager unavailable",
    )
}

fn wm_error() -> ServiceError {
    ServiceError::new(
        StatusCode::BAD_GATEWAY,
        Code::new("workload_manager_error"),
        "unexpected answer from the workload manager",
    )
}

const INVALID_REQUEST: Code = Code::new("invalid_request");

/// The workload manager's 400 and 403 codes, forwarded as they are.
const PASSED_THROUGH_CODES: [Code; 3] = [
    INVALID_REQUEST,
    agentcube_rlac::Reason::NotOwner.code(),
    agentcube_rlac::Reason::NoOwnerRecord.code(),
];

/// The `{"error","code"}` body of an upstream error, if it has one.
#[derive(Deserialize)]
struct UpstreamError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Maps a workload manager error answer (see the module docs).
async fn map_wm_error(response: reqwest::Response) -> ServiceError {
    let status = response.status();
    let body: Option<UpstreamError> = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let code = body.as_ref().and_then(|b| b.code.clone());
    tracing::warn!(
        status = status.as_u16(),
        code = code.as_deref(),
        "workload manager refused the request"
    );
    let passthrough = |status: StatusCode, default_code: Code| {
        let message = body
            .as_ref()
            .and_then(|b| b.error.clone())
            .unwrap_or_else(|| "workload manager refused the request".to_owned());
        // Codes are a bounded vocabulary (they label metrics): an upstream code is passed on
        // only when it is one of the workload manager's own.
        let code = code
            .as_deref()
            .and_then(|c| {
                PASSED_THROUGH_CODES
                    .iter()
                    .find(|known| known.as_str() == c)
            })
            .copied()
            .unwrap_or(default_code);
        ServiceError::new(status, code, message)
    };
    match status {
        StatusCode::UNAUTHORIZED => ServiceError::new(
            StatusCode::BAD_GATEWAY,
            Code::new("identity_rejected"),
            "workload manager rejected the caller identity",
        ),
        StatusCode::SERVICE_UNAVAILABLE => wm_unavailable(),
        StatusCode::NOT_FOUND => {
            ServiceError::new(StatusCode::NOT_FOUND, Code::new("not_found"), "not found")
        }
        StatusCode::BAD_REQUEST => passthrough(StatusCode::BAD_REQUEST, INVALID_REQUEST),
        StatusCode::FORBIDDEN => passthrough(StatusCode::FORBIDDEN, Code::new("forbidden")),
        _ => wm_error(),
    }
}

fn wm_send_error(err: &reqwest::Error) -> ServiceError {
    tracing::warn!(error = %err, "workload manager unreachable");
    wm_unavailable()
}

/// A session id from a client: 1 to 256 visible ASCII characters.
fn valid_session_id(id: &str) -> bool {
    (1..=agentcube_identity::MAX_SESSION_ID_BYTES).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_graphic())
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers never copied from the client to the sandbox.
fn is_stripped_request_header(name: &HeaderName, connection: &[String]) -> bool {
    let name = name.as_str();
    HOP_BY_HOP.contains(&name)
        || connection.iter().any(|c| c == name)
        || name == header::HOST.as_str()
        || name == header::AUTHORIZATION.as_str()
        || name == header::CONTENT_LENGTH.as_str()
        || name.eq_ignore_ascii_case(IDENTITY_HEADER)
        || name == SESSION_HEADER
        || name == "x-forwarded-for"
        || name == "x-forwarded-host"
        || name == "x-forwarded-proto"
        || name == "forwarded"
}

/// The header names listed in `Connection` (also hop-by-hop).
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

impl Shared {
    async fn invoke(
        &self,
        kind: SessionKind,
        params: &HashMap<String, String>,
        principal: &Principal,
        req: Request,
    ) -> Result<Response, ServiceError> {
        let namespace = params.get("namespace").map_or("", String::as_str);
        let name = params.get("name").map_or("", String::as_str);
        let path = params.get("path").map_or("", |p| p.trim_start_matches('/'));
        let request_id = request_id(&req);
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        tracing::info!(
            subject = principal.subject(),
            client_id = principal.client_id(),
            kind = kind.name(),
            "authenticated"
        );
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, self.max_body_bytes)
            .await
            .map_err(|_| {
                ServiceError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Code::new("body_too_large"),
                    "request body too large",
                )
            })?;
        let record = match parts.headers.get(SESSION_HEADER) {
            None => {
                self.create_session(kind, namespace, name, principal, request_id.as_deref())
                    .await?
            }
            Some(value) => {
                let id = value
                    .to_str()
                    .ok()
                    .filter(|id| valid_session_id(id))
                    .ok_or_else(|| {
                        ServiceError::new(
                            StatusCode::BAD_REQUEST,
                            Code::new("invalid_session_id"),
                            "invalid x-agentcube-session-id header",
                        )
                    })?;
                self.authorize(principal, id, Action::Invoke).await?
            }
        };
        self.forward(&record, principal, parts, body, path, peer)
            .await
    }

    /// Sends a request to the workload manager at `path`, as the caller (never without its
    /// identity token) and with the request id.
    async fn call_wm(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        principal: &Principal,
        request_id: Option<&str>,
    ) -> Result<reqwest::Response, ServiceError> {
        let identity = self
            .minter
            .identity_token(principal)
            .map_err(|e| signing_failed(&e))?;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.wm_url))
            .header(IDENTITY_HEADER, identity.as_str());
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID_HEADER, id);
        }
        request.send().await.map_err(|e| wm_send_error(&e))
    }

    /// Looks the session up and runs the ownership policy for `action`.
    async fn authorize(
        &self,
        principal: &Principal,
        session_id: &str,
        action: Action,
    ) -> Result<SessionRecord, ServiceError> {
        let record = self
            .store
            .get(session_id)
            .await
            .map_err(|e| server::store_failed(&e))?
            .ok_or_else(|| {
                tracing::info!(session_id, "unknown session");
                server::session_not_found()
            })?;
        // The audit event logs the action, the reason, the session and the caller.
        let request = AccessRequest::for_record(Some(principal), &record, action);
        server::enforce(&self.policy, &request)?;
        Ok(record)
    }

    async fn create_session(
        &self,
        kind: SessionKind,
        namespace: &str,
        name: &str,
        principal: &Principal,
        request_id: Option<&str>,
    ) -> Result<SessionRecord, ServiceError> {
        server::enforce(&self.policy, &AccessRequest::create(Some(principal)))?;
        let owner =
            OwnerId::from_principal(principal, self.policy.owner_scheme()).map_err(|e| {
                ServiceError::new(
                    StatusCode::UNAUTHORIZED,
                    Code::new("missing_claim"),
                    e.to_string(),
                )
                .with_challenge("Bearer")
            })?;
        let body = json!({"kind": kind.name(), "name": name, "namespace": namespace});
        let response = self
            .call_wm(
                Method::POST,
                &format!("/v1/{}", kind.wm_segment()),
                Some(&body),
                principal,
                request_id,
            )
            .await?;
        if !response.status().is_success() {
            return Err(map_wm_error(response).await);
        }
        let created: CreateSessionResponse =
            response.json().await.map_err(|_| wm_error()).and_then(
                |c: CreateSessionResponse| {
                    if valid_session_id(&c.session_id) {
                        Ok(c)
                    } else {
                        Err(wm_error())
                    }
                },
            )?;
        if created.owner_id != owner.as_str() {
            tracing::error!(
                session_id = created.session_id,
                "workload manager recorded another owner than the caller"
            );
            return Err(ServiceError::new(
                StatusCode::BAD_GATEWAY,
                Code::new("owner_mismatch"),
                "workload manager recorded another owner",
            ));
        }
        let record = match self
            .store
            .get(&created.session_id)
            .await
            .map_err(|e| server::store_failed(&e))?
        {
            // A store shared with the workload manager: it wrote the full record already.
            Some(existing) if existing.owner() == Some(&owner) => existing,
            Some(_) => {
                return Err(ServiceError::new(
                    StatusCode::BAD_GATEWAY,
                    Code::new("owner_mismatch"),
                    "session store holds another owner for the new session",
                ));
            }
            None => {
                let mut record = SessionRecord::owned(owner, created.session_id.clone());
                record.kind = created.kind;
                record.namespace = namespace.to_owned();
                record.sandbox_id = created.sandbox_id;
                record.sandbox_name = created.sandbox_name;
                record.entry_points = created.entry_points;
                self.store
                    .put(&record)
                    .await
                    .map_err(|e| server::store_failed(&e))?;
                record
            }
        };
        tracing::info!(
            session_id = record.session_id,
            subject = principal.subject(),
            "session created"
        );
        Ok(record)
    }

    async fn forward(
        &self,
        record: &SessionRecord,
        principal: &Principal,
        parts: axum::http::request::Parts,
        body: Bytes,
        path: &str,
        peer: Option<SocketAddr>,
    ) -> Result<Response, ServiceError> {
        let target_path = format!("/{path}");
        let entry = record
            .entry_points
            .iter()
            .filter(|e| target_path.starts_with(e.path.as_str()))
            .max_by_key(|e| e.path.len())
            .or_else(|| record.entry_points.first())
            .ok_or_else(|| {
                ServiceError::new(
                    StatusCode::BAD_GATEWAY,
                    Code::new("sandbox_unavailable"),
                    "session has no entry point",
                )
            })?;
        let base = if entry.endpoint.contains("://") {
            entry.endpoint.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", entry.endpoint.trim_end_matches('/'))
        };
        let mut url = format!("{base}{target_path}");
        if let Some(query) = parts.uri.query() {
            url.push('?');
            url.push_str(query);
        }
        let token = self
            .minter
            .sandbox_token(principal, &record.session_id)
            .map_err(|e| signing_failed(&e))?;

        let connection = connection_tokens(&parts.headers);
        let mut headers = HeaderMap::new();
        for (name, value) in &parts.headers {
            if !is_stripped_request_header(name, &connection) {
                headers.append(name.clone(), value.clone());
            }
        }
        let bearer = HeaderValue::from_str(&token.bearer()).map_err(|_| jwt_signing_failed())?;
        headers.insert(header::AUTHORIZATION, bearer);
        if let Ok(v) = HeaderValue::from_str(&record.session_id) {
            headers.insert(SESSION_HEADER, v);
        }
        let mut forwarded_for: Vec<String> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        if let Some(peer) = peer {
            forwarded_for.push(peer.ip().to_string());
        }
        if !forwarded_for.is_empty()
            && let Ok(v) = HeaderValue::from_str(&forwarded_for.join(", "))
        {
            headers.insert("x-forwarded-for", v);
        }
        if let Some(host) = parts.headers.get(header::HOST) {
            headers.insert("x-forwarded-host", host.clone());
        }
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        if let Some(RequestId(id)) = parts.extensions.get::<RequestId>()
            && let Ok(v) = HeaderValue::from_str(id)
        {
            headers.insert(REQUEST_ID_HEADER, v);
        }

        let upstream = self
            .http
            .request(parts.method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, session_id = record.session_id, "sandbox unreachable");
                if e.is_timeout() {
                    ServiceError::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        Code::new("sandbox_timeout"),
                        "sandbox timed out",
                    )
                } else {
                    ServiceError::new(
                        StatusCode::BAD_GATEWAY,
                        Code::new("sandbox_unavailable"),
                        "sandbox unavailable",
                    )
                }
            })?;
        let mut response = Response::new(Body::empty());
        *response.status_mut() = upstream.status();
        let connection = connection_tokens(upstream.headers());
        for (name, value) in upstream.headers() {
            let n = name.as_str();
            if HOP_BY_HOP.contains(&n)
                || connection.iter().any(|c| c == n)
                || n == header::CONTENT_LENGTH.as_str()
                || n == SESSION_HEADER
                || n == REQUEST_ID_HEADER
            {
                continue;
            }
            response.headers_mut().append(name.clone(), value.clone());
        }
        if let Ok(v) = HeaderValue::from_str(&record.session_id) {
            response.headers_mut().insert(SESSION_HEADER, v);
        }
        let bytes = upstream.bytes().await.map_err(|_| {
            ServiceError::new(
                StatusCode::BAD_GATEWAY,
                Code::new("sandbox_unavailable"),
                "sandbox response interrupted",
            )
        })?;
        *response.body_mut() = Body::from(bytes);
        Ok(response)
    }

    async fn delete(
        &self,
        session_id: &str,
        principal: &Principal,
        request_id: Option<&str>,
    ) -> Result<Response, ServiceError> {
        if !valid_session_id(session_id) {
            return Err(server::session_not_found());
        }
        let record = self
            .authorize(principal, session_id, Action::Delete)
            .await?;
        let kind = SessionKind::from_name(&record.kind).ok_or_else(|| {
            tracing::error!(session_id, kind = record.kind, "session of unknown kind");
            wm_error()
        })?;
        let response = self
            .call_wm(
                Method::DELETE,
                &format!("/v1/{}/sessions/{session_id}", kind.wm_segment()),
                None,
                principal,
                request_id,
            )
            .await?;
        let status = response.status();
        if status.is_success() {
            self.store
                .delete(session_id)
                .await
                .map_err(|e| server::store_failed(&e))?;
            tracing::info!(session_id, subject = principal.subject(), "session deleted");
            return Ok(
                axum::Json(json!({"sessionId": session_id, "deleted": true})).into_response(),
            );
        }
        if status == StatusCode::NOT_FOUND {
            // Gone on the WM side: forget it here too.
            let _ = self.store.delete(session_id).await;
            return Err(server::session_not_found());
        }
        Err(map_wm_error(response).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_algorithms_are_every_supported_algorithm() {
        assert_eq!(
            AlgorithmSet::parse_list(REFERENCE_ALGORITHMS),
            Ok(AlgorithmSet::ALL)
        );
        assert_eq!(
            OidcOptions::new("https://idp").algorithms,
            AlgorithmSet::ALL
        );
    }
}

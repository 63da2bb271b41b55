//! The workload manager: creates sandbox sessions for the Router and records who owns them.
//!
//! | route | identity token | answer |
//! |---|---|---|
//! | `GET /health/live`, `GET /health/ready` | no | 200; ready = the Router's keys are loaded (else 503) |
//! | `POST /v1/agent-runtime`, `POST /v1/code-interpreter` | required | 200 `{"kind","sessionId","sandboxId","sandboxName","entryPoints","ownerId"}` |
//! | `GET /v1/sessions/{id}` | required, owner or admin | 200 the session record (`ownerId`, and `metadata` with the owner annotation and label), 403, 404 |
//! | `DELETE /v1/agent-runtime/sessions/{id}`, `DELETE /v1/code-interpreter/sessions/{id}` | required, owner or admin | 200 `{"sessionId","deleted":true}`, 403, 404 |
//!
//! Identity verification fails closed (`X-AgentCube-User-Identity`, verified against the
//! Router's keys by the same `AuthLayer` the Router uses, reading the identity header instead of
//! `Authorization`): no header → 401, keys not loaded yet → 503, invalid → 401; a session is
//! never created without an owner (a workload manager that created a sandbox without one would
//! leave it usable by nobody but an admin).
//!
//! Sessions are simulated: there is no Kubernetes here. A created session's single entry point
//! is `--sandbox-url`, and the `Sandbox` object's metadata (name, namespace, the
//! `agentcube.io/owner` annotation and the `agentcube.io/owner-hash` label) is kept in the
//! record's `metadata` field. Records go to the [`OwnerStore`] (in memory, or the Redis the
//! Router reads, under the layout `session:<id>`).
//!
//! # Authentication disabled
//!
//! [`app_auth_disabled`] (the binary's `--auth-mode disabled`, env `AGENTCUBE_AUTH_MODE`;
//! default `enabled`) is the workload manager of a deployment whose Router runs with
//! authentication disabled, for benchmarks and migrations. It logs a warning at start-up that
//! every caller is unauthenticated, and then:
//!
//! - reads and verifies no identity token (an `X-AgentCube-User-Identity` header is ignored);
//!   it holds none of the Router's keys (the binary refuses `--router-jwks-url` and
//!   `--router-public-key` with it), and is always ready;
//! - creates ownerless sessions (`SessionRecord::new(AuthMode::Disabled, None, …)`): no owner
//!   annotation or label, `"ownerId": ""` in the answer;
//! - lets anyone read and delete any session (the ownership policy runs in
//!   [`AuthMode::Disabled`]: every decision is allowed with the reason `auth_disabled`, and
//!   audited as usual).
//!
//! With authentication enabled (the default) nothing of this applies: a create without the
//! identity header is refused 401 `missing_authorization`, so a sandbox without an owner is
//! only ever created by a workload manager that was explicitly told to run without
//! authentication.
//!
//! Decisions made here: reading a session record needs an identity token like every other
//! session route, because the record names its owner; the owner or an admin may read it. A
//! delete through the route of the other kind (an agent-runtime session deleted on
//! the code-interpreter route) is a 404. Error bodies are `{"error","code"}` like the Router's,
//! as every service here answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentcube_auth_core::http::{AuthLayer, AuthenticatedPrincipal, TokenLocation};
use agentcube_auth_core::jose::KeySource;
use agentcube_auth_core::{Code, Principal, Rejection as _, RoleHierarchy, ServiceError};
use agentcube_identity::{IDENTITY_HEADER, IdentityVerifier};
use agentcube_rlac::{
    AccessRequest, Action, AuthMode, EntryPoint, OwnerId, OwnerIdScheme, OwnerPolicy, OwnerStore,
    SessionRecord,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::server::{self, RequestId, Server};

/// The kind of sandbox a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// An agent runtime (`/v1/agent-runtime`, Router path `agent-runtimes`).
    AgentRuntime,
    /// A code interpreter (`/v1/code-interpreter`, Router path `code-interpreters`).
    CodeInterpreter,
}

impl SessionKind {
    /// The kind name in bodies and records: `AgentRuntime` or `CodeInterpreter`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AgentRuntime => "AgentRuntime",
            Self::CodeInterpreter => "CodeInterpreter",
        }
    }

    /// The workload manager's path segment: `agent-runtime` or `code-interpreter`.
    pub const fn wm_segment(self) -> &'static str {
        match self {
            Self::AgentRuntime => "agent-runtime",
            Self::CodeInterpreter => "code-interpreter",
        }
    }

    /// The kind of a record's `kind` field.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AgentRuntime" => Some(Self::AgentRuntime),
            "CodeInterpreter" => Some(Self::CodeInterpreter),
            _ => None,
        }
    }
}

/// The create request body.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CreateSessionRequest {
    /// `AgentRuntime` or `CodeInterpreter` (optional; must match the route when given).
    #[serde(default)]
    pub kind: String,
    /// The agent runtime / code interpreter name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// The create response body (the reference `CreateSandboxResponse`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionResponse {
    /// `AgentRuntime` or `CodeInterpreter`.
    pub kind: String,
    /// The new session id.
    pub session_id: String,
    /// The sandbox id.
    pub sandbox_id: String,
    /// The sandbox object name.
    pub sandbox_name: String,
    /// Where the sandbox listens.
    pub entry_points: Vec<EntryPoint>,
    /// The owner recorded on the session.
    pub owner_id: String,
}

/// Workload manager settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkloadManagerConfig {
    /// The sandbox every session's entry point names (`--sandbox-url`).
    pub sandbox_url: String,
    /// The role that bypasses ownership on delete (`--admin-role`, default `admin`).
    pub admin_role: String,
    /// The role hierarchy (default: flat — the token's roles as they are, since Keycloak already
    /// expands composites into them).
    pub hierarchy: Arc<RoleHierarchy>,
    /// How owner ids are formed; must match the Router's.
    pub owner_scheme: OwnerIdScheme,
}

impl WorkloadManagerConfig {
    /// The defaults for sandboxes at `sandbox_url`.
    pub fn new(sandbox_url: impl Into<String>) -> Self {
        Self {
            sandbox_url: sandbox_url.into(),
            admin_role: agentcube_rlac::DEFAULT_ADMIN_ROLE.to_owned(),
            hierarchy: Arc::new(RoleHierarchy::flat()),
            owner_scheme: OwnerIdScheme::SubjectOnly,
        }
    }

    /// Sets the admin role.
    #[must_use]
    pub fn admin_role(mut self, role: impl Into<String>) -> Self {
        self.admin_role = role.into();
        self
    }

    /// Sets the role hierarchy.
    #[must_use]
    pub fn hierarchy(mut self, hierarchy: Arc<RoleHierarchy>) -> Self {
        self.hierarchy = hierarchy;
        self
    }
}

struct Shared {
    store: Arc<dyn OwnerStore>,
    policy: OwnerPolicy,
    sandbox_url: String,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
}

/// Where the workload manager finds its caller's token: the identity header, holding the bare
/// identity token the Router signed.
pub fn identity_token_location() -> TokenLocation {
    #[allow(clippy::expect_used, reason = "a constant that is a valid header name")]
    TokenLocation::header(IDENTITY_HEADER).expect("invariant: the identity header name is valid")
}

/// The workload manager app.
pub fn app<K: KeySource + 'static>(
    verifier: IdentityVerifier<K>,
    store: Arc<dyn OwnerStore>,
    config: WorkloadManagerConfig,
) -> Router {
    let verifier = Arc::new(verifier);
    let ready_verifier = Arc::clone(&verifier);
    let auth = AuthLayer::from_arc(verifier)
        .token_location(identity_token_location())
        .on_rejection(server::AuditRejections::new("identity token rejected"));
    // Only matched routes authenticate: an unknown path is a 404, not a 401.
    let sessions = session_routes().route_layer(auth);
    let ready = Box::new(move || ready_verifier.is_ready());
    finish(sessions, AuthMode::Enabled, store, config, ready)
}

/// The workload manager **without authentication** (`--auth-mode disabled`; see
/// "Authentication disabled" in the module docs): no identity token is verified, sessions are
/// ownerless, and anyone may read or delete any session. Logs a warning saying so.
pub fn app_auth_disabled(store: Arc<dyn OwnerStore>, config: WorkloadManagerConfig) -> Router {
    server::warn_auth_disabled(
        "workload manager",
        "no identity token is verified, sessions are created without an owner, and anyone may \
         read or delete any session",
    );
    finish(
        session_routes(),
        AuthMode::Disabled,
        store,
        config,
        Box::new(|| true),
    )
}

/// The health routes and `sessions`, with their state.
fn finish(
    sessions: Router<Arc<Shared>>,
    auth: AuthMode,
    store: Arc<dyn OwnerStore>,
    config: WorkloadManagerConfig,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
) -> Router {
    let policy = crate::owner_policy(&config.hierarchy, &config.admin_role, config.owner_scheme)
        .with_auth_mode(auth);
    let shared = Arc::new(Shared {
        store,
        policy,
        sandbox_url: config.sandbox_url,
        ready,
    });
    let app = Router::new()
        .route("/health/live", get(server::live))
        .route("/health/ready", get(ready_route))
        .merge(sessions)
        .with_state(shared);
    server::finish(app, "workload-manager")
}

/// The session routes (the caller puts authentication in front of them).
fn session_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/sessions/{id}", get(get_session))
        .route("/v1/agent-runtime", create_route(SessionKind::AgentRuntime))
        .route(
            "/v1/code-interpreter",
            create_route(SessionKind::CodeInterpreter),
        )
        .route(
            "/v1/agent-runtime/sessions/{id}",
            delete_route(SessionKind::AgentRuntime),
        )
        .route(
            "/v1/code-interpreter/sessions/{id}",
            delete_route(SessionKind::CodeInterpreter),
        )
}

/// Starts the workload manager on an ephemeral loopback port.
///
/// # Errors
/// The bind error.
pub async fn serve<K: KeySource + 'static>(
    verifier: IdentityVerifier<K>,
    store: Arc<dyn OwnerStore>,
    config: WorkloadManagerConfig,
) -> std::io::Result<Server> {
    server::serve(app(verifier, store, config)).await
}

async fn ready_route(State(shared): State<Arc<Shared>>) -> Response {
    server::readiness(
        (shared.ready)(),
        "identity verification keys are unavailable",
    )
}

/// The create route of `kind` (`POST /v1/{segment}`).
fn create_route(kind: SessionKind) -> MethodRouter<Arc<Shared>> {
    post(
        move |State(shared): State<Arc<Shared>>,
              caller: Option<AuthenticatedPrincipal>,
              id: Option<Extension<RequestId>>,
              body: Bytes| async move {
            let id = id.as_ref().map(|Extension(id)| id.0.as_str());
            shared.create(kind, caller.as_deref(), &body, id).await
        },
    )
}

/// The delete route of `kind` (`DELETE /v1/{segment}/sessions/{id}`).
fn delete_route(kind: SessionKind) -> MethodRouter<Arc<Shared>> {
    delete(
        move |State(shared): State<Arc<Shared>>,
              Path(id): Path<String>,
              caller: Option<AuthenticatedPrincipal>,
              request_id: Option<Extension<RequestId>>| async move {
            let request_id = request_id.as_ref().map(|Extension(r)| r.0.as_str());
            shared
                .delete(kind, &id, caller.as_deref(), request_id)
                .await
        },
    )
}

/// `GET /v1/sessions/{id}`: the record, for its owner or an admin.
async fn get_session(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    caller: Option<AuthenticatedPrincipal>,
    request_id: Option<Extension<RequestId>>,
) -> Result<Response, ServiceError> {
    let request_id = request_id.as_ref().map(|Extension(r)| r.0.as_str());
    let record = shared
        .store
        .get(&id)
        .await
        .map_err(|e| server::store_failed(&e))?
        .ok_or_else(server::session_not_found)?;
    // No caller only with authentication disabled (the layer refuses it otherwise); the policy
    // then allows with `auth_disabled`, and would deny an unauthenticated request if not.
    let request = AccessRequest::for_record(caller.as_deref(), &record, Action::Read)
        .with_request_id(request_id);
    server::enforce(&shared.policy, &request)?;
    Ok(axum::Json(record).into_response())
}

/// A DNS-label-ish name: what Kubernetes would accept as a name or namespace.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

impl Shared {
    /// With authentication on, the layer verified the caller before this runs: nothing is
    /// parsed or created for a caller nobody can name. `principal` is `None` only with
    /// authentication disabled.
    async fn create(
        &self,
        kind: SessionKind,
        principal: Option<&Principal>,
        body: &[u8],
        request_id: Option<&str>,
    ) -> Result<Response, ServiceError> {
        let request: CreateSessionRequest = serde_json::from_slice(body).map_err(|_| {
            ServiceError::new(
                StatusCode::BAD_REQUEST,
                Code::new("invalid_request"),
                "invalid request body",
            )
        })?;
        if !request.kind.is_empty() && request.kind != kind.name() {
            return Err(ServiceError::new(
                StatusCode::BAD_REQUEST,
                Code::new("invalid_request"),
                "kind does not match the route",
            ));
        }
        if !valid_name(&request.name) || !valid_name(&request.namespace) {
            return Err(ServiceError::new(
                StatusCode::BAD_REQUEST,
                Code::new("invalid_request"),
                "name and namespace must be lowercase dns names",
            ));
        }
        // No owner only with authentication disabled (the policy denies it otherwise).
        let owner = server::authorize_creation(&self.policy, principal, request_id)?;
        let session_id = uuid::Uuid::new_v4().to_string();
        let sandbox_id = uuid::Uuid::new_v4().to_string();
        let suffix: String = sandbox_id.chars().take(8).collect();
        let sandbox_name = format!("{}-{suffix}", request.name);

        // Owned with authentication on; ownerless only with it disabled.
        let owner_id = owner.as_ref().map_or("", OwnerId::as_str).to_owned();
        let mut record = SessionRecord::new(self.policy.auth_mode(), owner, session_id.clone())
            .map_err(|e| e.to_service_error())?;
        record.kind = kind.name().to_owned();
        record.namespace.clone_from(&request.namespace);
        record.sandbox_id.clone_from(&sandbox_id);
        record.sandbox_name.clone_from(&sandbox_name);
        record.entry_points = vec![EntryPoint {
            path: "/".to_owned(),
            protocol: "HTTP".to_owned(),
            endpoint: self.sandbox_url.clone(),
        }];
        // The simulated Sandbox object's metadata, stamped with the owner.
        let (mut annotations, mut labels) = (BTreeMap::new(), BTreeMap::new());
        if let Some(meta) = record.owner_metadata() {
            meta.apply_to(&mut annotations, &mut labels);
        }
        let _ = record.insert_extra(
            "metadata",
            json!({
                "name": sandbox_name,
                "namespace": request.namespace,
                "annotations": annotations,
                "labels": labels,
            }),
        );
        self.store
            .put(&record)
            .await
            .map_err(|e| server::store_failed(&e))?;
        tracing::info!(
            session_id,
            kind = kind.name(),
            subject = principal.map(Principal::subject),
            "session created"
        );
        Ok(axum::Json(CreateSessionResponse {
            kind: kind.name().to_owned(),
            session_id,
            sandbox_id,
            sandbox_name,
            entry_points: record.entry_points,
            owner_id,
        })
        .into_response())
    }

    async fn delete(
        &self,
        kind: SessionKind,
        id: &str,
        principal: Option<&Principal>,
        request_id: Option<&str>,
    ) -> Result<Response, ServiceError> {
        let record = self
            .store
            .get(id)
            .await
            .map_err(|e| server::store_failed(&e))?
            .filter(|r| SessionKind::from_name(&r.kind) == Some(kind))
            .ok_or_else(server::session_not_found)?;
        let request = AccessRequest::for_record(principal, &record, Action::Delete)
            .with_request_id(request_id);
        let reason = server::enforce(&self.policy, &request)?;
        self.store
            .delete(id)
            .await
            .map_err(|e| server::store_failed(&e))?;
        tracing::info!(
            session_id = id,
            subject = principal.map(Principal::subject),
            reason = %reason.code(),
            "session deleted"
        );
        Ok(axum::Json(json!({"sessionId": id, "deleted": true})).into_response())
    }
}

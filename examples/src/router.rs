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
//! | `POST /oidc/backchannel-logout` | the logout token itself | OpenID Connect back-channel logout: revokes the ended session (with [`RevocationOptions::backchannel`]) |
//! | `POST /admin/revocations` | token + admin role | revokes a subject, a client or a session by hand (with [`RevocationOptions`]) |
//!
//! # Order on `/v1/*`
//!
//! request id and log span → [`AuthLayer`] (bearer token → [`TokenVerifier`] → the required
//! role through the [`RoleHierarchy`]; 401/403/503) → concurrency limit (429
//! `server_overloaded`; rejected requests never take a slot, and a request keeps its slot
//! until its response body has been sent) → handler, which first checks the path suffix (400
//! `invalid_path`) and a declared body length (413 `body_too_large`), then:
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
//! header, `X-Forwarded-For/Host/Proto`, the request id as `X-Request-Id` (the client's when it
//! was a valid one, else the one the Router made), and the client's other headers — never the
//! client's `Authorization`, its `X-AgentCube-User-Identity`, hop-by-hop headers, or the
//! `X-Forwarded-Host/Proto` it sent (its `X-Forwarded-For` is extended with its address).
//!
//! # The forwarded path
//!
//! The sandbox receives `/` followed by the part of the request path after `/invocations/`
//! exactly as the client sent it: still percent-encoded, never decoded and encoded again
//! (`a%2F..%2Fadmin` stays one segment; `%3F` and `%23` stay in the path), with the client's
//! query string as it is. Three adjustments only:
//!
//! - leading slashes of the suffix are dropped (`invocations//x` is `/x`);
//! - a literal `\` is sent as `%5C` (a URL reads a literal one as `/`);
//! - characters a URL cannot hold as they are get percent-encoded (`"`, `{`, `}` and
//!   non-ASCII in the path, `'` and non-ASCII in the query): the same text once decoded.
//!
//! A suffix with a dot segment (`.` or `..`, literal or percent-encoded as `%2e`) is refused
//! with 400 `invalid_path` before any session is created or checked: a URL resolves dot
//! segments, so the sandbox would receive another path than the one the client named.
//!
//! The entry point is the one whose path is the longest prefix of the forwarded path at a
//! segment boundary (`/api` serves `/api` and `/api/x`, never `/apix`; `/` serves every path);
//! when none does, the session's first entry point.
//!
//! # Bodies and memory
//!
//! Request and response bodies stream through the Router; neither is held whole in memory.
//!
//! - **Requests** longer than `max_body_bytes` are refused with 413 `body_too_large`: at once
//!   when their `Content-Length` says so (before any session is created or checked), otherwise
//!   as soon as the bytes received pass the limit — the upload to the sandbox is then aborted
//!   (a session created by this very request remains).
//! - **Responses** are capped by `max_response_bytes` (no cap by default). One whose
//!   `Content-Length` exceeds the cap is refused with 502 `response_too_large` before anything
//!   reaches the client. One without a length is cut off when it passes the cap: the client has
//!   already received the status, the headers and at most `max_response_bytes` bytes of the
//!   body, and then the connection closes without the end of the chunked body, which HTTP
//!   clients report as an incomplete body (an error, never a silently short success). The
//!   Router logs the cut with the session and request ids, and keeps serving.
//! - A sandbox that fails in the middle of its response, or runs past `upstream_timeout` (the
//!   timeout covers the whole exchange, body included), is cut off the same way, and logged.
//!
//! Why memory is bounded: a request in flight holds its two connections' buffers (the client's
//! and the sandbox's; each reads at most about 400 KiB ahead and queues at most about twice that
//! for writing) and the chunk in transit. A client that reads slowly slows the sandbox down
//! (the Router stops reading from the sandbox while it cannot write to the client), rather than
//! piling data up in the Router. And a request keeps its slot in the concurrency limit until its
//! response body has been sent or dropped, so at most `max_concurrent_requests` requests are in
//! flight: the proxy's buffers stay below `max_concurrent_requests` × a few MiB, whatever the
//! body sizes. (Were bodies read whole, the bound would be `max_concurrent_requests` ×
//! `max_body_bytes` for requests, and none at all for responses.)
//!
//! Errors of internal HTTP calls are logged without their URL: the URL of a forwarded request
//! holds the client's query string, which may carry secrets.
//!
//! # Revocation
//!
//! With [`RouterConfig::revocation`], a token that was revoked after it was issued is refused
//! with 401 `token_revoked`, on the first request after the revocation and on every later one
//! (verified-token cache hits included; the verifier is built with the same set through
//! [`OidcOptions::revocations`]). Revocations come from:
//!
//! - **the identity provider**: Keycloak posts a logout token to `POST /oidc/backchannel-logout`
//!   when a session ends (the user logged out, an administrator ended the session or logged the
//!   user out). The form's `logout_token` is verified with the issuer's keys and the back-channel
//!   logout rules (see `agentcube_oidc::BackchannelLogout`); the answer is 200, or 400 with
//!   `{"error":"invalid_request","error_description":...}`, both with `Cache-Control: no-store`.
//!   No other authentication: the signed token is the credential.
//! - **an administrator**: `POST /admin/revocations` with `{"sub": "..."}`, `{"client": "..."}`
//!   or `{"sid": "..."}` (exactly one; `"iss"` names the issuer, by default the
//!   administrator's own) revokes every token of that subject, client or session issued up to
//!   now — for identities without a Keycloak session, such as service accounts. It requires the
//!   admin role (`--admin-role`) through the same authentication layer as `/v1/*`, and answers
//!   200 `{"iss","kind","value","revokedAt"}`.
//!
//! Every revocation also drops the internal tokens the Router had cached for the revoked
//! principal, on every replica that learns of it, so none is handed out again. With a shared
//! set (Redis), the replica that received the revocation refuses at once and the others within
//! the set's poll interval.
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
//!
//! # Authentication disabled
//!
//! [`app_auth_disabled`] (the binary's `--auth-mode disabled`, env `AGENTCUBE_AUTH_MODE`;
//! default `enabled`) builds the same Router without authentication, for benchmarks and
//! migrations. It says so once, loudly: a `warn!` at start-up stating that every caller is
//! unauthenticated (nothing is logged per request). What changes:
//!
//! - no token is read or verified, no role is required, and no ownership is checked: the
//!   ownership policy runs in [`AuthMode::Disabled`] and allows every request with the reason
//!   `auth_disabled` (still one audit event per decision, as with authentication on);
//! - sessions it creates are ownerless (`SessionRecord::new(AuthMode::Disabled, None, …)`), and
//!   the workload manager must report no owner for them (502 `owner_mismatch` otherwise);
//! - it sends **no identity header** to the workload manager and **no sandbox token** to the
//!   sandbox. There is no caller to vouch for, and a token signed for nobody would only
//!   look like a guarantee. The workload manager and the sandbox must therefore run with
//!   `--auth-mode disabled` too; one still enabled refuses these requests (the workload
//!   manager's 401 becomes 502 `identity_rejected`, the sandbox's 401 reaches the client), so a
//!   half-disabled deployment fails closed instead of working by accident;
//! - it holds no identity key: `/.well-known/agentcube/jwks.json`, `/admin/revocations` and
//!   `/oidc/backchannel-logout` are not served (404), and `/health/ready` is always ready.
//!
//! What does not change: the routes, the path rules, the limits, the workload manager calls
//! and the proxying; the client's `Authorization` and `X-AgentCube-User-Identity` are still
//! never forwarded. The binary refuses to start with `--auth-mode disabled` and any of
//! `--jwt-issuer-url`, `--identity-key`, `--role-hierarchy-file` or `--owner-id-scheme`,
//! rather than ignore them.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use agentcube_auth_core::http::{AuthLayer, AuthenticatedPrincipal};
use agentcube_auth_core::jose::AlgorithmSet;
use agentcube_auth_core::{
    AuthError, ClaimPathMapper, Code, Principal, Rejection as _, Requirement, RoleHierarchy,
    ServiceError, TokenVerifier,
};
use agentcube_identity::{IDENTITY_HEADER, MintError, TokenMinter};
use agentcube_oidc::{ConfigError, KeyStoreConfig, MultiIssuerVerifier, OidcConfig, OidcVerifier};
use agentcube_rlac::{
    AccessRequest, Action, AuthMode, EntryPoint, OwnerId, OwnerIdScheme, OwnerPolicy, OwnerStore,
    SessionRecord,
};
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get};
use axum::{BoxError, Router};
use futures_util::{Stream, StreamExt as _};
use http_body::{Frame, SizeHint};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_layer::Stack;

mod concurrency_limit;

use self::concurrency_limit::ConcurrencyLimitLayer;
use crate::sandbox::SESSION_HEADER;
use crate::server::{self, REQUEST_ID_HEADER, RequestId, Server};
use crate::workload_manager::{CreateSessionResponse, SessionKind};

/// Where the Router serves its public identity keys.
pub const JWKS_PATH: &str = "/.well-known/agentcube/jwks.json";

/// The Router's algorithm allowlist (`--jwt-algorithms` default): every asymmetric algorithm,
/// each bound to its key type.
pub const REFERENCE_ALGORITHMS: &str =
    "RS256,RS384,RS512,PS256,PS384,PS512,ES256,ES384,ES512,EdDSA";

/// The default role claim: Keycloak's realm roles (client roles are read too, namespaced).
pub const DEFAULT_ROLE_CLAIM: &str = "realm_access.roles";

/// The default required role.
pub const DEFAULT_REQUIRED_ROLE: &str = "sandbox:invoke";

/// The timeout of calls to the workload manager and the sandbox.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

/// The default concurrency limit.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1000;

/// The longest request body proxied (bodies stream through; see the module docs).
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
    /// The revocation set the verifier checks (none by default).
    pub revocations: Option<Arc<dyn agentcube_auth_core::RevocationSet>>,
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
            revocations: None,
        }
    }

    /// Sets the JWKS refresh cooldown.
    #[must_use]
    pub fn jwks_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.jwks_refresh_cooldown = cooldown;
        self
    }

    /// Refuses revoked tokens: every verifier built from these options checks `set`, cache
    /// hits included (give the Router the same set in [`RouterConfig::revocation`]).
    #[must_use]
    pub fn revocations(mut self, set: Arc<dyn agentcube_auth_core::RevocationSet>) -> Self {
        self.revocations = Some(set);
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

    /// The same options for another issuer.
    #[must_use]
    pub fn for_issuer(&self, issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            ..self.clone()
        }
    }

    /// One verifier per issuer (`--jwt-issuer-url` given several times), each built as
    /// [`OidcOptions::build`] builds its own, behind a router that picks by the token's `iss`
    /// (an unknown issuer is `unknown_issuer`, without any fetch).
    ///
    /// # Errors
    /// An invalid configuration of any issuer, or no issuer.
    pub fn build_multi<S: AsRef<str>>(
        &self,
        issuers: &[S],
    ) -> Result<MultiIssuerVerifier, ConfigError> {
        let verifiers = issuers
            .iter()
            .map(|issuer| self.for_issuer(issuer.as_ref()).build())
            .collect::<Result<Vec<_>, _>>()?;
        MultiIssuerVerifier::new(verifiers)
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
        if let Some(set) = &self.revocations {
            config = config.revocations(Arc::clone(set));
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
    /// The role hierarchy (default: flat — the token's roles as they are, since Keycloak
    /// already expands composites into them).
    pub hierarchy: Arc<RoleHierarchy>,
    /// How owner ids are formed; must match the workload manager's.
    pub owner_scheme: OwnerIdScheme,
    /// Requests served at once on `/v1/*`; more are answered 429. A request holds its slot
    /// until its response body has been sent.
    pub max_concurrent_requests: usize,
    /// Timeout of calls to the workload manager and the sandbox, bodies included.
    pub upstream_timeout: Duration,
    /// The longest request body forwarded (413 `body_too_large` beyond).
    pub max_body_bytes: usize,
    /// The longest sandbox response forwarded; `None` (the default) for no limit. A response
    /// declared longer is answered 502 `response_too_large`; one that turns out longer is cut
    /// off (see the module docs).
    pub max_response_bytes: Option<usize>,
    /// Revocation: the back-channel logout endpoint and the admin route (see the module
    /// docs). `None` (the default): neither route, and no revocation.
    pub revocation: Option<RevocationOptions>,
}

impl RouterConfig {
    /// The defaults, with the workload manager at `workload_manager_url`.
    pub fn new(workload_manager_url: impl Into<String>) -> Self {
        Self {
            workload_manager_url: workload_manager_url.into(),
            required_role: DEFAULT_REQUIRED_ROLE.to_owned(),
            admin_role: agentcube_rlac::DEFAULT_ADMIN_ROLE.to_owned(),
            hierarchy: Arc::new(RoleHierarchy::flat()),
            owner_scheme: OwnerIdScheme::SubjectOnly,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_response_bytes: None,
            revocation: None,
        }
    }

    /// Serves the revocation routes with `revocation` (see the module docs).
    #[must_use]
    pub fn revocation(mut self, revocation: RevocationOptions) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Sets the longest request body forwarded.
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Caps sandbox responses at `limit` bytes.
    #[must_use]
    pub fn max_response_bytes(mut self, limit: usize) -> Self {
        self.max_response_bytes = Some(limit);
        self
    }

    /// Sets how owner ids are formed (must match the workload manager's).
    #[must_use]
    pub fn owner_scheme(mut self, scheme: OwnerIdScheme) -> Self {
        self.owner_scheme = scheme;
        self
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

/// Revocation on the Router (see the module docs).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RevocationOptions {
    /// The set the verifier checks (the one given to [`OidcOptions::revocations`]): the admin
    /// route records revocations into it, and the Router drops its cached internal tokens for
    /// every revocation it hears of there.
    pub set: Arc<dyn agentcube_auth_core::RevocationSet>,
    /// Serves `POST /oidc/backchannel-logout` when given (built from the same verifier, whose
    /// set it records logouts into).
    pub backchannel: Option<agentcube_oidc::BackchannelLogout>,
}

impl RevocationOptions {
    /// The admin route on `set`, and the back-channel logout endpoint when `backchannel` is
    /// given.
    pub fn new(
        set: Arc<dyn agentcube_auth_core::RevocationSet>,
        backchannel: Option<agentcube_oidc::BackchannelLogout>,
    ) -> Self {
        Self { set, backchannel }
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

/// How the Router authenticates (see "Authentication disabled" in the module docs).
enum Auth {
    /// An `AuthLayer` verifies every `/v1/*` request; internal tokens are signed by the minter.
    Enabled(Arc<TokenMinter>),
    /// Nothing is verified and no internal token is signed.
    Disabled,
}

impl Auth {
    fn mode(&self) -> AuthMode {
        match self {
            Self::Enabled(_) => AuthMode::Enabled,
            Self::Disabled => AuthMode::Disabled,
        }
    }
}

/// Who a request acts for.
#[derive(Clone, Copy)]
enum Caller<'a> {
    /// The authenticated caller; internal tokens are minted for it.
    User {
        principal: &'a Principal,
        minter: &'a TokenMinter,
    },
    /// Authentication is disabled: nobody.
    Anonymous,
}

impl<'a> Caller<'a> {
    fn principal(self) -> Option<&'a Principal> {
        match self {
            Self::User { principal, .. } => Some(principal),
            Self::Anonymous => None,
        }
    }

    fn subject(self) -> Option<&'a str> {
        self.principal().map(Principal::subject)
    }
}

struct Shared {
    auth: Auth,
    store: Arc<dyn OwnerStore>,
    policy: OwnerPolicy,
    http: reqwest::Client,
    wm_url: String,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
    max_body_bytes: u64,
    max_response_bytes: Option<u64>,
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
    let revocation_routes = revocation_routes(&config, &verifier, &minter);
    let ready_verifier = Arc::clone(&verifier);
    let auth = AuthLayer::from_arc(verifier)
        .require(Requirement::realm_role(config.required_role.as_str()))
        .hierarchy(Arc::clone(&config.hierarchy))
        .on_rejection(server::AuditRejections::new("authentication failed"));
    // One route layer for both, so that a request clones one boxed route, as it does without
    // authentication (each `route_layer` call boxes every route once more).
    let limit = ConcurrencyLimitLayer::new(config.max_concurrent_requests);
    let v1 = v1_routes().route_layer(Stack::new(limit, auth));
    let shared = shared(
        Auth::Enabled(minter),
        store,
        config,
        Box::new(move || ready_verifier.is_ready()),
    )?;
    let app = Router::new()
        .route("/health/live", get(server::live))
        .route("/health/ready", get(ready))
        .route(JWKS_PATH, get(jwks))
        .merge(v1)
        .merge(revocation_routes)
        .with_state(shared);
    Ok(server::finish(app, "router"))
}

/// The Router **without authentication** (`--auth-mode disabled`; see "Authentication
/// disabled" in the module docs): no token verification, no role or ownership check,
/// ownerless sessions, no internal tokens. Logs a warning saying so.
///
/// `config`'s role settings (`required_role`, `admin_role`, `hierarchy`) and its revocation
/// options are unused.
///
/// # Errors
/// [`RouterError::Http`] if the HTTP client cannot be built.
pub fn app_auth_disabled(
    store: Arc<dyn OwnerStore>,
    config: RouterConfig,
) -> Result<Router, RouterError> {
    server::warn_auth_disabled(
        "router",
        "no access token is verified, no role or session ownership is checked, sessions are \
         created without an owner, and no identity or sandbox token is sent",
    );
    let v1 = v1_routes().route_layer(ConcurrencyLimitLayer::new(config.max_concurrent_requests));
    let shared = shared(Auth::Disabled, store, config, Box::new(|| true))?;
    let app = Router::new()
        .route("/health/live", get(server::live))
        .route("/health/ready", get(ready))
        .merge(v1)
        .with_state(shared);
    Ok(server::finish(app, "router"))
}

/// What the handlers share.
fn shared(
    auth: Auth,
    store: Arc<dyn OwnerStore>,
    config: RouterConfig,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
) -> Result<Arc<Shared>, RouterError> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(config.upstream_timeout)
        .build()?;
    let policy = crate::owner_policy(&config.hierarchy, &config.admin_role, config.owner_scheme)
        .with_auth_mode(auth.mode());
    Ok(Arc::new(Shared {
        auth,
        store,
        policy,
        http,
        wm_url: trim_slashes(config.workload_manager_url),
        ready,
        max_body_bytes: as_u64(config.max_body_bytes),
        max_response_bytes: config.max_response_bytes.map(as_u64),
    }))
}

/// The `/v1/*` routes; the caller adds the concurrency limit and authentication in front.
fn v1_routes() -> Router<Arc<Shared>> {
    let ar = "/v1/namespaces/{namespace}/agent-runtimes/{name}/invocations";
    let ci = "/v1/namespaces/{namespace}/code-interpreters/{name}/invocations";
    let (invoke_ar, invoke_ci) = (
        invoke_route(SessionKind::AgentRuntime),
        invoke_route(SessionKind::CodeInterpreter),
    );
    Router::new()
        .route(&format!("{ar}/{{*path}}"), invoke_ar.clone())
        .route(&format!("{ar}/"), invoke_ar)
        .route(&format!("{ci}/{{*path}}"), invoke_ci.clone())
        .route(&format!("{ci}/"), invoke_ci)
        .route("/v1/sessions/{id}", delete(delete_session))
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

async fn ready(State(shared): State<Arc<Shared>>) -> Response {
    server::readiness((shared.ready)(), "token verification keys are unavailable")
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let Auth::Enabled(minter) = &shared.auth else {
        return server::not_found().await;
    };
    let body = minter.key_ring().jwks_json();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The path of the back-channel logout endpoint.
pub const BACKCHANNEL_LOGOUT_PATH: &str = "/oidc/backchannel-logout";

/// The path of the admin revocation route.
pub const ADMIN_REVOCATIONS_PATH: &str = "/admin/revocations";

/// The content type of a back-channel logout request.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The longest body read on the revocation routes (a logout token is at most 8 KiB).
const MAX_REVOCATION_BODY_BYTES: usize = 64 * 1024;

/// What the revocation routes share.
struct RevocationState {
    set: Arc<dyn agentcube_auth_core::RevocationSet>,
    backchannel: Option<agentcube_oidc::BackchannelLogout>,
    minter: Arc<TokenMinter>,
}

/// The revocation routes of `config` (none without [`RouterConfig::revocation`]); subscribes
/// the minter to the set so that each revocation drops the cached internal tokens of the
/// revoked principal.
fn revocation_routes<V: TokenVerifier + 'static, S: Clone + Send + Sync + 'static>(
    config: &RouterConfig,
    verifier: &Arc<V>,
    minter: &Arc<TokenMinter>,
) -> Router<S> {
    let Some(options) = &config.revocation else {
        return Router::new();
    };
    let forget = Arc::clone(minter);
    let listener = move |revocation: &agentcube_auth_core::Revocation| {
        let dropped = forget.forget_revoked(revocation);
        tracing::info!(
            issuer = revocation.issuer(),
            kind = %revocation.target().kind(),
            revoked_at = revocation.revoked_at(),
            dropped_internal_tokens = dropped,
            "revocation recorded"
        );
    };
    options.set.subscribe(Arc::new(listener));
    let state = Arc::new(RevocationState {
        set: Arc::clone(&options.set),
        backchannel: options.backchannel.clone(),
        minter: Arc::clone(minter),
    });
    let admin = AuthLayer::from_arc(Arc::clone(verifier))
        .require(Requirement::realm_role(config.admin_role.as_str()))
        .hierarchy(Arc::clone(&config.hierarchy))
        .on_rejection(server::AuditRejections::new("authentication failed"));
    let mut routes = Router::new().route(
        ADMIN_REVOCATIONS_PATH,
        axum::routing::post(admin_revoke).route_layer(admin),
    );
    if options.backchannel.is_some() {
        routes = routes.route(
            BACKCHANNEL_LOGOUT_PATH,
            axum::routing::post(backchannel_logout),
        );
    }
    routes.with_state(state)
}

/// `POST /oidc/backchannel-logout`: a form with one `logout_token`.
async fn backchannel_logout(State(state): State<Arc<RevocationState>>, req: Request) -> Response {
    let Some(receiver) = &state.backchannel else {
        return server::not_found().await;
    };
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE));
    let result = if is_form {
        match axum::body::to_bytes(req.into_body(), MAX_REVOCATION_BODY_BYTES).await {
            Ok(body) => receiver.receive_form(&body).await,
            Err(_) => Err(agentcube_oidc::LogoutError::InvalidRequest),
        }
    } else {
        Err(agentcube_oidc::LogoutError::InvalidRequest)
    };
    match result {
        Ok(logout) => {
            // The set's listener dropped what the revoked session had; a logout that names
            // the user drops every internal token cached for them here too.
            if let Some(subject) = &logout.subject {
                state.minter.forget(logout.issuer(), subject);
            }
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
        }
        Err(err) => (
            err.status(),
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            err.to_json(),
        )
            .into_response(),
    }
}

const EXACTLY_ONE: &str = r#"exactly one of "sub", "client", "sid" is required"#;

/// The body of `POST /admin/revocations`: exactly one of `sub`, `client`, `sid`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    client: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    iss: Option<String>,
}

/// `POST /admin/revocations` (admin role).
async fn admin_revoke(
    State(state): State<Arc<RevocationState>>,
    AuthenticatedPrincipal(admin): AuthenticatedPrincipal,
    req: Request,
) -> Result<Response, ServiceError> {
    let invalid = |message: &'static str| {
        ServiceError::new(StatusCode::BAD_REQUEST, INVALID_REQUEST, message)
    };
    let body = axum::body::to_bytes(req.into_body(), MAX_REVOCATION_BODY_BYTES)
        .await
        .map_err(|_| invalid("request body too large or unreadable"))?;
    let request: RevokeRequest = serde_json::from_slice(&body).map_err(|_| {
        invalid(r#"body must be a json object with one of "sub", "client", "sid" (and "iss")"#)
    })?;
    use agentcube_auth_core::RevocationTarget;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let target = match (
        nonempty(request.sub),
        nonempty(request.client),
        nonempty(request.sid),
    ) {
        (Some(sub), None, None) => RevocationTarget::Subject(sub.into()),
        (None, Some(client), None) => RevocationTarget::Client(client.into()),
        (None, None, Some(sid)) => RevocationTarget::Session(sid.into()),
        _ => return Err(invalid(EXACTLY_ONE)),
    };
    let issuer = nonempty(request.iss).unwrap_or_else(|| admin.issuer().to_owned());
    let now = agentcube_auth_core::Clock::now_unix(&agentcube_auth_core::SystemClock);
    let revocation = agentcube_auth_core::Revocation::new(issuer, target, now);
    tracing::info!(
        admin = admin.subject(),
        issuer = revocation.issuer(),
        kind = %revocation.target().kind(),
        "revocation requested by an administrator"
    );
    state.set.revoke(revocation.clone()).await.map_err(|err| {
        tracing::warn!(error = %err, "revocation failed");
        agentcube_auth_core::Rejection::to_service_error(&err)
    })?;
    Ok(axum::Json(json!({
        "iss": revocation.issuer(),
        "kind": revocation.target().kind().as_str(),
        "value": revocation.target().value(),
        "revokedAt": revocation.revoked_at(),
    }))
    .into_response())
}

/// The workload an invocation route names. The `{*path}` capture is not read from here: the
/// forwarded path comes from the raw request path (see "The forwarded path" in the module docs).
#[derive(Deserialize)]
struct Workload {
    namespace: String,
    name: String,
}

/// The invocation route of `kind` (`GET` and `POST`).
fn invoke_route(kind: SessionKind) -> MethodRouter<Arc<Shared>> {
    let handler = move |State(shared): State<Arc<Shared>>,
                        Path(workload): Path<Workload>,
                        principal: Option<AuthenticatedPrincipal>,
                        req: Request| async move {
        let caller = shared.caller(principal.as_deref())?;
        shared.invoke(kind, &workload, caller, req).await
    };
    get(handler).post(handler)
}

async fn delete_session(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    principal: Option<AuthenticatedPrincipal>,
    req: Request,
) -> Result<Response, ServiceError> {
    let caller = shared.caller(principal.as_deref())?;
    let request_id = request_id(&req);
    shared.delete(&id, caller, request_id.as_deref()).await
}

fn trim_slashes(mut url: String) -> String {
    while url.ends_with('/') {
        url.pop();
    }
    url
}

fn request_id(req: &Request) -> Option<String> {
    RequestId::of(req.extensions()).map(str::to_owned)
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

fn wm_send_error(err: reqwest::Error) -> ServiceError {
    tracing::warn!(
        error = %describe(err),
        "workload manager unreachable"
    );
    wm_unavailable()
}

/// The sandbox could not be reached, or did not answer in time: 504 `sandbox_timeout` or 502
/// `sandbox_unavailable`.
fn sandbox_send_error(err: reqwest::Error, session_id: &str) -> ServiceError {
    let timeout = err.is_timeout();
    tracing::warn!(error = %describe(err), session_id, "sandbox unreachable");
    if timeout {
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
}

/// An HTTP client error for the logs, without its URL (a forwarded request's URL holds the
/// client's query string): the error and its causes, `: `-separated.
fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        // A nested client error could name a URL again: its causes follow it anyway.
        if cause.downcast_ref::<reqwest::Error>().is_none() {
            text.push_str(": ");
            text.push_str(&cause.to_string());
        }
        source = cause.source();
    }
    text
}

fn body_too_large() -> ServiceError {
    ServiceError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::new("body_too_large"),
        "request body too large",
    )
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The part of a raw invocation path after `/invocations/`, still percent-encoded.
///
/// The invocation routes are `/v1/namespaces/{ns}/{kind}/{name}/invocations/{*path}`: the
/// suffix is what follows the seventh `/` (`{ns}` and `{name}` are single segments).
fn invocation_suffix(raw_path: &str) -> &str {
    raw_path.splitn(8, '/').nth(7).unwrap_or("")
}

/// The path forwarded to the sandbox for a raw suffix (see "The forwarded path" in the module
/// docs); 400 `invalid_path` for a dot segment.
fn upstream_path(suffix: &str) -> Result<String, ServiceError> {
    let path = format!("/{}", suffix.trim_start_matches('/').replace('\\', "%5C"));
    if path.split('/').any(is_dot_segment) {
        tracing::info!("invocation path with a dot segment refused");
        return Err(ServiceError::new(
            StatusCode::BAD_REQUEST,
            Code::new("invalid_path"),
            "path must not contain dot segments",
        ));
    }
    Ok(path)
}

/// `.` or `..`, literal or with `%2e` for any dot (as a URL reads them).
fn is_dot_segment(segment: &str) -> bool {
    if segment.len() > 6 {
        return false;
    }
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// Whether an entry point's path prefix serves `path`, at a segment boundary.
fn serves(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The entry point with the longest prefix serving `path`, or the first one.
fn entry_point_for<'a>(entry_points: &'a [EntryPoint], path: &str) -> Option<&'a EntryPoint> {
    entry_points
        .iter()
        .filter(|e| serves(&e.path, path))
        .max_by_key(|e| e.path.trim_end_matches('/').len())
        .or_else(|| entry_points.first())
}

/// The request body past the limit.
#[derive(Debug, thiserror::Error)]
#[error("request body too large")]
struct BodyTooLarge;

/// The sandbox response past the limit.
#[derive(Debug, thiserror::Error)]
#[error("sandbox response too large")]
struct ResponseTooLarge;

/// The client's request body on its way to the sandbox, ending with an error (and raising
/// `too_long`) once more than `limit` bytes have been read.
fn capped_stream(
    body: Body,
    limit: u64,
    too_long: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static {
    let mut seen: u64 = 0;
    body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(as_u64(chunk.len()));
        if seen > limit {
            too_long.store(true, Ordering::Release);
            return Err(BodyTooLarge.into());
        }
        Ok(chunk)
    })
}

/// The sandbox's response body on its way to the client: counted against the response limit,
/// and cut off (ended with an error, which closes the client's connection) past it or when
/// the sandbox fails; either is logged.
struct UpstreamBody {
    inner: reqwest::Body,
    limit: Option<u64>,
    sent: u64,
    session_id: String,
    request_id: Option<String>,
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                let error = describe(e);
                tracing::warn!(
                    session_id = this.session_id,
                    request_id = this.request_id,
                    sent = this.sent,
                    error,
                    "sandbox response interrupted; cut off"
                );
                return Poll::Ready(Some(Err(error.into())));
            }
        };
        if let Some(data) = frame.data_ref() {
            this.sent = this.sent.saturating_add(as_u64(data.len()));
            if let Some(limit) = this.limit
                && this.sent > limit
            {
                tracing::warn!(
                    session_id = this.session_id,
                    request_id = this.request_id,
                    limit,
                    "sandbox response longer than the response limit; cut off"
                );
                return Poll::Ready(Some(Err(ResponseTooLarge.into())));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
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

/// Headers never copied from the client to the sandbox: the Router sets its own credentials,
/// session, forwarding headers and request id (the client's id only when it was valid).
fn is_stripped_request_header(name: &HeaderName, connection: &[String]) -> bool {
    let name = name.as_str();
    HOP_BY_HOP.contains(&name)
        || connection.iter().any(|c| c == name)
        || name == header::HOST.as_str()
        || name == header::AUTHORIZATION.as_str()
        || name == header::CONTENT_LENGTH.as_str()
        || name.eq_ignore_ascii_case(IDENTITY_HEADER)
        || name == SESSION_HEADER
        || name == REQUEST_ID_HEADER
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
    /// The caller of a request: the principal the `AuthLayer` verified, or nobody when
    /// authentication is disabled. With authentication on and no principal (a route outside
    /// the layer: a wiring mistake) the request is refused 401, never served anonymously.
    fn caller<'a>(&'a self, principal: Option<&'a Principal>) -> Result<Caller<'a>, ServiceError> {
        match (&self.auth, principal) {
            (Auth::Enabled(minter), Some(principal)) => Ok(Caller::User { principal, minter }),
            (Auth::Enabled(_), None) => Err(AuthError::MissingAuthorization.to_service_error()),
            (Auth::Disabled, _) => Ok(Caller::Anonymous),
        }
    }

    async fn invoke(
        &self,
        kind: SessionKind,
        workload: &Workload,
        caller: Caller<'_>,
        req: Request,
    ) -> Result<Response, ServiceError> {
        let request_id = request_id(&req);
        if let Some(principal) = caller.principal() {
            tracing::info!(
                subject = principal.subject(),
                client_id = principal.client_id(),
                kind = kind.name(),
                "authenticated"
            );
        }
        // The suffix as sent, from the raw path: the `{*path}` capture is percent-decoded.
        let path = upstream_path(invocation_suffix(req.uri().path()))?;
        let (parts, body) = req.into_parts();
        if body
            .size_hint()
            .exact()
            .is_some_and(|len| len > self.max_body_bytes)
        {
            return Err(body_too_large());
        }
        let record = match server::requested_session_id(&parts.headers)? {
            None => {
                self.create_session(kind, workload, caller, request_id.as_deref())
                    .await?
            }
            Some(id) => {
                self.authorize(caller, id, Action::Invoke, request_id.as_deref())
                    .await?
            }
        };
        self.forward(&record, caller, parts, body, &path, request_id)
            .await
    }

    /// Sends a request to the workload manager at `path`, as the caller (never without its
    /// identity token when there is a caller; with authentication disabled, without one) and
    /// with the request id.
    async fn call_wm(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        caller: Caller<'_>,
        request_id: Option<&str>,
    ) -> Result<reqwest::Response, ServiceError> {
        let mut request = self.http.request(method, format!("{}{path}", self.wm_url));
        if let Caller::User { principal, minter } = caller {
            let identity = minter
                .identity_token(principal)
                .map_err(|e| signing_failed(&e))?;
            request = request.header(IDENTITY_HEADER, identity.as_str());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(id) = request_id {
            request = request.header(REQUEST_ID_HEADER, id);
        }
        request.send().await.map_err(wm_send_error)
    }

    /// Looks the session up and runs the ownership policy for `action`.
    async fn authorize(
        &self,
        caller: Caller<'_>,
        session_id: &str,
        action: Action,
        request_id: Option<&str>,
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
        // The audit event logs the action, the reason, the session, the caller and the request.
        let request = AccessRequest::for_record(caller.principal(), &record, action)
            .with_request_id(request_id);
        server::enforce(&self.policy, &request)?;
        Ok(record)
    }

    async fn create_session(
        &self,
        kind: SessionKind,
        workload: &Workload,
        caller: Caller<'_>,
        request_id: Option<&str>,
    ) -> Result<SessionRecord, ServiceError> {
        // No owner only with authentication disabled.
        let owner = server::authorize_creation(&self.policy, caller.principal(), request_id)?;
        let expected_owner = owner.as_ref().map_or("", OwnerId::as_str);
        let body =
            json!({"kind": kind.name(), "name": workload.name, "namespace": workload.namespace});
        let response = self
            .call_wm(
                Method::POST,
                &format!("/v1/{}", kind.wm_segment()),
                Some(&body),
                caller,
                request_id,
            )
            .await?;
        if !response.status().is_success() {
            return Err(map_wm_error(response).await);
        }
        let created: CreateSessionResponse =
            response.json().await.map_err(|_| wm_error()).and_then(
                |c: CreateSessionResponse| {
                    if server::valid_session_id(&c.session_id) {
                        Ok(c)
                    } else {
                        Err(wm_error())
                    }
                },
            )?;
        if created.owner_id != expected_owner {
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
            Some(existing) if existing.owner() == owner.as_ref() => existing,
            Some(_) => {
                return Err(ServiceError::new(
                    StatusCode::BAD_GATEWAY,
                    Code::new("owner_mismatch"),
                    "session store holds another owner for the new session",
                ));
            }
            None => {
                // Owned with authentication on; ownerless only with it disabled.
                let mut record =
                    SessionRecord::new(self.policy.auth_mode(), owner, created.session_id.clone())
                        .map_err(|e| e.to_service_error())?;
                record.kind = created.kind;
                record.namespace.clone_from(&workload.namespace);
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
            subject = caller.subject(),
            "session created"
        );
        Ok(record)
    }

    async fn forward(
        &self,
        record: &SessionRecord,
        caller: Caller<'_>,
        parts: axum::http::request::Parts,
        body: Body,
        target_path: &str,
        request_id: Option<String>,
    ) -> Result<Response, ServiceError> {
        let entry = entry_point_for(&record.entry_points, target_path).ok_or_else(|| {
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
        // With authentication disabled there is nobody to vouch for: no sandbox token.
        let token = match caller {
            Caller::User { principal, minter } => Some(
                minter
                    .sandbox_token(principal, &record.session_id)
                    .map_err(|e| signing_failed(&e))?,
            ),
            Caller::Anonymous => None,
        };

        let connection = connection_tokens(&parts.headers);
        // Room for the client's headers and the seven this adds (token, session, forwarding,
        // request id, length), so the map never grows on the way.
        let mut headers = HeaderMap::with_capacity(parts.headers.len() + 7);
        for (name, value) in &parts.headers {
            if !is_stripped_request_header(name, &connection) {
                headers.append(name.clone(), value.clone());
            }
        }
        if let Some(token) = token {
            headers.insert(header::AUTHORIZATION, token.bearer_header());
        }
        // Built once for the sandbox request and the client's response.
        let session_header = HeaderValue::from_str(&record.session_id).ok();
        if let Some(v) = &session_header {
            headers.insert(SESSION_HEADER, v.clone());
        }
        let mut forwarded_for: Vec<String> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        if let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() {
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
        if let Some(id) = &request_id
            && let Ok(v) = HeaderValue::from_str(id)
        {
            headers.insert(REQUEST_ID_HEADER, v);
        }

        let body_too_long = Arc::new(AtomicBool::new(false));
        let mut upload = None;
        if !body.is_end_stream() {
            // A declared length (checked against the limit already) is passed on; otherwise
            // the body goes chunked.
            if let Some(len) = body.size_hint().exact() {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            upload = Some(reqwest::Body::wrap_stream(capped_stream(
                body,
                self.max_body_bytes,
                Arc::clone(&body_too_long),
            )));
        }
        // The headers are handed over whole (a builder's `headers` would copy them one by one).
        // A request that cannot be built never read the body, so it is no body-limit case.
        let mut request = self
            .http
            .request(parts.method, url)
            .build()
            .map_err(|e| sandbox_send_error(e, &record.session_id))?;
        *request.headers_mut() = headers;
        *request.body_mut() = upload;
        let upstream = match self.http.execute(request).await {
            Ok(upstream) => upstream,
            Err(_) if body_too_long.load(Ordering::Acquire) => {
                tracing::info!(
                    session_id = record.session_id,
                    limit = self.max_body_bytes,
                    "request body too large; upload to the sandbox aborted"
                );
                return Err(body_too_large());
            }
            Err(e) => return Err(sandbox_send_error(e, &record.session_id)),
        };
        if let (Some(limit), Some(len)) = (self.max_response_bytes, upstream.content_length())
            && len > limit
        {
            tracing::warn!(
                session_id = record.session_id,
                length = len,
                limit,
                "sandbox response longer than the response limit; refused"
            );
            return Err(ServiceError::new(
                StatusCode::BAD_GATEWAY,
                Code::new("response_too_large"),
                "sandbox response too large",
            ));
        }
        let upstream = axum::http::Response::<reqwest::Body>::from(upstream);
        let (head, upstream_body) = upstream.into_parts();
        let mut response = Response::new(Body::new(UpstreamBody {
            inner: upstream_body,
            limit: self.max_response_bytes,
            sent: 0,
            session_id: record.session_id.clone(),
            request_id,
        }));
        *response.status_mut() = head.status;
        let connection = connection_tokens(&head.headers);
        for (name, value) in &head.headers {
            let n = name.as_str();
            // The length is the body's own (it streams through unchanged).
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
        if let Some(v) = session_header {
            response.headers_mut().insert(SESSION_HEADER, v);
        }
        Ok(response)
    }

    async fn delete(
        &self,
        session_id: &str,
        caller: Caller<'_>,
        request_id: Option<&str>,
    ) -> Result<Response, ServiceError> {
        if !server::valid_session_id(session_id) {
            return Err(server::session_not_found());
        }
        let record = self
            .authorize(caller, session_id, Action::Delete, request_id)
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
                caller,
                request_id,
            )
            .await?;
        let status = response.status();
        if status.is_success() {
            self.store
                .delete(session_id)
                .await
                .map_err(|e| server::store_failed(&e))?;
            tracing::info!(session_id, subject = caller.subject(), "session deleted");
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

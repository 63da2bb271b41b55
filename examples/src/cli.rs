//! What the service binaries share: the authentication mode, the Router-key flags, the
//! role-hierarchy flag, the session store flag, the metrics listener, serving until Ctrl-C, and
//! `main`'s logging and error report.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agentcube_auth_core::RoleHierarchy;
use agentcube_oidc::KeyStoreConfig;
use agentcube_rlac::{AuthMode, InMemoryOwnerStore, OwnerIdScheme, OwnerStore, RedisOwnerStore};
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::keys::RouterKeys;
use crate::server::{self, Server};

/// `--auth-mode` (env `AGENTCUBE_AUTH_MODE`), shared by the Router, the workload manager and
/// the sandbox: `enabled` (the default) or `disabled`.
///
/// The mode itself is [`agentcube_rlac::AuthMode`]; this is only its spelling on the command
/// line. Disabled is for benchmarks and migrations, and is loud about it: each service logs a
/// warning at start-up, and refuses the flags that only configure authentication (see
/// [`refuse_auth_flags`]) rather than half-applying them.
#[derive(clap::Args, Debug, Default)]
pub struct AuthModeArgs {
    /// `enabled`: every request is authenticated. `disabled`: no authentication at all (every
    /// caller is unauthenticated, sessions are ownerless) — for benchmarks and migrations only;
    /// logged as a warning at start-up.
    #[arg(
        long,
        env = "AGENTCUBE_AUTH_MODE",
        value_enum,
        value_name = "MODE",
        default_value = "enabled"
    )]
    pub auth_mode: AuthModeArg,
}

impl AuthModeArgs {
    /// The mode.
    pub fn mode(&self) -> AuthMode {
        self.auth_mode.into()
    }
}

/// The values of `--auth-mode`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthModeArg {
    /// Authenticate every request (the default).
    #[default]
    Enabled,
    /// Authenticate nothing: benchmarks and migrations only.
    Disabled,
}

impl From<AuthModeArg> for AuthMode {
    fn from(arg: AuthModeArg) -> Self {
        match arg {
            AuthModeArg::Enabled => Self::Enabled,
            AuthModeArg::Disabled => Self::Disabled,
        }
    }
}

/// With `--auth-mode disabled`, refuses every flag of `given` (name, whether it was given) that
/// only configures authentication: a service that verifies nothing must not look as if it
/// did. The error names the first such flag.
///
/// # Errors
/// `--auth-mode disabled cannot be combined with <flag>: …`.
pub fn refuse_auth_flags(mode: AuthMode, given: &[(&str, bool)]) -> Result<(), String> {
    if mode == AuthMode::Enabled {
        return Ok(());
    }
    match given.iter().find(|(_, given)| *given) {
        Some((flag, _)) => Err(format!(
            "--auth-mode disabled cannot be combined with {flag}: with authentication disabled \
             nothing is verified, so {flag} would be silently ignored; remove one of them"
        )),
        None => Ok(()),
    }
}

/// Where the workload manager and the sandbox get the Router's public keys. One of the two
/// flags is required with authentication enabled, and refused with it disabled.
#[derive(clap::Args, Debug)]
pub struct RouterKeyArgs {
    /// The Router's JWKS URL (…/.well-known/agentcube/jwks.json). Repeat it (or comma-separate
    /// the environment variable) for several Router replicas: a token is accepted when any of
    /// them publishes its key. Required (or --router-public-key) unless --auth-mode disabled.
    #[arg(
        long,
        env = "AGENTCUBE_ROUTER_JWKS_URL",
        value_delimiter = ',',
        conflicts_with = "router_public_key"
    )]
    pub router_jwks_url: Vec<String>,
    /// The Router's public key: a PEM file path or the PEM itself.
    #[arg(long, env = "AGENTCUBE_ROUTER_PUBLIC_KEY")]
    pub router_public_key: Option<String>,
}

impl RouterKeyArgs {
    /// Whether either flag was given.
    pub fn given(&self) -> bool {
        !self.router_jwks_url.is_empty() || self.router_public_key.is_some()
    }

    /// With `--auth-mode disabled`, refuses either flag (see [`refuse_auth_flags`]).
    ///
    /// # Errors
    /// One of the flags was given with authentication disabled.
    pub fn refuse_when_disabled(&self, mode: AuthMode) -> Result<(), String> {
        refuse_auth_flags(
            mode,
            &[
                ("--router-jwks-url", !self.router_jwks_url.is_empty()),
                ("--router-public-key", self.router_public_key.is_some()),
            ],
        )
    }

    /// The Router's keys (a remote JWKS starts its background refresh).
    ///
    /// # Errors
    /// Neither flag given, an invalid URL or an unreadable or invalid PEM.
    pub fn keys(&self) -> Result<RouterKeys, String> {
        if !self.given() {
            return Err("--router-jwks-url or --router-public-key is required \
                        (unless --auth-mode disabled)"
                .to_owned());
        }
        crate::keys::router_keys_from_flags(
            &self.router_jwks_url,
            self.router_public_key.as_deref(),
            &KeyStoreConfig::default(),
        )
        .map_err(|e| e.to_string())
    }
}

/// The environment variable `--realm-file` (the old name of `--role-hierarchy-file`) was read
/// from; still honoured when `--role-hierarchy-file` and `AGENTCUBE_ROLE_HIERARCHY_FILE` are
/// absent.
pub const LEGACY_REALM_FILE_ENV: &str = "AGENTCUBE_REALM_FILE";

/// How owner ids are formed (`--owner-id-scheme`): the Router and the workload manager must
/// agree, since the Router checks the owner the workload manager recorded.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerIdSchemeArg {
    /// The caller's subject (`sub`) alone: one issuer.
    Subject,
    /// `<issuer>#<subject>`: several issuers, whose subjects may collide.
    IssuerQualified,
}

impl From<OwnerIdSchemeArg> for OwnerIdScheme {
    fn from(arg: OwnerIdSchemeArg) -> Self {
        match arg {
            OwnerIdSchemeArg::Subject => Self::SubjectOnly,
            OwnerIdSchemeArg::IssuerQualified => Self::IssuerQualified,
        }
    }
}

/// How the Router and the workload manager expand a caller's roles (`--role-hierarchy-file`).
#[derive(clap::Args, Debug, Default)]
pub struct RoleHierarchyArgs {
    /// Keycloak realm export (JSON) whose composite roles expand every token's roles, for
    /// issuers that do not put effective roles into their tokens. Without it the token's roles
    /// are used as they are: Keycloak already expands composites, and a file read at start-up
    /// would keep granting roles removed in Keycloak since. The realm's default role
    /// (`default-roles-*`) is never expanded. `--realm-file` (env AGENTCUBE_REALM_FILE) is the
    /// old name.
    #[arg(
        long,
        visible_alias = "realm-file",
        env = "AGENTCUBE_ROLE_HIERARCHY_FILE",
        value_name = "PATH"
    )]
    pub role_hierarchy_file: Option<PathBuf>,
}

impl RoleHierarchyArgs {
    /// The file to read: the flag (or its environment variable), else
    /// [`LEGACY_REALM_FILE_ENV`] when set and not empty.
    pub fn path(&self) -> Option<PathBuf> {
        self.role_hierarchy_file.clone().or_else(|| {
            std::env::var_os(LEGACY_REALM_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }

    /// The hierarchy (see [`crate::hierarchy_from_file`]): flat without a file. Logs which.
    ///
    /// # Errors
    /// An unreadable file or an invalid realm export.
    pub fn hierarchy(&self) -> Result<RoleHierarchy, String> {
        let path = self.path();
        let hierarchy = crate::hierarchy_from_file(path.as_deref())
            .map_err(|e| format!("--role-hierarchy-file: {e}"))?;
        match &path {
            None => tracing::info!("roles: the token's roles are used as they are (no hierarchy)"),
            Some(path) => tracing::info!(
                file = %path.display(),
                "roles: expanded through the composites of the realm export \
                 (the default role excepted)"
            ),
        }
        Ok(hierarchy)
    }
}

/// The session owner store of `--redis-url`: Redis if given, else in memory.
///
/// # Errors
/// An invalid Redis URL.
pub fn owner_store(redis_url: Option<&str>) -> Result<Arc<dyn OwnerStore>, String> {
    Ok(match redis_url {
        Some(url) => Arc::new(RedisOwnerStore::new(url).map_err(|e| format!("--redis-url: {e}"))?),
        None => Arc::new(InMemoryOwnerStore::new()),
    })
}

/// The Prometheus listener of a service binary (`--metrics-listen`).
#[derive(clap::Args, Debug, Default)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics (text format) at `GET /metrics` on this address: a listener of
    /// its own, never the service's port, so it can stay inside the cluster. Off when not given.
    #[arg(long, env = "AGENTCUBE_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

/// The process's Prometheus recorder: installed by the first [`serve_metrics`], shared by the
/// later ones.
static PROMETHEUS: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// How often the recorder's histograms are drained between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// `--metrics-listen`: with an address, installs the process-wide Prometheus recorder (once per
/// process; the libraries' metrics go to it from then on), describes every metric of
/// agentcube-oidc, agentcube-identity and agentcube-rlac, and serves the Prometheus text
/// format at `GET /metrics` on a listener of its own (every other path is a 404). Without an
/// address, nothing is installed or served: `Ok(None)`.
///
/// Call it first in a binary's `run`, before verifiers are built, so that every metric,
/// the keys-ready gauge included, reaches the recorder. The server runs until the process ends
/// (or [`Server::shutdown`]).
///
/// # Errors
/// The bind error, or another metrics recorder already installed in the process.
pub async fn serve_metrics(listen: Option<SocketAddr>) -> Result<Option<Server>, String> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let handle = PROMETHEUS
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(agentcube_oidc::metrics::VERIFY_DURATION_SECONDS.to_owned()),
                    &agentcube_oidc::metrics::DURATION_BUCKETS,
                )
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| format!("--metrics-listen: {e}"))?;
            agentcube_oidc::metrics::describe();
            agentcube_identity::metrics::describe();
            agentcube_rlac::metrics::describe();
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(METRICS_UPKEEP);
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            Ok(handle)
        })
        .clone()?;
    let app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let body = handle.render();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .fallback(server::not_found);
    let server = server::serve_on(addr, app)
        .await
        .map_err(|e| format!("--metrics-listen {addr}: {e}"))?;
    tracing::info!(addr = %server.addr(), "metrics at /metrics");
    Ok(Some(server))
}

/// Serves `app` on `--listen`, calls `listening` once bound (to log), and runs until Ctrl-C
/// (or SIGTERM).
///
/// # Errors
/// The bind error, or the server's I/O error.
pub async fn serve_until_signal(
    listen: SocketAddr,
    app: Router,
    listening: impl FnOnce(&Server),
) -> Result<(), String> {
    let server = server::serve_on(listen, app)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    listening(&server);
    server.run_until_signal().await.map_err(|e| e.to_string())
}

/// A service binary's `main`: logging at `info` (or `RUST_LOG`), the parsed flags given to
/// `run`, and its error logged and printed as `<name>: <error>`.
pub async fn main<A, F>(name: &str, run: impl FnOnce(A) -> F) -> ExitCode
where
    A: clap::Parser,
    F: Future<Output = Result<(), String>>,
{
    server::init_tracing("info");
    match run(A::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

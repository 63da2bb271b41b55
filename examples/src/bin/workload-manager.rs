//! `workload-manager`: creates sandbox sessions for the Router and records their owners.
//!
//! ```sh
//! workload-manager --listen 0.0.0.0:8081 \
//!                  --router-jwks-url http://127.0.0.1:8080/.well-known/agentcube/jwks.json \
//!                  --sandbox-url http://127.0.0.1:8082
//! ```
//!
//! Identity tokens (`X-AgentCube-User-Identity`) are verified against the Router's JWKS
//! (refreshed in the background, so Router key rotation needs no restart) or a fixed public
//! key (`--router-public-key`, a PEM file or the PEM text). Until the Router's keys are
//! loaded, `/health/ready` and the session routes answer 503 `keys_unavailable` with
//! `Retry-After: 1`; a key set never loaded yet is retried after 100 ms, doubling, so the
//! workload manager is ready soon after the Router listens. See the `workload_manager` module
//! of the `agentcube-examples` library for routes and status codes.
//!
//! The admin role (`--admin-role`) is checked against the caller's roles the Router put into
//! the identity token, as they are; `--role-hierarchy-file PATH` (a realm export;
//! `--realm-file` is the old name) expands them through the file's composites, the realm's
//! default role (`default-roles-*`) excepted.
//!
//! `--auth-mode disabled` (env `AGENTCUBE_AUTH_MODE`; default `enabled`) turns identity
//! verification off, for a deployment whose Router runs with authentication disabled
//! (benchmarks, migrations): sessions are then created without an owner and anyone may read or
//! delete them. It logs a warning at start-up and refuses `--router-jwks-url`,
//! `--router-public-key` and `--role-hierarchy-file` (they would be ignored). With the default, a create without the
//! identity header is refused 401 as always.
//!
//! Operating it: `--metrics-listen ADDR` (env `AGENTCUBE_METRICS_LISTEN`; off by default)
//! serves Prometheus metrics at `GET /metrics` on a listener of its own: identity-token
//! verifications by result code, the Router's key set (fetches, readiness) and ownership
//! decisions. Every authentication and authorization decision that reaches a response is one
//! `tracing` event on the target `agentcube::audit`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use agentcube_examples::cli::{
    self, AuthModeArgs, OwnerIdSchemeArg, RoleHierarchyArgs, RouterKeyArgs,
};
use agentcube_examples::workload_manager::WorkloadManagerConfig;
use agentcube_identity::IdentityVerifier;
use agentcube_rlac::AuthMode;
use clap::Parser;

/// The AgentCube workload manager.
#[derive(Parser, Debug)]
#[command(name = "workload-manager", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "AGENTCUBE_WM_LISTEN", default_value = "0.0.0.0:8081")]
    listen: SocketAddr,
    #[command(flatten)]
    auth: AuthModeArgs,
    #[command(flatten)]
    router_keys: RouterKeyArgs,
    /// The sandbox every session's entry point names.
    #[arg(long, env = "AGENTCUBE_SANDBOX_URL")]
    sandbox_url: String,
    /// Redis shared with the Router as the session store (in memory if not given).
    #[arg(long, env = "AGENTCUBE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Role that may read and delete any session: a realm role the identity token must list
    /// (or imply through --role-hierarchy-file).
    #[arg(long, env = "AGENTCUBE_ADMIN_ROLE", default_value = agentcube_rlac::DEFAULT_ADMIN_ROLE)]
    admin_role: String,
    /// How owner ids are formed; must be the Router's (`issuer-qualified` when the Router
    /// accepts several issuers).
    #[arg(
        long,
        env = "AGENTCUBE_OWNER_ID_SCHEME",
        value_enum,
        default_value = "subject"
    )]
    owner_id_scheme: OwnerIdSchemeArg,
    #[command(flatten)]
    roles: RoleHierarchyArgs,
    #[command(flatten)]
    metrics: cli::MetricsArgs,
}

async fn run(args: Args) -> Result<(), String> {
    // First, so that everything built below reports to the recorder.
    let _metrics = cli::serve_metrics(args.metrics.metrics_listen).await?;
    let mode = args.auth.mode();
    args.router_keys.refuse_when_disabled(mode)?;
    cli::refuse_auth_flags(
        mode,
        &[("--role-hierarchy-file", args.roles.path().is_some())],
    )?;
    let store = cli::owner_store(args.redis_url.as_deref())?;
    let mut config = WorkloadManagerConfig::new(args.sandbox_url.as_str());
    config.owner_scheme = args.owner_id_scheme.into();
    let app = match mode {
        // Roles only mean something to an authenticated caller: read (and logged) only then.
        AuthMode::Enabled => agentcube_examples::workload_manager::app(
            IdentityVerifier::new(args.router_keys.keys()?),
            store,
            config
                .admin_role(args.admin_role.as_str())
                .hierarchy(Arc::new(args.roles.hierarchy()?)),
        ),
        AuthMode::Disabled => {
            agentcube_examples::workload_manager::app_auth_disabled(store, config)
        }
    };
    cli::serve_until_signal(args.listen, app, |server| {
        tracing::info!(addr = %server.addr(), sandbox = args.sandbox_url, "workload manager listening");
    })
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::main("workload-manager", run).await
}

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
//! key (`--router-public-key`, a PEM file or the PEM text). See the `workload_manager` module
//! of the `agentcube-examples` library for routes and status codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use agentcube_examples::cli::{self, RouterKeyArgs};
use agentcube_examples::hierarchy_from_file;
use agentcube_examples::workload_manager::WorkloadManagerConfig;
use agentcube_identity::IdentityVerifier;
use clap::Parser;

/// The AgentCube workload manager.
#[derive(Parser, Debug)]
#[command(name = "workload-manager", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "AGENTCUBE_WM_LISTEN", default_value = "0.0.0.0:8081")]
    listen: SocketAddr,
    #[command(flatten)]
    router_keys: RouterKeyArgs,
    /// The sandbox every session's entry point names.
    #[arg(long, env = "AGENTCUBE_SANDBOX_URL")]
    sandbox_url: String,
    /// Redis shared with the Router as the session store (in memory if not given).
    #[arg(long, env = "AGENTCUBE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Role that may delete any session (through the role hierarchy).
    #[arg(long, env = "AGENTCUBE_ADMIN_ROLE", default_value = agentcube_rlac::DEFAULT_ADMIN_ROLE)]
    admin_role: String,
    /// Keycloak realm export to read the role hierarchy from (default: the bundled realm).
    #[arg(long, env = "AGENTCUBE_REALM_FILE")]
    realm_file: Option<PathBuf>,
}

async fn run(args: Args) -> Result<(), String> {
    let keys = args.router_keys.keys()?;
    let store = cli::owner_store(args.redis_url.as_deref())?;
    let config = WorkloadManagerConfig::new(args.sandbox_url.as_str())
        .admin_role(args.admin_role.as_str())
        .hierarchy(Arc::new(hierarchy_from_file(args.realm_file.as_deref())?));
    let app = agentcube_examples::workload_manager::app(IdentityVerifier::new(keys), store, config);
    cli::serve_until_signal(args.listen, app, |server| {
        tracing::info!(addr = %server.addr(), sandbox = args.sandbox_url, "workload manager listening");
    })
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::main("workload-manager", run).await
}

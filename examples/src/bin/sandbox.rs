//! `sandbox`: a stand-in sandbox agent. It verifies the Router's session-bound sandbox token for
//! the session named in `x-agentcube-session-id` and echoes
//! `{session_id, user_sub, method, path, body}` (plus `user_email`, `query` and the names of the
//! headers it received).
//!
//! ```sh
//! sandbox --listen 0.0.0.0:8082 \
//!         --router-jwks-url http://127.0.0.1:8080/.well-known/agentcube/jwks.json
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use agentcube_examples::keys::RouterKeys;
use agentcube_examples::sandbox::SandboxConfig;
use agentcube_examples::server;
use agentcube_identity::SandboxVerifier;
use agentcube_oidc::KeyStoreConfig;
use clap::Parser;

/// A stand-in AgentCube sandbox agent.
#[derive(Parser, Debug)]
#[command(name = "sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "AGENTCUBE_SANDBOX_LISTEN", default_value = "0.0.0.0:8082")]
    listen: SocketAddr,
    /// The Router's JWKS URL (…/.well-known/agentcube/jwks.json).
    #[arg(
        long,
        env = "AGENTCUBE_ROUTER_JWKS_URL",
        conflicts_with = "router_public_key",
        required_unless_present = "router_public_key"
    )]
    router_jwks_url: Option<String>,
    /// The Router's public key: a PEM file path or the PEM itself.
    #[arg(long, env = "AGENTCUBE_ROUTER_PUBLIC_KEY")]
    router_public_key: Option<String>,
}

async fn run(args: Args) -> Result<(), String> {
    let keys = RouterKeys::from_flags(
        args.router_jwks_url.as_deref(),
        args.router_public_key.as_deref(),
        KeyStoreConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let app = agentcube_examples::sandbox::app(SandboxVerifier::new(keys), SandboxConfig::new());
    let server = server::serve_on(args.listen, app)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    tracing::info!(addr = %server.addr(), "sandbox listening");
    server.run_until_signal().await.map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    server::init_tracing("info");
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

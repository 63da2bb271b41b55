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

use agentcube_examples::cli::{self, RouterKeyArgs};
use agentcube_identity::SandboxVerifier;
use clap::Parser;

/// A stand-in AgentCube sandbox agent.
#[derive(Parser, Debug)]
#[command(name = "sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "AGENTCUBE_SANDBOX_LISTEN", default_value = "0.0.0.0:8082")]
    listen: SocketAddr,
    #[command(flatten)]
    router_keys: RouterKeyArgs,
}

async fn run(args: Args) -> Result<(), String> {
    let keys = args.router_keys.keys()?;
    let app = agentcube_examples::sandbox::app(SandboxVerifier::new(keys));
    cli::serve_until_signal(args.listen, app, |server| {
        tracing::info!(addr = %server.addr(), "sandbox listening");
    })
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::main("sandbox", run).await
}

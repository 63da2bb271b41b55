//! `sandbox`: a stand-in sandbox agent. It verifies the Router's session-bound sandbox token and
//! echoes `{session_id, user_sub, method, path, body}` (plus `user_email`, `query` and the names
//! of the headers it received).
//!
//! With `--session-id ID` (env `AGENTCUBE_SESSION_ID`) it serves that one session and refuses a
//! token minted for any other, whatever the request's headers say. Without it, it is a shared
//! development sandbox that serves the session each request names in `x-agentcube-session-id`,
//! after checking the token was minted for that session.
//!
//! ```sh
//! sandbox --listen 0.0.0.0:8082 --session-id 6f1b2c3d \
//!         --router-jwks-url http://127.0.0.1:8080/.well-known/agentcube/jwks.json
//! ```
//!
//! `--auth-mode disabled` (env `AGENTCUBE_AUTH_MODE`; default `enabled`) turns token
//! verification off, for a deployment whose Router runs with authentication disabled
//! (benchmarks, migrations): it then echoes `"user_sub": null`, logs a warning at start-up, and
//! refuses `--router-jwks-url` / `--router-public-key` (they would be ignored). See the
//! `sandbox` module of the `agentcube-examples` library.
//!
//! Operating it: `--metrics-listen ADDR` (env `AGENTCUBE_METRICS_LISTEN`; off by default)
//! serves Prometheus metrics at `GET /metrics` on a listener of its own (sandbox-token
//! verifications by result code, the Router's key set); every refused token and every session
//! binding decision is one `tracing` event on the target `agentcube::audit`.

use std::net::SocketAddr;
use std::process::ExitCode;

use agentcube_examples::cli::{self, AuthModeArgs, RouterKeyArgs};
use agentcube_examples::sandbox::{self, SandboxSession};
use agentcube_rlac::AuthMode;
use clap::Parser;

/// A stand-in AgentCube sandbox agent.
#[derive(Parser, Debug)]
#[command(name = "sandbox", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "AGENTCUBE_SANDBOX_LISTEN", default_value = "0.0.0.0:8082")]
    listen: SocketAddr,
    /// The session this sandbox serves; without it, the shared development mode.
    #[arg(long, env = "AGENTCUBE_SESSION_ID")]
    session_id: Option<String>,
    #[command(flatten)]
    auth: AuthModeArgs,
    #[command(flatten)]
    router_keys: RouterKeyArgs,
    #[command(flatten)]
    metrics: cli::MetricsArgs,
}

async fn run(args: Args) -> Result<(), String> {
    // First, so that everything built below reports to the recorder.
    let _metrics = cli::serve_metrics(args.metrics.metrics_listen).await?;
    let mode = args.auth.mode();
    args.router_keys.refuse_when_disabled(mode)?;
    let session = SandboxSession::from_flag(args.session_id);
    let app = match mode {
        AuthMode::Enabled => sandbox::app(args.router_keys.keys()?, &session),
        AuthMode::Disabled => sandbox::app_auth_disabled(&session),
    }
    .map_err(|e| format!("--session-id: {e}"))?;
    cli::serve_until_signal(args.listen, app, |server| {
        tracing::info!(addr = %server.addr(), "sandbox listening");
    })
    .await
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::main("sandbox", run).await
}

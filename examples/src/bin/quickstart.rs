//! `quickstart`: the whole system in one process, and the scenario played against it.
//!
//! ```sh
//! cargo run --release -p agentcube-examples --bin quickstart
//! ```
//!
//! With no arguments it starts, on loopback ephemeral ports, a development IdP that issues
//! Keycloak-shaped tokens for the realm in `deploy/keycloak/` (plus two extra clients: a second
//! user and one without roles), the sandbox, the workload manager and the Router; then it plays
//! the scenario (no token, valid token, wrong role, second user on the first user's session,
//! admin, tampered token, key rotation, deletes) and prints a table of
//! request → expected → got. It exits 0 only if every row matches.
//!
//! Against a real Keycloak:
//!
//! ```sh
//! quickstart --issuer http://127.0.0.1:8180/realms/agentcube \
//!            --client-id agentcube-app --client-secret "$KC_CLIENT_APP_SECRET" \
//!            --admin-client-id agentcube-admin --admin-client-secret "$KC_CLIENT_ADMIN_SECRET" \
//!            [--second-client-id … --second-client-secret …] \
//!            [--no-role-client-id … --no-role-client-secret …]
//! ```
//!
//! Rows that need an identity that was not given, and the key-rotation row (it needs control
//! of the IdP), are skipped with a note.
#![allow(
    clippy::print_stdout,
    reason = "a command-line program prints its result"
)]

use std::process::ExitCode;
use std::time::Duration;

use agentcube_examples::quickstart::{self, Quickstart};
use agentcube_examples::scenario::{self, Credentials, Identities};
use agentcube_examples::server;
use clap::Parser;

/// Runs the AgentCube auth scenario end to end.
#[derive(Parser, Debug)]
#[command(name = "quickstart", version)]
struct Args {
    /// A real issuer (Keycloak realm URL); without it, an embedded development IdP is used.
    #[arg(long, env = "AGENTCUBE_ISSUER", requires_all = ["client_id", "client_secret"])]
    issuer: Option<String>,
    /// Client with `sandbox:invoke` (client_credentials).
    #[arg(long, env = "AGENTCUBE_CLIENT_ID")]
    client_id: Option<String>,
    /// Its secret.
    #[arg(long, env = "AGENTCUBE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Client with `admin`.
    #[arg(long, requires = "admin_client_secret")]
    admin_client_id: Option<String>,
    /// Its secret.
    #[arg(long, env = "AGENTCUBE_ADMIN_CLIENT_SECRET", hide_env_values = true)]
    admin_client_secret: Option<String>,
    /// A second client with `sandbox:invoke`, not an admin.
    #[arg(long, requires = "second_client_secret")]
    second_client_id: Option<String>,
    /// Its secret.
    #[arg(long, hide_env_values = true)]
    second_client_secret: Option<String>,
    /// A client with the API audience but without `sandbox:invoke`.
    #[arg(long, requires = "no_role_client_secret")]
    no_role_client_id: Option<String>,
    /// Its secret.
    #[arg(long, hide_env_values = true)]
    no_role_client_secret: Option<String>,
    /// Redis shared by the Router and the workload manager (in memory if not given).
    #[arg(long)]
    redis_url: Option<String>,
}

fn pair(id: Option<&String>, secret: Option<&String>) -> Option<Credentials> {
    Some(Credentials::new(id?.as_str(), secret?.as_str()))
}

async fn start(args: &Args) -> Result<Quickstart, String> {
    match &args.issuer {
        None => quickstart::start_dev(args.redis_url.clone())
            .await
            .map_err(|e| e.to_string()),
        Some(issuer) => {
            let app = pair(args.client_id.as_ref(), args.client_secret.as_ref())
                .ok_or("--issuer needs --client-id and --client-secret")?;
            let identities = Identities {
                app,
                admin: pair(
                    args.admin_client_id.as_ref(),
                    args.admin_client_secret.as_ref(),
                ),
                second: pair(
                    args.second_client_id.as_ref(),
                    args.second_client_secret.as_ref(),
                ),
                no_role: pair(
                    args.no_role_client_id.as_ref(),
                    args.no_role_client_secret.as_ref(),
                ),
            };
            quickstart::start_with_issuer(issuer, identities, None, args.redis_url.clone())
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let qs = start(&args).await?;
    match &qs.idp {
        Some(idp) => println!("development IdP   {}", idp.issuer()),
        None => println!("issuer            {}", qs.verifier.issuer()),
    }
    println!("router            {}", qs.stack.router_url());
    println!("workload manager  {}", qs.stack.workload_manager.url());
    println!("sandbox           {}", qs.stack.sandbox.url());
    println!(
        "owner store       {}",
        if args.redis_url.is_some() {
            "redis (shared)"
        } else {
            "in memory"
        }
    );
    if !quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await {
        println!("warning: the router has no IdP keys yet; rows will show 503 keys_unavailable");
    }
    println!();
    let report = scenario::run(&qs.scenario)
        .await
        .map_err(|e| e.to_string())?;
    print!("{}", report.render());
    qs.stack.shutdown().await;
    Ok(report.passed())
}

#[tokio::main]
async fn main() -> ExitCode {
    server::init_tracing("warn");
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::from(2)
        }
    }
}

//! `dev-idp`: the development identity provider as a process of its own — the quickstart's
//! embedded Keycloak stand-in, for scripts that start the services as separate processes
//! (`scripts/load`).
//!
//! ```sh
//! dev-idp --listen 127.0.0.1:8180
//! ```
//!
//! It serves OIDC discovery, a JWKS and a `client_credentials` token endpoint under
//! `/realms/agentcube` for the confidential clients of the compiled-in
//! `deploy/keycloak/agentcube-realm.json`, shaped like Keycloak's (see the `dev_idp` module of
//! the `agentcube-examples` library). The clients' secrets are the development ones
//! (`agentcube-app` / `app-secret-dev`, `agentcube-admin` / `admin-secret-dev`,
//! `agentcube-router` / `router-secret-dev`). Once listening it prints two lines on stdout:
//!
//! ```text
//! issuer http://127.0.0.1:8180/realms/agentcube
//! token_endpoint http://127.0.0.1:8180/realms/agentcube/protocol/openid-connect/token
//! ```
//!
//! and a token is obtained the way any client gets one from Keycloak:
//!
//! ```sh
//! curl -s -d grant_type=client_credentials -d client_id=agentcube-app \
//!      -d client_secret=app-secret-dev "$token_endpoint"
//! ```
//!
//! Keys live in memory (a restart invalidates every token) and tokens live 300 s. It runs until
//! Ctrl-C or SIGTERM. For local development only.
#![allow(
    clippy::print_stdout,
    reason = "a command-line program prints where it listens"
)]

use std::net::SocketAddr;
use std::process::ExitCode;

use agentcube_examples::dev_idp::DevIdp;
use agentcube_examples::{AGENTCUBE_REALM_JSON, cli, server};
use clap::Parser;

/// A development OIDC issuer for the AgentCube realm.
#[derive(Parser, Debug)]
#[command(name = "dev-idp", version)]
struct Args {
    /// Address to listen on (port 0: any free port; the issuer line says which).
    #[arg(
        long,
        env = "AGENTCUBE_DEV_IDP_LISTEN",
        default_value = "127.0.0.1:8180"
    )]
    listen: SocketAddr,
}

async fn run(args: Args) -> Result<(), String> {
    let idp = DevIdp::start_on(AGENTCUBE_REALM_JSON, args.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    println!("issuer {}", idp.issuer());
    println!("token_endpoint {}", idp.token_endpoint());
    tracing::info!(issuer = idp.issuer(), "development IdP listening");
    server::shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::main("dev-idp", run).await
}

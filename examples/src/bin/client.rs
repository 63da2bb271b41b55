//! `client`: get an access token and call the AgentCube Router with it — the SDK path.
//!
//! With client credentials (a service, a script, a CI job):
//!
//! ```sh
//! client --issuer http://127.0.0.1:8180/realms/agentcube \
//!        --client-id agentcube-app --client-secret "$AGENTCUBE_CLIENT_SECRET" \
//!        --router-url http://127.0.0.1:8080 \
//!        /v1/namespaces/default/agent-runtimes/demo/invocations/run --data '{"code":"print(1)"}'
//! ```
//!
//! With a token obtained elsewhere: `client --token "$TOKEN" --router-url … PATH`.
//!
//! It prints the status, the session id the Router assigned (`x-agentcube-session-id`) and the
//! body. Pass `--session-id` to call the same session again.
#![allow(
    clippy::print_stdout,
    reason = "a command-line program prints its result"
)]

use std::process::ExitCode;

use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_oidc::client::reqwest::Method;
use agentcube_oidc::client::{
    AuthorizedClient, ClientCredentials, ClientError, DynTokenSource, StaticToken,
};
use clap::Parser;

/// Calls the AgentCube Router with an access token.
#[derive(Parser)]
#[command(name = "client")]
struct Args {
    /// Path to call on the Router, e.g. /v1/namespaces/default/agent-runtimes/demo/invocations/run.
    path: String,
    /// Router base URL.
    #[arg(long, env = "AGENTCUBE_ROUTER_URL")]
    router_url: String,
    /// A static access token; when set, no token is requested.
    #[arg(long, env = "AGENTCUBE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Issuer URL for the client credentials grant (token endpoint found by discovery).
    #[arg(long, env = "AGENTCUBE_ISSUER")]
    issuer: Option<String>,
    /// OAuth client id.
    #[arg(long, env = "AGENTCUBE_CLIENT_ID", default_value = "agentcube-app")]
    client_id: String,
    /// OAuth client secret.
    #[arg(long, env = "AGENTCUBE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Scope to request (space-separated).
    #[arg(long)]
    scope: Option<String>,
    /// HTTP method.
    #[arg(long, default_value = "POST")]
    method: Method,
    /// JSON request body.
    #[arg(long)]
    data: Option<String>,
    /// Reuse this sandbox session (header `x-agentcube-session-id`).
    #[arg(long)]
    session_id: Option<String>,
}

/// A static token, or client credentials from the flags.
fn token_source(args: &Args) -> Result<Box<dyn DynTokenSource>, ClientError> {
    if let Some(token) = &args.token {
        return Ok(Box::new(StaticToken::new(token)?));
    }
    let (Some(issuer), Some(secret)) = (&args.issuer, &args.client_secret) else {
        return Err(ClientError::Config {
            reason: "pass --token, or --issuer and --client-secret".into(),
        });
    };
    let mut builder = ClientCredentials::builder(&args.client_id, secret).issuer(issuer);
    if let Some(scope) = &args.scope {
        builder = builder.scope(scope);
    }
    Ok(Box::new(builder.build()?))
}

async fn run(args: Args) -> Result<(), ClientError> {
    let client = AuthorizedClient::new(token_source(&args)?);
    let url = format!(
        "{}/{}",
        args.router_url.trim_end_matches('/'),
        args.path.trim_start_matches('/')
    );
    let mut request = client.request(args.method, url);
    if let Some(data) = args.data {
        request = request
            .header("content-type", "application/json")
            .body(data);
    }
    if let Some(session) = &args.session_id {
        request = request.header(SESSION_HEADER, session);
    }
    // The token is fetched (and cached, and refreshed) by the source on every request; a 401
    // makes the client fetch a new one and retry once.
    let response = client.send(request).await?;
    println!("status: {}", response.status());
    if let Some(session) = response.headers().get(SESSION_HEADER) {
        println!("session: {}", session.to_str().unwrap_or("?"));
    }
    let body = response.text().await.map_err(|_| ClientError::Network {
        endpoint: "server",
        message: "reading the response body failed".into(),
    })?;
    println!("{body}");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err} ({})", err.code());
            ExitCode::FAILURE
        }
    }
}

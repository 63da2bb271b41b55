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
//! As a person (public client `agentcube-cli`): log in with the browser (authorization code +
//! PKCE, the redirect received on a loopback port) or, on a machine without one, with the device
//! flow; then call with the stored session:
//!
//! ```sh
//! client login --issuer http://127.0.0.1:8180/realms/agentcube --token-file ~/.agentcube-session
//! client login --issuer … --device --token-file ~/.agentcube-session
//! client --token-file ~/.agentcube-session --router-url http://127.0.0.1:8080 /v1/…
//! ```
//!
//! Tokens are kept in memory only, unless `--token-file` is given: then the session (issuer,
//! client id, refresh token) is written there, readable by its owner only (mode 0600), and
//! updated when the server rotates the refresh token.
//!
//! Which credential a call sends, first match wins: `--token`, client credentials
//! (`--client-secret`), the session in `--token-file`, and, when none of them is given, the
//! Kubernetes service-account token (`--service-account-token-file`, by default the pod's
//! mount), read again whenever the kubelet rotates it.
//!
//! It prints the status, the session id the Router assigned (`x-agentcube-session-id`) and the
//! body. Pass `--session-id` to call the same session again.
#![allow(
    clippy::print_stdout,
    reason = "a command-line program prints its result"
)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_oidc::client::reqwest::Method;
use agentcube_oidc::client::{
    AccessToken, AuthorizationCodeFlow, AuthorizedClient, ClientCredentials, ClientError,
    DeviceFlow, DynTokenSource, FileToken, RefreshToken, RefreshTokenSource, StaticToken, Tokens,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// Calls the AgentCube Router with an access token, or logs in.
#[derive(Parser)]
#[command(
    name = "client",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    call: CallArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Logs in as a person (authorization code + PKCE, or the device flow with --device).
    Login(LoginArgs),
}

#[derive(Args)]
struct CallArgs {
    /// Path to call on the Router, e.g. /v1/namespaces/default/agent-runtimes/demo/invocations/run.
    #[arg(required = true)]
    path: Option<String>,
    /// Router base URL.
    #[arg(long, env = "AGENTCUBE_ROUTER_URL", required = true)]
    router_url: Option<String>,
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
    /// A session written by `client login --token-file`.
    #[arg(long, env = "AGENTCUBE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The service-account token sent when no other credential is given.
    #[arg(
        long,
        env = "AGENTCUBE_SERVICE_ACCOUNT_TOKEN_FILE",
        default_value = FileToken::KUBERNETES_TOKEN_PATH
    )]
    service_account_token_file: PathBuf,
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

#[derive(Args)]
struct LoginArgs {
    /// Issuer URL (endpoints found by discovery).
    #[arg(long, env = "AGENTCUBE_ISSUER")]
    issuer: String,
    /// The public client people log in with.
    #[arg(long, default_value = "agentcube-cli")]
    client_id: String,
    /// Use the device flow: show a code to enter on another device, instead of a browser
    /// redirect to this machine.
    #[arg(long)]
    device: bool,
    /// Scope to request (space-separated).
    #[arg(long, default_value = "openid")]
    scope: String,
    /// Write the session here (mode 0600); without it, tokens live in memory only.
    #[arg(long, env = "AGENTCUBE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// How long to wait for the browser redirect, in seconds.
    #[arg(long, default_value_t = 300)]
    wait: u64,
}

/// What `--token-file` holds: enough to renew the access token.
#[derive(Serialize, Deserialize)]
struct Session {
    issuer: String,
    client_id: String,
    refresh_token: String,
}

impl Session {
    fn read(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, &e))?;
        serde_json::from_str(&text).map_err(|_| ClientError::Config {
            reason: format!(
                "{} is not a session written by `client login`",
                path.display()
            ),
        })
    }

    /// Writes the session, readable and writable by its owner only.
    fn write(&self, path: &Path) -> Result<(), ClientError> {
        use std::io::Write as _;
        let text = serde_json::to_string_pretty(self).map_err(|_| ClientError::Config {
            reason: "the session could not be encoded".into(),
        })?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| io(path, &e))?;
        // An existing file keeps its mode on open: narrow it before writing the secret.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| io(path, &e))?;
        }
        file.write_all(text.as_bytes()).map_err(|e| io(path, &e))
    }
}

fn io(path: &Path, error: &std::io::Error) -> ClientError {
    ClientError::Io {
        message: format!("{}: {error}", path.display()),
    }
}

/// The token source of a call, and the stored session it renews, if it is one.
type Credential = (
    Arc<dyn DynTokenSource>,
    Option<(Session, RefreshTokenSource)>,
);

/// The credential of a call, first match wins (see the module docs). A stored session comes
/// back with its source, so that a rotated refresh token can be written back.
fn token_source(args: &CallArgs) -> Result<Credential, ClientError> {
    if let Some(token) = &args.token {
        return Ok((Arc::new(StaticToken::new(token)?), None));
    }
    if let Some(secret) = &args.client_secret {
        let Some(issuer) = &args.issuer else {
            return Err(ClientError::Config {
                reason: "--client-secret needs --issuer".into(),
            });
        };
        let mut builder = ClientCredentials::builder(&args.client_id, secret).issuer(issuer);
        if let Some(scope) = &args.scope {
            builder = builder.scope(scope);
        }
        return Ok((Arc::new(builder.build()?), None));
    }
    if let Some(path) = &args.token_file {
        let session = Session::read(path)?;
        let source = RefreshTokenSource::builder(
            &session.client_id,
            RefreshToken::new(session.refresh_token.clone()),
        )
        .issuer(&session.issuer)
        .build()?;
        return Ok((Arc::new(source.clone()), Some((session, source))));
    }
    if args.service_account_token_file.is_file() {
        return Ok((
            Arc::new(FileToken::new(&args.service_account_token_file)),
            None,
        ));
    }
    Err(ClientError::Config {
        reason: "pass --token, --client-secret with --issuer, or --token-file (from `client \
                 login`), or run where a service-account token is mounted"
            .into(),
    })
}

async fn call(args: CallArgs) -> Result<(), ClientError> {
    let (Some(path), Some(router_url)) = (&args.path, &args.router_url) else {
        return Err(ClientError::Config {
            reason: "pass the path to call and --router-url".into(),
        });
    };
    let (source, session) = token_source(&args)?;
    let client = AuthorizedClient::from_shared(reqwest::Client::new(), source);
    let url = format!(
        "{}/{}",
        router_url.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let mut request = client.request(args.method.clone(), url);
    if let Some(data) = &args.data {
        request = request
            .header("content-type", "application/json")
            .body(data.clone());
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
    // Keep the stored session usable when the server rotated the refresh token.
    if let (Some((mut stored, source)), Some(path)) = (session, &args.token_file) {
        let current = source.refresh_token();
        if current.secret() != stored.refresh_token {
            stored.refresh_token = current.secret().to_owned();
            stored.write(path)?;
        }
    }
    Ok(())
}

async fn login(args: LoginArgs) -> Result<(), ClientError> {
    let tokens = if args.device {
        let flow = DeviceFlow::builder(&args.client_id)
            .issuer(&args.issuer)
            .scope(&args.scope)
            .build()?;
        let authorization = flow.start().await?;
        match authorization.verification_uri_complete() {
            Some(complete) => eprintln!("open {complete}"),
            None => eprintln!(
                "open {} and enter the code {}",
                authorization.verification_uri(),
                authorization.user_code()
            ),
        }
        flow.poll(&authorization).await?
    } else {
        let flow = AuthorizationCodeFlow::builder(&args.client_id)
            .issuer(&args.issuer)
            .scope(&args.scope)
            .build()?;
        flow.login_on_loopback(Duration::from_secs(args.wait), |url| {
            eprintln!("open this address in a browser to log in:\n\n  {url}\n");
        })
        .await?
    };
    describe(&tokens);
    match &args.token_file {
        Some(path) => {
            let refresh_token = tokens.refresh_token().ok_or(ClientError::NoRefreshToken)?;
            Session {
                issuer: args.issuer.clone(),
                client_id: args.client_id.clone(),
                refresh_token: refresh_token.secret().to_owned(),
            }
            .write(path)?;
            println!("session written to {} (mode 0600)", path.display());
        }
        None => println!(
            "the tokens were kept in memory only and end with this program; pass --token-file \
             PATH to keep the session"
        ),
    }
    Ok(())
}

/// Who logged in, from the access token's payload (read for display only: the Router verifies).
fn describe(tokens: &Tokens) {
    let claims = payload(tokens.access_token());
    let text = |name: &str| {
        claims
            .as_ref()
            .and_then(|c| c.get(name))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    println!(
        "logged in as {} (sub {}), access token valid for {} s",
        text("preferred_username"),
        text("sub"),
        tokens.expires_in().map_or(0, |d| d.as_secs())
    );
}

fn payload(token: &AccessToken) -> Option<serde_json::Map<String, serde_json::Value>> {
    let part = token.secret().split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Login(args)) => login(args).await,
        None => call(cli.call).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err} ({})", err.code());
            ExitCode::FAILURE
        }
    }
}

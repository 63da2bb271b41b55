//! What the service binaries share: the Router-key flags, the session store flag, serving
//! until Ctrl-C, and `main`'s logging and error report.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use agentcube_oidc::KeyStoreConfig;
use agentcube_rlac::{InMemoryOwnerStore, OwnerStore, RedisOwnerStore};
use axum::Router;

use crate::keys::RouterKeys;
use crate::server::{self, Server};

/// Where the workload manager and the sandbox get the Router's public keys.
#[derive(clap::Args, Debug)]
pub struct RouterKeyArgs {
    /// The Router's JWKS URL (…/.well-known/agentcube/jwks.json).
    #[arg(
        long,
        env = "AGENTCUBE_ROUTER_JWKS_URL",
        conflicts_with = "router_public_key",
        required_unless_present = "router_public_key"
    )]
    pub router_jwks_url: Option<String>,
    /// The Router's public key: a PEM file path or the PEM itself.
    #[arg(long, env = "AGENTCUBE_ROUTER_PUBLIC_KEY")]
    pub router_public_key: Option<String>,
}

impl RouterKeyArgs {
    /// The Router's keys (a remote JWKS starts its background refresh).
    ///
    /// # Errors
    /// An invalid URL or an unreadable or invalid PEM.
    pub fn keys(&self) -> Result<RouterKeys, String> {
        RouterKeys::from_flags(
            self.router_jwks_url.as_deref(),
            self.router_public_key.as_deref(),
            KeyStoreConfig::default(),
        )
        .map_err(|e| e.to_string())
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

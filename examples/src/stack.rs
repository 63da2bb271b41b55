//! Router, workload manager and sandbox wired together in one process on loopback ports, the
//! way the quickstart and the end-to-end tests run them.
//!
//! The services talk over real HTTP. The workload manager and the sandbox verify the Router's
//! internal tokens against its JWKS (`/.well-known/agentcube/jwks.json`, fetched like an IdP's
//! key set), exactly as they would as separate processes started with `--router-jwks-url`.
//!
//! Stores: with a Redis URL, the Router and the workload manager share one Redis (the
//! reference layout); without, each has its own in-memory store, and the workload manager's
//! outlives [`Stack::restart_workload_manager`] (as Redis would).

use std::sync::Arc;

use agentcube_auth_core::{RoleHierarchy, TokenVerifier};
use agentcube_identity::{IdentityVerifier, KeyRing, TokenMinter};
use agentcube_rlac::{InMemoryOwnerStore, OwnerStore, RedisOwnerStore, StoreError};

use crate::keys::{self, KeysError};
use crate::router::{self, RouterConfig, RouterError};
use crate::sandbox;
use crate::server::{self, Server};
use crate::workload_manager::{self, WorkloadManagerConfig};

/// Errors starting the stack.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A listener could not bind.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
    /// The Router could not be built.
    #[error("router: {0}")]
    Router(#[from] RouterError),
    /// Keys could not be set up.
    #[error("keys: {0}")]
    Keys(#[from] KeysError),
    /// The Redis store could not be set up.
    #[error("redis: {0}")]
    Store(#[from] StoreError),
    /// The identity key could not be generated.
    #[error("identity key: {0}")]
    Key(#[from] agentcube_identity::KeyError),
    /// The sandbox could not start.
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
}

/// How to start the stack.
#[derive(Debug)]
#[non_exhaustive]
pub struct StackOptions {
    /// The Router's settings (its workload manager URL is filled in). The workload manager
    /// gets the same admin role, role hierarchy and owner scheme. By default the hierarchy is
    /// flat, as in the binaries: the token's roles are used as they are (Keycloak, and the dev
    /// IdP, expand composite roles into the token).
    pub router: RouterConfig,
    /// A Redis both services share as their owner store.
    pub redis_url: Option<String>,
    /// The Router's identity keys (default: a fresh Ed25519 key).
    pub identity_keys: Option<KeyRing>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            router: RouterConfig::new("").hierarchy(Arc::new(RoleHierarchy::flat())),
            redis_url: None,
            identity_keys: None,
        }
    }
}

impl StackOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the Router's settings.
    #[must_use]
    pub fn router(mut self, config: RouterConfig) -> Self {
        self.router = config;
        self
    }

    /// Shares a Redis between the Router and the workload manager.
    #[must_use]
    pub fn redis_url(mut self, url: Option<String>) -> Self {
        self.redis_url = url;
        self
    }

    /// Uses these identity keys.
    #[must_use]
    pub fn identity_keys(mut self, keys: KeyRing) -> Self {
        self.identity_keys = Some(keys);
        self
    }
}

/// The running services.
pub struct Stack {
    /// The Router.
    pub router: Server,
    /// The workload manager.
    pub workload_manager: Server,
    /// The sandbox.
    pub sandbox: Server,
    /// The Router's minter (and, through it, its key ring).
    pub minter: Arc<TokenMinter>,
    /// The Router's owner store.
    pub router_store: Arc<dyn OwnerStore>,
    /// The workload manager's owner store.
    pub wm_store: Arc<dyn OwnerStore>,
    wm_config: WorkloadManagerConfig,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("router", &self.router.addr())
            .field("workload_manager", &self.workload_manager.addr())
            .field("sandbox", &self.sandbox.addr())
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Starts sandbox, workload manager and Router with `verifier` for access tokens.
    ///
    /// # Errors
    /// [`StackError`].
    pub async fn start<V: TokenVerifier + 'static>(
        verifier: Arc<V>,
        options: StackOptions,
    ) -> Result<Self, StackError> {
        let keys = match options.identity_keys {
            Some(keys) => keys,
            None => KeyRing::generate()?,
        };
        let minter = Arc::new(TokenMinter::new(Arc::new(keys)));
        let (router_store, wm_store): (Arc<dyn OwnerStore>, Arc<dyn OwnerStore>) =
            match &options.redis_url {
                Some(url) => {
                    let redis: Arc<dyn OwnerStore> = Arc::new(RedisOwnerStore::new(url)?);
                    (Arc::clone(&redis), redis)
                }
                None => (
                    Arc::new(InMemoryOwnerStore::new()),
                    Arc::new(InMemoryOwnerStore::new()),
                ),
            };

        // The Router's address first: the others fetch its JWKS.
        let router_listener = server::bind_loopback().await?;
        let jwks_url = format!(
            "http://{}{}",
            router_listener.local_addr()?,
            router::JWKS_PATH
        );
        let sandbox = sandbox::serve(
            keys::remote_router_keys(&jwks_url)?,
            &sandbox::SandboxSession::Shared,
        )
        .await?;
        let mut wm_config = WorkloadManagerConfig::new(sandbox.url())
            .admin_role(options.router.admin_role.as_str())
            .hierarchy(Arc::clone(&options.router.hierarchy));
        wm_config.owner_scheme = options.router.owner_scheme;
        let workload_manager = workload_manager::serve(
            IdentityVerifier::new(keys::remote_router_keys(&jwks_url)?),
            Arc::clone(&wm_store),
            wm_config.clone(),
        )
        .await?;
        let mut router_config = options.router;
        router_config.workload_manager_url = workload_manager.url();
        let app = router::app(
            verifier,
            Arc::clone(&minter),
            Arc::clone(&router_store),
            router_config,
        )?;
        let router = server::serve_listener(router_listener, app)?;
        Ok(Self {
            router,
            workload_manager,
            sandbox,
            minter,
            router_store,
            wm_store,
            wm_config,
        })
    }

    /// The Router's base URL.
    pub fn router_url(&self) -> String {
        self.router.url()
    }

    /// The Router's JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}{}", self.router.url(), router::JWKS_PATH)
    }

    /// Stops the workload manager and starts a new instance on the same address, with a new
    /// key source for the Router's JWKS (nothing cached) and the same store.
    ///
    /// # Errors
    /// [`StackError`], e.g. if the port cannot be bound again.
    pub async fn restart_workload_manager(&mut self) -> Result<(), StackError> {
        let addr = self.workload_manager.addr();
        let app = workload_manager::app(
            IdentityVerifier::new(keys::remote_router_keys(&self.jwks_url())?),
            Arc::clone(&self.wm_store),
            self.wm_config.clone(),
        );
        // Keep a placeholder in the field while the old instance stops and the new one binds.
        let placeholder = server::serve(axum::Router::new()).await?;
        let old = std::mem::replace(&mut self.workload_manager, placeholder);
        old.shutdown().await;
        let new = server::serve_on(addr, app).await?;
        let placeholder = std::mem::replace(&mut self.workload_manager, new);
        placeholder.shutdown().await;
        Ok(())
    }

    /// Stops everything.
    pub async fn shutdown(self) {
        self.router.shutdown().await;
        self.workload_manager.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

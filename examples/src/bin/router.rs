//! `router`: the AgentCube Router — the public edge that authenticates access tokens, checks
//! roles and session ownership, and proxies to sandboxes.
//!
//! ```sh
//! router --listen 0.0.0.0:8080 \
//!        --jwt-issuer-url http://127.0.0.1:8180/realms/agentcube \
//!        --workload-manager-url http://127.0.0.1:8081 \
//!        --identity-key ./router-identity.pem
//! ```
//!
//! Flags mirror the reference Router's; each has an environment fallback. The Router starts
//! while the IdP is down: `/health/ready` answers 503 and `/v1/*` answers 503
//! `keys_unavailable` (both with `Retry-After: 1`) until the IdP's keys arrive. See the
//! `router` module of the `agentcube-examples` library for routes, status codes and decisions.
//!
//! Roles: the required role (`--jwt-required-role`) and the admin role (`--admin-role`) are
//! checked against the roles the token lists, as they are — Keycloak has already expanded its
//! composite roles into the token, so a role removed in Keycloak is gone at the next token.
//! `--role-hierarchy-file PATH` (a realm export; `--realm-file` is the old name) expands them
//! through the file's composites instead, for issuers that do not; the realm's default role
//! (`default-roles-*`) is never expanded.
//!
//! Revocation: a session that ends in Keycloak (logout, or an administrator ending it) is
//! refused at once with `token_revoked`, through Keycloak's back-channel logout to
//! `/oidc/backchannel-logout` (set that URL on the clients users log in with and name them in
//! `--backchannel-client-id`); an administrator revokes a subject or a client (a service account)
//! with `POST /admin/revocations`. With `--redis-url` the replicas share their revocations
//! (each reads the others' every `--revocation-poll-ms`).
//!
//! Operating it: `--metrics-listen ADDR` (env `AGENTCUBE_METRICS_LISTEN`; off by default)
//! serves Prometheus metrics at `GET /metrics` on a listener of its own, never the public port:
//! access-token verifications by issuer and result code, verification time, the verified-token
//! cache, JWKS fetches and key readiness, ownership decisions, and the internal tokens minted.
//! Every authentication and authorization decision that reaches a response is one `tracing`
//! event on the target `agentcube::audit` (request id, subject, client id, action, resource,
//! decision, reason code).
//!
//! Authentication disabled: `--auth-mode disabled` (env `AGENTCUBE_AUTH_MODE`; default
//! `enabled`) runs the Router without any authentication, for benchmarks and migrations: no
//! token, role or ownership check, ownerless sessions, and no identity or sandbox token sent
//! (the workload manager and the sandbox must run with `--auth-mode disabled` too). It logs a
//! warning at start-up that every caller is unauthenticated. `--jwt-issuer-url` is then not
//! required, and it, `--identity-key`, `--role-hierarchy-file` and `--owner-id-scheme` are
//! refused rather than ignored: the Router stops
//! with `--auth-mode disabled cannot be combined with --jwt-issuer-url: …`. See the `router`
//! module of the `agentcube-examples` library.
//!
//! Identity key rotation: `--identity-key DIR` names a directory (a mounted Kubernetes Secret,
//! shared by every replica) with `current.pem`, which signs, and optionally `next.pem` and
//! `previous.pem`, which are published in the JWKS but never sign. The directory is read again
//! every `--identity-key-reload-secs` (default 5) and on `SIGHUP`; see the README's "Rotating
//! the Router's identity key" for the operator procedure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::AlgorithmSet;
use agentcube_examples::cli::{self, AuthModeArgs, OwnerIdSchemeArg, RoleHierarchyArgs};
use agentcube_examples::keys::{
    DEFAULT_IDENTITY_KEY_RELOAD, IdentityKeyDir, IdentityKeyOrigin, load_or_generate_identity_key,
    public_key_path, spawn_identity_key_reload,
};
use agentcube_examples::router::{
    DEFAULT_MAX_CONCURRENT_REQUESTS, DEFAULT_REQUIRED_ROLE, DEFAULT_ROLE_CLAIM, OidcOptions,
    REFERENCE_ALGORITHMS, RouterConfig,
};
use agentcube_identity::TokenMinter;
use agentcube_rlac::{AuthMode, OwnerIdScheme};
use clap::Parser;

/// The AgentCube Router.
#[derive(Parser, Debug)]
#[command(name = "router", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "AGENTCUBE_ROUTER_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The OIDC issuer (compared exactly with `iss`), e.g. http://keycloak:8080/realms/agentcube.
    /// Repeat it (or comma-separate the environment variable) to accept several issuers, e.g.
    /// Keycloak and the cluster's service-account issuer: a token is routed by its `iss`, and
    /// owners are then qualified by issuer. Required unless --auth-mode disabled (which refuses
    /// it).
    #[arg(long, env = "AGENTCUBE_JWT_ISSUER_URL", value_delimiter = ',')]
    jwt_issuer_url: Vec<String>,
    #[command(flatten)]
    auth: AuthModeArgs,
    /// How owner ids are formed; default `subject` with one issuer, `issuer-qualified` with
    /// several. The workload manager must be given the same.
    #[arg(long, env = "AGENTCUBE_OWNER_ID_SCHEME", value_enum)]
    owner_id_scheme: Option<OwnerIdSchemeArg>,
    /// The longest sandbox response forwarded, in bytes (no limit if not given): a response
    /// declared longer is answered 502 `response_too_large`, one that turns out longer is cut off.
    #[arg(long, env = "AGENTCUBE_MAX_RESPONSE_BYTES")]
    max_response_bytes: Option<usize>,
    /// Accepted audience.
    #[arg(long, env = "AGENTCUBE_JWT_AUDIENCE", default_value = agentcube_oidc::OidcConfig::DEFAULT_AUDIENCE)]
    jwt_audience: String,
    /// Claim path of the roles (`realm_access.roles` reads Keycloak realm and client roles).
    #[arg(long, env = "AGENTCUBE_JWT_ROLE_CLAIM", default_value = DEFAULT_ROLE_CLAIM)]
    jwt_role_claim: String,
    /// Realm role required on /v1/*: the token must list it (or imply it through
    /// --role-hierarchy-file).
    #[arg(long, env = "AGENTCUBE_JWT_REQUIRED_ROLE", default_value = DEFAULT_REQUIRED_ROLE)]
    jwt_required_role: String,
    /// Accepted signing algorithms, comma-separated; each is bound to its key type.
    #[arg(long, env = "AGENTCUBE_JWT_ALGORITHMS", default_value = REFERENCE_ALGORITHMS)]
    jwt_algorithms: String,
    /// Role that bypasses session ownership: a realm role the token must list (or imply
    /// through --role-hierarchy-file).
    #[arg(long, env = "AGENTCUBE_ADMIN_ROLE", default_value = agentcube_rlac::DEFAULT_ADMIN_ROLE)]
    admin_role: String,
    /// The workload manager's base URL.
    #[arg(long, env = "WORKLOAD_MANAGER_URL")]
    workload_manager_url: String,
    /// PEM private key for identity and sandbox tokens; generated (Ed25519) and written, with
    /// its public key at `<path>.pub`, if the file does not exist; ephemeral if not given. A
    /// directory holds `current.pem` (signs), and optionally `next.pem` and `previous.pem`
    /// (published in the JWKS, not signing): it is read again every
    /// --identity-key-reload-secs and on SIGHUP, so the key rotates without a restart.
    #[arg(long, env = "AGENTCUBE_IDENTITY_KEY")]
    identity_key: Option<PathBuf>,
    /// How often an --identity-key directory is read again, in seconds (0: only on SIGHUP).
    #[arg(
        long,
        env = "AGENTCUBE_IDENTITY_KEY_RELOAD_SECS",
        default_value_t = DEFAULT_IDENTITY_KEY_RELOAD.as_secs()
    )]
    identity_key_reload_secs: u64,
    /// Redis shared with the workload manager as the session owner store (in memory if not
    /// given); the Router's replicas also share their revocations through it.
    #[arg(long, env = "AGENTCUBE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// The clients whose back-channel logout URL points at this Router's
    /// /oidc/backchannel-logout (the audience of the logout tokens Keycloak posts there): the
    /// clients users log in with.
    #[arg(
        long,
        env = "AGENTCUBE_BACKCHANNEL_CLIENT_IDS",
        value_delimiter = ',',
        default_value = "agentcube-cli,agentcube-router"
    )]
    backchannel_client_id: Vec<String>,
    /// How long a revocation is kept, in seconds: at least the longest access-token lifetime
    /// plus the leeway (after that, every token it refused has expired anyway).
    #[arg(long, env = "AGENTCUBE_REVOCATION_TTL_SECS", default_value_t = 3600)]
    revocation_ttl_secs: u64,
    /// With --redis-url: how often this replica reads the revocations the others recorded, in
    /// milliseconds (their staleness bound here).
    #[arg(long, env = "AGENTCUBE_REVOCATION_POLL_MS", default_value_t = 250)]
    revocation_poll_ms: u64,
    /// Requests served at once on /v1/*; more are answered 429.
    #[arg(long, env = "AGENTCUBE_MAX_CONCURRENT_REQUESTS", default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS)]
    max_concurrent_requests: usize,
    /// Minimum seconds between two JWKS fetches caused by unknown key ids or missing keys.
    #[arg(
        long,
        env = "AGENTCUBE_JWKS_REFRESH_COOLDOWN_SECS",
        default_value_t = 30
    )]
    jwks_refresh_cooldown_secs: u64,
    #[command(flatten)]
    roles: RoleHierarchyArgs,
    #[command(flatten)]
    metrics: cli::MetricsArgs,
}

async fn run(args: Args) -> Result<(), String> {
    // First, so that everything built below reports to the recorder.
    let _metrics = cli::serve_metrics(args.metrics.metrics_listen).await?;
    if args.auth.mode() == AuthMode::Disabled {
        return run_auth_disabled(&args).await;
    }
    let algorithms = AlgorithmSet::parse_list(&args.jwt_algorithms)
        .map_err(|e| format!("--jwt-algorithms: {e}"))?;
    if args.jwt_role_claim.is_empty() {
        return Err("--jwt-role-claim must not be empty".into());
    }
    if args.jwt_required_role.is_empty() {
        return Err("--jwt-required-role must not be empty".into());
    }
    let hierarchy = Arc::new(args.roles.hierarchy()?);
    let [first, ..] = args.jwt_issuer_url.as_slice() else {
        return Err("--jwt-issuer-url is required (unless --auth-mode disabled)".into());
    };
    let revocations = revocation_set(&args).await?;
    let options = OidcOptions::new(first.as_str())
        .audience(args.jwt_audience.as_str())
        .role_claim(args.jwt_role_claim.as_str())
        .algorithms(algorithms)
        .jwks_refresh_cooldown(Duration::from_secs(args.jwks_refresh_cooldown_secs))
        .revocations(Arc::clone(&revocations));
    let owner_scheme = args.owner_id_scheme.map_or_else(
        || OwnerIdScheme::for_issuer_count(args.jwt_issuer_url.len()),
        OwnerIdScheme::from,
    );

    let (ring, origin) = load_or_generate_identity_key(args.identity_key.as_deref())
        .map_err(|e| format!("--identity-key: {e}"))?;
    match (origin, &args.identity_key) {
        (IdentityKeyOrigin::Ephemeral, _) => tracing::warn!(
            "no --identity-key: using an ephemeral identity key; the workload manager and \
             sandboxes must fetch this process's JWKS, and a restart invalidates their keys"
        ),
        (IdentityKeyOrigin::Generated, Some(path)) => tracing::info!(
            path = %path.display(),
            public_key = %public_key_path(path).display(),
            "generated a new identity key"
        ),
        (IdentityKeyOrigin::Directory, Some(path)) => tracing::info!(
            dir = %path.display(),
            reload_secs = args.identity_key_reload_secs,
            "loaded the identity keys of a key directory; reloaded on change and on SIGHUP"
        ),
        _ => tracing::info!("loaded the identity key"),
    }
    tracing::info!(
        signing = ?ring.active().map(|k| k.kid().to_owned()),
        kids = ?ring.kids(),
        "identity keys"
    );
    let ring = Arc::new(ring);
    if let (IdentityKeyOrigin::Directory, Some(path)) = (origin, &args.identity_key) {
        spawn_identity_key_reload(
            Arc::clone(&ring),
            IdentityKeyDir::new(path),
            Duration::from_secs(args.identity_key_reload_secs),
        );
    }
    let minter = Arc::new(TokenMinter::new(ring));

    let store = cli::owner_store(args.redis_url.as_deref())?;
    let mut config = RouterConfig::new(args.workload_manager_url.as_str())
        .required_role(args.jwt_required_role.as_str())
        .admin_role(args.admin_role.as_str())
        .hierarchy(hierarchy)
        .owner_scheme(owner_scheme)
        .max_concurrent_requests(args.max_concurrent_requests);
    if let Some(limit) = args.max_response_bytes {
        config = config.max_response_bytes(limit);
    }
    let app = if let [_] = args.jwt_issuer_url.as_slice() {
        let verifier = options
            .build()
            .map_err(|e| format!("--jwt-issuer-url: {e}"))?;
        let config = with_revocation(config, &revocations, [&verifier], &args)?;
        agentcube_examples::router::app(Arc::new(verifier), minter, store, config)
    } else {
        let verifier = options
            .build_multi(&args.jwt_issuer_url)
            .map_err(|e| format!("--jwt-issuer-url: {e}"))?;
        let issuers = verifier
            .issuers()
            .filter_map(|issuer| verifier.verifier(issuer));
        let config = with_revocation(config, &revocations, issuers, &args)?;
        agentcube_examples::router::app(Arc::new(verifier), minter, store, config)
    }
    .map_err(|e| e.to_string())?;
    let issuers = args.jwt_issuer_url.join(",");
    cli::serve_until_signal(args.listen, app, |server| {
        tracing::info!(
            addr = %server.addr(),
            issuers,
            owner_scheme = ?owner_scheme,
            workload_manager = args.workload_manager_url,
            "router listening; JWKS at /.well-known/agentcube/jwks.json"
        );
    })
    .await
}

/// `--auth-mode disabled`: the Router without authentication, after refusing the flags that
/// would only configure it.
async fn run_auth_disabled(args: &Args) -> Result<(), String> {
    cli::refuse_auth_flags(
        AuthMode::Disabled,
        &[
            ("--jwt-issuer-url", !args.jwt_issuer_url.is_empty()),
            ("--identity-key", args.identity_key.is_some()),
            ("--role-hierarchy-file", args.roles.path().is_some()),
            ("--owner-id-scheme", args.owner_id_scheme.is_some()),
        ],
    )?;
    let store = cli::owner_store(args.redis_url.as_deref())?;
    let mut config = RouterConfig::new(args.workload_manager_url.as_str())
        .max_concurrent_requests(args.max_concurrent_requests);
    if let Some(limit) = args.max_response_bytes {
        config = config.max_response_bytes(limit);
    }
    let app =
        agentcube_examples::router::app_auth_disabled(store, config).map_err(|e| e.to_string())?;
    cli::serve_until_signal(args.listen, app, |server| {
        tracing::info!(
            addr = %server.addr(),
            auth_mode = "disabled",
            workload_manager = args.workload_manager_url,
            "router listening"
        );
    })
    .await
}

/// The revocation set: shared through Redis with --redis-url (loaded before serving, then
/// polled), in memory otherwise.
async fn revocation_set(
    args: &Args,
) -> Result<Arc<dyn agentcube_auth_core::RevocationSet>, String> {
    let ttl = Duration::from_secs(args.revocation_ttl_secs);
    if ttl.is_zero() {
        return Err("--revocation-ttl-secs must be positive".into());
    }
    let Some(url) = &args.redis_url else {
        return Ok(Arc::new(
            agentcube_auth_core::MemoryRevocationSet::new().with_ttl(ttl),
        ));
    };
    let config = agentcube_oidc::RedisRevocationConfig::new()
        .with_ttl(ttl)
        .with_poll_interval(Duration::from_millis(args.revocation_poll_ms));
    let set = agentcube_oidc::RedisRevocationSet::with_config(url, config)
        .map_err(|e| format!("--redis-url (revocations): {e}"))?;
    match set.sync().await {
        Ok(read) => tracing::info!(read, "revocations loaded from redis"),
        Err(err) => tracing::warn!(
            error = %err,
            "revocations could not be loaded from redis yet; retrying in the background"
        ),
    }
    set.spawn_sync();
    Ok(Arc::new(set))
}

/// Adds the revocation routes: the admin route, and the back-channel logout endpoint for the
/// issuers of `verifiers`.
fn with_revocation<'a>(
    config: RouterConfig,
    revocations: &Arc<dyn agentcube_auth_core::RevocationSet>,
    verifiers: impl IntoIterator<Item = &'a agentcube_oidc::OidcVerifier>,
    args: &Args,
) -> Result<RouterConfig, String> {
    let client_ids = args.backchannel_client_id.iter().cloned();
    let backchannel = agentcube_oidc::BackchannelLogout::new(verifiers, client_ids)
        .map_err(|e| format!("--backchannel-client-id: {e}"))?;
    let options = agentcube_examples::router::RevocationOptions::new(
        Arc::clone(revocations),
        Some(backchannel),
    );
    Ok(config.revocation(options))
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::main("router", run).await
}

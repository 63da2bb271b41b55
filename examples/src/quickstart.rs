//! The quickstart's set-up: a development IdP (or a real issuer), the [`Stack`], and the
//! [`scenario`](crate::scenario) configuration, shared by the `quickstart` binary and the
//! end-to-end tests.

use std::sync::Arc;
use std::time::Duration;

use agentcube_oidc::OidcVerifier;
use serde_json::Value;

use crate::dev_idp::{DEV_SECRETS, DevClient, DevIdp, DevIdpError};
use crate::router::OidcOptions;
use crate::scenario::{Credentials, Identities, Rotate, ScenarioConfig};
use crate::stack::{Stack, StackError, StackOptions};

/// The second non-admin client the dev IdP gets for the scenario.
pub const SECOND_CLIENT: &str = "agentcube-app-2";

/// The client with the API audience but no roles the dev IdP gets for the scenario.
pub const NO_ROLE_CLIENT: &str = "agentcube-noroles";

/// The Router's JWKS refresh cooldown in the quickstart (30 s in production): short, so the
/// key-rotation row does not wait long.
pub const QUICKSTART_JWKS_COOLDOWN: Duration = Duration::from_secs(1);

/// Errors setting the quickstart up.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// The dev IdP failed.
    #[error("dev idp: {0}")]
    DevIdp(#[from] DevIdpError),
    /// The verifier configuration is invalid.
    #[error("verifier: {0}")]
    Verifier(#[from] agentcube_oidc::ConfigError),
    /// The services failed to start.
    #[error("{0}")]
    Stack(#[from] StackError),
    /// The issuer's discovery document could not be read.
    #[error("discovery: {0}")]
    Discovery(String),
}

/// A running quickstart: the IdP (when embedded), the services and the scenario to play.
#[derive(Debug)]
pub struct Quickstart {
    /// The embedded IdP, if any.
    pub idp: Option<DevIdp>,
    /// The services.
    pub stack: Stack,
    /// The Router's access-token verifier.
    pub verifier: Arc<OidcVerifier>,
    /// The scenario.
    pub scenario: ScenarioConfig,
}

fn dev_secret(id: &str) -> String {
    DEV_SECRETS
        .iter()
        .find(|(c, _)| *c == id)
        .map_or_else(|| format!("{id}-secret-dev"), |(_, s)| (*s).to_owned())
}

/// Adds the scenario's extra clients to `idp` and returns all its identities: `agentcube-app`,
/// `agentcube-admin` (from the realm), [`SECOND_CLIENT`] (`sandbox:invoke`) and
/// [`NO_ROLE_CLIENT`] (no roles at all, not even the realm's default role: a client whose
/// default role was removed, as one would set it up in Keycloak), the last two with the
/// `agentcube-api` audience.
///
/// The services trust the tokens' roles as they are, so the admin row relies on the dev IdP
/// expanding `admin`'s composites into the token (`admin`, `sandbox:manage`,
/// `sandbox:invoke`), as Keycloak does.
pub fn dev_identities(idp: &DevIdp) -> Identities {
    idp.add_client(DevClient {
        id: SECOND_CLIENT.to_owned(),
        secret: dev_secret(SECOND_CLIENT),
        realm_roles: vec![crate::router::DEFAULT_REQUIRED_ROLE.to_owned()],
        api_audience: true,
    });
    idp.add_client(DevClient {
        id: NO_ROLE_CLIENT.to_owned(),
        secret: dev_secret(NO_ROLE_CLIENT),
        realm_roles: Vec::new(),
        api_audience: true,
    });
    let creds =
        |id: &str| Credentials::new(id, idp.client_secret(id).unwrap_or_else(|| dev_secret(id)));
    Identities {
        app: creds("agentcube-app"),
        admin: Some(creds("agentcube-admin")),
        second: Some(creds(SECOND_CLIENT)),
        no_role: Some(creds(NO_ROLE_CLIENT)),
    }
}

/// A [`Rotate`] that rotates the dev IdP's signing key.
pub fn dev_rotate(idp: &DevIdp) -> Rotate {
    let idp = idp.clone();
    Box::new(move || {
        let idp = idp.clone();
        Box::pin(async move { idp.rotate_key().map(drop).map_err(|e| e.to_string()) })
    })
}

/// Starts the dev IdP for the compiled-in realm and the services, and prepares the scenario.
///
/// # Errors
/// [`QuickstartError`].
pub async fn start_dev(redis_url: Option<String>) -> Result<Quickstart, QuickstartError> {
    let idp = DevIdp::start(crate::AGENTCUBE_REALM_JSON).await?;
    let identities = dev_identities(&idp);
    let verifier = Arc::new(
        OidcOptions::new(idp.issuer())
            .jwks_refresh_cooldown(QUICKSTART_JWKS_COOLDOWN)
            .build()?,
    );
    // The default options: a flat role hierarchy, since the dev IdP, like Keycloak, puts the
    // effective (composite-expanded) roles into its tokens.
    let stack = Stack::start(
        Arc::clone(&verifier),
        StackOptions::new().redis_url(redis_url),
    )
    .await?;
    let mut scenario = ScenarioConfig::new(stack.router_url(), idp.token_endpoint(), identities);
    scenario.rotate = Some(dev_rotate(&idp));
    scenario.rotation_wait = QUICKSTART_JWKS_COOLDOWN + Duration::from_millis(100);
    Ok(Quickstart {
        idp: Some(idp),
        stack,
        verifier,
        scenario,
    })
}

/// The token endpoint of `issuer`, from its discovery document (whose `issuer` must match).
///
/// # Errors
/// [`QuickstartError::Discovery`].
pub async fn token_endpoint(issuer: &str) -> Result<String, QuickstartError> {
    let http =
        crate::scenario::http_client().map_err(|e| QuickstartError::Discovery(e.to_string()))?;
    let url = format!(
        "{}{}",
        issuer.trim_end_matches('/'),
        agentcube_oidc::DISCOVERY_PATH
    );
    let doc: Value = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| QuickstartError::Discovery(e.to_string()))?
        .json()
        .await
        .map_err(|e| QuickstartError::Discovery(e.to_string()))?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(QuickstartError::Discovery(format!(
            "the discovery document at {url} names another issuer"
        )));
    }
    doc.get("token_endpoint")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| QuickstartError::Discovery("no token_endpoint".to_owned()))
}

/// Starts the services against a real issuer (Keycloak) and prepares the scenario for
/// `identities`; `rotate`, when given, rotates the issuer's key.
///
/// # Errors
/// [`QuickstartError`].
pub async fn start_with_issuer(
    issuer: &str,
    identities: Identities,
    rotate: Option<Rotate>,
    redis_url: Option<String>,
) -> Result<Quickstart, QuickstartError> {
    let token_endpoint = token_endpoint(issuer).await?;
    let verifier = Arc::new(
        OidcOptions::new(issuer)
            .jwks_refresh_cooldown(QUICKSTART_JWKS_COOLDOWN)
            .build()?,
    );
    let stack = Stack::start(
        Arc::clone(&verifier),
        StackOptions::new().redis_url(redis_url),
    )
    .await?;
    let mut scenario = ScenarioConfig::new(stack.router_url(), token_endpoint, identities);
    scenario.rotate = rotate;
    scenario.rotation_wait = QUICKSTART_JWKS_COOLDOWN + Duration::from_millis(100);
    Ok(Quickstart {
        idp: None,
        stack,
        verifier,
        scenario,
    })
}

/// Waits (at most `timeout`) until the Router's verifier has the issuer's keys.
pub async fn wait_ready(verifier: &OidcVerifier, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while !verifier.is_ready() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

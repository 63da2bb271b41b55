//! A development identity provider: just enough of Keycloak for the quickstart to run with
//! nothing but cargo.
//!
//! It serves OIDC discovery, a JWKS and a `client_credentials` token endpoint under
//! `/realms/<realm>`, for the confidential clients of `deploy/keycloak/agentcube-realm.json`
//! (the `agentcube-api` audience where the realm has the audience mapper).
//!
//! Roles: a token lists the client's effective realm roles, as Keycloak's do — its
//! service-account roles and, transitively, every composite they include, the realm's default
//! role (`default-roles-<realm>`) included. The services trust these roles as they are (no
//! hierarchy of their own), so the admin's token must carry `sandbox:invoke` itself, and does.
//! The service accounts of the realm export hold the roles the export lists for them; a client
//! added with [`DevIdp::add_client`] holds exactly the roles it is given (the realm's default
//! role only if listed). Tokens are RS256 with a
//! 300 s lifetime, shaped like Keycloak's. It can rotate its signing key. It is for local
//! development only: secrets are plain strings and keys live in memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use agentcube_auth_core::jose::{Algorithm, EncodedHeader, Jwk, SigningKey};
use agentcube_auth_core::{Role, RoleHierarchy, RoleSet};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Default secrets the dev IdP gives the realm's confidential clients (the realm file holds
/// `${KC_CLIENT_*_SECRET}` placeholders that Keycloak fills from the environment).
pub const DEV_SECRETS: [(&str, &str); 3] = [
    ("agentcube-app", "app-secret-dev"),
    ("agentcube-router", "router-secret-dev"),
    ("agentcube-admin", "admin-secret-dev"),
];

/// A confidential client the dev IdP issues `client_credentials` tokens to.
#[derive(Clone, Debug)]
pub struct DevClient {
    /// `client_id`.
    pub id: String,
    /// The client secret.
    pub secret: String,
    /// Realm roles of the service account (before composite expansion).
    pub realm_roles: Vec<String>,
    /// Whether the `agentcube-api` audience mapper applies.
    pub api_audience: bool,
}

/// A Keycloak-like RS256 key: the shared JOSE signer, with its `{"alg","kid","typ":"JWT"}`
/// header encoded once.
struct DevKey {
    key: SigningKey,
    header: EncodedHeader,
}

impl DevKey {
    fn generate() -> Result<Self, DevIdpError> {
        let key = SigningKey::generate(Algorithm::RS256).map_err(|_| DevIdpError::Crypto)?;
        let header = key.header(Some("JWT"));
        Ok(Self { key, header })
    }
}

/// Errors of the dev IdP.
#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    /// The realm file could not be read.
    #[error("invalid realm export: {0}")]
    Realm(String),
    /// Key generation or signing failed.
    #[error("crypto operation failed")]
    Crypto,
    /// The listener could not bind.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

struct Inner {
    realm: String,
    issuer: String,
    /// Every composite of the realm, the default role's included: what Keycloak expands into
    /// a token (unlike the services' optional hierarchy, which never expands the default role).
    hierarchy: RoleHierarchy,
    clients: RwLock<HashMap<String, DevClient>>,
    /// Newest first; the first key signs.
    keys: RwLock<Vec<Arc<DevKey>>>,
    token_lifetime: i64,
}

/// A running development IdP. Cloning shares it.
#[derive(Clone)]
pub struct DevIdp {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

/// Shows the issuer and the address; never keys or secrets.
impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("issuer", &self.inner.issuer)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DevIdp {
    /// Starts the IdP on `127.0.0.1:0` for the realm export `realm_json`, with the clients'
    /// secrets taken from [`DEV_SECRETS`].
    ///
    /// # Errors
    /// An unreadable realm export, key generation failure or bind failure.
    pub async fn start(realm_json: &str) -> Result<Self, DevIdpError> {
        Self::start_on(realm_json, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`DevIdp::start`], listening on `addr` (e.g. an address a service was already
    /// configured with while the IdP was down).
    ///
    /// # Errors
    /// As [`DevIdp::start`].
    pub async fn start_on(realm_json: &str, addr: SocketAddr) -> Result<Self, DevIdpError> {
        Self::start_on_listener(realm_json, TcpListener::bind(addr).await?).await
    }

    /// Like [`DevIdp::start`], serving on `listener` (e.g. a port held since a service was
    /// configured with its address, so nothing else could take it while the IdP was down).
    ///
    /// # Errors
    /// As [`DevIdp::start`], but for the bind.
    pub async fn start_on_listener(
        realm_json: &str,
        listener: TcpListener,
    ) -> Result<Self, DevIdpError> {
        let realm: Value =
            serde_json::from_str(realm_json).map_err(|e| DevIdpError::Realm(e.to_string()))?;
        let name = realm
            .get("realm")
            .and_then(Value::as_str)
            .ok_or_else(|| DevIdpError::Realm("no realm name".into()))?
            .to_owned();
        let hierarchy = keycloak_composites(&realm)?;
        let clients = realm_clients(&realm);
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            issuer: format!("http://{addr}/realms/{name}"),
            realm: name,
            hierarchy,
            clients: RwLock::new(clients),
            keys: RwLock::new(vec![Arc::new(DevKey::generate()?)]),
            token_lifetime: 300,
        });
        let app = Router::new()
            .route(
                &format!("/realms/{}/.well-known/openid-configuration", inner.realm),
                get(discovery),
            )
            .route(
                &format!("/realms/{}/protocol/openid-connect/certs", inner.realm),
                get(jwks),
            )
            .route(
                &format!("/realms/{}/protocol/openid-connect/token", inner.realm),
                post(token),
            )
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::error!(%err, "dev idp stopped");
            }
        });
        Ok(Self { inner, addr })
    }

    /// The issuer URL (`http://127.0.0.1:<port>/realms/<realm>`).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/protocol/openid-connect/token", self.inner.issuer)
    }

    /// Adds (or replaces) a development client, e.g. a second user or a client without roles.
    pub fn add_client(&self, client: DevClient) {
        if let Ok(mut clients) = self.inner.clients.write() {
            clients.insert(client.id.clone(), client);
        }
    }

    /// The secret of a client, if it exists.
    pub fn client_secret(&self, id: &str) -> Option<String> {
        self.inner
            .clients
            .read()
            .ok()
            .and_then(|c| c.get(id).map(|c| c.secret.clone()))
    }

    /// Starts signing with a new key; the old keys stay published until [`DevIdp::retire_old_keys`].
    ///
    /// # Errors
    /// Key generation failure.
    pub fn rotate_key(&self) -> Result<String, DevIdpError> {
        let key = Arc::new(DevKey::generate()?);
        let kid = key.key.kid().to_owned();
        if let Ok(mut keys) = self.inner.keys.write() {
            keys.insert(0, key);
        }
        Ok(kid)
    }

    /// Unpublishes every key but the active one.
    pub fn retire_old_keys(&self) {
        if let Ok(mut keys) = self.inner.keys.write() {
            keys.truncate(1);
        }
    }

    /// The active signing key's `kid`.
    pub fn active_kid(&self) -> Option<String> {
        self.inner
            .keys
            .read()
            .ok()?
            .first()
            .map(|k| k.key.kid().to_owned())
    }

    /// Issues a token for `client_id` directly (what the token endpoint does after checking the
    /// secret), with `extra` claims merged over the defaults.
    ///
    /// # Errors
    /// [`DevIdpError::Crypto`] when signing fails; `Realm` for an unknown client.
    pub fn issue(&self, client_id: &str, extra: &Value) -> Result<String, DevIdpError> {
        let client = self
            .inner
            .clients
            .read()
            .ok()
            .and_then(|c| c.get(client_id).cloned())
            .ok_or_else(|| DevIdpError::Realm(format!("unknown client {client_id}")))?;
        issue_token(&self.inner, &client, extra)
    }
}

/// Every composite of the realm export's realm and client roles, as Keycloak expands them into
/// tokens: unlike [`RoleHierarchy::from_keycloak_realm`], the default role's composites count.
fn keycloak_composites(realm: &Value) -> Result<RoleHierarchy, DevIdpError> {
    let bad = |what: &str| DevIdpError::Realm(format!("roles: {what}"));
    let names = |value: &Value| -> Result<Vec<String>, DevIdpError> {
        value
            .as_array()
            .ok_or_else(|| bad("composite names are not an array"))?
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("a composite name is not a string"))
    };
    let mut pairs = Vec::new();
    let mut add = |role: Role, def: &Value| -> Result<(), DevIdpError> {
        let Some(composites) = def.get("composites") else {
            return Ok(());
        };
        if let Some(realm_roles) = composites.get("realm") {
            for name in names(realm_roles)? {
                pairs.push((role.clone(), Role::realm(name)));
            }
        }
        if let Some(clients) = composites.get("client") {
            let clients = clients
                .as_object()
                .ok_or_else(|| bad("client composites are not an object"))?;
            for (client, list) in clients {
                for name in names(list)? {
                    pairs.push((role.clone(), Role::client(client.as_str(), name)));
                }
            }
        }
        Ok(())
    };
    let role_name = |def: &Value| -> Result<String, DevIdpError> {
        def.get("name")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad("a role has no name"))
    };
    let roles = realm.get("roles");
    for def in roles
        .and_then(|r| r.get("realm"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        add(Role::realm(role_name(def)?), def)?;
    }
    for (client, list) in roles
        .and_then(|r| r.get("client"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for def in list.as_array().into_iter().flatten() {
            add(Role::client(client.as_str(), role_name(def)?), def)?;
        }
    }
    RoleHierarchy::from_pairs(pairs).map_err(|e| DevIdpError::Realm(e.to_string()))
}

fn realm_clients(realm: &Value) -> HashMap<String, DevClient> {
    let empty = Vec::new();
    let users = realm
        .get("users")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut out = HashMap::new();
    for client in realm
        .get("clients")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let Some(id) = client.get("clientId").and_then(Value::as_str) else {
            continue;
        };
        if client.get("serviceAccountsEnabled") != Some(&Value::Bool(true)) {
            continue;
        }
        let secret = DEV_SECRETS
            .iter()
            .find(|(c, _)| *c == id)
            .map_or_else(|| format!("{id}-secret-dev"), |(_, s)| (*s).to_owned());
        let realm_roles = users
            .iter()
            .find(|u| u.get("serviceAccountClientId").and_then(Value::as_str) == Some(id))
            .and_then(|u| u.get("realmRoles"))
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let api_audience = client
            .get("protocolMappers")
            .and_then(Value::as_array)
            .is_some_and(|mappers| {
                mappers.iter().any(|m| {
                    m.get("protocolMapper").and_then(Value::as_str) == Some("oidc-audience-mapper")
                })
            });
        out.insert(
            id.to_owned(),
            DevClient {
                id: id.to_owned(),
                secret,
                realm_roles,
                api_audience,
            },
        );
    }
    out
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn issue_token(inner: &Inner, client: &DevClient, extra: &Value) -> Result<String, DevIdpError> {
    let key = inner
        .keys
        .read()
        .ok()
        .and_then(|k| k.first().cloned())
        .ok_or(DevIdpError::Crypto)?;
    // Keycloak expands composite roles into the token; so does the dev IdP.
    let held: RoleSet = client
        .realm_roles
        .iter()
        .map(|r| Role::realm(r.as_str()))
        .collect();
    let roles: Vec<String> = inner
        .hierarchy
        .expand(&held)
        .realm_roles()
        .map(|r| r.name().to_owned())
        .collect();
    let iat = now();
    let mut claims = json!({
        "exp": iat + inner.token_lifetime,
        "iat": iat,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": inner.issuer,
        "sub": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, client.id.as_bytes()).to_string(),
        "typ": "Bearer",
        "azp": client.id,
        "acr": "1",
        "realm_access": {"roles": roles},
        "scope": "profile email",
        "email_verified": false,
        "preferred_username": format!("service-account-{}", client.id),
        "client_id": client.id,
    });
    if let Value::Object(base) = &mut claims {
        if client.api_audience {
            base.insert(
                "aud".into(),
                json!(agentcube_oidc::OidcConfig::DEFAULT_AUDIENCE),
            );
        }
        if let Value::Object(more) = extra {
            for (k, v) in more {
                base.insert(k.clone(), v.clone());
            }
        }
    }
    let payload = serde_json::to_vec(&claims).map_err(|_| DevIdpError::Crypto)?;
    key.key
        .sign(&key.header, &payload)
        .map_err(|_| DevIdpError::Crypto)
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Json<Value> {
    let base = &inner.issuer;
    Json(json!({
        "issuer": base,
        "jwks_uri": format!("{base}/protocol/openid-connect/certs"),
        "token_endpoint": format!("{base}/protocol/openid-connect/token"),
        "grant_types_supported": ["client_credentials"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    }))
}

async fn jwks(State(inner): State<Arc<Inner>>) -> Response {
    let keys: Vec<Jwk> = inner
        .keys
        .read()
        .map(|k| k.iter().map(|k| k.key.public_jwk().clone()).collect())
        .unwrap_or_default();
    (
        [(header::CACHE_CONTROL, "max-age=60")],
        Json(json!({ "keys": keys })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

async fn token(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if form.grant_type != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials",
        );
    }
    let (id, secret) = match basic_credentials(&headers) {
        Some(pair) => pair,
        None => match (form.client_id, form.client_secret) {
            (Some(id), Some(secret)) => (id, secret),
            _ => {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "missing client credentials",
                );
            }
        },
    };
    let client = inner.clients.read().ok().and_then(|c| c.get(&id).cloned());
    let Some(client) = client.filter(|c| c.secret == secret) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client or Invalid client credentials",
        );
    };
    match issue_token(&inner, &client, &Value::Null) {
        Ok(access_token) => Json(json!({
            "access_token": access_token,
            "expires_in": inner.token_lifetime,
            "token_type": "Bearer",
            "scope": "profile email",
        }))
        .into_response(),
        Err(_) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "signing failed",
        ),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
mod tests {
    use super::*;

    fn realm_roles(idp: &DevIdp, client: &str) -> Vec<String> {
        let token = idp.issue(client, &Value::Null).unwrap();
        let claims = crate::scenario::unverified_claims(&token).unwrap();
        let mut roles: Vec<String> = claims
            .pointer("/realm_access/roles")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        roles.sort();
        roles
    }

    #[tokio::test]
    async fn tokens_carry_the_effective_roles_as_keycloak_expands_them() {
        let idp = DevIdp::start(crate::AGENTCUBE_REALM_JSON).await.unwrap();
        assert_eq!(
            realm_roles(&idp, "agentcube-admin"),
            ["admin", "sandbox:invoke", "sandbox:manage"]
        );
        assert_eq!(realm_roles(&idp, "agentcube-app"), ["sandbox:invoke"]);
        // The default role's composites count too, as in Keycloak.
        idp.add_client(DevClient {
            id: "default-only".to_owned(),
            secret: "s".to_owned(),
            realm_roles: vec!["default-roles-agentcube".to_owned()],
            api_audience: true,
        });
        assert_eq!(
            realm_roles(&idp, "default-only"),
            ["default-roles-agentcube", "sandbox:invoke"]
        );
        idp.add_client(DevClient {
            id: "none".to_owned(),
            secret: "s".to_owned(),
            realm_roles: Vec::new(),
            api_audience: true,
        });
        assert!(realm_roles(&idp, "none").is_empty());
    }

    #[test]
    fn invalid_composites_are_a_realm_error() {
        for bad in [
            serde_json::json!({"roles": {"realm": [{"composites": {}}]}}),
            serde_json::json!({"roles": {"realm": [{"name": "a", "composites": {"realm": "b"}}]}}),
            serde_json::json!({"roles": {"realm": [{"name": "a", "composites": {"realm": ["a"]}}]}}),
        ] {
            assert!(matches!(
                keycloak_composites(&bad),
                Err(DevIdpError::Realm(_))
            ));
        }
    }
}

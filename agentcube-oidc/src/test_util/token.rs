//! Minting Keycloak-shaped access tokens.

use std::sync::Arc;

use agentcube_auth_core::jose::Algorithm;
use serde_json::{Map, Value, json};

use super::key::TestKey;
use crate::OidcConfig;

/// The subject of the default token.
const DEFAULT_SUBJECT: &str = "3f0c1c7e-1b43-4c8a-9a3e-7b0e1f2a3c4d";

/// The `azp` of the default token (Keycloak's public CLI client in the AgentCube realm).
const DEFAULT_AZP: &str = "agentcube-cli";

/// The lifetime of the default token, in seconds (Keycloak's default access-token lifespan).
const DEFAULT_LIFETIME: i64 = 300;

/// Builds a signed token; every claim and header member can be changed or removed.
///
/// Two starting points: [`TokenBuilder::generic`] (only `iss`, `sub`, `aud`, `iat`, `exp`,
/// `jti`) for any issuer, and [`TokenBuilder::keycloak`], a Keycloak access token with these
/// claims:
///
/// | claim | value |
/// |---|---|
/// | `iss` | the issuer |
/// | `sub` | `3f0c1c7e-1b43-4c8a-9a3e-7b0e1f2a3c4d` (user `alice`) |
/// | `aud` | `agentcube-api` |
/// | `iat`, `auth_time` | now; `exp` = now + 300 s |
/// | `jti` | random |
/// | `typ` | `Bearer` (Keycloak's access-token type) |
/// | `azp` | `agentcube-cli`; `sid` a fixed session id; `acr` `1` |
/// | `realm_access.roles` | `default-roles-agentcube`, `offline_access`, `uma_authorization`, `sandbox:invoke` |
/// | `resource_access.account.roles` | `manage-account`, `manage-account-links`, `view-profile` |
/// | `scope` | `openid profile email` |
/// | `email` | `alice@example.com`, `email_verified` `true`; `preferred_username` `alice`; `name`, `given_name`, `family_name` |
///
/// The header is `{"alg": <the key's>, "typ": "JWT", "kid": <the key's>}`.
///
/// ```
/// # fn demo(key: std::sync::Arc<agentcube_oidc::test_util::TestKey>) {
/// use agentcube_oidc::test_util::TokenBuilder;
///
/// let token = TokenBuilder::keycloak("https://kc.example/realms/agentcube", key, 1_800_000_000)
///     .subject("bob")
///     .realm_roles(["sandbox:manage"])
///     .claim("typ", "ID")
///     .sign();
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TokenBuilder {
    key: Arc<TestKey>,
    alg: Algorithm,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl TokenBuilder {
    /// A Keycloak-shaped access token from `issuer`, issued at `now` (Unix seconds), signed by
    /// `key`.
    pub fn keycloak(issuer: &str, key: Arc<TestKey>, now: i64) -> Self {
        let claims = json!({
            "exp": now + DEFAULT_LIFETIME,
            "iat": now,
            "auth_time": now,
            "jti": format!("onrtac:{:016x}", rand_u64()),
            "iss": issuer,
            "aud": OidcConfig::DEFAULT_AUDIENCE,
            "sub": DEFAULT_SUBJECT,
            "typ": "Bearer",
            "azp": DEFAULT_AZP,
            "sid": "8a5c3e1f-6b2d-4e7a-9c1b-2d3e4f5a6b7c",
            "acr": "1",
            "allowed-origins": ["http://localhost:8080"],
            "realm_access": {
                "roles": ["default-roles-agentcube", "offline_access", "uma_authorization", "sandbox:invoke"]
            },
            "resource_access": {
                "account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}
            },
            "scope": "openid profile email",
            "email_verified": true,
            "name": "Alice Example",
            "preferred_username": "alice",
            "given_name": "Alice",
            "family_name": "Example",
            "email": "alice@example.com"
        });
        Self::with_claims(key, claims)
    }

    /// A token with only the registered claims, for any issuer: `iss`, `sub`, `aud` (one
    /// string), `iat` = `now`, `exp` = `now + 300`, and a random `jti`. No roles, no scope, no
    /// Keycloak `typ`; add what your issuer sends with [`claim`](Self::claim).
    pub fn generic(
        issuer: &str,
        subject: &str,
        audience: &str,
        key: Arc<TestKey>,
        now: i64,
    ) -> Self {
        let claims = json!({
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + DEFAULT_LIFETIME,
            "jti": format!("{:016x}", rand_u64()),
        });
        Self::with_claims(key, claims)
    }

    /// A token with exactly `claims` (a JSON object; anything else becomes `{}`), signed by
    /// `key`.
    pub fn with_claims(key: Arc<TestKey>, claims: Value) -> Self {
        let alg = key.algorithm();
        let mut header = Map::new();
        header.insert("alg".into(), alg.as_str().into());
        header.insert("typ".into(), "JWT".into());
        header.insert("kid".into(), key.kid().into());
        let claims = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self {
            key,
            alg,
            header,
            claims,
        }
    }

    /// Sets a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Edits the claims in place.
    pub fn claims(mut self, edit: impl FnOnce(&mut Map<String, Value>)) -> Self {
        edit(&mut self.claims);
        self
    }

    /// `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", sub)
    }

    /// `iss`.
    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", iss)
    }

    /// `aud`: a string or an array (`json!(["a", "b"])`).
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// `azp`.
    pub fn azp(self, azp: &str) -> Self {
        self.claim("azp", azp)
    }

    /// The payload `typ` (`Bearer`, `ID`, `Refresh`, `Logout`).
    pub fn token_type(self, typ: &str) -> Self {
        self.claim("typ", typ)
    }

    /// `iat` = `now`, `exp` = `now + 300`, `auth_time` = `now`, no `nbf`.
    pub fn issued_at(self, now: i64) -> Self {
        self.claim("iat", now)
            .claim("auth_time", now)
            .claim("exp", now + DEFAULT_LIFETIME)
    }

    /// `exp`.
    pub fn expires_at(self, exp: i64) -> Self {
        self.claim("exp", exp)
    }

    /// `nbf`.
    pub fn not_before(self, nbf: i64) -> Self {
        self.claim("nbf", nbf)
    }

    /// `realm_access.roles`.
    pub fn realm_roles<I, S>(self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles: Vec<Value> = roles.into_iter().map(|r| Value::String(r.into())).collect();
        self.claim("realm_access", json!({ "roles": roles }))
    }

    /// `resource_access.<client>.roles` (other clients' roles are kept).
    pub fn client_roles<I, S>(mut self, client: &str, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let roles: Vec<Value> = roles.into_iter().map(|r| Value::String(r.into())).collect();
        let access = self
            .claims
            .entry("resource_access")
            .or_insert_with(|| Value::Object(Map::new()));
        if !access.is_object() {
            *access = Value::Object(Map::new());
        }
        if let Value::Object(map) = access {
            map.insert(client.to_owned(), json!({ "roles": roles }));
        }
        self
    }

    /// A client_credentials (service account) token of `client`: Keycloak adds `client_id`,
    /// sets `azp`, and the username `service-account-<client>`; no email.
    pub fn service_account(self, client: &str) -> Self {
        self.azp(client)
            .claim("client_id", client)
            .claim("preferred_username", format!("service-account-{client}"))
            .claim("email_verified", false)
            .without_claim("email")
            .without_claim("name")
            .without_claim("given_name")
            .without_claim("family_name")
    }

    /// Sets a header member (`jku`, `jwk`, `crit`, `typ`, ... or `alg` to lie about the
    /// algorithm; the signature is still made with [`algorithm`](Self::algorithm)).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header member.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// The header `kid`.
    pub fn kid(self, kid: &str) -> Self {
        self.header("kid", kid)
    }

    /// Signs with `alg` (which must fit the key type) and names it in the header.
    pub fn algorithm(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self.header("alg", alg.as_str())
    }

    /// Signs with `key` instead (header `kid` and `alg` follow the new key).
    pub fn signed_by(mut self, key: Arc<TestKey>) -> Self {
        self.alg = key.algorithm();
        self.header.insert("alg".into(), self.alg.as_str().into());
        self.header.insert("kid".into(), key.kid().into());
        self.key = key;
        self
    }

    /// The header as it will be serialized.
    pub fn header_json(&self) -> Value {
        Value::Object(self.header.clone())
    }

    /// The claims as they will be serialized.
    pub fn claims_json(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// The compact JWS.
    ///
    /// # Panics
    /// If the chosen algorithm does not fit the key type.
    #[allow(
        clippy::expect_used,
        reason = "a test helper; a misfit algorithm is the test's bug"
    )]
    pub fn sign(self) -> String {
        let header = Value::Object(self.header).to_string();
        let claims = Value::Object(self.claims).to_string();
        self.key
            .sign_compact_as(self.alg, header.as_bytes(), claims.as_bytes())
            .expect("the algorithm fits the key type")
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

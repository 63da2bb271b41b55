//! Helpers shared by the tests against a real Keycloak (`keycloak.rs`, `client_keycloak.rs`):
//! the environment `scripts/with-services.sh` exports, the Admin REST API, test realms copied
//! from the production realm file, test users, and a scripted browser for the login pages.
//!
//! Each test binary uses a part of them.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers: a failed expectation is a failed test; each binary uses a subset"
)]

use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

/// The production realm, exactly as Keycloak imports it in `scripts/keycloak.sh`.
pub const REALM_FILE: &str = include_str!("../../../deploy/keycloak/agentcube-realm.json");

/// The Keycloak started by `scripts/with-services.sh`.
pub struct Keycloak {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    /// The production realm's name (`agentcube`).
    pub realm: String,
    /// `{base}/realms/{realm}`.
    pub issuer: String,
    pub admin_user: String,
    pub admin_password: String,
    pub app_secret: String,
    pub admin_secret: String,
    pub router_secret: String,
}

/// The Keycloak from the environment, or `None` (skip, with a notice) outside CI. Under CI (`CI`
/// set) a missing Keycloak fails the test: these tests may never silently not run there.
pub fn keycloak(test: &str) -> Option<Keycloak> {
    let Ok(base) = std::env::var("AGENTCUBE_KEYCLOAK_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: AGENTCUBE_KEYCLOAK_URL is not set; under CI the Keycloak tests must run \
             (use scripts/with-services.sh)"
        );
        eprintln!(
            "skipping {test}: AGENTCUBE_KEYCLOAK_URL is not set \
             (run under scripts/with-services.sh to include the Keycloak tests)"
        );
        return None;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"));
    let base = base.trim_end_matches('/').to_owned();
    let realm = std::env::var("AGENTCUBE_KEYCLOAK_REALM").unwrap_or_else(|_| "agentcube".into());
    Some(Keycloak {
        issuer: format!("{base}/realms/{realm}"),
        base,
        realm,
        admin_user: var("AGENTCUBE_KEYCLOAK_ADMIN_USER"),
        admin_password: var("AGENTCUBE_KEYCLOAK_ADMIN_PASSWORD"),
        app_secret: var("KC_CLIENT_APP_SECRET"),
        admin_secret: var("KC_CLIENT_ADMIN_SECRET"),
        router_secret: var("KC_CLIENT_ROUTER_SECRET"),
    })
}

impl Keycloak {
    /// The issuer of realm `realm` of this Keycloak.
    pub fn issuer_of(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base)
    }

    /// An Admin REST API client logged in as the bootstrap admin.
    pub fn admin(&self) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            user: self.admin_user.clone(),
            password: self.admin_password.clone(),
            token: Mutex::new(None),
        }
    }
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut random = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// token endpoint and token contents

/// The token endpoint's JSON answer to a client_credentials grant in the realm of `issuer`.
pub async fn client_credentials_grant(
    issuer: &str,
    client: &str,
    secret: &str,
    scope: Option<&str>,
) -> Value {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let response = reqwest::Client::new()
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{client}: {status} {body}");
    body
}

/// A client_credentials access token of `client` in the realm of `issuer`.
pub async fn client_token(issuer: &str, client: &str, secret: &str) -> String {
    client_credentials_grant(issuer, client, secret, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn decode_segment(token: &str, index: usize) -> Map<String, Value> {
    let part = token.split('.').nth(index).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The (unverified) JOSE header of a JWT.
pub fn header_of(token: &str) -> Map<String, Value> {
    decode_segment(token, 0)
}

/// The (unverified) payload of a JWT.
pub fn payload_of(token: &str) -> Map<String, Value> {
    decode_segment(token, 1)
}

/// The header `kid` of a JWT.
pub fn kid_of(token: &str) -> String {
    header_of(token)["kid"].as_str().unwrap().to_owned()
}

/// `token` with its header replaced by `header` (the signature is kept: it no longer matches,
/// which is fine for checks that come before the signature).
pub fn with_header(token: &str, header: &Value) -> String {
    let mut parts = token.splitn(2, '.');
    let _ = parts.next();
    let rest = parts.next().unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// The `aud` claim as a list (`[]` when absent).
pub fn audiences(payload: &Map<String, Value>) -> Vec<String> {
    match payload.get("aud") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        Some(other) => panic!("unexpected aud {other}"),
    }
}

/// `realm_access.roles` of a token payload.
pub fn realm_roles_of(payload: &Map<String, Value>) -> Vec<String> {
    payload
        .get("realm_access")
        .and_then(|r| r.get("roles"))
        .and_then(Value::as_array)
        .map(|roles| {
            roles
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Admin REST API

/// A client of Keycloak's Admin REST API, as the master realm's bootstrap admin (`admin-cli`).
///
/// The master realm's access tokens live 60 s; a token is reused for 30 s, then a new one is
/// fetched.
pub struct Admin {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    token: Mutex<Option<(Instant, String)>>,
}

/// A realm created for one test from a copy of the production realm file.
pub struct TestRealm {
    pub name: String,
    /// The realm's internal id (the `parentId` of its components).
    pub id: String,
    pub issuer: String,
    pub app_secret: String,
    pub admin_secret: String,
    pub router_secret: String,
}

impl Admin {
    async fn token(&self) -> String {
        if let Some((at, token)) = &*self.token.lock().unwrap()
            && at.elapsed() < Duration::from_secs(30)
        {
            return token.clone();
        }
        let response: Value = self
            .http
            .post(format!(
                "{}/realms/master/protocol/openid-connect/token",
                self.base
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", &self.user),
                ("password", &self.password),
            ])
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = response["access_token"].as_str().unwrap().to_owned();
        *self.token.lock().unwrap() = Some((Instant::now(), token.clone()));
        token
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/realms{path}", self.base)
    }

    /// Sends `request` with the admin token; returns the status, the last segment of the
    /// `Location` header (if any) and the body.
    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
        let response = request
            .bearer_auth(self.token().await)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().rsplit('/').next().unwrap().to_owned());
        (status, location, response.text().await.unwrap())
    }

    /// `GET /admin/realms{path}` (path empty or starting with `/`).
    pub async fn get(&self, path: &str) -> Value {
        let (status, _, text) = self.send(self.http.get(self.url(path))).await;
        assert!((200..300).contains(&status), "GET {path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// `POST /admin/realms{path}` with a JSON body; expects 201 and returns the id at the end
    /// of the `Location` header, if any.
    pub async fn post(&self, path: &str, body: &Value) -> Option<String> {
        let (status, location, text) = self.send(self.http.post(self.url(path)).json(body)).await;
        assert_eq!(status, 201, "POST {path}: {text}");
        location
    }

    /// `PUT /admin/realms{path}` with a JSON body; expects 204.
    pub async fn put(&self, path: &str, body: &Value) {
        let (status, _, text) = self.send(self.http.put(self.url(path)).json(body)).await;
        assert_eq!(status, 204, "PUT {path}: {text}");
    }

    /// `DELETE /admin/realms{path}`; expects 204.
    pub async fn delete(&self, path: &str) {
        let (status, _, text) = self.send(self.http.delete(self.url(path))).await;
        assert_eq!(status, 204, "DELETE {path}: {text}");
    }

    /// Imports a copy of `deploy/keycloak/agentcube-realm.json` as realm `{prefix}-{random}`,
    /// with fresh client secrets in place of the `${...}` placeholders. The production realm is
    /// not touched; tests that change realm keys or settings work in such a copy so that tests
    /// running concurrently against `agentcube` are not disturbed.
    pub async fn create_realm_copy(&self, keycloak: &Keycloak, prefix: &str) -> TestRealm {
        let name = format!("{prefix}-{}", random_hex(4));
        // No Router listens for these realms' back-channel logouts (port 9: discard).
        let realm_file = REALM_FILE.replace("${KC_ROUTER_URL}", "http://127.0.0.1:9");
        let mut realm: Value = serde_json::from_str(&realm_file).unwrap();
        realm["realm"] = json!(name);
        let secret_of = |client: &str| format!("{client}-{}", random_hex(12));
        let (app_secret, admin_secret, router_secret) =
            (secret_of("app"), secret_of("admin"), secret_of("router"));
        for client in realm["clients"].as_array_mut().unwrap() {
            let secret = match client["clientId"].as_str().unwrap() {
                "agentcube-app" => &app_secret,
                "agentcube-admin" => &admin_secret,
                "agentcube-router" => &router_secret,
                _ => continue,
            };
            assert!(client["secret"].as_str().unwrap().starts_with("${"));
            client["secret"] = json!(secret);
        }
        assert!(
            !realm.to_string().contains("${"),
            "every placeholder of the realm file is substituted"
        );
        self.post("", &realm).await;
        let id = self.get(&format!("/{name}")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        TestRealm {
            issuer: keycloak.issuer_of(&name),
            name,
            id,
            app_secret,
            admin_secret,
            router_secret,
        }
    }

    /// Adds a key provider component to `realm`; returns its id.
    pub async fn add_key_provider(
        &self,
        realm: &TestRealm,
        name: &str,
        provider_id: &str,
        config: Value,
    ) -> String {
        self.post(
            &format!("/{}/components", realm.name),
            &json!({
                "name": name,
                "providerId": provider_id,
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm.id,
                "config": config,
            }),
        )
        .await
        .expect("a Location header")
    }

    /// The realm's keys (`GET /admin/realms/{realm}/keys`): `(active, keys)`, where `active`
    /// maps an algorithm to the kid Keycloak signs with, and each key has `kid`, `providerId`,
    /// `algorithm`, `use`, `status`.
    pub async fn keys(&self, realm: &str) -> (Map<String, Value>, Vec<Value>) {
        let keys = self.get(&format!("/{realm}/keys")).await;
        (
            keys["active"].as_object().unwrap().clone(),
            keys["keys"].as_array().unwrap().clone(),
        )
    }

    /// The internal id of client `client_id` in `realm`.
    pub async fn client_uuid(&self, realm: &str, client_id: &str) -> String {
        let found = self
            .get(&format!("/{realm}/clients?clientId={client_id}"))
            .await;
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{client_id}: {found:?}");
        found[0]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a confidential client with only the client_credentials grant, the
    /// `agentcube-api` audience mapper of the realm file's clients, and extra `attributes`.
    pub async fn create_service_client(
        &self,
        realm: &str,
        client_id: &str,
        secret: &str,
        attributes: Value,
    ) {
        self.post(
            &format!("/{realm}/clients"),
            &json!({
                "clientId": client_id,
                "enabled": true,
                "protocol": "openid-connect",
                "publicClient": false,
                "clientAuthenticatorType": "client-secret",
                "secret": secret,
                "standardFlowEnabled": false,
                "implicitFlowEnabled": false,
                "directAccessGrantsEnabled": false,
                "serviceAccountsEnabled": true,
                "attributes": attributes,
                "protocolMappers": [{
                    "name": "agentcube-api-audience",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "consentRequired": false,
                    "config": {
                        "included.custom.audience": "agentcube-api",
                        "access.token.claim": "true",
                        "id.token.claim": "false",
                    },
                }],
            }),
        )
        .await;
    }

    /// The names of the realm roles mapped directly (not through composites) to the service
    /// account user of `client_id`.
    pub async fn service_account_direct_realm_roles(
        &self,
        realm: &str,
        client_id: &str,
    ) -> Vec<String> {
        let client = self.client_uuid(realm, client_id).await;
        let user = self
            .get(&format!("/{realm}/clients/{client}/service-account-user"))
            .await;
        self.direct_realm_roles(realm, user["id"].as_str().unwrap())
            .await
    }

    /// The names of the realm roles mapped directly to user `user_id`.
    pub async fn direct_realm_roles(&self, realm: &str, user_id: &str) -> Vec<String> {
        self.get(&format!("/{realm}/users/{user_id}/role-mappings/realm"))
            .await
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The id of user `username` in `realm`.
    pub async fn user_id(&self, realm: &str, username: &str) -> String {
        let found = self
            .get(&format!("/{realm}/users?username={username}&exact=true"))
            .await;
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{username}: {found:?}");
        found[0]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a user with a password (and a verified email) in `realm`; returns
    /// `(username, password)`.
    pub async fn create_user(&self, realm: &str) -> (String, String) {
        let suffix = random_hex(6);
        let username = format!("user-{suffix}");
        let password = format!("pw-{suffix}-Secret!");
        self.post(
            &format!("/{realm}/users"),
            &json!({
                "username": username,
                "enabled": true,
                "email": format!("{username}@example.com"),
                "emailVerified": true,
                "firstName": "Test",
                "lastName": "User",
                "requiredActions": [],
                "credentials": [{"type": "password", "value": password, "temporary": false}],
            }),
        )
        .await;
        (username, password)
    }
}

/// Fetches the JWKS of `issuer` directly (`{issuer}/protocol/openid-connect/certs`).
pub async fn jwks(issuer: &str) -> Vec<Value> {
    let jwks: Value = reqwest::get(format!("{issuer}/protocol/openid-connect/certs"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// the user's browser

/// A form in an HTML page: its action and the values of its hidden inputs.
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

fn unescape(value: &str) -> String {
    value
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The first form containing `marker` (e.g. `name="username"`).
fn find_form(html: &str, marker: &str) -> Option<Form> {
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let end = rest[start..]
            .find("</form>")
            .map_or(rest.len(), |e| start + e);
        let form = &rest[start..end];
        if form.contains(marker) {
            let tag_end = form.find('>').unwrap();
            let action = attribute(&form[..tag_end], "action")?;
            let mut fields = Vec::new();
            let mut inputs = form;
            while let Some(i) = inputs.find("<input") {
                let close = inputs[i..].find('>').map_or(inputs.len(), |c| i + c);
                let tag = &inputs[i..close];
                if let (Some(name), Some("hidden")) =
                    (attribute(tag, "name"), attribute(tag, "type").as_deref())
                {
                    fields.push((name, attribute(tag, "value").unwrap_or_default()));
                }
                inputs = &inputs[close..];
            }
            return Some(Form { action, fields });
        }
        rest = &rest[end..];
    }
    None
}

/// Plays the user's browser from `start`: logs in as `user`, enters the device `user_code` if
/// asked, accepts a consent screen if shown, and follows redirects. Stops at a redirect to
/// `stop_at` (which it then requests, reaching the loopback listener) or at a page without a
/// form it knows, whose HTML it returns.
pub async fn browse(
    start: &str,
    (username, password): (&str, &str),
    user_code: Option<&str>,
    stop_at: Option<&str>,
) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut next = browser.get(start);
    let mut logged_in = false;
    for _ in 0..20 {
        let response = next.send().await.unwrap();
        let url = response.url().clone();
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers()["location"].to_str().unwrap();
            let location = url.join(location).unwrap();
            if stop_at.is_some_and(|prefix| location.as_str().starts_with(prefix)) {
                let done = reqwest::get(location).await.unwrap();
                return done.text().await.unwrap();
            }
            next = browser.get(location);
            continue;
        }
        let html = response.text().await.unwrap();
        assert!(status.is_success(), "{status} at {url}: {html}");
        if let Some(form) = find_form(&html, "name=\"username\"") {
            assert!(
                !logged_in,
                "login form shown twice (wrong password?): {html}"
            );
            logged_in = true;
            let mut fields = form.fields;
            fields.push(("username".into(), username.into()));
            fields.push(("password".into(), password.into()));
            next = browser.post(url.join(&form.action).unwrap()).form(&fields);
        } else if let Some(form) = find_form(&html, "name=\"device_user_code\"") {
            let mut fields = form.fields;
            fields.push((
                "device_user_code".into(),
                user_code.expect("a user code").into(),
            ));
            next = browser.post(url.join(&form.action).unwrap()).form(&fields);
        } else if let Some(form) = find_form(&html, "name=\"accept\"") {
            let mut fields = form.fields;
            fields.push(("accept".into(), "Yes".into()));
            next = browser.post(url.join(&form.action).unwrap()).form(&fields);
        } else {
            return html;
        }
    }
    panic!("too many steps in the browser");
}

/// Logs `user` in to the public client `agentcube-cli` of the realm of `issuer` with the
/// authorization code flow + PKCE (`AuthorizationCodeFlow::login_on_loopback`, scope
/// `openid`), the browser played by [`browse`]. Returns the access, ID and refresh tokens.
#[cfg(feature = "client")]
pub async fn login_cli(issuer: &str, user: &(String, String)) -> agentcube_oidc::client::Tokens {
    use agentcube_oidc::client::AuthorizationCodeFlow;

    let flow = AuthorizationCodeFlow::builder("agentcube-cli")
        .issuer(issuer)
        .build()
        .unwrap();
    let mut browser = None;
    let tokens = flow
        .login_on_loopback(Duration::from_secs(60), |url| {
            let redirect_uri = url
                .query_pairs()
                .find(|(name, _)| name == "redirect_uri")
                .map(|(_, value)| value.into_owned())
                .expect("the authorization url names its redirect_uri");
            let (url, user) = (url.to_string(), user.clone());
            browser = Some(tokio::spawn(async move {
                browse(&url, (&user.0, &user.1), None, Some(&redirect_uri)).await
            }));
        })
        .await;
    let page = browser.expect("the url was opened").await.unwrap();
    let tokens = tokens.unwrap_or_else(|e| panic!("login failed: {e}; last page: {page}"));
    assert!(page.contains("Signed in"), "{page}");
    tokens
}

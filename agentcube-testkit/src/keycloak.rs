//! A real Keycloak for the tests that run against one: the environment
//! `scripts/with-services.sh` exports, the Admin REST API, test realms imported from the
//! production realm file, test users, client-credentials grants, and a scripted browser for
//! the login pages.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed expectation is a failed test"
)]

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// The production realm, exactly as Keycloak imports it in `scripts/keycloak.sh`.
pub const REALM_FILE: &str = include_str!("../../deploy/keycloak/agentcube-realm.json");

/// How long one request to Keycloak may take before the test fails instead of hanging.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client of every request here: a loopback client (the browser follows redirects
/// itself, keeping its cookies).
fn http_client() -> reqwest::Client {
    crate::http::loopback_client(REQUEST_TIMEOUT)
}

/// The Keycloak started by `scripts/with-services.sh`. `Debug` leaves the password and the
/// secrets out.
pub struct Keycloak {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    /// The production realm's name (`agentcube`).
    pub realm: String,
    /// `{base}/realms/{realm}`.
    pub issuer: String,
    /// The master realm's bootstrap admin.
    pub admin_user: String,
    /// Its password.
    pub admin_password: String,
    /// The secret of `agentcube-app` in the production realm.
    pub app_secret: String,
    /// The secret of `agentcube-admin` in the production realm.
    pub admin_secret: String,
    /// The secret of `agentcube-router` in the production realm.
    pub router_secret: String,
}

/// The Keycloak at `AGENTCUBE_KEYCLOAK_URL`, or `None` (skip, with a notice naming `test`)
/// outside CI; under CI (`CI` set) a missing Keycloak fails the test
/// ([`services::required`](crate::services::required)).
///
/// The realm (`AGENTCUBE_KEYCLOAK_REALM`), the bootstrap admin
/// (`AGENTCUBE_KEYCLOAK_ADMIN_USER`, `AGENTCUBE_KEYCLOAK_ADMIN_PASSWORD`) and the client secrets
/// (`KC_CLIENT_APP_SECRET`, `KC_CLIENT_ADMIN_SECRET`, `KC_CLIENT_ROUTER_SECRET`) default to the
/// development values `scripts/keycloak.sh` starts Keycloak with, so a test also runs against a
/// Keycloak started by hand with that script.
pub fn keycloak(test: &str) -> Option<Keycloak> {
    let base = crate::services::required(test, "AGENTCUBE_KEYCLOAK_URL")?;
    let var = |name: &str, default: &str| {
        crate::services::env_value(name).unwrap_or_else(|| default.to_owned())
    };
    let base = base.trim_end_matches('/').to_owned();
    let realm = var("AGENTCUBE_KEYCLOAK_REALM", "agentcube");
    Some(Keycloak {
        issuer: format!("{base}/realms/{realm}"),
        base,
        realm,
        admin_user: var("AGENTCUBE_KEYCLOAK_ADMIN_USER", "admin"),
        admin_password: var("AGENTCUBE_KEYCLOAK_ADMIN_PASSWORD", "admin-dev"),
        app_secret: var("KC_CLIENT_APP_SECRET", "app-secret-dev"),
        admin_secret: var("KC_CLIENT_ADMIN_SECRET", "admin-secret-dev"),
        router_secret: var("KC_CLIENT_ROUTER_SECRET", "router-secret-dev"),
    })
}

impl fmt::Debug for Keycloak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keycloak")
            .field("base", &self.base)
            .field("realm", &self.realm)
            .field("admin_user", &self.admin_user)
            .finish_non_exhaustive()
    }
}

impl Keycloak {
    /// The issuer of realm `realm` of this Keycloak.
    pub fn issuer_of(&self, realm: &str) -> String {
        format!("{}/realms/{realm}", self.base)
    }

    /// An Admin REST API client logged in as the bootstrap admin.
    pub fn admin(&self) -> Admin {
        Admin {
            http: http_client(),
            base: self.base.clone(),
            user: self.admin_user.clone(),
            password: self.admin_password.clone(),
            token: Mutex::new(None),
        }
    }
}

/// Sends `request` and reads the JSON body of its 2xx answer; any other answer fails the test,
/// naming `what` and showing the status and the body.
async fn ok_json(what: &str, request: reqwest::RequestBuilder) -> Value {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{what}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut random = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// token endpoint

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
    let request = http_client()
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .form(&form);
    ok_json(client, request).await
}

/// A client_credentials access token of `client` in the realm of `issuer`.
pub async fn client_token(issuer: &str, client: &str, secret: &str) -> String {
    client_credentials_grant(issuer, client, secret, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Admin REST API

/// A client of Keycloak's Admin REST API, as the master realm's bootstrap admin (`admin-cli`).
///
/// The master realm's access tokens live 60 s; a token is reused for 30 s, then a new one is
/// fetched. `Debug` leaves the password and the token out.
pub struct Admin {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    token: Mutex<Option<(Instant, String)>>,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A realm imported from the production realm file by [`Admin::import_realm_copy`].
#[derive(Debug)]
pub struct TestRealm {
    /// Its name.
    pub name: String,
    /// `{base}/realms/{name}`.
    pub issuer: String,
    /// The fresh secret of `agentcube-app`.
    pub app_secret: String,
    /// The fresh secret of `agentcube-admin`.
    pub admin_secret: String,
    /// The fresh secret of `agentcube-router`.
    pub router_secret: String,
}

impl Admin {
    async fn token(&self) -> String {
        if let Some((at, token)) = &*self.token.lock().unwrap()
            && at.elapsed() < Duration::from_secs(30)
        {
            return token.clone();
        }
        let request = self
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
            ]);
        let response = ok_json("the admin login", request).await;
        let token = response["access_token"].as_str().unwrap().to_owned();
        *self.token.lock().unwrap() = Some((Instant::now(), token.clone()));
        token
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/realms{path}", self.base)
    }

    /// `method /admin/realms{path}` with the admin token (and `body` as JSON); answers `expected`
    /// with the last segment of the `Location` header (if any) and the body, or any other
    /// status as an error naming the request.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        expected: u16,
    ) -> Result<(Option<String>, String), String> {
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
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
        let text = response.text().await.unwrap();
        if status == expected {
            Ok((location, text))
        } else {
            Err(format!("{method} {path}: {status} {text}"))
        }
    }

    /// [`call`](Self::call), failing the test on any other status.
    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        expected: u16,
    ) -> (Option<String>, String) {
        self.call(method, path, body, expected)
            .await
            .unwrap_or_else(|failed| panic!("{failed}"))
    }

    /// `GET /admin/realms{path}` (path empty or starting with `/`); expects 200.
    pub async fn get(&self, path: &str) -> Value {
        let (_, text) = self.expect(reqwest::Method::GET, path, None, 200).await;
        serde_json::from_str(&text).unwrap()
    }

    /// `POST /admin/realms{path}` with a JSON body; expects 201 and returns the id at the end
    /// of the `Location` header, if any.
    pub async fn post(&self, path: &str, body: &Value) -> Option<String> {
        self.expect(reqwest::Method::POST, path, Some(body), 201)
            .await
            .0
    }

    /// `PUT /admin/realms{path}` with a JSON body; expects 204.
    pub async fn put(&self, path: &str, body: &Value) {
        self.expect(reqwest::Method::PUT, path, Some(body), 204)
            .await;
    }

    /// `DELETE /admin/realms{path}`; expects 204.
    pub async fn delete(&self, path: &str) {
        if let Err(failed) = self.try_delete(path).await {
            panic!("{failed}");
        }
    }

    /// `DELETE /admin/realms{path}`, for a cleanup that must not hide a test's own verdict: an
    /// answer other than 204 is an error, not a panic.
    ///
    /// # Errors
    /// The status and body of any other answer.
    pub async fn try_delete(&self, path: &str) -> Result<(), String> {
        self.call(reqwest::Method::DELETE, path, None, 204)
            .await
            .map(drop)
    }

    /// Imports a copy of `deploy/keycloak/agentcube-realm.json` as realm `{prefix}-{random}`,
    /// with fresh client secrets in place of the `${...}` placeholders. The production realm is
    /// not touched; tests that change realm keys or settings work in such a copy so that tests
    /// running concurrently against `agentcube` are not disturbed. No Router receives its
    /// back-channel logouts (they go to port 9, discard).
    pub async fn create_realm_copy(&self, keycloak: &Keycloak, prefix: &str) -> TestRealm {
        let name = format!("{prefix}-{}", random_hex(4));
        self.import_realm_copy(keycloak, &name, "http://127.0.0.1:9")
            .await
    }

    /// Imports a copy of `deploy/keycloak/agentcube-realm.json` as realm `name`, with
    /// `router_url` for `${KC_ROUTER_URL}` (where Keycloak posts back-channel logouts, as
    /// `scripts/keycloak.sh` substitutes it for the production realm) and fresh client secrets
    /// in place of the `${...}` placeholders.
    pub async fn import_realm_copy(
        &self,
        keycloak: &Keycloak,
        name: &str,
        router_url: &str,
    ) -> TestRealm {
        let realm_file = REALM_FILE.replace("${KC_ROUTER_URL}", router_url);
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
        TestRealm {
            issuer: keycloak.issuer_of(name),
            name: name.to_owned(),
            app_secret,
            admin_secret,
            router_secret,
        }
    }

    /// Ends every session of user `user_id` in `realm`
    /// (`POST /admin/realms/{realm}/users/{id}/logout`; expects 204). Keycloak then sends the
    /// back-channel logouts of the clients the user was signed in to.
    pub async fn logout_user(&self, realm: &str, user_id: &str) {
        let path = format!("/{realm}/users/{user_id}/logout");
        self.expect(reqwest::Method::POST, &path, None, 204).await;
    }

    /// Adds a key provider component to realm `realm`; returns its id. A provider with a higher
    /// `priority` than the realm's own makes Keycloak sign new tokens with its key at once.
    pub async fn add_key_provider(
        &self,
        realm: &str,
        name: &str,
        provider_id: &str,
        config: Value,
    ) -> String {
        let realm_id = self.get(&format!("/{realm}")).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.post(
            &format!("/{realm}/components"),
            &json!({
                "name": name,
                "providerId": provider_id,
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm_id,
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
        self.only_id(&format!("/{realm}/clients?clientId={client_id}"))
            .await
    }

    /// The `id` of the one object a search at `path` finds; any other count fails the test.
    async fn only_id(&self, path: &str) -> String {
        let found = self.get(path).await;
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{path}: {found:?}");
        found[0]["id"].as_str().unwrap().to_owned()
    }

    /// Creates a confidential client with only the client_credentials grant, the
    /// `agentcube-api` audience mapper of the realm file's clients, and extra `attributes`;
    /// returns its internal id.
    pub async fn create_service_client(
        &self,
        realm: &str,
        client_id: &str,
        secret: &str,
        attributes: Value,
    ) -> String {
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
        .await
        .expect("a Location header")
    }

    /// The id of the service-account user of the client with internal id `client_uuid`.
    pub async fn service_account_user_id(&self, realm: &str, client_uuid: &str) -> String {
        self.get(&format!(
            "/{realm}/clients/{client_uuid}/service-account-user"
        ))
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The names of the realm roles mapped directly (not through composites) to the service
    /// account user of `client_id`.
    pub async fn service_account_direct_realm_roles(
        &self,
        realm: &str,
        client_id: &str,
    ) -> Vec<String> {
        let client = self.client_uuid(realm, client_id).await;
        let user = self.service_account_user_id(realm, &client).await;
        self.direct_realm_roles(realm, &user).await
    }

    /// Maps the realm roles `roles` to user `user_id` (expects 204).
    pub async fn add_realm_roles(&self, realm: &str, user_id: &str, roles: &[&str]) {
        let path = format!("/{realm}/users/{user_id}/role-mappings/realm");
        let body = self.realm_roles(realm, roles).await;
        self.expect(reqwest::Method::POST, &path, Some(&body), 204)
            .await;
    }

    /// Removes the direct mappings of the realm roles `roles` from user `user_id` (expects 204).
    pub async fn remove_realm_roles(&self, realm: &str, user_id: &str, roles: &[&str]) {
        let path = format!("/{realm}/users/{user_id}/role-mappings/realm");
        let body = self.realm_roles(realm, roles).await;
        self.expect(reqwest::Method::DELETE, &path, Some(&body), 204)
            .await;
    }

    /// The representations of the realm roles `roles`, as role mappings take them.
    async fn realm_roles(&self, realm: &str, roles: &[&str]) -> Value {
        let mut found = Vec::with_capacity(roles.len());
        for role in roles {
            found.push(self.get(&format!("/{realm}/roles/{role}")).await);
        }
        Value::Array(found)
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
        self.only_id(&format!("/{realm}/users?username={username}&exact=true"))
            .await
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

/// Fetches the discovery document of `issuer` directly (`{issuer}/.well-known/openid-configuration`).
pub async fn discovery(issuer: &str) -> Value {
    let request = http_client().get(format!("{issuer}/.well-known/openid-configuration"));
    ok_json("the discovery document", request).await
}

/// Fetches the JWKS of `issuer` directly (`{issuer}/protocol/openid-connect/certs`).
pub async fn jwks(issuer: &str) -> Vec<Value> {
    let request = http_client().get(format!("{issuer}/protocol/openid-connect/certs"));
    let jwks = ok_json("the JWKS", request).await;
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
    let browser = crate::http::loopback_client_builder(REQUEST_TIMEOUT)
        .cookie_store(true)
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
                // The loopback listener of the login, without the browser's cookies.
                let done = http_client().get(location).send().await.unwrap();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_is_found_by_a_marker_with_its_action_and_hidden_fields_unescaped() {
        let html = r#"<html><form id="other" action="/nope"><input name="q"></form>
            <form id="kc-form-login" action="https://kc/login?a=1&amp;b=&quot;2&quot;" method="post">
            <input type="hidden" name="session_code" value="x&lt;y">
            <input type="hidden" name="empty">
            <input name="username" type="text">
            </form></html>"#;
        let form = find_form(html, r#"name="username""#).unwrap();
        assert_eq!(form.action, r#"https://kc/login?a=1&b="2""#);
        assert_eq!(
            form.fields,
            [
                ("session_code".to_owned(), "x<y".to_owned()),
                ("empty".to_owned(), String::new())
            ]
        );
        assert!(find_form(html, r#"name="device_user_code""#).is_none());
        // A form without an action is no form to post.
        assert!(find_form(r#"<form><input name="username"></form>"#, "username").is_none());
    }

    #[test]
    fn debug_leaves_secrets_out() {
        let keycloak = Keycloak {
            base: "http://127.0.0.1:1".into(),
            realm: "agentcube".into(),
            issuer: "http://127.0.0.1:1/realms/agentcube".into(),
            admin_user: "admin".into(),
            admin_password: "hunter2-password".into(),
            app_secret: "hunter2-app".into(),
            admin_secret: "hunter2-admin".into(),
            router_secret: "hunter2-router".into(),
        };
        let admin = keycloak.admin();
        *admin.token.lock().unwrap() = Some((Instant::now(), "hunter2-token".into()));
        for shown in [format!("{keycloak:?}"), format!("{admin:?}")] {
            assert!(shown.contains("127.0.0.1:1"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }
}

//! The client flows against a real Keycloak 26 with the `agentcube` realm
//! (`deploy/keycloak/agentcube-realm.json`), started by `scripts/with-services.sh`:
//!
//! ```sh
//! scripts/with-services.sh cargo test -p agentcube-oidc --test client_keycloak
//! ```
//!
//! Without `AGENTCUBE_KEYCLOAK_URL` each test prints a skip notice and passes, except under CI
//! (`CI` set), where a missing Keycloak is a failure.
//!
//! The browser steps of the interactive flows are played over HTTP: a `reqwest` client with a
//! cookie store loads the login page, posts the form, and follows the redirects to the loopback
//! listener (or through the device pages).
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use agentcube_oidc::client::{
    AccessToken, AuthorizationCodeFlow, ClientAuthMethod, ClientCredentials, DeviceFlow,
    LoopbackListener, TokenSource,
};
use agentcube_oidc::{OidcConfig, OidcVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

struct Keycloak {
    base: String,
    issuer: String,
    admin_user: String,
    admin_password: String,
    app_secret: String,
}

/// The Keycloak from the environment, or `None` (skip) outside CI.
fn keycloak(test: &str) -> Option<Keycloak> {
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
        admin_user: var("AGENTCUBE_KEYCLOAK_ADMIN_USER"),
        admin_password: var("AGENTCUBE_KEYCLOAK_ADMIN_PASSWORD"),
        app_secret: var("KC_CLIENT_APP_SECRET"),
    })
}

/// The (unverified) payload of a JWT.
fn payload(token: &AccessToken) -> Map<String, Value> {
    let part = token.secret().split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn audiences(payload: &Map<String, Value>) -> Vec<String> {
    match &payload["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("unexpected aud {other}"),
    }
}

/// Verifies the token with this crate's verifier (defaults: audience `agentcube-api`, RS256).
async fn verify(keycloak: &Keycloak, token: &AccessToken) -> agentcube_auth_core::Principal {
    let verifier = OidcVerifier::new(OidcConfig::new(&keycloak.issuer)).unwrap();
    verifier.refresh_keys().await.unwrap();
    verifier.verify(token.secret()).await.unwrap()
}

#[tokio::test]
async fn client_credentials_for_agentcube_app() {
    let Some(keycloak) = keycloak("client_credentials_for_agentcube_app") else {
        return;
    };
    let source = ClientCredentials::builder("agentcube-app", &keycloak.app_secret)
        .issuer(&keycloak.issuer)
        .build()
        .unwrap();
    let token = source.token().await.unwrap();
    let claims = payload(&token);
    assert!(
        audiences(&claims).contains(&"agentcube-api".to_owned()),
        "{claims:?}"
    );
    assert_eq!(claims["azp"], "agentcube-app");
    assert_eq!(claims["iss"], keycloak.issuer.as_str());
    assert_eq!(claims["typ"], "Bearer");
    // Cached: the same token again.
    assert_eq!(source.token().await.unwrap(), token);

    let principal = verify(&keycloak, &token).await;
    assert_eq!(principal.subject(), claims["sub"].as_str().unwrap());
    assert!(principal.roles().contains_realm("sandbox:invoke"));

    // client_secret_post works too.
    let post = ClientCredentials::builder("agentcube-app", &keycloak.app_secret)
        .issuer(&keycloak.issuer)
        .auth_method(ClientAuthMethod::Post)
        .build()
        .unwrap();
    assert_eq!(
        payload(&post.token().await.unwrap())["azp"],
        "agentcube-app"
    );
}

#[tokio::test]
async fn wrong_secret_is_a_clear_error() {
    let Some(keycloak) = keycloak("wrong_secret_is_a_clear_error") else {
        return;
    };
    let secret = "definitely-not-the-secret";
    let source = ClientCredentials::builder("agentcube-app", secret)
        .issuer(&keycloak.issuer)
        .build()
        .unwrap();
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "oauth_error");
    assert!(
        matches!(
            err.oauth_error(),
            Some("invalid_client" | "unauthorized_client")
        ),
        "{err}"
    );
    let text = format!("{err} {err:?}");
    assert!(!text.contains(secret), "{text}");
    eprintln!("wrong secret: {err}");
}

// ---------------------------------------------------------------------------------------------
// interactive flows

/// Creates a user with a password in the realm through the Admin REST API.
async fn create_user(keycloak: &Keycloak) -> (String, String) {
    let http = reqwest::Client::new();
    let admin: Value = http
        .post(format!(
            "{}/realms/master/protocol/openid-connect/token",
            keycloak.base
        ))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", &keycloak.admin_user),
            ("password", &keycloak.admin_password),
        ])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin_token = admin["access_token"].as_str().unwrap();
    let mut random = [0u8; 6];
    aws_lc_rs::rand::fill(&mut random).unwrap();
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let username = format!("user-{suffix}");
    let password = format!("pw-{suffix}-Secret!");
    let realm = keycloak.issuer.rsplit('/').next().unwrap();
    let response = http
        .post(format!("{}/admin/realms/{realm}/users", keycloak.base))
        .bearer_auth(admin_token)
        .json(&json!({
            "username": username,
            "enabled": true,
            "email": format!("{username}@example.com"),
            "emailVerified": true,
            "firstName": "Test",
            "lastName": "User",
            "requiredActions": [],
            "credentials": [{"type": "password", "value": password, "temporary": false}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    (username, password)
}

/// A form in an HTML page: its action and the values of its named inputs.
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
async fn browse(
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

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh() {
    let Some(keycloak) = keycloak("authorization_code_with_pkce_then_refresh") else {
        return;
    };
    let user = create_user(&keycloak).await;
    let flow = AuthorizationCodeFlow::builder("agentcube-cli")
        .issuer(&keycloak.issuer)
        .build()
        .unwrap();
    let listener = LoopbackListener::bind().await.unwrap();
    let redirect_uri = listener.redirect_uri();
    let request = flow.authorization_request(&redirect_uri).await.unwrap();
    let (code, page) = tokio::join!(
        listener.wait_for_code(&request, Duration::from_secs(60)),
        browse(
            request.url().as_str(),
            (&user.0, &user.1),
            None,
            Some(&redirect_uri)
        ),
    );
    assert!(page.contains("Signed in"), "{page}");
    let code = code.unwrap();
    let tokens = flow.exchange_code(&request, &code).await.unwrap();
    let claims = payload(tokens.access_token());
    assert_eq!(claims["azp"], "agentcube-cli");
    assert_eq!(claims["preferred_username"], user.0.as_str());
    assert!(
        audiences(&claims).contains(&"agentcube-api".to_owned()),
        "{claims:?}"
    );
    assert!(
        tokens.id_token().is_some(),
        "scope openid gives an ID token"
    );
    let principal = verify(&keycloak, tokens.access_token()).await;
    assert_eq!(principal.username(), Some(user.0.as_str()));

    // Refresh-token use.
    let source = flow.token_source(&tokens).unwrap();
    assert_eq!(&source.token().await.unwrap(), tokens.access_token());
    source.invalidate();
    let refreshed = source.token().await.unwrap();
    assert_ne!(&refreshed, tokens.access_token());
    let refreshed_claims = payload(&refreshed);
    assert_eq!(refreshed_claims["sub"], claims["sub"]);
    assert_eq!(refreshed_claims["azp"], "agentcube-cli");
    verify(&keycloak, &refreshed).await;

    // The code is single-use (and Keycloak then revokes the session it created, so this
    // comes last).
    let again = flow.exchange_code(&request, &code).await.unwrap_err();
    assert_eq!(again.oauth_error(), Some("invalid_grant"), "{again}");
}

#[tokio::test]
async fn device_flow_then_refresh() {
    let Some(keycloak) = keycloak("device_flow_then_refresh") else {
        return;
    };
    let user = create_user(&keycloak).await;
    let flow = DeviceFlow::builder("agentcube-cli")
        .issuer(&keycloak.issuer)
        .build()
        .unwrap();
    let authorization = flow.start().await.unwrap();
    assert!(!authorization.user_code().is_empty());
    assert!(
        authorization
            .verification_uri()
            .starts_with(&keycloak.issuer)
    );
    let complete = authorization
        .verification_uri_complete()
        .expect("keycloak sends verification_uri_complete")
        .to_owned();
    let user_code = authorization.user_code().to_owned();
    let (tokens, page) = tokio::join!(
        flow.poll(&authorization),
        browse(&complete, (&user.0, &user.1), Some(&user_code), None),
    );
    let tokens = tokens.unwrap_or_else(|e| panic!("{e}; last page: {page}"));
    let claims = payload(tokens.access_token());
    assert_eq!(claims["azp"], "agentcube-cli");
    assert_eq!(claims["preferred_username"], user.0.as_str());
    assert!(audiences(&claims).contains(&"agentcube-api".to_owned()));
    verify(&keycloak, tokens.access_token()).await;

    let source = flow.token_source(&tokens).unwrap();
    source.invalidate();
    let refreshed = source.token().await.unwrap();
    assert_ne!(&refreshed, tokens.access_token());
    assert_eq!(payload(&refreshed)["sub"], claims["sub"]);
}

#[tokio::test]
async fn device_flow_is_refused_for_a_client_without_it() {
    let Some(keycloak) = keycloak("device_flow_is_refused_for_a_client_without_it") else {
        return;
    };
    let flow = DeviceFlow::builder("agentcube-app")
        .client_secret(&keycloak.app_secret)
        .issuer(&keycloak.issuer)
        .build()
        .unwrap();
    let err = flow.start().await.unwrap_err();
    assert_eq!(err.code(), "oauth_error", "{err}");
    eprintln!("device flow for agentcube-app: {err}");
}

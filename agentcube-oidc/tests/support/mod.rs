//! Helpers shared by the tests against a real Keycloak (`keycloak.rs`, `client_keycloak.rs`):
//! what every crate's Keycloak tests need (the environment, the Admin REST API, test realms,
//! test users, the scripted browser) comes from `agentcube_testkit::keycloak`; here are the
//! token readers and the login of `agentcube-cli` through this crate's own client.
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

use std::time::Duration;

pub use agentcube_testkit::keycloak::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// token contents

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

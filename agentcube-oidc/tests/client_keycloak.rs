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

mod support;

use std::time::Duration;

use agentcube_oidc::client::{
    AccessToken, AuthorizationCodeFlow, ClientAuthMethod, ClientCredentials, DeviceFlow,
    LoopbackListener, TokenSource,
};
use agentcube_oidc::{OidcConfig, OidcVerifier};
use serde_json::{Map, Value};
use support::{Keycloak, audiences, browse, keycloak};

/// The (unverified) payload of a JWT.
fn payload(token: &AccessToken) -> Map<String, Value> {
    support::payload_of(token.secret())
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
    keycloak.admin().create_user(&keycloak.realm).await
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

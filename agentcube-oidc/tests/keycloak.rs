//! The verifier against a real Keycloak 26 with the `agentcube` realm
//! (`deploy/keycloak/agentcube-realm.json`), started by `scripts/with-services.sh`:
//!
//! ```sh
//! scripts/with-services.sh cargo test -p agentcube-oidc --test keycloak
//! ```
//!
//! Without `AGENTCUBE_KEYCLOAK_URL` each test prints a skip notice and passes, except under CI
//! (`CI` set), where a missing Keycloak is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use agentcube_auth_core::jose::AlgorithmSet;
use agentcube_auth_core::{AuthError, ErrorCode, TokenVerifier, TypeLocation};
use agentcube_oidc::{MultiIssuerVerifier, OidcConfig, OidcVerifier, RefreshOutcome};
use serde_json::Value;

struct Keycloak {
    issuer: String,
    app_secret: String,
    admin_secret: String,
    router_secret: String,
}

fn keycloak(test: &str) -> Option<Keycloak> {
    let Ok(base) = std::env::var("AGENTCUBE_KEYCLOAK_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: AGENTCUBE_KEYCLOAK_URL is not set; under CI the Keycloak tests must run \
             (use scripts/with-services.sh)"
        );
        eprintln!("skipping {test}: AGENTCUBE_KEYCLOAK_URL is not set");
        return None;
    };
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"));
    let realm = std::env::var("AGENTCUBE_KEYCLOAK_REALM").unwrap_or_else(|_| "agentcube".into());
    Some(Keycloak {
        issuer: format!("{}/realms/{realm}", base.trim_end_matches('/')),
        app_secret: var("KC_CLIENT_APP_SECRET"),
        admin_secret: var("KC_CLIENT_ADMIN_SECRET"),
        router_secret: var("KC_CLIENT_ROUTER_SECRET"),
    })
}

/// The token endpoint's JSON answer to a client_credentials grant.
async fn grant(kc: &Keycloak, client: &str, secret: &str, scope: Option<&str>) -> Value {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let response = reqwest::Client::new()
        .post(format!("{}/protocol/openid-connect/token", kc.issuer))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

async fn access_token(kc: &Keycloak, client: &str, secret: &str) -> String {
    grant(kc, client, secret, None).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn keycloak_access_tokens_verify_with_the_defaults() {
    let Some(kc) = keycloak("keycloak_access_tokens_verify_with_the_defaults") else {
        return;
    };
    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    assert!(!verifier.is_ready());
    // Keycloak publishes an RSA-OAEP encryption key beside its signing keys: skipped, not fatal.
    match verifier.refresh_keys().await.unwrap() {
        RefreshOutcome::Updated { keys, skipped } => {
            assert!(keys >= 1, "{keys}");
            assert!(skipped >= 1, "the enc key is skipped ({skipped})");
        }
        other => panic!("{other:?}"),
    }

    let app = verifier
        .verify(&access_token(&kc, "agentcube-app", &kc.app_secret).await)
        .await
        .unwrap();
    assert_eq!(app.issuer(), kc.issuer);
    assert!(app.is_service_account());
    assert_eq!(app.client_id(), Some("agentcube-app"));
    assert!(app.roles().contains_realm("sandbox:invoke"));
    assert!(!app.roles().contains_realm("admin"));

    // Keycloak expands composites: admin implies the others.
    let admin = verifier
        .verify(&access_token(&kc, "agentcube-admin", &kc.admin_secret).await)
        .await
        .unwrap();
    for role in ["admin", "sandbox:manage", "sandbox:invoke"] {
        assert!(admin.roles().contains_realm(role), "{role}");
    }

    // The router's own service account has no agentcube-api audience.
    let router = access_token(&kc, "agentcube-router", &kc.router_secret).await;
    // (Keycloak then sends no `aud` at all, or only others.)
    let err = verifier.verify(&router).await.unwrap_err();
    assert!(
        err == AuthError::MissingClaim("aud".into()) || err.code() == ErrorCode::AudienceMismatch,
        "{err:?}"
    );

    let stats = verifier.stats();
    assert_eq!(stats.keys.discovery_fetches, 1);
    assert_eq!(stats.keys.fetches_ok, 1, "no refresh after the prefetch");
    assert_eq!(stats.accepted, 2);
}

#[tokio::test]
async fn keycloak_rejections() {
    let Some(kc) = keycloak("keycloak_rejections") else {
        return;
    };
    let verifier = OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap();
    let token = access_token(&kc, "agentcube-app", &kc.app_secret).await;
    verifier.verify(&token).await.unwrap();

    // A tampered payload.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["realm_access"]["roles"] = serde_json::json!(["admin"]);
        b64.encode(claims.to_string())
    };
    parts[1] = &forged_payload;
    assert_eq!(
        verifier.verify(&parts.join(".")).await.unwrap_err(),
        AuthError::InvalidSignature
    );

    // The issuer with a trailing slash is another issuer.
    let slash = OidcVerifier::new(
        OidcConfig::new(format!("{}/", kc.issuer))
            .discovery_url(format!("{}/.well-known/openid-configuration", kc.issuer)),
    )
    .unwrap();
    // Discovery says the issuer is the one without the slash: the key store refuses it.
    assert_eq!(
        slash.refresh_keys().await.unwrap_err().code(),
        "discovery_issuer_mismatch"
    );

    // An ES256-only verifier refuses Keycloak's RS256 tokens at the header.
    let es = OidcVerifier::new(
        OidcConfig::new(&kc.issuer).algorithms(AlgorithmSet::parse_list("ES256").unwrap()),
    )
    .unwrap();
    assert_eq!(
        es.verify(&token).await.unwrap_err().code(),
        ErrorCode::AlgorithmNotAllowed
    );

    // An ID token, if Keycloak issues one for this grant, is not an access token.
    let response = grant(&kc, "agentcube-app", &kc.app_secret, Some("openid")).await;
    if let Some(id_token) = response["id_token"].as_str() {
        let lax_audience = OidcVerifier::new(
            OidcConfig::new(&kc.issuer).audiences(["agentcube-api", "agentcube-app"]),
        )
        .unwrap();
        let err = lax_audience.verify(id_token).await.unwrap_err();
        assert!(
            matches!(
                err,
                AuthError::TokenTypeMismatch {
                    location: TypeLocation::Payload,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn keycloak_behind_a_multi_issuer_verifier() {
    let Some(kc) = keycloak("keycloak_behind_a_multi_issuer_verifier") else {
        return;
    };
    let other = OidcVerifier::new(OidcConfig::new("https://other.example/realms/x")).unwrap();
    let multi = MultiIssuerVerifier::new([
        other,
        OidcVerifier::new(OidcConfig::new(&kc.issuer)).unwrap(),
    ])
    .unwrap();
    let token = access_token(&kc, "agentcube-app", &kc.app_secret).await;
    let principal = TokenVerifier::verify(&multi, &token).await.unwrap();
    assert_eq!(principal.issuer(), kc.issuer);
    assert!(multi.is_ready());
    assert!(!multi.all_ready(), "the other issuer was never contacted");
}

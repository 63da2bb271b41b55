//! The test issuer as a downstream crate uses it: any issuer shape, generic tokens, production
//! defaults, its wiremock re-exported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agentcube_auth_core::ErrorCode;
use agentcube_auth_core::jose::Algorithm;
use agentcube_oidc::OidcConfig;
use agentcube_oidc::test_util::wiremock::matchers::{method, path};
use agentcube_oidc::test_util::wiremock::{Mock, ResponseTemplate};
use agentcube_oidc::test_util::{IssuerShape, MockIssuer};

#[tokio::test]
async fn every_issuer_shape_is_discovered_and_verifies_its_generic_tokens() {
    let shapes = [
        IssuerShape::KeycloakRealm("acme".into()),
        IssuerShape::Root {
            trailing_slash: true,
        },
        IssuerShape::Root {
            trailing_slash: false,
        },
        IssuerShape::Path("oauth2/default".into()),
    ];
    for shape in shapes {
        let idp = MockIssuer::builder().shape(shape.clone()).start().await;
        let issuer = idp.issuer().to_owned();
        match &shape {
            IssuerShape::Root {
                trailing_slash: true,
            } => assert!(issuer.ends_with('/')),
            IssuerShape::Root { .. } => assert!(!issuer.ends_with('/')),
            IssuerShape::Path(_) => assert!(issuer.ends_with("/oauth2/default")),
            _ => assert!(issuer.ends_with("/realms/acme")),
        }
        let verifier = idp.verifier();
        let token = idp
            .generic_token("auth0|alice", OidcConfig::DEFAULT_AUDIENCE)
            .claim("org_id", "org_1")
            .sign();
        let principal = verifier.verify(&token).await.unwrap_or_else(|e| {
            panic!("{shape:?}: {}", e.code());
        });
        assert_eq!(principal.subject(), "auth0|alice");
        assert_eq!(principal.issuer(), issuer);
        assert_eq!(idp.discovery_fetches(), 1, "{shape:?}");
        assert_eq!(idp.jwks_fetches(), 1, "{shape:?}");
        assert!(idp.jwks_url().starts_with(&idp.uri()));
    }
}

#[tokio::test]
async fn the_generic_token_holds_only_the_registered_claims() {
    let idp = MockIssuer::builder()
        .shape(IssuerShape::Root {
            trailing_slash: true,
        })
        .start()
        .await;
    let claims = idp.generic_token("bob", "api").claims_json();
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["aud", "exp", "iat", "iss", "jti", "sub"]);
    assert_eq!(claims["aud"], "api");
}

#[tokio::test]
async fn the_config_has_production_defaults() {
    // One RS256 key: RS256 only, as in production; another algorithm is not allowed even with
    // the same RSA key.
    let idp = MockIssuer::start().await;
    let verifier = idp.verifier();
    let pss = idp.token().algorithm(Algorithm::PS256).sign();
    assert_eq!(
        verifier.verify(&pss).await.unwrap_err().code(),
        ErrorCode::AlgorithmNotAllowed
    );
    // The default audience: a token for `account` only is refused.
    let account = idp.token().audience("account").sign();
    assert_eq!(
        verifier.verify(&account).await.unwrap_err().code(),
        ErrorCode::AudienceMismatch
    );
    // An issuer with an EdDSA key allows EdDSA, and only that.
    let ed = MockIssuer::builder()
        .algorithm(Algorithm::EdDSA)
        .start()
        .await;
    assert!(ed.verifier().verify(&ed.token().sign()).await.is_ok());
}

#[tokio::test]
async fn more_endpoints_mount_on_the_reexported_wiremock() {
    let idp = MockIssuer::start().await;
    Mock::given(method("POST"))
        .and(path("/custom/token"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(idp.server())
        .await;
    let answer = reqwest::Client::new()
        .post(format!("{}/custom/token", idp.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

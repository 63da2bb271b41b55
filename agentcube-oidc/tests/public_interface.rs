//! End to end through the public API only: a mock Keycloak, a verifier, tokens.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_auth_core::{ErrorCode, Role, TokenVerifier};
use agentcube_oidc::test_util::{MockIssuer, TestKey};
use agentcube_oidc::{
    CacheConfig, KeyStoreConfig, MultiIssuerVerifier, OidcConfig, OidcVerifier, RefreshOutcome,
};

#[tokio::test]
async fn keycloak_token_end_to_end() {
    let idp = MockIssuer::start().await;
    let verifier = OidcVerifier::new(OidcConfig::new(idp.issuer())).unwrap();
    assert!(!verifier.is_ready(), "no I/O before the first use");
    assert_eq!(idp.jwks_fetches() + idp.discovery_fetches(), 0);

    let token = idp
        .token()
        .subject("alice-id")
        .realm_roles(["sandbox:invoke", "admin"])
        .client_roles("other-client", ["admin"])
        .sign();
    let principal = verifier.verify(&token).await.unwrap();
    assert_eq!(principal.issuer(), idp.issuer());
    assert_eq!(principal.subject(), "alice-id");
    assert_eq!(principal.username(), Some("alice"));
    assert_eq!(principal.verified_email(), Some("alice@example.com"));
    assert_eq!(principal.client_id(), Some("agentcube-cli"));
    assert!(principal.roles().contains_realm("sandbox:invoke"));
    assert!(principal.roles().contains_realm("admin"));
    assert!(
        principal
            .roles()
            .contains(&Role::client("other-client", "admin"))
    );
    assert!(verifier.is_ready());
    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);

    // Second time: from the cache, no fetch.
    let details = verifier.verify_with_details(&token).await.unwrap();
    assert!(details.from_cache);
    assert_eq!(details.algorithm, Algorithm::RS256);
    assert_eq!(details.kid.as_deref(), Some(idp.signing_key().kid()));
    assert_eq!(&*details.key_thumbprint, idp.signing_key().thumbprint());
    assert_eq!(idp.jwks_fetches(), 1);

    let stats = verifier.stats();
    assert_eq!(stats.accepted, 2);
    assert_eq!(stats.cache_hits, 1);
    assert_eq!(stats.cache_misses, 1);
    assert_eq!(stats.keys.fetches_ok, 1);
    assert_eq!(stats.keys.discovery_fetches, 1);
    assert!(stats.keys.ready);
}

#[tokio::test]
async fn service_account_token_through_the_trait() {
    let idp = MockIssuer::start().await;
    let verifier = idp.verifier();
    async fn check(v: &impl TokenVerifier, token: &str) -> agentcube_auth_core::Principal {
        v.verify(token).await.unwrap()
    }
    let token = idp.token().service_account("agentcube-app").sign();
    let p = check(&verifier, &token).await;
    assert!(p.is_service_account());
    assert_eq!(p.client_id(), Some("agentcube-app"));
    assert_eq!(p.email(), None);
    assert!(TokenVerifier::is_ready(&verifier));
}

#[tokio::test]
async fn every_supported_algorithm_verifies() {
    for alg in Algorithm::ALL {
        let idp = MockIssuer::builder().algorithm(alg).start().await;
        let verifier =
            OidcVerifier::new(OidcConfig::new(idp.issuer()).algorithms(AlgorithmSet::only(alg)))
                .unwrap();
        let token = idp.token().sign();
        let details = verifier.verify_with_details(&token).await.unwrap();
        assert_eq!(details.algorithm, alg, "{alg}");
    }
}

#[tokio::test]
async fn rejections_carry_stable_codes_and_http_statuses() {
    let idp = MockIssuer::start().await;
    let verifier = idp.verifier();
    let expired = idp.token().expires_at(1_000).claim("iat", 900).sign();
    let err = verifier.verify(&expired).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::Expired);
    assert_eq!(err.http_status(), 401);
    assert_eq!(
        err.www_authenticate(),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(err.public_message(), "invalid or expired token");
    assert_eq!(verifier.stats().rejected(ErrorCode::Expired), 1);
}

#[tokio::test]
async fn starts_without_the_idp_and_recovers() {
    let idp = MockIssuer::start().await;
    idp.fail(true);
    let verifier = idp.verifier();
    let token = idp.token().sign();
    let err = verifier.verify(&token).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeysUnavailable);
    assert_eq!(err.http_status(), 503);
    assert!(!verifier.is_ready());
    idp.fail(false);
    // An explicit refresh ignores the cooldown.
    assert!(matches!(
        verifier.refresh_keys().await,
        Ok(RefreshOutcome::Updated { keys: 1, .. })
    ));
    assert!(verifier.is_ready());
    verifier.verify(&token).await.unwrap();
}

#[tokio::test]
async fn jwks_url_without_discovery() {
    let idp = MockIssuer::start().await;
    let verifier = OidcVerifier::new(idp.config().jwks_url(idp.jwks_url())).unwrap();
    verifier.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(idp.discovery_fetches(), 0);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn static_keys_need_no_network() {
    let key = TestKey::generate(Algorithm::EdDSA);
    let idp = MockIssuer::builder().key(key).start().await;
    let keys = agentcube_oidc::test_util::key_set([&*idp.signing_key()]);
    let verifier = OidcVerifier::new(
        OidcConfig::new(idp.issuer())
            .algorithms(AlgorithmSet::only(Algorithm::EdDSA))
            .static_keys(keys)
            .cache(CacheConfig::disabled()),
    )
    .unwrap();
    assert!(verifier.is_ready());
    verifier.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(idp.jwks_fetches() + idp.discovery_fetches(), 0);
    assert!(verifier.spawn_background_refresh().is_none());
}

#[tokio::test]
async fn background_refresh_loads_keys_before_the_first_request() {
    let idp = MockIssuer::start().await;
    let verifier = idp.verifier();
    let task = verifier.spawn_background_refresh().unwrap();
    for _ in 0..200 {
        if verifier.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(verifier.is_ready());
    verifier.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);
    drop(verifier);
    // The task ends once the verifier is gone (at its next wake-up); abort to end the test fast.
    task.abort();
}

#[tokio::test]
async fn multi_issuer_end_to_end() {
    let a = MockIssuer::builder().realm("a").start().await;
    let b = MockIssuer::builder()
        .realm("b")
        .algorithm(Algorithm::ES256)
        .start()
        .await;
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    assert_eq!(
        multi.verify(&a.token().sign()).await.unwrap().issuer(),
        a.issuer()
    );
    assert_eq!(
        multi.verify(&b.token().sign()).await.unwrap().issuer(),
        b.issuer()
    );
    let stats = multi.stats();
    assert_eq!(stats.issuers.len(), 2);
    assert_eq!(stats.issuers[0].accepted, 1);
    assert_eq!(stats.issuers[1].accepted, 1);
}

#[test]
fn configuration_errors() {
    use agentcube_oidc::ConfigError;
    let err = |c: OidcConfig| OidcVerifier::new(c).unwrap_err();
    assert_eq!(err(OidcConfig::new("")), ConfigError::InvalidIssuer);
    assert_eq!(
        err(OidcConfig::new("kc/realms/x")),
        ConfigError::InvalidIssuer
    );
    assert_eq!(
        err(OidcConfig::new("https://kc/realms/x?a=b")),
        ConfigError::InvalidIssuer
    );
    assert_eq!(
        err(OidcConfig::new("ftp://kc/realms/x")),
        ConfigError::InvalidIssuer
    );
    let ok = || OidcConfig::new("https://kc/realms/x");
    assert_eq!(
        err(ok().audiences(Vec::<String>::new())),
        ConfigError::NoAudience
    );
    assert_eq!(
        err(ok().algorithms(AlgorithmSet::EMPTY)),
        ConfigError::NoAlgorithms
    );
    assert_eq!(
        err(ok().allowed_azp(Vec::<String>::new())),
        ConfigError::EmptyAzpAllowlist
    );
    assert_eq!(
        err(ok().jwks_url("not a url")),
        ConfigError::InvalidUrl("jwks url")
    );
    assert_eq!(err(ok().max_token_bytes(0)), ConfigError::ZeroTokenLimit);
    let store = |s: KeyStoreConfig| err(ok().key_store(s));
    assert_eq!(
        store(KeyStoreConfig::new().max_response_bytes(0)),
        ConfigError::ZeroKeyStoreLimit("max_response_bytes")
    );
    assert_eq!(
        store(KeyStoreConfig::new().max_keys(0)),
        ConfigError::ZeroKeyStoreLimit("max_keys")
    );
    assert_eq!(
        store(KeyStoreConfig::new().refresh_interval_bounds(Duration::ZERO, Duration::ZERO)),
        ConfigError::ZeroKeyStoreLimit("minimum refresh interval")
    );
    assert!(
        OidcVerifier::new(ok().key_store(KeyStoreConfig::new().refresh_cooldown(Duration::ZERO)))
            .is_ok()
    );
    // Construction needs no runtime and no network.
    let v = OidcVerifier::new(ok()).unwrap();
    assert!(!v.is_ready());
    assert_eq!(v.issuer(), "https://kc/realms/x");
    let dup = MultiIssuerVerifier::new([v.clone(), v]).unwrap_err();
    assert_eq!(dup, ConfigError::DuplicateIssuer);
    let none = MultiIssuerVerifier::new(Vec::new()).unwrap_err();
    assert_eq!(none, ConfigError::NoIssuers);
}

#[test]
fn debug_output_never_contains_tokens_or_keys() {
    let config = OidcConfig::new("https://kc/realms/x");
    let text = format!("{config:?}");
    assert!(text.contains("https://kc/realms/x"));
    let v = OidcVerifier::new(config).unwrap();
    let text = format!("{v:?}");
    assert!(text.contains("OidcVerifier"));
    let key = TestKey::generate(Algorithm::ES256);
    let text = format!("{key:?}");
    assert!(!text.contains("pkcs8") && text.contains(key.kid()));
}

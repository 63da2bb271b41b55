//! Internal tokens and IdP access tokens are never accepted in each other's place: distinct
//! `typ`, `iss`, `aud` and keys. Both directions.

mod common;

use std::sync::Arc;

use agentcube_auth_core::jose::{
    self, AlgorithmSet, JwsPolicy, KeySet, KeySource, TimeRules, TypePolicy, UnverifiedJws,
    VerificationKey,
};
use agentcube_auth_core::{ErrorCode, ManualClock};
use agentcube_identity::{
    IDENTITY_TOKEN_TYPE, IdentityVerifier, KeyRing, SANDBOX_TOKEN_TYPE, SandboxVerifier,
    SessionBinding, SigningKey, TokenMinter,
};
use common::*;
use serde_json::{Value, json};

/// A Keycloak-shaped access token payload.
fn keycloak_claims() -> Value {
    json!({
        "iss": KEYCLOAK, "aud": ["agentcube-api", "account"], "sub": "alice-id", "typ": "Bearer",
        "azp": "agentcube-cli", "iat": NOW, "exp": NOW + 300, "jti": "kc-1",
        "realm_access": {"roles": ["sandbox:invoke", "admin"]}, "email": "alice@example.com"
    })
}

#[tokio::test]
async fn a_keycloak_access_token_is_never_an_internal_token() {
    let clock = ManualClock::new(NOW);
    let ring = Arc::new(KeyRing::new(ed25519()));
    let router_key = ring.active().unwrap();
    let identity = IdentityVerifier::new(ring.clone()).with_clock(clock.clone());
    let sandbox = SandboxVerifier::new(ring.clone(), SessionBinding::session("s1"))
        .unwrap()
        .with_clock(clock.clone());
    let shared = SandboxVerifier::new(ring.clone(), SessionBinding::AnySession)
        .unwrap()
        .with_clock(clock.clone());

    // Keycloak's own key (RS256), which the Router's ring does not hold.
    let keycloak_key = SigningKey::from_pem(&rsa().pkcs8_pem).unwrap();
    for typ in ["JWT", "at+jwt"] {
        let token = sign(&keycloak_key, typ, keycloak_claims());
        assert_eq!(code(identity.verify(&token).await), "token_type_mismatch");
        assert_eq!(code(sandbox.verify(&token).await), "token_type_mismatch");
        assert_eq!(code(shared.verify(&token).await), "token_type_mismatch");
    }
    // Worst cases, each stopped by a different rule:
    // - the Router's own key signed an access-token-shaped token (typ JWT);
    let token = sign(&router_key, "JWT", keycloak_claims());
    assert_eq!(code(identity.verify(&token).await), "token_type_mismatch");
    // - it even carries the internal typ, but Keycloak's iss/aud;
    let token = sign(&router_key, IDENTITY_TOKEN_TYPE, keycloak_claims());
    assert_eq!(code(identity.verify(&token).await), "issuer_mismatch");
    let token = sign(&router_key, SANDBOX_TOKEN_TYPE, keycloak_claims());
    assert_eq!(code(sandbox.verify(&token).await), "issuer_mismatch");
    assert_eq!(code(shared.verify(&token).await), "issuer_mismatch");
    // - the internal typ, iss and aud, but signed by Keycloak's key.
    let token = sign(
        &keycloak_key,
        IDENTITY_TOKEN_TYPE,
        Value::Object(identity_claims()),
    );
    assert_eq!(code(identity.verify(&token).await), "unknown_kid");
}

#[tokio::test]
async fn an_internal_token_is_never_an_access_token() {
    let clock = ManualClock::new(NOW);
    let ring = Arc::new(KeyRing::new(ed25519()));
    let minter = TokenMinter::new(ring.clone()).with_clock(clock);
    let identity = minter.identity_token(&alice()).unwrap();
    let sandbox = minter.sandbox_token(&alice(), "s1").unwrap();

    // What an access-token verifier (agentcube-oidc) does first: framing and header rules with
    // the access-token typ policy, over every algorithm there is.
    let policy = JwsPolicy::new(AlgorithmSet::ALL);
    for token in [identity.as_str(), sandbox.as_str()] {
        let err = UnverifiedJws::parse(token, &policy).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TokenTypeMismatch);
    }

    // Even a verifier lax enough to accept the internal typ, and holding the Router's key,
    // rejects it on iss and aud.
    let lax = JwsPolicy {
        types: TypePolicy::new([IDENTITY_TOKEN_TYPE, SANDBOX_TOKEN_TYPE], true),
        ..JwsPolicy::new(AlgorithmSet::ALL)
    };
    for token in [identity.as_str(), sandbox.as_str()] {
        let jws = UnverifiedJws::parse(token, &lax).unwrap();
        let key = ring
            .key_for(jws.header().kid.as_deref(), jws.header().alg)
            .await
            .unwrap();
        let (_, claims) = jws.verify(&key).unwrap();
        assert_eq!(
            jose::check_issuer(&claims, KEYCLOAK).unwrap_err().code(),
            ErrorCode::IssuerMismatch
        );
        assert_eq!(
            jose::check_audience(&claims, &["agentcube-api"])
                .unwrap_err()
                .code(),
            ErrorCode::AudienceMismatch
        );
        assert!(jose::check_times(&claims, NOW, &TimeRules::default()).is_ok());
    }

    // And the IdP's key set does not hold the Router's keys.
    let keycloak_key = SigningKey::from_pem(&rsa().pkcs8_pem).unwrap();
    let keycloak_keys =
        KeySet::new([VerificationKey::from_jwk(keycloak_key.public_jwk()).unwrap()]);
    let jws = UnverifiedJws::parse(identity.as_str(), &lax).unwrap();
    let err = keycloak_keys
        .key_for(jws.header().kid.as_deref(), jws.header().alg)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownKid);
}

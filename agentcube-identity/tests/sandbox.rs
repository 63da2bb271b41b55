//! Sandbox tokens: bound to one session, their own typ, short life.

mod common;

use std::sync::Arc;

use agentcube_auth_core::ManualClock;
use agentcube_auth_core::jose::Algorithm;
use agentcube_identity::{
    IdentityVerifier, KeyRing, MAX_SESSION_ID_BYTES, MintError, ReplayGuard, SANDBOX_TOKEN_TYPE,
    SandboxVerifier, TokenMinter, sandbox_audience,
};
use common::*;
use serde_json::{Value, json};

fn setup() -> Setup<SandboxVerifier<Arc<KeyRing>>> {
    setup_with(|ring, clock| SandboxVerifier::new(ring).with_clock(clock))
}

#[tokio::test]
async fn minted_for_a_session_and_verified_for_it() {
    let s = setup();
    let token = s.minter.sandbox_token(&alice(), "sess-a").unwrap();
    assert_eq!(token.expires_at() - token.issued_at(), 60);
    let got = s.verifier.verify(token.as_str(), "sess-a").await.unwrap();
    assert_eq!(got.session_id(), "sess-a");
    assert_eq!(got.user_sub(), "alice-id");
    assert_eq!(got.user_email(), Some("alice@example.com"));
    assert_eq!(
        (got.kid(), got.algorithm()),
        (s.key.kid(), Algorithm::EdDSA)
    );
    assert_eq!((got.issued_at(), got.expires_at()), (NOW, NOW + 60));
    assert_eq!(got.jwt_id().len(), 22);
    assert_eq!(got.claims().get("aud"), Some(&json!("sandbox:sess-a")));
    assert_eq!(got.claims().get("iss"), Some(&json!("agentcube-router")));
    assert!(
        got.claims().get("sub").is_none(),
        "the reference claim names: user_sub"
    );
    assert_eq!(sandbox_audience("sess-a"), "sandbox:sess-a");
    // Through the Authorization header.
    let got = s
        .verifier
        .verify_authorization(Some(token.bearer()), "sess-a")
        .await
        .unwrap();
    assert_eq!(got.user_sub(), "alice-id");
    let bob = s.minter.sandbox_token(&bob(), "sess-b").unwrap();
    assert_eq!(
        s.verifier
            .verify(bob.as_str(), "sess-b")
            .await
            .unwrap()
            .user_email(),
        None
    );
}

#[tokio::test]
async fn a_token_for_session_a_is_rejected_for_session_b() {
    let s = setup();
    let a = s.minter.sandbox_token(&alice(), "sess-a").unwrap();
    for other in ["sess-b", "sess-a ", "SESS-A", "sess", ""] {
        let e = s.verifier.verify(a.as_str(), other).await.unwrap_err();
        assert_eq!(
            (e.code(), e.http_status()),
            ("audience_mismatch", 401),
            "{other:?}"
        );
    }
    // Even with a matching aud, a different session_id claim is refused.
    let forged = sign(
        &s.key,
        SANDBOX_TOKEN_TYPE,
        with(sandbox_claims("sess-a"), json!({"session_id": "sess-b"})),
    );
    assert_eq!(
        code(s.verifier.verify(&forged, "sess-a").await),
        "audience_mismatch"
    );
    assert_eq!(
        code(s.verifier.verify(&forged, "sess-b").await),
        "audience_mismatch"
    );
}

#[tokio::test]
async fn claim_rules() {
    let s = setup();
    let ok = sign(
        &s.key,
        SANDBOX_TOKEN_TYPE,
        Value::Object(sandbox_claims("s1")),
    );
    assert_eq!(code(s.verifier.verify(&ok, "s1").await), "ok");
    for (edit, expected) in [
        (json!({"user_sub": null}), "missing_claim"),
        (json!({"user_sub": ""}), "missing_claim"),
        (json!({"user_sub": 5}), "invalid_claim"),
        (json!({"session_id": null}), "missing_claim"),
        (json!({"session_id": 1}), "invalid_claim"),
        (json!({"aud": null}), "missing_claim"),
        (json!({"aud": ["sandbox:s1"]}), "audience_mismatch"),
        (json!({"aud": "workloadmanager"}), "audience_mismatch"),
        (json!({"iss": KEYCLOAK}), "issuer_mismatch"),
        (json!({"user_email": false}), "invalid_claim"),
        (json!({"jti": null}), "missing_claim"),
        (json!({"exp": NOW + 301}), "lifetime_too_long"),
        (json!({"iat": null}), "missing_claim"),
    ] {
        let token = sign(
            &s.key,
            SANDBOX_TOKEN_TYPE,
            with(sandbox_claims("s1"), edit.clone()),
        );
        assert_eq!(
            code(s.verifier.verify(&token, "s1").await),
            expected,
            "{edit}"
        );
    }
    for typ in ["JWT", "at+jwt", "agentcube-identity+jwt"] {
        let token = sign(&s.key, typ, Value::Object(sandbox_claims("s1")));
        assert_eq!(
            code(s.verifier.verify(&token, "s1").await),
            "token_type_mismatch",
            "{typ}"
        );
    }
}

#[tokio::test]
async fn expiry_with_leeway_edges() {
    let s = setup();
    let token = s.minter.sandbox_token(&alice(), "s1").unwrap(); // exp = NOW + 60
    for (at, expected) in [(NOW + 65, "ok"), (NOW + 66, "expired")] {
        s.clock.set(at);
        assert_eq!(
            code(s.verifier.verify(token.as_str(), "s1").await),
            expected
        );
    }
}

#[tokio::test]
async fn authorization_header_forms() {
    let s = setup();
    let v = &s.verifier;
    assert_eq!(
        code(v.verify_authorization(None::<&str>, "s1").await),
        "missing_authorization"
    );
    assert_eq!(
        code(v.verify_authorization(Some(""), "s1").await),
        "missing_authorization"
    );
    assert_eq!(
        code(
            v.verify_authorization(Some("Basic dXNlcjpwdw=="), "s1")
                .await
        ),
        "invalid_authorization_format"
    );
    assert_eq!(
        code(v.verify_authorization(Some("Bearer "), "s1").await),
        "empty_bearer_token"
    );
    let token = s.minter.sandbox_token(&alice(), "s1").unwrap();
    let lower = format!("bearer {}", token.as_str());
    assert_eq!(
        code(v.verify_authorization(Some(lower.as_bytes()), "s1").await),
        "ok"
    );
    assert_eq!(
        code(v.verify_authorization(Some(token.as_str()), "s1").await),
        "invalid_authorization_format"
    );
}

#[tokio::test]
async fn identity_and_sandbox_tokens_do_not_cross() {
    let s = setup();
    let identity_verifier = IdentityVerifier::new(s.ring.clone()).with_clock(s.clock.clone());
    let identity = s.minter.identity_token(&alice()).unwrap();
    let sandbox = s.minter.sandbox_token(&alice(), "s1").unwrap();
    assert_eq!(
        code(s.verifier.verify(identity.as_str(), "s1").await),
        "token_type_mismatch"
    );
    assert_eq!(
        code(identity_verifier.verify(sandbox.as_str()).await),
        "token_type_mismatch"
    );
}

#[test]
fn session_ids_are_validated_when_minting() {
    let s = setup();
    assert_eq!(
        s.minter.sandbox_token(&alice(), "").unwrap_err(),
        MintError::InvalidSessionId
    );
    let long = "x".repeat(MAX_SESSION_ID_BYTES + 1);
    assert_eq!(
        s.minter.mint_sandbox(&alice(), &long).unwrap_err(),
        MintError::InvalidSessionId
    );
    assert!(
        s.minter
            .sandbox_token(&alice(), &"x".repeat(MAX_SESSION_ID_BYTES))
            .is_ok()
    );
    let nobody = agentcube_auth_core::Principal::builder(KEYCLOAK, "").build();
    assert_eq!(
        s.minter.sandbox_token(&nobody, "s1").unwrap_err(),
        MintError::EmptySubject
    );
}

#[tokio::test]
async fn replay_guard_on_sandbox_tokens() {
    let s = setup();
    let v = SandboxVerifier::new(s.ring.clone())
        .with_clock(s.clock.clone())
        .with_replay_guard(Arc::new(ReplayGuard::default()));
    let token = s.minter.mint_sandbox(&alice(), "s1").unwrap();
    assert_eq!(code(v.verify(token.as_str(), "s1").await), "ok");
    assert_eq!(code(v.verify(token.as_str(), "s1").await), "token_replayed");
}

#[tokio::test]
async fn rsa_sandbox_tokens_verify_with_the_secrets_public_pem() {
    let fixture = rsa();
    let clock = ManualClock::new(NOW);
    let minter = TokenMinter::new(KeyRing::from_private_pem(&fixture.pkcs1_pem).unwrap())
        .with_clock(clock.clone());
    let v = SandboxVerifier::new(KeyRing::from_public_pem(&fixture.spki_pem).unwrap())
        .with_clock(clock);
    let token = minter.sandbox_token(&alice(), "s1").unwrap();
    assert_eq!(
        v.verify(token.as_str(), "s1").await.unwrap().algorithm(),
        Algorithm::RS256
    );
}

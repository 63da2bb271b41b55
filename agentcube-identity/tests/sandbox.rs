//! Sandbox tokens: bound to one session, their own typ, short life.

#![allow(clippy::unwrap_used)] // test helpers

mod common;

use std::sync::Arc;

use agentcube_auth_core::jose::Algorithm;
use agentcube_auth_core::{AuthError, ManualClock, TokenVerifier};
use agentcube_identity::{
    ConfigError, IdentityVerifier, KeyRing, MAX_SESSION_ID_BYTES, MintError, ReplayGuard,
    SANDBOX_TOKEN_TYPE, SandboxVerifier, SessionBinding, TokenMinter, VerifiedSandbox,
    sandbox_audience, sandbox_session,
};
use common::*;
use http::StatusCode;
use serde_json::{Value, json};

type Verifier = SandboxVerifier<Arc<KeyRing>>;

fn setup() -> Setup<()> {
    setup_with(|_, _| ())
}

/// A verifier on the setup's ring and clock with `binding`.
fn bound(s: &Setup<()>, binding: SessionBinding) -> Verifier {
    SandboxVerifier::new(s.ring.clone(), binding)
        .unwrap()
        .with_clock(s.clock.clone())
}

/// A verifier for the sandbox of `session`.
fn serving(s: &Setup<()>, session: &str) -> Verifier {
    bound(s, SessionBinding::session(session))
}

async fn verify_for(
    s: &Setup<()>,
    token: &str,
    session: &str,
) -> Result<VerifiedSandbox, AuthError> {
    serving(s, session).verify(token).await
}

#[tokio::test]
async fn minted_for_a_session_and_verified_for_it() {
    let s = setup();
    let token = s.minter.sandbox_token(&alice(), "sess-a").unwrap();
    assert_eq!(token.expires_at() - token.issued_at(), 60);
    let got = verify_for(&s, token.as_str(), "sess-a").await.unwrap();
    assert_eq!(got.session_id(), "sess-a");
    assert_eq!(got.user_sub(), "alice-id");
    assert_eq!(got.user_email(), Some("alice@example.com"));
    assert_eq!(got.issuer(), "agentcube-router");
    assert_eq!(
        (got.kid(), got.algorithm()),
        (s.key.kid(), Algorithm::EdDSA)
    );
    assert_eq!((got.issued_at(), got.expires_at()), (NOW, NOW + 60));
    assert_eq!(got.jwt_id().len(), 22);
    assert_eq!(got.claims().get("jti"), Some(&json!(got.jwt_id())));
    assert_eq!(got.claims().get("aud"), Some(&json!("sandbox:sess-a")));
    assert_eq!(got.claims().get("iss"), Some(&json!("agentcube-router")));
    assert!(
        got.claims().get("sub").is_none(),
        "the subject is carried as user_sub"
    );
    assert_eq!(sandbox_audience("sess-a"), "sandbox:sess-a");
    assert!(!format!("{got:?}").contains("alice@example.com"));
    let bob = s.minter.sandbox_token(&bob(), "sess-b").unwrap();
    assert_eq!(
        verify_for(&s, bob.as_str(), "sess-b")
            .await
            .unwrap()
            .user_email(),
        None
    );
}

#[tokio::test]
async fn the_principal_is_the_caller_bound_to_the_session() {
    let s = setup();
    let token = s.minter.sandbox_token(&alice(), "sess-a").unwrap();
    let v = serving(&s, "sess-a");
    let got = v.verify(token.as_str()).await.unwrap();
    let p = got.to_principal();
    assert_eq!((p.issuer(), p.subject()), ("agentcube-router", "alice-id"));
    assert_eq!(
        (p.email(), p.email_verified()),
        (Some("alice@example.com"), false)
    );
    assert!(p.roles().is_empty());
    assert_eq!(p.claims(), got.claims());
    assert_eq!(sandbox_session(&p), Some("sess-a"));
    // Through the TokenVerifier seam, the same.
    let seam = TokenVerifier::verify(&v, token.as_str()).await.unwrap();
    assert_eq!(
        (seam.issuer(), seam.subject(), sandbox_session(&seam)),
        ("agentcube-router", "alice-id", Some("sess-a"))
    );
    // A principal from elsewhere has no session.
    assert_eq!(sandbox_session(&alice()), None);
}

#[tokio::test]
async fn a_token_for_session_a_is_rejected_for_session_b() {
    let s = setup();
    let a = s.minter.sandbox_token(&alice(), "sess-a").unwrap();
    for other in ["sess-b", "sess-a ", "SESS-A", "sess"] {
        let e = verify_for(&s, a.as_str(), other).await.unwrap_err();
        assert_eq!(
            (e.code().as_str(), e.http_status()),
            ("audience_mismatch", StatusCode::UNAUTHORIZED),
            "{other:?}"
        );
    }
    // Even with a matching aud, a different session_id claim is refused, in every binding.
    let forged = sign(
        &s.key,
        SANDBOX_TOKEN_TYPE,
        with(sandbox_claims("sess-a"), json!({"session_id": "sess-b"})),
    );
    assert_eq!(
        code(verify_for(&s, &forged, "sess-a").await),
        "audience_mismatch"
    );
    assert_eq!(
        code(verify_for(&s, &forged, "sess-b").await),
        "audience_mismatch"
    );
    let any = bound(&s, SessionBinding::AnySession);
    assert_eq!(code(any.verify(&forged).await), "audience_mismatch");
}

#[test]
fn a_verifier_cannot_be_bound_to_an_invalid_session() {
    let s = setup();
    for session in [String::new(), "x".repeat(MAX_SESSION_ID_BYTES + 1)] {
        assert_eq!(
            SandboxVerifier::new(s.ring.clone(), SessionBinding::Session(session)).err(),
            Some(ConfigError::InvalidSessionId)
        );
    }
    assert!(
        SandboxVerifier::new(
            s.ring,
            SessionBinding::session("x".repeat(MAX_SESSION_ID_BYTES))
        )
        .is_ok()
    );
}

#[tokio::test]
async fn a_shared_sandbox_accepts_any_session_and_reports_which() {
    let s = setup();
    let any = bound(&s, SessionBinding::AnySession);
    for session in ["sess-a", "sess-b"] {
        let token = s.minter.sandbox_token(&alice(), session).unwrap();
        let got = any.verify(token.as_str()).await.unwrap();
        // The handler compares this with the session the request names.
        assert_eq!(got.session_id(), session);
        let p = TokenVerifier::verify(&any, token.as_str()).await.unwrap();
        assert_eq!(sandbox_session(&p), Some(session));
    }
    // Still a sandbox token, for a sandbox audience, with a consistent session.
    for (edit, expected) in [
        (
            json!({"aud": "sandbox:", "session_id": ""}),
            "audience_mismatch",
        ),
        (json!({"aud": "workloadmanager"}), "audience_mismatch"),
        (json!({"aud": ["sandbox:s1"]}), "audience_mismatch"),
        (json!({"session_id": null}), "missing_claim"),
        (json!({"user_sub": ""}), "missing_claim"),
    ] {
        let token = sign(
            &s.key,
            SANDBOX_TOKEN_TYPE,
            with(sandbox_claims("s1"), edit.clone()),
        );
        assert_eq!(code(any.verify(&token).await), expected, "{edit}");
    }
    let identity = s.minter.identity_token(&alice()).unwrap();
    assert_eq!(
        code(any.verify(identity.as_str()).await),
        "token_type_mismatch"
    );
}

#[tokio::test]
async fn claim_rules() {
    let s = setup();
    let v = serving(&s, "s1");
    let ok = sign(
        &s.key,
        SANDBOX_TOKEN_TYPE,
        Value::Object(sandbox_claims("s1")),
    );
    assert_eq!(code(v.verify(&ok).await), "ok");
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
        assert_eq!(code(v.verify(&token).await), expected, "{edit}");
    }
    for typ in ["JWT", "at+jwt", "agentcube-identity+jwt"] {
        let token = sign(&s.key, typ, Value::Object(sandbox_claims("s1")));
        assert_eq!(code(v.verify(&token).await), "token_type_mismatch", "{typ}");
    }
}

#[tokio::test]
async fn expiry_with_leeway_edges() {
    let s = setup();
    let v = serving(&s, "s1");
    let token = s.minter.sandbox_token(&alice(), "s1").unwrap(); // exp = NOW + 60
    for (at, expected) in [(NOW + 65, "ok"), (NOW + 66, "expired")] {
        s.clock.set(at);
        assert_eq!(code(v.verify(token.as_str()).await), expected);
    }
}

#[tokio::test]
async fn identity_and_sandbox_tokens_do_not_cross() {
    let s = setup();
    let identity_verifier = IdentityVerifier::new(s.ring.clone()).with_clock(s.clock.clone());
    let identity = s.minter.identity_token(&alice()).unwrap();
    let sandbox = s.minter.sandbox_token(&alice(), "s1").unwrap();
    assert_eq!(
        code(verify_for(&s, identity.as_str(), "s1").await),
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
    let v = serving(&s, "s1").with_replay_guard(Arc::new(ReplayGuard::default()));
    let token = s.minter.mint_sandbox(&alice(), "s1").unwrap();
    assert_eq!(code(v.verify(token.as_str()).await), "ok");
    assert_eq!(code(v.verify(token.as_str()).await), "token_replayed");
}

#[tokio::test]
async fn rsa_sandbox_tokens_verify_with_the_secrets_public_pem() {
    let fixture = rsa();
    let clock = ManualClock::new(NOW);
    let minter = TokenMinter::new(KeyRing::from_private_pem(&fixture.pkcs1_pem).unwrap())
        .with_clock(clock.clone());
    let v = SandboxVerifier::new(
        KeyRing::from_public_pem(&fixture.spki_pem).unwrap(),
        SessionBinding::session("s1"),
    )
    .unwrap()
    .with_clock(clock);
    let token = minter.sandbox_token(&alice(), "s1").unwrap();
    assert_eq!(
        v.verify(token.as_str()).await.unwrap().algorithm(),
        Algorithm::RS256
    );
}

//! Identity tokens: minting and every verifier rule, each rejection with its exact code.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)] // test helpers

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet, KeySet};
use agentcube_auth_core::{ManualClock, Principal, Role};
use agentcube_identity::{
    IDENTITY_TOKEN_TYPE, IdentityError, IdentityVerifier, KeyRing, MintError, ReplayGuard,
    SANDBOX_TOKEN_TYPE, SigningKey, TokenMinter, VerifierConfig,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};

fn setup() -> Setup<IdentityVerifier<Arc<KeyRing>>> {
    setup_with(|ring, clock| IdentityVerifier::new(ring).with_clock(clock))
}

#[tokio::test]
async fn minted_claims_and_verified_identity() {
    let s = setup();
    let token = s.minter.identity_token(&alice()).unwrap();
    assert_eq!((token.issued_at(), token.expires_at()), (NOW, NOW + 30));

    // The header: our typ, the kid, the algorithm.
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.as_str().split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "kid": s.key.kid(), "typ": IDENTITY_TOKEN_TYPE})
    );

    let who = s.verifier.verify(token.as_str()).await.unwrap();
    assert_eq!(who.subject(), "alice-id");
    assert_eq!(who.email(), Some("alice@example.com"));
    assert_eq!(who.idp_issuer(), Some(KEYCLOAK));
    assert_eq!(who.issuer(), "agentcube-router");
    assert_eq!((who.issued_at(), who.expires_at()), (NOW, NOW + 30));
    assert_eq!(
        (who.kid(), who.algorithm()),
        (s.key.kid(), Algorithm::EdDSA)
    );
    assert_eq!(who.jwt_id().len(), 22);
    assert!(who.roles().contains_realm("sandbox:invoke"));
    assert!(
        who.roles()
            .contains(&Role::client("agentcube-app", "reader"))
    );
    let claims = who.claims();
    assert_eq!(
        claims.get("aud"),
        Some(&json!("workloadmanager")),
        "a single string"
    );
    assert_eq!(
        claims.get("client_roles"),
        Some(&json!({"agentcube-app": ["reader"]}))
    );

    // As a principal, the owner is qualified by the caller's IdP, not the Router.
    let p = who.to_principal();
    assert_eq!((p.issuer(), p.subject()), (KEYCLOAK, "alice-id"));
    assert_eq!(p.roles(), alice().roles());
    assert!(!format!("{who:?}").contains("alice@example.com"));

    // A minimal principal: no email, no roles.
    let bob_token = s.minter.identity_token(&bob()).unwrap();
    let bob = s.verifier.verify(bob_token.as_str()).await.unwrap();
    assert_eq!((bob.email(), bob.roles().len()), (None, 0));
    assert!(bob.claims().get("roles").is_none() && bob.claims().get("email").is_none());
}

#[tokio::test]
async fn roles_can_be_left_out() {
    let s = setup();
    let mut config = agentcube_identity::MinterConfig::default();
    config.include_roles = false;
    let minter = TokenMinter::with_config(s.ring.clone(), config)
        .unwrap()
        .with_clock(s.clock.clone());
    let who = s
        .verifier
        .verify(minter.identity_token(&alice()).unwrap().as_str())
        .await
        .unwrap();
    assert!(who.roles().is_empty());
}

#[tokio::test]
async fn header_values() {
    let s = setup();
    let token = s.minter.identity_token(&alice()).unwrap();
    assert_eq!(
        code(s.verifier.verify_header(None::<&str>).await),
        "missing_authorization"
    );
    let err = s.verifier.verify_header(Some("")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.http_status()),
        ("missing_authorization", 401)
    );
    assert!(matches!(err, IdentityError::MissingHeader));
    // Bytes, as from http::HeaderValue::as_bytes.
    let bytes: &[u8] = token.as_str().as_bytes();
    assert_eq!(
        s.verifier
            .verify_header(Some(bytes))
            .await
            .unwrap()
            .subject(),
        "alice-id"
    );
    assert_eq!(
        code(s.verifier.verify_header(Some(&b"\xff\xfe"[..])).await),
        "malformed"
    );
}

#[tokio::test]
async fn the_three_failure_kinds() {
    let s = setup();
    // 1. Header missing: 401.
    let e = s.verifier.verify_header(None::<&[u8]>).await.unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("missing_authorization", 401));
    // 2. Keys unavailable / not ready: 503, for an empty ring and an empty key set.
    let token = s.minter.identity_token(&alice()).unwrap();
    let empty = IdentityVerifier::new(KeyRing::empty()).with_clock(s.clock.clone());
    assert!(!empty.is_ready());
    let e = empty.verify(token.as_str()).await.unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("keys_unavailable", 503));
    assert!(matches!(e, IdentityError::KeysUnavailable(_)));
    assert_eq!(e.public_message(), "verification keys are unavailable");
    let empty_set = IdentityVerifier::new(KeySet::default());
    assert_eq!(
        code(empty_set.verify(token.as_str()).await),
        "keys_unavailable"
    );
    // ... but garbage is still a 401: framing is checked before keys are looked up.
    let e = empty.verify("garbage").await.unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("malformed", 401));
    // 3. Invalid: 401 wrapping the AuthError, with a vague public message.
    // Change the first signature character (six whole bits of the signature).
    let (input, sig) = token.as_str().rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{input}.{first}{}", &sig[1..]);
    let e = s.verifier.verify(&tampered).await.unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("invalid_signature", 401));
    assert_eq!(
        e.auth_error(),
        Some(&agentcube_auth_core::AuthError::InvalidSignature)
    );
    assert_eq!(e.public_message(), "invalid or expired token");
    assert!(s.verifier.is_ready());
}

#[tokio::test]
async fn wrong_audience_issuer_and_type() {
    let s = setup();
    let v = &s.verifier;
    let ok = sign(
        &s.key,
        IDENTITY_TOKEN_TYPE,
        Value::Object(identity_claims()),
    );
    assert_eq!(v.verify(&ok).await.unwrap().subject(), "alice-id");
    let cases = [
        (json!({"aud": "agentcube-api"}), "audience_mismatch"),
        (json!({"aud": "sandbox:s1"}), "audience_mismatch"),
        (json!({"aud": ["workloadmanager"]}), "audience_mismatch"),
        (
            json!({"aud": ["workloadmanager", "other"]}),
            "audience_mismatch",
        ),
        (json!({"aud": null}), "missing_claim"),
        (json!({"aud": 7}), "invalid_claim"),
        (json!({"iss": KEYCLOAK}), "issuer_mismatch"),
        (json!({"iss": "agentcube-router/"}), "issuer_mismatch"),
        (json!({"iss": "Agentcube-Router"}), "issuer_mismatch"),
        (json!({"iss": null}), "missing_claim"),
    ];
    for (edit, expected) in cases {
        let token = sign(
            &s.key,
            IDENTITY_TOKEN_TYPE,
            with(identity_claims(), edit.clone()),
        );
        assert_eq!(code(v.verify(&token).await), expected, "{edit}");
    }
    for typ in [
        "JWT",
        "at+jwt",
        SANDBOX_TOKEN_TYPE,
        "agentcube-identity",
        "",
    ] {
        let token = sign(&s.key, typ, Value::Object(identity_claims()));
        assert_eq!(code(v.verify(&token).await), "token_type_mismatch", "{typ}");
    }
    // The typ comparison is RFC 7515's: case-insensitive, optional application/ prefix.
    let token = sign(
        &s.key,
        "application/AgentCube-Identity+JWT",
        Value::Object(identity_claims()),
    );
    assert_eq!(code(v.verify(&token).await), "ok");

    // A verifier configured for another audience or issuer rejects the default ones.
    let mut config = VerifierConfig::default();
    config.identity_audience = "other-wm".into();
    let other_aud =
        IdentityVerifier::with_config(s.ring.clone(), config).with_clock(s.clock.clone());
    assert_eq!(code(other_aud.verify(&ok).await), "audience_mismatch");
    let mut config = VerifierConfig::default();
    config.issuer = "router-b".into();
    let other_iss =
        IdentityVerifier::with_config(s.ring.clone(), config).with_clock(s.clock.clone());
    assert_eq!(code(other_iss.verify(&ok).await), "issuer_mismatch");
}

#[tokio::test]
async fn expiry_with_leeway_edges() {
    let s = setup();
    let token = s.minter.mint_identity(&alice()).unwrap(); // exp = NOW + 30, leeway 5 s
    for (at, expected) in [
        (NOW + 30, "ok"),
        (NOW + 35, "ok"),
        (NOW + 36, "expired"),
        (NOW + 3600, "expired"),
    ] {
        s.clock.set(at);
        assert_eq!(
            code(s.verifier.verify(token.as_str()).await),
            expected,
            "at {at}"
        );
    }
    // A zero leeway: valid through exp, expired one second later.
    let mut config = VerifierConfig::default();
    config.leeway = Duration::ZERO;
    let strict = IdentityVerifier::with_config(s.ring.clone(), config).with_clock(s.clock.clone());
    s.clock.set(NOW + 30);
    assert_eq!(code(strict.verify(token.as_str()).await), "ok");
    s.clock.set(NOW + 31);
    assert_eq!(code(strict.verify(token.as_str()).await), "expired");

    // iat in the future beyond the leeway; exp and iat required and typed.
    s.clock.set(NOW);
    for (edit, expected) in [
        (json!({"iat": NOW + 5, "exp": NOW + 35}), "ok"),
        (json!({"iat": NOW + 6, "exp": NOW + 36}), "issued_in_future"),
        (json!({"exp": null}), "missing_claim"),
        (json!({"iat": null}), "missing_claim"),
        (json!({"exp": "soon"}), "invalid_claim"),
        (json!({"iat": true}), "invalid_claim"),
        (json!({"nbf": NOW + 6}), "not_yet_valid"),
    ] {
        let token = sign(
            &s.key,
            IDENTITY_TOKEN_TYPE,
            with(identity_claims(), edit.clone()),
        );
        assert_eq!(code(s.verifier.verify(&token).await), expected, "{edit}");
    }
}

#[tokio::test]
async fn lifetime_over_the_cap() {
    let s = setup();
    // Default cap: 5 minutes.
    for (exp, expected) in [(NOW + 300, "ok"), (NOW + 301, "lifetime_too_long")] {
        let token = sign(
            &s.key,
            IDENTITY_TOKEN_TYPE,
            with(identity_claims(), json!({"exp": exp})),
        );
        assert_eq!(code(s.verifier.verify(&token).await), expected);
    }
    // A verifier with a tighter cap than the minter's lifetime.
    let mut config = VerifierConfig::default();
    config.max_lifetime = Duration::from_secs(20);
    let tight = IdentityVerifier::with_config(s.ring.clone(), config).with_clock(s.clock.clone());
    let token = s.minter.identity_token(&alice()).unwrap();
    let e = tight.verify(token.as_str()).await.unwrap_err();
    assert_eq!(e.code(), "lifetime_too_long");
    // And the minter refuses to mint over the maximum at all.
    let mut config = agentcube_identity::MinterConfig::default();
    config.identity_lifetime = Duration::from_secs(301);
    assert!(matches!(
        TokenMinter::with_config(s.ring.clone(), config),
        Err(MintError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn subject_and_jti_rules() {
    let s = setup();
    for (edit, expected) in [
        (json!({"sub": null}), "missing_claim"),
        (json!({"sub": ""}), "missing_claim"),
        (json!({"sub": 42}), "invalid_claim"),
        (json!({"jti": null}), "missing_claim"),
        (json!({"jti": ""}), "invalid_claim"),
        (json!({"jti": "x".repeat(129)}), "invalid_claim"),
        (json!({"email": 1}), "invalid_claim"),
        (json!({"idp_iss": ["x"]}), "invalid_claim"),
        (json!({"roles": "admin"}), "invalid_claim"),
        (json!({"roles": ["admin", 1]}), "invalid_claim"),
        (json!({"client_roles": {"c": "admin"}}), "invalid_claim"),
        (json!({"client_roles": ["admin"]}), "invalid_claim"),
        (
            json!({"roles": ["admin"], "client_roles": {"c": ["x"]}}),
            "ok",
        ),
    ] {
        let token = sign(
            &s.key,
            IDENTITY_TOKEN_TYPE,
            with(identity_claims(), edit.clone()),
        );
        assert_eq!(code(s.verifier.verify(&token).await), expected, "{edit}");
    }
    // The minter refuses an empty subject.
    let nobody = Principal::builder(KEYCLOAK, "").build();
    assert_eq!(
        s.minter.identity_token(&nobody).unwrap_err(),
        MintError::EmptySubject
    );
}

/// Signs `header` + `payload` with a raw Ed25519 key (to build tokens `SigningKey` never would).
fn raw_sign(key: &SigningKey, header: Value, payload: Value) -> String {
    let pem = key.to_pkcs8_pem().unwrap();
    let der = pem::parse(pem.expose_secret()).unwrap();
    let raw = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(der.contents()).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(raw.sign(input.as_bytes()))
    )
}

#[tokio::test]
async fn keys_and_algorithms() {
    let s = setup();
    let claims = Value::Object(identity_claims());
    // No kid: not one of ours.
    let no_kid = raw_sign(
        &s.key,
        json!({"alg": "EdDSA", "typ": IDENTITY_TOKEN_TYPE}),
        claims.clone(),
    );
    assert_eq!(code(s.verifier.verify(&no_kid).await), "unknown_kid");
    // A key the ring does not hold.
    let stranger = ed25519();
    assert_eq!(
        code(
            s.verifier
                .verify(&sign(&stranger, IDENTITY_TOKEN_TYPE, claims.clone()))
                .await
        ),
        "unknown_kid"
    );
    // A known kid with a header alg its key is not for.
    let forged = raw_sign(
        &s.key,
        json!({"alg": "ES256", "kid": s.key.kid(), "typ": IDENTITY_TOKEN_TYPE}),
        claims.clone(),
    );
    assert_eq!(
        code(s.verifier.verify(&forged).await),
        "key_algorithm_mismatch"
    );
    // Algorithms outside the allowlist never reach the key source.
    for alg in ["none", "HS256", "PS256", "ES384"] {
        let t = raw_sign(
            &s.key,
            json!({"alg": alg, "kid": s.key.kid(), "typ": IDENTITY_TOKEN_TYPE}),
            claims.clone(),
        );
        assert_eq!(
            code(s.verifier.verify(&t).await),
            "algorithm_not_allowed",
            "{alg}"
        );
    }
    // A narrower allowlist.
    let mut config = VerifierConfig::default();
    config.algorithms = AlgorithmSet::only(Algorithm::RS256);
    let rs_only = IdentityVerifier::with_config(s.ring.clone(), config).with_clock(s.clock.clone());
    let token = s.minter.identity_token(&alice()).unwrap();
    assert_eq!(
        code(rs_only.verify(token.as_str()).await),
        "algorithm_not_allowed"
    );
    // crit is refused.
    let crit = raw_sign(
        &s.key,
        json!({"alg": "EdDSA", "kid": s.key.kid(), "typ": IDENTITY_TOKEN_TYPE, "crit": ["exp"]}),
        claims,
    );
    assert_eq!(
        code(s.verifier.verify(&crit).await),
        "unsupported_critical_header"
    );
    // Size cap before decoding.
    let mut config = VerifierConfig::default();
    config.max_token_bytes = 64;
    let small = IdentityVerifier::with_config(s.ring.clone(), config);
    assert_eq!(code(small.verify(token.as_str()).await), "token_too_large");
}

#[tokio::test]
async fn replay_guard_makes_tokens_single_use() {
    let s = setup();
    let guard = Arc::new(ReplayGuard::new(100));
    let v = IdentityVerifier::new(s.ring.clone())
        .with_clock(s.clock.clone())
        .with_replay_guard(guard.clone());
    // Another verifier sharing the guard.
    let v2 = IdentityVerifier::new(s.ring.clone())
        .with_clock(s.clock.clone())
        .with_replay_guard(guard.clone());
    let t1 = s.minter.mint_identity(&alice()).unwrap();
    let t2 = s.minter.mint_identity(&alice()).unwrap();
    assert!(v.verify(t1.as_str()).await.is_ok());
    let e = v.verify(t1.as_str()).await.unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("token_replayed", 401));
    assert_eq!(code(v2.verify(t1.as_str()).await), "token_replayed");
    assert!(v2.verify(t2.as_str()).await.is_ok());
    assert_eq!(guard.len(), 2);
    // An invalid token is never recorded.
    let bad = sign(
        &s.key,
        IDENTITY_TOKEN_TYPE,
        with(identity_claims(), json!({"sub": ""})),
    );
    assert_eq!(code(v.verify(&bad).await), "missing_claim");
    assert_eq!(guard.len(), 2);
    // Past exp + leeway the token is expired (not "replayed"), and its entry may be purged.
    s.clock.advance(36);
    assert_eq!(code(v.verify(t1.as_str()).await), "expired");

    // A full guard fails closed with 503.
    let tiny = Arc::new(ReplayGuard::new(1));
    let v = IdentityVerifier::new(s.ring.clone())
        .with_clock(s.clock.clone())
        .with_replay_guard(tiny);
    assert!(
        v.verify(s.minter.mint_identity(&alice()).unwrap().as_str())
            .await
            .is_ok()
    );
    let e = v
        .verify(s.minter.mint_identity(&alice()).unwrap().as_str())
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.http_status()), ("replay_guard_full", 503));
    // Once the first token has expired, there is room again.
    s.clock.advance(36);
    assert!(
        v.verify(s.minter.mint_identity(&alice()).unwrap().as_str())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn rs256_and_es256_identity_tokens() {
    for key in [
        SigningKey::from_pem(&rsa().pkcs1_pem).unwrap(),
        SigningKey::generate(Algorithm::ES256).unwrap(),
    ] {
        let alg = key.algorithm();
        let clock = ManualClock::new(NOW);
        let ring = Arc::new(KeyRing::new(key));
        let minter = TokenMinter::new(ring.clone()).with_clock(clock.clone());
        let v = IdentityVerifier::new(ring).with_clock(clock);
        let who = v
            .verify(minter.identity_token(&alice()).unwrap().as_str())
            .await
            .unwrap();
        assert_eq!(who.algorithm(), alg);
    }
}

#[test]
fn verify_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = setup();
    let f = s.verifier.verify("x");
    assert_send(&f);
    let f = s.verifier.verify_header(Some("x"));
    assert_send(&f);
}

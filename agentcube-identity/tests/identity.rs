//! Identity tokens: minting and every verifier rule, each rejection with its exact code.

#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)] // test helpers

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet, KeySet};
use agentcube_auth_core::{
    AuthError, ManualClock, Principal, Rejection, Role, TokenVerifier, bearer,
};
use agentcube_identity::{
    ConfigError, IDENTITY_TOKEN_TYPE, IdentityVerifier, KeyRing, MintError, MinterConfig,
    ReplayGuard, SANDBOX_TOKEN_TYPE, SigningKey, TokenMinter, VerifierConfig,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::StatusCode;
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
    assert_eq!(
        Some(&json!(who.jwt_id())),
        who.claims().get("jti"),
        "the verified jti is the token's"
    );
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
    assert_eq!(
        (p.email(), p.email_verified()),
        (Some("alice@example.com"), false)
    );
    assert_eq!(p.claims(), who.claims());
    assert!(!format!("{who:?}").contains("alice@example.com"));
    assert!(format!("{who:?}").contains("alice-id"));
    // The TokenVerifier seam returns the same principal.
    let seam = TokenVerifier::verify(&s.verifier, token.as_str())
        .await
        .unwrap();
    assert_eq!(
        (seam.issuer(), seam.subject(), seam.roles()),
        (p.issuer(), p.subject(), p.roles())
    );
    assert!(TokenVerifier::is_ready(&s.verifier));

    // A minimal principal: no email, no roles.
    let bob_token = s.minter.identity_token(&bob()).unwrap();
    let bob = s.verifier.verify(bob_token.as_str()).await.unwrap();
    assert_eq!((bob.email(), bob.roles().len()), (None, 0));
    assert!(bob.claims().get("roles").is_none() && bob.claims().get("email").is_none());
}

#[tokio::test]
async fn roles_can_be_left_out() {
    let s = setup();
    let config = MinterConfig::new().include_roles(false);
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

/// Header parsing is auth-core's: `bearer::header_token` (and the `AuthLayer`, see
/// `http_layer.rs`) reads the identity header, then the verifier checks the bare token.
#[tokio::test]
async fn header_values() {
    let s = setup();
    let token = s.minter.identity_token(&alice()).unwrap();
    let verify = |value: &'static [u8]| {
        let v = &s.verifier;
        async move { v.verify(bearer::header_token(value)?).await }
    };
    assert_eq!(code(verify(b"").await), "missing_authorization");
    assert_eq!(code(verify(b"  ").await), "missing_authorization");
    assert_eq!(code(verify(b"\xff\xfe").await), "malformed");
    // Bytes, as from http::HeaderValue::as_bytes, trimmed.
    let value = format!(" {} ", token.as_str());
    let bare = bearer::header_token(value.as_bytes()).unwrap();
    assert_eq!(s.verifier.verify(bare).await.unwrap().subject(), "alice-id");
}

#[tokio::test]
async fn the_three_failure_kinds() {
    let s = setup();
    // 1. Header missing: 401 (auth-core's header parsing; the verifier only sees tokens).
    let e = bearer::header_token(b"").unwrap_err();
    assert_eq!(
        (e.code().as_str(), e.http_status()),
        ("missing_authorization", StatusCode::UNAUTHORIZED)
    );
    // 2. Keys unavailable / not ready: 503, for an empty ring and an empty key set.
    let token = s.minter.identity_token(&alice()).unwrap();
    let empty = IdentityVerifier::new(KeyRing::empty()).with_clock(s.clock.clone());
    assert!(!empty.is_ready());
    let e = empty.verify(token.as_str()).await.unwrap_err();
    assert_eq!(
        (e.code().as_str(), e.http_status()),
        ("keys_unavailable", StatusCode::SERVICE_UNAVAILABLE)
    );
    assert!(matches!(e, AuthError::KeysUnavailable(_)));
    assert_eq!(e.public_message(), "verification keys are unavailable");
    assert_eq!(Rejection::challenge(&e), None);
    let empty_set = IdentityVerifier::new(KeySet::default());
    assert_eq!(
        code(empty_set.verify(token.as_str()).await),
        "keys_unavailable"
    );
    // ... but garbage is still a 401: framing is checked before keys are looked up.
    let e = empty.verify("garbage").await.unwrap_err();
    assert_eq!(
        (e.code().as_str(), e.http_status()),
        ("malformed", StatusCode::UNAUTHORIZED)
    );
    // 3. Invalid: 401 with the precise code and a vague public message.
    // Change the first signature character (six whole bits of the signature).
    let (input, sig) = token.as_str().rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    let tampered = format!("{input}.{first}{}", &sig[1..]);
    let e = s.verifier.verify(&tampered).await.unwrap_err();
    assert_eq!(
        (e.code().as_str(), e.http_status()),
        ("invalid_signature", StatusCode::UNAUTHORIZED)
    );
    assert_eq!(e, AuthError::InvalidSignature);
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
    let config = VerifierConfig::new().identity_audience("other-wm");
    let other_aud = IdentityVerifier::with_config(s.ring.clone(), config)
        .unwrap()
        .with_clock(s.clock.clone());
    assert_eq!(code(other_aud.verify(&ok).await), "audience_mismatch");
    let config = VerifierConfig::new().issuer("router-b");
    let other_iss = IdentityVerifier::with_config(s.ring.clone(), config)
        .unwrap()
        .with_clock(s.clock.clone());
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
    let config = VerifierConfig::new().leeway(Duration::ZERO);
    let strict = IdentityVerifier::with_config(s.ring.clone(), config)
        .unwrap()
        .with_clock(s.clock.clone());
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
    let config = VerifierConfig::new().max_lifetime(Duration::from_secs(20));
    let tight = IdentityVerifier::with_config(s.ring.clone(), config)
        .unwrap()
        .with_clock(s.clock.clone());
    let token = s.minter.identity_token(&alice()).unwrap();
    let e = tight.verify(token.as_str()).await.unwrap_err();
    assert_eq!(e.code().as_str(), "lifetime_too_long");
    // And the minter refuses to mint over the maximum at all.
    let config = MinterConfig::new().identity_lifetime(Duration::from_secs(301));
    assert_eq!(
        TokenMinter::with_config(s.ring.clone(), config).err(),
        Some(ConfigError::LifetimeTooLong)
    );
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
    let config = VerifierConfig::new().algorithms(AlgorithmSet::only(Algorithm::RS256));
    let rs_only = IdentityVerifier::with_config(s.ring.clone(), config)
        .unwrap()
        .with_clock(s.clock.clone());
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
    let config = VerifierConfig::new().max_token_bytes(64);
    let small = IdentityVerifier::with_config(s.ring.clone(), config).unwrap();
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
    assert_eq!(
        (e.code().as_str(), e.http_status()),
        ("token_replayed", StatusCode::UNAUTHORIZED)
    );
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
    assert_eq!(
        (e.code().as_str(), e.http_status()),
        ("replay_guard_full", StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(e, AuthError::ReplayGuardFull);
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
    let f = TokenVerifier::verify(&s.verifier, "x");
    assert_send(&f);
}

#[test]
fn verifier_configuration_is_validated_when_built() {
    let ring = Arc::new(KeyRing::new(ed25519()));
    let build = |config: VerifierConfig| IdentityVerifier::with_config(ring.clone(), config).err();
    assert_eq!(build(VerifierConfig::new()), None);
    assert_eq!(VerifierConfig::new(), VerifierConfig::default());
    for (config, expected) in [
        (VerifierConfig::new().issuer(""), ConfigError::EmptyIssuer),
        (
            VerifierConfig::new().identity_audience(""),
            ConfigError::EmptyAudience,
        ),
        (
            VerifierConfig::new().max_lifetime(Duration::from_millis(999)),
            ConfigError::LifetimeTooShort,
        ),
        (
            VerifierConfig::new().algorithms(AlgorithmSet::EMPTY),
            ConfigError::NoAlgorithms,
        ),
        (
            VerifierConfig::new().max_token_bytes(0),
            ConfigError::ZeroTokenLimit,
        ),
    ] {
        assert_eq!(build(config), Some(expected), "{expected}");
    }
}

#[test]
fn mint_errors_are_500s_that_leak_nothing() {
    use agentcube_auth_core::jose::SignError;
    for (err, expected) in [
        (MintError::NoSigningKey, "no_signing_key"),
        (MintError::EmptySubject, "empty_subject"),
        (MintError::InvalidSessionId, "invalid_session_id"),
        (MintError::Signing(SignError::Crypto), "signing_failed"),
        (MintError::Signing(SignError::Payload), "signing_failed"),
    ] {
        assert_eq!(err.code(), expected);
        assert_eq!(Rejection::code(&err), expected);
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.public_message(), "internal token could not be issued");
        assert_eq!(err.challenge(), None);
        let service = err.to_service_error();
        assert_eq!(
            (service.code(), service.status()),
            (err.code(), StatusCode::INTERNAL_SERVER_ERROR)
        );
    }
    assert_eq!(
        MintError::from(SignError::Crypto),
        MintError::Signing(SignError::Crypto)
    );
}

//! Routing by the unverified `iss`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_auth_core::{AuthError, ErrorCode, MalformedReason, TokenVerifier};
use agentcube_oidc::test_util::MockIssuer;
use agentcube_oidc::{MultiIssuerVerifier, OidcVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

async fn two() -> (MockIssuer, MockIssuer) {
    let a = MockIssuer::builder().realm("tenant-a").start().await;
    let b = MockIssuer::builder()
        .realm("tenant-b")
        .algorithm(Algorithm::ES256)
        .start()
        .await;
    (a, b)
}

fn fetches(idps: &[&MockIssuer]) -> usize {
    idps.iter()
        .map(|i| i.jwks_fetches() + i.discovery_fetches())
        .sum()
}

#[tokio::test]
async fn each_token_goes_to_its_issuer() {
    let (a, b) = two().await;
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    assert_eq!(
        multi.issuers().collect::<Vec<_>>(),
        [a.issuer(), b.issuer()]
    );
    let pa = multi
        .verify(&a.token().subject("u-a").sign())
        .await
        .unwrap();
    let pb = multi
        .verify(&b.token().subject("u-b").sign())
        .await
        .unwrap();
    assert_eq!((pa.issuer(), pa.subject()), (a.issuer(), "u-a"));
    assert_eq!((pb.issuer(), pb.subject()), (b.issuer(), "u-b"));
    // Only the issuer that was asked about was contacted.
    assert_eq!(a.jwks_fetches(), 1);
    assert_eq!(b.jwks_fetches(), 1);
}

#[tokio::test]
async fn unknown_issuers_are_rejected_without_any_fetch() {
    let (a, b) = two().await;
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    for iss in [
        "https://evil.example/realms/agentcube".to_owned(),
        format!("{}/", a.issuer()),
        a.issuer().to_uppercase(),
        a.issuer().replace("tenant-a", "tenant-c"),
        String::new(),
    ] {
        let token = a.token().issuer(&iss).sign();
        assert_eq!(
            multi.verify(&token).await.unwrap_err(),
            AuthError::UnknownIssuer,
            "{iss}"
        );
    }
    assert_eq!(fetches(&[&a, &b]), 0);
    let stats = multi.stats();
    assert_eq!(stats.unrouted_rejections[&ErrorCode::UnknownIssuer], 5);
}

#[tokio::test]
async fn framing_errors_before_routing() {
    let (a, b) = two().await;
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let cases = [
        (String::new(), AuthError::Malformed(MalformedReason::Empty)),
        (
            "a.b".into(),
            AuthError::Malformed(MalformedReason::SegmentCount),
        ),
        (
            "a.b.c.d.e".into(),
            AuthError::Malformed(MalformedReason::Encrypted),
        ),
        (
            "a.b!.c".into(),
            AuthError::Malformed(MalformedReason::Base64),
        ),
        (
            format!("x.{}.y", enc(json!([1]))),
            AuthError::Malformed(MalformedReason::PayloadJson),
        ),
        (
            format!("x.{}.y", enc(json!({"sub": "s"}))),
            AuthError::MissingClaim("iss".into()),
        ),
        (
            format!("x.{}.y", enc(json!({"iss": 7}))),
            AuthError::InvalidClaim("iss".into()),
        ),
        (
            "A".repeat(9000),
            AuthError::TokenTooLarge {
                size: 9000,
                limit: 8192,
            },
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(
            multi.verify(&token).await.unwrap_err(),
            expected,
            "{token:.40}"
        );
    }
    assert_eq!(fetches(&[&a, &b]), 0);
}

#[tokio::test]
async fn a_token_claiming_another_issuer_is_judged_by_that_issuer() {
    let (a, b) = two().await;
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    // Signed by A's key, claiming to be from B: routed to B, whose keys do not know A's kid.
    let token = a.token().issuer(b.issuer()).sign();
    let err = multi.verify(&token).await.unwrap_err();
    // B's rules judge it: B allows only ES256 (its key's algorithm), so the RS256 header that A
    // would accept is refused.
    assert_eq!(err.code(), ErrorCode::AlgorithmNotAllowed);
    // With every algorithm allowed at B, the header passes and A's kid is unknown to B.
    let lenient = MultiIssuerVerifier::new([
        a.verifier(),
        OidcVerifier::new(b.config().algorithms(AlgorithmSet::ALL)).unwrap(),
    ])
    .unwrap();
    assert_eq!(
        lenient.verify(&token).await.unwrap_err().code(),
        ErrorCode::UnknownKid
    );
    // The header rules are B's: an `alg: none` token claiming B is rejected by B.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(json!({"iss": b.issuer()}).to_string())
    );
    assert_eq!(
        multi.verify(&none).await.unwrap_err().code(),
        ErrorCode::AlgorithmNotAllowed
    );
    assert_eq!(a.jwks_fetches(), 0);
}

#[tokio::test]
async fn hits_cost_no_routing_and_are_counted_once() {
    let (a, b) = two().await;
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    let token = b.token().sign();
    for _ in 0..5 {
        multi.verify(&token).await.unwrap();
    }
    let stats = multi.stats();
    let (sa, sb) = (&stats.issuers[0], &stats.issuers[1]);
    assert_eq!((sa.cache_hits, sa.cache_misses, sa.accepted), (0, 0, 0));
    assert_eq!((sb.cache_hits, sb.cache_misses, sb.accepted), (4, 1, 5));
    assert_eq!(b.jwks_fetches(), 1);
}

#[tokio::test]
async fn readiness() {
    let (a, b) = two().await;
    b.fail(true);
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    assert!(!multi.is_ready());
    multi.verify(&a.token().sign()).await.unwrap();
    assert!(
        TokenVerifier::is_ready(&multi),
        "one issuer with keys is enough to serve"
    );
    assert!(!multi.all_ready());
    assert_eq!(
        multi.verify(&b.token().sign()).await.unwrap_err().code(),
        ErrorCode::KeysUnavailable
    );
    assert!(multi.verifier(b.issuer()).is_some());
    assert!(multi.verifier("https://nope").is_none());
}

#[tokio::test]
async fn works_through_the_token_verifier_trait() {
    let (a, b) = two().await;
    let multi =
        std::sync::Arc::new(MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap());
    async fn run(v: impl TokenVerifier, token: &str) -> String {
        v.verify(token).await.unwrap().subject().to_owned()
    }
    assert_eq!(
        run(multi.clone(), &a.token().subject("x").sign()).await,
        "x"
    );
}

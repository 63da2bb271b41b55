//! Attacker thinking: every rejection rule sees its exact code, and nothing that fails framing or
//! header rules reaches the network.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet, TypePolicy};
use agentcube_auth_core::{AuthError, ErrorCode, MalformedReason, ManualClock, TypeLocation};
use agentcube_oidc::test_util::{MockIssuer, TestKey, TokenBuilder};
use agentcube_oidc::{CacheConfig, OidcConfig, OidcVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const NOW: i64 = 1_800_000_000;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token from raw parts; the signature is whatever the caller says.
fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(claims.to_string()),
        b64(signature)
    )
}

/// An issuer on a manual clock at `NOW`, with RS256 and ES256 keys published.
async fn idp() -> MockIssuer {
    MockIssuer::builder()
        .algorithm(Algorithm::RS256)
        .algorithm(Algorithm::ES256)
        .clock(ManualClock::new(NOW))
        .start()
        .await
}

/// The library defaults (RS256 only, audience `agentcube-api`, ...) against `idp`, uncached so
/// every call runs the whole pipeline.
fn default_verifier(idp: &MockIssuer) -> OidcVerifier {
    OidcVerifier::new(
        OidcConfig::new(idp.issuer())
            .clock(idp.clock())
            .cache(CacheConfig::disabled()),
    )
    .unwrap()
}

/// Every algorithm allowed (the mock's own config allows only its keys' algorithms), so the
/// key-type checks behind the allowlist are what is tested.
fn all_algorithms(idp: &MockIssuer) -> OidcVerifier {
    OidcVerifier::new(
        idp.config()
            .algorithms(AlgorithmSet::ALL)
            .cache(CacheConfig::disabled()),
    )
    .unwrap()
}

async fn err(v: &OidcVerifier, token: &str) -> AuthError {
    v.verify(token).await.expect_err("token must be rejected")
}

async fn code(v: &OidcVerifier, token: &str) -> ErrorCode {
    err(v, token).await.code()
}

fn no_traffic(idp: &MockIssuer) {
    assert_eq!(
        (idp.discovery_fetches(), idp.jwks_fetches()),
        (0, 0),
        "a framing or header failure must not touch the network"
    );
}

fn rs_claims(idp: &MockIssuer) -> Value {
    idp.token().claims_json()
}

#[tokio::test]
async fn the_baseline_token_is_accepted() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let p = v.verify(&idp.token().sign()).await.unwrap();
    assert!(p.roles().contains_realm("sandbox:invoke"));
}

#[tokio::test]
async fn alg_none_in_any_spelling_is_rejected_without_a_fetch() {
    let idp = idp().await;
    let v = all_algorithms(&idp);
    let claims = rs_claims(&idp);
    for alg in ["none", "None", "NONE", "nOnE", "none ", ""] {
        for sig in [&b""[..], &[0u8; 256][..]] {
            let token = forge(&json!({"alg": alg, "typ": "JWT"}), &claims, sig);
            let e = err(&v, &token).await;
            assert_eq!(e.code(), ErrorCode::AlgorithmNotAllowed, "{alg:?}");
        }
    }
    // The classic "header.payload." with nothing after the last dot.
    let token = format!(
        "{}.{}.",
        b64(json!({"alg": "none"}).to_string()),
        b64(claims.to_string())
    );
    assert_eq!(code(&v, &token).await, ErrorCode::AlgorithmNotAllowed);
    no_traffic(&idp);
}

#[tokio::test]
async fn hmac_signed_with_the_rsa_public_key_is_rejected_without_a_fetch() {
    use aws_lc_rs::hmac;
    let idp = idp().await;
    let v = all_algorithms(&idp);
    let rsa = idp
        .published_keys()
        .into_iter()
        .find(|k| k.algorithm() == Algorithm::RS256)
        .unwrap();
    let jwk = rsa.jwk();
    // The public key as SPKI DER and PEM, the classic forms of this attack.
    let spki = {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(rsa.pkcs8_der()).unwrap();
        pair.public_key().as_der().unwrap().as_ref().to_vec()
    };
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(&spki)
    );
    // Every form an attacker might guess the verifier uses as the "secret".
    let secrets: Vec<Vec<u8>> = vec![
        spki,
        pem.into_bytes(),
        URL_SAFE_NO_PAD.decode(jwk.n.as_deref().unwrap()).unwrap(),
        jwk.n.clone().unwrap().into_bytes(),
        rsa.jwk_json().to_string().into_bytes(),
    ];
    for (name, alg) in [
        ("HS256", hmac::HMAC_SHA256),
        ("HS384", hmac::HMAC_SHA384),
        ("HS512", hmac::HMAC_SHA512),
    ] {
        for secret in &secrets {
            let header = json!({"alg": name, "typ": "JWT", "kid": rsa.kid()});
            let input = format!(
                "{}.{}",
                b64(header.to_string()),
                b64(rs_claims(&idp).to_string())
            );
            let tag = hmac::sign(&hmac::Key::new(alg, secret), input.as_bytes());
            let token = format!("{input}.{}", b64(tag.as_ref()));
            assert_eq!(code(&v, &token).await, ErrorCode::AlgorithmNotAllowed);
        }
    }
    no_traffic(&idp);
}

#[tokio::test]
async fn algorithms_outside_the_allowlist_are_rejected_without_a_fetch() {
    let idp = idp().await;
    let v = default_verifier(&idp); // RS256 only
    let es = idp
        .published_keys()
        .into_iter()
        .find(|k| k.algorithm() == Algorithm::ES256)
        .unwrap();
    let token = idp.token().signed_by(es).sign();
    let e = err(&v, &token).await;
    assert_eq!(
        e,
        AuthError::AlgorithmNotAllowed(agentcube_auth_core::Untrusted::new("ES256"))
    );
    for alg in ["RS1", "ES512", "rs256", "HS256", "RSA-OAEP", "dir"] {
        let token = idp.token().header("alg", alg).sign();
        assert_eq!(
            code(&v, &token).await,
            ErrorCode::AlgorithmNotAllowed,
            "{alg}"
        );
    }
    let token = idp.token().header("alg", 256).sign();
    assert_eq!(
        err(&v, &token).await,
        AuthError::Malformed(MalformedReason::HeaderField)
    );
    let token = idp.token().without_header("alg").sign();
    assert_eq!(
        err(&v, &token).await,
        AuthError::Malformed(MalformedReason::HeaderField)
    );
    no_traffic(&idp);
}

#[tokio::test]
async fn crit_is_rejected_even_when_validly_signed() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    for crit in [json!(["exp"]), json!([]), json!(["b64"]), json!("x")] {
        let token = idp
            .token()
            .header("crit", crit.clone())
            .header("b64", false)
            .sign();
        assert_eq!(
            code(&v, &token).await,
            ErrorCode::UnsupportedCriticalHeader,
            "{crit}"
        );
    }
    no_traffic(&idp);
}

#[tokio::test]
async fn embedded_keys_and_key_urls_are_never_used_or_fetched() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let evil = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": []})))
        .mount(&evil)
        .await;
    let attacker = Arc::new(TestKey::generate(Algorithm::RS256));
    let real_kid = idp.signing_key().kid().to_owned();
    // The header is bounded (`MAX_HEADER_BYTES`), and an RSA-2048 DER does not fit next to the
    // attacker's JWK: the `x5c` carries a small (Ed25519) attacker key instead. It is never read
    // either way.
    let x5c = STANDARD.encode(TestKey::generate(Algorithm::EdDSA).pkcs8_der());
    let embed = |b: TokenBuilder| {
        b.header("jwk", attacker.jwk_json())
            .header("jku", format!("{}/jwks.json", evil.uri()))
            .header("x5u", format!("{}/cert.pem", evil.uri()))
            .header("x5c", json!([x5c.clone()]))
    };
    // Signed by the attacker's key, naming the attacker's kid: not in the issuer's set.
    let token = embed(idp.token().signed_by(Arc::clone(&attacker))).sign();
    assert_eq!(code(&v, &token).await, ErrorCode::UnknownKid);
    // Signed by the attacker's key, naming the issuer's real kid: the real key says no.
    let token = embed(idp.token().signed_by(Arc::clone(&attacker)).kid(&real_kid)).sign();
    assert_eq!(code(&v, &token).await, ErrorCode::InvalidSignature);
    // Without any kid: the issuer's only RS256 key is tried, and says no.
    let token = embed(idp.token().signed_by(Arc::clone(&attacker)))
        .without_header("kid")
        .sign();
    assert_eq!(code(&v, &token).await, ErrorCode::InvalidSignature);
    // A genuine token carrying the same junk headers is fine: they are ignored, not fatal.
    let token = embed(idp.token()).sign();
    v.verify(&token).await.unwrap();
    // An embedded RSA certificate chain alone exceeds the header bound: malformed, unread.
    let token = idp
        .token()
        .header("x5c", json!([STANDARD.encode(attacker.pkcs8_der())]))
        .sign();
    assert_eq!(
        err(&v, &token).await,
        AuthError::Malformed(MalformedReason::HeaderTooLarge)
    );
    assert_eq!(
        evil.received_requests().await.unwrap().len(),
        0,
        "jku/x5u must never be fetched"
    );
}

#[tokio::test]
async fn hostile_kids() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let malformed = [
        "x".repeat(129),
        "x".repeat(100_000),
        String::new(),
        "kid\u{0}".into(),
        "a\nb".into(),
        "a b".into(),
        "\u{7f}".into(),
        "ключ".into(),
        "🔑".into(),
        "\u{202e}dik".into(),
    ];
    for kid in &malformed {
        let token = idp.token().kid(kid).sign();
        let e = err(&v, &token).await;
        assert!(
            matches!(
                e,
                AuthError::Malformed(MalformedReason::KeyId) | AuthError::TokenTooLarge { .. }
            ),
            "{kid:?}: {e:?}"
        );
    }
    let token = idp.token().header("kid", 42).sign();
    assert_eq!(
        err(&v, &token).await,
        AuthError::Malformed(MalformedReason::HeaderField)
    );
    no_traffic(&idp);
    // Printable but unknown: the first loads the key set and, since a fresh set may just have
    // missed a rotation, refreshes it once; every later one is within the cooldown.
    for kid in [
        "../../../../etc/passwd",
        "%2e%2e%2f",
        "';DROP/**/TABLE/**/keys;--",
        "${jndi:ldap://x}",
        "x".repeat(128).as_str(),
    ] {
        let token = idp.token().kid(kid).sign();
        assert_eq!(code(&v, &token).await, ErrorCode::UnknownKid, "{kid}");
    }
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "the initial load and one unknown-kid refresh for the whole batch"
    );
}

#[tokio::test]
async fn duplicate_json_members_are_malformed() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let key = idp.signing_key();
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, key.kid());
    let claims = rs_claims(&idp).to_string();
    let claims_body = claims.strip_prefix('{').unwrap();
    let cases: Vec<(String, String)> = vec![
        // Header: a second alg.
        (
            format!(r#"{{"alg":"none","alg":"RS256","kid":"{}"}}"#, key.kid()),
            claims.clone(),
        ),
        // Payload: a second sub, a second aud, an escaped duplicate, a nested duplicate.
        (header.clone(), format!(r#"{{"sub":"admin",{claims_body}"#)),
        (header.clone(), format!(r#"{{"aud":"other",{claims_body}"#)),
        (
            header.clone(),
            format!(r#"{{"s\u0075b":"admin",{claims_body}"#),
        ),
        (
            header.clone(),
            claims.replacen(
                r#""realm_access":{"roles":["#,
                r#""realm_access":{"roles":["admin"],"roles":["#,
                1,
            ),
        ),
    ];
    for (h, c) in cases {
        let token = key.sign_compact_raw(h.as_bytes(), c.as_bytes());
        assert_eq!(
            err(&v, &token).await,
            AuthError::Malformed(MalformedReason::DuplicateMember),
            "{h} {c}"
        );
    }
    no_traffic(&idp);
}

#[tokio::test]
async fn numeric_claims_of_the_wrong_type_are_errors_not_absent() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    for (name, value) in [
        ("exp", json!("9999999999")),
        ("exp", json!(true)),
        ("exp", json!(null)),
        ("exp", json!([NOW + 60])),
        ("exp", json!({"$date": NOW + 60})),
        ("exp", json!(1e300)),
        ("exp", json!(18446744073709551615u64)),
        ("nbf", json!("0")),
        ("nbf", json!(false)),
        ("iat", json!("now")),
        ("iat", json!({})),
    ] {
        let token = idp.token().claim(name, value.clone()).sign();
        assert_eq!(
            err(&v, &token).await,
            AuthError::InvalidClaim(name.into()),
            "{name}: {value}"
        );
    }
    let token = idp.token().without_claim("exp").sign();
    assert_eq!(err(&v, &token).await, AuthError::MissingClaim("exp".into()));
    // A fractional exp is fine (truncated towards the past).
    let token = idp.token().claim("exp", NOW as f64 + 60.5).sign();
    v.verify(&token).await.unwrap();
}

#[tokio::test]
async fn framing_attacks() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let good = idp.token().sign();
    let parts: Vec<&str> = good.split('.').collect();
    let m = |r| AuthError::Malformed(r);
    let cases: Vec<(String, AuthError)> = vec![
        (String::new(), m(MalformedReason::Empty)),
        ("a".into(), m(MalformedReason::SegmentCount)),
        ("a.b".into(), m(MalformedReason::SegmentCount)),
        (format!("{good}.x"), m(MalformedReason::SegmentCount)),
        (".".repeat(4), m(MalformedReason::Encrypted)),
        (format!("{good}.x.y"), m(MalformedReason::Encrypted)),
        (".".repeat(2000), m(MalformedReason::SegmentCount)),
        (
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            m(MalformedReason::Base64),
        ),
        (
            format!("{}.{}==.{}", parts[0], parts[1], parts[2]),
            m(MalformedReason::Base64),
        ),
        (
            good.replacen('-', "+", 1).replacen('_', "/", 1),
            m(MalformedReason::Base64),
        ),
        (format!(" {good}"), m(MalformedReason::Base64)),
        (format!("{good}\n"), m(MalformedReason::Base64)),
        (
            format!("{}.{}.{}", b64("[]"), parts[1], parts[2]),
            m(MalformedReason::HeaderJson),
        ),
        (
            format!("{}.{}.{}", b64("{\"alg\":\"RS256\""), parts[1], parts[2]),
            m(MalformedReason::HeaderJson),
        ),
        (
            format!("{}.{}.{}", parts[0], b64("[1,2]"), parts[2]),
            m(MalformedReason::PayloadJson),
        ),
        (
            format!("{}.{}.{}", parts[0], b64("\"sub\""), parts[2]),
            m(MalformedReason::PayloadJson),
        ),
        (
            format!("{}.{}.{}", parts[0], b64([0xff, 0xfe]), parts[2]),
            m(MalformedReason::PayloadJson),
        ),
        (
            // JWE header in JWS framing.
            forge(
                &json!({"alg": "RSA-OAEP", "enc": "A256GCM"}),
                &json!({}),
                &[0; 256],
            ),
            AuthError::AlgorithmNotAllowed(agentcube_auth_core::Untrusted::new("RSA-OAEP")),
        ),
        (
            forge(
                &json!({"alg": "RS256", "enc": "A256GCM"}),
                &json!({}),
                &[0; 256],
            ),
            m(MalformedReason::Encrypted),
        ),
    ];
    for (token, expected) in cases {
        assert_eq!(err(&v, &token).await, expected, "{token:.60}");
    }
    // Oversized, before any decoding.
    let big = format!("{good}{}", "A".repeat(8 * 1024));
    assert_eq!(code(&v, &big).await, ErrorCode::TokenTooLarge);
    let padded = idp.token().claim("pad", "x".repeat(8 * 1024)).sign();
    assert_eq!(code(&v, &padded).await, ErrorCode::TokenTooLarge);
    let many_dots = "a.".repeat(100_000);
    assert_eq!(code(&v, &many_dots).await, ErrorCode::TokenTooLarge);
    no_traffic(&idp);
}

#[tokio::test]
async fn signature_encoding_attacks() {
    let idp = MockIssuer::builder()
        .algorithm(Algorithm::ES256)
        .algorithm(Algorithm::RS256)
        .algorithm(Algorithm::EdDSA)
        .clock(ManualClock::new(NOW))
        .start()
        .await;
    let v = all_algorithms(&idp);
    let keys = idp.published_keys();
    let es = Arc::clone(&keys[0]);
    let rs = Arc::clone(&keys[1]);
    let ed = Arc::clone(&keys[2]);
    let unsigned = |key: &TestKey| {
        let t = idp
            .token()
            .signed_by(Arc::new(TestKey::generate(key.algorithm())));
        let t = t.kid(key.kid());
        let header = t.header_json();
        let claims = t.claims_json();
        (header, claims)
    };
    let malformed_sig = AuthError::Malformed(MalformedReason::SignatureEncoding);
    // Wrong lengths for fixed-size algorithms: rejected at framing.
    for (key, len) in [
        (&es, 63),
        (&es, 65),
        (&es, 0),
        (&ed, 63),
        (&ed, 65),
        (&rs, 255),
        (&rs, 0),
    ] {
        let (h, c) = unsigned(key);
        assert_eq!(
            err(&v, &forge(&h, &c, &vec![1; len])).await,
            malformed_sig,
            "{len}"
        );
    }
    no_traffic(&idp);
    // An over-long RSA signature reaches the key, which refuses it.
    let (h, c) = unsigned(&rs);
    assert_eq!(
        code(&v, &forge(&h, &c, &[1; 512])).await,
        ErrorCode::InvalidSignature
    );
    // ECDSA r = s = 0 (CVE-2022-21449) and r = s = n-ish garbage.
    let (h, c) = unsigned(&es);
    assert_eq!(
        code(&v, &forge(&h, &c, &[0; 64])).await,
        ErrorCode::InvalidSignature
    );
    assert_eq!(
        code(&v, &forge(&h, &c, &[0xff; 64])).await,
        ErrorCode::InvalidSignature
    );
    // A DER-encoded ECDSA signature made with the real key: JOSE requires the fixed form.
    let der_signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        es.pkcs8_der(),
    )
    .unwrap();
    let t = idp.token().signed_by(Arc::clone(&es));
    let input = format!(
        "{}.{}",
        b64(t.header_json().to_string()),
        b64(t.claims_json().to_string())
    );
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der = der_signer.sign(&rng, input.as_bytes()).unwrap();
    assert_ne!(der.as_ref().len(), 64);
    let token = format!("{input}.{}", b64(der.as_ref()));
    assert_eq!(err(&v, &token).await, malformed_sig);
    // Ed25519 with the signature of another message.
    let (h, c) = unsigned(&ed);
    let sig = ed.sign(b"something else");
    assert_eq!(
        code(&v, &forge(&h, &c, &sig)).await,
        ErrorCode::InvalidSignature
    );
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn algorithm_and_key_type_must_match() {
    let idp = idp().await;
    let v = all_algorithms(&idp);
    let keys = idp.published_keys();
    let (rs, es) = (&keys[0], &keys[1]);
    // RS256 header naming the EC key: a shaped signature, the wrong key type.
    let token = idp.token().signed_by(Arc::clone(rs)).kid(es.kid()).sign();
    assert_eq!(code(&v, &token).await, ErrorCode::KeyAlgorithmMismatch);
    // PS256 with the RSA key whose JWK says RS256.
    let token = idp
        .token()
        .signed_by(Arc::clone(rs))
        .algorithm(Algorithm::PS256)
        .sign();
    assert_eq!(code(&v, &token).await, ErrorCode::KeyAlgorithmMismatch);
    // EdDSA header naming the RSA key (64-byte signature so framing passes).
    let ed = Arc::new(TestKey::generate(Algorithm::EdDSA));
    let token = idp.token().signed_by(ed).kid(rs.kid()).sign();
    assert_eq!(code(&v, &token).await, ErrorCode::KeyAlgorithmMismatch);
    assert_eq!(
        idp.jwks_fetches(),
        1,
        "a known kid never triggers a refresh"
    );
}

#[tokio::test]
async fn a_known_kid_with_a_bad_signature_never_fetches() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    v.verify(&idp.token().sign()).await.unwrap();
    let good = idp.token().sign();
    let (input, _) = good.rsplit_once('.').unwrap();
    for i in 0..200u8 {
        let token = format!("{input}.{}", b64([i; 256]));
        assert_eq!(code(&v, &token).await, ErrorCode::InvalidSignature);
    }
    // Claims changed after signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["realm_access"]["roles"] = json!(["admin"]);
    parts[1] = b64(claims.to_string());
    assert_eq!(
        code(&v, &parts.join(".")).await,
        ErrorCode::InvalidSignature
    );
    // Same kid, different key material.
    let impostor = Arc::new(TestKey::generate(Algorithm::RS256).with_kid(idp.signing_key().kid()));
    let token = idp.token().signed_by(impostor).sign();
    assert_eq!(code(&v, &token).await, ErrorCode::InvalidSignature);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn issuer_must_match_exactly() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let iss = idp.issuer().to_owned();
    for other in [
        format!("{iss}/"),
        iss.to_uppercase(),
        iss.replace("agentcube", "Agentcube"),
        iss.replace("agentcube", "master"),
        iss.replace("http://", "https://"),
        format!("{iss} "),
        String::new(),
    ] {
        let token = idp.token().issuer(&other).sign();
        assert_eq!(err(&v, &token).await, AuthError::IssuerMismatch, "{other}");
    }
    let token = idp.token().without_claim("iss").sign();
    assert_eq!(err(&v, &token).await, AuthError::MissingClaim("iss".into()));
    let token = idp.token().claim("iss", json!([iss])).sign();
    assert_eq!(err(&v, &token).await, AuthError::InvalidClaim("iss".into()));
    // A trailing slash in the configuration is a different issuer too.
    let slash = OidcVerifier::new(
        OidcConfig::new(format!("{iss}/"))
            .clock(idp.clock())
            .jwks_url(idp.jwks_url()),
    )
    .unwrap();
    assert_eq!(
        code(&slash, &idp.token().sign()).await,
        ErrorCode::IssuerMismatch
    );
}

#[tokio::test]
async fn audience_rules() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    for aud in [
        json!("account"),
        json!(["account"]),
        json!([]),
        json!("agentcube-api "),
    ] {
        let token = idp.token().audience(aud.clone()).sign();
        assert_eq!(code(&v, &token).await, ErrorCode::AudienceMismatch, "{aud}");
    }
    for aud in [
        json!(5),
        json!(["agentcube-api", 5]),
        json!({"agentcube-api": true}),
    ] {
        let token = idp.token().audience(aud.clone()).sign();
        assert_eq!(code(&v, &token).await, ErrorCode::InvalidClaim, "{aud}");
    }
    let token = idp.token().without_claim("aud").sign();
    assert_eq!(code(&v, &token).await, ErrorCode::MissingClaim);
    let token = idp
        .token()
        .audience(json!(["account", "agentcube-api"]))
        .sign();
    v.verify(&token).await.unwrap();
    // `account` counts only when configured.
    let account = OidcVerifier::new(
        OidcConfig::new(idp.issuer())
            .clock(idp.clock())
            .audiences(["account"]),
    )
    .unwrap();
    account
        .verify(&idp.token().audience("account").sign())
        .await
        .unwrap();
}

#[tokio::test]
async fn keycloak_id_refresh_and_logout_tokens_are_not_access_tokens() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    for typ in ["ID", "Refresh", "Logout", "Offline", "bearer-ish", ""] {
        let token = idp.token().token_type(typ).sign();
        let e = err(&v, &token).await;
        assert!(
            matches!(
                &e,
                AuthError::TokenTypeMismatch { location: TypeLocation::Payload, found }
                    if found.as_str() == typ
            ),
            "{typ}: {e:?}"
        );
    }
    // Case does not matter for Bearer; a missing typ is fine (other issuers).
    v.verify(&idp.token().token_type("bearer").sign())
        .await
        .unwrap();
    v.verify(&idp.token().without_claim("typ").sign())
        .await
        .unwrap();
    let token = idp.token().claim("typ", 1).sign();
    assert_eq!(err(&v, &token).await, AuthError::InvalidClaim("typ".into()));
    // A realistic ID token: audience is the client, so it fails there first (claims are checked in a fixed order).
    let id = idp
        .token()
        .token_type("ID")
        .audience("agentcube-cli")
        .sign();
    assert_eq!(code(&v, &id).await, ErrorCode::AudienceMismatch);
    // A Keycloak refresh token is HS512-signed with a realm secret: rejected at the header.
    let refresh = forge(
        &json!({"alg": "HS512", "typ": "JWT", "kid": "6f1b2c"}),
        &json!({"typ": "Refresh", "iss": idp.issuer(), "aud": idp.issuer(), "sub": "u", "exp": NOW + 1800}),
        &[7; 64],
    );
    assert_eq!(code(&v, &refresh).await, ErrorCode::AlgorithmNotAllowed);
    // The same shape signed with RS256 still is not an access token.
    let refresh = idp.token().token_type("Refresh").sign();
    assert_eq!(code(&v, &refresh).await, ErrorCode::TokenTypeMismatch);
    // The check can be turned off for issuers that use `typ` differently.
    let lax = OidcVerifier::new(
        OidcConfig::new(idp.issuer())
            .clock(idp.clock())
            .payload_type(None),
    )
    .unwrap();
    lax.verify(&idp.token().token_type("ID").sign())
        .await
        .unwrap();
}

#[tokio::test]
async fn header_typ_rules() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    for typ in ["JWT", "jwt", "at+jwt", "application/at+jwt", "AT+JWT"] {
        v.verify(&idp.token().header("typ", typ).sign())
            .await
            .unwrap();
    }
    v.verify(&idp.token().without_header("typ").sign())
        .await
        .unwrap();
    let fetches = idp.jwks_fetches();
    for typ in [
        "JWS",
        "id_token+jwt",
        "logout+jwt",
        "agentcube-identity+jwt",
        "",
    ] {
        let token = idp.token().header("typ", typ).sign();
        let e = err(&v, &token).await;
        assert!(
            matches!(
                e,
                AuthError::TokenTypeMismatch {
                    location: TypeLocation::Header,
                    ..
                }
            ),
            "{typ}: {e:?}"
        );
    }
    assert_eq!(idp.jwks_fetches(), fetches, "header failures never fetch");
    // A stricter policy: only at+jwt.
    let strict = OidcVerifier::new(
        OidcConfig::new(idp.issuer())
            .clock(idp.clock())
            .header_types(TypePolicy::exactly("at+jwt")),
    )
    .unwrap();
    assert_eq!(
        code(&strict, &idp.token().sign()).await,
        ErrorCode::TokenTypeMismatch
    );
    strict
        .verify(&idp.token().header("typ", "at+jwt").sign())
        .await
        .unwrap();
}

#[tokio::test]
async fn subject_is_required_and_non_empty() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let token = idp.token().without_claim("sub").sign();
    assert_eq!(err(&v, &token).await, AuthError::MissingClaim("sub".into()));
    let token = idp.token().subject("").sign();
    assert_eq!(err(&v, &token).await, AuthError::MissingClaim("sub".into()));
    let token = idp.token().claim("sub", 42).sign();
    assert_eq!(err(&v, &token).await, AuthError::InvalidClaim("sub".into()));
    let token = idp.token().claim("sub", Value::Null).sign();
    assert_eq!(err(&v, &token).await, AuthError::MissingClaim("sub".into()));
}

#[tokio::test]
async fn leeway_edges_with_a_manual_clock() {
    let clock = ManualClock::new(NOW);
    let idp = MockIssuer::builder().clock(clock.clone()).start().await;
    let v = default_verifier(&idp);
    let t = |b: TokenBuilder| b.sign();
    // exp: valid through exp + 30 s.
    let token = t(idp.token().issued_at(NOW - 300).expires_at(NOW - 30));
    v.verify(&token).await.unwrap();
    let token = t(idp.token().issued_at(NOW - 300).expires_at(NOW - 31));
    assert_eq!(err(&v, &token).await, AuthError::Expired);
    // nbf: valid from nbf - 30 s.
    let token = t(idp.token().not_before(NOW + 30));
    v.verify(&token).await.unwrap();
    let token = t(idp.token().not_before(NOW + 31));
    assert_eq!(err(&v, &token).await, AuthError::NotYetValid);
    // iat: at most 30 s in the future.
    let token = t(idp.token().issued_at(NOW + 30));
    v.verify(&token).await.unwrap();
    let token = t(idp.token().issued_at(NOW + 31));
    assert_eq!(err(&v, &token).await, AuthError::IssuedInFuture);
    // The same token expires as the clock moves.
    let token = t(idp.token().issued_at(NOW).expires_at(NOW + 10));
    clock.set(NOW + 40);
    v.verify(&token).await.unwrap();
    clock.set(NOW + 41);
    assert_eq!(err(&v, &token).await, AuthError::Expired);
    // Zero leeway.
    clock.set(NOW);
    let strict = OidcVerifier::new(
        OidcConfig::new(idp.issuer())
            .clock(clock.clone())
            .leeway(Duration::ZERO)
            .cache(CacheConfig::disabled()),
    )
    .unwrap();
    let token = t(idp.token().issued_at(NOW - 300).expires_at(NOW));
    strict.verify(&token).await.unwrap();
    let token = t(idp.token().issued_at(NOW - 300).expires_at(NOW - 1));
    assert_eq!(err(&strict, &token).await, AuthError::Expired);
    let token = t(idp.token().not_before(NOW + 1));
    assert_eq!(err(&strict, &token).await, AuthError::NotYetValid);
}

#[tokio::test]
async fn optional_policies_azp_lifetime_required_claims_iat() {
    let idp = idp().await;
    let base = || {
        OidcConfig::new(idp.issuer())
            .clock(idp.clock())
            .cache(CacheConfig::disabled())
    };
    let azp = OidcVerifier::new(base().allowed_azp(["agentcube-cli", "agentcube-app"])).unwrap();
    azp.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(
        err(&azp, &idp.token().azp("evil-client").sign()).await,
        AuthError::AzpNotAllowed
    );
    assert_eq!(
        err(&azp, &idp.token().without_claim("azp").sign()).await,
        AuthError::MissingClaim("azp".into())
    );
    assert_eq!(
        err(
            &azp,
            &idp.token().claim("azp", json!(["agentcube-cli"])).sign()
        )
        .await,
        AuthError::InvalidClaim("azp".into())
    );

    let capped = OidcVerifier::new(base().max_lifetime(Duration::from_secs(600))).unwrap();
    capped.verify(&idp.token().sign()).await.unwrap();
    let long = idp.token().issued_at(NOW).expires_at(NOW + 601).sign();
    assert_eq!(code(&capped, &long).await, ErrorCode::LifetimeTooLong);
    let no_iat = idp
        .token()
        .without_claim("iat")
        .expires_at(NOW + 3600)
        .sign();
    assert_eq!(code(&capped, &no_iat).await, ErrorCode::LifetimeTooLong);

    let required = OidcVerifier::new(base().required_claims(["jti", "session_state"])).unwrap();
    assert_eq!(
        err(&required, &idp.token().sign()).await,
        AuthError::MissingClaim("session_state".into())
    );
    required
        .verify(&idp.token().claim("session_state", "s").sign())
        .await
        .unwrap();
    assert_eq!(
        code(
            &required,
            &idp.token().claim("session_state", Value::Null).sign()
        )
        .await,
        ErrorCode::MissingClaim
    );

    let iat = OidcVerifier::new(base().require_iat(true)).unwrap();
    assert_eq!(
        err(&iat, &idp.token().without_claim("iat").sign()).await,
        AuthError::MissingClaim("iat".into())
    );
}

#[tokio::test]
async fn checks_run_in_design_order() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    // Framing before header: a bad payload wins over `alg: none`.
    let token = format!("{}.{}.", b64(json!({"alg": "none"}).to_string()), b64("[]"));
    assert_eq!(code(&v, &token).await, ErrorCode::Malformed);
    // Header before key: an allowlisted-out alg with an unknown kid costs no fetch.
    let token = idp.token().header("alg", "HS256").kid("unknown").sign();
    assert_eq!(code(&v, &token).await, ErrorCode::AlgorithmNotAllowed);
    no_traffic(&idp);
    // Signature before claims: an expired, wrong-issuer token with a bad signature is
    // reported as a bad signature (claims of unverified tokens are never judged).
    let token = idp.token().issuer("x").expires_at(1).sign();
    let (input, _) = token.rsplit_once('.').unwrap();
    let token = format!("{input}.{}", b64([0; 256]));
    assert_eq!(code(&v, &token).await, ErrorCode::InvalidSignature);
    // iss before aud before exp before sub before typ.
    let token = idp
        .token()
        .issuer("x")
        .audience("y")
        .expires_at(1)
        .without_claim("sub")
        .token_type("ID")
        .sign();
    assert_eq!(code(&v, &token).await, ErrorCode::IssuerMismatch);
    let token = idp
        .token()
        .audience("y")
        .expires_at(1)
        .without_claim("sub")
        .token_type("ID")
        .sign();
    assert_eq!(code(&v, &token).await, ErrorCode::AudienceMismatch);
    let token = idp
        .token()
        .expires_at(1)
        .without_claim("sub")
        .token_type("ID")
        .sign();
    assert_eq!(code(&v, &token).await, ErrorCode::Expired);
    let token = idp.token().without_claim("sub").token_type("ID").sign();
    assert_eq!(code(&v, &token).await, ErrorCode::MissingClaim);
    let token = idp.token().token_type("ID").sign();
    assert_eq!(code(&v, &token).await, ErrorCode::TokenTypeMismatch);
}

#[tokio::test]
async fn rejections_are_counted_by_code() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let _ = v.verify("").await;
    let _ = v.verify("a.b").await;
    let _ = v.verify(&idp.token().issuer("x").sign()).await;
    let stats = v.stats();
    assert_eq!(stats.rejected(ErrorCode::Malformed), 2);
    assert_eq!(stats.rejected(ErrorCode::IssuerMismatch), 1);
    assert_eq!(stats.rejected_total(), 3);
    assert_eq!(stats.accepted, 0);
}

#[tokio::test]
async fn error_messages_never_contain_the_token() {
    let idp = idp().await;
    let v = default_verifier(&idp);
    let secret_sub = "very-secret-subject-value";
    for token in [
        idp.token().subject(secret_sub).issuer("x").sign(),
        idp.token().subject(secret_sub).kid("k\u{1}").sign(),
        idp.token().subject(secret_sub).token_type("ID").sign(),
        idp.token()
            .subject(secret_sub)
            .header("alg", "HS256")
            .sign(),
    ] {
        let e = err(&v, &token).await;
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains(&token[..40]), "{shown}");
        assert!(!shown.contains(&token[token.len() - 40..]), "{shown}");
        assert!(!shown.contains(secret_sub), "{shown}");
    }
}

#[tokio::test]
async fn tokens_for_another_issuer_config_fail_cleanly() {
    // A verifier configured with an ES-only allowlist against an RS issuer.
    let idp = idp().await;
    let v = OidcVerifier::new(
        OidcConfig::new(idp.issuer())
            .clock(idp.clock())
            .algorithms(AlgorithmSet::only(Algorithm::ES256)),
    )
    .unwrap();
    assert_eq!(
        code(&v, &idp.token().sign()).await,
        ErrorCode::AlgorithmNotAllowed
    );
    no_traffic(&idp);
}

//! The shared JOSE pipeline with real keys: round trips for every algorithm family and the
//! framing/header/key/signature rejections an attacker would try.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use agentcube_auth_core::jose::{
    Algorithm, AlgorithmSet, EncodedHeader, Jwk, JwsPolicy, KeySet, KeySource, SigningKey,
    TypePolicy, UnverifiedJws, VerificationKey,
};
use agentcube_auth_core::{AuthError, ErrorCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A test key: the workspace signer, published without `use`/`alg` (so the RSA key verifies
/// every RSA algorithm) under a chosen `kid`.
struct TestKey {
    key: SigningKey,
    jwk: Jwk,
}

impl TestKey {
    fn new(alg: Algorithm, kid: &str) -> Self {
        let key = SigningKey::generate(alg).unwrap().with_kid(kid);
        let jwk = Jwk {
            key_use: None,
            alg: None,
            ..key.public_jwk().clone()
        };
        Self { key, jwk }
    }

    fn rsa(kid: &str) -> Self {
        Self::new(Algorithm::RS256, kid)
    }

    fn ec(kid: &str) -> Self {
        Self::new(Algorithm::ES256, kid)
    }

    fn ed(kid: &str) -> Self {
        Self::new(Algorithm::EdDSA, kid)
    }

    /// Signs with `alg` when it is another algorithm of the key's type (RS384, PS256 with the
    /// RSA key), with the key's own algorithm otherwise.
    fn signer(&self, alg: &str) -> SigningKey {
        let der = self.key.to_pkcs8_der().unwrap();
        let key = SigningKey::from_pkcs8_der(der.expose_secret()).unwrap();
        Algorithm::from_name(alg)
            .and_then(|alg| {
                SigningKey::from_pkcs8_der(der.expose_secret())
                    .unwrap()
                    .with_algorithm(alg)
                    .ok()
            })
            .unwrap_or(key)
    }

    fn token(&self, header: &Value, payload: &Value) -> String {
        self.token_raw(
            header.to_string().as_bytes(),
            payload.to_string().as_bytes(),
        )
    }

    fn token_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let alg = serde_json::from_slice::<Value>(header)
            .ok()
            .and_then(|h| h["alg"].as_str().map(str::to_owned))
            .unwrap_or_default();
        self.signer(&alg)
            .sign(&EncodedHeader::from_json_bytes(header), payload)
            .unwrap()
    }

    fn raw_token(&self, alg: &str, header: &str, payload: &str) -> String {
        self.signer(alg)
            .sign(
                &EncodedHeader::from_json_bytes(header.as_bytes()),
                payload.as_bytes(),
            )
            .unwrap()
    }
}

struct Fixture {
    rsa: TestKey,
    ec: TestKey,
    ed: TestKey,
    keys: KeySet,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rsa = TestKey::rsa("rsa-1");
        let ec = TestKey::ec("ec-1");
        let ed = TestKey::ed("ed-1");
        let keys =
            KeySet::new([&rsa, &ec, &ed].map(|k| VerificationKey::from_jwk(&k.jwk).unwrap()));
        Fixture { rsa, ec, ed, keys }
    })
}

fn all_algs() -> JwsPolicy {
    JwsPolicy::new(AlgorithmSet::ALL)
}

fn payload() -> Value {
    json!({"iss": "https://idp", "sub": "u1", "exp": 4_000_000_000u64})
}

async fn check(token: &str, policy: &JwsPolicy) -> Result<Value, AuthError> {
    let jws = UnverifiedJws::parse(token, policy)?;
    let key = fixture()
        .keys
        .key_for(jws.header().kid.as_deref(), jws.header().alg)
        .await?;
    let (_, claims) = jws.verify(&key)?;
    Ok(Value::Object(claims.into_map()))
}

fn code(r: Result<Value, AuthError>) -> ErrorCode {
    match r {
        Ok(v) => panic!("accepted: {v}"),
        Err(e) => e.code(),
    }
}

#[tokio::test]
async fn every_algorithm_family_round_trips() {
    let f = fixture();
    for (key, alg) in [
        (&f.rsa, "RS256"),
        (&f.rsa, "PS256"),
        (&f.rsa, "RS384"),
        (&f.ec, "ES256"),
        (&f.ed, "EdDSA"),
    ] {
        let kid = key.jwk.kid.as_deref().unwrap();
        let token = key.token(&json!({"alg": alg, "kid": kid, "typ": "JWT"}), &payload());
        let claims = check(&token, &all_algs())
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["sub"], "u1");
    }
}

#[tokio::test]
async fn none_and_hmac_are_never_algorithms() {
    let f = fixture();
    for alg in [
        "none", "None", "NONE", "nOnE", "HS256", "HS384", "HS512", "rs256", "", "ES512",
    ] {
        let header = json!({"alg": alg, "kid": "rsa-1"});
        let unsigned = format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(payload().to_string().as_bytes())
        );
        let got = code(check(&unsigned, &all_algs()).await);
        assert!(
            got == ErrorCode::AlgorithmNotAllowed || got == ErrorCode::Malformed,
            "{alg}: {got}"
        );
        let signed = f
            .rsa
            .raw_token("RS256", &header.to_string(), &payload().to_string());
        assert_eq!(
            code(check(&signed, &all_algs()).await),
            ErrorCode::AlgorithmNotAllowed,
            "{alg}"
        );
    }
    // HS256 "signed" with the RSA public key as the HMAC secret: the classic confusion attack.
    let secret = f.rsa.jwk.n.clone().unwrap();
    let header = json!({"alg": "HS256", "kid": "rsa-1"});
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload().to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let forged = format!("{input}.{}", b64(tag.as_ref()));
    assert_eq!(
        code(check(&forged, &all_algs()).await),
        ErrorCode::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn allowlist_is_enforced_before_any_key_lookup() {
    let f = fixture();
    let token =
        f.ec.token(&json!({"alg": "ES256", "kid": "ec-1"}), &payload());
    let rs_only = JwsPolicy::new(AlgorithmSet::only(Algorithm::RS256));
    assert_eq!(
        code(check(&token, &rs_only).await),
        ErrorCode::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn framing_rejections() {
    let f = fixture();
    let good = f
        .rsa
        .token(&json!({"alg": "RS256", "kid": "rsa-1"}), &payload());
    let parts: Vec<&str> = good.split('.').collect();
    let cases: Vec<(String, ErrorCode)> = vec![
        (String::new(), ErrorCode::Malformed),
        ("a.b".into(), ErrorCode::Malformed),
        (format!("{good}.x"), ErrorCode::Malformed),
        (
            format!("{}.{}.{}.x.y", parts[0], parts[1], parts[2]),
            ErrorCode::Malformed,
        ),
        ("....................".into(), ErrorCode::Malformed),
        (
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            ErrorCode::Malformed,
        ),
        (
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            ErrorCode::Malformed,
        ),
        (
            format!("{}.{}+/.{}", parts[0], parts[1], parts[2]),
            ErrorCode::Malformed,
        ),
        (
            format!("{}.{}.{}", b64(b"[1]"), parts[1], parts[2]),
            ErrorCode::Malformed,
        ),
        (
            format!("{}.{}.{}", parts[0], b64(b"\"str\""), parts[2]),
            ErrorCode::Malformed,
        ),
        (
            format!("{}.{}.{}", parts[0], b64(b"{\"a\":1} x"), parts[2]),
            ErrorCode::Malformed,
        ),
        ("x".repeat(9000), ErrorCode::TokenTooLarge),
        (
            format!("{}.{}.{}", parts[0], "A".repeat(8000), parts[2]),
            ErrorCode::TokenTooLarge,
        ),
    ];
    for (token, expected) in cases {
        let shown: String = token.chars().take(40).collect();
        assert_eq!(code(check(&token, &all_algs()).await), expected, "{shown}");
    }
}

#[tokio::test]
async fn duplicate_members_are_rejected_in_header_and_payload() {
    let f = fixture();
    let dup_header = f.rsa.raw_token(
        "RS256",
        r#"{"alg":"RS256","alg":"none","kid":"rsa-1"}"#,
        &payload().to_string(),
    );
    let dup_payload = f.rsa.raw_token(
        "RS256",
        r#"{"alg":"RS256","kid":"rsa-1"}"#,
        r#"{"sub":"alice","sub":"admin","exp":4000000000}"#,
    );
    let dup_nested = f.rsa.raw_token(
        "RS256",
        r#"{"alg":"RS256","kid":"rsa-1"}"#,
        r#"{"sub":"a","realm_access":{"roles":[],"roles":["admin"]}}"#,
    );
    let escaped_dup_header = f.rsa.raw_token(
        "RS256",
        r#"{"alg":"RS256","\u0061lg":"none","kid":"rsa-1"}"#,
        &payload().to_string(),
    );
    for token in [dup_header, escaped_dup_header, dup_payload, dup_nested] {
        let err = check(&token, &all_algs()).await.unwrap_err();
        assert_eq!(
            err,
            AuthError::Malformed(agentcube_auth_core::MalformedReason::DuplicateMember)
        );
    }
}

#[tokio::test]
async fn headers_with_absurd_member_counts_are_refused() {
    let f = fixture();
    let mut header = serde_json::Map::new();
    header.insert("alg".into(), json!("RS256"));
    header.insert("kid".into(), json!("rsa-1"));
    for i in 0..40 {
        header.insert(format!("x{i}"), json!(i));
    }
    let t = f.rsa.token(&Value::Object(header), &payload());
    assert_eq!(code(check(&t, &all_algs()).await), ErrorCode::Malformed);
}

#[tokio::test]
async fn oversized_headers_are_refused_before_parsing() {
    let f = fixture();
    let padding = "p".repeat(agentcube_auth_core::jose::MAX_HEADER_BYTES);
    let t = f.rsa.token(
        &json!({"alg": "RS256", "kid": "rsa-1", "x": padding}),
        &payload(),
    );
    let err = check(&t, &all_algs()).await.unwrap_err();
    assert_eq!(
        err,
        AuthError::Malformed(agentcube_auth_core::MalformedReason::HeaderTooLarge)
    );
    // Just under the limit still parses.
    let padding = "p".repeat(agentcube_auth_core::jose::MAX_HEADER_BYTES - 60);
    let t = f.rsa.token(
        &json!({"alg": "RS256", "kid": "rsa-1", "x": padding}),
        &payload(),
    );
    assert!(check(&t, &all_algs()).await.is_ok());
}

#[tokio::test]
async fn the_header_limit_is_exact_in_bytes() {
    // A header of exactly MAX_HEADER_BYTES decoded bytes is accepted; one byte more is not,
    // as the error message ("larger than 1024 bytes") says.
    let f = fixture();
    let header_of = |len: usize| {
        let base = r#"{"alg":"RS256","kid":"rsa-1","x":""}"#.len();
        let text = format!(
            r#"{{"alg":"RS256","kid":"rsa-1","x":"{}"}}"#,
            "p".repeat(len - base)
        );
        assert_eq!(text.len(), len);
        text
    };
    let limit = agentcube_auth_core::jose::MAX_HEADER_BYTES;
    let at = f.rsa.token_raw(
        header_of(limit).as_bytes(),
        payload().to_string().as_bytes(),
    );
    assert!(check(&at, &all_algs()).await.is_ok());
    let over = f.rsa.token_raw(
        header_of(limit + 1).as_bytes(),
        payload().to_string().as_bytes(),
    );
    assert_eq!(
        check(&over, &all_algs()).await.unwrap_err(),
        AuthError::Malformed(agentcube_auth_core::MalformedReason::HeaderTooLarge)
    );
}

#[tokio::test]
async fn header_rules_crit_typ_and_jwe() {
    let f = fixture();
    let crit = f.rsa.token(
        &json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1}),
        &payload(),
    );
    assert_eq!(
        code(check(&crit, &all_algs()).await),
        ErrorCode::UnsupportedCriticalHeader
    );
    let jwe_marker = f.rsa.token(
        &json!({"alg": "RS256", "kid": "rsa-1", "enc": "A256GCM"}),
        &payload(),
    );
    assert_eq!(
        code(check(&jwe_marker, &all_algs()).await),
        ErrorCode::Malformed
    );
    for typ in ["JWT", "jwt", "at+jwt", "application/at+JWT"] {
        let t = f.rsa.token(
            &json!({"alg": "RS256", "kid": "rsa-1", "typ": typ}),
            &payload(),
        );
        assert!(check(&t, &all_algs()).await.is_ok(), "{typ}");
    }
    for typ in json!([
        "ID",
        "Refresh",
        "agentcube-identity+jwt",
        "",
        "application/"
    ])
    .as_array()
    .unwrap()
    {
        let t = f.rsa.token(
            &json!({"alg": "RS256", "kid": "rsa-1", "typ": typ}),
            &payload(),
        );
        assert_eq!(
            code(check(&t, &all_algs()).await),
            ErrorCode::TokenTypeMismatch,
            "{typ}"
        );
    }
    let non_string_typ = f.rsa.token(
        &json!({"alg": "RS256", "kid": "rsa-1", "typ": 5}),
        &payload(),
    );
    assert_eq!(
        code(check(&non_string_typ, &all_algs()).await),
        ErrorCode::Malformed
    );
    let internal = JwsPolicy {
        types: TypePolicy::exactly("agentcube-identity+jwt"),
        ..all_algs()
    };
    let untyped = f
        .rsa
        .token(&json!({"alg": "RS256", "kid": "rsa-1"}), &payload());
    assert_eq!(
        code(check(&untyped, &internal).await),
        ErrorCode::TokenTypeMismatch
    );
}

#[tokio::test]
async fn embedded_keys_and_key_urls_are_ignored() {
    // A token that carries its own key (jwk), or points at one (jku, x5u, x5c), signed by the
    // attacker's key: the embedded key must not be used, so the signature fails against ours.
    let attacker = TestKey::rsa("rsa-1");
    let header = json!({
        "alg": "RS256", "kid": "rsa-1",
        "jwk": attacker.jwk, "jku": "http://127.0.0.1:1/jwks", "x5u": "http://127.0.0.1:1/x5u",
        "x5c": ["MIIB"],
    });
    let token = attacker.token(&header, &payload());
    assert_eq!(
        code(check(&token, &all_algs()).await),
        ErrorCode::InvalidSignature
    );
}

#[tokio::test]
async fn hostile_kids() {
    let f = fixture();
    let long = "k".repeat(129);
    for kid in [
        long.as_str(),
        "",
        "../../etc/passwd\n",
        "kid\u{0}",
        "ключ",
        "a b",
    ] {
        let t = f
            .rsa
            .token(&json!({"alg": "RS256", "kid": kid}), &payload());
        let got = code(check(&t, &all_algs()).await);
        assert!(got == ErrorCode::Malformed, "{kid:?}: {got}");
    }
    let t = f.rsa.token(
        &json!({"alg": "RS256", "kid": "../../etc/passwd"}),
        &payload(),
    );
    assert_eq!(code(check(&t, &all_algs()).await), ErrorCode::UnknownKid);
    let t = f.rsa.token(&json!({"alg": "RS256", "kid": 7}), &payload());
    assert_eq!(code(check(&t, &all_algs()).await), ErrorCode::Malformed);
}

#[tokio::test]
async fn algorithm_must_fit_the_key() {
    let f = fixture();
    // RS256 header naming the EC key's kid.
    let t = f
        .rsa
        .token(&json!({"alg": "RS256", "kid": "ec-1"}), &payload());
    assert_eq!(
        code(check(&t, &all_algs()).await),
        ErrorCode::KeyAlgorithmMismatch
    );
    // EdDSA header naming the RSA key.
    let t =
        f.ed.token(&json!({"alg": "EdDSA", "kid": "rsa-1"}), &payload());
    assert_eq!(
        code(check(&t, &all_algs()).await),
        ErrorCode::KeyAlgorithmMismatch
    );
}

#[tokio::test]
async fn signature_encodings_and_values() {
    let f = fixture();
    let good =
        f.ec.token(&json!({"alg": "ES256", "kid": "ec-1"}), &payload());
    let input = good.rsplit_once('.').unwrap().0;
    // r = s = 0 ("psychic signature", CVE-2022-21449).
    let zero = format!("{input}.{}", b64(&[0u8; 64]));
    assert_eq!(
        code(check(&zero, &all_algs()).await),
        ErrorCode::InvalidSignature
    );
    // A DER-encoded ECDSA signature is not the JOSE fixed-width form.
    let der = format!("{input}.{}", b64(&[0x30, 0x44, 0x02, 0x20]));
    assert_eq!(code(check(&der, &all_algs()).await), ErrorCode::Malformed);
    let short = format!("{input}.{}", b64(&[1u8; 63]));
    assert_eq!(code(check(&short, &all_algs()).await), ErrorCode::Malformed);
    let rsa = f
        .rsa
        .token(&json!({"alg": "RS256", "kid": "rsa-1"}), &payload());
    let (rsa_input, rsa_sig) = rsa.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(rsa_sig).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{rsa_input}.{}", b64(&sig));
    assert_eq!(
        code(check(&flipped, &all_algs()).await),
        ErrorCode::InvalidSignature
    );
    let truncated = format!("{rsa_input}.{}", b64(&sig[..255]));
    assert_eq!(
        code(check(&truncated, &all_algs()).await),
        ErrorCode::Malformed
    );
    let padded = format!("{rsa_input}.{}", b64(&[sig.as_slice(), &[0]].concat()));
    assert_eq!(
        code(check(&padded, &all_algs()).await),
        ErrorCode::InvalidSignature
    );
    // A payload changed after signing.
    let (h, _, s) = (rsa.split('.').next().unwrap(), (), rsa_sig);
    let other = format!(
        "{h}.{}.{s}",
        b64(json!({"sub": "admin", "exp": 4_000_000_000u64})
            .to_string()
            .as_bytes())
    );
    assert_eq!(
        code(check(&other, &all_algs()).await),
        ErrorCode::InvalidSignature
    );
}

#[tokio::test]
async fn missing_kid_uses_the_only_fitting_key_and_refuses_to_guess_otherwise() {
    let f = fixture();
    let t = f.ed.token(&json!({"alg": "EdDSA"}), &payload());
    assert!(check(&t, &all_algs()).await.is_ok());
    let second_ed = TestKey::ed("ed-2");
    let two = KeySet::new([&f.ed, &second_ed].map(|k| VerificationKey::from_jwk(&k.jwk).unwrap()));
    let jws = UnverifiedJws::parse(&t, &all_algs()).unwrap();
    let err = two.key_for(None, jws.header().alg).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownKid);
    let empty = KeySet::default();
    let err = empty
        .key_for(Some("x"), Algorithm::RS256)
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeysUnavailable);
    assert!(!empty.is_ready());
}

#[test]
fn jwks_documents_keep_good_keys_and_report_bad_ones() {
    let f = fixture();
    let mut enc = f.rsa.jwk.clone();
    enc.kid = Some("enc-1".into());
    enc.key_use = Some("enc".into());
    enc.alg = Some("RSA-OAEP".into());
    let doc =
        json!({"keys": [f.rsa.jwk, enc, {"kty": "RSA", "kid": "junk"}, "not an object", f.ed.jwk]});
    let (set, skipped) = KeySet::from_jwks(doc.to_string().as_bytes(), 32).unwrap();
    assert_eq!(set.len(), 2);
    assert!(set.contains_kid("rsa-1") && set.contains_kid("ed-1") && !set.contains_kid("enc-1"));
    let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(
        reasons,
        ["not_for_signatures", "invalid_key_material", "invalid_json"]
    );
    for bad in [&b"garbage"[..], b"{}", b"{\"keys\": {}}", b"[]"] {
        assert_eq!(
            KeySet::from_jwks(bad, 32).unwrap_err().code(),
            "invalid_jwks"
        );
    }
    let many = json!({"keys": vec![f.ed.jwk.clone(); 33]});
    assert_eq!(
        KeySet::from_jwks(many.to_string().as_bytes(), 32)
            .unwrap_err()
            .code(),
        "too_many_keys"
    );
}

#[test]
fn debug_output_never_contains_the_token() {
    let f = fixture();
    let token = f
        .rsa
        .token(&json!({"alg": "RS256", "kid": "rsa-1"}), &payload());
    let jws = UnverifiedJws::parse(&token, &all_algs()).unwrap();
    let shown = format!("{jws:?}");
    for segment in token.split('.') {
        assert!(!shown.contains(segment), "{shown}");
    }
    let key = Arc::clone(&f.keys.keys()[0]);
    assert!(format!("{key:?}").contains("rsa-1"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_tokens_never_panic_and_are_never_accepted(token in "[A-Za-z0-9_.=+/-]{0,400}") {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        prop_assert!(rt.block_on(check(&token, &all_algs())).is_err());
    }

    #[test]
    fn random_headers_and_payloads_never_panic_and_are_never_accepted(
        header in proptest::collection::vec(any::<u8>(), 0..120),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        sig in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = format!("{}.{}.{}", b64(&header), b64(&payload), b64(&sig));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        prop_assert!(rt.block_on(check(&token, &all_algs())).is_err());
    }

    #[test]
    fn mutated_valid_tokens_are_never_accepted(pos in 0usize..400, byte in any::<u8>()) {
        let f = fixture();
        let token = f.ed.token(&json!({"alg": "EdDSA", "kid": "ed-1"}), &payload());
        let mut bytes = token.into_bytes();
        let i = pos % bytes.len();
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let Ok(mutated) = String::from_utf8(bytes) else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        // Flipping a base64 character's unused low bits can decode to the same bytes; the
        // decoder rejects non-canonical trailing bits, so every mutation must fail.
        prop_assert!(rt.block_on(check(&mutated, &all_algs())).is_err());
    }
}

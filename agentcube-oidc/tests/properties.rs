//! Randomized inputs: the verifier never panics and never accepts what it should not.
//!
//! The verifier uses static keys (no network) so thousands of cases run in seconds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::sync::{Arc, OnceLock};

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_auth_core::{ErrorCode, ManualClock};
use agentcube_oidc::test_util::{TestKey, TokenBuilder, key_set};
use agentcube_oidc::{CacheConfig, MultiIssuerVerifier, OidcConfig, OidcVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Value, json};

const ISSUER: &str = "https://kc.example/realms/agentcube";
const NOW: i64 = 1_800_000_000;

struct Fixture {
    rt: tokio::runtime::Runtime,
    rsa: Arc<TestKey>,
    ec: Arc<TestKey>,
    outsider: Arc<TestKey>,
    verifier: OidcVerifier,
    multi: MultiIssuerVerifier,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rsa = Arc::new(TestKey::generate(Algorithm::RS256));
        let ec = Arc::new(TestKey::generate(Algorithm::ES256));
        let outsider = Arc::new(TestKey::generate(Algorithm::RS256));
        let verifier = OidcVerifier::new(
            OidcConfig::new(ISSUER)
                .algorithms(AlgorithmSet::ALL)
                .static_keys(key_set([&*rsa, &*ec]))
                .clock(ManualClock::new(NOW))
                .cache(CacheConfig::disabled()),
        )
        .unwrap();
        let multi = MultiIssuerVerifier::new([verifier.clone()]).unwrap();
        Fixture {
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            rsa,
            ec,
            outsider,
            verifier,
            multi,
        }
    })
}

fn verify(token: &str) -> Result<(), ErrorCode> {
    let f = fixture();
    let single = f.rt.block_on(f.verifier.verify(token)).map(drop);
    let multi = f.rt.block_on(f.multi.verify(token)).map(drop);
    assert_eq!(single.is_ok(), multi.is_ok(), "single and multi disagree");
    single.map_err(|e| e.code())
}

fn valid(key: &Arc<TestKey>) -> TokenBuilder {
    TokenBuilder::keycloak(ISSUER, Arc::clone(key), NOW)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn the_fixture_accepts_valid_tokens() {
    let f = fixture();
    assert_eq!(verify(&valid(&f.rsa).sign()), Ok(()));
    assert_eq!(verify(&valid(&f.ec).sign()), Ok(()));
    assert_eq!(
        verify(&valid(&f.outsider).sign()),
        Err(ErrorCode::UnknownKid)
    );
}

/// A JSON value of bounded depth and size.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_are_rejected(s in ".{0,400}") {
        prop_assert!(verify(&s).is_err());
    }

    #[test]
    fn random_bytes_as_lossy_text_are_rejected(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let s = String::from_utf8_lossy(&bytes);
        prop_assert!(verify(&s).is_err());
    }

    #[test]
    fn random_base64_segments_are_rejected(
        segs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..7)
    ) {
        let token = segs.iter().map(b64).collect::<Vec<_>>().join(".");
        prop_assert!(verify(&token).is_err());
    }

    #[test]
    fn random_headers_and_payloads_with_real_signatures_are_rejected(
        header in prop::collection::btree_map(
            prop_oneof![Just("alg".to_owned()), Just("kid".to_owned()), Just("typ".to_owned()),
                        Just("crit".to_owned()), Just("jku".to_owned()), ".{0,5}"],
            json_value(), 0..5),
        payload in json_value(),
    ) {
        // Signed for real by a trusted key: only the content can make it fail, and random
        // content never satisfies iss + aud + exp + sub together.
        let f = fixture();
        let header = Value::Object(header.into_iter().collect());
        let token = f.rsa.sign_compact(&header, &payload);
        prop_assert!(verify(&token).is_err());
    }

    #[test]
    fn any_single_character_change_of_a_valid_token_is_rejected(
        pos in any::<prop::sample::Index>(),
        replacement in prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".chars().collect::<Vec<_>>()),
        ec in any::<bool>(),
    ) {
        let f = fixture();
        let token = valid(if ec { &f.ec } else { &f.rsa }).sign();
        let i = pos.index(token.len());
        let original = token.as_bytes()[i] as char;
        prop_assume!(original != replacement);
        let mut mutated = token;
        mutated.replace_range(i..=i, &replacement.to_string());
        prop_assert!(verify(&mutated).is_err(), "position {} {:?} -> {:?}", i, original, replacement);
    }

    #[test]
    fn truncations_and_extensions_are_rejected(cut in any::<prop::sample::Index>(), extra in "[A-Za-z0-9_.-]{1,8}") {
        let f = fixture();
        let token = valid(&f.rsa).sign();
        let i = cut.index(token.len());
        prop_assert!(verify(&token[..i]).is_err());
        let appended = format!("{token}{extra}");
        let prepended = format!("{extra}{token}");
        prop_assert!(verify(&appended).is_err());
        prop_assert!(verify(&prepended).is_err());
    }

    #[test]
    fn claim_violations_are_rejected_whatever_else_the_token_holds(
        violation in 0usize..16,
        noise in prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..6),
    ) {
        let f = fixture();
        let mut b = valid(&f.rsa);
        for (k, v) in noise {
            // Noise never touches the registered claims (those are the violations' job).
            if !["iss", "aud", "exp", "nbf", "iat", "sub", "typ"].contains(&k.as_str()) {
                b = b.claim(&k, v);
            }
        }
        let (b, expected) = match violation {
            0 => (b.issuer("https://kc.example/realms/agentcube/"), ErrorCode::IssuerMismatch),
            1 => (b.audience("account"), ErrorCode::AudienceMismatch),
            2 => (b.without_claim("aud"), ErrorCode::MissingClaim),
            3 => (b.expires_at(NOW - 31), ErrorCode::Expired),
            4 => (b.claim("exp", "9999999999"), ErrorCode::InvalidClaim),
            5 => (b.without_claim("exp"), ErrorCode::MissingClaim),
            6 => (b.not_before(NOW + 31), ErrorCode::NotYetValid),
            7 => (b.issued_at(NOW + 31), ErrorCode::IssuedInFuture),
            8 => (b.subject(""), ErrorCode::MissingClaim),
            9 => (b.without_claim("sub"), ErrorCode::MissingClaim),
            10 => (b.token_type("ID"), ErrorCode::TokenTypeMismatch),
            11 => (b.token_type("Refresh"), ErrorCode::TokenTypeMismatch),
            12 => (b.claim("iss", json!([ISSUER])), ErrorCode::InvalidClaim),
            13 => (b.header("crit", json!(["exp"])), ErrorCode::UnsupportedCriticalHeader),
            14 => (b.header("typ", "JWS"), ErrorCode::TokenTypeMismatch),
            _ => (b.kid("unknown-kid"), ErrorCode::UnknownKid),
        };
        // The violation's own code: the noise never decides the answer.
        prop_assert_eq!(verify(&b.sign()), Err(expected), "violation {}", violation);
    }

    #[test]
    fn hostile_header_algorithms_are_rejected(alg in prop_oneof![
        Just("none".to_owned()), Just("HS256".to_owned()), Just("HS512".to_owned()),
        "[A-Za-z0-9+-]{0,10}"
    ]) {
        let f = fixture();
        prop_assume!(Algorithm::from_name(&alg).is_none());
        let token = valid(&f.rsa).header("alg", alg.as_str()).sign();
        prop_assert_eq!(verify(&token), Err(ErrorCode::AlgorithmNotAllowed));
    }
}

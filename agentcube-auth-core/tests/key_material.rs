//! Key material a verifier must refuse when it loads a key set, through the public API only:
//! Ed25519 points of small order (in every encoding) and non-canonical encodings, RSA public
//! exponents that are not odd in `3..2^32`; and the Keycloak mapper reading roles only where
//! Keycloak writes them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use agentcube_auth_core::jose::{
    Algorithm, AlgorithmSet, EncodedHeader, Jwk, JwsPolicy, KeySet, SigningKey, SkipReason,
    SkippedKey, UnverifiedJws, VerificationKey,
};
use agentcube_auth_core::{
    ClaimMapper, ClaimPathMapper, Claims, ErrorCode, KeycloakClaimMapper, Role,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hex32(hex: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// The encoding of the identity point `(0, 1)`: `y = 1`, sign bit clear.
const IDENTITY: &str = "0100000000000000000000000000000000000000000000000000000000000000";

/// The eight points of small order on edwards25519, canonically encoded (y little-endian, bit
/// 255 the sign of x), with their order.
const CANONICAL_SMALL_ORDER: [(&str, u8); 8] = [
    (IDENTITY, 1),
    (
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        2,
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        4,
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000080",
        4,
    ),
    (
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        8,
    ),
    (
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        8,
    ),
    (
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        8,
    ),
    (
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        8,
    ),
];

/// The non-canonical encodings of small-order points: "negative zero" (sign bit set while
/// `x = 0`) of the points of order 1 and 2, and `y = p` (≡ 0) and `y = p + 1` (≡ 1) with
/// either sign bit.
const NON_CANONICAL_SMALL_ORDER: [&str; 6] = [
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];

fn ed25519_jwk(x: &[u8; 32], kid: &str) -> Jwk {
    Jwk {
        kid: Some(kid.to_owned()),
        ..Jwk::okp_ed25519(x).unwrap()
    }
}

#[test]
fn every_small_order_ed25519_key_is_skipped_as_weak() {
    let all = CANONICAL_SMALL_ORDER
        .iter()
        .map(|(hex, _)| *hex)
        .chain(NON_CANONICAL_SMALL_ORDER);
    let mut count = 0;
    for hex in all {
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&hex32(hex))});
        let jwk: Jwk = serde_json::from_value(jwk).unwrap();
        assert_eq!(
            VerificationKey::from_jwk(&jwk).err(),
            Some(SkipReason::WeakKey),
            "{hex}"
        );
        // Whatever the JWK says about its use and algorithm.
        let pinned = Jwk {
            key_use: Some("sig".into()),
            alg: Some("EdDSA".into()),
            ..jwk
        };
        assert_eq!(
            VerificationKey::from_jwk(&pinned).err(),
            Some(SkipReason::WeakKey),
            "{hex}"
        );
        count += 1;
    }
    assert_eq!(count, 14);
    assert_eq!(SkipReason::WeakKey.as_str(), "weak_key");
}

#[test]
fn small_order_keys_in_a_jwks_are_skipped_one_by_one_and_good_keys_stay() {
    let good = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .with_kid("good");
    let mut keys = vec![serde_json::to_value(good.public_jwk()).unwrap()];
    for (i, (hex, _)) in CANONICAL_SMALL_ORDER.iter().enumerate() {
        keys.push(json!({"kty": "OKP", "crv": "Ed25519", "kid": format!("bad-{i}"), "x": b64(&hex32(hex))}));
    }
    let doc = json!({ "keys": keys }).to_string();
    let (set, skipped) = KeySet::from_jwks(doc.as_bytes(), 32).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.contains_kid("good"));
    assert_eq!(skipped.len(), CANONICAL_SMALL_ORDER.len());
    for (i, skip) in skipped.iter().enumerate() {
        assert_eq!(
            skip,
            &SkippedKey {
                kid: Some(format!("bad-{i}")),
                reason: SkipReason::WeakKey
            }
        );
    }
}

#[test]
fn a_non_canonical_ed25519_encoding_is_invalid_key_material() {
    // y = 3 is on the curve (and not of small order): its canonical encoding loads, its alias
    // y = p + 3 does not.
    let mut canonical = [0u8; 32];
    canonical[0] = 3;
    assert!(VerificationKey::from_jwk(&ed25519_jwk(&canonical, "y3")).is_ok());
    let alias = hex32("f0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f");
    assert_eq!(
        VerificationKey::from_jwk(&ed25519_jwk(&alias, "y3-alias")).err(),
        Some(SkipReason::InvalidKeyMaterial)
    );
    // The largest encodable y, with either sign bit.
    for top in [0x7f, 0xff] {
        let mut max = [0xffu8; 32];
        max[31] = top;
        assert_eq!(
            VerificationKey::from_jwk(&ed25519_jwk(&max, "max")).err(),
            Some(SkipReason::InvalidKeyMaterial)
        );
    }
}

#[test]
fn a_token_forged_for_the_identity_key_is_rejected() {
    let identity = hex32(IDENTITY);
    // R = identity, S = 0: [S]B = R + [k]A holds for A = identity and every message k. The bare
    // crypto primitive accepts it, which is why the key must never be loaded.
    let mut forged_sig = identity.to_vec();
    forged_sig.extend([0u8; 32]);
    let raw =
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, identity);
    assert!(raw.verify(b"any message at all", &forged_sig).is_ok());

    let doc = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "attacker", "use": "sig", "alg": "EdDSA", "x": b64(&identity)},
    ]})
    .to_string();
    let (keys, skipped) = KeySet::from_jwks(doc.as_bytes(), 32).unwrap();
    assert!(keys.is_empty());
    assert_eq!(skipped[0].reason, SkipReason::WeakKey);

    let header = EncodedHeader::from_json_bytes(br#"{"alg":"EdDSA","kid":"attacker"}"#);
    let payload = json!({"iss": "https://idp", "sub": "admin", "exp": 4_000_000_000u64});
    let token = format!(
        "{}.{}.{}",
        header.as_str(),
        b64(payload.to_string().as_bytes()),
        b64(&forged_sig)
    );
    let policy = JwsPolicy::new(AlgorithmSet::only(Algorithm::EdDSA));
    let jws = UnverifiedJws::parse(&token, &policy).unwrap();
    let verified = keys
        .find(jws.header().kid.as_deref(), jws.header().alg)
        .and_then(|key| jws.verify(key));
    assert_eq!(verified.unwrap_err().code(), ErrorCode::UnknownKid);
}

/// An RSA JWK with a real 2048-bit modulus and the exponent `e` (big-endian bytes).
fn rsa_with_exponent(e: &[u8]) -> Jwk {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| SigningKey::generate(Algorithm::RS256).unwrap());
    Jwk {
        e: Some(b64(e)),
        kid: Some("rsa".into()),
        ..key.public_jwk().clone()
    }
}

#[test]
fn rsa_exponents_must_be_odd_and_between_3_and_2_pow_32() {
    let load = |e: &[u8]| VerificationKey::from_jwk(&rsa_with_exponent(e)).err();
    assert_eq!(load(&[1]), Some(SkipReason::WeakKey), "e = 1");
    assert_eq!(
        load(&[0, 0, 1]),
        Some(SkipReason::WeakKey),
        "e = 1, zero-padded"
    );
    assert_eq!(load(&[2]), Some(SkipReason::WeakKey), "e = 2");
    assert_eq!(
        load(&[0x01, 0x00, 0x00]),
        Some(SkipReason::WeakKey),
        "e = 65536"
    );
    assert_eq!(load(&[0]), Some(SkipReason::WeakKey), "e = 0");
    assert_eq!(load(&[]), Some(SkipReason::WeakKey), "e empty");
    assert_eq!(
        load(&[0x01, 0x00, 0x00, 0x00, 0x01]),
        Some(SkipReason::WeakKey),
        "e = 2^32 + 1"
    );
    assert_eq!(load(&[0x01, 0x00, 0x01]), None, "e = 65537");
    assert_eq!(
        load(&[0x00, 0x01, 0x00, 0x01]),
        None,
        "e = 65537, zero-padded"
    );
    assert_eq!(load(&[3]), None, "e = 3");

    // The standard exponent still verifies real signatures.
    let signer = SigningKey::generate(Algorithm::RS256).unwrap();
    assert_eq!(signer.public_jwk().e.as_deref(), Some("AQAB"));
    let key = VerificationKey::from_jwk(signer.public_jwk()).unwrap();
    let sig = signer.sign_message(b"m").unwrap();
    assert!(key.verify(Algorithm::RS256, b"m", &sig).is_ok());
}

fn claims(value: Value) -> Claims {
    Claims::try_from(value).unwrap()
}

#[test]
fn keycloak_mapper_reads_nested_roles_never_a_flat_dotted_member() {
    let mapper = KeycloakClaimMapper::new();
    let both = json!({
        "iss": "https://kc/realms/agentcube", "sub": "u1",
        "realm_access": {"roles": ["sandbox:invoke"]},
        "realm_access.roles": ["admin"],
        "resource_access": {"agentcube-app": {"roles": ["viewer"]}},
        "resource_access.agentcube-app.roles": ["owner"],
    });
    let p = mapper.map(claims(both.clone())).unwrap();
    assert!(p.roles().contains_realm("sandbox:invoke"));
    assert!(!p.roles().contains_realm("admin"));
    assert!(p.roles().contains(&Role::client("agentcube-app", "viewer")));
    assert!(!p.roles().contains(&Role::client("agentcube-app", "owner")));
    assert_eq!(p.roles().len(), 2);

    // The flat members alone grant nothing.
    let flat_only = json!({
        "iss": "https://kc/realms/agentcube", "sub": "u1",
        "realm_access.roles": ["admin"],
        "resource_access.agentcube-app.roles": ["owner"],
    });
    assert!(mapper.map(claims(flat_only)).unwrap().roles().is_empty());

    // The generic mapper keeps its configured rule: a top-level member equal to the whole path
    // wins.
    let p = ClaimPathMapper::new("realm_access.roles")
        .map(claims(both))
        .unwrap();
    assert!(p.roles().contains_realm("admin"));
    assert_eq!(p.roles().len(), 1);
}

//! Shared fixtures: keys generated with aws-lc-rs and serialised in every supported format.
#![allow(dead_code, unreachable_pub)]
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::needless_pass_by_value
)]

use std::sync::{Arc, OnceLock};

use agentcube_auth_core::{AuthError, ManualClock, Principal, Role};
use agentcube_identity::{KeyRing, SigningKey, TokenMinter};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};

pub const NOW: i64 = 1_800_000_000;
pub const KEYCLOAK: &str = "https://keycloak.example/realms/agentcube";

pub fn pem(label: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(label, der.to_vec()))
}

/// The error code of a failed verification ("ok" if it succeeded).
pub fn code<T>(r: Result<T, AuthError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code().as_str(),
    }
}

pub fn alice() -> Principal {
    Principal::builder(KEYCLOAK, "alice-id")
        .email("alice@example.com", true)
        .roles([
            Role::realm("sandbox:invoke"),
            Role::client("agentcube-app", "reader"),
        ])
        .build()
}

pub fn bob() -> Principal {
    Principal::builder(KEYCLOAK, "bob-id").build()
}

/// Reads one DER TLV: (tag, contents, rest).
fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let first = input[1];
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        let len = input[2..2 + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, 2 + n)
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The `RSAPrivateKey` (PKCS#1) inside a PKCS#8 `PrivateKeyInfo`:
/// `SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey }`.
pub fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, info, _) = tlv(pkcs8);
    assert_eq!(tag, 0x30);
    let (tag, _version, rest) = tlv(info);
    assert_eq!(tag, 0x02);
    let (tag, _alg, rest) = tlv(rest);
    assert_eq!(tag, 0x30);
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

/// An RSA-2048 key in a Router's Kubernetes Secret's shape, generated once per test binary.
pub struct RsaFixture {
    /// PKCS#8 `PRIVATE KEY`.
    pub pkcs8_pem: String,
    /// PKCS#1 `RSA PRIVATE KEY` (the Secret's `private.pem`).
    pub pkcs1_pem: String,
    /// SPKI `PUBLIC KEY` (the Secret's `public.pem`).
    pub spki_pem: String,
    /// PKCS#1 `RSA PUBLIC KEY`.
    pub pkcs1_public_pem: String,
}

pub fn rsa() -> &'static RsaFixture {
    static RSA: OnceLock<RsaFixture> = OnceLock::new();
    RSA.get_or_init(|| {
        let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&key).unwrap();
        let pkcs1 = pkcs8_to_pkcs1(pkcs8.as_ref());
        // The PKCS#1 form really is what aws-lc-rs reads as PKCS#1.
        assert!(RsaKeyPair::from_der(&pkcs1).is_ok());
        let spki: PublicKeyX509Der<'static> = key.public_key().as_der().unwrap();
        RsaFixture {
            pkcs8_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
            pkcs1_pem: pem("RSA PRIVATE KEY", &pkcs1),
            spki_pem: pem("PUBLIC KEY", spki.as_ref()),
            pkcs1_public_pem: pem("RSA PUBLIC KEY", key.public_key().as_ref()),
        }
    })
}

pub struct KeyPems {
    pub private: String,
    pub public: String,
}

pub fn ed25519_pems() -> KeyPems {
    let key = Ed25519KeyPair::generate().unwrap();
    let pkcs8 = key.to_pkcs8v1().unwrap();
    let spki: PublicKeyX509Der<'static> = key.public_key().as_der().unwrap();
    KeyPems {
        private: pem("PRIVATE KEY", pkcs8.as_ref()),
        public: pem("PUBLIC KEY", spki.as_ref()),
    }
}

pub fn p256_pems() -> KeyPems {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let pkcs8 = key.to_pkcs8v1().unwrap();
    let spki: PublicKeyX509Der<'static> = key.public_key().as_der().unwrap();
    KeyPems {
        private: pem("PRIVATE KEY", pkcs8.as_ref()),
        public: pem("PUBLIC KEY", spki.as_ref()),
    }
}

pub fn p256_sec1_pem() -> String {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der: aws_lc_rs::encoding::EcPrivateKeyRfc5915Der<'static> =
        key.private_key().as_der().unwrap();
    pem("EC PRIVATE KEY", der.as_ref())
}

pub fn ed25519() -> SigningKey {
    SigningKey::generate(agentcube_auth_core::jose::Algorithm::EdDSA).unwrap()
}

/// A fresh Ed25519 ring, a clock at `NOW`, a minter on both, and a verifier of kind `V`.
pub struct Setup<V> {
    pub key: Arc<SigningKey>,
    pub ring: Arc<KeyRing>,
    pub clock: ManualClock,
    pub minter: TokenMinter,
    pub verifier: V,
}

/// A [`Setup`] whose verifier `verifier` builds from the ring and the clock.
pub fn setup_with<V>(verifier: impl FnOnce(Arc<KeyRing>, ManualClock) -> V) -> Setup<V> {
    let clock = ManualClock::new(NOW);
    let ring = Arc::new(KeyRing::new(ed25519()));
    Setup {
        key: ring.active().unwrap(),
        minter: TokenMinter::new(ring.clone()).with_clock(clock.clone()),
        verifier: verifier(ring.clone(), clock.clone()),
        ring,
        clock,
    }
}

/// Signs an arbitrary payload with `key` and header `typ`.
pub fn sign(key: &SigningKey, typ: &str, payload: serde_json::Value) -> String {
    key.sign(&key.header(Some(typ)), payload.to_string().as_bytes())
        .unwrap()
}

/// A valid identity payload at `NOW`, to be modified by a test.
pub fn identity_claims() -> serde_json::Map<String, serde_json::Value> {
    match serde_json::json!({
        "iss": "agentcube-router", "aud": "workloadmanager", "sub": "alice-id",
        "iat": NOW, "exp": NOW + 30, "jti": "j-1"
    }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// A valid sandbox payload for `session` at `NOW`.
pub fn sandbox_claims(session: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::json!({
        "iss": "agentcube-router", "aud": format!("sandbox:{session}"), "session_id": session,
        "user_sub": "alice-id", "iat": NOW, "exp": NOW + 60, "jti": "j-2"
    }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// `claims` with `edits` applied: a `null` removes the claim.
pub fn with(
    mut claims: serde_json::Map<String, serde_json::Value>,
    edits: serde_json::Value,
) -> serde_json::Value {
    for (k, v) in edits.as_object().unwrap() {
        if v.is_null() {
            claims.remove(k);
        } else {
            claims.insert(k.clone(), v.clone());
        }
    }
    serde_json::Value::Object(claims)
}

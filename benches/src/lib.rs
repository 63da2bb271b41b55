//! Fixtures shared by the benches: realistic Keycloak-shaped access tokens (~1.4 KB) signed
//! with RS256, ES256 and EdDSA keys, with the matching verification keys in every form the
//! benches compare (our pre-parsed keys, jsonwebtoken's `DecodingKey`, bare aws-lc-rs keys).

use agentcube_auth_core::jose::{Algorithm, Jwk, KeySet, VerificationKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The issuer the fixture tokens name.
pub const ISSUER: &str = "http://keycloak.agentcube.svc.cluster.local:8080/realms/agentcube";

/// One algorithm's token and keys.
pub struct Fixture {
    /// The algorithm.
    pub alg: Algorithm,
    /// The compact token.
    pub token: String,
    /// `header.payload`, the signed bytes.
    pub signing_input: String,
    /// The decoded signature.
    pub signature: Vec<u8>,
    /// The public key as a JWK.
    pub jwk: Jwk,
    /// A key set holding just this key.
    pub keys: KeySet,
    /// The bare aws-lc-rs key, for the signature-only floor.
    pub bare: ParsedPublicKey,
    /// jsonwebtoken's key, for the library floor.
    pub decoding_key: jsonwebtoken::DecodingKey,
}

/// Errors building fixtures (they only happen if the crypto library is broken).
#[derive(Debug)]
pub struct FixtureError(&'static str);

impl std::fmt::Display for FixtureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for FixtureError {}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A realistic Keycloak access-token payload for a human user of `agentcube-cli`, ~1.4 KB once
/// signed with RS256.
pub fn keycloak_claims(now: i64) -> Value {
    json!({
        "exp": now + 300,
        "iat": now,
        "auth_time": now - 20,
        "jti": "onrtac:6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "iss": ISSUER,
        "aud": ["agentcube-api", "account"],
        "sub": "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "typ": "Bearer",
        "azp": "agentcube-cli",
        "sid": "8d7c6b5a-4e3f-2a1b-0c9d-8e7f6a5b4c3d",
        "acr": "1",
        "allowed-origins": ["http://localhost:*", "http://127.0.0.1:*"],
        "realm_access": {"roles": ["sandbox:invoke", "default-roles-agentcube", "offline_access", "uma_authorization"]},
        "resource_access": {"account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}},
        "scope": "openid profile email",
        "email_verified": true,
        "name": "Ada Lovelace",
        "preferred_username": "ada",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "email": "ada@example.com",
    })
}

/// Builds the fixture for `alg` (RS256, ES256 or EdDSA).
///
/// # Errors
/// Only if key generation or signing fails.
pub fn fixture(alg: Algorithm, now: i64) -> Result<Fixture, FixtureError> {
    let rng = SystemRandom::new();
    let header = json!({"alg": alg.as_str(), "typ": "JWT", "kid": "bench-key-1"});
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string()),
        b64(keycloak_claims(now).to_string())
    );
    let err = FixtureError;
    let (signature, jwk, bare, decoding_key) = match alg {
        Algorithm::RS256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| err("rsa generate"))?;
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| err("rsa sign"))?;
            let public = pair.public_key();
            let n = b64(public.modulus().big_endian_without_leading_zero());
            let e = b64(public.exponent().big_endian_without_leading_zero());
            let bare = signature::RsaPublicKeyComponents {
                n: public.modulus().big_endian_without_leading_zero(),
                e: public.exponent().big_endian_without_leading_zero(),
            }
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| err("rsa parse"))?;
            let dk = jsonwebtoken::DecodingKey::from_rsa_components(&n, &e)
                .map_err(|_| err("jsonwebtoken rsa key"))?;
            let jwk = Jwk {
                kty: "RSA".into(),
                n: Some(n),
                e: Some(e),
                ..Jwk::default()
            };
            (sig, jwk, bare, dk)
        }
        Algorithm::ES256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| err("ec generate"))?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .map_err(|_| err("ec parse"))?;
            let sig = pair
                .sign(&rng, signing_input.as_bytes())
                .map_err(|_| err("ec sign"))?
                .as_ref()
                .to_vec();
            let point = pair.public_key().as_ref().to_vec();
            let x = b64(point.get(1..33).ok_or(err("ec point"))?);
            let y = b64(point.get(33..65).ok_or(err("ec point"))?);
            let bare = ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .map_err(|_| err("ec parse"))?;
            let dk = jsonwebtoken::DecodingKey::from_ec_components(&x, &y)
                .map_err(|_| err("jsonwebtoken ec key"))?;
            let jwk = Jwk {
                kty: "EC".into(),
                crv: Some("P-256".into()),
                x: Some(x),
                y: Some(y),
                ..Jwk::default()
            };
            (sig, jwk, bare, dk)
        }
        _ => {
            let pair = Ed25519KeyPair::generate().map_err(|_| err("ed generate"))?;
            let sig = pair.sign(signing_input.as_bytes()).as_ref().to_vec();
            let x = b64(pair.public_key().as_ref());
            let bare = ParsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref())
                .map_err(|_| err("ed parse"))?;
            let dk = jsonwebtoken::DecodingKey::from_ed_components(&x)
                .map_err(|_| err("jsonwebtoken ed key"))?;
            let jwk = Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(x),
                ..Jwk::default()
            };
            (sig, jwk, bare, dk)
        }
    };
    let jwk = Jwk {
        kid: Some("bench-key-1".into()),
        alg: Some(alg.as_str().into()),
        key_use: Some("sig".into()),
        ..jwk
    };
    let key = VerificationKey::from_jwk(&jwk).map_err(|_| err("jwk rejected"))?;
    Ok(Fixture {
        alg,
        token: format!("{signing_input}.{}", b64(&signature)),
        signing_input,
        signature,
        jwk,
        keys: KeySet::new([key]),
        bare,
        decoding_key,
    })
}

/// The current time in seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// Polls a future once with a no-op waker and returns its output.
///
/// The verifiers' futures complete without suspending when the keys are static and (for the
/// cache) on a hit. A service calls them from inside its runtime, so the bench should not charge
/// them the cost of entering one (`Runtime::block_on`, ~150 ns here); this measures what the
/// service pays.
///
/// # Panics
/// If the future is not ready on the first poll (then the bench setup is wrong).
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        #[allow(clippy::panic)]
        std::task::Poll::Pending => panic!("future suspended: the bench needs static keys"),
    }
}

//! Fixtures shared by the benches: realistic Keycloak-shaped access tokens (~1.4 KB) signed
//! with RS256, ES256 and EdDSA keys, with the matching verification keys in every form the
//! benches compare (our pre-parsed keys, jsonwebtoken's `DecodingKey`, bare aws-lc-rs keys);
//! and, in [`layer`], the tower layer's requests and services.

use agentcube_auth_core::jose::{
    Algorithm, AlgorithmSet, Jwk, KeySet, SigningKey, VerificationKey,
};
use agentcube_oidc::OidcConfig;
use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub mod layer;

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

impl Fixture {
    /// An `OidcVerifier` configuration for this fixture's tokens: the issuer, only the
    /// fixture's algorithm, its key as a static key set (the cache at its default).
    pub fn config(&self) -> OidcConfig {
        OidcConfig::new(ISSUER)
            .algorithms(AlgorithmSet::only(self.alg))
            .static_keys(self.keys.clone())
    }
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

fn unb64(text: &str) -> Result<Vec<u8>, FixtureError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| FixtureError("base64"))
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
    let err = FixtureError;
    let key = SigningKey::generate(alg)
        .map_err(|_| err("key generation"))?
        .with_kid("bench-key-1");
    let payload = keycloak_claims(now).to_string();
    let token = key
        .sign(&key.header(Some("JWT")), payload.as_bytes())
        .map_err(|_| err("sign"))?;
    let (signing_input, signature_b64) = token.rsplit_once('.').ok_or(err("token shape"))?;
    let signature = unb64(signature_b64)?;
    let jwk = key.public_jwk().clone();
    let member = |m: &Option<String>| m.clone().ok_or(err("jwk member"));
    // The floors get the same public key in their own forms.
    let (bare, decoding_key) = match alg {
        Algorithm::RS256 => {
            let (n, e) = (member(&jwk.n)?, member(&jwk.e)?);
            let bare = signature::RsaPublicKeyComponents {
                n: unb64(&n)?,
                e: unb64(&e)?,
            }
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
            .map_err(|_| err("rsa parse"))?;
            let dk = jsonwebtoken::DecodingKey::from_rsa_components(&n, &e)
                .map_err(|_| err("jsonwebtoken rsa key"))?;
            (bare, dk)
        }
        Algorithm::ES256 => {
            let (x, y) = (member(&jwk.x)?, member(&jwk.y)?);
            let mut point = vec![0x04];
            point.extend(unb64(&x)?);
            point.extend(unb64(&y)?);
            let bare = ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .map_err(|_| err("ec parse"))?;
            let dk = jsonwebtoken::DecodingKey::from_ec_components(&x, &y)
                .map_err(|_| err("jsonwebtoken ec key"))?;
            (bare, dk)
        }
        _ => {
            let x = member(&jwk.x)?;
            let bare = ParsedPublicKey::new(&signature::ED25519, unb64(&x)?)
                .map_err(|_| err("ed parse"))?;
            let dk = jsonwebtoken::DecodingKey::from_ed_components(&x)
                .map_err(|_| err("jsonwebtoken ed key"))?;
            (bare, dk)
        }
    };
    let verification = VerificationKey::from_jwk(&jwk).map_err(|_| err("jwk rejected"))?;
    Ok(Fixture {
        alg,
        signing_input: signing_input.to_owned(),
        token,
        signature,
        jwk,
        keys: KeySet::new([verification]),
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

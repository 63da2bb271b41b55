//! Signing keys for tests, generated with aws-lc-rs (the workspace's one crypto backend).

use std::fmt;

use agentcube_auth_core::jose::{Algorithm, Jwk, KeyFamily, KeySet, VerificationKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// A private signing key with its public JWK: what a mock issuer signs tokens with.
///
/// The `kid` defaults to the RFC 7638 thumbprint (Keycloak uses random ids of the same
/// length); the JWK carries `use: sig` and `alg`, as Keycloak publishes them.
pub struct TestKey {
    alg: Algorithm,
    kid: String,
    signer: Signer,
    pkcs8: Vec<u8>,
    jwk: Jwk,
}

enum Signer {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl TestKey {
    /// A fresh key for `alg`: RSA-2048 for RS*/PS*, P-256 for ES256, P-384 for ES384, Ed25519 for
    /// EdDSA.
    ///
    /// # Panics
    /// If the crypto library cannot generate a key (it can on every supported platform).
    #[allow(clippy::expect_used)]
    pub fn generate(alg: Algorithm) -> Self {
        Self::try_generate(alg).expect("aws-lc-rs key generation")
    }

    /// A fresh RSA key of `bits` (2048, 3072, 4096 or 8192) for the RSA algorithm `alg`.
    ///
    /// # Panics
    /// For another size, a non-RSA `alg`, or a key-generation failure.
    #[allow(clippy::expect_used, clippy::panic)]
    pub fn generate_rsa(alg: Algorithm, bits: usize) -> Self {
        use aws_lc_rs::rsa::KeySize;
        assert_eq!(
            alg.key_family(),
            KeyFamily::Rsa,
            "{alg} is not an RSA algorithm"
        );
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            other => panic!("unsupported RSA size {other}"),
        };
        let pair = aws_lc_rs::rsa::KeyPair::generate(size).expect("rsa key generation");
        let pkcs8 = pair.as_der().expect("rsa pkcs8 export").as_ref().to_vec();
        Self::from_rsa(alg, pair, pkcs8)
    }

    fn try_generate(alg: Algorithm) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let rng = SystemRandom::new();
        match alg.key_family() {
            KeyFamily::Rsa => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
                let pkcs8 = pair.as_der()?.as_ref().to_vec();
                Ok(Self::from_rsa(alg, pair, pkcs8))
            }
            KeyFamily::P256 | KeyFamily::P384 => {
                let (signing, crv, width) = if alg == Algorithm::ES256 {
                    (&sig::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&sig::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let doc = EcdsaKeyPair::generate_pkcs8(signing, &rng)?;
                let pair = EcdsaKeyPair::from_pkcs8(signing, doc.as_ref())
                    .map_err(|_| aws_lc_rs::error::Unspecified)?;
                let point = pair.public_key().as_ref();
                let x = point.get(1..1 + width).unwrap_or_default();
                let y = point.get(1 + width..).unwrap_or_default();
                let jwk = Jwk {
                    kty: "EC".into(),
                    crv: Some(crv.into()),
                    x: Some(URL_SAFE_NO_PAD.encode(x)),
                    y: Some(URL_SAFE_NO_PAD.encode(y)),
                    ..Jwk::default()
                };
                Ok(Self::assemble(
                    alg,
                    Signer::Ecdsa(pair),
                    doc.as_ref().to_vec(),
                    jwk,
                ))
            }
            KeyFamily::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)?;
                let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                    .map_err(|_| aws_lc_rs::error::Unspecified)?;
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())),
                    ..Jwk::default()
                };
                Ok(Self::assemble(
                    alg,
                    Signer::Ed25519(pair),
                    doc.as_ref().to_vec(),
                    jwk,
                ))
            }
            // KeyFamily is non-exhaustive; every supported algorithm is covered above.
            _ => Err(aws_lc_rs::error::Unspecified),
        }
    }

    fn from_rsa(alg: Algorithm, pair: aws_lc_rs::rsa::KeyPair, pkcs8: Vec<u8>) -> Self {
        let components: aws_lc_rs::rsa::PublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some(URL_SAFE_NO_PAD.encode(&components.n)),
            e: Some(URL_SAFE_NO_PAD.encode(&components.e)),
            ..Jwk::default()
        };
        Self::assemble(alg, Signer::Rsa(pair), pkcs8, jwk)
    }

    fn assemble(alg: Algorithm, signer: Signer, pkcs8: Vec<u8>, mut jwk: Jwk) -> Self {
        let kid = jwk.thumbprint().unwrap_or_default();
        jwk.kid = Some(kid.clone());
        jwk.alg = Some(alg.as_str().into());
        jwk.key_use = Some("sig".into());
        Self {
            alg,
            kid,
            signer,
            pkcs8,
            jwk,
        }
    }

    /// The same key under another `kid`.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = kid.into();
        self.jwk.kid = Some(self.kid.clone());
        self
    }

    /// The same key published without an `alg` member (so its JWK fits every algorithm of its
    /// type, as some issuers publish keys).
    #[must_use]
    pub fn without_jwk_alg(mut self) -> Self {
        self.jwk.alg = None;
        self
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK.
    pub fn jwk(&self) -> Jwk {
        self.jwk.clone()
    }

    /// The public JWK as JSON.
    pub fn jwk_json(&self) -> Value {
        serde_json::to_value(&self.jwk).unwrap_or(Value::Null)
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> String {
        self.jwk.thumbprint().unwrap_or_default()
    }

    /// The public key, parsed for verification.
    ///
    /// # Panics
    /// Never for a generated key.
    #[allow(clippy::expect_used)]
    pub fn verification_key(&self) -> VerificationKey {
        VerificationKey::from_jwk(&self.jwk).expect("generated keys are valid")
    }

    /// The private key as PKCS#8 DER (for PEM files in downstream tests).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs `message` with the key's algorithm.
    ///
    /// # Panics
    /// Never for a generated key.
    #[allow(clippy::expect_used)]
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.sign_as(self.alg, message)
            .expect("a key signs with its own algorithm")
    }

    /// Signs `message` with `alg`, which must fit the key type (an RSA key signs any RS*/PS*
    /// algorithm); `None` otherwise.
    pub fn sign_as(&self, alg: Algorithm, message: &[u8]) -> Option<Vec<u8>> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    _ => return None,
                };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut out).ok()?;
                Some(out)
            }
            Signer::Ecdsa(pair) => {
                (alg == self.alg).then_some(())?;
                Some(pair.sign(&rng, message).ok()?.as_ref().to_vec())
            }
            Signer::Ed25519(pair) => {
                (alg == Algorithm::EdDSA).then_some(())?;
                Some(pair.sign(message).as_ref().to_vec())
            }
        }
    }

    /// A compact JWS of `header` and `claims` (serialized as given), signed with the key's
    /// algorithm whatever the header says.
    pub fn sign_compact(&self, header: &Value, claims: &Value) -> String {
        self.sign_compact_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A compact JWS of raw header and payload bytes (for duplicate members and other JSON a
    /// `Value` cannot hold), signed with the key's algorithm.
    pub fn sign_compact_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self.sign(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A [`KeySet`] of the public halves of `keys` (for [`OidcConfig::static_keys`](crate::OidcConfig::static_keys)).
pub fn key_set<'a>(keys: impl IntoIterator<Item = &'a TestKey>) -> KeySet {
    KeySet::new(keys.into_iter().map(TestKey::verification_key))
}

/// A JWKS document (`{"keys":[...]}`) of the public halves of `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a TestKey>) -> Value {
    Value::Object(
        [(
            "keys".to_owned(),
            Value::Array(keys.into_iter().map(TestKey::jwk_json).collect()),
        )]
        .into_iter()
        .collect(),
    )
}

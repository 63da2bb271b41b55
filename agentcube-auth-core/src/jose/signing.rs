//! The signing half of the JOSE layer: private keys, pre-encoded headers, compact JWS output.
//!
//! Every token this workspace produces — the Router's identity and sandbox tokens, the test
//! issuer's access tokens, the development IdP's, the benches' fixtures — is signed here, so
//! there is one encoder of compact JWS and one place that binds a key to its algorithm.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self as sig, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};

use super::algorithm::{Algorithm, KeyFamily};
use super::base64url;
use super::key::{Jwk, VerificationKey};
use super::pem::{self, KeyError};

/// Why a token could not be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The crypto library failed to sign (it does not on supported platforms).
    #[error("signing failed")]
    Crypto,
    /// The payload could not be serialised as JSON.
    #[error("the payload could not be serialised")]
    Payload,
}

/// A JOSE header, already serialised and base64url-encoded: build it once per token kind with
/// [`SigningKey::header`] and every token of that kind then costs only its payload and
/// signature.
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedHeader(Box<str>);

impl EncodedHeader {
    /// Encodes arbitrary header bytes as they are.
    ///
    /// For tests that need a header the verifier must refuse (duplicate members, `crit`, a
    /// foreign `alg`): nothing here checks the bytes. Production code uses
    /// [`SigningKey::header`].
    pub fn from_json_bytes(header: &[u8]) -> Self {
        Self(base64url::encode(header).into_boxed_str())
    }

    /// The base64url text (the token's first segment).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EncodedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EncodedHeader").field(&self.0).finish()
    }
}

pub(super) enum Material {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key bound to one signing algorithm, with its public JWK.
///
/// Ed25519 (`EdDSA`, the recommended choice: fast to sign and to verify), P-256 (`ES256`),
/// P-384 (`ES384`), P-521 (`ES512`) or RSA (`RS256`/`RS384`/`RS512`/`PS256`/`PS384`/`PS512`). The key id is the
/// RFC 7638 thumbprint of the public key unless set with [`SigningKey::with_kid`], so the same
/// key has the same `kid` wherever it is loaded. The public JWK carries `kid`, `use: sig` and
/// `alg`, so a verifier given it never uses the key with another algorithm.
///
/// `Debug` shows the `kid` and the algorithm, never key material.
pub struct SigningKey {
    alg: Algorithm,
    jwk: Jwk,
    verification: Arc<VerificationKey>,
    material: Material,
}

impl SigningKey {
    /// Generates a key for `alg`: Ed25519 for `EdDSA`, P-256 for `ES256`, P-384 for `ES384`,
    /// P-521 for `ES512`, RSA-2048 for the RSA algorithms (slow to generate, and about 25 times slower to sign
    /// than Ed25519).
    ///
    /// # Errors
    /// [`KeyError::Generation`] if the crypto library fails.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let material = match alg.key_family() {
            KeyFamily::Ed25519 => {
                Material::Ed25519(Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?)
            }
            KeyFamily::P256 => Material::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generation)?,
            ),
            KeyFamily::P384 => Material::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generation)?,
            ),
            KeyFamily::P521 => Material::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generation)?,
            ),
            KeyFamily::Rsa => return Self::generate_rsa(alg, 2048),
        };
        Self::from_material(material, alg)
    }

    /// Generates an RSA key of `bits` (2048, 3072, 4096 or 8192) for the RSA algorithm `alg`.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedAlgorithm`] for a non-RSA `alg`, [`KeyError::UnsupportedKeyType`]
    /// for another size, [`KeyError::Generation`] if the crypto library fails.
    pub fn generate_rsa(alg: Algorithm, bits: usize) -> Result<Self, KeyError> {
        if alg.key_family() != KeyFamily::Rsa {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            _ => return Err(KeyError::UnsupportedKeyType),
        };
        let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?;
        Self::from_material(Material::Rsa(pair), alg)
    }

    /// Loads a private key from PEM: PKCS#8 (`PRIVATE KEY`: Ed25519, P-256, P-384, P-521 or
    /// RSA), PKCS#1 (`RSA PRIVATE KEY`) or SEC 1 (`EC PRIVATE KEY`, P-256). The first PEM block
    /// is used. The algorithm is the key type's default: `EdDSA`, `ES256`, `ES384`, `ES512` or
    /// `RS256`
    /// (see [`SigningKey::with_algorithm`] for another RSA algorithm).
    ///
    /// # Errors
    /// [`KeyError`] saying what is wrong; encrypted keys and public keys are refused.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let (material, alg) = pem::private_key_from_pem(pem_text)?;
        Self::from_material(material, alg)
    }

    /// Loads a PKCS#8 `PrivateKeyInfo` (v1 or v2) holding an Ed25519, P-256, P-384, P-521 or
    /// RSA key.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedKeyType`] for other key types; [`KeyError::Rejected`] for a key the
    /// crypto library refuses (for example RSA under 2048 bits).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let (material, alg) = pem::private_key_from_pkcs8(der)?;
        Self::from_material(material, alg)
    }

    /// Loads a PKCS#1 `RSAPrivateKey` (signs `RS256`).
    ///
    /// # Errors
    /// [`KeyError::Rejected`] when the DER is not an acceptable RSA key (2048 to 8192 bits).
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        Self::from_material(Material::Rsa(RsaKeyPair::from_der(der)?), Algorithm::RS256)
    }

    /// Loads a SEC 1 `ECPrivateKey` on P-256 (signs `ES256`).
    ///
    /// # Errors
    /// [`KeyError::Rejected`] when the DER is not a P-256 private key.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)?;
        Self::from_material(Material::Ecdsa(pair), Algorithm::ES256)
    }

    /// The same key bound to another algorithm of its type (an RSA key may sign any of the
    /// `RS*`/`PS*` algorithms; other key types have exactly one).
    ///
    /// # Errors
    /// [`KeyError::UnsupportedAlgorithm`] when `alg` does not fit the key.
    pub fn with_algorithm(self, alg: Algorithm) -> Result<Self, KeyError> {
        if alg == self.alg {
            return Ok(self);
        }
        if alg.key_family() != KeyFamily::Rsa || self.alg.key_family() != KeyFamily::Rsa {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        let kid = self.jwk.kid.clone();
        let mut key = Self::from_material(self.material, alg)?;
        if let Some(kid) = kid {
            key = key.with_kid(kid);
        }
        Ok(key)
    }

    /// The same key published under another `kid` (identity providers such as Keycloak use
    /// random ids rather than thumbprints).
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.jwk.kid = Some(kid.into());
        // A JWK that parsed a moment ago still parses with another `kid`.
        if let Ok(verification) = VerificationKey::from_jwk(&self.jwk) {
            self.verification = Arc::new(verification);
        }
        self
    }

    fn from_material(material: Material, alg: Algorithm) -> Result<Self, KeyError> {
        let family = match &material {
            Material::Ed25519(_) => KeyFamily::Ed25519,
            // The uncompressed point `0x04 || x || y` tells the curve.
            Material::Ecdsa(k) => match k.public_key().as_ref().len() {
                65 => KeyFamily::P256,
                97 => KeyFamily::P384,
                133 => KeyFamily::P521,
                _ => return Err(KeyError::UnsupportedKeyType),
            },
            Material::Rsa(_) => KeyFamily::Rsa,
        };
        if alg.key_family() != family {
            return Err(KeyError::UnsupportedAlgorithm(alg));
        }
        let jwk = match &material {
            Material::Ed25519(k) => Jwk::okp_ed25519(k.public_key().as_ref()),
            Material::Ecdsa(k) => Jwk::ec_point(k.public_key().as_ref()),
            Material::Rsa(k) => {
                let public = k.public_key();
                Some(Jwk::rsa(
                    public.modulus().big_endian_without_leading_zero(),
                    public.exponent().big_endian_without_leading_zero(),
                ))
            }
        }
        .ok_or(KeyError::Encoding)?;
        let jwk = jwk.for_signing_with(alg).map_err(KeyError::Unusable)?;
        let verification = VerificationKey::from_jwk(&jwk).map_err(KeyError::Unusable)?;
        Ok(Self {
            alg,
            jwk,
            verification: Arc::new(verification),
            material,
        })
    }

    /// The key id (`kid`).
    pub fn kid(&self) -> &str {
        self.jwk.kid.as_deref().unwrap_or_default()
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public key as a JWK with `kid`, `use: sig` and `alg`.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The public key, parsed for verification.
    pub fn verification_key(&self) -> &Arc<VerificationKey> {
        &self.verification
    }

    /// The private key as PKCS#8 v1 DER (a secret).
    ///
    /// # Errors
    /// [`KeyError::Encoding`] if the crypto library cannot serialise the key.
    pub fn to_pkcs8_der(&self) -> Result<PrivateKeyDer, KeyError> {
        let der: Vec<u8> = match &self.material {
            Material::Ed25519(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Material::Ecdsa(k) => k.to_pkcs8v1().map(|d| d.as_ref().to_vec()),
            Material::Rsa(k) => {
                let der: Result<Pkcs8V1Der<'static>, _> = k.as_der();
                der.map(|d| d.as_ref().to_vec())
            }
        }
        .map_err(|_| KeyError::Encoding)?;
        Ok(PrivateKeyDer(der))
    }

    /// The private key as PKCS#8 v1 PEM (`PRIVATE KEY`), for persisting a generated key.
    ///
    /// # Errors
    /// [`KeyError::Encoding`] if the crypto library cannot serialise the key.
    pub fn to_pkcs8_pem(&self) -> Result<PrivateKeyPem, KeyError> {
        let der = self.to_pkcs8_der()?;
        Ok(PrivateKeyPem(pem::encode("PRIVATE KEY", der.0)))
    }

    /// The public key as SPKI PEM (`PUBLIC KEY`), the form a verifier is given as a file.
    ///
    /// # Errors
    /// [`KeyError::Encoding`] if the crypto library cannot serialise the key.
    pub fn to_public_pem(&self) -> Result<String, KeyError> {
        let der: PublicKeyX509Der<'static> = match &self.material {
            Material::Ed25519(k) => k.public_key().as_der(),
            Material::Ecdsa(k) => k.public_key().as_der(),
            Material::Rsa(k) => k.public_key().as_der(),
        }
        .map_err(|_| KeyError::Encoding)?;
        Ok(pem::encode("PUBLIC KEY", der.as_ref().to_vec()))
    }

    /// The header `{"alg","kid","typ"}` of this key, encoded once; `typ` is left out when
    /// `None`. Keep it beside the key and pass it to [`SigningKey::sign`] for every token of
    /// that kind.
    pub fn header(&self, typ: Option<&str>) -> EncodedHeader {
        #[derive(serde::Serialize)]
        struct Header<'a> {
            alg: &'static str,
            kid: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            typ: Option<&'a str>,
        }
        let header = Header {
            alg: self.alg.as_str(),
            kid: self.kid(),
            typ,
        };
        // Three strings always serialise.
        let json = serde_json::to_vec(&header).unwrap_or_default();
        EncodedHeader::from_json_bytes(&json)
    }

    /// Signs `payload` (serialised JSON) under `header` as a compact JWS.
    ///
    /// The header is used as given: pass one built by this key's [`SigningKey::header`].
    ///
    /// # Errors
    /// [`SignError::Crypto`] if the crypto library fails.
    pub fn sign(&self, header: &EncodedHeader, payload: &[u8]) -> Result<String, SignError> {
        let mut out = String::with_capacity(
            header.0.len()
                + 2
                + base64url::encoded_len(payload.len())
                + base64url::encoded_len(self.signature_len()),
        );
        out.push_str(&header.0);
        out.push('.');
        base64url::encode_to(payload, &mut out);
        let signature = self.sign_message(out.as_bytes())?;
        out.push('.');
        base64url::encode_to(signature, &mut out);
        Ok(out)
    }

    /// Serialises `claims` and signs them under this key's header with `typ`.
    ///
    /// A convenience for occasional tokens; a hot path keeps its [`EncodedHeader`] and calls
    /// [`SigningKey::sign`].
    ///
    /// # Errors
    /// [`SignError::Payload`] if `claims` does not serialise; [`SignError::Crypto`].
    pub fn sign_claims(
        &self,
        typ: Option<&str>,
        claims: &impl serde::Serialize,
    ) -> Result<String, SignError> {
        let payload = serde_json::to_vec(claims).map_err(|_| SignError::Payload)?;
        self.sign(&self.header(typ), &payload)
    }

    /// The bare signature of `message` with the key's algorithm.
    ///
    /// # Errors
    /// [`SignError::Crypto`] if the crypto library fails.
    pub fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.material {
            Material::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Material::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignError::Crypto),
            Material::Rsa(k) => {
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(
                    rsa_padding(self.alg),
                    &SystemRandom::new(),
                    message,
                    &mut out,
                )
                .map_err(|_| SignError::Crypto)?;
                Ok(out)
            }
        }
    }

    fn signature_len(&self) -> usize {
        match &self.material {
            Material::Ed25519(_) => 64,
            Material::Ecdsa(k) => k.public_key().as_ref().len() - 1,
            Material::Rsa(k) => k.public_modulus_len(),
        }
    }
}

fn rsa_padding(alg: Algorithm) -> &'static dyn sig::RsaEncoding {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        // `from_material` bound an RSA key to an RSA algorithm; RS256 is the rest.
        _ => &sig::RSA_PKCS1_SHA256,
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid())
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A PEM-encoded private key. Its `Debug` is redacted; write it only to a protected file.
#[derive(Clone)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// The PEM text (a secret).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// A DER-encoded PKCS#8 private key. Its `Debug` is redacted.
#[derive(Clone)]
pub struct PrivateKeyDer(Vec<u8>);

impl PrivateKeyDer {
    /// The DER bytes (a secret).
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyDer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyDer(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{JwsPolicy, TypePolicy, UnverifiedJws};

    #[test]
    fn every_algorithm_signs_what_its_verification_key_accepts() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let token = key
                .sign_claims(Some("JWT"), &serde_json::json!({"sub": "a"}))
                .unwrap();
            let mut policy = JwsPolicy::new(crate::jose::AlgorithmSet::only(alg));
            policy.types = TypePolicy::access_token();
            let jws = UnverifiedJws::parse(&token, &policy).unwrap();
            assert_eq!(jws.header().kid.as_deref(), Some(key.kid()));
            jws.verify(key.verification_key()).unwrap();
        }
    }

    #[test]
    fn header_is_encoded_once_with_the_key_kid_and_alg() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let decoded = base64url::decode(key.header(Some("x+jwt")).as_str()).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "kid": key.kid(), "typ": "x+jwt"})
        );
        assert_eq!(base64url::encoded_len(64), 86);
        assert_eq!(base64url::encoded_len(0), 0);
    }

    #[test]
    fn rsa_keys_rebind_and_others_refuse() {
        let key = SigningKey::generate(Algorithm::RS256).unwrap();
        let kid = key.kid().to_owned();
        let pss = key.with_algorithm(Algorithm::PS384).unwrap();
        assert_eq!(pss.algorithm(), Algorithm::PS384);
        assert_eq!(pss.kid(), kid);
        let ed = SigningKey::generate(Algorithm::EdDSA).unwrap();
        assert_eq!(
            ed.with_algorithm(Algorithm::ES256).err(),
            Some(KeyError::UnsupportedAlgorithm(Algorithm::ES256))
        );
        assert_eq!(
            SigningKey::generate_rsa(Algorithm::ES256, 2048).err(),
            Some(KeyError::UnsupportedAlgorithm(Algorithm::ES256))
        );
        assert_eq!(
            SigningKey::generate_rsa(Algorithm::RS256, 1024).err(),
            Some(KeyError::UnsupportedKeyType)
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert_eq!(format!("{pem:?}"), "PrivateKeyPem(<redacted>)");
        let der = key.to_pkcs8_der().unwrap();
        assert_eq!(format!("{der:?}"), "PrivateKeyDer(<redacted>)");
        assert!(!format!("{key:?}").contains(pem.expose_secret()));
    }
}

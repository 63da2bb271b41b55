//! Signing keys: generation, PEM loading, the public JWK, and the compact-JWS signer.

use std::fmt;
use std::sync::Arc;

use agentcube_auth_core::jose::{Algorithm, Jwk, SkipReason, VerificationKey};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{IDENTITY_TOKEN_TYPE, SANDBOX_TOKEN_TYPE};

/// Why a key could not be generated, loaded, added or removed.
///
/// Messages never contain key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The input is not a PEM document.
    #[error("not a pem document")]
    NotPem,
    /// The PEM label names a format this crate does not read (the label is included, sanitised).
    #[error("pem label {0:?} is not a supported key format")]
    UnsupportedPemLabel(String),
    /// An encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY` or a legacy `Proc-Type` header).
    #[error("encrypted private keys are not supported")]
    Encrypted,
    /// A public key was given where a private key is needed.
    #[error("expected a private key, found a public key")]
    NotAPrivateKey,
    /// A private key was given where only a public key belongs (a verifier never needs one).
    #[error("expected a public key, found a private key")]
    NotAPublicKey,
    /// The key is of a type that is not supported (for example P-384, DSA or X25519).
    #[error("unsupported key type")]
    UnsupportedKeyType,
    /// Signing with this algorithm is not supported (EdDSA, ES256 and RS256 are).
    #[error("signing algorithm {0} is not supported")]
    UnsupportedAlgorithm(Algorithm),
    /// The crypto library rejected the key (wrong size, inconsistent components, bad encoding).
    #[error("the key was rejected: {0}")]
    Rejected(&'static str),
    /// Key generation failed.
    #[error("key generation failed")]
    Generation,
    /// The public key cannot be used for verification.
    #[error("the key cannot be used for verification: {0}")]
    Unusable(SkipReason),
    /// The active signing key cannot be removed from a key ring; rotate first.
    #[error("the active signing key cannot be removed")]
    ActiveKey,
    /// Serialising the key failed.
    #[error("key serialisation failed")]
    Encoding,
}

impl From<KeyRejected> for KeyError {
    fn from(e: KeyRejected) -> Self {
        Self::Rejected(e.description_())
    }
}

/// Why a token could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The key ring has no active signing key (it is verify-only or empty).
    #[error("the key ring has no signing key")]
    NoSigningKey,
    /// The principal's subject is empty.
    #[error("the subject is empty")]
    EmptySubject,
    /// The session id is empty or longer than [`MAX_SESSION_ID_BYTES`](crate::MAX_SESSION_ID_BYTES).
    #[error("the session id is empty or too long")]
    InvalidSessionId,
    /// The minter configuration is inconsistent (the text says which rule failed).
    #[error("invalid minter configuration: {0}")]
    InvalidConfig(&'static str),
    /// The crypto library failed to sign.
    #[error("signing failed")]
    Signing,
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

enum Material {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key that signs internal tokens: Ed25519 (EdDSA, the default), P-256 (ES256) or
/// RSA (RS256, for the reference system's existing keys).
///
/// The key id is the RFC 7638 thumbprint of the public key, so the same key always has the same
/// `kid` wherever it is loaded. The JOSE headers of both token kinds are encoded once, when the
/// key is created, so signing a token serialises only its payload.
///
/// `Debug` shows the `kid` and algorithm, never key material.
pub struct SigningKey {
    kid: Box<str>,
    alg: Algorithm,
    jwk: Jwk,
    verification: Arc<VerificationKey>,
    material: Material,
    identity_header: Box<str>,
    sandbox_header: Box<str>,
}

impl SigningKey {
    /// Generates a new key for `alg`: [`Algorithm::EdDSA`] (recommended), [`Algorithm::ES256`], or
    /// [`Algorithm::RS256`] (RSA-2048; slow to generate and ~25× slower to sign than EdDSA).
    ///
    /// # Errors
    /// [`KeyError::UnsupportedAlgorithm`] for any other algorithm; [`KeyError::Generation`].
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let material = match alg {
            Algorithm::EdDSA => {
                Material::Ed25519(Ed25519KeyPair::generate().map_err(|_| KeyError::Generation)?)
            }
            Algorithm::ES256 => Material::P256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Generation)?,
            ),
            Algorithm::RS256 => Material::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?,
            ),
            other => return Err(KeyError::UnsupportedAlgorithm(other)),
        };
        Self::from_material(material)
    }

    /// Loads a private key from PEM: PKCS#8 (`PRIVATE KEY`: Ed25519, P-256 or RSA), PKCS#1
    /// (`RSA PRIVATE KEY`, as in the reference Router's `private.pem`) or SEC 1
    /// (`EC PRIVATE KEY`, P-256). The first PEM block is used.
    ///
    /// # Errors
    /// [`KeyError`] saying what is wrong; encrypted keys and public keys are refused.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text).map_err(|_| KeyError::NotPem)?;
        if block.headers().get("Proc-Type").is_some() {
            return Err(KeyError::Encrypted);
        }
        match block.tag() {
            "PRIVATE KEY" => Self::from_pkcs8_der(block.contents()),
            "RSA PRIVATE KEY" => Self::from_pkcs1_der(block.contents()),
            "EC PRIVATE KEY" => Self::from_sec1_der(block.contents()),
            "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
            "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(KeyError::NotAPrivateKey),
            other => Err(KeyError::UnsupportedPemLabel(sanitise(other))),
        }
    }

    /// Loads a PKCS#8 `PrivateKeyInfo` (v1 or v2) holding an Ed25519, P-256 or RSA key.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedKeyType`] for other key types; [`KeyError::Rejected`] for a key the
    /// crypto library refuses (for example RSA under 2048 bits).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let material = match der::pkcs8_key_type(der) {
            Some(der::KeyType::Ed25519) => Material::Ed25519(Ed25519KeyPair::from_pkcs8(der)?),
            Some(der::KeyType::P256) => Material::P256(EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )?),
            Some(der::KeyType::Rsa) => Material::Rsa(RsaKeyPair::from_pkcs8(der)?),
            Some(der::KeyType::Other) => return Err(KeyError::UnsupportedKeyType),
            None => return Err(KeyError::Rejected("not a pkcs#8 private key")),
        };
        Self::from_material(material)
    }

    /// Loads a PKCS#1 `RSAPrivateKey` (signs RS256).
    ///
    /// # Errors
    /// [`KeyError::Rejected`] when the DER is not an acceptable RSA key (2048 to 8192 bits).
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        Self::from_material(Material::Rsa(RsaKeyPair::from_der(der)?))
    }

    /// Loads a SEC 1 `ECPrivateKey` on P-256 (signs ES256).
    ///
    /// # Errors
    /// [`KeyError::Rejected`] when the DER is not a P-256 private key.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, KeyError> {
        Self::from_material(Material::P256(EcdsaKeyPair::from_private_key_der(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
        )?))
    }

    fn from_material(material: Material) -> Result<Self, KeyError> {
        let (alg, jwk) = match &material {
            Material::Ed25519(k) => (
                Algorithm::EdDSA,
                okp_jwk(k.public_key().as_ref()).ok_or(KeyError::Encoding)?,
            ),
            Material::P256(k) => (
                Algorithm::ES256,
                ec_point_jwk(k.public_key().as_ref()).ok_or(KeyError::Encoding)?,
            ),
            Material::Rsa(k) => {
                let public = k.public_key();
                (
                    Algorithm::RS256,
                    rsa_jwk(
                        public.modulus().big_endian_without_leading_zero(),
                        public.exponent().big_endian_without_leading_zero(),
                    ),
                )
            }
        };
        let jwk = finish_jwk(jwk, alg)?;
        let verification = VerificationKey::from_jwk(&jwk).map_err(KeyError::Unusable)?;
        let kid: Box<str> = jwk.kid.clone().unwrap_or_default().into_boxed_str();
        Ok(Self {
            identity_header: encode_header(alg, &kid, IDENTITY_TOKEN_TYPE),
            sandbox_header: encode_header(alg, &kid, SANDBOX_TOKEN_TYPE),
            kid,
            alg,
            jwk,
            verification: Arc::new(verification),
            material,
        })
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The signing algorithm: `EdDSA`, `ES256` or `RS256`.
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

    /// The private key as PKCS#8 v1 PEM (`PRIVATE KEY`), for persisting a generated key.
    ///
    /// # Errors
    /// [`KeyError::Encoding`] if the crypto library cannot serialise the key.
    pub fn to_pkcs8_pem(&self) -> Result<PrivateKeyPem, KeyError> {
        let der: Vec<u8> = match &self.material {
            Material::Ed25519(k) => k
                .to_pkcs8v1()
                .map_err(|_| KeyError::Encoding)?
                .as_ref()
                .to_vec(),
            Material::P256(k) => k
                .to_pkcs8v1()
                .map_err(|_| KeyError::Encoding)?
                .as_ref()
                .to_vec(),
            Material::Rsa(k) => {
                let der: Pkcs8V1Der<'static> = k.as_der().map_err(|_| KeyError::Encoding)?;
                der.as_ref().to_vec()
            }
        };
        let block = pem::Pem::new("PRIVATE KEY", der);
        Ok(PrivateKeyPem(pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )))
    }

    /// The public key as SPKI PEM (`PUBLIC KEY`), the form of the reference system's
    /// `public.pem`: what a workload manager or sandbox is given with `--router-public-key`.
    ///
    /// # Errors
    /// [`KeyError::Encoding`] if the crypto library cannot serialise the key.
    pub fn to_public_pem(&self) -> Result<String, KeyError> {
        let der: PublicKeyX509Der<'static> = match &self.material {
            Material::Ed25519(k) => k.public_key().as_der(),
            Material::P256(k) => k.public_key().as_der(),
            Material::Rsa(k) => k.public_key().as_der(),
        }
        .map_err(|_| KeyError::Encoding)?;
        let block = pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec());
        Ok(pem::encode_config(
            &block,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        ))
    }

    /// Signs `payload` (a JSON object, serialised) as a compact JWS with the header
    /// `{"alg", "kid", "typ"}`.
    ///
    /// This is the low-level signer the minter uses; it does not look at the payload. It is
    /// public so that services can issue tokens of their own kinds (with their own `typ`) from
    /// the same key ring, and so that tests can build deliberately wrong tokens.
    ///
    /// # Errors
    /// [`MintError::Signing`] if the crypto library fails.
    pub fn sign_jws(&self, typ: &str, payload: &[u8]) -> Result<String, MintError> {
        if typ == IDENTITY_TOKEN_TYPE {
            self.sign_with_header(&self.identity_header, payload)
        } else if typ == SANDBOX_TOKEN_TYPE {
            self.sign_with_header(&self.sandbox_header, payload)
        } else {
            self.sign_with_header(&encode_header(self.alg, &self.kid, typ), payload)
        }
    }

    pub(crate) fn header_for(&self, kind: crate::TokenKind) -> &str {
        match kind {
            crate::TokenKind::Identity => &self.identity_header,
            crate::TokenKind::Sandbox => &self.sandbox_header,
        }
    }

    pub(crate) fn sign_with_header(
        &self,
        header_b64: &str,
        payload: &[u8],
    ) -> Result<String, MintError> {
        let sig_len = match &self.material {
            Material::Ed25519(_) | Material::P256(_) => 64,
            Material::Rsa(k) => k.public_modulus_len(),
        };
        let mut out =
            String::with_capacity(header_b64.len() + 2 + b64_len(payload.len()) + b64_len(sig_len));
        out.push_str(header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        let message = out.as_bytes();
        match &self.material {
            Material::Ed25519(k) => {
                let sig = k.try_sign(message).map_err(|_| MintError::Signing)?;
                out.push('.');
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
            }
            Material::P256(k) => {
                let sig = k
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| MintError::Signing)?;
                out.push('.');
                URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut out);
            }
            Material::Rsa(k) => {
                let mut sig = vec![0u8; sig_len];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .map_err(|_| MintError::Signing)?;
                out.push('.');
                URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
            }
        }
        Ok(out)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Reads a public key from PEM: SPKI (`PUBLIC KEY`, as in the reference Router's `public.pem`;
/// Ed25519, P-256 or RSA) or PKCS#1 (`RSA PUBLIC KEY`). The returned JWK has `kid` (the RFC 7638
/// thumbprint), `use: sig` and `alg` (`EdDSA`, `ES256` or `RS256`, so the key never verifies
/// another algorithm).
///
/// # Errors
/// [`KeyError`]; a private key is refused with [`KeyError::NotAPublicKey`].
pub fn public_jwk_from_pem(pem_text: &str) -> Result<Jwk, KeyError> {
    let block = pem::parse(pem_text).map_err(|_| KeyError::NotPem)?;
    match block.tag() {
        "PUBLIC KEY" => public_jwk_from_spki_der(block.contents()),
        "RSA PUBLIC KEY" => {
            let key = aws_lc_rs::rsa::PublicKey::from_der(block.contents())?;
            finish_jwk(
                rsa_jwk(
                    key.modulus().big_endian_without_leading_zero(),
                    key.exponent().big_endian_without_leading_zero(),
                ),
                Algorithm::RS256,
            )
        }
        "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
            Err(KeyError::NotAPublicKey)
        }
        other => Err(KeyError::UnsupportedPemLabel(sanitise(other))),
    }
}

/// Reads a DER `SubjectPublicKeyInfo` (Ed25519, P-256 uncompressed, or RSA) as a JWK, like
/// [`public_jwk_from_pem`].
///
/// # Errors
/// [`KeyError::UnsupportedKeyType`] for other key types; [`KeyError::Rejected`] for bad RSA keys.
pub fn public_jwk_from_spki_der(der: &[u8]) -> Result<Jwk, KeyError> {
    let (jwk, alg) = if let Some(x) = der.strip_prefix(der::ED25519_SPKI_PREFIX) {
        (
            okp_jwk(x).ok_or(KeyError::Rejected("bad ed25519 key"))?,
            Algorithm::EdDSA,
        )
    } else if let Some(point) = der.strip_prefix(der::P256_SPKI_PREFIX) {
        (
            ec_point_jwk(point).ok_or(KeyError::Rejected("bad p-256 point"))?,
            Algorithm::ES256,
        )
    } else if der::is_rsa_spki(der) {
        let key = aws_lc_rs::rsa::PublicKey::from_der(der)?;
        (
            rsa_jwk(
                key.modulus().big_endian_without_leading_zero(),
                key.exponent().big_endian_without_leading_zero(),
            ),
            Algorithm::RS256,
        )
    } else {
        return Err(KeyError::UnsupportedKeyType);
    };
    finish_jwk(jwk, alg)
}

/// Sets `kid` (the thumbprint), `use` and `alg`, and checks the key is usable for verification.
pub(crate) fn finish_jwk(mut jwk: Jwk, alg: Algorithm) -> Result<Jwk, KeyError> {
    jwk.kid = Some(jwk.thumbprint().ok_or(KeyError::Encoding)?);
    jwk.key_use = Some("sig".to_owned());
    jwk.alg = Some(alg.as_str().to_owned());
    VerificationKey::from_jwk(&jwk).map_err(KeyError::Unusable)?;
    Ok(jwk)
}

fn okp_jwk(x: &[u8]) -> Option<Jwk> {
    (x.len() == 32).then(|| Jwk {
        kty: "OKP".to_owned(),
        crv: Some("Ed25519".to_owned()),
        x: Some(URL_SAFE_NO_PAD.encode(x)),
        ..Jwk::default()
    })
}

fn ec_point_jwk(point: &[u8]) -> Option<Jwk> {
    match point.split_first() {
        Some((0x04, xy)) if xy.len() == 64 => {
            let (x, y) = xy.split_at(32);
            Some(Jwk {
                kty: "EC".to_owned(),
                crv: Some("P-256".to_owned()),
                x: Some(URL_SAFE_NO_PAD.encode(x)),
                y: Some(URL_SAFE_NO_PAD.encode(y)),
                ..Jwk::default()
            })
        }
        _ => None,
    }
}

fn rsa_jwk(n: &[u8], e: &[u8]) -> Jwk {
    Jwk {
        kty: "RSA".to_owned(),
        n: Some(URL_SAFE_NO_PAD.encode(n)),
        e: Some(URL_SAFE_NO_PAD.encode(e)),
        ..Jwk::default()
    }
}

fn encode_header(alg: Algorithm, kid: &str, typ: &str) -> Box<str> {
    let header = serde_json::json!({ "alg": alg.as_str(), "kid": kid, "typ": typ });
    URL_SAFE_NO_PAD
        .encode(header.to_string().as_bytes())
        .into_boxed_str()
}

const fn b64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

fn sanitise(label: &str) -> String {
    label
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Just enough DER to tell key types apart.
///
/// DER is a canonical encoding, so the `SubjectPublicKeyInfo` of an Ed25519 or (uncompressed)
/// P-256 key always begins with the same bytes: matching those prefixes is an exact parser for
/// those two types. RSA public keys and all private keys are parsed by aws-lc-rs; here only the
/// algorithm OID of a PKCS#8 structure is read to choose the right aws-lc-rs constructor (so a
/// P-384 key is reported as an unsupported type, not as "rejected").
mod der {
    /// `SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (33 bytes, 0 unused bits) }`.
    pub(super) const ED25519_SPKI_PREFIX: &[u8] = &[
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    /// `SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID prime256v1 } BIT STRING (66 bytes) }`.
    pub(super) const P256_SPKI_PREFIX: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OID: u8 = 0x06;

    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum KeyType {
        Ed25519,
        P256,
        Rsa,
        Other,
    }

    /// Reads one TLV: `(tag, contents, rest)`. Lengths up to 4 bytes (long form).
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let (bytes, rest) = rest.split_at(n);
            (
                bytes
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
                rest,
            )
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        Some((tag, contents, rest))
    }

    fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        match tlv(input)? {
            (t, contents, rest) if t == tag => Some((contents, rest)),
            _ => None,
        }
    }

    /// The key type named by a PKCS#8 `PrivateKeyInfo`'s `AlgorithmIdentifier`.
    pub(super) fn pkcs8_key_type(der: &[u8]) -> Option<KeyType> {
        let (info, _) = expect(der, SEQUENCE)?;
        let (_version, rest) = expect(info, INTEGER)?;
        let (alg_id, _) = expect(rest, SEQUENCE)?;
        algorithm_type(alg_id)
    }

    /// Whether a `SubjectPublicKeyInfo` names `rsaEncryption`.
    pub(super) fn is_rsa_spki(der: &[u8]) -> bool {
        expect(der, SEQUENCE)
            .and_then(|(spki, _)| expect(spki, SEQUENCE))
            .and_then(|(alg_id, _)| algorithm_type(alg_id))
            == Some(KeyType::Rsa)
    }

    fn algorithm_type(alg_id: &[u8]) -> Option<KeyType> {
        let (oid, params) = expect(alg_id, OID)?;
        Some(match oid {
            OID_ED25519 => KeyType::Ed25519,
            OID_RSA => KeyType::Rsa,
            OID_EC_PUBLIC_KEY => match expect(params, OID) {
                Some((OID_P256, _)) => KeyType::P256,
                _ => KeyType::Other,
            },
            _ => KeyType::Other,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn truncated_and_hostile_der_is_rejected_without_panicking() {
            for bad in [
                &[][..],
                &[0x30],
                &[0x30, 0x85, 1, 1, 1, 1, 1],
                &[0x30, 0x82, 0xff],
                &[0x30, 0x03, 0x02, 0x01],
                &[0x30, 0x05, 0x02, 0x01, 0x00, 0x30, 0x00],
            ] {
                assert_eq!(pkcs8_key_type(bad), None, "{bad:?}");
                assert!(!is_rsa_spki(bad));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_pre_encoded_per_kind() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let decoded = URL_SAFE_NO_PAD
            .decode(key.header_for(crate::TokenKind::Identity))
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["typ"], IDENTITY_TOKEN_TYPE);
        assert_eq!(header["kid"], key.kid());
        assert_eq!(b64_len(64), 86);
        assert_eq!(b64_len(0), 0);
    }

    #[test]
    fn unsupported_generation_algorithms() {
        assert_eq!(
            SigningKey::generate(Algorithm::PS256).err(),
            Some(KeyError::UnsupportedAlgorithm(Algorithm::PS256))
        );
    }
}

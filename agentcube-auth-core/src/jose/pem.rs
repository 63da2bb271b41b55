//! Reading keys from PEM and DER, and writing them back: the file formats keys arrive in (a
//! Kubernetes Secret's `private.pem` / `public.pem`, a generated key persisted to disk).

use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
    ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
};

use super::algorithm::Algorithm;
use super::key::{Jwk, SkipReason};
use super::signing::Material;
use crate::error::Untrusted;
use crate::rejection::Code;

/// Why a key could not be generated, loaded, added or removed.
///
/// Messages never contain key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The input is not a PEM document.
    #[error("not a pem document")]
    NotPem,
    /// The PEM label names a format that is not read here (the label is included, sanitised).
    #[error("pem label {0:?} is not a supported key format")]
    UnsupportedPemLabel(Untrusted),
    /// An encrypted private key (PKCS#8 `ENCRYPTED PRIVATE KEY` or a legacy `Proc-Type` header).
    #[error("encrypted private keys are not supported")]
    Encrypted,
    /// A public key was given where a private key is needed.
    #[error("expected a private key, found a public key")]
    NotAPrivateKey,
    /// A private key was given where only a public key belongs (a verifier never needs one).
    #[error("expected a public key, found a private key")]
    NotAPublicKey,
    /// The key is of a type that is not supported (for example secp256k1, DSA or X25519), or
    /// an RSA size that cannot be generated.
    #[error("unsupported key type")]
    UnsupportedKeyType,
    /// The algorithm does not fit the key (or cannot sign).
    #[error("signing algorithm {0} does not fit the key")]
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

impl KeyError {
    /// A stable snake_case code, for logs and metrics.
    pub const fn code(&self) -> Code {
        match self {
            Self::NotPem => Code::new("not_pem"),
            Self::UnsupportedPemLabel(_) => Code::new("unsupported_pem_label"),
            Self::Encrypted => Code::new("encrypted_key"),
            Self::NotAPrivateKey => Code::new("not_a_private_key"),
            Self::NotAPublicKey => Code::new("not_a_public_key"),
            Self::UnsupportedKeyType => Code::new("unsupported_key_type"),
            Self::UnsupportedAlgorithm(_) => Code::new("unsupported_algorithm"),
            Self::Rejected(_) => Code::new("key_rejected"),
            Self::Generation => Code::new("key_generation_failed"),
            Self::Unusable(_) => Code::new("unusable_key"),
            Self::ActiveKey => Code::new("active_key"),
            Self::Encoding => Code::new("key_encoding_failed"),
        }
    }
}

pub(super) fn private_key_from_pem(pem_text: &str) -> Result<(Material, Algorithm), KeyError> {
    let block = ::pem::parse(pem_text).map_err(|_| KeyError::NotPem)?;
    if block.headers().get("Proc-Type").is_some() {
        return Err(KeyError::Encrypted);
    }
    match block.tag() {
        "PRIVATE KEY" => private_key_from_pkcs8(block.contents()),
        "RSA PRIVATE KEY" => Ok((
            Material::Rsa(RsaKeyPair::from_der(block.contents())?),
            Algorithm::RS256,
        )),
        "EC PRIVATE KEY" => Ok((
            Material::Ecdsa(EcdsaKeyPair::from_private_key_der(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                block.contents(),
            )?),
            Algorithm::ES256,
        )),
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(KeyError::NotAPrivateKey),
        other => Err(KeyError::UnsupportedPemLabel(Untrusted::new(other))),
    }
}

pub(super) fn private_key_from_pkcs8(der: &[u8]) -> Result<(Material, Algorithm), KeyError> {
    Ok(match der::pkcs8_key_type(der) {
        Some(der::KeyType::Ed25519) => (
            Material::Ed25519(Ed25519KeyPair::from_pkcs8(der)?),
            Algorithm::EdDSA,
        ),
        Some(der::KeyType::P256) => (
            Material::Ecdsa(EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
            )?),
            Algorithm::ES256,
        ),
        Some(der::KeyType::P384) => (
            Material::Ecdsa(EcdsaKeyPair::from_pkcs8(
                &ECDSA_P384_SHA384_FIXED_SIGNING,
                der,
            )?),
            Algorithm::ES384,
        ),
        Some(der::KeyType::P521) => (
            Material::Ecdsa(EcdsaKeyPair::from_pkcs8(
                &ECDSA_P521_SHA512_FIXED_SIGNING,
                der,
            )?),
            Algorithm::ES512,
        ),
        Some(der::KeyType::Rsa) => (
            Material::Rsa(RsaKeyPair::from_pkcs8(der)?),
            Algorithm::RS256,
        ),
        Some(der::KeyType::Other) => return Err(KeyError::UnsupportedKeyType),
        None => return Err(KeyError::Rejected("not a pkcs#8 private key")),
    })
}

impl Jwk {
    /// Reads a public key from PEM: SPKI (`PUBLIC KEY`: Ed25519, P-256, P-384, P-521 or RSA) or
    /// PKCS#1 (`RSA PUBLIC KEY`), as a JWK ready to publish or verify with: `kid` is the RFC 7638
    /// thumbprint, `use` is `sig`, and `alg` is the key type's default (`EdDSA`, `ES256`,
    /// `ES384`, `ES512` or `RS256`), so the key never verifies another algorithm.
    ///
    /// # Errors
    /// [`KeyError`]; a private key is refused with [`KeyError::NotAPublicKey`].
    pub fn from_public_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = ::pem::parse(pem_text).map_err(|_| KeyError::NotPem)?;
        match block.tag() {
            "PUBLIC KEY" => Self::from_spki_der(block.contents()),
            "RSA PUBLIC KEY" => {
                let key = aws_lc_rs::rsa::PublicKey::from_der(block.contents())?;
                Self::rsa(
                    key.modulus().big_endian_without_leading_zero(),
                    key.exponent().big_endian_without_leading_zero(),
                )
                .for_signing_with(Algorithm::RS256)
                .map_err(KeyError::Unusable)
            }
            "PRIVATE KEY" | "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                Err(KeyError::NotAPublicKey)
            }
            other => Err(KeyError::UnsupportedPemLabel(Untrusted::new(other))),
        }
    }

    /// Reads a DER `SubjectPublicKeyInfo` (Ed25519, P-256, P-384 or P-521 uncompressed, or RSA),
    /// like
    /// [`Jwk::from_public_pem`].
    ///
    /// # Errors
    /// [`KeyError::UnsupportedKeyType`] for other key types; [`KeyError::Rejected`] for bad keys.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (jwk, alg) = if let Some(x) = der.strip_prefix(der::ED25519_SPKI_PREFIX) {
            (
                Self::okp_ed25519(x).ok_or(KeyError::Rejected("bad ed25519 key"))?,
                Algorithm::EdDSA,
            )
        } else if let Some(point) = der.strip_prefix(der::P256_SPKI_PREFIX) {
            (
                Self::ec_point(point).ok_or(KeyError::Rejected("bad p-256 point"))?,
                Algorithm::ES256,
            )
        } else if let Some(point) = der.strip_prefix(der::P384_SPKI_PREFIX) {
            (
                Self::ec_point(point).ok_or(KeyError::Rejected("bad p-384 point"))?,
                Algorithm::ES384,
            )
        } else if let Some(point) = der.strip_prefix(der::P521_SPKI_PREFIX) {
            (
                Self::ec_point(point).ok_or(KeyError::Rejected("bad p-521 point"))?,
                Algorithm::ES512,
            )
        } else if der::is_rsa_spki(der) {
            let key = aws_lc_rs::rsa::PublicKey::from_der(der)?;
            (
                Self::rsa(
                    key.modulus().big_endian_without_leading_zero(),
                    key.exponent().big_endian_without_leading_zero(),
                ),
                Algorithm::RS256,
            )
        } else {
            return Err(KeyError::UnsupportedKeyType);
        };
        jwk.for_signing_with(alg).map_err(KeyError::Unusable)
    }
}

pub(super) fn encode(tag: &str, der: Vec<u8>) -> String {
    ::pem::encode_config(
        &::pem::Pem::new(tag, der),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}

/// Just enough DER to tell key types apart.
///
/// DER is a canonical encoding, so the `SubjectPublicKeyInfo` of an Ed25519 or (uncompressed)
/// P-256/P-384/P-521 key always begins with the same bytes: matching those prefixes is an exact
/// parser for those types. RSA public keys and all private keys are parsed by aws-lc-rs; here
/// only the algorithm OID of a PKCS#8 structure is read to choose the right aws-lc-rs
/// constructor (so a secp256k1 key is reported as an unsupported type, not as "rejected").
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
    /// `SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID secp384r1 } BIT STRING (98 bytes) }`.
    pub(super) const P384_SPKI_PREFIX: &[u8] = &[
        0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
        0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
    ];
    /// `SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID secp521r1 } BIT STRING (134 bytes) }`:
    /// the lengths past 127 take the long form (`81 9b`, `81 86`).
    pub(super) const P521_SPKI_PREFIX: &[u8] = &[
        0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
        0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00,
    ];
    const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// 1.3.132.0.35, secp521r1.
    const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
    const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OID: u8 = 0x06;

    #[derive(Debug, PartialEq, Eq)]
    pub(super) enum KeyType {
        Ed25519,
        P256,
        P384,
        P521,
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
                Some((OID_P384, _)) => KeyType::P384,
                Some((OID_P521, _)) => KeyType::P521,
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
    use crate::Code;
    use crate::jose::SigningKey;

    #[test]
    fn every_key_type_round_trips_through_pem() {
        for alg in [
            Algorithm::EdDSA,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::ES512,
            Algorithm::RS256,
        ] {
            let key = SigningKey::generate(alg).unwrap();
            let private = key.to_pkcs8_pem().unwrap();
            let reloaded = SigningKey::from_pem(private.expose_secret()).unwrap();
            assert_eq!(reloaded.kid(), key.kid(), "{alg}");
            assert_eq!(reloaded.algorithm(), alg);
            let public = Jwk::from_public_pem(&key.to_public_pem().unwrap()).unwrap();
            assert_eq!(&public, key.public_jwk(), "{alg}");
        }
    }

    #[test]
    fn every_reachable_key_error_has_its_code() {
        let ed = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let public = ed.to_public_pem().unwrap();
        let private = ed.to_pkcs8_pem().unwrap();
        let pem = |label: &str, der: &[u8]| encode(label, der.to_vec());
        let code = |r: Result<SigningKey, KeyError>| r.map(|_| ()).unwrap_err().code();
        let cases: [(Code, &str); 8] = [
            (code(SigningKey::from_pem("not a pem")), "not_pem"),
            (
                code(SigningKey::from_pem(&pem("CERTIFICATE", b"x"))),
                "unsupported_pem_label",
            ),
            (
                code(SigningKey::from_pem(&pem("ENCRYPTED PRIVATE KEY", b"x"))),
                "encrypted_key",
            ),
            (code(SigningKey::from_pem(&public)), "not_a_private_key"),
            (
                Jwk::from_public_pem(private.expose_secret())
                    .unwrap_err()
                    .code(),
                "not_a_public_key",
            ),
            (
                code(SigningKey::generate_rsa(Algorithm::RS256, 1024)),
                "unsupported_key_type",
            ),
            (
                code(
                    SigningKey::generate(Algorithm::EdDSA)
                        .and_then(|k| k.with_algorithm(Algorithm::ES256)),
                ),
                "unsupported_algorithm",
            ),
            (
                code(SigningKey::from_pem(&pem(
                    "RSA PRIVATE KEY",
                    b"\x30\x03\x02\x01\x00",
                ))),
                "key_rejected",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn wrong_kinds_of_pem_are_named() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let public = key.to_public_pem().unwrap();
        let private = key.to_pkcs8_pem().unwrap();
        assert_eq!(
            SigningKey::from_pem(&public).err(),
            Some(KeyError::NotAPrivateKey)
        );
        assert_eq!(
            Jwk::from_public_pem(private.expose_secret()).err(),
            Some(KeyError::NotAPublicKey)
        );
        assert_eq!(SigningKey::from_pem("nope").err(), Some(KeyError::NotPem));
        let other = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            SigningKey::from_pem(other).map(|_| ()).unwrap_err().code(),
            "unsupported_pem_label"
        );
    }
}

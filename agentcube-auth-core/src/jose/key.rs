//! Public keys: the JWK wire form, RFC 7638 thumbprints, and pre-parsed verification keys.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use serde::{Deserialize, Serialize};

use super::algorithm::{Algorithm, AlgorithmSet, KeyFamily};
use super::base64url;
use crate::error::AuthError;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A JSON Web Key (RFC 7517) holding a public key. Private members are never read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Intended use: `sig` or `enc`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// Permitted operations, e.g. `["verify"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
    /// The one algorithm the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// RSA modulus (base64url, big-endian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Curve: `P-256`, `P-384`, `P-521`, `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate or OKP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// Why a key of a key set was not used. Skipping is per key: one bad key never fails the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// `use` is not `sig` (Keycloak publishes an `enc` RSA-OAEP key beside its signing key).
    NotForSignatures,
    /// `key_ops` does not include `verify`.
    NoVerifyOperation,
    /// `kty`/`crv` is not supported.
    UnsupportedKeyType,
    /// The JWK `alg` is not a supported signing algorithm, or does not fit the key type.
    UnsupportedAlgorithm,
    /// A key that protects nothing or too little: an RSA modulus under [`MIN_RSA_BITS`], an RSA
    /// public exponent that is not odd or not in `3..2^32`, or an Ed25519 point of small order
    /// (in any encoding), for which a signature can be forged without any private key.
    WeakKey,
    /// Missing or undecodable key material, a non-canonical encoding (an Ed25519 `y` coordinate
    /// of `2^255 - 19` or more), or a key the crypto library rejects.
    InvalidKeyMaterial,
    /// The JWK is not an object of the expected shape.
    InvalidJson,
}

impl SkipReason {
    /// A stable snake_case name, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotForSignatures => "not_for_signatures",
            Self::NoVerifyOperation => "no_verify_operation",
            Self::UnsupportedKeyType => "unsupported_key_type",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::WeakKey => "weak_key",
            Self::InvalidKeyMaterial => "invalid_key_material",
            Self::InvalidJson => "invalid_json",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Jwk {
    /// The RFC 7638 thumbprint (SHA-256, base64url), or `None` when required members are missing.
    pub fn thumbprint(&self) -> Option<String> {
        // Required members only, in lexicographic order, no whitespace (RFC 7638 §3.2).
        let canonical = match self.kty.as_str() {
            "RSA" => format!(
                r#"{{"e":{},"kty":"RSA","n":{}}}"#,
                json_str(self.e.as_deref()?),
                json_str(self.n.as_deref()?)
            ),
            "EC" => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                json_str(self.crv.as_deref()?),
                json_str(self.x.as_deref()?),
                json_str(self.y.as_deref()?)
            ),
            "OKP" => format!(
                r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
                json_str(self.crv.as_deref()?),
                json_str(self.x.as_deref()?)
            ),
            _ => return None,
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        Some(base64url::encode(digest.as_ref()))
    }
}

impl Jwk {
    /// An RSA public key from its big-endian modulus and exponent.
    pub fn rsa(n: &[u8], e: &[u8]) -> Self {
        Self {
            kty: "RSA".to_owned(),
            n: Some(base64url::encode(n)),
            e: Some(base64url::encode(e)),
            ..Self::default()
        }
    }

    /// An EC public key from its uncompressed point (`0x04 || x || y`): P-256 for 65 bytes,
    /// P-384 for 97, P-521 for 133; `None` for anything else.
    pub fn ec_point(point: &[u8]) -> Option<Self> {
        let (crv, width) = match point.len() {
            65 => ("P-256", 32),
            97 => ("P-384", 48),
            133 => ("P-521", 66),
            _ => return None,
        };
        match point.split_first() {
            Some((0x04, xy)) => {
                let (x, y) = xy.split_at(width);
                Some(Self {
                    kty: "EC".to_owned(),
                    crv: Some(crv.to_owned()),
                    x: Some(base64url::encode(x)),
                    y: Some(base64url::encode(y)),
                    ..Self::default()
                })
            }
            _ => None,
        }
    }

    /// An Ed25519 public key from its 32 bytes; `None` for another length.
    pub fn okp_ed25519(x: &[u8]) -> Option<Self> {
        (x.len() == 32).then(|| Self {
            kty: "OKP".to_owned(),
            crv: Some("Ed25519".to_owned()),
            x: Some(base64url::encode(x)),
            ..Self::default()
        })
    }

    /// The key as a verifier should receive it for tokens signed with `alg`: `use: sig`,
    /// `alg`, and `kid` set to the RFC 7638 thumbprint when it has none.
    ///
    /// # Errors
    /// The [`SkipReason`] a verifier would skip the result for (for example an RSA key under
    /// [`MIN_RSA_BITS`], or an `alg` that does not fit the key type).
    pub fn for_signing_with(mut self, alg: Algorithm) -> Result<Self, SkipReason> {
        if self.kid.is_none() {
            self.kid = Some(self.thumbprint().ok_or(SkipReason::InvalidKeyMaterial)?);
        }
        self.key_use = Some("sig".to_owned());
        self.alg = Some(alg.as_str().to_owned());
        VerificationKey::from_jwk(&self)?;
        Ok(self)
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A public key parsed once, ready to verify signatures for the algorithms it allows.
///
/// Parsing happens when the key set is loaded, never per request.
pub struct VerificationKey {
    kid: Option<Box<str>>,
    /// Shared with every token it verifies (verified-token caches keep it).
    thumbprint: Arc<str>,
    family: KeyFamily,
    algorithms: AlgorithmSet,
    parsed: Box<[(Algorithm, ParsedPublicKey)]>,
}

impl VerificationKey {
    /// Validates and parses a JWK.
    ///
    /// # Errors
    /// A [`SkipReason`] saying why the key cannot be used for verification.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, SkipReason> {
        if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
            return Err(SkipReason::NotForSignatures);
        }
        if jwk
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
        {
            return Err(SkipReason::NoVerifyOperation);
        }
        let family = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("RSA", _) => KeyFamily::Rsa,
            ("EC", Some("P-256")) => KeyFamily::P256,
            ("EC", Some("P-384")) => KeyFamily::P384,
            ("EC", Some("P-521")) => KeyFamily::P521,
            ("OKP", Some("Ed25519")) => KeyFamily::Ed25519,
            _ => return Err(SkipReason::UnsupportedKeyType),
        };
        let algorithms: AlgorithmSet = match &jwk.alg {
            Some(name) => {
                let alg = Algorithm::from_name(name).ok_or(SkipReason::UnsupportedAlgorithm)?;
                if alg.key_family() != family {
                    return Err(SkipReason::UnsupportedAlgorithm);
                }
                AlgorithmSet::only(alg)
            }
            None => Algorithm::ALL
                .into_iter()
                .filter(|a| a.key_family() == family)
                .collect(),
        };
        let parsed: Box<[(Algorithm, ParsedPublicKey)]> = match family {
            KeyFamily::Rsa => {
                let n = b64(jwk.n.as_deref())?;
                let e = b64(jwk.e.as_deref())?;
                let n = strip_leading_zeros(&n);
                let e = strip_leading_zeros(&e);
                if rsa_bits(n) < MIN_RSA_BITS || !rsa_exponent_is_sound(e) {
                    return Err(SkipReason::WeakKey);
                }
                let components = RsaPublicKeyComponents { n, e };
                algorithms
                    .iter()
                    .map(|alg| {
                        components
                            .to_parsed_public_key(rsa_params(alg))
                            .map(|key| (alg, key))
                            .map_err(|_| SkipReason::InvalidKeyMaterial)
                    })
                    .collect::<Result<_, _>>()?
            }
            KeyFamily::P256 | KeyFamily::P384 | KeyFamily::P521 => {
                let (width, alg, params) =
                    ecdsa_params(family).ok_or(SkipReason::UnsupportedKeyType)?;
                let x = b64(jwk.x.as_deref())?;
                let y = b64(jwk.y.as_deref())?;
                if x.len() != width || y.len() != width {
                    return Err(SkipReason::InvalidKeyMaterial);
                }
                let mut point = Vec::with_capacity(1 + 2 * width);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = ParsedPublicKey::new(params, &point)
                    .map_err(|_| SkipReason::InvalidKeyMaterial)?;
                Box::new([(alg, key)])
            }
            KeyFamily::Ed25519 => {
                let x: [u8; 32] = b64(jwk.x.as_deref())?
                    .try_into()
                    .map_err(|_| SkipReason::InvalidKeyMaterial)?;
                check_ed25519_point(&x)?;
                let key = ParsedPublicKey::new(&sig::ED25519, x)
                    .map_err(|_| SkipReason::InvalidKeyMaterial)?;
                Box::new([(Algorithm::EdDSA, key)])
            }
        };
        let thumbprint = jwk.thumbprint().ok_or(SkipReason::InvalidKeyMaterial)?;
        Ok(Self {
            kid: jwk.kid.clone().map(String::into_boxed_str),
            thumbprint: thumbprint.into(),
            family,
            algorithms,
            parsed,
        })
    }

    /// The key id, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The RFC 7638 thumbprint: a stable identity of the key material.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The thumbprint as a shared string, to keep beside what the key verified without a copy.
    pub fn shared_thumbprint(&self) -> Arc<str> {
        Arc::clone(&self.thumbprint)
    }

    /// The key family.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// The algorithms this key verifies.
    pub fn algorithms(&self) -> AlgorithmSet {
        self.algorithms
    }

    /// Verifies `signature` over `message` with `alg`.
    ///
    /// # Errors
    /// `key_algorithm_mismatch` if the key is not for `alg`; `invalid_signature` otherwise.
    pub fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AuthError> {
        let (_, key) = self
            .parsed
            .iter()
            .find(|(a, _)| *a == alg)
            .ok_or(AuthError::KeyAlgorithmMismatch)?;
        key.verify_sig(message, signature)
            .map_err(|_| AuthError::InvalidSignature)
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("algorithms", &self.algorithms)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

fn b64(value: Option<&str>) -> Result<Vec<u8>, SkipReason> {
    let value = value.ok_or(SkipReason::InvalidKeyMaterial)?;
    base64url::decode(value).map_err(|_| SkipReason::InvalidKeyMaterial)
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn rsa_bits(n: &[u8]) -> usize {
    match n.first() {
        None => 0,
        Some(first) => n.len() * 8 - first.leading_zeros() as usize,
    }
}

/// Whether the big-endian public exponent `e` (leading zeros stripped) is odd and in `3..2^32`.
///
/// `e = 1` makes the signature equal to the padded message, so anyone can sign; an even `e` is
/// not a valid RSA exponent (it shares the factor 2 with `φ(n)`); exponents of 2^32 or more are
/// not produced by any key generator in use (65537 is the norm) and only slow verification down.
fn rsa_exponent_is_sound(e: &[u8]) -> bool {
    if e.len() > 4 {
        return false;
    }
    let e = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    e >= 3 && e % 2 == 1
}

/// `2^255 - 19` (the field prime of edwards25519), little-endian as in a point encoding.
const ED25519_P: [u8; 32] = [
    0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
];

/// The `y` coordinates (little-endian, the `x` sign bit 255 cleared) of every encoding of a point
/// of small order on edwards25519: the same seven values as libsodium's
/// `ge25519_has_small_order` blocklist, which also compares with the sign bit masked.
///
/// The curve `-x² + y² = 1 + d·x²·y²` has eight points whose order divides 8 (the cofactor):
///
/// - order 1: `(0, 1)` — the identity, `y = 1`;
/// - order 2: `(0, -1)` — `y = p - 1`;
/// - order 4: `(±√-1, 0)` — `y = 0`, both signs of `x`;
/// - order 8: four points with `x² = -y²` (their double has `y = 0`), so `d·y⁴ + 2y² - 1 = 0`
///   and `y² = (-1 ± √(1+d))/d`; one of the two values is a square, and each of its roots `±y`
///   carries both signs of `x`.
///
/// Masking the sign bit, those are five `y` values: `0`, `1`, `p - 1` and the two order-8 ones.
/// Their canonical encodings with either sign bit are all covered — including the "negative
/// zero" encodings of `(0, 1)` and `(0, -1)` (sign bit set although `x = 0`), which RFC 8032
/// rejects but lenient decoders accept. A `y` of `p` or more is non-canonical and decoders reduce
/// it mod `p`; only `0` and `1` have such an alias below `2^255` (`p` and `p + 1`, every other
/// small-order `y` plus `p` overflows 255 bits), giving the last two entries. 7 entries × 2 sign
/// bits = 14 encodings: the 8 canonical ones and 6 non-canonical ones, the list of "Taming the
/// many EdDSAs" (Chalkias, Garillot, Nikolaenko, 2020).
///
/// With such a key `A`, the check `[S]B = R + [k]A` needs no private key to pass: `[k]A` is one of
/// at most eight points whatever the message, so `S = 0` with a small-order `R` verifies after a
/// few tries — and for the identity point, `R = identity` and `S = 0` verify for every message.
const ED25519_SMALL_ORDER_Y: [[u8; 32]; 7] = [
    // 0: (±√-1, 0), order 4.
    [0; 32],
    // 1: (0, 1), order 1 (the identity).
    [
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ],
    // 2707385501144840649318225287225658788936804267575313519463743609750303402022, order 8.
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    // 55188659117513257062467267217118295137698188065244968500265048394206261417927, order 8.
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    // p - 1: (0, -1), order 2.
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    // p: non-canonical 0, order 4.
    ED25519_P,
    // p + 1: non-canonical 1, order 1.
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// Rejects an Ed25519 public key that is a point of small order in any encoding
/// ([`SkipReason::WeakKey`]) or whose `y` is not reduced mod `p`
/// ([`SkipReason::InvalidKeyMaterial`]). Public data, so no constant-time comparison is needed.
fn check_ed25519_point(encoded: &[u8; 32]) -> Result<(), SkipReason> {
    let mut y = *encoded;
    if let Some(last) = y.last_mut() {
        *last &= 0x7f; // the sign of x
    }
    if ED25519_SMALL_ORDER_Y.contains(&y) {
        return Err(SkipReason::WeakKey);
    }
    // Canonical iff y < p, comparing from the most significant byte.
    let canonical = y
        .iter()
        .rev()
        .zip(ED25519_P.iter().rev())
        .find(|(a, b)| a != b)
        .is_some_and(|(a, b)| a < b);
    if canonical {
        Ok(())
    } else {
        Err(SkipReason::InvalidKeyMaterial)
    }
}

/// The coordinate width, algorithm and verification parameters of an ECDSA curve.
///
/// RFC 7518 §6.2.1.2-3: `x` and `y` are octet strings of the full width of the curve's field,
/// 66 bytes for P-521 (whose 521 bits do not fill the last byte); a shorter encoding is invalid.
fn ecdsa_params(
    family: KeyFamily,
) -> Option<(usize, Algorithm, &'static sig::EcdsaVerificationAlgorithm)> {
    match family {
        KeyFamily::P256 => Some((32, Algorithm::ES256, &sig::ECDSA_P256_SHA256_FIXED)),
        KeyFamily::P384 => Some((48, Algorithm::ES384, &sig::ECDSA_P384_SHA384_FIXED)),
        KeyFamily::P521 => Some((66, Algorithm::ES512, &sig::ECDSA_P521_SHA512_FIXED)),
        KeyFamily::Rsa | KeyFamily::Ed25519 => None,
    }
}

fn rsa_params(alg: Algorithm) -> &'static sig::RsaParameters {
    match alg {
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        // Only RSA algorithms reach here; RS256 is the default.
        _ => &sig::RSA_PKCS1_2048_8192_SHA256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = Jwk {
            kty: "RSA".into(),
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            alg: Some("RS256".into()),
            kid: Some("2011-04-29".into()),
            ..Jwk::default()
        };
        assert_eq!(
            jwk.thumbprint().as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        let key = VerificationKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithms(), AlgorithmSet::only(Algorithm::RS256));
        assert_eq!(
            key.verify(Algorithm::PS256, b"m", &[0; 256]),
            Err(AuthError::KeyAlgorithmMismatch)
        );
        assert_eq!(
            key.verify(Algorithm::RS256, b"m", &[0; 256]),
            Err(AuthError::InvalidSignature)
        );
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_reason() {
        let rsa = |n: &str, extra: fn(&mut Jwk)| {
            let mut jwk = Jwk {
                kty: "RSA".into(),
                n: Some(n.into()),
                e: Some("AQAB".into()),
                ..Jwk::default()
            };
            extra(&mut jwk);
            VerificationKey::from_jwk(&jwk).err()
        };
        let n2048 = base64url::encode([0xc5u8; 256]);
        let n1024 = base64url::encode([0xc5u8; 128]);
        let mut padded = vec![0u8; 4];
        padded.extend([0x01u8; 255]); // 2041 bits after stripping zeros
        let n_padded = base64url::encode(padded);
        assert_eq!(rsa(&n1024, |_| {}), Some(SkipReason::WeakKey));
        assert_eq!(rsa(&n_padded, |_| {}), Some(SkipReason::WeakKey));
        assert_eq!(
            rsa(&n2048, |j| j.key_use = Some("enc".into())),
            Some(SkipReason::NotForSignatures)
        );
        assert_eq!(
            rsa(&n2048, |j| j.key_ops = Some(vec!["encrypt".into()])),
            Some(SkipReason::NoVerifyOperation)
        );
        assert_eq!(
            rsa(&n2048, |j| j.alg = Some("RSA-OAEP".into())),
            Some(SkipReason::UnsupportedAlgorithm)
        );
        assert_eq!(
            rsa(&n2048, |j| j.alg = Some("ES256".into())),
            Some(SkipReason::UnsupportedAlgorithm)
        );
        assert_eq!(
            rsa(&n2048, |j| j.alg = Some("HS256".into())),
            Some(SkipReason::UnsupportedAlgorithm)
        );
        assert_eq!(
            rsa(&n2048, |j| j.e = None),
            Some(SkipReason::InvalidKeyMaterial)
        );
        assert_eq!(rsa("***", |_| {}), Some(SkipReason::InvalidKeyMaterial));
        assert_eq!(
            rsa(&n2048, |j| j.kty = "oct".into()),
            Some(SkipReason::UnsupportedKeyType)
        );
        assert_eq!(rsa(&n2048, |_| {}), None);
        let ec = Jwk {
            kty: "EC".into(),
            crv: Some("secp256k1".into()),
            ..Jwk::default()
        };
        assert_eq!(
            VerificationKey::from_jwk(&ec).err(),
            Some(SkipReason::UnsupportedKeyType)
        );
        let off_curve = Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some(base64url::encode([1u8; 32])),
            y: Some(base64url::encode([2u8; 32])),
            ..Jwk::default()
        };
        assert_eq!(
            VerificationKey::from_jwk(&off_curve).err(),
            Some(SkipReason::InvalidKeyMaterial)
        );
    }
}

//! JWS signing algorithms that may be accepted, and sets of them.

use std::fmt;
use std::str::FromStr;

/// An asymmetric JWS algorithm (RFC 7518 §3, RFC 8037).
///
/// There is deliberately no `none` and no HMAC variant: a verifier of remote or public keys must
/// never accept them, so they cannot even be named. A header naming them fails with
/// `algorithm_not_allowed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
    /// ECDSA P-521 with SHA-512 (Keycloak can sign with it).
    ES512,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

/// The kind of key an algorithm needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFamily {
    /// RSA (`kty: RSA`).
    Rsa,
    /// P-256 (`kty: EC`, `crv: P-256`).
    P256,
    /// P-384 (`kty: EC`, `crv: P-384`).
    P384,
    /// P-521 (`kty: EC`, `crv: P-521`).
    P521,
    /// Ed25519 (`kty: OKP`, `crv: Ed25519`).
    Ed25519,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 10] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::ES512,
        Self::EdDSA,
    ];

    /// The JOSE name, e.g. `RS256`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::ES512 => "ES512",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name, case-sensitively (`rs256` and `NONE` are not algorithms).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The key family the algorithm needs.
    pub const fn key_family(self) -> KeyFamily {
        match self {
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                KeyFamily::Rsa
            }
            Self::ES256 => KeyFamily::P256,
            Self::ES384 => KeyFamily::P384,
            Self::ES512 => KeyFamily::P521,
            Self::EdDSA => KeyFamily::Ed25519,
        }
    }

    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown algorithm name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown or unsupported signing algorithm {0:?}")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_name(s).ok_or_else(|| UnknownAlgorithm(s.to_owned()))
    }
}

/// A set of algorithms: the allowlist a verifier accepts.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AlgorithmSet(u16);

impl AlgorithmSet {
    /// No algorithm.
    pub const EMPTY: Self = Self(0);

    /// Every supported algorithm ([`Algorithm::ALL`]): RS/PS 256-512, ES256, ES384, ES512,
    /// EdDSA.
    pub const ALL: Self = Self((1 << Algorithm::ALL.len()) - 1);

    /// A set of one algorithm.
    pub const fn only(alg: Algorithm) -> Self {
        Self(alg.bit())
    }

    /// This set plus `alg`.
    #[must_use]
    pub const fn with(self, alg: Algorithm) -> Self {
        Self(self.0 | alg.bit())
    }

    /// Whether `alg` is in the set.
    pub const fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms in the set.
    pub fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| self.contains(*a))
    }

    /// Parses a comma-separated list such as `RS256,ES256` (the Router's `--jwt-algorithms`).
    ///
    /// # Errors
    /// [`UnknownAlgorithm`] for a name that is not supported (including `none` and `HS256`).
    pub fn parse_list(list: &str) -> Result<Self, UnknownAlgorithm> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .try_fold(Self::EMPTY, |set, name| Ok(set.with(name.parse()?)))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        iter.into_iter().fold(Self::EMPTY, Self::with)
    }
}

impl fmt::Debug for AlgorithmSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
        }
        for bad in [
            "none", "None", "NONE", "HS256", "rs256", "RS256 ", "", "es512", "ES521",
        ] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn sets() {
        let set = AlgorithmSet::parse_list("RS256, ES256,,EdDSA").unwrap();
        assert!(set.contains(Algorithm::RS256) && set.contains(Algorithm::EdDSA));
        assert!(!set.contains(Algorithm::PS256));
        assert_eq!(set.iter().count(), 3);
        assert!(AlgorithmSet::parse_list("RS256,HS256").is_err());
        assert_eq!(AlgorithmSet::ALL.iter().count(), 10);
        assert_eq!(AlgorithmSet::ALL.iter().collect::<Vec<_>>(), Algorithm::ALL);
        assert_eq!(Algorithm::ES512.as_str(), "ES512");
        assert_eq!(Algorithm::ES512.key_family(), KeyFamily::P521);
        assert_eq!("ES512".parse::<Algorithm>(), Ok(Algorithm::ES512));
        assert!(
            AlgorithmSet::parse_list("ES512")
                .unwrap()
                .contains(Algorithm::ES512)
        );
        assert!(AlgorithmSet::EMPTY.is_empty());
    }
}

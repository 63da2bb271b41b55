//! Signing keys for tests: a thin layer over [`SigningKey`], the workspace's one signer.

use std::fmt;

use agentcube_auth_core::jose::{
    Algorithm, EncodedHeader, Jwk, KeySet, PrivateKeyDer, SigningKey, VerificationKey,
};
use serde_json::Value;

/// A private signing key with its public JWK: what a mock issuer signs tokens with.
///
/// The `kid` defaults to the RFC 7638 thumbprint (Keycloak uses random ids of the same
/// length); the JWK carries `use: sig` and `alg`, as Keycloak publishes them.
///
/// The `expect`s below are for a generated key, which always signs, serialises and parses.
pub struct TestKey {
    key: SigningKey,
    pkcs8: PrivateKeyDer,
    /// Whether the published JWK names its algorithm.
    jwk_alg: bool,
}

impl TestKey {
    /// A fresh key for `alg`: RSA-2048 for RS*/PS*, P-256 for ES256, P-384 for ES384, P-521 for
    /// ES512, Ed25519 for EdDSA.
    ///
    /// # Panics
    /// If the crypto library cannot generate a key (it can on every supported platform).
    #[allow(
        clippy::expect_used,
        reason = "a test helper; generation does not fail"
    )]
    pub fn generate(alg: Algorithm) -> Self {
        Self::from_key(SigningKey::generate(alg).expect("key generation"))
    }

    /// A fresh RSA key of `bits` (2048, 3072, 4096 or 8192) for the RSA algorithm `alg`.
    ///
    /// # Panics
    /// For another size, a non-RSA `alg`, or a key-generation failure.
    #[allow(
        clippy::expect_used,
        reason = "a test helper; a bad size is the test's bug"
    )]
    pub fn generate_rsa(alg: Algorithm, bits: usize) -> Self {
        Self::from_key(SigningKey::generate_rsa(alg, bits).expect("an RSA algorithm and size"))
    }

    #[allow(clippy::expect_used, reason = "invariant: a generated key serialises")]
    fn from_key(key: SigningKey) -> Self {
        let pkcs8 = key
            .to_pkcs8_der()
            .expect("invariant: a generated key serialises as PKCS#8");
        Self {
            key,
            pkcs8,
            jwk_alg: true,
        }
    }

    /// The same key under another `kid`.
    #[must_use]
    pub fn with_kid(self, kid: impl Into<String>) -> Self {
        Self {
            key: self.key.with_kid(kid),
            ..self
        }
    }

    /// The same key published without an `alg` member (so its JWK fits every algorithm of its
    /// type, as some issuers publish keys).
    #[must_use]
    pub fn without_jwk_alg(self) -> Self {
        Self {
            jwk_alg: false,
            ..self
        }
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// The public JWK as published.
    pub fn jwk(&self) -> Jwk {
        let mut jwk = self.key.public_jwk().clone();
        if !self.jwk_alg {
            jwk.alg = None;
        }
        jwk
    }

    /// The public JWK as JSON.
    #[allow(clippy::expect_used, reason = "invariant: a JWK of strings serialises")]
    pub fn jwk_json(&self) -> Value {
        serde_json::to_value(self.jwk()).expect("invariant: a JWK serialises")
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn thumbprint(&self) -> String {
        self.key.verification_key().thumbprint().to_owned()
    }

    /// The public key as published, parsed for verification.
    ///
    /// # Panics
    /// Never for a generated key.
    #[allow(
        clippy::expect_used,
        reason = "invariant: a generated key's JWK parses"
    )]
    pub fn verification_key(&self) -> VerificationKey {
        VerificationKey::from_jwk(&self.jwk()).expect("invariant: a generated key's JWK parses")
    }

    /// The private key as PKCS#8 DER (for PEM files in downstream tests).
    pub fn pkcs8_der(&self) -> &[u8] {
        self.pkcs8.expose_secret()
    }

    /// Signs `message` with the key's algorithm.
    ///
    /// # Panics
    /// Never for a generated key.
    #[allow(clippy::expect_used, reason = "invariant: a generated key signs")]
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key
            .sign_message(message)
            .expect("invariant: a generated key signs")
    }

    /// Signs `message` with `alg`, which must fit the key type (an RSA key signs any RS*/PS*
    /// algorithm); `None` otherwise.
    pub fn sign_as(&self, alg: Algorithm, message: &[u8]) -> Option<Vec<u8>> {
        self.with_signer(alg, |key| key.sign_message(message).ok())
            .flatten()
    }

    /// A compact JWS of `header` and `claims` (serialized as given), signed with the key's
    /// algorithm whatever the header says.
    pub fn sign_compact(&self, header: &Value, claims: &Value) -> String {
        self.sign_compact_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// A compact JWS of raw header and payload bytes (for duplicate members and other JSON a
    /// `Value` cannot hold), signed with the key's algorithm.
    ///
    /// # Panics
    /// Never for a generated key.
    #[allow(
        clippy::expect_used,
        reason = "invariant: a key signs with its own algorithm"
    )]
    pub fn sign_compact_raw(&self, header: &[u8], payload: &[u8]) -> String {
        self.sign_compact_as(self.algorithm(), header, payload)
            .expect("invariant: a key signs with its own algorithm")
    }

    /// A compact JWS of raw header and payload bytes signed with `alg` (which must fit the key
    /// type); `None` otherwise.
    pub(crate) fn sign_compact_as(
        &self,
        alg: Algorithm,
        header: &[u8],
        payload: &[u8],
    ) -> Option<String> {
        let header = EncodedHeader::from_json_bytes(header);
        self.with_signer(alg, |key| key.sign(&header, payload).ok())
            .flatten()
    }

    /// Runs `f` with this key bound to `alg`: the key itself for its own algorithm, the same
    /// private key rebound for another algorithm of its type (RSA), `None` for an algorithm
    /// that does not fit.
    fn with_signer<R>(&self, alg: Algorithm, f: impl FnOnce(&SigningKey) -> R) -> Option<R> {
        if alg == self.key.algorithm() {
            return Some(f(&self.key));
        }
        let rebound = SigningKey::from_pkcs8_der(self.pkcs8.expose_secret())
            .ok()?
            .with_algorithm(alg)
            .ok()?;
        Some(f(&rebound))
    }
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// A [`KeySet`] of the public halves of `keys` (for [`OidcConfig::static_keys`](crate::OidcConfig::static_keys)).
pub fn key_set<'a>(keys: impl IntoIterator<Item = &'a TestKey>) -> KeySet {
    KeySet::new(keys.into_iter().map(TestKey::verification_key))
}

/// A JWKS document (`{"keys":[...]}`) of the public halves of `keys`.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a TestKey>) -> Value {
    serde_json::json!({ "keys": keys.into_iter().map(TestKey::jwk_json).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_keys_sign_every_rsa_algorithm_and_other_keys_only_their_own() {
        let rsa = TestKey::generate(Algorithm::RS256);
        for alg in [Algorithm::RS384, Algorithm::PS256, Algorithm::PS512] {
            let signature = rsa.sign_as(alg, b"m").unwrap();
            let key = rsa.without_jwk_alg_ref();
            key.verify(alg, b"m", &signature).unwrap();
        }
        assert!(rsa.sign_as(Algorithm::ES256, b"m").is_none());
        let ec = TestKey::generate(Algorithm::ES256);
        assert!(ec.sign_as(Algorithm::ES384, b"m").is_none());
        assert!(ec.sign_as(Algorithm::ES256, b"m").is_some());
    }

    #[test]
    fn every_algorithm_has_a_test_key_that_its_published_jwk_verifies() {
        for alg in Algorithm::ALL {
            let key = TestKey::generate(alg);
            assert_eq!(key.algorithm(), alg);
            let signature = key.sign(b"m");
            key.verification_key()
                .verify(alg, b"m", &signature)
                .unwrap();
        }
        let p521 = TestKey::generate(Algorithm::ES512);
        assert_eq!(p521.jwk().crv.as_deref(), Some("P-521"));
        assert_eq!(p521.sign(b"m").len(), 132);
        assert!(p521.sign_as(Algorithm::ES384, b"m").is_none());
    }

    #[test]
    fn kid_and_published_alg_follow_the_key() {
        let key = TestKey::generate(Algorithm::EdDSA);
        assert_eq!(key.kid(), key.thumbprint());
        assert_eq!(key.jwk().alg.as_deref(), Some("EdDSA"));
        let key = key.with_kid("k1").without_jwk_alg();
        assert_eq!(key.kid(), "k1");
        assert_eq!(key.jwk().kid.as_deref(), Some("k1"));
        assert_eq!(key.jwk().alg, None);
        assert_eq!(key.verification_key().kid(), Some("k1"));
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.pkcs8_der())));
    }

    impl TestKey {
        /// The verification key as if published without `alg`.
        fn without_jwk_alg_ref(&self) -> VerificationKey {
            let mut jwk = self.jwk();
            jwk.alg = None;
            VerificationKey::from_jwk(&jwk).unwrap()
        }
    }
}

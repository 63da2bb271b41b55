//! Randomness and hashing from aws-lc-rs (the workspace's one crypto backend).

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::ClientError;

/// `bytes` random bytes, base64url without padding (32 bytes → 43 characters).
pub(crate) fn random_token(bytes: usize) -> Result<String, ClientError> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| ClientError::Io {
        message: "the system random generator failed".to_owned(),
    })?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A PKCE code verifier (RFC 7636 §4.1): 32 random bytes, base64url. `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct PkceVerifier(String);

impl PkceVerifier {
    pub(crate) fn new() -> Result<Self, ClientError> {
        random_token(32).map(Self)
    }

    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// The S256 challenge: base64url(SHA-256(verifier)) (RFC 7636 §4.2).
    pub(crate) fn s256_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, self.0.as_bytes()))
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A uniformly distributed fraction in `[0, 1)` for backoff jitter (0.5 if randomness fails).
pub(crate) fn unit_fraction() -> f64 {
    let mut buf = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut buf) {
        Ok(()) => f64::from(u32::from_le_bytes(buf)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

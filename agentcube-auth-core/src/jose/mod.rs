//! The JOSE layer, both ways, that every crate, test issuer, example and bench in the workspace
//! uses: algorithms, strict compact JWS framing and header rules, JWK parsing with per-key
//! validation, pre-parsed verification keys, key sets, the [`KeySource`] seam and
//! registered-claim checks on the verifying side; private keys (generated, or loaded from
//! PEM/DER), public JWK export with RFC 7638 thumbprints and a compact-JWS signer with headers
//! encoded once per token kind on the signing side.
//!
//! Verification uses aws-lc-rs directly rather than `jsonwebtoken::decode`, for three reasons:
//! the framing must be strict (duplicate JSON members, padding, `crit`, JWE) in ways the library
//! does not promise; claim checks must not depend on library defaults (its `iss`/`aud` checks
//! only apply when those claims are also marked required, and older versions read a mistyped
//! `exp` as absent); and keys are parsed once per key set instead of once per token. It is the
//! same crypto backend that `jsonwebtoken` is built with in this workspace (`aws_lc_rs`), so
//! there is one backend, not two. (`jsonwebtoken` itself is used only by the benches, as the
//! floor the pipeline is compared with; tokens are signed here with aws-lc-rs directly, because
//! `jsonwebtoken::encode` re-parses the key on every call.) `josekit` is not used: it
//! links OpenSSL, a second crypto backend, for what amounts here to RFC 7638 thumbprints
//! ([`Jwk::thumbprint`]) and key generation, both a few lines on aws-lc-rs.
//!
//! A verifier composes the pieces cheapest first, so that nothing failing framing or header
//! rules reaches the key source:
//!
//! ```
//! use agentcube_auth_core::jose::{self, AlgorithmSet, Algorithm, JwsPolicy, KeySet, KeySource, TimeRules};
//! use agentcube_auth_core::AuthError;
//!
//! async fn verify(token: &str, keys: &KeySet, now: i64) -> Result<(), AuthError> {
//!     let policy = JwsPolicy::new(AlgorithmSet::only(Algorithm::RS256));
//!     let jws = jose::UnverifiedJws::parse(token, &policy)?;           // 1-2: framing, header
//!     let key = keys.key_for(jws.header().kid.as_deref(), jws.header().alg).await?; // 3: key
//!     let (_header, claims) = jws.verify(&key)?;                       // 4: signature
//!     jose::check_issuer(&claims, "https://issuer.example")?;          // 5: claims
//!     jose::check_audience(&claims, &["agentcube-api"])?;
//!     jose::check_times(&claims, now, &TimeRules::default())?;
//!     jose::require_subject(&claims)?;
//!     Ok(())
//! }
//! ```

mod algorithm;
pub(crate) mod base64url;
mod compact;
mod key;
mod key_set;
mod pem;
mod signing;
mod sources;
pub(crate) mod strict_json;
mod validate;

pub use algorithm::{Algorithm, AlgorithmSet, KeyFamily, UnknownAlgorithm};
pub use compact::{
    DEFAULT_MAX_TOKEN_BYTES, JwsHeader, JwsPolicy, MAX_HEADER_BYTES, MAX_KID_BYTES, TypePolicy,
    UnverifiedJws,
};
pub use key::{Jwk, MIN_RSA_BITS, SkipReason, VerificationKey};
pub use key_set::{DEFAULT_MAX_KEYS, JwksError, KeySet, KeySource, SkippedKey};
pub use pem::KeyError;
pub use signing::{EncodedHeader, PrivateKeyDer, PrivateKeyPem, SignError, SigningKey};
pub use sources::{EitherKeySource, KeySourceUnion};
pub use validate::{
    DEFAULT_LEEWAY, TimeRules, Validity, check_audience, check_issuer, check_times, require_subject,
};

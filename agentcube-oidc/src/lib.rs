//! Verification of OIDC access tokens (Keycloak first) for AgentCube services: discovery, a JWKS
//! key store that survives key rotation and `kid` floods, a verified-token cache, and
//! multi-issuer routing.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use agentcube_auth_core::TokenVerifier;
//! use agentcube_oidc::{OidcConfig, OidcVerifier};
//!
//! // Secure defaults: audience `agentcube-api`, RS256 only, 30 s leeway, 8 KiB tokens,
//! // Keycloak payload `typ` must be `Bearer`, Keycloak role mapping.
//! let verifier = OidcVerifier::new(OidcConfig::new("https://keycloak.example/realms/agentcube"))?;
//! verifier.spawn_background_refresh(); // no I/O happened before this; start-up never needs the IdP
//!
//! match verifier.verify("eyJhbGciOi...").await {
//!     Ok(principal) => println!("hello {}", principal.subject()),
//!     // 401 for a bad token, 503 (`keys_unavailable`) while the issuer's keys cannot be had.
//!     Err(err) => println!("{} {}", err.http_status(), err.code()),
//! }
//! # Ok(()) }
//! ```
//!
//! The pieces:
//!
//! * [`OidcVerifier`] ([`OidcConfig`]): DESIGN §3 steps 1-6 for one issuer, built on the
//!   `agentcube_auth_core::jose` primitives (framing, header rules, per-key validation, claim
//!   checks), implementing [`TokenVerifier`](agentcube_auth_core::TokenVerifier).
//! * [`RemoteKeySet`] ([`KeyStoreConfig`]): the issuer's keys, implementing
//!   [`KeySource`](agentcube_auth_core::jose::KeySource), so other verifiers (identity tokens)
//!   can fetch a JWKS the same way.
//! * [`MultiIssuerVerifier`]: routes by the unverified `iss`.
//! * [`VerifierStats`], [`KeyStoreStats`]: counters to export.
//! * `test_util` (feature `test-util`): `MockIssuer`, an in-process issuer on wiremock that
//!   serves discovery and JWKS and mints Keycloak-shaped tokens.
//!
//! The [`manual`] explains the threat model, every default, and what was decided where the
//! design was silent.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod key_store;
pub mod manual;
mod multi;
mod stats;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
mod verifier;

pub use cache::CacheConfig;
pub use config::{ConfigError, OidcConfig};
pub use key_store::{DISCOVERY_PATH, FetchError, KeyStoreConfig, RefreshOutcome, RemoteKeySet};
// Transitional, not part of the interface: see `key_store/config.rs`.
#[doc(hidden)]
pub use key_store::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_REFRESH_INTERVAL, DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STALENESS, DEFAULT_MIN_REFRESH_INTERVAL, DEFAULT_REFRESH_COOLDOWN,
    DEFAULT_REFRESH_INTERVAL, DEFAULT_REQUEST_TIMEOUT,
};
pub use multi::{MultiIssuerStats, MultiIssuerVerifier};
pub use stats::{KeyStoreStats, VerifierStats};
pub use verifier::{OidcVerifier, VerifiedToken};

#![doc = include_str!("../README.md")]
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

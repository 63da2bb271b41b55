#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cache;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod http;
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
pub use http::DISCOVERY_PATH;
pub use key_store::{FetchError, KeyStoreConfig, RefreshOutcome, RemoteKeySet};
pub use multi::{MultiIssuerStats, MultiIssuerVerifier};
pub use stats::{KeyStoreStats, VerifierStats};
pub use verifier::{OidcVerifier, VerifiedToken};

#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backchannel;
mod cache;
#[cfg(feature = "client")]
pub mod client;
mod config;
mod http;
mod key_store;
pub mod manual;
pub mod metrics;
mod multi;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod revocation_redis;
mod stats;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod test_util;
mod verifier;

pub use backchannel::{
    BACKCHANNEL_LOGOUT_EVENT, BackchannelLogout, LOGOUT_TOKEN_FIELD, LOGOUT_TOKEN_TYPE, Logout,
    LogoutError,
};
pub use cache::CacheConfig;
pub use config::{ConfigError, OidcConfig};
pub use http::DISCOVERY_PATH;
pub use key_store::{FetchError, KeyStoreConfig, RefreshOutcome, RemoteKeySet};
pub use multi::{MultiIssuerStats, MultiIssuerVerifier};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use revocation_redis::{RedisRevocationConfig, RedisRevocationSet};
pub use stats::{KeyStoreStats, VerifierStats};
pub use verifier::{OidcVerifier, VerifiedToken};

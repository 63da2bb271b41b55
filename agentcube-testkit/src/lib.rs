//! Test support shared by the workspace's test suites (a dev-dependency only, never published).
//!
//! A helper that two crates' tests need lives here once, so that its rule cannot drift between
//! copies.

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "keycloak")]
pub mod keycloak;
pub mod net;
pub mod services;

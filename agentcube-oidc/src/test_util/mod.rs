//! An in-process OIDC issuer for tests (feature `test-util`).
//!
//! [`MockIssuer`] runs a [wiremock](https://docs.rs/wiremock) server that answers like an
//! OIDC issuer — a Keycloak realm by default (a discovery document at
//! `/realms/<realm>/.well-known/openid-configuration` and a JWKS at
//! `/realms/<realm>/protocol/openid-connect/certs`), or any other shape ([`IssuerShape`]: a root
//! issuer with or without a trailing slash as Auth0 writes it, an Okta-style path). It mints
//! Keycloak-shaped or generic access tokens, rotates keys, counts fetches and can be made to
//! fail. Its [`config`](MockIssuer::config) has the production defaults (see there). The
//! `wiremock` it runs on is re-exported, so mounting more endpoints needs no dependency of
//! your own.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use agentcube_oidc::test_util::MockIssuer;
//!
//! let idp = MockIssuer::start().await;
//! let verifier = idp.verifier();
//! let token = idp.token().subject("alice").realm_roles(["sandbox:invoke"]).sign();
//! let principal = verifier.verify(&token).await.unwrap();
//! assert_eq!(principal.subject(), "alice");
//! assert_eq!(idp.jwks_fetches(), 1);
//! # }
//! ```

mod issuer;
mod key;
mod token;

pub use issuer::{IssuerShape, MockIssuer, MockIssuerBuilder};
pub use key::{TestKey, jwks, key_set};
pub use token::TokenBuilder;
/// The mock HTTP server the issuer runs on, to mount more endpoints on
/// [`MockIssuer::server`].
pub use wiremock;

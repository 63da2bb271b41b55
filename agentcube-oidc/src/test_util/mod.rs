//! An in-process OIDC issuer for tests (feature `test-util`).
//!
//! [`MockIssuer`] runs a [wiremock](https://docs.rs/wiremock) server that answers like a
//! Keycloak realm: a discovery document at
//! `/realms/<realm>/.well-known/openid-configuration` and a JWKS at
//! `/realms/<realm>/protocol/openid-connect/certs`. It mints Keycloak-shaped access tokens,
//! rotates keys, counts fetches and can be made to fail.
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

pub use issuer::{MockIssuer, MockIssuerBuilder};
pub use key::{TestKey, jwks, key_set};
pub use token::TokenBuilder;

//! Client side: access tokens for SDKs, CLIs and services calling AgentCube (feature `client`,
//! on by default).
//!
//! | who | what | type |
//! |---|---|---|
//! | anyone with a token | a fixed token | [`StaticToken`] |
//! | services, scripts, CI (`agentcube-app`) | client credentials grant, cached | [`ClientCredentials`] |
//! | humans on a desktop (`agentcube-cli`) | authorization code + PKCE on a loopback redirect | [`AuthorizationCodeFlow`], [`LoopbackListener`] |
//! | humans on a remote machine (`agentcube-cli`) | device authorization grant (RFC 8628) | [`DeviceFlow`] |
//! | after a login | renewal with the refresh token | [`RefreshTokenSource`] |
//!
//! Every source implements [`TokenSource`]; [`AuthorizedClient`] sends requests with the token of
//! any source and retries once after a 401.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentcube_oidc::client::ClientError> {
//! use agentcube_oidc::client::{AuthorizedClient, ClientCredentials};
//!
//! let source = ClientCredentials::builder("agentcube-app", "…secret…")
//!     .issuer("https://keycloak.example/realms/agentcube")
//!     .build()?;
//! let client = AuthorizedClient::new(source);
//! let url = "https://router.example/v1/namespaces/default/code-interpreters/ci/invocations/run";
//! let response = client.send(client.post(url)).await?;
//! # let _ = response; Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - **Caching** (client credentials, refresh tokens): a token is reused until
//!   `max(expires_in − 30 s, expires_in / 2)` after its request was sent, `expires_in` 3600 s
//!   when absent. From then until it expires, callers still get it while one background
//!   request fetches the next; once it has expired, callers wait.
//!   Concurrent callers share one request (single-flight). Time is Tokio's clock, so tests can
//!   pause it.
//! - **Token responses** must have a non-empty `access_token` and a `token_type` of `Bearer`
//!   (case-insensitive; a missing `token_type` is an error too, RFC 6749 §5.1 requires it), so a
//!   DPoP or MAC token is never sent as a bearer token.
//! - **Errors** carry a stable [`ClientError::code`]; OAuth error bodies (`error`,
//!   `error_description`) are surfaced; nothing secret appears in messages or `Debug`.
//! - **HTTP**: 5 s connect and 30 s total timeouts, no redirects followed, bodies capped at
//!   256 KiB; network errors, timeouts and 5xx answers are retried with exponential backoff and
//!   jitter (3 attempts), 4xx answers never ([`HttpConfig`], [`RetryPolicy`]).
//! - **Discovery**: with an issuer, endpoints come from
//!   `{issuer}/.well-known/openid-configuration`, fetched once on first use; its `issuer` must
//!   equal the configured one exactly.
//!
//! # Design notes
//!
//! The flows are written on `reqwest` directly rather than on the `oauth2` crate: `oauth2` 5
//! depends unconditionally on `sha2` and `rand` 0.8 (a second crypto stack beside aws-lc-rs, which
//! this workspace uses for SHA-256 and randomness), its errors do not expose the HTTP status the
//! retry rule needs, it accepts an empty `access_token`, and it has no caching. The protocol
//! surface used here (four form posts and a discovery GET) is small.
//!
//! The ID token of a code exchange is checked only for its `nonce` (it comes straight from the
//! token endpoint over TLS, OIDC Core §3.1.3.7); its signature is not verified, since this module
//! is about obtaining access tokens. Verify access tokens where they are used (the verifier in
//! this crate).

mod authorized;
mod cache;
mod client_credentials;
mod device;
mod error;
mod http;
mod oauth;
mod pkce;
mod rand;
mod refresh;
mod source;
mod token;

pub use authorized::AuthorizedClient;
pub use client_credentials::{ClientCredentials, ClientCredentialsBuilder};
pub use device::{DeviceAuthorization, DeviceFlow, DeviceFlowBuilder};
pub use error::ClientError;
pub use http::{ClientAuthMethod, HttpConfig, RetryPolicy};
pub use pkce::{
    AuthorizationCodeFlow, AuthorizationCodeFlowBuilder, AuthorizationRequest, LoopbackListener,
};
pub use refresh::{RefreshTokenSource, RefreshTokenSourceBuilder};
pub use source::{DynTokenSource, StaticToken, TokenFuture, TokenSource};
pub use token::{
    AccessToken, AuthorizationCode, ClientSecret, DeviceCode, IdToken, RefreshToken, Tokens,
};

/// The `reqwest` version these types use, for building clients and requests that fit.
pub use reqwest;

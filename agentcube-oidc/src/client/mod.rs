//! Client side: access tokens for SDKs, CLIs and services calling AgentCube (feature `client`,
//! off by default).
//!
//! | who | what | type |
//! |---|---|---|
//! | anyone with a token | a fixed token | [`StaticToken`] |
//! | workloads in Kubernetes | the projected service-account token, read again when the kubelet rotates it | [`FileToken`] |
//! | services, scripts, CI (`agentcube-app`) | client credentials grant, cached | [`ClientCredentials`] |
//! | humans on a desktop (`agentcube-cli`) | authorization code + PKCE on a loopback redirect | [`AuthorizationCodeFlow`], [`LoopbackListener`] |
//! | humans on a remote machine (`agentcube-cli`) | device authorization grant (RFC 8628) | [`DeviceFlow`] |
//! | after a login | renewal with the refresh token | [`RefreshTokenSource`] |
//!
//! Every source implements [`TokenSource`]; [`AuthorizedClient`] sends requests with the token of
//! any source and retries once after a 401. When a caller was given no credential at all, the
//! projected service-account token is the one to send (see [`FileToken`]).
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
//!   256 KiB while they stream in; network errors, timeouts and 5xx answers are retried with
//!   exponential backoff and jitter (3 attempts), 4xx answers never ([`HttpConfig`],
//!   [`RetryPolicy`]). The key store uses the same HTTP layer.
//! - **Discovery**: with an issuer, endpoints come from
//!   `{issuer}/.well-known/openid-configuration`, fetched once on first use; its `issuer` must
//!   equal the configured one exactly, and a document fetched over `https` may name only `https`
//!   endpoints (token, authorization, device authorization): an `https` issuer never leads to a
//!   client secret, a code or a refresh token sent in clear. The check runs before any request
//!   to the endpoint.
//!
//! # Design notes
//!
//! The four grants (client credentials, authorization code with PKCE, device authorization,
//! refresh) are the `oauth2` crate's: it encodes the requests, authenticates the client (HTTP
//! Basic or form), generates the PKCE verifier and its S256 challenge and the `state`, and
//! parses token and error responses. What it does not do stays here, in layers around it:
//!
//! - **HTTP**: `oauth2` is used without its default features (no HTTP client, no TLS); its
//!   requests go through this crate's HTTP layer (an `oauth2::AsyncHttpClient` over it), so the
//!   retries, the size cap, the timeouts and the no-redirect rule are the same as everywhere
//!   else here, and the HTTP status is seen by the retry rule and kept for errors the library
//!   reports without one (an error status with an empty body).
//! - **Checks the library leaves to its caller**: an empty `access_token`, a `token_type` other
//!   than `Bearer`, an OAuth `error` in a success answer, the ID token's `nonce` are checked
//!   after the library returns.
//! - **Caching, single-flight and background refresh** are this module's token-source layer on
//!   top of the grants.
//! - **Device polling** is the library's loop (`authorization_pending`, `slow_down`), started
//!   after one interval (the library polls first, RFC 8628 waits first) and given Tokio's clock
//!   (the library reads a wall clock). The library keeps polling after a request that got no
//!   answer; if the code expires meanwhile, that transport error is returned rather than
//!   `expired_token`.
//! - **Token responses** are parsed by the library into this module's own response type (its
//!   extension point): `expires_in` may be a number or a string of digits, as some servers send
//!   it, and Keycloak's `refresh_expires_in` is kept.
//!
//! None of the reasons once given for writing the grants by hand remains: the HTTP status is
//! seen below the library, an empty `access_token` is checked after it, caching is above it.
//!
//! *Crypto.* With default features off, `oauth2` 5 brings neither `ring` nor a TLS stack; it
//! does depend, unconditionally, on RustCrypto's `sha2` (for the S256 challenge) and on `rand`
//! 0.8 (for the verifier and `state`, from the operating system's generator through
//! `getrandom`). That is accepted: `sha2` is a hash function, not a second crypto backend — it
//! holds no keys, does no TLS and verifies no signature; every signature check and the TLS of
//! every request stay on aws-lc-rs, the workspace's one backend. `ring` would not be accepted
//! and is not in the dependency tree (`cargo tree -p agentcube-oidc --features client -i ring`
//! prints nothing).
//!
//! The ID token of a code exchange is checked only for its `nonce` (it comes straight from the
//! token endpoint over TLS, OIDC Core §3.1.3.7); its signature is not verified, since this module
//! is about obtaining access tokens. Verify access tokens where they are used (the verifier in
//! this crate).

mod authorized;
mod cache;
mod client_credentials;
mod code;
mod device;
mod error;
mod file;
mod loopback;
mod oauth;
mod refresh;
mod source;
mod token;

pub use crate::http::{HttpConfig, RetryPolicy};
pub use authorized::AuthorizedClient;
pub use client_credentials::{ClientCredentials, ClientCredentialsBuilder};
pub use code::{AuthorizationCodeFlow, AuthorizationCodeFlowBuilder, AuthorizationRequest};
pub use device::{DeviceAuthorization, DeviceFlow, DeviceFlowBuilder};
pub use error::ClientError;
pub use file::FileToken;
pub use loopback::LoopbackListener;
pub use oauth::ClientAuthMethod;
pub use refresh::{RefreshTokenSource, RefreshTokenSourceBuilder};
pub use source::{DynTokenSource, StaticToken, TokenFuture, TokenSource};
pub use token::{
    AccessToken, AuthorizationCode, ClientSecret, DeviceCode, IdToken, RefreshToken, Tokens,
};

/// The `reqwest` version these types use, for building clients and requests that fit.
pub use reqwest;

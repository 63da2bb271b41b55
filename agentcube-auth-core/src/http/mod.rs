//! HTTP integration (feature `http`): bearer-token parsing, a tower middleware that
//! authenticates requests, and RFC 6750 error responses; with feature `axum`, an extractor.
//!
//! - [`bearer_token`] reads `Authorization: Bearer <token>` with the rules of
//!   [`crate::bearer`], which every service in the workspace shares; [`TokenLocation`] names
//!   another header that carries a bare token (the Router's identity header).
//! - [`AuthLayer`] / [`AuthService`] run any [`TokenVerifier`](crate::TokenVerifier), check an
//!   optional [`Requirement`](crate::Requirement) through a
//!   [`RoleHierarchy`](crate::RoleHierarchy), put the [`Principal`](crate::Principal) into the
//!   request extensions and call the inner service — or answer with [`error_response`] and
//!   never call it.
//! - [`RequireLayer`] / [`RequireService`] check a further requirement per route against the
//!   principal an [`AuthLayer`] already authenticated, without verifying the token again; with
//!   axum, `Router::route_layer`.
//! - [`error_response`] renders any [`Rejection`](crate::Rejection) (an
//!   [`AuthError`](crate::AuthError), a [`ServiceError`](crate::ServiceError), …): status 401/403/503,
//!   `WWW-Authenticate` (none for 503), `Retry-After` ([`RETRY_AFTER_SECS`]) on a 503, JSON
//!   `{"error": "...", "code": "..."}`.
//! - `AuthenticatedPrincipal` (feature `axum`) extracts the principal in a handler.
//!
//! # Decisions
//!
//! - **Response body.** The service answers `Response<`[`AuthBody<B>`]`>`: an enum of the inner
//!   body and the rejection bytes (the shape tower-http uses for its wrapping bodies), so the
//!   inner service keeps its own body type, nothing is boxed and a rejection needs no
//!   `Default` body. It implements [`http_body::Body`] with the inner body's `Data` and `Error`
//!   (requiring `Data: From<Bytes>`, true for hyper's and axum's bodies), so axum's
//!   `Router::layer` accepts it as is.
//! - **Cost per request.** Header problems are rejected in `call`, without allocating. A
//!   well-formed token costs one allocation for its verification, the boxed verification
//!   future, because the verifier's `impl Future` cannot be named in `Service::Future` on
//!   stable Rust (the principal handed to the inner service in the request's extensions is
//!   one more where the request already has extensions, as a server's do); the inner
//!   service's future is not boxed.
//! - **`poll_ready`.** `call` polls the verification once. When it is done (a verified-token
//!   cache hit), the ready inner service is called at once and nothing is cloned; when it has
//!   to wait, the ready inner service is moved into the response future and a clone left
//!   behind, as tower-http's asynchronous middleware does. Polling once in `call` does no
//!   more work than the first poll of the response future would.
//! - **Two `Authorization` headers** are refused (`invalid_authorization_format`), not resolved
//!   by picking one. An **empty** header counts as missing.
//! - **The `Authorization` header is left on the request.** A service that forwards requests
//!   (the Router) must strip it itself before proxying.
//! - **Rejection hook.** [`AuthLayer::on_rejection`] sees the [`AuthError`](crate::AuthError)
//!   and, through [`OnRejection::on_rejected_request`], the request's method, path and
//!   extensions ([`RejectedRequest`]) — never a header value, the query or the body, so never
//!   the token. The client sees the stable code (the
//!   precise reason, e.g. `expired`) and
//!   [`AuthError::public_message`](crate::AuthError::public_message) (for a bad token the vague
//!   `invalid or expired token`); the hook can log more, e.g. the error's `Display` text.
//!
//! # Example
//!
//! A tower stack; with axum it is `Router::new().route(...).layer(layer)`.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//!
//! use agentcube_auth_core::http::AuthLayer;
//! use agentcube_auth_core::{
//!     AuthError, Principal, Requirement, Role, RoleHierarchy, TokenVerifier,
//! };
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! /// Stands in for `agentcube-oidc`'s verifier.
//! struct FakeVerifier;
//!
//! impl TokenVerifier for FakeVerifier {
//!     async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
//!         match token {
//!             "admin-token" => Ok(Principal::builder("https://idp.example", "alice")
//!                 .roles([Role::realm("admin")])
//!                 .build()),
//!             _ => Err(AuthError::InvalidSignature),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let hierarchy = RoleHierarchy::from_pairs([
//!     (Role::realm("admin"), Role::realm("sandbox:manage")),
//!     (Role::realm("sandbox:manage"), Role::realm("sandbox:invoke")),
//! ])?;
//! let auth = AuthLayer::new(FakeVerifier)
//!     .require(Requirement::realm_role("sandbox:invoke"))
//!     .hierarchy(Arc::new(hierarchy))
//!     .on_rejection(|err: &AuthError| eprintln!("rejected: {}", err.code()));
//!
//! let service = ServiceBuilder::new()
//!     .layer(auth)
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         let principal = req.extensions().get::<Principal>().cloned();
//!         let subject = principal.map(|p| p.subject().to_owned()).unwrap_or_default();
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(subject))))
//!     }));
//!
//! let request = Request::builder()
//!     .header("authorization", "Bearer admin-token")
//!     .body(Full::default())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "alice");
//!
//! let response = service.oneshot(Request::new(Full::default())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer");
//! # Ok(())
//! # }
//! ```

#![cfg_attr(docsrs, doc(cfg(feature = "http")))]

mod bearer;
mod body;
#[cfg(feature = "axum")]
mod extract;
mod layer;
mod require;
mod response;
mod service;

pub use bearer::{TokenLocation, bearer_token};
pub use body::AuthBody;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::AuthenticatedPrincipal;
pub use layer::{AuthLayer, OnRejection, RejectedRequest};
pub use require::{RequireFuture, RequireLayer, RequireService};
pub use response::{RETRY_AFTER_SECS, error_response};
pub use service::{AuthService, ResponseFuture};

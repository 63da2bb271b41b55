//! The tower layer's fixture: a request as a server hands it to its middleware, the inner
//! service both sides call, the authenticated service, and one call as tower's contract asks.
//! `benches/layer.rs` times it; `profile_verify layer` counts its instructions.

use std::convert::Infallible;
use std::future::{Ready, poll_fn, ready as ready_future};
use std::net::{Ipv4Addr, SocketAddr};

use agentcube_auth_core::Requirement;
use agentcube_auth_core::http::{AuthLayer, AuthService};
use agentcube_oidc::OidcVerifier;
use http::{HeaderValue, Request, Response, header};
use tower::util::ServiceFn;
use tower::{Layer as _, Service, service_fn};

use crate::{Fixture, ready};

/// The inner service: an empty response, so that a call without the layer is the floor.
pub type Inner = ServiceFn<fn(Request<()>) -> Ready<Result<Response<()>, Infallible>>>;

/// The inner service behind `AuthLayer` with the `sandbox:invoke` requirement, verifying with
/// an `OidcVerifier` (cache on) that holds the fixture's key.
pub type Authenticated = AuthService<Inner, OidcVerifier>;

fn answer(_request: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    ready_future(Ok(Response::new(())))
}

/// The inner service alone.
pub fn inner() -> Inner {
    service_fn(answer as fn(_) -> _)
}

/// The inner service behind the layer, for the fixture's token.
///
/// # Panics
/// If the verifier cannot be built (then the fixture is wrong).
#[allow(clippy::expect_used)]
pub fn authenticated(f: &Fixture) -> Authenticated {
    let verifier = OidcVerifier::new(f.config()).expect("a verifier for the fixture's key");
    AuthLayer::new(verifier)
        .require(Requirement::realm_role("sandbox:invoke"))
        .layer(inner())
}

/// A request as a server hands it to its middleware: the `Authorization` header parsed, and an
/// extension of the server's in place (axum's `ConnectInfo` holds the peer address), so that
/// the principal joins an extension map that exists, as in a service.
pub fn request(bearer: &HeaderValue) -> Request<()> {
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert(header::AUTHORIZATION, bearer.clone());
    request
        .extensions_mut()
        .insert(SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000)));
    request
}

/// Calls `service` as tower's contract asks (ready first) and checks that it answered 2xx, so
/// that a refusal, a cheaper path, is never what gets measured.
///
/// # Panics
/// If the service is not ready at once or does not answer 2xx.
#[allow(clippy::unwrap_used)]
pub fn serve<S, B>(service: &mut S, request: Request<()>) -> Response<B>
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    ready(poll_fn(|cx| service.poll_ready(cx))).unwrap();
    let response = ready(service.call(request)).unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response
}

//! The authentication layer per request: a request carrying a cached RS256 access token through
//! `AuthLayer` with the `sandbox:invoke` requirement, against the same inner service called
//! without the layer. The difference is what the layer adds to every request of a service that
//! sees a token again within its lifetime: finding and checking the token in the header, the
//! verified-token cache lookup, the requirement check and handing the principal to the inner
//! service.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::future::{Ready, ready as ready_future};
use std::hint::black_box;

use agentcube_auth_core::Requirement;
use agentcube_auth_core::http::AuthLayer;
use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_benches::{ISSUER, fixture, now, ready};
use agentcube_oidc::{OidcConfig, OidcVerifier};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, header};
use tower::{Layer, Service, service_fn};

/// What the inner service answers: an empty response, so that the floor is the call itself.
fn answer(_request: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    ready_future(Ok(Response::new(())))
}

fn bench_layer(c: &mut Criterion) {
    let f = fixture(Algorithm::RS256, now()).expect("fixture");
    let bearer = HeaderValue::from_str(&format!("Bearer {}", f.token)).unwrap();
    // A request as a server hands it over: the header already parsed, so building it is setup.
    let request = || {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, bearer.clone());
        request
    };
    let verifier = OidcVerifier::new(
        OidcConfig::new(ISSUER)
            .algorithms(AlgorithmSet::only(Algorithm::RS256))
            .static_keys(f.keys),
    )
    .unwrap();
    let mut plain = service_fn(answer);
    let mut authenticated = AuthLayer::new(verifier)
        .require(Requirement::realm_role("sandbox:invoke"))
        .layer(service_fn(answer));
    // The first request verifies the token and fills the cache.
    let first = ready(authenticated.call(request())).unwrap();
    assert!(first.status().is_success(), "{}", first.status());

    let mut group = c.benchmark_group("auth_layer");
    group.bench_function("floor_inner_service", |b| {
        b.iter_batched(
            request,
            |request| black_box(ready(plain.call(request)).unwrap()),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("cached_token", |b| {
        b.iter_batched(
            request,
            |request| black_box(ready(authenticated.call(request)).unwrap()),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_layer);
criterion_main!(benches);

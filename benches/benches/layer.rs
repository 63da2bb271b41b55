//! The authentication layer per request: a request carrying a cached RS256 access token through
//! `AuthLayer` with the `sandbox:invoke` requirement, against the same inner service called
//! without the layer. The difference is what the layer adds to every request of a service that
//! sees a token again within its lifetime: finding and checking the token in the header, the
//! verified-token cache lookup, the requirement check and handing the principal to the inner
//! service.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use agentcube_auth_core::jose::Algorithm;
use agentcube_benches::layer::{authenticated, inner, request, serve};
use agentcube_benches::{fixture, now};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::HeaderValue;

fn bench_layer(c: &mut Criterion) {
    let f = fixture(Algorithm::RS256, now()).expect("fixture");
    let bearer = HeaderValue::from_str(&format!("Bearer {}", f.token)).unwrap();
    let mut plain = inner();
    let mut authenticated = authenticated(&f);
    // The first request verifies the token and fills the cache.
    serve(&mut authenticated, request(&bearer));

    let mut group = c.benchmark_group("auth_layer");
    // Building the request is setup (a server hands it over built); dropping the response is not
    // timed either.
    group.bench_function("floor_inner_service", |b| {
        b.iter_batched(
            || request(&bearer),
            |request| black_box(serve(&mut plain, request)),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("cached_token", |b| {
        b.iter_batched(
            || request(&bearer),
            |request| black_box(serve(&mut authenticated, request)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_layer);
criterion_main!(benches);

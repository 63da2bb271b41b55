//! Runs one verification path in a loop, for an instruction-level profile:
//! `valgrind --tool=callgrind --toggle-collect='*profiled_loop*' target/release/examples/profile_verify`
//! then `callgrind_annotate --inclusive=yes`.
//!
//! `profile_verify [N] [MODE] [ALG]`: `N` iterations (2000), `MODE` one of `uncached` (the
//! default: the whole pipeline with the verified-token cache off), `cached` (the cache's hit
//! path) or `floor` (the bare signature check of the same bytes with the same key, the benches'
//! floor), `ALG` one of `RS256` (the default), `ES256`, `EdDSA`. Every mode verifies the same
//! token as the criterion benches and polls the verifier as they do (once, no runtime), so
//! `scripts/bench-report --instructions` can divide one mode's count by another's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a profiling tool: a wrong argument or a failed verification stops it loudly"
)]

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_benches::{ISSUER, fixture, now, ready};
use agentcube_oidc::{CacheConfig, OidcConfig, OidcVerifier};

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let mode = args.next().unwrap_or_else(|| "uncached".to_owned());
    let alg = args
        .next()
        .map(|name| Algorithm::from_name(&name).expect("an algorithm: RS256, ES256 or EdDSA"))
        .unwrap_or(Algorithm::RS256);
    let f = fixture(alg, now()).expect("fixture");
    let verifier = |cache: CacheConfig| {
        OidcVerifier::new(
            OidcConfig::new(ISSUER)
                .algorithms(AlgorithmSet::only(alg))
                .static_keys(f.keys.clone())
                .cache(cache),
        )
        .expect("verifier")
    };
    match mode.as_str() {
        "floor" => profiled_loop(iterations, || {
            f.bare
                .verify_sig(f.signing_input.as_bytes(), &f.signature)
                .expect("the fixture's signature verifies");
        }),
        "cached" => {
            let cached = verifier(CacheConfig::new());
            ready(cached.verify(&f.token)).unwrap();
            profiled_loop(iterations, || {
                std::hint::black_box(ready(cached.verify(&f.token)).unwrap());
            });
        }
        "uncached" => {
            let uncached = verifier(CacheConfig::disabled());
            profiled_loop(iterations, || {
                std::hint::black_box(ready(uncached.verify(&f.token)).unwrap());
            });
        }
        other => panic!("unknown mode {other:?}: uncached, cached or floor"),
    }
}

/// The profiled region (`valgrind --tool=callgrind --toggle-collect='*profiled_loop*'`).
#[inline(never)]
fn profiled_loop(n: usize, mut verify_once: impl FnMut()) {
    for _ in 0..n {
        verify_once();
    }
}

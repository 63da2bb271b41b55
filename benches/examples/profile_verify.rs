//! Runs one verification path in a loop, for an instruction-level profile:
//! `valgrind --tool=callgrind --toggle-collect='*profiled_loop*' target/release/examples/profile_verify`
//! then `callgrind_annotate --inclusive=yes`.
//!
//! `profile_verify [N] [MODE] [ALG]`: `N` iterations (2000), `MODE` one of `uncached` (the
//! default: the whole pipeline with the verified-token cache off), `cached` (the cache's hit
//! path), `floor` (the bare signature check of the same bytes with the same key, the benches'
//! floor), `compare` (`floor` in `floor_loop`, then `uncached` in `pipeline_loop`, in one
//! process, so both check the same signature with the same key) or `layer` (a request to the
//! bare inner service in `floor_loop`, then the same request with a cached token through
//! `AuthLayer` in `pipeline_loop`: `benches/layer.rs`'s two paths), `ALG` one of
//! `RS256` (the default), `ES256`, `EdDSA`. Each path runs once before it is counted, so what
//! runs only once is not counted; the verifier is polled as the criterion benches poll it
//! (once, no runtime). `scripts/bench-report --instructions` runs `compare`, `cached` and
//! `layer`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a profiling tool: a wrong argument or a failed verification stops it loudly"
)]

use agentcube_auth_core::jose::Algorithm;
use agentcube_benches::{fixture, layer, now, ready};
use agentcube_oidc::{CacheConfig, OidcVerifier};

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let mode = args.next().unwrap_or_else(|| "uncached".to_owned());
    let alg = args
        .next()
        .map(|name| Algorithm::from_name(&name).expect("an algorithm: RS256, ES256 or EdDSA"))
        .unwrap_or(Algorithm::RS256);
    let f = fixture(alg, now()).expect("fixture");
    let verifier =
        |cache: CacheConfig| OidcVerifier::new(f.config().cache(cache)).expect("verifier");
    let mut floor = || {
        f.bare
            .verify_sig(f.signing_input.as_bytes(), &f.signature)
            .expect("the fixture's signature verifies");
    };
    let uncached = verifier(CacheConfig::disabled());
    let mut pipeline = || {
        std::hint::black_box(ready(uncached.verify(&f.token)).unwrap());
    };
    let cached = verifier(CacheConfig::new());
    let mut cache_hit = || {
        std::hint::black_box(ready(cached.verify(&f.token)).unwrap());
    };
    // Each path runs once before it is counted: what runs only once is not counted.
    match mode.as_str() {
        "floor" => {
            floor();
            profiled_loop(iterations, &mut floor);
        }
        "uncached" => {
            pipeline();
            profiled_loop(iterations, &mut pipeline);
        }
        "cached" => {
            cache_hit();
            profiled_loop(iterations, &mut cache_hit);
        }
        "compare" => {
            floor();
            pipeline();
            floor_loop(iterations, &mut floor);
            pipeline_loop(iterations, &mut pipeline);
        }
        "layer" => {
            let bearer = http::HeaderValue::from_str(&format!("Bearer {}", f.token)).unwrap();
            let (mut plain, mut authenticated) = (layer::inner(), layer::authenticated(&f));
            let mut bare = || {
                std::hint::black_box(layer::serve(&mut plain, layer::request(&bearer)));
            };
            let mut through_layer = || {
                std::hint::black_box(layer::serve(&mut authenticated, layer::request(&bearer)));
            };
            bare();
            through_layer();
            floor_loop(iterations, &mut bare);
            pipeline_loop(iterations, &mut through_layer);
        }
        other => panic!("unknown mode {other:?}: uncached, cached, floor, compare or layer"),
    }
}

/// A counted loop: a function of its own, so that callgrind can collect on its name
/// (`--toggle-collect='*<name>*'`). Each loop hands its own name to `black_box`, so no two
/// have the same code and the linker cannot fold them into one symbol (it did, once a fourth
/// caller made identical loops worth merging; the counts then found no `pipeline_loop`).
macro_rules! counted_loop {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[inline(never)]
        fn $name(n: usize, once: &mut dyn FnMut()) {
            for _ in 0..n {
                once();
            }
            std::hint::black_box(stringify!($name));
        }
    };
}

counted_loop!(
    /// The profiled region of `uncached`, `cached` and `floor`.
    profiled_loop
);
counted_loop!(
    /// `compare`'s bare signature checks and `layer`'s requests to the bare inner service.
    floor_loop
);
counted_loop!(
    /// `compare`'s uncached pipelines and `layer`'s requests through the layer.
    pipeline_loop
);

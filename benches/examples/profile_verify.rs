//! Runs the uncached verification pipeline (RS256 unless told another algorithm) in a loop, for an instruction-level profile:
//! `valgrind --tool=callgrind --toggle-collect='*profiled_loop*' target/release/examples/profile_verify`
//! then `callgrind_annotate --inclusive=yes`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentcube_auth_core::jose::{Algorithm, AlgorithmSet};
use agentcube_benches::{ISSUER, fixture, now};
use agentcube_oidc::{CacheConfig, OidcConfig, OidcVerifier};

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    // `profile_verify N cached` profiles the verified-token cache's hit path instead;
    // `profile_verify N uncached ES256` (or `EdDSA`) another algorithm.
    let cached = std::env::args().nth(2).is_some_and(|a| a == "cached");
    let alg = std::env::args()
        .nth(3)
        .and_then(|name| Algorithm::from_name(&name))
        .unwrap_or(Algorithm::RS256);
    let f = fixture(alg, now()).expect("fixture");
    let verifier = OidcVerifier::new(
        OidcConfig::new(ISSUER)
            .algorithms(AlgorithmSet::only(alg))
            .static_keys(f.keys.clone())
            .cache(if cached {
                CacheConfig::new()
            } else {
                CacheConfig::disabled()
            }),
    )
    .expect("verifier");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    profiled_loop(&rt, &verifier, &f.token, iterations);
}

/// The profiled region (`valgrind --tool=callgrind --toggle-collect='*profiled_loop*'`).
#[inline(never)]
fn profiled_loop(rt: &tokio::runtime::Runtime, verifier: &OidcVerifier, token: &str, n: usize) {
    for _ in 0..n {
        std::hint::black_box(rt.block_on(verifier.verify(token)).unwrap());
    }
}

//! Token verification: the full pipeline (token → Principal → `sandbox:invoke` check) against
//! two floors measured in the same run — plain `jsonwebtoken::decode` of the same token with the
//! same key, and the bare signature check of the same bytes.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use agentcube_auth_core::jose::{
    self, Algorithm, AlgorithmSet, JwsPolicy, TimeRules, UnverifiedJws,
};
use agentcube_auth_core::{ClaimMapper, KeycloakClaimMapper, Requirement, RoleHierarchy};
use agentcube_benches::{ISSUER, fixture, now, ready};
use agentcube_oidc::{CacheConfig, OidcConfig, OidcVerifier};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

fn bench_verify(c: &mut Criterion) {
    let now = now();
    let hierarchy = RoleHierarchy::flat();
    let invoke = Requirement::realm_role("sandbox:invoke");
    let mapper = KeycloakClaimMapper::new();
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let f = fixture(alg, now).expect("fixture");
        let policy = JwsPolicy::new(AlgorithmSet::only(alg));
        let rules = TimeRules::default();
        let key = f.keys.keys()[0].clone();
        let name = alg.as_str().to_ascii_lowercase();
        let mut group = c.benchmark_group(format!("verify_{name}"));

        group.bench_function("floor_signature", |b| {
            b.iter(|| {
                f.bare.verify_sig(
                    black_box(f.signing_input.as_bytes()),
                    black_box(&f.signature),
                )
            });
        });

        let jwt_alg = match alg {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            _ => jsonwebtoken::Algorithm::EdDSA,
        };
        let mut validation = jsonwebtoken::Validation::new(jwt_alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&["agentcube-api"]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        group.bench_function("floor_jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(
                    black_box(&f.token),
                    &f.decoding_key,
                    &validation,
                )
                .expect("jsonwebtoken accepts the fixture")
            });
        });

        group.bench_function("core_pipeline", |b| {
            b.iter(|| {
                let jws = UnverifiedJws::parse(black_box(&f.token), &policy).unwrap();
                let (_, claims) = jws.verify(&key).unwrap();
                jose::check_issuer(&claims, ISSUER).unwrap();
                jose::check_audience(&claims, &["agentcube-api"]).unwrap();
                jose::check_times(&claims, now, &rules).unwrap();
                let principal = mapper.map(claims).unwrap();
                invoke.check(&principal, &hierarchy).unwrap();
                principal
            });
        });
        // The real verifier: OidcVerifier with the same key, uncached and through its cache.
        let config = || {
            OidcConfig::new(ISSUER)
                .algorithms(AlgorithmSet::only(alg))
                .static_keys(f.keys.clone())
        };
        let uncached = OidcVerifier::new(config().cache(CacheConfig::disabled())).unwrap();
        let cached = OidcVerifier::new(config()).unwrap();
        group.bench_function("oidc_pipeline", |b| {
            b.iter(|| {
                let principal = ready(uncached.verify(black_box(&f.token))).unwrap();
                invoke.check(&principal, &hierarchy).unwrap();
                principal
            });
        });
        ready(cached.verify(&f.token)).unwrap();
        group.bench_function("cache_hit", |b| {
            b.iter(|| {
                let principal = ready(cached.verify(black_box(&f.token))).unwrap();
                invoke.check(&principal, &hierarchy).unwrap();
                principal
            });
        });

        // Where the pipeline's time goes beyond the signature.
        group.bench_function("breakdown_parse", |b| {
            b.iter(|| UnverifiedJws::parse(black_box(&f.token), &policy).unwrap());
        });
        let parsed_claims = {
            let jws = UnverifiedJws::parse(&f.token, &policy).unwrap();
            jws.verify(&key).unwrap().1
        };
        group.bench_function("breakdown_map", |b| {
            // The clone of the claims is setup, not measured.
            b.iter_batched(
                || parsed_claims.clone(),
                |claims| mapper.map(claims).unwrap(),
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);

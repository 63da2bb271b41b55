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
use std::sync::Arc;

use agentcube_auth_core::jose::{
    self, Algorithm, AlgorithmSet, JwsPolicy, TimeRules, UnverifiedJws,
};
use agentcube_auth_core::{
    ClaimMapper, KeycloakClaimMapper, MemoryRevocationSet, Requirement, Revocation,
    RevocationProbe, RevocationSet, RevocationTarget, RoleHierarchy,
};
use agentcube_benches::{ISSUER, fixture, now, ready};
use agentcube_oidc::{CacheConfig, OidcConfig, OidcVerifier};
use criterion::{BatchSize, Bencher, Criterion, criterion_group, criterion_main};

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

        let floor = |b: &mut Bencher<'_>| {
            b.iter(|| {
                f.bare.verify_sig(
                    black_box(f.signing_input.as_bytes()),
                    black_box(&f.signature),
                )
            });
        };
        group.bench_function("floor_signature", floor);

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
        let config = || f.config();
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

        if alg == Algorithm::RS256 {
            bench_revocations(&mut group, &config, &f.token, now);
        }

        // The floor again, after the pipelines: a machine that slows down (or speeds up) over
        // the group's run would otherwise bias every ratio against the benches measured later;
        // ratios are taken against the mean of the two floors.
        group.bench_function("floor_signature_after", floor);

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

/// The revocation check on a cache hit: the same cached verifier with a set of 1,000
/// revocations (sessions, subjects and clients of the same issuer, none of them the token's),
/// against `cache_hit` above; and the full lookup a hit makes when the set changed since the
/// token was last checked.
fn bench_revocations(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    config: &dyn Fn() -> OidcConfig,
    token: &str,
    now: i64,
) {
    let set = MemoryRevocationSet::new();
    for i in 0..1000 {
        let target = match i % 5 {
            0 | 1 => RevocationTarget::Session(format!("session-{i}").into()),
            2 | 3 => RevocationTarget::Subject(format!("subject-{i}").into()),
            _ => RevocationTarget::Client(format!("client-{i}").into()),
        };
        set.insert(&Revocation::new(ISSUER, target, now)).unwrap();
    }
    assert_eq!(set.len(), 1000);
    let revocations = Arc::new(set);
    let verifier = OidcVerifier::new(config().revocations(revocations.clone())).unwrap();
    let hierarchy = RoleHierarchy::flat();
    let invoke = Requirement::realm_role("sandbox:invoke");
    ready(verifier.verify(token)).unwrap();
    group.bench_function("cache_hit_revocations_1000", |b| {
        b.iter(|| {
            let principal = ready(verifier.verify(black_box(token))).unwrap();
            invoke.check(&principal, &hierarchy).unwrap();
            principal
        });
    });
    // A probe never checked (as after any change to the set): three map lookups.
    group.bench_function("revocation_check_full_1000", |b| {
        b.iter_batched(
            || {
                RevocationProbe::new(
                    ISSUER,
                    "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
                    Some("8d7c6b5a-4e3f-2a1b-0c9d-8e7f6a5b4c3d"),
                    Some("agentcube-cli"),
                    Some(now),
                )
            },
            |probe| revocations.check(black_box(&probe)).unwrap(),
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);

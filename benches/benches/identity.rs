//! Internal tokens: minting an identity token cold (EdDSA and RS256, against the bare signature
//! of the same algorithm), reusing a minted token, and verifying one in full and from the
//! verifier's verified-token cache (both against the bare Ed25519 verification: the Router reuses
//! its tokens, so a workload manager or sandbox sees the same token again and again).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use agentcube_auth_core::jose::Algorithm;
use agentcube_auth_core::{Principal, Role};
use agentcube_benches::ready;
use agentcube_identity::{
    IdentityVerifier, KeyRing, MAX_LIFETIME, MinterConfig, SigningKey, TokenMinter, VerifierConfig,
};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, Ed25519KeyPair, RsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};

fn principal() -> Principal {
    Principal::builder(
        "http://keycloak.agentcube.svc.cluster.local:8080/realms/agentcube",
        "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
    )
    .email("ada@example.com", true)
    .roles([
        Role::realm("sandbox:invoke"),
        Role::realm("default-roles-agentcube"),
    ])
    .build()
}

fn bench_identity(c: &mut Criterion) {
    let who = principal();
    // A payload of the same size as an identity token's, for the bare-signature floors.
    let message = vec![b'x'; 420];
    let mut group = c.benchmark_group("identity");

    let ed = Ed25519KeyPair::generate().unwrap();
    group.bench_function("floor_ed25519_sign", |b| {
        b.iter(|| ed.sign(black_box(&message)));
    });
    let ed_ring = Arc::new(KeyRing::new(
        SigningKey::generate(Algorithm::EdDSA).unwrap(),
    ));
    let ed_minter = TokenMinter::new(Arc::clone(&ed_ring));
    group.bench_function("mint_cold_eddsa", |b| {
        b.iter(|| ed_minter.mint_identity(black_box(&who)).unwrap());
    });

    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let rng = SystemRandom::new();
    let mut sig = vec![0; rsa.public_modulus_len()];
    group.bench_function("floor_rsa2048_sign", |b| {
        b.iter(|| {
            rsa.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                black_box(&message),
                &mut sig,
            )
            .unwrap();
        });
    });
    let rs_minter = TokenMinter::new(Arc::new(KeyRing::new(
        SigningKey::generate(Algorithm::RS256).unwrap(),
    )));
    group.bench_function("mint_cold_rs256", |b| {
        b.iter(|| rs_minter.mint_identity(black_box(&who)).unwrap());
    });

    group.bench_function("mint_reused", |b| {
        b.iter(|| ed_minter.identity_token(black_box(&who)).unwrap());
    });

    // The longest lifetime a verifier accepts, so the token outlives every verification bench
    // (a 30 s token could expire during a full-length criterion run).
    let long_lived = TokenMinter::with_config(
        Arc::clone(&ed_ring),
        MinterConfig::new().identity_lifetime(MAX_LIFETIME),
    )
    .unwrap();
    let token = long_lived.mint_identity(&who).unwrap();
    let signed = token.as_str().to_owned();
    let (input, sig_b64) = signed.rsplit_once('.').unwrap();
    let sig_bytes = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig_b64)
            .unwrap()
    };
    let active = ed_ring.active().unwrap();
    let key = Arc::clone(active.verification_key());
    group.bench_function("floor_ed25519_verify", |b| {
        b.iter(|| {
            key.verify(
                Algorithm::EdDSA,
                black_box(input.as_bytes()),
                black_box(&sig_bytes),
            )
            .unwrap();
        });
    });
    // The full pipeline, every time: the cache off.
    let uncached = IdentityVerifier::with_config(
        Arc::clone(&ed_ring),
        VerifierConfig::new().cache_capacity(0),
    )
    .unwrap();
    group.bench_function("verify_identity", |b| {
        b.iter(|| ready(uncached.verify(black_box(&signed))).unwrap());
    });
    // The default verifier seeing the same token again: a cache hit (keyed hash, lookup, the
    // time window and the key re-checked).
    let cached = IdentityVerifier::new(Arc::clone(&ed_ring));
    assert!(!ready(cached.verify(&signed)).unwrap().from_cache());
    assert!(ready(cached.verify(&signed)).unwrap().from_cache());
    group.bench_function("verify_identity_cached", |b| {
        b.iter(|| ready(cached.verify(black_box(&signed))).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench_identity);
criterion_main!(benches);

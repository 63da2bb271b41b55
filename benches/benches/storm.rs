//! The JWKS storm: 10,000 tokens with distinct unknown `kid`s, all concurrently, against a
//! counting mock issuer. The result is a number, not a time: how many JWKS fetches the storm
//! caused (target: 1 — the warm-up fetch — plus at most one refresh per cooldown). Valid tokens
//! must keep verifying throughout. Written to `bench-counters.json` in cargo's target directory
//! (`$CARGO_TARGET_DIR` when set) for `scripts/bench-report`.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::sync::Arc;

use agentcube_auth_core::ErrorCode;
use agentcube_oidc::test_util::MockIssuer;

const STORM: usize = 10_000;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing. Either way, run once.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (fetches_before, fetches_after, valid_ok, rejected_unknown) = rt.block_on(async {
        let issuer = MockIssuer::start().await;
        let verifier = Arc::new(issuer.verifier());
        let valid = issuer.token().sign();
        verifier
            .verify(&valid)
            .await
            .expect("warm-up token verifies");
        let before = issuer.jwks_fetches();
        let mut tasks = Vec::with_capacity(STORM + 100);
        for i in 0..STORM {
            let token = issuer.token().kid(&format!("storm-{i}")).sign();
            let verifier = Arc::clone(&verifier);
            tasks.push(tokio::spawn(async move {
                matches!(verifier.verify(&token).await, Err(e) if e.code() == ErrorCode::UnknownKid)
            }));
        }
        let mut rejected = 0;
        for task in tasks {
            rejected += usize::from(task.await.unwrap());
        }
        let mut valid_ok = 0;
        for _ in 0..100 {
            valid_ok += usize::from(verifier.verify(&valid).await.is_ok());
        }
        (before, issuer.jwks_fetches(), valid_ok, rejected)
    });
    let storm_fetches = fetches_after - fetches_before;
    println!(
        "jwks storm: {STORM} unknown kids -> {storm_fetches} fetch(es) (warm-up: {fetches_before}); {rejected_unknown} rejected as unknown_kid; {valid_ok}/100 valid tokens verified"
    );
    // Beside criterion's results: $CARGO_TARGET_DIR (scripts/bench-report sets it, absolute)
    // or the workspace's target/.
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")),
            std::path::PathBuf::from,
        )
        .join("bench-counters.json");
    let counters = serde_json::json!({
        "storm_jwks_fetches_total": fetches_after,
        "storm_jwks_fetches_during_storm": storm_fetches,
        "storm_valid_tokens_ok_of_100": valid_ok,
    });
    std::fs::write(&path, counters.to_string()).expect("write counters");
    assert!(
        storm_fetches <= 1,
        "a storm of unknown kids caused {storm_fetches} fetches"
    );
    assert_eq!(valid_ok, 100, "valid tokens failed during the storm");
    assert_eq!(rejected_unknown, STORM);
}

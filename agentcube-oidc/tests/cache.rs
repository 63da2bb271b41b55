//! The verified-token cache: hits, expiry at `exp`, eviction when the key leaves, bounds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::time::Duration;

use agentcube_auth_core::{AuthError, ErrorCode, KeysUnavailableReason, ManualClock};
use agentcube_oidc::test_util::MockIssuer;
use agentcube_oidc::{CacheConfig, KeyStoreConfig, OidcVerifier};

const NOW: i64 = 1_800_000_000;

async fn idp_at(clock: &ManualClock) -> MockIssuer {
    MockIssuer::builder().clock(clock.clone()).start().await
}

#[tokio::test]
async fn a_repeat_is_a_cache_hit() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = idp.verifier();
    let token = idp.token().sign();
    let first = v.verify_with_details(&token).await.unwrap();
    assert!(!first.from_cache);
    for _ in 0..10 {
        let again = v.verify_with_details(&token).await.unwrap();
        assert!(again.from_cache);
        assert_eq!(again.principal.subject(), first.principal.subject());
        assert_eq!(again.expires_at, first.expires_at);
        assert_eq!(again.kid, first.kid);
        assert_eq!(again.algorithm, first.algorithm);
        assert_eq!(again.key_thumbprint, first.key_thumbprint);
        assert_eq!(again.issued_at, first.issued_at);
    }
    let stats = v.stats();
    assert_eq!((stats.cache_hits, stats.cache_misses), (10, 1));
    assert_eq!(stats.accepted, 11);
    assert_eq!(stats.cache_entries, 1);
    // A different token is a different entry.
    v.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(v.stats().cache_misses, 2);
}

#[tokio::test]
async fn entries_never_outlive_exp() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = idp.verifier();
    let token = idp.token().issued_at(NOW).expires_at(NOW + 60).sign();
    v.verify(&token).await.unwrap();
    // Served from the cache through exp + leeway...
    clock.set(NOW + 60 + 30);
    assert!(v.verify_with_details(&token).await.unwrap().from_cache);
    // ...and not one second longer: the clock is re-checked on every hit.
    clock.set(NOW + 60 + 31);
    assert_eq!(v.verify(&token).await.unwrap_err(), AuthError::Expired);
    // Going back in time does not resurrect it from the cache (it was dropped).
    clock.set(NOW + 10);
    assert!(!v.verify_with_details(&token).await.unwrap().from_cache);
}

#[tokio::test]
async fn an_entry_is_served_for_at_most_max_ttl_on_the_verifiers_clock() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = OidcVerifier::new(
        idp.config()
            .cache(CacheConfig::new().max_ttl(Duration::from_secs(60))),
    )
    .unwrap();
    // Valid for an hour, cached for a minute of the verifier's (injected) clock.
    let token = idp.token().issued_at(NOW).expires_at(NOW + 3600).sign();
    v.verify(&token).await.unwrap();
    clock.set(NOW + 59);
    assert!(v.verify_with_details(&token).await.unwrap().from_cache);
    clock.set(NOW + 60);
    assert!(!v.verify_with_details(&token).await.unwrap().from_cache);
    assert_eq!(v.stats().cache_misses, 2);
}

#[tokio::test]
async fn a_clock_that_jumps_back_is_checked_on_hits_too() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = idp.verifier();
    let token = idp.token().not_before(NOW).sign();
    v.verify(&token).await.unwrap();
    clock.set(NOW - 31);
    assert_eq!(v.verify(&token).await.unwrap_err(), AuthError::NotYetValid);
}

#[tokio::test]
async fn tokens_inside_their_leeway_window_are_not_cached() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = idp.verifier();
    let token = idp.token().issued_at(NOW - 300).expires_at(NOW - 10).sign();
    v.verify(&token).await.unwrap();
    assert!(!v.verify_with_details(&token).await.unwrap().from_cache);
}

#[tokio::test]
async fn an_entry_is_dropped_when_its_key_leaves_the_key_set() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = idp.verifier();
    let old_key = idp.signing_key();
    let token = idp.token().sign();
    v.verify(&token).await.unwrap();
    assert!(v.verify_with_details(&token).await.unwrap().from_cache);
    idp.rotate();
    // Still published: still served.
    v.refresh_keys().await.unwrap();
    assert!(v.verify_with_details(&token).await.unwrap().from_cache);
    // Withdrawn: the next key set no longer vouches for the entry.
    idp.retire(old_key.kid());
    v.refresh_keys().await.unwrap();
    assert_eq!(
        v.verify(&token).await.unwrap_err().code(),
        ErrorCode::UnknownKid
    );
    let stats = v.stats();
    assert_eq!(stats.cache_hits, 2);
    // The same key republished under another kid is the same key: its tokens name the old kid,
    // so they stay unknown; new tokens verify.
    v.verify(&idp.token().sign()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn entries_are_not_served_when_the_key_set_is_too_stale() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = OidcVerifier::new(
        idp.config().key_store(
            KeyStoreConfig::new()
                .timeouts(None, None)
                .max_staleness(Duration::from_secs(120)),
        ),
    )
    .unwrap();
    let token = idp.token().sign();
    v.verify(&token).await.unwrap();
    idp.fail(true);
    tokio::time::advance(Duration::from_secs(121)).await;
    assert_eq!(
        v.verify(&token).await.unwrap_err(),
        AuthError::KeysUnavailable(KeysUnavailableReason::TooStale)
    );
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = OidcVerifier::new(idp.config().cache(CacheConfig::new().max_entries(10))).unwrap();
    for _ in 0..100 {
        v.verify(&idp.token().sign()).await.unwrap();
    }
    assert!(v.stats().cache_entries <= 10, "{}", v.stats().cache_entries);
}

#[tokio::test]
async fn a_disabled_cache_never_hits() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = OidcVerifier::new(idp.config().cache(CacheConfig::disabled())).unwrap();
    let token = idp.token().sign();
    for _ in 0..3 {
        assert!(!v.verify_with_details(&token).await.unwrap().from_cache);
    }
    let stats = v.stats();
    assert_eq!(
        (stats.cache_hits, stats.cache_misses, stats.cache_entries),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn rejected_tokens_are_never_cached() {
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let v = idp.verifier();
    let token = idp.token().audience("account").sign();
    for _ in 0..3 {
        assert_eq!(
            v.verify(&token).await.unwrap_err().code(),
            ErrorCode::AudienceMismatch
        );
    }
    let stats = v.stats();
    assert_eq!(stats.cache_hits, 0);
    assert_eq!(stats.cache_entries, 0);
    assert_eq!(stats.rejected(ErrorCode::AudienceMismatch), 3);
}

#[tokio::test]
async fn verifiers_do_not_share_entries() {
    // A token cached by a lax verifier is not accepted by a strict one.
    let clock = ManualClock::new(NOW);
    let idp = idp_at(&clock).await;
    let lax = idp.verifier();
    let strict = OidcVerifier::new(idp.config().allowed_azp(["agentcube-app"])).unwrap();
    let token = idp.token().sign();
    lax.verify(&token).await.unwrap();
    assert_eq!(
        strict.verify(&token).await.unwrap_err().code(),
        ErrorCode::AzpNotAllowed
    );
}

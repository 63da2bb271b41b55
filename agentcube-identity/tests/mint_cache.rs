//! The minting cache: the same token until the refresh margin, a new one after; keyed by
//! everything that goes into the token; invalidated by rotation; bounded.

mod common;

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::Algorithm;
use agentcube_auth_core::{ManualClock, Principal, Role};
use agentcube_identity::{
    ConfigError, IdentityVerifier, KeyRing, MinterConfig, SigningKey, TokenMinter,
};
use common::*;

fn minter(clock: &ManualClock) -> TokenMinter {
    TokenMinter::new(KeyRing::new(ed25519())).with_clock(clock.clone())
}

#[tokio::test]
async fn same_token_until_the_refresh_margin_then_a_new_one() {
    let clock = ManualClock::new(NOW);
    let m = minter(&clock);
    // Identity: 30 s life, 10 s margin → reused while now < NOW + 20.
    let first = m.identity_token(&alice()).unwrap();
    clock.set(NOW + 19);
    let reused = m.identity_token(&alice()).unwrap();
    assert!(reused.same_token(&first));
    assert_eq!(reused.expires_at(), NOW + 30);
    clock.set(NOW + 20);
    let fresh = m.identity_token(&alice()).unwrap();
    assert!(!fresh.same_token(&first));
    assert_eq!(
        (fresh.issued_at(), fresh.expires_at()),
        (NOW + 20, NOW + 50)
    );
    // The fresh token is cached in turn.
    clock.set(NOW + 39);
    assert!(m.identity_token(&alice()).unwrap().same_token(&fresh));

    // Sandbox: 60 s life → reused while now < NOW + 50.
    clock.set(NOW);
    let s1 = m.sandbox_token(&alice(), "s1").unwrap();
    clock.set(NOW + 49);
    assert!(m.sandbox_token(&alice(), "s1").unwrap().same_token(&s1));
    clock.set(NOW + 50);
    assert!(!m.sandbox_token(&alice(), "s1").unwrap().same_token(&s1));

    // A reused token always has at least the margin left: still valid at the verifier.
    let v = IdentityVerifier::new(m.key_ring().clone()).with_clock(clock.clone());
    clock.set(NOW + 39);
    let t = m.identity_token(&alice()).unwrap();
    assert!(t.expires_at() - (NOW + 39) >= 10);
    assert!(v.verify(t.as_str()).await.is_ok());
}

#[test]
fn the_key_is_everything_that_goes_into_the_token() {
    let clock = ManualClock::new(NOW);
    let m = minter(&clock);
    let base = m.identity_token(&alice()).unwrap();
    // An equal principal built separately hits the cache (fields compared, not pointers).
    assert!(m.identity_token(&alice()).unwrap().same_token(&base));
    let differs = |p: Principal| !m.identity_token(&p).unwrap().same_token(&base);
    // Alice with alice()'s roles but another issuer or email.
    let alice_at = |issuer: &str, email: &str| {
        Principal::builder(issuer, "alice-id")
            .email(email, true)
            .roles(alice().roles().iter().cloned())
            .build()
    };
    assert!(differs(bob()));
    assert!(differs(alice_at("https://other-idp", "alice@example.com")));
    assert!(differs(alice_at(KEYCLOAK, "alice@other.example")));
    // A role change (e.g. alice became admin) is not masked by a cached token.
    assert!(differs(
        Principal::builder(KEYCLOAK, "alice-id")
            .email("alice@example.com", true)
            .roles([Role::realm("admin")])
            .build()
    ));
    // Sessions and kinds are separate entries.
    let a = m.sandbox_token(&alice(), "s-a").unwrap();
    let b = m.sandbox_token(&alice(), "s-b").unwrap();
    assert!(!a.same_token(&b) && !a.same_token(&base));
    assert!(m.sandbox_token(&alice(), "s-a").unwrap().same_token(&a));
    assert!(m.cached_tokens() >= 3);
}

#[test]
fn rotation_invalidates_cached_tokens() {
    let clock = ManualClock::new(NOW);
    let m = minter(&clock);
    let before = m.identity_token(&alice()).unwrap();
    let sandbox_before = m.sandbox_token(&alice(), "s1").unwrap();
    m.key_ring()
        .rotate(SigningKey::generate(Algorithm::EdDSA).unwrap());
    assert!(!m.identity_token(&alice()).unwrap().same_token(&before));
    assert!(
        !m.sandbox_token(&alice(), "s1")
            .unwrap()
            .same_token(&sandbox_before)
    );
    // Adding a verification key does not invalidate anything.
    let after = m.identity_token(&alice()).unwrap();
    m.key_ring()
        .add_verification_key(ed25519().public_jwk().clone())
        .unwrap();
    assert!(m.identity_token(&alice()).unwrap().same_token(&after));
}

#[test]
fn uncached_paths_always_sign() {
    let clock = ManualClock::new(NOW);
    let m = minter(&clock);
    let a = m.mint_identity(&alice()).unwrap();
    let b = m.mint_identity(&alice()).unwrap();
    assert!(!a.same_token(&b), "fresh jti each time");
    assert_eq!(m.cached_tokens(), 0, "mint_* does not fill the cache");
    let config = MinterConfig::new().cache_capacity(0);
    let ring = Arc::new(KeyRing::new(ed25519()));
    let m = TokenMinter::with_config(ring, config)
        .unwrap()
        .with_clock(clock);
    let a = m.identity_token(&alice()).unwrap();
    assert!(!m.identity_token(&alice()).unwrap().same_token(&a));
    assert_eq!(m.cached_tokens(), 0);
}

#[test]
fn the_cache_is_bounded() {
    let clock = ManualClock::new(NOW);
    let config = MinterConfig::new().cache_capacity(32);
    let m = TokenMinter::with_config(KeyRing::new(ed25519()), config)
        .unwrap()
        .with_clock(clock);
    for i in 0..500 {
        let p = Principal::builder(KEYCLOAK, format!("user-{i}")).build();
        m.identity_token(&p).unwrap();
        assert!(m.cached_tokens() <= 32, "{}", m.cached_tokens());
    }
}

#[test]
fn configuration_is_validated() {
    let ring = Arc::new(KeyRing::new(ed25519()));
    let check = |config: MinterConfig| TokenMinter::with_config(ring.clone(), config).err();
    assert_eq!(check(MinterConfig::new()), None);
    assert_eq!(MinterConfig::new(), MinterConfig::default());
    assert_eq!(
        check(MinterConfig::new().identity_lifetime(Duration::from_secs(300))),
        None
    );
    let secs = Duration::from_secs;
    for (bad, expected) in [
        (
            MinterConfig::new().identity_lifetime(secs(301)),
            ConfigError::LifetimeTooLong,
        ),
        (
            MinterConfig::new().sandbox_lifetime(secs(3600)),
            ConfigError::LifetimeTooLong,
        ),
        (
            MinterConfig::new().identity_lifetime(Duration::ZERO),
            ConfigError::LifetimeTooShort,
        ),
        (
            MinterConfig::new().refresh_margin(secs(30)),
            ConfigError::RefreshMarginTooLong,
        ),
        (MinterConfig::new().issuer(""), ConfigError::EmptyIssuer),
        (
            MinterConfig::new().identity_audience(""),
            ConfigError::EmptyAudience,
        ),
    ] {
        assert_eq!(check(bad), Some(expected), "{expected}");
    }
    // Without a cache the margin does not matter.
    assert_eq!(
        check(
            MinterConfig::new()
                .cache_capacity(0)
                .refresh_margin(secs(60))
        ),
        None
    );
}

#[tokio::test]
async fn configured_claims_reach_the_token() {
    let clock = ManualClock::new(NOW);
    let ring = Arc::new(KeyRing::new(ed25519()));
    let config = MinterConfig::new()
        .issuer("router-eu")
        .identity_audience("wm-eu")
        .identity_lifetime(Duration::from_secs(20))
        .sandbox_lifetime(Duration::from_secs(40));
    let m = TokenMinter::with_config(ring.clone(), config)
        .unwrap()
        .with_clock(clock.clone());
    let identity = m.identity_token(&alice()).unwrap();
    assert_eq!(identity.expires_at() - identity.issued_at(), 20);
    let sandbox = m.sandbox_token(&alice(), "s1").unwrap();
    assert_eq!(sandbox.expires_at() - sandbox.issued_at(), 40);
    let v = IdentityVerifier::with_config(
        ring,
        agentcube_identity::VerifierConfig::new()
            .issuer("router-eu")
            .identity_audience("wm-eu"),
    )
    .unwrap()
    .with_clock(clock);
    let who = v.verify(identity.as_str()).await.unwrap();
    assert_eq!(who.issuer(), "router-eu");
}

#[test]
fn concurrent_minting_is_consistent() {
    let clock = ManualClock::new(NOW);
    let m = Arc::new(minter(&clock));
    let first = m.identity_token(&alice()).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| {
                        let sid = format!("s{}", i % 7);
                        let _ = m.sandbox_token(&alice(), &sid).unwrap();
                        m.identity_token(&alice()).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for t in h.join().unwrap() {
            assert!(t.same_token(&first));
        }
    }
}

//! The verifiers' verified-token cache: a token seen again is answered from the cache (one key
//! lookup, no signature check) for as long as it is inside its time window and its key is still
//! the key source's; each verifier's rules, the session binding among them, hold on a hit.
//!
//! Time is a `ManualClock`; nothing sleeps.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // test helpers

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentcube_auth_core::jose::{Algorithm, KeySource, VerificationKey};
use agentcube_auth_core::{AuthError, ManualClock, TokenVerifier};
use agentcube_identity::{
    IdentityVerifier, KeyRing, ReplayGuard, SandboxVerifier, SessionBinding, SigningKey,
    TokenMinter, VerifierConfig, sandbox_session,
};
use common::*;

/// A key source that counts its lookups: one per verification, whether the token is verified
/// in full or answered from the cache (where the lookup is the check that the key is still
/// there).
struct Counting<K> {
    inner: K,
    lookups: AtomicUsize,
}

impl<K> Counting<K> {
    fn new(inner: K) -> Arc<Self> {
        Arc::new(Self {
            inner,
            lookups: AtomicUsize::new(0),
        })
    }

    fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

impl<K: KeySource> KeySource for Counting<K> {
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.key_for(kid, alg)
    }

    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }
}

type Keys = Arc<Counting<Arc<KeyRing>>>;

fn identity_verifier(s: &Setup<()>) -> IdentityVerifier<Keys> {
    IdentityVerifier::new(Counting::new(s.ring.clone())).with_clock(s.clock.clone())
}

fn sandbox_verifier(s: &Setup<()>, binding: SessionBinding) -> SandboxVerifier<Keys> {
    SandboxVerifier::new(Counting::new(s.ring.clone()), binding)
        .unwrap()
        .with_clock(s.clock.clone())
}

fn setup() -> Setup<()> {
    setup_with(|_, _| ())
}

#[tokio::test]
async fn a_repeated_token_is_answered_from_the_cache_with_the_same_verified_data() {
    let s = setup();
    let v = identity_verifier(&s);
    let token = s.minter.identity_token(&alice()).unwrap();

    let first = v.verify(token.as_str()).await.unwrap();
    assert!(!first.from_cache());
    assert_eq!((v.keys().lookups(), v.cached_tokens()), (1, 1));

    let second = v.verify(token.as_str()).await.unwrap();
    assert!(second.from_cache(), "the second use is a cache hit");
    // One key lookup (the check that the key is still there), and nothing new cached.
    assert_eq!((v.keys().lookups(), v.cached_tokens()), (2, 1));
    assert_eq!(second.subject(), first.subject());
    assert_eq!(second.email(), first.email());
    assert_eq!(second.idp_issuer(), first.idp_issuer());
    assert_eq!(second.roles(), first.roles());
    assert_eq!(second.issuer(), first.issuer());
    assert_eq!(
        (second.kid(), second.algorithm(), second.jwt_id()),
        (first.kid(), first.algorithm(), first.jwt_id())
    );
    assert_eq!(
        (second.issued_at(), second.expires_at()),
        (first.issued_at(), first.expires_at())
    );
    assert_eq!(second.claims(), first.claims());
    let (p1, p2) = (first.to_principal(), second.to_principal());
    assert_eq!(
        (p2.issuer(), p2.subject(), p2.email(), p2.roles()),
        (p1.issuer(), p1.subject(), p1.email(), p1.roles())
    );
    assert!(format!("{second:?}").contains("from_cache: true"));

    // Through the `TokenVerifier` seam (what an `AuthLayer` calls): a hit as well.
    let principal = TokenVerifier::verify(&v, token.as_str()).await.unwrap();
    assert_eq!(principal.subject(), "alice-id");
    assert_eq!(v.keys().lookups(), 3);
    assert_eq!(v.cached_tokens(), 1);

    // Another token is a miss, verified in full and cached beside the first.
    let other = s.minter.mint_identity(&alice()).unwrap();
    assert!(!v.verify(other.as_str()).await.unwrap().from_cache());
    assert!(v.verify(other.as_str()).await.unwrap().from_cache());
    assert_eq!(v.cached_tokens(), 2);
}

#[tokio::test]
async fn an_entry_is_served_only_inside_the_tokens_time_window() {
    let s = setup();
    let v = identity_verifier(&s);
    let token = s.minter.identity_token(&alice()).unwrap();
    assert_eq!(token.expires_at(), NOW + 30);
    v.verify(token.as_str()).await.unwrap();

    // Up to exp + leeway (5 s) the cached answer stands, as a full verification would.
    s.clock.set(NOW + 35);
    assert!(v.verify(token.as_str()).await.unwrap().from_cache());
    // One second later the token is expired: not served, and the entry is dropped.
    s.clock.set(NOW + 36);
    assert_eq!(code(v.verify(token.as_str()).await), "expired");
    assert_eq!(v.cached_tokens(), 0);
    // Back inside the window, the token is verified in full again (the entry is gone).
    s.clock.set(NOW);
    assert!(!v.verify(token.as_str()).await.unwrap().from_cache());

    // The other edge: a clock that reads earlier than `iat - leeway` (a reset, a verifier whose
    // clock was wrong) does not get the cached answer either.
    assert!(v.verify(token.as_str()).await.unwrap().from_cache());
    s.clock.set(NOW - 6);
    assert_eq!(code(v.verify(token.as_str()).await), "issued_in_future");
    assert_eq!(v.cached_tokens(), 0);
}

#[tokio::test]
async fn entries_of_a_key_that_left_the_key_source_are_not_served() {
    let s = setup();
    let v = identity_verifier(&s);
    let old = s.minter.identity_token(&alice()).unwrap();
    v.verify(old.as_str()).await.unwrap();

    // A rotation keeps the old key for verification: the ring is rebuilt (a new key object),
    // but the key material is the same, so the entry is still served.
    let previous = s.ring.rotate(ed25519()).unwrap();
    assert_eq!(previous, s.key.kid());
    assert!(v.verify(old.as_str()).await.unwrap().from_cache());

    // The old key removed: its tokens are refused at once, cached or not.
    assert!(s.ring.remove(&previous).unwrap());
    assert_eq!(code(v.verify(old.as_str()).await), "unknown_kid");
    assert_eq!(v.cached_tokens(), 0);
    assert_eq!(code(v.verify(old.as_str()).await), "unknown_kid");

    // Tokens of the new key are cached as before.
    let new = s.minter.identity_token(&alice()).unwrap();
    assert!(!v.verify(new.as_str()).await.unwrap().from_cache());
    assert!(v.verify(new.as_str()).await.unwrap().from_cache());
}

#[tokio::test]
async fn an_entry_is_not_served_when_its_kid_names_other_key_material() {
    // A workload manager's verify-only ring of the Router's published key.
    let router = ed25519();
    let clock = ManualClock::new(NOW);
    let minter = TokenMinter::new(Arc::new(KeyRing::new(
        SigningKey::from_pkcs8_der(router.to_pkcs8_der().unwrap().expose_secret()).unwrap(),
    )))
    .with_clock(clock.clone());
    let ring = Arc::new(KeyRing::verify_only([router.public_jwk().clone()]).unwrap());
    let v = IdentityVerifier::new(Counting::new(ring.clone())).with_clock(clock);
    let token = minter.identity_token(&alice()).unwrap();
    v.verify(token.as_str()).await.unwrap();
    assert!(v.verify(token.as_str()).await.unwrap().from_cache());

    // The same kid now published for another key: the cached answer was made with a key the
    // source no longer returns, so the token is checked against the current one, and fails.
    let impostor = ed25519().with_kid(router.kid());
    ring.add_verification_key(impostor.public_jwk().clone())
        .unwrap();
    assert_eq!(ring.kids(), [router.kid()]);
    assert_eq!(code(v.verify(token.as_str()).await), "invalid_signature");
    assert_eq!(v.cached_tokens(), 0);
}

#[tokio::test]
async fn a_cached_token_still_meets_its_verifiers_session_binding() {
    let s = setup();
    // Each verifier owns its cache, and only tokens that passed its own checks (the binding
    // among them) get into it: a per-session verifier never answers from another's entries.
    let sandbox_a = sandbox_verifier(&s, SessionBinding::session("sess-a"));
    let sandbox_b = sandbox_verifier(&s, SessionBinding::session("sess-b"));
    let for_a = s.minter.sandbox_token(&alice(), "sess-a").unwrap();
    let for_b = s.minter.sandbox_token(&alice(), "sess-b").unwrap();

    let got = sandbox_a.verify(for_a.as_str()).await.unwrap();
    assert_eq!((got.session_id(), got.from_cache()), ("sess-a", false));
    let got = sandbox_a.verify(for_a.as_str()).await.unwrap();
    assert_eq!((got.session_id(), got.from_cache()), ("sess-a", true));
    // Session A's token (cached by A's verifier) at session B's sandbox, twice: refused both
    // times, and never cached there.
    for _ in 0..2 {
        assert_eq!(
            code(sandbox_b.verify(for_a.as_str()).await),
            "audience_mismatch"
        );
    }
    assert_eq!(sandbox_b.cached_tokens(), 0);
    // And the other way round.
    sandbox_b.verify(for_b.as_str()).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            code(sandbox_a.verify(for_b.as_str()).await),
            "audience_mismatch"
        );
    }
    assert_eq!(
        (sandbox_a.cached_tokens(), sandbox_b.cached_tokens()),
        (1, 1)
    );

    // A shared development sandbox caches tokens of any session and reports, on a hit too, the
    // session each one is for (which its handlers compare with the request's).
    let shared = sandbox_verifier(&s, SessionBinding::AnySession);
    for (token, session) in [(&for_a, "sess-a"), (&for_b, "sess-b")] {
        assert!(!shared.verify(token.as_str()).await.unwrap().from_cache());
        let hit = shared.verify(token.as_str()).await.unwrap();
        assert_eq!((hit.session_id(), hit.from_cache()), (session, true));
        let principal = TokenVerifier::verify(&shared, token.as_str())
            .await
            .unwrap();
        assert_eq!(sandbox_session(&principal), Some(session));
    }

    // An identity verifier does not accept a sandbox token, however often it is shown.
    let identity = identity_verifier(&s);
    for _ in 0..2 {
        assert_eq!(
            code(identity.verify(for_a.as_str()).await),
            "token_type_mismatch"
        );
    }
}

#[tokio::test]
async fn a_replay_guard_sees_every_use_cached_or_not() {
    let s = setup();
    let guard = Arc::new(ReplayGuard::new(100));
    let v = identity_verifier(&s).with_replay_guard(Arc::clone(&guard));
    let token = s.minter.mint_identity(&alice()).unwrap();
    assert!(!v.verify(token.as_str()).await.unwrap().from_cache());
    // The token is cached, but its second use is still a replay.
    assert_eq!(v.cached_tokens(), 1);
    for _ in 0..2 {
        assert_eq!(code(v.verify(token.as_str()).await), "token_replayed");
    }
    assert_eq!(guard.len(), 1);
    // A verifier sharing the guard (with its own, empty cache) refuses it too.
    let other = identity_verifier(&s).with_replay_guard(guard);
    assert_eq!(code(other.verify(token.as_str()).await), "token_replayed");
    // Past exp + leeway it is expired, not replayed.
    s.clock.advance(36);
    assert_eq!(code(v.verify(token.as_str()).await), "expired");
}

#[tokio::test]
async fn the_cache_is_bounded_and_can_be_turned_off() {
    let s = setup();
    assert_eq!(
        VerifierConfig::new(),
        VerifierConfig::new().cache_capacity(VerifierConfig::DEFAULT_CACHE_CAPACITY)
    );

    let small = IdentityVerifier::with_config(
        Counting::new(s.ring.clone()),
        VerifierConfig::new().cache_capacity(3),
    )
    .unwrap()
    .with_clock(s.clock.clone());
    for _ in 0..20 {
        let token = s.minter.mint_identity(&alice()).unwrap();
        small.verify(token.as_str()).await.unwrap();
    }
    assert!(small.cached_tokens() <= 3, "{}", small.cached_tokens());

    let off = IdentityVerifier::with_config(
        Counting::new(s.ring.clone()),
        VerifierConfig::new().cache_capacity(0),
    )
    .unwrap()
    .with_clock(s.clock.clone());
    let token = s.minter.identity_token(&alice()).unwrap();
    for _ in 0..3 {
        assert!(!off.verify(token.as_str()).await.unwrap().from_cache());
    }
    assert_eq!((off.cached_tokens(), off.keys().lookups()), (0, 3));
    assert!(format!("{off:?}").contains("cache: false"));
}

#[tokio::test]
async fn rejected_tokens_are_not_cached_and_oversized_ones_are_refused_as_before() {
    let s = setup();
    let v = identity_verifier(&s);
    let bad = sign(
        &s.key,
        agentcube_identity::IDENTITY_TOKEN_TYPE,
        with(
            identity_claims(),
            serde_json::json!({"aud": "someone-else"}),
        ),
    );
    for _ in 0..2 {
        assert_eq!(code(v.verify(&bad).await), "audience_mismatch");
    }
    assert_eq!(v.cached_tokens(), 0);

    let small = IdentityVerifier::with_config(
        Counting::new(s.ring.clone()),
        VerifierConfig::new().max_token_bytes(64),
    )
    .unwrap();
    let token = s.minter.identity_token(&alice()).unwrap();
    for _ in 0..2 {
        assert_eq!(code(small.verify(token.as_str()).await), "token_too_large");
    }
    assert_eq!((small.cached_tokens(), small.keys().lookups()), (0, 0));
}

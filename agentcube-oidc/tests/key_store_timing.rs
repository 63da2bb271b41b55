//! Key-store timing on paused tokio time: how fast a store that never loaded keys becomes ready
//! when its issuer comes up late, what a flood costs meanwhile, and when an unknown `kid` may
//! refresh a loaded key set (rotation against the cooldown).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use agentcube_auth_core::jose::Algorithm;
use agentcube_auth_core::{AuthError, ErrorCode, KeysUnavailableReason};
use agentcube_oidc::test_util::{MockIssuer, TestKey};
use agentcube_oidc::{CacheConfig, KeyStoreConfig, OidcVerifier, RemoteKeySet};
use agentcube_testkit::net::ClosedPort;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::join_all;
use serde_json::Value;

use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const COOLDOWN: Duration = Duration::from_secs(30);

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn store() -> KeyStoreConfig {
    // Timeouts off: on paused time a pending timeout would fire while the request waits on
    // real I/O.
    KeyStoreConfig::new().timeouts(None, None)
}

fn uncached(idp: &MockIssuer) -> OidcVerifier {
    OidcVerifier::new(idp.config().cache(CacheConfig::disabled())).unwrap()
}

/// A token with `kid` and a garbage signature: what a flooding attacker sends.
fn forged(idp: &MockIssuer, kid: &str) -> String {
    let t = idp.token().kid(kid);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(t.header_json().to_string()),
        URL_SAFE_NO_PAD.encode(t.claims_json().to_string()),
        URL_SAFE_NO_PAD.encode([7u8; 256])
    )
}

/// Waits (in real time, without moving the paused clock) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Awaits `fut` without letting the paused clock auto-advance while it waits on real I/O: with a
/// background refresh task sleeping, an idle runtime would jump to that task's wake-up time.
async fn busy<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(out),
        Poll::Pending => {
            std::thread::sleep(Duration::from_micros(100));
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Moves paused time on by `step`, then lets the tasks it woke run, real loopback I/O
/// included, for a few real milliseconds before time moves again. (Busy-yielding keeps the
/// runtime from auto-advancing the clock meanwhile.)
async fn tick(step: Duration) {
    tokio::time::advance(step).await;
    let until = std::time::Instant::now() + Duration::from_millis(3);
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// A loopback port that refuses connections (bound, not listening) until
/// [`listen`](Self::listen): an issuer that has not started yet, at a fixed address.
struct LatePort(ClosedPort);

impl LatePort {
    fn new() -> Self {
        Self(ClosedPort::bind())
    }

    fn jwks_url(&self) -> String {
        format!("{}/jwks", self.0.url())
    }

    /// Starts listening and serves `jwks` at [`jwks_url`](Self::jwks_url).
    async fn listen(self, jwks: Value) -> MockServer {
        let listener = self.0.listen().into_std().unwrap();
        let server = MockServer::builder().listener(listener).start().await;
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks))
            .mount(&server)
            .await;
        server
    }
}

#[tokio::test(start_paused = true)]
async fn background_refresh_is_ready_soon_after_a_late_issuer_listens() {
    // Started together: the store's issuer (here the Router's JWKS endpoint) listens 1 s later.
    let key = TestKey::generate(Algorithm::EdDSA);
    let port = LatePort::new();
    let keys = RemoteKeySet::from_jwks_url(&port.jwks_url(), store()).unwrap();
    let start = Instant::now();
    let _task = keys.spawn_background_refresh();
    eventually("first attempt", || keys.stats().fetches_failed == 1).await;
    assert!(matches!(
        keys.stats().last_error,
        Some(agentcube_oidc::FetchError::Transport { .. })
    ));
    while start.elapsed() < Duration::from_secs(1) {
        tick(ms(10)).await;
    }
    // Connection refused at 0, 0.1, 0.3 and 0.7 s: retried after 100 ms, doubling.
    let refused = keys.stats().fetches_failed;
    assert!(
        (3..=4).contains(&refused),
        "{refused} attempts in the first second"
    );
    assert!(!keys.is_ready());

    let _server = port.listen(agentcube_oidc::test_util::jwks([&key])).await;
    let listening = Instant::now();
    while !keys.is_ready() {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "not ready {:?} after start",
            start.elapsed()
        );
        tick(ms(10)).await;
    }
    let ready_after = listening.elapsed();
    eprintln!(
        "ready {:?} after start, {ready_after:?} after the issuer listened; {refused} refused attempts",
        start.elapsed()
    );
    // The next step after 0.7 s is 1.5 s: half a second after the issuer listened.
    assert!(
        ready_after <= ms(700),
        "ready {ready_after:?} after listening"
    );
    let stats = keys.stats();
    assert_eq!(stats.fetches_ok, 1);
    assert_eq!(stats.last_error, None);
    assert_eq!(stats.fetches_failed, refused);
}

#[tokio::test(start_paused = true)]
async fn a_flood_while_nothing_is_loaded_costs_one_fetch_per_backoff_step() {
    let idp = MockIssuer::start().await;
    idp.fail(true);
    let v = uncached(&idp);
    let token = idp.token().sign();
    let start = Instant::now();
    // 1,000 requests over the first second, ten concurrent ones every 10 ms.
    for _ in 0..100 {
        for r in join_all((0..10).map(|_| v.verify(&token))).await {
            let err = r.unwrap_err();
            assert_eq!(
                err,
                AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded)
            );
            assert_eq!(err.http_status(), 503);
        }
        tokio::time::advance(ms(10)).await;
    }
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    // Attempts at 0, 0.1, 0.3 and 0.7 s; each is a (failed) discovery request.
    assert_eq!(
        (idp.discovery_fetches(), idp.jwks_fetches()),
        (4, 0),
        "one fetch per backoff step"
    );
    let stats = v.stats().keys;
    assert_eq!(stats.fetches_failed, 4);
    assert_eq!(
        stats.refreshes_suppressed + stats.refreshes_shared,
        1_000 - 4
    );

    // The issuer comes up at 1 s; requests keep coming every 10 ms.
    idp.fail(false);
    while let Err(err) = v.verify(&token).await {
        assert_eq!(err.code(), ErrorCode::KeysUnavailable);
        assert!(start.elapsed() < Duration::from_secs(2));
        tokio::time::advance(ms(10)).await;
    }
    // The step after 0.7 s: 1.5 s.
    assert_eq!(start.elapsed(), ms(1_500));
    assert!(v.is_ready());
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (5, 1));
}

#[tokio::test(start_paused = true)]
async fn while_nothing_is_loaded_the_retry_delay_doubles_up_to_the_cooldown() {
    let idp = MockIssuer::start().await;
    idp.fail(true);
    let v = uncached(&idp);
    let token = idp.token().sign();
    let start = Instant::now();
    let mut attempts = Vec::new();
    // Two minutes of one request every 100 ms against an issuer that is down.
    while start.elapsed() < Duration::from_secs(120) {
        let before = idp.discovery_fetches();
        assert_eq!(
            v.verify(&token).await.unwrap_err().code(),
            ErrorCode::KeysUnavailable
        );
        if idp.discovery_fetches() > before {
            attempts.push(start.elapsed().as_millis());
        }
        tokio::time::advance(ms(100)).await;
    }
    assert_eq!(
        attempts,
        [
            0, 100, 300, 700, 1_500, 3_100, 6_300, 12_700, 25_500, 51_100, 81_100, 111_100
        ],
        "100 ms doubling, then once per cooldown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_published_right_after_the_initial_fetch_is_picked_up_at_once() {
    let idp = MockIssuer::start().await;
    let v = uncached(&idp);
    v.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);

    // The issuer publishes a key and signs with it one second after our initial fetch.
    tokio::time::advance(Duration::from_secs(1)).await;
    let new_key = idp.rotate();
    let token = idp.token().sign();
    let verified = v.verify_with_details(&token).await.unwrap();
    assert_eq!(verified.kid.as_deref(), Some(new_key.kid()));
    assert_eq!(idp.jwks_fetches(), 2, "exactly one extra fetch");

    // That refresh started the cooldown: a flood of forged kids costs nothing within it, and at
    // most one fetch per cooldown after it.
    let attack: Vec<String> = (0..10_000)
        .map(|i| forged(&idp, &format!("kid-{i}")))
        .collect();
    for round in 0..=3 {
        if round > 0 {
            tokio::time::advance(COOLDOWN).await;
        }
        for chunk in attack.chunks(1_000) {
            for r in join_all(chunk.iter().map(|t| v.verify(t))).await {
                assert_eq!(r.unwrap_err().code(), ErrorCode::UnknownKid);
            }
            v.verify(&token).await.unwrap();
        }
        assert_eq!(idp.jwks_fetches(), 2 + round, "round {round}");
    }
    let stats = v.stats();
    assert_eq!(stats.rejected(ErrorCode::UnknownKid), 40_000);
    assert_eq!(
        stats.keys.refreshes_suppressed + stats.keys.refreshes_shared,
        40_000 - 3
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_published_right_after_a_background_refresh_is_picked_up_at_once() {
    let idp = MockIssuer::start().await;
    let v = uncached(&idp);
    let _task = v.spawn_background_refresh().unwrap();
    eventually("initial fetch", || v.is_ready()).await;
    assert_eq!(idp.jwks_fetches(), 1);

    // An unknown kid at 100 s refreshes (the first after the initial fetch) and starts the
    // cooldown; the next background refresh is due 5 min after it, at 400 s.
    tokio::time::advance(Duration::from_secs(100)).await;
    assert_eq!(
        busy(v.verify(&forged(&idp, "nope")))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::UnknownKid
    );
    assert_eq!(idp.jwks_fetches(), 2);
    tokio::time::advance(Duration::from_secs(300)).await;
    eventually("background refresh", || v.stats().keys.fetches_ok == 3).await;
    assert_eq!(idp.jwks_fetches(), 3);

    // One second after the background refresh the issuer rotates: the first token with the
    // new kid refreshes at once.
    tokio::time::advance(Duration::from_secs(1)).await;
    let new_key = idp.rotate();
    let token = idp.token().sign();
    let verified = busy(v.verify_with_details(&token)).await.unwrap();
    assert_eq!(verified.kid.as_deref(), Some(new_key.kid()));
    assert_eq!(idp.jwks_fetches(), 4);
    // ...and starts the cooldown again.
    tokio::time::advance(COOLDOWN - Duration::from_secs(1)).await;
    assert_eq!(
        busy(v.verify(&forged(&idp, "nope")))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::UnknownKid
    );
    assert_eq!(idp.jwks_fetches(), 4);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        busy(v.verify(&forged(&idp, "nope")))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::UnknownKid
    );
    assert_eq!(idp.jwks_fetches(), 5);
}

#[tokio::test(start_paused = true)]
async fn once_keys_were_loaded_a_failing_issuer_is_asked_at_most_once_per_cooldown() {
    let idp = MockIssuer::start().await;
    let v = uncached(&idp);
    let good = idp.token().sign();
    v.verify(&good).await.unwrap();
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));
    idp.fail(true);
    let fetches = || idp.discovery_fetches() + idp.jwks_fetches();

    // The first unknown kid after the initial fetch asks the issuer, which fails; the loaded set
    // stays in use (stale-if-error) and answers `unknown_kid`.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        v.verify(&forged(&idp, "kid-0")).await.unwrap_err().code(),
        ErrorCode::UnknownKid
    );
    assert_eq!(fetches(), 3);
    assert_eq!(v.stats().keys.fetches_failed, 1);

    // No short start-up backoff now: 1,000 unknown kids over the next 29 s cost nothing.
    for i in 1..=1_000 {
        tokio::time::advance(ms(29)).await;
        assert_eq!(
            v.verify(&forged(&idp, &format!("kid-{i}")))
                .await
                .unwrap_err()
                .code(),
            ErrorCode::UnknownKid
        );
    }
    assert_eq!(fetches(), 3);
    v.verify(&good).await.unwrap();

    // One cooldown after the failure: one more attempt (a rediscovery, since the JWKS fetch
    // failed), failing again.
    tokio::time::advance(Duration::from_secs(1)).await;
    for _ in 0..100 {
        assert_eq!(
            v.verify(&forged(&idp, "kid-x")).await.unwrap_err().code(),
            ErrorCode::UnknownKid
        );
    }
    assert_eq!(fetches(), 4);
    assert_eq!(v.stats().keys.fetches_failed, 2);
    assert!(v.is_ready());
}

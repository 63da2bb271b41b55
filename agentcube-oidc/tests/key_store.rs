//! Key-store behaviour against a counting mock issuer, on paused tokio time where timing matters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, KeySource};
use agentcube_auth_core::{AuthError, ErrorCode, KeysUnavailableReason};
use agentcube_oidc::test_util::{MockIssuer, TestKey, TokenBuilder};
use agentcube_oidc::{
    CacheConfig, FetchError, KeyStoreConfig, OidcConfig, OidcVerifier, RefreshOutcome, RemoteKeySet,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::future::join_all;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const COOLDOWN: Duration = Duration::from_secs(30);

fn store() -> KeyStoreConfig {
    // Timeouts off: on paused time a pending timeout would fire while the request waits on
    // real I/O. The mock always answers.
    KeyStoreConfig::new().timeouts(None, None)
}

fn uncached(idp: &MockIssuer) -> OidcVerifier {
    OidcVerifier::new(idp.config().cache(CacheConfig::disabled())).unwrap()
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

/// Lets spawned tasks run without moving the paused clock.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
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

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_misses_for_a_new_kid_share_one_fetch() {
    let idp = MockIssuer::start().await;
    let v = uncached(&idp);
    v.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);

    // Right after the initial fetch: the first unknown kid may refresh at once.
    tokio::time::advance(Duration::from_secs(1)).await;
    idp.rotate();
    let token = idp.token().sign();
    let results = join_all((0..1000).map(|_| v.verify(&token))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        idp.jwks_fetches(),
        2,
        "one fetch for 1,000 concurrent misses"
    );
    let stats = v.stats().keys;
    assert_eq!(stats.fetches_ok, 2);
    assert_eq!(stats.refreshes_suppressed, 0);
    assert!(stats.refreshes_shared >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_on_many_threads_share_one_fetch() {
    let idp = MockIssuer::start().await;
    // No cooldown: only single-flight stands between the misses and the issuer.
    let v = OidcVerifier::new(
        idp.config()
            .cache(CacheConfig::disabled())
            .key_store(store().refresh_cooldown(Duration::ZERO)),
    )
    .unwrap();
    let token = idp.token().sign();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let v = v.clone();
            let token = token.clone();
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(idp.discovery_fetches(), 1);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_unknown_kids_cost_at_most_one_fetch_per_cooldown() {
    let idp = MockIssuer::start().await;
    let v = idp.verifier();
    let valid = idp.token().sign();
    v.verify(&valid).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);
    let attack: Vec<String> = (0..10_000)
        .map(|i| forged(&idp, &format!("kid-{i}")))
        .collect();

    // The warm-up fetch does not start the cooldown (a rotation right after it must be picked
    // up), so the first unknown kid refreshes once; that refresh starts the cooldown, within
    // which the fresh set is authoritative.
    for chunk in attack.chunks(2_000) {
        for r in join_all(chunk.iter().map(|t| v.verify(t))).await {
            assert_eq!(r.unwrap_err().code(), ErrorCode::UnknownKid);
        }
    }
    assert_eq!(idp.jwks_fetches(), 2);

    for round in 1..=3 {
        tokio::time::advance(COOLDOWN + Duration::from_secs(1)).await;
        for chunk in attack.chunks(1_000) {
            for r in join_all(chunk.iter().map(|t| v.verify(t))).await {
                assert_eq!(r.unwrap_err().code(), ErrorCode::UnknownKid);
            }
            // Valid tokens are unaffected: cached, and freshly minted ones too.
            v.verify(&valid).await.unwrap();
            v.verify(&idp.token().sign()).await.unwrap();
        }
        assert_eq!(idp.jwks_fetches(), 2 + round, "round {round}");
    }
    let stats = v.stats();
    // Every miss but the four that fetched was either suppressed or joined a flight.
    assert_eq!(
        stats.keys.refreshes_suppressed + stats.keys.refreshes_shared,
        40_000 - 4
    );
    assert_eq!(stats.rejected(ErrorCode::UnknownKid), 40_000);
}

#[tokio::test(start_paused = true)]
async fn idp_down_at_start_answers_503_then_recovers() {
    let idp = MockIssuer::start().await;
    idp.fail(true);
    let v = uncached(&idp);
    assert!(!v.is_ready());
    let token = idp.token().sign();
    let err = v.verify(&token).await.unwrap_err();
    assert_eq!(
        err,
        AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded)
    );
    assert_eq!(err.http_status(), 503);
    assert_eq!(idp.discovery_fetches(), 1);
    // Nothing loaded yet: the next attempt is allowed 100 ms after the failed one, not sooner.
    for _ in 0..100 {
        assert_eq!(
            v.verify(&token).await.unwrap_err().code(),
            ErrorCode::KeysUnavailable
        );
    }
    tokio::time::advance(Duration::from_millis(99)).await;
    assert_eq!(
        v.verify(&token).await.unwrap_err().code(),
        ErrorCode::KeysUnavailable
    );
    assert_eq!(idp.discovery_fetches(), 1);
    let stats = v.stats().keys;
    assert!(!stats.ready);
    assert_eq!(stats.fetches_failed, 1);
    assert_eq!(stats.refreshes_suppressed, 101);
    assert!(matches!(
        stats.last_error,
        Some(FetchError::Status { status: 503, .. })
    ));

    idp.fail(false);
    tokio::time::advance(Duration::from_millis(1)).await;
    v.verify(&token).await.unwrap();
    assert!(v.is_ready());
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (2, 1));
    assert_eq!(v.stats().keys.last_error, None);
}

#[tokio::test(start_paused = true)]
async fn background_refresh_retries_an_unreachable_idp_after_a_short_backoff() {
    let idp = MockIssuer::start().await;
    idp.fail(true);
    let v = uncached(&idp);
    let task = v.spawn_background_refresh().unwrap();
    eventually("first attempt", || v.stats().keys.fetches_failed == 1).await;
    settle().await;
    assert_eq!(idp.discovery_fetches(), 1);
    tokio::time::advance(Duration::from_millis(100)).await;
    eventually("second attempt", || v.stats().keys.fetches_failed == 2).await;
    settle().await;
    assert_eq!(idp.discovery_fetches(), 2);
    idp.fail(false);
    // The third attempt is due 200 ms after the second.
    tokio::time::advance(Duration::from_millis(199)).await;
    settle().await;
    assert!(!v.is_ready());
    assert_eq!(idp.discovery_fetches(), 2);
    tokio::time::advance(Duration::from_millis(1)).await;
    eventually("recovery", || v.is_ready()).await;
    v.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);
    drop(v);
    tokio::time::advance(Duration::from_secs(3600)).await;
    eventually("task ends with the verifier", || task.is_finished()).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_idp_after_warm_up_keeps_cached_keys_until_max_staleness() {
    let idp = MockIssuer::start().await;
    let v = OidcVerifier::new(
        idp.config()
            .key_store(store().max_staleness(Duration::from_secs(600))),
    )
    .unwrap();
    let cached = idp.token().sign();
    v.verify(&cached).await.unwrap();
    idp.fail(true);

    // Past the refresh interval (5 min): keys keep working; the due refresh fails quietly.
    tokio::time::advance(Duration::from_secs(400)).await;
    v.verify(&idp.token().sign()).await.unwrap();
    v.verify(&cached).await.unwrap();
    eventually("the due refresh ran", || v.stats().keys.fetches_failed >= 1).await;
    assert!(v.is_ready());
    v.verify(&idp.token().sign()).await.unwrap();

    // Past the maximum staleness: 503, for cached tokens too.
    tokio::time::advance(Duration::from_secs(201)).await;
    assert!(!v.is_ready());
    assert_eq!(
        v.verify(&cached).await.unwrap_err(),
        AuthError::KeysUnavailable(KeysUnavailableReason::TooStale)
    );
    assert_eq!(
        v.verify(&idp.token().sign()).await.unwrap_err(),
        AuthError::KeysUnavailable(KeysUnavailableReason::TooStale)
    );

    // The issuer comes back: the next request after the cooldown refreshes.
    idp.fail(false);
    tokio::time::advance(COOLDOWN + Duration::from_secs(1)).await;
    v.verify(&cached).await.unwrap();
    assert!(v.is_ready());
}

#[tokio::test(start_paused = true)]
async fn genuine_rotation_costs_one_fetch_and_old_tokens_live_until_their_key_leaves() {
    let idp = MockIssuer::start().await;
    let v = idp.verifier();
    let old_key = idp.signing_key();
    let old = idp.token().sign();
    v.verify(&old).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);

    tokio::time::advance(Duration::from_secs(60)).await;
    let new_key = idp.rotate();
    let new = idp.token().sign();
    assert_eq!(
        v.verify_with_details(&new).await.unwrap().kid.as_deref(),
        Some(new_key.kid())
    );
    assert_eq!(idp.jwks_fetches(), 2);
    // Old tokens (cached and not) still verify: the old key is still published.
    assert!(v.verify_with_details(&old).await.unwrap().from_cache);
    let old_fresh = idp.token().signed_by(Arc::clone(&old_key)).sign();
    v.verify(&old_fresh).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 2);

    // The issuer withdraws the old key; the next scheduled refresh notices.
    assert!(idp.retire(old_key.kid()));
    tokio::time::advance(Duration::from_secs(301)).await;
    v.verify(&new).await.unwrap(); // schedules the due refresh
    eventually("scheduled refresh", || idp.jwks_fetches() == 3).await;
    eventually("new set stored", || v.stats().keys.fetches_ok == 3).await;
    // The first unknown kid after that scheduled refresh asks once more (it could be a key
    // published since); the cooldown then holds.
    assert_eq!(
        v.verify(&old).await.unwrap_err().code(),
        ErrorCode::UnknownKid
    );
    assert_eq!(idp.jwks_fetches(), 4);
    assert_eq!(
        v.verify(&old_fresh).await.unwrap_err().code(),
        ErrorCode::UnknownKid
    );
    v.verify(&new).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 4, "within the cooldown: no extra fetch");
}

#[tokio::test]
async fn unusable_keys_are_skipped_one_by_one() {
    let idp = MockIssuer::start().await;
    let n1024 = URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
    let n2048 = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
    // Keycloak's RSA-OAEP encryption key.
    idp.publish_raw(json!({"kid": "enc", "kty": "RSA", "alg": "RSA-OAEP", "use": "enc", "n": n2048, "e": "AQAB"}));
    idp.publish_raw(
        json!({"kid": "weak", "kty": "RSA", "alg": "RS256", "use": "sig", "n": n1024, "e": "AQAB"}),
    );
    idp.publish_raw(json!({"kid": "oct", "kty": "oct", "k": "c2VjcmV0"}));
    idp.publish_raw(json!({"kid": "p521", "kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}));
    idp.publish_raw(json!("not an object"));
    idp.publish_raw(
        json!({"kid": "mismatch", "kty": "RSA", "alg": "ES256", "n": n2048, "e": "AQAB"}),
    );
    let v = uncached(&idp);
    assert_eq!(
        v.refresh_keys().await.unwrap(),
        RefreshOutcome::Updated {
            keys: 1,
            skipped: 6
        }
    );
    v.verify(&idp.token().sign()).await.unwrap();
    for kid in ["enc", "weak", "oct", "p521", "mismatch"] {
        let token = idp.token().kid(kid).sign();
        assert_eq!(
            v.verify(&token).await.unwrap_err().code(),
            ErrorCode::UnknownKid,
            "{kid}"
        );
    }
}

#[tokio::test]
async fn unusable_documents_fail_the_fetch_and_keep_the_previous_set() {
    let idp = MockIssuer::start().await;
    let v = uncached(&idp);
    let token = idp.token().sign();
    let bodies: Vec<(ResponseTemplate, &str)> = vec![
        (
            ResponseTemplate::new(200).set_body_string("<html>oops</html>"),
            "invalid_jwks",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"keys": "x"})),
            "invalid_jwks",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!([])),
            "invalid_jwks",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"keys": []})),
            "no_usable_keys",
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!({"keys": [{"kty": "RSA", "use": "enc"}]})),
            "no_usable_keys",
        ),
        (
            ResponseTemplate::new(200).set_body_json(
                json!({"keys": (0..33).map(|_| idp.signing_key().jwk_json()).collect::<Vec<_>>()}),
            ),
            "too_many_keys",
        ),
        (ResponseTemplate::new(404), "http_status"),
        (
            ResponseTemplate::new(200).set_body_bytes(vec![b' '; 20 * 1024 * 1024]),
            "too_large",
        ),
    ];
    // Before any good fetch: each failure leaves the verifier unavailable.
    for (body, expected) in &bodies {
        idp.set_jwks_response(Some(body.clone()));
        let err = v.refresh_keys().await.unwrap_err();
        assert_eq!(err.code(), *expected, "{err}");
        assert_eq!(
            v.verify(&token).await.unwrap_err().code(),
            ErrorCode::KeysUnavailable
        );
    }
    // After a good fetch: failures keep the last good set.
    idp.set_jwks_response(None);
    v.refresh_keys().await.unwrap();
    for (body, expected) in &bodies {
        idp.set_jwks_response(Some(body.clone()));
        assert_eq!(v.refresh_keys().await.unwrap_err().code(), *expected);
        v.verify(&token).await.unwrap();
    }
}

#[tokio::test]
async fn the_size_cap_is_enforced_while_streaming() {
    // A server that streams an endless chunked body (no Content-Length) and counts what it got
    // to send before the client hung up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut request = Vec::new();
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
        }
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        conn.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b' '; 64 * 1024];
        let mut sent = 0usize;
        while sent < 20 * 1024 * 1024 {
            let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if conn.write_all(&frame).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let keys = RemoteKeySet::from_jwks_url(&format!("http://{addr}/jwks"), store()).unwrap();
    let err = keys.refresh_now().await.unwrap_err();
    assert_eq!(err.code(), "too_large", "{err}");
    drop(keys);
    let sent = server.join().unwrap();
    assert!(
        sent < 20 * 1024 * 1024,
        "the client read on after the cap: {sent} bytes sent"
    );
}

#[tokio::test]
async fn redirects_to_another_origin_are_not_followed() {
    let idp = MockIssuer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(idp.jwks()))
        .mount(&elsewhere)
        .await;
    idp.set_jwks_response(Some(
        ResponseTemplate::new(302).insert_header("location", format!("{}/jwks", elsewhere.uri())),
    ));
    let v = uncached(&idp);
    let err = v.refresh_keys().await.unwrap_err();
    assert!(
        matches!(err, FetchError::Status { status: 302, .. }),
        "{err}"
    );
    assert_eq!(elsewhere.received_requests().await.unwrap().len(), 0);
    assert_eq!(
        v.verify(&idp.token().sign()).await.unwrap_err().code(),
        ErrorCode::KeysUnavailable
    );

    // A redirect within the same origin is followed.
    Mock::given(method("GET"))
        .and(path("/old/jwks"))
        .respond_with(ResponseTemplate::new(301).insert_header("location", idp.jwks_url()))
        .mount(idp.server())
        .await;
    idp.set_jwks_response(None);
    let moved =
        OidcVerifier::new(idp.config().jwks_url(format!("{}/old/jwks", idp.uri()))).unwrap();
    moved.verify(&idp.token().sign()).await.unwrap();
}

#[tokio::test]
async fn discovery_rules() {
    let idp = MockIssuer::start().await;
    let doc = |issuer: &str, jwks: Value| json!({"issuer": issuer, "jwks_uri": jwks});
    let cases = [
        (
            doc(&format!("{}/", idp.issuer()), json!(idp.jwks_url())),
            "discovery_issuer_mismatch",
        ),
        (
            doc(&idp.issuer().to_uppercase(), json!(idp.jwks_url())),
            "discovery_issuer_mismatch",
        ),
        (json!({"jwks_uri": idp.jwks_url()}), "invalid_discovery"),
        (doc(idp.issuer(), json!(null)), "invalid_discovery"),
        (doc(idp.issuer(), json!("not a url")), "invalid_discovery"),
        (
            doc(idp.issuer(), json!("ftp://127.0.0.1/certs")),
            "invalid_discovery",
        ),
        (
            doc(idp.issuer(), json!("file:///etc/passwd")),
            "invalid_discovery",
        ),
    ];
    for (body, expected) in cases {
        idp.set_discovery_response(Some(ResponseTemplate::new(200).set_body_json(&body)));
        let v = uncached(&idp);
        let err = v.refresh_keys().await.unwrap_err();
        assert_eq!(err.code(), expected, "{body}");
    }
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "nothing is fetched from a rejected document"
    );
    idp.set_discovery_response(None);
    idp.set_discovery_status(Some(404));
    assert_eq!(
        uncached(&idp).refresh_keys().await.unwrap_err().code(),
        "http_status"
    );
}

#[tokio::test]
async fn an_issuer_reachable_at_another_address() {
    // The issuer's name is a public URL; the service reaches it through an internal address.
    let idp = MockIssuer::start().await;
    let public = "https://keycloak.example.com/realms/agentcube";
    idp.set_discovery_response(Some(
        ResponseTemplate::new(200)
            .set_body_json(json!({"issuer": public, "jwks_uri": idp.jwks_url()})),
    ));
    let v = OidcVerifier::new(
        OidcConfig::new(public)
            .discovery_url(idp.discovery_url())
            .key_store(store()),
    )
    .unwrap();
    let token = TokenBuilder::keycloak(public, idp.signing_key(), idp.clock().now_unix()).sign();
    assert_eq!(v.verify(&token).await.unwrap().issuer(), public);
    // Tokens naming the internal address are another issuer.
    assert_eq!(
        v.verify(&idp.token().sign()).await.unwrap_err().code(),
        ErrorCode::IssuerMismatch
    );
}

#[tokio::test]
async fn etag_and_not_modified() {
    let idp = MockIssuer::start().await;
    idp.set_etag(true);
    let v = uncached(&idp);
    assert!(matches!(
        v.refresh_keys().await.unwrap(),
        RefreshOutcome::Updated { .. }
    ));
    assert_eq!(v.refresh_keys().await.unwrap(), RefreshOutcome::NotModified);
    let requests = idp.server().received_requests().await.unwrap();
    let last = requests.last().unwrap();
    assert!(last.headers.get("if-none-match").is_some());
    v.verify(&idp.token().sign()).await.unwrap();
    // A changed document is a 200 again.
    idp.rotate();
    assert!(matches!(
        v.refresh_keys().await.unwrap(),
        RefreshOutcome::Updated { keys: 2, .. }
    ));
    v.verify(&idp.token().sign()).await.unwrap();
    let stats = v.stats().keys;
    assert_eq!((stats.fetches_ok, stats.fetches_not_modified), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn background_refresh_honours_max_age_within_bounds() {
    let idp = MockIssuer::start().await;
    idp.set_cache_control(Some("public, max-age=600"));
    idp.set_etag(true);
    let v = uncached(&idp);
    let _task = v.spawn_background_refresh().unwrap();
    eventually("initial fetch", || v.is_ready()).await;
    // 90% of max-age: 540 s.
    tokio::time::advance(Duration::from_secs(530)).await;
    settle().await;
    assert_eq!(idp.jwks_fetches(), 1);
    tokio::time::advance(Duration::from_secs(11)).await;
    eventually("refresh at 540 s", || {
        v.stats().keys.fetches_not_modified == 1
    })
    .await;
    assert_eq!(idp.jwks_fetches(), 2);

    // A tiny max-age is clamped up to the minimum interval (60 s).
    idp.set_cache_control(Some("max-age=5"));
    tokio::time::advance(Duration::from_secs(541)).await;
    eventually("refresh", || idp.jwks_fetches() == 3).await;
    eventually("stored", || v.stats().keys.fetches_not_modified == 2).await;
    tokio::time::advance(Duration::from_secs(55)).await;
    settle().await;
    assert_eq!(idp.jwks_fetches(), 3);
    tokio::time::advance(Duration::from_secs(6)).await;
    eventually("clamped refresh at 60 s", || idp.jwks_fetches() == 4).await;
    eventually("stored", || v.stats().keys.fetches_not_modified == 3).await;

    // A huge max-age is clamped down to the maximum interval (15 min).
    idp.set_cache_control(Some("max-age=86400"));
    tokio::time::advance(Duration::from_secs(61)).await;
    eventually("refresh", || v.stats().keys.fetches_not_modified == 4).await;
    tokio::time::advance(Duration::from_secs(899)).await;
    settle().await;
    assert_eq!(idp.jwks_fetches(), 5);
    tokio::time::advance(Duration::from_secs(2)).await;
    eventually("clamped refresh at 15 min", || idp.jwks_fetches() == 6).await;
}

#[tokio::test(start_paused = true)]
async fn a_long_max_age_never_blocks_an_unknown_kid_refresh() {
    let idp = MockIssuer::start().await;
    idp.set_cache_control(Some("max-age=86400"));
    let v = uncached(&idp);
    v.verify(&idp.token().sign()).await.unwrap();
    // A rotation right after the initial fetch refreshes despite a day of max-age...
    idp.rotate();
    v.verify(&idp.token().sign()).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 2);
    // ...a second one within the cooldown of that refresh waits for the cooldown...
    idp.rotate();
    let token = idp.token().sign();
    assert_eq!(
        v.verify(&token).await.unwrap_err().code(),
        ErrorCode::UnknownKid
    );
    assert_eq!(idp.jwks_fetches(), 2);
    // ...and only for the cooldown, not for the max-age.
    tokio::time::advance(COOLDOWN).await;
    v.verify(&token).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_neither_cancels_nor_repeats_the_fetch() {
    let idp = MockIssuer::start().await;
    idp.set_jwks_response(Some(
        ResponseTemplate::new(200)
            .set_body_json(idp.jwks())
            .set_delay(Duration::from_millis(400)),
    ));
    let v = uncached(&idp);
    let token = idp.token().sign();
    // The first caller gives up while the fetch is in flight (a client disconnect).
    let gave_up = tokio::time::timeout(Duration::from_millis(100), v.verify(&token)).await;
    assert!(gave_up.is_err());
    // The next caller joins the same flight instead of starting another.
    v.verify(&token).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test]
async fn remote_key_set_is_a_key_source_for_other_verifiers() {
    let idp = MockIssuer::builder()
        .algorithm(Algorithm::EdDSA)
        .start()
        .await;
    let keys = RemoteKeySet::from_jwks_url(&idp.jwks_url(), store()).unwrap();
    assert!(!KeySource::is_ready(&keys));
    assert!(keys.current().is_empty());
    let kid = idp.signing_key().kid().to_owned();
    let key = keys.key_for(Some(&kid), Algorithm::EdDSA).await.unwrap();
    assert_eq!(key.kid(), Some(kid.as_str()));
    assert!(KeySource::is_ready(&keys));
    assert_eq!(
        keys.key_for(Some(&kid), Algorithm::ES256)
            .await
            .unwrap_err(),
        AuthError::KeyAlgorithmMismatch
    );
    assert!(keys.trusts(&idp.signing_key().thumbprint()));
    let stats = keys.stats();
    assert_eq!(stats.keys, 1);
    assert!(stats.last_success_age.is_some());

    let by_issuer = RemoteKeySet::from_issuer(idp.issuer(), store()).unwrap();
    by_issuer.refresh_now().await.unwrap();
    assert_eq!(idp.discovery_fetches(), 1);
    let _ = TestKey::generate; // keep the import meaningful for readers
    assert!(format!("{by_issuer:?}").contains("RemoteKeySet"));
}

//! `ClientCredentials` and `StaticToken` against wiremock: caching, single-flight, refresh timing
//! at the buffer edges (paused Tokio time), retries, error surfaces, discovery, client auth.
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod wiremock_support;

use wiremock_support::*;

use agentcube_testkit::net::ClosedPort;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentcube_oidc::client::{
    AccessToken, ClientAuthMethod, ClientCredentials, ClientError, HttpConfig, RetryPolicy,
    StaticToken, TokenSource,
};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "s3cr:et/with&chars";

/// Answers `token-1`, `token-2`, … with the given `expires_in` (omitted when `None`).
struct TokenSeq {
    calls: AtomicUsize,
    expires_in: Option<u64>,
    delay: Duration,
}

impl TokenSeq {
    fn new(expires_in: Option<u64>) -> Self {
        Self {
            calls: AtomicUsize::new(0),
            expires_in,
            delay: Duration::ZERO,
        }
    }
}

impl Respond for TokenSeq {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let mut body = json!({"access_token": format!("token-{n}"), "token_type": "Bearer"});
        if let Some(expires_in) = self.expires_in {
            body["expires_in"] = json!(expires_in);
        }
        ResponseTemplate::new(200)
            .set_body_json(body)
            .set_delay(self.delay)
    }
}

/// Answers the templates in order, repeating the last.
struct Seq(AtomicUsize, Vec<ResponseTemplate>);

impl Respond for Seq {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        self.1[n.min(self.1.len() - 1)].clone()
    }
}

fn seq(templates: Vec<ResponseTemplate>) -> Seq {
    Seq(AtomicUsize::new(0), templates)
}

fn ok_token(token: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )
}

async fn token_server(responder: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// Waits (without advancing Tokio's clock) until the server has seen `n` requests.
async fn wait_for_calls(server: &MockServer, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while calls(server).await < n {
        assert!(
            std::time::Instant::now() < deadline,
            "expected {n} requests"
        );
        tokio::task::yield_now().await;
    }
}

/// Waits (without advancing Tokio's clock) until no token request is in flight.
async fn wait_idle(source: &ClientCredentials) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while format!("{source:?}").contains("fetching: true") {
        assert!(
            std::time::Instant::now() < deadline,
            "the fetch never ended"
        );
        tokio::task::yield_now().await;
    }
}

/// Lets real I/O progress for 100 ms of wall time without advancing Tokio's (paused) clock.
async fn settle() {
    let until = std::time::Instant::now() + Duration::from_millis(100);
    while std::time::Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy::new(3, Duration::from_millis(10), Duration::from_millis(40))
}

fn source(server: &MockServer, http: HttpConfig) -> ClientCredentials {
    ClientCredentials::builder("agentcube-app", SECRET)
        .token_endpoint(format!("{}/token", server.uri()))
        .http(http)
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// caching and single-flight

#[tokio::test]
async fn caches_the_token_between_calls() {
    let server = token_server(TokenSeq::new(Some(300))).await;
    let source = source(&server, HttpConfig::new());
    for _ in 0..10 {
        assert_eq!(source.token().await.unwrap().secret(), "token-1");
    }
    assert_eq!(calls(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_callers_share_one_request() {
    let mut responder = TokenSeq::new(Some(300));
    responder.delay = Duration::from_millis(300);
    let server = token_server(responder).await;
    let source = source(&server, HttpConfig::new());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let source = source.clone();
        tasks.spawn(async move { source.token().await });
    }
    let mut tokens = Vec::new();
    while let Some(result) = tasks.join_next().await {
        tokens.push(result.unwrap().unwrap());
    }
    assert_eq!(tokens.len(), 100);
    assert!(tokens.iter().all(|t| t.secret() == "token-1"));
    assert_eq!(calls(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_failure_too() {
    let server = token_server(
        ResponseTemplate::new(401)
            .set_body_json(json!({"error": "invalid_client"}))
            .set_delay(Duration::from_millis(200)),
    )
    .await;
    let source = source(&server, HttpConfig::new());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let source = source.clone();
        tasks.spawn(async move { source.token().await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap_err().code(), "oauth_error");
    }
    assert_eq!(calls(&server).await, 1);
}

#[tokio::test]
async fn a_cancelled_caller_does_not_cancel_the_shared_request() {
    let mut responder = TokenSeq::new(Some(300));
    responder.delay = Duration::from_millis(200);
    let server = token_server(responder).await;
    let source = source(&server, HttpConfig::new());
    // Give up after 20 ms; the request goes on in its own task.
    let gave_up = tokio::time::timeout(Duration::from_millis(20), source.token()).await;
    assert!(gave_up.is_err());
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    assert_eq!(calls(&server).await, 1);
}

#[tokio::test]
async fn invalidate_forces_a_new_token() {
    let server = token_server(TokenSeq::new(Some(300))).await;
    let source = source(&server, HttpConfig::new());
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    source.invalidate();
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
    assert_eq!(calls(&server).await, 2);
}

#[tokio::test]
async fn invalidate_token_ignores_a_token_that_was_already_replaced() {
    let server = token_server(TokenSeq::new(Some(300))).await;
    let source = source(&server, HttpConfig::new());
    let first = source.token().await.unwrap();
    source.invalidate_token(&first);
    let second = source.token().await.unwrap();
    assert_eq!(second.secret(), "token-2");
    // A second request rejected with the old token must not throw away the new one.
    source.invalidate_token(&first);
    assert_eq!(source.token().await.unwrap(), second);
    assert_eq!(calls(&server).await, 2);
}

// ---------------------------------------------------------------------------------------------
// refresh timing at the buffer edges, with paused time

/// Fetches once at t = 0, then checks that nothing is fetched until `refresh_after`, that at
/// `refresh_after` the old token is still returned while one background request fetches the next.
async fn check_refresh_edge(expires_in: Option<u64>, refresh_after: Duration) {
    let server = token_server(TokenSeq::new(expires_in)).await;
    let source = source(&server, paused_http());
    assert_eq!(source.token().await.unwrap().secret(), "token-1");

    tokio::time::advance(refresh_after - Duration::from_millis(1)).await;
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    assert!(format!("{source:?}").contains("fetching: false"));
    settle().await;
    assert_eq!(
        calls(&server).await,
        1,
        "no refresh before {refresh_after:?}"
    );

    tokio::time::advance(Duration::from_millis(1)).await;
    // Due for refresh: the still-valid token is returned at once, a refresh runs behind it.
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    wait_for_calls(&server, 2).await;
    wait_idle(&source).await;
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
    assert_eq!(calls(&server).await, 2, "one background refresh");
}

#[tokio::test(start_paused = true)]
async fn refresh_edge_expires_in_3600() {
    check_refresh_edge(Some(3600), Duration::from_secs(3570)).await;
}

#[tokio::test(start_paused = true)]
async fn refresh_edge_missing_expires_in_defaults_to_3600() {
    check_refresh_edge(None, Duration::from_secs(3570)).await;
}

#[tokio::test(start_paused = true)]
async fn refresh_edge_expires_in_60_both_rules_agree() {
    check_refresh_edge(Some(60), Duration::from_secs(30)).await;
}

#[tokio::test(start_paused = true)]
async fn refresh_edge_expires_in_30_uses_half() {
    check_refresh_edge(Some(30), Duration::from_secs(15)).await;
}

#[tokio::test(start_paused = true)]
async fn refresh_edge_expires_in_20_uses_half() {
    check_refresh_edge(Some(20), Duration::from_secs(10)).await;
}

#[tokio::test(start_paused = true)]
async fn refresh_edge_expires_in_1_uses_half() {
    check_refresh_edge(Some(1), Duration::from_millis(500)).await;
}

#[tokio::test(start_paused = true)]
async fn expires_in_zero_is_fetched_every_time() {
    let server = token_server(TokenSeq::new(Some(0))).await;
    let source = source(&server, paused_http());
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
    assert_eq!(calls(&server).await, 2);
}

#[tokio::test(start_paused = true)]
async fn failed_background_refresh_keeps_the_token_until_it_expires() {
    let server = token_server(seq(vec![
        ok_token("first", 100),
        ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"})),
    ]))
    .await;
    let source = source(&server, paused_http());
    assert_eq!(source.token().await.unwrap().secret(), "first");

    tokio::time::advance(Duration::from_secs(70)).await; // refresh due at 70 s
    assert_eq!(source.token().await.unwrap().secret(), "first");
    wait_for_calls(&server, 2).await;
    wait_idle(&source).await;
    // The refresh failed; the token is still valid and still served, with no request storm.
    for _ in 0..10 {
        assert_eq!(source.token().await.unwrap().secret(), "first");
    }
    assert_eq!(calls(&server).await, 2);

    tokio::time::advance(Duration::from_secs(30)).await; // expired at 100 s
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "oauth_error");
    assert_eq!(calls(&server).await, 3);
}

#[tokio::test(start_paused = true)]
async fn many_callers_during_the_refresh_window_start_one_background_refresh() {
    let server = token_server(TokenSeq::new(Some(100))).await;
    let source = source(&server, paused_http());
    source.token().await.unwrap();
    tokio::time::advance(Duration::from_secs(80)).await;
    for _ in 0..100 {
        assert_eq!(source.token().await.unwrap().secret(), "token-1");
    }
    wait_for_calls(&server, 2).await;
    settle().await;
    assert_eq!(calls(&server).await, 2);
}

// ---------------------------------------------------------------------------------------------
// retries

#[tokio::test]
async fn retries_a_500_then_succeeds() {
    let server = token_server(seq(vec![
        ResponseTemplate::new(500),
        ResponseTemplate::new(503).set_body_json(json!({"error": "temporarily_unavailable"})),
        ok_token("after-retry", 300),
    ]))
    .await;
    let source = source(&server, HttpConfig::new().retry(fast_retry()));
    assert_eq!(source.token().await.unwrap().secret(), "after-retry");
    assert_eq!(calls(&server).await, 3);
}

#[tokio::test]
async fn gives_up_after_the_bounded_attempts() {
    let server = token_server(ResponseTemplate::new(502)).await;
    let source = source(&server, HttpConfig::new().retry(fast_retry()));
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "http_status");
    assert_eq!(
        err,
        ClientError::HttpStatus {
            endpoint: "token endpoint",
            status: 502
        }
    );
    assert!(err.is_transient());
    assert_eq!(calls(&server).await, 3);
}

#[tokio::test]
async fn never_retries_a_401() {
    let server = token_server(ResponseTemplate::new(401).set_body_json(
        json!({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}),
    ))
    .await;
    let source = source(&server, HttpConfig::new().retry(fast_retry()));
    let err = source.token().await.unwrap_err();
    assert_eq!(calls(&server).await, 1);
    assert_eq!(err.code(), "oauth_error");
    assert_eq!(err.oauth_error(), Some("invalid_client"));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn never_retries_a_400_without_a_body() {
    let server = token_server(ResponseTemplate::new(400)).await;
    let source = source(&server, HttpConfig::new().retry(fast_retry()));
    let err = source.token().await.unwrap_err();
    assert_eq!(calls(&server).await, 1);
    assert_eq!(
        err,
        ClientError::HttpStatus {
            endpoint: "token endpoint",
            status: 400
        }
    );
}

#[tokio::test]
async fn network_errors_are_retried_and_reported() {
    // A port nothing listens on: connection refused.
    let closed = ClosedPort::bind();
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .token_endpoint(format!("{}/token", closed.url()))
        .http(HttpConfig::new().retry(fast_retry()))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "network_error", "{err}");
    assert!(err.is_transient());
    // Two backoffs of at least 5 ms and 10 ms (half of 10 ms and 20 ms).
    assert!(started.elapsed() >= Duration::from_millis(15));
    assert!(!err.to_string().contains(SECRET));
}

// ---------------------------------------------------------------------------------------------
// token response validation

async fn error_for(template: ResponseTemplate) -> ClientError {
    let server = token_server(template).await;
    source(&server, HttpConfig::new().retry(fast_retry()))
        .token()
        .await
        .unwrap_err()
}

#[tokio::test]
async fn missing_access_token_is_a_clear_error() {
    let err = error_for(
        ResponseTemplate::new(200).set_body_json(json!({"token_type": "Bearer", "expires_in": 60})),
    )
    .await;
    assert_eq!(err.code(), "invalid_response");
    assert_eq!(
        err.to_string(),
        "invalid response from the token endpoint: missing or empty access_token"
    );
}

#[tokio::test]
async fn empty_access_token_is_a_clear_error() {
    let err = error_for(
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "  ", "token_type": "Bearer"})),
    )
    .await;
    assert_eq!(err.code(), "invalid_response");
}

#[tokio::test]
async fn access_token_of_the_wrong_type_is_rejected_without_echoing_it() {
    let err = error_for(
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": 12345, "token_type": "Bearer"})),
    )
    .await;
    assert_eq!(err.code(), "invalid_response");
    assert!(!err.to_string().contains("12345"));
}

#[tokio::test]
async fn non_bearer_token_type_is_rejected() {
    let err = error_for(
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "abc", "token_type": "DPoP"})),
    )
    .await;
    assert_eq!(err.code(), "unsupported_token_type");
    assert_eq!(
        err,
        ClientError::UnsupportedTokenType {
            found: "DPoP".into()
        }
    );
}

#[tokio::test]
async fn missing_token_type_is_rejected() {
    let err =
        error_for(ResponseTemplate::new(200).set_body_json(json!({"access_token": "abc"}))).await;
    assert_eq!(err.code(), "invalid_response");
    assert!(err.to_string().contains("token_type"));
}

#[tokio::test]
async fn token_type_is_case_insensitive() {
    let server = token_server(ResponseTemplate::new(200).set_body_json(
        json!({"access_token": "abc", "token_type": "bEaReR", "expires_in": "300"}),
    ))
    .await;
    let token = source(&server, HttpConfig::new()).token().await.unwrap();
    assert_eq!(token.secret(), "abc");
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let err = error_for(
        ResponseTemplate::new(200).set_body_raw(r#"{"access_token": "abc", "#, "application/json"),
    )
    .await;
    assert_eq!(err.code(), "invalid_response");
    assert_eq!(
        err.to_string(),
        "invalid response from the token endpoint: response is not valid json"
    );
}

#[tokio::test]
async fn json_that_is_not_an_object_is_rejected() {
    let err = error_for(ResponseTemplate::new(200).set_body_json(json!(["access_token"]))).await;
    assert_eq!(err.code(), "invalid_response");
}

#[tokio::test]
async fn negative_expires_in_is_rejected() {
    let err =
        error_for(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "abc", "token_type": "Bearer", "expires_in": -5}),
        ))
        .await;
    assert_eq!(err.code(), "invalid_response");
    assert!(err.to_string().contains("expires_in"));
}

#[tokio::test]
async fn oauth_error_body_is_surfaced() {
    let err = error_for(ResponseTemplate::new(400).set_body_json(json!({
        "error": "invalid_scope",
        "error_description": "Invalid scopes: nope",
    })))
    .await;
    assert_eq!(
        err,
        ClientError::OAuth {
            error: "invalid_scope".into(),
            description: Some("Invalid scopes: nope".into()),
            status: Some(400),
        }
    );
    assert_eq!(
        err.to_string(),
        "authorization server error invalid_scope: Invalid scopes: nope (http 400)"
    );
}

#[tokio::test]
async fn oauth_error_in_a_200_is_still_an_error() {
    let err =
        error_for(ResponseTemplate::new(200).set_body_json(json!({"error": "invalid_request"})))
            .await;
    assert_eq!(err.oauth_error(), Some("invalid_request"));
}

#[tokio::test]
async fn oversized_response_is_rejected() {
    let server = token_server(
        ResponseTemplate::new(200)
            .set_body_json(json!({"access_token": "a".repeat(2000), "token_type": "Bearer"})),
    )
    .await;
    let err = source(&server, HttpConfig::new().max_response_bytes(1024))
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_response");
    assert!(err.to_string().contains("too large"));
}

// ---------------------------------------------------------------------------------------------
// timeouts

#[tokio::test]
async fn slow_endpoint_times_out() {
    let server = token_server(ok_token("late", 300).set_delay(Duration::from_secs(3))).await;
    let source = source(
        &server,
        HttpConfig::new()
            .timeout(Duration::from_millis(200))
            .retry(RetryPolicy::new(
                2,
                Duration::from_millis(10),
                Duration::from_millis(10),
            )),
    );
    let started = std::time::Instant::now();
    let err = source.token().await.unwrap_err();
    assert_eq!(
        err,
        ClientError::Timeout {
            endpoint: "token endpoint"
        }
    );
    assert_eq!(err.code(), "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls(&server).await, 2, "a timeout is retried");
}

#[tokio::test]
async fn slow_endpoint_within_the_timeout_succeeds() {
    let server =
        token_server(ok_token("slow-but-fine", 300).set_delay(Duration::from_millis(300))).await;
    let source = source(&server, HttpConfig::new().timeout(Duration::from_secs(5)));
    assert_eq!(source.token().await.unwrap().secret(), "slow-but-fine");
}

// ---------------------------------------------------------------------------------------------
// request shape: client authentication and parameters

#[tokio::test]
async fn client_secret_basic_is_the_default_and_form_encodes_the_credentials() {
    let server = token_server(TokenSeq::new(Some(300))).await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .token_endpoint(format!("{}/token", server.uri()))
        .scope("openid profile")
        .audience("agentcube-api")
        .resource("https://router.example")
        .param("extra", "1")
        .build()
        .unwrap();
    source.token().await.unwrap();
    let requests = server.received_requests().await.unwrap();
    let request = &requests[0];
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "agentcube-app:s3cr%3Aet%2Fwith%26chars"
        )
    );
    assert_eq!(request.headers["authorization"], expected.as_str());
    assert!(
        request.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    let form = form(request);
    assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
    assert!(form.contains(&("scope".into(), "openid profile".into())));
    assert!(form.contains(&("audience".into(), "agentcube-api".into())));
    assert!(form.contains(&("resource".into(), "https://router.example".into())));
    assert!(form.contains(&("extra".into(), "1".into())));
    assert!(!form.iter().any(|(k, _)| k == "client_secret"));
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    let server = token_server(TokenSeq::new(Some(300))).await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .token_endpoint(format!("{}/token", server.uri()))
        .auth_method(ClientAuthMethod::Post)
        .build()
        .unwrap();
    source.token().await.unwrap();
    let request = &server.received_requests().await.unwrap()[0];
    assert!(!request.headers.contains_key("authorization"));
    assert_eq!(
        form_value(request, "client_id").as_deref(),
        Some("agentcube-app")
    );
    assert_eq!(
        form_value(request, "client_secret").as_deref(),
        Some(SECRET)
    );
    assert_eq!(form_value(request, "scope"), None);
}

// ---------------------------------------------------------------------------------------------
// discovery

async fn discovery_server(issuer_in_document: Option<&str>) -> (MockServer, String) {
    let server = MockServer::start().await;
    let issuer = format!("{}/realms/agentcube", server.uri());
    let document = json!({
        "issuer": issuer_in_document.map_or_else(|| issuer.clone(), str::to_owned),
        "token_endpoint": format!("{}/realms/agentcube/protocol/openid-connect/token", server.uri()),
    });
    Mock::given(method("GET"))
        .and(path("/realms/agentcube/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/realms/agentcube/protocol/openid-connect/token"))
        .respond_with(TokenSeq::new(Some(300)))
        .mount(&server)
        .await;
    (server, issuer)
}

#[tokio::test]
async fn token_endpoint_is_discovered_once() {
    let (server, issuer) = discovery_server(None).await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .issuer(&issuer)
        .build()
        .unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "token-1");
    source.invalidate();
    assert_eq!(source.token().await.unwrap().secret(), "token-2");
    let requests = server.received_requests().await.unwrap();
    let discoveries = requests
        .iter()
        .filter(|r| r.method.as_str() == "GET")
        .count();
    assert_eq!(discoveries, 1);
    assert_eq!(requests.len(), 3);
}

#[tokio::test]
async fn discovery_issuer_must_match() {
    let (server, issuer) = discovery_server(Some("https://evil.example/realms/agentcube")).await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .issuer(&issuer)
        .build()
        .unwrap();
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "issuer_mismatch");
    assert_eq!(
        err,
        ClientError::IssuerMismatch {
            expected: issuer,
            found: "https://evil.example/realms/agentcube".into()
        }
    );
    // No token request went to an endpoint named by the wrong document.
    let requests = server.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| r.method.as_str() == "GET"));
}

#[tokio::test]
async fn discovery_without_a_token_endpoint_is_an_error() {
    let server = MockServer::start().await;
    let issuer = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issuer": issuer})))
        .mount(&server)
        .await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .issuer(&issuer)
        .build()
        .unwrap();
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "discovery_failed");
    assert!(err.to_string().contains("token_endpoint"));
}

#[tokio::test]
async fn discovery_without_an_issuer_is_an_error_not_a_mismatch() {
    let server = MockServer::start().await;
    let issuer = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issuer": 42, "token_endpoint": format!("{issuer}/token")})),
        )
        .mount(&server)
        .await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .issuer(&issuer)
        .build()
        .unwrap();
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "discovery_failed");
    assert!(err.to_string().contains("issuer missing or not a string"));
}

// ---------------------------------------------------------------------------------------------
// configuration and redaction

#[test]
fn configuration_errors() {
    let err = ClientCredentials::builder("agentcube-app", SECRET)
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    let err = ClientCredentials::builder("", SECRET)
        .token_endpoint("http://127.0.0.1/token")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    let err = ClientCredentials::builder("agentcube-app", "")
        .token_endpoint("http://127.0.0.1/token")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    let err = ClientCredentials::builder("agentcube-app", SECRET)
        .token_endpoint("ftp://127.0.0.1/token")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    let err = ClientCredentials::builder("agentcube-app", SECRET)
        .issuer("not a url")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
}

#[tokio::test]
async fn secrets_never_appear_in_debug_or_errors() {
    let server = token_server(ResponseTemplate::new(401).set_body_json(json!({
        "error": "invalid_client",
        "error_description": "Invalid client or Invalid client credentials",
    })))
    .await;
    let source = source(&server, HttpConfig::new());
    let debug = format!("{source:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("ClientSecret(***)"), "{debug}");
    let err = source.token().await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains(SECRET));
    assert_eq!(
        err.to_string(),
        "authorization server error invalid_client: Invalid client or Invalid client credentials (http 401)"
    );

    let token = AccessToken::new("eyJ.secret.token");
    assert_eq!(format!("{token:?}"), "AccessToken(***)");
    assert_eq!(format!("{token}"), "AccessToken(***)");
    assert_eq!(token.secret(), "eyJ.secret.token");
}

#[tokio::test]
async fn static_token() {
    assert_eq!(StaticToken::new("").unwrap_err(), ClientError::EmptyToken);
    assert_eq!(StaticToken::new(" \n\t").unwrap_err().code(), "empty_token");
    assert_eq!(
        StaticToken::new("abc def").unwrap_err().code(),
        "invalid_token"
    );
    let source = StaticToken::new("  eyJ.abc.def\n").unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "eyJ.abc.def");
    source.invalidate();
    assert_eq!(source.token().await.unwrap().secret(), "eyJ.abc.def");
    assert_eq!(format!("{source:?}"), "StaticToken(AccessToken(***))");
}

#[tokio::test]
async fn sources_work_behind_dyn_and_arc() {
    use agentcube_oidc::client::DynTokenSource;
    let source: Arc<dyn DynTokenSource> = Arc::new(StaticToken::new("abc").unwrap());
    async fn use_it(source: impl TokenSource) -> String {
        source.token().await.unwrap().secret().to_owned()
    }
    assert_eq!(use_it(Arc::clone(&source)).await, "abc");
    let boxed: Box<dyn DynTokenSource> = Box::new(StaticToken::new("xyz").unwrap());
    assert_eq!(use_it(boxed).await, "xyz");
}

#[test]
fn error_codes_are_stable() {
    let cases: Vec<(ClientError, &str)> = vec![
        (ClientError::EmptyToken, "empty_token"),
        (ClientError::InvalidToken, "invalid_token"),
        (ClientError::ExpiredToken, "expired_token"),
        (ClientError::StateMismatch, "state_mismatch"),
        (ClientError::NonceMismatch, "nonce_mismatch"),
        (ClientError::CallbackTimeout, "callback_timeout"),
        (ClientError::NoRefreshToken, "no_refresh_token"),
        (ClientError::Cancelled, "cancelled"),
        (
            ClientError::AccessDenied { description: None },
            "access_denied",
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code);
        let message = err.to_string();
        assert_eq!(message, message.to_lowercase(), "lowercase: {message}");
    }
}

/// A caller waiting on a fetch whose task died with its runtime (nothing was ever sent) gets
/// `cancelled`, not a hang.
#[test]
fn a_fetch_that_dies_with_its_runtime_is_cancelled() {
    // A token endpoint that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/token", silent.local_addr().unwrap());
    let new_runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = new_runtime();
    let source = first.block_on(async {
        ClientCredentials::builder("agentcube-app", SECRET)
            .token_endpoint(url)
            .http(
                HttpConfig::new()
                    .without_timeouts()
                    .retry(RetryPolicy::none()),
            )
            .build()
            .unwrap()
    });
    let mut token = Box::pin(source.token());
    // Poll until the fetch task is spawned on `first` and hangs on the silent endpoint.
    let pending = first.block_on(async {
        tokio::time::timeout(Duration::from_millis(100), &mut token)
            .await
            .is_err()
    });
    assert!(pending);
    drop(first); // cancels the fetch task; its sender is dropped without a result
    let err = new_runtime().block_on(token).unwrap_err();
    assert_eq!(err, ClientError::Cancelled);
    assert_eq!(err.code(), "cancelled");
}

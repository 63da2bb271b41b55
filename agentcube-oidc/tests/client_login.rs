//! Interactive logins against wiremock: authorization code + PKCE with the loopback listener,
//! the device authorization grant (with paused time), and the refresh-token source.
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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentcube_oidc::client::{
    AuthorizationCode, AuthorizationCodeFlow, ClientError, DeviceFlow, LoopbackListener,
    RefreshToken, RefreshTokenSource, TokenSource,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// An unsigned JWT-shaped string with `payload` (the client only reads the ID token's nonce).
fn fake_jwt(payload: &Value) -> String {
    format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    )
}

// ---------------------------------------------------------------------------------------------
// authorization code + PKCE

/// An IdP with discovery and a token endpoint that checks the PKCE verifier against the
/// challenge it was given (through `challenge`) and returns an ID token with `nonce`.
struct CodeExchange {
    challenge: std::sync::Mutex<Option<(String, String)>>,
}

impl Respond for CodeExchange {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let grant = form_value(request, "grant_type").unwrap_or_default();
        if grant == "refresh_token" {
            let old = form_value(request, "refresh_token").unwrap_or_default();
            return ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("access-from-{old}"),
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": format!("{old}+"),
            }));
        }
        let (challenge, nonce) = self.challenge.lock().unwrap().clone().unwrap();
        let verifier = form_value(request, "code_verifier").unwrap_or_default();
        let computed = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            verifier.as_bytes(),
        ));
        if grant != "authorization_code"
            || computed != challenge
            || form_value(request, "code").as_deref() != Some("the-code")
            || form_value(request, "client_id").as_deref() != Some("agentcube-cli")
        {
            return ResponseTemplate::new(400).set_body_json(
                json!({"error": "invalid_grant", "error_description": "PKCE verification failed"}),
            );
        }
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "access-1",
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": "refresh-1",
            "refresh_expires_in": 1800,
            "id_token": fake_jwt(&json!({"nonce": nonce, "sub": "alice"})),
            "scope": "openid profile",
        }))
    }
}

async fn idp() -> (MockServer, String) {
    let server = MockServer::start().await;
    let issuer = format!("{}/realms/agentcube", server.uri());
    let base = format!("{issuer}/protocol/openid-connect");
    Mock::given(method("GET"))
        .and(path("/realms/agentcube/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/auth"),
            "token_endpoint": format!("{base}/token"),
            "device_authorization_endpoint": format!("{base}/auth/device"),
        })))
        .mount(&server)
        .await;
    (server, issuer)
}

async fn code_flow() -> (MockServer, AuthorizationCodeFlow, &'static CodeExchange) {
    let (server, issuer) = idp().await;
    let exchange: &'static CodeExchange = Box::leak(Box::new(CodeExchange {
        challenge: std::sync::Mutex::new(None),
    }));
    struct Shared(&'static CodeExchange);
    impl Respond for Shared {
        fn respond(&self, request: &Request) -> ResponseTemplate {
            self.0.respond(request)
        }
    }
    Mock::given(method("POST"))
        .and(path("/realms/agentcube/protocol/openid-connect/token"))
        .respond_with(Shared(exchange))
        .mount(&server)
        .await;
    let flow = AuthorizationCodeFlow::builder("agentcube-cli")
        .issuer(issuer)
        .scope("openid profile")
        .param("prompt", "login")
        .build()
        .unwrap();
    (server, flow, exchange)
}

#[tokio::test]
async fn authorization_url_has_state_nonce_and_s256_challenge() {
    let (server, flow, _) = code_flow().await;
    let request = flow
        .authorization_request("http://127.0.0.1:4567/callback")
        .await
        .unwrap();
    let url = request.url();
    assert!(url.as_str().starts_with(&format!(
        "{}/realms/agentcube/protocol/openid-connect/auth?",
        server.uri()
    )));
    assert_eq!(query_value(url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_value(url, "client_id").as_deref(),
        Some("agentcube-cli")
    );
    assert_eq!(
        query_value(url, "redirect_uri").as_deref(),
        Some("http://127.0.0.1:4567/callback")
    );
    assert_eq!(query_value(url, "scope").as_deref(), Some("openid profile"));
    assert_eq!(
        query_value(url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_value(url, "prompt").as_deref(), Some("login"));
    assert_eq!(query_value(url, "state").as_deref(), Some(request.state()));
    assert_eq!(query_value(url, "nonce").as_deref(), Some(request.nonce()));
    let challenge = query_value(url, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43);
    assert_eq!(request.state().len(), 43);
    assert_ne!(request.state(), request.nonce());
    // Fresh values each time.
    let other = flow
        .authorization_request("http://127.0.0.1:4567/callback")
        .await
        .unwrap();
    assert_ne!(other.state(), request.state());
    assert_ne!(
        query_value(other.url(), "code_challenge").unwrap(),
        challenge
    );
    // The verifier is not in the Debug output (only the challenge, via the URL).
    let debug = format!("{request:?}");
    assert!(debug.contains("verifier: ***"), "{debug}");
}

/// Plays the browser: follows the authorization URL's redirect target with `code` and `state`.
async fn browser_callback(redirect_uri: &str, query: &str) -> reqwest::Response {
    reqwest::get(format!("{redirect_uri}?{query}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn loopback_login_exchanges_the_code_with_the_verifier() {
    let (server, flow, exchange) = code_flow().await;
    let (sender, receiver) = tokio::sync::oneshot::channel::<url::Url>();
    let browser = tokio::spawn(async move {
        let url = receiver.await.unwrap();
        let redirect = query_value(&url, "redirect_uri").unwrap();
        let state = query_value(&url, "state").unwrap();
        let response = browser_callback(&redirect, &format!("code=the-code&state={state}")).await;
        (response.status(), response.text().await.unwrap())
    });
    let tokens = flow
        .login_on_loopback(Duration::from_secs(10), |url| {
            *exchange.challenge.lock().unwrap() = Some((
                query_value(url, "code_challenge").unwrap(),
                query_value(url, "nonce").unwrap(),
            ));
            sender.send(url.clone()).unwrap();
        })
        .await
        .unwrap();
    let (status, page) = browser.await.unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("Signed in"));
    assert_eq!(tokens.access_token().secret(), "access-1");
    assert_eq!(tokens.refresh_token().unwrap().secret(), "refresh-1");
    assert_eq!(tokens.expires_in(), Some(Duration::from_secs(300)));
    assert_eq!(tokens.refresh_expires_in(), Some(Duration::from_secs(1800)));
    assert_eq!(tokens.scope(), Some("openid profile"));
    assert!(tokens.id_token().is_some());
    assert!(!format!("{tokens:?}").contains("access-1"));

    // Then the refresh token: the login's access token is served first, without a request.
    let source = flow.token_source(&tokens).unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "access-1");
    let token_requests = |requests: Vec<Request>| {
        requests
            .into_iter()
            .filter(|r| r.method.as_str() == "POST")
            .count()
    };
    assert_eq!(token_requests(server.received_requests().await.unwrap()), 1);
    source.invalidate();
    assert_eq!(
        source.token().await.unwrap().secret(),
        "access-from-refresh-1"
    );
    assert_eq!(
        source.refresh_token().secret(),
        "refresh-1+",
        "rotated refresh token kept"
    );
    source.invalidate();
    assert_eq!(
        source.token().await.unwrap().secret(),
        "access-from-refresh-1+"
    );
    let requests = server.received_requests().await.unwrap();
    let last = requests.last().unwrap();
    assert_eq!(
        form_value(last, "grant_type").as_deref(),
        Some("refresh_token")
    );
    assert_eq!(
        form_value(last, "client_id").as_deref(),
        Some("agentcube-cli")
    );
    assert!(!last.headers.contains_key("authorization"), "public client");
}

#[tokio::test]
async fn nonce_mismatch_is_rejected() {
    let (_server, flow, exchange) = code_flow().await;
    let request = flow
        .authorization_request("http://127.0.0.1:1/callback")
        .await
        .unwrap();
    *exchange.challenge.lock().unwrap() = Some((
        query_value(request.url(), "code_challenge").unwrap(),
        "another-nonce".to_owned(),
    ));
    let err = flow
        .exchange_code(&request, &AuthorizationCode::new("the-code"))
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::NonceMismatch);
    assert_eq!(err.code(), "nonce_mismatch");
}

#[tokio::test]
async fn wrong_verifier_surfaces_the_oauth_error() {
    let (_server, flow, exchange) = code_flow().await;
    let request = flow
        .authorization_request("http://127.0.0.1:1/callback")
        .await
        .unwrap();
    *exchange.challenge.lock().unwrap() = Some(("not-the-challenge".into(), "n".into()));
    let err = flow
        .exchange_code(&request, &AuthorizationCode::new("the-code"))
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_grant"));
    assert!(err.to_string().contains("PKCE verification failed"));
}

#[tokio::test]
async fn listener_rejects_a_state_mismatch() {
    let listener = LoopbackListener::bind().await.unwrap();
    let redirect = listener.redirect_uri();
    assert!(redirect.starts_with("http://127.0.0.1:"));
    assert!(redirect.ends_with("/callback"));
    let wait = tokio::spawn(listener.wait_for_state("expected-state", Duration::from_secs(10)));
    let response = browser_callback(&redirect, "code=abc&state=forged").await;
    assert_eq!(response.status(), 400);
    assert_eq!(wait.await.unwrap().unwrap_err(), ClientError::StateMismatch);
}

#[tokio::test]
async fn listener_rejects_a_missing_state() {
    let listener = LoopbackListener::bind().await.unwrap();
    let redirect = listener.redirect_uri();
    let wait = tokio::spawn(listener.wait_for_state("expected-state", Duration::from_secs(10)));
    browser_callback(&redirect, "code=abc").await;
    assert_eq!(wait.await.unwrap().unwrap_err().code(), "state_mismatch");
}

#[tokio::test]
async fn listener_returns_the_error_parameter() {
    let listener = LoopbackListener::bind().await.unwrap();
    let redirect = listener.redirect_uri();
    let wait = tokio::spawn(listener.wait_for_state("s", Duration::from_secs(10)));
    browser_callback(
        &redirect,
        "error=access_denied&error_description=User%20said%20no&state=s",
    )
    .await;
    assert_eq!(
        wait.await.unwrap().unwrap_err(),
        ClientError::AccessDenied {
            description: Some("User said no".into())
        }
    );

    let listener = LoopbackListener::bind().await.unwrap();
    let redirect = listener.redirect_uri();
    let wait = tokio::spawn(listener.wait_for_state("s", Duration::from_secs(10)));
    browser_callback(&redirect, "error=invalid_scope&state=s").await;
    assert_eq!(
        wait.await.unwrap().unwrap_err().oauth_error(),
        Some("invalid_scope")
    );
}

#[tokio::test]
async fn listener_without_code_is_an_invalid_callback() {
    let listener = LoopbackListener::bind().await.unwrap();
    let redirect = listener.redirect_uri();
    let wait = tokio::spawn(listener.wait_for_state("s", Duration::from_secs(10)));
    browser_callback(&redirect, "state=s").await;
    assert_eq!(wait.await.unwrap().unwrap_err().code(), "invalid_callback");
}

#[tokio::test]
async fn listener_ignores_other_paths_and_silent_connections() {
    let listener = LoopbackListener::bind().await.unwrap();
    let port = listener.port();
    let redirect = listener.redirect_uri();
    let wait = tokio::spawn(listener.wait_for_state("s", Duration::from_secs(10)));
    // A speculative connection that never sends anything must not block the callback.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let favicon = reqwest::get(format!("http://127.0.0.1:{port}/favicon.ico"))
        .await
        .unwrap();
    assert_eq!(favicon.status(), 404);
    // Garbage is answered with 400 and does not end the wait either.
    let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    garbage
        .write_all(b"BREW /pot HTCPCP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    garbage.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let response = browser_callback(&redirect, "code=xyz&state=s").await;
    assert_eq!(response.status(), 200);
    let code = wait.await.unwrap().unwrap();
    assert_eq!(code.secret(), "xyz");
    assert_eq!(format!("{code:?}"), "AuthorizationCode(***)");
}

#[tokio::test(start_paused = true)]
async fn listener_wait_is_bounded() {
    let listener = LoopbackListener::bind().await.unwrap();
    let started = tokio::time::Instant::now();
    let err = listener
        .wait_for_state("s", Duration::from_secs(120))
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::CallbackTimeout);
    assert_eq!(err.code(), "callback_timeout");
    assert_eq!(started.elapsed(), Duration::from_secs(120));
}

#[test]
fn code_flow_configuration_errors() {
    let err = AuthorizationCodeFlow::builder("agentcube-cli")
        .token_endpoint("http://127.0.0.1/token")
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "invalid_config");
    assert!(err.to_string().contains("authorization endpoint"));
    assert!(
        AuthorizationCodeFlow::builder("agentcube-cli")
            .token_endpoint("http://127.0.0.1/token")
            .authorization_endpoint("http://127.0.0.1/auth")
            .build()
            .is_ok()
    );
}

async fn simple_flow(response: Value) -> (MockServer, AuthorizationCodeFlow) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(response))
        .mount(&server)
        .await;
    let flow = AuthorizationCodeFlow::builder("agentcube-cli")
        .token_endpoint(format!("{}/token", server.uri()))
        .authorization_endpoint(format!("{}/auth", server.uri()))
        .build()
        .unwrap();
    (server, flow)
}

#[tokio::test]
async fn id_token_without_nonce_is_rejected() {
    let (_server, flow) = simple_flow(
        json!({"access_token": "a", "token_type": "Bearer", "id_token": fake_jwt(&json!({}))}),
    )
    .await;
    let request = flow
        .authorization_request("http://127.0.0.1:1/callback")
        .await
        .unwrap();
    let err = flow
        .exchange_code(&request, &AuthorizationCode::new("c"))
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::NonceMismatch);
    assert_eq!(err.code(), "nonce_mismatch");
}

#[tokio::test]
async fn tokens_without_a_refresh_token_give_no_token_source() {
    let (_server, flow) = simple_flow(json!({"access_token": "a", "token_type": "Bearer"})).await;
    let request = flow
        .authorization_request("http://127.0.0.1:1/callback")
        .await
        .unwrap();
    let tokens = flow
        .exchange_code(&request, &AuthorizationCode::new("c"))
        .await
        .unwrap();
    assert_eq!(tokens.access_token().secret(), "a");
    assert_eq!(
        flow.token_source(&tokens).unwrap_err(),
        ClientError::NoRefreshToken
    );
}

// ---------------------------------------------------------------------------------------------
// refresh token source built from a stored refresh token

#[tokio::test]
async fn stored_refresh_token_source() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=stored"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "fresh", "token_type": "Bearer", "expires_in": 300}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Token is not active"}),
        ))
        .mount(&server)
        .await;
    let source = RefreshTokenSource::builder("agentcube-cli", RefreshToken::new("stored"))
        .token_endpoint(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "fresh");
    assert_eq!(
        source.refresh_token().secret(),
        "stored",
        "not rotated: kept"
    );
    assert!(!format!("{source:?}").contains("stored"));

    let expired = RefreshTokenSource::builder("agentcube-cli", RefreshToken::new("old"))
        .token_endpoint(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let err = expired.token().await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_grant"));

    let err = RefreshTokenSource::builder("agentcube-cli", RefreshToken::new(" "))
        .token_endpoint("http://127.0.0.1/token")
        .build()
        .unwrap_err();
    assert_eq!(err, ClientError::NoRefreshToken);
    assert_eq!(err.code(), "no_refresh_token");
}

// ---------------------------------------------------------------------------------------------
// device authorization grant

/// Answers the token endpoint with the given OAuth errors in order, then tokens.
struct DevicePoll {
    calls: AtomicUsize,
    errors: Vec<&'static str>,
}

impl Respond for DevicePoll {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.errors.get(n) {
            Some(error) => ResponseTemplate::new(400).set_body_json(json!({"error": error})),
            None => ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "device-access",
                "token_type": "Bearer",
                "expires_in": 300,
                "refresh_token": "device-refresh",
            })),
        }
    }
}

async fn device_idp(errors: Vec<&'static str>, device_response: Value) -> (MockServer, DeviceFlow) {
    let (server, issuer) = idp().await;
    Mock::given(method("POST"))
        .and(path(
            "/realms/agentcube/protocol/openid-connect/auth/device",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(device_response))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/realms/agentcube/protocol/openid-connect/token"))
        .respond_with(DevicePoll {
            calls: AtomicUsize::new(0),
            errors,
        })
        .mount(&server)
        .await;
    let flow = DeviceFlow::builder("agentcube-cli")
        .issuer(issuer)
        .http(paused_http())
        .build()
        .unwrap();
    (server, flow)
}

fn device_response(expires_in: u64, interval: Option<u64>) -> Value {
    let mut response = json!({
        "device_code": "secret-device-code",
        "user_code": "WDJB-MJHT",
        "verification_uri": "https://idp.example/device",
        "verification_uri_complete": "https://idp.example/device?user_code=WDJB-MJHT",
        "expires_in": expires_in,
    });
    if let Some(interval) = interval {
        response["interval"] = json!(interval);
    }
    response
}

async fn poll_times(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with("/token"))
        .count()
}

#[tokio::test(start_paused = true)]
async fn device_flow_polls_through_pending_and_slow_down() {
    let (server, flow) = device_idp(
        vec![
            "authorization_pending",
            "authorization_pending",
            "slow_down",
            "authorization_pending",
        ],
        device_response(600, Some(5)),
    )
    .await;
    let authorization = flow.start().await.unwrap();
    assert_eq!(authorization.user_code(), "WDJB-MJHT");
    assert_eq!(
        authorization.verification_uri(),
        "https://idp.example/device"
    );
    assert_eq!(
        authorization.verification_uri_complete(),
        Some("https://idp.example/device?user_code=WDJB-MJHT")
    );
    assert_eq!(authorization.expires_in(), Duration::from_secs(600));
    assert_eq!(authorization.interval(), Duration::from_secs(5));
    assert!(!format!("{authorization:?}").contains("secret-device-code"));

    let started = tokio::time::Instant::now();
    let tokens = flow.poll(&authorization).await.unwrap();
    // 5 (pending) + 5 (pending) + 5 (slow_down) + 10 (pending) + 10 (success).
    assert_eq!(started.elapsed(), Duration::from_secs(35));
    assert_eq!(poll_times(&server).await, 5);
    assert_eq!(tokens.access_token().secret(), "device-access");

    let requests = server.received_requests().await.unwrap();
    let poll = requests
        .iter()
        .find(|r| r.url.path().ends_with("/token"))
        .unwrap();
    assert_eq!(
        form_value(poll, "grant_type").as_deref(),
        Some("urn:ietf:params:oauth:grant-type:device_code")
    );
    assert_eq!(
        form_value(poll, "device_code").as_deref(),
        Some("secret-device-code")
    );
    assert_eq!(
        form_value(poll, "client_id").as_deref(),
        Some("agentcube-cli")
    );
    let start = requests
        .iter()
        .find(|r| r.url.path().ends_with("/auth/device"))
        .unwrap();
    assert_eq!(form_value(start, "scope").as_deref(), Some("openid"));
    assert_eq!(
        form_value(start, "client_id").as_deref(),
        Some("agentcube-cli")
    );
    // PKCE: the verifier sent with the polls matches the challenge sent at the start.
    assert_eq!(
        form_value(start, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let verifier = form_value(poll, "code_verifier").unwrap();
    let computed = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ));
    assert_eq!(form_value(start, "code_challenge").unwrap(), computed);
    assert!(!format!("{authorization:?}").contains(&verifier));

    let source = flow.token_source(&tokens).unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "device-access");
    assert_eq!(source.refresh_token().secret(), "device-refresh");
}

#[tokio::test(start_paused = true)]
async fn device_flow_defaults_to_a_five_second_interval() {
    let (server, flow) =
        device_idp(vec!["authorization_pending"], device_response(600, None)).await;
    let authorization = flow.start().await.unwrap();
    assert_eq!(authorization.interval(), Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    flow.poll(&authorization).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(poll_times(&server).await, 2);
}

#[tokio::test(start_paused = true)]
async fn device_flow_access_denied() {
    let (_server, flow) = device_idp(
        vec!["authorization_pending", "access_denied"],
        device_response(600, Some(5)),
    )
    .await;
    let authorization = flow.start().await.unwrap();
    let err = flow.poll(&authorization).await.unwrap_err();
    assert_eq!(err.code(), "access_denied");
}

#[tokio::test(start_paused = true)]
async fn device_flow_expired_token_from_the_server() {
    let (_server, flow) = device_idp(vec!["expired_token"], device_response(600, Some(5))).await;
    let authorization = flow.start().await.unwrap();
    let err = flow.poll(&authorization).await.unwrap_err();
    assert_eq!(err, ClientError::ExpiredToken);
    assert_eq!(err.code(), "expired_token");
}

#[tokio::test(start_paused = true)]
async fn device_flow_stops_when_the_code_expires() {
    let (server, flow) = device_idp(
        vec!["authorization_pending"; 100],
        device_response(12, Some(5)),
    )
    .await;
    let authorization = flow.start().await.unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(
        flow.poll(&authorization).await.unwrap_err(),
        ClientError::ExpiredToken
    );
    // Polls at 5 s and 10 s; at 15 s the code has expired, so no third poll.
    assert_eq!(poll_times(&server).await, 2);
    assert_eq!(started.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn device_flow_other_errors_end_the_poll() {
    let (_server, flow) = device_idp(vec!["invalid_client"], device_response(600, Some(5))).await;
    let authorization = flow.start().await.unwrap();
    let err = flow.poll(&authorization).await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_client"));
    assert_eq!(err.code(), "oauth_error");
}

#[tokio::test]
async fn device_start_errors() {
    let (server, issuer) = idp().await;
    Mock::given(method("POST"))
        .and(path("/realms/agentcube/protocol/openid-connect/auth/device"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "unauthorized_client",
            "error_description": "Client is not allowed to initiate OAuth 2.0 Device Authorization Grant",
        })))
        .mount(&server)
        .await;
    let flow = DeviceFlow::builder("agentcube-app")
        .issuer(&issuer)
        .build()
        .unwrap();
    assert_eq!(
        flow.start().await.unwrap_err().oauth_error(),
        Some("unauthorized_client")
    );

    let (server, issuer) = idp().await;
    Mock::given(method("POST"))
        .and(path(
            "/realms/agentcube/protocol/openid-connect/auth/device",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"user_code": "X"})))
        .mount(&server)
        .await;
    let flow = DeviceFlow::builder("agentcube-cli")
        .issuer(&issuer)
        .build()
        .unwrap();
    let err = flow.start().await.unwrap_err();
    assert_eq!(err.code(), "invalid_response");
    assert!(err.to_string().contains("device_code"));
}

#[tokio::test(start_paused = true)]
async fn device_flow_keeps_polling_an_unreachable_token_endpoint_and_reports_why_at_expiry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/device"))
        .respond_with(ResponseTemplate::new(200).set_body_json(device_response(30, Some(5))))
        .mount(&server)
        .await;
    // A port nothing listens on: every poll is refused.
    let closed = ClosedPort::bind();
    let flow = DeviceFlow::builder("agentcube-cli")
        .device_authorization_endpoint(format!("{}/device", server.uri()))
        .token_endpoint(format!("{}/token", closed.url()))
        .http(paused_http())
        .build()
        .unwrap();
    let authorization = flow.start().await.unwrap();
    let started = tokio::time::Instant::now();
    let err = flow.poll(&authorization).await.unwrap_err();
    // RFC 8628 §3.5: polling goes on (the interval doubling, at most 10 s) until the code
    // expires; then the reason the polls failed is returned, not `expired_token`.
    assert_eq!(err.code(), "network_error", "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() <= Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
}

//! `AuthorizedClient`: a bearer token from any `TokenSource` on every request, and one retry with
//! a new token after a 401.
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use agentcube_testkit::net::ClosedPort;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentcube_oidc::client::{
    AccessToken, AuthorizedClient, ClientCredentials, ClientError, DynTokenSource, HttpConfig,
    StaticToken, TokenSource,
};
use serde_json::json;
use wiremock::matchers::{bearer_token, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// A source that hands out `t1`, then `t2` after an invalidation, and counts its calls.
#[derive(Default)]
struct Rotating {
    generation: AtomicUsize,
    token_calls: AtomicUsize,
    invalidations: AtomicUsize,
}

impl TokenSource for Rotating {
    async fn token(&self) -> Result<AccessToken, ClientError> {
        self.token_calls.fetch_add(1, Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst) + 1;
        Ok(AccessToken::new(format!("t{generation}")))
    }

    fn invalidate(&self) {
        self.invalidations.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Accepts only `Bearer <accepted>`; 401 otherwise.
struct Accepts(&'static str);

impl Respond for Accepts {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let expected = format!("Bearer {}", self.0);
        match request.headers.get("authorization") {
            Some(value) if value == expected.as_str() => ResponseTemplate::new(200)
                .set_body_string(format!("hello {}", String::from_utf8_lossy(&request.body))),
            _ => ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Bearer error=\"invalid_token\""),
        }
    }
}

async fn api(responder: impl Respond + 'static) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path("/api"))
        .respond_with(responder)
        .mount(&server)
        .await;
    server
}

async fn auth_headers(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            r.headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn attaches_a_fresh_token_to_every_request() {
    let server = api(ResponseTemplate::new(200)).await;
    let source = Arc::new(Rotating::default());
    let client = AuthorizedClient::new(Arc::clone(&source));
    let url = format!("{}/api", server.uri());
    client.send(client.get(&url)).await.unwrap();
    source.invalidate(); // e.g. a refresh happened in between
    client
        .send(client.get(&url).header("authorization", "Bearer forged"))
        .await
        .unwrap();
    assert_eq!(auth_headers(&server).await, ["Bearer t1", "Bearer t2"]);
    assert_eq!(
        source.token_calls.load(Ordering::SeqCst),
        2,
        "one token() per request"
    );
}

#[tokio::test]
async fn retries_once_with_a_new_token_after_a_401() {
    let server = api(Accepts("t2")).await;
    let source = Arc::new(Rotating::default());
    let client = AuthorizedClient::new(Arc::clone(&source));
    let response = client
        .send(client.post(format!("{}/api", server.uri())).body("world"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "hello world",
        "the body was resent"
    );
    assert_eq!(auth_headers(&server).await, ["Bearer t1", "Bearer t2"]);
    assert_eq!(source.invalidations.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retries_only_once() {
    let server = api(Accepts("never")).await;
    let source = Arc::new(Rotating::default());
    let client = AuthorizedClient::new(Arc::clone(&source));
    let response = client
        .send(client.get(format!("{}/api", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(auth_headers(&server).await, ["Bearer t1", "Bearer t2"]);
}

#[tokio::test]
async fn does_not_retry_a_streaming_body() {
    let server = api(Accepts("t2")).await;
    let source = Arc::new(Rotating::default());
    let client = AuthorizedClient::new(Arc::clone(&source));
    let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![Ok(b"streamed")];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = client
        .send(client.post(format!("{}/api", server.uri())).body(body))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(auth_headers(&server).await, ["Bearer t1"]);
    assert_eq!(source.invalidations.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn does_not_retry_when_the_token_cannot_change() {
    let server = api(Accepts("other")).await;
    let client = AuthorizedClient::new(StaticToken::new("static").unwrap());
    let response = client
        .send(client.get(format!("{}/api", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(auth_headers(&server).await, ["Bearer static"]);
}

#[tokio::test]
async fn other_statuses_are_returned_as_they_are() {
    let server = api(ResponseTemplate::new(403)).await;
    let source = Arc::new(Rotating::default());
    let client = AuthorizedClient::new(Arc::clone(&source));
    let response = client
        .send(client.delete(format!("{}/api", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(source.invalidations.load(Ordering::SeqCst), 0);
    assert_eq!(auth_headers(&server).await.len(), 1);
}

#[tokio::test]
async fn token_errors_are_returned_and_nothing_is_sent() {
    let server = api(ResponseTemplate::new(200)).await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})))
        .mount(&idp)
        .await;
    let source = ClientCredentials::builder("agentcube-app", "wrong")
        .token_endpoint(format!("{}/token", idp.uri()))
        .build()
        .unwrap();
    let client = AuthorizedClient::new(source);
    let err = client
        .send(client.get(format!("{}/api", server.uri())))
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("invalid_client"));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn with_client_credentials_a_401_fetches_one_new_token() {
    // The IdP issues token-1, token-2, …; the API accepts only token-2 (token-1 was "revoked").
    struct Seq(AtomicUsize);
    impl Respond for Seq {
        fn respond(&self, _: &Request) -> ResponseTemplate {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": format!("token-{n}"), "token_type": "Bearer", "expires_in": 300}),
            )
        }
    }
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Seq(AtomicUsize::new(0)))
        .mount(&idp)
        .await;
    let server = MockServer::start().await;
    Mock::given(bearer_token("token-2"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let source = ClientCredentials::builder("agentcube-app", "secret")
        .token_endpoint(format!("{}/token", idp.uri()))
        .http(HttpConfig::new().timeout(Duration::from_secs(5)))
        .build()
        .unwrap();
    let client = AuthorizedClient::new(source);
    let url = format!("{}/api", server.uri());
    assert_eq!(client.send(client.get(&url)).await.unwrap().status(), 200);
    assert_eq!(client.send(client.get(&url)).await.unwrap().status(), 200);
    assert_eq!(idp.received_requests().await.unwrap().len(), 2);
    assert_eq!(
        auth_headers(&server).await,
        ["Bearer token-1", "Bearer token-2", "Bearer token-2"]
    );
}

#[tokio::test]
async fn works_with_a_shared_dyn_source() {
    let server = api(Accepts("abc")).await;
    let source: Arc<dyn DynTokenSource> = Arc::new(StaticToken::new("abc").unwrap());
    let client = AuthorizedClient::from_shared(reqwest::Client::new(), source);
    let response = client
        .send(client.get(format!("{}/api", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!format!("{client:?}").contains("abc"));
}

#[tokio::test]
async fn network_errors_have_a_code() {
    let closed = ClosedPort::bind();
    let client = AuthorizedClient::new(StaticToken::new("abc").unwrap());
    let err = client
        .send(client.get(format!("{}/api", closed.url())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network_error");
}

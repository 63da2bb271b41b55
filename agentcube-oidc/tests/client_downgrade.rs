//! An `https` issuer never leads to a plain `http` endpoint: a discovery document served over
//! TLS that names an `http` token, device authorization, authorization or JWKS endpoint is
//! refused before any request goes there (so no client secret, code or refresh token is ever
//! sent in clear, and no key set comes over an unauthenticated channel).
//!
//! The issuer here is a small TLS server on 127.0.0.1 with a self-signed test certificate
//! (`tests/support/tls`, a fixture made for these tests only); the clients accept it with
//! `tls_danger_accept_invalid_certs`. The `http` endpoints are wiremock servers that must see
//! no request at all.
#![cfg(feature = "client")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentcube_oidc::client::{
    AuthorizationCodeFlow, ClientCredentials, DeviceFlow, HttpConfig, RetryPolicy, TokenSource,
};
use agentcube_oidc::{KeyStoreConfig, OidcConfig, OidcVerifier};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "must-never-travel-in-clear";

/// An https issuer at `https://127.0.0.1:PORT/realms/agentcube` whose discovery document is
/// `document(base)` and whose `POST …/token` answers a token; counts the requests it got.
struct HttpsIssuer {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl HttpsIssuer {
    async fn start(document: impl Fn(&str) -> Value + Send + Sync + 'static) -> Self {
        let cert = CertificateDer::from(include_bytes!("support/tls/cert.der").to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            include_bytes!("support/tls/key.der").to_vec(),
        ));
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let requests = Arc::new(AtomicUsize::new(0));
        let (count, issuer) = (Arc::clone(&requests), base.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let head = read_head(&mut tls).await;
                let body = if head.starts_with("GET ") {
                    document(&issuer).to_string()
                } else {
                    json!({"access_token": "over-tls", "token_type": "Bearer"}).to_string()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            }
        });
        Self { base, requests }
    }

    fn issuer(&self) -> String {
        format!("{}/realms/agentcube", self.base)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads a request head (and, for a POST, its body) and returns the head.
async fn read_head(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the request head");
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let length = text
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(str::to_owned)
        })
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let mut have = buf.len() - head_end;
    while have < length {
        have += stream.read(&mut chunk).await.unwrap();
    }
    text[..head_end].to_owned()
}

/// HTTP settings that trust the test certificate and do not retry.
fn tls_http() -> HttpConfig {
    HttpConfig::new()
        .client(tls_client())
        .retry(RetryPolicy::none())
}

fn tls_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A plain-http server that must see nothing.
async fn plain_http() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "in-clear", "token_type": "Bearer", "device_code": "d",
                   "user_code": "u", "verification_uri": "http://x", "expires_in": 60}),
        ))
        .mount(&server)
        .await;
    server
}

async fn assert_untouched(server: &MockServer) {
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.is_empty(),
        "{} request(s) went to the plain-http endpoint",
        requests.len()
    );
}

#[tokio::test]
async fn an_https_document_naming_an_http_token_endpoint_is_refused_before_the_secret_is_sent() {
    let plain = plain_http().await;
    let token_endpoint = format!("{}/token", plain.uri());
    let issuer = HttpsIssuer::start(move |issuer| {
        json!({"issuer": format!("{issuer}/realms/agentcube"), "token_endpoint": token_endpoint})
    })
    .await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .issuer(issuer.issuer())
        .http(tls_http())
        .build()
        .unwrap();
    let err = source.token().await.unwrap_err();
    assert_eq!(err.code(), "discovery_failed", "{err}");
    assert_eq!(
        err.to_string(),
        "openid discovery failed: token_endpoint is plain http but the document came over https"
    );
    assert!(!format!("{err} {err:?}").contains(SECRET));
    assert_eq!(issuer.requests(), 1, "the discovery document, over TLS");
    assert_untouched(&plain).await;
}

#[tokio::test]
async fn the_same_document_naming_an_https_token_endpoint_works() {
    // The control: TLS to the test issuer works, so the refusal above is the rule, not TLS.
    let issuer = HttpsIssuer::start(|issuer| {
        json!({
            "issuer": format!("{issuer}/realms/agentcube"),
            "token_endpoint": format!("{issuer}/realms/agentcube/protocol/openid-connect/token"),
        })
    })
    .await;
    let source = ClientCredentials::builder("agentcube-app", SECRET)
        .issuer(issuer.issuer())
        .http(tls_http())
        .build()
        .unwrap();
    assert_eq!(source.token().await.unwrap().secret(), "over-tls");
    assert_eq!(issuer.requests(), 2);
}

#[tokio::test]
async fn an_https_document_naming_an_http_device_endpoint_is_refused() {
    let plain = plain_http().await;
    let device = format!("{}/device", plain.uri());
    let issuer = HttpsIssuer::start(move |issuer| {
        json!({
            "issuer": format!("{issuer}/realms/agentcube"),
            "token_endpoint": format!("{issuer}/token"),
            "device_authorization_endpoint": device,
        })
    })
    .await;
    let flow = DeviceFlow::builder("agentcube-cli")
        .issuer(issuer.issuer())
        .http(tls_http())
        .build()
        .unwrap();
    let err = flow.start().await.unwrap_err();
    assert_eq!(err.code(), "discovery_failed", "{err}");
    assert!(
        err.to_string()
            .contains("device_authorization_endpoint is plain http"),
        "{err}"
    );
    assert_untouched(&plain).await;
}

#[tokio::test]
async fn an_https_document_naming_an_http_authorization_endpoint_is_refused() {
    let plain = plain_http().await;
    let authorization = format!("{}/auth", plain.uri());
    let issuer = HttpsIssuer::start(move |issuer| {
        json!({
            "issuer": format!("{issuer}/realms/agentcube"),
            "token_endpoint": format!("{issuer}/token"),
            "authorization_endpoint": authorization,
        })
    })
    .await;
    let flow = AuthorizationCodeFlow::builder("agentcube-cli")
        .issuer(issuer.issuer())
        .http(tls_http())
        .build()
        .unwrap();
    let err = flow
        .authorization_request("http://127.0.0.1:1/callback")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "discovery_failed", "{err}");
    assert!(
        err.to_string()
            .contains("authorization_endpoint is plain http"),
        "{err}"
    );
    assert_untouched(&plain).await;
}

#[tokio::test]
async fn an_https_document_naming_an_http_jwks_uri_is_refused() {
    let plain = plain_http().await;
    let jwks = format!("{}/certs", plain.uri());
    let issuer = HttpsIssuer::start(
        move |issuer| json!({"issuer": format!("{issuer}/realms/agentcube"), "jwks_uri": jwks}),
    )
    .await;
    let verifier = OidcVerifier::new(
        OidcConfig::new(issuer.issuer()).key_store(KeyStoreConfig::new().http_client(tls_client())),
    )
    .unwrap();
    let err = verifier.refresh_keys().await.unwrap_err();
    assert_eq!(err.code(), "invalid_discovery", "{err}");
    assert!(err.to_string().contains("jwks_uri is plain http"), "{err}");
    assert_eq!(issuer.requests(), 1);
    assert_untouched(&plain).await;
}

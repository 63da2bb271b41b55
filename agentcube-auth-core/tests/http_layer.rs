//! The `http` feature through its public API: bearer parsing, the tower layer end to end,
//! error responses, and (feature `axum`) the extractor.
#![cfg(feature = "http")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use agentcube_auth_core::http::{
    AuthLayer, OnRejection, RETRY_AFTER_SECS, bearer_token, error_response,
};
use agentcube_auth_core::{
    AuthError, Code, ErrorCode, KeysUnavailableReason, Principal, Requirement, Role, RoleHierarchy,
    ServiceError, TokenVerifier,
};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt, service_fn};

const SECRET: &str = "s3cr3t-T0KEN-do-not-leak";

/// Maps a few known tokens to principals or errors, and counts calls. It answers at its first
/// poll (as a verified-token cache hit does), or, [`waiting`](Self::waiting), only at its
/// second (as a verification that fetches keys does).
#[derive(Default)]
struct FakeVerifier {
    calls: AtomicUsize,
    waits: bool,
}

impl FakeVerifier {
    fn waiting() -> Self {
        Self {
            waits: true,
            ..Self::default()
        }
    }
}

impl TokenVerifier for FakeVerifier {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.waits {
            tokio::task::yield_now().await;
        }
        let user = |sub: &str, roles: &[&str]| {
            Ok(
                Principal::builder("https://idp.example/realms/agentcube", sub)
                    .roles(roles.iter().map(|r| Role::realm(*r)))
                    .build(),
            )
        };
        match token {
            "invoker" => user("alice", &["sandbox:invoke"]),
            "admin" => user("root", &["admin"]),
            "nobody" => user("bob", &[]),
            "expired" => Err(AuthError::Expired),
            "keys-down" => Err(AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded)),
            _ => Err(AuthError::InvalidSignature),
        }
    }
}

fn headers(values: &[&[u8]]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        map.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
    }
    map
}

fn code(values: &[&[u8]]) -> ErrorCode {
    bearer_token(&headers(values)).unwrap_err().code()
}

#[test]
fn bearer_parsing_follows_the_shared_rules() {
    assert_eq!(
        bearer_token(&HeaderMap::new()).unwrap_err(),
        AuthError::MissingAuthorization
    );
    assert_eq!(code(&[b""]), ErrorCode::MissingAuthorization);

    for bad in [
        &b"Basic x"[..],
        b"Bearer",
        b"Bearer\ttok",
        b"Bearertok",
        b"Bear tok",
        b"Bearer-x tok",
        b"Token tok",
        b" Bearer tok",
        b"Bearer t\xc3\xb6k",
        b"Bearer \xff",
    ] {
        assert_eq!(
            code(&[bad]),
            ErrorCode::InvalidAuthorizationFormat,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }

    for empty in [&b"Bearer "[..], b"Bearer    ", b"Bearer \t ", b"bearer  "] {
        assert_eq!(code(&[empty]), ErrorCode::EmptyBearerToken);
    }

    let ok = |v: &'static [u8]| {
        let h = headers(&[v]);
        bearer_token(&h).map(str::to_owned)
    };
    assert_eq!(ok(b"Bearer tok").unwrap(), "tok");
    assert_eq!(ok(b"bearer tok").unwrap(), "tok");
    assert_eq!(ok(b"BEARER tok").unwrap(), "tok");
    assert_eq!(ok(b"bEaReR tok").unwrap(), "tok");
    assert_eq!(ok(b"Bearer  tok  ").unwrap(), "tok");
    assert_eq!(ok(b"Bearer \ttok\t").unwrap(), "tok");
    assert_eq!(ok(b"Bearer a.b.c").unwrap(), "a.b.c");
    // Inner whitespace is the verifier's problem: it answers `malformed` like any bad token.
    assert_eq!(ok(b"Bearer a b").unwrap(), "a b");
}

#[test]
fn two_authorization_headers_are_ambiguous() {
    assert_eq!(
        code(&[b"Bearer a", b"Bearer b"]),
        ErrorCode::InvalidAuthorizationFormat
    );
    assert_eq!(
        code(&[b"Bearer a", b"Bearer a"]),
        ErrorCode::InvalidAuthorizationFormat
    );
    assert_eq!(
        code(&[b"Bearer a", b""]),
        ErrorCode::InvalidAuthorizationFormat
    );
}

#[test]
fn bearer_token_borrows_from_the_headers() {
    let h = headers(&[b"Bearer   tok"]);
    let token = bearer_token(&h).unwrap();
    let value = h.get(AUTHORIZATION).unwrap().as_bytes();
    let range = value.as_ptr_range();
    assert!(range.contains(&token.as_ptr()));
}

#[test]
fn error_response_renders_json_status_and_challenge() {
    let res = error_response(&AuthError::InsufficientRole(Role::realm("sandbox:invoke")));
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer error="insufficient_scope""#
    );
    assert_eq!(
        res.body().as_ref(),
        br#"{"error":"insufficient permissions: missing role sandbox:invoke","code":"insufficient_role"}"#
    );

    // Role names come from configuration and may hold characters JSON must escape.
    let res = error_response(&AuthError::InsufficientRole(Role::realm("a\"b\\c\n")));
    let json: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
    assert_eq!(
        json["error"],
        "insufficient permissions: missing role a\"b\\c\n"
    );
    assert_eq!(json["code"], "insufficient_role");
    assert_eq!(json.as_object().unwrap().len(), 2);
}

#[test]
fn every_code_renders_its_status_and_challenge() {
    let errors = [
        AuthError::MissingAuthorization,
        AuthError::InvalidAuthorizationFormat,
        AuthError::EmptyBearerToken,
        AuthError::UnknownKid,
        AuthError::Expired,
        AuthError::KeysUnavailable(KeysUnavailableReason::TooStale),
        AuthError::InsufficientRole(Role::realm("x")),
    ];
    for err in errors {
        let res = error_response(&err);
        assert_eq!(res.status().as_u16(), err.http_status());
        assert_eq!(
            res.headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().unwrap()),
            err.www_authenticate()
        );
        assert_eq!(
            res.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap()),
            (err.http_status() == 503).then_some("1"),
            "{err:?}"
        );
        let json: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(json["code"], err.code().as_str());
        assert_eq!(json["error"], &*err.public_message());
    }
}

#[test]
fn every_503_rejection_carries_retry_after_and_no_other_status_does() {
    assert_eq!(RETRY_AFTER_SECS, 1);
    for err in [
        AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded),
        AuthError::KeysUnavailable(KeysUnavailableReason::TooStale),
        AuthError::ReplayGuardFull,
    ] {
        let res = error_response(&err);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[RETRY_AFTER], "1", "{err:?}");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none(), "{err:?}");
        let json: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(json["code"], err.code().as_str());
    }
    // Any rejection answered 503, not only the authentication errors.
    let busy = ServiceError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::new("store_unavailable"),
        "session store unavailable",
    );
    let res = error_response(&busy);
    assert_eq!(res.headers()[RETRY_AFTER], "1");
    assert_eq!(
        res.body().as_ref(),
        br#"{"error":"session store unavailable","code":"store_unavailable"}"#
    );
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED,
        StatusCode::FORBIDDEN,
        StatusCode::NOT_FOUND,
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::BAD_GATEWAY,
        StatusCode::GATEWAY_TIMEOUT,
    ] {
        let res = error_response(&ServiceError::new(status, Code::new("other"), "other"));
        assert!(res.headers().get(RETRY_AFTER).is_none(), "{status}");
    }
}

#[test]
fn a_bad_token_answer_names_its_exact_code_behind_the_vague_message() {
    for (err, code) in [
        (AuthError::Expired, "expired"),
        (AuthError::InvalidSignature, "invalid_signature"),
        (AuthError::UnknownKid, "unknown_kid"),
        (AuthError::NotYetValid, "not_yet_valid"),
    ] {
        let res = error_response(&err);
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let json: serde_json::Value = serde_json::from_slice(res.body()).unwrap();
        assert_eq!(json["code"], code);
        assert_eq!(json["error"], "invalid or expired token");
    }
}

// ---- the layer end to end ----

struct Harness {
    verifier: Arc<FakeVerifier>,
    inner_calls: Arc<AtomicUsize>,
    rejections: Arc<Mutex<Vec<ErrorCode>>>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn challenge(&self) -> Option<&str> {
        self.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
    }

    fn retry_after(&self) -> Option<&str> {
        self.headers.get(RETRY_AFTER).map(|v| v.to_str().unwrap())
    }
}

impl Harness {
    fn new() -> Self {
        Self::with(FakeVerifier::default())
    }

    fn with(verifier: FakeVerifier) -> Self {
        Self {
            verifier: Arc::new(verifier),
            inner_calls: Arc::new(AtomicUsize::new(0)),
            rejections: Arc::default(),
        }
    }

    fn layer(
        &self,
    ) -> AuthLayer<FakeVerifier, impl Fn(&AuthError) + Clone + Send + Sync + 'static> {
        let rejections = Arc::clone(&self.rejections);
        AuthLayer::from_arc(Arc::clone(&self.verifier))
            .on_rejection(move |e: &AuthError| rejections.lock().unwrap().push(e.code()))
    }

    fn verify_calls(&self) -> usize {
        self.verifier.calls.load(Ordering::SeqCst)
    }

    fn inner_calls(&self) -> usize {
        self.inner_calls.load(Ordering::SeqCst)
    }

    async fn send<F: OnRejection + Clone>(
        &self,
        layer: AuthLayer<FakeVerifier, F>,
        authorization: Option<&str>,
    ) -> Answer {
        let service = layer.layer(Echo {
            calls: Arc::clone(&self.inner_calls),
        });
        let mut request =
            Request::builder().uri("/v1/namespaces/ns/agent-runtimes/a/invocations/x");
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let response = service
            .oneshot(request.body(Full::default()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }
}

/// Counts its calls and answers with the subject of the principal it was given.
#[derive(Clone)]
struct Echo {
    calls: Arc<AtomicUsize>,
}

impl Service<Request<Full<Bytes>>> for Echo {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Full<Bytes>>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let who = req
            .extensions()
            .get::<Principal>()
            .map_or_else(|| "<no principal>".to_owned(), |p| p.subject().to_owned());
        ready(Ok(Response::new(Full::new(Bytes::from(who)))))
    }
}

#[tokio::test]
async fn authenticated_request_reaches_the_inner_service_with_the_principal() {
    let h = Harness::new();
    let res = h.send(h.layer(), Some("Bearer invoker")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "alice");
    assert_eq!(h.inner_calls(), 1);
    assert_eq!(h.verify_calls(), 1);
    assert!(h.rejections.lock().unwrap().is_empty());
}

#[tokio::test]
async fn missing_header_is_401_with_bare_challenge() {
    let h = Harness::new();
    let res = h.send(h.layer(), None).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.challenge(), Some("Bearer"));
    assert_eq!(res.retry_after(), None);
    assert_eq!(res.headers[CONTENT_TYPE], "application/json");
    assert_eq!(
        res.text(),
        r#"{"error":"missing authorization header","code":"missing_authorization"}"#
    );
    assert_eq!(h.inner_calls(), 0);
    assert_eq!(
        h.verify_calls(),
        0,
        "header errors never reach the verifier"
    );
    assert_eq!(
        *h.rejections.lock().unwrap(),
        [ErrorCode::MissingAuthorization]
    );
}

#[tokio::test]
async fn malformed_headers_are_401_without_verification() {
    let h = Harness::new();
    let res = h.send(h.layer(), Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.text(),
        r#"{"error":"invalid authorization header format","code":"invalid_authorization_format"}"#
    );
    assert_eq!(res.challenge(), Some(r#"Bearer error="invalid_token""#));

    let res = h.send(h.layer(), Some("Bearer    ")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.text(),
        r#"{"error":"empty bearer token","code":"empty_bearer_token"}"#
    );

    assert_eq!(h.inner_calls(), 0);
    assert_eq!(h.verify_calls(), 0);
}

#[tokio::test]
async fn invalid_token_is_401_invalid_token() {
    let h = Harness::new();
    let res = h.send(h.layer(), Some("Bearer forged")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.challenge(), Some(r#"Bearer error="invalid_token""#));
    assert_eq!(res.retry_after(), None);
    assert_eq!(
        res.text(),
        r#"{"error":"invalid or expired token","code":"invalid_signature"}"#
    );
    let res = h.send(h.layer(), Some("Bearer expired")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.text(),
        r#"{"error":"invalid or expired token","code":"expired"}"#
    );
    assert_eq!(h.inner_calls(), 0);
    assert_eq!(h.verify_calls(), 2);
    assert_eq!(
        *h.rejections.lock().unwrap(),
        [ErrorCode::InvalidSignature, ErrorCode::Expired]
    );
}

#[tokio::test]
async fn missing_role_is_403_insufficient_scope() {
    let h = Harness::new();
    let layer = h.layer().require(Requirement::realm_role("sandbox:invoke"));
    let res = h.send(layer.clone(), Some("Bearer nobody")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(
        res.challenge(),
        Some(r#"Bearer error="insufficient_scope""#)
    );
    assert_eq!(res.retry_after(), None);
    assert_eq!(
        res.text(),
        r#"{"error":"insufficient permissions: missing role sandbox:invoke","code":"insufficient_role"}"#
    );
    assert_eq!(h.inner_calls(), 0);

    // With a flat hierarchy (the default) `admin` does not imply `sandbox:invoke`.
    let res = h.send(layer, Some("Bearer admin")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(h.inner_calls(), 0);
}

#[tokio::test]
async fn requirement_is_satisfied_through_the_hierarchy() {
    let h = Harness::new();
    let hierarchy = RoleHierarchy::from_pairs([
        (Role::realm("admin"), Role::realm("sandbox:manage")),
        (Role::realm("sandbox:manage"), Role::realm("sandbox:invoke")),
    ])
    .unwrap();
    let layer = h
        .layer()
        .require(Requirement::realm_role("sandbox:invoke"))
        .hierarchy(Arc::new(hierarchy));
    let res = h.send(layer.clone(), Some("Bearer admin")).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "root");
    let res = h.send(layer.clone(), Some("Bearer invoker")).await;
    assert_eq!(res.status, StatusCode::OK);
    let res = h.send(layer, Some("Bearer nobody")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(h.inner_calls(), 2);
}

#[tokio::test]
async fn unavailable_keys_are_503_without_challenge() {
    let h = Harness::new();
    let res = h.send(h.layer(), Some("Bearer keys-down")).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.challenge(), None);
    assert_eq!(res.retry_after(), Some("1"));
    assert_eq!(
        res.text(),
        r#"{"error":"verification keys are unavailable","code":"keys_unavailable"}"#
    );
    assert_eq!(h.inner_calls(), 0);
}

#[tokio::test]
async fn the_token_never_appears_in_a_response() {
    let h = Harness::new();
    let layer = h.layer().require(Requirement::realm_role("sandbox:invoke"));
    for authorization in [
        format!("Bearer {SECRET}"),
        format!("Basic {SECRET}"),
        format!("Bearer{SECRET}"),
        format!("Bearer {SECRET} extra"),
    ] {
        let res = h.send(layer.clone(), Some(&authorization)).await;
        assert_ne!(res.status, StatusCode::OK);
        assert!(!res.text().contains(SECRET), "{}", res.text());
        assert!(!res.text().contains("s3cr3t"));
        for (name, value) in &res.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(!value.contains("s3cr3t"), "{name}: {value}");
        }
    }
    assert_eq!(h.inner_calls(), 0);
}

#[tokio::test]
async fn rejection_body_reports_its_exact_size() {
    let h = Harness::new();
    let calls = Arc::clone(&h.inner_calls);
    let mut service = h
        .layer()
        .layer(service_fn(move |_req: Request<Full<Bytes>>| {
            calls.fetch_add(1, Ordering::SeqCst);
            ready(Ok::<_, Infallible>(Response::new(Full::new(
                Bytes::from_static(b"ok"),
            ))))
        }));
    let res = service
        .ready()
        .await
        .unwrap()
        .call(Request::new(Full::default()))
        .await
        .unwrap();
    let body = res.into_body();
    assert!(body.is_rejection());
    let expected = br#"{"error":"missing authorization header","code":"missing_authorization"}"#;
    assert_eq!(body.size_hint().exact(), Some(expected.len() as u64));
    assert!(!body.is_end_stream());
    assert_eq!(body.collect().await.unwrap().to_bytes(), &expected[..]);
}

/// A service that must be driven to readiness before each call; clones start not ready and are
/// counted.
struct MustBeReady {
    ready: bool,
    calls: Arc<AtomicUsize>,
    clones: Arc<AtomicUsize>,
}

impl Clone for MustBeReady {
    fn clone(&self) -> Self {
        self.clones.fetch_add(1, Ordering::SeqCst);
        Self {
            ready: false,
            calls: Arc::clone(&self.calls),
            clones: Arc::clone(&self.clones),
        }
    }
}

impl Service<Request<Full<Bytes>>> for MustBeReady {
    type Response = Response<Full<Bytes>>;
    type Error = &'static str;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ready = true;
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        if !std::mem::replace(&mut self.ready, false) {
            return ready(Err("called without poll_ready"));
        }
        self.calls.fetch_add(1, Ordering::SeqCst);
        ready(Ok(Response::new(Full::default())))
    }
}

#[tokio::test]
async fn the_service_driven_to_readiness_is_the_one_called() {
    // A verification that answers at once calls the ready service directly; one that waits
    // takes it into the response future and leaves a clone behind: one clone per request that
    // reaches the verifier (seven here, the one it refuses included).
    for (verifier, answers_at_once, expected_clones) in [
        (FakeVerifier::default(), true, 0),
        (FakeVerifier::waiting(), false, 7),
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let clones = Arc::new(AtomicUsize::new(0));
        let mut service = AuthLayer::new(verifier).layer(MustBeReady {
            ready: false,
            calls: Arc::clone(&calls),
            clones: Arc::clone(&clones),
        });
        let request = |token: &str| {
            Request::builder()
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .body(Full::default())
                .unwrap()
        };
        for _ in 0..3 {
            let ready_service = service.ready().await.unwrap();
            let res = ready_service.call(request("invoker")).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        // Two calls in flight at once, each from its own poll_ready.
        let first = service.ready().await.unwrap().call(request("invoker"));
        let second = service.ready().await.unwrap().call(request("invoker"));
        let (a, b) = tokio::join!(first, second);
        assert_eq!(a.unwrap().status(), StatusCode::OK);
        assert_eq!(b.unwrap().status(), StatusCode::OK);
        // A rejection decided in `call` (of the header) leaves the ready service in place for
        // the next call.
        let rejected = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(Full::default()));
        assert_eq!(rejected.await.unwrap().status(), StatusCode::UNAUTHORIZED);
        let res = service.call(request("invoker")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let ready_service = service.ready().await.unwrap();
        let refused = ready_service.call(request("expired")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let mut expected_calls = 6;
        if answers_at_once {
            // A refusal of the token decided in `call` leaves the ready service in place too.
            let res = service.call(request("invoker")).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            expected_calls += 1;
        }
        assert_eq!(calls.load(Ordering::SeqCst), expected_calls);
        assert_eq!(clones.load(Ordering::SeqCst), expected_clones);
    }
}

#[tokio::test]
async fn a_verification_that_waits_gives_the_same_answers() {
    let h = Harness::with(FakeVerifier::waiting());
    let layer = h.layer().require(Requirement::realm_role("sandbox:invoke"));
    let res = h.send(layer.clone(), Some("Bearer invoker")).await;
    assert_eq!((res.status, res.text()), (StatusCode::OK, "alice"));
    let res = h.send(layer.clone(), Some("Bearer nobody")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.text().contains(r#""code":"insufficient_role""#));
    let res = h.send(layer.clone(), Some("Bearer expired")).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.text().contains(r#""code":"expired""#));
    let res = h.send(layer, Some("Bearer keys-down")).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.inner_calls(), 1);
    assert_eq!(h.verify_calls(), 4);
    assert_eq!(
        *h.rejections.lock().unwrap(),
        [
            ErrorCode::InsufficientRole,
            ErrorCode::Expired,
            ErrorCode::KeysUnavailable
        ]
    );
}

#[test]
fn layer_and_service_are_send_sync_clone_and_futures_are_send() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    let mut service = AuthLayer::new(FakeVerifier::default())
        .require(Requirement::realm_role("sandbox:invoke"))
        .layer(service_fn(|_req: Request<Full<Bytes>>| {
            ready(Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())))
        }));
    assert_send_sync_clone(&service);
    let future = service.call(Request::new(Full::default()));
    assert_send(&future);
}

#[cfg(feature = "axum")]
mod axum_extractor {
    use super::*;
    use agentcube_auth_core::http::AuthenticatedPrincipal;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;

    async fn whoami(AuthenticatedPrincipal(principal): AuthenticatedPrincipal) -> String {
        principal.subject().to_owned()
    }

    async fn maybe(principal: Option<AuthenticatedPrincipal>) -> String {
        principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject().to_owned())
    }

    async fn call(
        app: Router,
        authorization: Option<&str>,
        path: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder().uri(path);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        let res = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn protected() -> Router {
        Router::new()
            .route("/whoami", get(whoami))
            .route("/maybe", get(maybe))
            .layer(
                AuthLayer::new(FakeVerifier::default())
                    .require(Requirement::realm_role("sandbox:invoke")),
            )
            .route("/health/live", get(|| async { "ok" }))
    }

    #[tokio::test]
    async fn extractor_sees_the_principal_behind_the_layer() {
        let (status, _, body) = call(protected(), Some("Bearer invoker"), "/whoami").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));
        let (status, _, body) = call(protected(), Some("Bearer invoker"), "/maybe").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));
    }

    #[tokio::test]
    async fn layer_rejects_before_the_handler_and_routes_outside_it_are_open() {
        let (status, headers, body) = call(protected(), None, "/whoami").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            body,
            r#"{"error":"missing authorization header","code":"missing_authorization"}"#
        );
        let (status, _, body) = call(protected(), Some("Bearer nobody"), "/whoami").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("insufficient_role"));
        let (status, _, body) = call(protected(), None, "/health/live").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    }

    #[tokio::test]
    async fn extractor_without_the_layer_fails_closed() {
        let app = Router::new()
            .route("/whoami", get(whoami))
            .route("/maybe", get(maybe));
        let (status, headers, body) = call(app.clone(), Some("Bearer invoker"), "/whoami").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[WWW_AUTHENTICATE], "Bearer");
        assert_eq!(headers[CONTENT_TYPE], "application/json");
        assert_eq!(
            body,
            r#"{"error":"missing authorization header","code":"missing_authorization"}"#
        );
        let (status, _, body) = call(app, Some("Bearer invoker"), "/maybe").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
    }

    #[tokio::test]
    async fn auth_error_is_an_axum_response() {
        use axum::response::IntoResponse;
        let res = AuthError::Expired.into_response();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            &body[..],
            br#"{"error":"invalid or expired token","code":"expired"}"#
        );
    }
}

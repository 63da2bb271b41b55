//! The rejection hook's view of the request: method, path (no query), the extensions earlier
//! middleware set (a request id), and the caller when a requirement refused it — never the token.

#![cfg(feature = "http")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use agentcube_auth_core::http::{AuthLayer, OnRejection, RejectedRequest, RequireLayer};
use agentcube_auth_core::{AuthError, Principal, Requirement, Role, TokenVerifier};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Clone, Debug, PartialEq, Eq)]
struct RequestId(&'static str);

/// What the hook saw, as text.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl OnRejection for Seen {
    fn on_rejection(&self, error: &AuthError) {
        self.0
            .lock()
            .unwrap()
            .push(format!("bare {}", error.code()));
    }

    fn on_rejected_request(&self, request: &RejectedRequest<'_>, error: &AuthError) {
        let id = request.extensions().get::<RequestId>().map(|r| r.0);
        self.0.lock().unwrap().push(format!(
            "{} {} id={id:?} sub={:?} {} {request:?}",
            request.method(),
            request.path(),
            request.principal().map(Principal::subject),
            error.code(),
        ));
    }
}

/// Answers from a fixed table: at its first poll, or, `waits`, only at its second (as a
/// verification that fetches keys does), so both of the layer's paths are seen.
struct Fixed {
    waits: bool,
}

impl TokenVerifier for Fixed {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if self.waits {
            tokio::task::yield_now().await;
        }
        match token {
            "eyJ-alice" => Ok(Principal::builder("https://idp", "alice").build()),
            "eyJ-admin" => Ok(Principal::builder("https://idp", "root")
                .roles([Role::realm("admin")])
                .build()),
            _ => Err(AuthError::InvalidSignature),
        }
    }
}

fn request(authorization: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/v1/things/1?access_token=eyJ-query");
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    let mut request = builder.body(Full::default()).unwrap();
    request.extensions_mut().insert(RequestId("req-7"));
    request
}

async fn status<S, B>(service: S, req: Request<Full<Bytes>>) -> StatusCode
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Infallible>,
{
    service.oneshot(req).await.unwrap().status()
}

fn ok() -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::default()))
    })
}

#[tokio::test]
async fn the_auth_layer_hook_sees_the_request_id_and_path_but_not_the_token() {
    hook_sees_the_request_id_and_path_but_not_the_token(Fixed { waits: false }).await;
}

#[tokio::test]
async fn the_hook_sees_the_same_when_the_verification_waits() {
    hook_sees_the_request_id_and_path_but_not_the_token(Fixed { waits: true }).await;
}

async fn hook_sees_the_request_id_and_path_but_not_the_token(verifier: Fixed) {
    let seen = Seen::default();
    let layer = AuthLayer::new(verifier)
        .require(Requirement::realm_role("admin"))
        .on_rejection(seen.clone());

    // Rejected in `call` (no header), after verification (bad token), by the requirement.
    assert_eq!(
        status(layer.layer(ok()), request(None)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(layer.layer(ok()), request(Some("Bearer eyJ-forged"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(layer.layer(ok()), request(Some("Bearer eyJ-alice"))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(layer.layer(ok()), request(Some("Bearer eyJ-admin"))).await,
        StatusCode::OK
    );

    let seen = seen.0.lock().unwrap().clone();
    let expected = [
        "POST /v1/things/1 id=Some(\"req-7\") sub=None missing_authorization",
        "POST /v1/things/1 id=Some(\"req-7\") sub=None invalid_signature",
        "POST /v1/things/1 id=Some(\"req-7\") sub=Some(\"alice\") insufficient_role",
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:#?}");
    for (line, expected) in seen.iter().zip(expected) {
        assert!(line.starts_with(expected), "{line} / {expected}");
        assert!(!line.contains("eyJ"), "the token reached the hook: {line}");
    }
}

#[tokio::test]
async fn the_require_layer_hook_sees_the_caller_it_refused() {
    let seen = Seen::default();
    let layer = RequireLayer::new(Requirement::realm_role("admin")).on_rejection(seen.clone());
    let mut refused = request(Some("Bearer eyJ-alice"));
    refused
        .extensions_mut()
        .insert(Principal::builder("https://idp", "alice").build());
    assert_eq!(
        status(layer.layer(ok()), refused).await,
        StatusCode::FORBIDDEN
    );
    // No principal at all: a wiring mistake, answered as missing credentials.
    assert_eq!(
        status(layer.layer(ok()), request(None)).await,
        StatusCode::UNAUTHORIZED
    );
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen[0].starts_with(
            "POST /v1/things/1 id=Some(\"req-7\") sub=Some(\"alice\") insufficient_role"
        ),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("POST /v1/things/1 id=Some(\"req-7\") sub=None missing_authorization"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_hook_that_only_takes_the_error_still_hears_every_rejection() {
    let seen = Seen::default();
    let bare = seen.clone();
    let layer = AuthLayer::new(Fixed { waits: false })
        .on_rejection(move |e: &AuthError| bare.on_rejection(e));
    assert_eq!(
        status(layer.layer(ok()), request(Some("Bearer eyJ-forged"))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(*seen.0.lock().unwrap(), ["bare invalid_signature"]);
}

//! The verifiers behind auth-core's `AuthLayer`: the identity header at a workload manager,
//! `Authorization: Bearer` at a sandbox. The principal reaches the inner service; a missing
//! header, an invalid token and missing keys are answered with their status and code, and the
//! inner service is never called for them.

#![allow(clippy::unwrap_used)] // test helpers

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentcube_auth_core::http::{AuthBody, AuthLayer, TokenLocation};
use agentcube_auth_core::{Principal, TokenVerifier};
use agentcube_identity::{
    IDENTITY_HEADER, IdentityVerifier, KeyRing, SandboxVerifier, SessionBinding, sandbox_session,
};
use bytes::Bytes;
use common::*;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

/// The session header a Router sets on requests to a sandbox.
const SESSION_HEADER: &str = "x-agentcube-session-id";

/// What the inner service saw: the principal's issuer, subject and bound session.
async fn echo(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let seen = req.extensions().get::<Principal>().map(|p| {
        json!({
            "issuer": p.issuer(),
            "subject": p.subject(),
            "session": sandbox_session(p),
        })
    });
    let body = serde_json::to_vec(&seen).unwrap();
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Sends `headers` through `service`; the status and the JSON body.
async fn call<S>(service: &S, headers: &[(&str, &[u8])]) -> (StatusCode, Value)
where
    S: Service<
            Request<Full<Bytes>>,
            Response = Response<AuthBody<Full<Bytes>>>,
            Error = Infallible,
        > + Clone,
{
    let mut request = Request::new(Full::default());
    for (name, value) in headers {
        request.headers_mut().append(
            header::HeaderName::try_from(*name).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    let response = service.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// The error code of a rejection body.
fn code_of(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("none")
}

#[tokio::test]
async fn identity_header_at_the_workload_manager() {
    let s = setup_with(|ring, clock| IdentityVerifier::new(ring).with_clock(clock));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = {
        let calls = calls.clone();
        service_fn(move |req| {
            calls.fetch_add(1, Ordering::SeqCst);
            echo(req)
        })
    };
    let service = ServiceBuilder::new()
        .layer(
            AuthLayer::new(s.verifier)
                .token_location(TokenLocation::header(IDENTITY_HEADER).unwrap()),
        )
        .service(counted);
    let token = s.minter.identity_token(&alice()).unwrap();

    // The principal reaches the inner service, qualified by the caller's IdP.
    let (status, body) = call(&service, &[(IDENTITY_HEADER, token.as_str().as_bytes())]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"issuer": KEYCLOAK, "subject": "alice-id", "session": null})
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Only the identity header counts: a bearer token is not looked at.
    let bearer = token.bearer();
    for (headers, status, code) in [
        (vec![], StatusCode::UNAUTHORIZED, "missing_authorization"),
        (
            vec![("authorization", bearer.as_bytes())],
            StatusCode::UNAUTHORIZED,
            "missing_authorization",
        ),
        (
            vec![(IDENTITY_HEADER, &b""[..])],
            StatusCode::UNAUTHORIZED,
            "missing_authorization",
        ),
        (
            vec![(IDENTITY_HEADER, &b"\xff\xfe"[..])],
            StatusCode::UNAUTHORIZED,
            "malformed",
        ),
        (
            vec![(IDENTITY_HEADER, &b"garbage"[..])],
            StatusCode::UNAUTHORIZED,
            "malformed",
        ),
        (
            vec![
                (IDENTITY_HEADER, token.as_str().as_bytes()),
                (IDENTITY_HEADER, token.as_str().as_bytes()),
            ],
            StatusCode::UNAUTHORIZED,
            "invalid_authorization_format",
        ),
    ] {
        let (got, body) = call(&service, &headers).await;
        assert_eq!((got, code_of(&body)), (status, code), "{headers:?}");
    }
    // A sandbox token is not an identity token.
    let sandbox = s.minter.sandbox_token(&alice(), "s1").unwrap();
    let (status, body) = call(&service, &[(IDENTITY_HEADER, sandbox.as_str().as_bytes())]).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::UNAUTHORIZED, "token_type_mismatch")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "rejections never reach it");
}

#[tokio::test]
async fn keys_unavailable_is_a_503() {
    let s = setup_with(|_, _| ());
    let token = s.minter.identity_token(&alice()).unwrap();
    let verifier = IdentityVerifier::new(KeyRing::empty()).with_clock(s.clock.clone());
    assert!(!TokenVerifier::is_ready(&verifier));
    let service = ServiceBuilder::new()
        .layer(
            AuthLayer::new(verifier)
                .token_location(TokenLocation::header(IDENTITY_HEADER).unwrap()),
        )
        .service(service_fn(echo));
    let (status, body) = call(&service, &[(IDENTITY_HEADER, token.as_str().as_bytes())]).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable")
    );

    let sandbox = s.minter.sandbox_token(&alice(), "s1").unwrap();
    let verifier = SandboxVerifier::new(KeyRing::empty(), SessionBinding::session("s1")).unwrap();
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(verifier))
        .service(service_fn(echo));
    let bearer = sandbox.bearer();
    let (status, body) = call(&service, &[("authorization", bearer.as_bytes())]).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable")
    );
}

#[tokio::test]
async fn bearer_sandbox_token_at_the_sandbox() {
    let s = setup_with(|ring, clock| {
        SandboxVerifier::new(ring, SessionBinding::session("s1"))
            .unwrap()
            .with_clock(clock)
    });
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(s.verifier))
        .service(service_fn(echo));
    let token = s.minter.sandbox_token(&alice(), "s1").unwrap();

    let bearer = token.bearer();
    let (status, body) = call(&service, &[("authorization", bearer.as_bytes())]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"issuer": "agentcube-router", "subject": "alice-id", "session": "s1"})
    );
    let lower = format!("bearer {}", token.as_str());
    let (status, _) = call(&service, &[("authorization", lower.as_bytes())]).await;
    assert_eq!(status, StatusCode::OK);

    let other = s.minter.sandbox_token(&alice(), "s2").unwrap().bearer();
    let identity = s.minter.identity_token(&alice()).unwrap();
    for (value, code) in [
        (&b""[..], "missing_authorization"),
        (b"Basic dXNlcjpwdw==", "invalid_authorization_format"),
        (b"Bearer ", "empty_bearer_token"),
        (token.as_str().as_bytes(), "invalid_authorization_format"),
        (other.as_bytes(), "audience_mismatch"),
        (identity.as_str().as_bytes(), "invalid_authorization_format"),
    ] {
        let (status, body) = call(&service, &[("authorization", value)]).await;
        assert_eq!(
            (status, code_of(&body)),
            (StatusCode::UNAUTHORIZED, code),
            "{value:?}"
        );
    }
    let (status, body) = call(&service, &[]).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::UNAUTHORIZED, "missing_authorization")
    );
    let identity_bearer = format!("Bearer {}", identity.as_str());
    let (status, body) = call(&service, &[("authorization", identity_bearer.as_bytes())]).await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::UNAUTHORIZED, "token_type_mismatch")
    );
}

/// A shared development sandbox: the layer accepts a token for any session, so the handler
/// compares the token's session with the request's.
#[tokio::test]
async fn a_shared_sandbox_handler_compares_the_session() {
    let s = setup_with(|ring, clock| {
        SandboxVerifier::new(ring, SessionBinding::AnySession)
            .unwrap()
            .with_clock(clock)
    });
    let handler = service_fn(|req: Request<Full<Bytes>>| async move {
        let requested = req
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok());
        let bound = req
            .extensions()
            .get::<Principal>()
            .and_then(sandbox_session);
        if requested.is_none() || requested != bound {
            let mut denied = Response::new(Full::new(Bytes::from_static(
                br#"{"code":"session_mismatch"}"#,
            )));
            *denied.status_mut() = StatusCode::FORBIDDEN;
            return Ok::<_, Infallible>(denied);
        }
        echo(req).await
    });
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(s.verifier))
        .service(handler);
    let a = s.minter.sandbox_token(&alice(), "sess-a").unwrap().bearer();
    let (status, body) = call(
        &service,
        &[("authorization", a.as_bytes()), (SESSION_HEADER, b"sess-a")],
    )
    .await;
    assert_eq!(
        (status, &body["session"]),
        (StatusCode::OK, &json!("sess-a"))
    );
    // Session A's token, replayed with a request about session B.
    let (status, body) = call(
        &service,
        &[("authorization", a.as_bytes()), (SESSION_HEADER, b"sess-b")],
    )
    .await;
    assert_eq!(
        (status, code_of(&body)),
        (StatusCode::FORBIDDEN, "session_mismatch")
    );
}

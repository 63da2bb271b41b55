//! End-to-end tests: the Router, the workload manager and the sandbox on loopback ports, driven
//! over real HTTP, with the development IdP standing in for Keycloak.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: failing loudly is the point, and the scenario table is printed"
)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentcube_auth_core::{Principal, Role};
use agentcube_examples::AGENTCUBE_REALM_JSON;
use agentcube_examples::dev_idp::DevIdp;
use agentcube_examples::quickstart::{self, Quickstart};
use agentcube_examples::router::{self, OidcOptions, RouterConfig};
use agentcube_examples::sandbox::{self, SESSION_HEADER, SandboxSession};
use agentcube_examples::scenario::{self, unverified_claims};
use agentcube_examples::server::{self, Server};
use agentcube_examples::stack::{Stack, StackOptions};
use agentcube_examples::workload_manager::{self, WorkloadManagerConfig};
use agentcube_identity::{IDENTITY_HEADER, IdentityVerifier, KeyRing, TokenMinter};
use agentcube_rlac::OwnerIdScheme;
use agentcube_rlac::{InMemoryOwnerStore, OWNER_ANNOTATION, OWNER_HASH_LABEL, OwnerHash};
use agentcube_testkit::net::ClosedPort;
use agentcube_testkit::services::redis_url;
use serde_json::{Value, json};
use support::http::{Answer, hold_the_slot, send, until_refused};

const AR: &str = "/v1/namespaces/default/agent-runtimes/demo/invocations/run";
const CI: &str = "/v1/namespaces/default/code-interpreters/demo/invocations/run";

fn http() -> reqwest::Client {
    scenario::http_client().expect("client")
}

async fn invoke(
    base: &str,
    path: &str,
    token: Option<&str>,
    session: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    send(invocation(base, path, token, session, extra)).await
}

/// The request [`invoke`] sends.
fn invocation(
    base: &str,
    path: &str,
    token: Option<&str>,
    session: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = http()
        .post(format!("{base}{path}"))
        .json(&json!({"hello": "world"}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(session) = session {
        request = request.header(SESSION_HEADER, session);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request
}

fn token(idp: &DevIdp, client: &str) -> String {
    idp.issue(client, &Value::Null).expect("token")
}

fn sub(token: &str) -> String {
    unverified_claims(token).expect("claims")["sub"]
        .as_str()
        .expect("sub")
        .to_owned()
}

async fn start() -> (Quickstart, DevIdp) {
    let qs = quickstart::start_dev(None).await.expect("quickstart");
    assert!(quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await);
    let idp = qs.idp.clone().expect("dev idp");
    (qs, idp)
}

/// A workload manager (in-memory store) that verifies identity tokens against `keys`.
async fn serve_wm(keys: Arc<KeyRing>, sandbox_url: &str) -> Server {
    workload_manager::serve(
        IdentityVerifier::new(keys),
        Arc::new(InMemoryOwnerStore::new()),
        WorkloadManagerConfig::new(sandbox_url),
    )
    .await
    .expect("wm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_scenario_passes_with_the_dev_idp() {
    let (qs, _idp) = start().await;
    let report = scenario::run(&qs.scenario).await.expect("scenario");
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    assert!(
        report
            .rows
            .iter()
            .all(|r| r.outcome == scenario::Outcome::Pass),
        "nothing may be skipped with the dev IdP"
    );
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_identity_header_is_ignored_and_its_authorization_never_reaches_the_sandbox() {
    let (qs, idp) = start().await;
    let base = qs.stack.router_url();
    let app = token(&idp, "agentcube-app");
    let app_sub = sub(&app);
    // The most dangerous forgery: a real identity token, signed with the Router's own key, for
    // an admin victim.
    let victim = Principal::builder(idp.issuer(), "victim")
        .roles([Role::realm("admin")])
        .build();
    let forged = qs
        .stack
        .minter
        .identity_token(&victim)
        .expect("mint")
        .as_str()
        .to_owned();

    // The client's own request id is passed on once, as the Router's, never beside it.
    let created = invoke(
        &base,
        AR,
        Some(&app),
        None,
        &[
            (IDENTITY_HEADER, &forged),
            ("x-request-id", "client-chosen-id"),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let session = created.session();
    assert!(!session.is_empty());
    assert_eq!(created.body["user_sub"], app_sub.as_str());
    assert_eq!(created.body["session_id"], session.as_str());
    let seen = created.seen_headers();
    assert!(
        !seen.iter().any(|h| h == "x-agentcube-user-identity"),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|h| *h == "authorization").count(),
        1,
        "{seen:?}"
    );
    assert!(seen.iter().any(|h| h == "x-forwarded-for"));
    assert_eq!(
        seen.iter().filter(|h| *h == "x-request-id").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(created.header("x-request-id"), Some("client-chosen-id"));

    // The owner recorded by the workload manager is the caller, with annotation and label.
    let caller = Principal::builder(idp.issuer(), app_sub.as_str()).build();
    let record = wm_record(&qs, &session, &caller).await;
    assert_eq!(record.status, 200, "{:?}", record.body);
    assert_eq!(record.body["ownerId"], app_sub.as_str());
    assert_eq!(record.body["kind"], "AgentRuntime");
    let meta = &record.body["metadata"];
    assert_eq!(meta["annotations"][OWNER_ANNOTATION], app_sub.as_str());
    assert_eq!(
        meta["labels"][OWNER_HASH_LABEL],
        OwnerHash::of_str(&app_sub).as_str()
    );
    assert_eq!(
        meta["labels"][OWNER_HASH_LABEL].as_str().map(str::len),
        Some(63)
    );

    // On an existing session too; and the echo is the real caller.
    let used = invoke(
        &base,
        AR,
        Some(&app),
        Some(&session),
        &[(IDENTITY_HEADER, &forged)],
    )
    .await;
    assert_eq!(used.status, 200, "{:?}", used.body);
    assert_eq!(used.body["user_sub"], app_sub.as_str());
    let seen = used.seen_headers();
    assert!(!seen.iter().any(|h| h == "x-agentcube-user-identity"));
    assert_eq!(seen.iter().filter(|h| *h == "authorization").count(), 1);

    // A forged identity header does not make a non-owner the owner.
    let second = token(&idp, quickstart::SECOND_CLIENT);
    let denied = invoke(
        &base,
        AR,
        Some(&second),
        Some(&session),
        &[(IDENTITY_HEADER, &forged)],
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.code(), "not_owner");
    assert_eq!(denied.error(), "you do not own this sandbox");
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_token_replayed_against_another_session_is_rejected_by_the_sandbox() {
    let (qs, idp) = start().await;
    let base = qs.stack.router_url();
    let app = token(&idp, "agentcube-app");
    let a = invoke(&base, AR, Some(&app), None, &[]).await.session();
    let b = invoke(&base, CI, Some(&app), None, &[]).await.session();
    assert!(!a.is_empty() && !b.is_empty() && a != b);

    // What a sandbox of session A receives from the Router.
    let caller = Principal::builder(idp.issuer(), sub(&app)).build();
    let for_a = qs
        .stack
        .minter
        .sandbox_token(&caller, &a)
        .expect("mint")
        .as_str()
        .to_owned();
    let sandbox = format!("{}/run", qs.stack.sandbox.url());
    let call = |token: String, session: String| {
        let sandbox = sandbox.clone();
        async move {
            send(
                http()
                    .post(sandbox)
                    .bearer_auth(token)
                    .header(SESSION_HEADER, session)
                    .body("{}"),
            )
            .await
        }
    };

    let ok = call(for_a.clone(), a.clone()).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let replayed = call(for_a, b.clone()).await;
    assert_eq!(replayed.status, 401, "{:?}", replayed.body);
    assert_eq!(replayed.code(), "audience_mismatch");
    assert_eq!(
        replayed
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer error=\"invalid_token\"")
    );

    // A sandbox started for session B refuses A's token even when the request claims to be
    // for A: the binding is its own, not the request's.
    let bound_to_b = sandbox::serve(
        Arc::clone(qs.stack.minter.key_ring()),
        &SandboxSession::Bound(b.clone()),
    )
    .await
    .expect("bound sandbox");
    let at_b = format!("{}/run", bound_to_b.url());
    let for_a_again = qs
        .stack
        .minter
        .sandbox_token(&caller, &a)
        .expect("mint")
        .as_str()
        .to_owned();
    for header in [a.as_str(), b.as_str()] {
        let refused = send(
            http()
                .post(&at_b)
                .bearer_auth(&for_a_again)
                .header(SESSION_HEADER, header)
                .body("{}"),
        )
        .await;
        assert_eq!(refused.status, 401, "header {header}: {:?}", refused.body);
        assert_eq!(refused.code(), "audience_mismatch");
    }
    let for_b = qs
        .stack
        .minter
        .sandbox_token(&caller, &b)
        .expect("mint")
        .as_str()
        .to_owned();
    let served = send(http().post(&at_b).bearer_auth(&for_b).body("{}")).await;
    assert_eq!(served.status, 200, "{:?}", served.body);
    assert_eq!(served.body["session_id"], b.as_str());
    bound_to_b.shutdown().await;

    // Neither an identity token nor the client's access token is a sandbox token.
    let identity = qs
        .stack
        .minter
        .identity_token(&caller)
        .expect("mint")
        .as_str()
        .to_owned();
    let wrong_kind = call(identity, a.clone()).await;
    assert_eq!(wrong_kind.status, 401);
    let access = call(app.clone(), a.clone()).await;
    assert_eq!(access.status, 401);
    let missing = send(http().post(&sandbox).header(SESSION_HEADER, a.as_str())).await;
    assert_eq!(missing.status, 401);
    let ok_token = qs
        .stack
        .minter
        .sandbox_token(&caller, &a)
        .expect("mint")
        .bearer();
    let no_session = send(http().post(&sandbox).header("authorization", &ok_token)).await;
    assert_eq!(no_session.status, 400, "{:?}", no_session.body);
    assert_eq!(no_session.code(), "missing_session_id");
    // A valid token sent twice is refused, never resolved by picking one.
    let twice = send(
        http()
            .post(&sandbox)
            .header(SESSION_HEADER, a.as_str())
            .header("authorization", &ok_token)
            .header("authorization", &ok_token),
    )
    .await;
    assert_eq!(twice.status, 401, "{:?}", twice.body);
    assert_eq!(twice.code(), "invalid_authorization_format");
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_starts_with_the_idp_down_and_becomes_ready_when_it_comes_up() {
    // Refused until the IdP comes up on it.
    let idp_port = ClosedPort::bind();
    let idp_addr = idp_port.addr();
    let issuer = format!("http://{idp_addr}/realms/agentcube");
    let verifier = Arc::new(
        OidcOptions::new(issuer.as_str())
            .jwks_refresh_cooldown(Duration::from_millis(200))
            .build()
            .expect("verifier"),
    );
    let stack = Stack::start(Arc::clone(&verifier), StackOptions::new())
        .await
        .expect("stack");
    let base = stack.router_url();

    let live = send(http().get(format!("{base}/health/live"))).await;
    assert_eq!(live.status, 200);
    let ready = send(http().get(format!("{base}/health/ready"))).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.code(), "keys_unavailable");

    // A well-framed token cannot be checked without keys: 503, not 401.
    let framed = format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.{}",
        "A".repeat(342)
    );
    let unavailable = invoke(&base, AR, Some(&framed), None, &[]).await;
    assert_eq!(unavailable.status, 503, "{:?}", unavailable.body);
    assert_eq!(unavailable.code(), "keys_unavailable");
    assert!(unavailable.headers.get("www-authenticate").is_none());
    // Header problems are still 401.
    let missing = invoke(&base, AR, None, None, &[]).await;
    assert_eq!(missing.status, 401);

    let idp = DevIdp::start_on_listener(AGENTCUBE_REALM_JSON, idp_port.listen())
        .await
        .expect("idp up");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ready = send(http().get(format!("{base}/health/ready"))).await;
        if ready.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "router never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = token(&idp, "agentcube-app");
    let ok = invoke(&base, AR, Some(&app), None, &[]).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_manager_restart_keeps_serving() {
    let (mut qs, idp) = start().await;
    let base = qs.stack.router_url();
    let app = token(&idp, "agentcube-app");
    let session = invoke(&base, AR, Some(&app), None, &[]).await.session();
    assert!(!session.is_empty());

    let wm_addr = qs.stack.workload_manager.addr();
    qs.stack.restart_workload_manager().await.expect("restart");
    assert_eq!(qs.stack.workload_manager.addr(), wm_addr);

    // The new instance fetches the Router's keys and verifies identity tokens.
    let created = invoke(&base, CI, Some(&app), None, &[]).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let deleted = send(
        http()
            .delete(format!("{base}/v1/sessions/{session}"))
            .bearer_auth(&app),
    )
    .await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.body);
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_manager_identity_failures_are_not_generic_500s() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let verifier = Arc::new(
        OidcOptions::new(idp.issuer())
            .jwks_refresh_cooldown(Duration::from_millis(200))
            .build()
            .expect("verifier"),
    );
    let app = token(&idp, "agentcube-app");
    let minter = Arc::new(TokenMinter::new(Arc::new(
        KeyRing::generate().expect("key"),
    )));

    // A Router in front of the WM at `wm_url` answers a new session with `status` and `code`.
    let assert_router_answers = |wm_url: String, status: u16, code: &'static str| {
        let verifier = Arc::clone(&verifier);
        let minter = Arc::clone(&minter);
        let app = app.clone();
        async move {
            let router = router::serve(
                verifier,
                minter,
                Arc::new(InMemoryOwnerStore::new()),
                RouterConfig::new(wm_url),
            )
            .await
            .expect("router");
            let answer = invoke(&router.url(), AR, Some(&app), None, &[]).await;
            assert_eq!(answer.status, status, "{:?}", answer.body);
            assert_eq!(answer.code(), code);
            router.shutdown().await;
        }
    };

    // A WM that trusts another Router key: it refuses the identity (401) → 502.
    let other = Arc::new(KeyRing::generate().expect("key"));
    let wm = serve_wm(other, "http://127.0.0.1:9").await;
    assert_router_answers(wm.url(), 502, "identity_rejected").await;
    wm.shutdown().await;

    // A WM without keys yet (503) → 503.
    let wm = serve_wm(Arc::new(KeyRing::empty()), "http://127.0.0.1:9").await;
    assert_router_answers(wm.url(), 503, "workload_manager_unavailable").await;
    wm.shutdown().await;

    // No WM at all → 503.
    let no_wm = ClosedPort::bind();
    assert_router_answers(no_wm.url(), 503, "workload_manager_unavailable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_failure_never_sends_a_request_without_identity() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let verifier = Arc::new(OidcOptions::new(idp.issuer()).build().expect("verifier"));
    // A stand-in workload manager that counts what it receives.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let fake_wm = server::serve(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { axum::http::StatusCode::OK }
    }))
    .await
    .expect("fake wm");
    // A Router whose key ring has no signing key.
    let router = router::serve(
        verifier,
        Arc::new(TokenMinter::new(Arc::new(KeyRing::empty()))),
        Arc::new(InMemoryOwnerStore::new()),
        RouterConfig::new(fake_wm.url()),
    )
    .await
    .expect("router");
    let app = token(&idp, "agentcube-app");
    let answer = invoke(&router.url(), AR, Some(&app), None, &[]).await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert_eq!(answer.code(), "jwt_signing_failed");
    assert_eq!(answer.error(), "failed to sign request");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    router.shutdown().await;
    fake_wm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_refuses_unexpected_workload_manager_answers_and_large_bodies() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let verifier = Arc::new(OidcOptions::new(idp.issuer()).build().expect("verifier"));
    let app = token(&idp, "agentcube-app");
    let caller = sub(&app);
    let down_port = ClosedPort::bind();
    let down = down_port.addr().to_string();
    // A stand-in workload manager: agent runtimes in `default` are recorded for someone else;
    // for the caller in `down` on a sandbox nobody listens on, in `malformed` on an endpoint
    // that is no URL at all, in `noentry` with no entry point, and in `badid` under an id no
    // sandbox token could carry; code interpreters fail with a 500.
    let fake_wm = server::serve(
        axum::Router::new()
            .route(
                "/v1/agent-runtime",
                axum::routing::post(move |axum::Json(body): axum::Json<Value>| async move {
                    let entry = |endpoint: &str| json!([{"path": "/", "protocol": "HTTP", "endpoint": endpoint}]);
                    let (session, entry_points, owner) = match body["namespace"].as_str() {
                        Some("down") => ("s-1", entry(&down), caller.as_str()),
                        Some("malformed") => ("s-2", entry("not a host"), caller.as_str()),
                        Some("noentry") => ("s-3", json!([]), caller.as_str()),
                        Some("badid") => ("bad id", entry(&down), caller.as_str()),
                        _ => ("s-0", entry(&down), "mallory"),
                    };
                    axum::Json(json!({
                        "kind": "AgentRuntime",
                        "sessionId": session,
                        "sandboxId": "x",
                        "sandboxName": "x",
                        "entryPoints": entry_points,
                        "ownerId": owner,
                    }))
                }),
            )
            .route(
                "/v1/code-interpreter",
                axum::routing::post(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
            ),
    )
    .await
    .expect("fake wm");
    let mut config = RouterConfig::new(fake_wm.url());
    config.max_body_bytes = 64;
    let router = router::serve(
        verifier,
        Arc::new(TokenMinter::new(Arc::new(
            KeyRing::generate().expect("key"),
        ))),
        Arc::new(InMemoryOwnerStore::new()),
        config,
    )
    .await
    .expect("router");
    let base = router.url();

    let mismatch = invoke(&base, AR, Some(&app), None, &[]).await;
    assert_eq!(mismatch.status, 502, "{:?}", mismatch.body);
    assert_eq!(mismatch.code(), "owner_mismatch");
    let failed = invoke(&base, CI, Some(&app), None, &[]).await;
    assert_eq!(failed.status, 502, "{:?}", failed.body);
    assert_eq!(failed.code(), "workload_manager_error");
    // A sandbox nobody listens on, and a request to it that cannot even be built (its entry
    // point is no URL): the same refusal.
    // A session with no entry point is one the Router cannot reach either; a session id no
    // sandbox token could carry is the workload manager's error.
    for (namespace, code) in [
        ("down", "sandbox_unavailable"),
        ("malformed", "sandbox_unavailable"),
        ("noentry", "sandbox_unavailable"),
        ("badid", "workload_manager_error"),
    ] {
        let path = format!("/v1/namespaces/{namespace}/agent-runtimes/demo/invocations/run");
        let refused = invoke(&base, &path, Some(&app), None, &[]).await;
        assert_eq!(refused.status, 502, "{namespace}: {:?}", refused.body);
        assert_eq!(refused.code(), code, "{namespace}");
    }
    let large = send(
        http()
            .post(format!("{base}{AR}"))
            .bearer_auth(&app)
            .body("x".repeat(65)),
    )
    .await;
    assert_eq!(large.status, 413, "{:?}", large.body);
    assert_eq!(large.code(), "body_too_large");
    router.shutdown().await;
    fake_wm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_manager_fails_closed_and_checks_owner_on_delete() {
    let ring = Arc::new(KeyRing::generate().expect("key"));
    let minter = TokenMinter::new(Arc::clone(&ring));
    let wm = serve_wm(Arc::clone(&ring), "http://127.0.0.1:8082").await;
    let url = wm.url();
    let issuer = "https://kc.example/realms/agentcube";
    let identity = |p: &Principal| minter.identity_token(p).expect("mint").as_str().to_owned();
    let alice = Principal::builder(issuer, "alice")
        .roles([Role::realm("sandbox:invoke")])
        .build();
    let bob = Principal::builder(issuer, "bob")
        .roles([Role::realm("sandbox:invoke")])
        .build();
    let root = Principal::builder(issuer, "root")
        .roles([Role::realm("admin")])
        .build();
    let body = json!({"kind": "AgentRuntime", "name": "demo", "namespace": "default"});
    let create = |header: Option<String>| {
        let mut request = http().post(format!("{url}/v1/agent-runtime")).json(&body);
        if let Some(h) = header {
            request = request.header(IDENTITY_HEADER, h);
        }
        send(request)
    };

    let missing = create(None).await;
    assert_eq!(missing.status, 401);
    let garbage = create(Some("not-a-token".into())).await;
    assert_eq!(garbage.status, 401);
    let sandbox_token = minter
        .sandbox_token(&alice, "s-1")
        .expect("mint")
        .as_str()
        .to_owned();
    let wrong_kind = create(Some(sandbox_token)).await;
    assert_eq!(wrong_kind.status, 401);
    let bad_body = send(
        http()
            .post(format!("{url}/v1/agent-runtime"))
            .header(IDENTITY_HEADER, identity(&alice))
            .body("{"),
    )
    .await;
    assert_eq!(bad_body.status, 400);
    assert_eq!(bad_body.code(), "invalid_request");
    let create_with = |body: Value| {
        send(
            http()
                .post(format!("{url}/v1/agent-runtime"))
                .header(IDENTITY_HEADER, identity(&alice))
                .json(&body),
        )
    };
    let other_kind =
        create_with(json!({"kind": "CodeInterpreter", "name": "demo", "namespace": "default"}))
            .await;
    assert_eq!(other_kind.status, 400);
    assert_eq!(other_kind.error(), "kind does not match the route");
    let bad_name = create_with(json!({"name": "Demo", "namespace": "default"})).await;
    assert_eq!(bad_name.status, 400);
    assert_eq!(bad_name.code(), "invalid_request");

    let created = create(Some(identity(&alice))).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    for field in [
        "kind",
        "sessionId",
        "sandboxId",
        "sandboxName",
        "entryPoints",
        "ownerId",
    ] {
        assert!(created.body.get(field).is_some(), "{field} missing");
    }
    assert_eq!(created.body["ownerId"], "alice");
    let session = created.body["sessionId"].as_str().expect("id").to_owned();

    // Reading a record needs an identity: the owner or an admin reads, others get 403.
    let read = |session: &str, header: Option<String>| {
        let mut request = http().get(format!("{url}/v1/sessions/{session}"));
        if let Some(h) = header {
            request = request.header(IDENTITY_HEADER, h);
        }
        send(request)
    };
    let anonymous = read(&session, None).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.code(), "missing_authorization");
    assert!(anonymous.body.get("ownerId").is_none());
    let by_bob = read(&session, Some(identity(&bob))).await;
    assert_eq!(by_bob.status, 403);
    assert_eq!(by_bob.code(), "not_owner");
    assert!(by_bob.body.get("ownerId").is_none());
    let by_root = read(&session, Some(identity(&root))).await;
    assert_eq!(by_root.status, 200);
    assert_eq!(by_root.body["ownerId"], "alice");
    let record = read(&session, Some(identity(&alice))).await;
    assert_eq!(record.status, 200);
    assert_eq!(record.body["ownerId"], "alice");
    assert_eq!(
        record.body["metadata"]["annotations"][OWNER_ANNOTATION],
        "alice"
    );
    let unknown = read("nope", Some(identity(&alice))).await;
    assert_eq!(unknown.status, 404);

    let delete = |path: &str, header: Option<String>| {
        let mut request = http().delete(format!("{url}{path}"));
        if let Some(h) = header {
            request = request.header(IDENTITY_HEADER, h);
        }
        send(request)
    };
    let ar_path = format!("/v1/agent-runtime/sessions/{session}");
    assert_eq!(delete(&ar_path, None).await.status, 401);
    let by_bob = delete(&ar_path, Some(identity(&bob))).await;
    assert_eq!(by_bob.status, 403);
    assert_eq!(by_bob.code(), "not_owner");
    let other_kind = delete(
        &format!("/v1/code-interpreter/sessions/{session}"),
        Some(identity(&root)),
    )
    .await;
    assert_eq!(other_kind.status, 404);
    let by_root = delete(&ar_path, Some(identity(&root))).await;
    assert_eq!(by_root.status, 200, "{:?}", by_root.body);
    assert_eq!(delete(&ar_path, Some(identity(&alice))).await.status, 404);
    wm.shutdown().await;

    // Keys not loaded: 503 on create and on readiness.
    let cold = serve_wm(Arc::new(KeyRing::empty()), "http://127.0.0.1:8082").await;
    let answer = send(
        http()
            .post(format!("{}/v1/agent-runtime", cold.url()))
            .header(IDENTITY_HEADER, identity(&alice))
            .json(&body),
    )
    .await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.code(), "keys_unavailable");
    let ready = send(http().get(format!("{}/health/ready", cold.url()))).await;
    assert_eq!(ready.status, 503);
    cold.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_runs_before_the_concurrency_limit() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let identities = quickstart::dev_identities(&idp);
    let verifier = Arc::new(OidcOptions::new(idp.issuer()).build().expect("verifier"));
    let stack = Stack::start(
        verifier,
        StackOptions::new().router(RouterConfig::new("").max_concurrent_requests(1)),
    )
    .await
    .expect("stack");
    let base = stack.router_url();
    let app = token(&idp, "agentcube-app");
    let session = invoke(&base, AR, Some(&app), None, &[]).await.session();

    // Hold the only slot, and see it held.
    let slow = {
        let (base, app, session) = (base.clone(), app.clone(), session.clone());
        let path = format!("{AR}?delay_ms=1500");
        hold_the_slot(move || invocation(&base, &path, Some(&app), Some(&session), &[]))
    };
    let overloaded = until_refused(
        || invocation(&base, AR, Some(&app), Some(&session), &[]),
        &slow,
    )
    .await;
    assert_eq!(overloaded.status, 429, "{:?}", overloaded.body);
    assert_eq!(overloaded.code(), "server_overloaded");
    assert_eq!(
        overloaded.error(),
        "server overloaded, please try again later"
    );

    // While it is held, authentication still answers first.
    let unauthenticated = invoke(&base, AR, None, None, &[]).await;
    assert_eq!(unauthenticated.status, 401);
    let forged = invoke(&base, AR, Some("a.b.c"), None, &[]).await;
    assert_eq!(forged.status, 401);
    let no_role = token(&idp, &identities.no_role.expect("no-role").client_id);
    let wrong_role = invoke(&base, AR, Some(&no_role), None, &[]).await;
    assert_eq!(wrong_role.status, 403);
    assert_eq!(
        wrong_role.error(),
        "insufficient permissions: missing role sandbox:invoke"
    );
    assert!(
        !slow.is_finished(),
        "the slot was released during the checks"
    );
    let live = send(http().get(format!("{base}/health/live"))).await;
    assert_eq!(live.status, 200);

    let slow = slow.await.expect("slow request");
    assert_eq!(slow.status, 200, "{:?}", slow.body);
    assert_eq!(slow.body["query"], "delay_ms=1500");
    let after = invoke(&base, AR, Some(&app), Some(&session), &[]).await;
    assert_eq!(after.status, 200);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_error_bodies_health_and_jwks() {
    let (qs, idp) = start().await;
    let base = qs.stack.router_url();
    let client = http();

    let missing = invoke(&base, AR, None, None, &[]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error(), "missing authorization header");
    assert_eq!(
        missing
            .headers
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let basic = send(
        client
            .post(format!("{base}{AR}"))
            .header("authorization", "Basic YTpi"),
    )
    .await;
    assert_eq!(basic.status, 401);
    assert_eq!(basic.error(), "invalid authorization header format");
    let invalid = invoke(&base, AR, Some("not.a.jwt"), None, &[]).await;
    assert_eq!(invalid.status, 401);
    assert_eq!(invalid.error(), "invalid or expired token");
    // The Router's own client has no API audience; `account` is not the API either.
    let router_client = token(&idp, "agentcube-router");
    let no_aud = invoke(&base, AR, Some(&router_client), None, &[]).await;
    assert_eq!(no_aud.status, 401);
    assert_eq!(no_aud.error(), "invalid or expired token");
    let account = idp
        .issue("agentcube-app", &json!({"aud": "account"}))
        .expect("token");
    let wrong_aud = invoke(&base, AR, Some(&account), None, &[]).await;
    assert_eq!(wrong_aud.status, 401);
    assert_eq!(wrong_aud.code(), "audience_mismatch");
    // An expired token.
    let expired = idp
        .issue(
            "agentcube-app",
            &json!({"exp": 1_000_000_000, "iat": 999_999_000}),
        )
        .expect("token");
    let answer = invoke(&base, AR, Some(&expired), None, &[]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.code(), "expired");

    let app = token(&idp, "agentcube-app");
    let unknown = invoke(&base, AR, Some(&app), Some("no-such-session"), &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "session_not_found");
    // Every id no sandbox token could carry: a space, empty, longer than 256 bytes, not text.
    let too_long = [b'x'; agentcube_identity::MAX_SESSION_ID_BYTES + 1];
    for id in [&b"a b"[..], b"", &too_long, b"s\xff"] {
        let bad_header = send(http().post(format!("{base}{AR}")).bearer_auth(&app).header(
            SESSION_HEADER,
            reqwest::header::HeaderValue::from_bytes(id).unwrap(),
        ))
        .await;
        assert_eq!(
            (bad_header.status, bad_header.code()),
            (400, "invalid_session_id"),
            "{id:?}"
        );
    }
    // The workload manager's 400 reaches the client with its code.
    let bad_namespace = invoke(
        &base,
        "/v1/namespaces/Not_A_Dns_Name/agent-runtimes/demo/invocations/run",
        Some(&app),
        None,
        &[],
    )
    .await;
    assert_eq!(bad_namespace.status, 400, "{:?}", bad_namespace.body);
    assert_eq!(bad_namespace.code(), "invalid_request");
    assert_eq!(
        bad_namespace.error(),
        "name and namespace must be lowercase dns names"
    );
    // An invalid id on delete is an unknown session.
    let bad_delete = send(
        client
            .delete(format!("{base}/v1/sessions/{}", "x".repeat(300)))
            .bearer_auth(&app),
    )
    .await;
    assert_eq!(bad_delete.status, 404);
    assert_eq!(bad_delete.code(), "session_not_found");
    // GET works too, and on the bare invocations path (the SDK's session bootstrap).
    let bootstrap = send(
        client
            .get(format!(
                "{base}/v1/namespaces/default/agent-runtimes/demo/invocations/"
            ))
            .bearer_auth(&app),
    )
    .await;
    assert_eq!(bootstrap.status, 200, "{:?}", bootstrap.body);
    assert!(!bootstrap.session().is_empty());
    assert_eq!(bootstrap.body["method"], "GET");
    assert_eq!(bootstrap.body["path"], "/");

    let live = send(client.get(format!("{base}/health/live"))).await;
    assert_eq!(live.status, 200);
    let ready = send(client.get(format!("{base}/health/ready"))).await;
    assert_eq!(ready.status, 200);
    let jwks = send(client.get(format!("{base}/.well-known/agentcube/jwks.json"))).await;
    assert_eq!(jwks.status, 200);
    let kids = qs.stack.minter.key_ring().kids();
    assert_eq!(jwks.body["keys"][0]["kid"], kids[0].as_str());
    assert_eq!(jwks.body["keys"][0]["kty"], "OKP");
    assert!(jwks.body["keys"][0].get("d").is_none());
    let nowhere = send(client.get(format!("{base}/nowhere"))).await;
    assert_eq!(nowhere.status, 404);
    assert_eq!(nowhere.code(), "not_found");
    let wrong_method = send(client.put(format!("{base}/health/live"))).await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.code(), "method_not_allowed");
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_may_delete_any_session_and_others_may_not() {
    let (qs, idp) = start().await;
    let base = qs.stack.router_url();
    let app = token(&idp, "agentcube-app");
    let second = token(&idp, quickstart::SECOND_CLIENT);
    let admin = token(&idp, "agentcube-admin");
    let session = invoke(&base, CI, Some(&app), None, &[]).await.session();
    let delete = |token: String| {
        let url = format!("{base}/v1/sessions/{session}");
        async move { send(http().delete(url).bearer_auth(token)).await }
    };
    let denied = delete(second).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.code(), "not_owner");
    let by_admin = delete(admin.clone()).await;
    assert_eq!(by_admin.status, 200, "{:?}", by_admin.body);
    let again = delete(admin).await;
    assert_eq!(again.status, 404);
    // Gone on the workload manager too.
    let root = Principal::builder(idp.issuer(), "root")
        .roles([Role::realm("admin")])
        .build();
    let record = wm_record(&qs, &session, &root).await;
    assert_eq!(record.status, 404);
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_with_a_shared_redis_store() {
    // Skipped without a Redis, but never under CI.
    let Some(redis_url) = redis_url("scenario_with_a_shared_redis_store") else {
        return;
    };
    let qs = quickstart::start_dev(Some(redis_url))
        .await
        .expect("quickstart");
    assert!(quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await);
    let report = scenario::run(&qs.scenario).await.expect("scenario");
    println!("{}", report.render());
    assert!(report.passed(), "{}", report.render());
    qs.stack.shutdown().await;
}

/// `GET /v1/sessions/{session}` at the workload manager, as `caller` (through the Router's
/// identity token, as the Router would send it).
async fn wm_record(qs: &Quickstart, session: &str, caller: &Principal) -> Answer {
    let identity = qs.stack.minter.identity_token(caller).expect("mint");
    send(
        http()
            .get(format!(
                "{}/v1/sessions/{session}",
                qs.stack.workload_manager.url()
            ))
            .header(IDENTITY_HEADER, identity.as_str()),
    )
    .await
}

/// Sends `values` as repeated `name` headers (raw bytes, so non-ASCII goes out as it is).
async fn with_raw_headers(url: &str, name: &str, values: &[&[u8]]) -> Answer {
    let mut request = http().post(url).body("{}");
    for value in values {
        request = request.header(
            name,
            reqwest::header::HeaderValue::from_bytes(value).expect("header value"),
        );
    }
    send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_answers_the_same_malformed_credential_alike() {
    let (qs, _idp) = start().await;
    let router = format!("{}{AR}", qs.stack.router_url());
    let sandbox = format!("{}/run", qs.stack.sandbox.url());
    let wm = format!("{}/v1/agent-runtime", qs.stack.workload_manager.url());

    // `Authorization` at the Router and at the sandbox: one parser, one answer.
    // (`Bearer` + only whitespace cannot be sent: HTTP strips trailing whitespace from a field
    // value, so it arrives as `Bearer`. The parser's own tests cover `empty_bearer_token`.)
    let bearer_cases: [(&[&[u8]], &str); 6] = [
        (&[b"Bearer"], "invalid_authorization_format"),
        (&[b"Bearer a b"], "malformed"),
        (&["Bearer tök".as_bytes()], "invalid_authorization_format"),
        (
            &[b"Bearer a.b.c", b"Bearer a.b.c"],
            "invalid_authorization_format",
        ),
        (&[b"Basic YTpi"], "invalid_authorization_format"),
        (&[b""], "missing_authorization"),
    ];
    for (values, code) in bearer_cases {
        let at_router = with_raw_headers(&router, "authorization", values).await;
        let at_sandbox = with_raw_headers(&sandbox, "authorization", values).await;
        for (service, answer) in [("router", &at_router), ("sandbox", &at_sandbox)] {
            assert_eq!(
                answer.status, 401,
                "{service} {values:?}: {:?}",
                answer.body
            );
            assert_eq!(answer.code(), code, "{service} {values:?}");
            assert!(
                answer.headers.contains_key("www-authenticate"),
                "{service} {values:?}"
            );
        }
        assert_eq!(at_router.error(), at_sandbox.error(), "{values:?}");
    }

    // The workload manager's credential is the bare-token identity header: the rules that do
    // not depend on the `Bearer` scheme answer exactly as above.
    let identity_cases: [(&[&[u8]], &str); 4] = [
        (&[b"a.b.c", b"a.b.c"], "invalid_authorization_format"),
        (&[b""], "missing_authorization"),
        (&["tök".as_bytes()], "malformed"),
        (&[b"a b"], "malformed"),
    ];
    for (values, code) in identity_cases {
        let answer = with_raw_headers(&wm, IDENTITY_HEADER, values).await;
        assert_eq!(answer.status, 401, "wm {values:?}: {:?}", answer.body);
        assert_eq!(answer.code(), code, "wm {values:?}");
    }
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_with_two_issuers_accepts_both_and_keeps_their_subjects_apart() {
    let first = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let second = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let verifier = Arc::new(
        OidcOptions::new(first.issuer())
            .build_multi(&[first.issuer(), second.issuer()])
            .expect("verifier"),
    );
    let config = RouterConfig::new("").owner_scheme(OwnerIdScheme::IssuerQualified);
    let stack = Stack::start(Arc::clone(&verifier), StackOptions::new().router(config))
        .await
        .expect("stack");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !verifier.is_ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(verifier.is_ready());
    let base = stack.router_url();

    // The dev IdPs name the same client's service account with the same subject string.
    let at_first = token(&first, "agentcube-app");
    let at_second = token(&second, "agentcube-app");
    assert_eq!(sub(&at_first), sub(&at_second));

    let created = invoke(&base, AR, Some(&at_first), None, &[]).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let session = created.session();
    let also = invoke(&base, AR, Some(&at_second), None, &[]).await;
    assert_eq!(also.status, 200, "{:?}", also.body);

    // Same subject, other issuer: another owner.
    let crossed = invoke(&base, AR, Some(&at_second), Some(&session), &[]).await;
    assert_eq!(crossed.status, 403, "{:?}", crossed.body);
    assert_eq!(crossed.code(), "not_owner");
    let own = invoke(&base, AR, Some(&at_first), Some(&session), &[]).await;
    assert_eq!(own.status, 200, "{:?}", own.body);

    let record = stack
        .wm_store
        .get(&session)
        .await
        .expect("store")
        .expect("record");
    let owner = record.owner().expect("owner").as_str().to_owned();
    assert!(owner.ends_with(&format!("#{}", sub(&at_first))), "{owner}");
    assert!(owner.starts_with(first.issuer()), "{owner}");

    // A third issuer is nobody the Router knows.
    let third = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let unknown = invoke(&base, AR, Some(&token(&third, "agentcube-app")), None, &[]).await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.code(), "unknown_issuer");
    stack.shutdown().await;
}

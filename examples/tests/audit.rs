//! Audit events: every authentication and authorization decision that reaches a response — in
//! the Router, the workload manager and the sandbox — is one `tracing` event on the target
//! `agentcube::audit` with the request id, the caller when known, the action, the resource,
//! the decision and the reason code; and none carries a token.
//!
//! The events are captured by a subscriber layer; each request of the scenario carries its own
//! `x-request-id`, which the Router passes on to the workload manager and the sandbox, so every
//! service's events of one request are found by that id.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: failing loudly is the point"
)]

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentcube_auth_core::Principal;
use agentcube_auth_core::audit::AUDIT_TARGET;
use agentcube_examples::quickstart::{self, NO_ROLE_CLIENT, SECOND_CLIENT};
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_examples::scenario::{self, unverified_claims};
use agentcube_examples::server::REQUEST_ID_HEADER;
use agentcube_identity::IDENTITY_HEADER;
use serde_json::{Value, json};
use support::logs::CapturedLogs;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

const AR: &str = "/v1/namespaces/default/agent-runtimes/demo/invocations/run";

/// One audit event: its fields as text.
type Event = BTreeMap<String, String>;

/// Collects the audit events.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

struct Fields<'a>(&'a mut Event);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == AUDIT_TARGET {
            let mut fields = Event::new();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(fields);
        }
    }
}

/// What an expected event must say; `None` fields are not checked.
struct Expect<'a> {
    request_id: &'a str,
    action: &'a str,
    decision: &'a str,
    reason: &'a str,
    resource: Option<&'a str>,
    subject: Option<&'a str>,
    status: Option<&'a str>,
}

impl<'a> Expect<'a> {
    fn new(request_id: &'a str, action: &'a str, decision: &'a str, reason: &'a str) -> Self {
        Self {
            request_id,
            action,
            decision,
            reason,
            resource: None,
            subject: None,
            status: None,
        }
    }

    fn resource(mut self, resource: &'a str) -> Self {
        self.resource = Some(resource);
        self
    }

    fn subject(mut self, subject: &'a str) -> Self {
        self.subject = Some(subject);
        self
    }

    fn status(mut self, status: &'a str) -> Self {
        self.status = Some(status);
        self
    }

    fn matches(&self, event: &Event) -> bool {
        let is = |field: &str, want: &str| event.get(field).is_some_and(|v| v == want);
        is("request_id", self.request_id)
            && is("action", self.action)
            && is("decision", self.decision)
            && is("reason", self.reason)
            && self.resource.is_none_or(|r| is("resource", r))
            && self.subject.is_none_or(|s| is("subject", s))
            && self.status.is_none_or(|s| is("status", s))
    }
}

fn sub(token: &str) -> String {
    unverified_claims(token).expect("claims")["sub"]
        .as_str()
        .expect("sub")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_that_reaches_a_response_is_one_audit_event_without_a_token() {
    let events = Events::default();
    let logs = CapturedLogs::default();
    tracing_subscriber::registry()
        .with(events.clone())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(logs.clone())
                .with_ansi(false)
                .with_filter(EnvFilter::new("info,agentcube=trace")),
        )
        .init();

    let qs = quickstart::start_dev(None).await.expect("quickstart");
    assert!(quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await);
    let idp = qs.idp.clone().expect("dev idp");
    let router = qs.stack.router_url();
    let http = scenario::http_client().unwrap();
    let token = |client: &str| idp.issue(client, &Value::Null).expect("token");
    let (app, second, admin, no_role) = (
        token("agentcube-app"),
        token(SECOND_CLIENT),
        token("agentcube-admin"),
        token(NO_ROLE_CLIENT),
    );
    let send = |request: reqwest::RequestBuilder, id: &str| {
        let request = request.header(REQUEST_ID_HEADER, id);
        async move { request.send().await.expect("request").status().as_u16() }
    };
    let invoke = |bearer: Option<&str>, session: Option<&str>| {
        let mut request = http
            .post(format!("{router}{AR}"))
            .json(&json!({"hello": "world"}));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(session) = session {
            request = request.header(SESSION_HEADER, session);
        }
        request
    };

    // Router: authentication and the route's role.
    assert_eq!(send(invoke(None, None), "r-none").await, 401);
    assert_eq!(
        send(invoke(Some(&scenario::tamper(&app)), None), "r-forged").await,
        401
    );
    assert_eq!(send(invoke(Some(&no_role), None), "r-norole").await, 403);
    // Router, workload manager, sandbox: a new session.
    let created = invoke(Some(&app), None)
        .header(REQUEST_ID_HEADER, "r-create")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let session = created.headers()[SESSION_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    let on_session = format!("session/{session}");
    // Ownership: another caller, the admin, the owner.
    assert_eq!(
        send(invoke(Some(&second), Some(&session)), "r-other").await,
        403
    );
    assert_eq!(
        send(invoke(Some(&admin), Some(&session)), "r-admin").await,
        200
    );
    assert_eq!(
        send(invoke(Some(&app), Some(&session)), "r-owner").await,
        200
    );
    // A request id the services refuse (a space, a `!`) is replaced by the Router, and every
    // service records the replacement, never the client's value.
    let replaced = invoke(Some(&app), Some(&session))
        .header(REQUEST_ID_HEADER, "bad id!")
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    let replacement = replaced.headers()[REQUEST_ID_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(replacement, "bad id!");
    // The workload manager and the sandbox, called directly with bad tokens.
    let wm = qs.stack.workload_manager.url();
    assert_eq!(
        send(
            http.post(format!("{wm}/v1/agent-runtime"))
                .header(IDENTITY_HEADER, "not-a-token")
                .json(&json!({"name": "demo", "namespace": "default"})),
            "r-wm",
        )
        .await,
        401
    );
    let sandbox = qs.stack.sandbox.url();
    assert_eq!(
        send(
            http.get(format!("{sandbox}/x")).bearer_auth("not-a-token"),
            "r-sandbox",
        )
        .await,
        401
    );
    // A genuine sandbox token for the session, sent with another session's header.
    let caller = Principal::builder(idp.issuer(), sub(&app)).build();
    let sandbox_token = qs.stack.minter.sandbox_token(&caller, &session).unwrap();
    assert_eq!(
        send(
            http.get(format!("{sandbox}/x"))
                .bearer_auth(sandbox_token.as_str())
                .header(SESSION_HEADER, "another-session"),
            "r-bound",
        )
        .await,
        401
    );
    // The admin deletes the session: the Router's and the workload manager's decisions.
    assert_eq!(
        send(
            http.delete(format!("{router}/v1/sessions/{session}"))
                .bearer_auth(&admin),
            "r-delete",
        )
        .await,
        200
    );
    qs.stack.shutdown().await;

    let (app_sub, second_sub, admin_sub, no_role_sub) =
        (sub(&app), sub(&second), sub(&admin), sub(&no_role));
    let expected = [
        Expect::new("r-none", "authenticate", "deny", "missing_authorization")
            .resource(AR)
            .status("401"),
        Expect::new("r-forged", "authenticate", "deny", "invalid_signature").status("401"),
        Expect::new("r-norole", "authorize", "deny", "insufficient_role")
            .subject(&no_role_sub)
            .status("403"),
        // The Router's and the workload manager's create, and the sandbox's binding.
        Expect::new("r-create", "create", "allow", "authenticated")
            .resource("sessions")
            .subject(&app_sub),
        Expect::new("r-create", "invoke", "allow", "session_bound")
            .resource(&on_session)
            .subject(&app_sub),
        Expect::new("r-other", "invoke", "deny", "not_owner")
            .resource(&on_session)
            .subject(&second_sub)
            .status("403"),
        Expect::new("r-admin", "invoke", "allow", "admin_bypass")
            .resource(&on_session)
            .subject(&admin_sub),
        Expect::new("r-admin", "invoke", "allow", "session_bound").resource(&on_session),
        Expect::new("r-owner", "invoke", "allow", "owner")
            .resource(&on_session)
            .subject(&app_sub),
        Expect::new(&replacement, "invoke", "allow", "owner").subject(&app_sub),
        Expect::new(&replacement, "invoke", "allow", "session_bound").resource(&on_session),
        Expect::new("r-wm", "authenticate", "deny", "malformed")
            .resource("/v1/agent-runtime")
            .status("401"),
        Expect::new("r-sandbox", "authenticate", "deny", "malformed")
            .resource("/x")
            .status("401"),
        Expect::new("r-bound", "invoke", "deny", "audience_mismatch")
            .resource("/x")
            .subject(&app_sub)
            .status("401"),
        Expect::new("r-delete", "delete", "allow", "admin_bypass")
            .resource(&on_session)
            .subject(&admin_sub),
    ];
    let events = events.0.lock().unwrap().clone();
    for expect in &expected {
        assert!(
            events.iter().any(|e| expect.matches(e)),
            "no audit event {} {} {} {} in\n{events:#?}",
            expect.request_id,
            expect.action,
            expect.decision,
            expect.reason
        );
    }
    let count = |id: &str, reason: &str| {
        events
            .iter()
            .filter(|e| e["request_id"] == id && e["reason"] == reason)
            .count()
    };
    // One event per service and decision: the Router's and the workload manager's create and
    // delete, one sandbox binding per forwarded request.
    assert_eq!(count("r-create", "authenticated"), 2);
    assert_eq!(count("r-create", "session_bound"), 1);
    assert_eq!(count("r-delete", "admin_bypass"), 2);
    assert_eq!(count("r-forged", "invalid_signature"), 1);
    assert!(
        !events.iter().any(|e| e["request_id"].contains("bad id")),
        "{events:#?}"
    );
    // The Router's callers are named by their client too.
    assert!(
        events.iter().any(|e| e["request_id"] == "r-owner"
            && e.get("client_id").map(String::as_str) == Some("agentcube-app")),
        "{events:#?}"
    );
    // Every event has the whole shape and no token.
    for event in &events {
        for field in ["request_id", "action", "resource", "decision", "reason"] {
            assert!(event.contains_key(field), "{field} missing: {event:?}");
        }
        for (field, value) in event {
            assert!(!value.contains("eyJ"), "a token in {field}: {event:?}");
        }
    }
    let logs = logs.text();
    assert!(logs.contains("agentcube::audit"), "{logs}");
    assert!(!logs.contains("eyJ"), "a token reached the logs:\n{logs}");
}

//! End-to-end tests with the real binaries: the Router, the workload manager and the sandbox
//! run as separate processes on loopback ports, configured by their flags, with the
//! development IdP (in this process) standing in for Keycloak.
//!
//! - Start-up order does not matter: services started at the same moment, or the workload
//!   manager and the sandbox before the Router, are ready within about a second of the Router
//!   listening, because a key source that has never loaded keys retries after 100 ms, doubling
//!   (rather than after the 30 s unknown-key cooldown).
//! - Roles: the Router trusts the token's roles as they are unless given a hierarchy file, and
//!   never expands the realm's default role.
//!
//! Every process is killed when its guard drops, also when a test fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: failing loudly is the point, and the measured times are printed"
)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::Principal;
use agentcube_auth_core::jose::{Algorithm, SigningKey};
use agentcube_examples::AGENTCUBE_REALM_JSON;
use agentcube_examples::dev_idp::DevIdp;
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_identity::{KeyRing, TokenMinter};
use agentcube_testkit::net::free_port;
use serde_json::{Value, json};
use support::http::{Answer, client, send, try_send};
use support::process::{Proc, TempDir, outputs, run_to_end};
use tokio::time::Instant;

/// How long a test waits for anything at all before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);

/// The promise under test: ready within this long after the Router listens (it used to take
/// the 30 s cooldown).
const READY_WITHIN: Duration = Duration::from_secs(3);

const POLL: Duration = Duration::from_millis(10);

const REALM_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/keycloak/agentcube-realm.json"
);

// ---- processes ----

// ---- HTTP ----

fn http() -> reqwest::Client {
    client(Duration::from_secs(2))
}

/// What polling a service saw.
#[derive(Debug)]
struct Readiness {
    /// When the service first answered at all.
    listening: Instant,
    /// When it first answered 200.
    ready: Instant,
    /// Its first answer before it was ready, if it was not ready at once.
    first_not_ready: Option<Answer>,
}

/// Polls `request()` every 10 ms until it answers 200, or panics at `deadline`.
async fn poll_ready(
    what: &str,
    deadline: Instant,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Readiness {
    let mut listening = None;
    let mut first_not_ready = None;
    loop {
        if let Some(answer) = try_send(request()).await {
            let now = Instant::now();
            listening.get_or_insert(now);
            if answer.status == 200 {
                return Readiness {
                    listening: listening.unwrap_or(now),
                    ready: now,
                    first_not_ready,
                };
            }
            if first_not_ready.is_none() {
                first_not_ready = Some(answer);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} not ready before the deadline; first answer: {first_not_ready:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---- the services ----

struct Ports {
    router: u16,
    wm: u16,
    sandbox: u16,
}

impl Ports {
    fn new() -> Self {
        Self {
            router: free_port(),
            wm: free_port(),
            sandbox: free_port(),
        }
    }

    fn router_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.router)
    }

    fn wm_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.wm)
    }

    fn sandbox_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.sandbox)
    }

    fn jwks_url(&self) -> String {
        format!("{}/.well-known/agentcube/jwks.json", self.router_url())
    }
}

fn listen(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// The Router's identity key, written where `--identity-key` reads it, and a minter with the
/// same key, so the test can mint sandbox tokens the sandbox accepts.
fn identity_key(dir: &Path) -> (PathBuf, TokenMinter) {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let pem = key.to_pkcs8_pem().unwrap();
    let path = dir.join("router-identity.pem");
    std::fs::write(&path, pem.expose_secret()).unwrap();
    let ring = KeyRing::from_private_pem(pem.expose_secret()).unwrap();
    (path, TokenMinter::new(Arc::new(ring)))
}

fn spawn_router(ports: &Ports, issuer: &str, identity_key: &Path, dir: &Path) -> Proc {
    Proc::spawn(
        "router",
        env!("CARGO_BIN_EXE_router"),
        &[
            "--listen",
            &listen(ports.router),
            "--jwt-issuer-url",
            issuer,
            "--workload-manager-url",
            &ports.wm_url(),
            "--identity-key",
            identity_key.to_str().unwrap(),
        ],
        &[],
        dir,
    )
}

fn spawn_wm(ports: &Ports, dir: &Path) -> Proc {
    Proc::spawn(
        "workload-manager",
        env!("CARGO_BIN_EXE_workload-manager"),
        &[
            "--listen",
            &listen(ports.wm),
            "--router-jwks-url",
            &ports.jwks_url(),
            "--sandbox-url",
            &ports.sandbox_url(),
        ],
        &[],
        dir,
    )
}

fn spawn_sandbox(ports: &Ports, dir: &Path) -> Proc {
    Proc::spawn(
        "sandbox",
        env!("CARGO_BIN_EXE_sandbox"),
        &[
            "--listen",
            &listen(ports.sandbox),
            "--router-jwks-url",
            &ports.jwks_url(),
        ],
        &[],
        dir,
    )
}

/// The sandbox has no readiness route: it is ready when it accepts a valid sandbox token
/// (it answers 503 `keys_unavailable` until it has the Router's keys).
fn sandbox_probe(ports: &Ports, minter: &TokenMinter) -> impl Fn() -> reqwest::RequestBuilder {
    let session = uuid::Uuid::new_v4().to_string();
    let token = minter
        .sandbox_token(
            &Principal::builder("https://idp.example", "probe").build(),
            &session,
        )
        .unwrap()
        .bearer();
    let url = format!("{}/probe", ports.sandbox_url());
    let client = http();
    move || {
        client
            .post(&url)
            .header("authorization", &token)
            .header(SESSION_HEADER, &session)
            .body("{}")
    }
}

fn health_ready(base: String) -> impl Fn() -> reqwest::RequestBuilder {
    let client = http();
    move || client.get(format!("{base}/health/ready"))
}

fn health_live(base: String) -> impl Fn() -> reqwest::RequestBuilder {
    let client = http();
    move || client.get(format!("{base}/health/live"))
}

/// A not-ready answer is the documented 503 `keys_unavailable` with `Retry-After: 1`.
fn assert_not_ready_answer(what: &str, answer: &Answer) {
    assert_eq!(answer.status, 503, "{what}: {answer:?}");
    assert_eq!(answer.code(), "keys_unavailable", "{what}: {answer:?}");
    assert_eq!(
        answer.header("retry-after"),
        Some("1"),
        "{what}: {answer:?}"
    );
}

/// One request through the Router: a new session is created through the workload manager and
/// proxied to the sandbox, which echoes the caller.
async fn invoke_through_the_router(ports: &Ports, idp: &DevIdp, procs: &[&Proc]) {
    let token = idp.issue("agentcube-app", &Value::Null).unwrap();
    let answer = send(
        http()
            .post(format!(
                "{}/v1/namespaces/default/agent-runtimes/demo/invocations/run",
                ports.router_url()
            ))
            .bearer_auth(&token)
            .json(&json!({"hello": "world"})),
    )
    .await;
    assert_eq!(
        answer.status,
        200,
        "{answer:?}\n{}",
        outputs(procs.iter().copied())
    );
    assert!(answer.header(SESSION_HEADER).is_some_and(|s| !s.is_empty()));
    let sub = agentcube_examples::scenario::unverified_claims(&token).unwrap()["sub"].clone();
    assert_eq!(answer.body["user_sub"], sub, "{answer:?}");
    assert_eq!(answer.body["path"], "/run");
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

// ---- start-up ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_started_together_are_ready_within_seconds_of_the_router_listening() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.unwrap();
    let dir = TempDir::new();
    let (key, minter) = identity_key(dir.path());
    let ports = Ports::new();

    let started = Instant::now();
    let sandbox = spawn_sandbox(&ports, dir.path());
    let wm = spawn_wm(&ports, dir.path());
    let router = spawn_router(&ports, idp.issuer(), &key, dir.path());
    let procs = [&router, &wm, &sandbox];
    let deadline = started + DEADLINE;

    let (router_live, router_ready, wm_ready, sandbox_ready) = tokio::join!(
        poll_ready("router live", deadline, health_live(ports.router_url())),
        poll_ready("router ready", deadline, health_ready(ports.router_url())),
        poll_ready("workload manager", deadline, health_ready(ports.wm_url())),
        poll_ready("sandbox", deadline, sandbox_probe(&ports, &minter)),
    );
    let router_listening = router_live.listening;
    let since_listening = |at: Instant| at.saturating_duration_since(router_listening);
    println!(
        "started together: router listening {} ms after spawn, ready {} ms after spawn; \
         workload manager ready {} ms after the router listened ({} ms after spawn); \
         sandbox ready {} ms after the router listened",
        ms(router_listening - started),
        ms(router_ready.ready - started),
        ms(since_listening(wm_ready.ready)),
        ms(wm_ready.ready - started),
        ms(since_listening(sandbox_ready.ready)),
    );
    for (what, readiness) in [("workload manager", &wm_ready), ("sandbox", &sandbox_ready)] {
        if let Some(answer) = &readiness.first_not_ready {
            assert_not_ready_answer(what, answer);
        }
        assert!(
            since_listening(readiness.ready) < READY_WITHIN,
            "{what} ready {} ms after the Router listened\n{}",
            ms(since_listening(readiness.ready)),
            outputs(procs.iter().copied())
        );
    }
    invoke_through_the_router(&ports, &idp, &procs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workload_manager_started_before_the_router_is_ready_within_seconds_of_it_listening() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.unwrap();
    let dir = TempDir::new();
    let (key, minter) = identity_key(dir.path());
    let ports = Ports::new();

    let started = Instant::now();
    let sandbox = spawn_sandbox(&ports, dir.path());
    let wm = spawn_wm(&ports, dir.path());
    let deadline = started + DEADLINE;

    // Both answer, and are not ready: the Router's keys cannot be fetched.
    let wm_up = poll_until_answer("workload manager", deadline, health_ready(ports.wm_url())).await;
    assert_not_ready_answer("workload manager before the router", &wm_up);
    let probe = sandbox_probe(&ports, &minter);
    let sandbox_up = poll_until_answer("sandbox", deadline, &probe).await;
    assert_not_ready_answer("sandbox before the router", &sandbox_up);
    // Let both fail a few more fetches (at 0, 0.1, 0.3, 0.7 s…), then start the Router.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let router_spawned = Instant::now();
    let router = spawn_router(&ports, idp.issuer(), &key, dir.path());
    let procs = [&router, &wm, &sandbox];
    let deadline = router_spawned + DEADLINE;

    let (router_live, wm_ready, sandbox_ready) = tokio::join!(
        poll_ready("router live", deadline, health_live(ports.router_url())),
        poll_ready("workload manager", deadline, health_ready(ports.wm_url())),
        poll_ready("sandbox", deadline, &probe),
    );
    let router_listening = router_live.listening;
    let since_listening = |at: Instant| at.saturating_duration_since(router_listening);
    println!(
        "router started {} ms after the others: workload manager ready {} ms after the router \
         listened, sandbox ready {} ms after",
        ms(router_spawned - started),
        ms(since_listening(wm_ready.ready)),
        ms(since_listening(sandbox_ready.ready)),
    );
    for (what, readiness) in [("workload manager", &wm_ready), ("sandbox", &sandbox_ready)] {
        assert!(
            since_listening(readiness.ready) < READY_WITHIN,
            "{what} ready {} ms after the Router listened\n{}",
            ms(since_listening(readiness.ready)),
            outputs(procs.iter().copied())
        );
    }
    invoke_through_the_router(&ports, &idp, &procs).await;
}

/// Polls until the service answers anything at all, or panics at `deadline`.
async fn poll_until_answer(
    what: &str,
    deadline: Instant,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Answer {
    loop {
        if let Some(answer) = try_send(request()).await {
            return answer;
        }
        assert!(Instant::now() < deadline, "{what} never answered");
        tokio::time::sleep(POLL).await;
    }
}

// ---- roles ----

/// A Router (alone: these requests never reach the workload manager) started with `args` and
/// `env`, once it is ready.
async fn router_with(
    idp: &DevIdp,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Proc, String) {
    let port = free_port();
    let listen = listen(port);
    let wm = format!("http://127.0.0.1:{}", free_port());
    let mut all = vec![
        "--listen",
        listen.as_str(),
        "--jwt-issuer-url",
        idp.issuer(),
        "--workload-manager-url",
        wm.as_str(),
    ];
    all.extend_from_slice(args);
    let router = Proc::spawn("router", env!("CARGO_BIN_EXE_router"), &all, env, dir);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + DEADLINE;
    let _ = poll_ready("router", deadline, health_ready(base.clone())).await;
    (router, base)
}

/// `DELETE /v1/sessions/<unknown id>` with `token`: 403 `insufficient_role` when the role check
/// refuses it, 404 `session_not_found` when the role check lets it through.
async fn delete_unknown_session(base: &str, token: &str) -> Answer {
    send(
        http()
            .delete(format!("{base}/v1/sessions/{}", uuid::Uuid::new_v4()))
            .bearer_auth(token),
    )
    .await
}

fn assert_refused_insufficient_role(answer: &Answer, what: &str, router: &Proc) {
    assert_eq!(
        answer.status,
        403,
        "{what}: {answer:?}\n{}",
        router.output()
    );
    assert_eq!(answer.code(), "insufficient_role", "{what}: {answer:?}");
    assert_eq!(
        answer.body["error"], "insufficient permissions: missing role sandbox:invoke",
        "{what}"
    );
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with(r#"Bearer error="insufficient_scope""#)),
        "{what}: {answer:?}"
    );
    assert_eq!(answer.header("retry-after"), None, "{what}");
}

fn assert_let_through(answer: &Answer, what: &str, router: &Proc) {
    assert_eq!(
        answer.status,
        404,
        "{what}: {answer:?}\n{}",
        router.output()
    );
    assert_eq!(answer.code(), "session_not_found", "{what}: {answer:?}");
}

/// A name, flags and environment variables.
type Configuration<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_trusts_the_token_roles_and_never_expands_the_default_role() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.unwrap();
    let dir = TempDir::new();
    let with_roles = |roles: &[&str]| {
        idp.issue("agentcube-app", &json!({"realm_access": {"roles": roles}}))
            .unwrap()
    };
    // Keycloak after an operator removed `sandbox:invoke` from the default role: the token
    // lists the default role only (the bundled realm file still gives it `sandbox:invoke`).
    let default_only = with_roles(&["default-roles-agentcube"]);
    // An issuer that does not expand composites: `admin` alone.
    let admin_only = with_roles(&["admin"]);
    let invoker = idp.issue("agentcube-app", &Value::Null).unwrap();
    let admin = idp.issue("agentcube-admin", &Value::Null).unwrap();

    // Default: the token's roles as they are.
    let (router, base) = router_with(&idp, dir.path(), &[], &[]).await;
    for (what, token) in [
        ("default role only", &default_only),
        ("admin only", &admin_only),
    ] {
        let answer = delete_unknown_session(&base, token).await;
        assert_refused_insufficient_role(&answer, &format!("flat: {what}"), &router);
    }
    for (what, token) in [("sandbox:invoke", &invoker), ("dev IdP admin", &admin)] {
        let answer = delete_unknown_session(&base, token).await;
        assert_let_through(&answer, &format!("flat: {what}"), &router);
    }
    drop(router);

    // A hierarchy file expands `admin`, never the default role; the old flag and environment
    // variable name it too.
    let configurations: [Configuration<'_>; 4] = [
        (
            "--role-hierarchy-file",
            &["--role-hierarchy-file", REALM_FILE],
            &[],
        ),
        ("--realm-file", &["--realm-file", REALM_FILE], &[]),
        (
            "AGENTCUBE_ROLE_HIERARCHY_FILE",
            &[],
            &[("AGENTCUBE_ROLE_HIERARCHY_FILE", REALM_FILE)],
        ),
        (
            "AGENTCUBE_REALM_FILE",
            &[],
            &[("AGENTCUBE_REALM_FILE", REALM_FILE)],
        ),
    ];
    for (name, args, env) in configurations {
        let (router, base) = router_with(&idp, dir.path(), args, env).await;
        let answer = delete_unknown_session(&base, &default_only).await;
        assert_refused_insufficient_role(&answer, &format!("{name}: default role only"), &router);
        for (what, token) in [("admin only", &admin_only), ("sandbox:invoke", &invoker)] {
            let answer = delete_unknown_session(&base, token).await;
            assert_let_through(&answer, &format!("{name}: {what}"), &router);
        }
    }
}

#[tokio::test]
async fn an_unreadable_hierarchy_file_stops_the_router_with_a_message() {
    let dir = TempDir::new();
    let missing = dir.path().join("no-such-realm.json");
    // `run_to_end` clears every AGENTCUBE_* variable, the legacy realm file's included.
    let output = run_to_end(
        env!("CARGO_BIN_EXE_router"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--jwt-issuer-url",
            "http://127.0.0.1:9/realms/agentcube",
            "--workload-manager-url",
            "http://127.0.0.1:9",
            "--role-hierarchy-file",
            missing.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("router: --role-hierarchy-file: ") && stderr.contains("no-such-realm.json"),
        "{stderr}"
    );
}

#[test]
fn the_services_document_the_role_hierarchy_flag_and_its_old_name() {
    for bin in [
        env!("CARGO_BIN_EXE_router"),
        env!("CARGO_BIN_EXE_workload-manager"),
    ] {
        let output = run_to_end(bin, &["--help"], &[]);
        assert!(output.status.success(), "{bin}");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("--role-hierarchy-file <PATH>"),
            "{bin}: {help}"
        );
        assert!(help.contains("--realm-file"), "{bin}: {help}");
        assert!(
            help.contains("AGENTCUBE_ROLE_HIERARCHY_FILE"),
            "{bin}: {help}"
        );
    }
}

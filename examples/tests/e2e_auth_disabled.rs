//! `--auth-mode`: the Router, the workload manager and the sandbox as separate processes with
//! authentication disabled (what `scripts/load` measures against), the defaults that still
//! refuse unauthenticated requests, the start-up refusals of half-disabled configurations, and
//! the `dev-idp` binary that stands in for Keycloak in the same script.
//!
//! Every process is killed when its guard drops, also when a test fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: failing loudly is the point"
)]

mod support;

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, SigningKey};
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_testkit::net::free_port;
use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use support::http::{client, hold_the_slot, send, try_send, until_refused};
use support::process::{Proc, TempDir, outputs, run_to_end};
use tokio::time::Instant;

/// How long a test waits for a service before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);

const POLL: Duration = Duration::from_millis(10);

/// The start of the warning every service logs once when authentication is disabled.
const WARNING: &str = "AUTHENTICATION IS DISABLED (--auth-mode disabled): every caller is \
                       unauthenticated";

/// The flags of a service with authentication disabled.
const DISABLED: &[&str] = &["--auth-mode", "disabled"];

const INVOKE_PATH: &str = "/v1/namespaces/default/agent-runtimes/demo/invocations/run";

fn http() -> reqwest::Client {
    client(Duration::from_secs(5))
}

/// Polls `url` every 10 ms until it answers 200, or panics after [`DEADLINE`].
async fn wait_ready(url: &str, procs: &[&Proc]) {
    let deadline = Instant::now() + DEADLINE;
    let client = http();
    loop {
        if let Some(answer) = try_send(client.get(url)).await
            && answer.status == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready\n{}",
            outputs(procs.iter().copied())
        );
        tokio::time::sleep(POLL).await;
    }
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A public key PEM the enabled services can be given (nothing signs with it here).
fn public_key_file(dir: &Path) -> String {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let path = dir.join("router-public.pem");
    std::fs::write(&path, key.to_public_pem().unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn spawn_router(port: u16, wm_port: u16, extra: &[&str], dir: &Path) -> Proc {
    let (listen, wm) = (addr(port), url(wm_port));
    let mut args = vec!["--listen", &listen, "--workload-manager-url", &wm];
    args.extend_from_slice(extra);
    Proc::spawn("router", env!("CARGO_BIN_EXE_router"), &args, &[], dir)
}

fn spawn_wm(port: u16, sandbox_port: u16, extra: &[&str], dir: &Path) -> Proc {
    let (listen, sandbox) = (addr(port), url(sandbox_port));
    let mut args = vec!["--listen", &listen, "--sandbox-url", &sandbox];
    args.extend_from_slice(extra);
    Proc::spawn(
        "workload-manager",
        env!("CARGO_BIN_EXE_workload-manager"),
        &args,
        &[],
        dir,
    )
}

fn spawn_sandbox(port: u16, extra: &[&str], dir: &Path) -> Proc {
    let listen = addr(port);
    let mut args = vec!["--listen", listen.as_str()];
    args.extend_from_slice(extra);
    Proc::spawn("sandbox", env!("CARGO_BIN_EXE_sandbox"), &args, &[], dir)
}

/// A Router, workload manager and sandbox, all with authentication disabled, each ready;
/// `router_extra` follows the Router's flags.
struct DisabledStack {
    router: Proc,
    wm: Proc,
    sandbox: Proc,
    router_port: u16,
    wm_port: u16,
}

impl DisabledStack {
    async fn start(dir: &Path, router_extra: &[&str]) -> Self {
        let (router_port, wm_port, sandbox_port) = (free_port(), free_port(), free_port());
        let sandbox = spawn_sandbox(sandbox_port, DISABLED, dir);
        let wm = spawn_wm(wm_port, sandbox_port, DISABLED, dir);
        let router = spawn_router(
            router_port,
            wm_port,
            &[DISABLED, router_extra].concat(),
            dir,
        );
        let stack = Self {
            router,
            wm,
            sandbox,
            router_port,
            wm_port,
        };
        let procs = stack.procs();
        wait_ready(&format!("{}/health/ready", url(router_port)), &procs).await;
        wait_ready(&format!("{}/health/ready", url(wm_port)), &procs).await;
        wait_ready(&format!("{}/health", url(sandbox_port)), &procs).await;
        stack
    }

    fn procs(&self) -> [&Proc; 3] {
        [&self.router, &self.wm, &self.sandbox]
    }
}

/// How many times `text` appears in a process's output.
fn count(proc: &Proc, text: &str) -> usize {
    proc.output().matches(text).count()
}

/// The warning line: logged at WARN level, once.
fn assert_warned_once(proc: &Proc) {
    let output = proc.output();
    let lines: Vec<&str> = output.lines().filter(|l| l.contains(WARNING)).collect();
    assert_eq!(lines.len(), 1, "{output}");
    assert!(lines[0].contains("WARN"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_disabled_deployment_serves_invocations_without_any_token() {
    let dir = TempDir::new();
    let stack = DisabledStack::start(dir.path(), &[]).await;
    let (router_port, wm_port, procs) = (stack.router_port, stack.wm_port, stack.procs());

    // No token at all; a client Authorization and a forged identity are sent and dropped.
    let created = send(
        http()
            .post(format!("{}{INVOKE_PATH}?x=1", url(router_port)))
            .header("authorization", "Bearer client-token-must-not-leak")
            .header("x-agentcube-user-identity", "forged")
            .json(&json!({"hello": "world"})),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}\n{}", outputs(procs));
    let session = created.header(SESSION_HEADER).unwrap().to_owned();
    assert_eq!(created.body["session_id"], session.as_str());
    assert_eq!(created.body["user_sub"], Value::Null, "{created:?}");
    assert_eq!(created.body["user_email"], Value::Null, "{created:?}");
    assert_eq!(created.body["path"], "/run");
    assert_eq!(created.body["body"], r#"{"hello":"world"}"#);
    let seen = created.seen_headers();
    assert!(
        !seen.iter().any(|h| h == "authorization"),
        "neither a sandbox token nor the client's Authorization reaches the sandbox: {seen:?}"
    );
    assert!(
        !seen.iter().any(|h| h == "x-agentcube-user-identity"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|h| h == SESSION_HEADER), "{seen:?}");

    // The workload manager recorded the session without an owner.
    let record = send(http().get(format!("{}/v1/sessions/{session}", url(wm_port)))).await;
    assert_eq!(record.status, 200, "{record:?}");
    assert_eq!(record.body["sessionId"], session.as_str());
    assert!(record.body.get("ownerId").is_none(), "{record:?}");
    assert_eq!(record.body["metadata"]["annotations"], json!({}));
    assert_eq!(record.body["metadata"]["labels"], json!({}));

    // The existing session, again without a token: no ownership check to fail.
    let again = send(
        http()
            .get(format!("{}{INVOKE_PATH}", url(router_port)))
            .header(SESSION_HEADER, &session),
    )
    .await;
    assert_eq!(again.status, 200, "{again:?}\n{}", outputs(procs));
    assert_eq!(again.header(SESSION_HEADER), Some(session.as_str()));
    assert_eq!(again.body["user_sub"], Value::Null);

    // An unknown session is still a 404, and the Router holds no identity key to publish.
    let unknown = send(
        http()
            .get(format!("{}{INVOKE_PATH}", url(router_port)))
            .header(SESSION_HEADER, uuid::Uuid::new_v4().to_string()),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.code(), "session_not_found");
    let jwks = send(http().get(format!(
        "{}/.well-known/agentcube/jwks.json",
        url(router_port)
    )))
    .await;
    assert_eq!(jwks.status, 404);

    // Deleting works the same way, for anyone.
    let deleted = send(http().delete(format!("{}/v1/sessions/{session}", url(router_port)))).await;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(deleted.body["deleted"], true);

    // Each service said so once, loudly, and not per request.
    for proc in procs {
        assert_warned_once(proc);
    }
}

/// What a stand-in workload manager received.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<HeaderMap>>>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_disabled_router_sends_no_identity_to_the_workload_manager() {
    let dir = TempDir::new();
    let (router_port, sandbox_port) = (free_port(), free_port());
    let sandbox = spawn_sandbox(sandbox_port, DISABLED, dir.path());
    // A workload manager that records the headers of each create.
    let seen = Seen::default();
    let recorder = seen.clone();
    let sandbox_url = url(sandbox_port);
    let wm_app = axum::Router::new().route(
        "/v1/agent-runtime",
        axum::routing::post(move |headers: HeaderMap| {
            let recorder = recorder.clone();
            let sandbox_url = sandbox_url.clone();
            async move {
                recorder.0.lock().unwrap().push(headers);
                axum::Json(json!({
                    "kind": "AgentRuntime",
                    "sessionId": uuid::Uuid::new_v4().to_string(),
                    "sandboxId": "sandbox-1",
                    "sandboxName": "demo-1",
                    "entryPoints": [{"path": "/", "protocol": "HTTP", "endpoint": sandbox_url}],
                    "ownerId": "",
                }))
            }
        }),
    );
    let wm = agentcube_examples::server::serve(wm_app).await.unwrap();
    let wm_port = wm.addr().port();
    let router = spawn_router(router_port, wm_port, DISABLED, dir.path());
    let procs = [&router, &sandbox];
    wait_ready(&format!("{}/health/ready", url(router_port)), &procs).await;
    wait_ready(&format!("{}/health", url(sandbox_port)), &procs).await;

    let answer = send(
        http()
            .post(format!("{}{INVOKE_PATH}", url(router_port)))
            .header("authorization", "Bearer client-token-must-not-leak")
            .header("x-agentcube-user-identity", "forged")
            .body("{}"),
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}\n{}", outputs(procs));
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].get("x-agentcube-user-identity").is_none(),
        "{seen:?}"
    );
    assert!(seen[0].get("authorization").is_none(), "{seen:?}");
    assert!(!answer.seen_headers().iter().any(|h| h == "authorization"));

    // A workload manager that reports an owner for a session the disabled Router created is
    // refused (it is not running with authentication disabled).
    let owned_app = axum::Router::new().route(
        "/v1/agent-runtime",
        axum::routing::post(|| async {
            axum::Json(json!({
                "kind": "AgentRuntime",
                "sessionId": "s-owned",
                "sandboxId": "x",
                "sandboxName": "x",
                "entryPoints": [],
                "ownerId": "alice",
            }))
        }),
    );
    let owned_wm = agentcube_examples::server::serve(owned_app).await.unwrap();
    let other_port = free_port();
    let other = spawn_router(other_port, owned_wm.addr().port(), DISABLED, dir.path());
    wait_ready(&format!("{}/health/ready", url(other_port)), &[&other]).await;
    let mismatch = send(http().post(format!("{}{INVOKE_PATH}", url(other_port)))).await;
    assert_eq!(mismatch.status, 502, "{mismatch:?}");
    assert_eq!(mismatch.code(), "owner_mismatch");
    wm.shutdown().await;
    owned_wm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_disabled_router_keeps_its_concurrency_limit() {
    let dir = TempDir::new();
    let stack = DisabledStack::start(dir.path(), &["--max-concurrent-requests", "1"]).await;
    let invoke = format!("{}{INVOKE_PATH}", url(stack.router_port));
    let created = send(http().post(&invoke)).await;
    assert_eq!(created.status, 200, "{created:?}");
    let session = created.session();

    // Hold the only slot with a slow invocation, then ask for another until it is refused.
    let slow = {
        let (slow, session) = (format!("{invoke}?delay_ms=1500"), session.clone());
        hold_the_slot(move || http().get(&slow).header(SESSION_HEADER, &session))
    };
    let overloaded = until_refused(
        || http().get(&invoke).header(SESSION_HEADER, &session),
        &slow,
    )
    .await;
    assert_eq!(
        (overloaded.status, overloaded.code()),
        (429, "server_overloaded"),
        "{overloaded:?}"
    );
    // Its answer is read whole, after which the slot comes back (a moment after its last byte).
    assert_eq!(slow.await.unwrap().status, 200);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let after = send(http().get(&invoke).header(SESSION_HEADER, &session)).await;
        if after.status == 200 {
            break;
        }
        assert_eq!(after.code(), "server_overloaded", "{after:?}");
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_disabled_deployments_fail_closed() {
    let dir = TempDir::new();
    let key = public_key_file(dir.path());
    let (router_port, wm_port, sandbox_port) = (free_port(), free_port(), free_port());
    // Enabled (default) workload manager and sandbox behind a disabled Router.
    let sandbox = spawn_sandbox(sandbox_port, &["--router-public-key", &key], dir.path());
    let wm = spawn_wm(
        wm_port,
        sandbox_port,
        &["--router-public-key", &key],
        dir.path(),
    );
    let router = spawn_router(router_port, wm_port, DISABLED, dir.path());
    let procs = [&router, &wm, &sandbox];
    wait_ready(&format!("{}/health/ready", url(router_port)), &procs).await;
    wait_ready(&format!("{}/health/ready", url(wm_port)), &procs).await;
    wait_ready(&format!("{}/health", url(sandbox_port)), &procs).await;

    // The enabled workload manager refuses a create without identity, whatever mode its
    // caller runs in: directly…
    let body = json!({"kind": "AgentRuntime", "name": "demo", "namespace": "default"});
    let direct = send(
        http()
            .post(format!("{}/v1/agent-runtime", url(wm_port)))
            .json(&body),
    )
    .await;
    assert_eq!(direct.status, 401, "{direct:?}");
    assert_eq!(direct.code(), "missing_authorization");
    // …and through the disabled Router, which maps the refusal.
    let through = send(http().post(format!("{}{INVOKE_PATH}", url(router_port)))).await;
    assert_eq!(through.status, 502, "{through:?}");
    assert_eq!(through.code(), "identity_rejected");

    // The enabled sandbox refuses a request without a token.
    let no_token = send(
        http()
            .post(format!("{}/run", url(sandbox_port)))
            .header(SESSION_HEADER, "s-1")
            .body("{}"),
    )
    .await;
    assert_eq!(no_token.status, 401, "{no_token:?}");
    assert_eq!(no_token.code(), "missing_authorization");
    // …and so it does behind a disabled Router and workload manager: the invocation reaches
    // it without a token and its 401 reaches the client.
    let (router2_port, wm2_port) = (free_port(), free_port());
    let wm2 = spawn_wm(wm2_port, sandbox_port, DISABLED, dir.path());
    let router2 = spawn_router(router2_port, wm2_port, DISABLED, dir.path());
    let procs = [&router2, &wm2, &sandbox];
    wait_ready(&format!("{}/health/ready", url(router2_port)), &procs).await;
    wait_ready(&format!("{}/health/ready", url(wm2_port)), &procs).await;
    let through = send(http().post(format!("{}{INVOKE_PATH}", url(router2_port)))).await;
    assert_eq!(through.status, 401, "{through:?}");
    assert_eq!(through.code(), "missing_authorization");

    // Neither enabled service warned about a disabled mode.
    assert_eq!(count(&wm, WARNING), 0);
    assert_eq!(count(&sandbox, WARNING), 0);
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status 1 and this exact last line on stderr.
fn assert_refused(output: &Output, message: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let text = stderr(output);
    assert_eq!(text.lines().last(), Some(message), "{text}");
}

fn combined(bin: &str, flag: &str) -> String {
    format!(
        "{bin}: --auth-mode disabled cannot be combined with {flag}: with authentication \
         disabled nothing is verified, so {flag} would be silently ignored; remove one of them"
    )
}

#[test]
fn auth_flags_are_refused_with_auth_disabled() {
    let dir = TempDir::new();
    let key = public_key_file(dir.path());
    let router = env!("CARGO_BIN_EXE_router");
    let base = [
        "--listen",
        "127.0.0.1:0",
        "--workload-manager-url",
        "http://127.0.0.1:9",
    ];
    /// `base`, `--auth-mode disabled`, then `extra`.
    fn disabled<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, DISABLED, extra].concat()
    }
    let issuer = "http://127.0.0.1:9/realms/agentcube";
    assert_refused(
        &run_to_end(router, &disabled(&base, &["--jwt-issuer-url", issuer]), &[]),
        &combined("router", "--jwt-issuer-url"),
    );
    // From the environment alike: no silent half-mode whichever way it is configured.
    assert_refused(
        &run_to_end(
            router,
            &base,
            &[
                ("AGENTCUBE_AUTH_MODE", "disabled"),
                ("AGENTCUBE_JWT_ISSUER_URL", issuer),
            ],
        ),
        &combined("router", "--jwt-issuer-url"),
    );
    let key_file = dir.path().join("identity.pem");
    assert_refused(
        &run_to_end(
            router,
            &disabled(&base, &["--identity-key", key_file.to_str().unwrap()]),
            &[],
        ),
        &combined("router", "--identity-key"),
    );
    assert!(!key_file.exists(), "a refused Router generates no key");
    let roles_file = dir.path().join("roles.json");
    for (extra, flag) in [
        (
            ["--role-hierarchy-file", roles_file.to_str().unwrap()],
            "--role-hierarchy-file",
        ),
        (["--owner-id-scheme", "subject"], "--owner-id-scheme"),
    ] {
        let args = disabled(&base, &extra);
        assert_refused(&run_to_end(router, &args, &[]), &combined("router", flag));
    }
    // Enabled (the default) still needs an issuer.
    assert_refused(
        &run_to_end(router, &base, &[]),
        "router: --jwt-issuer-url is required (unless --auth-mode disabled)",
    );

    let wm_args = [
        "--listen",
        "127.0.0.1:0",
        "--sandbox-url",
        "http://127.0.0.1:9",
    ];
    let wm = env!("CARGO_BIN_EXE_workload-manager");
    let args = disabled(&wm_args, &["--router-public-key", &key]);
    assert_refused(
        &run_to_end(wm, &args, &[]),
        &combined("workload-manager", "--router-public-key"),
    );
    assert_refused(
        &run_to_end(wm, &wm_args, &[]),
        "workload-manager: --router-jwks-url or --router-public-key is required \
         (unless --auth-mode disabled)",
    );
    let roles_path = roles_file.to_str().unwrap();
    let args = disabled(&wm_args, &["--role-hierarchy-file", roles_path]);
    assert_refused(
        &run_to_end(wm, &args, &[]),
        &combined("workload-manager", "--role-hierarchy-file"),
    );
    let sandbox = env!("CARGO_BIN_EXE_sandbox");
    assert_refused(
        &run_to_end(
            sandbox,
            &disabled(
                &["--listen", "127.0.0.1:0"],
                &[
                    "--router-jwks-url",
                    "http://127.0.0.1:9/.well-known/agentcube/jwks.json",
                ],
            ),
            &[],
        ),
        &combined("sandbox", "--router-jwks-url"),
    );
    // A bound session id is checked by the same rule with authentication on and off: one a
    // request could name.
    let too_long = "s".repeat(agentcube_identity::MAX_SESSION_ID_BYTES + 1);
    let refused = format!(
        "sandbox: --session-id: {}",
        agentcube_identity::ConfigError::InvalidSessionId
    );
    let listen = ["--listen", "127.0.0.1:0"];
    for session_id in ["", too_long.as_str(), "a b"] {
        let bound = ["--session-id", session_id];
        assert_refused(
            &run_to_end(sandbox, &disabled(&listen, &bound), &[]),
            &refused,
        );
        let with_key = [listen.as_slice(), &["--router-public-key", &key], &bound].concat();
        assert_refused(&run_to_end(sandbox, &with_key, &[]), &refused);
    }
}

/// With authentication disabled the sandbox still routes by session: the header must name
/// the session a bound sandbox serves, a shared one needs the header, and an id the Router
/// would refuse (empty, too long, not visible ASCII) is refused.
#[tokio::test]
async fn a_sandbox_without_authentication_still_checks_the_session_it_serves() {
    use agentcube_examples::sandbox::{SandboxSession, serve_auth_disabled};
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The sandbox runs on this test's thread, so a thread-local subscriber sees its events.
    let captured = support::logs::CapturedLogs::default();
    let _logs = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(captured.clone())
        .set_default();
    let bound = serve_auth_disabled(&SandboxSession::Bound("s-1".into()))
        .await
        .unwrap();
    let shared = serve_auth_disabled(&SandboxSession::Shared).await.unwrap();
    let client = http();
    let too_long = "s".repeat(agentcube_identity::MAX_SESSION_ID_BYTES + 1);
    let invoke = |base: String, session: Option<&str>| {
        let request = client.get(format!("{base}{INVOKE_PATH}"));
        match session {
            Some(id) => request.header(SESSION_HEADER, id),
            None => request,
        }
    };
    let served = send(invoke(bound.url(), None)).await;
    assert_eq!(served.status, 200, "{served:?}");
    assert_eq!(served.body["session_id"], "s-1");
    let served = send(invoke(bound.url(), Some("s-1"))).await;
    assert_eq!(served.status, 200, "{served:?}");
    let served = send(invoke(shared.url(), Some("s-9"))).await;
    assert_eq!(
        (served.status, &served.body["session_id"]),
        (200, &json!("s-9"))
    );
    for (answer, status, code) in [
        (
            send(invoke(bound.url(), Some("s-2"))).await,
            400,
            "session_mismatch",
        ),
        (
            send(invoke(bound.url(), Some(""))).await,
            400,
            "invalid_session_id",
        ),
        (
            send(invoke(shared.url(), Some(&too_long))).await,
            400,
            "invalid_session_id",
        ),
        // Not visible ASCII, as the Router refuses it too: a space, and a byte that is not text.
        (
            send(invoke(shared.url(), Some("a b"))).await,
            400,
            "invalid_session_id",
        ),
        (
            send(
                client
                    .get(format!("{}{INVOKE_PATH}", shared.url()))
                    .header(SESSION_HEADER, HeaderValue::from_bytes(b"s\xff").unwrap()),
            )
            .await,
            400,
            "invalid_session_id",
        ),
        (
            send(invoke(shared.url(), None)).await,
            400,
            "missing_session_id",
        ),
    ] {
        assert_eq!((answer.status, answer.code()), (status, code), "{answer:?}");
        // Each refusal is audited, as with authentication on.
        let logs = captured.text();
        assert!(
            logs.lines().any(|line| line.contains("agentcube::audit")
                && line.contains("decision=\"deny\"")
                && line.contains(&format!("reason=\"{code}\""))),
            "no audit event for {code}:\n{logs}"
        );
    }
}

#[test]
fn an_unknown_auth_mode_is_refused() {
    for bin in [
        env!("CARGO_BIN_EXE_router"),
        env!("CARGO_BIN_EXE_workload-manager"),
        env!("CARGO_BIN_EXE_sandbox"),
    ] {
        for (args, env) in [
            (&["--auth-mode", "off"][..], &[][..]),
            (&[][..], &[("AGENTCUBE_AUTH_MODE", "off")][..]),
        ] {
            let output = run_to_end(bin, args, env);
            // clap's usage error: exit status 2, the value and the choices named.
            assert_eq!(output.status.code(), Some(2), "{bin}: {}", stderr(&output));
            let text = stderr(&output);
            assert!(
                text.contains("invalid value 'off' for '--auth-mode <MODE>'")
                    && text.contains("[possible values: enabled, disabled]"),
                "{bin}: {text}"
            );
        }
        let help = run_to_end(bin, &["--help"], &[]);
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(help.contains("--auth-mode <MODE>"), "{bin}: {help}");
        assert!(help.contains("AGENTCUBE_AUTH_MODE"), "{bin}: {help}");
    }
}

/// The first line of `proc`'s output that starts with `prefix`, without it; waits for it.
async fn printed(proc: &Proc, prefix: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(line) = proc
            .output()
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
        {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "{}", proc.output());
        tokio::time::sleep(POLL).await;
    }
}

/// The `scripts/load` set-up with authentication on: the `dev-idp` binary as the issuer, a
/// token from its token endpoint, and the three services as processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_idp_binary_issues_tokens_the_router_accepts() {
    let dir = TempDir::new();
    let idp_port = free_port();
    let idp = Proc::spawn(
        "dev-idp",
        env!("CARGO_BIN_EXE_dev-idp"),
        &["--listen", &addr(idp_port)],
        &[],
        dir.path(),
    );
    let issuer = printed(&idp, "issuer ").await;
    assert_eq!(issuer, format!("{}/realms/agentcube", url(idp_port)));
    let token_endpoint = printed(&idp, "token_endpoint ").await;
    assert_eq!(
        token_endpoint,
        format!("{issuer}/protocol/openid-connect/token")
    );
    let refused = send(http().post(&token_endpoint).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "agentcube-app"),
        ("client_secret", "wrong"),
    ]))
    .await;
    assert_eq!(refused.status, 401);
    let issued = send(http().post(&token_endpoint).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", "agentcube-app"),
        ("client_secret", "app-secret-dev"),
    ]))
    .await;
    assert_eq!(issued.status, 200, "{issued:?}");
    let token = issued.body["access_token"].as_str().unwrap().to_owned();
    let claims = agentcube_examples::scenario::unverified_claims(&token).unwrap();
    assert_eq!(claims["iss"], issuer.as_str());

    let (router_port, wm_port, sandbox_port) = (free_port(), free_port(), free_port());
    let jwks = format!("{}/.well-known/agentcube/jwks.json", url(router_port));
    let sandbox = spawn_sandbox(sandbox_port, &["--router-jwks-url", &jwks], dir.path());
    let wm = spawn_wm(
        wm_port,
        sandbox_port,
        &["--router-jwks-url", &jwks],
        dir.path(),
    );
    let router = spawn_router(
        router_port,
        wm_port,
        &["--jwt-issuer-url", &issuer],
        dir.path(),
    );
    let procs = [&idp, &router, &wm, &sandbox];
    wait_ready(&format!("{}/health/ready", url(router_port)), &procs).await;
    wait_ready(&format!("{}/health/ready", url(wm_port)), &procs).await;

    let anonymous = send(http().post(format!("{}{INVOKE_PATH}", url(router_port)))).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.code(), "missing_authorization");
    let created = send(
        http()
            .post(format!("{}{INVOKE_PATH}", url(router_port)))
            .bearer_auth(&token)
            .body("{}"),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}\n{}", outputs(procs));
    assert_eq!(created.body["user_sub"], claims["sub"]);
    let session = created.header(SESSION_HEADER).unwrap().to_owned();
    let again = send(
        http()
            .get(format!("{}{INVOKE_PATH}", url(router_port)))
            .bearer_auth(&token)
            .header(SESSION_HEADER, &session),
    )
    .await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["session_id"], session.as_str());
    for proc in procs {
        assert_eq!(count(proc, WARNING), 0, "{}", proc.output());
    }
}

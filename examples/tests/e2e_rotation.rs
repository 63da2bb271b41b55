//! Rotating the Router's identity key while requests flow, with the real binaries: two Router
//! replicas share one key directory (as they would share a mounted Kubernetes Secret), the
//! workload manager and the sandbox verify against the union of both replicas' JWKS
//! (`--router-jwks-url` twice, and the comma-separated environment variable).
//!
//! The operator procedure of the README, step by step, while client tasks keep creating and
//! invoking sessions through both replicas:
//!
//! 1. `next.pem` is added: every replica publishes it, none signs with it;
//! 2. the swap (`cp current.pem previous.pem`, `mv next.pem current.pem`): every replica signs
//!    with the new key and still publishes the old one;
//! 3. `previous.pem` is removed: only the new key is published.
//!
//! Every request must succeed. Small taps in front of the workload manager and the sandbox
//! record the `kid` of every identity and sandbox token the replicas send, so the test checks
//! that no token carries the next key before the swap, and that every token minted after the
//! swap carries it. The replicas reload every second (`--identity-key-reload-secs 1`); every
//! wait is a bounded poll with a deadline.
//!
//! In production the old key stays published for at least the token lifetime plus leeway
//! after the last replica swapped. Here the test removes it as soon as it has seen that no
//! token in flight still carries it, which is the condition that wait guarantees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: failing loudly is the point, and the request counts are printed"
)]

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentcube_auth_core::Principal;
use agentcube_auth_core::jose::{
    Algorithm, AlgorithmSet, JwsPolicy, SigningKey, TypePolicy, UnverifiedJws,
};
use agentcube_examples::AGENTCUBE_REALM_JSON;
use agentcube_examples::dev_idp::DevIdp;
use agentcube_examples::keys::{CURRENT_KEY_FILE, NEXT_KEY_FILE, PREVIOUS_KEY_FILE};
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_examples::server::{self, Server};
use agentcube_identity::{
    IDENTITY_HEADER, IDENTITY_TOKEN_TYPE, KeyRing, SANDBOX_TOKEN_TYPE, TokenMinter,
};
use agentcube_testkit::net::free_port;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::process::{Proc, TempDir, outputs};
use tokio::time::Instant;

/// How long any single wait may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

const POLL: Duration = Duration::from_millis(20);

/// Client tasks sending requests at the same time.
const CLIENTS: usize = 3;

/// The most create-and-invoke rounds one client task sends: the traffic is bounded even if
/// the test never tells it to stop.
const MAX_ROUNDS: u64 = 20_000;

/// Rounds every client task must complete in each phase (before, between and after the steps).
const ROUNDS_PER_PHASE: u64 = 5;

// ---- processes ----

fn http() -> reqwest::Client {
    support::http::client(Duration::from_secs(5))
}

/// Polls `check` until it returns `Some`, or fails the test at the deadline.
async fn poll_until<T, F, Fut>(what: &str, procs: &[Proc], mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}\n{}",
            outputs(procs)
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---- keys ----

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn new_key() -> (SigningKey, String) {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let pem = key.to_pkcs8_pem().unwrap().expose_secret().to_owned();
    (key, pem)
}

/// The `kid`s a Router replica publishes, in order (the signing key first).
async fn published_kids(client: &reqwest::Client, jwks_url: &str) -> Option<Vec<String>> {
    let jwks: Value = client.get(jwks_url).send().await.ok()?.json().await.ok()?;
    jwks["keys"]
        .as_array()?
        .iter()
        .map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until every replica publishes exactly `kids`, in that order (the signing key first).
async fn wait_for_kids(
    client: &reqwest::Client,
    jwks: &[String],
    kids: &[&String],
    what: &str,
    procs: &[Proc],
) {
    for url in jwks {
        poll_until(what, procs, || async move {
            let published = published_kids(client, url).await?;
            published.iter().eq(kids.iter().copied()).then_some(())
        })
        .await;
    }
}

/// The `kid` in a token's header (any algorithm: this only reads which key signed it).
fn kid_of(token: &str) -> Option<String> {
    let mut policy = JwsPolicy::new(AlgorithmSet::ALL);
    policy.types = TypePolicy::new([IDENTITY_TOKEN_TYPE, SANDBOX_TOKEN_TYPE], false);
    UnverifiedJws::parse(token, &policy)
        .ok()
        .and_then(|jws| jws.header().kid.as_deref().map(str::to_owned))
}

// ---- taps: record the kid of every internal token, forward the request ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hop {
    /// Router → workload manager: the identity token.
    Identity,
    /// Router → sandbox: the sandbox token.
    Sandbox,
}

#[derive(Clone)]
struct Tap {
    upstream: String,
    hop: Hop,
    http: reqwest::Client,
    /// Every token seen, in order: (hop, kid).
    seen: Arc<Mutex<Vec<(Hop, String)>>>,
}

async fn tap(State(tap): State<Tap>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let token = match tap.hop {
        Hop::Identity => parts
            .headers
            .get(IDENTITY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        Hop::Sandbox => parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned),
    };
    if let Some(token) = token {
        let kid = kid_of(&token).unwrap_or_default();
        tap.seen.lock().unwrap().push((tap.hop, kid));
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut forward = tap
        .http
        .request(parts.method.clone(), format!("{}{path}", tap.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) && name != "host" {
            forward = forward.header(name, value);
        }
    }
    let Ok(answer) = forward.send().await else {
        return (axum::http::StatusCode::BAD_GATEWAY, "tap: upstream failed").into_response();
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = (status, bytes).into_response();
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// Headers a proxy does not forward (the tap sets its own lengths).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

async fn start_tap(upstream: String, hop: Hop, seen: Arc<Mutex<Vec<(Hop, String)>>>) -> Server {
    let state = Tap {
        upstream,
        hop,
        http: http(),
        seen,
    };
    server::serve(axum::Router::new().fallback(tap).with_state(state))
        .await
        .unwrap()
}

// ---- clients ----

/// What one client task did.
#[derive(Default)]
struct Progress {
    /// Rounds started.
    started: AtomicU64,
    /// Rounds completed (successful or not).
    completed: AtomicU64,
    /// Requests sent.
    requests: AtomicU64,
}

/// A failed request, for the failure message.
#[derive(Debug)]
#[allow(dead_code, reason = "read through Debug, in the failure message")]
struct Failure {
    client: usize,
    round: u64,
    what: &'static str,
    status: u16,
    body: String,
}

/// Rounds of: create a session through one replica (no session header), then invoke it again
/// through the same replica; the replica alternates each round.
async fn client_loop(
    client: usize,
    routers: Vec<String>,
    token: String,
    progress: Arc<Progress>,
    failures: Arc<Mutex<Vec<Failure>>>,
    stop: Arc<AtomicBool>,
) {
    let http = http();
    for round in 0..MAX_ROUNDS {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        progress.started.fetch_add(1, Ordering::SeqCst);
        let router = &routers[usize::try_from(round).unwrap() % routers.len()];
        let url = format!("{router}/v1/namespaces/default/agent-runtimes/demo/invocations/run");
        let fail = |what: &'static str, status: u16, body: String| {
            failures.lock().unwrap().push(Failure {
                client,
                round,
                what,
                status,
                body,
            });
        };
        progress.requests.fetch_add(1, Ordering::SeqCst);
        let created = http
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"round": round}))
            .send()
            .await;
        match created {
            Ok(answer) if answer.status() == 200 => {
                let session = answer
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                progress.requests.fetch_add(1, Ordering::SeqCst);
                let invoked = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header(SESSION_HEADER, &session)
                    .json(&json!({"round": round, "again": true}))
                    .send()
                    .await;
                match invoked {
                    Ok(answer) if answer.status() == 200 => {
                        let body: Value = answer.json().await.unwrap_or(Value::Null);
                        if body["session_id"] != session.as_str() {
                            fail("invoke: echoed session", 200, body.to_string());
                        }
                    }
                    Ok(answer) => {
                        let status = answer.status().as_u16();
                        fail("invoke", status, answer.text().await.unwrap_or_default());
                    }
                    Err(e) => fail("invoke", 0, e.to_string()),
                }
            }
            Ok(answer) => {
                let status = answer.status().as_u16();
                fail("create", status, answer.text().await.unwrap_or_default());
            }
            Err(e) => fail("create", 0, e.to_string()),
        }
        progress.completed.fetch_add(1, Ordering::SeqCst);
    }
}

/// The client tasks' progress.
struct Clients {
    progress: Vec<Arc<Progress>>,
    failures: Arc<Mutex<Vec<Failure>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Clients {
    fn start(routers: &[String], idp: &DevIdp) -> Self {
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut progress = Vec::new();
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let p = Arc::new(Progress::default());
            let token = idp.issue("agentcube-app", &Value::Null).unwrap();
            tasks.push(tokio::spawn(client_loop(
                client,
                routers.to_vec(),
                token,
                Arc::clone(&p),
                Arc::clone(&failures),
                Arc::clone(&stop),
            )));
            progress.push(p);
        }
        Self {
            progress,
            failures,
            stop,
            tasks,
        }
    }

    fn completed(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.completed.load(Ordering::SeqCst))
            .collect()
    }

    fn started(&self) -> Vec<u64> {
        self.progress
            .iter()
            .map(|p| p.started.load(Ordering::SeqCst))
            .collect()
    }

    fn requests(&self) -> u64 {
        self.progress
            .iter()
            .map(|p| p.requests.load(Ordering::SeqCst))
            .sum()
    }

    /// Waits until every client has completed `rounds` more rounds than it had now.
    async fn more_rounds(&self, rounds: u64, what: &str, procs: &[Proc]) {
        let from = self.completed();
        poll_until(
            &format!("{rounds} more rounds per client ({what})"),
            procs,
            || {
                let done = self
                    .completed()
                    .iter()
                    .zip(&from)
                    .all(|(now, then)| *now >= then + rounds);
                std::future::ready(done.then_some(()))
            },
        )
        .await;
    }

    /// Waits until every round that had started now has completed: from then on, every round
    /// (and every token it causes) started after this call.
    async fn rounds_in_flight_done(&self, procs: &[Proc]) {
        let started = self.started();
        poll_until("the rounds in flight to complete", procs, || {
            let done = self
                .completed()
                .iter()
                .zip(&started)
                .all(|(completed, started)| completed >= started);
            std::future::ready(done.then_some(()))
        })
        .await;
    }

    async fn stop(self) -> (u64, Vec<Failure>) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        let requests = self
            .progress
            .iter()
            .map(|p| p.requests.load(Ordering::SeqCst))
            .sum();
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (requests, failures)
    }
}

// ---- the test ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_router_identity_key_rotates_across_replicas_without_a_failed_request() {
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.unwrap();
    let dir = TempDir::new();
    let keys = dir.path().join("identity");
    std::fs::create_dir_all(&keys).unwrap();
    let (old_key, old_pem) = new_key();
    let old_kid = old_key.kid().to_owned();
    std::fs::write(keys.join(CURRENT_KEY_FILE), &old_pem).unwrap();
    let keys_arg = keys.to_str().unwrap().to_owned();

    let (r1, r2, wm_port, sandbox_port) = (free_port(), free_port(), free_port(), free_port());
    let routers = [
        format!("http://127.0.0.1:{r1}"),
        format!("http://127.0.0.1:{r2}"),
    ];
    let jwks = routers
        .iter()
        .map(|r| format!("{r}/.well-known/agentcube/jwks.json"))
        .collect::<Vec<_>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let wm_tap = start_tap(
        format!("http://127.0.0.1:{wm_port}"),
        Hop::Identity,
        Arc::clone(&seen),
    )
    .await;
    let sandbox_tap = start_tap(
        format!("http://127.0.0.1:{sandbox_port}"),
        Hop::Sandbox,
        Arc::clone(&seen),
    )
    .await;

    let mut procs = Vec::new();
    for (name, port) in [("router-1", r1), ("router-2", r2)] {
        procs.push(Proc::spawn(
            name,
            env!("CARGO_BIN_EXE_router"),
            &[
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--jwt-issuer-url",
                idp.issuer(),
                "--workload-manager-url",
                &wm_tap.url(),
                "--identity-key",
                &keys_arg,
                "--identity-key-reload-secs",
                "1",
            ],
            &[],
            dir.path(),
        ));
    }
    let client = &http();
    for router in &routers {
        poll_until("router ready", &procs, || async move {
            let answer = client
                .get(format!("{router}/health/ready"))
                .send()
                .await
                .ok()?;
            (answer.status() == 200).then_some(())
        })
        .await;
    }
    // The workload manager with the flag repeated, the sandbox with the variable.
    procs.push(Proc::spawn(
        "workload-manager",
        env!("CARGO_BIN_EXE_workload-manager"),
        &[
            "--listen",
            &format!("127.0.0.1:{wm_port}"),
            "--router-jwks-url",
            &jwks[0],
            "--router-jwks-url",
            &jwks[1],
            "--sandbox-url",
            &sandbox_tap.url(),
        ],
        &[],
        dir.path(),
    ));
    let jwks_env = jwks.join(",");
    procs.push(Proc::spawn(
        "sandbox",
        env!("CARGO_BIN_EXE_sandbox"),
        &["--listen", &format!("127.0.0.1:{sandbox_port}")],
        &[("AGENTCUBE_ROUTER_JWKS_URL", &jwks_env)],
        dir.path(),
    ));
    poll_until("workload manager ready", &procs, || async move {
        let answer = client
            .get(format!("http://127.0.0.1:{wm_port}/health/ready"))
            .send()
            .await
            .ok()?;
        (answer.status() == 200).then_some(())
    })
    .await;
    let probe_minter = TokenMinter::new(Arc::new(KeyRing::new(
        SigningKey::from_pem(&old_pem).unwrap(),
    )));
    let probe_session = uuid::Uuid::new_v4().to_string();
    let probe_token = probe_minter
        .sandbox_token(
            &Principal::builder("https://idp.example", "probe").build(),
            &probe_session,
        )
        .unwrap()
        .bearer();
    let (probe_token, probe_session) = (&probe_token, &probe_session);
    poll_until("sandbox ready", &procs, || async move {
        let answer = client
            .post(format!("http://127.0.0.1:{sandbox_port}/probe"))
            .header("authorization", probe_token)
            .header(SESSION_HEADER, probe_session)
            .body("{}")
            .send()
            .await
            .ok()?;
        (answer.status() == 200).then_some(())
    })
    .await;

    // Requests flow from here to the end.
    let clients = Clients::start(&routers, &idp);
    clients
        .more_rounds(ROUNDS_PER_PHASE, "before", &procs)
        .await;
    let kids_seen = |from: usize| -> Vec<(Hop, String)> { seen.lock().unwrap()[from..].to_vec() };
    let all_by = |kids: &[(Hop, String)], kid: &str| kids.iter().all(|(_, k)| k == kid);
    assert!(all_by(&kids_seen(0), &old_kid), "{:?}", kids_seen(0));
    let requests_before = clients.requests();

    // Step 1: the next key is published by every replica, and signs nowhere.
    let (new_key, new_pem) = new_key();
    let new_kid = new_key.kid().to_owned();
    write_atomically(&keys.join(NEXT_KEY_FILE), &new_pem);
    wait_for_kids(
        client,
        &jwks,
        &[&old_kid, &new_kid],
        "the next key published",
        &procs,
    )
    .await;
    clients
        .more_rounds(ROUNDS_PER_PHASE, "next key published", &procs)
        .await;
    let before_swap = seen.lock().unwrap().len();
    assert!(
        all_by(&kids_seen(0), &old_kid),
        "no token is signed by the next key before the swap"
    );
    let requests_step1 = clients.requests();

    // Step 2: the swap. The old key stays published as previous.pem.
    std::fs::copy(keys.join(CURRENT_KEY_FILE), keys.join(PREVIOUS_KEY_FILE)).unwrap();
    std::fs::rename(keys.join(NEXT_KEY_FILE), keys.join(CURRENT_KEY_FILE)).unwrap();
    wait_for_kids(
        client,
        &jwks,
        &[&new_kid, &old_kid],
        "the new key signing",
        &procs,
    )
    .await;
    // Every replica has swapped; once the rounds in flight are done, every token sent is one
    // minted after the swap (a cached token of the old key is never reused).
    clients.rounds_in_flight_done(&procs).await;
    let after_swap = seen.lock().unwrap().len();
    clients
        .more_rounds(ROUNDS_PER_PHASE, "after the swap", &procs)
        .await;
    let minted_after = kids_seen(after_swap);
    assert!(
        all_by(&minted_after, &new_kid),
        "every token minted after the swap carries the new kid {new_kid}: {minted_after:?}"
    );
    for hop in [Hop::Identity, Hop::Sandbox] {
        assert!(
            minted_after.iter().any(|(h, _)| *h == hop),
            "{hop:?} tokens were sent after the swap"
        );
    }
    let during_swap = kids_seen(before_swap);
    let old_during_swap = during_swap.iter().filter(|(_, k)| *k == old_kid).count();
    let requests_step2 = clients.requests();

    // Step 3: the previous key is withdrawn: no token in flight carries it any more.
    std::fs::remove_file(keys.join(PREVIOUS_KEY_FILE)).unwrap();
    wait_for_kids(
        client,
        &jwks,
        &[&new_kid],
        "the previous key withdrawn",
        &procs,
    )
    .await;
    clients
        .more_rounds(ROUNDS_PER_PHASE, "previous key withdrawn", &procs)
        .await;
    assert!(all_by(&kids_seen(after_swap), &new_kid));

    let (requests, failures) = clients.stop().await;
    let identity_tokens = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(h, _)| *h == Hop::Identity)
        .count();
    println!(
        "rotation: {requests} requests through 2 replicas by {CLIENTS} clients \
         ({requests_before} before step 1, {} while the next key was published, {} across the \
         swap, {} after the previous key was withdrawn), {} failed; {identity_tokens} identity \
         and {} sandbox tokens seen, {old_during_swap} of them signed by the old key after the \
         next one was published",
        requests_step1 - requests_before,
        requests_step2 - requests_step1,
        requests - requests_step2,
        failures.len(),
        seen.lock().unwrap().len() - identity_tokens,
    );
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}\n{}",
        failures.len(),
        failures.first(),
        outputs(&procs)
    );
    // The replicas logged the reloads.
    let router_log = procs[0].output();
    assert!(
        router_log.contains("identity keys reloaded"),
        "{router_log}"
    );
    wm_tap.shutdown().await;
    sandbox_tap.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_key_directory_at_once() {
    let dir = TempDir::new();
    let keys = dir.path().join("identity");
    std::fs::create_dir_all(&keys).unwrap();
    let (current, current_pem) = new_key();
    std::fs::write(keys.join(CURRENT_KEY_FILE), &current_pem).unwrap();
    let port = free_port();
    // Polling off: only the signal reloads.
    let router = Proc::spawn(
        "router",
        env!("CARGO_BIN_EXE_router"),
        &[
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--jwt-issuer-url",
            "http://127.0.0.1:9/realms/agentcube",
            "--workload-manager-url",
            "http://127.0.0.1:9",
            "--identity-key",
            keys.to_str().unwrap(),
            "--identity-key-reload-secs",
            "0",
        ],
        &[],
        dir.path(),
    );
    let procs = [router];
    let client = &http();
    let jwks = [format!(
        "http://127.0.0.1:{port}/.well-known/agentcube/jwks.json"
    )];
    let current_kid = current.kid().to_owned();
    wait_for_kids(client, &jwks, &[&current_kid], "the router's JWKS", &procs).await;

    let (next, next_pem) = new_key();
    let next_kid = next.kid().to_owned();
    write_atomically(&keys.join(NEXT_KEY_FILE), &next_pem);
    let pid = procs[0].child.id().to_string();
    let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(status.success());
    wait_for_kids(
        client,
        &jwks,
        &[&current_kid, &next_kid],
        "the next key published after SIGHUP",
        &procs,
    )
    .await;
    let log = procs[0].output();
    assert!(
        log.lines()
            .any(|l| l.contains("identity keys reloaded") && l.contains("SIGHUP")),
        "{log}"
    );
}

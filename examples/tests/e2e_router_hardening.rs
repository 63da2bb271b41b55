//! The Router as a proxy, over real HTTP on loopback: the path suffix reaches the sandbox as the
//! client sent it, entry points match at segment boundaries, bodies stream both ways (a Router
//! process forwarding a 256 MiB response stays small), the response cap cuts off cleanly, a
//! streamed response keeps its concurrency slot, and sandbox errors are logged without the
//! client's query string.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: failing loudly is the point, and the memory figures are printed"
)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agentcube_examples::AGENTCUBE_REALM_JSON;
use agentcube_examples::dev_idp::DevIdp;
use agentcube_examples::quickstart;
use agentcube_examples::router::{self, OidcOptions, RouterConfig};
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_examples::scenario::unverified_claims;
use agentcube_examples::server::{self, Server};
use agentcube_identity::{KeyRing, TokenMinter};
use agentcube_rlac::InMemoryOwnerStore;
use agentcube_testkit::net::{ClosedPort, free_port};
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse as _;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use support::http::send;
use support::logs::CapturedLogs;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

/// The agent-runtime invocation prefix; tests append the suffix.
const INVOKE: &str = "/v1/namespaces/default/agent-runtimes/demo/invocations";

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const CHUNK: usize = 64 * KIB;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

// ---------------------------------------------------------------------------------------------
// Small helpers

fn http() -> reqwest::Client {
    support::http::client(Duration::from_secs(120))
}

/// `GET {base}{INVOKE}/{suffix}` with `token` (and `session`).
fn get(base: &str, suffix: &str, token: &str, session: Option<&str>) -> reqwest::RequestBuilder {
    let mut request = http()
        .get(format!("{base}{INVOKE}/{suffix}"))
        .bearer_auth(token);
    if let Some(session) = session {
        request = request.header(SESSION_HEADER, session);
    }
    request
}

/// Reads a response body chunk by chunk: the bytes received, and whether it ended in an error.
async fn drain(mut response: reqwest::Response) -> (usize, bool) {
    let mut received = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => return (received, false),
            Err(_) => return (received, true),
        }
    }
}

fn sub(token: &str) -> String {
    unverified_claims(token).expect("claims")["sub"]
        .as_str()
        .expect("sub")
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Captured logs (one subscriber for the whole test binary)

/// Installs the capturing subscriber (once) before a test starts its services.
fn capture_logs() -> &'static CapturedLogs {
    static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = CapturedLogs::default();
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("info"))
            .with_writer(captured.clone())
            .with_ansi(false)
            .try_init()
            .expect("the only subscriber");
        captured
    })
}

fn logged() -> String {
    capture_logs().text()
}

// ---------------------------------------------------------------------------------------------
// Stand-ins for the workload manager and the sandbox

/// A workload manager that creates agent-runtime sessions owned by `owner` with these entry
/// points.
async fn fake_wm(owner: String, entry_points: Value) -> Server {
    // Session ids unique in the test binary, so a log line names one test's session.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    server::serve(axum::Router::new().route(
        "/v1/agent-runtime",
        axum::routing::post(move || {
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let body = json!({
                "kind": "AgentRuntime",
                "sessionId": format!("session-{n}"),
                "sandboxId": "sandbox",
                "sandboxName": "sandbox",
                "entryPoints": entry_points,
                "ownerId": owner,
            });
            async move { axum::Json(body) }
        }),
    ))
    .await
    .expect("fake wm")
}

fn zeros(chunks: usize) -> Body {
    Body::from_stream(futures_util::stream::iter(
        (0..chunks).map(|_| Ok::<_, Infallible>(Bytes::from_static(&ZEROS))),
    ))
}

/// A sandbox without authentication:
/// - `GET /zeros/{n}`: `n` × 64 KiB of zeros, chunked (no length);
/// - `GET /sized/{n}`: the same with a `Content-Length`;
/// - `GET /hang`: never answers;
/// - anything else: reads the body as it arrives (telling `first_chunk` when its first bytes
///   are in) and echoes `{"path","query","len"}`.
async fn fake_sandbox(first_chunk: Option<mpsc::Sender<()>>) -> Server {
    let app = axum::Router::new()
        .route(
            "/zeros/{n}",
            axum::routing::get(
                |axum::extract::Path(n): axum::extract::Path<usize>| async move { zeros(n) },
            ),
        )
        .route(
            "/sized/{n}",
            axum::routing::get(
                |axum::extract::Path(n): axum::extract::Path<usize>| async move {
                    vec![0_u8; n * CHUNK]
                },
            ),
        )
        .route(
            "/hang",
            axum::routing::get(std::future::pending::<&'static str>),
        )
        .fallback(move |uri: Uri, body: Body| {
            let first_chunk = first_chunk.clone();
            async move {
                let mut stream = body.into_data_stream();
                let mut len = 0;
                while let Some(chunk) = stream.next().await {
                    let Ok(chunk) = chunk else {
                        return StatusCode::BAD_REQUEST.into_response();
                    };
                    if len == 0
                        && !chunk.is_empty()
                        && let Some(tx) = &first_chunk
                    {
                        let _ = tx.try_send(());
                    }
                    len += chunk.len();
                }
                axum::Json(json!({"path": uri.path(), "query": uri.query(), "len": len}))
                    .into_response()
            }
        });
    server::serve(app).await.expect("fake sandbox")
}

/// A Router in this process in front of a fake workload manager and a fake sandbox.
struct Rig {
    _idp: DevIdp,
    token: String,
    router: Server,
    wm: Server,
    sandbox: Server,
}

impl Rig {
    /// `entry_points` gets the fake sandbox's URL.
    async fn start(
        config: impl FnOnce(RouterConfig) -> RouterConfig,
        entry_points: impl FnOnce(&str) -> Value,
        first_chunk: Option<mpsc::Sender<()>>,
    ) -> Self {
        let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
        let verifier = Arc::new(OidcOptions::new(idp.issuer()).build().expect("verifier"));
        assert!(quickstart::wait_ready(&verifier, Duration::from_secs(10)).await);
        let token = idp.issue("agentcube-app", &Value::Null).expect("token");
        let sandbox = fake_sandbox(first_chunk).await;
        let wm = fake_wm(sub(&token), entry_points(&sandbox.url())).await;
        let router = router::serve(
            verifier,
            Arc::new(TokenMinter::new(Arc::new(
                KeyRing::generate().expect("key"),
            ))),
            Arc::new(InMemoryOwnerStore::new()),
            config(RouterConfig::new(wm.url())),
        )
        .await
        .expect("router");
        Self {
            _idp: idp,
            token,
            router,
            wm,
            sandbox,
        }
    }

    fn url(&self) -> String {
        self.router.url()
    }

    /// Creates a session (through a small echo) and returns its id.
    async fn session(&self) -> String {
        let created = send(get(&self.url(), "echo", &self.token, None)).await;
        assert_eq!(created.status, 200, "{:?}", created.body);
        assert!(!created.session().is_empty());
        created.session()
    }

    async fn shutdown(self) {
        self.router.shutdown().await;
        self.wm.shutdown().await;
        self.sandbox.shutdown().await;
    }
}

fn one_entry_point(sandbox: &str) -> Value {
    json!([{"path": "/", "protocol": "HTTP", "endpoint": sandbox}])
}

/// A request written by hand (clients resolve dot segments before sending): the status and
/// the JSON body.
async fn raw_get(addr: SocketAddr, target: &str, token: &str, session: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         {SESSION_HEADER}: {session}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw);
    let status = text[9..12].parse().expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

// ---------------------------------------------------------------------------------------------
// The forwarded path

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_suffix_and_the_query_reach_the_sandbox_as_sent() {
    let qs = quickstart::start_dev(None).await.expect("quickstart");
    assert!(quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await);
    let idp = qs.idp.clone().expect("dev idp");
    let token = idp.issue("agentcube-app", &Value::Null).expect("token");
    let base = qs.stack.router_url();
    let session = send(get(&base, "run", &token, None)).await.session();
    assert!(!session.is_empty());

    for (suffix, path, query) in [
        // Encoded slashes stay inside their segment: no way out to `/admin`.
        (
            "a%2F..%2F..%2Fadmin?x=1",
            "/a%2F..%2F..%2Fadmin",
            json!("x=1"),
        ),
        // An encoded `?` is no query, an encoded `#` drops nothing.
        ("q%3Fa=1%23frag?real=1", "/q%3Fa=1%23frag", json!("real=1")),
        (
            "a%20b/c%2Fd%25?k=v%26w&h=%23",
            "/a%20b/c%2Fd%25",
            json!("k=v%26w&h=%23"),
        ),
        ("plain/path", "/plain/path", Value::Null),
        ("", "/", Value::Null),
    ] {
        let answer = send(get(&base, suffix, &token, Some(&session))).await;
        assert_eq!(answer.status, 200, "{suffix}: {:?}", answer.body);
        assert_eq!(answer.body["path"], path, "{suffix}");
        assert_eq!(answer.body["query"], query, "{suffix}");
    }
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_are_refused_and_backslashes_stay_in_their_segment() {
    let qs = quickstart::start_dev(None).await.expect("quickstart");
    assert!(quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await);
    let idp = qs.idp.clone().expect("dev idp");
    let token = idp.issue("agentcube-app", &Value::Null).expect("token");
    let base = qs.stack.router_url();
    let session = send(get(&base, "run", &token, None)).await.session();
    let addr = qs.stack.router.addr();

    for suffix in [
        "x/../../admin",
        "x/%2e%2e/admin",
        ".%2E/admin",
        "%2E./admin",
        "x/./y",
        "x/%2e",
        "..",
    ] {
        let (status, body) = raw_get(addr, &format!("{INVOKE}/{suffix}"), &token, &session).await;
        assert_eq!(status, 400, "{suffix}: {body}");
        assert_eq!(body["code"], "invalid_path", "{suffix}");
        assert_eq!(
            body["error"], "path must not contain dot segments",
            "{suffix}"
        );
    }
    // Not dot segments: forwarded as they are (a literal `\` as `%5C`, so a URL cannot read
    // it as `/`).
    for (suffix, path) in [
        ("a\\..\\admin", "/a%5C..%5Cadmin"),
        ("v1..2/...x/a.", "/v1..2/...x/a."),
        ("%2e%2e%2fadmin", "/%2e%2e%2fadmin"),
        // Characters a URL cannot hold as they are: encoded, same text once decoded.
        ("j{s}\"o?q='1'", "/j%7Bs%7D%22o"),
    ] {
        let (status, body) = raw_get(addr, &format!("{INVOKE}/{suffix}"), &token, &session).await;
        assert_eq!(status, 200, "{suffix}: {body}");
        assert_eq!(body["path"], path, "{suffix}");
        if suffix.contains('?') {
            assert_eq!(body["query"], "q=%271%27");
        }
    }
    qs.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_points_match_at_segment_boundaries() {
    let rig = Rig::start(
        |config| config,
        |sandbox| {
            json!([
                {"path": "/", "protocol": "HTTP", "endpoint": format!("{sandbox}/root")},
                {"path": "/api", "protocol": "HTTP", "endpoint": format!("{sandbox}/api-ep")},
                {"path": "/api/v2/", "protocol": "HTTP", "endpoint": format!("{sandbox}/v2-ep")},
            ])
        },
        None,
    )
    .await;
    let session = rig.session().await;
    for (suffix, path) in [
        ("apix", "/root/apix"),
        ("api", "/api-ep/api"),
        ("api/x", "/api-ep/api/x"),
        ("api/v2", "/v2-ep/api/v2"),
        ("api/v2/run", "/v2-ep/api/v2/run"),
        ("api/v2x", "/api-ep/api/v2x"),
        ("other", "/root/other"),
    ] {
        let answer = send(get(&rig.url(), suffix, &rig.token, Some(&session))).await;
        assert_eq!(answer.status, 200, "{suffix}: {:?}", answer.body);
        assert_eq!(answer.body["path"], path, "{suffix}");
    }
    rig.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// `(VmHWM, VmRSS)` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("memory field")
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The `router` binary, killed when dropped.
struct RouterProcess {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_response_streams_through_a_router_process_in_bounded_memory() {
    const BODY_CHUNKS: usize = 4096; // 256 MiB
    let idp = DevIdp::start(AGENTCUBE_REALM_JSON).await.expect("idp");
    let token = idp.issue("agentcube-app", &Value::Null).expect("token");
    let sandbox = fake_sandbox(None).await;
    let wm = fake_wm(sub(&token), one_entry_point(&sandbox.url())).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::env::temp_dir().join(format!("router-hardening-{}.log", std::process::id()));
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["--listen", &addr.to_string()])
        .args(["--jwt-issuer-url", idp.issuer()])
        .args(["--workload-manager-url", &wm.url()])
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("router binary");
    let router = RouterProcess { child, log };
    let pid = router.child.id();
    let base = format!("http://{addr}");

    // Ready: listening, and the IdP's keys loaded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http().get(format!("{base}/health/ready")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the router did not become ready: {}",
            std::fs::read_to_string(&router.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Warm up: a session, and a 1 MiB response through the proxy.
    let warm = get(&base, "zeros/16", &token, None)
        .send()
        .await
        .expect("warm-up");
    assert_eq!(warm.status(), 200);
    let session = warm.headers()[SESSION_HEADER]
        .to_str()
        .expect("session")
        .to_owned();
    assert_eq!(drain(warm).await, (16 * CHUNK, false));
    let (peak_before, rss_before) = memory_kib(pid);

    let response = get(
        &base,
        &format!("zeros/{BODY_CHUNKS}"),
        &token,
        Some(&session),
    )
    .send()
    .await
    .expect("large response");
    assert_eq!(response.status(), 200);
    let (received, failed) = drain(response).await;
    let (peak_after, rss_after) = memory_kib(pid);
    println!(
        "router process memory, 256 MiB response: peak (VmHWM) {peak_before} KiB -> \
         {peak_after} KiB (+{} KiB), resident (VmRSS) {rss_before} KiB -> {rss_after} KiB",
        peak_after - peak_before
    );
    assert!(!failed);
    assert_eq!(received, BODY_CHUNKS * CHUNK);
    assert!(
        (peak_after - peak_before) * 1024 < 64 * MIB as u64,
        "the router's peak memory grew by {} KiB for a 256 MiB response",
        peak_after - peak_before
    );
    drop(router);
    wm.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_cap_is_cut_off_and_the_router_keeps_serving() {
    capture_logs();
    let cap = 4 * CHUNK; // 256 KiB
    let rig = Rig::start(|c| c.max_response_bytes(cap), one_entry_point, None).await;
    let session = rig.session().await;

    // No length: the client gets the status, at most the cap, then an error.
    let response = get(&rig.url(), "zeros/16", &rig.token, Some(&session))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let (received, failed) = drain(response).await;
    assert!(failed, "a cut-off body must not look complete");
    assert!(received <= cap, "{received} bytes received");
    let logs = logged();
    assert!(
        logs.lines().any(|l| l
            .contains("sandbox response longer than the response limit; cut off")
            && l.contains(&session)),
        "{logs}"
    );

    // A declared length over the cap: refused before anything is sent.
    let refused = send(get(&rig.url(), "sized/16", &rig.token, Some(&session))).await;
    assert_eq!(refused.status, 502, "{:?}", refused.body);
    assert_eq!(refused.code(), "response_too_large");
    assert_eq!(refused.body["error"], "sandbox response too large");

    // Still serving: up to the cap, with or without a length, complete.
    let at_cap = get(&rig.url(), "zeros/4", &rig.token, Some(&session))
        .send()
        .await
        .expect("response");
    assert_eq!(at_cap.status(), 200);
    assert_eq!(drain(at_cap).await, (cap, false));
    let sized = get(&rig.url(), "sized/2", &rig.token, Some(&session))
        .send()
        .await
        .expect("response");
    assert_eq!(sized.status(), 200);
    assert_eq!(sized.content_length(), Some(2 * CHUNK as u64));
    assert_eq!(drain(sized).await, (2 * CHUNK, false));
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_to_the_sandbox_up_to_the_limit() {
    let (first_tx, mut first_rx) = mpsc::channel(1);
    let rig = Rig::start(|c| c.max_body_bytes(64), one_entry_point, Some(first_tx)).await;
    let session = rig.session().await;

    // The sandbox has the first bytes while the client is still sending.
    let (body_tx, body_rx) = mpsc::channel::<Bytes>(4);
    let body = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    let upload = tokio::spawn(send(
        http()
            .post(format!("{}{INVOKE}/upload", rig.url()))
            .bearer_auth(&rig.token)
            .header(SESSION_HEADER, &session)
            .body(reqwest::Body::wrap_stream(body)),
    ));
    body_tx
        .send(Bytes::from_static(b"first "))
        .await
        .expect("send");
    tokio::time::timeout(Duration::from_secs(10), first_rx.recv())
        .await
        .expect("the sandbox saw no byte before the body was complete")
        .expect("signal");
    body_tx
        .send(Bytes::from_static(b"and last"))
        .await
        .expect("send");
    drop(body_tx);
    let uploaded = upload.await.expect("upload");
    assert_eq!(uploaded.status, 200, "{:?}", uploaded.body);
    assert_eq!(uploaded.body["len"], 14);

    // Over the limit, declared: refused at once.
    let declared = send(
        http()
            .post(format!("{}{INVOKE}/upload", rig.url()))
            .bearer_auth(&rig.token)
            .header(SESSION_HEADER, &session)
            .body("x".repeat(65)),
    )
    .await;
    assert_eq!(declared.status, 413, "{:?}", declared.body);
    assert_eq!(declared.code(), "body_too_large");
    assert_eq!(declared.body["error"], "request body too large");

    // Over the limit, chunked: refused when the bytes pass it.
    let chunks = futures_util::stream::iter([
        Ok::<_, Infallible>(Bytes::from_static(&[b'x'; 40])),
        Ok(Bytes::from_static(&[b'y'; 40])),
    ]);
    let chunked = send(
        http()
            .post(format!("{}{INVOKE}/upload", rig.url()))
            .bearer_auth(&rig.token)
            .header(SESSION_HEADER, &session)
            .body(reqwest::Body::wrap_stream(chunks)),
    )
    .await;
    assert_eq!(chunked.status, 413, "{:?}", chunked.body);
    assert_eq!(chunked.code(), "body_too_large");
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_response_keeps_its_concurrency_slot_until_it_ends() {
    let rig = Rig::start(|c| c.max_concurrent_requests(1), one_entry_point, None).await;
    let session = rig.session().await;

    // 64 MiB the client does not read yet: the response is still being served.
    let streaming = get(&rig.url(), "zeros/1024", &rig.token, Some(&session))
        .send()
        .await
        .expect("response");
    assert_eq!(streaming.status(), 200);
    let busy = send(get(&rig.url(), "echo", &rig.token, Some(&session))).await;
    assert_eq!(busy.status, 429, "{:?}", busy.body);
    assert_eq!(busy.code(), "server_overloaded");

    // Once it has been read to the end, the slot is free again.
    assert_eq!(drain(streaming).await, (1024 * CHUNK, false));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send(get(&rig.url(), "echo", &rig.token, Some(&session))).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(answer.code(), "server_overloaded");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Logs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_errors_are_logged_without_the_query_string() {
    capture_logs();
    let down = ClosedPort::bind();
    let rig = Rig::start(
        |c| c.upstream_timeout(Duration::from_millis(500)),
        |sandbox| {
            json!([
                {"path": "/", "protocol": "HTTP", "endpoint": sandbox},
                {"path": "/down", "protocol": "HTTP", "endpoint": down.addr().to_string()},
            ])
        },
        None,
    )
    .await;
    let session = rig.session().await;
    let unreachable = send(get(
        &rig.url(),
        "down?api_key=hunter2-unreachable",
        &rig.token,
        Some(&session),
    ))
    .await;
    assert_eq!(unreachable.status, 502, "{:?}", unreachable.body);
    assert_eq!(unreachable.code(), "sandbox_unavailable");
    assert_eq!(unreachable.body["error"], "sandbox unavailable");
    let timed_out = send(get(
        &rig.url(),
        "hang?api_key=hunter2-timeout",
        &rig.token,
        Some(&session),
    ))
    .await;
    assert_eq!(timed_out.status, 504, "{:?}", timed_out.body);
    assert_eq!(timed_out.code(), "sandbox_timeout");
    assert_eq!(timed_out.body["error"], "sandbox timed out");

    let logs = logged();
    let unreachable: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("sandbox unreachable") && l.contains(&session))
        .collect();
    assert_eq!(unreachable.len(), 2, "{logs}");
    assert!(
        unreachable.iter().any(|l| l.contains("connect")),
        "the cause is kept: {unreachable:?}"
    );
    assert!(!logs.contains("api_key"), "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
    rig.shutdown().await;
}

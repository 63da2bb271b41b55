//! `RedisOwnerStore` against a real redis-server (`AGENTCUBE_REDIS_URL`), and against servers that
//! are down or never answer (no Redis needed).
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentcube_auth_core::{Principal, Rejection, Role};
use agentcube_rlac::{
    AccessPolicy, AccessRequest, Action, OwnerId, OwnerPolicy, OwnerStore, Reason, RedisOwnerStore,
    RedisStoreConfig, SessionRecord, StoreError,
};
use agentcube_testkit::net::ClosedPort;
use agentcube_testkit::services::redis_url;
use http::StatusCode;
use redis::AsyncCommands;
use serde_json::json;

/// A session id no other test (or run) uses.
fn unique_id(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "rlac-test-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn alice() -> Principal {
    Principal::builder("https://kc/realms/agentcube", "alice")
        .roles([Role::realm("sandbox:invoke")])
        .build()
}

/// The Router's path: look up, then decide. `Err(status)` for any store error.
async fn router_decision(
    store: &dyn OwnerStore,
    caller: &Principal,
    session_id: &str,
) -> Result<Option<Reason>, StatusCode> {
    let record = store.get(session_id).await.map_err(|e| e.status())?;
    Ok(record.map(|r| {
        OwnerPolicy::default()
            .decide(&AccessRequest::for_record(Some(caller), &r, Action::Invoke))
            .reason()
    }))
}

#[tokio::test]
async fn found_written_by_this_crate_in_the_shared_layout() {
    let Some(url) = redis_url("found_written_by_this_crate_in_the_shared_layout") else {
        return;
    };
    let store = RedisOwnerStore::new(&url).unwrap();
    let id = unique_id("found");
    let mut record = SessionRecord::owned(OwnerId::new("alice").unwrap(), &id);
    record.kind = "AgentRuntime".into();
    record.sandbox_id = "sb-1".into();
    store.put(&record).await.unwrap();

    // The shared layout: key `session:<id>`, JSON with `ownerId`.
    let mut conn = raw(&url).await;
    let stored: String = conn.get(format!("session:{id}")).await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["ownerId"], "alice");
    assert_eq!(stored["sessionId"], id.as_str());
    assert_eq!(stored["kind"], "AgentRuntime");

    assert_eq!(store.get(&id).await.unwrap(), Some(record));
    assert_eq!(
        router_decision(&store, &alice(), &id).await,
        Ok(Some(Reason::Owner))
    );
    let bob = Principal::builder("https://kc/realms/agentcube", "bob").build();
    assert_eq!(
        router_decision(&store, &bob, &id).await,
        Ok(Some(Reason::NotOwner))
    );

    assert!(store.delete(&id).await.unwrap());
    assert!(!store.delete(&id).await.unwrap());
    assert_eq!(store.get(&id).await.unwrap(), None);
}

#[tokio::test]
async fn found_written_by_an_existing_workload_manager() {
    let Some(url) = redis_url("found_written_by_an_existing_workload_manager") else {
        return;
    };
    let store = RedisOwnerStore::new(&url).unwrap();
    let mut conn = raw(&url).await;

    // The older `ownerID` spelling, the Go field names, fields this crate does not model.
    let old = unique_id("old");
    let value = json!({
        "kind": "AgentRuntime", "sandboxId": "sb", "sandboxNamespace": "default", "name": "ar-1",
        "entryPoints": [{"path": "/", "protocol": "HTTP", "endpoint": "10.0.0.1:8080"}],
        "sessionId": old, "createdAt": "2025-01-01T00:00:00Z", "expiresAt": "2025-01-01T01:00:00Z",
        "status": "running", "ownerID": "alice",
    });
    let _: () = conn
        .set(format!("session:{old}"), value.to_string())
        .await
        .unwrap();
    let record = store.get(&old).await.unwrap().unwrap();
    assert_eq!(record.owner().unwrap(), "alice");
    assert_eq!(record.sandbox_name, "ar-1");
    assert_eq!(record.extra()["status"], "running");
    assert_eq!(
        router_decision(&store, &alice(), &old).await,
        Ok(Some(Reason::Owner))
    );

    // An ownerless session (Go omits the empty field): found, and denied.
    let ownerless = unique_id("ownerless");
    let value = json!({"sessionId": ownerless, "kind": "CodeInterpreter", "entryPoints": null});
    let _: () = conn
        .set(format!("session:{ownerless}"), value.to_string())
        .await
        .unwrap();
    let record = store.get(&ownerless).await.unwrap().unwrap();
    assert!(record.owner().is_none());
    assert_eq!(
        router_decision(&store, &alice(), &ownerless).await,
        Ok(Some(Reason::NoOwnerRecord))
    );

    // A record without `sessionId` takes the key's.
    let bare = unique_id("bare");
    let _: () = conn
        .set(format!("session:{bare}"), r#"{"ownerId":"alice"}"#)
        .await
        .unwrap();
    assert_eq!(store.get(&bare).await.unwrap().unwrap().session_id, bare);

    for id in [old, ownerless, bare] {
        let _: () = conn.del(format!("session:{id}")).await.unwrap();
    }
}

#[tokio::test]
async fn not_found() {
    let Some(url) = redis_url("not_found") else {
        return;
    };
    let store = RedisOwnerStore::new(&url).unwrap();
    let id = unique_id("missing");
    assert_eq!(store.get(&id).await.unwrap(), None);
    assert_eq!(router_decision(&store, &alice(), &id).await, Ok(None));
    assert!(!store.delete(&id).await.unwrap());
    store.ping().await.unwrap();
}

#[tokio::test]
async fn malformed_values_are_errors_never_no_owner() {
    let Some(url) = redis_url("malformed_values_are_errors_never_no_owner") else {
        return;
    };
    let store = RedisOwnerStore::new(&url).unwrap();
    let mut conn = raw(&url).await;
    let mut ids = Vec::new();
    for (tag, value) in [
        ("notjson", "definitely not json".to_owned()),
        (
            "number",
            json!({"sessionId": "x", "ownerId": 42}).to_string(),
        ),
        ("array", json!(["alice"]).to_string()),
        ("empty", String::new()),
        ("truncated", r#"{"ownerId": "alice""#.to_owned()),
    ] {
        let id = unique_id(tag);
        let _: () = conn.set(format!("session:{id}"), value).await.unwrap();
        ids.push((tag, id));
    }
    // A record that names another session.
    let other = unique_id("other");
    let value = json!({"sessionId": "someone-elses", "ownerId": "alice"}).to_string();
    let _: () = conn.set(format!("session:{other}"), value).await.unwrap();
    ids.push(("other", other));
    // Not a string at all.
    let hash = unique_id("hash");
    let _: () = conn
        .hset(format!("session:{hash}"), "ownerId", "alice")
        .await
        .unwrap();
    ids.push(("hash", hash));

    for (tag, id) in &ids {
        let err = store.get(id).await.unwrap_err();
        assert!(
            matches!(err, StoreError::MalformedRecord { .. }),
            "{tag}: {err:?}"
        );
        assert_eq!(err.code(), "malformed_record", "{tag}");
        assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR, "{tag}");
        assert_eq!(err.public_message(), "internal server error");
        assert!(err.to_string().contains(id.as_str()), "{tag}: {err}");
        assert_eq!(
            router_decision(&store, &alice(), id).await,
            Err(StatusCode::INTERNAL_SERVER_ERROR),
            "{tag}"
        );
    }
    for (_, id) in ids {
        let _: () = conn.del(format!("session:{id}")).await.unwrap();
    }
}

#[tokio::test]
async fn ttl_and_key_prefix_are_honoured() {
    let Some(url) = redis_url("ttl_and_key_prefix_are_honoured") else {
        return;
    };
    let config = RedisStoreConfig::default()
        .with_key_prefix("rlac-test-prefix:")
        .with_ttl(Some(Duration::from_secs(60)));
    let store = RedisOwnerStore::with_config(&url, config).unwrap();
    let id = unique_id("ttl");
    store
        .put(&SessionRecord::owned(OwnerId::new("alice").unwrap(), &id))
        .await
        .unwrap();
    let mut conn = raw(&url).await;
    let key = format!("rlac-test-prefix:{id}");
    assert_eq!(store.key(&id), key);
    let ttl_ms: i64 = conn.pttl(&key).await.unwrap();
    assert!(ttl_ms > 0 && ttl_ms <= 60_000, "{ttl_ms}");
    assert!(store.get(&id).await.unwrap().is_some());
    assert!(store.delete(&id).await.unwrap());
}

/// A TCP forwarder to Redis that can be stopped (dropping every connection) and restarted on
/// the same port: Redis going away and coming back, as seen by the store.
struct Flaky {
    port: u16,
    upstream: String,
    tasks: tokio::task::JoinSet<()>,
    /// Held until the first start, so that no other socket takes the port while Redis is
    /// "down" before it (after a stop the port is bound again by number).
    held: Option<ClosedPort>,
}

impl Flaky {
    fn new(upstream: String) -> Self {
        let held = ClosedPort::bind();
        Self {
            port: held.port(),
            upstream,
            tasks: tokio::task::JoinSet::new(),
            held: Some(held),
        }
    }

    async fn start(&mut self) {
        let listener = match self.held.take() {
            Some(held) => held.listen(),
            None => tokio::net::TcpListener::bind(("127.0.0.1", self.port))
                .await
                .unwrap(),
        };
        let upstream = self.upstream.clone();
        self.tasks.spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
    }

    async fn stop(&mut self) {
        self.tasks.shutdown().await;
    }
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, hp)| hp)
        .to_owned()
}

/// Retries `get` a few times: after an outage the first request may see the dead connection.
async fn get_eventually(
    store: &RedisOwnerStore,
    id: &str,
) -> Result<Option<SessionRecord>, StoreError> {
    let mut last = None;
    for _ in 0..20 {
        match store.get(id).await {
            Ok(found) => return Ok(found),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(last.unwrap())
}

#[tokio::test]
async fn recovers_when_redis_comes_up_late_and_after_an_outage() {
    let Some(url) = redis_url("recovers_when_redis_comes_up_late_and_after_an_outage") else {
        return;
    };
    let real = RedisOwnerStore::new(&url).unwrap();
    let id = unique_id("flaky");
    real.put(&SessionRecord::owned(OwnerId::new("alice").unwrap(), &id))
        .await
        .unwrap();

    let mut flaky = Flaky::new(host_port(&url));
    let store =
        RedisOwnerStore::with_config(&format!("redis://127.0.0.1:{}/", flaky.port), fast_config())
            .unwrap();
    // Down at start-up: 503, not a crash and not an allow.
    assert_eq!(
        router_decision(&store, &alice(), &id).await,
        Err(StatusCode::SERVICE_UNAVAILABLE)
    );
    // Up: served.
    flaky.start().await;
    assert!(get_eventually(&store, &id).await.unwrap().is_some());
    assert_eq!(
        router_decision(&store, &alice(), &id).await,
        Ok(Some(Reason::Owner))
    );
    // Outage: every request in it is a 503.
    flaky.stop().await;
    for _ in 0..3 {
        assert_eq!(
            router_decision(&store, &alice(), &id).await,
            Err(StatusCode::SERVICE_UNAVAILABLE)
        );
    }
    // Back: served again without rebuilding the store.
    flaky.start().await;
    assert!(get_eventually(&store, &id).await.unwrap().is_some());
    flaky.stop().await;
    assert!(real.delete(&id).await.unwrap());
}

// ---- no Redis needed below ----

fn fast_config() -> RedisStoreConfig {
    RedisStoreConfig::default()
        .with_timeout(Duration::from_millis(500))
        .with_connect_timeout(Duration::from_millis(200))
}

#[tokio::test]
async fn server_down_is_unavailable_503_never_an_allow() {
    let closed = ClosedPort::bind();
    let url = format!("redis://127.0.0.1:{}/", closed.port());
    // Constructing does not connect: a Router starts while Redis is down.
    let store = RedisOwnerStore::with_config(&url, fast_config()).unwrap();
    let admin = Principal::builder("iss", "ops")
        .roles([Role::realm("admin")])
        .build();
    for caller in [alice(), admin] {
        let err = store.get("s-1").await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(_) | StoreError::Timeout(_)),
            "{err:?}"
        );
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.public_message(), "session store unavailable");
        assert_eq!(
            router_decision(&store, &caller, "s-1").await,
            Err(StatusCode::SERVICE_UNAVAILABLE)
        );
    }
    let err = store.get("s-1").await.unwrap_err();
    assert_eq!(
        err.code(),
        "store_unavailable",
        "a refused connection is not a timeout"
    );
    let record = SessionRecord::owned(OwnerId::new("alice").unwrap(), "s-1");
    assert_eq!(
        store.put(&record).await.unwrap_err().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        store.delete("s-1").await.unwrap_err().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        store.ping().await.unwrap_err().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_503() {
    // Accepts connections and reads, but never replies.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            held.push(socket);
        }
    });
    let config = fast_config();
    let store = RedisOwnerStore::with_config(&format!("redis://127.0.0.1:{port}/"), config.clone())
        .unwrap();
    let started = Instant::now();
    let err = store.get("s-1").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE, "{err:?}");
    assert!(
        matches!(err, StoreError::Timeout(_) | StoreError::Unavailable(_)),
        "{err:?}"
    );
    assert!(
        took < config.timeout + Duration::from_millis(500),
        "took {took:?}"
    );
    assert_eq!(
        router_decision(&store, &alice(), "s-1").await,
        Err(StatusCode::SERVICE_UNAVAILABLE)
    );
    silent.abort();
}

#[test]
fn invalid_config_and_no_password_in_debug_or_errors() {
    let err = RedisOwnerStore::new("not a url").unwrap_err();
    assert_eq!(err.code(), "invalid_store_config");
    assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let err = RedisOwnerStore::with_config(
        "redis://127.0.0.1/",
        RedisStoreConfig::default().with_timeout(Duration::ZERO),
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_store_config");

    let store = RedisOwnerStore::new("redis://:hunter2@127.0.0.1:1/").unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("session:"));
    let err = RedisOwnerStore::new("redis://:hunter2@[::1/").unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
    assert!(!format!("{err:?}").contains("hunter2"));
}

#[tokio::test]
async fn a_record_without_session_id_is_refused_before_reaching_redis() {
    // Nothing listens on the port: the record is refused before any connection is tried.
    let closed = ClosedPort::bind();
    let url = format!("redis://127.0.0.1:{}/", closed.port());
    let store = RedisOwnerStore::with_config(&url, fast_config()).unwrap();
    let err = store
        .put(&SessionRecord::unowned_auth_disabled(""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "malformed_record", "{err:?}");
}

#[tokio::test]
async fn password_never_reaches_errors_when_down() {
    let closed = ClosedPort::bind();
    let url = format!("redis://:hunter2@127.0.0.1:{}/", closed.port());
    let store = RedisOwnerStore::with_config(&url, fast_config()).unwrap();
    let err = store.get("s").await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

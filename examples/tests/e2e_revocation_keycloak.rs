//! Instant revocation against a real Keycloak and a shared Redis: a user logs in (device flow on
//! `agentcube-cli`), calls the Router, an administrator logs the user out through Keycloak's Admin
//! REST API, Keycloak posts a back-channel logout token to one Router replica, and the user's
//! still-unexpired access token is refused with `token_revoked` on that replica — on a request
//! that hits its verified-token cache and on a fresh verification — and, through Redis, on the
//! other replica too. Then an administrator revokes a service account's client on the Router
//! (`POST /admin/revocations`), for identities without a Keycloak session.
//!
//! The test imports its own realm, a copy of `deploy/keycloak/agentcube-realm.json` whose
//! `${KC_ROUTER_URL}` is the first replica's address, as `scripts/keycloak.sh` substitutes it for
//! the production realm.
//!
//! Run with `scripts/with-services.sh cargo test -p agentcube-examples --all-features --test
//! e2e_revocation_keycloak`. Without either of `AGENTCUBE_KEYCLOAK_URL` and `AGENTCUBE_REDIS_URL`
//! the test prints a notice and passes, unless `CI` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: failing loudly is the point, and the timings are printed"
)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentcube_auth_core::RevocationSet;
use agentcube_examples::router::{self, OidcOptions, RevocationOptions, RouterConfig};
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_examples::stack::{Stack, StackOptions};
use agentcube_identity::TokenMinter;
use agentcube_oidc::client::{DeviceFlow, TokenSource as _};
use agentcube_oidc::{BackchannelLogout, OidcVerifier, RedisRevocationConfig, RedisRevocationSet};
use agentcube_rlac::RedisOwnerStore;
use agentcube_testkit::keycloak::{self, browse, client_token, random_hex};
use agentcube_testkit::services::redis_url;
use serde_json::{Value, json};
use support::http::{Answer, client, send};

const CLIENT: &str = "agentcube-cli";
const AR: &str = "/v1/namespaces/default/agent-runtimes/demo/invocations/run";

fn http() -> reqwest::Client {
    client(Duration::from_secs(30))
}

/// The unverified payload of a JWT.
fn claims(token: &str) -> Value {
    agentcube_examples::scenario::unverified_claims(token).unwrap()
}

async fn invoke(base: &str, token: &str, session: Option<&str>) -> Answer {
    let mut request = http()
        .post(format!("{base}{AR}"))
        .bearer_auth(token)
        .json(&json!({"hello": "world"}));
    if let Some(session) = session {
        request = request.header(SESSION_HEADER, session);
    }
    send(request).await
}

async fn revoke(base: &str, token: &str, body: &Value) -> Answer {
    send(
        http()
            .post(format!("{base}{}", router::ADMIN_REVOCATIONS_PATH))
            .bearer_auth(token)
            .json(body),
    )
    .await
}

/// Polls `done` every 20 ms until it holds or `limit` passes; returns how long it took.
async fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// One replica's revocation set: its own mirror of the test's stream.
async fn replica_set(redis: &str, key: &str) -> RedisRevocationSet {
    let config = RedisRevocationConfig::new()
        .with_key(key)
        .with_poll_interval(Duration::from_millis(100));
    let set = RedisRevocationSet::with_config(redis, config).unwrap();
    set.sync().await.unwrap();
    set.spawn_sync();
    set
}

fn verifier(issuer: &str, set: &RedisRevocationSet) -> OidcVerifier {
    OidcOptions::new(issuer)
        .revocations(Arc::new(set.clone()))
        .build()
        .unwrap()
}

fn revocation(verifier: &OidcVerifier, set: &RedisRevocationSet) -> RevocationOptions {
    let backchannel = BackchannelLogout::new([verifier], [CLIENT, "agentcube-router"]).unwrap();
    RevocationOptions::new(Arc::new(set.clone()), Some(backchannel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_in_keycloak_revokes_the_token_on_every_replica_at_once() {
    const TEST: &str = "logout_in_keycloak_revokes_the_token_on_every_replica_at_once";
    let (Some(kc), Some(redis)) = (keycloak::keycloak(TEST), redis_url(TEST)) else {
        return;
    };
    // The services' logs (the back-channel logout's is the one to look for) with --nocapture.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,agentcube_oidc=info")
        .with_test_writer()
        .try_init();
    let name = format!("revocation-{}", random_hex(4));
    let issuer = kc.issuer_of(&name);
    let stream = format!("{{agentcube:revocations-test-{}}}:log", random_hex(6));

    // Two Router replicas sharing Redis (owner store and revocations), each with its own
    // verifier, verified-token cache and revocation mirror; one workload manager and sandbox.
    let (set_a, set_b) = (
        replica_set(&redis, &stream).await,
        replica_set(&redis, &stream).await,
    );
    let (verifier_a, verifier_b) = (verifier(&issuer, &set_a), verifier(&issuer, &set_b));
    let stack = Stack::start(
        Arc::new(verifier_a.clone()),
        StackOptions::new()
            .router(RouterConfig::new("").revocation(revocation(&verifier_a, &set_a)))
            .redis_url(Some(redis.clone())),
    )
    .await
    .unwrap();
    let replica_b = router::serve(
        Arc::new(verifier_b.clone()),
        Arc::new(TokenMinter::new(Arc::clone(stack.minter.key_ring()))),
        Arc::new(RedisOwnerStore::new(&redis).unwrap()),
        RouterConfig::new(stack.workload_manager.url()).revocation(revocation(&verifier_b, &set_b)),
    )
    .await
    .unwrap();
    let (a, b) = (stack.router_url(), replica_b.url());

    // The realm: Keycloak's back-channel logout URL is replica A's.
    let admin = kc.admin();
    let realm = admin.import_realm_copy(&kc, &name, &a).await;
    let cli = admin
        .get(&format!(
            "/{name}/clients/{}",
            admin.client_uuid(&name, CLIENT).await
        ))
        .await;
    assert_eq!(
        cli["attributes"]["backchannel.logout.url"],
        format!("{a}/oidc/backchannel-logout")
    );
    assert_eq!(
        cli["attributes"]["backchannel.logout.session.required"],
        "true"
    );
    within(Duration::from_secs(20), "keys loaded", || {
        verifier_a.is_ready() && verifier_b.is_ready()
    })
    .await;

    // A user, logged in with the device flow on agentcube-cli.
    let user = admin.create_user(&name).await;
    let flow = DeviceFlow::builder(CLIENT).issuer(&issuer).build().unwrap();
    let authorization = flow.start().await.unwrap();
    let complete = authorization
        .verification_uri_complete()
        .unwrap()
        .to_owned();
    let code = authorization.user_code().to_owned();
    let (tokens, page) = tokio::join!(
        flow.poll(&authorization),
        browse(&complete, (&user.0, &user.1), Some(&code), None)
    );
    let tokens = tokens.unwrap_or_else(|e| panic!("{e}; last page: {page}"));
    let token = tokens.access_token().secret().to_owned();
    // A second access token of the same session (a refresh), never shown to a Router: its first
    // verification after the logout is a fresh one.
    let source = flow.token_source(&tokens).unwrap();
    source.invalidate();
    let unseen = source.token().await.unwrap().secret().to_owned();
    let (c1, c2) = (claims(&token), claims(&unseen));
    let sid = c1["sid"]
        .as_str()
        .expect("keycloak access tokens carry sid");
    assert_eq!(c2["sid"], sid);
    assert_eq!(c1["azp"], CLIENT);
    println!(
        "access token: sid present, exp - now = {} s",
        c1["exp"].as_i64().unwrap() - c1["iat"].as_i64().unwrap()
    );

    // The user works on both replicas; the repeats are verified-token cache hits.
    let first = invoke(&a, &token, None).await;
    assert_eq!(first.status, 200, "{first:?}");
    let session = first.session();
    assert!(!session.is_empty(), "{first:?}");
    for base in [&a, &b, &a, &b] {
        let answer = invoke(base, &token, Some(&session)).await;
        assert_eq!(answer.status, 200, "{base}: {answer:?}");
    }
    let app_secret = &realm.app_secret;
    let app = client_token(&issuer, "agentcube-app", app_secret).await;
    assert_eq!(invoke(&a, &app, None).await.status, 200);

    // An administrator logs the user out in Keycloak; Keycloak tells replica A.
    let user_id = admin.user_id(&name, &user.0).await;
    let logged_out = Instant::now();
    admin.logout_user(&name, &user_id).await;
    let to_a = within(Duration::from_secs(10), "back-channel logout at A", || {
        !set_a.mirror().is_empty()
    })
    .await;
    println!("back-channel logout recorded at replica A {to_a:?} after the admin call returned");

    // Replica A: the first request after, a cache hit, is refused; so is a fresh verification.
    let stats = verifier_a.stats();
    let answer = invoke(&a, &token, Some(&session)).await;
    assert_eq!((answer.status, answer.code()), (401, "token_revoked"));
    assert_eq!(verifier_a.stats().cache_hits, stats.cache_hits + 1);
    let answer = invoke(&a, &unseen, Some(&session)).await;
    assert_eq!((answer.status, answer.code()), (401, "token_revoked"));
    assert_eq!(verifier_a.stats().cache_misses, stats.cache_misses + 1);

    // Replica B did not receive the logout; it refuses the token once its mirror has read it.
    let waited = within(Duration::from_secs(5), "revocation mirrored at B", || {
        !set_b.mirror().is_empty()
    })
    .await;
    println!(
        "revocation mirrored at replica B {:?} after the logout (polled {waited:?})",
        logged_out.elapsed()
    );
    let stats = verifier_b.stats();
    for unseen_token in [&token, &unseen] {
        let answer = invoke(&b, unseen_token, Some(&session)).await;
        assert_eq!((answer.status, answer.code()), (401, "token_revoked"));
    }
    assert_eq!(verifier_b.stats().cache_hits, stats.cache_hits + 1);
    // The token has not expired: only the revocation refuses it.
    let now = agentcube_auth_core::Clock::now_unix(&agentcube_auth_core::SystemClock);
    assert!(c1["exp"].as_i64().unwrap() > now);
    // Others are not affected.
    assert_eq!(invoke(&b, &app, None).await.status, 200);

    // A service account has no Keycloak session: an administrator revokes its client on the
    // Router. Only the admin role may.
    let refused = revoke(&b, &app, &json!({"client": "agentcube-app"})).await;
    assert_eq!((refused.status, refused.code()), (403, "insufficient_role"));
    let admin_token = client_token(&issuer, "agentcube-admin", &realm.admin_secret).await;
    let invalid = revoke(&b, &admin_token, &json!({"sub": "x", "client": "y"})).await;
    assert_eq!((invalid.status, invalid.code()), (400, "invalid_request"));
    let revoked = revoke(&b, &admin_token, &json!({"client": "agentcube-app"})).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_eq!(revoked.body["iss"], issuer.as_str());
    assert_eq!(revoked.body["kind"], "client");
    let answer = invoke(&b, &app, None).await;
    assert_eq!((answer.status, answer.code()), (401, "token_revoked"));
    within(
        Duration::from_secs(5),
        "client revocation mirrored at A",
        || set_a.mirror().len() >= 2,
    )
    .await;
    let answer = invoke(&a, &app, None).await;
    assert_eq!((answer.status, answer.code()), (401, "token_revoked"));
    // A token the service account gets after the revocation's second works again.
    let revoked_at = revoked.body["revokedAt"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let renewed = loop {
        let t = client_token(&issuer, "agentcube-app", app_secret).await;
        if claims(&t)["iat"].as_i64().unwrap() > revoked_at {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no token issued after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(invoke(&a, &renewed, None).await.status, 200);
    assert_eq!(invoke(&b, &renewed, None).await.status, 200);

    admin.delete(&format!("/{name}")).await;
    replica_b.shutdown().await;
    stack.shutdown().await;
}

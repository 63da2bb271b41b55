//! End-to-end tests against a real Keycloak: the quickstart scenario with tokens from the
//! `agentcube` realm (`agentcube-app`, `agentcube-admin`, and two clients this test creates
//! through the Keycloak Admin REST API: a second non-admin identity and one without
//! `sandbox:invoke`), Keycloak key rotation through a new key provider, and the shared Redis
//! owner store when `AGENTCUBE_REDIS_URL` is set.
//!
//! Run with `scripts/with-services.sh cargo test -p agentcube-examples --test e2e_keycloak`.
//! Without `AGENTCUBE_KEYCLOAK_URL` the test prints a notice and passes, and without
//! `AGENTCUBE_REDIS_URL` it runs with in-memory owner stores; under CI (`CI` set) either absence
//! fails it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "test code: failing loudly is the point, and the scenario table is printed"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentcube_auth_core::{Principal, Role};
use agentcube_examples::quickstart;
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_examples::scenario::{
    self, Credentials, Identities, Outcome, Rotate, RotateFuture, unverified_claims,
};
use agentcube_identity::IDENTITY_HEADER;
use agentcube_testkit::keycloak::{Admin, keycloak};
use agentcube_testkit::services;
use serde_json::{Value, json};

/// A confidential client of `realm` with a service account, the `agentcube-api` audience mapper,
/// the realm roles `roles`, and (with `strip_default_roles`) without the realm's default roles
/// (which include `sandbox:invoke`). Returns its internal id.
async fn create_client(
    admin: &Admin,
    realm: &str,
    credentials: &Credentials,
    roles: &[&str],
    strip_default_roles: bool,
) -> String {
    let id = admin
        .create_service_client(
            realm,
            &credentials.client_id,
            &credentials.client_secret,
            json!({}),
        )
        .await;
    let user = admin.service_account_user_id(realm, &id).await;
    if !roles.is_empty() {
        admin.add_realm_roles(realm, &user, roles).await;
    }
    if strip_default_roles {
        let default = format!("default-roles-{realm}");
        admin.remove_realm_roles(realm, &user, &[&default]).await;
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_against_keycloak() {
    let Some(kc) = keycloak("scenario_against_keycloak") else {
        return;
    };
    let (issuer, realm) = (kc.issuer.clone(), kc.realm.clone());
    let admin = Arc::new(kc.admin());
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(8)
        .collect();
    let second = Credentials::new(
        format!("agentcube-e2e-second-{suffix}"),
        uuid::Uuid::new_v4().to_string(),
    );
    let no_role = Credentials::new(
        format!("agentcube-e2e-noroles-{suffix}"),
        uuid::Uuid::new_v4().to_string(),
    );
    let second_id = create_client(&admin, &realm, &second, &["sandbox:invoke"], false).await;
    let no_role_id = create_client(&admin, &realm, &no_role, &[], true).await;

    let components = Arc::new(Mutex::new(Vec::<String>::new()));
    let rotate: Rotate = {
        let (admin, components, realm, name) = (
            Arc::clone(&admin),
            Arc::clone(&components),
            realm.clone(),
            format!("agentcube-e2e-rsa-{suffix}"),
        );
        // An RSA key provider with a higher priority than the realm's: Keycloak signs new
        // tokens with it at once.
        Box::new(move || -> RotateFuture {
            let (admin, components, realm, name) = (
                Arc::clone(&admin),
                Arc::clone(&components),
                realm.clone(),
                name.clone(),
            );
            Box::pin(async move {
                let config = json!({
                    "priority": ["1000"],
                    "enabled": ["true"],
                    "active": ["true"],
                    "keySize": ["2048"],
                    "algorithm": ["RS256"]
                });
                // In a task of its own: a failed Admin call (which panics) is then the
                // scenario's failed row, and the cleanup below still runs.
                let id = tokio::spawn(async move {
                    admin
                        .add_key_provider(&realm, &name, "rsa-generated", config)
                        .await
                })
                .await
                .map_err(|e| format!("adding a key provider failed: {e}"))?;
                if let Ok(mut c) = components.lock() {
                    c.push(id);
                }
                Ok(())
            })
        })
    };
    let identities = Identities {
        app: Credentials::new("agentcube-app", kc.app_secret.clone()),
        admin: Some(Credentials::new("agentcube-admin", kc.admin_secret.clone())),
        second: Some(second),
        no_role: Some(no_role),
    };
    let redis_url = services::optional("scenario_against_keycloak", services::REDIS_URL);
    let shared_redis = redis_url.is_some();
    let qs = quickstart::start_with_issuer(&issuer, identities.clone(), Some(rotate), redis_url)
        .await
        .expect("start the services");
    assert!(
        quickstart::wait_ready(&qs.verifier, Duration::from_secs(30)).await,
        "the router never loaded Keycloak's keys"
    );

    let report = scenario::run(&qs.scenario).await.expect("scenario");
    println!(
        "against {issuer} (owner store: {}):\n{}",
        if shared_redis {
            "shared redis"
        } else {
            "in memory"
        },
        report.render()
    );

    // A client-sent identity header is ignored with Keycloak tokens too.
    let http = scenario::http_client().expect("client");
    let token_endpoint = quickstart::token_endpoint(&issuer)
        .await
        .expect("discovery");
    let app = scenario::fetch_token(&http, &token_endpoint, &identities.app)
        .await
        .expect("app token");
    let app_sub = unverified_claims(&app).expect("claims")["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    let victim = Principal::builder(issuer.as_str(), "victim")
        .roles([Role::realm("admin")])
        .build();
    let forged = qs.stack.minter.identity_token(&victim).expect("mint");
    let response = http
        .post(format!(
            "{}/v1/namespaces/default/agent-runtimes/demo/invocations/run",
            qs.stack.router_url()
        ))
        .bearer_auth(&app)
        .header(IDENTITY_HEADER, forged.as_str())
        .body("{}")
        .send()
        .await
        .expect("invoke");
    let status = response.status().as_u16();
    let session = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let echo: Value = response.json().await.unwrap_or(Value::Null);
    // The owner the workload manager recorded (its read route needs the owner's identity
    // token, which only the Router mints; the store shows the same record).
    let recorded_owner = qs
        .stack
        .wm_store
        .get(&session)
        .await
        .expect("store")
        .and_then(|r| r.owner().map(|o| o.as_str().to_owned()));
    if shared_redis {
        // The Router reads the record the workload manager wrote to Redis.
        let stored = qs.stack.router_store.get(&session).await.expect("redis");
        assert!(
            stored.is_some_and(|r| r.extra().contains_key("metadata")),
            "the router should see the workload manager's record in redis"
        );
    }

    // Clean up before asserting.
    qs.stack.shutdown().await;
    let ids: Vec<String> = components.lock().map(|c| c.clone()).unwrap_or_default();
    let cleanup = [
        format!("/{realm}/clients/{second_id}"),
        format!("/{realm}/clients/{no_role_id}"),
    ]
    .into_iter()
    .chain(ids.iter().map(|id| format!("/{realm}/components/{id}")));
    for path in cleanup {
        // Best effort: a failed cleanup is reported, and the verdict below still comes first.
        if let Err(failed) = admin.try_delete(&path).await {
            println!("cleanup failed: {failed}");
        }
    }

    assert!(report.passed(), "{}", report.render());
    assert!(
        report.rows.iter().all(|r| r.outcome == Outcome::Pass),
        "no row may be skipped against Keycloak:\n{}",
        report.render()
    );
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["user_sub"], app_sub.as_str());
    assert!(
        !echo["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h == "x-agentcube-user-identity")
    );
    assert_eq!(recorded_owner.as_deref(), Some(app_sub.as_str()));
}

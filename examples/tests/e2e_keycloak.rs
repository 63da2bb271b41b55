//! End-to-end tests against a real Keycloak: the quickstart scenario with tokens from the
//! `agentcube` realm (`agentcube-app`, `agentcube-admin`, and two clients this test creates
//! through the Keycloak Admin REST API: a second non-admin identity and one without
//! `sandbox:invoke`), Keycloak key rotation through a new key provider, and the shared Redis
//! owner store when `AGENTCUBE_REDIS_URL` is set.
//!
//! Run with `scripts/with-services.sh cargo test -p agentcube-examples --test e2e_keycloak`.
//! Without `AGENTCUBE_KEYCLOAK_URL` the test prints a notice and passes, unless `CI` is set.

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
use serde_json::{Value, json};

const REALM: &str = "agentcube";

fn keycloak_url() -> Option<String> {
    match std::env::var("AGENTCUBE_KEYCLOAK_URL") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but AGENTCUBE_KEYCLOAK_URL is not: run under scripts/with-services.sh"
            );
            println!(
                "skipped: AGENTCUBE_KEYCLOAK_URL is not set; run \
                 `scripts/with-services.sh cargo test -p agentcube-examples --test e2e_keycloak`"
            );
            None
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The Keycloak Admin REST API, as the master realm's bootstrap admin (a fresh token per call:
/// admin tokens live 60 s).
#[derive(Clone)]
struct Admin {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl Admin {
    fn new(base: &str) -> Self {
        Self {
            http: scenario::http_client().expect("client"),
            base: base.to_owned(),
            user: env_or("AGENTCUBE_KEYCLOAK_ADMIN_USER", "admin"),
            password: env_or("AGENTCUBE_KEYCLOAK_ADMIN_PASSWORD", "admin-dev"),
        }
    }

    async fn token(&self) -> Result<String, String> {
        let response = self
            .http
            .post(format!(
                "{}/realms/master/protocol/openid-connect/token",
                self.base
            ))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", self.user.as_str()),
                ("password", self.password.as_str()),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("admin login failed: {status} {body}"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/realms/{REALM}{path}", self.base)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, String> {
        let mut request = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(self.token().await?);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(response)
        } else {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            Err(format!("{method} {path}: {status} {text}"))
        }
    }

    /// The id at the end of a 201's `Location`.
    fn created_id(response: &reqwest::Response) -> Result<String, String> {
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.rsplit('/').next())
            .map(str::to_owned)
            .ok_or_else(|| "no Location header".to_owned())
    }

    async fn role(&self, name: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, &format!("/roles/{name}"), None)
            .await?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// A confidential client with a service account, the `agentcube-api` audience mapper, the
    /// realm roles `roles`, and (with `strip_default_roles`) without the realm's default roles
    /// (which include `sandbox:invoke`). Returns its internal id.
    async fn create_client(
        &self,
        client_id: &str,
        secret: &str,
        roles: &[&str],
        strip_default_roles: bool,
    ) -> Result<String, String> {
        let response = self
            .call(
                reqwest::Method::POST,
                "/clients",
                Some(json!({
                    "clientId": client_id,
                    "enabled": true,
                    "protocol": "openid-connect",
                    "publicClient": false,
                    "clientAuthenticatorType": "client-secret",
                    "secret": secret,
                    "serviceAccountsEnabled": true,
                    "standardFlowEnabled": false,
                    "directAccessGrantsEnabled": false,
                    "protocolMappers": [{
                        "name": "agentcube-api-audience",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "consentRequired": false,
                        "config": {
                            "included.custom.audience": "agentcube-api",
                            "access.token.claim": "true",
                            "id.token.claim": "false"
                        }
                    }]
                })),
            )
            .await?;
        let id = Self::created_id(&response)?;
        let user: Value = self
            .call(
                reqwest::Method::GET,
                &format!("/clients/{id}/service-account-user"),
                None,
            )
            .await?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let user_id = user["id"].as_str().ok_or("no service account user")?;
        let mappings = format!("/users/{user_id}/role-mappings/realm");
        if !roles.is_empty() {
            let mut reps = Vec::new();
            for role in roles {
                reps.push(self.role(role).await?);
            }
            self.call(reqwest::Method::POST, &mappings, Some(Value::Array(reps)))
                .await?;
        }
        if strip_default_roles {
            let default = self.role(&format!("default-roles-{REALM}")).await?;
            self.call(
                reqwest::Method::DELETE,
                &mappings,
                Some(Value::Array(vec![default])),
            )
            .await?;
        }
        Ok(id)
    }

    /// Adds an RSA key provider with a higher priority than the realm's: Keycloak signs new
    /// tokens with it at once. Returns the component id.
    async fn rotate_key(&self, name: &str) -> Result<String, String> {
        let realm: Value = self
            .call(reqwest::Method::GET, "", None)
            .await?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let realm_id = realm["id"].as_str().ok_or("no realm id")?;
        let response = self
            .call(
                reqwest::Method::POST,
                "/components",
                Some(json!({
                    "name": name,
                    "providerId": "rsa-generated",
                    "providerType": "org.keycloak.keys.KeyProvider",
                    "parentId": realm_id,
                    "config": {
                        "priority": ["1000"],
                        "enabled": ["true"],
                        "active": ["true"],
                        "keySize": ["2048"],
                        "algorithm": ["RS256"]
                    }
                })),
            )
            .await?;
        Self::created_id(&response)
    }

    async fn delete(&self, path: &str) {
        if let Err(e) = self.call(reqwest::Method::DELETE, path, None).await {
            println!("cleanup failed: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_against_keycloak() {
    let Some(kc) = keycloak_url() else {
        return;
    };
    let issuer = format!("{kc}/realms/{REALM}");
    let admin = Admin::new(&kc);
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
    let second_id = admin
        .create_client(
            &second.client_id,
            &second.client_secret,
            &["sandbox:invoke"],
            false,
        )
        .await
        .expect("create the second client");
    let no_role_id = admin
        .create_client(&no_role.client_id, &no_role.client_secret, &[], true)
        .await
        .expect("create the client without roles");

    let components = Arc::new(Mutex::new(Vec::<String>::new()));
    let rotate: Rotate = {
        let (admin, components, name) = (
            admin.clone(),
            Arc::clone(&components),
            format!("agentcube-e2e-rsa-{suffix}"),
        );
        Box::new(move || -> RotateFuture {
            let (admin, components, name) = (admin.clone(), Arc::clone(&components), name.clone());
            Box::pin(async move {
                let id = admin.rotate_key(&name).await?;
                if let Ok(mut c) = components.lock() {
                    c.push(id);
                }
                Ok(())
            })
        })
    };
    let identities = Identities {
        app: Credentials::new(
            "agentcube-app",
            env_or("KC_CLIENT_APP_SECRET", "app-secret-dev"),
        ),
        admin: Some(Credentials::new(
            "agentcube-admin",
            env_or("KC_CLIENT_ADMIN_SECRET", "admin-secret-dev"),
        )),
        second: Some(second),
        no_role: Some(no_role),
    };
    let redis_url = std::env::var("AGENTCUBE_REDIS_URL").ok();
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
    admin.delete(&format!("/clients/{second_id}")).await;
    admin.delete(&format!("/clients/{no_role_id}")).await;
    let ids: Vec<String> = components.lock().map(|c| c.clone()).unwrap_or_default();
    for id in ids {
        admin.delete(&format!("/components/{id}")).await;
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

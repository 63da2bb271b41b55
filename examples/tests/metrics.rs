//! `--metrics-listen`: the services' Prometheus endpoint. The stack (dev IdP, Router, workload
//! manager, sandbox) runs in this process with the process-wide recorder installed first; after
//! a small scenario — one accepted request, one rejected with a known code, one ownership
//! denial, one admin bypass, one repeat served from the token cache — `GET /metrics` on the
//! metrics listener must show every metric of the libraries with the expected counts and
//! labels.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: failing loudly is the point"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use agentcube_examples::cli;
use agentcube_examples::quickstart::{self, SECOND_CLIENT};
use agentcube_examples::sandbox::SESSION_HEADER;
use agentcube_examples::scenario;
use serde_json::{Value, json};

const AR: &str = "/v1/namespaces/default/agent-runtimes/demo/invocations/run";

/// One sample of the Prometheus text format.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a scrape (comment lines skipped). Label values here never hold `"`, `,` or
/// `}`: they are codes, issuers and URLs.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").expect("a label");
                    (key.to_owned(), value.trim_end_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the series `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_shows_every_library_metric_after_a_scenario() {
    // The recorder first: everything started below reports to it.
    let metrics = cli::serve_metrics(Some("127.0.0.1:0".parse().unwrap()))
        .await
        .expect("metrics listener")
        .expect("an address was given");
    let qs = quickstart::start_dev(None).await.expect("quickstart");
    assert!(quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await);
    let idp = qs.idp.clone().expect("dev idp");
    let issuer = idp.issuer().to_owned();
    let router = qs.stack.router_url();
    let http = scenario::http_client().unwrap();
    let token = |client: &str| idp.issue(client, &Value::Null).expect("token");
    let invoke = |token: String, session: Option<String>| {
        let mut request = http
            .post(format!("{router}{AR}"))
            .bearer_auth(token)
            .json(&json!({"hello": "world"}));
        if let Some(session) = session {
            request = request.header(SESSION_HEADER, session);
        }
        async move { request.send().await.expect("request") }
    };

    // Accepted: a new session for the app.
    let app = token("agentcube-app");
    let created = invoke(app.clone(), None).await;
    assert_eq!(created.status(), 200);
    let session = created.headers()[SESSION_HEADER]
        .to_str()
        .unwrap()
        .to_owned();
    // Rejected with a known code: a tampered token.
    let forged = invoke(scenario::tamper(&app), Some(session.clone())).await;
    assert_eq!(forged.status(), 401);
    let body: Value = forged.json().await.unwrap();
    assert_eq!(body["code"], "invalid_signature");
    // An ownership denial: another client on the app's session.
    let other = invoke(token(SECOND_CLIENT), Some(session.clone())).await;
    assert_eq!(other.status(), 403);
    // An admin bypass.
    let admin = invoke(token("agentcube-admin"), Some(session.clone())).await;
    assert_eq!(admin.status(), 200);
    // The owner again, with the same token: a cache hit.
    let again = invoke(app, Some(session.clone())).await;
    assert_eq!(again.status(), 200);

    // Not on the public port.
    let public = http.get(format!("{router}/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let scrape = http
        .get(format!("{}/metrics", metrics.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = scrape.text().await.unwrap();
    let samples = parse(&text);
    let get = |name: &str, labels: &[(&str, &str)]| {
        value(&samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let iss = issuer.as_str();

    // agentcube-oidc: four accepted (the app twice, the other client, the admin), one forged.
    assert_eq!(
        get(
            "agentcube_auth_verifications_total",
            &[("issuer", iss), ("result", "ok")]
        ),
        4.0
    );
    assert_eq!(
        get(
            "agentcube_auth_verifications_total",
            &[("issuer", iss), ("result", "invalid_signature")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "agentcube_auth_verify_duration_seconds_count",
            &[("issuer", iss)]
        ),
        5.0
    );
    assert!(text.contains("# TYPE agentcube_auth_verify_duration_seconds histogram"));
    assert_eq!(
        get("agentcube_auth_token_cache_hits_total", &[("issuer", iss)]),
        1.0
    );
    assert_eq!(
        get(
            "agentcube_auth_token_cache_misses_total",
            &[("issuer", iss)]
        ),
        4.0
    );
    assert!(
        get(
            "agentcube_auth_jwks_fetches_total",
            &[("issuer", iss), ("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(get("agentcube_auth_keys_ready", &[("issuer", iss)]), 1.0);
    // The workload manager's and the sandbox's key stores (on the Router's JWKS URL) too.
    let jwks = qs.stack.jwks_url();
    assert_eq!(
        get("agentcube_auth_keys_ready", &[("issuer", jwks.as_str())]),
        1.0
    );

    // agentcube-rlac: the Router's and the workload manager's create, the owner, the denial,
    // the bypass.
    let decisions = |effect: &str, reason: &str| {
        get(
            "agentcube_rlac_decisions_total",
            &[("effect", effect), ("reason", reason)],
        )
    };
    assert_eq!(decisions("allow", "authenticated"), 2.0);
    assert_eq!(decisions("allow", "owner"), 1.0);
    assert_eq!(decisions("deny", "not_owner"), 1.0);
    assert_eq!(decisions("allow", "admin_bypass"), 1.0);

    // agentcube-identity: one identity token (the create); two sandbox tokens (the app's,
    // reused for its second request, and the admin's), verified three times.
    let minted = |kind: &str| get("agentcube_identity_tokens_minted_total", &[("kind", kind)]);
    assert_eq!(minted("identity"), 1.0);
    assert_eq!(minted("sandbox"), 2.0);
    let verified = |kind: &str| {
        get(
            "agentcube_identity_verifications_total",
            &[("kind", kind), ("result", "ok")],
        )
    };
    assert_eq!(verified("identity"), 1.0);
    assert_eq!(verified("sandbox"), 3.0);

    // Nothing a token or a request says is a label value.
    for sample in &samples {
        for value in sample.labels.values() {
            assert!(!value.contains("eyJ"), "{sample:?}");
            assert!(!value.contains(&session), "{sample:?}");
        }
    }
    qs.stack.shutdown().await;
    metrics.shutdown().await;
}

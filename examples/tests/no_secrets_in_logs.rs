//! Tokens and secrets never reach the logs: the whole quickstart scenario (valid, forged,
//! tampered and wrong-role tokens, identity and sandbox tokens, key rotation) runs with every
//! agentcube crate logging at TRACE, and the captured output must contain no JWT, no client
//! secret and no private key.

mod support;

use std::time::Duration;

use agentcube_examples::dev_idp::DEV_SECRETS;
use agentcube_examples::quickstart;
use agentcube_examples::scenario;
use support::logs::CapturedLogs;
use tracing_subscriber::EnvFilter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_scenario_logs_no_token_and_no_secret() {
    let captured = CapturedLogs::default();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(
            "info,agentcube_auth_core=trace,agentcube_oidc=trace,agentcube_identity=trace,\
             agentcube_rlac=trace,agentcube_examples=trace",
        ))
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();

    let qs = quickstart::start_dev(None).await.expect("quickstart");
    assert!(quickstart::wait_ready(&qs.verifier, Duration::from_secs(10)).await);
    let report = scenario::run(&qs.scenario).await.expect("scenario");
    assert!(report.passed(), "{}", report.render());
    qs.stack.shutdown().await;

    let logs = captured.text();
    // The test only means something if the services did log: requests, decisions, rejections.
    for expected in ["authenticated", "rejected"] {
        assert!(
            logs.contains(expected),
            "no {expected:?} event was logged:\n{logs}"
        );
    }
    // Every JWT (access, identity, sandbox) starts with a base64url JSON header: `eyJ`.
    assert!(!logs.contains("eyJ"), "a token reached the logs:\n{logs}");
    for (_, secret) in DEV_SECRETS {
        assert!(!logs.contains(secret), "a client secret reached the logs");
    }
    assert!(
        !logs.contains("PRIVATE KEY"),
        "a private key reached the logs"
    );
}

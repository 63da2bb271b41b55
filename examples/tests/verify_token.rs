//! `verify-token` end to end against a mock Keycloak: discovery and a direct JWKS URL.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::io::Write;
use std::process::{Command, Stdio};

use agentcube_oidc::test_util::MockIssuer;
use serde_json::Value;

fn run(args: &[&str], stdin: &str) -> (Vec<Value>, String, i32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_verify-token"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            assert!(l.starts_with(r#"{"ok":"#), "{l}");
            serde_json::from_str(l).unwrap()
        })
        .collect();
    (
        lines,
        String::from_utf8(out.stderr).unwrap(),
        out.status.code().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verifies_a_stream_of_tokens_with_discovery() {
    let idp = MockIssuer::start().await;
    let good = idp.token().subject("alice-id").sign();
    let service = idp.token().service_account("agentcube-app").sign();
    let wrong_aud = idp.token().audience("account").sign();
    let id_token = idp.token().token_type("ID").sign();
    let input =
        format!("{good}\n\nBearer {service}\n{wrong_aud}\n{id_token}\nnot-a-token\n{good}\n");
    let issuer = idp.issuer().to_owned();
    let (lines, stderr, status) =
        tokio::task::spawn_blocking(move || run(&["--issuer", &issuer], &input))
            .await
            .unwrap();
    assert_eq!(lines.len(), 6, "{lines:?} {stderr}");
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[0]["principal"]["subject"], "alice-id");
    assert_eq!(lines[0]["principal"]["issuer"], idp.issuer());
    assert!(
        lines[0]["principal"]["roles"]
            .as_array()
            .unwrap()
            .contains(&Value::from("sandbox:invoke"))
    );
    assert_eq!(lines[0]["token"]["alg"], "RS256");
    assert_eq!(lines[1]["ok"], true);
    assert_eq!(lines[1]["principal"]["service_account"], true);
    assert_eq!(lines[2]["ok"], false);
    assert_eq!(lines[2]["code"], "audience_mismatch");
    assert_eq!(lines[3]["code"], "token_type_mismatch");
    assert_eq!(lines[4]["code"], "malformed");
    assert_eq!(lines[5]["ok"], true);
    assert_eq!(status, 1, "some tokens were rejected");
    // One verifier for the whole run: one discovery, one JWKS fetch.
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn verifies_with_a_jwks_url_and_custom_rules() {
    let idp = MockIssuer::start().await;
    let token = idp
        .token()
        .audience("other-api")
        .claim("groups", serde_json::json!(["ops"]))
        .sign();
    let (issuer, jwks) = (idp.issuer().to_owned(), idp.jwks_url());
    let (lines, _, status) = tokio::task::spawn_blocking(move || {
        run(
            &[
                "--issuer",
                &issuer,
                "--jwks-url",
                &jwks,
                "--audience",
                "agentcube-api,other-api",
                "--algorithms",
                "RS256",
                "--role-claim",
                "groups",
                "--leeway",
                "0",
            ],
            &format!("{token}\n"),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 0);
    assert_eq!(lines[0]["ok"], true, "{lines:?}");
    assert_eq!(lines[0]["principal"]["roles"], serde_json::json!(["ops"]));
    assert_eq!(idp.discovery_fetches(), 0);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_an_unreachable_issuer_and_answers_keys_unavailable() {
    let idp = MockIssuer::start().await;
    idp.fail(true);
    let token = idp.token().sign();
    let issuer = idp.issuer().to_owned();
    let (lines, stderr, status) =
        tokio::task::spawn_blocking(move || run(&["--issuer", &issuer], &format!("{token}\n")))
            .await
            .unwrap();
    assert!(stderr.contains("cannot load the issuer's keys"), "{stderr}");
    assert_eq!(lines[0]["code"], "keys_unavailable");
    assert_eq!(lines[0]["status"], 503);
    assert_eq!(status, 1);
}

#[test]
fn bad_arguments_exit_2() {
    let (_, stderr, status) = run(
        &["--issuer", "https://kc/realms/x", "--algorithms", "HS256"],
        "",
    );
    assert_eq!(status, 2, "{stderr}");
    let (_, _, status) = run(&["--issuer", "not a url"], "");
    assert_eq!(status, 2);
}

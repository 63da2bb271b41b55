//! `verify-token` end to end against a mock Keycloak: discovery and a direct JWKS URL; with
//! `--explain`, one test per rejection class (issuer, audience, kid, expired, not yet valid,
//! type, role) asserting the code and the facts behind it; `--format text`; and the Router's own
//! tokens (`--kind identity|sandbox`) against a Router JWKS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use agentcube_auth_core::Principal;
use agentcube_auth_core::jose::Algorithm;
use agentcube_identity::{KeyRing, TokenMinter};
use agentcube_oidc::test_util::{MockIssuer, TestKey};
use serde_json::{Value, json};

/// Runs `verify-token` with `args`, `stdin` written to it, and waits for it.
fn output(args: &[&str], stdin: &str) -> std::process::Output {
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
    child.wait_with_output().unwrap()
}

fn run(args: &[&str], stdin: &str) -> (Vec<Value>, String, i32) {
    let out = output(args, stdin);
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

// ---- --explain: one test per rejection class ----

/// The raw output of a run.
fn run_raw(args: &[&str], stdin: &str) -> (String, i32) {
    let out = output(args, stdin);
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code().unwrap(),
    )
}

/// Runs `verify-token --explain` on one token (a blocking child process, off the runtime) and
/// returns its line; the output never contains the token or its signature.
async fn explain(args: &[&str], token: &str) -> Value {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.push("--explain".to_owned());
    let input = format!("{token}\n");
    let token = token.to_owned();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let (stdout, _) = run_raw(&refs, &input);
        assert_never_printed(&stdout, &token);
        let (lines, stderr, _) = run(&refs, &input);
        assert_eq!(lines.len(), 1, "{lines:?} {stderr}");
        let line = lines.into_iter().next().unwrap();
        assert!(line.get("facts").is_some(), "{line}");
        line
    })
    .await
    .unwrap()
}

fn assert_never_printed(output: &str, token: &str) {
    let signature = token.rsplit('.').next().unwrap();
    assert!(!output.contains(token), "the token was printed: {output}");
    assert!(
        !output.contains(signature),
        "the signature was printed: {output}"
    );
}

fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn hint(line: &Value, fact: &str) -> String {
    line["facts"][fact]["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("no hint on {fact}: {line}"))
        .to_owned()
}

fn assert_rejected(line: &Value, code: &str, fact: &str) {
    assert_eq!(line["ok"], false, "{line}");
    assert_eq!(line["code"], code, "{line}");
    assert_eq!(line["facts"][fact]["ok"], false, "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_issuer_trailing_slash_and_host_derived_issuer() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let args = ["--issuer", issuer.as_str()];

    let slash = idp.token().issuer(&format!("{issuer}/")).sign();
    let line = explain(&args, &slash).await;
    assert_rejected(&line, "issuer_mismatch", "iss");
    let iss = &line["facts"]["iss"];
    assert_eq!(iss["token"], format!("{issuer}/"));
    assert_eq!(iss["expected"], issuer.as_str());
    assert!(hint(&line, "iss").contains("trailing slash"), "{line}");
    // Every other fact holds: the issuer is the one reason.
    for fact in ["aud", "kid", "time", "typ", "alg"] {
        assert_eq!(line["facts"][fact]["ok"], true, "{fact}: {line}");
    }

    // The same realm reached through another host name (Keycloak derives iss from it).
    let other_host = issuer.replacen("127.0.0.1", "localhost", 1);
    assert_ne!(other_host, issuer);
    let line = explain(&args, &idp.token().issuer(&other_host).sign()).await;
    assert_rejected(&line, "issuer_mismatch", "iss");
    assert_eq!(line["facts"]["iss"]["token"], other_host.as_str());
    let text = hint(&line, "iss");
    assert!(
        text.contains("another origin") && text.contains("KC_HOSTNAME"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_audience_names_the_missing_audience_mapper() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let args = ["--issuer", issuer.as_str()];

    let line = explain(&args, &idp.token().audience("account").sign()).await;
    assert_rejected(&line, "audience_mismatch", "aud");
    let aud = &line["facts"]["aud"];
    assert_eq!(aud["token"], "account");
    assert_eq!(aud["accepted"], json!(["agentcube-api"]));
    assert_eq!(aud["azp"], "agentcube-cli");
    let text = hint(&line, "aud");
    assert!(
        text.contains("Audience mapper") && text.contains("agentcube-api"),
        "{text}"
    );
    assert!(text.contains("account-console"), "{text}");

    let line = explain(&args, &idp.token().without_claim("aud").sign()).await;
    assert_eq!(line["ok"], false, "{line}");
    assert_eq!(line["facts"]["aud"]["ok"], false, "{line}");
    assert_eq!(line["facts"]["aud"]["token"], Value::Null);
    assert!(hint(&line, "aud").contains("no aud"), "{line}");

    // An accepted audience among others is fine.
    let line = explain(
        &args,
        &idp.token()
            .audience(json!(["account", "agentcube-api"]))
            .sign(),
    )
    .await;
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["facts"]["aud"]["ok"], true, "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_unknown_kid_lists_the_known_kids() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let stranger = Arc::new(TestKey::generate(Algorithm::RS256));
    let token = idp.token().signed_by(Arc::clone(&stranger)).sign();
    let line = explain(&["--issuer", issuer.as_str()], &token).await;
    assert_rejected(&line, "unknown_kid", "kid");
    let kid = &line["facts"]["kid"];
    assert_eq!(kid["token"], stranger.kid());
    assert_eq!(kid["known"], json!([idp.signing_key().kid()]));
    assert!(
        hint(&line, "kid").contains("does not publish this key"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_expired_gives_exp_beside_now_and_the_leeway() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let t = now();
    let token = idp.token().issued_at(t - 1000).expires_at(t - 100).sign();
    let line = explain(&["--issuer", issuer.as_str(), "--leeway", "30"], &token).await;
    assert_rejected(&line, "expired", "time");
    let facts = &line["facts"];
    assert_eq!(facts["leeway_secs"], 30);
    assert_eq!(facts["time"]["exp"], t - 100);
    let now_seen = facts["now"].as_i64().unwrap();
    assert!((t..t + 60).contains(&now_seen), "{line}");
    assert_eq!(facts["time"]["exp_in_secs"], t - 100 - now_seen);
    assert_eq!(facts["time"]["iat"], t - 1000);
    let text = hint(&line, "time");
    assert!(
        text.contains(&format!("expired {} s ago", now_seen - (t - 100)))
            && text.contains("30 s leeway"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_not_yet_valid_gives_nbf_beside_now() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let t = now();
    let token = idp.token().not_before(t + 600).sign();
    let line = explain(&["--issuer", issuer.as_str()], &token).await;
    assert_rejected(&line, "not_yet_valid", "time");
    let time = &line["facts"]["time"];
    assert_eq!(time["nbf"], t + 600);
    let in_secs = time["nbf_in_secs"].as_i64().unwrap();
    assert!((540..=600).contains(&in_secs), "{line}");
    assert!(
        hint(&line, "time").contains("not valid for another"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_token_type_in_the_payload_and_in_the_header() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let args = ["--issuer", issuer.as_str()];

    let line = explain(&args, &idp.token().token_type("ID").sign()).await;
    assert_rejected(&line, "token_type_mismatch", "typ");
    let typ = &line["facts"]["typ"];
    assert_eq!(typ["payload"], "ID");
    assert_eq!(typ["expected_payload"], "Bearer");
    assert_eq!(typ["header"], "JWT");
    assert!(hint(&line, "typ").contains("an ID token"), "{line}");

    let router_token = idp
        .token()
        .header("typ", agentcube_identity::IDENTITY_TOKEN_TYPE)
        .sign();
    let line = explain(&args, &router_token).await;
    assert_rejected(&line, "token_type_mismatch", "typ");
    assert_eq!(
        line["facts"]["typ"]["header"],
        agentcube_identity::IDENTITY_TOKEN_TYPE
    );
    assert_eq!(
        line["facts"]["typ"]["accepted_header"],
        json!(["JWT", "at+jwt"])
    );
    assert!(hint(&line, "typ").contains("--kind identity"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_roles_found_beside_the_required_ones() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let args = [
        "--issuer",
        issuer.as_str(),
        "--require-role",
        "sandbox:invoke",
        "--require-role",
        "admin",
    ];
    let line = explain(&args, &idp.token().sign()).await;
    assert_rejected(&line, "insufficient_role", "roles");
    assert_eq!(line["status"], 403);
    let roles = &line["facts"]["roles"];
    assert_eq!(roles["required"], json!(["sandbox:invoke", "admin"]));
    assert_eq!(roles["missing"], json!(["admin"]));
    let found = roles["found"].as_array().unwrap();
    assert!(found.contains(&Value::from("sandbox:invoke")), "{line}");
    assert!(
        found.contains(&Value::from("account/view-profile")),
        "{line}"
    );
    assert!(hint(&line, "roles").contains("no hierarchy"), "{line}");

    // Client roles are written <client>/<role>.
    let admin = idp.token().realm_roles(["sandbox:invoke", "admin"]).sign();
    let line = explain(
        &[
            "--issuer",
            issuer.as_str(),
            "--require-role",
            "admin,account/view-profile",
        ],
        &admin,
    )
    .await;
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["facts"]["roles"]["ok"], true);
    assert_eq!(line["facts"]["roles"]["missing"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn text_format_explains_for_a_human_and_never_prints_the_token() {
    let idp = MockIssuer::start().await;
    let issuer = idp.issuer().to_owned();
    let good = idp.token().sign();
    let bad = idp.token().audience("account").sign();
    let input = format!("{good}\n{bad}\n");
    let (stdout, status) = tokio::task::spawn_blocking(move || {
        run_raw(
            &["--issuer", &issuer, "--explain", "--format", "text"],
            &input,
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 1);
    assert_never_printed(&stdout, &good);
    assert_never_printed(&stdout, &bad);
    assert!(stdout.contains("token 1: accepted: subject"), "{stdout}");
    assert!(
        stdout.contains("token 2: rejected: audience_mismatch (401)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("aud     NO  token account; accepted agentcube-api; azp agentcube-cli"),
        "{stdout}"
    );
    assert!(stdout.contains("Audience mapper"), "{stdout}");
    assert!(stdout.contains("  iss     ok  "), "{stdout}");
}

// ---- the Router's own tokens ----

/// Serves `ring`'s JWKS, as the Router does.
async fn router_jwks(ring: Arc<KeyRing>) -> (agentcube_examples::server::Server, String) {
    let app = axum::Router::new().route(
        "/.well-known/agentcube/jwks.json",
        axum::routing::get(move || {
            let ring = Arc::clone(&ring);
            async move { ring.jwks_json().to_string() }
        }),
    );
    let server = agentcube_examples::server::serve(app).await.unwrap();
    let url = format!("{}/.well-known/agentcube/jwks.json", server.url());
    (server, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn router_tokens_are_checked_with_kind_identity_and_sandbox() {
    let ring = Arc::new(KeyRing::generate().unwrap());
    let (server, jwks) = router_jwks(Arc::clone(&ring)).await;
    let minter = TokenMinter::new(Arc::clone(&ring));
    let alice = Principal::builder("https://idp.example/realms/agentcube", "alice-id").build();
    let identity = minter.identity_token(&alice).unwrap();
    let sandbox = minter.sandbox_token(&alice, "session-1").unwrap();
    let identity_args = ["--kind", "identity", "--router-jwks-url", jwks.as_str()];

    let line = explain(&identity_args, identity.as_str()).await;
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["principal"]["subject"], "alice-id");
    assert_eq!(line["token"]["kid"], ring.kids()[0].as_str());
    for fact in ["iss", "aud", "kid", "time", "typ", "alg"] {
        assert_eq!(line["facts"][fact]["ok"], true, "{fact}: {line}");
    }
    assert_eq!(line["facts"]["iss"]["expected"], "agentcube-router");
    assert_eq!(line["facts"]["aud"]["accepted"], json!(["workloadmanager"]));
    assert_eq!(line["facts"]["leeway_secs"], 5);

    // A sandbox token is not an identity token.
    let line = explain(&identity_args, sandbox.as_str()).await;
    assert_rejected(&line, "token_type_mismatch", "typ");
    assert!(hint(&line, "typ").contains("--kind sandbox"), "{line}");

    // A sandbox token for another session than --session-id.
    let sandbox_args = [
        "--kind",
        "sandbox",
        "--router-jwks-url",
        jwks.as_str(),
        "--session-id",
        "session-2",
    ];
    let line = explain(&sandbox_args, sandbox.as_str()).await;
    assert_rejected(&line, "audience_mismatch", "session");
    assert_eq!(line["facts"]["session"]["token"], "session-1");
    assert_eq!(line["facts"]["session"]["expected"], "session-2");
    assert_eq!(line["facts"]["aud"]["token"], "sandbox:session-1");
    // Without --session-id, any session.
    let line = explain(
        &["--kind", "sandbox", "--router-jwks-url", jwks.as_str()],
        sandbox.as_str(),
    )
    .await;
    assert_eq!(line["ok"], true, "{line}");
    assert_eq!(line["token"]["session_id"], "session-1");

    // After a rotation and the old key's removal, an old token names a withdrawn key.
    ring.rotate(agentcube_identity::SigningKey::generate(Algorithm::EdDSA).unwrap());
    let old_kid = ring.kids()[1].clone();
    ring.remove(&old_kid).unwrap();
    let line = explain(&identity_args, identity.as_str()).await;
    assert_rejected(&line, "unknown_kid", "kid");
    assert_eq!(line["facts"]["kid"]["token"], old_kid.as_str());
    assert_eq!(
        line["facts"]["kid"]["known"],
        json!([ring.kids()[0].as_str()])
    );
    assert!(hint(&line, "kid").contains("withdrawn"), "{line}");
    server.shutdown().await;
}

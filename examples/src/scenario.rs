//! The quickstart scenario: the request matrix played against a running Router, as a client
//! would — access tokens from the IdP's token endpoint (`client_credentials`), then plain HTTP.
//!
//! | # | request | expected |
//! |---|---|---|
//! | 1 | invoke without a token | 401 `missing_authorization` |
//! | 2 | app token, no session header | 200, a new `x-agentcube-session-id` |
//! | 3 | app token on its session | 200, the sandbox saw the app's `sub` |
//! | 4 | app token, a code interpreter | 200, another new session |
//! | 5 | token without `sandbox:invoke` | 403 `insufficient_role` |
//! | 6 | a second (non-admin) identity on the app's session | 403 `not_owner` |
//! | 7 | admin on the app's session | 200 (admin bypass), the sandbox saw the admin's `sub` |
//! | 8 | the app token with its payload edited (roles += admin) | 401 `invalid_signature` |
//! | 9 | the IdP rotates its signing key; a new app token (new `kid`) | 200 |
//! | 10 | delete the app's session as the second identity | 403 `not_owner` |
//! | 11 | delete it as the app | 200 |
//! | 12 | invoke the deleted session | 404 `session_not_found` |
//!
//! Rows that need an identity or an IdP control that was not given are skipped with a note.

use std::fmt;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use agentcube_auth_core::jose::{AlgorithmSet, DEFAULT_MAX_TOKEN_BYTES, JwsPolicy, UnverifiedJws};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::sandbox::SESSION_HEADER;

/// A confidential client's credentials.
#[derive(Clone)]
pub struct Credentials {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: String,
}

impl Credentials {
    /// Credentials of `client_id`.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

/// The secret is never shown.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The identities the scenario plays.
#[derive(Clone, Debug)]
pub struct Identities {
    /// A client with `sandbox:invoke` (`agentcube-app`).
    pub app: Credentials,
    /// A client with `admin` (`agentcube-admin`).
    pub admin: Option<Credentials>,
    /// Another client with `sandbox:invoke`, not an admin.
    pub second: Option<Credentials>,
    /// A client with the `agentcube-api` audience but without `sandbox:invoke`.
    pub no_role: Option<Credentials>,
}

/// A boxed future returned by [`Rotate`].
pub type RotateFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Makes the IdP sign with a new key (the dev IdP's `rotate_key`, Keycloak's admin API).
pub type Rotate = Box<dyn Fn() -> RotateFuture + Send + Sync>;

/// What the scenario runs against.
pub struct ScenarioConfig {
    /// The Router's base URL.
    pub router_url: String,
    /// The IdP's token endpoint.
    pub token_endpoint: String,
    /// The identities.
    pub identities: Identities,
    /// Rotates the IdP's signing key, if the scenario may.
    pub rotate: Option<Rotate>,
    /// How long to wait after rotating before using a new token: the Router's JWKS refresh
    /// cooldown (an unknown `kid` triggers at most one key fetch per cooldown).
    pub rotation_wait: Duration,
    /// The namespace in the request paths.
    pub namespace: String,
    /// The agent runtime / code interpreter name in the request paths.
    pub name: String,
}

impl ScenarioConfig {
    /// A scenario against `router_url`, with tokens from `token_endpoint`.
    pub fn new(
        router_url: impl Into<String>,
        token_endpoint: impl Into<String>,
        identities: Identities,
    ) -> Self {
        Self {
            router_url: router_url.into(),
            token_endpoint: token_endpoint.into(),
            identities,
            rotate: None,
            rotation_wait: Duration::ZERO,
            namespace: "default".to_owned(),
            name: "demo".to_owned(),
        }
    }
}

impl fmt::Debug for ScenarioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScenarioConfig")
            .field("router_url", &self.router_url)
            .field("token_endpoint", &self.token_endpoint)
            .field("identities", &self.identities)
            .field("rotate", &self.rotate.is_some())
            .finish_non_exhaustive()
    }
}

/// How a row ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// As expected.
    Pass,
    /// Not as expected.
    Fail,
    /// Not run; why.
    Skipped(String),
}

/// One request of the scenario.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was sent.
    pub request: String,
    /// What should come back.
    pub expected: String,
    /// What came back.
    pub got: String,
    /// Whether it matched.
    pub outcome: Outcome,
}

/// The result of a scenario run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The rows, in order.
    pub rows: Vec<Row>,
}

impl Report {
    /// Whether no row failed (skipped rows do not fail a run).
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.outcome != Outcome::Fail)
    }

    /// The failed rows.
    pub fn failures(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .collect()
    }

    /// The table: `# | request | expected | got | result`, then the notes of skipped rows.
    pub fn render(&self) -> String {
        let headers = ["#", "request", "expected", "got", "result"];
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let result = match &r.outcome {
                    Outcome::Pass => "ok".to_owned(),
                    Outcome::Fail => "FAIL".to_owned(),
                    Outcome::Skipped(_) => "skipped".to_owned(),
                };
                [
                    (i + 1).to_string(),
                    r.request.clone(),
                    r.expected.clone(),
                    r.got.clone(),
                    result,
                ]
            })
            .collect();
        let mut widths = headers.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, row: &[String; 5]| {
            let mut text = String::new();
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i > 0 {
                    text.push_str(" | ");
                }
                let _ = write!(text, "{cell:<w$}");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut out, &headers.map(str::to_owned));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("-|-"));
        out.push('\n');
        for row in &cells {
            line(&mut out, row);
        }
        for (i, r) in self.rows.iter().enumerate() {
            if let Outcome::Skipped(note) = &r.outcome {
                let _ = writeln!(out, "note: row {} skipped: {note}", i + 1);
            }
        }
        let passed = self
            .rows
            .iter()
            .filter(|r| r.outcome == Outcome::Pass)
            .count();
        let failed = self.failures().len();
        let skipped = self.rows.len() - passed - failed;
        let _ = writeln!(
            out,
            "{passed} passed, {failed} failed, {skipped} skipped: {}",
            if failed == 0 { "OK" } else { "FAILED" }
        );
        out
    }
}

/// Errors that stop the scenario before any row.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// A response as the scenario sees it.
#[derive(Debug)]
struct Answer {
    status: u16,
    session: Option<String>,
    body: Value,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    fn summary(&self) -> String {
        match self.code() {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        }
    }
}

struct Runner<'a> {
    http: reqwest::Client,
    config: &'a ScenarioConfig,
    report: Report,
}

/// The payload of a JWT, unverified (to show and compare `sub`, never to trust it).
pub fn unverified_claims(token: &str) -> Option<Value> {
    UnverifiedJws::peek_claims(token, DEFAULT_MAX_TOKEN_BYTES)
        .ok()
        .map(|claims| Value::Object(claims.as_map().clone()))
}

fn claim(token: &str, name: &str) -> String {
    unverified_claims(token)
        .and_then(|c| c.get(name).and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn kid(token: &str) -> String {
    // The framing and header rules every verifier applies, with any algorithm allowed: this
    // only shows which key signed the token.
    UnverifiedJws::parse(token, &JwsPolicy::new(AlgorithmSet::ALL))
        .ok()
        .and_then(|jws| jws.header().kid.as_deref().map(str::to_owned))
        .unwrap_or_default()
}

/// The token with its payload edited (realm role `admin` added) and the signature kept.
pub fn tamper(token: &str) -> String {
    let mut parts = token.splitn(3, '.');
    let (Some(header), Some(_), Some(sig)) = (parts.next(), parts.next(), parts.next()) else {
        return format!("{token}x");
    };
    let mut claims = unverified_claims(token).unwrap_or(Value::Null);
    if let Some(obj) = claims.as_object_mut() {
        obj.insert(
            "realm_access".to_owned(),
            serde_json::json!({"roles": ["admin", "sandbox:manage", "sandbox:invoke"]}),
        );
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.{sig}")
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// Requests an access token with the client credentials grant.
///
/// # Errors
/// A description of the failure (status and OAuth error), without the secret.
pub async fn fetch_token(
    http: &reqwest::Client,
    token_endpoint: &str,
    credentials: &Credentials,
) -> Result<String, String> {
    let response = http
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", credentials.client_id.as_str()),
            ("client_secret", credentials.client_secret.as_str()),
        ])
        .send()
        .await
        .map_err(|e| format!("token request failed: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match body.get("access_token").and_then(Value::as_str) {
        Some(token) if status.is_success() && !token.is_empty() => Ok(token.to_owned()),
        _ => Err(format!(
            "token request for {} failed: {} {}",
            credentials.client_id,
            status.as_u16(),
            body.get("error").and_then(Value::as_str).unwrap_or("")
        )),
    }
}

/// A loopback-friendly HTTP client for scenario and test requests (no proxy, 30 s timeout).
///
/// # Errors
/// The client could not be built.
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
}

impl Runner<'_> {
    fn invoke_url(&self, resource: &str) -> String {
        format!(
            "{}/v1/namespaces/{}/{resource}/{}/invocations/run",
            self.config.router_url.trim_end_matches('/'),
            self.config.namespace,
            self.config.name
        )
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let response = request.send().await.map_err(|e| format!("error: {e}"))?;
        let status = response.status().as_u16();
        let session = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.json().await.unwrap_or(Value::Null);
        Ok(Answer {
            status,
            session,
            body,
        })
    }

    async fn invoke(
        &self,
        resource: &str,
        token: Option<&str>,
        session: Option<&str>,
    ) -> Result<Answer, String> {
        let mut request = self
            .http
            .post(self.invoke_url(resource))
            .json(&serde_json::json!({"prompt": "hello from the quickstart"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(session) = session {
            request = request.header(SESSION_HEADER, session);
        }
        self.send(request).await
    }

    /// `token` on the agent-runtime route with `session`.
    async fn invoke_session(&self, token: &str, session: &str) -> Result<Answer, String> {
        self.invoke("agent-runtimes", Some(token), Some(session))
            .await
    }

    async fn delete(&self, token: &str, session: &str) -> Result<Answer, String> {
        let url = format!(
            "{}/v1/sessions/{session}",
            self.config.router_url.trim_end_matches('/')
        );
        self.send(self.http.delete(url).bearer_auth(token)).await
    }

    async fn token(&self, credentials: &Credentials) -> Result<String, String> {
        fetch_token(&self.http, &self.config.token_endpoint, credentials).await
    }

    fn push(&mut self, request: &str, expected: &str, got: String, pass: bool) {
        self.report.rows.push(Row {
            request: request.to_owned(),
            expected: expected.to_owned(),
            got,
            outcome: if pass { Outcome::Pass } else { Outcome::Fail },
        });
    }

    fn skip(&mut self, request: &str, expected: &str, note: &str) {
        self.report.rows.push(Row {
            request: request.to_owned(),
            expected: expected.to_owned(),
            got: "-".to_owned(),
            outcome: Outcome::Skipped(note.to_owned()),
        });
    }

    /// Fetches a token for an optional identity.
    async fn fetch<'c>(
        &self,
        credentials: Option<&'c Credentials>,
    ) -> Option<(&'c Credentials, Result<String, String>)> {
        match credentials {
            Some(c) => Some((c, self.token(c).await)),
            None => None,
        }
    }

    /// The identity and token a row needs; `None` once the row was pushed as skipped (no
    /// identity, `missing` says why) or failed (no token).
    fn usable<'c>(
        &mut self,
        fetched: Option<(&'c Credentials, Result<String, String>)>,
        request: &str,
        expected: &str,
        missing: &str,
    ) -> Option<(&'c Credentials, String)> {
        match fetched {
            None => {
                self.skip(request, expected, missing);
                None
            }
            Some((_, Err(e))) => {
                self.push(request, expected, e, false);
                None
            }
            Some((c, Ok(token))) => Some((c, token)),
        }
    }

    /// [`check`](Self::check) with nothing beyond the status and code.
    fn expect(
        &mut self,
        request: &str,
        expected: &str,
        answer: Result<Answer, String>,
        status: u16,
        code: Option<&str>,
    ) {
        self.check(request, expected, answer, status, code, |_| {
            Ok(String::new())
        });
    }

    /// Pushes a row for an answer: passes when the status (and code, if given) match and
    /// `extra` accepts the answer.
    fn check(
        &mut self,
        request: &str,
        expected: &str,
        answer: Result<Answer, String>,
        status: u16,
        code: Option<&str>,
        extra: impl FnOnce(&Answer) -> Result<String, String>,
    ) -> Option<Answer> {
        match answer {
            Err(e) => {
                self.push(request, expected, e, false);
                None
            }
            Ok(answer) => {
                let mut got = answer.summary();
                let mut pass =
                    answer.status == status && code.is_none_or(|c| answer.code() == Some(c));
                if pass {
                    match extra(&answer) {
                        Ok(detail) if detail.is_empty() => {}
                        Ok(detail) => got = format!("{got}, {detail}"),
                        Err(detail) => {
                            got = format!("{got}, {detail}");
                            pass = false;
                        }
                    }
                }
                self.push(request, expected, got, pass);
                Some(answer)
            }
        }
    }
}

fn echo_sub(answer: &Answer, want: &str) -> Result<String, String> {
    let seen = answer
        .body
        .get("user_sub")
        .and_then(Value::as_str)
        .unwrap_or("");
    if seen == want {
        Ok(format!("sandbox saw user_sub {}", short(seen)))
    } else {
        Err(format!("sandbox saw user_sub {seen:?}"))
    }
}

/// Plays the scenario.
///
/// # Errors
/// Only if the HTTP client cannot be built; every request failure is a failed row.
pub async fn run(config: &ScenarioConfig) -> Result<Report, ScenarioError> {
    let mut r = Runner {
        http: http_client()?,
        config,
        report: Report::default(),
    };
    let ids = &config.identities;

    // 1. No token.
    let answer = r.invoke("agent-runtimes", None, None).await;
    r.expect(
        "invoke agent runtime, no token",
        "401 missing_authorization",
        answer,
        401,
        Some("missing_authorization"),
    );

    // 2-4. The app creates and uses a session.
    let app_token = r.token(&ids.app).await;
    let app_token = match app_token {
        Ok(t) => t,
        Err(e) => {
            r.push(
                &format!("token for {}", ids.app.client_id),
                "an access token",
                e,
                false,
            );
            return Ok(r.report);
        }
    };
    let app_sub = claim(&app_token, "sub");
    let answer = r.invoke("agent-runtimes", Some(&app_token), None).await;
    let created = r.check(
        &format!("{}: invoke, no session (creates one)", ids.app.client_id),
        "200 + x-agentcube-session-id",
        answer,
        200,
        None,
        |a| match &a.session {
            Some(s) => Ok(format!("session {}", short(s))),
            None => Err("no session header".to_owned()),
        },
    );
    let session = created.and_then(|a| a.session);
    let Some(session) = session else {
        return Ok(r.report);
    };
    let answer = r.invoke_session(&app_token, &session).await;
    r.check(
        &format!("{}: invoke own session", ids.app.client_id),
        "200, sandbox sees the app",
        answer,
        200,
        None,
        |a| echo_sub(a, &app_sub),
    );
    let answer = r.invoke("code-interpreters", Some(&app_token), None).await;
    r.check(
        &format!("{}: code interpreter, new session", ids.app.client_id),
        "200 + x-agentcube-session-id",
        answer,
        200,
        None,
        |a| match &a.session {
            Some(s) if s != &session => Ok(format!("session {}", short(s))),
            _ => Err("no new session header".to_owned()),
        },
    );

    // 5. A token without sandbox:invoke.
    let request = "token without sandbox:invoke";
    let expected = "403 insufficient_role";
    let no_role = r.fetch(ids.no_role.as_ref()).await;
    if let Some((c, token)) = r.usable(
        no_role,
        request,
        expected,
        "no client without roles was given",
    ) {
        let answer = r.invoke("agent-runtimes", Some(&token), None).await;
        let request = format!("{}: {request}", c.client_id);
        r.expect(&request, expected, answer, 403, Some("insufficient_role"));
    }

    // 6. Another user on the app's session.
    let second = r.fetch(ids.second.as_ref()).await;
    let no_second = "no second non-admin client was given";
    let request = "second user on the app's session";
    let expected = "403 not_owner";
    if let Some((c, token)) = r.usable(second.clone(), request, expected, no_second) {
        let answer = r.invoke_session(&token, &session).await;
        let request = format!("{}: {request}", c.client_id);
        r.expect(&request, expected, answer, 403, Some("not_owner"));
    }

    // 7. Admin on the app's session.
    let request = "admin on the app's session";
    let expected = "200 (admin bypass)";
    let admin = r.fetch(ids.admin.as_ref()).await;
    if let Some((c, token)) = r.usable(admin, request, expected, "no admin client was given") {
        let admin_sub = claim(&token, "sub");
        let answer = r.invoke_session(&token, &session).await;
        r.check(
            &format!("{}: {request}", c.client_id),
            expected,
            answer,
            200,
            None,
            |a| echo_sub(a, &admin_sub),
        );
    }

    // 8. Tampered token.
    let answer = r.invoke_session(&tamper(&app_token), &session).await;
    r.check(
        "app token with payload edited (roles += admin)",
        "401 invalid_signature",
        answer,
        401,
        Some("invalid_signature"),
        |a| {
            let msg = a.body.get("error").and_then(Value::as_str).unwrap_or("");
            if msg == "invalid or expired token" {
                Ok(String::new())
            } else {
                Err(format!("message {msg:?}"))
            }
        },
    );

    // 9. Key rotation.
    let request = "IdP rotates its key; new app token";
    let expected = "200 (new kid fetched)";
    match &config.rotate {
        None => r.skip(
            request,
            expected,
            "the IdP's keys cannot be rotated from here (needs the dev IdP or admin access)",
        ),
        Some(rotate) => match rotate().await {
            Err(e) => r.push(request, expected, format!("rotation failed: {e}"), false),
            Ok(()) => {
                tokio::time::sleep(config.rotation_wait).await;
                match r.token(&ids.app).await {
                    Err(e) => r.push(request, expected, e, false),
                    Ok(token) => {
                        let (old_kid, new_kid) = (kid(&app_token), kid(&token));
                        let answer = r.invoke_session(&token, &session).await;
                        r.check(request, expected, answer, 200, None, |_| {
                            if old_kid == new_kid {
                                Err("kid did not change".to_owned())
                            } else {
                                Ok(format!("kid {} -> {}", short(&old_kid), short(&new_kid)))
                            }
                        });
                    }
                }
            }
        },
    }

    // 10-12. Delete.
    let request = "second user deletes the app's session";
    let expected = "403 not_owner";
    if let Some((c, token)) = r.usable(second, request, expected, no_second) {
        let answer = r.delete(&token, &session).await;
        let request = format!("{}: {request}", c.client_id);
        r.expect(&request, expected, answer, 403, Some("not_owner"));
    }
    // A fresh token: after a rotation the first one may be signed by a retired key.
    let owner_token = r.token(&ids.app).await.unwrap_or(app_token);
    let answer = r.delete(&owner_token, &session).await;
    r.expect(
        &format!("{}: delete own session", ids.app.client_id),
        "200",
        answer,
        200,
        None,
    );
    let answer = r.invoke_session(&owner_token, &session).await;
    r.expect(
        &format!("{}: invoke the deleted session", ids.app.client_id),
        "404 session_not_found",
        answer,
        404,
        Some("session_not_found"),
    );
    Ok(r.report)
}

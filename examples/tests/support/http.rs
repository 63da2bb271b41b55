//! HTTP in the end-to-end tests: a client that talks to loopback services directly, and
//! answers read whole.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "test support: each test binary uses part of it, failing loudly is the point, and \
              indexing a JSON value cannot panic"
)]

use std::time::Duration;

/// A client without proxies or redirects, giving up on a request after its timeout.
#[allow(unused_imports, reason = "not every test binary uses it")]
pub(crate) use agentcube_testkit::http::loopback_client as client;
use serde_json::Value;

/// A response, read whole (a body that is not JSON reads as `null`).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// The body's `code` (the services' stable error code), or `""`.
    pub(crate) fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }

    /// The body's `error` (the services' error message), or `""`.
    pub(crate) fn error(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or("")
    }

    /// The `x-agentcube-session-id` response header, or `""`.
    pub(crate) fn session(&self) -> String {
        self.header(agentcube_examples::sandbox::SESSION_HEADER)
            .unwrap_or("")
            .to_owned()
    }

    /// A response header, if present and text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The names of the headers the sandbox received, from its echo.
    pub(crate) fn seen_headers(&self) -> Vec<String> {
        self.body["headers"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Holds a Router's only concurrency slot with `slow`, a request the sandbox answers after a
/// delay. It is sent again while it finds the slot taken (a 429: a probe held the slot for a
/// moment), so it ends up holding the slot itself. Its task returns its answer.
pub(crate) fn hold_the_slot(
    slow: impl Fn() -> reqwest::RequestBuilder + Send + 'static,
) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move {
        loop {
            let answer = send(slow()).await;
            if answer.status != 429 {
                return answer;
            }
            tokio::time::sleep(SLOT_POLL).await;
        }
    })
}

/// Sends `probe` until it is not answered 200 (the slot is held) and returns that answer.
/// Panics when `holder`, the request that holds the slot, ends before a probe was refused: the
/// limit then let a second request in.
pub(crate) async fn until_refused(
    probe: impl Fn() -> reqwest::RequestBuilder,
    holder: &tokio::task::JoinHandle<Answer>,
) -> Answer {
    loop {
        let answer = send(probe()).await;
        if answer.status != 200 {
            return answer;
        }
        assert!(
            !holder.is_finished(),
            "every probe was served while the slot was held"
        );
        tokio::time::sleep(SLOT_POLL).await;
    }
}

/// How often the slot helpers ask again.
const SLOT_POLL: Duration = Duration::from_millis(10);

/// The answer; panics when nothing answered.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Answer {
    try_send(request).await.expect("the service answers")
}

/// The answer, or `None` when nothing answered (not listening yet).
pub(crate) async fn try_send(request: reqwest::RequestBuilder) -> Option<Answer> {
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Some(Answer {
        status,
        headers,
        body,
    })
}

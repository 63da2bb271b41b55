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

use serde_json::Value;

/// A client without proxies or redirects, giving up on a request after `timeout`.
pub(crate) fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .unwrap()
}

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

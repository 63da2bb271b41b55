//! Helpers shared by the wiremock-based client tests.

use agentcube_oidc::client::{HttpConfig, RetryPolicy};
use wiremock::Request;

/// HTTP settings for tests on paused tokio time: no timeouts (the auto-advancing clock would
/// fire them during real I/O), no retries, and no idle pool (its reaper timer would advance the
/// clock too).
pub(crate) fn paused_http() -> HttpConfig {
    HttpConfig::new()
        .client(
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        )
        .without_timeouts()
        .retry(RetryPolicy::none())
}

/// The form parameters of a request body.
pub(crate) fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

/// One form parameter of a request body.
pub(crate) fn form_value(request: &Request, name: &str) -> Option<String> {
    form(request)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

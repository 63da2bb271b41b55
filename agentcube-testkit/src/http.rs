//! The HTTP client of tests that talk to loopback services.

use std::time::Duration;

/// A client builder for loopback services: no proxy (reqwest would send `127.0.0.1` through
/// `HTTP_PROXY`), redirects not followed (a test sees each answer as the service gave it; a
/// browser that follows them does so itself), and `timeout` per request, so that a test fails
/// instead of hanging.
pub fn loopback_client_builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
}

/// A client with [`loopback_client_builder`]'s settings.
///
/// # Panics
/// If reqwest cannot build a client (no TLS backend), which no test can work around.
#[allow(
    clippy::expect_used,
    reason = "test support: a test without a client cannot run"
)]
pub fn loopback_client(timeout: Duration) -> reqwest::Client {
    loopback_client_builder(timeout)
        .build()
        .expect("an HTTP client")
}

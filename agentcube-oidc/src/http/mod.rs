//! The one HTTP layer of this crate, used by the key store and by the client flows alike.
//!
//! - **Bounded**: a response body is read only up to a cap, enforced while streaming (a
//!   declared `Content-Length` above it fails before reading).
//! - **Timeouts**: a connect timeout on the built-in client and a total timeout per request,
//!   body included.
//! - **Retries** ([`RetryPolicy`]): network errors, timeouts and 5xx answers are retried after
//!   an exponential backoff with jitter; 4xx answers never are.
//! - **Redirects**: none followed, except within the same origin where a caller's rule allows
//!   it (the key store's discovery and JWKS GETs, which carry no credentials).
//! - **One user agent**, [`USER_AGENT`].
//! - **URLs**: requests go only to an [`HttpUrl`]; endpoints named by a discovery document
//!   ([`Discovery`]) obey the downgrade rule of [`HttpUrl::named_by`].
//!
//! [`HttpConfig`] and [`RetryPolicy`] are public through `client`; without that feature only the
//! key store uses this module.
#![cfg_attr(
    not(feature = "client"),
    allow(
        unreachable_pub,
        dead_code,
        reason = "the client's half of the module is public through `client`"
    )
)]

mod discovery;
mod endpoint;

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, redirect};
use url::Url;

pub use discovery::DISCOVERY_PATH;
#[cfg(feature = "client")]
pub(crate) use discovery::MAX_ISSUER_IN_ERROR;
pub(crate) use discovery::{Discovery, DiscoveryError, DiscoveryFailure, discovery_url_for};
pub(crate) use endpoint::{EndpointKind, HttpUrl, UrlError};

/// The `User-Agent` of every request the built-in clients send.
pub(crate) const USER_AGENT: &str = concat!("agentcube-oidc/", env!("CARGO_PKG_VERSION"));

/// The default cap on a response body: 256 KiB.
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How many same-origin redirects are followed when a rule allows them.
const MAX_REDIRECTS: usize = 5;

/// Copies at most `max` characters of `value`, replacing anything outside printable ASCII with
/// `?` (text from a server that ends up in an error or a log).
pub(crate) fn printable(value: &str, max: usize) -> String {
    value
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// Retries of a request.
///
/// Network errors, timeouts and 5xx answers are retried after an exponential backoff with
/// jitter (retry *n* waits a random time between half and all of
/// `min(initial_backoff × 2ⁿ⁻¹, max_backoff)`); 4xx answers never are. The default is 3
/// attempts, 200 ms initial backoff, 2 s maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// `max_attempts` attempts in total (at least 1), waiting about `initial_backoff` before the
    /// first retry and doubling up to `max_backoff`.
    pub fn new(max_attempts: u32, initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            initial_backoff,
            max_backoff: max_backoff.max(initial_backoff),
        }
    }

    /// One attempt, no retry.
    pub fn none() -> Self {
        Self::new(1, Duration::ZERO, Duration::ZERO)
    }

    /// The number of attempts in total.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before retry number `retry` (1-based), with jitter.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = 2u32.saturating_pow(retry.saturating_sub(1));
        let ceiling = self
            .initial_backoff
            .saturating_mul(exp)
            .min(self.max_backoff);
        let half = ceiling / 2;
        half + half.mul_f64(unit_fraction())
    }
}

/// A uniformly distributed fraction in `[0, 1)` from aws-lc-rs (0.5 if randomness fails).
fn unit_fraction() -> f64 {
    let mut buf = [0u8; 4];
    match aws_lc_rs::rand::fill(&mut buf) {
        Ok(()) => f64::from(u32::from_le_bytes(buf)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// Which redirects are followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// None: a 3xx is an answer like any other.
    None,
    /// Up to five within the origin of the first request (scheme, host and port unchanged, so
    /// no downgrade either).
    SameOrigin,
}

/// HTTP settings: the `reqwest` client, timeouts, retries, response cap.
///
/// Defaults: a client of its own with a 5 s connect timeout and redirects disabled (a token
/// endpoint has no reason to redirect, and following redirects would forward credentials), a 30 s
/// total timeout per request, [`RetryPolicy::default`], responses capped at 256 KiB.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) max_response_bytes: usize,
    pub(crate) redirects: Redirects,
    pub(crate) keep_alive: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            client: None,
            connect_timeout: Some(Duration::from_secs(5)),
            timeout: Some(Duration::from_secs(30)),
            retry: RetryPolicy::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            redirects: Redirects::None,
            keep_alive: true,
        }
    }
}

impl HttpConfig {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this `reqwest` client (its connection pool, proxy, TLS and redirect settings; better
    /// disable redirects). The connect timeout is then the client's own; the total timeout
    /// still applies per request.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The connect timeout of the client built here (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The total timeout of each request, including reading the body (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No connect or total timeout. Meant for tests that pause Tokio's clock, where a pending
    /// timeout would be fired by the auto-advancing clock while real I/O is in flight.
    pub fn without_timeouts(mut self) -> Self {
        self.connect_timeout = None;
        self.timeout = None;
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The largest response body accepted (default 256 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Builds the client (unless one was given) and the settings around it.
    pub(crate) fn build(&self) -> Result<Http, reqwest::Error> {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let policy = match self.redirects {
                    Redirects::None => redirect::Policy::none(),
                    Redirects::SameOrigin => redirect::Policy::custom(|attempt| {
                        let same_origin = attempt
                            .previous()
                            .first()
                            .is_some_and(|first| first.origin() == attempt.url().origin());
                        if same_origin && attempt.previous().len() <= MAX_REDIRECTS {
                            attempt.follow()
                        } else {
                            attempt.stop()
                        }
                    }),
                };
                let mut builder = reqwest::Client::builder()
                    .redirect(policy)
                    .user_agent(USER_AGENT);
                if !self.keep_alive {
                    builder = builder.pool_max_idle_per_host(0).pool_idle_timeout(None);
                }
                if let Some(timeout) = self.connect_timeout {
                    builder = builder.connect_timeout(timeout);
                }
                builder.build()?
            }
        };
        Ok(Http {
            client,
            timeout: self.timeout,
            retry: self.retry,
            max_response_bytes: self.max_response_bytes,
        })
    }
}

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HttpError {
    /// Connecting, sending or reading failed (connection refused, DNS, TLS, reset). The message
    /// is the error chain without the URL.
    Network(String),
    /// The connect or total timeout passed.
    Timeout,
    /// The body is larger than the cap.
    TooLarge { limit: usize },
}

impl HttpError {
    /// Turns a reqwest error into `Network` or `Timeout`, dropping the URL.
    pub(crate) fn from_reqwest(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return Self::Timeout;
        }
        // The chain without the URL: reqwest's top-level message names the URL, its sources
        // (hyper, io, rustls) say what actually happened.
        let mut message = String::new();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if message.is_empty() {
            message = if error.is_connect() {
                "connection failed".to_owned()
            } else if error.is_body() || error.is_decode() {
                "reading the response failed".to_owned()
            } else {
                "sending the request failed".to_owned()
            };
        }
        // A timeout buried in the chain (connect timeout) still counts as a timeout.
        if message.contains("timed out") || message.contains("deadline has elapsed") {
            return Self::Timeout;
        }
        Self::Network(printable(&message, 300))
    }

    /// Whether another attempt may succeed.
    fn is_retryable(&self) -> bool {
        matches!(self, Self::Network(_) | Self::Timeout)
    }
}

/// A request: method, URL, headers, optional body.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Vec<u8>>,
    error_bodies: bool,
}

impl Request {
    /// A `GET` of `url`, accepting JSON. The body of an answer other than 200 is not read.
    pub(crate) fn get(url: &HttpUrl) -> Self {
        Self {
            method: Method::GET,
            url: url.url().clone(),
            headers: HeaderMap::new(),
            body: None,
            error_bodies: false,
        }
    }

    /// Any request to `url` (a token-style `POST`); every answer's body is read.
    #[cfg(feature = "client")]
    pub(crate) fn new(method: Method, url: &HttpUrl, headers: HeaderMap, body: Vec<u8>) -> Self {
        Self {
            method,
            url: url.url().clone(),
            headers,
            body: Some(body),
            error_bodies: true,
        }
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }
}

/// A status, the headers and a bounded body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A client with its timeout, retry policy and response cap (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    max_response_bytes: usize,
}

impl Http {
    /// Sends `request`, retrying network errors, timeouts and 5xx answers by the policy.
    pub(crate) async fn send(&self, request: &Request) -> Result<Response, HttpError> {
        let mut attempt = 1;
        loop {
            let result = self.attempt(request).await;
            let retry = match &result {
                Ok(response) => response.status.is_server_error(),
                Err(error) => error.is_retryable(),
            };
            if !retry || attempt >= self.retry.max_attempts {
                return result;
            }
            let wait = self.retry.backoff(attempt);
            match &result {
                Ok(response) => tracing::debug!(
                    status = response.status.as_u16(),
                    attempt,
                    ?wait,
                    "server error, retrying"
                ),
                Err(error) => tracing::debug!(?error, attempt, ?wait, "request failed, retrying"),
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, request: &Request) -> Result<Response, HttpError> {
        let mut builder = self
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone());
        if !request.headers.contains_key(ACCEPT) {
            builder = builder.header(ACCEPT, HeaderValue::from_static("application/json"));
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|e| HttpError::from_reqwest(&e))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        if status != StatusCode::OK && !request.error_bodies {
            // Error and redirect bodies are not read at all.
            return Ok(Response {
                status,
                headers,
                body: Vec::new(),
            });
        }
        let body = self.read_body(&mut response).await?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// Reads the body, failing as soon as it would exceed the cap.
    async fn read_body(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, HttpError> {
        let limit = self.max_response_bytes;
        let too_large = HttpError::TooLarge { limit };
        let declared = response.content_length();
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large);
        }
        let capacity = declared.map_or(8 * 1024, |n| usize::try_from(n).unwrap_or(limit));
        let mut body = Vec::with_capacity(capacity.min(limit));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HttpError::from_reqwest(&e))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_maximum() {
        let policy = RetryPolicy::new(5, Duration::from_millis(100), Duration::from_millis(300));
        let ms = Duration::from_millis;
        for _ in 0..50 {
            let first = policy.backoff(1);
            assert!(first >= ms(50) && first <= ms(100), "{first:?}");
            let second = policy.backoff(2);
            assert!(second >= ms(100) && second <= ms(200), "{second:?}");
            let capped = policy.backoff(10);
            assert!(capped >= ms(150) && capped <= ms(300), "{capped:?}");
        }
        assert_eq!(RetryPolicy::new(0, ms(1), ms(1)).max_attempts(), 1);
        assert_eq!(RetryPolicy::none().backoff(1), Duration::ZERO);
    }

    #[test]
    fn printable_bounds_and_replaces() {
        assert_eq!(printable("ab\ncd\u{1b}é", 100), "ab?cd??");
        assert_eq!(printable("abcdef", 3), "abc");
    }
}

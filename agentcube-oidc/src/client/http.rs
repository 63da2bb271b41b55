//! The HTTP layer of the client flows: settings, retries with backoff, bounded bodies, OpenID
//! discovery, and parsing of token and error responses.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use url::Url;

use super::error::{ClientError, bounded};
use super::token::{AccessToken, ClientSecret, IdToken, RefreshToken, Tokens};
use crate::DISCOVERY_PATH;

/// The `expires_in` assumed when a token response has none.
pub(crate) const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);
/// Lifetimes above this are capped (keeps `Instant` arithmetic far from overflow).
const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;

pub(crate) const TOKEN_ENDPOINT: &str = "token endpoint";
pub(crate) const DISCOVERY: &str = "discovery document";
pub(crate) const DEVICE_ENDPOINT: &str = "device authorization endpoint";

/// Retries of token-endpoint and discovery requests.
///
/// Network errors, timeouts and 5xx answers are retried after an exponential backoff with jitter
/// (attempt *n* waits a random time between half and all of
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
        half + half.mul_f64(super::rand::unit_fraction())
    }
}

/// HTTP settings shared by every flow: the `reqwest` client, timeouts, retries, response cap.
///
/// Defaults: a client of its own with a 5 s connect timeout and redirects disabled (a token
/// endpoint has no reason to redirect, and following redirects would forward credentials), a 30 s
/// total timeout per request, [`RetryPolicy::default`], responses capped at 256 KiB.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    client: Option<reqwest::Client>,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    max_response_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            client: None,
            connect_timeout: Some(Duration::from_secs(5)),
            timeout: Some(Duration::from_secs(30)),
            retry: RetryPolicy::default(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
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

    pub(crate) fn build(&self) -> Result<Transport, ClientError> {
        let client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let mut builder = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(concat!("agentcube-oidc/", env!("CARGO_PKG_VERSION")));
                if let Some(timeout) = self.connect_timeout {
                    builder = builder.connect_timeout(timeout);
                }
                builder
                    .build()
                    .map_err(|_| ClientError::config("the http client could not be built"))?
            }
        };
        Ok(Transport {
            client,
            timeout: self.timeout,
            retry: self.retry,
            max_response_bytes: self.max_response_bytes,
        })
    }
}

/// A status and a bounded body.
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// How a confidential client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (`client_secret_basic`, the default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
}

/// The client identity sent with every token request.
#[derive(Clone, Debug)]
pub(crate) struct ClientCredentialsAuth {
    pub(crate) client_id: String,
    pub(crate) secret: Option<ClientSecret>,
    pub(crate) method: ClientAuthMethod,
}

#[derive(Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    max_response_bytes: usize,
}

impl Transport {
    /// Sends the request built by `build` with retries on network errors and 5xx answers.
    async fn send(
        &self,
        endpoint: &'static str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<RawResponse, ClientError> {
        let mut attempt = 1;
        loop {
            let mut request = build(&self.client).header(ACCEPT, "application/json");
            if let Some(timeout) = self.timeout {
                request = request.timeout(timeout);
            }
            let result = match request.send().await {
                Ok(response) => self.read(endpoint, response).await,
                Err(error) => Err(ClientError::from_reqwest(endpoint, &error)),
            };
            let retry = match &result {
                Ok(response) => response.status >= 500,
                Err(error) => matches!(
                    error,
                    ClientError::Network { .. } | ClientError::Timeout { .. }
                ),
            };
            if !retry || attempt >= self.retry.max_attempts {
                return result;
            }
            let wait = self.retry.backoff(attempt);
            match &result {
                Ok(response) => tracing::debug!(
                    endpoint,
                    status = response.status,
                    attempt,
                    ?wait,
                    "server error, retrying"
                ),
                Err(error) => tracing::debug!(
                    endpoint,
                    code = %error.code(),
                    %error,
                    attempt,
                    ?wait,
                    "request failed, retrying"
                ),
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn read(
        &self,
        endpoint: &'static str,
        mut response: reqwest::Response,
    ) -> Result<RawResponse, ClientError> {
        let status = response.status().as_u16();
        let too_large = ClientError::InvalidResponse {
            endpoint,
            reason: "response body is too large",
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes as u64)
        {
            return Err(too_large);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ClientError::from_reqwest(endpoint, &e))?
        {
            if body.len() + chunk.len() > self.max_response_bytes {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse { status, body })
    }

    /// POSTs a form to a token-style endpoint, authenticating the client as configured.
    pub(crate) async fn post_form(
        &self,
        endpoint: &'static str,
        url: &Url,
        auth: &ClientCredentialsAuth,
        params: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 2);
        form.extend_from_slice(params);
        let mut basic = None;
        match (&auth.secret, auth.method) {
            (Some(secret), ClientAuthMethod::Basic) => {
                basic = Some(basic_header(&auth.client_id, secret)?);
            }
            (Some(secret), ClientAuthMethod::Post) => {
                form.push(("client_id", &auth.client_id));
                form.push(("client_secret", secret.secret()));
            }
            (None, _) => form.push(("client_id", &auth.client_id)),
        }
        self.send(endpoint, |client| {
            let request = client.post(url.clone()).form(&form);
            match &basic {
                Some(value) => request.header(AUTHORIZATION, value.clone()),
                None => request,
            }
        })
        .await
    }

    /// GETs a JSON document.
    pub(crate) async fn get(
        &self,
        endpoint: &'static str,
        url: &Url,
    ) -> Result<RawResponse, ClientError> {
        self.send(endpoint, |client| client.get(url.clone())).await
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1), marked sensitive.
fn basic_header(client_id: &str, secret: &ClientSecret) -> Result<HeaderValue, ClientError> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(client_id), encode(secret.secret()));
    let mut value = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
        .map_err(|_| ClientError::config("client credentials cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Parses a JSON object, or says why not.
pub(crate) fn json_object(
    endpoint: &'static str,
    body: &[u8],
) -> Result<Map<String, Value>, ClientError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ClientError::InvalidResponse {
            endpoint,
            reason: "response is not a json object",
        }),
        Err(_) => Err(ClientError::InvalidResponse {
            endpoint,
            reason: "response is not valid json",
        }),
    }
}

/// The OAuth error in a body, if it has one (`error` must be a non-empty string).
fn oauth_error(map: &Map<String, Value>, status: u16) -> Option<ClientError> {
    let error = map.get("error")?.as_str().filter(|e| !e.is_empty())?;
    let description = map
        .get("error_description")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
        .map(|d| bounded(d, 300));
    Some(ClientError::OAuth {
        error: bounded(error, 64),
        description,
        status: Some(status),
    })
}

/// Turns an answer of a token-style endpoint into its JSON object: a success status without an
/// `error` member, or the OAuth error, or an HTTP status error.
pub(crate) fn success_object(
    endpoint: &'static str,
    response: &RawResponse,
) -> Result<Map<String, Value>, ClientError> {
    let success = (200..300).contains(&response.status);
    match json_object(endpoint, &response.body) {
        Ok(map) => match oauth_error(&map, response.status) {
            Some(error) => Err(error),
            None if success => Ok(map),
            None => Err(ClientError::HttpStatus {
                endpoint,
                status: response.status,
            }),
        },
        Err(error) if success => Err(error),
        Err(_) => Err(ClientError::HttpStatus {
            endpoint,
            status: response.status,
        }),
    }
}

/// Reads a lifetime in seconds: a non-negative JSON number or a string of digits.
fn seconds(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    Some(Duration::from_secs(secs).min(MAX_LIFETIME))
}

/// An optional lifetime field: absent or `null` is `None`, a bad value is an error.
pub(crate) fn optional_seconds(
    endpoint: &'static str,
    map: &Map<String, Value>,
    field: &str,
    reason: &'static str,
) -> Result<Option<Duration>, ClientError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => seconds(value)
            .map(Some)
            .ok_or(ClientError::InvalidResponse { endpoint, reason }),
    }
}

/// An optional, non-empty string field; any other type is an error.
pub(crate) fn optional_string<'a>(
    endpoint: &'static str,
    map: &'a Map<String, Value>,
    field: &str,
    reason: &'static str,
) -> Result<Option<&'a str>, ClientError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ClientError::InvalidResponse { endpoint, reason }),
    }
}

/// Parses a token response (RFC 6749 §5.1) received for a request sent at `sent_at`.
///
/// `access_token` must be a non-empty string of visible ASCII; `token_type` must be present and
/// equal `Bearer` case-insensitively; `expires_in`, when present, must be a non-negative number.
pub(crate) fn parse_tokens(
    response: &RawResponse,
    sent_at: Instant,
) -> Result<Tokens, ClientError> {
    let endpoint = TOKEN_ENDPOINT;
    let map = success_object(endpoint, response)?;
    let access_token = optional_string(
        endpoint,
        &map,
        "access_token",
        "access_token is not a string",
    )?
    .ok_or(ClientError::InvalidResponse {
        endpoint,
        reason: "missing or empty access_token",
    })?;
    let access_token = AccessToken::checked(access_token)?;
    match optional_string(endpoint, &map, "token_type", "token_type is not a string")? {
        Some(kind) if kind.trim().eq_ignore_ascii_case("bearer") => {}
        Some(kind) => {
            return Err(ClientError::UnsupportedTokenType {
                found: bounded(kind, 32),
            });
        }
        None => {
            return Err(ClientError::InvalidResponse {
                endpoint,
                reason: "missing token_type",
            });
        }
    }
    let expires_in = optional_seconds(
        endpoint,
        &map,
        "expires_in",
        "expires_in is not a non-negative number",
    )?;
    let refresh_expires_in = map.get("refresh_expires_in").and_then(seconds);
    let refresh_token = optional_string(
        endpoint,
        &map,
        "refresh_token",
        "refresh_token is not a string",
    )?
    .map(RefreshToken::new);
    let id_token =
        optional_string(endpoint, &map, "id_token", "id_token is not a string")?.map(IdToken::new);
    let scope =
        optional_string(endpoint, &map, "scope", "scope is not a string")?.map(str::to_owned);
    Ok(Tokens {
        access_token,
        refresh_token,
        id_token,
        expires_in,
        refresh_expires_in,
        scope,
        received_at: sent_at,
    })
}

/// When to refresh and when the token expires: refresh after
/// `max(expires_in − 30 s, expires_in / 2)`, `expires_in` 3600 s when absent.
pub(crate) fn lifetimes(sent_at: Instant, expires_in: Option<Duration>) -> (Instant, Instant) {
    let lifetime = expires_in.unwrap_or(DEFAULT_EXPIRES_IN).min(MAX_LIFETIME);
    let refresh_after = lifetime
        .saturating_sub(Duration::from_secs(30))
        .max(lifetime / 2);
    (sent_at + refresh_after, sent_at + lifetime)
}

/// The endpoints a flow may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    Token,
    Authorization,
    DeviceAuthorization,
}

impl EndpointKind {
    /// How errors name the endpoint.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Token => TOKEN_ENDPOINT,
            Self::Authorization => "authorization endpoint",
            Self::DeviceAuthorization => DEVICE_ENDPOINT,
        }
    }

    /// Its member in the discovery document.
    fn field(self) -> &'static str {
        match self {
            Self::Token => "token_endpoint",
            Self::Authorization => "authorization_endpoint",
            Self::DeviceAuthorization => "device_authorization_endpoint",
        }
    }
}

/// Endpoint URLs, explicit or discovered once from the issuer (lazily, on first use; a failed
/// discovery is tried again on the next use).
#[derive(Debug, Default)]
pub(crate) struct Endpoints {
    pub(crate) issuer: Option<String>,
    pub(crate) token: Option<Url>,
    pub(crate) authorization: Option<Url>,
    pub(crate) device_authorization: Option<Url>,
    pub(crate) discovered: OnceCell<Discovered>,
}

#[derive(Debug)]
pub(crate) struct Discovered {
    token: Option<Url>,
    authorization: Option<Url>,
    device_authorization: Option<Url>,
}

impl Endpoints {
    pub(crate) fn explicit(&self, kind: EndpointKind) -> Option<&Url> {
        match kind {
            EndpointKind::Token => self.token.as_ref(),
            EndpointKind::Authorization => self.authorization.as_ref(),
            EndpointKind::DeviceAuthorization => self.device_authorization.as_ref(),
        }
    }

    /// The URL of `kind`: explicit, else from the issuer's discovery document.
    pub(crate) async fn get(
        &self,
        transport: &Transport,
        kind: EndpointKind,
    ) -> Result<Url, ClientError> {
        if let Some(url) = self.explicit(kind) {
            return Ok(url.clone());
        }
        let Some(issuer) = &self.issuer else {
            return Err(ClientError::config(format!(
                "no {} configured and no issuer to discover it from",
                kind.field()
            )));
        };
        let document = self
            .discovered
            .get_or_try_init(|| discover(transport, issuer))
            .await?;
        let url = match kind {
            EndpointKind::Token => &document.token,
            EndpointKind::Authorization => &document.authorization,
            EndpointKind::DeviceAuthorization => &document.device_authorization,
        };
        url.clone()
            .ok_or_else(|| ClientError::discovery(format!("the document has no {}", kind.field())))
    }
}

/// Fetches `{issuer}/.well-known/openid-configuration` and checks that it names `issuer`.
async fn discover(transport: &Transport, issuer: &str) -> Result<Discovered, ClientError> {
    let url = parse_url(
        &format!("{}{DISCOVERY_PATH}", issuer.trim_end_matches('/')),
        "issuer",
    )?;
    let response = transport.get(DISCOVERY, &url).await?;
    if response.status != 200 {
        return Err(ClientError::HttpStatus {
            endpoint: DISCOVERY,
            status: response.status,
        });
    }
    let map = json_object(DISCOVERY, &response.body)?;
    let Some(Value::String(found)) = map.get("issuer") else {
        return Err(ClientError::discovery("issuer missing or not a string"));
    };
    if found != issuer {
        return Err(ClientError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: bounded(found, 200),
        });
    }
    let endpoint = |field: &str| -> Result<Option<Url>, ClientError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_url(s, field)
                .map(Some)
                .map_err(|_| ClientError::discovery(format!("{field} is not an http(s) url"))),
            Some(_) => Err(ClientError::discovery(format!("{field} is not a string"))),
        }
    };
    Ok(Discovered {
        token: endpoint("token_endpoint")?,
        authorization: endpoint("authorization_endpoint")?,
        device_authorization: endpoint("device_authorization_endpoint")?,
    })
}

/// Parses an absolute `http` or `https` URL.
pub(crate) fn parse_url(value: &str, what: &str) -> Result<Url, ClientError> {
    let url =
        Url::parse(value).map_err(|_| ClientError::config(format!("{what} is not a valid url")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ClientError::config(format!("{what} is not an http(s) url")));
    }
    Ok(url)
}

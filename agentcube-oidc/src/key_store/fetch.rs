//! HTTP: discovery and JWKS requests with size caps, conditional requests and `Cache-Control`.

use std::time::Duration;

use agentcube_auth_core::Code;
use agentcube_auth_core::jose::{JwksError, KeySet, SkippedKey};
use reqwest::header::{self, HeaderMap};
use reqwest::{StatusCode, redirect};
use serde::Deserialize;
use url::Url;

use super::config::KeyStoreConfig;

/// Why a refresh of the key set failed. The previous key set (if any) stays in use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Connecting, sending or reading failed (including timeouts).
    #[error("request to {url} failed: {message}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with a status other than 200 (or 304 to a conditional request).
    /// Redirects to another origin are not followed and end up here.
    #[error("{url} answered http {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The response body is larger than the configured cap.
    #[error("response from {url} exceeds {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The discovery document is not usable.
    #[error("discovery document is invalid: {0}")]
    InvalidDiscovery(&'static str),
    /// The discovery document names another issuer.
    #[error("discovery document issuer {found:?} does not match the configured issuer")]
    IssuerMismatch {
        /// The issuer in the document (truncated to 256 characters).
        found: String,
    },
    /// The JWKS document is not usable as a whole.
    #[error("{0}")]
    Jwks(JwksError),
    /// The JWKS document parsed, but none of its keys can verify signatures.
    #[error("jwks has no usable signing key ({skipped} skipped)")]
    NoUsableKeys {
        /// Keys skipped as unusable.
        skipped: usize,
    },
}

impl FetchError {
    /// The stable code, for logs and metrics: `transport`, `http_status`, `too_large`,
    /// `invalid_discovery`, `discovery_issuer_mismatch`, `no_usable_keys`, or the JWKS
    /// document's own (`invalid_jwks`, `too_many_keys`).
    pub const fn code(&self) -> Code {
        match self {
            Self::Transport { .. } => Code::new("transport"),
            Self::Status { .. } => Code::new("http_status"),
            Self::TooLarge { .. } => Code::new("too_large"),
            Self::InvalidDiscovery(_) => Code::new("invalid_discovery"),
            Self::IssuerMismatch { .. } => Code::new("discovery_issuer_mismatch"),
            Self::Jwks(e) => e.code(),
            Self::NoUsableKeys { .. } => Code::new("no_usable_keys"),
        }
    }
}

/// A successful JWKS response.
pub(crate) enum Fetched {
    /// A new document.
    Keys {
        keys: KeySet,
        skipped: Vec<SkippedKey>,
        max_age: Option<Duration>,
        etag: Option<String>,
    },
    /// 304: the current key set is still the issuer's.
    NotModified { max_age: Option<Duration> },
}

/// Builds the built-in client: same-origin redirects only, timeouts, no pool (fetches are rare
/// and a pool keeps idle timers alive).
pub(crate) fn build_client(config: &KeyStoreConfig) -> Result<reqwest::Client, reqwest::Error> {
    let policy = redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same_origin && attempt.previous().len() <= 5 {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    let mut builder = reqwest::Client::builder()
        .redirect(policy)
        .pool_max_idle_per_host(0)
        .pool_idle_timeout(None)
        .user_agent(concat!("agentcube-oidc/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = config.connect_timeout {
        builder = builder.connect_timeout(t);
    }
    if let Some(t) = config.request_timeout {
        builder = builder.timeout(t);
    }
    builder.build()
}

fn transport(url: &Url, err: &reqwest::Error) -> FetchError {
    // reqwest's Display names the URL already; keep the chain short and token-free (these
    // requests carry no credentials).
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    FetchError::Transport {
        url: url.to_string(),
        message,
    }
}

/// Response of a GET: status, headers and a capped body.
struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn get(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&str>,
    limit: usize,
) -> Result<Response, FetchError> {
    let mut request = client
        .get(url.clone())
        .header(header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let mut response = request.send().await.map_err(|e| transport(url, &e))?;
    let status = response.status();
    let headers = std::mem::take(response.headers_mut());
    if status != StatusCode::OK {
        // Do not read error or redirect bodies at all.
        return Ok(Response {
            status,
            headers,
            body: Vec::new(),
        });
    }
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit,
    };
    let declared = response.content_length();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let capacity = declared.map_or(8 * 1024, |n| usize::try_from(n).unwrap_or(limit));
    let mut body = Vec::with_capacity(capacity.min(limit));
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(url, &e))? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: Option<serde_json::Value>,
    jwks_uri: Option<serde_json::Value>,
}

/// Fetches the discovery document, checks its issuer and returns its `jwks_uri`.
pub(crate) async fn discover(
    client: &reqwest::Client,
    url: &Url,
    issuer: &str,
    limit: usize,
) -> Result<Url, FetchError> {
    let response = get(client, url, None, limit).await?;
    if response.status != StatusCode::OK {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: response.status.as_u16(),
        });
    }
    let doc: DiscoveryDocument = serde_json::from_slice(&response.body)
        .map_err(|_| FetchError::InvalidDiscovery("not a json object"))?;
    match doc.issuer {
        Some(serde_json::Value::String(found)) if found == issuer => {}
        Some(serde_json::Value::String(found)) => {
            return Err(FetchError::IssuerMismatch {
                found: found.chars().take(256).collect(),
            });
        }
        _ => {
            return Err(FetchError::InvalidDiscovery(
                "issuer missing or not a string",
            ));
        }
    }
    let Some(serde_json::Value::String(jwks_uri)) = doc.jwks_uri else {
        return Err(FetchError::InvalidDiscovery(
            "jwks_uri missing or not a string",
        ));
    };
    let jwks_uri =
        Url::parse(&jwks_uri).map_err(|_| FetchError::InvalidDiscovery("jwks_uri is not a url"))?;
    // https always; plain http only when discovery itself was plain http (a development or
    // in-cluster issuer): a TLS-protected discovery document may not downgrade the key fetch.
    match (jwks_uri.scheme(), url.scheme()) {
        ("https", _) | ("http", "http") => Ok(jwks_uri),
        _ => Err(FetchError::InvalidDiscovery(
            "jwks_uri scheme is not allowed",
        )),
    }
}

/// Fetches and parses a JWKS document.
pub(crate) async fn fetch_jwks(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&str>,
    limit: usize,
    max_keys: usize,
) -> Result<Fetched, FetchError> {
    let response = get(client, url, etag, limit).await?;
    let max_age = cache_max_age(&response.headers);
    if response.status == StatusCode::NOT_MODIFIED && etag.is_some() {
        return Ok(Fetched::NotModified { max_age });
    }
    if response.status != StatusCode::OK {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: response.status.as_u16(),
        });
    }
    let (keys, skipped) = KeySet::from_jwks(&response.body, max_keys).map_err(FetchError::Jwks)?;
    if keys.is_empty() {
        return Err(FetchError::NoUsableKeys {
            skipped: skipped.len(),
        });
    }
    let etag = response
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 256)
        .map(str::to_owned);
    Ok(Fetched::Keys {
        keys,
        skipped,
        max_age,
        etag,
    })
}

/// The freshness lifetime from `Cache-Control` (minus `Age`): `max-age=N`, or zero for
/// `no-cache`/`no-store`. `None` when the response says nothing.
pub(crate) fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age: Option<u64> = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|a| a.parse::<u64>().ok())
            {
                max_age = Some(max_age.map_or(secs, |m| m.min(secs)));
            }
        }
    }
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|m| Duration::from_secs(m.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cache_control_parsing() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(cache_max_age(&headers(&[])), None);
        assert_eq!(
            cache_max_age(&headers(&[("cache-control", "public, max-age=600")])),
            secs(600)
        );
        assert_eq!(
            cache_max_age(&headers(&[
                ("cache-control", "max-age=600"),
                ("age", "100")
            ])),
            secs(500)
        );
        assert_eq!(
            cache_max_age(&headers(&[("cache-control", "max-age=\"60\", MAX-AGE=30")])),
            secs(30)
        );
        assert_eq!(
            cache_max_age(&headers(&[("cache-control", "no-cache")])),
            secs(0)
        );
        assert_eq!(
            cache_max_age(&headers(&[
                ("cache-control", "max-age=60"),
                ("cache-control", "no-store")
            ])),
            secs(0)
        );
        assert_eq!(
            cache_max_age(&headers(&[("cache-control", "max-age=abc")])),
            None
        );
    }
}

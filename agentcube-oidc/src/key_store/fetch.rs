//! The key store's requests over the crate's HTTP layer: discovery, JWKS with conditional
//! requests, `Cache-Control`.

use std::time::Duration;

use agentcube_auth_core::Code;
use agentcube_auth_core::jose::{JwksError, KeySet, SkippedKey};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};

use crate::http::{
    Discovery, DiscoveryError, DiscoveryFailure, EndpointKind, Http, HttpError, HttpUrl, Request,
};

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
        /// The issuer in the document (at most 256 characters, printable ASCII).
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

    fn from_http(url: &HttpUrl, error: HttpError) -> Self {
        let url = url.to_string();
        match error {
            HttpError::Network(message) => Self::Transport { url, message },
            HttpError::Timeout => Self::Transport {
                url,
                message: "the request timed out".to_owned(),
            },
            HttpError::TooLarge { limit } => Self::TooLarge { url, limit },
        }
    }

    fn from_discovery(error: &DiscoveryError) -> Self {
        match error {
            DiscoveryError::IssuerMismatch { found } => Self::IssuerMismatch {
                found: found.clone(),
            },
            other => Self::InvalidDiscovery(other.reason()),
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

/// Fetches the discovery document, checks its issuer and returns its `jwks_uri` (which is
/// `https` whenever the document came over `https`).
pub(crate) async fn discover(
    http: &Http,
    url: &HttpUrl,
    issuer: &str,
) -> Result<HttpUrl, FetchError> {
    let document = Discovery::fetch(http, url, issuer)
        .await
        .map_err(|failure| match failure {
            DiscoveryFailure::Http(error) => FetchError::from_http(url, error),
            DiscoveryFailure::Status(status) => FetchError::Status {
                url: url.to_string(),
                status,
            },
            DiscoveryFailure::Document(error) => FetchError::from_discovery(&error),
        })?;
    document
        .endpoint(EndpointKind::Jwks)
        .map_err(|error| FetchError::from_discovery(&error))
}

/// Fetches and parses a JWKS document.
pub(crate) async fn fetch_jwks(
    http: &Http,
    url: &HttpUrl,
    etag: Option<&str>,
    max_keys: usize,
) -> Result<Fetched, FetchError> {
    let mut request = Request::get(url);
    if let Some(etag) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
        request = request.header(header::IF_NONE_MATCH, etag);
    }
    let response = http
        .send(&request)
        .await
        .map_err(|error| FetchError::from_http(url, error))?;
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

//! [`HttpUrl`]: the one URL type requests are sent to, and the downgrade rule for endpoints a
//! document names.

use std::fmt;

use url::Url;

/// Why a string is not a usable URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UrlError {
    /// Not an absolute URL.
    Invalid,
    /// Not `http` or `https`, or without a host.
    NotHttp,
    /// An `http` URL named by a document that came over `https`.
    Downgrade,
}

/// An absolute `http` or `https` URL with a host: the only kind of URL this crate sends a
/// request to.
///
/// A URL configured by the operator may be plain `http` (an in-cluster or development issuer).
/// A URL *named by a document* ([`HttpUrl::named_by`]) may be plain `http` only when the
/// document itself came over plain `http`: a TLS-protected discovery document never leads to
/// an unprotected endpoint, so an `https` issuer never sends a client secret, a code or a
/// refresh token in clear, and never takes its keys from an unauthenticated channel.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl(Url);

impl HttpUrl {
    /// Parses an absolute `http(s)` URL with a host.
    pub(crate) fn parse(value: &str) -> Result<Self, UrlError> {
        let url = Url::parse(value).map_err(|_| UrlError::Invalid)?;
        match url.scheme() {
            "http" | "https" if url.has_host() => Ok(Self(url)),
            _ => Err(UrlError::NotHttp),
        }
    }

    /// Parses a URL named by a document fetched from `source`: it must be `https` when `source`
    /// is.
    pub(crate) fn named_by(value: &str, source: &HttpUrl) -> Result<Self, UrlError> {
        let url = Self::parse(value)?;
        if source.is_https() && !url.is_https() {
            return Err(UrlError::Downgrade);
        }
        Ok(url)
    }

    /// Whether the scheme is `https`.
    pub(crate) fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    /// The URL.
    pub(crate) fn url(&self) -> &Url {
        &self.0
    }

    /// The URL as a string.
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// An endpoint a discovery document names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    /// `jwks_uri`: the issuer's signing keys.
    Jwks,
    /// `token_endpoint`.
    Token,
    /// `authorization_endpoint`.
    Authorization,
    /// `device_authorization_endpoint` (RFC 8628).
    DeviceAuthorization,
}

impl EndpointKind {
    /// Its member in the discovery document.
    pub(crate) const fn field(self) -> &'static str {
        match self {
            Self::Jwks => "jwks_uri",
            Self::Token => "token_endpoint",
            Self::Authorization => "authorization_endpoint",
            Self::DeviceAuthorization => "device_authorization_endpoint",
        }
    }

    /// How errors name it.
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Self::Jwks => "jwks endpoint",
            Self::Token => "token endpoint",
            Self::Authorization => "authorization endpoint",
            Self::DeviceAuthorization => "device authorization endpoint",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn only_absolute_http_urls_with_a_host() {
        assert!(HttpUrl::parse("https://kc.example/realms/a").is_ok());
        assert!(HttpUrl::parse("http://127.0.0.1:8080/realms/a").is_ok());
        assert_eq!(HttpUrl::parse("kc/realms/a"), Err(UrlError::Invalid));
        assert_eq!(HttpUrl::parse("file:///etc/passwd"), Err(UrlError::NotHttp));
        assert_eq!(HttpUrl::parse("ftp://kc.example/"), Err(UrlError::NotHttp));
        assert_eq!(HttpUrl::parse("mailto:a@b.example"), Err(UrlError::NotHttp));
    }

    #[test]
    fn an_https_document_never_names_an_http_endpoint() {
        let https = HttpUrl::parse("https://kc.example/realms/a/.well-known/x").unwrap();
        let http = HttpUrl::parse("http://kc:8080/realms/a/.well-known/x").unwrap();
        assert_eq!(
            HttpUrl::named_by("http://kc.example/token", &https),
            Err(UrlError::Downgrade)
        );
        assert!(HttpUrl::named_by("https://other.example/token", &https).is_ok());
        // A document that came over plain http may name either.
        assert!(HttpUrl::named_by("http://kc:8080/token", &http).is_ok());
        assert!(HttpUrl::named_by("https://kc.example/token", &http).is_ok());
        assert_eq!(
            HttpUrl::named_by("javascript:alert(1)", &http),
            Err(UrlError::NotHttp)
        );
    }
}

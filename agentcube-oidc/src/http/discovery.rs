//! The OpenID discovery document (OIDC Discovery 1.0), shared by the key store and the client.

use serde_json::{Map, Value};

use super::{EndpointKind, Http, HttpError, HttpUrl, Request, UrlError, printable};

/// The path appended to an issuer to find its discovery document (OIDC Discovery §4).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// How many characters of a mismatching `issuer` an error keeps.
pub(crate) const MAX_ISSUER_IN_ERROR: usize = 256;

/// `{issuer}/.well-known/openid-configuration`, without a doubled `/`.
pub(crate) fn discovery_url_for(issuer: &str) -> Result<HttpUrl, UrlError> {
    HttpUrl::parse(issuer)?;
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    HttpUrl::parse(&format!("{base}{DISCOVERY_PATH}"))
}

/// What is wrong with an endpoint member of the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndpointProblem {
    Missing,
    NotAString,
    Invalid(UrlError),
}

/// Why a discovery document cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DiscoveryError {
    /// The body is not a JSON object.
    NotAnObject,
    /// `issuer` is missing or not a string.
    NoIssuer,
    /// The document names another issuer (printable ASCII, at most
    /// [`MAX_ISSUER_IN_ERROR`] characters).
    IssuerMismatch { found: String },
    /// An endpoint the caller needs is missing or unusable.
    Endpoint {
        kind: EndpointKind,
        problem: EndpointProblem,
    },
}

macro_rules! endpoint_reason {
    ($field:literal, $problem:expr) => {
        match $problem {
            EndpointProblem::Missing => concat!("the document has no ", $field),
            EndpointProblem::NotAString => concat!($field, " is not a string"),
            EndpointProblem::Invalid(UrlError::Invalid) => concat!($field, " is not a url"),
            EndpointProblem::Invalid(UrlError::NotHttp) => {
                concat!($field, " is not an http(s) url")
            }
            EndpointProblem::Invalid(UrlError::Downgrade) => {
                concat!($field, " is plain http but the document came over https")
            }
        }
    };
}

impl DiscoveryError {
    /// What is wrong, in a few lowercase words (for an issuer mismatch: that it is one).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::NotAnObject => "not a json object",
            Self::NoIssuer => "issuer missing or not a string",
            Self::IssuerMismatch { .. } => "the document names another issuer",
            Self::Endpoint { kind, problem } => match kind {
                EndpointKind::Jwks => endpoint_reason!("jwks_uri", problem),
                EndpointKind::Token => endpoint_reason!("token_endpoint", problem),
                EndpointKind::Authorization => endpoint_reason!("authorization_endpoint", problem),
                EndpointKind::DeviceAuthorization => {
                    endpoint_reason!("device_authorization_endpoint", problem)
                }
            },
        }
    }
}

/// Why fetching a discovery document failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DiscoveryFailure {
    /// The request failed.
    Http(HttpError),
    /// The server answered another status than 200.
    Status(u16),
    /// The document is not usable.
    Document(DiscoveryError),
}

/// A discovery document whose `issuer` equals the configured one.
///
/// Endpoints are checked when asked for ([`Discovery::endpoint`]), each by the downgrade rule
/// of [`HttpUrl::named_by`] against the URL the document came from: a member the caller does
/// not use cannot fail it.
#[derive(Clone, Debug)]
pub(crate) struct Discovery {
    source: HttpUrl,
    document: Map<String, Value>,
}

impl Discovery {
    /// Fetches the document at `url` (one GET, the caller's retry policy) and checks it names
    /// `issuer` exactly.
    pub(crate) async fn fetch(
        http: &Http,
        url: &HttpUrl,
        issuer: &str,
    ) -> Result<Self, DiscoveryFailure> {
        let response = http
            .send(&Request::get(url))
            .await
            .map_err(DiscoveryFailure::Http)?;
        if response.status != reqwest::StatusCode::OK {
            return Err(DiscoveryFailure::Status(response.status.as_u16()));
        }
        Self::parse(&response.body, issuer, url).map_err(DiscoveryFailure::Document)
    }

    /// Parses a document fetched from `source` and checks it names `issuer` exactly.
    pub(crate) fn parse(
        body: &[u8],
        issuer: &str,
        source: &HttpUrl,
    ) -> Result<Self, DiscoveryError> {
        let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(body) else {
            return Err(DiscoveryError::NotAnObject);
        };
        match document.get("issuer") {
            Some(Value::String(found)) if found == issuer => {}
            Some(Value::String(found)) => {
                return Err(DiscoveryError::IssuerMismatch {
                    found: printable(found, MAX_ISSUER_IN_ERROR),
                });
            }
            _ => return Err(DiscoveryError::NoIssuer),
        }
        Ok(Self {
            source: source.clone(),
            document,
        })
    }

    /// The endpoint `kind`, which must be an `http(s)` URL, and `https` when the document came
    /// over `https`.
    pub(crate) fn endpoint(&self, kind: EndpointKind) -> Result<HttpUrl, DiscoveryError> {
        let problem = |problem| DiscoveryError::Endpoint { kind, problem };
        match self.document.get(kind.field()) {
            None | Some(Value::Null) => Err(problem(EndpointProblem::Missing)),
            Some(Value::String(value)) => HttpUrl::named_by(value, &self.source)
                .map_err(|e| problem(EndpointProblem::Invalid(e))),
            Some(_) => Err(problem(EndpointProblem::NotAString)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const ISSUER: &str = "https://kc.example/realms/agentcube";

    fn source() -> HttpUrl {
        discovery_url_for(ISSUER).unwrap()
    }

    fn document(kind: EndpointKind, url: &str) -> Vec<u8> {
        serde_json::json!({"issuer": ISSUER, kind.field(): url})
            .to_string()
            .into_bytes()
    }

    const KINDS: [EndpointKind; 4] = [
        EndpointKind::Jwks,
        EndpointKind::Token,
        EndpointKind::Authorization,
        EndpointKind::DeviceAuthorization,
    ];

    #[test]
    fn an_https_document_naming_an_http_endpoint_is_refused_for_every_kind() {
        for kind in KINDS {
            let body = document(kind, "http://kc.example/realms/agentcube/endpoint");
            let discovery = Discovery::parse(&body, ISSUER, &source()).unwrap();
            let err = discovery.endpoint(kind).unwrap_err();
            assert_eq!(
                err,
                DiscoveryError::Endpoint {
                    kind,
                    problem: EndpointProblem::Invalid(UrlError::Downgrade)
                }
            );
            assert!(err.reason().starts_with(kind.field()), "{}", err.reason());
            assert!(err.reason().contains("plain http"), "{}", err.reason());
            // The same endpoint over https is fine.
            let body = document(kind, "https://kc.example/realms/agentcube/endpoint");
            let discovery = Discovery::parse(&body, ISSUER, &source()).unwrap();
            assert!(discovery.endpoint(kind).unwrap().is_https());
        }
    }

    #[test]
    fn a_plain_http_document_may_name_plain_http_endpoints() {
        let issuer = "http://kc:8080/realms/agentcube";
        let source = discovery_url_for(issuer).unwrap();
        for kind in KINDS {
            let body = serde_json::json!({"issuer": issuer, kind.field(): "http://kc:8080/e"});
            let discovery = Discovery::parse(body.to_string().as_bytes(), issuer, &source).unwrap();
            assert!(!discovery.endpoint(kind).unwrap().is_https());
        }
    }

    #[test]
    fn endpoint_problems_are_named() {
        let body = serde_json::json!({
            "issuer": ISSUER,
            "token_endpoint": 42,
            "jwks_uri": "ftp://kc.example/certs",
            "authorization_endpoint": "not a url",
        });
        let discovery = Discovery::parse(body.to_string().as_bytes(), ISSUER, &source()).unwrap();
        let reason = |kind| discovery.endpoint(kind).unwrap_err().reason();
        assert_eq!(
            reason(EndpointKind::Token),
            "token_endpoint is not a string"
        );
        assert_eq!(reason(EndpointKind::Jwks), "jwks_uri is not an http(s) url");
        assert_eq!(
            reason(EndpointKind::Authorization),
            "authorization_endpoint is not a url"
        );
        assert_eq!(
            reason(EndpointKind::DeviceAuthorization),
            "the document has no device_authorization_endpoint"
        );
    }

    #[test]
    fn the_issuer_must_match_exactly_and_a_mismatch_is_bounded() {
        let parse = |body: Value| {
            Discovery::parse(body.to_string().as_bytes(), ISSUER, &source()).unwrap_err()
        };
        assert_eq!(parse(serde_json::json!({})), DiscoveryError::NoIssuer);
        assert_eq!(
            parse(serde_json::json!({"issuer": 1})),
            DiscoveryError::NoIssuer
        );
        assert_eq!(
            parse(serde_json::json!({"issuer": format!("{ISSUER}/")})),
            DiscoveryError::IssuerMismatch {
                found: format!("{ISSUER}/")
            }
        );
        let long = format!("https://evil.example/\n{}", "a".repeat(1000));
        let DiscoveryError::IssuerMismatch { found } = parse(serde_json::json!({"issuer": long}))
        else {
            unreachable!()
        };
        assert_eq!(found.len(), MAX_ISSUER_IN_ERROR);
        assert!(found.starts_with("https://evil.example/?a"));
        assert_eq!(
            Discovery::parse(b"[1]", ISSUER, &source()).unwrap_err(),
            DiscoveryError::NotAnObject
        );
    }
}

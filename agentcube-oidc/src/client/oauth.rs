//! The OAuth client every flow shares: who it is, where the server is (explicit or discovered
//! endpoints), and the bridge that lets the `oauth2` crate send its requests through this
//! crate's HTTP layer ([`Exchange`]), so that retries, caps, timeouts and the no-redirect rule
//! are ours while the protocol encoding and the error responses are the library's.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::http::header::AUTHORIZATION;
use oauth2::{
    AsyncHttpClient, AuthType, ClientId, EndpointNotSet, HttpRequest, HttpResponse,
    RequestTokenError, StandardErrorResponse, StandardRevocableToken,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::error::ClientError;
use super::token::{AccessToken, ClientSecret, IdToken, RefreshToken, Tokens};
use crate::http::{
    Discovery, DiscoveryFailure, EndpointKind, Http, HttpConfig, HttpUrl, Request,
    discovery_url_for, printable,
};

/// How errors name the discovery document.
pub(crate) const DISCOVERY: &str = "discovery document";
/// Lifetimes above this are capped (keeps `Instant` arithmetic far from overflow).
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

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

/// The `oauth2` client type of every flow: standard error responses, this module's token
/// response; `Token` says whether the token endpoint is set, the other endpoints are set by the
/// flows that use them.
pub(crate) type OAuth2Client<Token = EndpointNotSet> = oauth2::Client<
    BasicErrorResponse,
    TokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    Token,
>;

/// A configured OAuth client: who it is, where the server is, how to talk to it.
#[derive(Debug)]
pub(crate) struct OAuthClient {
    client_id: String,
    secret: Option<ClientSecret>,
    method: ClientAuthMethod,
    issuer: Option<String>,
    token: Option<HttpUrl>,
    authorization: Option<HttpUrl>,
    device_authorization: Option<HttpUrl>,
    /// The issuer's discovery document, fetched once on first use (a failure is tried again
    /// on the next use).
    discovered: OnceCell<Discovery>,
    pub(crate) http: Http,
}

impl OAuthClient {
    fn explicit(&self, kind: EndpointKind) -> Option<&HttpUrl> {
        match kind {
            EndpointKind::Token => self.token.as_ref(),
            EndpointKind::Authorization => self.authorization.as_ref(),
            EndpointKind::DeviceAuthorization => self.device_authorization.as_ref(),
            EndpointKind::Jwks => None,
        }
    }

    /// The URL of `kind`: explicit, else from the issuer's discovery document (`https`
    /// whenever the issuer is).
    pub(crate) async fn endpoint(&self, kind: EndpointKind) -> Result<HttpUrl, ClientError> {
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
            .get_or_try_init(|| async {
                let url = discovery_url_for(issuer)
                    .map_err(|_| ClientError::config("issuer is not an http(s) url"))?;
                Discovery::fetch(&self.http, &url, issuer)
                    .await
                    .map_err(|failure| match failure {
                        DiscoveryFailure::Http(error) => ClientError::from_http(DISCOVERY, error),
                        DiscoveryFailure::Status(status) => ClientError::HttpStatus {
                            endpoint: DISCOVERY,
                            status,
                        },
                        DiscoveryFailure::Document(error) => {
                            ClientError::from_discovery(issuer, &error)
                        }
                    })
            })
            .await?;
        document
            .endpoint(kind)
            .map_err(|error| ClientError::from_discovery(issuer, &error))
    }

    /// The `oauth2` client: id, secret, authentication method; endpoints are set by each flow.
    pub(crate) fn oauth2(&self) -> OAuth2Client {
        let client = OAuth2Client::new(ClientId::new(self.client_id.clone())).set_auth_type(
            match self.method {
                ClientAuthMethod::Basic => AuthType::BasicAuth,
                ClientAuthMethod::Post => AuthType::RequestBody,
            },
        );
        match &self.secret {
            Some(secret) => {
                client.set_client_secret(oauth2::ClientSecret::new(secret.secret().to_owned()))
            }
            None => client,
        }
    }

    /// A bridge for requests to `kind`.
    pub(crate) fn exchange(&self, kind: EndpointKind) -> Exchange<'_> {
        Exchange {
            http: &self.http,
            endpoint: kind.label(),
            last: Mutex::new(Last::default()),
        }
    }

    /// An `oauth2` client with the token endpoint set, and a bridge for its requests.
    pub(crate) async fn token_client(
        &self,
    ) -> Result<(OAuth2Client<oauth2::EndpointSet>, Exchange<'_>), ClientError> {
        let url = self.endpoint(EndpointKind::Token).await?;
        let client = self
            .oauth2()
            .set_token_uri(oauth2::TokenUrl::from_url(url.url().clone()));
        Ok((client, self.exchange(EndpointKind::Token)))
    }
}

/// What the last request of an [`Exchange`] got.
#[derive(Debug, Default)]
struct Last {
    status: Option<u16>,
    error: Option<ClientError>,
    sent_at: Option<Instant>,
}

/// The `oauth2` crate's HTTP client: sends through this crate's [`Http`] (retries, caps,
/// timeouts, no redirects) and remembers the last status and transport error, so that errors
/// the library reports without them (an error status with an empty body, an unparsable answer)
/// still get their precise code.
#[derive(Debug)]
pub(crate) struct Exchange<'a> {
    http: &'a Http,
    endpoint: &'static str,
    last: Mutex<Last>,
}

type ExchangeFuture<'c> =
    Pin<Box<dyn Future<Output = Result<HttpResponse, ClientError>> + Send + 'c>>;

impl<'c> AsyncHttpClient<'c> for Exchange<'_> {
    type Error = ClientError;
    type Future = ExchangeFuture<'c>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

impl Exchange<'_> {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ClientError> {
        let (parts, body) = request.into_parts();
        // The library builds the URI from the endpoint set on its client, which is an HttpUrl.
        let url = HttpUrl::parse(&parts.uri.to_string())
            .map_err(|_| ClientError::config("the request url is not an http(s) url"))?;
        let mut headers = parts.headers;
        if let Some(value) = headers.get_mut(AUTHORIZATION) {
            value.set_sensitive(true);
        }
        let sent_at = Instant::now();
        let result = self
            .http
            .send(&Request::new(parts.method, &url, headers, body))
            .await;
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(response) => {
                *last = Last {
                    status: Some(response.status.as_u16()),
                    error: None,
                    sent_at: Some(sent_at),
                };
                let mut answer = HttpResponse::new(response.body);
                *answer.status_mut() = response.status;
                *answer.headers_mut() = response.headers;
                Ok(answer)
            }
            Err(error) => {
                let error = ClientError::from_http(self.endpoint, error);
                *last = Last {
                    status: None,
                    error: Some(error.clone()),
                    sent_at: Some(sent_at),
                };
                Err(error)
            }
        }
    }

    /// When the last request was sent.
    pub(crate) fn sent_at(&self) -> Option<Instant> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sent_at
    }

    /// The transport error of the last request, if it failed without an answer.
    pub(crate) fn last_transport_error(&self) -> Option<ClientError> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .error
            .clone()
    }

    /// Maps the library's error: the server's OAuth error with the status seen here, an HTTP
    /// status error for an error answer without one, an invalid response for a success answer
    /// the library could not parse (`fields` names the reason for each member).
    pub(crate) fn error<T>(
        &self,
        error: RequestTokenError<ClientError, StandardErrorResponse<T>>,
        fields: &[(&str, &'static str)],
    ) -> ClientError
    where
        T: oauth2::ErrorResponseType + std::fmt::Display + 'static,
    {
        let status = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .status;
        let endpoint = self.endpoint;
        let invalid = |reason| ClientError::InvalidResponse { endpoint, reason };
        match (error, status) {
            (RequestTokenError::Request(error), _) => error,
            (_, None) => ClientError::config("the request could not be built"),
            (RequestTokenError::ServerResponse(response), Some(status)) => {
                let code = response.error().to_string();
                if code.is_empty() {
                    return ClientError::HttpStatus { endpoint, status };
                }
                ClientError::oauth(
                    &code,
                    response.error_description().map(String::as_str),
                    status,
                )
            }
            (_, Some(status)) if status != 200 => ClientError::HttpStatus { endpoint, status },
            (RequestTokenError::Parse(error, _), _) => invalid(parse_reason(
                &error.path().to_string(),
                error.inner(),
                fields,
            )),
            (RequestTokenError::Other(message), _) if message.contains("Content-Type") => {
                invalid("response is not json")
            }
            (RequestTokenError::Other(_), _) => invalid("response is not valid json"),
        }
    }
}

/// Why a success answer did not parse, without any of its values.
fn parse_reason(
    path: &str,
    error: &serde_json::Error,
    fields: &[(&str, &'static str)],
) -> &'static str {
    use serde_json::error::Category;
    if !matches!(error.classify(), Category::Data) {
        return "response is not valid json";
    }
    let message = error.to_string();
    let field = if path == "." {
        if message.starts_with("invalid type") {
            return "response is not a json object";
        }
        // "missing field `name`"
        message.split('`').nth(1).unwrap_or_default().to_owned()
    } else {
        path.to_owned()
    };
    fields
        .iter()
        .find(|(name, _)| *name == field)
        .map_or("a member has an unexpected type", |(_, reason)| reason)
}

/// What each member of a token response must be, for [`Exchange::error`].
pub(crate) const TOKEN_FIELDS: &[(&str, &str)] = &[
    ("access_token", "access_token is not a string"),
    ("token_type", "token_type is not a string"),
    ("expires_in", "expires_in is not a non-negative number"),
    ("refresh_token", "refresh_token is not a string"),
    ("id_token", "id_token is not a string"),
    ("scope", "scope is not a string"),
];

/// A token response (RFC 6749 §5.1) as the library parses it, lenient where servers differ and
/// strict where it matters: members absent here are checked after the library returns
/// ([`TokenResponse::into_tokens`]), so the errors can say exactly what is wrong.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct TokenResponse {
    #[serde(default = "no_access_token")]
    access_token: oauth2::AccessToken,
    #[serde(default = "no_token_type", deserialize_with = "token_type")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<oauth2::RefreshToken>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    /// Keycloak's refresh token lifetime; informative, so an unusable value is ignored.
    #[serde(default, deserialize_with = "lenient_seconds")]
    refresh_expires_in: Option<u64>,
    /// An OAuth error sent with a success status.
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    error_description: Option<Value>,
}

fn no_access_token() -> oauth2::AccessToken {
    oauth2::AccessToken::new(String::new())
}

fn no_token_type() -> BasicTokenType {
    BasicTokenType::Extension(String::new())
}

/// `Bearer` in any case is [`BasicTokenType::Bearer`]; anything else keeps its spelling.
fn token_type<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BasicTokenType, D::Error> {
    let value = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    Ok(if value.trim().eq_ignore_ascii_case("bearer") {
        BasicTokenType::Bearer
    } else {
        BasicTokenType::Extension(value.trim().to_owned())
    })
}

/// A lifetime in seconds: a non-negative JSON number or a string of digits; `null` is absent.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    if value.is_null() {
        return Ok(None);
    }
    parse_seconds(&value)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom("not a non-negative number"))
}

fn lenient_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(parse_seconds(&Value::deserialize(deserializer)?))
}

fn parse_seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

impl oauth2::TokenResponse for TokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &oauth2::AccessToken {
        &self.access_token
    }

    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }

    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }

    fn refresh_token(&self) -> Option<&oauth2::RefreshToken> {
        self.refresh_token.as_ref()
    }

    fn scopes(&self) -> Option<&Vec<oauth2::Scope>> {
        None
    }
}

impl TokenResponse {
    /// The checks the library leaves to its caller: an OAuth error in a success answer, a
    /// non-empty `access_token` of visible ASCII, a `token_type` of `Bearer`.
    pub(crate) fn into_tokens(self, sent_at: Instant) -> Result<Tokens, ClientError> {
        let endpoint = EndpointKind::Token.label();
        if let Some(Value::String(error)) = &self.error
            && !error.is_empty()
        {
            let description = match &self.error_description {
                Some(Value::String(text)) => Some(text.as_str()),
                _ => None,
            };
            return Err(ClientError::oauth(error, description, 200));
        }
        let access_token = self.access_token.secret().trim();
        if access_token.is_empty() {
            return Err(ClientError::InvalidResponse {
                endpoint,
                reason: "missing or empty access_token",
            });
        }
        let access_token = AccessToken::checked(access_token)?;
        match &self.token_type {
            BasicTokenType::Bearer => {}
            BasicTokenType::Extension(kind) if kind.is_empty() => {
                return Err(ClientError::InvalidResponse {
                    endpoint,
                    reason: "missing token_type",
                });
            }
            other => {
                return Err(ClientError::UnsupportedTokenType {
                    found: printable(other.as_ref(), 32),
                });
            }
        }
        let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let seconds = |value: Option<u64>| value.map(|s| Duration::from_secs(s).min(MAX_LIFETIME));
        Ok(Tokens {
            access_token,
            refresh_token: non_empty(self.refresh_token.map(|t| t.into_secret()))
                .map(RefreshToken::new),
            id_token: non_empty(self.id_token).map(IdToken::new),
            expires_in: seconds(self.expires_in),
            refresh_expires_in: seconds(self.refresh_expires_in),
            scope: non_empty(self.scope),
            received_at: sent_at,
        })
    }
}

/// The scope parameter: one `oauth2` scope holding the space-separated list as given.
pub(crate) fn scope(value: &str) -> Option<oauth2::Scope> {
    let value = value.trim();
    (!value.is_empty()).then(|| oauth2::Scope::new(value.to_owned()))
}

/// Owned extra parameters for an `oauth2` request.
pub(crate) fn params(
    pairs: &[(String, String)],
) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    pairs
        .iter()
        .map(|(name, value)| (Cow::Borrowed(name.as_str()), Cow::Borrowed(value.as_str())))
}

/// Builder settings common to every flow.
#[derive(Debug, Default)]
pub(crate) struct CommonSettings {
    pub(crate) client_id: String,
    pub(crate) secret: Option<ClientSecret>,
    pub(crate) method: ClientAuthMethod,
    pub(crate) issuer: Option<String>,
    pub(crate) token_endpoint: Option<String>,
    pub(crate) authorization_endpoint: Option<String>,
    pub(crate) device_authorization_endpoint: Option<String>,
    pub(crate) http: HttpConfig,
}

impl CommonSettings {
    pub(crate) fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            ..Self::default()
        }
    }

    /// Validates the settings and builds the client; `needs` are the endpoints the flow uses,
    /// each of which must be explicit or discoverable.
    pub(crate) fn build(self, needs: &[EndpointKind]) -> Result<Arc<OAuthClient>, ClientError> {
        if self.client_id.trim().is_empty() {
            return Err(ClientError::config("client id must not be empty"));
        }
        if self
            .secret
            .as_ref()
            .is_some_and(|secret| secret.secret().is_empty())
        {
            return Err(ClientError::config("client secret must not be empty"));
        }
        let url = |value: Option<String>, kind: EndpointKind| {
            value
                .map(|value| {
                    HttpUrl::parse(&value).map_err(|_| {
                        ClientError::config(format!("{} is not an http(s) url", kind.label()))
                    })
                })
                .transpose()
        };
        if let Some(issuer) = &self.issuer {
            discovery_url_for(issuer)
                .map_err(|_| ClientError::config("issuer is not an http(s) url"))?;
        }
        let client = OAuthClient {
            token: url(self.token_endpoint, EndpointKind::Token)?,
            authorization: url(self.authorization_endpoint, EndpointKind::Authorization)?,
            device_authorization: url(
                self.device_authorization_endpoint,
                EndpointKind::DeviceAuthorization,
            )?,
            client_id: self.client_id,
            secret: self.secret,
            method: self.method,
            issuer: self.issuer,
            discovered: OnceCell::new(),
            http: self
                .http
                .build()
                .map_err(|_| ClientError::config("the http client could not be built"))?,
        };
        if client.issuer.is_none() {
            for kind in needs {
                if client.explicit(*kind).is_none() {
                    return Err(ClientError::config(format!(
                        "set an issuer (for discovery) or the {} explicitly",
                        kind.label()
                    )));
                }
            }
        }
        Ok(Arc::new(client))
    }
}

/// Adds the builder methods every flow shares to a builder with a `common: CommonSettings` field.
macro_rules! common_builder_methods {
    () => {
        /// The issuer URL, exactly as it appears in tokens' `iss` (for Keycloak
        /// `{base}/realms/{realm}`). Endpoints not set explicitly are discovered from
        /// `{issuer}/.well-known/openid-configuration` on first use; the document's `issuer` must
        /// equal this value, and an `https` issuer's document may name only `https` endpoints.
        pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
            self.common.issuer = Some(issuer.into());
            self
        }

        /// The token endpoint, instead of discovering it.
        pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
            self.common.token_endpoint = Some(url.into());
            self
        }

        /// How the client secret is sent
        /// ([`ClientAuthMethod::Basic`](crate::client::ClientAuthMethod::Basic) by default).
        /// Ignored without a secret.
        pub fn auth_method(mut self, method: $crate::client::ClientAuthMethod) -> Self {
            self.common.method = method;
            self
        }

        /// HTTP settings: client, timeouts, retries ([`HttpConfig`](crate::client::HttpConfig)).
        pub fn http(mut self, http: $crate::client::HttpConfig) -> Self {
            self.common.http = http;
            self
        }
    };
}

pub(crate) use common_builder_methods;

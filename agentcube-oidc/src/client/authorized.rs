//! [`AuthorizedClient`]: a `reqwest` client that sends a bearer token from a [`TokenSource`] on
//! every request.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode};

use super::error::ClientError;
use super::source::{DynTokenSource, TokenSource};
use super::token::AccessToken;
use crate::http::HttpError;

const REQUEST: &str = "server";

/// A `reqwest` client that attaches `Authorization: Bearer …` from a [`TokenSource`] to every
/// request, asking the source for a token each time (so refreshed tokens are used), and that
/// retries once with a new token when the server answers 401.
///
/// The retry happens only when the request body can be cloned (no streaming body) and the
/// source hands out a different token after [`TokenSource::invalidate_token`]; otherwise the
/// 401 response is returned as is. Any `Authorization` header set on the request is replaced.
///
/// ```no_run
/// # async fn demo() -> Result<(), agentcube_oidc::client::ClientError> {
/// use agentcube_oidc::client::{AuthorizedClient, StaticToken};
///
/// let client = AuthorizedClient::new(StaticToken::new("eyJ...")?);
/// let url = "https://router.example/v1/namespaces/default/agent-runtimes/a/invocations/";
/// let response = client.send(client.get(url)).await?;
/// println!("{}", response.status());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthorizedClient {
    client: reqwest::Client,
    source: Arc<dyn DynTokenSource>,
}

impl fmt::Debug for AuthorizedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizedClient")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl AuthorizedClient {
    /// Uses a default `reqwest::Client`.
    ///
    /// # Panics
    ///
    /// Like `reqwest::Client::new`, if the TLS backend cannot be initialised; use
    /// [`with_client`](Self::with_client) to handle that case.
    pub fn new(source: impl TokenSource + 'static) -> Self {
        Self::with_client(reqwest::Client::new(), source)
    }

    /// Uses `client` (its timeouts, proxy, TLS settings).
    pub fn with_client(client: reqwest::Client, source: impl TokenSource + 'static) -> Self {
        Self {
            client,
            source: Arc::new(source),
        }
    }

    /// Uses a shared, type-erased source.
    pub fn from_shared(client: reqwest::Client, source: Arc<dyn DynTokenSource>) -> Self {
        Self { client, source }
    }

    /// The underlying `reqwest` client (requests sent through it directly carry no token).
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }

    /// A request builder for `method` and `url`; send it with [`send`](Self::send).
    pub fn request(&self, method: Method, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// A `GET` builder; send it with [`send`](Self::send).
    pub fn get(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.get(url)
    }

    /// A `POST` builder; send it with [`send`](Self::send).
    pub fn post(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.post(url)
    }

    /// A `PUT` builder; send it with [`send`](Self::send).
    pub fn put(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.put(url)
    }

    /// A `DELETE` builder; send it with [`send`](Self::send).
    pub fn delete(&self, url: impl reqwest::IntoUrl) -> RequestBuilder {
        self.client.delete(url)
    }

    /// Builds and sends `request` with a bearer token (see the type's docs).
    ///
    /// # Errors
    ///
    /// The token source's errors; [`ClientError::Config`] if the builder fails (e.g. an invalid
    /// header); [`ClientError::Network`] or [`ClientError::Timeout`] if the request fails.
    /// An HTTP error status is not an error: inspect the response.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let request = request
            .build()
            .map_err(|_| ClientError::config("the request could not be built"))?;
        self.execute(request).await
    }

    /// Sends a built `request` with a bearer token (see the type's docs).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn execute(&self, mut request: Request) -> Result<Response, ClientError> {
        let token = self.source.token().await?;
        let retry = request.try_clone();
        set_bearer(&mut request, &token)?;
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| ClientError::from_http(REQUEST, HttpError::from_reqwest(&e)))?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut retry) = retry else {
            return Ok(response);
        };
        self.source.invalidate_token(&token);
        let fresh = self.source.token().await?;
        if fresh == token {
            return Ok(response);
        }
        tracing::debug!("request rejected with 401, retrying once with a new token");
        set_bearer(&mut retry, &fresh)?;
        self.client
            .execute(retry)
            .await
            .map_err(|e| ClientError::from_http(REQUEST, HttpError::from_reqwest(&e)))
    }
}

fn set_bearer(request: &mut Request, token: &AccessToken) -> Result<(), ClientError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
        .map_err(|_| ClientError::InvalidToken)?;
    value.set_sensitive(true);
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

//! The client credentials grant (RFC 6749 §4.4) with a cache: a service account's token,
//! fetched once and renewed before it expires.

use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use super::cache::{Cache, Fetched, Grant, cached_token_source};
use super::error::ClientError;
use super::oauth::{
    CommonSettings, OAuthClient, TOKEN_FIELDS, common_builder_methods, params, scope,
};
use super::token::ClientSecret;
use crate::http::EndpointKind;

/// Access tokens for a confidential client (a service, a script, a CI job) from the client
/// credentials grant, cached and refreshed ahead of expiry.
///
/// - The token is reused until `max(expires_in − 30 s, expires_in / 2)` after its request was
///   sent (`expires_in` 3600 s when the server sends none). After that, callers still get the
///   cached token while one background request fetches the next; only once the token has expired
///   do callers wait.
/// - Concurrent callers share one request (single-flight), also on the first call.
/// - [`invalidate`](super::TokenSource::invalidate) forces a new token on the next call.
/// - Network errors, timeouts and 5xx answers are retried with backoff; 4xx answers (a wrong
///   secret: `invalid_client`) are returned at once as [`ClientError::OAuth`].
///
/// Cloning is cheap and clones share the cache. Needs a Tokio runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use agentcube_oidc::client::{ClientCredentials, TokenSource};
///
/// let secret = std::env::var("AGENTCUBE_CLIENT_SECRET")?;
/// let source = ClientCredentials::builder("agentcube-app", secret)
///     .issuer("https://keycloak.example/realms/agentcube")
///     .build()?;
/// let token = source.token().await?; // cached; call it before every request
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    cache: Arc<Cache<ClientCredentialsGrant>>,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client", &self.cache.grant.client)
            .field("scope", &self.cache.grant.scope)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// A builder for the client `client_id` with its secret.
    pub fn builder(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> ClientCredentialsBuilder {
        let mut common = CommonSettings::new(client_id);
        common.secret = Some(ClientSecret::new(client_secret));
        ClientCredentialsBuilder {
            common,
            scope: None,
            audiences: Vec::new(),
            resources: Vec::new(),
            params: Vec::new(),
        }
    }
}

cached_token_source!(ClientCredentials);

/// Builds a [`ClientCredentials`]. Set an issuer (discovery) or a token endpoint.
#[derive(Debug)]
#[must_use]
pub struct ClientCredentialsBuilder {
    common: CommonSettings,
    scope: Option<String>,
    audiences: Vec<String>,
    resources: Vec<String>,
    params: Vec<(String, String)>,
}

impl ClientCredentialsBuilder {
    common_builder_methods!();

    /// The `scope` parameter (space-separated scopes). None by default.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Adds an `audience` parameter (understood by some servers, e.g. Auth0; Keycloak sets the
    /// audience through mappers instead).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Adds a `resource` parameter (RFC 8707 resource indicator).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// Adds any other form parameter to the token request.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Checks the settings. No request is sent until the first
    /// [`TokenSource::token`](super::TokenSource::token) call.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for an empty client id or secret, an invalid URL, or neither an
    /// issuer nor a token endpoint.
    pub fn build(self) -> Result<ClientCredentials, ClientError> {
        let client = self.common.build(&[EndpointKind::Token])?;
        let grant = ClientCredentialsGrant {
            client,
            scope: self.scope.filter(|s| !s.trim().is_empty()),
            audiences: self.audiences,
            resources: self.resources,
            params: self.params,
        };
        Ok(ClientCredentials {
            cache: Cache::new(grant, None),
        })
    }
}

struct ClientCredentialsGrant {
    client: Arc<OAuthClient>,
    scope: Option<String>,
    audiences: Vec<String>,
    resources: Vec<String>,
    params: Vec<(String, String)>,
}

impl Grant for ClientCredentialsGrant {
    async fn fetch(&self) -> Result<Fetched, ClientError> {
        let (client, exchange) = self.client.token_client().await?;
        let mut request = client.exchange_client_credentials();
        if let Some(scope) = self.scope.as_deref().and_then(scope) {
            request = request.add_scope(scope);
        }
        for audience in &self.audiences {
            request = request.add_extra_param("audience", audience.as_str());
        }
        for resource in &self.resources {
            request = request.add_extra_param("resource", resource.as_str());
        }
        for (name, value) in params(&self.params) {
            request = request.add_extra_param(name, value);
        }
        let sent_at = Instant::now();
        let tokens = request
            .request_async(&exchange)
            .await
            .map_err(|e| exchange.error(e, TOKEN_FIELDS))?
            .into_tokens(sent_at)?;
        tracing::debug!(expires_in = ?tokens.expires_in, "fetched a client credentials token");
        Ok(Fetched::from_tokens(&tokens))
    }
}

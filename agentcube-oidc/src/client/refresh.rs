//! A [`TokenSource`] over a refresh token (RFC 6749 §6): what a CLI uses after a login.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use super::cache::{Cache, Fetched, Grant, cached_token_source};
use super::error::ClientError;
use super::oauth::{CommonSettings, OAuthClient, TOKEN_FIELDS, common_builder_methods, scope};
use super::token::{ClientSecret, RefreshToken, Tokens};
use crate::http::EndpointKind;

/// Access tokens renewed with a refresh token, e.g. after an
/// [authorization code](super::AuthorizationCodeFlow) or [device](super::DeviceFlow) login.
///
/// The access token is cached and refreshed exactly like
/// [`ClientCredentials`](super::ClientCredentials) does (single-flight, ahead of expiry, in the
/// background). When the server rotates the refresh token, the new one is kept; read it with
/// [`refresh_token`](Self::refresh_token) to persist the session. When the refresh token itself
/// has expired or was revoked, `token()` fails with [`ClientError::OAuth`] `invalid_grant`: the
/// user must log in again.
///
/// Cloning is cheap and clones share the cache. Needs a Tokio runtime.
#[derive(Clone)]
pub struct RefreshTokenSource {
    cache: Arc<Cache<RefreshGrant>>,
}

impl fmt::Debug for RefreshTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenSource")
            .field("client", &self.cache.grant.client)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl RefreshTokenSource {
    /// A builder for a refresh token persisted earlier (the access token is fetched on first use).
    pub fn builder(
        client_id: impl Into<String>,
        refresh_token: RefreshToken,
    ) -> RefreshTokenSourceBuilder {
        RefreshTokenSourceBuilder {
            common: CommonSettings::new(client_id),
            refresh_token,
            scope: None,
        }
    }

    /// Starts from the tokens of a login, reusing its access token until it is due for refresh.
    pub(crate) fn from_tokens(
        client: Arc<OAuthClient>,
        tokens: &Tokens,
    ) -> Result<Self, ClientError> {
        let refresh_token = tokens
            .refresh_token
            .clone()
            .ok_or(ClientError::NoRefreshToken)?;
        let grant = RefreshGrant {
            client,
            refresh_token: Mutex::new(refresh_token),
            scope: None,
        };
        Ok(Self {
            cache: Cache::new(grant, Some(Fetched::from_tokens(tokens))),
        })
    }

    /// The current refresh token (the latest one, if the server rotated it).
    pub fn refresh_token(&self) -> RefreshToken {
        self.cache.grant.current()
    }
}

cached_token_source!(RefreshTokenSource);

/// Builds a [`RefreshTokenSource`] from a stored refresh token.
#[derive(Debug)]
#[must_use]
pub struct RefreshTokenSourceBuilder {
    common: CommonSettings,
    refresh_token: RefreshToken,
    scope: Option<String>,
}

impl RefreshTokenSourceBuilder {
    common_builder_methods!();

    /// The client secret, for a confidential client (public clients such as `agentcube-cli` have
    /// none).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.common.secret = Some(ClientSecret::new(secret));
        self
    }

    /// A `scope` parameter for the refresh requests (at most the originally granted scope).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Checks the settings. No request is sent until the first
    /// [`TokenSource::token`](super::TokenSource::token) call.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for an empty client id, an invalid URL, or neither an issuer nor a
    /// token endpoint; [`ClientError::NoRefreshToken`] for an empty refresh token.
    pub fn build(self) -> Result<RefreshTokenSource, ClientError> {
        if self.refresh_token.secret().trim().is_empty() {
            return Err(ClientError::NoRefreshToken);
        }
        let client = self.common.build(&[EndpointKind::Token])?;
        let grant = RefreshGrant {
            client,
            refresh_token: Mutex::new(self.refresh_token),
            scope: self.scope,
        };
        Ok(RefreshTokenSource {
            cache: Cache::new(grant, None),
        })
    }
}

struct RefreshGrant {
    client: Arc<OAuthClient>,
    refresh_token: Mutex<RefreshToken>,
    scope: Option<String>,
}

impl RefreshGrant {
    fn current(&self) -> RefreshToken {
        self.refresh_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Grant for RefreshGrant {
    async fn fetch(&self) -> Result<Fetched, ClientError> {
        let refresh_token = oauth2::RefreshToken::new(self.current().secret().to_owned());
        let (client, exchange) = self.client.token_client().await?;
        let mut request = client.exchange_refresh_token(&refresh_token);
        if let Some(scope) = self.scope.as_deref().and_then(scope) {
            request = request.add_scope(scope);
        }
        let sent_at = Instant::now();
        let tokens = request
            .request_async(&exchange)
            .await
            .map_err(|e| exchange.error(e, TOKEN_FIELDS))?
            .into_tokens(sent_at)?;
        let fetched = Fetched::from_tokens(&tokens);
        if let Some(rotated) = tokens.refresh_token {
            *self
                .refresh_token
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = rotated;
        }
        tracing::debug!(expires_in = ?fetched.expires_in, "refreshed an access token");
        Ok(fetched)
    }
}

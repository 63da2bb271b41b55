//! Authorization code + PKCE (RFC 6749 §4.1, RFC 7636 S256) for public clients such as
//! `agentcube-cli`; the redirect is received by a [`LoopbackListener`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::UnverifiedJws;
use oauth2::{CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl};
use tokio::time::Instant;
use url::Url;

use super::error::ClientError;
use super::loopback::LoopbackListener;
use super::oauth::{CommonSettings, OAuthClient, TOKEN_FIELDS, common_builder_methods, scope};
use super::refresh::RefreshTokenSource;
use super::token::{AuthorizationCode, ClientSecret, Tokens};
use crate::http::EndpointKind;

/// Random bytes in `state` and `nonce` (base64url: 43 characters).
const RANDOM_BYTES: u32 = 32;

/// The authorization code flow with PKCE (S256), state and nonce.
///
/// ```no_run
/// # async fn demo() -> Result<(), agentcube_oidc::client::ClientError> {
/// use std::time::Duration;
/// use agentcube_oidc::client::{AuthorizationCodeFlow, TokenSource};
///
/// let flow = AuthorizationCodeFlow::builder("agentcube-cli")
///     .issuer("https://keycloak.example/realms/agentcube")
///     .build()?;
/// let tokens = flow
///     .login_on_loopback(Duration::from_secs(300), |url| eprintln!("open {url}"))
///     .await?;
/// let source = flow.token_source(&tokens)?; // refreshes with the refresh token
/// let token = source.token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AuthorizationCodeFlow {
    client: Arc<OAuthClient>,
    scope: String,
    params: Vec<(String, String)>,
}

impl AuthorizationCodeFlow {
    /// A builder for the client `client_id` (public unless a secret is set).
    pub fn builder(client_id: impl Into<String>) -> AuthorizationCodeFlowBuilder {
        AuthorizationCodeFlowBuilder {
            common: CommonSettings::new(client_id),
            scope: "openid".to_owned(),
            params: Vec::new(),
        }
    }

    /// Builds the authorization URL for `redirect_uri`, with a fresh `state`, `nonce` (32 random
    /// bytes each) and PKCE verifier. Send the user's browser to [`AuthorizationRequest::url`].
    ///
    /// # Errors
    ///
    /// Discovery errors when the authorization endpoint is discovered;
    /// [`ClientError::Config`] for a `redirect_uri` that is not a URL.
    pub async fn authorization_request(
        &self,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ClientError> {
        let endpoint = self.client.endpoint(EndpointKind::Authorization).await?;
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| ClientError::config("the redirect uri is not a url"))?;
        let client = self
            .client
            .oauth2()
            .set_auth_uri(oauth2::AuthUrl::from_url(endpoint.url().clone()));
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let nonce = CsrfToken::new_random_len(RANDOM_BYTES);
        let mut request = client
            .authorize_url(|| CsrfToken::new_random_len(RANDOM_BYTES))
            .set_redirect_uri(Cow::Owned(redirect))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", nonce.secret().as_str());
        if let Some(scope) = scope(&self.scope) {
            request = request.add_scope(scope);
        }
        for (name, value) in &self.params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        let (url, state) = request.url();
        Ok(AuthorizationRequest {
            url,
            redirect_uri: redirect_uri.to_owned(),
            state: state.into_secret(),
            nonce: nonce.into_secret(),
            verifier,
        })
    }

    /// Exchanges the code for tokens, sending the PKCE verifier. When an ID token comes back, its
    /// `nonce` must equal the request's (it came straight from the token endpoint, so its
    /// payload is trusted for this check, OIDC Core §3.1.3.7; the signature is not verified —
    /// verify the access token where it is used).
    ///
    /// # Errors
    ///
    /// [`ClientError::OAuth`] (e.g. `invalid_grant` for a used or expired code), the token
    /// response errors, [`ClientError::NonceMismatch`].
    pub async fn exchange_code(
        &self,
        request: &AuthorizationRequest,
        code: &AuthorizationCode,
    ) -> Result<Tokens, ClientError> {
        let redirect = RedirectUrl::new(request.redirect_uri.clone())
            .map_err(|_| ClientError::config("the redirect uri is not a url"))?;
        let (client, exchange) = self.client.token_client().await?;
        let sent_at = Instant::now();
        let tokens = client
            .exchange_code(oauth2::AuthorizationCode::new(code.secret().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .set_pkce_verifier(PkceCodeVerifier::new(request.verifier.secret().clone()))
            .request_async(&exchange)
            .await
            .map_err(|e| exchange.error(e, TOKEN_FIELDS))?
            .into_tokens(sent_at)?;
        if let Some(id_token) = &tokens.id_token
            && !nonce_matches(id_token.secret(), &request.nonce)
        {
            return Err(ClientError::NonceMismatch);
        }
        Ok(tokens)
    }

    /// The whole login on this machine: binds a [`LoopbackListener`], builds the authorization
    /// request for it, calls `open` with the URL (print it, or start a browser), waits up to
    /// `wait` for the redirect, and exchanges the code.
    ///
    /// # Errors
    ///
    /// Any error of the steps: [`ClientError::Io`], [`ClientError::CallbackTimeout`],
    /// [`ClientError::StateMismatch`], [`ClientError::AccessDenied`], token endpoint errors.
    pub async fn login_on_loopback(
        &self,
        wait: Duration,
        open: impl FnOnce(&Url),
    ) -> Result<Tokens, ClientError> {
        let listener = LoopbackListener::bind().await?;
        let request = self.authorization_request(&listener.redirect_uri()).await?;
        open(request.url());
        let code = listener.wait_for_code(&request, wait).await?;
        self.exchange_code(&request, &code).await
    }

    /// A [`TokenSource`](super::TokenSource) that serves the login's access token and then
    /// renews it with its refresh token.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoRefreshToken`] if the tokens have no refresh token.
    pub fn token_source(&self, tokens: &Tokens) -> Result<RefreshTokenSource, ClientError> {
        RefreshTokenSource::from_tokens(Arc::clone(&self.client), tokens)
    }
}

/// Whether the ID token's `nonce` is `expected`. The token is read without verifying its
/// signature: it came straight from the token endpoint over TLS (OIDC Core §3.1.3.7). Its
/// size is already bounded by the response cap, so no further limit applies here. A token
/// that is not a compact JWS with a strict JSON object payload, or whose `nonce` is absent or
/// not a string, does not match.
fn nonce_matches(id_token: &str, expected: &str) -> bool {
    UnverifiedJws::peek_claims(id_token, usize::MAX).is_ok_and(|claims| {
        claims
            .string("nonce")
            .is_ok_and(|nonce| nonce == Some(expected))
    })
}

/// Builds an [`AuthorizationCodeFlow`]. Set an issuer (discovery) or both endpoints.
#[derive(Debug)]
#[must_use]
pub struct AuthorizationCodeFlowBuilder {
    common: CommonSettings,
    scope: String,
    params: Vec<(String, String)>,
}

impl AuthorizationCodeFlowBuilder {
    common_builder_methods!();

    /// The authorization endpoint, instead of discovering it.
    pub fn authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.common.authorization_endpoint = Some(url.into());
        self
    }

    /// The client secret, for a confidential client (`agentcube-cli` is public and has none).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.common.secret = Some(ClientSecret::new(secret));
        self
    }

    /// The requested scope (default `openid`; add `offline_access` for an offline token).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Adds a parameter to the authorization URL (e.g. `prompt`, `login_hint`, `kc_idp_hint`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for an empty client id, an invalid URL, or missing endpoints
    /// without an issuer.
    pub fn build(self) -> Result<AuthorizationCodeFlow, ClientError> {
        let client = self
            .common
            .build(&[EndpointKind::Authorization, EndpointKind::Token])?;
        Ok(AuthorizationCodeFlow {
            client,
            scope: self.scope,
            params: self.params,
        })
    }
}

/// One authorization request: its URL and the values needed to accept its callback. The PKCE
/// verifier stays here, with the request it belongs to, until the code is exchanged.
///
/// `Debug` does not show the PKCE verifier.
pub struct AuthorizationRequest {
    url: Url,
    redirect_uri: String,
    state: String,
    nonce: String,
    verifier: PkceCodeVerifier,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("url", &self.url.as_str())
            .field("redirect_uri", &self.redirect_uri)
            .field("state", &self.state)
            .field("nonce", &self.nonce)
            .field("verifier", &format_args!("***"))
            .finish()
    }
}

impl AuthorizationRequest {
    /// The URL to open in the user's browser.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The redirect URI sent in the request (and again in the code exchange).
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The `state` the callback must carry.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The `nonce` the ID token must carry.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
}

//! The device authorization grant (RFC 8628): for CLIs on machines without a browser.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::error::ClientError;
use super::http::{
    DEVICE_ENDPOINT, EndpointKind, optional_seconds, optional_string, success_object,
};
use super::oauth::{CommonSettings, OAuthClient, common_builder_methods};
use super::rand::PkceVerifier;
use super::refresh::RefreshTokenSource;
use super::token::{ClientSecret, DeviceCode, Tokens};

/// The polling interval when the server names none (RFC 8628 §3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The device code lifetime assumed when the server names none.
const DEFAULT_DEVICE_EXPIRES_IN: Duration = Duration::from_secs(600);
/// `slow_down` adds this to the interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The device authorization grant, with PKCE (S256) as Keycloak requires it for clients whose
/// PKCE policy is S256.
///
/// ```no_run
/// # async fn demo() -> Result<(), agentcube_oidc::client::ClientError> {
/// use agentcube_oidc::client::{DeviceFlow, TokenSource};
///
/// let flow = DeviceFlow::builder("agentcube-cli")
///     .issuer("https://keycloak.example/realms/agentcube")
///     .build()?;
/// let authorization = flow.start().await?;
/// eprintln!(
///     "open {} and enter {}",
///     authorization.verification_uri(),
///     authorization.user_code()
/// );
/// let tokens = flow.poll(&authorization).await?; // returns once the user approved
/// let source = flow.token_source(&tokens)?;
/// let token = source.token().await?;
/// # let _ = token; Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct DeviceFlow {
    client: Arc<OAuthClient>,
    scope: String,
}

impl DeviceFlow {
    /// A builder for the client `client_id` (public unless a secret is set).
    pub fn builder(client_id: impl Into<String>) -> DeviceFlowBuilder {
        DeviceFlowBuilder {
            common: CommonSettings::new(client_id),
            scope: "openid".to_owned(),
        }
    }

    /// Starts a device authorization: the user code and the URI to show the user.
    ///
    /// # Errors
    ///
    /// Discovery and transport errors, [`ClientError::OAuth`] (e.g. `unauthorized_client` when
    /// the grant is not enabled for the client), [`ClientError::InvalidResponse`].
    pub async fn start(&self) -> Result<DeviceAuthorization, ClientError> {
        // PKCE is not part of RFC 8628, but Keycloak applies a client's PKCE policy to the device
        // grant too (`agentcube-cli` requires S256); servers that do not know the parameters
        // ignore them (RFC 6749 §3.1).
        let verifier = PkceVerifier::new()?;
        let challenge = verifier.s256_challenge();
        let (response, started) = self
            .client
            .post(
                EndpointKind::DeviceAuthorization,
                &[
                    ("scope", &self.scope),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .await?;
        let endpoint = DEVICE_ENDPOINT;
        let map = success_object(endpoint, &response)?;
        let required = |field: &str, reason: &'static str| {
            optional_string(endpoint, &map, field, reason)?
                .map(str::to_owned)
                .ok_or(ClientError::InvalidResponse { endpoint, reason })
        };
        let device_code = required("device_code", "missing or invalid device_code")?;
        let user_code = required("user_code", "missing or invalid user_code")?;
        // `verification_url` is a pre-RFC spelling some servers still send.
        let verification_uri = match optional_string(
            endpoint,
            &map,
            "verification_uri",
            "verification_uri is not a string",
        )? {
            Some(uri) => uri.to_owned(),
            None => required("verification_url", "missing or invalid verification_uri")?,
        };
        let verification_uri_complete = optional_string(
            endpoint,
            &map,
            "verification_uri_complete",
            "verification_uri_complete is not a string",
        )?
        .map(str::to_owned);
        let expires_in = optional_seconds(
            endpoint,
            &map,
            "expires_in",
            "expires_in is not a non-negative number",
        )?
        .unwrap_or(DEFAULT_DEVICE_EXPIRES_IN);
        let interval = optional_seconds(
            endpoint,
            &map,
            "interval",
            "interval is not a non-negative number",
        )?
        .unwrap_or(DEFAULT_INTERVAL)
        .max(Duration::from_secs(1));
        Ok(DeviceAuthorization {
            device_code: DeviceCode::new(device_code),
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_in,
            interval,
            started,
            verifier,
        })
    }

    /// Polls the token endpoint until the user approves or denies, or the code expires.
    ///
    /// Sends the PKCE verifier of [`start`](Self::start) with each poll. Waits the server's
    /// `interval` before each poll; `authorization_pending` keeps polling,
    /// `slow_down` adds 5 s to the interval for all later polls (RFC 8628 §3.5). Uses Tokio's
    /// clock. Network errors are retried by the transport; when its retries are exhausted the
    /// error is returned.
    ///
    /// # Errors
    ///
    /// [`ClientError::AccessDenied`] (`access_denied`), [`ClientError::ExpiredToken`]
    /// (`expired_token`, or `expires_in` passed), other [`ClientError::OAuth`] errors, token
    /// response errors.
    pub async fn poll(&self, authorization: &DeviceAuthorization) -> Result<Tokens, ClientError> {
        let deadline = authorization.started + authorization.expires_in;
        let mut interval = authorization.interval;
        loop {
            tokio::time::sleep(interval).await;
            if Instant::now() >= deadline {
                return Err(ClientError::ExpiredToken);
            }
            let result = self
                .client
                .request_tokens(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", authorization.device_code.secret()),
                    ("code_verifier", authorization.verifier.secret()),
                ])
                .await;
            match result {
                Ok(tokens) => return Ok(tokens),
                Err(ClientError::OAuth {
                    error,
                    description,
                    status,
                }) => match error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => {
                        interval += SLOW_DOWN_STEP;
                        tracing::debug!(?interval, "device flow: slow_down, polling less often");
                    }
                    "access_denied" => return Err(ClientError::AccessDenied { description }),
                    "expired_token" => return Err(ClientError::ExpiredToken),
                    _ => {
                        return Err(ClientError::OAuth {
                            error,
                            description,
                            status,
                        });
                    }
                },
                Err(other) => return Err(other),
            }
        }
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

/// Builds a [`DeviceFlow`]. Set an issuer (discovery) or both endpoints.
#[derive(Debug)]
#[must_use]
pub struct DeviceFlowBuilder {
    common: CommonSettings,
    scope: String,
}

impl DeviceFlowBuilder {
    common_builder_methods!();

    /// The device authorization endpoint, instead of discovering it.
    pub fn device_authorization_endpoint(mut self, url: impl Into<String>) -> Self {
        self.common.device_authorization_endpoint = Some(url.into());
        self
    }

    /// The client secret, for a confidential client (`agentcube-cli` is public and has none).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.common.secret = Some(ClientSecret::new(secret));
        self
    }

    /// The requested scope (default `openid`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for an empty client id, an invalid URL, or missing endpoints
    /// without an issuer.
    pub fn build(self) -> Result<DeviceFlow, ClientError> {
        let client = self
            .common
            .build(&[EndpointKind::DeviceAuthorization, EndpointKind::Token])?;
        Ok(DeviceFlow {
            client,
            scope: self.scope,
        })
    }
}

/// A started device authorization: what to show the user, and the device code to poll with.
///
/// `Debug` does not show the device code.
#[derive(Clone, Debug)]
pub struct DeviceAuthorization {
    device_code: DeviceCode,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Duration,
    interval: Duration,
    started: Instant,
    verifier: PkceVerifier,
}

impl DeviceAuthorization {
    /// The code the user enters at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the user goes to enter the code.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the code already filled in (for a link or a QR code), if the
    /// server sent one.
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// How long the device code is valid from [`DeviceFlow::start`].
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The polling interval the server asked for (at least 1 s; 5 s when it named none).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The device code (do not show or log it).
    pub fn device_code(&self) -> &DeviceCode {
        &self.device_code
    }
}

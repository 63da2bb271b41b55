//! The device authorization grant (RFC 8628): for CLIs on machines without a browser.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::{
    DeviceAuthorizationUrl, DeviceCodeErrorResponseType, PkceCodeChallenge, RequestTokenError,
    StandardDeviceAuthorizationResponse,
};
use tokio::time::Instant;

use super::error::ClientError;
use super::oauth::{
    CommonSettings, MAX_LIFETIME, OAuthClient, TOKEN_FIELDS, common_builder_methods, scope,
};
use super::refresh::RefreshTokenSource;
use super::token::{ClientSecret, DeviceCode, Tokens};
use crate::http::{EndpointKind, printable};

/// The shortest polling interval, whatever the server says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What each member of a device authorization response must be, for error messages.
const DEVICE_FIELDS: &[(&str, &str)] = &[
    ("device_code", "missing or invalid device_code"),
    ("user_code", "missing or invalid user_code"),
    ("verification_uri", "missing or invalid verification_uri"),
    ("verification_url", "missing or invalid verification_uri"),
    (
        "verification_uri_complete",
        "verification_uri_complete is not a string",
    ),
    ("expires_in", "missing or invalid expires_in"),
    ("interval", "interval is not a non-negative number"),
];

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
        let endpoint = self
            .client
            .endpoint(EndpointKind::DeviceAuthorization)
            .await?;
        let client = self
            .client
            .oauth2()
            .set_device_authorization_url(DeviceAuthorizationUrl::from_url(endpoint.url().clone()));
        let exchange = self.client.exchange(EndpointKind::DeviceAuthorization);
        // PKCE is not part of RFC 8628, but Keycloak applies a client's PKCE policy to the device
        // grant too (`agentcube-cli` requires S256); servers that do not know the parameters
        // ignore them (RFC 6749 §3.1).
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .exchange_device_code()
            .add_extra_param("code_challenge", challenge.as_str())
            .add_extra_param("code_challenge_method", challenge.method().as_str());
        if let Some(scope) = scope(&self.scope) {
            request = request.add_scope(scope);
        }
        let started = Instant::now();
        let response: StandardDeviceAuthorizationResponse = request
            .request_async(&exchange)
            .await
            .map_err(|e| exchange.error(e, DEVICE_FIELDS))?;
        let invalid = |reason| ClientError::InvalidResponse {
            endpoint: EndpointKind::DeviceAuthorization.label(),
            reason,
        };
        let non_empty = |value: &str| (!value.trim().is_empty()).then(|| value.to_owned());
        let device_code = non_empty(response.device_code().secret())
            .ok_or_else(|| invalid("missing or invalid device_code"))?;
        let user_code = non_empty(response.user_code().secret())
            .ok_or_else(|| invalid("missing or invalid user_code"))?;
        Ok(DeviceAuthorization {
            device_code: DeviceCode::new(device_code),
            user_code,
            verification_uri: response.verification_uri().to_string(),
            verification_uri_complete: response
                .verification_uri_complete()
                .and_then(|uri| non_empty(uri.secret())),
            expires_in: response.expires_in().min(MAX_LIFETIME),
            interval: response.interval().max(MIN_INTERVAL),
            started,
            verifier: verifier.into_secret(),
            response,
        })
    }

    /// Polls the token endpoint until the user approves or denies, or the code expires.
    ///
    /// Sends the PKCE verifier of [`start`](Self::start) with each poll. Waits the server's
    /// `interval` before each poll; `authorization_pending` keeps polling,
    /// `slow_down` adds 5 s to the interval for all later polls (RFC 8628 §3.5). Uses Tokio's
    /// clock. A poll that fails without an answer (after the HTTP layer's retries) doubles the
    /// interval, up to 10 s, and polling goes on (RFC 8628 §3.5); if the code expires meanwhile,
    /// that failure is returned.
    ///
    /// # Errors
    ///
    /// [`ClientError::AccessDenied`] (`access_denied`), [`ClientError::ExpiredToken`]
    /// (`expired_token`, or `expires_in` passed), other [`ClientError::OAuth`] errors, token
    /// response errors.
    pub async fn poll(&self, authorization: &DeviceAuthorization) -> Result<Tokens, ClientError> {
        let deadline = authorization.started + authorization.expires_in;
        // The library polls first and then waits; RFC 8628 §3.4 wants the wait first.
        tokio::time::sleep(authorization.interval).await;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(ClientError::ExpiredToken);
        }
        let (client, exchange) = self.client.token_client().await?;
        // The library tells time with a wall clock; give it Tokio's, so that paused time works.
        let origin = Instant::now();
        let clock = move || {
            let elapsed = chrono::TimeDelta::from_std(origin.elapsed()).unwrap_or_default();
            DateTime::<Utc>::UNIX_EPOCH
                .checked_add_signed(elapsed)
                .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        };
        let result = client
            .exchange_device_access_token(&authorization.response)
            .add_extra_param("code_verifier", authorization.verifier.as_str())
            .set_time_fn(clock)
            .request_async(
                &exchange,
                |interval| tokio::time::sleep(interval.max(MIN_INTERVAL)),
                Some(remaining),
            )
            .await;
        match result {
            Ok(response) => response.into_tokens(exchange.sent_at().unwrap_or(origin)),
            Err(RequestTokenError::ServerResponse(response)) => match response.error() {
                DeviceCodeErrorResponseType::AccessDenied => Err(ClientError::AccessDenied {
                    description: response.error_description().map(|d| printable(d, 300)),
                }),
                DeviceCodeErrorResponseType::ExpiredToken => Err(exchange
                    .last_transport_error()
                    .unwrap_or(ClientError::ExpiredToken)),
                _ => Err(exchange.error(RequestTokenError::ServerResponse(response), TOKEN_FIELDS)),
            },
            Err(other) => Err(exchange.error(other, TOKEN_FIELDS)),
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

/// A started device authorization: what to show the user, and the device code and PKCE
/// verifier to poll with.
///
/// `Debug` shows neither the device code nor the verifier.
#[derive(Clone)]
pub struct DeviceAuthorization {
    device_code: DeviceCode,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Duration,
    interval: Duration,
    started: Instant,
    verifier: String,
    response: StandardDeviceAuthorizationResponse,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &self.device_code)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
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

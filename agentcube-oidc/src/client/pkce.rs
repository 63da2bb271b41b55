//! Authorization code + PKCE (RFC 6749 §4.1, RFC 7636 S256) for public clients such as
//! `agentcube-cli`, with a loopback redirect listener (RFC 8252 §7.3).

use std::sync::Arc;
use std::time::Duration;

use agentcube_auth_core::jose::UnverifiedJws;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use super::error::{ClientError, bounded};
use super::http::EndpointKind;
use super::oauth::{CommonSettings, OAuthClient, common_builder_methods};
use super::rand::{PkceVerifier, random_token};
use super::refresh::RefreshTokenSource;
use super::token::{AuthorizationCode, ClientSecret, Tokens};

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

    /// Builds the authorization URL for `redirect_uri`, with a fresh `state`, `nonce` and PKCE
    /// verifier (each 32 random bytes). Send the user's browser to [`AuthorizationRequest::url`].
    ///
    /// # Errors
    ///
    /// Discovery errors when the authorization endpoint is discovered.
    pub async fn authorization_request(
        &self,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest, ClientError> {
        let mut url = self.client.endpoint(EndpointKind::Authorization).await?;
        let state = random_token(32)?;
        let nonce = random_token(32)?;
        let verifier = PkceVerifier::new()?;
        let challenge = verifier.s256_challenge();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client.auth.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", &self.scope)
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            for (name, value) in &self.params {
                query.append_pair(name, value);
            }
        }
        Ok(AuthorizationRequest {
            url,
            redirect_uri: redirect_uri.to_owned(),
            state,
            nonce,
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
        let tokens = self
            .client
            .request_tokens(&[
                ("grant_type", "authorization_code"),
                ("code", code.secret()),
                ("redirect_uri", &request.redirect_uri),
                ("code_verifier", request.verifier.secret()),
            ])
            .await?;
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

/// One authorization request: its URL and the values needed to accept its callback.
///
/// `Debug` does not show the PKCE verifier.
#[derive(Debug)]
pub struct AuthorizationRequest {
    url: Url,
    redirect_uri: String,
    state: String,
    nonce: String,
    verifier: PkceVerifier,
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

/// A one-shot HTTP listener on `127.0.0.1` (ephemeral port) that receives the authorization
/// redirect.
///
/// It answers requests for other paths with 404 and keeps waiting; the first request to the
/// callback path ends the wait: with the code if its `state` matches and it has one, with
/// [`ClientError::StateMismatch`] if the state differs (a forged or stale redirect), with the
/// `error` parameter otherwise. Each connection must send its request within 10 s, and requests
/// are limited to 8 KiB.
#[derive(Debug)]
pub struct LoopbackListener {
    listener: TcpListener,
    port: u16,
}

const CALLBACK_PATH: &str = "/callback";
const MAX_REQUEST_BYTES: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PENDING: usize = 16;

impl LoopbackListener {
    /// Binds `127.0.0.1:0`.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] if the socket cannot be bound.
    pub async fn bind() -> Result<Self, ClientError> {
        let io = |e: std::io::Error| ClientError::Io {
            message: format!("binding the loopback listener failed: {e}"),
        };
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(io)?;
        let port = listener.local_addr().map_err(io)?.port();
        Ok(Self { listener, port })
    }

    /// The port bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}/callback`, to register as (a pattern of) the client's redirect URI.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.port)
    }

    /// Waits up to `wait` for the callback of `request` (see the type's docs).
    ///
    /// # Errors
    ///
    /// [`ClientError::CallbackTimeout`], [`ClientError::StateMismatch`],
    /// [`ClientError::AccessDenied`] or [`ClientError::OAuth`] for an `error` parameter,
    /// [`ClientError::InvalidCallback`] for a callback without a code.
    pub async fn wait_for_code(
        self,
        request: &AuthorizationRequest,
        wait: Duration,
    ) -> Result<AuthorizationCode, ClientError> {
        self.wait_for_state(request.state(), wait).await
    }

    /// [`wait_for_code`](Self::wait_for_code) for a request built elsewhere: checks `state`.
    ///
    /// # Errors
    ///
    /// As [`wait_for_code`](Self::wait_for_code).
    pub async fn wait_for_state(
        self,
        state: &str,
        wait: Duration,
    ) -> Result<AuthorizationCode, ClientError> {
        match tokio::time::timeout(wait, self.serve(state)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::CallbackTimeout),
        }
    }

    async fn serve(&self, expected_state: &str) -> Result<AuthorizationCode, ClientError> {
        // Connections are read concurrently: browsers open speculative connections that send
        // nothing, and one of those must not hold up the real callback.
        let mut pending = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) if pending.len() < MAX_PENDING => {
                        pending.spawn(read_request(stream));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(joined) = pending.join_next(), if !pending.is_empty() => {
                    if let Ok((stream, target)) = joined
                        && let Some(outcome) = answer(stream, target, expected_state).await
                    {
                        return outcome;
                    }
                }
            }
        }
    }
}

/// Reads one request (bounded in time and size); returns the stream and the `GET` target.
async fn read_request(mut stream: TcpStream) -> (TcpStream, Option<String>) {
    let target = tokio::time::timeout(READ_TIMEOUT, read_target(&mut stream))
        .await
        .ok()
        .flatten();
    (stream, target)
}

/// Answers one request; `Some` when it was the callback, which ends the wait.
async fn answer(
    mut stream: TcpStream,
    target: Option<String>,
    expected_state: &str,
) -> Option<Result<AuthorizationCode, ClientError>> {
    let url = target.and_then(|target| {
        Url::parse("http://127.0.0.1/")
            .and_then(|base| base.join(&target))
            .ok()
    });
    let Some(url) = url else {
        respond(&mut stream, 400, "Bad request.").await;
        return None;
    };
    if url.path() != CALLBACK_PATH {
        respond(&mut stream, 404, "Not found.").await;
        return None;
    }
    let outcome = callback_outcome(&url, expected_state);
    let (status, page) = match &outcome {
        Ok(_) => (
            200,
            "Signed in. You can close this window and return to the terminal.",
        ),
        Err(ClientError::StateMismatch) => (
            400,
            "Sign-in failed: the response does not belong to this login attempt.",
        ),
        Err(_) => (400, "Sign-in failed. See the terminal for details."),
    };
    respond(&mut stream, status, page).await;
    Some(outcome)
}

/// The code from a callback URL whose state must be `expected_state`.
fn callback_outcome(url: &Url, expected_state: &str) -> Result<AuthorizationCode, ClientError> {
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    if param("state").as_deref() != Some(expected_state) {
        return Err(ClientError::StateMismatch);
    }
    if let Some(error) = param("error") {
        let description = param("error_description").map(|d| bounded(&d, 300));
        return Err(if error == "access_denied" {
            ClientError::AccessDenied { description }
        } else {
            ClientError::OAuth {
                error: bounded(&error, 64),
                description,
                status: None,
            }
        });
    }
    match param("code") {
        Some(code) if !code.is_empty() => Ok(AuthorizationCode::new(code)),
        _ => Err(ClientError::InvalidCallback {
            reason: "the callback has neither a code nor an error",
        }),
    }
}

/// Reads the request head and returns the request target of a `GET`.
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST_BYTES {
            return None;
        }
        buf.extend_from_slice(chunk.get(..n)?);
    }
    let head = std::str::from_utf8(&buf).ok()?;
    let mut parts = head.lines().next()?.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET" && target.starts_with('/')).then(|| target.to_owned())
}

async fn respond(stream: &mut TcpStream, status: u16, message: &str) {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>AgentCube</title></head>\
         <body><p>{message}</p></body></html>"
    );
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser may already be gone; the outcome does not depend on this write.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

//! [`LoopbackListener`]: the redirect URI of a login on this machine (RFC 8252 §7.3), a
//! one-shot HTTP listener on `127.0.0.1`.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use super::code::AuthorizationRequest;
use super::error::ClientError;
use super::token::AuthorizationCode;
use crate::http::printable;

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
        let description = param("error_description").map(|d| printable(&d, 300));
        return Err(if error == "access_denied" {
            ClientError::AccessDenied { description }
        } else {
            ClientError::OAuth {
                error: printable(&error, 64),
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

//! The [`TokenSource`] seam and the static token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::error::ClientError;
use super::token::AccessToken;

/// Something that hands out access tokens: a static token, a client-credentials client, a
/// refresh-token session, or your own implementation.
///
/// Call [`token`](TokenSource::token) before **every** request (not once per client): sources
/// that cache make that a cheap lookup, and it is how refreshed tokens reach the wire.
///
/// The trait uses `async fn` syntax with `Send` futures, so it is not dyn-compatible; for a
/// `dyn` source use [`DynTokenSource`], which every `TokenSource` implements, e.g.
/// `Arc<dyn DynTokenSource>` (itself a `TokenSource`).
pub trait TokenSource: Send + Sync {
    /// A currently valid access token, fetched or refreshed as needed.
    fn token(&self) -> impl Future<Output = Result<AccessToken, ClientError>> + Send;

    /// Forgets the cached token, so the next [`token`](TokenSource::token) call fetches a new one
    /// (e.g. after the server answered 401). Does nothing for a static token.
    fn invalidate(&self);

    /// Forgets the cached token only if it is still `rejected`, so that many requests rejected
    /// with the same token cause one refresh, not one each. Defaults to
    /// [`invalidate`](TokenSource::invalidate).
    fn invalidate_token(&self, rejected: &AccessToken) {
        let _ = rejected;
        self.invalidate();
    }
}

/// The boxed future returned by [`DynTokenSource::token_boxed`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AccessToken, ClientError>> + Send + 'a>>;

/// The dyn-compatible form of [`TokenSource`], implemented for every `TokenSource`.
///
/// `Arc<dyn DynTokenSource>` and `Box<dyn DynTokenSource>` are `TokenSource`s again.
pub trait DynTokenSource: Send + Sync {
    /// [`TokenSource::token`], boxed.
    fn token_boxed(&self) -> TokenFuture<'_>;
    /// [`TokenSource::invalidate`].
    fn invalidate_dyn(&self);
    /// [`TokenSource::invalidate_token`].
    fn invalidate_token_dyn(&self, rejected: &AccessToken);
}

impl<T: TokenSource> DynTokenSource for T {
    fn token_boxed(&self) -> TokenFuture<'_> {
        Box::pin(self.token())
    }

    fn invalidate_dyn(&self) {
        self.invalidate();
    }

    fn invalidate_token_dyn(&self, rejected: &AccessToken) {
        self.invalidate_token(rejected);
    }
}

impl TokenSource for dyn DynTokenSource + '_ {
    fn token(&self) -> impl Future<Output = Result<AccessToken, ClientError>> + Send {
        self.token_boxed()
    }

    fn invalidate(&self) {
        self.invalidate_dyn();
    }

    fn invalidate_token(&self, rejected: &AccessToken) {
        self.invalidate_token_dyn(rejected);
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Arc<T> {
    fn token(&self) -> impl Future<Output = Result<AccessToken, ClientError>> + Send {
        (**self).token()
    }

    fn invalidate(&self) {
        (**self).invalidate();
    }

    fn invalidate_token(&self, rejected: &AccessToken) {
        (**self).invalidate_token(rejected);
    }
}

impl<T: TokenSource + ?Sized> TokenSource for Box<T> {
    fn token(&self) -> impl Future<Output = Result<AccessToken, ClientError>> + Send {
        (**self).token()
    }

    fn invalidate(&self) {
        (**self).invalidate();
    }

    fn invalidate_token(&self, rejected: &AccessToken) {
        (**self).invalidate_token(rejected);
    }
}

/// A fixed token: a token obtained elsewhere, e.g. from an environment variable or a CI
/// secret. It is never refreshed; `invalidate` does nothing.
#[derive(Clone, Debug)]
pub struct StaticToken(AccessToken);

impl StaticToken {
    /// Wraps `token`, trimmed of surrounding whitespace (a token read from a file often ends
    /// with a newline).
    ///
    /// # Errors
    ///
    /// [`ClientError::EmptyToken`] if nothing is left after trimming,
    /// [`ClientError::InvalidToken`] if it has characters other than visible ASCII.
    pub fn new(token: impl AsRef<str>) -> Result<Self, ClientError> {
        AccessToken::checked(token.as_ref()).map(Self)
    }
}

impl TokenSource for StaticToken {
    fn token(&self) -> impl Future<Output = Result<AccessToken, ClientError>> + Send {
        std::future::ready(Ok(self.0.clone()))
    }

    fn invalidate(&self) {}
}

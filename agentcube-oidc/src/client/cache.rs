//! The token cache behind [`ClientCredentials`](super::ClientCredentials) and
//! [`RefreshTokenSource`](super::RefreshTokenSource): single-flight fetches in a spawned task,
//! refresh ahead of expiry in the background.
//!
//! A token fetched by a request sent at `t` with `expires_in = e` (3600 s when absent) is
//! - *fresh* until `t + max(e − 30 s, e / 2)`: returned as is;
//! - *refreshing* from then until `t + e`: still returned, and one background fetch is started;
//! - *expired* from `t + e` (or after `invalidate`): callers wait for a fetch.
//!
//! At most one fetch runs at a time; every caller that needs a token while it runs waits for the
//! same result. The fetch runs in its own Tokio task, so a caller that gives up (drops its future)
//! does not cancel it for the others.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::error::ClientError;
use super::oauth::MAX_LIFETIME;
use super::token::{AccessToken, Tokens};

/// After a failed background refresh, the next one starts no sooner than this.
const BACKGROUND_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// The `expires_in` assumed when a token response has none.
const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);

/// When to refresh and when the token expires: refresh after
/// `max(expires_in − 30 s, expires_in / 2)`, `expires_in` 3600 s when absent.
fn lifetimes(sent_at: Instant, expires_in: Option<Duration>) -> (Instant, Instant) {
    let lifetime = expires_in.unwrap_or(DEFAULT_EXPIRES_IN).min(MAX_LIFETIME);
    let refresh_after = lifetime
        .saturating_sub(Duration::from_secs(30))
        .max(lifetime / 2);
    (sent_at + refresh_after, sent_at + lifetime)
}

/// A token and when its lifetime began.
pub(crate) struct Fetched {
    pub(crate) token: AccessToken,
    pub(crate) expires_in: Option<Duration>,
    pub(crate) sent_at: Instant,
}

impl Fetched {
    /// The access token of a token response, timed from when its request was sent.
    pub(crate) fn from_tokens(tokens: &Tokens) -> Self {
        Self {
            token: tokens.access_token.clone(),
            expires_in: tokens.expires_in,
            sent_at: tokens.received_at,
        }
    }
}

/// Implements [`TokenSource`](super::TokenSource) for a type with a `cache: Arc<Cache<_>>` field.
macro_rules! cached_token_source {
    ($source:ty) => {
        impl $crate::client::TokenSource for $source {
            fn token(
                &self,
            ) -> impl std::future::Future<
                Output = Result<$crate::client::AccessToken, $crate::client::ClientError>,
            > + Send {
                self.cache.token()
            }

            fn invalidate(&self) {
                self.cache.invalidate();
            }

            fn invalidate_token(&self, rejected: &$crate::client::AccessToken) {
                self.cache.invalidate_token(rejected);
            }
        }
    };
}

pub(crate) use cached_token_source;

/// Fetches a new token (one grant request, with the transport's retries).
pub(crate) trait Grant: Send + Sync + 'static {
    fn fetch(&self) -> impl Future<Output = Result<Fetched, ClientError>> + Send;
}

type Shared = Option<Result<AccessToken, ClientError>>;

struct Entry {
    token: AccessToken,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct State {
    current: Option<Entry>,
    inflight: Option<watch::Receiver<Shared>>,
    /// No background refresh before this instant (set after a failed one).
    background_not_before: Option<Instant>,
}

pub(crate) struct Cache<G> {
    pub(crate) grant: G,
    state: Mutex<State>,
}

impl<G> fmt::Debug for Cache<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Cache")
            .field("has_token", &state.current.is_some())
            .field("fetching", &state.inflight.is_some())
            .finish_non_exhaustive()
    }
}

impl<G> Cache<G> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn invalidate(&self) {
        self.lock().current = None;
    }

    pub(crate) fn invalidate_token(&self, rejected: &AccessToken) {
        let mut state = self.lock();
        if state
            .current
            .as_ref()
            .is_some_and(|entry| entry.token == *rejected)
        {
            state.current = None;
        }
    }
}

impl<G: Grant> Cache<G> {
    pub(crate) fn new(grant: G, initial: Option<Fetched>) -> Arc<Self> {
        let state = State {
            current: initial.map(entry),
            ..State::default()
        };
        Arc::new(Self {
            grant,
            state: Mutex::new(state),
        })
    }

    pub(crate) async fn token(self: &Arc<Self>) -> Result<AccessToken, ClientError> {
        let mut receiver = {
            let mut state = self.lock();
            let now = Instant::now();
            if let Some(entry) = &state.current
                && now < entry.expires_at
            {
                let token = entry.token.clone();
                let background_allowed = state
                    .background_not_before
                    .is_none_or(|not_before| now >= not_before);
                if now >= entry.refresh_at && background_allowed && !has_live_fetch(&state) {
                    tracing::debug!("token is due for refresh, refreshing in the background");
                    state.inflight = Some(self.spawn_fetch());
                }
                return Ok(token);
            }
            match &state.inflight {
                Some(receiver) if !receiver_closed(receiver) => receiver.clone(),
                _ => {
                    let receiver = self.spawn_fetch();
                    state.inflight = Some(receiver.clone());
                    receiver
                }
            }
        };
        let result = match receiver.wait_for(Option::is_some).await {
            Ok(shared) => shared.clone(),
            Err(_) => None,
        };
        result.unwrap_or(Err(ClientError::Cancelled))
    }

    /// Starts a fetch in its own task. The caller stores the receiver in `inflight` while still
    /// holding the lock, so the task (which needs the lock to finish) cannot clear it first.
    fn spawn_fetch(self: &Arc<Self>) -> watch::Receiver<Shared> {
        let (sender, receiver) = watch::channel(None);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let result = this.grant.fetch().await;
            let shared = {
                let mut state = this.lock();
                state.inflight = None;
                match result {
                    Ok(fetched) => {
                        state.background_not_before = None;
                        let token = fetched.token.clone();
                        state.current = Some(entry(fetched));
                        Ok(token)
                    }
                    Err(error) => {
                        let now = Instant::now();
                        if state
                            .current
                            .as_ref()
                            .is_some_and(|entry| now < entry.expires_at)
                        {
                            tracing::warn!(
                                code = %error.code(),
                                %error,
                                "background token refresh failed; \
                                 the current token is used until it expires"
                            );
                            state.background_not_before = Some(now + BACKGROUND_RETRY_PAUSE);
                        }
                        Err(error)
                    }
                }
            };
            // Nobody may be waiting (a background refresh); that is fine.
            let _ = sender.send(Some(shared));
        });
        receiver
    }
}

fn entry(fetched: Fetched) -> Entry {
    let (refresh_at, expires_at) = lifetimes(fetched.sent_at, fetched.expires_in);
    Entry {
        token: fetched.token,
        refresh_at,
        expires_at,
    }
}

/// The fetch task ended without sending (its runtime shut down); start a new one.
fn receiver_closed(receiver: &watch::Receiver<Shared>) -> bool {
    receiver.has_changed().is_err()
}

fn has_live_fetch(state: &State) -> bool {
    state
        .inflight
        .as_ref()
        .is_some_and(|receiver| !receiver_closed(receiver))
}

//! Owner lookup: where session records live.

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use agentcube_auth_core::{Clock, Code, Rejection, SystemClock};
use async_trait::async_trait;
use http::StatusCode;

use crate::INTERNAL_ERROR_MESSAGE;
use crate::record::SessionRecord;

#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
pub use self::redis::{RedisOwnerStore, RedisStoreConfig};

/// The session store: `session id → SessionRecord` (and so its owner).
///
/// The Router reads it before proxying; the WorkloadManager writes it when it creates a session
/// and removes the record when it deletes one. Errors are never "no record": a store that
/// cannot answer makes the caller refuse the request (the [`Rejection`] of [`StoreError`]), so an
/// outage can never turn into an allow.
///
/// Object-safe: hold an `Arc<dyn OwnerStore>` to choose the backend at run time.
#[async_trait]
pub trait OwnerStore: Send + Sync {
    /// The record of `session_id`, or `None` if there is none.
    ///
    /// # Errors
    /// [`StoreError`] if the store is unreachable, too slow, or holds a value that is not a
    /// session record.
    async fn get(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Stores `record` under its session id, replacing any earlier one.
    ///
    /// # Errors
    /// [`StoreError`] if the store is unreachable or too slow, or
    /// [`StoreError::MalformedRecord`] if the record has an empty session id.
    async fn put(&self, record: &SessionRecord) -> Result<(), StoreError>;

    /// Removes the record of `session_id`; whether there was one.
    ///
    /// # Errors
    /// [`StoreError`] if the store is unreachable or too slow.
    async fn delete(&self, session_id: &str) -> Result<bool, StoreError>;
}

#[async_trait]
impl<S: OwnerStore + ?Sized> OwnerStore for Arc<S> {
    async fn get(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        (**self).get(session_id).await
    }

    async fn put(&self, record: &SessionRecord) -> Result<(), StoreError> {
        (**self).put(record).await
    }

    async fn delete(&self, session_id: &str) -> Result<bool, StoreError> {
        (**self).delete(session_id).await
    }
}

/// A boxed error from a store backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Why the session store could not answer.
///
/// | variant | code | status | public message |
/// |---|---|---|---|
/// | [`Unavailable`](Self::Unavailable) | `store_unavailable` | 503 | `session store unavailable` |
/// | [`Timeout`](Self::Timeout) | `store_timeout` | 503 | `session store unavailable` |
/// | [`MalformedRecord`](Self::MalformedRecord) | `malformed_record` | 500 | `internal server error` |
/// | [`InvalidConfig`](Self::InvalidConfig) | `invalid_store_config` | 500 | `internal server error` |
/// | [`Full`](Self::Full) | `store_full` | 503 | `session store unavailable` |
///
/// None of them is an allow and none is "no owner": the request is refused with the status
/// ([`Rejection`]). Messages never contain the store's address or credentials; the public
/// message of a 500 says nothing more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or refused the operation.
    #[error("session store unavailable")]
    Unavailable(#[source] Option<BoxError>),
    /// The operation did not finish in time.
    #[error("session store did not answer within {0:?}")]
    Timeout(Duration),
    /// The stored value is not a session record (not JSON, a field of the wrong type, a key of
    /// the wrong type, a record for another session), or a record to store has no session id.
    #[error("malformed session record `{session_id}`: {detail}")]
    MalformedRecord {
        /// The session id the record was read for (or written under).
        session_id: String,
        /// What is wrong (for JSON, the parser's message, which may quote a scalar of the
        /// value but never the whole of it).
        detail: String,
    },
    /// The store was configured wrongly (e.g. an invalid URL).
    #[error("invalid session store configuration: {0}")]
    InvalidConfig(&'static str),
    /// A bounded store holds as many live records as it may; a new one is refused rather than
    /// an existing session forgotten (which would leave it without an owner).
    #[error("session store is full ({0} records)")]
    Full(usize),
}

impl StoreError {
    /// [`StoreError::Unavailable`] caused by `source`.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::Unavailable(Some(source.into()))
    }

    /// [`StoreError::MalformedRecord`].
    pub fn malformed(session_id: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::MalformedRecord {
            session_id: session_id.into(),
            detail: detail.into(),
        }
    }

    const UNAVAILABLE: Code = Code::new("store_unavailable");
    const TIMEOUT: Code = Code::new("store_timeout");
    const MALFORMED_RECORD: Code = Code::new("malformed_record");
    const INVALID_CONFIG: Code = Code::new("invalid_store_config");
    const FULL: Code = Code::new("store_full");

    /// The stable machine code (see the table above).
    pub const fn code(&self) -> Code {
        match self {
            Self::Unavailable(_) => Self::UNAVAILABLE,
            Self::Timeout(_) => Self::TIMEOUT,
            Self::MalformedRecord { .. } => Self::MALFORMED_RECORD,
            Self::InvalidConfig(_) => Self::INVALID_CONFIG,
            Self::Full(_) => Self::FULL,
        }
    }

    /// Whether retrying may help: the store is unreachable or slow (503), not corrupt or
    /// misconfigured (500).
    pub const fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Timeout(_) | Self::Full(_)
        )
    }
}

/// 503 `session store unavailable` while the store is unreachable or slow (retrying may help),
/// 500 `internal server error` for a corrupt record or a misconfiguration (the details stay in
/// the logs). No `WWW-Authenticate` challenge: the caller did nothing wrong.
impl Rejection for StoreError {
    fn code(&self) -> Code {
        StoreError::code(self)
    }

    fn status(&self) -> StatusCode {
        if self.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }

    fn public_message(&self) -> Cow<'static, str> {
        Cow::Borrowed(if self.is_transient() {
            "session store unavailable"
        } else {
            INTERNAL_ERROR_MESSAGE
        })
    }
}

/// An in-process store: a map behind a lock. For tests, single-replica deployments and the
/// examples; records are lost on restart and not shared between replicas.
///
/// Bounded, so that a caller creating sessions in a loop cannot grow the process without
/// limit: at most [`capacity`](Self::with_capacity) records (default
/// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY)), each forgotten [`ttl`](Self::with_ttl) after
/// it was written (default [`DEFAULT_TTL`](Self::DEFAULT_TTL); the Redis store's TTL plays
/// the same part). When the store is full of live records a new one is refused with
/// [`StoreError::Full`] (503): forgetting a live session instead would leave it without an
/// owner. Expired records are dropped when the store would otherwise be full.
#[derive(Debug)]
pub struct InMemoryOwnerStore {
    records: RwLock<HashMap<String, Stored>>,
    capacity: usize,
    ttl: Duration,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct Stored {
    record: SessionRecord,
    expires_at: i64,
}

impl Default for InMemoryOwnerStore {
    fn default() -> Self {
        Self {
            records: RwLock::default(),
            capacity: Self::DEFAULT_CAPACITY,
            ttl: Self::DEFAULT_TTL,
            clock: Arc::new(SystemClock),
        }
    }
}

impl InMemoryOwnerStore {
    /// The default bound on records: 100,000.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// The default lifetime of a record: 24 hours.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

    /// An empty store with the default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `capacity` records.
    #[must_use]
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Each record is forgotten `ttl` after it was last written.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Uses `clock` instead of the system clock (for tests of expiry).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The number of records held (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Stored>> {
        // The lock guards plain map operations; a poisoned lock still holds a consistent map.
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Stored>> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl OwnerStore for InMemoryOwnerStore {
    async fn get(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.clock.now_unix();
        Ok(self
            .read()
            .get(session_id)
            .filter(|stored| stored.expires_at > now)
            .map(|stored| stored.record.clone()))
    }

    async fn put(&self, record: &SessionRecord) -> Result<(), StoreError> {
        if record.session_id.is_empty() {
            return Err(StoreError::malformed("", "empty session id"));
        }
        let now = self.clock.now_unix();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX);
        let mut records = self.write();
        if records.len() >= self.capacity && !records.contains_key(&record.session_id) {
            records.retain(|_, stored| stored.expires_at > now);
            if records.len() >= self.capacity {
                return Err(StoreError::Full(self.capacity));
            }
        }
        records.insert(
            record.session_id.clone(),
            Stored {
                record: record.clone(),
                expires_at: now.saturating_add(ttl),
            },
        );
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<bool, StoreError> {
        let now = self.clock.now_unix();
        Ok(self
            .write()
            .remove(session_id)
            .is_some_and(|stored| stored.expires_at > now))
    }
}

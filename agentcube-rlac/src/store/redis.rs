//! A session store shared through Redis (or Valkey): key `session:<id>`, value the `SandboxInfo`
//! JSON that existing deployments store.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RedisResult};
use tokio::sync::OnceCell;

use super::{OwnerStore, StoreError};
use crate::record::SessionRecord;

/// Settings of a [`RedisOwnerStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreConfig {
    /// Prepended to the session id to form the key. Default `session:` (the layout existing
    /// deployments use).
    pub key_prefix: String,
    /// The limit for one whole operation, connecting included. Default 1 s.
    pub timeout: Duration,
    /// The limit for one connection attempt. Default 1 s.
    pub connect_timeout: Duration,
    /// An expiry set on records this store writes. Default none (the WorkloadManager
    /// garbage-collects sessions itself).
    pub ttl: Option<Duration>,
}

impl Default for RedisStoreConfig {
    fn default() -> Self {
        Self {
            key_prefix: "session:".to_owned(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            ttl: None,
        }
    }
}

impl RedisStoreConfig {
    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }
}

/// An [`OwnerStore`] on Redis, in the layout existing deployments use, so several Router
/// replicas (and a WorkloadManager that already writes this layout) see the same sessions: key
/// `session:<id>`, value the `SandboxInfo` JSON with `ownerId`.
///
/// Connecting is lazy: [`RedisOwnerStore::new`] only parses the URL, so a Router starts while
/// Redis is down and answers 503 ([`StoreError::Unavailable`]) until it is back. Once connected,
/// a [`ConnectionManager`] multiplexes every request over one connection and reconnects after
/// failures. Every operation is bounded by [`RedisStoreConfig::timeout`]. A key holding
/// something other than a session record — not JSON, `ownerId` of the wrong type, a hash instead
/// of a string, a record whose `sessionId` names another session — is
/// [`StoreError::MalformedRecord`] (500), never "no owner".
///
/// Needs a Tokio runtime with I/O and time enabled.
pub struct RedisOwnerStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    config: RedisStoreConfig,
}

impl fmt::Debug for RedisOwnerStore {
    // The URL may hold a password: leave it out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOwnerStore")
            .field("connected", &self.conn.initialized())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisOwnerStore {
    /// A store for the Redis at `url` (`redis://[user:password@]host:port/db`) with the default
    /// [`RedisStoreConfig`]. Does not connect yet.
    ///
    /// # Errors
    /// [`StoreError::InvalidConfig`] if the URL is invalid.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Self::with_config(url, RedisStoreConfig::default())
    }

    /// A store for the Redis at `url` with `config`. Does not connect yet.
    ///
    /// # Errors
    /// [`StoreError::InvalidConfig`] if the URL is invalid or a timeout is zero.
    pub fn with_config(url: &str, config: RedisStoreConfig) -> Result<Self, StoreError> {
        if config.timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(StoreError::InvalidConfig("redis timeouts must be positive"));
        }
        // The error would repeat the URL, password included; it is not kept.
        let client =
            redis::Client::open(url).map_err(|_| StoreError::InvalidConfig("invalid redis url"))?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.config
    }

    /// The key of `session_id`: `session:<id>` by default.
    pub fn key(&self, session_id: &str) -> String {
        let mut key = String::with_capacity(self.config.key_prefix.len() + session_id.len());
        key.push_str(&self.config.key_prefix);
        key.push_str(session_id);
        key
    }

    /// Checks that Redis answers (`PING`), connecting if needed; for readiness probes.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("", |mut conn| async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(drop)
    }

    async fn connection(&self) -> RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.config.connect_timeout)
            .set_response_timeout(self.config.timeout)
            // No retry loop inside a request: a refused connection is answered at once (503),
            // and the next request triggers the next reconnect attempt.
            .set_number_of_retries(0);
        self.conn
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
    }

    /// Runs `op` on a connection, bounded by the configured timeout, mapping errors.
    async fn run<T, F, Fut>(&self, session_id: &str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut + Send,
        Fut: Future<Output = RedisResult<T>> + Send,
    {
        let work = async {
            let conn = self.connection().await?;
            op(conn).await
        };
        match tokio::time::timeout(self.config.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.map_error(err, session_id)),
            Err(_) => {
                tracing::warn!(timeout = ?self.config.timeout, "session store timed out");
                Err(StoreError::Timeout(self.config.timeout))
            }
        }
    }

    fn map_error(&self, err: RedisError, session_id: &str) -> StoreError {
        if err.code() == Some("WRONGTYPE") {
            tracing::warn!(session_id, "session store key holds a non-string value");
            return StoreError::malformed(session_id, "key holds a value that is not a string");
        }
        if err.is_timeout() {
            tracing::warn!(timeout = ?self.config.timeout, "session store timed out");
            return StoreError::Timeout(self.config.timeout);
        }
        tracing::warn!(error = %err, "session store unavailable");
        StoreError::unavailable(err)
    }
}

#[async_trait]
impl OwnerStore for RedisOwnerStore {
    async fn get(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let key = self.key(session_id);
        let raw = self
            .run(session_id, |mut conn| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
            })
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let mut record = SessionRecord::from_json(&raw).map_err(|err| {
            tracing::warn!(session_id, error = %err, "malformed session record");
            StoreError::malformed(session_id, err.to_string())
        })?;
        if record.session_id.is_empty() {
            record.session_id = session_id.to_owned();
        } else if record.session_id != session_id {
            tracing::warn!(session_id, "session record names another session");
            return Err(StoreError::malformed(
                session_id,
                "record's sessionId names another session",
            ));
        }
        Ok(Some(record))
    }

    async fn put(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let session_id = record.session_id.as_str();
        if session_id.is_empty() {
            return Err(StoreError::malformed("", "empty session id"));
        }
        let json = record
            .to_json()
            .map_err(|err| StoreError::malformed(session_id, err.to_string()))?;
        let key = self.key(session_id);
        let ttl_ms = self
            .config
            .ttl
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        self.run(session_id, |mut conn| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(json);
            if let Some(ms) = ttl_ms {
                cmd.arg("PX").arg(ms);
            }
            cmd.query_async::<()>(&mut conn).await
        })
        .await
    }

    async fn delete(&self, session_id: &str) -> Result<bool, StoreError> {
        let key = self.key(session_id);
        let removed = self
            .run(session_id, |mut conn| async move {
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<u64>(&mut conn)
                    .await
            })
            .await?;
        Ok(removed > 0)
    }
}

//! A [`RevocationSet`] shared by the replicas of a service through Redis (or Valkey).
//!
//! # Layout
//!
//! One Redis stream, `{agentcube:revocations}:log` by default: each revocation is an entry
//! with the fields `kind` (`sid`, `sub`, `client`), `iss`, `value`, `at` (tokens issued at or
//! before it are refused) and `exp` (when the revocation may be forgotten). Every write trims
//! the entries older than the time to live (`XADD … MINID ~`), so the stream holds the live
//! revocations and nothing has to be garbage-collected separately.
//!
//! # Reads never wait for Redis
//!
//! Every replica keeps a local mirror, a [`MemoryRevocationSet`], and the verifier's check
//! reads only the mirror (no network round trip per request). A background task
//! ([`RedisRevocationSet::spawn_sync`]) polls the stream every
//! [`poll_interval`](RedisRevocationConfig::poll_interval) (default 250 ms) with one `XREAD`
//! from the last entry it has seen; a quiet stream costs one small round trip per interval.
//! A revocation is therefore refused:
//!
//! - at once on the replica that recorded it ([`revoke`](RevocationSet::revoke) writes the
//!   mirror too);
//! - on every other replica within one poll interval plus one Redis round trip, while Redis is
//!   reachable. That is the staleness bound.
//!
//! Polling was chosen over pub/sub: a subscriber that reconnects has lost what was published
//! meanwhile and needs a resynchronisation anyway, while a stream read from the last seen id
//! is the resynchronisation, and a replica that starts (or was partitioned) catches up with one
//! read.
//!
//! When Redis is unreachable, the mirror keeps every revocation it has (they still hold, and
//! expire on their own), the sync task logs and retries, and [`revoke`](RevocationSet::revoke)
//! records the revocation in the mirror and then reports
//! [`RevocationError::Unavailable`]: it holds on this replica, the others do not know it.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use agentcube_auth_core::{
    AuthError, MemoryRevocationSet, Revocation, RevocationError, RevocationKey, RevocationKind,
    RevocationListener, RevocationProbe, RevocationSet, RevocationTarget, RevokeFuture,
};
use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// Settings of a [`RedisRevocationSet`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisRevocationConfig {
    /// The stream's key. Default [`DEFAULT_KEY`](Self::DEFAULT_KEY).
    pub key: String,
    /// How often the mirror reads new revocations (the staleness bound on the other
    /// replicas, plus one round trip). Default 250 ms.
    pub poll_interval: Duration,
    /// How long a revocation is kept: at least the longest access-token lifetime plus the
    /// leeway. Default [`MemoryRevocationSet::DEFAULT_TTL`] (1 hour).
    pub ttl: Duration,
    /// The most live revocations in the mirror. Default
    /// [`MemoryRevocationSet::DEFAULT_CAPACITY`].
    pub capacity: usize,
    /// The limit of one Redis operation, connecting included. Default 1 s.
    pub timeout: Duration,
}

impl Default for RedisRevocationConfig {
    fn default() -> Self {
        Self {
            key: Self::DEFAULT_KEY.to_owned(),
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            ttl: MemoryRevocationSet::DEFAULT_TTL,
            capacity: MemoryRevocationSet::DEFAULT_CAPACITY,
            timeout: Duration::from_secs(1),
        }
    }
}

impl RedisRevocationConfig {
    /// The default stream key (with a hash tag, for Redis Cluster).
    pub const DEFAULT_KEY: &'static str = "{agentcube:revocations}:log";

    /// The default poll interval: 250 ms.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);

    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`key`](Self::key).
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }

    /// Sets [`poll_interval`](Self::poll_interval).
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`capacity`](Self::capacity).
    #[must_use]
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Revocations shared through a Redis stream, read from a local mirror (see the
/// [module docs](self) for the layout and the staleness bound).
///
/// Connecting is lazy: [`RedisRevocationSet::new`] only parses the URL. Call
/// [`sync`](Self::sync) once at start-up to load the live revocations before serving (a failure
/// is worth a warning, not a refusal to start), then [`spawn_sync`](Self::spawn_sync). Needs a
/// Tokio runtime with I/O and time enabled. Cloning shares everything.
#[derive(Clone)]
pub struct RedisRevocationSet {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    mirror: MemoryRevocationSet,
    config: RedisRevocationConfig,
    /// The id of the last stream entry applied to the mirror.
    last_id: Mutex<String>,
}

/// Entries read per `XREAD`.
const BATCH: usize = 1000;

impl RedisRevocationSet {
    /// A set on the Redis at `url` (`redis://[user:password@]host:port/db`) with the default
    /// [`RedisRevocationConfig`]. Does not connect yet.
    ///
    /// # Errors
    /// [`RevocationError::Unavailable`] for an invalid URL (the message does not repeat it).
    pub fn new(url: &str) -> Result<Self, RevocationError> {
        Self::with_config(url, RedisRevocationConfig::default())
    }

    /// A set on the Redis at `url` with `config`. Does not connect yet.
    ///
    /// # Errors
    /// [`RevocationError::Unavailable`] for an invalid URL, a zero timeout, poll interval or
    /// time to live, or an empty key.
    pub fn with_config(url: &str, config: RedisRevocationConfig) -> Result<Self, RevocationError> {
        if config.timeout.is_zero()
            || config.poll_interval.is_zero()
            || config.ttl.as_secs() == 0
            || config.key.is_empty()
        {
            return Err(RevocationError::Unavailable(
                "invalid redis revocation settings".into(),
            ));
        }
        // The error would repeat the URL, password included; it is not kept.
        let client = redis::Client::open(url)
            .map_err(|_| RevocationError::Unavailable("invalid redis url".into()))?;
        let mirror = MemoryRevocationSet::new()
            .with_ttl(config.ttl)
            .with_capacity(config.capacity);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                conn: OnceCell::new(),
                mirror,
                config,
                last_id: Mutex::new("0-0".to_owned()),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RedisRevocationConfig {
        &self.inner.config
    }

    /// The local mirror the checks read.
    pub fn mirror(&self) -> &MemoryRevocationSet {
        &self.inner.mirror
    }

    /// Reads the revocations recorded since the last read (all live ones the first time) into
    /// the mirror, and drops expired ones from it. Returns how many entries were read.
    ///
    /// # Errors
    /// [`RevocationError::Unavailable`] when Redis cannot be reached or answers with something
    /// else than a stream; the mirror keeps what it has.
    pub async fn sync(&self) -> Result<usize, RevocationError> {
        let inner = &*self.inner;
        let mut read = 0;
        loop {
            let from = inner
                .last_id
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let key = inner.config.key.clone();
            let reply = self
                .run(|mut conn| async move {
                    redis::cmd("XREAD")
                        .arg("COUNT")
                        .arg(BATCH)
                        .arg("STREAMS")
                        .arg(key)
                        .arg(from)
                        .query_async::<Option<StreamReply>>(&mut conn)
                        .await
                })
                .await?;
            let entries: Vec<StreamEntry> = reply
                .into_iter()
                .flatten()
                .flat_map(|(_, entries)| entries)
                .collect();
            let count = entries.len();
            let now = inner.mirror.clock().now_unix();
            for (id, fields) in entries {
                match parse_entry(&fields) {
                    Some((revocation, exp)) if exp > now => {
                        if let Err(err) = inner.mirror.insert_until(&revocation, exp) {
                            tracing::warn!(error = %err, "revocation mirror refused an entry");
                        }
                    }
                    Some(_) => {}
                    None => tracing::warn!("malformed revocation entry skipped"),
                }
                *inner.last_id.lock().unwrap_or_else(PoisonError::into_inner) = id;
            }
            read += count;
            if count < BATCH {
                break;
            }
        }
        inner.mirror.prune();
        Ok(read)
    }

    /// Spawns the task that [`sync`](Self::sync)s every poll interval on the current Tokio
    /// runtime. It ends when the last clone of the set is dropped.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn spawn_sync(&self) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let interval = self.inner.config.poll_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let set = Self { inner };
                match set.sync().await {
                    Ok(_) if failing => {
                        tracing::info!("revocation store reachable again");
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(err) if !failing => {
                        tracing::warn!(error = %err, "revocation store sync failed; retrying");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })
    }

    async fn connection(&self) -> RedisResult<ConnectionManager> {
        let timeout = self.inner.config.timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(0);
        self.inner
            .conn
            .get_or_try_init(|| {
                ConnectionManager::new_with_config(self.inner.client.clone(), config)
            })
            .await
            .cloned()
    }

    /// Runs `op` on a connection, bounded by the timeout.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, RevocationError>
    where
        F: FnOnce(ConnectionManager) -> Fut + Send,
        Fut: Future<Output = RedisResult<T>> + Send,
    {
        let work = async {
            let conn = self.connection().await?;
            op(conn).await
        };
        match tokio::time::timeout(self.inner.config.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(RevocationError::Unavailable(err.to_string())),
            Err(_) => Err(RevocationError::Unavailable("timed out".into())),
        }
    }

    async fn write(&self, revocation: Revocation) -> Result<(), RevocationError> {
        let inner = &*self.inner;
        // The mirror first: this replica refuses the tokens whatever Redis does.
        inner.mirror.insert(&revocation)?;
        let now = inner.mirror.clock().now_unix();
        let ttl = i64::try_from(inner.config.ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now.saturating_add(ttl);
        let min_id_ms = now.saturating_sub(ttl).max(0).saturating_mul(1000);
        let key = inner.config.key.clone();
        let result = self
            .run(|mut conn| async move {
                redis::cmd("XADD")
                    .arg(key)
                    .arg("MINID")
                    .arg("~")
                    .arg(min_id_ms)
                    .arg("*")
                    .arg("kind")
                    .arg(revocation.target().kind().as_str())
                    .arg("iss")
                    .arg(revocation.issuer())
                    .arg("value")
                    .arg(revocation.target().value())
                    .arg("at")
                    .arg(revocation.revoked_at())
                    .arg("exp")
                    .arg(exp)
                    .query_async::<String>(&mut conn)
                    .await
            })
            .await;
        if let Err(err) = &result {
            tracing::warn!(
                error = %err,
                "revocation recorded on this replica only: the shared store is unavailable"
            );
        }
        result.map(drop)
    }
}

/// An `XREAD` reply: per stream, its entries.
type StreamReply = Vec<(String, Vec<StreamEntry>)>;
/// A stream entry: its id and its fields as `[name, value, name, value, …]`.
type StreamEntry = (String, Vec<String>);

/// A revocation and its expiry from the fields of a stream entry.
fn parse_entry(fields: &[String]) -> Option<(Revocation, i64)> {
    let get = |name: &str| {
        fields.chunks_exact(2).find_map(|pair| match pair {
            [n, v] if n == name => Some(v.as_str()),
            _ => None,
        })
    };
    let kind = RevocationKind::from_name(get("kind")?)?;
    let issuer = get("iss")?;
    let value = get("value")?;
    let at = get("at")?.parse().ok()?;
    let exp = get("exp")?.parse().ok()?;
    Some((
        Revocation::new(issuer, RevocationTarget::new(kind, value), at),
        exp,
    ))
}

impl RevocationSet for RedisRevocationSet {
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        self.inner.mirror.revoked_at(key)
    }

    fn generation(&self) -> u64 {
        self.inner.mirror.generation()
    }

    fn check(&self, probe: &RevocationProbe) -> Result<(), AuthError> {
        self.inner.mirror.check(probe)
    }

    fn revoke(&self, revocation: Revocation) -> RevokeFuture<'_> {
        Box::pin(self.write(revocation))
    }

    fn subscribe(&self, listener: RevocationListener) {
        self.inner.mirror.subscribe(listener);
    }

    fn len(&self) -> usize {
        self.inner.mirror.len()
    }
}

impl fmt::Debug for RedisRevocationSet {
    // The URL may hold a password: leave it out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationSet")
            .field("connected", &self.inner.conn.initialized())
            .field("config", &self.inner.config)
            .field("mirror", &self.inner.mirror)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_back_into_revocations() {
        let fields: Vec<String> = [
            "kind",
            "sid",
            "iss",
            "https://kc/realms/a",
            "value",
            "s-1",
            "at",
            "100",
            "exp",
            "200",
        ]
        .map(str::to_owned)
        .to_vec();
        let (r, exp) = parse_entry(&fields).unwrap();
        assert_eq!(exp, 200);
        assert_eq!(r.issuer(), "https://kc/realms/a");
        assert_eq!(r.target(), &RevocationTarget::Session("s-1".into()));
        assert_eq!(r.revoked_at(), 100);
        let mut bad = fields.clone();
        bad[1] = "nope".into();
        assert!(parse_entry(&bad).is_none());
        assert!(parse_entry(&fields[..8]).is_none());
    }

    #[test]
    fn invalid_settings_are_refused_without_naming_the_url() {
        let err = RedisRevocationSet::with_config(
            "redis://127.0.0.1:1/",
            RedisRevocationConfig::new().with_poll_interval(Duration::ZERO),
        )
        .unwrap_err();
        assert!(matches!(err, RevocationError::Unavailable(_)));
        let err = RedisRevocationSet::new("not a url with secret").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}

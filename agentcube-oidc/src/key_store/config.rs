//! Key store settings.

use std::fmt;
use std::time::Duration;

use agentcube_auth_core::jose::DEFAULT_MAX_KEYS;

use crate::config::ConfigError;

/// Settings of a [`RemoteKeySet`](crate::RemoteKeySet). The defaults are the secure ones; every
/// setter documents its default.
#[derive(Clone)]
#[must_use]
pub struct KeyStoreConfig {
    pub(crate) refresh_cooldown: Duration,
    pub(crate) default_refresh_interval: Duration,
    pub(crate) min_refresh_interval: Duration,
    pub(crate) max_refresh_interval: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_keys: usize,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) http_client: Option<reqwest::Client>,
}

impl Default for KeyStoreConfig {
    fn default() -> Self {
        Self {
            refresh_cooldown: Self::DEFAULT_REFRESH_COOLDOWN,
            default_refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            min_refresh_interval: Self::DEFAULT_MIN_REFRESH_INTERVAL,
            max_refresh_interval: Self::DEFAULT_MAX_REFRESH_INTERVAL,
            max_staleness: Self::DEFAULT_MAX_STALENESS,
            max_response_bytes: Self::DEFAULT_MAX_RESPONSE_BYTES,
            max_keys: DEFAULT_MAX_KEYS,
            connect_timeout: Some(Self::DEFAULT_CONNECT_TIMEOUT),
            request_timeout: Some(Self::DEFAULT_REQUEST_TIMEOUT),
            http_client: None,
        }
    }
}

impl KeyStoreConfig {
    /// The default cooldown between two fetches triggered by unknown `kid`s: 30 s.
    pub const DEFAULT_REFRESH_COOLDOWN: Duration = Duration::from_secs(30);
    /// The default refresh interval when the issuer sends no `Cache-Control: max-age`: 5 min.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);
    /// The default lower bound of the background refresh interval: 1 min.
    pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
    /// The default upper bound of the background refresh interval: 15 min.
    pub const DEFAULT_MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(900);
    /// The default limit on how old the last confirmed key set may be before it is no longer
    /// used: 24 h.
    pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(24 * 3600);
    /// The default cap on a discovery or JWKS response body: 256 KiB.
    pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 256 * 1024;
    /// The default TCP/TLS connect timeout: 5 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The default timeout of a whole request, body included: 10 s.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The minimum time between two fetches started because a token named an unknown `kid`
    /// or found the key set too stale, and between two attempts while the issuer is failing.
    /// Default [`KeyStoreConfig::DEFAULT_REFRESH_COOLDOWN`] (30 s).
    ///
    /// This is what stops a "random `kid`" flood from becoming a JWKS fetch flood: within the
    /// cooldown the current key set is authoritative. The initial fetch and background
    /// refreshes do not start it, so a rotation right after one of them is picked up at once.
    pub fn refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh_cooldown = cooldown;
        self
    }

    /// The background refresh interval used when the issuer sends no `Cache-Control` max-age.
    /// Default [`KeyStoreConfig::DEFAULT_REFRESH_INTERVAL`] (5 min).
    pub fn default_refresh_interval(mut self, interval: Duration) -> Self {
        self.default_refresh_interval = interval;
        self
    }

    /// Bounds of the background refresh interval: an issuer's `max-age` (or `no-cache`) is
    /// clamped into `[min, max]`. Defaults [`KeyStoreConfig::DEFAULT_MIN_REFRESH_INTERVAL`]
    /// (1 min) and [`KeyStoreConfig::DEFAULT_MAX_REFRESH_INTERVAL`] (15 min); a zero `min` is
    /// refused when the verifier is built. The upper bound is also the longest
    /// a key the issuer has withdrawn can go unnoticed while background refresh runs.
    pub fn refresh_interval_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh_interval = min;
        self.max_refresh_interval = max.max(min);
        self
    }

    /// How long after the issuer last confirmed the key set (a 200 or a 304) the set may still
    /// be used while refreshes fail (stale-if-error). After that, verification answers
    /// `keys_unavailable` (503). Default [`KeyStoreConfig::DEFAULT_MAX_STALENESS`] (24 h).
    pub fn max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = staleness;
        self
    }

    /// The largest discovery or JWKS response body read, enforced while streaming. Default
    /// [`KeyStoreConfig::DEFAULT_MAX_RESPONSE_BYTES`] (256 KiB); zero is refused when the
    /// verifier is built.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// The most keys a JWKS may hold; a larger document fails the fetch. Default
    /// [`DEFAULT_MAX_KEYS`] (32); zero is refused when the verifier is built.
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self
    }

    /// Connect and whole-request timeouts. Defaults [`KeyStoreConfig::DEFAULT_CONNECT_TIMEOUT`]
    /// (5 s) and [`KeyStoreConfig::DEFAULT_REQUEST_TIMEOUT`] (10 s).
    ///
    /// `None` disables a timeout. Do that only in tests that run on paused tokio time (where a
    /// pending timeout would be fired by the auto-advancing clock while the request waits on
    /// real I/O): a hanging issuer would otherwise stall refreshes forever.
    pub fn timeouts(mut self, connect: Option<Duration>, request: Option<Duration>) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Uses `client` for discovery and JWKS requests instead of the built-in one (for a proxy,
    /// a private CA, or instrumentation).
    ///
    /// The built-in client follows redirects only within the same origin (at most 5), has the
    /// timeouts above, no connection pool and no cookies; a custom client's own settings apply
    /// instead, and the timeouts above are then ignored. The size caps apply either way.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Checks that the settings can work: a positive response cap, key cap and lower bound of
    /// the refresh interval (a zero bound would let an issuer's `no-cache` spin the background
    /// refresh). A zero cooldown is allowed (every unknown `kid` may then fetch).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let zero = if self.max_response_bytes == 0 {
            "max_response_bytes"
        } else if self.max_keys == 0 {
            "max_keys"
        } else if self.min_refresh_interval.is_zero() {
            "minimum refresh interval"
        } else {
            return Ok(());
        };
        Err(ConfigError::ZeroKeyStoreLimit(zero))
    }

    /// The cooldown.
    pub fn cooldown(&self) -> Duration {
        self.refresh_cooldown
    }

    /// The maximum staleness.
    pub fn staleness_limit(&self) -> Duration {
        self.max_staleness
    }
}

impl fmt::Debug for KeyStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStoreConfig")
            .field("refresh_cooldown", &self.refresh_cooldown)
            .field("default_refresh_interval", &self.default_refresh_interval)
            .field("min_refresh_interval", &self.min_refresh_interval)
            .field("max_refresh_interval", &self.max_refresh_interval)
            .field("max_staleness", &self.max_staleness)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_keys", &self.max_keys)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("custom_http_client", &self.http_client.is_some())
            .finish()
    }
}

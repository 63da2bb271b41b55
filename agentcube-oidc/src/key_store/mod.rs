//! The remote key store: an issuer's JWKS behind discovery, with lock-free reads, single-flight
//! rate-limited refresh, background refresh and stale-if-error.

mod config;
mod fetch;

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use agentcube_auth_core::jose::{Algorithm, KeySet, KeySource, VerificationKey};
use agentcube_auth_core::{AuthError, KeysUnavailableReason, Untrusted};
use arc_swap::ArcSwap;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use config::KeyStoreConfig;
pub use fetch::FetchError;

use crate::config::ConfigError;
use crate::http::{Http, HttpConfig, HttpUrl, Redirects, RetryPolicy, discovery_url_for};
use crate::metrics::{KeyStoreMetrics, OUTCOME_NOT_MODIFIED, OUTCOME_OK};
use crate::stats::{Counter, KeyStoreStats};
use fetch::Fetched;

/// The first retry delay of a store that has never loaded keys; it doubles with every failed
/// attempt, up to the cooldown.
const STARTUP_RETRY: Duration = Duration::from_millis(100);

/// What a completed refresh did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// A new key set was loaded.
    Updated {
        /// Usable keys in the new set.
        keys: usize,
        /// Keys of the document that were skipped as unusable.
        skipped: usize,
    },
    /// The issuer confirmed the current set (HTTP 304).
    NotModified,
}

/// Where the keys come from.
#[derive(Clone, Debug)]
enum Source {
    /// `jwks_uri` from a discovery document whose `issuer` must equal `issuer`.
    Discovery { issuer: Box<str>, url: HttpUrl },
    /// A JWKS URL, used as is.
    Jwks { url: HttpUrl },
}

/// An issuer's signing keys, fetched over HTTP and kept fresh.
///
/// * **Reads are lock-free.** The current key set is an immutable snapshot behind an
///   [`ArcSwap`]; a token whose `kid` is in it costs one atomic load and a short scan.
/// * **Unknown `kid` → at most one fetch per cooldown.** A lookup whose `kid` is not in the
///   loaded key set (or that finds the set too stale) refreshes it at once, unless the cooldown
///   (default 30 s) is running; concurrent misses share one request (single-flight). Within the
///   cooldown the current set is authoritative: the token is rejected with `unknown_kid`
///   without a request. The cooldown counts from the start of the last refresh such a lookup
///   caused and, while the issuer is failing, from the start of the last failed attempt; the
///   initial fetch, scheduled (background) refreshes and explicit refreshes do not start it. So
///   a key the issuer publishes right after one of those is picked up by the first token that
///   names it,
///   while a flood of invented `kid`s costs at most one request per cooldown, and a failing
///   issuer is asked at most once per cooldown however many requests arrive. A known `kid`
///   whose signature does not verify never causes a fetch (that check happens after this
///   store returns the key).
/// * **Start-up retries fast.** Until keys have been loaded once, a failed attempt is retried
///   after 100 ms, then 200 ms, 400 ms, … doubling up to the cooldown (attempts at 0, 0.1,
///   0.3, 0.7, 1.5, 3.1 s, …, 25.5, 51.1 s, then one per cooldown), by lookups and by the
///   background refresh alike, still single-flight: a service started together with its issuer
///   is ready within about a second of the issuer listening (an issuer that takes longer is
///   noticed at most about as long after it listens as it took to come up, and never more than
///   a cooldown after), and a flood of requests meanwhile costs one request per step. After
///   the first success the rules above apply.
/// * **Background refresh** ([`spawn_background_refresh`](Self::spawn_background_refresh))
///   before the issuer's `Cache-Control: max-age` runs out, clamped into
///   `[min, max]` refresh interval, with `If-None-Match` when the issuer sent an `ETag`. A long
///   `max-age` never delays an unknown-`kid` refresh: that is governed by the cooldown only.
///   Without the background task, a request that finds the set due schedules a refresh on the
///   current tokio runtime (it does not wait for it).
/// * **Stale-if-error.** A failed refresh keeps the last good set, for at most the configured
///   maximum staleness; after that verification answers `keys_unavailable` (503).
/// * **Start-up needs no issuer.** Construction does no I/O. Until keys arrive,
///   [`is_ready`](KeySource::is_ready) is `false` and lookups fail with `keys_unavailable`.
///
/// # Why the cooldown defaults to 30 s
///
/// The cooldown is what an attacker who invents `kid`s can make this store cost the issuer, per
/// replica: one fetch per cooldown. A Keycloak JWKS of 2–3 keys is 3–5 KB (about 1.5 KB per RSA
/// key with its certificate), served from Keycloak's in-memory key cache; with no connection
/// pool each fetch also costs a TLS handshake (under a millisecond of server CPU). At 30 s that
/// is 2,880 requests and about 15 MB a day per replica under a permanent flood: noise, even for
/// a hundred replicas (3 requests a second). At 5 s it would be 17,280 requests and about 90 MB
/// a day per replica, still cheap; at 1 s, a hundred replicas would send Keycloak 100 TLS
/// handshakes a second, which is measurable.
///
/// What a shorter cooldown would buy is small now that the initial fetch and background
/// refreshes do not start it: a genuine rotation waits only if another unknown-`kid` refresh
/// (a flood, or tokens of a key the issuer has withdrawn) happened less than a cooldown before,
/// and then for at most the rest of that cooldown. Neither the cost nor the benefit argues for
/// moving away from 30 s, the figure other JWKS clients use too (panva/jose's cooldown, Nimbus
/// JOSE's rate limit). A service that rotates often and runs few replicas can lower it
/// ([`KeyStoreConfig::refresh_cooldown`]) without burdening its issuer.
///
/// Cloning shares the store.
#[derive(Clone)]
pub struct RemoteKeySet {
    shared: Arc<Shared>,
}

struct Shared {
    source: Source,
    label: Box<str>,
    config: KeyStoreConfig,
    http: Http,
    state: ArcSwap<Snapshot>,
    /// Held for the whole of a fetch: single-flight.
    flight: Arc<Mutex<FlightState>>,
    /// Whether a fetch is running now (lets the suppressed path skip the mutex).
    in_flight: AtomicBool,
    /// Whether an opportunistic refresh task has been spawned and not finished.
    refresh_spawned: AtomicBool,
    /// Background refresh loops running.
    background: AtomicUsize,
    counters: Counters,
    /// The `issuer` label of the metrics (nothing without the feature `metrics`).
    metrics: KeyStoreMetrics,
}

#[derive(Default)]
struct Counters {
    fetches_ok: Counter,
    fetches_not_modified: Counter,
    fetches_failed: Counter,
    discovery_fetches: Counter,
    suppressed: Counter,
    shared: Counter,
}

/// The immutable state readers see.
struct Snapshot {
    keys: KeySet,
    /// When the issuer last confirmed `keys` (200 or 304); `None` before the first success.
    confirmed_at: Option<Instant>,
    /// When the last fetch attempt started, whatever its outcome.
    attempted_at: Option<Instant>,
    /// When the last refresh a lookup caused on a loaded set (unknown `kid`, too-stale set)
    /// started: the cooldown counts from it.
    miss_at: Option<Instant>,
    /// Completed attempts: lets a caller that waited for the flight see that one happened.
    generation: u64,
    /// When the background refresh should run next.
    next_refresh: Instant,
    /// Consecutive failed attempts.
    failures: u32,
    last_error: Option<FetchError>,
}

impl Snapshot {
    /// Before the first fetch: no keys, nothing attempted, the background refresh due at `now`.
    fn empty(now: Instant) -> Self {
        Self {
            keys: KeySet::default(),
            confirmed_at: None,
            attempted_at: None,
            miss_at: None,
            generation: 0,
            next_refresh: now,
            failures: 0,
            last_error: None,
        }
    }
}

/// State only the flight holder touches.
#[derive(Default)]
struct FlightState {
    jwks_uri: Option<HttpUrl>,
    etag: Option<String>,
}

/// Why a refresh is wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// A lookup missed (unknown kid, empty or too-stale set): cooldown applies.
    Miss { observed: u64 },
    /// The set is due by its refresh interval: cooldown applies, and it must still be due.
    Scheduled,
    /// Explicitly requested: neither applies.
    Forced,
}

enum Flight {
    Fetched(Result<RefreshOutcome, FetchError>),
    /// Another caller's attempt completed while this one waited.
    Shared,
    Suppressed,
    NotDue,
}

impl RemoteKeySet {
    /// Keys of `issuer`, found through `{issuer}/.well-known/openid-configuration` (a trailing
    /// `/` of the issuer is dropped before appending, as OIDC Discovery says). The document's
    /// `issuer` must equal `issuer` exactly.
    ///
    /// # Errors
    /// [`ConfigError`] if `issuer` is not an http(s) URL or the HTTP client cannot be built.
    pub fn from_issuer(issuer: &str, config: KeyStoreConfig) -> Result<Self, ConfigError> {
        let url = discovery_url_for(issuer).map_err(|_| ConfigError::InvalidUrl("issuer"))?;
        Self::from_discovery_url(issuer, url.as_str(), config)
    }

    /// Keys of `issuer`, found through the discovery document at `discovery_url` (for an issuer
    /// reachable at another address than its name, e.g. inside a cluster). The document's
    /// `issuer` must still equal `issuer` exactly.
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid URL or HTTP client.
    pub fn from_discovery_url(
        issuer: &str,
        discovery_url: &str,
        config: KeyStoreConfig,
    ) -> Result<Self, ConfigError> {
        let url =
            HttpUrl::parse(discovery_url).map_err(|_| ConfigError::InvalidUrl("discovery url"))?;
        Self::new(
            Source::Discovery {
                issuer: issuer.into(),
                url,
            },
            issuer.into(),
            config,
            KeyStoreMetrics::new(issuer),
        )
    }

    /// Keys from the JWKS document at `jwks_url`, without discovery.
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid URL or HTTP client.
    pub fn from_jwks_url(jwks_url: &str, config: KeyStoreConfig) -> Result<Self, ConfigError> {
        let url = HttpUrl::parse(jwks_url).map_err(|_| ConfigError::InvalidUrl("jwks url"))?;
        let label: Box<str> = url.as_str().into();
        let metrics = KeyStoreMetrics::new(&label);
        Self::new(Source::Jwks { url }, label, config, metrics)
    }

    /// [`from_jwks_url`](Self::from_jwks_url) for a verifier of `issuer`: the metrics are
    /// labelled with the issuer, not the URL.
    pub(crate) fn from_jwks_url_of(
        issuer: &str,
        jwks_url: &str,
        config: KeyStoreConfig,
    ) -> Result<Self, ConfigError> {
        let url = HttpUrl::parse(jwks_url).map_err(|_| ConfigError::InvalidUrl("jwks url"))?;
        let label = url.as_str().into();
        Self::new(
            Source::Jwks { url },
            label,
            config,
            KeyStoreMetrics::new(issuer),
        )
    }

    fn new(
        source: Source,
        label: Box<str>,
        config: KeyStoreConfig,
        metrics: KeyStoreMetrics,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        // Same-origin redirects only, no connection pool (fetches are rare and a pool keeps idle
        // timers alive), no retries (the refresh schedule is the retry); a custom client keeps
        // its own timeouts.
        let http = HttpConfig {
            client: config.http_client.clone(),
            connect_timeout: config.connect_timeout,
            timeout: config
                .request_timeout
                .filter(|_| config.http_client.is_none()),
            retry: RetryPolicy::none(),
            max_response_bytes: config.max_response_bytes,
            redirects: Redirects::SameOrigin,
            keep_alive: false,
        }
        .build()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        let now = Instant::now();
        metrics.ready(false);
        Ok(Self {
            shared: Arc::new(Shared {
                source,
                label,
                config,
                http,
                state: ArcSwap::from_pointee(Snapshot::empty(now)),
                flight: Arc::new(Mutex::new(FlightState::default())),
                in_flight: AtomicBool::new(false),
                refresh_spawned: AtomicBool::new(false),
                background: AtomicUsize::new(0),
                counters: Counters::default(),
                metrics,
            }),
        })
    }

    /// The current key set (empty before the first successful fetch).
    pub fn current(&self) -> KeySet {
        self.shared.state.load().keys.clone()
    }

    /// Whether the store can verify now: keys loaded and not older than the maximum staleness.
    pub fn is_ready(&self) -> bool {
        let snap = self.shared.state.load();
        self.shared.usable(&snap, Instant::now()).is_ok()
    }

    /// Whether a key with this RFC 7638 thumbprint is in the current set and the set is usable.
    /// Cheap (no allocation, no lock): the verified-token cache calls it on every hit.
    pub fn trusts(&self, thumbprint: &str) -> bool {
        let now = Instant::now();
        let snap = self.shared.state.load();
        if self.shared.usable(&snap, now).is_err() {
            return false;
        }
        self.shared.maybe_schedule(&snap, now);
        snap.keys.contains_thumbprint(thumbprint)
    }

    /// Fetches the key set now, ignoring the cooldown and the start-up backoff (single-flight
    /// still applies: if a fetch is running, this waits for it and then fetches again). Use it
    /// to prefetch at start-up. A successful explicit refresh does not start the cooldown.
    ///
    /// # Errors
    /// The [`FetchError`] of the attempt; the previous key set stays in use.
    pub async fn refresh_now(&self) -> Result<RefreshOutcome, FetchError> {
        match Box::pin(self.shared.clone().refresh(Trigger::Forced)).await {
            Flight::Fetched(result) => result,
            // Forced refreshes always fetch.
            Flight::Shared | Flight::Suppressed | Flight::NotDue => Ok(RefreshOutcome::NotModified),
        }
    }

    /// A future that keeps the key set fresh: it fetches at once, then whenever the set is due
    /// (by `Cache-Control` max-age clamped into the refresh-interval bounds, or the default
    /// interval), retrying failures with exponential backoff from the cooldown up to the
    /// maximum interval; until keys have been loaded once, from 100 ms up to the cooldown
    /// instead. It ends when the last clone of this store is dropped.
    ///
    /// Spawn it on the runtime of your choice, or use
    /// [`spawn_background_refresh`](Self::spawn_background_refresh).
    pub fn background_refresh(&self) -> impl Future<Output = ()> + Send + 'static {
        background_loop(Arc::downgrade(&self.shared))
    }

    /// Spawns [`background_refresh`](Self::background_refresh) on the current tokio runtime.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    pub fn spawn_background_refresh(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.background_refresh())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> KeyStoreStats {
        let c = &self.shared.counters;
        let snap = self.shared.state.load();
        let now = Instant::now();
        KeyStoreStats {
            fetches_ok: c.fetches_ok.get(),
            fetches_not_modified: c.fetches_not_modified.get(),
            fetches_failed: c.fetches_failed.get(),
            discovery_fetches: c.discovery_fetches.get(),
            refreshes_suppressed: c.suppressed.get(),
            refreshes_shared: c.shared.get(),
            keys: snap.keys.len(),
            ready: self.shared.usable(&snap, now).is_ok(),
            last_success_age: snap.confirmed_at.map(|t| now.saturating_duration_since(t)),
            last_error: snap.last_error.clone(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &KeyStoreConfig {
        &self.shared.config
    }
}

impl fmt::Debug for RemoteKeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.shared.state.load();
        f.debug_struct("RemoteKeySet")
            .field("source", &self.shared.source)
            .field("keys", &snap.keys.len())
            .field("generation", &snap.generation)
            .finish_non_exhaustive()
    }
}

impl KeySource for RemoteKeySet {
    fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Future<Output = Result<Arc<VerificationKey>, AuthError>> + Send {
        self.shared.key_for(kid, alg)
    }

    fn is_ready(&self) -> bool {
        RemoteKeySet::is_ready(self)
    }
}

impl Shared {
    fn usable(&self, snap: &Snapshot, now: Instant) -> Result<(), AuthError> {
        match snap.confirmed_at {
            None => Err(AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded)),
            Some(at) if now.saturating_duration_since(at) > self.config.max_staleness => {
                Err(AuthError::KeysUnavailable(KeysUnavailableReason::TooStale))
            }
            Some(_) => Ok(()),
        }
    }

    /// How long a rate-limited refresh (a lookup's or a scheduled one) must still wait: zero
    /// when it may start now.
    ///
    /// * Never loaded: the start-up backoff after the last failed attempt.
    /// * Loaded: the cooldown after the last refresh a lookup caused, and, while the issuer is
    ///   failing, after the last failed attempt. The initial fetch, scheduled and explicit
    ///   refreshes do not count, so a key published right after them is picked up at once.
    fn wait_left(&self, snap: &Snapshot, now: Instant) -> Duration {
        let left = |at: Option<Instant>, wait: Duration| {
            at.map_or(Duration::ZERO, |at| {
                wait.saturating_sub(now.saturating_duration_since(at))
            })
        };
        let failing = (snap.failures > 0).then_some(snap.attempted_at).flatten();
        if snap.confirmed_at.is_none() {
            return left(failing, self.startup_backoff(snap.failures));
        }
        let cooldown = self.config.refresh_cooldown;
        left(snap.miss_at, cooldown).max(left(failing, cooldown))
    }

    fn in_cooldown(&self, snap: &Snapshot, now: Instant) -> bool {
        !self.wait_left(snap, now).is_zero()
    }

    /// The hit path's look at the schedule: when the set is due and nothing keeps it fresh,
    /// spawn one refresh on the current runtime (if any) without waiting for it.
    fn maybe_schedule(self: &Arc<Self>, snap: &Snapshot, now: Instant) {
        if now < snap.next_refresh
            || self.background.load(Ordering::Relaxed) > 0
            || self.in_flight.load(Ordering::Relaxed)
            || self.in_cooldown(snap, now)
        {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self
            .refresh_spawned
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let this = Arc::clone(self);
        handle.spawn(async move {
            let _ = this.clone().refresh(Trigger::Scheduled).await;
            this.refresh_spawned.store(false, Ordering::Release);
        });
    }

    async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, AuthError> {
        let observed = {
            let now = Instant::now();
            let snap = self.state.load();
            if self.usable(&snap, now).is_ok() {
                match snap.keys.find(kid, alg) {
                    Ok(key) => {
                        self.maybe_schedule(&snap, now);
                        return Ok(Arc::clone(key));
                    }
                    // Only an unknown kid may refresh; a kid that exists but cannot be used with
                    // this alg is the token's problem, not a sign of rotation.
                    Err(AuthError::UnknownKid) => {}
                    Err(other) => return Err(other),
                }
            }
            snap.generation
        };
        match Box::pin(self.clone().refresh(Trigger::Miss { observed })).await {
            Flight::Suppressed => {
                tracing::debug!(
                    issuer = %self.label,
                    kid = ?kid.map(Untrusted::new),
                    "key refresh suppressed by the cooldown or the start-up backoff"
                );
            }
            Flight::Fetched(_) | Flight::Shared | Flight::NotDue => {}
        }
        let snap = self.state.load();
        self.usable(&snap, Instant::now())?;
        snap.keys.find(kid, alg).cloned()
    }

    /// Runs or joins a refresh. The fetch itself runs in a spawned task holding the flight lock,
    /// so a caller that gives up (a client disconnect) cancels neither the fetch nor the
    /// cooldown bookkeeping.
    async fn refresh(self: Arc<Self>, trigger: Trigger) -> Flight {
        if let Trigger::Miss { observed } = trigger {
            // Lock-free fast path for floods: nothing in flight and within the cooldown.
            if !self.in_flight.load(Ordering::Acquire) {
                let snap = self.state.load();
                if snap.generation != observed {
                    return Flight::Shared;
                }
                if self.in_cooldown(&snap, Instant::now()) {
                    self.counters.suppressed.incr();
                    return Flight::Suppressed;
                }
            }
        }
        let guard = Arc::clone(&self.flight).lock_owned().await;
        let now = Instant::now();
        let snap = self.state.load_full();
        match trigger {
            Trigger::Miss { observed } => {
                if snap.generation != observed {
                    self.counters.shared.incr();
                    return Flight::Shared;
                }
                if self.in_cooldown(&snap, now) {
                    self.counters.suppressed.incr();
                    return Flight::Suppressed;
                }
            }
            Trigger::Scheduled => {
                if now < snap.next_refresh || self.in_cooldown(&snap, now) {
                    return Flight::NotDue;
                }
            }
            Trigger::Forced => {}
        }
        self.in_flight.store(true, Ordering::Release);
        let this = Arc::clone(&self);
        let task = async move {
            let mut guard = guard;
            let result = this.fetch_and_store(&mut guard, &snap, trigger).await;
            this.in_flight.store(false, Ordering::Release);
            drop(guard);
            result
        };
        let result = match tokio::runtime::Handle::try_current() {
            Ok(handle) => match handle.spawn(task).await {
                Ok(result) => result,
                Err(_) => {
                    // The task panicked or the runtime is shutting down.
                    self.in_flight.store(false, Ordering::Release);
                    Err(FetchError::Transport {
                        url: self.label.to_string(),
                        message: "refresh task did not complete".into(),
                    })
                }
            },
            Err(_) => task.await,
        };
        Flight::Fetched(result)
    }

    async fn fetch_and_store(
        &self,
        flight: &mut FlightState,
        prev: &Snapshot,
        trigger: Trigger,
    ) -> Result<RefreshOutcome, FetchError> {
        let started = Instant::now();
        // Only a lookup's refresh of a loaded set starts the cooldown; the first load (however
        // triggered), scheduled and explicit refreshes do not.
        let miss_at = match trigger {
            Trigger::Miss { .. } if prev.confirmed_at.is_some() => Some(started),
            Trigger::Miss { .. } | Trigger::Scheduled | Trigger::Forced => prev.miss_at,
        };
        let result = self.fetch(flight).await;
        let now = Instant::now();
        let (next, outcome) = match result {
            Ok(Fetched::Keys {
                keys,
                skipped,
                max_age,
                etag,
            }) => {
                flight.etag = etag;
                self.counters.fetches_ok.incr();
                self.metrics.fetched(OUTCOME_OK);
                for s in &skipped {
                    tracing::debug!(
                        issuer = %self.label,
                        kid = ?s.kid.as_deref().map(Untrusted::new),
                        reason = %s.reason,
                        "jwks key skipped"
                    );
                }
                let changed = !same_keys(&prev.keys, &keys);
                if changed {
                    tracing::info!(
                        issuer = %self.label,
                        keys = keys.len(),
                        skipped = skipped.len(),
                        "key set loaded"
                    );
                }
                let outcome = RefreshOutcome::Updated {
                    keys: keys.len(),
                    skipped: skipped.len(),
                };
                (
                    Snapshot {
                        keys,
                        confirmed_at: Some(now),
                        attempted_at: Some(started),
                        miss_at,
                        generation: prev.generation.wrapping_add(1),
                        next_refresh: now + self.interval(max_age),
                        failures: 0,
                        last_error: None,
                    },
                    Ok(outcome),
                )
            }
            Ok(Fetched::NotModified { max_age }) => {
                self.counters.fetches_not_modified.incr();
                self.metrics.fetched(OUTCOME_NOT_MODIFIED);
                (
                    Snapshot {
                        keys: prev.keys.clone(),
                        confirmed_at: Some(now),
                        attempted_at: Some(started),
                        miss_at,
                        generation: prev.generation.wrapping_add(1),
                        next_refresh: now + self.interval(max_age),
                        failures: 0,
                        last_error: None,
                    },
                    Ok(RefreshOutcome::NotModified),
                )
            }
            Err(error) => {
                self.counters.fetches_failed.incr();
                self.metrics.fetched(error.code().as_str());
                let failures = prev.failures.saturating_add(1);
                tracing::warn!(
                    issuer = %self.label,
                    error = %error,
                    code = %error.code(),
                    failures,
                    keys = prev.keys.len(),
                    "key set refresh failed; keeping the previous set"
                );
                (
                    Snapshot {
                        keys: prev.keys.clone(),
                        confirmed_at: prev.confirmed_at,
                        attempted_at: Some(started),
                        miss_at,
                        generation: prev.generation.wrapping_add(1),
                        next_refresh: now + self.backoff(failures, prev.confirmed_at.is_some()),
                        failures,
                        last_error: Some(error.clone()),
                    },
                    Err(error),
                )
            }
        };
        self.metrics.ready(self.usable(&next, now).is_ok());
        self.state.store(Arc::new(next));
        outcome
    }

    async fn fetch(&self, flight: &mut FlightState) -> Result<Fetched, FetchError> {
        let jwks_uri = match &self.source {
            Source::Jwks { url } => url.clone(),
            Source::Discovery { issuer, url } => match &flight.jwks_uri {
                Some(uri) => uri.clone(),
                None => {
                    self.counters.discovery_fetches.incr();
                    let uri = fetch::discover(&self.http, url, issuer).await?;
                    flight.etag = None;
                    flight.jwks_uri = Some(uri.clone());
                    uri
                }
            },
        };
        let result = fetch::fetch_jwks(
            &self.http,
            &jwks_uri,
            flight.etag.as_deref(),
            self.config.max_keys,
        )
        .await;
        if result.is_err() {
            // Rediscover next time: the issuer may have moved its keys.
            flight.jwks_uri = None;
        }
        result
    }

    /// The refresh interval after a success: 90% of `max-age` (so the refresh lands before the
    /// document expires), or the default, clamped into the bounds.
    fn interval(&self, max_age: Option<Duration>) -> Duration {
        let c = &self.config;
        let base = max_age.map_or(c.default_refresh_interval, |age| age - age / 10);
        base.clamp(
            c.min_refresh_interval,
            c.max_refresh_interval.max(c.min_refresh_interval),
        )
    }

    /// The delay after `failures` consecutive failures: the start-up backoff while nothing is
    /// loaded, otherwise doubling from the cooldown up to the maximum refresh interval.
    fn backoff(&self, failures: u32, loaded: bool) -> Duration {
        let c = &self.config;
        if !loaded {
            return self.startup_backoff(failures);
        }
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        c.refresh_cooldown
            .saturating_mul(factor)
            .min(c.max_refresh_interval)
            .max(c.refresh_cooldown)
    }

    /// The delay after `failures` consecutive failures of a store that has never loaded keys:
    /// 100 ms doubling, at most the cooldown (so never longer than a loaded store would wait).
    fn startup_backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        STARTUP_RETRY
            .saturating_mul(factor)
            .min(self.config.refresh_cooldown)
    }
}

/// Clears the "background refresh running" flag when the loop ends or is dropped, so the hit
/// path's opportunistic refresh takes over again.
struct BackgroundFlag(Weak<Shared>);

impl Drop for BackgroundFlag {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.background.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

async fn background_loop(weak: Weak<Shared>) {
    let Some(shared) = weak.upgrade() else { return };
    shared.background.fetch_add(1, Ordering::AcqRel);
    drop(shared);
    let _flag = BackgroundFlag(weak.clone());
    loop {
        let delay = {
            let Some(shared) = weak.upgrade() else { return };
            let snap = shared.state.load();
            let now = Instant::now();
            snap.next_refresh
                .saturating_duration_since(now)
                .max(shared.wait_left(&snap, now))
        };
        tokio::time::sleep(delay).await;
        let Some(shared) = weak.upgrade() else { return };
        let _ = shared.refresh(Trigger::Scheduled).await;
    }
}

fn same_keys(a: &KeySet, b: &KeySet) -> bool {
    a.len() == b.len()
        && a.keys()
            .iter()
            .zip(b.keys())
            .all(|(x, y)| x.thumbprint() == y.thumbprint() && x.kid() == y.kid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> RemoteKeySet {
        RemoteKeySet::from_jwks_url("https://idp.example/certs", KeyStoreConfig::default()).unwrap()
    }

    #[test]
    fn refresh_interval_is_ninety_percent_of_max_age_within_bounds() {
        let s = store();
        let secs = Duration::from_secs;
        assert_eq!(s.shared.interval(None), secs(300));
        assert_eq!(s.shared.interval(Some(secs(600))), secs(540));
        assert_eq!(s.shared.interval(Some(secs(0))), secs(60));
        assert_eq!(s.shared.interval(Some(secs(30))), secs(60));
        assert_eq!(s.shared.interval(Some(secs(86_400))), secs(900));
    }

    #[test]
    fn failures_back_off_from_the_cooldown_to_the_maximum_interval() {
        let s = store();
        let secs = Duration::from_secs;
        assert_eq!(s.shared.backoff(1, true), secs(30));
        assert_eq!(s.shared.backoff(2, true), secs(60));
        assert_eq!(s.shared.backoff(5, true), secs(480));
        assert_eq!(s.shared.backoff(6, true), secs(900));
        assert_eq!(s.shared.backoff(u32::MAX, true), secs(900));
    }

    #[test]
    fn before_the_first_load_failures_back_off_from_100_ms_to_the_cooldown() {
        let s = store();
        let ms = Duration::from_millis;
        let delays: Vec<_> = (1..=11).map(|n| s.shared.backoff(n, false)).collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 25_600, 30_000, 30_000
            ]
            .map(ms)
        );
        assert_eq!(s.shared.backoff(u32::MAX, false), ms(30_000));
        // Never longer than the cooldown, however short that is configured.
        let short = RemoteKeySet::from_jwks_url(
            "https://idp.example/certs",
            KeyStoreConfig::default().refresh_cooldown(ms(250)),
        )
        .unwrap();
        assert_eq!(short.shared.backoff(1, false), ms(100));
        assert_eq!(short.shared.backoff(3, false), ms(250));
        let none = RemoteKeySet::from_jwks_url(
            "https://idp.example/certs",
            KeyStoreConfig::default().refresh_cooldown(Duration::ZERO),
        )
        .unwrap();
        assert_eq!(none.shared.backoff(1, false), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn what_a_rate_limited_refresh_waits_for() {
        let s = store();
        let wait = |snap: &Snapshot| s.shared.wait_left(snap, Instant::now());
        let t0 = Instant::now();
        tokio::time::advance(Duration::from_secs(10)).await;
        let ago = |secs: u64| Some(t0 + Duration::from_secs(10 - secs));
        let secs = Duration::from_secs;

        // Nothing loaded, nothing tried: go.
        assert_eq!(wait(&Snapshot::empty(t0)), Duration::ZERO);
        // Nothing loaded, 5 failures (the last one 1 s ago): the rest of its 1.6 s step.
        let snap = Snapshot {
            attempted_at: ago(1),
            failures: 5,
            ..Snapshot::empty(t0)
        };
        assert_eq!(wait(&snap), Duration::from_millis(600));

        // Loaded by the initial fetch or a background refresh a second ago: go (a rotation is
        // picked up at once).
        let loaded = Snapshot {
            confirmed_at: ago(1),
            attempted_at: ago(1),
            ..Snapshot::empty(t0)
        };
        assert_eq!(wait(&loaded), Duration::ZERO);
        // A lookup's refresh 10 s ago: the rest of the cooldown, whatever came after it.
        let after_miss = Snapshot {
            miss_at: ago(10),
            ..loaded
        };
        assert_eq!(wait(&after_miss), secs(20));
        // Failing: the cooldown from the last failed attempt, not the start-up backoff.
        let failing = Snapshot {
            confirmed_at: ago(9),
            attempted_at: ago(4),
            miss_at: ago(9),
            failures: 1,
            ..Snapshot::empty(t0)
        };
        assert_eq!(wait(&failing), secs(26));
        // ...and once the issuer answers again, only the lookup's cooldown is left.
        let recovered = Snapshot {
            confirmed_at: ago(2),
            attempted_at: ago(2),
            failures: 0,
            ..failing
        };
        assert_eq!(wait(&recovered), secs(21));
    }

    #[test]
    fn discovery_url_drops_a_trailing_slash_and_rejects_non_http() {
        assert_eq!(
            discovery_url_for("https://kc/realms/a/").unwrap().as_str(),
            "https://kc/realms/a/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url_for("http://kc:8080/realms/a")
                .unwrap()
                .as_str(),
            "http://kc:8080/realms/a/.well-known/openid-configuration"
        );
        assert!(discovery_url_for("file:///etc").is_err());
        assert!(discovery_url_for("kc/realms/a").is_err());
    }

    #[test]
    fn a_new_store_is_not_ready_and_trusts_nothing() {
        let s = store();
        assert!(!s.is_ready());
        assert!(!s.trusts("anything"));
        assert!(s.current().is_empty());
        assert_eq!(s.stats(), KeyStoreStats::default());
    }
}

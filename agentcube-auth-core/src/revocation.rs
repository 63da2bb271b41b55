//! Revocation: refusing tokens that are genuine and current but were taken back after they were
//! issued — a session logged out at the identity provider, a subject or a client revoked by hand.
//!
//! A [`Revocation`] names what is revoked ([`RevocationTarget`]: a session `sid`, a subject
//! `sub` or a client `azp`) for one issuer, and when ([`Revocation::revoked_at`], seconds since
//! the epoch). A token of that issuer matching the target is refused with
//! [`AuthError::TokenRevoked`] when it was issued at or before that time (`iat <=
//! revoked_at`): NumericDates have whole seconds, so a token issued in the very second of the
//! revocation is refused too, rather than let through. A token without `iat` cannot show that
//! it is newer and is refused as well. Tokens issued later are not affected: a user who logs in
//! again, or a service account whose client was revoked, gets working tokens once the
//! revocation is behind it.
//!
//! A [`RevocationSet`] holds revocations. Verifiers ask it on every verification, verified-token
//! cache hits included, through a [`RevocationProbe`] built once per token, so the check costs
//! no allocation and no hashing:
//!
//! - the probe holds the keyed digests ([`RevocationKey`]) of the token's `sid`, `sub` and
//!   client, and the set is a map from such digests to revocation times;
//! - the set has a generation that changes whenever a revocation is added; a probe remembers
//!   the generation it was last found clean at, so while nothing is revoked a repeated check is
//!   one atomic load and one comparison ([`RevocationSet::check`]).
//!
//! Revocations are kept for a time to live that must be at least the longest access-token
//! lifetime (plus the verifiers' leeway): after that, every token issued before the revocation
//! has expired anyway. [`MemoryRevocationSet`] is the in-process implementation; a set shared by
//! several replicas (Redis, in `agentcube-oidc`) keeps one as its local mirror.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ::http::StatusCode;

use crate::claims::Claims;
use crate::clock::{Clock, SystemClock};
use crate::digest::{Digest, DigestHasher};
use crate::error::AuthError;
use crate::principal::Principal;
use crate::rejection::{Code, Rejection};

/// What a revocation applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RevocationKind {
    /// One login session (`sid`): what an OpenID Connect back-channel logout names.
    Session,
    /// Every token of a subject (`sub`).
    Subject,
    /// Every token issued to a client (`azp`, else `client_id`): a service account, or a whole
    /// application.
    Client,
}

impl RevocationKind {
    /// Every kind.
    pub const ALL: [RevocationKind; 3] = [Self::Session, Self::Subject, Self::Client];

    /// The claim the kind matches: `sid`, `sub` or `client`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Session => "sid",
            Self::Subject => "sub",
            Self::Client => "client",
        }
    }

    /// The kind named by [`as_str`](Self::as_str).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for RevocationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The session, subject or client a revocation names.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationTarget {
    /// A session id (`sid`).
    Session(Box<str>),
    /// A subject (`sub`).
    Subject(Box<str>),
    /// A client id (`azp`, else `client_id`).
    Client(Box<str>),
}

impl RevocationTarget {
    /// The kind of target.
    pub fn kind(&self) -> RevocationKind {
        match self {
            Self::Session(_) => RevocationKind::Session,
            Self::Subject(_) => RevocationKind::Subject,
            Self::Client(_) => RevocationKind::Client,
        }
    }

    /// The session id, subject or client id.
    pub fn value(&self) -> &str {
        match self {
            Self::Session(v) | Self::Subject(v) | Self::Client(v) => v,
        }
    }

    /// The target of `kind` with `value`.
    pub fn new(kind: RevocationKind, value: impl Into<Box<str>>) -> Self {
        match kind {
            RevocationKind::Session => Self::Session(value.into()),
            RevocationKind::Subject => Self::Subject(value.into()),
            RevocationKind::Client => Self::Client(value.into()),
        }
    }
}

/// A session id is shown as `<session>` (logs and debug output need not carry it); subjects and
/// client ids are identifiers and are shown.
impl fmt::Debug for RevocationTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(_) => f.write_str("Session(<session>)"),
            Self::Subject(v) => f.debug_tuple("Subject").field(v).finish(),
            Self::Client(v) => f.debug_tuple("Client").field(v).finish(),
        }
    }
}

/// One revocation: the tokens of `issuer` matching `target` and issued at or before
/// `revoked_at` are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    issuer: Box<str>,
    target: RevocationTarget,
    revoked_at: i64,
}

impl Revocation {
    /// A revocation of `target`'s tokens of `issuer` issued at or before `revoked_at` (seconds
    /// since the epoch).
    pub fn new(issuer: impl Into<Box<str>>, target: RevocationTarget, revoked_at: i64) -> Self {
        Self {
            issuer: issuer.into(),
            target,
            revoked_at,
        }
    }

    /// The issuer whose tokens are revoked (compared exactly with `iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// What is revoked.
    pub fn target(&self) -> &RevocationTarget {
        &self.target
    }

    /// Tokens issued at or before this time (seconds since the epoch) are refused.
    pub fn revoked_at(&self) -> i64 {
        self.revoked_at
    }

    /// The key of this revocation in a [`RevocationSet`].
    pub fn key(&self) -> RevocationKey {
        RevocationKey::new(&self.issuer, self.target.kind(), self.target.value())
    }

    /// Whether a token issued at `issued_at` is covered (`iat <= revoked_at`; a token without
    /// `iat` is).
    pub fn covers(&self, issued_at: Option<i64>) -> bool {
        covers(self.revoked_at, issued_at)
    }

    /// Whether `principal` (as verified from a token, whose claims it keeps) is one this
    /// revocation refuses: same issuer, the target matches its `sid`, subject or client, and
    /// its token was issued at or before the revocation. For caches of things made for a
    /// principal (minted internal tokens).
    pub fn matches(&self, principal: &Principal) -> bool {
        if principal.issuer() != &*self.issuer {
            return false;
        }
        let matched = match &self.target {
            RevocationTarget::Subject(sub) => principal.subject() == &**sub,
            RevocationTarget::Client(client) => principal.client_id() == Some(&**client),
            RevocationTarget::Session(sid) => {
                principal.claims().string("sid").ok().flatten() == Some(&**sid)
            }
        };
        matched && self.covers(principal.claims().issued_at().ok().flatten())
    }
}

fn covers(revoked_at: i64, issued_at: Option<i64>) -> bool {
    issued_at.is_none_or(|iat| iat <= revoked_at)
}

/// The key of a revocation in a set: a keyed 128-bit digest of (kind, issuer, value) under the
/// process's random key (see [`crate::digest`]), so the set holds no identifiers and a lookup
/// hashes nothing. Digests are per process: a set shared between processes stores the
/// identifiers themselves and each process keys its own mirror.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RevocationKey(Digest);

impl RevocationKey {
    /// The key of `kind` `value` of `issuer`.
    pub fn new(issuer: &str, kind: RevocationKind, value: &str) -> Self {
        Self(Digest::of_fields([
            kind.as_str().as_bytes(),
            issuer.as_bytes(),
            value.as_bytes(),
        ]))
    }
}

impl fmt::Debug for RevocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RevocationKey(..)")
    }
}

/// What a [`RevocationSet`] needs to know about one verified token: the keys of its `sid`,
/// `sub` and client, and its `iat`. Built once per token (a verifier keeps it with its cached
/// entry) so that a check hashes nothing; it also remembers the set generation at which it was
/// last found clean.
pub struct RevocationProbe {
    keys: [Option<RevocationKey>; 3],
    issued_at: Option<i64>,
    clean_at: AtomicU64,
}

/// Never a generation a set reports, so a new probe is always checked.
const NEVER_CHECKED: u64 = u64::MAX;

impl RevocationProbe {
    /// A probe for a token of `issuer` with `subject`, and `session` (`sid`), `client` (`azp`)
    /// and `issued_at` (`iat`) when present.
    pub fn new(
        issuer: &str,
        subject: &str,
        session: Option<&str>,
        client: Option<&str>,
        issued_at: Option<i64>,
    ) -> Self {
        Self {
            keys: [
                session.map(|v| RevocationKey::new(issuer, RevocationKind::Session, v)),
                Some(RevocationKey::new(issuer, RevocationKind::Subject, subject)),
                client.map(|v| RevocationKey::new(issuer, RevocationKind::Client, v)),
            ],
            issued_at,
            clean_at: AtomicU64::new(NEVER_CHECKED),
        }
    }

    /// A probe for verified `claims` of `issuer`: `sub`, `sid`, the client (`azp`, else
    /// `client_id`, else `clientId`) and `iat`.
    ///
    /// # Errors
    /// [`AuthError::InvalidClaim`] when one of them has the wrong JSON type,
    /// [`AuthError::MissingClaim`] without a `sub`.
    pub fn from_claims(issuer: &str, claims: &Claims) -> Result<Self, AuthError> {
        let subject = crate::jose::require_subject(claims)?;
        let session = claims.string("sid")?;
        let client = match claims.authorized_party()? {
            Some(azp) => Some(azp),
            None => match claims.string("client_id")? {
                Some(id) => Some(id),
                None => claims.string("clientId")?,
            },
        };
        Ok(Self::new(
            issuer,
            subject,
            session,
            client,
            claims.issued_at()?,
        ))
    }

    /// The token's `iat`.
    pub fn issued_at(&self) -> Option<i64> {
        self.issued_at
    }

    /// The keys to look up: `sid` (if any), `sub`, client (if any).
    pub fn keys(&self) -> impl Iterator<Item = &RevocationKey> {
        self.keys.iter().flatten()
    }

    /// Whether the probe was found clean at `generation` (and nothing was revoked since).
    pub fn is_clean_at(&self, generation: u64) -> bool {
        self.clean_at.load(Ordering::Relaxed) == generation
    }

    /// Records that the probe was found clean at `generation`.
    pub fn mark_clean_at(&self, generation: u64) {
        self.clean_at.store(generation, Ordering::Relaxed);
    }
}

impl Clone for RevocationProbe {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys,
            issued_at: self.issued_at,
            clean_at: AtomicU64::new(self.clean_at.load(Ordering::Relaxed)),
        }
    }
}

impl fmt::Debug for RevocationProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevocationProbe")
            .field("keys", &self.keys().count())
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

/// Why a revocation could not be recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The set holds its maximum of live revocations (after dropping expired ones).
    #[error("revocation set is full ({capacity} entries)")]
    Full {
        /// The configured maximum.
        capacity: usize,
    },
    /// The shared store could not be reached; the revocation holds in this process only.
    #[error("revocation store unavailable: {0}")]
    Unavailable(String),
    /// The revocation names an empty issuer or value.
    #[error("revocation names an empty issuer or value")]
    Invalid,
}

impl RevocationError {
    /// `revocation_set_full`.
    pub const FULL: Code = Code::new("revocation_set_full");
    /// `revocation_store_unavailable`.
    pub const UNAVAILABLE: Code = Code::new("revocation_store_unavailable");
    /// `invalid_revocation`.
    pub const INVALID: Code = Code::new("invalid_revocation");
}

impl Rejection for RevocationError {
    fn code(&self) -> Code {
        match self {
            Self::Full { .. } => Self::FULL,
            Self::Unavailable(_) => Self::UNAVAILABLE,
            Self::Invalid => Self::INVALID,
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Invalid => StatusCode::BAD_REQUEST,
            Self::Full { .. } | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn public_message(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Unavailable(_) => "revocation store unavailable".into(),
            _ => self.to_string().into(),
        }
    }
}

/// The future of [`RevocationSet::revoke`].
pub type RevokeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), RevocationError>> + Send + 'a>>;

/// Called with every revocation a set records (its own, and with a shared set those other
/// replicas recorded), e.g. to drop cached internal tokens minted for the revoked principal.
pub type RevocationListener = Arc<dyn Fn(&Revocation) + Send + Sync>;

/// Revocations, checked on every verification.
///
/// The read side ([`revoked_at`](Self::revoked_at), [`generation`](Self::generation),
/// [`check`](Self::check)) is on every request and must neither block on I/O nor allocate; a
/// set shared through a network store answers from a local mirror. The write side
/// ([`revoke`](Self::revoke)) may do I/O.
pub trait RevocationSet: Send + Sync + fmt::Debug {
    /// The revocation time recorded for `key`, if any.
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64>;

    /// A number that changes whenever a revocation is added or moved later. A check that
    /// found a token clean at generation `g` holds while the generation is still `g`.
    fn generation(&self) -> u64;

    /// Refuses the token of `probe` if a revocation covers it.
    ///
    /// # Errors
    /// [`AuthError::TokenRevoked`].
    fn check(&self, probe: &RevocationProbe) -> Result<(), AuthError> {
        let generation = self.generation();
        if probe.is_clean_at(generation) {
            return Ok(());
        }
        for key in probe.keys() {
            if let Some(at) = self.revoked_at(key)
                && covers(at, probe.issued_at())
            {
                return Err(AuthError::TokenRevoked);
            }
        }
        probe.mark_clean_at(generation);
        Ok(())
    }

    /// Records `revocation` (a later time replaces an earlier one; an earlier one changes
    /// nothing). Once the future is ready, this process refuses the covered tokens; a shared
    /// set has also told the other replicas.
    fn revoke(&self, revocation: Revocation) -> RevokeFuture<'_>;

    /// Calls `listener` with every revocation recorded from now on.
    fn subscribe(&self, listener: RevocationListener);

    /// The number of revocations held (for metrics).
    fn len(&self) -> usize;

    /// Whether no revocation is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<S: RevocationSet + ?Sized> RevocationSet for Arc<S> {
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        (**self).revoked_at(key)
    }
    fn generation(&self) -> u64 {
        (**self).generation()
    }
    fn check(&self, probe: &RevocationProbe) -> Result<(), AuthError> {
        (**self).check(probe)
    }
    fn revoke(&self, revocation: Revocation) -> RevokeFuture<'_> {
        (**self).revoke(revocation)
    }
    fn subscribe(&self, listener: RevocationListener) {
        (**self).subscribe(listener);
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    revoked_at: i64,
    expires_at: i64,
}

#[derive(Default)]
struct State {
    map: HashMap<RevocationKey, Entry, DigestHasher>,
}

/// Revocations in this process's memory: a map from [`RevocationKey`] to the revocation time
/// behind a read-write lock (a check takes the read lock only when the set changed since the
/// token was last found clean, and allocates nothing), and a generation counter.
///
/// Entries live for the time to live ([`DEFAULT_TTL`](Self::DEFAULT_TTL) unless set), which
/// must be at least the longest access-token lifetime plus the leeway; expired entries are
/// dropped when a revocation is added or [`prune`](Self::prune) runs. At most
/// [`capacity`](Self::with_capacity) live entries are held: beyond that a revocation is refused
/// ([`RevocationError::Full`]) rather than dropped silently, and the caller reports the failure.
///
/// Cloning shares the set.
#[derive(Clone)]
pub struct MemoryRevocationSet {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    generation: AtomicU64,
    listeners: RwLock<Vec<RevocationListener>>,
    ttl: Duration,
    capacity: usize,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryRevocationSet {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRevocationSet {
    /// The default time to live of a revocation: 1 hour, enough for access tokens of up to an
    /// hour less the leeway (Keycloak's default lifetime is 5 minutes).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

    /// The default maximum of live revocations: 100,000.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// An empty set with the defaults and the system clock.
    pub fn new() -> Self {
        Self::build(
            Self::DEFAULT_TTL,
            Self::DEFAULT_CAPACITY,
            Arc::new(SystemClock),
        )
    }

    fn build(ttl: Duration, capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                generation: AtomicU64::new(0),
                listeners: RwLock::new(Vec::new()),
                ttl,
                capacity,
                clock,
            }),
        }
    }

    /// The same set with another time to live (for entries added from now on). Call before
    /// sharing the set.
    #[must_use]
    pub fn with_ttl(self, ttl: Duration) -> Self {
        self.rebuilt(|inner| (ttl, inner.capacity, Arc::clone(&inner.clock)))
    }

    /// The same set with another capacity. Call before sharing the set.
    #[must_use]
    pub fn with_capacity(self, capacity: usize) -> Self {
        self.rebuilt(|inner| (inner.ttl, capacity, Arc::clone(&inner.clock)))
    }

    /// The same set on `clock` (tests use a `ManualClock`). Call before sharing the set.
    #[must_use]
    pub fn with_clock(self, clock: impl Clock + 'static) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(clock);
        self.rebuilt(|inner| (inner.ttl, inner.capacity, clock))
    }

    /// A new, empty set with settings derived from this one's.
    fn rebuilt(self, settings: impl FnOnce(&Inner) -> (Duration, usize, Arc<dyn Clock>)) -> Self {
        let (ttl, capacity, clock) = settings(&self.inner);
        Self::build(ttl, capacity, clock)
    }

    /// The time to live of a revocation.
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The maximum of live revocations.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// The clock that dates entries.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Records `revocation` until `now + ttl`; see [`insert_until`](Self::insert_until).
    ///
    /// # Errors
    /// As [`insert_until`](Self::insert_until).
    pub fn insert(&self, revocation: &Revocation) -> Result<bool, RevocationError> {
        let expires_at = self
            .inner
            .clock
            .now_unix()
            .saturating_add(secs(self.inner.ttl));
        self.insert_until(revocation, expires_at)
    }

    /// Records `revocation`, kept until `expires_at` (seconds since the epoch; a shared set's
    /// mirror passes the expiry recorded in the store). Returns whether anything changed: a
    /// new key, or a later revocation time (the listeners are then called). An entry already
    /// there keeps the later of the two times and the later expiry.
    ///
    /// # Errors
    /// [`RevocationError::Invalid`] for an empty issuer or value; [`RevocationError::Full`]
    /// when the set holds its capacity of live entries.
    pub fn insert_until(
        &self,
        revocation: &Revocation,
        expires_at: i64,
    ) -> Result<bool, RevocationError> {
        if revocation.issuer().is_empty() || revocation.target().value().is_empty() {
            return Err(RevocationError::Invalid);
        }
        let now = self.inner.clock.now_unix();
        if expires_at <= now {
            return Ok(false);
        }
        let key = revocation.key();
        let changed = {
            let mut state = self.write();
            match state.map.get_mut(&key) {
                Some(entry) => {
                    entry.expires_at = entry.expires_at.max(expires_at);
                    let later = revocation.revoked_at() > entry.revoked_at;
                    if later {
                        entry.revoked_at = revocation.revoked_at();
                    }
                    later
                }
                None => {
                    if state.map.len() >= self.inner.capacity {
                        state.map.retain(|_, e| e.expires_at > now);
                        if state.map.len() >= self.inner.capacity {
                            return Err(RevocationError::Full {
                                capacity: self.inner.capacity,
                            });
                        }
                    }
                    state.map.insert(
                        key,
                        Entry {
                            revoked_at: revocation.revoked_at(),
                            expires_at,
                        },
                    );
                    true
                }
            }
        };
        if changed {
            // After the entry is in the map: a check that reads the new generation sees it.
            self.inner.generation.fetch_add(1, Ordering::Release);
            let listeners = self
                .inner
                .listeners
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            for listener in &listeners {
                listener(revocation);
            }
        }
        Ok(changed)
    }

    /// Drops expired revocations; returns how many.
    pub fn prune(&self) -> usize {
        let now = self.inner.clock.now_unix();
        let mut state = self.write();
        let before = state.map.len();
        state.map.retain(|_, e| e.expires_at > now);
        before - state.map.len()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl RevocationSet for MemoryRevocationSet {
    fn revoked_at(&self, key: &RevocationKey) -> Option<i64> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        state.map.get(key).map(|e| e.revoked_at)
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// As the provided method, with one read lock for the probe's keys.
    fn check(&self, probe: &RevocationProbe) -> Result<(), AuthError> {
        let generation = self.generation();
        if probe.is_clean_at(generation) {
            return Ok(());
        }
        {
            let state = self
                .inner
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            for key in probe.keys() {
                if let Some(entry) = state.map.get(key)
                    && covers(entry.revoked_at, probe.issued_at())
                {
                    return Err(AuthError::TokenRevoked);
                }
            }
        }
        probe.mark_clean_at(generation);
        Ok(())
    }

    fn revoke(&self, revocation: Revocation) -> RevokeFuture<'_> {
        let result = self.insert(&revocation).map(drop);
        Box::pin(std::future::ready(result))
    }

    fn subscribe(&self, listener: RevocationListener) {
        self.inner
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    fn len(&self) -> usize {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

impl fmt::Debug for MemoryRevocationSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRevocationSet")
            .field("entries", &self.len())
            .field("generation", &self.generation())
            .field("ttl", &self.inner.ttl)
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use serde_json::json;

    const ISS: &str = "https://kc.example/realms/agentcube";

    fn set_at(now: i64) -> (MemoryRevocationSet, ManualClock) {
        let clock = ManualClock::new(now);
        (
            MemoryRevocationSet::new()
                .with_ttl(Duration::from_secs(600))
                .with_capacity(3)
                .with_clock(clock.clone()),
            clock,
        )
    }

    fn probe(sid: Option<&str>, sub: &str, azp: Option<&str>, iat: Option<i64>) -> RevocationProbe {
        RevocationProbe::new(ISS, sub, sid, azp, iat)
    }

    fn revoked(set: &MemoryRevocationSet, p: &RevocationProbe) -> bool {
        set.check(p) == Err(AuthError::TokenRevoked)
    }

    #[test]
    fn each_kind_refuses_tokens_issued_at_or_before_the_revocation() {
        let (set, _) = set_at(1000);
        for (target, p) in [
            (
                RevocationTarget::Session("s1".into()),
                probe(Some("s1"), "u", None, Some(990)),
            ),
            (
                RevocationTarget::Subject("u2".into()),
                probe(None, "u2", None, Some(990)),
            ),
            (
                RevocationTarget::Client("svc".into()),
                probe(None, "sa", Some("svc"), Some(990)),
            ),
        ] {
            assert!(!revoked(&set, &p));
            set.insert(&Revocation::new(ISS, target, 995)).unwrap();
            assert!(revoked(&set, &p));
        }
        // At the very second: refused; later: accepted; without iat: refused.
        assert!(revoked(&set, &probe(None, "u2", None, Some(995))));
        assert!(!revoked(&set, &probe(None, "u2", None, Some(996))));
        assert!(revoked(&set, &probe(None, "u2", None, None)));
        // Another issuer's subject of the same name is not affected.
        let other = RevocationProbe::new("https://other", "u2", None, None, Some(990));
        assert!(!revoked(&set, &other));
        // Another session of the same user is not affected by a session revocation.
        assert!(!revoked(&set, &probe(Some("s2"), "u", None, Some(990))));
    }

    #[test]
    fn a_clean_probe_is_rechecked_only_after_the_set_changed() {
        let (set, _) = set_at(1000);
        let p = probe(Some("s1"), "u", None, Some(990));
        assert_eq!(set.check(&p), Ok(()));
        assert!(p.is_clean_at(set.generation()));
        set.insert(&Revocation::new(
            ISS,
            RevocationTarget::Subject("x".into()),
            995,
        ))
        .unwrap();
        assert!(!p.is_clean_at(set.generation()));
        assert_eq!(set.check(&p), Ok(()));
        set.insert(&Revocation::new(
            ISS,
            RevocationTarget::Session("s1".into()),
            995,
        ))
        .unwrap();
        assert!(revoked(&set, &p));
        // A refused probe is not marked clean.
        assert!(!p.is_clean_at(set.generation()));
    }

    #[test]
    fn later_times_replace_earlier_ones_and_earlier_ones_change_nothing() {
        let (set, _) = set_at(1000);
        let target = || RevocationTarget::Subject("u".into());
        assert_eq!(set.insert(&Revocation::new(ISS, target(), 900)), Ok(true));
        let generation = set.generation();
        assert_eq!(set.insert(&Revocation::new(ISS, target(), 800)), Ok(false));
        assert_eq!(set.generation(), generation);
        assert_eq!(set.insert(&Revocation::new(ISS, target(), 950)), Ok(true));
        assert_eq!(
            set.revoked_at(&Revocation::new(ISS, target(), 0).key()),
            Some(950)
        );
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn entries_expire_after_the_ttl_and_capacity_counts_live_entries_only() {
        let (set, clock) = set_at(1000);
        for sub in ["a", "b", "c"] {
            set.insert(&Revocation::new(
                ISS,
                RevocationTarget::Subject(sub.into()),
                1000,
            ))
            .unwrap();
        }
        let d = Revocation::new(ISS, RevocationTarget::Subject("d".into()), 1000);
        assert_eq!(set.insert(&d), Err(RevocationError::Full { capacity: 3 }));
        clock.advance(601);
        assert_eq!(set.insert(&d), Ok(true));
        assert_eq!(set.len(), 1);
        clock.advance(601);
        assert_eq!(set.prune(), 1);
        assert!(set.is_empty());
        // Already expired when recorded: nothing to keep.
        assert_eq!(set.insert_until(&d, clock.now_unix()), Ok(false));
        assert_eq!(
            set.insert(&Revocation::new(
                "",
                RevocationTarget::Subject("x".into()),
                1
            )),
            Err(RevocationError::Invalid)
        );
    }

    #[test]
    fn listeners_hear_every_change() {
        let (set, _) = set_at(1000);
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        set.subscribe(Arc::new(move |r: &Revocation| {
            sink.lock().unwrap().push(r.target().kind());
        }));
        let r = Revocation::new(ISS, RevocationTarget::Client("svc".into()), 990);
        set.insert(&r).unwrap();
        set.insert(&r).unwrap();
        assert_eq!(*heard.lock().unwrap(), vec![RevocationKind::Client]);
    }

    #[test]
    fn probes_read_the_claims_and_revocations_match_principals() {
        let claims = Claims::try_from(json!({
            "iss": ISS, "sub": "u", "sid": "s1", "azp": "agentcube-cli", "iat": 990,
        }))
        .unwrap();
        let p = RevocationProbe::from_claims(ISS, &claims).unwrap();
        assert_eq!(p.keys().count(), 3);
        assert_eq!(p.issued_at(), Some(990));
        let bad = Claims::try_from(json!({"iss": ISS, "sub": "u", "sid": 5})).unwrap();
        assert!(matches!(
            RevocationProbe::from_claims(ISS, &bad),
            Err(AuthError::InvalidClaim(_))
        ));
        let principal = crate::StandardClaims::read(&claims)
            .unwrap()
            .claims(claims)
            .build();
        let r = |t: RevocationTarget, at| Revocation::new(ISS, t, at);
        assert!(r(RevocationTarget::Session("s1".into()), 990).matches(&principal));
        assert!(r(RevocationTarget::Subject("u".into()), 991).matches(&principal));
        assert!(r(RevocationTarget::Client("agentcube-cli".into()), 995).matches(&principal));
        assert!(!r(RevocationTarget::Client("agentcube-cli".into()), 989).matches(&principal));
        assert!(!r(RevocationTarget::Session("s2".into()), 995).matches(&principal));
        assert!(
            !Revocation::new("https://other", RevocationTarget::Subject("u".into()), 995)
                .matches(&principal)
        );
        let shown = format!("{:?}", r(RevocationTarget::Session("s1".into()), 1));
        assert!(!shown.contains("s1"), "{shown}");
    }
}

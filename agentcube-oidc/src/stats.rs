//! Counters a service can export: key fetches, cache hits and misses, rejections by code.
//!
//! Every counter is an atomic incremented with relaxed ordering; taking a snapshot never blocks
//! verification.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agentcube_auth_core::ErrorCode;

use crate::key_store::FetchError;

/// A point-in-time copy of a key store's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStoreStats {
    /// JWKS fetches that returned a usable key set (HTTP 200).
    pub fetches_ok: u64,
    /// JWKS fetches that confirmed the current key set (HTTP 304 to `If-None-Match`).
    pub fetches_not_modified: u64,
    /// Refresh attempts that failed (discovery or JWKS: transport, status, size, content).
    pub fetches_failed: u64,
    /// Discovery documents fetched (successfully or not).
    pub discovery_fetches: u64,
    /// Refreshes requested by an unknown `kid` (or an empty or stale key set) that the cooldown
    /// suppressed: no request was sent.
    pub refreshes_suppressed: u64,
    /// Callers that waited for a refresh another caller had started, instead of starting
    /// their own (single-flight).
    pub refreshes_shared: u64,
    /// Keys in the current key set.
    pub keys: usize,
    /// Whether the store can serve keys now (loaded and not too stale).
    pub ready: bool,
    /// How long ago the current key set was last confirmed by the issuer, if ever.
    pub last_success_age: Option<Duration>,
    /// The error of the most recent attempt, if it failed.
    pub last_error: Option<FetchError>,
}

/// A point-in-time copy of a verifier's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifierStats {
    /// The issuer the verifier is configured for.
    pub issuer: String,
    /// Tokens accepted (including cache hits).
    pub accepted: u64,
    /// Tokens answered from the verified-token cache.
    pub cache_hits: u64,
    /// Tokens looked up in the cache and not found (or found but no longer servable).
    pub cache_misses: u64,
    /// Entries currently in the cache (approximate).
    pub cache_entries: u64,
    /// Rejections by error code; codes that never occurred are absent.
    pub rejections: BTreeMap<ErrorCode, u64>,
    /// The key store's counters (zero for a verifier with static keys).
    pub keys: KeyStoreStats,
}

impl VerifierStats {
    /// Rejections with `code`.
    pub fn rejected(&self, code: ErrorCode) -> u64 {
        self.rejections.get(&code).copied().unwrap_or(0)
    }

    /// All rejections.
    pub fn rejected_total(&self) -> u64 {
        self.rejections.values().sum()
    }
}

/// Rejection counters indexed by the position of the code in [`ErrorCode::ALL`].
#[derive(Debug)]
pub(crate) struct RejectionCounters {
    counts: [AtomicU64; ErrorCode::ALL.len()],
}

impl Default for RejectionCounters {
    fn default() -> Self {
        // `from_fn` rather than a derive: arrays implement `Default` only up to 32 elements.
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl RejectionCounters {
    pub(crate) fn record(&self, code: ErrorCode) {
        // `ALL` lists every code; a counter nobody can read is not kept for the impossible miss.
        if let Some(slot) = ErrorCode::ALL
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.counts.get(i))
        {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<ErrorCode, u64> {
        ErrorCode::ALL
            .iter()
            .zip(&self.counts)
            .map(|(code, n)| (*code, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// A relaxed atomic counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

//! The metrics this crate emits through the [`metrics`](https://docs.rs/metrics) facade, with
//! the feature `metrics` (off by default; without it nothing is recorded and the facade is not
//! compiled). The service installs the recorder (a Prometheus exporter, say); the counters in
//! [`OidcVerifier::stats`](crate::OidcVerifier::stats) are kept either way, for embedders that
//! do not want the facade.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`VERIFICATIONS_TOTAL`] `agentcube_auth_verifications_total` | counter | `issuer`, `result` |
//! | [`VERIFY_DURATION_SECONDS`] `agentcube_auth_verify_duration_seconds` | histogram | `issuer` |
//! | [`TOKEN_CACHE_HITS_TOTAL`] `agentcube_auth_token_cache_hits_total` | counter | `issuer` |
//! | [`TOKEN_CACHE_MISSES_TOTAL`] `agentcube_auth_token_cache_misses_total` | counter | `issuer` |
//! | [`JWKS_FETCHES_TOTAL`] `agentcube_auth_jwks_fetches_total` | counter | `issuer`, `outcome` |
//! | [`KEYS_READY`] `agentcube_auth_keys_ready` | gauge (0 or 1) | `issuer` |
//!
//! Label values are bounded, whatever the tokens say:
//!
//! - `issuer` is a configured issuer, exactly as configured (a key store built from a JWKS URL
//!   alone uses that URL), or [`ISSUER_UNROUTED`] for a multi-issuer rejection decided before a
//!   verifier was chosen (size, framing, `unknown_issuer`). The `iss` a token claims never
//!   becomes a label value, and neither do its `alg`, `kid` or subject.
//! - `result` is [`RESULT_OK`] or a stable rejection code
//!   ([`ErrorCode`](agentcube_auth_core::ErrorCode): `expired`, `unknown_kid`, …).
//! - `outcome` is [`OUTCOME_OK`] (a new key set), [`OUTCOME_NOT_MODIFIED`] (HTTP 304) or the
//!   stable code of the [`FetchError`](crate::FetchError) (`transport`, `http_status`, …).
//!
//! Every verification counts once (cache hits included) and is timed from the start of the
//! verification to its answer. On the request path the handles are registered once per
//! verifier (per label set, at first use) and then only incremented: nothing is allocated per
//! request. Install the recorder before the first request (at start-up); [`describe`] adds the
//! help texts.

/// Verifications of access tokens, by `issuer` and `result` ([`RESULT_OK`] or the rejection
/// code).
pub const VERIFICATIONS_TOTAL: &str = "agentcube_auth_verifications_total";

/// The time a verification took, in seconds, by `issuer` (cache hits included; a verification
/// that waited for the issuer's keys includes the wait).
pub const VERIFY_DURATION_SECONDS: &str = "agentcube_auth_verify_duration_seconds";

/// Verifications answered from the verified-token cache, by `issuer`.
pub const TOKEN_CACHE_HITS_TOTAL: &str = "agentcube_auth_token_cache_hits_total";

/// Verifications that looked in the cache and verified in full, by `issuer`.
pub const TOKEN_CACHE_MISSES_TOTAL: &str = "agentcube_auth_token_cache_misses_total";

/// Key set fetches (discovery and JWKS), by `issuer` and `outcome`.
pub const JWKS_FETCHES_TOTAL: &str = "agentcube_auth_jwks_fetches_total";

/// Whether the issuer's keys are usable (1) or not (0), by `issuer`; set at start-up and after
/// every fetch.
pub const KEYS_READY: &str = "agentcube_auth_keys_ready";

/// Every metric name of this crate.
pub const ALL: [&str; 6] = [
    VERIFICATIONS_TOTAL,
    VERIFY_DURATION_SECONDS,
    TOKEN_CACHE_HITS_TOTAL,
    TOKEN_CACHE_MISSES_TOTAL,
    JWKS_FETCHES_TOTAL,
    KEYS_READY,
];

/// The label of the configured issuer.
pub const LABEL_ISSUER: &str = "issuer";

/// The label of a verification's result.
pub const LABEL_RESULT: &str = "result";

/// The label of a fetch's outcome.
pub const LABEL_OUTCOME: &str = "outcome";

/// `result` of an accepted token.
pub const RESULT_OK: &str = "ok";

/// `issuer` of a multi-issuer rejection decided before a verifier was chosen.
pub const ISSUER_UNROUTED: &str = "unrouted";

/// `outcome` of a fetch that loaded a key set (HTTP 200).
pub const OUTCOME_OK: &str = "ok";

/// `outcome` of a fetch that confirmed the current key set (HTTP 304).
pub const OUTCOME_NOT_MODIFIED: &str = "not_modified";

/// The buckets the example services give [`VERIFY_DURATION_SECONDS`], in seconds: from 50 µs (a
/// cache hit) to 5 s (a verification that waited for the issuer's keys).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// Registers the help text and unit of every metric with the installed recorder (call once,
/// after installing it; without the feature `metrics` it does nothing).
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_counter!(
            VERIFICATIONS_TOTAL,
            "Access-token verifications by configured issuer and result (ok or the rejection code)."
        );
        describe_histogram!(
            VERIFY_DURATION_SECONDS,
            Unit::Seconds,
            "Time to verify an access token, cache hits included."
        );
        describe_counter!(
            TOKEN_CACHE_HITS_TOTAL,
            "Verifications answered from the verified-token cache."
        );
        describe_counter!(
            TOKEN_CACHE_MISSES_TOTAL,
            "Verifications that missed the verified-token cache."
        );
        describe_counter!(
            JWKS_FETCHES_TOTAL,
            "Key set fetches by configured issuer and outcome (ok, not_modified or the error code)."
        );
        describe_gauge!(
            KEYS_READY,
            "Whether the issuer's signing keys are usable (1) or not (0)."
        );
    }
}

pub(crate) use imp::{IssuerMetrics, KeyStoreMetrics, Started};

#[cfg(feature = "metrics")]
mod imp {
    use std::sync::{Arc, LazyLock, OnceLock};
    use std::time::Instant;

    use ::metrics::{Counter, Histogram, SharedString, counter, gauge, histogram};
    use agentcube_auth_core::ErrorCode;

    use super::{
        ISSUER_UNROUTED, JWKS_FETCHES_TOTAL, KEYS_READY, RESULT_OK, TOKEN_CACHE_HITS_TOTAL,
        TOKEN_CACHE_MISSES_TOTAL, VERIFICATIONS_TOTAL, VERIFY_DURATION_SECONDS,
    };

    /// When a verification started.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Started(Instant);

    impl Started {
        pub(crate) fn now() -> Self {
            Self(Instant::now())
        }
    }

    /// The issuer label, built once: cloning it is a reference-count increment.
    fn label(issuer: &str) -> SharedString {
        SharedString::from(Arc::<str>::from(issuer))
    }

    /// One verifier's handles, registered at first use (with the recorder installed then).
    pub(crate) struct IssuerMetrics {
        issuer: SharedString,
        accepted: OnceLock<Counter>,
        rejected: [OnceLock<Counter>; ErrorCode::ALL.len()],
        hits: OnceLock<Counter>,
        misses: OnceLock<Counter>,
        duration: OnceLock<Histogram>,
    }

    static UNROUTED: LazyLock<IssuerMetrics> =
        LazyLock::new(|| IssuerMetrics::new(ISSUER_UNROUTED));

    impl IssuerMetrics {
        pub(crate) fn new(issuer: &str) -> Self {
            Self {
                issuer: label(issuer),
                accepted: OnceLock::new(),
                rejected: std::array::from_fn(|_| OnceLock::new()),
                hits: OnceLock::new(),
                misses: OnceLock::new(),
                duration: OnceLock::new(),
            }
        }

        /// The handles of rejections decided before an issuer was chosen.
        pub(crate) fn unrouted() -> &'static Self {
            &UNROUTED
        }

        /// Counts a verification and its duration.
        pub(crate) fn verification(&self, result: Result<(), ErrorCode>, started: Started) {
            let counter = match result {
                Ok(()) => self.accepted.get_or_init(|| {
                    counter!(VERIFICATIONS_TOTAL, "issuer" => self.issuer.clone(), "result" => RESULT_OK)
                }),
                Err(code) => {
                    // `ALL` lists every code; the impossible miss records nothing.
                    let Some(slot) = ErrorCode::ALL
                        .iter()
                        .position(|c| *c == code)
                        .and_then(|i| self.rejected.get(i))
                    else {
                        return;
                    };
                    slot.get_or_init(|| {
                        counter!(VERIFICATIONS_TOTAL, "issuer" => self.issuer.clone(), "result" => code.as_str())
                    })
                }
            };
            counter.increment(1);
            self.duration
                .get_or_init(
                    || histogram!(VERIFY_DURATION_SECONDS, "issuer" => self.issuer.clone()),
                )
                .record(started.0.elapsed().as_secs_f64());
        }

        pub(crate) fn cache_hit(&self) {
            self.hits
                .get_or_init(|| counter!(TOKEN_CACHE_HITS_TOTAL, "issuer" => self.issuer.clone()))
                .increment(1);
        }

        pub(crate) fn cache_miss(&self) {
            self.misses
                .get_or_init(|| counter!(TOKEN_CACHE_MISSES_TOTAL, "issuer" => self.issuer.clone()))
                .increment(1);
        }
    }

    /// A key store's label; its events are rare (one per fetch), so they register each time.
    pub(crate) struct KeyStoreMetrics {
        issuer: SharedString,
    }

    impl KeyStoreMetrics {
        pub(crate) fn new(issuer: &str) -> Self {
            Self {
                issuer: label(issuer),
            }
        }

        pub(crate) fn fetched(&self, outcome: &'static str) {
            counter!(JWKS_FETCHES_TOTAL, "issuer" => self.issuer.clone(), "outcome" => outcome)
                .increment(1);
        }

        pub(crate) fn ready(&self, ready: bool) {
            gauge!(KEYS_READY, "issuer" => self.issuer.clone()).set(if ready { 1.0 } else { 0.0 });
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use agentcube_auth_core::ErrorCode;

    /// Nothing: without the feature no verification is timed.
    #[derive(Clone, Copy, Debug)]
    pub(crate) struct Started;

    impl Started {
        #[inline]
        pub(crate) fn now() -> Self {
            Self
        }
    }

    pub(crate) struct IssuerMetrics;

    impl IssuerMetrics {
        #[inline]
        pub(crate) fn new(_issuer: &str) -> Self {
            Self
        }

        #[inline]
        pub(crate) fn unrouted() -> &'static Self {
            &Self
        }

        #[inline]
        pub(crate) fn verification(&self, _result: Result<(), ErrorCode>, _started: Started) {}

        #[inline]
        pub(crate) fn cache_hit(&self) {}

        #[inline]
        pub(crate) fn cache_miss(&self) {}
    }

    pub(crate) struct KeyStoreMetrics;

    impl KeyStoreMetrics {
        #[inline]
        pub(crate) fn new(_issuer: &str) -> Self {
            Self
        }

        #[inline]
        pub(crate) fn fetched(&self, _outcome: &'static str) {}

        #[inline]
        pub(crate) fn ready(&self, _ready: bool) {}
    }
}

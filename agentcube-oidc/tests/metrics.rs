//! The metrics (feature `metrics`): what is counted, under which labels, and that no label value
//! ever comes from a token — an attacker who picks the `alg`, `kid`, `iss` or `sub` of a token
//! cannot create a time series.

#![cfg(feature = "metrics")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use agentcube_auth_core::ErrorCode;
use agentcube_auth_core::jose::Algorithm;
use agentcube_oidc::metrics::{
    ISSUER_UNROUTED, JWKS_FETCHES_TOTAL, KEYS_READY, OUTCOME_OK, RESULT_OK, TOKEN_CACHE_HITS_TOTAL,
    TOKEN_CACHE_MISSES_TOTAL, VERIFICATIONS_TOTAL, VERIFY_DURATION_SECONDS,
};
use agentcube_oidc::test_util::{MockIssuer, TestKey};
use agentcube_oidc::{MultiIssuerVerifier, OidcVerifier};
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};

/// A series: name and sorted labels.
type Series = (String, Vec<(String, String)>);

/// Every series registered in this test binary, with its value (counters: the count; gauges:
/// the last value; histograms: the number of observations).
#[derive(Default)]
struct Capture {
    series: Mutex<BTreeMap<Series, Arc<Cell>>>,
}

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl GaugeFn for Cell {
    fn increment(&self, _value: f64) {}

    fn decrement(&self, _value: f64) {}

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Capture {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        let mut series = self.series.lock().unwrap();
        Arc::clone(series.entry((key.name().to_owned(), labels)).or_default())
    }

    /// The value of the series `name` with exactly `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.series
            .lock()
            .unwrap()
            .get(&(name.to_owned(), labels))
            .map(|cell| cell.0.load(Ordering::Relaxed))
    }

    fn all(&self) -> Vec<Series> {
        self.series.lock().unwrap().keys().cloned().collect()
    }
}

impl Recorder for &'static Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

/// The process-wide capturing recorder of this test binary.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::default());
        metrics::set_global_recorder(capture).expect("the only recorder of this binary");
        capture
    })
}

/// What an attacker chose; none of it may appear in a label value.
const ATTACKER: &str = "attacker";

/// The issuers the tests of this binary (which run in parallel, on one recorder) configured.
static CONFIGURED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A mock issuer, remembered as configured.
async fn issuer() -> MockIssuer {
    let idp = MockIssuer::builder()
        .algorithm(Algorithm::RS256)
        .start()
        .await;
    CONFIGURED.lock().unwrap().push(idp.issuer().to_owned());
    idp
}

/// Tokens whose `alg`, `kid`, `iss` and `sub` an attacker picked, some validly signed by the
/// issuer's key (so they reach the claim checks), against `verify`.
async fn attack(idp: &MockIssuer, verify: impl AsyncFn(&str) -> bool) {
    let evil_key = Arc::new(TestKey::generate(Algorithm::RS256).with_kid("attacker-kid-1"));
    let tokens = [
        idp.token().header("alg", "attacker-alg").sign(),
        idp.token().header("alg", "none").sign(),
        idp.token().kid("attacker-kid-2").sign(),
        idp.token().signed_by(evil_key).sign(),
        idp.token()
            .issuer("https://attacker.example/realms/x")
            .sign(),
        idp.token()
            .subject("attacker-subject")
            .audience("attacker-aud")
            .sign(),
        "attacker.attacker.attacker".to_owned(),
    ];
    for token in &tokens {
        assert!(!verify(token).await, "{token}");
    }
    // The attacker's subject with everything else right is accepted: still no label.
    assert!(verify(&idp.token().subject("attacker-subject-ok").sign()).await);
}

/// Every label value is a configured issuer, `unrouted`, `ok`, a rejection code or a fetch
/// outcome; none is anything a token said.
fn assert_bounded() {
    let issuers = CONFIGURED.lock().unwrap().clone();
    for (name, labels) in capture().all() {
        for (key, value) in labels {
            assert!(!value.contains(ATTACKER), "{name}{{{key}={value:?}}}");
            match key.as_str() {
                "issuer" => assert!(
                    issuers.contains(&value) || value == ISSUER_UNROUTED,
                    "{name}: issuer {value:?}"
                ),
                "result" => assert!(
                    value == RESULT_OK || ErrorCode::ALL.iter().any(|c| c.as_str() == value),
                    "{name}: result {value:?}"
                ),
                "outcome" => assert!(
                    value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{name}: outcome {value:?}"
                ),
                other => panic!("{name}: unexpected label {other}"),
            }
        }
    }
}

#[tokio::test]
async fn one_issuer_counts_by_result_and_never_labels_what_a_token_says() {
    let capture = capture();
    let idp = issuer().await;
    let verifier = idp.verifier();
    let iss = idp.issuer();
    let good = idp.token().sign();
    verifier.verify(&good).await.unwrap();
    verifier.verify(&good).await.unwrap();
    attack(&idp, async |t| verifier.verify(t).await.is_ok()).await;

    let count = |name: &str, labels: &[(&str, &str)]| capture.value(name, labels).unwrap_or(0);
    assert_eq!(
        count(VERIFICATIONS_TOTAL, &[("issuer", iss), ("result", "ok")]),
        3
    );
    for code in [
        "algorithm_not_allowed",
        "unknown_kid",
        "issuer_mismatch",
        "audience_mismatch",
    ] {
        assert!(
            count(VERIFICATIONS_TOTAL, &[("issuer", iss), ("result", code)]) >= 1,
            "{code}: {:#?}",
            capture.all()
        );
    }
    assert_eq!(count(TOKEN_CACHE_HITS_TOTAL, &[("issuer", iss)]), 1);
    assert!(count(TOKEN_CACHE_MISSES_TOTAL, &[("issuer", iss)]) >= 8);
    let verifications: u64 = capture
        .all()
        .iter()
        .filter(|(name, labels)| {
            name == VERIFICATIONS_TOTAL && labels.contains(&("issuer".into(), iss.into()))
        })
        .map(|(name, labels)| {
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            count(name, &labels)
        })
        .sum();
    assert_eq!(verifications, 10, "two good, seven bad, one good");
    assert_eq!(
        count(VERIFY_DURATION_SECONDS, &[("issuer", iss)]),
        verifications,
        "every verification is timed"
    );
    assert!(
        count(
            JWKS_FETCHES_TOTAL,
            &[("issuer", iss), ("outcome", OUTCOME_OK)]
        ) >= 1
    );
    assert_eq!(
        count(KEYS_READY, &[("issuer", iss)]),
        1.0_f64.to_bits(),
        "keys ready"
    );
    assert_bounded();
}

#[tokio::test]
async fn several_issuers_label_the_unknown_iss_unrouted() {
    let capture = capture();
    let (a, b) = (issuer().await, issuer().await);
    let multi = MultiIssuerVerifier::new([a.verifier(), b.verifier()]).unwrap();
    multi.verify(&b.token().sign()).await.unwrap();
    attack(&a, async |t| multi.verify(t).await.is_ok()).await;
    assert_eq!(
        capture.value(
            VERIFICATIONS_TOTAL,
            &[("issuer", b.issuer()), ("result", "ok")]
        ),
        Some(1)
    );
    assert!(
        capture
            .value(
                VERIFICATIONS_TOTAL,
                &[("issuer", ISSUER_UNROUTED), ("result", "unknown_issuer")]
            )
            .is_some_and(|n| n >= 1)
    );
    assert_bounded();
}

#[tokio::test]
async fn a_verifier_on_a_jwks_url_labels_its_keys_with_its_issuer() {
    let capture = capture();
    let idp = issuer().await;
    let verifier =
        OidcVerifier::new(idp.config().jwks_url(idp.jwks_url())).expect("a jwks-url verifier");
    verifier.verify(&idp.token().sign()).await.unwrap();
    assert!(
        capture
            .value(
                JWKS_FETCHES_TOTAL,
                &[("issuer", idp.issuer()), ("outcome", OUTCOME_OK)]
            )
            .is_some_and(|n| n >= 1),
        "{:#?}",
        capture.all()
    );
    assert!(
        capture
            .all()
            .iter()
            .all(|(_, labels)| labels.iter().all(|(_, v)| v != &idp.jwks_url())),
        "the JWKS URL is not the issuer label"
    );
}

//! The metrics this crate emits through the [`metrics`](https://docs.rs/metrics) facade, with
//! the feature `metrics` (off by default; without it nothing is recorded and the facade is not
//! compiled). The service installs the recorder.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`TOKENS_MINTED_TOTAL`] `agentcube_identity_tokens_minted_total` | counter | `kind` |
//! | [`VERIFICATIONS_TOTAL`] `agentcube_identity_verifications_total` | counter | `kind`, `result` |
//!
//! Label values are bounded: `kind` is [`KIND_IDENTITY`] or [`KIND_SANDBOX`]; `result` is
//! [`RESULT_OK`] or a stable rejection code ([`ErrorCode`](agentcube_auth_core::ErrorCode):
//! `expired`, `audience_mismatch`, `token_replayed`, …) — never a subject, a session id or
//! anything a token says. A token is counted as minted when it is signed: a token the minter
//! reuses from its cache is not minted again. Every handle is registered once, at first use,
//! so counting allocates nothing.

/// Internal tokens signed, by `kind` (reused tokens are not counted).
pub const TOKENS_MINTED_TOTAL: &str = "agentcube_identity_tokens_minted_total";

/// Verifications of internal tokens, by `kind` and `result` ([`RESULT_OK`] or the rejection
/// code).
pub const VERIFICATIONS_TOTAL: &str = "agentcube_identity_verifications_total";

/// Every metric name of this crate.
pub const ALL: [&str; 2] = [TOKENS_MINTED_TOTAL, VERIFICATIONS_TOTAL];

/// The label of the token kind.
pub const LABEL_KIND: &str = "kind";

/// The label of a verification's result.
pub const LABEL_RESULT: &str = "result";

/// `kind` of identity tokens (Router → workload manager).
pub const KIND_IDENTITY: &str = "identity";

/// `kind` of sandbox tokens (Router → sandbox).
pub const KIND_SANDBOX: &str = "sandbox";

/// `result` of an accepted token.
pub const RESULT_OK: &str = "ok";

/// Registers the help text of every metric with the installed recorder (call once, after
/// installing it; without the feature `metrics` it does nothing).
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        ::metrics::describe_counter!(
            TOKENS_MINTED_TOTAL,
            "Internal tokens signed by kind (identity, sandbox); reused tokens are not counted."
        );
        ::metrics::describe_counter!(
            VERIFICATIONS_TOTAL,
            "Internal token verifications by kind and result (ok or the rejection code)."
        );
    }
}

/// The `kind` label of the token kind `T`.
pub(crate) fn kind_label<T: crate::TokenKind>() -> &'static str {
    if T::TYPE == crate::IDENTITY_TOKEN_TYPE {
        KIND_IDENTITY
    } else {
        KIND_SANDBOX
    }
}

pub(crate) use imp::{minted, verification};

#[cfg(feature = "metrics")]
mod imp {
    use std::sync::OnceLock;

    use ::metrics::{Counter, counter};
    use agentcube_auth_core::{AuthError, ErrorCode};

    use super::{KIND_IDENTITY, RESULT_OK, TOKENS_MINTED_TOTAL, VERIFICATIONS_TOTAL};

    const RESULTS: usize = ErrorCode::ALL.len() + 1;

    /// Per kind (identity, sandbox): `ok`, then every code in [`ErrorCode::ALL`]'s order.
    static VERIFIED: [[OnceLock<Counter>; RESULTS]; 2] =
        [const { [const { OnceLock::new() }; RESULTS] }; 2];

    static MINTED: [OnceLock<Counter>; 2] = [const { OnceLock::new() }; 2];

    fn kind_index(kind: &'static str) -> usize {
        usize::from(kind != KIND_IDENTITY)
    }

    pub(crate) fn minted(kind: &'static str) {
        if let Some(slot) = MINTED.get(kind_index(kind)) {
            slot.get_or_init(|| counter!(TOKENS_MINTED_TOTAL, "kind" => kind))
                .increment(1);
        }
    }

    pub(crate) fn verification<V>(kind: &'static str, result: &Result<V, AuthError>) {
        let (index, label) = match result {
            Ok(_) => (Some(0), RESULT_OK),
            Err(err) => {
                let code = err.code();
                (
                    ErrorCode::ALL
                        .iter()
                        .position(|c| *c == code)
                        .map(|i| i + 1),
                    code.as_str(),
                )
            }
        };
        if let Some(slot) = VERIFIED
            .get(kind_index(kind))
            .zip(index)
            .and_then(|(slots, i)| slots.get(i))
        {
            slot.get_or_init(|| counter!(VERIFICATIONS_TOTAL, "kind" => kind, "result" => label))
                .increment(1);
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use agentcube_auth_core::AuthError;

    #[inline]
    pub(crate) fn minted(_kind: &'static str) {}

    #[inline]
    pub(crate) fn verification<V>(_kind: &'static str, _result: &Result<V, AuthError>) {}
}

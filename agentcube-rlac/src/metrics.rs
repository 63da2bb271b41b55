//! The metric this crate emits through the [`metrics`](https://docs.rs/metrics) facade, with the
//! feature `metrics` (off by default; without it nothing is recorded and the facade is not
//! compiled). The service installs the recorder.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | [`DECISIONS_TOTAL`] `agentcube_rlac_decisions_total` | counter | `effect`, `reason` |
//!
//! A decision is counted by [`audit`](crate::audit), the function a service calls for every
//! decision it acts on (so one request counts once, whatever policies were combined to reach
//! it). Label values are bounded: `effect` is `allow` or `deny`, `reason` the decision's
//! stable [`Reason`](crate::Reason) code (a built-in one, or the code of a deployment's
//! [`CustomReason`](crate::CustomReason), which is a constant) — never a subject, an owner or a
//! session id. The built-in reasons' handles are registered once, at first use, so counting
//! them allocates nothing; a custom reason's label set is built on each count.

/// Access decisions acted on, by `effect` (`allow`, `deny`) and `reason` (`owner`,
/// `admin_bypass`, `not_owner`, …).
pub const DECISIONS_TOTAL: &str = "agentcube_rlac_decisions_total";

/// Every metric name of this crate.
pub const ALL: [&str; 1] = [DECISIONS_TOTAL];

/// The label of the decision's effect.
pub const LABEL_EFFECT: &str = "effect";

/// The label of the decision's reason code.
pub const LABEL_REASON: &str = "reason";

/// Registers the help text of every metric with the installed recorder (call once, after
/// installing it; without the feature `metrics` it does nothing).
pub fn describe() {
    #[cfg(feature = "metrics")]
    ::metrics::describe_counter!(
        DECISIONS_TOTAL,
        "Access decisions on sandbox sessions by effect (allow, deny) and reason code."
    );
}

#[cfg(feature = "metrics")]
pub(crate) fn decision(decision: &crate::Decision) {
    use std::sync::OnceLock;

    use ::metrics::{Counter, counter};

    use crate::Reason;

    /// The handles of the built-in reasons, in [`builtin`]'s order.
    static BUILTIN: [OnceLock<Counter>; 7] = [const { OnceLock::new() }; 7];

    fn builtin(reason: Reason) -> Option<usize> {
        Some(match reason {
            Reason::Owner => 0,
            Reason::AdminBypass => 1,
            Reason::Authenticated => 2,
            Reason::AuthDisabled => 3,
            Reason::Unauthenticated => 4,
            Reason::NoOwnerRecord => 5,
            Reason::NotOwner => 6,
            Reason::Custom(_) => return None,
        })
    }

    let register = || {
        counter!(
            DECISIONS_TOTAL,
            "effect" => decision.effect().code().as_str(),
            "reason" => decision.code().as_str()
        )
    };
    match builtin(decision.reason()).and_then(|i| BUILTIN.get(i)) {
        Some(slot) => slot.get_or_init(register).increment(1),
        None => register().increment(1),
    }
}

#[cfg(not(feature = "metrics"))]
#[inline]
pub(crate) fn decision(_decision: &crate::Decision) {}

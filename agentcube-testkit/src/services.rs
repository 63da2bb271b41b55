//! The services `scripts/with-services.sh` starts (Keycloak, Redis), as a test finds them: their
//! addresses come from the environment. Without one, a test prints a notice and passes (or runs
//! without it); under CI (`CI` set) it fails instead, so that no such test can silently not run
//! there.

#![allow(
    clippy::panic,
    reason = "test support: under CI a missing service fails the test that needs it"
)]

/// The variable that holds the Redis URL of `scripts/with-services.sh`.
pub const REDIS_URL: &str = "AGENTCUBE_REDIS_URL";

/// The value of `variable`, which names a service `scripts/with-services.sh` starts, or `None`
/// (skip, with a notice naming `test`) when it is absent outside CI.
///
/// # Panics
/// When it is absent and `CI` is set.
pub fn required(test: &str, variable: &str) -> Option<String> {
    lookup(test, variable, Need::Required)
}

/// The value of `variable`, which names a service a test uses when it is there and runs
/// without otherwise (saying so, naming `test`). Under CI every service is there, so its
/// absence fails the test, as with [`required`].
///
/// # Panics
/// When it is absent and `CI` is set.
pub fn optional(test: &str, variable: &str) -> Option<String> {
    lookup(test, variable, Need::Optional)
}

/// The Redis started by `scripts/with-services.sh` ([`REDIS_URL`]), as [`required`] finds it.
pub fn redis_url(test: &str) -> Option<String> {
    required(test, REDIS_URL)
}

/// The value of environment variable `name`; unset and empty are the same: absent.
pub(crate) fn env_value(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[derive(Clone, Copy)]
enum Need {
    Required,
    Optional,
}

/// What a test does about a service: use it, run without it, or fail (under CI).
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Use(String),
    GoWithout,
    Fail,
}

/// The rule itself, apart from the environment.
fn decide(value: Option<String>, under_ci: bool) -> Decision {
    match value {
        Some(value) => Decision::Use(value),
        None if under_ci => Decision::Fail,
        None => Decision::GoWithout,
    }
}

fn lookup(test: &str, variable: &str, need: Need) -> Option<String> {
    match decide(env_value(variable), env_value("CI").is_some()) {
        Decision::Use(value) => Some(value),
        Decision::Fail => panic!(
            "{test}: {variable} is not set, but CI is: the tests against real services must run \
             there with every service (use scripts/with-services.sh)"
        ),
        Decision::GoWithout => {
            match need {
                Need::Required => eprintln!(
                    "skipping {test}: {variable} is not set (run under scripts/with-services.sh \
                     to include the tests against real services)"
                ),
                Need::Optional => eprintln!("{test}: {variable} is not set; running without it"),
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_is_used_when_there_and_its_absence_fails_only_under_ci() {
        for under_ci in [false, true] {
            assert_eq!(
                decide(Some("redis://x".into()), under_ci),
                Decision::Use("redis://x".into())
            );
        }
        assert_eq!(decide(None, false), Decision::GoWithout);
        assert_eq!(decide(None, true), Decision::Fail);
    }
}

//! The services `scripts/with-services.sh` starts (Keycloak, Redis), as a test finds them: their
//! addresses come from the environment. Without one, a test prints a skip notice and passes;
//! under CI (`CI` set) it fails instead, so that no such test can silently not run there.

#![allow(
    clippy::panic,
    reason = "test support: under CI a missing service fails the test that needs it"
)]

/// The value of `variable`, which names a service `scripts/with-services.sh` starts, or `None`
/// (skip, with a notice naming `test`) when it is unset or empty outside CI.
///
/// # Panics
/// When it is unset or empty and `CI` is set.
pub fn required(test: &str, variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: {variable} is not set, but CI is: the tests against real services must run \
             there (use scripts/with-services.sh)"
        ),
        _ => {
            eprintln!(
                "skipping {test}: {variable} is not set \
                 (run under scripts/with-services.sh to include the tests against real services)"
            );
            None
        }
    }
}

/// The value of `variable`, which names a service a test uses when it is there and runs
/// without otherwise (saying so, naming `test`). Under CI every service is there, so its
/// absence fails the test, as with [`required`].
///
/// # Panics
/// When it is unset or empty and `CI` is set.
pub fn optional(test: &str, variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => panic!(
            "{test}: {variable} is not set, but CI is: the tests against real services must run \
             there with every service (use scripts/with-services.sh)"
        ),
        _ => {
            eprintln!("{test}: {variable} is not set; running without it");
            None
        }
    }
}

/// The Redis started by `scripts/with-services.sh` (`AGENTCUBE_REDIS_URL`), as [`required`]
/// finds it.
pub fn redis_url(test: &str) -> Option<String> {
    required(test, "AGENTCUBE_REDIS_URL")
}

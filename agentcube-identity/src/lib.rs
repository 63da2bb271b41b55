#![doc = include_str!("../README.md")]

mod cache;
mod error;
mod kind;
pub mod manual;
pub mod metrics;
mod mint;
mod replay;
mod ring;
mod verify;
mod verify_cache;

use std::time::Duration;

// Signing keys live in auth-core's `jose` module, the one home of JOSE signing and
// verification; re-exported because every Router that mints tokens needs them.
pub use agentcube_auth_core::jose::{KeyError, PrivateKeyPem, SigningKey};
pub use error::{ConfigError, MintError};
pub use kind::{
    Identity, Sandbox, SessionBinding, TokenKind, Verified, VerifiedIdentity, VerifiedSandbox,
    sandbox_session,
};
pub use mint::{MintedToken, MinterConfig, TokenMinter};
pub use replay::ReplayGuard;
pub use ring::{Jwks, KeyChange, KeyRing};
pub use verify::{IdentityVerifier, InternalVerifier, SandboxVerifier, VerifierConfig};

/// The HTTP header that carries the identity token from the Router to the workload manager.
pub const IDENTITY_HEADER: &str = "X-AgentCube-User-Identity";

/// The JOSE header `typ` of identity tokens.
pub const IDENTITY_TOKEN_TYPE: &str = "agentcube-identity+jwt";

/// The JOSE header `typ` of sandbox tokens.
pub const SANDBOX_TOKEN_TYPE: &str = "agentcube-sandbox+jwt";

/// The default `iss` of internal tokens: the Router's name.
pub const DEFAULT_ISSUER: &str = "agentcube-router";

/// The default `aud` of identity tokens: the workload manager's name.
pub const DEFAULT_IDENTITY_AUDIENCE: &str = "workloadmanager";

/// The prefix of a sandbox token's audience: `sandbox:<session id>`.
pub const SANDBOX_AUDIENCE_PREFIX: &str = "sandbox:";

/// The longest session id a sandbox token may be bound to.
pub const MAX_SESSION_ID_BYTES: usize = 256;

/// The longest lifetime a minter will issue, and the default lifetime cap of the verifiers.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);

/// The audience of a sandbox token for `session_id`: `sandbox:<session id>`.
pub fn sandbox_audience(session_id: &str) -> String {
    let mut aud = String::with_capacity(SANDBOX_AUDIENCE_PREFIX.len() + session_id.len());
    aud.push_str(SANDBOX_AUDIENCE_PREFIX);
    aud.push_str(session_id);
    aud
}

/// Whether `session_id` is one a sandbox token may be bound to: not empty, at most
/// [`MAX_SESSION_ID_BYTES`]. A sandbox that checks its session another way (with
/// authentication disabled) applies the same rule.
pub fn valid_session_id(session_id: &str) -> bool {
    !session_id.is_empty() && session_id.len() <= MAX_SESSION_ID_BYTES
}

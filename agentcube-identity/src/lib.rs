#![doc = include_str!("../README.md")]

mod cache;
mod keys;
pub mod manual;
mod mint;
mod replay;
mod ring;
mod verify;

use std::time::Duration;

pub use keys::{
    KeyError, MintError, PrivateKeyPem, SigningKey, public_jwk_from_pem, public_jwk_from_spki_der,
};
pub use mint::{
    DEFAULT_IDENTITY_LIFETIME, DEFAULT_MINT_CACHE_CAPACITY, DEFAULT_REFRESH_MARGIN,
    DEFAULT_SANDBOX_LIFETIME, MintedToken, MinterConfig, TokenMinter,
};
pub use replay::{DEFAULT_REPLAY_CAPACITY, ReplayGuard};
pub use ring::{Jwks, KeyRing};
pub use verify::{
    DEFAULT_LEEWAY, INTERNAL_ALGORITHMS, IdentityError, IdentityVerifier, SandboxVerifier,
    VerifiedIdentity, VerifiedSandbox, VerifierConfig,
};

/// The HTTP header that carries the identity token from the Router to the workload manager.
pub const IDENTITY_HEADER: &str = "X-AgentCube-User-Identity";

/// The JOSE header `typ` of identity tokens.
pub const IDENTITY_TOKEN_TYPE: &str = "agentcube-identity+jwt";

/// The JOSE header `typ` of sandbox tokens.
pub const SANDBOX_TOKEN_TYPE: &str = "agentcube-sandbox+jwt";

/// The default `iss` of internal tokens (the reference Router's).
pub const DEFAULT_ISSUER: &str = "agentcube-router";

/// The default `aud` of identity tokens (the reference workload manager's).
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

/// The two kinds of internal token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TokenKind {
    Identity,
    Sandbox,
}

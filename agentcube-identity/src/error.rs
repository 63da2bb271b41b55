//! The errors of minting and of building a minter or a verifier.

use std::borrow::Cow;

use agentcube_auth_core::jose::SignError;
use agentcube_auth_core::{Code, Rejection};
use http::StatusCode;

/// Why a token could not be minted.
///
/// Every variant is a fault of the service, not of its caller, so as a [`Rejection`] each one
/// is a 500 with its own stable code and the same public message, which says nothing about the
/// cause (the `Display` text, for the server's logs, does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The key ring has no active signing key (it is verify-only or empty). Code
    /// `no_signing_key`.
    #[error("the key ring has no signing key")]
    NoSigningKey,
    /// The principal's subject is empty. Code `empty_subject`.
    #[error("the subject is empty")]
    EmptySubject,
    /// The session id is empty or longer than
    /// [`MAX_SESSION_ID_BYTES`](crate::MAX_SESSION_ID_BYTES). Code `invalid_session_id`.
    #[error("the session id is empty or too long")]
    InvalidSessionId,
    /// Signing failed: the crypto library failed, or the payload did not serialise. Code
    /// `signing_failed`.
    #[error("signing failed: {0}")]
    Signing(#[from] SignError),
}

impl MintError {
    /// The stable machine code (see each variant).
    pub const fn code(&self) -> Code {
        match self {
            Self::NoSigningKey => Code::new("no_signing_key"),
            Self::EmptySubject => Code::new("empty_subject"),
            Self::InvalidSessionId => Code::new("invalid_session_id"),
            Self::Signing(_) => Code::new("signing_failed"),
        }
    }
}

impl Rejection for MintError {
    fn code(&self) -> Code {
        MintError::code(self)
    }

    fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn public_message(&self) -> Cow<'static, str> {
        Cow::Borrowed("internal token could not be issued")
    }
}

/// A [`MinterConfig`](crate::MinterConfig) or [`VerifierConfig`](crate::VerifierConfig) (or a
/// sandbox verifier's [`SessionBinding`](crate::SessionBinding)) that cannot work, reported
/// when the minter or verifier is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is empty.
    #[error("the issuer is empty")]
    EmptyIssuer,
    /// The identity audience is empty.
    #[error("the identity audience is empty")]
    EmptyAudience,
    /// A token lifetime, or the verifier's lifetime cap, is under one second.
    #[error("a lifetime is under one second")]
    LifetimeTooShort,
    /// A minted token's lifetime is over [`MAX_LIFETIME`](crate::MAX_LIFETIME).
    #[error("a lifetime exceeds the maximum")]
    LifetimeTooLong,
    /// The refresh margin is not shorter than a token lifetime (while the cache is on), so no
    /// cached token could ever be reused.
    #[error("the refresh margin is not shorter than a lifetime")]
    RefreshMarginTooLong,
    /// The verifier's algorithm allowlist is empty.
    #[error("no signing algorithm is allowed")]
    NoAlgorithms,
    /// The verifier's token size limit is zero.
    #[error("the token size limit is zero")]
    ZeroTokenLimit,
    /// A sandbox verifier's session id is empty or longer than
    /// [`MAX_SESSION_ID_BYTES`](crate::MAX_SESSION_ID_BYTES).
    #[error("the session id is empty or too long")]
    InvalidSessionId,
}

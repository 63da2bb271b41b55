//! The verification seam: anything that turns a bearer token into a [`Principal`].

use std::future::Future;
use std::sync::Arc;

use crate::error::AuthError;
use crate::principal::Principal;

/// Verifies a token and returns the principal it vouches for.
///
/// Implemented by `agentcube-oidc`'s verifiers; the tower layer in the `http` feature runs any
/// implementation. The future is `Send` and generic (not boxed): a caller that awaits it
/// allocates nothing for it. (The tower layer boxes it once per request that carries a
/// well-formed token, because a `Service::Future` cannot name an `impl Future` on stable Rust.)
///
/// A verifier turns the verified claims into the principal with a
/// [`ClaimMapper`](crate::ClaimMapper) and passes the mapper's refusal on as it is, so an
/// [`AuthError::Custom`] of the service's own reaches the client with its code and status.
pub trait TokenVerifier: Send + Sync {
    /// Verifies `token` (the bare token, without the `Bearer ` prefix).
    ///
    /// # Errors
    /// Any [`AuthError`]; [`AuthError::KeysUnavailable`] when the verifier cannot decide yet.
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send;

    /// Whether the verifier can verify tokens now (it has keys). Services report this on their
    /// readiness endpoint. The default is `true`.
    fn is_ready(&self) -> bool {
        true
    }
}

impl<V: TokenVerifier + ?Sized> TokenVerifier for Arc<V> {
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send {
        (**self).verify(token)
    }

    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
}

impl<V: TokenVerifier + ?Sized> TokenVerifier for &V {
    fn verify(&self, token: &str) -> impl Future<Output = Result<Principal, AuthError>> + Send {
        (**self).verify(token)
    }

    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }
}

//! Combining key sources: one of two kinds chosen at start-up, or the union of several.

use std::sync::Arc;

use super::algorithm::Algorithm;
use super::key::VerificationKey;
use super::key_set::KeySource;
use crate::error::{AuthError, KeysUnavailableReason};

/// One of two key sources, chosen at start-up: for example a remote JWKS or a static key read
/// from a PEM file, whichever the operator configured.
#[derive(Clone, Debug)]
pub enum EitherKeySource<L, R> {
    /// The first kind.
    Left(L),
    /// The second kind.
    Right(R),
}

impl<L: KeySource, R: KeySource> KeySource for EitherKeySource<L, R> {
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, AuthError> {
        match self {
            Self::Left(source) => source.key_for(kid, alg).await,
            Self::Right(source) => source.key_for(kid, alg).await,
        }
    }

    fn is_ready(&self) -> bool {
        match self {
            Self::Left(source) => source.is_ready(),
            Self::Right(source) => source.is_ready(),
        }
    }
}

/// The union of several key sources, asked in order: the keys of every replica of a service
/// that each publish their own JWKS.
///
/// A key is found when any source has it. When none has it, the answer is the most specific
/// one: `key_algorithm_mismatch` if some source holds the `kid` for another algorithm,
/// `unknown_kid` if some source is loaded, `keys_unavailable` (503) only when no source could
/// answer at all. The union is ready as soon as one source is: one replica down must not stop
/// tokens signed by the others.
///
/// Asking in order means an unknown `kid` may cost each source its own (rate-limited) refresh;
/// keep the list to the replicas that really sign.
#[derive(Clone, Debug)]
pub struct KeySourceUnion<S> {
    sources: Box<[S]>,
}

impl<S: KeySource> KeySourceUnion<S> {
    /// The union of `sources`.
    pub fn new(sources: impl IntoIterator<Item = S>) -> Self {
        Self {
            sources: sources.into_iter().collect(),
        }
    }

    /// The sources, in the order they are asked.
    pub fn sources(&self) -> &[S] {
        &self.sources
    }
}

impl<S: KeySource> KeySource for KeySourceUnion<S> {
    async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, AuthError> {
        let mut best = AuthError::KeysUnavailable(KeysUnavailableReason::NotLoaded);
        for source in &self.sources {
            match source.key_for(kid, alg).await {
                Ok(key) => return Ok(key),
                Err(err) => {
                    if specificity(&err) > specificity(&best) {
                        best = err;
                    }
                }
            }
        }
        Err(best)
    }

    fn is_ready(&self) -> bool {
        self.sources.iter().any(KeySource::is_ready)
    }
}

/// How much an answer says about the token: a key for another algorithm beats "no such key",
/// which beats "could not look".
fn specificity(err: &AuthError) -> u8 {
    match err {
        AuthError::KeyAlgorithmMismatch => 3,
        AuthError::KeysUnavailable(_) => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use crate::jose::{KeySet, SigningKey};

    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(output) => output,
            std::task::Poll::Pending => unreachable!("static key sets never wait"),
        }
    }

    fn set_of(key: &SigningKey) -> KeySet {
        KeySet::from_shared([Arc::clone(key.verification_key())])
    }

    #[test]
    fn either_delegates_to_its_side() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let left: EitherKeySource<KeySet, KeySet> = EitherKeySource::Left(set_of(&key));
        assert!(left.is_ready());
        assert!(ready(left.key_for(Some(key.kid()), Algorithm::EdDSA)).is_ok());
        let right: EitherKeySource<KeySet, KeySet> = EitherKeySource::Right(KeySet::default());
        assert!(!right.is_ready());
        assert_eq!(
            ready(right.key_for(Some(key.kid()), Algorithm::EdDSA))
                .unwrap_err()
                .code(),
            ErrorCode::KeysUnavailable
        );
    }

    #[test]
    fn a_union_finds_a_key_in_any_source_and_answers_the_most_specific_miss() {
        let a = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let b = SigningKey::generate(Algorithm::ES256).unwrap();
        let union = KeySourceUnion::new([KeySet::default(), set_of(&a), set_of(&b)]);
        assert!(union.is_ready());
        assert!(ready(union.key_for(Some(a.kid()), Algorithm::EdDSA)).is_ok());
        assert!(ready(union.key_for(Some(b.kid()), Algorithm::ES256)).is_ok());
        let code = |kid: &str, alg| ready(union.key_for(Some(kid), alg)).unwrap_err().code();
        assert_eq!(code("nope", Algorithm::EdDSA), ErrorCode::UnknownKid);
        assert_eq!(
            code(b.kid(), Algorithm::EdDSA),
            ErrorCode::KeyAlgorithmMismatch
        );

        let none_loaded = KeySourceUnion::new([KeySet::default(), KeySet::default()]);
        assert!(!none_loaded.is_ready());
        assert_eq!(
            ready(none_loaded.key_for(Some(a.kid()), Algorithm::EdDSA))
                .unwrap_err()
                .code(),
            ErrorCode::KeysUnavailable
        );
        let empty: KeySourceUnion<KeySet> = KeySourceUnion::new([]);
        assert!(!empty.is_ready());
    }
}

//! [`AuthLayer`]: the configuration of the authentication middleware.

use std::fmt;
use std::sync::Arc;

use ::http::HeaderValue;
use tower_layer::Layer;

use super::bearer::TokenLocation;
use super::service::AuthService;
use crate::error::AuthError;
use crate::hierarchy::RoleHierarchy;
use crate::principal::Principal;
use crate::requirement::Requirement;
use crate::verifier::TokenVerifier;

/// A hook called with every rejection, for logging and metrics.
///
/// It sees only the [`AuthError`], never the request or the token: log
/// [`AuthError::code`] (and, server-side only, the error's `Display`, which is more precise than
/// what the client is told). An [`AuthError::Custom`] from a claim mapper has the code `custom`
/// there; [`Rejection::code`](crate::Rejection::code) is the service's own code the client
/// receives. It runs on the request path, so keep it cheap.
///
/// Implemented for `()` (do nothing, the default) and for any
/// `Fn(&AuthError) + Send + Sync + 'static`.
pub trait OnRejection: Send + Sync + 'static {
    /// Called once for each rejected request, before the response is produced.
    fn on_rejection(&self, error: &AuthError);
}

impl OnRejection for () {
    #[inline]
    fn on_rejection(&self, _error: &AuthError) {}
}

impl<F> OnRejection for F
where
    F: Fn(&AuthError) + Send + Sync + 'static,
{
    #[inline]
    fn on_rejection(&self, error: &AuthError) {
        self(error);
    }
}

/// A [`Layer`] that authenticates every request with a bearer token.
///
/// For each request, [`AuthService`]:
///
/// 1. reads the token from its [`TokenLocation`] (`Authorization: Bearer` by default, see
///    [`bearer_token`](super::bearer_token));
/// 2. verifies it with the [`TokenVerifier`];
/// 3. checks the [`Requirement`], if one was set with [`AuthLayer::require`], through the
///    [`RoleHierarchy`] (flat unless set with [`AuthLayer::hierarchy`]);
/// 4. inserts the [`Principal`] into the request's extensions and calls the inner service.
///
/// Any failure is answered by [`error_response`](super::error_response) (401, 403 or 503 with
/// a JSON body and the RFC 6750 challenge) without calling the inner service. The type
/// parameter `F` is the [`OnRejection`] hook, `()` by default.
///
/// Cloning the layer is cheap: the verifier and the hierarchy are shared through [`Arc`]s.
#[must_use]
pub struct AuthLayer<V, F = ()> {
    verifier: Arc<V>,
    location: TokenLocation,
    requirement: Option<Requirement>,
    hierarchy: Arc<RoleHierarchy>,
    on_rejection: F,
}

impl<V: TokenVerifier> AuthLayer<V> {
    /// A layer that accepts any principal `verifier` accepts.
    pub fn new(verifier: V) -> Self {
        Self::from_arc(Arc::new(verifier))
    }

    /// Like [`AuthLayer::new`], for a verifier that is already shared (e.g. also polled by a
    /// readiness endpoint).
    pub fn from_arc(verifier: Arc<V>) -> Self {
        Self {
            verifier,
            location: TokenLocation::AuthorizationBearer,
            requirement: None,
            hierarchy: Arc::new(RoleHierarchy::flat()),
            on_rejection: (),
        }
    }
}

impl<V, F> AuthLayer<V, F> {
    /// Reads the token from `location` instead of `Authorization: Bearer` (for example the
    /// identity header a workload manager receives from the Router).
    pub fn token_location(mut self, location: TokenLocation) -> Self {
        self.location = location;
        self
    }

    /// Requires every authenticated principal to satisfy `requirement` (403 otherwise).
    ///
    /// This applies to every route behind the layer; for a requirement on some routes only, add
    /// a [`RequireLayer`](super::RequireLayer) to them, which reuses the principal this layer
    /// authenticated.
    pub fn require(mut self, requirement: Requirement) -> Self {
        self.requirement = Some(requirement);
        self
    }

    /// Evaluates the requirement through `hierarchy` (default: flat, no role implies another).
    pub fn hierarchy(mut self, hierarchy: Arc<RoleHierarchy>) -> Self {
        self.hierarchy = hierarchy;
        self
    }

    /// Calls `hook` with every rejection (see [`OnRejection`]).
    pub fn on_rejection<G: OnRejection>(self, hook: G) -> AuthLayer<V, G> {
        AuthLayer {
            verifier: self.verifier,
            location: self.location,
            requirement: self.requirement,
            hierarchy: self.hierarchy,
            on_rejection: hook,
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &Arc<V> {
        &self.verifier
    }

    /// The requirement, if any.
    pub fn requirement(&self) -> Option<&Requirement> {
        self.requirement.as_ref()
    }
}

impl<V, F: Clone> Clone for AuthLayer<V, F> {
    fn clone(&self) -> Self {
        Self {
            verifier: Arc::clone(&self.verifier),
            location: self.location.clone(),
            requirement: self.requirement.clone(),
            hierarchy: Arc::clone(&self.hierarchy),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<V, F> fmt::Debug for AuthLayer<V, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("verifier", &std::any::type_name::<V>())
            .field("location", &self.location)
            .field("requirement", &self.requirement)
            .field("hierarchy", &self.hierarchy)
            .finish_non_exhaustive()
    }
}

impl<S, V, F: Clone> Layer<S> for AuthLayer<V, F> {
    type Service = AuthService<S, V, F>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService::from_parts(
            inner,
            Arc::new(Shared {
                verifier: Arc::clone(&self.verifier),
                location: self.location.clone(),
                requirement: self.requirement.clone(),
                hierarchy: Arc::clone(&self.hierarchy),
                on_rejection: self.on_rejection.clone(),
            }),
        )
    }
}

/// What every clone of one [`AuthService`] shares; one `Arc` clone per request.
pub(crate) struct Shared<V, F> {
    verifier: Arc<V>,
    pub(crate) location: TokenLocation,
    requirement: Option<Requirement>,
    hierarchy: Arc<RoleHierarchy>,
    on_rejection: F,
}

impl<V, F> Shared<V, F>
where
    V: TokenVerifier,
    F: OnRejection,
{
    /// Reports a rejection to the hook.
    pub(crate) fn rejected(&self, error: &AuthError) {
        self.on_rejection.on_rejection(error);
    }

    /// Verifies the token in `authorization` (the header value at the token location) and
    /// checks the requirement; reports a failure to the hook.
    pub(crate) async fn authenticate(
        &self,
        authorization: &HeaderValue,
    ) -> Result<Principal, AuthError> {
        let result = self.verify_and_check(authorization).await;
        if let Err(error) = &result {
            self.rejected(error);
        }
        result
    }

    async fn verify_and_check(&self, authorization: &HeaderValue) -> Result<Principal, AuthError> {
        let token = self.location.token_in(authorization)?;
        let principal = self.verifier.verify(token).await?;
        if let Some(requirement) = &self.requirement {
            requirement.check(&principal, &self.hierarchy)?;
        }
        Ok(principal)
    }
}

impl<V, F> fmt::Debug for Shared<V, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("verifier", &std::any::type_name::<V>())
            .field("location", &self.location)
            .field("requirement", &self.requirement)
            .field("hierarchy", &self.hierarchy)
            .finish_non_exhaustive()
    }
}

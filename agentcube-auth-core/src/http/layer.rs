//! [`AuthLayer`]: the configuration of the authentication middleware.

use std::fmt;
use std::sync::Arc;

use ::http::{Extensions, HeaderValue, Method, Request};
use tower_layer::Layer;

use super::bearer::TokenLocation;
use super::service::AuthService;
use crate::error::AuthError;
use crate::hierarchy::RoleHierarchy;
use crate::principal::Principal;
use crate::requirement::Requirement;
use crate::verifier::TokenVerifier;

/// A hook called with every rejection, for logging, auditing and metrics.
///
/// It sees the [`AuthError`] and, through
/// [`on_rejected_request`](Self::on_rejected_request), a [`RejectedRequest`]: the method, the
/// path, the request's extensions (a request id a middleware put there) and, for a refused
/// requirement, the caller — never a header value, the query string or the body, so never the
/// token. Log [`AuthError::code`] (and, server-side only, the error's `Display`, which is more
/// precise than what the client is told). An [`AuthError::Custom`] from a claim mapper has the
/// code `custom` there; [`Rejection::code`](crate::Rejection::code) is the service's own code the
/// client receives. It runs on the request path, so keep it cheap.
///
/// The layers call [`on_rejected_request`](Self::on_rejected_request), whose default calls
/// [`on_rejection`](Self::on_rejection): a hook that needs only the error implements the
/// latter; one that writes an audit event with the request id implements both.
///
/// Implemented for `()` (do nothing, the default) and for any
/// `Fn(&AuthError) + Send + Sync + 'static`.
///
/// ```
/// use agentcube_auth_core::AuthError;
/// use agentcube_auth_core::http::{OnRejection, RejectedRequest};
///
/// /// Stands in for the service's own request-id extension.
/// #[derive(Clone)]
/// struct RequestId(String);
///
/// #[derive(Clone)]
/// struct Audit;
///
/// impl OnRejection for Audit {
///     fn on_rejection(&self, error: &AuthError) {
///         eprintln!("rejected: {}", error.code());
///     }
///
///     fn on_rejected_request(&self, request: &RejectedRequest<'_>, error: &AuthError) {
///         let id = request.extensions().get::<RequestId>().map(|r| r.0.as_str());
///         let subject = request.principal().map(|p| p.subject());
///         eprintln!("{id:?} {} {}: {} ({subject:?})", request.method(), request.path(), error.code());
///     }
/// }
/// ```
pub trait OnRejection: Send + Sync + 'static {
    /// Called once for each rejected request, before the response is produced, by the default
    /// [`on_rejected_request`](Self::on_rejected_request).
    fn on_rejection(&self, error: &AuthError);

    /// Called by [`AuthService`] and [`RequireService`](super::RequireService) once for each
    /// rejected request, before the response is produced. The default calls
    /// [`on_rejection`](Self::on_rejection).
    fn on_rejected_request(&self, request: &RejectedRequest<'_>, error: &AuthError) {
        let _ = request;
        self.on_rejection(error);
    }
}

/// What a rejection hook learns about the refused request (see [`OnRejection`]).
///
/// The method, the path (without the query string, which may carry secrets), the request's
/// extensions — what earlier middleware put there, such as a request id or axum's matched
/// route — and the [`Principal`] when the token verified but a requirement was not met. No header
/// value and no body: the token cannot reach a hook through it.
#[derive(Clone, Copy)]
pub struct RejectedRequest<'a> {
    method: &'a Method,
    path: &'a str,
    extensions: &'a Extensions,
    principal: Option<&'a Principal>,
}

impl<'a> RejectedRequest<'a> {
    /// A rejected request with `method`, `path` (no query) and `extensions`.
    pub fn new(method: &'a Method, path: &'a str, extensions: &'a Extensions) -> Self {
        Self {
            method,
            path,
            extensions,
            principal: None,
        }
    }

    /// The metadata of `request`: its method, path and extensions.
    pub fn of<B>(request: &'a Request<B>) -> Self {
        Self::new(request.method(), request.uri().path(), request.extensions())
    }

    /// Adds the verified caller (a refused requirement).
    #[must_use]
    pub fn with_principal(mut self, principal: Option<&'a Principal>) -> Self {
        self.principal = principal;
        self
    }

    /// The method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The path, without the query string.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The request's extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }

    /// The caller, when its token verified and a requirement refused it; `None` when
    /// authentication itself failed.
    pub fn principal(&self) -> Option<&'a Principal> {
        self.principal
    }
}

impl fmt::Debug for RejectedRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectedRequest")
            .field("method", self.method)
            .field("path", &self.path)
            .field("subject", &self.principal.map(Principal::subject))
            .finish_non_exhaustive()
    }
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
    pub(crate) on_rejection: F,
}

/// A refused request: the error, and the caller when the token verified but the requirement was
/// not met.
pub(crate) struct Refusal {
    pub(crate) error: AuthError,
    pub(crate) principal: Option<Principal>,
}

impl From<AuthError> for Refusal {
    fn from(error: AuthError) -> Self {
        Self {
            error,
            principal: None,
        }
    }
}

/// The auth layer's hook, reached through its shared state without naming the verifier or the
/// hook type: what a response future that is still verifying holds, to report a refusal later.
pub(crate) trait Report: Send + Sync {
    fn hook(&self) -> &dyn OnRejection;
}

/// Tells `hook` of a refusal: the request's metadata, and the caller when one was identified (a
/// refused requirement). Both layers report through this.
pub(crate) fn report_refusal<H: OnRejection + ?Sized, B>(
    hook: &H,
    request: &Request<B>,
    error: &AuthError,
    principal: Option<&Principal>,
) {
    hook.on_rejected_request(
        &RejectedRequest::of(request).with_principal(principal),
        error,
    );
}

impl<V: Send + Sync, F: OnRejection> Report for Shared<V, F> {
    fn hook(&self) -> &dyn OnRejection {
        &self.on_rejection
    }
}

impl<V, F> Shared<V, F>
where
    V: TokenVerifier,
    F: OnRejection,
{
    /// Verifies the token at `token` in `authorization` (the header value at the token
    /// location, as [`TokenLocation::token_range`] found it) and checks the requirement. The
    /// caller reports a failure to the hook, with the request.
    pub(crate) async fn authenticate(
        &self,
        authorization: &HeaderValue,
        token: std::ops::Range<usize>,
    ) -> Result<Principal, Refusal> {
        let token = crate::bearer::text_at(authorization.as_bytes(), token)?;
        let principal = self.verifier.verify(token).await?;
        if let Some(requirement) = &self.requirement
            && let Err(error) = requirement.check(&principal, &self.hierarchy)
        {
            return Err(Refusal {
                error,
                principal: Some(principal),
            });
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

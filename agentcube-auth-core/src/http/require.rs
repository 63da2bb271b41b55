//! [`RequireLayer`]: a requirement checked against the principal an outer layer authenticated.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::AuthBody;
use super::layer::{OnRejection, report_refusal};
use crate::error::AuthError;
use crate::hierarchy::RoleHierarchy;
use crate::principal::Principal;
use crate::requirement::Requirement;

/// A [`Layer`] that checks a [`Requirement`] against the [`Principal`] already in the request's
/// extensions, without verifying anything again: per-route requirements under one
/// [`AuthLayer`](super::AuthLayer).
///
/// For each request, [`RequireService`]:
///
/// 1. takes the [`Principal`] an outer [`AuthLayer`](super::AuthLayer) put into the request's
///    extensions — none means the route is not behind one, a wiring mistake, and is answered
///    like a request without credentials (401 `missing_authorization`, fail closed);
/// 2. checks the requirement through the [`RoleHierarchy`] (flat unless set with
///    [`RequireLayer::hierarchy`]): 403 `insufficient_role`, `insufficient_scope` or
///    `insufficient_permission` if unmet;
/// 3. calls the inner service with the request untouched.
///
/// A refusal is answered by [`error_response`](super::error_response) without calling the inner
/// service, and reported to the [`OnRejection`] hook. The check is synchronous and allocates
/// nothing when it passes; the inner service's future is not boxed.
///
/// # Example
///
/// With axum, `route_layer` puts the requirement on the routes added before it; the
/// [`AuthLayer`](super::AuthLayer) added with `layer` runs first, once per request.
///
/// ```
/// # #[cfg(feature = "axum")]
/// # fn main() {
/// use agentcube_auth_core::http::{AuthLayer, AuthenticatedPrincipal, RequireLayer};
/// use agentcube_auth_core::{AuthError, Principal, Requirement, TokenVerifier};
/// use axum::{Router, routing::{get, post}};
///
/// struct Verifier; // stands in for a real verifier
/// impl TokenVerifier for Verifier {
///     async fn verify(&self, _token: &str) -> Result<Principal, AuthError> {
///         Err(AuthError::InvalidSignature)
///     }
/// }
///
/// async fn me(AuthenticatedPrincipal(p): AuthenticatedPrincipal) -> String {
///     p.subject().to_owned()
/// }
/// async fn purge() -> &'static str {
///     "purged"
/// }
///
/// let admin = Router::new()
///     .route("/admin/purge", post(purge))
///     .route_layer(RequireLayer::new(Requirement::scope("admin:write")));
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .merge(admin)
///     .layer(AuthLayer::new(Verifier));
/// # let _ = app;
/// # }
/// # #[cfg(not(feature = "axum"))]
/// # fn main() {}
/// ```
#[must_use]
pub struct RequireLayer<F = ()> {
    requirement: Arc<Requirement>,
    hierarchy: Arc<RoleHierarchy>,
    on_rejection: F,
}

impl RequireLayer {
    /// A layer that requires `requirement` (through a flat hierarchy until
    /// [`RequireLayer::hierarchy`] sets one).
    pub fn new(requirement: Requirement) -> Self {
        Self {
            requirement: Arc::new(requirement),
            hierarchy: Arc::new(RoleHierarchy::flat()),
            on_rejection: (),
        }
    }
}

impl<F> RequireLayer<F> {
    /// Evaluates the requirement through `hierarchy` (share the one the
    /// [`AuthLayer`](super::AuthLayer) uses).
    pub fn hierarchy(mut self, hierarchy: Arc<RoleHierarchy>) -> Self {
        self.hierarchy = hierarchy;
        self
    }

    /// Calls `hook` with every rejection (see [`OnRejection`]).
    pub fn on_rejection<G: OnRejection>(self, hook: G) -> RequireLayer<G> {
        RequireLayer {
            requirement: self.requirement,
            hierarchy: self.hierarchy,
            on_rejection: hook,
        }
    }

    /// The requirement.
    pub fn requirement(&self) -> &Requirement {
        &self.requirement
    }
}

impl<F: Clone> Clone for RequireLayer<F> {
    fn clone(&self) -> Self {
        Self {
            requirement: Arc::clone(&self.requirement),
            hierarchy: Arc::clone(&self.hierarchy),
            on_rejection: self.on_rejection.clone(),
        }
    }
}

impl<F> fmt::Debug for RequireLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer")
            .field("requirement", &self.requirement)
            .field("hierarchy", &self.hierarchy)
            .finish_non_exhaustive()
    }
}

impl<S, F: Clone> Layer<S> for RequireLayer<F> {
    type Service = RequireService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService {
            inner,
            shared: Arc::new(Shared {
                requirement: Arc::clone(&self.requirement),
                hierarchy: Arc::clone(&self.hierarchy),
                on_rejection: self.on_rejection.clone(),
            }),
        }
    }
}

/// What every clone of one [`RequireService`] shares; one `Arc` clone per service clone.
struct Shared<F> {
    requirement: Arc<Requirement>,
    hierarchy: Arc<RoleHierarchy>,
    on_rejection: F,
}

/// The middleware built by [`RequireLayer`]; see there for what it does.
pub struct RequireService<S, F = ()> {
    inner: S,
    shared: Arc<Shared<F>>,
}

impl<S, F> RequireService<S, F> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the middleware, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, F> Clone for RequireService<S, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for RequireService<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireService")
            .field("inner", &self.inner)
            .field("requirement", &self.shared.requirement)
            .field("hierarchy", &self.shared.hierarchy)
            .finish_non_exhaustive()
    }
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for RequireService<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: OnRejection,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let principal = request.extensions().get::<Principal>();
        let verdict = match principal {
            None => Err(AuthError::MissingAuthorization),
            Some(principal) => self
                .shared
                .requirement
                .check(principal, &self.shared.hierarchy),
        };
        if let Err(error) = &verdict {
            report_refusal(&self.shared.on_rejection, &request, error, principal);
        }
        match verdict {
            Ok(()) => RequireFuture {
                state: RequireState::Calling {
                    future: self.inner.call(request),
                },
            },
            Err(error) => RequireFuture {
                state: RequireState::Rejected { error: Some(error) },
            },
        }
    }
}

pin_project! {
    /// The response future of [`RequireService`]: the inner service's, or a rejection.
    ///
    /// Polling a rejection again after it has completed returns `Poll::Pending` forever.
    pub struct RequireFuture<Fut> {
        #[pin]
        state: RequireState<Fut>,
    }
}

pin_project! {
    #[project = RequireStateProj]
    enum RequireState<Fut> {
        Calling {
            #[pin]
            future: Fut,
        },
        // `None` once the response has been produced.
        Rejected {
            error: Option<AuthError>,
        },
    }
}

impl<Fut> fmt::Debug for RequireFuture<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            RequireState::Calling { .. } => "calling",
            RequireState::Rejected { .. } => "rejected",
        };
        f.debug_struct("RequireFuture")
            .field("state", &state)
            .finish()
    }
}

impl<Fut, ResBody, E> Future for RequireFuture<Fut>
where
    Fut: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RequireStateProj::Calling { future } => future
                .poll(cx)
                .map(|result| result.map(|res| res.map(AuthBody::inner))),
            RequireStateProj::Rejected { error } => match error.take() {
                Some(error) => Poll::Ready(Ok(AuthBody::refusal(&error))),
                None => Poll::Pending,
            },
        }
    }
}

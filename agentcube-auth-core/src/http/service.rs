//! [`AuthService`] and its response future.

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use ::http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::AuthBody;
use super::layer::{OnRejection, Refusal, Report, Shared, report_refusal};
use crate::error::AuthError;
use crate::principal::Principal;
use crate::verifier::TokenVerifier;

/// The middleware built by [`AuthLayer`](super::AuthLayer); see there for what it does.
///
/// Header problems (missing, malformed, empty token) are rejected synchronously in `call`,
/// without allocating. A request with a well-formed bearer token costs one allocation for its
/// verification, besides handing the principal to the inner service in the request's
/// extensions (one more where the request already has extensions, as a server's requests do;
/// three on a request with none): the verifier's future is boxed, because [`TokenVerifier::verify`] returns an `impl Future`
/// that stable Rust cannot name in [`Service::Future`]. The inner service's future is not boxed.
///
/// `poll_ready` is the inner service's. `call` polls the verification once: a verification that
/// is done at once (a verified-token cache hit, the common case) calls the ready inner service
/// there and then, and one that refuses leaves it where it is. A verification that has to wait
/// (keys to fetch) moves the ready inner service into the response future and leaves a fresh
/// clone in its place (the pattern tower documents under "Be careful when cloning inner
/// services"). So a cache hit clones nothing, where an axum route's clone is an allocation.
pub struct AuthService<S, V, F = ()> {
    inner: S,
    shared: Arc<Shared<V, F>>,
}

impl<S, V, F> AuthService<S, V, F> {
    pub(crate) fn from_parts(inner: S, shared: Arc<Shared<V, F>>) -> Self {
        Self { inner, shared }
    }

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

impl<S: Clone, V, F> Clone for AuthService<S, V, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, V, F> fmt::Debug for AuthService<S, V, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .field("config", &self.shared)
            .finish()
    }
}

impl<S, V, F, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, V, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    V: TokenVerifier + 'static,
    F: OnRejection,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let location = &self.shared.location;
        // The token is found once, here, so that a malformed header is refused without a
        // future; the future reads it again by its place in the value.
        let checked = location
            .value(request.headers())
            .and_then(|value| Ok((value, location.token_range(value)?)));
        let (authorization, token) = match checked {
            // A cheap clone: a header received by hyper shares the connection's buffer.
            Ok((value, token)) => (value.clone(), token),
            Err(error) => return self.reject(&request, error, None),
        };
        let shared = Arc::clone(&self.shared);
        let mut verify: VerifyFuture =
            Box::pin(async move { shared.authenticate(&authorization, token).await });
        // A verified-token cache hit (the common case) completes at its first poll: then the
        // ready inner service is called here, and is not cloned. A future that is not done yet
        // registers the real waker when the response future polls it again.
        match verify
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(Ok(principal)) => ResponseFuture {
                state: State::Calling {
                    future: admit(&mut self.inner, request, principal),
                },
            },
            Poll::Ready(Err(Refusal { error, principal })) => {
                self.reject(&request, error, principal.as_ref())
            }
            Poll::Pending => {
                let report: Arc<dyn Report> = Arc::clone(&self.shared) as Arc<dyn Report>;
                let fresh = self.inner.clone();
                let inner = mem::replace(&mut self.inner, fresh);
                ResponseFuture {
                    state: State::Verifying {
                        verify,
                        request,
                        inner,
                        report,
                    },
                }
            }
        }
    }
}

impl<S, V: Send + Sync, F: OnRejection> AuthService<S, V, F> {
    /// Reports a refusal decided in `call` and answers it on the first poll; the ready inner
    /// service stays where it is.
    fn reject<B>(
        &self,
        request: &Request<B>,
        error: AuthError,
        principal: Option<&Principal>,
    ) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        report_refusal(&self.shared.on_rejection, request, &error, principal);
        ResponseFuture {
            state: State::Rejected { error },
        }
    }
}

type VerifyFuture = Pin<Box<dyn Future<Output = Result<Principal, Refusal>> + Send>>;

pin_project! {
    /// The response future of [`AuthService`].
    ///
    /// Polling it again after it has completed returns `Poll::Pending` forever.
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateProjReplace]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // Verifying the token; owns the request and the ready inner service meanwhile, and the
        // hook that hears of a refusal (with the request's metadata, never its token).
        Verifying {
            verify: VerifyFuture,
            request: Request<ReqBody>,
            inner: S,
            report: Arc<dyn Report>,
        },
        // Authenticated; driving the inner service.
        Calling {
            #[pin]
            future: S::Future,
        },
        // Rejected in `call`; the response is rendered on the first poll.
        Rejected {
            error: AuthError,
        },
        // Completed (or rejected after verification).
        Done,
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Verifying { .. } => "verifying",
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<AuthBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Verifying { verify, .. } => {
                    let result = ready!(verify.as_mut().poll(cx));
                    let StateProjReplace::Verifying {
                        request,
                        mut inner,
                        report,
                        ..
                    } = state.as_mut().project_replace(State::Done)
                    else {
                        continue; // not reachable: the state was `Verifying`
                    };
                    match result {
                        Ok(principal) => {
                            let future = admit(&mut inner, request, principal);
                            state.set(State::Calling { future });
                        }
                        Err(Refusal { error, principal }) => {
                            report_refusal(report.hook(), &request, &error, principal.as_ref());
                            return Poll::Ready(Ok(AuthBody::refusal(&error)));
                        }
                    }
                }
                StateProj::Calling { future } => {
                    let result = ready!(future.poll(cx));
                    state.set(State::Done);
                    return Poll::Ready(result.map(|res| res.map(AuthBody::inner)));
                }
                StateProj::Rejected { .. } => {
                    if let StateProjReplace::Rejected { error } =
                        state.as_mut().project_replace(State::Done)
                    {
                        return Poll::Ready(Ok(AuthBody::refusal(&error)));
                    }
                }
                StateProj::Done => return Poll::Pending,
            }
        }
    }
}

/// Calls the ready `inner` with `request`, the verified principal in its extensions.
fn admit<S, B>(inner: &mut S, mut request: Request<B>, principal: Principal) -> S::Future
where
    S: Service<Request<B>>,
{
    request.extensions_mut().insert(principal);
    inner.call(request)
}

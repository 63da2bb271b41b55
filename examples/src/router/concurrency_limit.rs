//! The concurrency limit of the Router's `/v1/*` routes: at most `max` requests at once, more
//! answered 429 `server_overloaded` at once (never queued). A request takes its slot when it
//! reaches the limit (after authentication, so a refused request never holds one) and keeps it
//! until its response body has been sent or dropped: a streamed response still being served
//! counts.
//!
//! A tower layer of its own rather than `axum::middleware::from_fn`: that one clones the inner
//! route and boxes a future and a `Next` on every request, where this calls the ready route.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_layer::Layer;
use tower_service::Service;

use crate::server;
use agentcube_auth_core::Code;

/// Limits the requests served at once by the services it wraps, all of them together.
#[derive(Clone)]
pub(super) struct ConcurrencyLimitLayer {
    slots: Arc<Semaphore>,
}

impl ConcurrencyLimitLayer {
    /// At most `max` requests at once (at least one).
    pub(super) fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLimitLayer {
    type Service = ConcurrencyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConcurrencyLimit {
            inner,
            slots: Arc::clone(&self.slots),
        }
    }
}

/// The service of [`ConcurrencyLimitLayer`].
#[derive(Clone)]
pub(super) struct ConcurrencyLimit<S> {
    inner: S,
    slots: Arc<Semaphore>,
}

impl<S> Service<Request> for ConcurrencyLimit<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = LimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => LimitFuture::Admitted {
                future: self.inner.call(request),
                permit: Some(permit),
            },
            Err(_) => {
                tracing::warn!("concurrency limit reached");
                LimitFuture::Refused
            }
        }
    }
}

pin_project! {
    /// The response future of [`ConcurrencyLimit`].
    #[project = LimitProj]
    pub(super) enum LimitFuture<F> {
        /// Holding a slot, which the response body takes over.
        Admitted {
            #[pin]
            future: F,
            permit: Option<OwnedSemaphorePermit>,
        },
        /// No slot free.
        Refused,
    }
}

impl<F> Future for LimitFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            LimitProj::Admitted { future, permit } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(match permit.take() {
                    Some(permit) => response.map(|inner| {
                        Body::new(HoldsSlot {
                            inner,
                            _permit: permit,
                        })
                    }),
                    // Polled again after it answered: not reachable through hyper.
                    None => response,
                }))
            }
            LimitProj::Refused => Poll::Ready(Ok(server::json_error(
                StatusCode::TOO_MANY_REQUESTS,
                Code::new("server_overloaded"),
                "server overloaded, please try again later",
            ))),
        }
    }
}

/// A response body that holds a concurrency slot until it is dropped.
struct HoldsSlot {
    inner: Body,
    _permit: OwnedSemaphorePermit,
}

impl HttpBody for HoldsSlot {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

//! The response body of [`AuthService`](super::AuthService): the inner service's body, or the
//! JSON of a rejection.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// The response body of [`AuthService`](super::AuthService).
    ///
    /// Either the inner service's body, passed through untouched, or the small JSON body of a
    /// rejection (see [`error_response`](super::error_response)). An enum rather than a boxed
    /// body, so passing a response through costs one discriminant check per frame and no
    /// allocation; the shape tower-http uses for its own wrapping bodies.
    ///
    /// Its `Data` is the inner body's; rejection bytes are converted with `From<Bytes>`, which
    /// every body with `Data = Bytes` (hyper, axum, `http-body-util`) satisfies.
    #[project = AuthBodyProj]
    pub enum AuthBody<B> {
        /// The inner service's body.
        Inner {
            #[pin]
            body: B,
        },
        /// A rejection's JSON body; `None` once it has been yielded.
        Rejection {
            body: Option<Bytes>,
        },
    }
}

impl<B> AuthBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self::Inner { body }
    }

    /// A body of fixed bytes (used for rejections).
    pub fn rejection(bytes: Bytes) -> Self {
        Self::Rejection {
            body: (!bytes.is_empty()).then_some(bytes),
        }
    }

    /// Whether this is a rejection rather than the inner service's body.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejection { .. })
    }
}

impl<B: Default> Default for AuthBody<B> {
    fn default() -> Self {
        Self::inner(B::default())
    }
}

impl<B: fmt::Debug> fmt::Debug for AuthBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inner { body } => f.debug_tuple("Inner").field(body).finish(),
            Self::Rejection { body } => f.debug_tuple("Rejection").field(body).finish(),
        }
    }
}

impl<B> Body for AuthBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project() {
            AuthBodyProj::Inner { body } => body.poll_frame(cx),
            AuthBodyProj::Rejection { body } => {
                Poll::Ready(body.take().map(|bytes| Ok(Frame::data(bytes.into()))))
            }
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match self {
            Self::Inner { body } => body.is_end_stream(),
            Self::Rejection { body } => body.is_none(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Inner { body } => body.size_hint(),
            Self::Rejection { body } => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

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
    /// rejection (see [`error_response`](super::error_response)). An enum inside, rather than a
    /// boxed body, so passing a response through costs one discriminant check per frame and no
    /// allocation; the shape tower-http uses for its own wrapping bodies.
    ///
    /// Its `Data` and `Error` are the inner body's; rejection bytes are converted with
    /// `From<Bytes>`, which every body with `Data = Bytes` (hyper, axum, `http-body-util`)
    /// satisfies.
    pub struct AuthBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
        },
        // `None` once the bytes have been yielded.
        Rejection {
            bytes: Option<Bytes>,
        },
    }
}

impl<B> AuthBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// The response of a layer that refuses a request with `error` (its status, headers and
    /// JSON body; see [`error_response`](super::error_response)).
    pub(crate) fn refusal(error: &crate::error::AuthError) -> http::Response<Self> {
        super::error_response(error).map(Self::rejection)
    }

    /// A body of fixed bytes (used for rejections).
    pub fn rejection(bytes: Bytes) -> Self {
        Self {
            kind: Kind::Rejection {
                bytes: (!bytes.is_empty()).then_some(bytes),
            },
        }
    }

    /// Whether this is a rejection rather than the inner service's body.
    pub fn is_rejection(&self) -> bool {
        matches!(self.kind, Kind::Rejection { .. })
    }

    /// The inner service's body, or `None` for a rejection.
    pub fn into_inner(self) -> Option<B> {
        match self.kind {
            Kind::Inner { body } => Some(body),
            Kind::Rejection { .. } => None,
        }
    }
}

impl<B: Default> Default for AuthBody<B> {
    fn default() -> Self {
        Self::inner(B::default())
    }
}

impl<B: fmt::Debug> fmt::Debug for AuthBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { body } => f.debug_tuple("AuthBody::Inner").field(body).finish(),
            Kind::Rejection { bytes } => f.debug_tuple("AuthBody::Rejection").field(bytes).finish(),
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
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { bytes } => {
                Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes.into()))))
            }
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { bytes } => bytes.is_none(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

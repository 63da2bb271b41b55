//! The axum extractor for the authenticated principal.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::ops::Deref;

use ::http::request::Parts;
use axum::extract::{FromRequestParts, OptionalFromRequestParts};

use crate::error::AuthError;
use crate::principal::Principal;

/// The [`Principal`] that [`AuthLayer`](super::AuthLayer) authenticated, as an axum extractor.
///
/// It reads the principal from the request extensions. When there is none (the route is not
/// behind the layer, which is a wiring mistake), it fails closed with the same response as a
/// request without credentials: 401, `WWW-Authenticate: Bearer`,
/// `{"error":"missing authorization header","code":"missing_authorization"}`.
///
/// `Option<AuthenticatedPrincipal>` never rejects: it is `None` when there is no principal
/// (for routes that serve anonymous and authenticated callers differently).
///
/// The attributes the claim mapper attached are on the principal:
/// `principal.extension::<Tenant>()` (see [`Principal::extension`]).
///
/// # Example
/// ```
/// use agentcube_auth_core::{AuthError, Principal, TokenVerifier};
/// use agentcube_auth_core::http::{AuthLayer, AuthenticatedPrincipal};
/// use axum::{Router, routing::get};
///
/// struct Fixed;
/// impl TokenVerifier for Fixed {
///     async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
///         match token {
///             "let-me-in" => Ok(Principal::builder("https://idp.example", "alice").build()),
///             _ => Err(AuthError::InvalidSignature),
///         }
///     }
/// }
///
/// async fn whoami(AuthenticatedPrincipal(principal): AuthenticatedPrincipal) -> String {
///     principal.subject().to_owned()
/// }
///
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .layer(AuthLayer::new(Fixed));
/// ```
#[derive(Clone, Debug)]
pub struct AuthenticatedPrincipal(pub Principal);

impl AuthenticatedPrincipal {
    /// The principal.
    pub fn into_inner(self) -> Principal {
        self.0
    }
}

impl Deref for AuthenticatedPrincipal {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthenticatedPrincipal {
    type Rejection = AuthError;

    fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        ready(
            parts
                .extensions
                .get::<Principal>()
                .cloned()
                .map(Self)
                .ok_or(AuthError::MissingAuthorization),
        )
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for AuthenticatedPrincipal {
    type Rejection = Infallible;

    fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> impl Future<Output = Result<Option<Self>, Self::Rejection>> + Send {
        ready(Ok(parts.extensions.get::<Principal>().cloned().map(Self)))
    }
}

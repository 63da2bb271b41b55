//! Finding the token in a request's headers.

use std::ops::Range;

use ::http::header::AUTHORIZATION;
use ::http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::AuthError;

/// Returns the bearer token of a request, borrowed from its headers (no allocation).
///
/// Exactly one `Authorization` header must be present (two are
/// [`AuthError::InvalidAuthorizationFormat`]: a proxy and a backend that picked different ones
/// could authenticate different callers); its value is read by
/// [`crate::bearer::bearer_token`], whose table lists every answer.
///
/// # Errors
/// [`AuthError::MissingAuthorization`] without the header, otherwise as
/// [`crate::bearer::bearer_token`]; none of the errors carries any part of the header value.
///
/// # Example
/// ```
/// use agentcube_auth_core::{ErrorCode, http::bearer_token};
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers).unwrap_err().code(), ErrorCode::MissingAuthorization);
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc.def.ghi "));
/// assert_eq!(bearer_token(&headers).unwrap(), "abc.def.ghi");
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    TokenLocation::AuthorizationBearer.token(headers)
}

/// Where a request carries its token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenLocation {
    /// `Authorization: Bearer <token>` (the default).
    #[default]
    AuthorizationBearer,
    /// A header holding the bare token, such as the Router's identity header.
    Header(HeaderName),
}

impl TokenLocation {
    /// A header holding the bare token.
    ///
    /// # Errors
    /// [`::http::header::InvalidHeaderName`] if `name` is not a valid header name.
    pub fn header(name: &str) -> Result<Self, ::http::header::InvalidHeaderName> {
        Ok(Self::Header(HeaderName::try_from(name)?))
    }

    /// The one header value the token is in: none is `MissingAuthorization`, several are
    /// `InvalidAuthorizationFormat`.
    pub(crate) fn value<'h>(&self, headers: &'h HeaderMap) -> Result<&'h HeaderValue, AuthError> {
        let name = match self {
            Self::AuthorizationBearer => &AUTHORIZATION,
            Self::Header(name) => name,
        };
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Err(AuthError::MissingAuthorization);
        };
        if values.next().is_some() {
            return Err(AuthError::InvalidAuthorizationFormat);
        }
        Ok(value)
    }

    /// Where the token lies in one header value, with the answers of [`token`](Self::token),
    /// so that a caller that checked it early can hold the value and read the token later
    /// ([`token_at`]) without checking it twice.
    pub(crate) fn token_range(&self, value: &HeaderValue) -> Result<Range<usize>, AuthError> {
        match self {
            Self::AuthorizationBearer => crate::bearer::bearer_range(value.as_bytes()),
            Self::Header(_) => crate::bearer::header_range(value.as_bytes()),
        }
    }

    /// The token of a request.
    ///
    /// # Errors
    /// As [`bearer_token`] for `Authorization`; for a bare-token header, missing or empty is
    /// `MissingAuthorization`, twice is `InvalidAuthorizationFormat`, non-ASCII is `malformed`.
    pub fn token<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, AuthError> {
        let value = self.value(headers)?;
        crate::bearer::text_at(value.as_bytes(), self.token_range(value)?)
    }
}

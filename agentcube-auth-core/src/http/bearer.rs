//! Extracting the bearer token from the `Authorization` header (RFC 6750 §2.1).

use ::http::HeaderMap;
use ::http::HeaderValue;
use ::http::header::AUTHORIZATION;

use crate::error::AuthError;

/// Returns the bearer token of a request, borrowed from its headers (no allocation).
///
/// The rules are those of the reference Router, so clients see the same answers:
///
/// | `Authorization`                         | result                                   |
/// |-----------------------------------------|------------------------------------------|
/// | absent, or present but empty            | [`AuthError::MissingAuthorization`]      |
/// | sent more than once                     | [`AuthError::InvalidAuthorizationFormat`]|
/// | not visible ASCII (space and tab allowed) | [`AuthError::InvalidAuthorizationFormat`]|
/// | no space after the scheme (`Bearer`, `Bearer\ttok`) | [`AuthError::InvalidAuthorizationFormat`]|
/// | scheme other than `bearer` (compared case-insensitively; `Basic x`) | [`AuthError::InvalidAuthorizationFormat`]|
/// | `Bearer` + a space + only whitespace    | [`AuthError::EmptyBearerToken`]          |
/// | `Bearer <token>`                        | `Ok(token)`, with ASCII whitespace trimmed from both ends |
///
/// The value is split at its *first space*: the scheme is everything before it and the token is
/// the rest, trimmed. Whitespace inside the token is left alone (it is not a valid token and the
/// verifier rejects it). Two `Authorization` headers are refused rather than resolved by picking
/// one: a proxy and a backend that pick differently could then authenticate different callers.
/// An empty header is treated as absent, as the reference Router does.
///
/// # Errors
/// As in the table above; none of the errors carries any part of the header value.
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
    bearer_token_from_value(single_authorization(headers)?)
}

/// The one `Authorization` header value; none is `MissingAuthorization`, several are
/// `InvalidAuthorizationFormat`.
pub(crate) fn single_authorization(headers: &HeaderMap) -> Result<&HeaderValue, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::MissingAuthorization);
    };
    if values.next().is_some() {
        return Err(AuthError::InvalidAuthorizationFormat);
    }
    Ok(value)
}

/// [`bearer_token`] for one header value.
pub(crate) fn bearer_token_from_value(value: &HeaderValue) -> Result<&str, AuthError> {
    if value.is_empty() {
        return Err(AuthError::MissingAuthorization);
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidAuthorizationFormat)?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Err(AuthError::InvalidAuthorizationFormat);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::InvalidAuthorizationFormat);
    }
    match rest.trim_ascii() {
        "" => Err(AuthError::EmptyBearerToken),
        token => Ok(token),
    }
}

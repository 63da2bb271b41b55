//! Reading a token out of a header value: `Authorization: Bearer <token>` (RFC 6750 §2.1) and
//! headers that carry a bare token (the Router's identity header).
//!
//! These work on bytes, so every service — with or without the `http` feature, whatever its
//! HTTP stack — answers the same malformed header with the same code. The `http` feature's
//! `bearer_token(&HeaderMap)` adds only the "exactly one header" rule on top.

use std::ops::Range;

use crate::error::{AuthError, MalformedReason};

/// Returns the token of an `Authorization` value, borrowed from it (no allocation).
///
/// | value                                                   | result                                      |
/// |---------------------------------------------------------|---------------------------------------------|
/// | empty                                                   | [`AuthError::MissingAuthorization`]         |
/// | not visible ASCII (space and tab allowed)               | [`AuthError::InvalidAuthorizationFormat`]   |
/// | no space after the scheme (`Bearer`, `Bearer\ttok`)     | [`AuthError::InvalidAuthorizationFormat`]   |
/// | scheme other than `bearer` (case-insensitive; `Basic x`) | [`AuthError::InvalidAuthorizationFormat`]  |
/// | `Bearer` + a space + only whitespace                    | [`AuthError::EmptyBearerToken`]             |
/// | `Bearer <token>`                                        | `Ok(token)`, ASCII whitespace trimmed       |
///
/// The value is split at its first space: the scheme is everything before it and the token is
/// the rest, trimmed. Whitespace inside the token is left to the verifier, which rejects it as
/// `malformed` (a bad token, answered like any other bad token). An empty value counts as
/// missing, as the services this replaces did.
///
/// # Errors
/// As in the table; no error carries any part of the value.
///
/// # Example
/// ```
/// use agentcube_auth_core::{ErrorCode, bearer};
///
/// assert_eq!(bearer::bearer_token(b"bearer  abc.def.ghi ").unwrap(), "abc.def.ghi");
/// assert_eq!(bearer::bearer_token(b"Bearer").unwrap_err().code(), ErrorCode::InvalidAuthorizationFormat);
/// assert_eq!(bearer::bearer_token(b"Bearer  ").unwrap_err().code(), ErrorCode::EmptyBearerToken);
/// assert_eq!(bearer::bearer_token("Bearer tök".as_bytes()).unwrap_err().code(), ErrorCode::InvalidAuthorizationFormat);
/// ```
pub fn bearer_token(value: &[u8]) -> Result<&str, AuthError> {
    text_at(value, bearer_range(value)?)
}

/// Where [`bearer_token`]'s token lies in `value`, with the same answers; the bytes in that
/// range are visible ASCII. The `http` layer keeps the range and reads the token from it later,
/// so a kilobyte-sized token is checked for UTF-8 once per request, not twice.
pub(crate) fn bearer_range(value: &[u8]) -> Result<Range<usize>, AuthError> {
    if value.is_empty() {
        return Err(AuthError::MissingAuthorization);
    }
    if !visible_ascii(value) {
        return Err(AuthError::InvalidAuthorizationFormat);
    }
    let Some(space) = memchr::memchr(b' ', value) else {
        return Err(AuthError::InvalidAuthorizationFormat);
    };
    let scheme = value.get(..space).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthError::InvalidAuthorizationFormat);
    }
    match trimmed(value, space..value.len()) {
        range if range.is_empty() => Err(AuthError::EmptyBearerToken),
        range => Ok(range),
    }
}

/// Returns the bare token of a header that carries nothing else (the identity header),
/// trimmed of ASCII whitespace.
///
/// An empty or all-whitespace value is [`AuthError::MissingAuthorization`]; bytes that are not
/// visible ASCII cannot be a compact JWS and are `malformed`.
///
/// # Errors
/// As above.
pub fn header_token(value: &[u8]) -> Result<&str, AuthError> {
    text_at(value, header_range(value)?)
}

/// Where [`header_token`]'s token lies in `value`, with the same answers.
pub(crate) fn header_range(value: &[u8]) -> Result<Range<usize>, AuthError> {
    if !visible_ascii(value) {
        return Err(AuthError::Malformed(MalformedReason::Base64));
    }
    match trimmed(value, 0..value.len()) {
        range if range.is_empty() => Err(AuthError::MissingAuthorization),
        range => Ok(range),
    }
}

/// `range` of `value` without its leading and trailing ASCII whitespace.
fn trimmed(value: &[u8], range: Range<usize>) -> Range<usize> {
    let Some(part) = value.get(range.clone()) else {
        return range.start..range.start;
    };
    let start = range.start + (part.len() - part.trim_ascii_start().len());
    let end = range.end - (part.len() - part.trim_ascii_end().len());
    start..end.max(start)
}

/// The text at `range` of `value`. A range found by this module is visible ASCII, so the
/// error (`invalid_authorization_format`) is only a fail-closed answer to a range from
/// elsewhere.
pub(crate) fn text_at(value: &[u8], range: Range<usize>) -> Result<&str, AuthError> {
    value
        .get(range)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .ok_or(AuthError::InvalidAuthorizationFormat)
}

/// Whether every byte is visible ASCII, a space or a tab (what `http::HeaderValue::to_str`
/// accepts); such bytes are UTF-8 text.
fn visible_ascii(value: &[u8]) -> bool {
    // A fold without an early exit, so the compiler vectorises it: a kilobyte-sized token is
    // checked in about a tenth of the time a byte-at-a-time scan takes.
    value.iter().fold(true, |ok, &b| {
        ok & ((b == b'\t') | (b.wrapping_sub(0x20) < 0x5f))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn code(r: Result<&str, AuthError>) -> Result<&str, ErrorCode> {
        r.map_err(|e| e.code())
    }

    #[test]
    fn text_at_fails_closed_on_a_range_it_was_not_given_by_this_module() {
        assert_eq!(code(text_at(b"abc", 1..3)), Ok("bc"));
        for (value, range) in [
            (&b"ab"[..], 1..5),
            (b"\xff", 0..1),
            (b"ab", Range { start: 2, end: 1 }),
        ] {
            assert_eq!(
                code(text_at(value, range.clone())),
                Err(ErrorCode::InvalidAuthorizationFormat),
                "{value:?} {range:?}"
            );
        }
    }

    #[test]
    fn bearer_values() {
        use ErrorCode::*;
        let cases: &[(&[u8], Result<&str, ErrorCode>)] = &[
            (b"", Err(MissingAuthorization)),
            (b"Basic x", Err(InvalidAuthorizationFormat)),
            (b"Bearer", Err(InvalidAuthorizationFormat)),
            (b"Bearerx", Err(InvalidAuthorizationFormat)),
            (b"Bearer\ttok", Err(InvalidAuthorizationFormat)),
            (b"Bearer ", Err(EmptyBearerToken)),
            (b"Bearer   \t ", Err(EmptyBearerToken)),
            (b"Bearer a b", Ok("a b")),
            (b"bearer a.b.c", Ok("a.b.c")),
            (b"BEARER  a.b.c  ", Ok("a.b.c")),
            ("Bearer tök".as_bytes(), Err(InvalidAuthorizationFormat)),
            (b"Bearer \x00", Err(InvalidAuthorizationFormat)),
            (b"Bearer \xff", Err(InvalidAuthorizationFormat)),
        ];
        for (value, expected) in cases {
            assert_eq!(code(bearer_token(value)), *expected, "{value:?}");
        }
    }

    #[test]
    fn exactly_visible_ascii_space_and_tab_are_accepted_at_every_position() {
        for byte in 0u8..=255 {
            let accepted = byte == b'\t' || (0x20..=0x7e).contains(&byte);
            // At the start, in the middle and at the end of a long value (the check runs in
            // vector-sized blocks).
            for at in [0, 500, 1023] {
                let mut value = vec![b'a'; 1024];
                value[at] = byte;
                assert_eq!(visible_ascii(&value), accepted, "{byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn header_values() {
        use ErrorCode::*;
        assert_eq!(code(header_token(b"")), Err(MissingAuthorization));
        assert_eq!(code(header_token(b"  \t")), Err(MissingAuthorization));
        assert_eq!(code(header_token(b"\xff")), Err(Malformed));
        assert_eq!(code(header_token("tök".as_bytes())), Err(Malformed));
        assert_eq!(code(header_token(b" a.b.c ")), Ok("a.b.c"));
    }
}

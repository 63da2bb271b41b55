//! Framing and header rules for compact JWS tokens: the first two checks of every verification,
//! run before any key is looked up.
//!
//! Everything here is pure computation over the token bytes: nothing in this module can cause a
//! key fetch, so a token that fails framing or header rules costs a few microseconds and no I/O.

use std::borrow::Cow;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::base64url;
use super::strict_json::{self, StrictJsonError, StrictObject, TopValue};
use crate::claims::Claims;
use crate::error::{AuthError, MalformedReason, TypeLocation, Untrusted};

/// Default maximum token size: 8 KiB, far above a realistic Keycloak access token (~1.5 KiB).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The longest `kid` accepted. Keycloak's are 43 characters; anything near this is hostile.
pub const MAX_KID_BYTES: usize = 128;

/// The largest signature of any supported algorithm (RSA-8192).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// The largest decoded JOSE header accepted. Real headers are under 200 bytes; the header is
/// decoded onto the stack, so its text costs no allocation (checking it for duplicate names
/// takes one small one, for eight names).
pub const MAX_HEADER_BYTES: usize = 1024;

/// Which header `typ` values are accepted.
///
/// Comparison follows RFC 7515 §4.1.9: case-insensitive, with an optional `application/`
/// prefix, so `JWT`, `jwt` and `application/jwt` are the same type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypePolicy {
    accepted: Vec<Box<str>>,
    allow_absent: bool,
}

impl TypePolicy {
    /// The access-token default: `JWT`, `at+jwt` (RFC 9068), or no `typ`.
    pub fn access_token() -> Self {
        Self {
            accepted: vec!["JWT".into(), "at+jwt".into()],
            allow_absent: true,
        }
    }

    /// Exactly one type, which must be present (internal tokens use their own `typ`).
    pub fn exactly(typ: impl Into<Box<str>>) -> Self {
        Self {
            accepted: vec![typ.into()],
            allow_absent: false,
        }
    }

    /// A custom set.
    pub fn new(
        accepted: impl IntoIterator<Item = impl Into<Box<str>>>,
        allow_absent: bool,
    ) -> Self {
        Self {
            accepted: accepted.into_iter().map(Into::into).collect(),
            allow_absent,
        }
    }

    /// Whether `typ` (as found in a header, or absent) is accepted.
    pub fn accepts(&self, typ: Option<&str>) -> bool {
        match typ {
            None => self.allow_absent,
            Some(t) => {
                let t = strip_application(t);
                self.accepted
                    .iter()
                    .any(|a| strip_application(a).eq_ignore_ascii_case(t))
            }
        }
    }
}

fn strip_application(t: &str) -> &str {
    match t.get(..12) {
        Some(p) if p.eq_ignore_ascii_case("application/") => t.get(12..).unwrap_or(""),
        _ => t,
    }
}

/// The header and framing rules a verifier applies before looking for a key.
#[derive(Clone, Debug)]
pub struct JwsPolicy {
    /// Longest token accepted, in bytes, checked before any decoding.
    pub max_token_bytes: usize,
    /// The algorithm allowlist.
    pub algorithms: AlgorithmSet,
    /// The accepted header `typ` values.
    pub types: TypePolicy,
}

impl JwsPolicy {
    /// 8 KiB, the given algorithms, and the access-token `typ` rule.
    pub fn new(algorithms: AlgorithmSet) -> Self {
        Self {
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            algorithms,
            types: TypePolicy::access_token(),
        }
    }
}

/// The JOSE header fields a verifier uses. `jku`, `x5u`, `jwk` and `x5c` are never read: keys
/// come only from the verifier's own key source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwsHeader {
    /// The signing algorithm (already checked against the allowlist).
    pub alg: Algorithm,
    /// The key id, when present (already checked for length and printability).
    pub kid: Option<Box<str>>,
    /// The header type, when present (already checked against the type policy).
    pub typ: Option<Box<str>>,
}

/// A token that passed framing and header rules, not yet signature-checked.
pub struct UnverifiedJws<'a> {
    header: JwsHeader,
    claims: Claims,
    signing_input: &'a str,
    signature: Signature<'a>,
}

impl<'a> UnverifiedJws<'a> {
    /// Applies framing (step 1) and header (step 2) rules.
    ///
    /// # Errors
    /// `malformed`, `token_too_large`, `algorithm_not_allowed`, `unsupported_critical_header` or
    /// `token_type_mismatch`.
    pub fn parse(token: &'a str, policy: &JwsPolicy) -> Result<Self, AuthError> {
        let malformed = AuthError::Malformed;
        if token.len() > policy.max_token_bytes {
            return Err(AuthError::TokenTooLarge {
                size: token.len(),
                limit: policy.max_token_bytes,
            });
        }
        let [header_b64, payload_b64, signature_b64] = split_compact(token)?;
        let signing_input = token
            .get(..header_b64.len() + 1 + payload_b64.len())
            .ok_or(malformed(MalformedReason::SegmentCount))?;

        let mut header_buf = [0u8; MAX_HEADER_BYTES];
        let header_bytes = decode_header(header_b64, &mut header_buf)?;
        let raw: RawHeader<'_> = parse_header(header_bytes)?;
        let claims = parse_payload(decode(payload_b64)?)?;
        let signature = Signature::check(signature_b64)?;

        // Header rules in a fixed order (alg, typ, crit), so a token that breaks several always
        // gets the same code.
        let alg_name = raw.alg.ok_or(malformed(MalformedReason::HeaderField))?;
        let alg = Algorithm::from_name(&alg_name)
            .filter(|a| policy.algorithms.contains(*a))
            .ok_or_else(|| AuthError::AlgorithmNotAllowed(Untrusted::new(&alg_name)))?;
        if raw.enc {
            return Err(malformed(MalformedReason::Encrypted));
        }
        if !policy.types.accepts(raw.typ.as_deref()) {
            return Err(AuthError::TokenTypeMismatch {
                location: TypeLocation::Header,
                found: Untrusted::new(raw.typ.as_deref().unwrap_or("")),
            });
        }
        if raw.crit {
            return Err(AuthError::UnsupportedCriticalHeader);
        }
        let kid = match raw.kid {
            None => None,
            Some(kid) if is_acceptable_kid(&kid) => Some(kid.into_owned().into_boxed_str()),
            Some(_) => return Err(malformed(MalformedReason::KeyId)),
        };
        if !signature.fits(alg) {
            return Err(malformed(MalformedReason::SignatureEncoding));
        }
        Ok(Self {
            header: JwsHeader {
                alg,
                kid,
                typ: raw.typ.map(|t| t.into_owned().into_boxed_str()),
            },
            claims,
            signing_input,
            signature,
        })
    }

    /// Reads the payload of a compact JWS without checking its header or signature: framing
    /// (three unpadded base64url segments, no JWE) and a strict JSON object (no duplicate
    /// members) only, with the same size limit as [`UnverifiedJws::parse`].
    ///
    /// Nothing read this way is trustworthy. Use it to route a token (by `iss`, before the
    /// issuer's verifier runs) or to schedule a refresh of a token a client holds (by `exp`),
    /// never to authorise anything.
    ///
    /// # Errors
    /// `malformed` or `token_too_large`.
    pub fn peek_claims(token: &str, max_token_bytes: usize) -> Result<Claims, AuthError> {
        if token.len() > max_token_bytes {
            return Err(AuthError::TokenTooLarge {
                size: token.len(),
                limit: max_token_bytes,
            });
        }
        let [_, payload_b64, _] = split_compact(token)?;
        parse_payload(decode(payload_b64)?)
    }

    /// The checked header.
    pub fn header(&self) -> &JwsHeader {
        &self.header
    }

    /// The payload, not yet trustworthy: use it only to route (for example by `iss`).
    pub fn unverified_claims(&self) -> &Claims {
        &self.claims
    }

    /// Checks the signature with `key` and returns the now-verified header and claims.
    ///
    /// # Errors
    /// `key_algorithm_mismatch` if the key cannot be used with the header's `alg`;
    /// `invalid_signature` if the signature does not verify.
    pub fn verify(self, key: &super::VerificationKey) -> Result<(JwsHeader, Claims), AuthError> {
        let mut buf = [0u8; MAX_SIGNATURE_BYTES];
        let signature = self.signature.bytes(&mut buf)?;
        key.verify(self.header.alg, self.signing_input.as_bytes(), signature)?;
        Ok((self.header, self.claims))
    }
}

/// Shows the header only: the signing input is most of the token.
impl std::fmt::Debug for UnverifiedJws<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnverifiedJws")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// The header members a verifier reads. `jku`, `x5u`, `jwk`, `x5c` and every other member are
/// skipped unread (but still checked, duplicates included).
#[derive(Default)]
struct RawHeader<'a> {
    alg: Option<Cow<'a, str>>,
    typ: Option<Cow<'a, str>>,
    kid: Option<Cow<'a, str>>,
    crit: bool,
    enc: bool,
}

/// More header members than any real token has (they carry three to five); a header with more
/// is refused.
const MAX_HEADER_MEMBERS: usize = 32;

/// Why a header failed to parse: its JSON, or one of the members read.
enum HeaderError {
    Json(StrictJsonError),
    Field,
}

impl From<StrictJsonError> for HeaderError {
    fn from(err: StrictJsonError) -> Self {
        Self::Json(err)
    }
}

fn parse_header(bytes: &[u8]) -> Result<RawHeader<'_>, AuthError> {
    // The same strict check as the payload (duplicates refused at every depth, bounded
    // nesting), in one pass that reads the members used and skips the others.
    // A header that is not a JSON object at all (an array, a string, a number) is `HeaderJson`;
    // `HeaderField` is for a member of the wrong type, or too many members.
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(AuthError::Malformed(MalformedReason::HeaderJson));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| AuthError::Malformed(MalformedReason::HeaderJson))?;
    let mut header = RawHeader::default();
    let mut count = 0;
    // A header has three to five members.
    strict_json::members(text, 8, |member| {
        count += 1;
        if count > MAX_HEADER_MEMBERS {
            return Err(HeaderError::Field);
        }
        let slot = match member.name.as_str() {
            "alg" => &mut header.alg,
            "typ" => &mut header.typ,
            "kid" => &mut header.kid,
            "crit" => {
                header.crit = true;
                return Ok(());
            }
            "enc" => {
                header.enc = true;
                return Ok(());
            }
            _ => return Ok(()),
        };
        match member.value {
            TopValue::Str(string) => {
                *slot = Some(string.into_cow());
                Ok(())
            }
            _ => Err(HeaderError::Field),
        }
    })
    .map_err(|err| {
        AuthError::Malformed(match err {
            HeaderError::Json(StrictJsonError::Duplicate) => MalformedReason::DuplicateMember,
            HeaderError::Json(StrictJsonError::Invalid) => MalformedReason::HeaderJson,
            HeaderError::Field => MalformedReason::HeaderField,
        })
    })?;
    Ok(header)
}

fn parse_payload(bytes: Vec<u8>) -> Result<Claims, AuthError> {
    match StrictObject::parse(bytes) {
        Ok(object) => Ok(Claims::from_payload(object)),
        Err(StrictJsonError::Duplicate) => {
            Err(AuthError::Malformed(MalformedReason::DuplicateMember))
        }
        Err(StrictJsonError::Invalid) => Err(AuthError::Malformed(MalformedReason::PayloadJson)),
    }
}

/// Splits a compact JWS into its three segments (header, payload, signature), without decoding.
///
/// # Errors
/// `malformed`: an empty token, a JWE (five segments), or any other segment count.
pub(crate) fn split_compact(token: &str) -> Result<[&str; 3], AuthError> {
    if token.is_empty() {
        return Err(AuthError::Malformed(MalformedReason::Empty));
    }
    // The dots, found with a vectorised search: a token is mostly its payload and signature.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    match (dots.next(), dots.next(), dots.next()) {
        (Some(first), Some(second), None) => match (
            token.get(..first),
            token.get(first + 1..second),
            token.get(second + 1..),
        ) {
            (Some(header), Some(payload), Some(signature)) => Ok([header, payload, signature]),
            // Unreachable: a dot is one byte, so the slices are on character boundaries.
            _ => Err(AuthError::Malformed(MalformedReason::SegmentCount)),
        },
        // Five segments is the JWE compact form.
        (Some(_), Some(_), Some(_)) if dots.count() == 1 => {
            Err(AuthError::Malformed(MalformedReason::Encrypted))
        }
        _ => Err(AuthError::Malformed(MalformedReason::SegmentCount)),
    }
}

fn is_acceptable_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_BYTES && kid.bytes().all(|b| b.is_ascii_graphic())
}

fn decode_header<'b>(
    segment: &str,
    buf: &'b mut [u8; MAX_HEADER_BYTES],
) -> Result<&'b [u8], AuthError> {
    // The longest unpadded base64url text that decodes to at most `MAX_HEADER_BYTES`.
    if segment.len() > (MAX_HEADER_BYTES * 4).div_ceil(3) {
        return Err(AuthError::Malformed(MalformedReason::HeaderTooLarge));
    }
    decode_into(segment, buf)
}

fn decode(segment: &str) -> Result<Vec<u8>, AuthError> {
    base64url::decode(segment).map_err(|_| AuthError::Malformed(MalformedReason::Base64))
}

fn decode_into<'b>(segment: &str, buf: &'b mut [u8]) -> Result<&'b [u8], AuthError> {
    base64url::decode_into(segment, buf).map_err(|_| AuthError::Malformed(MalformedReason::Base64))
}

/// A signature segment checked to be canonical base64url, kept as text: it is decoded onto
/// the stack once, when it is verified, so no kilobyte buffer travels with every move of the
/// token and nothing is allocated.
struct Signature<'a> {
    text: &'a str,
    len: usize,
}

impl<'a> Signature<'a> {
    fn check(segment: &'a str) -> Result<Self, AuthError> {
        if segment.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 4 {
            return Err(AuthError::Malformed(MalformedReason::SignatureEncoding));
        }
        // Longer than the buffer it is decoded into is refused here, as decoding would.
        let len = base64url::check(segment)
            .ok()
            .filter(|len| *len <= MAX_SIGNATURE_BYTES)
            .ok_or(AuthError::Malformed(MalformedReason::Base64))?;
        Ok(Self { text: segment, len })
    }

    /// Decodes the signature into `buf` (it was checked when the token was parsed).
    fn bytes<'b>(&self, buf: &'b mut [u8; MAX_SIGNATURE_BYTES]) -> Result<&'b [u8], AuthError> {
        decode_into(self.text, buf)
    }

    /// Fixed-size algorithms have one valid length; RSA signatures are checked against the
    /// modulus by the key.
    fn fits(&self, alg: Algorithm) -> bool {
        match alg {
            Algorithm::ES256 | Algorithm::EdDSA => self.len == 64,
            Algorithm::ES384 => self.len == 96,
            Algorithm::ES512 => self.len == 132,
            _ => self.len >= 256,
        }
    }
}

impl std::fmt::Debug for Signature<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_must_be_canonical_unpadded_base64url() {
        let base64 = AuthError::Malformed(MalformedReason::Base64);
        // "QQ" is the one encoding of "A"; "QR" sets trailing bits that decode to nothing.
        assert!(UnverifiedJws::peek_claims("e30.e30.c2ln", 100).is_ok());
        for payload in ["QR", "e30=", "e3 0", "e+0", "e/0", "Q", "QUJ"] {
            let token = format!("e30.{payload}.c2ln");
            assert_eq!(
                UnverifiedJws::peek_claims(&token, 100).err(),
                Some(base64.clone()),
                "{payload}"
            );
        }
        let policy = JwsPolicy::new(AlgorithmSet::only(Algorithm::RS256));
        let header = "eyJhbGciOiJSUzI1NiJ9"; // {"alg":"RS256"}
        // Within the segment-length bound but decoding to more than the largest signature.
        let oversized = base64url::encode([7u8; MAX_SIGNATURE_BYTES + 2]);
        assert!(oversized.len() <= MAX_SIGNATURE_BYTES * 4 / 3 + 4);
        assert_eq!(
            UnverifiedJws::parse(&format!("{header}.e30.{oversized}"), &policy).err(),
            Some(base64.clone())
        );
        for bad in [
            format!("{header}.e30.QR"),
            format!("{header}.e30.QQ=="),
            "e31.e30.QQ".to_owned(),
        ] {
            assert_eq!(
                UnverifiedJws::parse(&bad, &policy).err(),
                Some(base64.clone()),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_header_that_is_not_an_object_is_header_json_and_a_bad_member_is_header_field() {
        let json = AuthError::Malformed(MalformedReason::HeaderJson);
        let field = AuthError::Malformed(MalformedReason::HeaderField);
        for bad in [
            &b"[]"[..],
            b" [1]",
            b"\"RS256\"",
            b"1",
            b"null",
            b"",
            b"  ",
            b"{",
            b"{}x",
        ] {
            assert_eq!(parse_header(bad).err(), Some(json.clone()), "{bad:?}");
        }
        for bad in [
            &br#"{"alg":5}"#[..],
            br#" {"kid":["a"]}"#,
            br#"{"typ":null}"#,
        ] {
            assert_eq!(parse_header(bad).err(), Some(field.clone()), "{bad:?}");
        }
        assert!(parse_header(b"\n {\"alg\":\"RS256\"}").is_ok());
        let members = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"m{i}\":{i}")).collect();
            format!("{{\"alg\":\"RS256\",{}}}", members.join(","))
        };
        assert!(parse_header(members(MAX_HEADER_MEMBERS - 1).as_bytes()).is_ok());
        assert_eq!(
            parse_header(members(MAX_HEADER_MEMBERS).as_bytes()).err(),
            Some(field)
        );
    }

    #[test]
    fn a_token_splits_into_three_segments_and_five_is_a_jwe() {
        assert_eq!(split_compact("a.b.c").unwrap(), ["a", "b", "c"]);
        assert_eq!(split_compact("..").unwrap(), ["", "", ""]);
        assert_eq!(split_compact("é.ü.ç").unwrap(), ["é", "ü", "ç"]);
        let malformed = |reason| Some(AuthError::Malformed(reason));
        assert_eq!(split_compact("").err(), malformed(MalformedReason::Empty));
        for bad in [
            "a",
            "a.b",
            "a.b.c.d",
            "a.b.c.",
            ".a.b.c",
            "a.b.c.d.e.f",
            "......",
        ] {
            assert_eq!(
                split_compact(bad).err(),
                malformed(MalformedReason::SegmentCount),
                "{bad}"
            );
        }
        for jwe in ["a.b.c.d.e", "....", "a..c.d."] {
            assert_eq!(
                split_compact(jwe).err(),
                malformed(MalformedReason::Encrypted),
                "{jwe}"
            );
        }
    }

    #[test]
    fn a_header_is_checked_as_strictly_as_a_payload() {
        let duplicate = AuthError::Malformed(MalformedReason::DuplicateMember);
        let json = AuthError::Malformed(MalformedReason::HeaderJson);
        for (bad, expected) in [
            (&br#"{"alg":"RS256","alg":"none"}"#[..], &duplicate),
            (br#"{"alg":"RS256","\u0061lg":"none"}"#, &duplicate),
            // Inside members the verifier never reads, too.
            (br#"{"alg":"RS256","x":{"a":1,"a":2}}"#, &duplicate),
            (b"{\"alg\":\"RS256\",\"x\":[\"\x01\"]}", &json),
            (br#"{"alg":"RS256","x":"\ud800"}"#, &json),
            (b"{\"alg\":\"RS256\",\"x\":\"\xff\"}", &json),
        ] {
            assert_eq!(parse_header(bad).err().as_ref(), Some(expected), "{bad:?}");
        }
        let escaped = parse_header(br#"{"\u0061lg":"RS\u0032\u00356","kid":"k"}"#).unwrap();
        assert_eq!(escaped.alg.as_deref(), Some("RS256"));
        assert_eq!(escaped.kid.as_deref(), Some("k"));
    }
}

//! Owner ids: who a sandbox session belongs to.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use agentcube_auth_core::{Code, Principal, Rejection};
use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::INTERNAL_ERROR_MESSAGE;

/// How an [`OwnerId`] is derived from a verified principal.
///
/// The owner is always the verified subject (`sub`) — never `preferred_username` or `email`,
/// which users can change and which need not be unique. What varies is whether the issuer is
/// part of it:
///
/// - [`SubjectOnly`](Self::SubjectOnly): the owner id is the raw `sub`. Existing session
///   records hold owner ids of this form, so they keep working. Use it when exactly one issuer
///   is configured.
/// - [`IssuerQualified`](Self::IssuerQualified): the owner id is `<issuer>#<sub>`. Use it
///   whenever more than one issuer is configured: two issuers may hand out the same `sub` to
///   two different people, and under `SubjectOnly` they would own each other's sessions.
///
/// # The qualified format
///
/// `<escaped issuer>#<subject>`, where the escaped issuer is the issuer with every `%` written
/// as `%25` and every `#` as `%23` (nothing else changes). The escaped issuer therefore holds no
/// `#`, so the first `#` always ends it and the rest is the subject verbatim (a subject may
/// contain `#`). Different `(issuer, subject)` pairs can never give the same id. OIDC issuer
/// identifiers have no fragment, so in practice the id is literally
/// `https://kc.example.com/realms/agentcube#3f0c…`.
///
/// Switching a deployment from one scheme to the other changes every owner id: sessions created
/// before the switch then belong to nobody who can log in (only an admin can reach them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OwnerIdScheme {
    /// The raw subject (single issuer; the owner id existing session records hold).
    #[default]
    SubjectOnly,
    /// `<issuer>#<subject>`, with `%` and `#` in the issuer percent-escaped.
    IssuerQualified,
}

impl OwnerIdScheme {
    /// The scheme a deployment with `issuers` configured issuers should use: `SubjectOnly` for
    /// zero or one, `IssuerQualified` for more.
    pub const fn for_issuer_count(issuers: usize) -> Self {
        if issuers > 1 {
            Self::IssuerQualified
        } else {
            Self::SubjectOnly
        }
    }

    /// The owner id of `principal` under this scheme (see [`OwnerId::from_principal`]).
    ///
    /// # Errors
    /// As [`OwnerId::from_parts`].
    pub fn owner_id(self, principal: &Principal) -> Result<OwnerId, OwnerIdError> {
        OwnerId::from_principal(principal, self)
    }
}

/// Why an owner id could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OwnerIdError {
    /// The subject is empty: an empty owner would mean "no owner", silently.
    #[error("owner id needs a non-empty subject")]
    EmptySubject,
    /// The issuer is empty under [`OwnerIdScheme::IssuerQualified`].
    #[error("issuer-qualified owner id needs a non-empty issuer")]
    EmptyIssuer,
    /// A stored owner id is the empty string.
    #[error("owner id is empty")]
    Empty,
}

impl OwnerIdError {
    const EMPTY_SUBJECT: Code = Code::new("empty_subject");
    const EMPTY_ISSUER: Code = Code::new("empty_issuer");
    const EMPTY: Code = Code::new("empty_owner_id");

    /// The stable machine code: `empty_subject`, `empty_issuer` or `empty_owner_id`.
    pub const fn code(&self) -> Code {
        match self {
            Self::EmptySubject => Self::EMPTY_SUBJECT,
            Self::EmptyIssuer => Self::EMPTY_ISSUER,
            Self::Empty => Self::EMPTY,
        }
    }
}

/// [`EmptySubject`](OwnerIdError::EmptySubject) and [`EmptyIssuer`](OwnerIdError::EmptyIssuer)
/// are 401 with their message: the caller's identity does not say who would own the session.
/// [`Empty`](OwnerIdError::Empty) is 500 `internal server error`: an owner id the service holds
/// is empty (a service that takes an owner id from a request body answers 400 itself).
///
/// No `WWW-Authenticate` challenge: this crate does not know how the caller authenticated.
impl Rejection for OwnerIdError {
    fn code(&self) -> Code {
        OwnerIdError::code(self)
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::EmptySubject | Self::EmptyIssuer => StatusCode::UNAUTHORIZED,
            Self::Empty => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn public_message(&self) -> Cow<'static, str> {
        match self {
            Self::EmptySubject | Self::EmptyIssuer => Cow::Owned(self.to_string()),
            Self::Empty => Cow::Borrowed(INTERNAL_ERROR_MESSAGE),
        }
    }
}

/// The owner of a sandbox session: a non-empty string derived from a verified subject.
///
/// Build it from a verified [`Principal`] ([`OwnerId::from_principal`]), from the subject and
/// issuer of a verified identity token ([`OwnerId::from_parts`]), or take a stored one verbatim
/// ([`OwnerId::new`]). Cloning is a reference-count increment.
///
/// To check whether a principal owns a session, use [`OwnerId::matches`]: it compares without
/// building the principal's owner id, so it does not allocate.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(Arc<str>);

impl OwnerId {
    /// Takes an owner id as stored (the `agentcube.io/owner` annotation, a record's `ownerId`).
    ///
    /// # Errors
    /// [`OwnerIdError::Empty`] for the empty string, which means "no owner".
    pub fn new(raw: impl Into<String>) -> Result<Self, OwnerIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(OwnerIdError::Empty);
        }
        Ok(Self(Arc::from(raw)))
    }

    /// The owner id of a verified principal: its subject, qualified by its issuer under
    /// [`OwnerIdScheme::IssuerQualified`]. Never its username or email.
    ///
    /// # Errors
    /// As [`OwnerId::from_parts`].
    pub fn from_principal(
        principal: &Principal,
        scheme: OwnerIdScheme,
    ) -> Result<Self, OwnerIdError> {
        Self::from_parts(scheme, principal.issuer(), principal.subject())
    }

    /// The owner id for `subject` as asserted by `issuer` (for instance the `sub` and caller
    /// issuer of a verified identity token on the WorkloadManager side).
    ///
    /// # Errors
    /// [`OwnerIdError::EmptySubject`] if `subject` is empty; [`OwnerIdError::EmptyIssuer`] if
    /// `issuer` is empty under [`OwnerIdScheme::IssuerQualified`].
    pub fn from_parts(
        scheme: OwnerIdScheme,
        issuer: &str,
        subject: &str,
    ) -> Result<Self, OwnerIdError> {
        if subject.is_empty() {
            return Err(OwnerIdError::EmptySubject);
        }
        match scheme {
            OwnerIdScheme::SubjectOnly => Ok(Self(Arc::from(subject))),
            OwnerIdScheme::IssuerQualified => {
                if issuer.is_empty() {
                    return Err(OwnerIdError::EmptyIssuer);
                }
                let mut id = String::with_capacity(issuer.len() + 1 + subject.len());
                for c in issuer.chars() {
                    match c {
                        '%' => id.push_str("%25"),
                        '#' => id.push_str("%23"),
                        c => id.push(c),
                    }
                }
                id.push('#');
                id.push_str(subject);
                Ok(Self(Arc::from(id)))
            }
        }
    }

    /// Whether `principal` is this owner under `scheme`. Allocation-free.
    ///
    /// A principal with an empty subject (or, when issuer-qualified, an empty issuer) matches
    /// nothing.
    pub fn matches(&self, principal: &Principal, scheme: OwnerIdScheme) -> bool {
        self.matches_parts(scheme, principal.issuer(), principal.subject())
    }

    /// Whether `(issuer, subject)` is this owner under `scheme`. Allocation-free.
    pub fn matches_parts(&self, scheme: OwnerIdScheme, issuer: &str, subject: &str) -> bool {
        if subject.is_empty() {
            return false;
        }
        match scheme {
            OwnerIdScheme::SubjectOnly => &*self.0 == subject,
            OwnerIdScheme::IssuerQualified => {
                !issuer.is_empty()
                    && qualified_eq(self.0.as_bytes(), issuer.as_bytes(), subject.as_bytes())
            }
        }
    }

    /// The owner id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `agentcube.io/owner-hash` label value of this owner.
    pub fn hash(&self) -> OwnerHash {
        OwnerHash::of(self)
    }
}

/// `owner == escape(issuer) + "#" + subject`, without building the right-hand side.
///
/// The escaped issuer holds no `#`, so this is: `owner` ends with `#` + subject, and what comes
/// before is the escaped issuer. The subject is compared first (a cheap suffix compare rejects
/// most non-owners); the issuer then takes a length check and one slice compare unless it holds
/// `%` or `#`.
fn qualified_eq(owner: &[u8], issuer: &[u8], subject: &[u8]) -> bool {
    owner
        .strip_suffix(subject)
        .and_then(|head| head.strip_suffix(b"#".as_slice()))
        .is_some_and(|escaped| escaped_issuer_eq(escaped, issuer))
}

/// `escaped == escape(issuer)`.
fn escaped_issuer_eq(escaped: &[u8], issuer: &[u8]) -> bool {
    // Counting without an early exit lets the compiler vectorize the scan.
    let specials = issuer
        .iter()
        .fold(0usize, |n, &b| n + usize::from(b == b'%' || b == b'#'));
    if escaped.len() != issuer.len() + 2 * specials {
        return false;
    }
    if specials == 0 {
        return escaped == issuer;
    }
    let mut rest = escaped;
    for byte in issuer {
        let piece: &[u8] = match byte {
            b'%' => b"%25",
            b'#' => b"%23",
            other => std::slice::from_ref(other),
        };
        match rest.strip_prefix(piece) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerId({:?})", &*self.0)
    }
}

impl AsRef<str> for OwnerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for OwnerId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for OwnerId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl TryFrom<String> for OwnerId {
    type Error = OwnerIdError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::new(raw)
    }
}

impl TryFrom<&str> for OwnerId {
    type Error = OwnerIdError;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Self::new(raw)
    }
}

impl std::str::FromStr for OwnerId {
    type Err = OwnerIdError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::new(raw)
    }
}

impl Serialize for OwnerId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Deserializes from a non-empty string; the empty string is an error (a record field that may
/// be empty is read as `Option<OwnerId>` by [`SessionRecord`](crate::SessionRecord)).
impl<'de> Deserialize<'de> for OwnerId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::new(raw).map_err(serde::de::Error::custom)
    }
}

/// The value of the `agentcube.io/owner-hash` label: the first 63 lowercase hex characters of
/// SHA-256 of the owner id (label values are limited to 63 characters).
///
/// Fixed-size and `Copy`; building one does not allocate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerHash([u8; OwnerHash::LEN]);

impl OwnerHash {
    /// The length of the label value in characters.
    pub const LEN: usize = 63;

    /// The hash label of `owner`.
    pub fn of(owner: &OwnerId) -> Self {
        Self::of_str(owner.as_str())
    }

    /// The hash label of a raw owner id string (the value any WorkloadManager stamps for it).
    pub fn of_str(owner: &str) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, owner.as_bytes());
        let mut out = [0u8; Self::LEN];
        let nibbles = digest
            .as_ref()
            .iter()
            .flat_map(|b| [b >> 4, b & 0x0f])
            .map(|n| HEX.get(usize::from(n)).copied().unwrap_or(b'0'));
        for (slot, hex) in out.iter_mut().zip(nibbles) {
            *slot = hex;
        }
        Self(out)
    }

    /// The label value.
    pub fn as_str(&self) -> &str {
        // INVARIANT: every byte is an ASCII hex digit, so this never falls back.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for OwnerHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for OwnerHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerHash({})", self.as_str())
    }
}

impl Serialize for OwnerHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_format_escapes_only_percent_and_hash_in_the_issuer() {
        let id =
            OwnerId::from_parts(OwnerIdScheme::IssuerQualified, "https://a/b%#c", "s#1").unwrap();
        assert_eq!(id.as_str(), "https://a/b%25%23c#s#1");
        assert!(id.matches_parts(OwnerIdScheme::IssuerQualified, "https://a/b%#c", "s#1"));
        // The ambiguity escaping prevents: issuer `x#y` + subject `z` vs issuer `x` + subject `y#z`.
        let a = OwnerId::from_parts(OwnerIdScheme::IssuerQualified, "x#y", "z").unwrap();
        let b = OwnerId::from_parts(OwnerIdScheme::IssuerQualified, "x", "y#z").unwrap();
        assert_ne!(a, b);
        assert!(!a.matches_parts(OwnerIdScheme::IssuerQualified, "x", "y#z"));
        assert!(!b.matches_parts(OwnerIdScheme::IssuerQualified, "x#y", "z"));
        // A stored id with an unescaped `#` in the issuer part matches no principal.
        let raw = OwnerId::new("x#y#z").unwrap();
        assert!(!raw.matches_parts(OwnerIdScheme::IssuerQualified, "x#y", "z"));
        assert!(raw.matches_parts(OwnerIdScheme::IssuerQualified, "x", "y#z"));
        let raw = OwnerId::new("x%y#z").unwrap();
        assert!(!raw.matches_parts(OwnerIdScheme::IssuerQualified, "x%y", "z"));
        // `%` escaping keeps a literal `%23` in an issuer apart from an escaped `#`.
        let c = OwnerId::from_parts(OwnerIdScheme::IssuerQualified, "x%23", "z").unwrap();
        let d = OwnerId::from_parts(OwnerIdScheme::IssuerQualified, "x#", "z").unwrap();
        assert_ne!(c, d);
    }

    #[test]
    fn matches_agrees_with_building_the_id() {
        let issuers = [
            "",
            "i",
            "https://kc/realms/a",
            "%",
            "#",
            "a%23",
            "a#b",
            "%%##",
            "a%25",
            "%2",
            "#%",
            "x",
            "x#y",
            "x%y",
        ];
        let subjects = ["", "s", "#", "s#t", "%23", "user-1", "b", "#b", "z", "y#z"];
        let pairs = || {
            issuers
                .iter()
                .flat_map(|i| subjects.iter().map(move |s| (*i, *s)))
        };
        for scheme in [OwnerIdScheme::SubjectOnly, OwnerIdScheme::IssuerQualified] {
            // Every id the scheme can build, plus stored ids nobody built this way.
            let mut stored: Vec<OwnerId> = pairs()
                .filter_map(|(i, s)| OwnerId::from_parts(scheme, i, s).ok())
                .collect();
            for raw in [
                "x#y#z", "x%y#z", "#s", "i#", "%#s", "%25#s", "a%2523#b", "s",
            ] {
                stored.push(OwnerId::new(raw).unwrap());
            }
            for id in &stored {
                for (issuer, subject) in pairs() {
                    let same = OwnerId::from_parts(scheme, issuer, subject)
                        .is_ok_and(|built| &built == id);
                    assert_eq!(
                        id.matches_parts(scheme, issuer, subject),
                        same,
                        "{scheme:?} {id:?} vs ({issuer:?}, {subject:?})"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_parts_are_rejected_and_never_match() {
        assert_eq!(
            OwnerId::from_parts(OwnerIdScheme::SubjectOnly, "i", ""),
            Err(OwnerIdError::EmptySubject)
        );
        assert_eq!(
            OwnerId::from_parts(OwnerIdScheme::IssuerQualified, "", "s"),
            Err(OwnerIdError::EmptyIssuer)
        );
        assert_eq!(OwnerId::new(""), Err(OwnerIdError::Empty));
        // A stored id that an empty issuer would produce still matches no principal.
        let stored = OwnerId::new("#s").unwrap();
        assert!(!stored.matches_parts(OwnerIdScheme::IssuerQualified, "", "s"));
    }

    #[test]
    fn hash_is_63_lowercase_hex_chars() {
        let h = OwnerHash::of_str("anything");
        assert_eq!(h.as_str().len(), 63);
        assert!(
            h.as_str()
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}

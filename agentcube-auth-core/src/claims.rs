//! The verified JSON payload of a token, with typed accessors that treat a claim of the wrong
//! JSON type as an error rather than as absent.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::AuthError;
use crate::jose::strict_json::{CowStr, Found, NestedReader, StrictObject};

/// The JSON payload of a verified token.
///
/// Typed accessors return `Ok(None)` when a claim is absent and
/// [`AuthError::InvalidClaim`] when it has the wrong type: a `"exp": "tomorrow"` must never be
/// read as "no expiry".
///
/// Every lookup takes the claim name as `&str`, so a name from configuration works as well as
/// a literal. An error names the claim with a bounded, printable copy of the name (at most 64
/// characters; anything outside printable ASCII becomes `?`).
///
/// ```
/// use agentcube_auth_core::{Claims, ErrorCode};
/// use serde_json::json;
///
/// let claims = Claims::try_from(json!({"org_id": "acme", "org_size": 12}))?;
/// let tenant_claim = String::from("org_id"); // e.g. read from configuration
/// assert_eq!(claims.string(&tenant_claim)?, Some("acme"));
/// assert_eq!(claims.string("missing")?, None);
/// let err = claims.string("org_size").unwrap_err();
/// assert_eq!(err.code(), ErrorCode::InvalidClaim);
/// assert_eq!(err.to_string(), r#"token claim "org_size" has the wrong type or value"#);
/// # Ok::<(), agentcube_auth_core::AuthError>(())
/// ```
///
/// Claims read from a token are checked in full when the token is parsed (valid JSON, no
/// duplicate member at any depth), but built only as far as they are read: a string claim is a
/// slice of the payload until someone asks for it as a [`Value`], and the whole map is built
/// on the first call to [`Claims::as_map`]. Verifying a token costs allocations for the claims
/// its mapper reads, not for every claim it carries.
#[derive(Clone, Default)]
pub struct Claims {
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// Built by the caller.
    Map(Map<String, Value>),
    /// Read from a token's payload.
    Payload(StrictObject),
}

impl Default for Source {
    fn default() -> Self {
        Self::Map(Map::new())
    }
}

/// The `aud` claim: a single string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Copy, Debug)]
pub enum Audience<'a> {
    /// No `aud` claim.
    Absent,
    /// `"aud": "x"`.
    One(&'a str),
    /// `"aud": ["x", "y"]`; every element is known to be a string.
    Many(&'a [Value]),
}

impl<'a> Audience<'a> {
    /// Whether `audience` is one of the token's audiences.
    pub fn contains(&self, audience: &str) -> bool {
        self.iter().any(|a| a == audience)
    }

    /// The audiences.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let (one, many): (Option<&'a str>, &'a [Value]) = match *self {
            Audience::Absent => (None, &[]),
            Audience::One(a) => (Some(a), &[]),
            Audience::Many(all) => (None, all),
        };
        one.into_iter().chain(many.iter().filter_map(Value::as_str))
    }
}

impl Claims {
    /// Wraps an already-parsed JSON object.
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            source: Source::Map(map),
        }
    }

    /// Claims read from a payload that passed the strict checks.
    pub(crate) fn from_payload(object: StrictObject) -> Self {
        Self {
            source: Source::Payload(object),
        }
    }

    /// Every claim, as a JSON object (built on the first call for claims read from a token).
    pub fn as_map(&self) -> &Map<String, Value> {
        match &self.source {
            Source::Map(map) => map,
            Source::Payload(object) => object.map(),
        }
    }

    /// Consumes the claims, returning every claim as a JSON object.
    pub fn into_map(self) -> Map<String, Value> {
        match self.source {
            Source::Map(map) => map,
            Source::Payload(object) => object.into_map(),
        }
    }

    /// A top-level claim as a JSON value.
    ///
    /// For claims read from a token, asking for a string or an object claim this way builds
    /// that claim's value once; the typed accessors ([`Claims::string`],
    /// [`Claims::numeric_date`], [`Claims::deserialize`]) read without building anything.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match &self.source {
            Source::Map(map) => map.get(name),
            Source::Payload(object) => object.get(name),
        }
    }

    /// Whether the claim is present and not `null`.
    pub fn contains(&self, name: &str) -> bool {
        !matches!(self.lookup(name), None | Some(Found::Value(Value::Null)))
    }

    /// A claim without building anything.
    fn lookup(&self, name: &str) -> Option<Found<'_>> {
        match &self.source {
            Source::Map(map) => map.get(name).map(Found::Value),
            Source::Payload(object) => object.lookup(name),
        }
    }

    /// A string claim; `Err(InvalidClaim)` when present but not a string (`null` is absent).
    pub fn string(&self, name: &str) -> Result<Option<&str>, AuthError> {
        match self.lookup(name) {
            None | Some(Found::Value(Value::Null)) => Ok(None),
            Some(Found::Str(s)) => Ok(Some(s)),
            Some(Found::Value(Value::String(s))) => Ok(Some(s)),
            Some(Found::Value(_) | Found::Nested) => Err(AuthError::InvalidClaim(claim_name(name))),
        }
    }

    /// A boolean claim; `Err(InvalidClaim)` when present but not a boolean (`null` is absent).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, AuthError> {
        match self.lookup(name) {
            None | Some(Found::Value(Value::Null)) => Ok(None),
            Some(Found::Value(Value::Bool(b))) => Ok(Some(*b)),
            Some(_) => Err(AuthError::InvalidClaim(claim_name(name))),
        }
    }

    /// A claim deserialized into `T`, which may borrow strings from the claims:
    /// `Ok(None)` when absent, `Err(InvalidClaim)` when it does not fit `T`.
    ///
    /// For claims read from a token this reads the claim's own JSON text and builds nothing
    /// else, so it is the cheap way for a mapper to read a structured claim.
    ///
    /// ```
    /// use agentcube_auth_core::Claims;
    /// use serde::Deserialize;
    /// use serde_json::json;
    ///
    /// #[derive(Deserialize)]
    /// struct Org<'a> {
    ///     id: &'a str,
    ///     seats: u32,
    /// }
    ///
    /// let claims = Claims::try_from(json!({"org": {"id": "acme", "seats": 12}}))?;
    /// let org: Org<'_> = claims.deserialize("org")?.expect("present");
    /// assert_eq!((org.id, org.seats), ("acme", 12));
    /// assert!(claims.deserialize::<Org<'_>>("missing")?.is_none());
    /// # Ok::<(), agentcube_auth_core::AuthError>(())
    /// ```
    pub fn deserialize<'a, T: Deserialize<'a>>(
        &'a self,
        name: &str,
    ) -> Result<Option<T>, AuthError> {
        self.deserialize_seed(name, PhantomData, NestedReader::SerdeJson)
            .transpose()
            .map_err(|_| AuthError::InvalidClaim(claim_name(name)))
    }

    /// A claim read with a serde seed (see [`Claims::deserialize`]); `None` when absent. A
    /// token's objects and arrays are read by `reader`.
    pub(crate) fn deserialize_seed<'a, S: DeserializeSeed<'a>>(
        &'a self,
        name: &str,
        seed: S,
        reader: NestedReader,
    ) -> Option<Result<S::Value, serde_json::Error>> {
        match &self.source {
            Source::Map(map) => Some(seed.deserialize(map.get(name)?)),
            Source::Payload(object) => object.deserialize_member(name, seed, reader),
        }
    }

    /// A NumericDate claim (seconds since the epoch) such as `exp`.
    ///
    /// Integers and finite fractions are accepted (a fraction is truncated towards the past);
    /// strings, booleans, objects and values outside ±2^53 are `InvalidClaim`.
    pub fn numeric_date(&self, name: &str) -> Result<Option<i64>, AuthError> {
        const MAX: i64 = 1 << 53;
        let invalid = || AuthError::InvalidClaim(claim_name(name));
        let n = match self.lookup(name) {
            None => return Ok(None),
            Some(Found::Value(Value::Number(n))) => n,
            Some(_) => return Err(invalid()),
        };
        let secs = if let Some(i) = n.as_i64() {
            i
        } else if let Some(f) = n.as_f64() {
            if !f.is_finite() || f.abs() >= MAX as f64 {
                return Err(invalid());
            }
            #[allow(clippy::cast_possible_truncation)] // bounded just above
            let whole = f.floor() as i64;
            whole
        } else {
            return Err(invalid()); // u64 above i64::MAX
        };
        if !(-MAX..=MAX).contains(&secs) {
            return Err(invalid());
        }
        Ok(Some(secs))
    }

    /// `iss`.
    pub fn issuer(&self) -> Result<Option<&str>, AuthError> {
        self.string("iss")
    }

    /// `sub`.
    pub fn subject(&self) -> Result<Option<&str>, AuthError> {
        self.string("sub")
    }

    /// `exp`.
    pub fn expires_at(&self) -> Result<Option<i64>, AuthError> {
        self.numeric_date("exp")
    }

    /// `nbf`.
    pub fn not_before(&self) -> Result<Option<i64>, AuthError> {
        self.numeric_date("nbf")
    }

    /// `iat`.
    pub fn issued_at(&self) -> Result<Option<i64>, AuthError> {
        self.numeric_date("iat")
    }

    /// `jti`.
    pub fn jwt_id(&self) -> Result<Option<&str>, AuthError> {
        self.string("jti")
    }

    /// `azp` (OIDC authorized party).
    pub fn authorized_party(&self) -> Result<Option<&str>, AuthError> {
        self.string("azp")
    }

    /// `aud`, as a string or an array of strings; any other shape (including an array with a
    /// non-string element) is `InvalidClaim`.
    pub fn audience(&self) -> Result<Audience<'_>, AuthError> {
        // A string or nothing is answered from one lookup; for anything else the shape rule
        // is `AudienceSeed`'s, and what follows only picks the representation.
        match self.lookup("aud") {
            None | Some(Found::Value(Value::Null)) => return Ok(Audience::Absent),
            Some(Found::Str(s)) => return Ok(Audience::One(s)),
            Some(Found::Value(Value::String(s))) => return Ok(Audience::One(s)),
            Some(_) => {}
        }
        self.audience_names_any::<&str>(&[])?;
        match self.get("aud") {
            Some(Value::Array(items)) => Ok(Audience::Many(items)),
            _ => Err(AuthError::InvalidClaim(Cow::Borrowed("aud"))),
        }
    }

    /// Whether `aud` names one of `accepted`: `Ok(None)` without an `aud` (or with `null`),
    /// `InvalidClaim` unless it is a string or an array of strings. Reads the claim without
    /// building it.
    pub(crate) fn audience_names_any<S: AsRef<str>>(
        &self,
        accepted: &[S],
    ) -> Result<Option<bool>, AuthError> {
        match self.deserialize_seed("aud", AudienceSeed { accepted }, NestedReader::Checked) {
            None => Ok(None),
            Some(Ok(found)) => Ok(found),
            Some(Err(_)) => Err(AuthError::InvalidClaim(Cow::Borrowed("aud"))),
        }
    }

    /// Looks up a claim by path: a top-level key equal to the whole path wins
    /// (`https://example.com/roles`, or a flat `a.b`), otherwise the path is split on `.` and
    /// objects are walked. A missing step gives `None`.
    ///
    /// The flat-key-first rule is right for a path an operator configured (a namespaced claim
    /// name may contain dots), but it lets a token that carries a flat `"a.b"` member override a
    /// nested `a` → `b`: code that must read a fixed nested member, such as
    /// [`KeycloakClaimMapper`](crate::KeycloakClaimMapper)'s `realm_access` → `roles`, walks the
    /// objects itself.
    pub fn path(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return None;
        }
        if let Some(v) = self.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut current = self.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// The string elements of the array at `path` (see [`Claims::path`]).
    ///
    /// A missing path or a non-array leaf gives nothing; non-string elements are skipped. This
    /// is the role-extraction rule for configured claim paths and never fails.
    pub fn strings_at<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.path(path)
            .and_then(Value::as_array)
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
    }
}

/// Reads `aud`: a string or an array of strings (RFC 7519 §4.1.3), or `null` for none; whether
/// any of `accepted` is among them. Any other shape is an error.
struct AudienceSeed<'s, S> {
    accepted: &'s [S],
}

impl<S: AsRef<str>> AudienceSeed<'_, S> {
    fn accepts(&self, audience: &str) -> bool {
        self.accepted.iter().any(|a| a.as_ref() == audience)
    }
}

impl<'de, S: AsRef<str>> DeserializeSeed<'de> for AudienceSeed<'_, S> {
    type Value = Option<bool>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<bool>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: AsRef<str>> Visitor<'de> for AudienceSeed<'_, S> {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_str<E>(self, audience: &str) -> Result<Option<bool>, E> {
        Ok(Some(self.accepts(audience)))
    }

    fn visit_unit<E>(self) -> Result<Option<bool>, E> {
        Ok(None)
    }

    fn visit_none<E>(self) -> Result<Option<bool>, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<bool>, A::Error> {
        // Every element is read, so a non-string after a match is still refused.
        let mut found = false;
        while let Some(CowStr(audience)) = seq.next_element::<CowStr<'de>>()? {
            found |= self.accepts(&audience);
        }
        Ok(Some(found))
    }
}

/// The name an error stores: a bounded, printable copy, since a name may come from
/// configuration or from a token. Borrowed for the registered claims, so their errors allocate
/// nothing.
pub(crate) fn claim_name(name: &str) -> Cow<'static, str> {
    const MAX: usize = 64;
    const REGISTERED: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "azp"];
    if let Some(known) = REGISTERED.iter().find(|known| **known == name) {
        return Cow::Borrowed(*known);
    }
    Cow::Owned(
        name.chars()
            .take(MAX)
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect(),
    )
}

/// Equal when they hold the same claims, however each was built.
impl PartialEq for Claims {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("map", self.as_map())
            .finish()
    }
}

impl From<Map<String, Value>> for Claims {
    fn from(map: Map<String, Value>) -> Self {
        Self::new(map)
    }
}

/// Claims from a JSON value, which must be an object.
impl TryFrom<Value> for Claims {
    type Error = AuthError;

    fn try_from(value: Value) -> Result<Self, AuthError> {
        match value {
            Value::Object(map) => Ok(Self::new(map)),
            _ => Err(AuthError::Malformed(crate::MalformedReason::PayloadJson)),
        }
    }
}

/// Claims as a verifier reads them: parsed from a token's payload text, exactly as written.
#[cfg(test)]
pub(crate) fn from_payload_text(payload: &str) -> Claims {
    let token = format!("e30.{}.c2ln", crate::jose::base64url::encode(payload));
    crate::jose::UnverifiedJws::peek_claims(&token, 64 * 1024).expect("a valid payload")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        Claims::try_from(v).unwrap()
    }

    #[test]
    fn the_audience_rule_is_the_same_for_claims_read_from_a_token() {
        let check =
            |claims: &Claims| crate::jose::check_audience(claims, &["x"]).map_err(|e| e.code());
        // Both sources of claims: a map built by the caller, and a token's payload text.
        let sources = |aud: &str| {
            let text = format!(r#"{{"aud":{aud}}}"#);
            [
                claims(serde_json::from_str(&text).unwrap()),
                from_payload_text(&text),
            ]
        };
        // The claim, the answer of a check for `x`, and the audiences read.
        for (aud, expected, audiences) in [
            (r#""x""#, Ok(()), &["x"][..]),
            (r#"["a","x"]"#, Ok(()), &["a", "x"][..]),
            (r#"["a"]"#, Err(ErrorCode::AudienceMismatch), &["a"][..]),
            (r#"[]"#, Err(ErrorCode::AudienceMismatch), &[][..]),
            (r#""y""#, Err(ErrorCode::AudienceMismatch), &["y"][..]),
            (r#"null"#, Err(ErrorCode::MissingClaim), &[][..]),
            (r#""\u0078""#, Ok(()), &["x"][..]),
            (r#"["\u0078"]"#, Ok(()), &["x"][..]),
        ] {
            for claims in sources(aud) {
                assert_eq!(check(&claims), expected, "{aud}");
                let read = claims.audience().unwrap();
                assert_eq!(read.iter().collect::<Vec<_>>(), audiences, "{aud}");
                // `null` is no audience at all, not an empty list.
                assert_eq!(matches!(read, Audience::Absent), aud == "null", "{aud}");
            }
        }
        // Any other shape is an invalid claim, for the check and for the reader alike.
        for aud in [
            r#"["x",5]"#,
            r#"["x",null]"#,
            r#"[["x"]]"#,
            r#"{"x":1}"#,
            "5",
            "true",
        ] {
            for claims in sources(aud) {
                assert_eq!(check(&claims), Err(ErrorCode::InvalidClaim), "{aud}");
                let read = claims.audience().map(|_| ()).map_err(|e| e.code());
                assert_eq!(read, Err(ErrorCode::InvalidClaim), "{aud}");
            }
        }
        let none = from_payload_text("{}");
        assert_eq!(check(&none), Err(ErrorCode::MissingClaim));
        assert!(matches!(none.audience().unwrap(), Audience::Absent));
    }

    #[test]
    fn flat_key_equal_to_whole_path_wins_over_dotted_walk() {
        let c = claims(json!({
            "https://example.com/roles": ["flat-url"],
            "a.b": ["flat"],
            "a": {"b": ["nested"]},
        }));
        assert_eq!(
            c.strings_at("https://example.com/roles")
                .collect::<Vec<_>>(),
            ["flat-url"]
        );
        assert_eq!(c.strings_at("a.b").collect::<Vec<_>>(), ["flat"]);
    }

    #[test]
    fn dotted_path_walks_objects() {
        let c = claims(json!({"realm_access": {"roles": ["x", 1, null, "y", {"z": 1}]}}));
        assert_eq!(
            c.strings_at("realm_access.roles").collect::<Vec<_>>(),
            ["x", "y"]
        );
    }

    #[test]
    fn missing_steps_and_non_array_leaves_give_no_roles() {
        let c = claims(json!({"a": {"b": "not-an-array", "c": 5}, "s": "x", "arr": [1]}));
        for path in [
            "", "a.b", "a.c", "a.d", "a.b.c", "s.x", "nope", ".", "a.", "arr.0", "a..b",
        ] {
            assert_eq!(c.strings_at(path).count(), 0, "path {path:?}");
        }
    }

    #[test]
    fn numeric_dates_of_the_wrong_type_are_errors_not_absent() {
        let c = claims(json!({
            "s": "1700000000", "b": true, "o": {}, "a": [1], "n": null,
            "f": 1700000000.9, "neg": -5, "big": 18446744073709551615u64, "huge": 1e300,
        }));
        for name in ["s", "b", "o", "a", "big", "huge"] {
            let err = c.numeric_date(name).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidClaim, "{name}");
        }
        // `null` is not a number either.
        assert_eq!(
            c.numeric_date("n").unwrap_err().code(),
            ErrorCode::InvalidClaim
        );
        assert_eq!(c.numeric_date("f").unwrap(), Some(1_700_000_000));
        assert_eq!(c.numeric_date("neg").unwrap(), Some(-5));
        assert_eq!(c.numeric_date("missing").unwrap(), None);
    }

    #[test]
    fn audience_accepts_string_or_string_array_only() {
        assert!(
            claims(json!({"aud": "x"}))
                .audience()
                .unwrap()
                .contains("x")
        );
        let c = claims(json!({"aud": ["a", "x"]}));
        assert!(c.audience().unwrap().contains("x"));
        assert!(!c.audience().unwrap().contains("b"));
        assert!(matches!(
            claims(json!({})).audience().unwrap(),
            Audience::Absent
        ));
        for bad in [
            json!({"aud": 5}),
            json!({"aud": ["x", 5]}),
            json!({"aud": {"x": 1}}),
        ] {
            assert_eq!(
                claims(bad).audience().unwrap_err().code(),
                ErrorCode::InvalidClaim
            );
        }
    }

    #[test]
    fn claim_names_from_configuration_are_bounded_in_errors() {
        let long = format!("https://example.com/{}\n", "x".repeat(200));
        let c = claims(json!({ long.clone(): 5, "exp": "x" }));
        let AuthError::InvalidClaim(name) = c.string(&long).unwrap_err() else {
            panic!("not invalid_claim");
        };
        assert_eq!(name.chars().count(), 64);
        assert!(name.starts_with("https://example.com/xxx") && !name.contains('\n'));
        let AuthError::InvalidClaim(name) = c.numeric_date("exp").unwrap_err() else {
            panic!("not invalid_claim");
        };
        assert!(matches!(name, Cow::Borrowed("exp")));
        let c = claims(json!({"f\u{e9}e": 1}));
        assert_eq!(
            c.string("f\u{e9}e").unwrap_err(),
            AuthError::InvalidClaim("f?e".into())
        );
    }

    #[test]
    fn string_claims_of_the_wrong_type_are_errors() {
        let c = claims(json!({"iss": 5, "sub": ["x"], "jti": "j"}));
        assert_eq!(c.issuer().unwrap_err().code(), ErrorCode::InvalidClaim);
        assert_eq!(c.subject().unwrap_err().code(), ErrorCode::InvalidClaim);
        assert_eq!(c.jwt_id().unwrap(), Some("j"));
        assert_eq!(c.authorized_party().unwrap(), None);
    }
}

//! Strict JSON for token segments: duplicate object members are rejected at every depth,
//! nesting is bounded, and a payload's members are read on demand.
//!
//! `serde_json` keeps the last of two equal keys; another parser may keep the first. A token
//! with `{"sub":"alice","sub":"admin"}` would then mean different things to different
//! components, so duplicates are rejected outright (RFC 7515 §5.2 permits that).
//!
//! A payload is checked in full once, when it is parsed ([`StrictObject::parse`]), but only
//! what later questions need is built. A top-level string without escapes stays a range of the
//! payload text; numbers, booleans and nulls are held as values (they do not allocate); an
//! object or array stays checked text until it is read, and a verifier or mapper reads one —
//! `aud` or `realm_access`, say — with a serde seed that borrows its strings
//! ([`StrictObject::deserialize_member`]). A member asked for as a [`Value`] is built once;
//! the whole map only for a caller that asks for it. Verifying a token therefore allocates for
//! what its principal keeps, not for every claim it carries.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why strict parsing failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON, not UTF-8, too deeply nested, or not an object at the top level.
    Invalid,
    /// An object has the same member twice.
    Duplicate,
}

/// The marker a duplicate carries through serde's error type.
const DUPLICATE: &str = "\u{0}duplicate member";

/// Deepest nesting accepted below the top-level object. Real tokens nest three deep. The bound
/// is well under serde_json's own recursion limit (128), so the stack stays small and the
/// whole text, re-parsed for [`StrictObject::map`], always fits that limit too.
const MAX_DEPTH: usize = 64;

fn classify(err: &serde_json::Error) -> StrictJsonError {
    if err.to_string().starts_with(DUPLICATE) {
        StrictJsonError::Duplicate
    } else {
        StrictJsonError::Invalid
    }
}

/// A cheap first comparison for member names: the length and the first seven bytes. Names
/// with different tags differ; equal tags are compared in full.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag(u64);

impl Tag {
    pub(crate) fn of(name: &str) -> Self {
        let mut bytes = [0u8; 8];
        for (slot, byte) in bytes.iter_mut().zip(name.bytes().take(7)) {
            *slot = byte;
        }
        if let Some(last) = bytes.last_mut() {
            *last = u8::try_from(name.len()).unwrap_or(u8::MAX);
        }
        Self(u64::from_le_bytes(bytes))
    }
}

/// The member names seen so far in one object. Up to 32 (a Keycloak access token has about 20)
/// are compared in place; past that they move to a hash set, so an object with thousands of
/// members costs linear time.
pub(crate) struct SeenKeys<'de> {
    tags: [Tag; SeenKeys::INLINE],
    keys: [Option<Cow<'de, str>>; SeenKeys::INLINE],
    len: usize,
    spilled: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> SeenKeys<'de> {
    const INLINE: usize = 32;

    pub(crate) fn new() -> Self {
        Self {
            tags: [Tag(0); Self::INLINE],
            keys: [const { None }; Self::INLINE],
            len: 0,
            spilled: None,
        }
    }

    /// Records `key`; `false` if it was seen before.
    pub(crate) fn insert(&mut self, key: Cow<'de, str>) -> bool {
        self.insert_tagged(Tag::of(&key), key)
    }

    /// [`SeenKeys::insert`] with the key's [`Tag`] already computed.
    pub(crate) fn insert_tagged(&mut self, tag: Tag, key: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.spilled {
            return set.insert(key);
        }
        let tags = self.tags.get(..self.len).unwrap_or_default();
        // Tags first (a plain scan over integers); names only where a tag matches.
        if tags.contains(&tag) {
            let seen = tags
                .iter()
                .zip(&self.keys)
                .any(|(t, k)| *t == tag && k.as_deref() == Some(&*key));
            if seen {
                return false;
            }
        }
        if let (Some(tag_slot), Some(key_slot)) =
            (self.tags.get_mut(self.len), self.keys.get_mut(self.len))
        {
            *tag_slot = tag;
            *key_slot = Some(key);
            self.len += 1;
        } else {
            let mut set: HashSet<Cow<'de, str>> =
                self.keys.iter_mut().filter_map(Option::take).collect();
            set.insert(key);
            self.spilled = Some(set);
        }
        true
    }
}

/// A JSON object whose text passed the strict checks; its members are built on demand.
#[derive(Clone)]
pub(crate) struct StrictObject {
    text: String,
    members: Vec<Member>,
    /// The members asked for as a [`Value`], by index; allocated on the first such request,
    /// so that a member costs nothing for this until then.
    built: OnceLock<Box<[OnceLock<Value>]>>,
    map: OnceLock<Map<String, Value>>,
}

#[derive(Clone)]
struct Member {
    tag: Tag,
    key: Text,
    value: Slot,
}

/// A member name: a range of the payload text when it had no escapes, else its decoded copy.
#[derive(Clone)]
enum Text {
    InPayload(Range<usize>),
    Decoded(Box<str>),
}

#[derive(Clone)]
enum Slot {
    /// A string without escapes: the range of its contents in the text.
    Str(Range<usize>),
    /// A number, boolean or null (no allocation), or a value whose place in the text is not
    /// known (a string with escapes; an object or array under a name with escapes), built
    /// while it was checked.
    Value(Value),
    /// An object or array, checked and left as text: where it starts (a reader stops at its
    /// end).
    Nested(usize),
}

/// A member as [`StrictObject::lookup`] finds it.
pub(crate) enum Found<'a> {
    /// A string, borrowed from the payload text.
    Str(&'a str),
    /// A number, boolean, null or a value that was built.
    Value(&'a Value),
    /// An object or array, not built (read it with [`StrictObject::get`] or
    /// [`StrictObject::deserialize_member`]).
    Nested,
}

impl StrictObject {
    /// Checks `bytes` as a JSON object with no duplicate members at any depth.
    pub(crate) fn parse(bytes: Vec<u8>) -> Result<Self, StrictJsonError> {
        let text = String::from_utf8(bytes).map_err(|_| StrictJsonError::Invalid)?;
        let members = {
            let mut de = serde_json::Deserializer::from_str(&text);
            let members = de
                .deserialize_map(ObjectVisitor { base: &text })
                .map_err(|e| classify(&e))?;
            de.end().map_err(|_| StrictJsonError::Invalid)?;
            members
        };
        Ok(Self {
            text,
            members,
            built: OnceLock::new(),
            map: OnceLock::new(),
        })
    }

    fn slice(&self, range: &Range<usize>) -> &str {
        self.text.get(range.clone()).unwrap_or_default()
    }

    fn from(&self, start: usize) -> &str {
        self.text.get(start..).unwrap_or_default()
    }

    fn key<'a>(&'a self, key: &'a Text) -> &'a str {
        match key {
            Text::InPayload(range) => self.slice(range),
            Text::Decoded(s) => s,
        }
    }

    fn find(&self, name: &str) -> Option<(usize, &Member)> {
        let tag = Tag::of(name);
        self.members
            .iter()
            .enumerate()
            .find(|(_, m)| m.tag == tag && self.key(&m.key) == name)
    }

    /// A member, without building anything.
    pub(crate) fn lookup(&self, name: &str) -> Option<Found<'_>> {
        Some(match &self.find(name)?.1.value {
            Slot::Str(range) => Found::Str(self.slice(range)),
            Slot::Value(value) => Found::Value(value),
            Slot::Nested(_) => Found::Nested,
        })
    }

    /// A member as a [`Value`], built on the first call for that member (read strings with
    /// [`StrictObject::lookup`] and nested values with [`StrictObject::deserialize_member`] to
    /// build nothing).
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        let (index, member) = self.find(name)?;
        if let Slot::Value(value) = &member.value {
            return Some(value);
        }
        let built = self
            .built
            .get_or_init(|| self.members.iter().map(|_| OnceLock::new()).collect());
        match built.get(index) {
            Some(cell) => Some(cell.get_or_init(|| self.build(&member.value))),
            // Unreachable (one cell per member); the map answers all the same.
            None => self.map().get(name),
        }
    }

    /// Deserializes one member with `seed`, borrowing its strings from the payload text.
    pub(crate) fn deserialize_member<'a, S: DeserializeSeed<'a>>(
        &'a self,
        name: &str,
        seed: S,
    ) -> Option<Result<S::Value, serde_json::Error>> {
        Some(match &self.find(name)?.1.value {
            Slot::Str(range) => seed.deserialize(BorrowedStrDeserializer::new(self.slice(range))),
            Slot::Value(value) => seed.deserialize(value),
            Slot::Nested(start) => {
                let mut de = serde_json::Deserializer::from_str(self.from(*start));
                seed.deserialize(&mut de)
            }
        })
    }

    /// Every member, built on the first call.
    pub(crate) fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            self.members
                .iter()
                .enumerate()
                .map(|(index, m)| (self.key(&m.key).to_owned(), self.built_or_build(index, m)))
                .collect()
        })
    }

    /// A member's value: a copy of the one built on request, or a new one.
    fn built_or_build(&self, index: usize, member: &Member) -> Value {
        self.built
            .get()
            .and_then(|built| built.get(index))
            .and_then(OnceLock::get)
            .cloned()
            .unwrap_or_else(|| self.build(&member.value))
    }

    fn build(&self, slot: &Slot) -> Value {
        match slot {
            Slot::Str(range) => Value::String(self.slice(range).to_owned()),
            Slot::Value(value) => value.clone(),
            // The text passed the same parser when it was checked, so this cannot fail;
            // `Null` keeps it total rather than panicking.
            Slot::Nested(start) => {
                let mut de = serde_json::Deserializer::from_str(self.from(*start));
                StrictValue { depth: 1 }
                    .deserialize(&mut de)
                    .unwrap_or(Value::Null)
            }
        }
    }

    /// Every member, moved out where they are already built.
    pub(crate) fn into_map(mut self) -> Map<String, Value> {
        if let Some(map) = self.map.take() {
            return map;
        }
        let members = std::mem::take(&mut self.members);
        let mut built = self.built.take().map(Vec::from).unwrap_or_default();
        members
            .into_iter()
            .enumerate()
            .map(|(index, m)| {
                let key = self.key(&m.key).to_owned();
                let value = match m.value {
                    Slot::Value(value) => value,
                    other => built
                        .get_mut(index)
                        .and_then(OnceLock::take)
                        .unwrap_or_else(|| self.build(&other)),
                };
                (key, value)
            })
            .collect()
    }
}

/// The position of `part` inside `base`, when `part` was borrowed from it.
fn range_in(base: &str, part: &str) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= base.len()).then_some(start..end)
}

fn key_text(base: &str, key: Cow<'_, str>) -> Text {
    match key {
        Cow::Borrowed(b) => match range_in(base, b) {
            Some(range) => Text::InPayload(range),
            None => Text::Decoded(b.into()),
        },
        Cow::Owned(o) => Text::Decoded(o.into_boxed_str()),
    }
}

/// Where the value of the member whose name ends at `key_end` starts, if it is an object or
/// an array:
/// past the name's closing quote, the colon and any whitespace. The text has passed the
/// parser, so this only skips what the grammar allows there.
fn nested_start(base: &str, key_end: usize) -> Option<usize> {
    let rest = base.as_bytes().get(key_end..)?;
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut at = 0;
    if rest.first() != Some(&b'"') {
        return None;
    }
    at += 1;
    at += rest.get(at..)?.iter().take_while(|b| is_space(b)).count();
    if rest.get(at) != Some(&b':') {
        return None;
    }
    at += 1;
    at += rest.get(at..)?.iter().take_while(|b| is_space(b)).count();
    matches!(rest.get(at), Some(b'{' | b'[')).then_some(key_end + at)
}

/// The top-level object: its members, checked in one pass, left as text where that is cheaper.
struct ObjectVisitor<'b> {
    base: &'b str,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Vec<Member>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Vec<Member>, A::Error> {
        // More than a Keycloak access token has, so the vector is allocated once.
        let mut members = Vec::with_capacity(32);
        let mut seen = SeenKeys::new();
        while let Some(CowStr(key)) = access.next_key::<CowStr<'de>>()? {
            let tag = Tag::of(&key);
            if !seen.insert_tagged(tag, key.clone()) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let key = key_text(self.base, key);
            let nested_start = match &key {
                Text::InPayload(range) => nested_start(self.base, range.end),
                Text::Decoded(_) => None,
            };
            let value = access.next_value_seed(MemberSeed {
                base: self.base,
                nested_start,
            })?;
            members.push(Member { tag, key, value });
        }
        Ok(members)
    }
}

/// One member's value. An object or array is checked without being built when its start in
/// the text is known (its name had no escapes), and built otherwise.
struct MemberSeed<'b> {
    base: &'b str,
    nested_start: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_> {
    type Value = Slot;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Slot, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MemberSeed<'_> {
    type Value = Slot;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Slot, E> {
        Ok(match range_in(self.base, v) {
            Some(range) => Slot::Str(range),
            None => Slot::Value(Value::String(v.to_owned())),
        })
    }

    fn visit_str<E>(self, v: &str) -> Result<Slot, E> {
        Ok(Slot::Value(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Slot, E> {
        Ok(Slot::Value(Value::String(v)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Slot, E> {
        Ok(Slot::Value(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Slot, E> {
        Ok(Slot::Value(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Slot, E> {
        Ok(Slot::Value(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Slot, E> {
        Ok(Slot::Value(number(v)))
    }

    fn visit_unit<E>(self) -> Result<Slot, E> {
        Ok(Slot::Value(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Slot, E> {
        Ok(Slot::Value(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot, A::Error> {
        match self.nested_start {
            Some(start) => StrictCheck { depth: 1 }
                .visit_seq(seq)
                .map(|()| Slot::Nested(start)),
            None => StrictValue { depth: 1 }.visit_seq(seq).map(Slot::Value),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot, A::Error> {
        match self.nested_start {
            Some(start) => StrictCheck { depth: 1 }
                .visit_map(map)
                .map(|()| Slot::Nested(start)),
            None => StrictValue { depth: 1 }.visit_map(map).map(Slot::Value),
        }
    }
}

/// Visitor methods that accept any scalar and read nothing from it (a visitor's default
/// refuses every type it does not implement).
macro_rules! ignore_scalars {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }

        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }

        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }

        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }

        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }

        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
    };
}
pub(crate) use ignore_scalars;

/// A nested value, checked without being built.
#[derive(Clone, Copy)]
struct StrictCheck {
    /// The nesting level of the value (a member of the top-level object is at level 1).
    depth: usize,
}

impl StrictCheck {
    /// The seed for this container's elements; an error if the container itself is too deep.
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth > MAX_DEPTH {
            return Err(E::custom("nesting too deep"));
        }
        Ok(Self {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictCheck {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictCheck {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    ignore_scalars!();

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut seen = SeenKeys::new();
        while let Some(CowStr(key)) = access.next_key::<CowStr<'de>>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            access.next_value_seed(inner)?;
        }
        Ok(())
    }
}

fn number(v: f64) -> Value {
    // serde_json refuses numbers out of f64's range, so this is always finite.
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A nested value, built while it is checked.
#[derive(Clone, Copy)]
struct StrictValue {
    /// The nesting level of the value (a member of the top-level object is at level 1).
    depth: usize,
}

impl StrictValue {
    /// The seed for this container's elements; an error if the container itself is too deep.
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth > MAX_DEPTH {
            return Err(E::custom("nesting too deep"));
        }
        Ok(Self {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(number(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(inner)?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CowStrVisitor).map(CowStr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Result<StrictObject, StrictJsonError> {
        StrictObject::parse(bytes.to_vec())
    }

    #[test]
    fn duplicates_are_rejected_at_any_depth() {
        for dup in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":{"roles":[],"roles":["admin"]}}"#,
            br#"{"x":[{"k":1,"k":1}]}"#,
            // Escaped forms of the same key are the same key, at the top and nested.
            br#"{"sub":"a","s\u0075b":"b"}"#,
            br#"{"s\u0075b":"a","sub":"b"}"#,
            br#"{"x":{"r":1,"\u0072":2}}"#,
        ] {
            assert_eq!(
                parse(dup).err(),
                Some(StrictJsonError::Duplicate),
                "{}",
                String::from_utf8_lossy(dup)
            );
        }
    }

    #[test]
    fn values_under_escaped_names_are_built_with_the_same_rules() {
        // A name with escapes has no place in the text, so its value is built while checked
        // (the other path): duplicates and depth are refused there too.
        assert_eq!(
            parse(br#"{"\u0078":{"r":1,"\u0072":2}}"#).err(),
            Some(StrictJsonError::Duplicate)
        );
        assert_eq!(
            parse(br#"{"\u0078":[{"k":1,"k":2}]}"#).err(),
            Some(StrictJsonError::Duplicate)
        );
        let nest =
            |depth: usize| format!("{{\"\\u0061\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(nest(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            parse(nest(MAX_DEPTH + 1).as_bytes()).err(),
            Some(StrictJsonError::Invalid)
        );
        let ok = parse(br#"{"\u0078":{"r":[1,"s"]}}"#).unwrap();
        assert!(matches!(
            ok.lookup("x"),
            Some(Found::Value(Value::Object(_)))
        ));
        assert_eq!(ok.get("x"), Some(&serde_json::json!({"r": [1, "s"]})));
    }

    #[test]
    fn duplicates_among_many_members_are_found_past_the_inline_keys() {
        let many: Vec<String> = (0..500).map(|i| format!("\"k{i}\":{i}")).collect();
        let ok = format!("{{{}}}", many.join(","));
        assert_eq!(parse(ok.as_bytes()).unwrap().map().len(), 500);
        let dup = format!("{{{},\"k7\":0}}", many.join(","));
        assert_eq!(
            parse(dup.as_bytes()).err(),
            Some(StrictJsonError::Duplicate)
        );
        let nested = format!("{{\"x\":{{{},\"k499\":0}}}}", many.join(","));
        assert_eq!(
            parse(nested.as_bytes()).err(),
            Some(StrictJsonError::Duplicate)
        );
    }

    #[test]
    fn non_objects_trailing_data_bad_utf8_and_deep_nesting_are_invalid() {
        for bad in [
            &b"[]"[..],
            b"1",
            b"\"s\"",
            b"{} {}",
            b"{",
            b"",
            b"nul",
            b"{\"a\":1e400}",
            b"{\"a\":\"\xff\"}",
            // Control characters inside strings, at the top and in an object left as text.
            b"{\"a\":\"x\x01y\"}",
            b"{\"a\":{\"b\":\"\x01\"}}",
            b"{\"a\":{\"b\":1e400}}",
            b"{\"a\":{\"b\":[1,}}",
        ] {
            assert_eq!(parse(bad).err(), Some(StrictJsonError::Invalid), "{bad:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse(deep.as_bytes()).err(), Some(StrictJsonError::Invalid));
        let at_limit = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(parse(at_limit.as_bytes()).is_ok());
        let past_limit = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            parse(past_limit.as_bytes()).err(),
            Some(StrictJsonError::Invalid)
        );
    }

    #[test]
    fn members_read_on_demand_agree_with_serde_json() {
        let text = br#" {"a":1,"b":[true,null,1.5,-3,"x"],"c":{"d":18446744073709551615},
            "s":"plain","e":"tab\tand \u00e9","n":null,"f":-0.25,"\u0073k":"escaped key"} "#;
        let theirs: Map<String, Value> = serde_json::from_slice(text).unwrap();
        let ours = parse(text).unwrap();
        for (key, value) in &theirs {
            assert_eq!(ours.get(key), Some(value), "{key}");
        }
        assert!(matches!(ours.lookup("s"), Some(Found::Str("plain"))));
        assert!(
            matches!(ours.lookup("e"), Some(Found::Value(Value::String(s))) if s == "tab\tand é")
        );
        assert!(matches!(ours.lookup("c"), Some(Found::Nested)));
        assert!(matches!(ours.lookup("b"), Some(Found::Nested)));
        assert!(ours.lookup("missing").is_none() && ours.get("missing").is_none());
        assert_eq!(ours.map(), &theirs);
        assert_eq!(parse(text).unwrap().into_map(), theirs);
        // After the map was built, the owned map is that one.
        let built = parse(text).unwrap();
        let _ = built.map();
        assert_eq!(built.into_map(), theirs);
    }
}

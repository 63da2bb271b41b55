//! Strict JSON for token segments: duplicate object members are rejected at every depth,
//! nesting is bounded, and a payload's members are read on demand.
//!
//! `serde_json` keeps the last of two equal keys; another parser may keep the first. A token
//! with `{"sub":"alice","sub":"admin"}` would then mean different things to different
//! components, so duplicates are rejected outright (RFC 7515 §5.2 permits that). The header
//! and the payload are checked by the same rule.
//!
//! The pieces, one file each:
//! - `scanner.rs` checks a text in one pass over its bytes, written for this one job: a
//!   general parser framework spends most of its time on values it hands to a visitor, and
//!   this pass needs almost none of them. It accepts exactly what `serde_json` accepts (held
//!   to that by differential tests), and leaves the intricate parts of the grammar — escapes
//!   and numbers other than plain integers — to `serde_json`, on their slices.
//! - [`StrictObject`] (here) keeps what the scanner hands over for a payload. A top-level
//!   string without escapes stays a range of the payload text; numbers, booleans and nulls are
//!   held as values (they do not allocate); an object or array stays checked text until it is
//!   read. Lookups go through a small index of name bits, so an absent claim costs one read.
//!   A member asked for as a [`Value`] is built once; the whole map only for a caller that
//!   asks for it. Verifying a token therefore allocates for what its principal keeps, not for
//!   every claim it carries.
//! - `reader.rs` reads checked text for the crate's own serde seeds (`aud`, Keycloak's role
//!   objects) without validating it again; anything else reads nested members through
//!   `serde_json` (see [`NestedReader`]).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::Deserialize as _;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{DeserializeSeed, Deserializer, Visitor};
use serde_json::{Map, Value};

use reader::CheckedReader;
pub(crate) use scanner::{TopText, TopValue, members};

mod reader;
mod scanner;

/// Why strict parsing failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON, not UTF-8, too deeply nested, or not an object at the top level.
    Invalid,
    /// An object has the same member twice.
    Duplicate,
}

/// Deepest nesting accepted below the top-level object. Real tokens nest three deep. The bound
/// is well under serde_json's own recursion limit (128), so the stack stays small and the
/// whole text, re-parsed for [`StrictObject::map`], always fits that limit too.
const MAX_DEPTH: usize = 64;

/// A cheap first comparison for member names: the length and the first seven bytes. Names
/// with different tags differ; equal tags are compared in full.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag(u64);

impl Tag {
    pub(crate) fn of(name: &str) -> Self {
        let bytes = name.as_bytes();
        // The first seven bytes, read as one word when there are eight to read (almost every
        // claim name), byte by byte otherwise.
        let head = match bytes.first_chunk::<8>() {
            Some(word) => u64::from_le_bytes(*word) & 0x00ff_ffff_ffff_ffff,
            None => bytes
                .iter()
                .rev()
                .fold(0u64, |word, byte| (word << 8) | u64::from(*byte)),
        };
        let len = u64::try_from(bytes.len().min(0xff)).unwrap_or(0xff);
        Self(head | (len << 56))
    }

    /// One of 64 bits, chosen by the whole tag: equal names have the same bit, so a name whose
    /// bit is not yet set among an object's names is new to that object.
    pub(crate) fn bit(self) -> u64 {
        1 << self.bit_index()
    }

    /// The position of [`Tag::bit`], below 64.
    pub(crate) fn bit_index(self) -> usize {
        // The top six bits of a multiplicative hash: every byte of the tag moves them.
        usize::try_from(self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58).unwrap_or(0)
    }
}

/// How [`StrictObject::deserialize_member`] reads a member that is an object or an array.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NestedReader {
    /// `serde_json`, which answers every part of serde's data model (enums, newtypes, bytes):
    /// for seeds and types the crate does not know.
    SerdeJson,
    /// The checked-text reader (`reader.rs`), which does not validate the text again: for the
    /// crate's own seeds, which use only `deserialize_any`, `deserialize_option` and
    /// `deserialize_ignored_any`.
    Checked,
}

/// A JSON object whose text passed the strict checks; its members are built on demand.
#[derive(Clone)]
pub(crate) struct StrictObject {
    text: String,
    members: Vec<Member>,
    /// For each [`Tag::bit`], the last member with that bit, plus one (0: none); each member
    /// links to the one before it with the same bit. A lookup walks one short chain instead of
    /// every member (a claim that is absent costs one read). Only the first 255 members are
    /// linked; an object with more is searched by a scan.
    index: [u8; 64],
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
    /// The previous member with the same [`Tag::bit`], plus one (0: none); see
    /// [`StrictObject::index`](StrictObject).
    previous: u8,
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
    /// A number, boolean or null (no allocation), or a string with escapes, decoded.
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
        // More than a Keycloak access token has, so the vectors are allocated once.
        const EXPECTED_MEMBERS: usize = 32;
        let mut members = Vec::with_capacity(EXPECTED_MEMBERS);
        let mut index = [0u8; 64];
        scanner::members(&text, EXPECTED_MEMBERS, |member| {
            // Linked into the index while its position fits a byte; `find` scans past that.
            let slot = index.get_mut(member.tag.bit_index());
            let previous = match (slot, u8::try_from(members.len() + 1)) {
                (Some(slot), Ok(link)) => std::mem::replace(slot, link),
                _ => 0,
            };
            members.push(Member {
                previous,
                tag: member.tag,
                key: match member.name {
                    TopText::InText(_, range) => Text::InPayload(range),
                    TopText::Decoded(name) => Text::Decoded(name.into_boxed_str()),
                },
                value: match member.value {
                    TopValue::Str(TopText::InText(_, range)) => Slot::Str(range),
                    TopValue::Str(TopText::Decoded(string)) => Slot::Value(Value::String(string)),
                    TopValue::Scalar(value) => Slot::Value(value),
                    TopValue::Nested(start) => Slot::Nested(start),
                },
            });
            Ok::<_, StrictJsonError>(())
        })?;
        Ok(Self {
            text,
            members,
            index,
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
        let is = |m: &Member| m.tag == tag && self.key(&m.key) == name;
        if self.members.len() > usize::from(u8::MAX) {
            return self.members.iter().enumerate().find(|(_, m)| is(m));
        }
        let mut link = self.index.get(tag.bit_index()).copied().unwrap_or(0);
        while let Some(at) = usize::from(link).checked_sub(1) {
            let member = self.members.get(at)?;
            if is(member) {
                return Some((at, member));
            }
            link = member.previous;
        }
        None
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

    /// Deserializes one member with `seed`, borrowing its strings from the payload text; an
    /// object or array is read by `reader`.
    pub(crate) fn deserialize_member<'a, S: DeserializeSeed<'a>>(
        &'a self,
        name: &str,
        seed: S,
        reader: NestedReader,
    ) -> Option<Result<S::Value, serde_json::Error>> {
        Some(match &self.find(name)?.1.value {
            Slot::Str(range) => seed.deserialize(BorrowedStrDeserializer::new(self.slice(range))),
            Slot::Value(value) => seed.deserialize(value),
            Slot::Nested(start) => match reader {
                NestedReader::SerdeJson => {
                    let mut de = serde_json::Deserializer::from_str(self.from(*start));
                    seed.deserialize(&mut de)
                }
                NestedReader::Checked => {
                    seed.deserialize(&mut CheckedReader::new(&self.text, *start))
                }
            },
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
            // The text was checked (strictly, and within serde_json's recursion limit), so
            // this cannot fail; `Null` keeps it total rather than panicking.
            Slot::Nested(start) => {
                let mut de = serde_json::Deserializer::from_str(self.from(*start));
                Value::deserialize(&mut de).unwrap_or(Value::Null)
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
mod tests;

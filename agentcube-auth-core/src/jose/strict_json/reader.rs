//! A serde deserializer over JSON text the scanner has already checked, for the crate's own
//! seeds (Keycloak's role objects, `aud`): it reads with the scanner's primitives and borrows
//! every string without escapes, where `serde_json`'s deserializer would validate the text a
//! second time on the way.
//!
//! It implements the part of serde's data model those seeds use — `deserialize_any`,
//! `deserialize_option` and `deserialize_ignored_any`, with every other request answered as
//! `deserialize_any` would — so it is not the reader behind the public
//! [`Claims::deserialize`](crate::Claims::deserialize), where `serde_json` answers enums,
//! newtypes and bytes for any `T`.

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

use super::StrictJsonError;
use super::scanner::{Scanner, TopText};

type Error = serde_json::Error;

fn unexpected(_: StrictJsonError) -> Error {
    // Unreachable on checked text; an error rather than a panic all the same.
    de::Error::custom("unexpected JSON in checked text")
}

/// Reads the value that starts at a position of checked text.
pub(crate) struct CheckedReader<'t> {
    scanner: Scanner<'t>,
}

impl<'t> CheckedReader<'t> {
    /// A reader of the value at `start` in `text`, which passed the scanner.
    pub(crate) fn new(text: &'t str, start: usize) -> Self {
        Self {
            scanner: Scanner::at(text, start),
        }
    }

    /// Skips the value at the current position. This runs the scanner's full check over it
    /// again (names included): a skip-only walk would be one more grammar to keep right, for
    /// values the crate's seeds rarely skip (unknown members of a Keycloak role object).
    fn skip(&mut self) -> Result<(), Error> {
        self.scanner.skip_whitespace();
        self.scanner.value(1).map_err(unexpected)
    }
}

impl<'de> Deserializer<'de> for &mut CheckedReader<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let scanner = &mut self.scanner;
        scanner.skip_whitespace();
        match scanner.peek() {
            Some(b'"') => match scanner.text().map_err(unexpected)? {
                TopText::InText(text, _) => visitor.visit_borrowed_str(text),
                TopText::Decoded(decoded) => visitor.visit_string(decoded),
            },
            Some(b'{') => {
                scanner.bump();
                let mut members = Members {
                    reader: self,
                    items: Items::default(),
                };
                let value = visitor.visit_map(&mut members)?;
                members.finish()?;
                Ok(value)
            }
            Some(b'[') => {
                scanner.bump();
                let mut elements = Elements {
                    reader: self,
                    items: Items::default(),
                };
                let value = visitor.visit_seq(&mut elements)?;
                elements.finish()?;
                Ok(value)
            }
            _ => match scanner.scalar().map_err(unexpected)? {
                Value::Bool(b) => visitor.visit_bool(b),
                Value::Number(n) => n.deserialize_any(visitor),
                _ => visitor.visit_unit(),
            },
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.scanner.skip_whitespace();
        if self.scanner.peek() == Some(b'n') {
            self.skip()?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.skip()?;
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
    }
}

/// Where a reader is among the items of one object or array.
#[derive(Default)]
struct Items {
    started: bool,
    done: bool,
}

impl Items {
    /// Whether another item follows (the reader is then past its comma); when not, the reader
    /// is past the closing `close`.
    fn next(&mut self, scanner: &mut Scanner<'_>, close: u8) -> bool {
        if self.done {
            return false;
        }
        scanner.skip_whitespace();
        let next = if self.started {
            scanner.bump() == Some(b',')
        } else if scanner.peek() == Some(close) {
            scanner.bump();
            false
        } else {
            true
        };
        self.started = true;
        self.done = !next;
        next
    }
}

/// The members of an object, after its `{`.
struct Members<'r, 't> {
    reader: &'r mut CheckedReader<'t>,
    items: Items,
}

impl<'t> Members<'_, 't> {
    /// Skips what the visitor left unread, so the reader ends past the closing `}`.
    fn finish(&mut self) -> Result<(), Error> {
        while self.next_name()?.is_some() {
            self.colon();
            self.reader.skip()?;
        }
        Ok(())
    }

    /// The next member's name, or `None` past the closing `}`.
    fn next_name(&mut self) -> Result<Option<TopText<'t>>, Error> {
        let scanner = &mut self.reader.scanner;
        if !self.items.next(scanner, b'}') {
            return Ok(None);
        }
        scanner.skip_whitespace();
        scanner.text().map(Some).map_err(unexpected)
    }

    fn colon(&mut self) {
        let scanner = &mut self.reader.scanner;
        scanner.skip_whitespace();
        scanner.bump();
    }
}

impl<'de> MapAccess<'de> for Members<'_, 'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.next_name()? {
            None => Ok(None),
            Some(TopText::InText(name, _)) => seed
                .deserialize(BorrowedStrDeserializer::new(name))
                .map(Some),
            Some(TopText::Decoded(name)) => {
                seed.deserialize(StringDeserializer::new(name)).map(Some)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.colon();
        seed.deserialize(&mut *self.reader)
    }
}

/// The elements of an array, after its `[`.
struct Elements<'r, 't> {
    reader: &'r mut CheckedReader<'t>,
    items: Items,
}

impl Elements<'_, '_> {
    /// Whether another element follows; past the closing `]` when not.
    fn has_next(&mut self) -> bool {
        self.items.next(&mut self.reader.scanner, b']')
    }

    /// Skips what the visitor left unread, so the reader ends past the closing `]`.
    fn finish(&mut self) -> Result<(), Error> {
        while self.has_next() {
            self.reader.skip()?;
        }
        Ok(())
    }
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if self.has_next() {
            seed.deserialize(&mut *self.reader).map(Some)
        } else {
            Ok(None)
        }
    }
}

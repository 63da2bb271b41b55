//! The strict check itself: one pass over the bytes of a JSON text, with no parser framework in
//! between.
//!
//! It accepts exactly what `serde_json` accepts and refuses what it refuses (the
//! `the_scanner_agrees_with_serde_json` tests hold it to that on generated and mutated texts),
//! and adds the strict rules: no duplicate member at any depth, names compared decoded,
//! nesting at most [`MAX_DEPTH`] deep, a top-level object and nothing after it. Where the
//! grammar is rare and intricate — strings with escapes (surrogate pairs) and numbers that are
//! not plain integers (range, exponents) — the scanner finds the token's end and hands that
//! slice to `serde_json`, so those rules have one home.
//!
//! It hands over each member of the top-level object ([`members`]): names and strings as slices
//! of the text (decoded when they hold escapes), a scalar as its value, and an object or array
//! as the place it starts. Nothing inside a nested value is built. The payload keeps what it is
//! handed ([`StrictObject`](super::StrictObject)); the header reads three members from it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use serde_json::{Number, Value};

use super::{MAX_DEPTH, StrictJsonError, Tag};

/// How many names of one object are compared in place before they move to a hash set.
const INLINE_NAMES: usize = 32;

/// A string as the scanner found it.
struct ScannedStr {
    /// The contents, between the quotes.
    contents: Range<usize>,
    /// Whether the contents hold an escape (so they are not the string's value as they are).
    escaped: bool,
}

/// The names of one object being checked.
struct ObjectNames<'t> {
    /// Where its names start on the scanner's stack.
    mark: usize,
    /// The union of its names' [`Tag::bit`]s.
    bits: u64,
    /// Its names, once there are more than [`INLINE_NAMES`].
    spilled: Option<HashSet<Cow<'t, str>>>,
}

impl ObjectNames<'_> {
    fn new(mark: usize) -> Self {
        Self {
            mark,
            bits: 0,
            spilled: None,
        }
    }
}

/// The scanner's position in one text, and the member names of the objects it is inside.
pub(super) struct Scanner<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
    /// The names seen so far in every object being checked, the innermost object's last: one
    /// stack for all of them, so that entering an object costs nothing.
    names: Vec<(Tag, Cow<'t, str>)>,
}

/// A member of the top-level object, as [`members`] hands it over.
pub(crate) struct TopMember<'t> {
    /// The name's [`Tag`].
    pub(crate) tag: Tag,
    /// The name.
    pub(crate) name: TopText<'t>,
    /// The value.
    pub(crate) value: TopValue<'t>,
}

/// A string as the scanner read it: a name, or a string value.
pub(crate) enum TopText<'t> {
    /// Without escapes: the text itself, and where it is.
    InText(&'t str, Range<usize>),
    /// With escapes: its decoded value.
    Decoded(String),
}

impl<'t> TopText<'t> {
    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::InText(text, _) => text,
            Self::Decoded(decoded) => decoded,
        }
    }

    /// The text, borrowed when it had no escapes.
    pub(crate) fn into_cow(self) -> Cow<'t, str> {
        match self {
            Self::InText(text, _) => Cow::Borrowed(text),
            Self::Decoded(decoded) => Cow::Owned(decoded),
        }
    }
}

/// A value of the top-level object.
pub(crate) enum TopValue<'t> {
    /// A string.
    Str(TopText<'t>),
    /// A number, boolean or null.
    Scalar(Value),
    /// An object or array (checked, not built), by where it starts in the text.
    Nested(usize),
}

/// Checks `text` strictly and hands each member of its top-level object to `each`, in order,
/// as soon as it is checked (so an error `each` returns comes before any later error of the
/// text). Names are checked for duplicates before `each` sees them. `expected_members` sizes
/// the stack of names, so that a typical text allocates it once.
pub(crate) fn members<'t, E: From<StrictJsonError>>(
    text: &'t str,
    expected_members: usize,
    mut each: impl FnMut(TopMember<'t>) -> Result<(), E>,
) -> Result<(), E> {
    let mut scanner = Scanner::at(text, 0);
    scanner.names.reserve(expected_members);
    scanner.skip_whitespace();
    scanner.expect(b'{')?;
    let mut names = ObjectNames::new(0);
    scanner.skip_whitespace();
    if !scanner.eat(b'}') {
        loop {
            scanner.skip_whitespace();
            let name = scanner.string()?;
            // Built in each branch and inline, not through `Scanner::text`: the common branch
            // then moves no `Cow` or `TopText` around (measured: a helper here costs about a
            // fifth of the parse). The string value below is spelled out too: through
            // `Scanner::text` the parse measured about 3 % slower (1,231 against 1,189 ns).
            let (tag, name) = if name.escaped {
                let decoded = scanner.decode(&name)?;
                let tag = Tag::of(&decoded);
                scanner.remember(&mut names, tag, Cow::Owned(decoded.clone()))?;
                (tag, TopText::Decoded(decoded))
            } else {
                let text = scanner.slice(&name.contents);
                let tag = Tag::of(text);
                scanner.remember(&mut names, tag, Cow::Borrowed(text))?;
                (tag, TopText::InText(text, name.contents))
            };
            scanner.colon()?;
            let value = match scanner.peek() {
                Some(b'"') => {
                    let string = scanner.string()?;
                    TopValue::Str(if string.escaped {
                        TopText::Decoded(scanner.decode(&string)?)
                    } else {
                        TopText::InText(scanner.slice(&string.contents), string.contents)
                    })
                }
                Some(b'{' | b'[') => {
                    let start = scanner.at;
                    scanner.value(1)?;
                    TopValue::Nested(start)
                }
                _ => TopValue::Scalar(scanner.scalar()?),
            };
            each(TopMember { tag, name, value })?;
            if scanner.end_of_object()? {
                break;
            }
        }
    }
    scanner.skip_whitespace();
    if scanner.at == scanner.bytes.len() {
        Ok(())
    } else {
        Err(StrictJsonError::Invalid.into())
    }
}

impl<'t> Scanner<'t> {
    /// A scanner of `text` from `start`, outside any object.
    pub(super) fn at(text: &'t str, start: usize) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            at: start,
            names: Vec::new(),
        }
    }

    /// Any value at nesting level `depth` (a member of the top-level object is at level 1).
    pub(super) fn value(&mut self, depth: usize) -> Result<(), StrictJsonError> {
        match self.peek() {
            Some(b'"') => {
                let string = self.string()?;
                if string.escaped {
                    self.decode(&string)?;
                }
                Ok(())
            }
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            _ => self.scalar().map(drop),
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), StrictJsonError> {
        if depth > MAX_DEPTH {
            return Err(StrictJsonError::Invalid);
        }
        self.expect(b'{')?;
        let mut names = ObjectNames::new(self.names.len());
        self.skip_whitespace();
        if !self.eat(b'}') {
            loop {
                self.skip_whitespace();
                let name = self.string()?;
                let key = if name.escaped {
                    Cow::Owned(self.decode(&name)?)
                } else {
                    Cow::Borrowed(self.slice(&name.contents))
                };
                self.remember(&mut names, Tag::of(&key), key)?;
                self.colon()?;
                self.value(depth + 1)?;
                if self.end_of_object()? {
                    break;
                }
            }
        }
        self.names.truncate(names.mark);
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), StrictJsonError> {
        if depth > MAX_DEPTH {
            return Err(StrictJsonError::Invalid);
        }
        self.expect(b'[')?;
        self.skip_whitespace();
        if self.eat(b']') {
            return Ok(());
        }
        loop {
            self.skip_whitespace();
            self.value(depth + 1)?;
            self.skip_whitespace();
            match self.bump() {
                Some(b',') => {}
                Some(b']') => return Ok(()),
                _ => return Err(StrictJsonError::Invalid),
            }
        }
    }

    /// A string at the current position: borrowed when it has no escapes, else decoded. (The
    /// top-level loop of [`members`] spells this out inline, for names and values, for speed.)
    pub(super) fn text(&mut self) -> Result<TopText<'t>, StrictJsonError> {
        let string = self.string()?;
        Ok(if string.escaped {
            TopText::Decoded(self.decode(&string)?)
        } else {
            TopText::InText(self.slice(&string.contents), string.contents)
        })
    }

    /// Records a member name of the object `names` describes; a duplicate is an error.
    fn remember(
        &mut self,
        names: &mut ObjectNames<'t>,
        tag: Tag,
        key: Cow<'t, str>,
    ) -> Result<(), StrictJsonError> {
        if let Some(set) = &mut names.spilled {
            return if set.insert(key) {
                Ok(())
            } else {
                Err(StrictJsonError::Duplicate)
            };
        }
        let bit = tag.bit();
        // Only a name whose bit is already set can be a duplicate: most names skip the scan.
        if names.bits & bit != 0 {
            let seen = self.names.get(names.mark..).unwrap_or_default();
            // Tags first (integers); names only where a tag matches.
            if seen.iter().any(|(t, k)| *t == tag && *k == key) {
                return Err(StrictJsonError::Duplicate);
            }
        }
        names.bits |= bit;
        if self.names.len() - names.mark < INLINE_NAMES {
            self.names.push((tag, key));
        } else {
            // Past this many names, a hash set, so that an object with thousands of members
            // costs linear time.
            let mut set: HashSet<Cow<'t, str>> =
                self.names.drain(names.mark..).map(|(_, k)| k).collect();
            set.insert(key);
            names.spilled = Some(set);
        }
        Ok(())
    }

    /// After a member's value: `true` at the object's end, `false` after a comma.
    fn end_of_object(&mut self) -> Result<bool, StrictJsonError> {
        self.skip_whitespace();
        match self.bump() {
            Some(b',') => Ok(false),
            Some(b'}') => Ok(true),
            _ => Err(StrictJsonError::Invalid),
        }
    }

    fn colon(&mut self) -> Result<(), StrictJsonError> {
        self.skip_whitespace();
        self.expect(b':')?;
        self.skip_whitespace();
        Ok(())
    }

    /// A number, `true`, `false` or `null`.
    pub(super) fn scalar(&mut self) -> Result<Value, StrictJsonError> {
        match self.peek() {
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            _ => Err(StrictJsonError::Invalid),
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, StrictJsonError> {
        let end = self.at + word.len();
        if self.bytes.get(self.at..end) != Some(word) {
            return Err(StrictJsonError::Invalid);
        }
        self.at = end;
        Ok(value)
    }

    /// A number. A plain non-negative integer of up to 19 digits (every `exp` and `iat`) is
    /// read here; any other form is read by `serde_json` from its slice, which decides its
    /// grammar, its range and whether it is an integer or a float.
    fn number(&mut self) -> Result<Number, StrictJsonError> {
        let start = self.at;
        let rest = self.bytes.get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .count();
        self.at = start + len;
        let digits = rest.get(..len).unwrap_or_default();
        let plain = matches!(digits, [b'1'..=b'9', ..] | [b'0'])
            && digits.len() <= 19
            && digits.iter().all(u8::is_ascii_digit);
        if plain {
            let value = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return Ok(Number::from(value));
        }
        let slice = self.text.get(start..self.at).unwrap_or_default();
        serde_json::from_str(slice).map_err(|_| StrictJsonError::Invalid)
    }

    /// A string whose opening quote is at the current position; leaves the position past its
    /// closing quote. Control characters are refused; escapes are only noted here (see
    /// [`Scanner::decode`]).
    fn string(&mut self) -> Result<ScannedStr, StrictJsonError> {
        self.expect(b'"')?;
        let start = self.at;
        let mut at = start;
        let mut escaped = false;
        loop {
            // Eight bytes at a time while none of them ends, escapes or breaks the string.
            while let Some(chunk) = self.bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
                let found = special_bytes(u64::from_le_bytes(*chunk));
                if found != 0 {
                    at += (found.trailing_zeros() / 8) as usize;
                    break;
                }
                at += 8;
            }
            match self.bytes.get(at) {
                Some(b'"') => {
                    self.at = at + 1;
                    return Ok(ScannedStr {
                        contents: start..at,
                        escaped,
                    });
                }
                // The escaped byte is skipped whatever it is; `decode` checks the escape.
                Some(b'\\') => {
                    escaped = true;
                    at += 2;
                }
                Some(0x00..=0x1f) | None => return Err(StrictJsonError::Invalid),
                Some(_) => at += 1,
            }
        }
    }

    /// A range of the text (one the scanner found, so always in it).
    fn slice(&self, range: &Range<usize>) -> &'t str {
        self.text.get(range.clone()).unwrap_or_default()
    }

    /// The value of a string with escapes, decoded (and its escapes checked) by `serde_json`
    /// from its quoted slice.
    fn decode(&self, string: &ScannedStr) -> Result<String, StrictJsonError> {
        let quoted = self
            .text
            .get(string.contents.start - 1..string.contents.end + 1)
            .ok_or(StrictJsonError::Invalid)?;
        serde_json::from_str(quoted).map_err(|_| StrictJsonError::Invalid)
    }

    pub(super) fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    pub(super) fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Result<(), StrictJsonError> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(StrictJsonError::Invalid)
        }
    }
}

/// The high bit of each byte of `chunk` (little-endian) that is a quote, a backslash or a
/// control character. Only the lowest set bit is exact (a borrow can mark a byte above a real
/// one), which is the only one read.
fn special_bytes(chunk: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero_byte(chunk ^ (ONES * u64::from(b'"')));
    let backslash = zero_byte(chunk ^ (ONES * u64::from(b'\\')));
    let control = chunk.wrapping_sub(ONES * 0x20) & !chunk;
    (quote | backslash | control) & HIGHS
}

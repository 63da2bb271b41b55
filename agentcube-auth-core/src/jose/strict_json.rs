//! JSON parsing that rejects duplicate object members at every depth.
//!
//! `serde_json` keeps the last of two equal keys; another parser may keep the first. A token
//! with `{"sub":"alice","sub":"admin"}` would then mean different things to different
//! components, so duplicates are rejected outright (RFC 7515 §5.2 permits that). Nesting depth
//! is bounded by serde_json's recursion limit (128), so hostile input cannot exhaust the stack.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why strict parsing failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON, or not an object at the top level.
    Invalid,
    /// An object has the same member twice.
    Duplicate,
}

const DUPLICATE: &str = "\u{0}duplicate member";

/// Parses `bytes` as a JSON object, rejecting duplicate members.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed.deserialize(&mut de).map_err(|e| classify(&e))?;
    de.end().map_err(|_| StrictJsonError::Invalid)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(StrictJsonError::Invalid),
    }
}

fn classify(err: &serde_json::Error) -> StrictJsonError {
    if err.to_string().starts_with(DUPLICATE) {
        StrictJsonError::Duplicate
    } else {
        StrictJsonError::Invalid
    }
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
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
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
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
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let value = access.next_value_seed(StrictSeed)?;
            if map.insert(key, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_rejected_at_any_depth() {
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#),
            Err(StrictJsonError::Duplicate)
        );
        assert_eq!(
            parse_object(br#"{"x":{"roles":[],"roles":["admin"]}}"#),
            Err(StrictJsonError::Duplicate)
        );
        assert_eq!(
            parse_object(br#"{"x":[{"k":1,"k":1}]}"#),
            Err(StrictJsonError::Duplicate)
        );
        // Escaped forms of the same key are the same key.
        assert_eq!(
            parse_object(br#"{"sub":"a","s\u0075b":"b"}"#),
            Err(StrictJsonError::Duplicate)
        );
    }

    #[test]
    fn non_objects_trailing_data_and_deep_nesting_are_invalid() {
        for bad in [&b"[]"[..], b"1", b"\"s\"", b"{} {}", b"{", b"", b"nul"] {
            assert_eq!(parse_object(bad), Err(StrictJsonError::Invalid));
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(StrictJsonError::Invalid));
    }

    #[test]
    fn a_normal_object_parses_like_serde_json() {
        let text = br#"{"a":1,"b":[true,null,1.5,-3,"x"],"c":{"d":18446744073709551615}}"#;
        let ours = parse_object(text).unwrap();
        let theirs: Map<String, Value> = serde_json::from_slice(text).unwrap();
        assert_eq!(ours, theirs);
    }
}

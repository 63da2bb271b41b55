//! The strict check, against an independent oracle (serde_json with a strict visitor) on
//! generated and mutated texts, and reading members on demand.

use std::marker::PhantomData;

use proptest::prelude::*;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
use serde_json::Number;

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
fn values_under_escaped_names_follow_the_same_rules() {
    // A name with escapes is decoded; its value is checked and left as text like any other.
    assert_eq!(
        parse(br#"{"\u0078":{"r":1,"\u0072":2}}"#).err(),
        Some(StrictJsonError::Duplicate)
    );
    assert_eq!(
        parse(br#"{"\u0078":[{"k":1,"k":2}]}"#).err(),
        Some(StrictJsonError::Duplicate)
    );
    let nest = |depth: usize| format!("{{\"\\u0061\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    assert!(parse(nest(MAX_DEPTH).as_bytes()).is_ok());
    assert_eq!(
        parse(nest(MAX_DEPTH + 1).as_bytes()).err(),
        Some(StrictJsonError::Invalid)
    );
    let ok = parse(br#"{"\u0078":{"r":[1,"s"]}}"#).unwrap();
    assert!(matches!(ok.lookup("x"), Some(Found::Nested)));
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
        // Trailing commas and other slips between members, at the top and nested.
        b"{\"a\":1,}",
        b"{\"a\":[1,]}",
        b"{\"a\":{\"b\":1,}}",
        b"{,}",
        b"{\"a\" 1}",
        b"{\"a\":1 \"b\":2}",
        b"{\"a\"::1}",
        b"{\"a\":[1 2]}",
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
    assert!(matches!(ours.lookup("e"), Some(Found::Value(Value::String(s))) if s == "tab\tand é"));
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

/// What a strict parse of `bytes` should give, decided by serde_json with [`StrictValue`]:
/// its members, or why it is refused.
fn oracle(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| StrictJsonError::Invalid)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = de
        .deserialize_map(StrictValue { depth: 0 })
        .map_err(|e| classify(&e))?;
    de.end().map_err(|_| StrictJsonError::Invalid)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(StrictJsonError::Invalid),
    }
}

/// The scanner and the oracle give the same answer, and the same members when both accept.
fn agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    let ours = parse(bytes).map(StrictObject::into_map);
    let theirs = oracle(bytes);
    prop_assert_eq!(&ours, &theirs, "{}", String::from_utf8_lossy(bytes));
    Ok(())
}

/// Pieces of JSON, right and wrong, that generated texts are made of.
const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    " ",
    "\n",
    "\t",
    "\r",
    "\u{b}",
    "\"a\"",
    "\"b\"",
    "\"\\u0061\"",
    "\"\"",
    "\"a\\\"b\"",
    "\"\\\\\"",
    "\"é\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud83d\"",
    "\"\\ude00\"",
    "\"\\x\"",
    "\"\\u00g1\"",
    "\"\u{1}\"",
    "\"\u{7f}\"",
    "\"abcdefghijklmnopq\"",
    "\"",
    "\\",
    "0",
    "1",
    "-0",
    "-1",
    "01",
    "1.5",
    "1.",
    ".5",
    "1e5",
    "1E+2",
    "1e-2",
    "1e",
    "-",
    "+1",
    "1e400",
    "-1e400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "-9223372036854775809",
    "1234567890123456789",
    "12345678901234567890",
    "0.1e1",
    "true",
    "false",
    "null",
    "tru",
    "nul",
    "NaN",
    "Infinity",
    "x",
];

fn piece() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(PIECES)
}

/// A member name; a few are equal once decoded.
fn name() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(&["\"a\"", "\"b\"", "\"\\u0061\"", "\"c\"", "\"\""][..])
}

/// Usually nothing; sometimes a trailing comma or another slip before a container closes.
fn glitch() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        20 => Just(""),
        1 => Just(","),
        1 => Just(" , "),
        1 => Just(":"),
        1 => Just(",\"a\""),
        1 => Just(",\"a\":"),
    ]
}

/// A JSON value a few levels deep, from the same pieces, mostly right.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        piece().prop_filter("a value", |p| !matches!(
            *p,
            "{" | "}" | "[" | "]" | ":" | ","
        )),
        Just("\"k\""),
    ]
    .prop_map(str::to_owned);
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            (proptest::collection::vec(inner.clone(), 0..6), glitch())
                .prop_map(|(v, glitch)| format!("[{}{glitch}]", v.join(","))),
            (proptest::collection::vec((name(), inner), 0..5), glitch(),).prop_map(
                |(members, glitch)| {
                    let members: Vec<String> =
                        members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}{glitch}}}", members.join(","))
                }
            ),
        ]
    })
}

/// A payload shaped like a Keycloak access token's.
const TOKEN_PAYLOAD: &str = r#"{"exp":1764633600,"iat":1764633300,"jti":"onrtac:5b7c","iss":"http://127.0.0.1:8080/realms/agentcube","aud":["agentcube-api","account"],"sub":"9b1f2c3d","typ":"Bearer","azp":"agentcube-cli","sid":"0c2f","acr":"1","allowed-origins":["/*"],"realm_access":{"roles":["default-roles-agentcube","offline_access","sandbox:invoke"]},"resource_access":{"account":{"roles":["manage-account","view-profile"]}},"scope":"openid profile email","email_verified":true,"name":"Al\u00efce A","preferred_username":"alice","given_name":"Alïce","family_name":"A","email":"alice@example.com","ratio":-0.25,"n":null}"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_scanner_agrees_with_serde_json_on_generated_values(value in json_value()) {
        agrees(format!("{{\"v\":{value}}}").as_bytes())?;
        agrees(value.as_bytes())?;
    }

    #[test]
    fn the_scanner_agrees_with_serde_json_on_strings_of_pieces(
        pieces in proptest::collection::vec(piece(), 0..24),
    ) {
        agrees(pieces.concat().as_bytes())?;
        agrees(format!("{{\"v\":{}}}", pieces.concat()).as_bytes())?;
    }

    #[test]
    fn the_scanner_agrees_with_serde_json_on_mutated_tokens(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4),
    ) {
        let mut bytes = TOKEN_PAYLOAD.as_bytes().to_vec();
        for (at, kind, byte) in edits {
            let at = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => { bytes.remove(at); }
                _ if at < bytes.len() => bytes[at] = byte,
                _ => {}
            }
        }
        agrees(&bytes)?;
    }
}

#[test]
fn the_scanner_agrees_with_serde_json_on_a_token_payload() {
    agrees(TOKEN_PAYLOAD.as_bytes()).unwrap();
    assert!(parse(TOKEN_PAYLOAD.as_bytes()).is_ok());
}

#[test]
fn the_string_scan_stops_at_the_first_special_byte_of_a_word() {
    // Each special byte at each place in an eight-byte word, with and without a quote or a
    // control character after it in the same word (where the word test can mark a byte wrongly).
    for special in [b'"', b'\\', 0x00, 0x1f] {
        for at in 0..8 {
            let mut word = *b"abcdefgh";
            word[at] = special;
            for tail in [None, Some(b'"'), Some(0x01), Some(b' ')] {
                let mut w = word;
                if let (Some(t), true) = (tail, at + 1 < 8) {
                    w[7] = t;
                }
                let text = [b"{\"k\":\"".as_slice(), &w, b"xyz\"}".as_slice()].concat();
                agrees(&text).unwrap();
            }
        }
    }
}

/// The marker a duplicate carries through serde's error type.
const DUPLICATE: &str = "\u{0}duplicate member";

fn classify(err: &serde_json::Error) -> StrictJsonError {
    if err.to_string().starts_with(DUPLICATE) {
        StrictJsonError::Duplicate
    } else {
        StrictJsonError::Invalid
    }
}

fn number(v: f64) -> Value {
    // serde_json refuses numbers out of f64's range, so this is always finite.
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// A value built by serde_json while the strict rules are checked: the oracle.
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
            // Refused when the name is read, before its value, as the scanner does, so that a
            // text with a duplicate and a later error is classified alike.
            if map.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let value = access.next_value_seed(inner)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

/// What the checked-text reader gives for the value of member `v`, read as a [`Value`].
fn read_back(text: &str) -> Option<Value> {
    let object = parse(text.as_bytes()).ok()?;
    object
        .deserialize_member("v", PhantomData::<Value>, NestedReader::Checked)?
        .ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn the_checked_reader_reads_what_serde_json_reads(value in json_value()) {
        let text = format!("{{\"v\":{value},\"after\":1}}");
        let theirs = serde_json::from_str::<Map<String, Value>>(&text);
        if let (Ok(theirs), Ok(_)) = (theirs, parse(text.as_bytes())) {
            let ours = read_back(&text);
            prop_assert_eq!(ours.as_ref(), theirs.get("v"), "{}", text);
        }
    }
}

#[test]
fn the_checked_reader_skips_what_a_visitor_leaves_unread() {
    /// Reads the first element of an array and the first member of an object, no more.
    struct First;
    impl<'de> DeserializeSeed<'de> for First {
        type Value = Option<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for First {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("anything")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            Ok(seq.next_element::<Value>()?.map(|v| v.to_string()))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let Some(key) = map.next_key::<String>()? else {
                return Ok(None);
            };
            let value: Value = map.next_value()?;
            Ok(Some(format!("{key}={value}")))
        }
    }
    let text = r#"{"v":{"a":[1,{"x":"y"}],"b":{"c":[]},"d\u0041":"e"},"w":[[1,2],[3],"z"]}"#;
    let object = parse(text.as_bytes()).unwrap();
    assert_eq!(
        object
            .deserialize_member("v", First, NestedReader::Checked)
            .unwrap()
            .unwrap()
            .as_deref(),
        Some(r#"a=[1,{"x":"y"}]"#)
    );
    assert_eq!(
        object
            .deserialize_member("w", First, NestedReader::Checked)
            .unwrap()
            .unwrap()
            .as_deref(),
        Some("[1,2]")
    );
    // Nested: the outer reader goes on past an inner value left half read.
    #[derive(serde::Deserialize)]
    struct Outer {
        #[serde(rename = "w")]
        _w: IgnoredAny,
        v: Option<Value>,
        n: Option<u8>,
    }
    let object = parse(br#"{"o":{"w":[[1,2],{"k":[3]}],"v":{"dA":"e"},"n":null}}"#).unwrap();
    let outer: Outer = object
        .deserialize_member("o", PhantomData, NestedReader::Checked)
        .unwrap()
        .unwrap();
    assert_eq!(outer.v, Some(serde_json::json!({"dA": "e"})));
    assert_eq!(outer.n, None);
}

#[test]
fn every_member_is_found_by_name_however_many_there_are() {
    // Past 64 members names share index bits (chains); past 255 lookups scan.
    for count in [1, 2, 63, 64, 65, 255, 256, 500] {
        let members: Vec<String> = (0..count).map(|i| format!("\"claim_{i}\":{i}")).collect();
        let object = parse(format!("{{{}}}", members.join(",")).as_bytes()).unwrap();
        for i in 0..count {
            let found = object.lookup(&format!("claim_{i}"));
            assert!(
                matches!(found, Some(Found::Value(Value::Number(n))) if n.as_u64() == Some(i)),
                "{count} members, claim_{i}"
            );
        }
        for absent in ["claim_", "claim_x", "Claim_0", "", "claim_1000"] {
            assert!(object.lookup(absent).is_none(), "{count} members, {absent}");
        }
    }
}

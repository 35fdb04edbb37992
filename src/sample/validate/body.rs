//! A request body parsed in one pass into a small JSON tree that borrows its strings from the
//! body: no `String` per key or value unless it holds an escape.
//!
//! Objects behave as `serde_json::Map` does without `preserve_order`: keys iterate in sorted
//! order and a repeated key keeps its last value. Bodies that arrive sorted (as
//! `Sample::to_json` writes them) are never re-sorted.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// One JSON value of a request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object: its entries sorted by key, each key once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl<'a> Json<'a> {
    /// Parse a whole body; the error is serde_json's, naming line and column.
    pub fn from_slice(bytes: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }
}

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        // Objects are small (a sample has about a dozen fields): a scan beats a search.
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Sort by key, keeping the last value of a repeated key, unless already sorted.
    fn from_entries(mut entries: Vec<(Cow<'a, str>, Json<'a>)>) -> Object<'a> {
        if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
            // Stable, so the entries of one key stay in arrival order; keep the last of each.
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut kept: Vec<(Cow<'a, str>, Json<'a>)> = Vec::with_capacity(entries.len());
            for entry in entries {
                match kept.last_mut() {
                    Some(last) if last.0 == entry.0 => *last = entry,
                    _ => kept.push(entry),
                }
            }
            entries = kept;
        }
        Object { entries }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json<'de>, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// A key that borrows from the body when it has no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        deserializer.deserialize_str(StrVisitor).map(Key)
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
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

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json<'de>, E> {
        // JSON text has no NaN or infinity, so this is always a number.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::with_capacity(16);
        while let Some((Key(k), v)) = map.next_entry::<Key, Json>()? {
            entries.push((k, v));
        }
        Ok(Json::Object(Object::from_entries(entries)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Json<'_> {
        Json::from_slice(text.as_bytes()).expect("valid JSON")
    }

    #[test]
    fn given_plain_strings_when_parsed_then_keys_and_values_borrow_from_the_body() {
        let v = parse(r#"{"stream_id":"sw1/p1","n":1}"#);
        let obj = v.as_object().expect("object");
        assert!(matches!(
            obj.get("stream_id"),
            Some(Json::String(Cow::Borrowed("sw1/p1")))
        ));
        assert!(obj
            .entries
            .iter()
            .all(|(k, _)| matches!(k, Cow::Borrowed(_))));
    }

    #[test]
    fn given_escapes_when_parsed_then_strings_are_unescaped() {
        let v = parse(r#"{"a\u0062":"x\"y"}"#);
        assert_eq!(
            v.as_object().unwrap().get("ab").unwrap().as_str(),
            Some("x\"y")
        );
    }

    #[test]
    fn given_unsorted_and_repeated_keys_when_parsed_then_it_matches_serde_json_map() {
        let text = r#"{"z":1,"a":{"y":2,"b":3},"m":[1,-2,2.5,null,true],"a":{"q":"last"},"z":4}"#;
        let ours = parse(text);
        let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(to_value(&ours), theirs);
        let keys: Vec<&str> = ours.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a", "m", "z"]);
    }

    #[test]
    fn given_many_keys_in_any_order_when_looked_up_then_each_is_found_with_its_last_value() {
        let mut keys: Vec<String> = (0..200).map(|i| format!("k{i:03}")).collect();
        keys.reverse();
        let body = keys
            .iter()
            .map(|k| format!("\"{k}\":0,\"{k}\":\"{k}\""))
            .collect::<Vec<_>>()
            .join(",");
        let text = format!("{{{body}}}");
        let v = parse(&text);
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 200);
        for k in &keys {
            assert_eq!(obj.get(k).and_then(Json::as_str), Some(k.as_str()));
        }
        assert!(obj.get("k200").is_none());
    }

    #[test]
    fn given_numbers_when_parsed_then_they_print_as_serde_json_prints_them() {
        for text in [
            "0",
            "-1",
            "18446744073709551615",
            "1.5",
            "1e300",
            "-0.0",
            "2.0",
        ] {
            let ours = parse(text);
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            let Json::Number(n) = ours else {
                panic!("{text} is a number")
            };
            assert_eq!(n.to_string(), theirs.to_string(), "{text}");
        }
    }

    #[test]
    fn given_invalid_json_when_parsed_then_serde_jsons_error_is_returned() {
        let err = Json::from_slice(b"{\"a\":").unwrap_err();
        let theirs = serde_json::from_slice::<serde_json::Value>(b"{\"a\":").unwrap_err();
        assert_eq!(err.to_string(), theirs.to_string());
    }

    fn to_value(v: &Json) -> serde_json::Value {
        match v {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => (*b).into(),
            Json::Number(n) => serde_json::Value::Number(n.clone()),
            Json::String(s) => s.as_ref().into(),
            Json::Array(items) => items.iter().map(to_value).collect(),
            Json::Object(o) => o
                .iter()
                .map(|(k, v)| (k.to_string(), to_value(v)))
                .collect(),
        }
    }
}

//! JSON object keys as Go's encoding/json matches them to struct fields.
//!
//! Docker and the credential helpers it runs are Go programs, and encoding/json matches object
//! keys to fields without regard to case: `"Auths"`, `"AUTH"` and `"credsstore"` are docker's
//! `auths`, `auth` and `credsStore`. Reading config.json or a helper request by exact key would
//! miss credentials that docker sees. A key matches a field when both are equal once each
//! character is folded as Go's `foldName` folds it (Go 1.21 and later): ASCII letters to upper
//! case, any other character to upper(lower(c)) by Unicode's simple mappings. When several keys
//! of one object match a field, Go decodes each in document order: the last one wins, a `null`
//! leaves the field as it was, and an object decoded into a map Go already has merges into it.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// Whether Go's encoding/json decodes the object key `key` into the field named `field`.
/// `field` is ASCII, as every field name imgctl reads is.
pub(crate) fn key_matches(key: &str, field: &str) -> bool {
    debug_assert!(field.is_ascii(), "fold is exact only against ASCII field names");
    key.chars().map(fold).eq(field.chars().map(fold))
}

/// The value Go decodes into `field`: that of the last matching key whose value is not `null`.
pub(crate) fn field<'a>(object: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    object.iter().rev().find(|(key, value)| !value.is_null() && key_matches(key, field)).map(|(_, value)| value)
}

/// Whether any key of `object` matches `field`.
pub(crate) fn has_field(object: &Map<String, Value>, field: &str) -> bool {
    object.keys().any(|key| key_matches(key, field))
}

/// An object Go decodes into a struct (config.json's top level). A key repeated exactly, both
/// times with an object (`auths` twice, say), is decoded into the map Go already has: the
/// entries merge, a later one replacing an earlier one under the same key. serde_json would keep
/// the last object alone, and writing the document back would drop the entries of the first.
pub(crate) struct StructObject(pub(crate) Map<String, Value>);

impl<'de> Deserialize<'de> for StructObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StructObjectVisitor)
    }
}

struct StructObjectVisitor;

impl<'de> Visitor<'de> for StructObjectVisitor {
    type Value = StructObject;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StructObject, A::Error> {
        let mut object = Map::new();
        while let Some((key, value)) = map.next_entry::<String, Value>()? {
            match (object.get_mut(&key), value) {
                (Some(Value::Object(seen)), Value::Object(more)) => seen.extend(more),
                (_, value) => {
                    object.insert(key, value);
                }
            }
        }
        Ok(StructObject(object))
    }
}

/// Go's fold of one character, as far as it can meet an ASCII letter. Four non-ASCII
/// characters fold onto ASCII letters; every other one stays itself and so never matches.
fn fold(c: char) -> char {
    match c {
        // KELVIN SIGN: lower case k.
        '\u{212A}' => 'K',
        // LATIN SMALL LETTER LONG S: upper case S.
        '\u{017F}' => 'S',
        // LATIN CAPITAL LETTER I WITH DOT ABOVE (lower case i), LATIN SMALL LETTER DOTLESS I
        // (upper case I).
        '\u{0130}' | '\u{0131}' => 'I',
        c => c.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_fields_as_go_folds_them() {
        for key in ["auths", "Auths", "AUTHS", "aUtHs", "auth\u{017F}", "Auth\u{017F}"] {
            assert!(key_matches(key, "auths"), "{key}");
        }
        assert!(key_matches("identityto\u{212A}en", "identitytoken"));
        assert!(key_matches("\u{0130}dentitytoken", "identitytoken"));
        assert!(key_matches("\u{0131}dentitytoken", "identitytoken"));
        assert!(key_matches("CredsStore", "credsStore"));
        for key in ["auth", "authss", "auths ", "authß", "éauths", "", "äuths"] {
            assert!(!key_matches(key, "auths"), "{key}");
        }
    }

    #[test]
    fn the_last_non_null_matching_key_wins() {
        let object: Map<String, Value> =
            serde_json::from_str(r#"{"Auth":"first","other":"x","AUTH":"second","auth":null}"#).unwrap();
        assert_eq!(field(&object, "auth"), Some(&Value::String("second".into())));
        assert!(has_field(&object, "auth"));
        assert_eq!(field(&object, "username"), None);
        assert!(!has_field(&object, "username"));
    }
}

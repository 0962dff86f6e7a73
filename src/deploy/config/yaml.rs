//! A compose file's YAML as a JSON value: anchors and aliases expanded (the YAML parser does
//! that), merge keys (`<<: *base`, `<<: [*a, *b]`) applied as compose's YAML 1.1 loader
//! applies them, and scalar keys (`80:`, `true:`) written as strings.

use serde_json::{Map, Value};
use serde_norway::Value as Yaml;

/// Parses `text`; the error is the YAML parser's, with its line and column.
pub(super) fn parse(text: &str) -> Result<Value, String> {
    let yaml: Yaml = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    to_json(yaml)
}

/// Converts children first, so a mapping merged in through `<<` is already merged itself
/// (`b: &b {<<: *a}` then `c: {<<: *b}` gives `c` the keys of `a` too). The mapping's own keys
/// win over merged ones, and of several merged mappings the first wins (yaml.org/type/merge).
fn to_json(yaml: Yaml) -> Result<Value, String> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number(&n),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(list) => Value::Array(list.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Tagged(tagged) => to_json(tagged.value)?,
        Yaml::Mapping(mapping) => {
            let mut own = Map::new();
            let mut merged: Vec<Map<String, Value>> = Vec::new();
            for (key, value) in mapping {
                let key = key_text(key)?;
                let value = to_json(value)?;
                if key == "<<" {
                    match value {
                        Value::Object(map) => merged.push(map),
                        Value::Array(list) => {
                            for item in list {
                                match item {
                                    Value::Object(map) => merged.push(map),
                                    _ => return Err("a merge key (<<) takes a mapping or a list of mappings".into()),
                                }
                            }
                        }
                        _ => return Err("a merge key (<<) takes a mapping or a list of mappings".into()),
                    }
                } else {
                    own.insert(key, value);
                }
            }
            if merged.is_empty() {
                Value::Object(own)
            } else {
                let mut out = Map::new();
                for map in merged {
                    for (key, value) in map {
                        out.entry(key).or_insert(value);
                    }
                }
                // The mapping's own keys win, in the place YAML gave them.
                for (key, value) in own {
                    out.insert(key, value);
                }
                Value::Object(out)
            }
        }
    })
}

fn number(n: &serde_norway::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::from(i)
    } else if let Some(u) = n.as_u64() {
        Value::from(u)
    } else {
        n.as_f64().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or(Value::Null)
    }
}

fn key_text(key: Yaml) -> Result<String, String> {
    match key {
        Yaml::String(s) => Ok(s),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        Yaml::Null => Ok("null".into()),
        Yaml::Tagged(tagged) => key_text(tagged.value),
        Yaml::Sequence(_) | Yaml::Mapping(_) => Err("a mapping key is a list or a mapping".into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::parse;

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "
x-base: &base {restart: always, labels: {a: '1'}, image: base}
x-more: &more {image: more, user: nobody}
x-chain: &chain {<<: *base, stop_signal: SIGQUIT}
services:
  one: {<<: *base, image: own}
  two: {<<: [*more, *base]}
  three: {<<: *chain}
  four: {environment: *base}
";
        let v = parse(text).unwrap();
        let s = &v["services"];
        assert_eq!(s["one"], json!({"restart": "always", "labels": {"a": "1"}, "image": "own"}), "own keys win");
        assert_eq!(s["two"]["image"], "more", "the first merged mapping wins");
        assert_eq!(s["two"]["restart"], "always");
        assert_eq!(s["three"]["restart"], "always", "a merged mapping is merged itself first");
        assert_eq!(s["three"]["stop_signal"], "SIGQUIT");
        assert_eq!(s["four"]["environment"]["image"], "base", "an alias is a copy");
        assert!(s["one"].get("<<").is_none());
    }

    #[test]
    fn an_alias_bomb_is_refused_not_expanded() {
        // Nine levels of nine aliases: 9^9 strings if expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let started = std::time::Instant::now();
        let error = parse(&text).unwrap_err();
        assert!(error.contains("repetition limit"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep).unwrap_err().contains("recursion limit"));
    }

    #[test]
    fn scalar_keys_become_strings_and_bad_merges_are_refused() {
        assert_eq!(parse("{80: a, true: b}").unwrap(), json!({"80": "a", "true": "b"}));
        assert!(parse("{<<: 1}").unwrap_err().contains("merge key"));
        assert!(parse("services: [").unwrap_err().contains("line"));
    }
}

//! Compose's variable substitution: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
//! `${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}` and `$$` for a literal `$`.
//!
//! `:` makes an empty value count as unset. Defaults, alternatives and messages are themselves
//! interpolated (`${A:-${B}}`), as compose v2 does; docker-compose 1.29 ends a braced
//! expression at its first `}` and knows neither `:+` nor `+`.

use std::collections::BTreeMap;

/// A substitution that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${VAR:?message}` or `${VAR?message}` with the variable unset (or empty, with `:`).
    #[error("{message}")]
    Required {
        /// The variable.
        variable: String,
        /// The message the file gives, else the variable's name.
        message: String,
    },
    /// A `$` that starts no substitution (`$1`, `${`, `${A B}`); `$$` writes a `$`.
    #[error("invalid interpolation in {text:?} (write $$ for a literal $)")]
    Invalid {
        /// The whole string.
        text: String,
    },
}

/// What a substitution reads: the variables, and the names found unset (compose warns of them
/// and substitutes an empty string).
pub(super) struct Variables<'a> {
    /// The variables by name.
    pub values: &'a BTreeMap<String, String>,
    /// Names read while unset, in the order met.
    pub unset: Vec<String>,
    /// How deep in nested defaults (`${A:-${B:-...}}`) the substitution is.
    depth: usize,
}

/// Nested defaults deeper than this are refused: a file of ten thousand `${A:-` would
/// otherwise recurse as deep.
const MAX_NESTING: usize = 16;

impl<'a> Variables<'a> {
    pub fn new(values: &'a BTreeMap<String, String>) -> Self {
        Self { values, unset: Vec::new(), depth: 0 }
    }

    fn get(&mut self, name: &str) -> Option<&'a str> {
        self.values.get(name).map(String::as_str)
    }

    fn plain(&mut self, name: &str) -> &'a str {
        match self.get(name) {
            Some(value) => value,
            None => {
                if !self.unset.iter().any(|n| n == name) {
                    self.unset.push(name.to_owned());
                }
                ""
            }
        }
    }
}

/// Substitutes every variable of `text`.
pub(super) fn interpolate(text: &str, vars: &mut Variables) -> Result<String, InterpolationError> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let invalid = || InterpolationError::Invalid { text: text.to_owned() };
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = rest.strip_prefix('{') {
            let end = closing_brace(inner).ok_or_else(invalid)?;
            out.push_str(&braced(&inner[..end], vars).map_err(|e| e.unwrap_or_else(invalid))?);
            rest = &inner[end + 1..];
        } else {
            let len = name_len(rest);
            if len == 0 {
                return Err(invalid());
            }
            out.push_str(vars.plain(&rest[..len]));
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The length of the variable name `text` starts with (`[_A-Za-z][_A-Za-z0-9]*`), 0 if none.
fn name_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if !bytes.first().is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
        return 0;
    }
    bytes.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count()
}

/// Where the `}` closing a `${` is, counting nested `${...}`.
fn closing_brace(inner: &str) -> Option<usize> {
    let bytes = inner.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// `NAME`, or `NAME` then an operator and a word; `Err(None)` for a malformed expression.
fn braced(inner: &str, vars: &mut Variables) -> Result<String, Option<InterpolationError>> {
    let len = name_len(inner);
    if len == 0 {
        return Err(None);
    }
    let (name, rest) = inner.split_at(len);
    if rest.is_empty() {
        return Ok(vars.plain(name).to_owned());
    }
    let (colon, rest) = match rest.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let mut chars = rest.chars();
    let operator = chars.next().ok_or(None)?;
    let word = chars.as_str();
    let value = vars.get(name);
    // With `:`, an empty value counts as unset.
    let set = value.is_some_and(|v| !colon || !v.is_empty());
    let expand = |word: &str, vars: &mut Variables| {
        if vars.depth >= MAX_NESTING {
            return Err(None);
        }
        vars.depth += 1;
        let expanded = interpolate(word, vars).map_err(Some);
        vars.depth -= 1;
        expanded
    };
    match operator {
        '-' if set => Ok(value.unwrap_or_default().to_owned()),
        '-' => expand(word, vars),
        '+' if set => expand(word, vars),
        '+' => Ok(String::new()),
        '?' if set => Ok(value.unwrap_or_default().to_owned()),
        '?' => {
            let message = expand(word, vars)?;
            let message = if message.is_empty() {
                format!("{name} is {}", if colon { "unset or empty" } else { "unset" })
            } else {
                message
            };
            Err(Some(InterpolationError::Required { variable: name.to_owned(), message }))
        }
        _ => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("SET", "value"), ("EMPTY", ""), ("REG", "127.0.0.1:5000"), ("_U1", "u")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn every_form() {
        let env = env();
        let cases = [
            ("plain", "plain"),
            ("$SET", "value"),
            ("${SET}", "value"),
            ("a${SET}b$SET-c", "avaluebvalue-c"),
            ("$_U1.x", "u.x"),
            ("$$SET", "$SET"),
            ("$${SET}", "${SET}"),
            ("cost: 5$$", "cost: 5$"),
            ("${UNSET}", ""),
            ("$UNSET", ""),
            ("${SET:-d}", "value"),
            ("${EMPTY:-d}", "d"),
            ("${UNSET:-d}", "d"),
            ("${SET-d}", "value"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${UNSET:+alt}", ""),
            ("${SET+alt}", "alt"),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${SET:?m}", "value"),
            ("${EMPTY?m}", ""),
            ("${UNSET:-${REG}/web}", "127.0.0.1:5000/web"),
            ("${UNSET:-a:b-c}", "a:b-c"),
            ("${REG:-127.0.0.1:5000}/team/web:${TAG:-latest}", "127.0.0.1:5000/team/web:latest"),
            ("${UNSET:-}", ""),
        ];
        for (text, expected) in cases {
            let mut vars = Variables::new(&env);
            assert_eq!(interpolate(text, &mut vars).as_deref(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn unset_variables_are_collected_once() {
        let env = env();
        let mut vars = Variables::new(&env);
        interpolate("$A ${A} ${B:-x} ${C-x} ${SET}", &mut vars).unwrap();
        assert_eq!(vars.unset, ["A"], "a default is no warning");
    }

    #[test]
    fn required_and_invalid() {
        let env = env();
        let run = |text: &str| interpolate(text, &mut Variables::new(&env));
        let required = |variable: &str, message: &str| {
            Err(InterpolationError::Required { variable: variable.into(), message: message.into() })
        };
        assert_eq!(run("${UNSET:?set UNSET to the tag}"), required("UNSET", "set UNSET to the tag"));
        assert_eq!(run("${EMPTY:?need it}"), required("EMPTY", "need it"));
        assert_eq!(run("${UNSET?}"), required("UNSET", "UNSET is unset"));
        assert_eq!(run("${EMPTY:?}"), required("EMPTY", "EMPTY is unset or empty"));
        assert_eq!(run("${UNSET?need ${SET}}"), required("UNSET", "need value"));
        let deep = format!("{}x{}", "${UNSET:-".repeat(10_000), "}".repeat(10_000));
        assert!(matches!(run(&deep), Err(InterpolationError::Invalid { .. })), "too deep");
        let fine = format!("{}x{}", "${UNSET:-".repeat(16), "}".repeat(16));
        assert_eq!(run(&fine).as_deref(), Ok("x"));
        for text in ["$", "a $1", "${", "${SET", "${}", "${A B}", "${SET:}", "${SET*x}", "${1}", "$ {A}"] {
            assert_eq!(run(text), Err(InterpolationError::Invalid { text: text.into() }), "{text}");
        }
    }
}

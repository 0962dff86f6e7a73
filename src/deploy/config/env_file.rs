//! Env files (`env_file:`, the project's `.env`, `--env-file`), in the syntax docker-compose
//! 1.29 reads through python-dotenv: `KEY=VALUE` lines, blank lines and `#` comments skipped,
//! an optional `export `, values unquoted (a ` #` starts a comment, trailing blanks dropped),
//! in single quotes (literal) or in double quotes (`\n`, `\t`, `\"`, `\\`... decoded; may span
//! lines). A line `KEY` without `=` takes KEY from the environment.
//!
//! Values are interpolated in their braced forms only (`${VAR}`, `${VAR:-default}`, ...),
//! looking first at the keys above in the same file, then at the environment. A bare `$VAR`
//! stays as written, as in 1.29 (compose v2 expands it: a password `pa$word` would lose its
//! tail there); single-quoted values are never interpolated (as in v2; python-dotenv 0.21
//! interpolates them too). A line that is not a binding is refused with its number: dotenv
//! skips it with a warning, and a skipped variable would go missing without a word.

use std::collections::BTreeMap;

use super::interpolate::{InterpolationError, Variables, interpolate};

/// One `KEY=VALUE` line; `None`: `KEY` alone.
pub(super) type Binding = (String, Option<String>);

/// An env file that cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvFileError {
    /// A line that is not `KEY=VALUE`, `KEY`, blank or a comment.
    #[error("line {line}: not KEY=VALUE")]
    Syntax {
        /// 1-based.
        line: usize,
    },
    /// A quote that is never closed.
    #[error("line {line}: the quote opened here is never closed")]
    Unclosed {
        /// 1-based.
        line: usize,
    },
    /// `${VAR:?message}` with VAR unset.
    #[error("line {line}: {source}")]
    Interpolation {
        /// 1-based.
        line: usize,
        /// What failed.
        source: InterpolationError,
    },
}

/// Parses and interpolates `text` against `environment`.
pub(super) fn parse(text: &str, environment: &BTreeMap<String, String>) -> Result<Vec<Binding>, EnvFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut bindings: Vec<Binding> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut rest = text;
    let mut line = 1;
    while !rest.is_empty() {
        let (statement, next) = statement(rest, line)?;
        line += rest[..rest.len() - next.len()].matches('\n').count();
        rest = next;
        let Some((key, value, quoted, start_line)) = statement else { continue };
        let value = match value {
            Some(value) if quoted != Some('\'') => Some(
                expand_braced(&value, &seen, environment)
                    .map_err(|source| EnvFileError::Interpolation { line: start_line, source })?,
            ),
            other => other,
        };
        if let Some(v) = &value {
            seen.insert(key.clone(), v.clone());
        }
        bindings.retain(|(k, _)| *k != key);
        bindings.push((key, value));
    }
    Ok(bindings)
}

/// The key, its value, the quote it was written in, its line.
type Statement = Option<(String, Option<String>, Option<char>, usize)>;

/// One statement from the start of `text`: `None` for a blank or comment line; and what
/// follows it.
fn statement(text: &str, line: usize) -> Result<(Statement, &str), EnvFileError> {
    let after_blank = text.trim_start_matches([' ', '\t', '\r', '\n']);
    let skipped_lines = text[..text.len() - after_blank.len()].matches('\n').count();
    let line = line + skipped_lines;
    let mut rest = after_blank;
    if rest.is_empty() {
        return Ok((None, rest));
    }
    if rest.starts_with('#') {
        return Ok((None, rest.split_once('\n').map_or("", |(_, r)| r)));
    }
    if let Some(after) = rest.strip_prefix("export")
        && after.starts_with([' ', '\t'])
    {
        rest = after.trim_start_matches([' ', '\t']);
    }
    let key_len = rest.find(|c: char| c == '=' || c == '#' || c.is_whitespace()).unwrap_or(rest.len());
    if key_len == 0 {
        return Err(EnvFileError::Syntax { line });
    }
    let key = rest[..key_len].to_owned();
    rest = rest[key_len..].trim_start_matches([' ', '\t']);
    let (value, quoted) = if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start_matches([' ', '\t']);
        match rest.chars().next() {
            Some(q @ ('\'' | '"')) => {
                let (value, after) = quoted_value(&rest[1..], q).ok_or(EnvFileError::Unclosed { line })?;
                rest = after;
                (Some(value), Some(q))
            }
            _ => {
                let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
                let raw = &rest[..end];
                rest = &rest[end..];
                // ` #` (after a blank) starts a comment; `a#b` is a value.
                let value = match raw.find([' ', '\t']).and_then(|_| comment_start(raw)) {
                    Some(at) => &raw[..at],
                    None => raw,
                };
                return Ok((Some((key, Some(value.trim_end().to_owned()), None, line)), rest));
            }
        }
    } else {
        (None, None)
    };
    // After the value (or the bare key): blanks, an optional comment, the end of the line.
    let rest = rest.trim_start_matches([' ', '\t']);
    let end = rest.find('\n').map_or(rest.len(), |at| at + 1);
    let tail = rest[..end].trim_end_matches(['\r', '\n']);
    if !tail.is_empty() && !tail.starts_with('#') {
        return Err(EnvFileError::Syntax { line });
    }
    Ok((Some((key, value, quoted, line)), &rest[end..]))
}

/// Where a ` #` comment starts in an unquoted value.
fn comment_start(raw: &str) -> Option<usize> {
    let bytes = raw.as_bytes();
    (1..bytes.len()).find(|&i| bytes[i] == b'#' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t')).map(|i| {
        // The blanks before the `#` go with the comment.
        raw[..i].trim_end_matches([' ', '\t']).len()
    })
}

/// The value inside quotes `q` (the opening one already read), escapes decoded, and what
/// follows the closing quote.
fn quoted_value(text: &str, q: char) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == q => return Some((value, &text[i + 1..])),
            '\\' => {
                let next = text[i + 1..].chars().next();
                let decoded = match (q, next) {
                    ('\'', Some(c @ ('\\' | '\''))) => Some(c),
                    ('"', Some(c @ ('\\' | '\'' | '"'))) => Some(c),
                    ('"', Some('a')) => Some('\u{7}'),
                    ('"', Some('b')) => Some('\u{8}'),
                    ('"', Some('f')) => Some('\u{c}'),
                    ('"', Some('n')) => Some('\n'),
                    ('"', Some('r')) => Some('\r'),
                    ('"', Some('t')) => Some('\t'),
                    ('"', Some('v')) => Some('\u{b}'),
                    _ => None,
                };
                match decoded {
                    Some(c) => {
                        value.push(c);
                        chars.next();
                    }
                    None => value.push('\\'),
                }
            }
            c => value.push(c),
        }
    }
    None
}

/// Expands each `${...}` of `value`; every other `$` stays as written.
fn expand_braced(
    value: &str,
    seen: &BTreeMap<String, String>,
    environment: &BTreeMap<String, String>,
) -> Result<String, InterpolationError> {
    if !value.contains("${") {
        return Ok(value.to_owned());
    }
    // The file's own keys above win over the environment.
    let mut lookup = environment.clone();
    lookup.extend(seen.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut vars = Variables::new(&lookup);
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let candidate = &rest[at..];
        match candidate.find('}') {
            Some(end) => {
                // Interpolating `$$` would write `$`: only the braced expression is handed over.
                let expression = &candidate[..=end];
                match interpolate(expression, &mut vars) {
                    Ok(expanded) => out.push_str(&expanded),
                    Err(InterpolationError::Invalid { .. }) => out.push_str(expression),
                    Err(required) => return Err(required),
                }
                rest = &candidate[end + 1..];
            }
            None => {
                out.push_str(candidate);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("HOME".to_owned(), "/root".to_owned()), ("B".to_owned(), "shell".to_owned())].into()
    }

    #[test]
    fn dotenv_syntax() {
        let text = "\u{feff}# a comment\n\nexport E1=one\nE2=\"two words\"\nE3='single ${HOME} $x'\nE4=${B:-dflt}\nE5=val # a comment\nE6=a#b\n  E7 = spaced  \nE8=\"multi\nline\\t\\\"q\\\"\"\nE9=\nBARE\nE10=${E1}-${NOPE:-x}-$HOME\nE11='it\\'s'\nE12=\"x\" # after\nE1=again\nE13=pa$1word\r\n";
        let got = parse(text, &env()).unwrap();
        let expected: Vec<Binding> = [
            ("E2", Some("two words")),
            ("E3", Some("single ${HOME} $x")),
            ("E4", Some("shell")),
            ("E5", Some("val")),
            ("E6", Some("a#b")),
            ("E7", Some("spaced")),
            ("E8", Some("multi\nline\t\"q\"")),
            ("E9", Some("")),
            ("BARE", None),
            ("E10", Some("one-x-$HOME")),
            ("E11", Some("it's")),
            ("E12", Some("x")),
            ("E1", Some("again")),
            ("E13", Some("pa$1word")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn refusals_name_the_line() {
        assert_eq!(parse("A=1\n=2\n", &env()), Err(EnvFileError::Syntax { line: 2 }));
        assert_eq!(parse("A=1\n\nB=\"open\n", &env()), Err(EnvFileError::Unclosed { line: 3 }));
        assert_eq!(parse("A=\"x\" y\n", &env()), Err(EnvFileError::Syntax { line: 1 }));
        assert_eq!(parse("A B=1\n", &env()), Err(EnvFileError::Syntax { line: 1 }));
        let required = parse("A=1\nT=${TAG:?set TAG}\n", &env()).unwrap_err();
        assert_eq!(required.to_string(), "line 2: set TAG");
    }
}

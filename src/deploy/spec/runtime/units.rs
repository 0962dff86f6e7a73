//! Sizes and CPUs as compose reads them, in exact integer arithmetic.

use serde_json::Value;

/// A size in bytes as compose reads it: a number of bytes, or a number (with a fraction) and a
/// binary unit `b`, `k`, `m`, `g`, `t`, `p`, with an optional `i` and `b` (`512m`, `1.5G`,
/// `64MiB`, `100kb`). Fractions of a byte are dropped, as both compose implementations do.
pub(super) fn size(value: &Value) -> Result<i64, String> {
    let text = match value {
        Value::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => return Ok(n.as_i64().unwrap_or_default()),
        Value::String(s) => s.trim(),
        _ => return Err("a size like 512m, 1g or a number of bytes".into()),
    };
    let bad = || format!("{text:?} is not a size (like 64m, 1.5g, 512MiB or a number of bytes)");
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').filter(|u| !u.is_empty()).unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return Err(bad()),
    };
    let (digits, scale) = decimal(number).ok_or_else(bad)?;
    let bytes =
        digits.checked_mul(1u128 << (10 * power)).ok_or_else(bad)? / 10u128.checked_pow(scale).ok_or_else(bad)?;
    i64::try_from(bytes).map_err(|_| bad())
}

/// CPUs as nano-CPUs, exactly: `1.5` (or `"1.5"`) is 1 500 000 000.
pub(super) fn cpus(value: &Value) -> Result<i64, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return Err("a number of CPUs, like 0.5 or 2".into()),
    };
    let (digits, scale) = expanded(&text).ok_or_else(|| format!("{text:?} is not a number of CPUs (like 0.5 or 2)"))?;
    if scale > 9 {
        return Err(format!("{text:?} has more than nine decimals"));
    }
    let too_many = || format!("{text:?} is too many CPUs");
    let nanos = digits.checked_mul(10u128.pow(9 - scale)).ok_or_else(too_many)?;
    i64::try_from(nanos).map_err(|_| too_many())
}

/// `I.F` as (IF, the number of decimals); no sign, no exponent.
fn decimal(text: &str) -> Option<(u128, u32)> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = format!("{int}{frac}").trim_start_matches('0').to_owned();
    let value = if digits.is_empty() { 0 } else { digits.parse().ok()? };
    Some((value, u32::try_from(frac.len()).ok()?))
}

/// [`decimal`] with an optional exponent (`1e-9`, what a YAML float may print as).
fn expanded(text: &str) -> Option<(u128, u32)> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (digits, scale) = decimal(mantissa)?;
    let scale = i64::from(scale) - i64::from(exponent);
    if scale >= 0 {
        Some((digits, u32::try_from(scale).ok()?))
    } else {
        Some((digits.checked_mul(10u128.checked_pow(u32::try_from(-scale).ok()?)?)?, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_compose_reads_them() {
        let ok: [(&str, i64); 14] = [
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("512mb", 512 << 20),
            ("512MiB", 512 << 20),
            ("1g", 1 << 30),
            ("1G", 1 << 30),
            ("1.5g", 3 << 29),
            ("64k", 64 << 10),
            ("100b", 100),
            ("1073741824", 1 << 30),
            ("'1073741824'", 1 << 30),
            ("2 t", 2 << 40),
            ("0", 0),
            ("0.5k", 512),
        ];
        for (yaml, bytes) in ok {
            let value: Value = serde_norway::from_str(yaml).unwrap();
            assert_eq!(size(&value), Ok(bytes), "{yaml}");
        }
        for yaml in [
            "-1",
            "1.5",
            "'12x'",
            "'m'",
            "''",
            "'1.2.3m'",
            "'512 mib b'",
            "[1]",
            "true",
            "'1e3'",
            "'99999999999p'",
            "'0.00000000000000000000000000000000000000001g'",
        ] {
            let value: Value = serde_norway::from_str(yaml).unwrap();
            assert!(size(&value).is_err(), "{yaml} taken as {:?}", size(&value));
        }
    }

    #[test]
    fn cpus_are_exact_nano_cpus() {
        let ok: [(&str, i64); 8] = [
            ("1.5", 1_500_000_000),
            ("'1.5'", 1_500_000_000),
            ("0.1", 100_000_000),
            ("2", 2_000_000_000),
            ("0.000000001", 1),
            ("'0.333333333'", 333_333_333),
            ("'.5'", 500_000_000),
            ("1e-3", 1_000_000),
        ];
        for (yaml, nanos) in ok {
            let value: Value = serde_norway::from_str(yaml).unwrap();
            assert_eq!(cpus(&value), Ok(nanos), "{yaml}");
        }
        for yaml in ["'0.0000000001'", "-1", "'one'", "[1]", "'1,5'", "'3e30'", "'1e400'", "'9e-400'"] {
            let value: Value = serde_norway::from_str(yaml).unwrap();
            assert!(cpus(&value).is_err(), "{yaml} taken as {:?}", cpus(&value));
        }
        let value: Value = serde_norway::from_str("'0.0000000001'").unwrap();
        assert!(cpus(&value).unwrap_err().contains("more than nine decimals"));
    }
}

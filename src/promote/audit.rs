//! The audit log: one JSON line per promoted edge, appended and synced before the promotion is
//! reported done.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::PromotionResult;
use crate::jsonl::{self, JsonlError};

/// One audit record.
#[derive(Debug, Serialize)]
pub struct AuditRecord<'a> {
    /// When (UTC, RFC 3339).
    pub time: String,
    /// Who: `IMGCTL_ACTOR`, else the CI's user variable, else `USER`.
    pub actor: String,
    /// The source as given.
    pub source: &'a str,
    /// The digest promoted.
    pub digest: &'a str,
    /// The destination repository.
    pub destination: &'a str,
    /// The tags now pointing at the digest.
    pub tags: Vec<&'a str>,
    /// The media type.
    pub media_type: &'a str,
    /// The signature made at the destination (`--sign-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<AuditSignature<'a>>,
}

/// The signature an audit record names.
#[derive(Debug, Serialize)]
pub struct AuditSignature<'a> {
    /// `classic` or `bundle`.
    pub layout: &'static str,
    /// Where it is (`repo:sha256-<hex>.sig`, or the referrer `repo@sha256:...`).
    pub signature: &'a str,
    /// sha256 of the signing key's SubjectPublicKeyInfo.
    pub key_fingerprint: &'a str,
}

/// Who is promoting, from the environment.
pub fn actor() -> String {
    ["IMGCTL_ACTOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILDKITE_BUILD_CREATOR", "USER"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Appends the record of `result` to the log at `path` (created 0600, parents 0700, its
/// directory private to this user) and syncs it; see [`crate::jsonl`].
pub fn append(path: &Path, result: &PromotionResult, actor: &str, now: SystemTime) -> Result<(), JsonlError> {
    let record = AuditRecord {
        time: rfc3339(now),
        actor: actor.to_owned(),
        source: &result.source,
        digest: result.digest.as_str(),
        destination: &result.destination,
        tags: result.tags.iter().map(|t| t.tag.as_str()).collect(),
        media_type: &result.media_type,
        signature: result.signed.as_ref().map(|s| AuditSignature {
            layout: s.layout.as_str(),
            signature: &s.signature,
            key_fingerprint: s.key_fingerprint.as_str(),
        }),
    };
    jsonl::append(path, &record)
}

/// `2026-11-22T05:22:54Z`
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_324_974)), "2026-11-22T05:22:54Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }
}

//! The compose values that end up inside nginx's configuration (the upstream's name, the host
//! replicas are reached at, the service name that container and swarm service names are made
//! of), and the rules that keep each one a single token there.
//!
//! nginx's configuration has no quoting imgctl could rely on: a `;`, `{`, `}`, `#` or a line
//! break inside a value would end the directive and let the rest be read as new directives
//! (a whole `server {}` block passes `nginx -t`). So these values are checked when the compose
//! file is read, and refused unless they are plain names.

use std::net::IpAddr;

/// What a compose service name may be: compose's own rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub const SERVICE_RULE: &str = "a letter or digit, then letters, digits, '_', '.' or '-' (compose's rule)";

/// What an nginx upstream name may be.
pub const UPSTREAM_RULE: &str = "letters, digits, '_', '.' or '-'";

/// What the proxy's host may be.
pub const HOST_RULE: &str = "an IP address or a DNS name (letters, digits, '-', '_' and dots)";

/// Whether `name` is a compose service name.
pub fn is_service_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(is_name_char)
}

/// Whether `name` can stand as an nginx upstream name.
pub fn is_upstream_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_name_char)
}

/// Whether `host` is an IP literal or a DNS name. Underscores are let through: Docker network
/// aliases use them and nginx resolves them like any name.
pub fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    host.len() <= 253 && host.split('.').all(label_ok)
}

/// `host:port` as nginx's `server` directive takes it (an IPv6 address in brackets).
pub fn host_port(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_break_out_of_an_nginx_directive_are_refused() {
        for good in ["web", "web_upstream", "api.v2", "a-b", "0web"] {
            assert!(is_service_name(good) && is_upstream_name(good), "{good}");
        }
        for bad in ["", "web;", "web {", "web}", "web#", "web\nserver", "a b", "web\t", "wéb"] {
            assert!(!is_upstream_name(bad), "{bad:?}");
            assert!(!is_service_name(bad), "{bad:?}");
        }
        assert!(!is_service_name("-web") && !is_service_name("_web") && !is_service_name(".web"));

        for good in ["127.0.0.1", "::1", "fd00::2", "proxy", "tasks.web", "host-1.example.com", "my_proxy"] {
            assert!(is_host(good), "{good}");
        }
        for bad in ["", "127.0.0.1;", "a..b", "-a", "a-", "a b", "h:80", "h\n", "[::1]", "a/b", &"a".repeat(64)] {
            assert!(!is_host(bad), "{bad:?}");
        }
        assert_eq!(host_port("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("proxy", 80), "proxy:80");
    }
}

//! `x-imgctl.host_ports`: the fixed host ports of the replicas, a range.

/// Host ports the replicas publish their port on (`x-imgctl.host_ports: 18080-18095`),
/// instead of ports the engine picks: docker keeps an explicit host port across restarts, so
/// a restarted replica keeps its address and the proxy still reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (included).
    pub last: u16,
}

impl PortRange {
    /// How many ports it holds.
    pub fn count(self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    /// Its ports, in order.
    pub fn ports(self) -> std::ops::RangeInclusive<u16> {
        self.first..=self.last
    }

    pub(super) fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("host_ports: {text:?} is not a port range (like 18080-18095)");
        let (first, last) = text.split_once('-').unwrap_or((text, text));
        let port = |p: &str| p.trim().parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(bad);
        let (first, last) = (port(first)?, port(last)?);
        if first > last {
            return Err(bad());
        }
        Ok(Self { first, last })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::deploy::spec::parse;

    #[test]
    fn host_ports_are_a_range_that_holds_both_colors() {
        let yaml = |ports: &str, replicas: u32| {
            format!(
                "services:\n  web:\n    image: r/web\n    expose: [8080]\n    deploy: {{replicas: {replicas}}}\n    x-imgctl: {{proxy: {{upstream_file: u}}, health: {{path: /h}}, host_ports: {ports}}}\n"
            )
        };
        let spec = parse(&yaml("18080-18083", 2), Path::new("compose.yaml"), "web").unwrap();
        assert_eq!(spec.settings.host_ports, Some(super::PortRange { first: 18080, last: 18083 }));
        let error = |ports: &str, replicas| {
            parse(&yaml(ports, replicas), Path::new("compose.yaml"), "web").unwrap_err().to_string()
        };
        assert!(
            error("18080-18082", 2)
                .contains("host_ports 18080-18082 holds 3 port(s), and both colors of 2 replica(s) need 4")
        );
        assert!(error("18080", 1).contains("holds 1 port(s)"));
        for bad in ["18083-18080", "0-3", "a-b", "18080-70000", "'18080-'"] {
            assert!(error(bad, 1).contains("is not a port range"), "{bad}: {}", error(bad, 1));
        }
    }
}

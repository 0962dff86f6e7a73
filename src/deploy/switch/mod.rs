//! Where requests go. A [`TrafficSwitch`] applies a [`Traffic`] (backends with weights, and
//! the deploy state that travels with them) in one atomic step, and reads it back. nginx
//! ([`super::nginx`]: file, test, reload) and HAProxy ([`haproxy`]: runtime API, never a
//! reload); a service without a proxy (swarm's own rolling update) has [`AnySwitch::None`],
//! not an empty path.

pub mod haproxy;

use std::time::Duration;

use super::child_env::ChildEnv;
use super::model::Traffic;
use super::nginx::{self, ProxyError};
use super::spec::{HaproxySettings, ProxySettings, ServiceSpec};
use haproxy::HaproxyError;

/// A switch failed; it left traffic where it was.
#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    /// nginx's upstream file, test or reload.
    #[error(transparent)]
    Nginx(#[from] ProxyError),
    /// haproxy's stats socket or the switch's state file.
    #[error(transparent)]
    Haproxy(#[from] HaproxyError),
    /// The service has no switch (swarm's own rolling update) to send traffic with.
    #[error("{0} has no traffic switch (x-imgctl.proxy): imgctl moves no traffic for it")]
    NoSwitch(String),
}

impl SwitchError {
    /// What the proxy's commands printed (nginx's test or reload), for the person watching;
    /// empty when they printed nothing or none ran.
    pub fn output(&self) -> &str {
        match self {
            Self::Nginx(e) => e.output(),
            Self::Haproxy(_) | Self::NoSwitch(_) => "",
        }
    }
}

/// A way to move traffic.
pub trait TrafficSwitch {
    /// The state it holds (`None`: never applied).
    fn read(&self) -> Result<Option<Traffic>, SwitchError>;
    /// Sends traffic where `traffic` says, atomically with its state; on failure traffic
    /// stays where it was. Returns how long the switch itself took.
    fn apply(&self, traffic: &Traffic) -> Result<Duration, SwitchError>;
    /// Has the proxy load the state as it is (an earlier run died between writing it and
    /// loading it; haproxy restarted and forgot it).
    fn reload(&self) -> Result<(), SwitchError>;
    /// What applying does, in words (`--dry-run`).
    fn describe(&self) -> String;
    /// The sessions the proxy has open to the servers at `addrs`, as it counts them itself
    /// (`None`: it keeps no count it can give, as nginx; the target counts them then).
    ///
    /// The proxy's own count is asked first because it is exact where the target's is not:
    /// haproxy's `scur` counts requests in flight, while connections counted on a replica
    /// include idle ones the proxy keeps pooled for reuse.
    fn open_sessions(&self, addrs: &[String]) -> Result<Option<u32>, SwitchError>;
    /// How long after a switch the proxy may still open new connections to servers it
    /// left: a drain trusts "no connection open" only once it has lasted that long.
    fn settle(&self) -> Duration;
}

/// nginx's reload is asynchronous: `nginx -s reload` returns once the master is signalled,
/// and the old workers, with the old upstream, keep accepting until the new ones are up.
const NGINX_SETTLE: Duration = Duration::from_secs(1);

/// The switch of a service.
pub enum AnySwitch<'a> {
    /// nginx, by upstream file, test and reload.
    Nginx {
        /// The switch.
        switch: nginx::Switch<'a>,
        /// Its settings, for words.
        settings: &'a ProxySettings,
    },
    /// haproxy, by its runtime API over the stats socket.
    Haproxy {
        /// The switch.
        switch: haproxy::Switch<'a>,
        /// Its settings, for words.
        settings: &'a HaproxySettings,
    },
    /// No proxy: the service's target moves traffic itself (or it serves none).
    None {
        /// The service.
        service: String,
    },
}

impl<'a> AnySwitch<'a> {
    /// The switch `spec` configures.
    pub fn of(spec: &'a ServiceSpec) -> Self {
        let proxy = &spec.settings.proxy;
        if let Some(settings) = &spec.settings.haproxy {
            return Self::Haproxy { switch: haproxy::Switch::new(settings), settings };
        }
        match proxy.upstream_file {
            Some(_) => Self::Nginx {
                switch: nginx::Switch::new(proxy, ChildEnv::inherit(&spec.settings.pass_env)),
                settings: proxy,
            },
            None => Self::None { service: spec.name.clone() },
        }
    }
}

impl TrafficSwitch for AnySwitch<'_> {
    fn read(&self) -> Result<Option<Traffic>, SwitchError> {
        match self {
            Self::Nginx { switch, .. } => Ok(switch.read()?),
            Self::Haproxy { switch, .. } => Ok(switch.read()?),
            Self::None { .. } => Ok(None),
        }
    }

    fn apply(&self, traffic: &Traffic) -> Result<Duration, SwitchError> {
        match self {
            Self::Nginx { switch, .. } => Ok(switch.apply(traffic)?),
            Self::Haproxy { switch, .. } => Ok(switch.apply(traffic)?),
            Self::None { service } => Err(SwitchError::NoSwitch(service.clone())),
        }
    }

    fn reload(&self) -> Result<(), SwitchError> {
        match self {
            Self::Nginx { switch, .. } => Ok(switch.reload()?),
            Self::Haproxy { switch, .. } => Ok(switch.reload()?),
            Self::None { .. } => Ok(()),
        }
    }

    fn open_sessions(&self, addrs: &[String]) -> Result<Option<u32>, SwitchError> {
        match self {
            Self::Haproxy { switch, .. } => Ok(Some(switch.open_sessions(addrs)?)),
            Self::Nginx { .. } | Self::None { .. } => Ok(None),
        }
    }

    fn settle(&self) -> Duration {
        match self {
            Self::Nginx { .. } => NGINX_SETTLE,
            // `set server ... state maint` has taken effect when haproxy answers.
            Self::Haproxy { .. } | Self::None { .. } => Duration::ZERO,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Nginx { settings, .. } => format!(
                "write {}, {}, {}",
                settings.upstream_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
                settings.test.join(" "),
                settings.reload.join(" ")
            ),
            Self::Haproxy { settings, .. } => format!(
                "write {}, set the server slots of haproxy backend {} over {} (no reload)",
                settings.state_file.display(),
                settings.backend,
                settings.socket.display()
            ),
            Self::None { .. } => "no proxy: no traffic to move".into(),
        }
    }
}

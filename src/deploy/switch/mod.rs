//! Where requests go. A [`TrafficSwitch`] applies a [`Traffic`] (backends with weights, and
//! the deploy state that travels with them) in one atomic step, and reads it back. nginx
//! ([`super::nginx`]: file, test, reload) is the one there is; a service without a proxy
//! (swarm's own rolling update) has [`AnySwitch::None`], not an empty path.

use std::time::Duration;

use super::child_env::ChildEnv;
use super::model::Traffic;
use super::nginx::{self, ProxyError};
use super::spec::{ProxySettings, ServiceSpec};

/// A way to move traffic.
pub trait TrafficSwitch {
    /// The state it holds (`None`: never applied).
    fn read(&self) -> Result<Option<Traffic>, ProxyError>;
    /// Sends traffic where `traffic` says, atomically with its state; on failure traffic
    /// stays where it was. Returns how long the switch itself took.
    fn apply(&self, traffic: &Traffic) -> Result<Duration, ProxyError>;
    /// Has the proxy load the state as it is (an earlier run died between writing it and
    /// loading it).
    fn reload(&self) -> Result<(), ProxyError>;
    /// What applying does, in words (`--dry-run`).
    fn describe(&self) -> String;
}

/// The switch of a service.
pub enum AnySwitch<'a> {
    /// nginx, by upstream file, test and reload.
    Nginx {
        /// The switch.
        switch: nginx::Switch<'a>,
        /// Its settings, for words.
        settings: &'a ProxySettings,
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
    fn read(&self) -> Result<Option<Traffic>, ProxyError> {
        match self {
            Self::Nginx { switch, .. } => switch.read(),
            Self::None { .. } => Ok(None),
        }
    }

    fn apply(&self, traffic: &Traffic) -> Result<Duration, ProxyError> {
        match self {
            Self::Nginx { switch, .. } => switch.apply(traffic),
            Self::None { service } => Err(ProxyError::NoSwitch(service.clone())),
        }
    }

    fn reload(&self) -> Result<(), ProxyError> {
        match self {
            Self::Nginx { switch, .. } => switch.reload(),
            Self::None { .. } => Ok(()),
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
            Self::None { .. } => "no proxy: no traffic to move".into(),
        }
    }
}

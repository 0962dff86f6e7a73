//! A replica of a service, as the place that runs it reports it: what every target hands the
//! flows, whichever engine it talks to.

use std::net::SocketAddr;

use crate::deploy::color::Color;

/// One container of a service, as the engine reports it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Replica {
    /// The container id.
    pub id: String,
    /// The container name, without docker's leading `/`.
    pub name: String,
    /// Label `imgctl.color`.
    pub color: Color,
    /// Label `imgctl.digest`.
    pub digest: String,
    /// Label `imgctl.deploy-id`.
    pub deploy_id: String,
    /// Label `imgctl.replica`.
    pub index: u32,
    /// The container's state.
    pub state: ContainerState,
    /// Docker's health status.
    pub health: Health,
    /// The host address published for the service's port, while running.
    pub addr: Option<SocketAddr>,
    /// When the container was created, as the engine reports it (RFC 3339).
    pub created: String,
    /// Who made the container: imgctl, or `docker-compose up -d` (taken over as a color).
    pub source: Source,
}

/// Who made a replica's container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// imgctl, with its labels.
    #[default]
    Imgctl,
    /// compose (`docker-compose up -d`), found by its labels and taken over: it has none of
    /// imgctl's, so its color is [`super::ADOPTED`], its index compose's container number.
    Compose,
}

/// A container's state, as docker names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running (also while being stopped: its process still runs).
    Running,
    /// Being restarted by its restart policy.
    Restarting,
    /// Paused.
    Paused,
    /// Exited (stopped).
    Exited,
    /// Dead: the engine failed to remove or stop it.
    Dead,
    /// Being removed.
    Removing,
}

/// A container's health, as docker's healthcheck reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No healthcheck.
    None,
    /// Within the start period or before the first result.
    Starting,
    /// The last checks passed.
    Healthy,
    /// `retries` consecutive checks failed.
    Unhealthy,
}

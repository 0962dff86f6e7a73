//! Where traffic goes, and the deploy state that travels with it: what a traffic switch
//! applies and reads back, whichever proxy it drives.

use serde::{Deserialize, Serialize};

use crate::deploy::color::Color;

/// Where traffic goes, and the deploy state that goes with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// The compose service.
    pub service: String,
    /// The stable color: all traffic's home when nothing is in flight.
    pub live: Color,
    /// The digest the live color runs.
    pub live_digest: String,
    /// The deploy that wrote this file.
    pub deploy_id: String,
    /// What is in flight.
    pub phase: Phase,
    /// The upstream servers.
    pub servers: Vec<Server>,
}

/// What a deploy left in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Phase {
    /// All traffic on the live color.
    Stable,
    /// A canary: part of the traffic on `color`, step `step` (from 0) of the configured steps.
    Canary {
        /// The new color.
        color: Color,
        /// Its image (`repo@sha256:...`).
        image: String,
        /// Its digest.
        digest: String,
        /// The step reached.
        step: usize,
        /// Percent of traffic on the new color.
        weight: u32,
    },
    /// Stopped before the switch, waiting for `--continue` (`--no-auto-promote`): the new color
    /// runs and is healthy but has no traffic.
    AwaitingPromotion {
        /// The new color.
        color: Color,
        /// Its image (`repo@sha256:...`).
        image: String,
        /// Its digest.
        digest: String,
    },
    /// A rolling update replacing the live color's replicas with `color`'s.
    Rolling {
        /// The new color.
        color: Color,
        /// Its image (`repo@sha256:...`).
        image: String,
        /// Its digest.
        digest: String,
    },
}

/// One upstream server: a replica's published address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Server {
    /// `host:port`.
    pub addr: String,
    /// nginx's weight (at least 1).
    pub weight: u32,
    /// The container's name.
    pub container: String,
    /// Its color.
    pub color: Color,
}

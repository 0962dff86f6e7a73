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

/// nginx weights for a canary step: `percent` of requests to the new color's `new` servers,
/// the rest to the stable color's `stable` servers, each server of a color weighted alike.
/// Returns (weight of each stable server, weight of each new server); a zero weight means the
/// color's servers leave the upstream.
pub fn canary_weights(percent: u32, stable: usize, new: usize) -> (u32, u32) {
    let percent = percent.min(100);
    if percent == 100 || stable == 0 {
        return (0, 1);
    }
    if percent == 0 || new == 0 {
        return (1, 0);
    }
    // Total new share = percent * stable, total stable share = (100 - percent) * new, so each
    // side's servers together carry exactly their percentage; then reduce.
    let (s, n) = ((100 - percent) * new as u32, percent * stable as u32);
    let g = gcd(s, n);
    (s / g, n / g)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

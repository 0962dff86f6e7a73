//! The two colors a service's containers alternate between, and the labels that record them.

use std::fmt;

/// One of the two generations of a service: the live one and the idle one swap on each deploy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    /// Blue.
    Blue,
    /// Green.
    Green,
}

impl Color {
    /// The other color.
    pub fn other(self) -> Self {
        match self {
            Self::Blue => Self::Green,
            Self::Green => Self::Blue,
        }
    }

    /// `blue` or `green`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blue => "blue",
            Self::Green => "green",
        }
    }

    /// Parses `blue` or `green`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "blue" => Some(Self::Blue),
            "green" => Some(Self::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Container labels: the deploy truth that lives on the engine. A run killed half-way is
/// reconciled from them by the next one.
pub mod label {
    /// The compose service name.
    pub const SERVICE: &str = "imgctl.service";
    /// `blue` or `green`.
    pub const COLOR: &str = "imgctl.color";
    /// The image digest the container runs (`sha256:...`).
    pub const DIGEST: &str = "imgctl.digest";
    /// The deploy that created the container.
    pub const DEPLOY_ID: &str = "imgctl.deploy-id";
    /// The replica's index within its color, from 1.
    pub const REPLICA: &str = "imgctl.replica";
}

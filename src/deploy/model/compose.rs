//! What the Engine finds of the containers `docker-compose up -d` runs for a service: the
//! facts the core decides on whether it can take them over as the live color.

use super::ContainerState;
use crate::deploy::color::Color;

/// The color compose's containers stand for once taken over (they carry no imgctl label, so
/// it is fixed: the first version imgctl deploys beside them is the other one).
pub const ADOPTED: Color = Color::Blue;

/// compose's containers of one service, as the Engine target found them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComposeSeen {
    /// The project the service is taken to be in (`com.docker.compose.project`).
    pub project: String,
    /// Where that name came from (`-p`, the folder name of ...), for messages.
    pub project_from: String,
    /// Every container compose labelled with the service's name, in any project (one-off
    /// `docker-compose run` containers left out).
    pub containers: Vec<ComposeContainer>,
    /// The nginx upstream file imgctl switches, when it does not exist yet: nginx cannot be
    /// sending traffic through it, so a switch would not move any (`imgctl deploy --adopt`
    /// writes it first, listing compose's containers).
    pub upstream_missing: Option<std::path::PathBuf>,
}

/// One container compose runs (or ran) for the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComposeContainer {
    /// Its name.
    pub name: String,
    /// Its project.
    pub project: String,
    /// Its state.
    pub state: ContainerState,
    /// The image as compose ran it (`repo:tag`).
    pub image: String,
    /// The same image pinned in a registry (`repo@sha256:...`, from the image's repo digests),
    /// if a registry holds it: only then can it be rolled back to.
    pub pinned: Option<String>,
    /// Its name is not compose's own (`PROJECT_SERVICE_N`, `PROJECT-SERVICE-N`): compose's
    /// `container_name` gave it, and other containers may reach it by that name.
    pub named: bool,
    /// The switch can reach it (a published port for the service's port, or an address on
    /// `proxy.network`), while it runs.
    pub reachable: bool,
}

impl ComposeContainer {
    /// Its digest (`sha256:...`), when a registry holds its image.
    pub fn digest(&self) -> Option<&str> {
        self.pinned.as_deref().and_then(|p| p.rsplit_once('@')).map(|(_, d)| d)
    }
}

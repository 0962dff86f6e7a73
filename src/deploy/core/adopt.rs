//! Taking over a service `docker-compose up -d` runs. On a service imgctl has no traffic
//! state for, compose's running containers of the service (in its project) are the live
//! color [`ADOPTED`]: a deploy starts the other color beside them, gates it, switches, drains
//! them and stops them, kept for `imgctl rollback`; `imgctl deploy --adopt` only points the
//! switch at them, so the proxy's configuration can be moved to imgctl's upstream while they
//! serve. What cannot be taken over safely is refused here, before anything changes.

use super::{End, Item, Machine, On, Refusal, Step, Subject};
use crate::deploy::model::{ADOPTED, ComposeContainer, ComposeSeen, ContainerState};

/// compose's containers of a service cannot be taken over; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdoptRefusal {
    /// compose runs the service, but in another project than the one imgctl takes it to be in.
    #[error(
        "compose runs {service} in project {found}, and imgctl takes its project to be {project} (from {from}): name the project with -p (or COMPOSE_PROJECT_NAME) to take those containers over"
    )]
    OtherProject {
        /// The service.
        service: String,
        /// imgctl's project name.
        project: String,
        /// Where that name came from.
        from: String,
        /// The projects compose runs the service in.
        found: String,
    },
    /// A container of the project's service is not running.
    #[error(
        "compose's container {name} of {service} (project {project}) is {state}: imgctl takes over running containers only; start it (docker-compose -p {project} up -d {service}) or remove it (docker-compose -p {project} rm -s -f {service}) first"
    )]
    NotRunning {
        /// The service.
        service: String,
        /// The project.
        project: String,
        /// The container.
        name: String,
        /// Its state.
        state: String,
    },
    /// A container compose's `container_name` named.
    #[error(
        "compose's container {name} has a container_name: other containers may reach it by that name, which imgctl's replicas (SERVICE-COLOR-N) do not take over; drop container_name and run docker-compose up -d again first"
    )]
    ContainerName {
        /// The container.
        name: String,
    },
    /// A container runs an image no registry holds.
    #[error(
        "compose's container {name} runs {image}, which no registry holds (built here, or tagged here): imgctl could not roll back to it; push it and run docker-compose up -d with the registry's image first"
    )]
    NotInRegistry {
        /// The container.
        name: String,
        /// The image as compose ran it.
        image: String,
    },
    /// The containers run different images (an update half-way).
    #[error(
        "compose's containers of {service} run different images ({digests}): let docker-compose finish, then deploy"
    )]
    SeveralImages {
        /// The service.
        service: String,
        /// Their digests.
        digests: String,
    },
    /// nginx cannot be using imgctl's upstream file yet: it does not exist.
    #[error(
        "the upstream file {} does not exist, so nginx cannot be sending {service}'s traffic through it, and switching it would move none while compose's containers are stopped: run imgctl deploy {service} --adopt (it writes the file, listing compose's containers), include it in nginx's configuration and proxy_pass to it, reload nginx, then deploy", path.display()
    )]
    UpstreamMissing {
        /// The service.
        service: String,
        /// The upstream file.
        path: std::path::PathBuf,
    },
    /// The switch could not send traffic to a container.
    #[error(
        "compose's container {name} publishes no port for {service}'s port: the proxy could not be pointed at it; publish it (ports:) or put it on x-imgctl.proxy.network"
    )]
    Unreachable {
        /// The service.
        service: String,
        /// The container.
        name: String,
    },
}

/// compose's containers a run takes over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Adoption {
    /// The project.
    pub project: String,
    /// The image they run, pinned (`repo@sha256:...`).
    pub image: String,
    /// Its digest.
    pub digest: String,
    /// The containers.
    pub names: Vec<String>,
}

/// Whether compose's containers of `service` can be taken over (`None`: compose runs none in
/// the project, nor anywhere else).
pub(super) fn decide(service: &str, seen: Option<&ComposeSeen>) -> Result<Option<Adoption>, AdoptRefusal> {
    let Some(seen) = seen else { return Ok(None) };
    let (mine, others): (Vec<&ComposeContainer>, Vec<&ComposeContainer>) =
        seen.containers.iter().partition(|c| c.project == seen.project);
    if mine.is_empty() {
        let mut found: Vec<&str> =
            others.iter().filter(|c| c.state == ContainerState::Running).map(|c| c.project.as_str()).collect();
        found.sort_unstable();
        found.dedup();
        if found.is_empty() {
            return Ok(None);
        }
        return Err(AdoptRefusal::OtherProject {
            service: service.into(),
            project: seen.project.clone(),
            from: seen.project_from.clone(),
            found: found.join(", "),
        });
    }
    if let Some(c) = mine.iter().find(|c| c.named) {
        return Err(AdoptRefusal::ContainerName { name: c.name.clone() });
    }
    if let Some(c) = mine.iter().find(|c| c.state != ContainerState::Running) {
        return Err(AdoptRefusal::NotRunning {
            service: service.into(),
            project: seen.project.clone(),
            name: c.name.clone(),
            state: format!("{:?}", c.state).to_lowercase(),
        });
    }
    if let Some(c) = mine.iter().find(|c| c.pinned.is_none()) {
        return Err(AdoptRefusal::NotInRegistry { name: c.name.clone(), image: c.image.clone() });
    }
    let mut digests: Vec<&str> = mine.iter().filter_map(|c| c.digest()).collect();
    digests.sort_unstable();
    digests.dedup();
    if digests.len() > 1 {
        return Err(AdoptRefusal::SeveralImages { service: service.into(), digests: digests.join(", ") });
    }
    if let Some(c) = mine.iter().find(|c| !c.reachable) {
        return Err(AdoptRefusal::Unreachable { service: service.into(), name: c.name.clone() });
    }
    let image = mine[0].pinned.clone().expect("checked above");
    Ok(Some(Adoption {
        project: seen.project.clone(),
        digest: digests[0].to_owned(),
        image,
        names: mine.iter().map(|c| c.name.clone()).collect(),
    }))
}

/// [`decide`], for a deploy that moves traffic off compose's containers at once: the switch must
/// be one nginx already reads.
pub(super) fn decide_move(service: &str, seen: Option<&ComposeSeen>) -> Result<Option<Adoption>, AdoptRefusal> {
    let adoption = decide(service, seen)?;
    if adoption.is_some()
        && let Some(path) = seen.and_then(|s| s.upstream_missing.clone())
    {
        return Err(AdoptRefusal::UpstreamMissing { service: service.into(), path });
    }
    Ok(adoption)
}

/// Says what is taken over, and what becomes of it.
pub(super) fn announce(m: &mut Machine, adoption: &Adoption, deploying: bool) {
    let after = if deploying {
        "after the switch they are drained and stopped (docker stop, not removed), kept for imgctl rollback; the next deploy removes them"
    } else {
        "the next deploy switches away from them, drains and stops them (kept for imgctl rollback)"
    };
    m.notes.push(format!(
        "taking over compose project {}: {} ({}) serve as the live color {ADOPTED}; {after}",
        adoption.project,
        adoption.names.join(", "),
        adoption.image
    ));
    m.adopted = Some(adoption.project.clone());
}

/// `imgctl deploy --adopt`: the switch points at compose's running containers, which become
/// the live color; nothing is started or stopped.
pub(super) fn take_over(m: &mut Machine, seen: Option<&ComposeSeen>) -> Result<(), Refusal> {
    let service = m.settings.service.clone();
    let Some(adoption) = decide(&service, seen)? else {
        let detail = match seen {
            Some(seen) => format!(" in compose project {} (from {})", seen.project, seen.project_from),
            None => " (only a Docker Engine runs compose's containers)".into(),
        };
        return Err(Refusal::NothingToAdopt { service, detail });
    };
    m.subject =
        Subject { image: adoption.image.clone(), digest: adoption.digest.clone(), color: ADOPTED, previous: None };
    announce(m, &adoption, false);
    let route = m.all_on(ADOPTED, &adoption.digest);
    m.push(Step::Switch { route, label: "adopt".into(), moves: false }, On::Plain);
    m.queue.push_back(Item::End(End::Succeeded { live: Some(ADOPTED) }));
    Ok(())
}

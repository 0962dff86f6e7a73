//! Containers compose runs (`docker-compose up -d`, `docker compose up -d`), found by the
//! labels compose gives every container (`com.docker.compose.project`, `.service`,
//! `.container-number`), and read as replicas of a color so a deploy can take them over: the
//! switch points at them, a drain counts their connections, a stop keeps them for a rollback.
//! They carry none of imgctl's labels; their color is the caller's, their index compose's
//! container number.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::ListContainersOptionsBuilder;

use super::container::replica_from_inspect;
use super::{DockerEngine, EngineError};
use crate::deploy::color::{Color, label as ours};
use crate::deploy::model::{Replica, Source};
use crate::reference::Reference;

/// compose's container labels.
pub mod label {
    /// The project's name.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// The service's name.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// The replica's number, from 1.
    pub const NUMBER: &str = "com.docker.compose.container-number";
    /// `True` on a `docker-compose run` container.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
}

/// A container compose runs for a service, read as a replica.
#[derive(Clone, Debug, PartialEq)]
pub struct ComposeReplica {
    /// The replica: the caller's color, compose's number as its index, the digest of
    /// `pinned` (empty without one), [`Source::Compose`].
    pub replica: Replica,
    /// Its project.
    pub project: String,
    /// The image as compose ran it (`repo:tag`).
    pub image: String,
    /// That image in its registry, `repo@sha256:...`, from the image's repo digests.
    pub pinned: Option<String>,
    /// Its name is not one compose makes (`container_name` gave it).
    pub named: bool,
}

impl DockerEngine {
    /// Every container (running or not) compose labelled with `service`, in any project,
    /// one-off `run` containers left out, as replicas of `color` reached at their published
    /// `port`; sorted by project and number.
    pub async fn compose_replicas(
        &self,
        service: &str,
        port: Option<u16>,
        color: Color,
    ) -> Result<Vec<ComposeReplica>, EngineError> {
        let filters = HashMap::from([("label", vec![format!("{}={service}", label::SERVICE)])]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let summaries = self
            .api()
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error(format!("list compose's containers of service {service}"), e))?;
        let mut found = Vec::new();
        for id in summaries.into_iter().filter_map(|summary| summary.id) {
            match self.compose_replica(&id, port, color).await {
                Ok(Some(replica)) => found.push(replica),
                // Removed since the listing, or a one-off.
                Ok(None) | Err(EngineError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        found.sort_by(|a, b| (&a.project, a.replica.index).cmp(&(&b.project, b.replica.index)));
        Ok(found)
    }

    /// Container `id` as a replica of `color`, if compose runs it (`None`: no compose labels,
    /// or a one-off).
    pub async fn compose_replica(
        &self,
        id: &str,
        port: Option<u16>,
        color: Color,
    ) -> Result<Option<ComposeReplica>, EngineError> {
        let info = self
            .api()
            .inspect_container(id, None)
            .await
            .map_err(|e| self.error(format!("inspect container {id}"), e))?;
        let Some(labels) = compose_labels(&info) else { return Ok(None) };
        let repo_digests = match info.image.as_deref() {
            Some(image_id) => match self.api().inspect_image(image_id).await {
                Ok(image) => image.repo_digests.unwrap_or_default(),
                Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Vec::new(),
                Err(e) => return Err(self.error(format!("inspect image {image_id}"), e)),
            },
            None => Vec::new(),
        };
        let image = info.config.as_ref().and_then(|c| c.image.clone()).unwrap_or_default();
        let pinned = pin(&image, &repo_digests);
        let digest = pinned.as_deref().and_then(|p| p.rsplit_once('@')).map(|(_, d)| d).unwrap_or_default();
        let replica = as_replica(info, port, color, labels.number, digest)
            .map_err(|reason| EngineError::NotAReplica { id: id.to_owned(), reason })?;
        let named = !compose_made(&replica.name, &labels.project, &labels.service, labels.number);
        Ok(Some(ComposeReplica { replica, project: labels.project, image, pinned, named }))
    }
}

/// The compose labels of a container that is not a one-off.
struct Labels {
    project: String,
    service: String,
    number: u32,
}

fn compose_labels(info: &ContainerInspectResponse) -> Option<Labels> {
    let labels = info.config.as_ref()?.labels.as_ref()?;
    if labels.get(label::ONEOFF).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    Some(Labels {
        project: labels.get(label::PROJECT)?.clone(),
        service: labels.get(label::SERVICE)?.clone(),
        number: labels.get(label::NUMBER).and_then(|n| n.parse().ok()).unwrap_or(1),
    })
}

/// The container as a replica, through the one parser of a container's state, health and
/// published address ([`replica_from_inspect`]): imgctl's labels are given to a copy (color,
/// compose's number, the digest) and its port bindings narrowed to the service's port, so the
/// address is that port's.
fn as_replica(
    mut info: ContainerInspectResponse,
    port: Option<u16>,
    color: Color,
    number: u32,
    digest: &str,
) -> Result<Replica, String> {
    if let Some(config) = info.config.as_mut() {
        let labels = config.labels.get_or_insert_with(HashMap::new);
        labels.insert(ours::COLOR.to_owned(), color.as_str().to_owned());
        labels.insert(ours::REPLICA.to_owned(), number.to_string());
        labels.insert(ours::DIGEST.to_owned(), digest.to_owned());
        labels.insert(ours::DEPLOY_ID.to_owned(), "compose".to_owned());
    }
    if let (Some(port), Some(bindings)) = (port, info.host_config.as_mut().and_then(|h| h.port_bindings.as_mut())) {
        let key = format!("{port}/tcp");
        bindings.retain(|k, _| *k == key);
    }
    let mut replica = replica_from_inspect(info)?;
    replica.source = Source::Compose;
    Ok(replica)
}

/// The repo digest of `image`'s repository among `repo_digests` (`repo@sha256:...`).
fn pin(image: &str, repo_digests: &[String]) -> Option<String> {
    let name = image.parse::<Reference>().ok()?.name();
    repo_digests
        .iter()
        .find(|d| d.parse::<Reference>().is_ok_and(|r| r.name() == name && r.digest().is_some()))
        .cloned()
}

/// Whether `name` is one compose makes: `PROJECT_SERVICE_N` (1.29) or `PROJECT-SERVICE-N` (v2).
fn compose_made(name: &str, project: &str, service: &str, number: u32) -> bool {
    name == format!("{project}_{service}_{number}") || name == format!("{project}-{service}-{number}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::model::ContainerState;

    fn inspected(name: &str, labels: &[(&str, &str)], bindings: serde_json::Value) -> ContainerInspectResponse {
        serde_json::from_value(serde_json::json!({
            "Id": "c0ffee",
            "Name": format!("/{name}"),
            "Image": "sha256:1234",
            "Created": "2024-05-01T10:00:00Z",
            "State": {"Status": "running"},
            "Config": {
                "Image": "127.0.0.1:5000/web:v1",
                "Labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
            },
            "HostConfig": {"PortBindings": bindings.clone()},
            "NetworkSettings": {"Ports": {
                "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}],
                "9000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "19000"}],
            }},
        }))
        .unwrap()
    }

    const COMPOSE: [(&str, &str); 4] =
        [(label::PROJECT, "shop"), (label::SERVICE, "web"), (label::NUMBER, "2"), (label::ONEOFF, "False")];

    #[test]
    fn a_compose_container_is_a_replica_of_the_given_color_at_the_services_port() {
        let both = serde_json::json!({"9000/tcp": [{"HostPort": "19000"}], "8080/tcp": [{"HostPort": "18080"}]});
        let info = inspected("shop_web_2", &COMPOSE, both);
        let labels = compose_labels(&info).unwrap();
        assert_eq!((labels.project.as_str(), labels.service.as_str(), labels.number), ("shop", "web", 2));
        let replica = as_replica(info.clone(), Some(9000), Color::Blue, 2, "sha256:aa").unwrap();
        assert_eq!(
            (replica.color, replica.index, replica.digest.as_str(), replica.deploy_id.as_str(), replica.source),
            (Color::Blue, 2, "sha256:aa", "compose", Source::Compose)
        );
        assert_eq!(replica.state, ContainerState::Running);
        assert_eq!(replica.name, "shop_web_2");
        // The service's port, not the first one published; 0.0.0.0 is reached on loopback.
        assert_eq!(replica.addr, Some("127.0.0.1:19000".parse().unwrap()));
        let not_published = as_replica(info, Some(7000), Color::Blue, 2, "").unwrap();
        assert_eq!(not_published.addr, None);
    }

    #[test]
    fn one_offs_and_containers_without_compose_labels_are_not_compose_replicas() {
        let mut oneoff = COMPOSE;
        oneoff[3] = (label::ONEOFF, "True");
        assert!(compose_labels(&inspected("shop_web_run_1", &oneoff, serde_json::json!({}))).is_none());
        assert!(compose_labels(&inspected("x", &[("team", "web")], serde_json::json!({}))).is_none());
    }

    #[test]
    fn the_pin_is_the_repo_digest_of_the_images_repository() {
        let digests = [
            "127.0.0.1:5000/other@sha256:1111111111111111111111111111111111111111111111111111111111111111".to_owned(),
            "127.0.0.1:5000/web@sha256:2222222222222222222222222222222222222222222222222222222222222222".to_owned(),
        ];
        assert_eq!(pin("127.0.0.1:5000/web:v1", &digests).as_deref(), Some(digests[1].as_str()));
        assert_eq!(pin("127.0.0.1:5000/web", &digests).as_deref(), Some(digests[1].as_str()));
        // A locally built image has no repo digest: no registry holds it.
        assert_eq!(pin("127.0.0.1:5000/web:v1", &[]), None);
        assert_eq!(pin("web:dev", &digests), None);
        // docker.io/library names compare normalized.
        let hub = ["nginx@sha256:3333333333333333333333333333333333333333333333333333333333333333".to_owned()];
        assert_eq!(pin("nginx:1.25", &hub).as_deref(), Some(hub[0].as_str()));
    }

    #[test]
    fn names_compose_makes_in_1_29_and_v2_and_a_container_name() {
        assert!(compose_made("shop_web_1", "shop", "web", 1));
        assert!(compose_made("shop-web-1", "shop", "web", 1));
        assert!(!compose_made("web", "shop", "web", 1));
        assert!(!compose_made("shop_web_2", "shop", "web", 1));
    }
}

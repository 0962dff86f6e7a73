//! compose `secrets:` and `configs:` on swarm: real swarm secrets and configs, attached to the
//! service's tasks with their target, uid, gid and mode.
//!
//! - **Objects of imgctl's own.** A file-backed, environment-backed or inline one becomes an
//!   object named `SERVICE-KEY-HASH` (HASH: 12 hex digits of the content's SHA-256), labelled
//!   `imgctl.service=SERVICE` and `imgctl.mount=secrets.KEY`. Swarm objects cannot change, so
//!   new content is a new object: the service spec changes, swarm rolls the tasks, and the old
//!   object is still there for swarm's rollback to the previous spec. The same content finds the
//!   same object again (both colors of a blue/green service share it).
//! - **External ones** (`external: true`) are used by name; one that does not exist stops the
//!   deploy before anything is created or changed.
//! - **Removal.** After a deploy converges, imgctl removes the objects of its own for that
//!   service that no service's spec uses, neither its current one nor its previous one (what
//!   `docker service rollback` and swarm's `failure_action: rollback` go back to). An object a
//!   task or a rollback may still need is never removed; swarm also refuses to remove one in use.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use bollard::models::{
    ConfigSpec, SecretSpec, ServiceSpec, TaskSpecContainerSpecConfigs, TaskSpecContainerSpecFile,
    TaskSpecContainerSpecFile1, TaskSpecContainerSpecSecrets,
};
use bollard::query_parameters::{ListConfigsOptionsBuilder, ListSecretsOptionsBuilder};

use super::raw;
use crate::deploy::color::label;
use crate::deploy::docker::{DockerEngine, EngineError};
use crate::deploy::model::{FileKind, FileMount, FileSource};

/// The label naming the compose key an object of imgctl's holds (`secrets.KEY`).
pub const MOUNT_LABEL: &str = "imgctl.mount";

/// The most characters swarm takes in an object name.
const NAME_LIMIT: usize = 64;

/// The references a task template carries.
#[derive(Debug, Default)]
pub(super) struct Attached {
    pub(super) secrets: Vec<TaskSpecContainerSpecSecrets>,
    pub(super) configs: Vec<TaskSpecContainerSpecConfigs>,
}

/// The name of imgctl's object for `file` of `service`: `SERVICE-KEY-HASH`, cut to swarm's 64
/// characters before the hash, characters a name cannot hold made `-`.
pub fn object_name(service: &str, file: &FileMount, hash: &str) -> String {
    let stem: String = format!("{service}-{}", file.key)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' })
        .take(NAME_LIMIT - hash.len() - 1)
        .collect();
    format!("{stem}-{hash}")
}

impl DockerEngine {
    /// The id of the secret or config called exactly `name` (`None`: there is none).
    async fn object_id(&self, kind: FileKind, name: &str) -> Result<Option<String>, EngineError> {
        let filters = HashMap::from([("name", vec![name])]);
        let operation = || format!("looking for {} {name}", kind.noun());
        let found: Vec<(Option<String>, Option<String>)> = match kind {
            FileKind::Secret => {
                let options = ListSecretsOptionsBuilder::new().filters(&filters).build();
                let list = self.api().list_secrets(Some(options)).await.map_err(|e| self.error(operation(), e))?;
                list.into_iter().map(|s| (s.id, s.spec.and_then(|s| s.name))).collect()
            }
            FileKind::Config => {
                let options = ListConfigsOptionsBuilder::new().filters(&filters).build();
                let list = self.api().list_configs(Some(options)).await.map_err(|e| self.error(operation(), e))?;
                list.into_iter().map(|c| (c.id, c.spec.and_then(|s| s.name))).collect()
            }
        };
        // The filter matches names exactly on swarm; checked again all the same.
        Ok(found.into_iter().find(|(_, n)| n.as_deref() == Some(name)).and_then(|(id, _)| id))
    }

    /// Checks that every external secret and config of `files` exists (before anything
    /// changes), returning their ids by key.
    pub(in crate::deploy) async fn externals(
        &self,
        files: &[FileMount],
    ) -> Result<HashMap<String, String>, EngineError> {
        let mut ids = HashMap::new();
        for file in files {
            if let FileSource::External(name) = &file.source {
                let id = self.object_id(file.kind, name).await?.ok_or_else(|| EngineError::MissingExternal {
                    at: file.at(),
                    noun: file.kind.noun(),
                    name: name.clone(),
                })?;
                ids.insert(file.at(), id);
            }
        }
        Ok(ids)
    }

    /// The objects `files` of `service` need: externals found, imgctl's own created where no
    /// object holds that content yet; and the references the task template carries.
    pub(super) async fn attach(&self, service: &str, files: &[FileMount]) -> Result<Attached, EngineError> {
        let externals = self.externals(files).await?;
        let mut attached = Attached::default();
        for file in files {
            let (name, id) = match &file.source {
                FileSource::External(name) => (name.clone(), externals.get(&file.at()).cloned().unwrap_or_default()),
                _ => self.own_object(service, file).await?,
            };
            let uid = Some(file.uid.clone().unwrap_or_else(|| "0".into()));
            let gid = Some(file.gid.clone().unwrap_or_else(|| "0".into()));
            let mode = Some(file.file_mode());
            match file.kind {
                FileKind::Secret => attached.secrets.push(TaskSpecContainerSpecSecrets {
                    file: Some(TaskSpecContainerSpecFile { name: Some(file.target.clone()), uid, gid, mode }),
                    secret_id: Some(id),
                    secret_name: Some(name),
                }),
                FileKind::Config => attached.configs.push(TaskSpecContainerSpecConfigs {
                    file: Some(TaskSpecContainerSpecFile1 { name: Some(file.target.clone()), uid, gid, mode }),
                    runtime: None,
                    config_id: Some(id),
                    config_name: Some(name),
                }),
            }
        }
        Ok(attached)
    }

    /// imgctl's object for `file`'s content: found by its name, else created. Its name and id.
    async fn own_object(&self, service: &str, file: &FileMount) -> Result<(String, String), EngineError> {
        let content = file.content.as_ref().ok_or_else(|| EngineError::InvalidSpec {
            container: format!("service {service}"),
            reason: format!("{}: its content was not read", file.at()),
        })?;
        let name = object_name(service, file, &content.short_hash());
        if let Some(id) = self.object_id(file.kind, &name).await? {
            return Ok((name, id));
        }
        let labels =
            HashMap::from([(label::SERVICE.to_owned(), service.to_owned()), (MOUNT_LABEL.to_owned(), file.at())]);
        // The Engine API takes the content base64-encoded in the JSON body.
        let data = Some(base64::engine::general_purpose::STANDARD.encode(content.expose()));
        let operation = format!("creating {} {name} ({})", file.kind.noun(), file.at());
        let created = match file.kind {
            FileKind::Secret => {
                let spec = SecretSpec { name: Some(name.clone()), labels: Some(labels), data, ..Default::default() };
                self.api().create_secret(spec).await
            }
            FileKind::Config => {
                let spec = ConfigSpec { name: Some(name.clone()), labels: Some(labels), data, ..Default::default() };
                self.api().create_config(spec).await
            }
        };
        let created = created.map_err(|e| self.error(operation, e))?;
        Ok((name, created.id))
    }

    /// Removes imgctl's secrets and configs of `service` that no service's spec, current or
    /// previous, refers to; returns what it removed (`secret NAME`). One swarm refuses to
    /// remove (in use after all) is kept.
    pub async fn prune_files(&self, service: &str) -> Result<Vec<String>, EngineError> {
        let api = self.api().client_version().to_string();
        let services = raw::get("/services", &api)
            .await
            .map_err(|message| EngineError::Api { operation: "listing the services".into(), message })?;
        let used = referenced(&services);
        let filters = HashMap::from([("label", vec![format!("{}={service}", label::SERVICE)])]);
        let mut removed = Vec::new();
        let secrets = self
            .api()
            .list_secrets(Some(ListSecretsOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(|e| self.error(format!("listing the secrets of {service}"), e))?;
        for secret in secrets {
            let (Some(id), name) = (secret.id, secret.spec.and_then(|s| s.name).unwrap_or_default()) else { continue };
            if !used.contains(&id) && self.api().delete_secret(&id).await.is_ok() {
                removed.push(format!("secret {name}"));
            }
        }
        let configs = self
            .api()
            .list_configs(Some(ListConfigsOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(|e| self.error(format!("listing the configs of {service}"), e))?;
        for config in configs {
            let (Some(id), name) = (config.id, config.spec.and_then(|s| s.name).unwrap_or_default()) else { continue };
            if !used.contains(&id) && self.api().delete_config(&id).await.is_ok() {
                removed.push(format!("config {name}"));
            }
        }
        Ok(removed)
    }
}

/// The ids of the secrets and configs any service's `Spec` or `PreviousSpec` refers to (the
/// Engine's JSON list of services).
fn referenced(services: &serde_json::Value) -> HashSet<String> {
    let mut ids = HashSet::new();
    for service in services.as_array().into_iter().flatten() {
        for spec in ["Spec", "PreviousSpec"] {
            let container = &service[spec]["TaskTemplate"]["ContainerSpec"];
            for (list, field) in [("Secrets", "SecretID"), ("Configs", "ConfigID")] {
                let references = container[list].as_array().into_iter().flatten();
                ids.extend(references.filter_map(|r| r[field].as_str()).map(str::to_owned));
            }
        }
    }
    ids
}

/// Sets `attached` into `spec`'s task template: the whole list, as the compose file names it.
pub(super) fn set(spec: &mut ServiceSpec, attached: Attached) {
    let task = spec.task_template.get_or_insert_with(Default::default);
    let container = task.container_spec.get_or_insert_with(Default::default);
    container.secrets = Some(attached.secrets).filter(|s| !s.is_empty());
    container.configs = Some(attached.configs).filter(|c| !c.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, target: &str) -> FileMount {
        FileMount {
            kind: FileKind::Secret,
            key: key.into(),
            name: key.into(),
            source: FileSource::Environment("V".into()),
            target: target.into(),
            uid: None,
            gid: None,
            mode: None,
            content: None,
        }
    }

    #[test]
    fn object_names_fit_swarm_and_keep_the_hash() {
        assert_eq!(object_name("web", &file("db_password", "/x"), "0123456789ab"), "web-db_password-0123456789ab");
        let long = object_name(&"s".repeat(80), &file("k", "/x"), "0123456789ab");
        assert_eq!(long.len(), 64);
        assert!(long.ends_with("-0123456789ab"), "{long}");
        assert_eq!(object_name("web", &file("my key", "/x"), "ab"), "web-my-key-ab");
    }

    #[test]
    fn a_service_has_exactly_the_files_references() {
        let reference = |name: &str, id: &str| TaskSpecContainerSpecSecrets {
            file: Some(TaskSpecContainerSpecFile { name: Some(name.into()), ..Default::default() }),
            secret_id: Some(id.into()),
            secret_name: Some(id.into()),
        };
        let mut spec = ServiceSpec::default();
        let task = spec.task_template.get_or_insert_with(Default::default);
        task.container_spec.get_or_insert_with(Default::default).secrets = Some(vec![reference("old", "old")]);
        set(&mut spec, Attached { secrets: vec![reference("/run/secrets/token", "ours")], configs: vec![] });
        let container = spec.task_template.as_ref().unwrap().container_spec.as_ref().unwrap();
        let ids: Vec<_> = container.secrets.iter().flatten().map(|s| s.secret_id.clone().unwrap()).collect();
        assert_eq!(ids, ["ours"]);
        assert!(container.configs.is_none(), "no configs: none set");
    }

    #[test]
    fn references_are_read_from_the_spec_and_the_previous_spec() {
        let services = serde_json::json!([
            {"Spec": {"TaskTemplate": {"ContainerSpec": {"Secrets": [{"SecretID": "s1"}], "Configs": [{"ConfigID": "c1"}]}}},
             "PreviousSpec": {"TaskTemplate": {"ContainerSpec": {"Secrets": [{"SecretID": "s0"}]}}}},
            {"Spec": {"TaskTemplate": {"ContainerSpec": {}}}}
        ]);
        let used = referenced(&services);
        assert_eq!(used, HashSet::from(["s1".to_owned(), "c1".to_owned(), "s0".to_owned()]));
    }
}

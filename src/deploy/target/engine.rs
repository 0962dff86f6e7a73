//! Colors as containers on one Docker Engine: `SERVICE-COLOR-N`, each publishing the service's
//! port on 127.0.0.1 with a host port the engine picks (so both colors run at once), or one
//! of `x-imgctl.host_ports`, which the replica keeps across restarts. With `proxy.network`
//! (the proxy in a container) each replica joins that network too, and the switch reaches it
//! at its IP address there.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use super::{Started, Target, TargetError};
use crate::deploy::color::{Color, label};
use crate::deploy::docker::{ContainerSpec, DockerEngine, PullAuth};
use crate::deploy::events::Events;
use crate::deploy::health;
use crate::deploy::model::{ADOPTED, ComposeSeen, ContainerState, PinnedImage, Replica};
use crate::deploy::spec::ServiceSpec;

/// The Engine target of one service.
#[derive(Debug)]
pub struct Engine<'a> {
    engine: DockerEngine,
    spec: &'a ServiceSpec,
    /// With `proxy.network`: each running replica's IP address on it, by container id, as
    /// the last [`Target::observe`] saw them (the switch is built from replicas just
    /// observed; [`Target::address`] cannot ask the engine).
    network_ips: Mutex<HashMap<String, IpAddr>>,
}

impl<'a> Engine<'a> {
    /// The target of `spec` on `engine`.
    pub fn new(engine: DockerEngine, spec: &'a ServiceSpec) -> Self {
        Self { engine, spec, network_ips: Mutex::default() }
    }

    fn container_spec(&self, color: Color, image: &PinnedImage, index: u32, deploy_id: &str) -> ContainerSpec {
        let spec = self.spec;
        let labels = BTreeMap::from([
            (label::SERVICE.to_owned(), spec.name.clone()),
            (label::COLOR.to_owned(), color.as_str().to_owned()),
            (label::DIGEST.to_owned(), image.digest.to_string()),
            (label::DEPLOY_ID.to_owned(), deploy_id.to_owned()),
            (label::REPLICA.to_owned(), index.to_string()),
        ]);
        let mut workload = spec.workload.clone();
        if let Some(network) = &spec.settings.proxy.network
            && !workload.networks.contains(network)
        {
            // Joined to the proxy's network (as its first network when it has none: then the
            // container is on that network alone, not on the default bridge).
            workload.networks.push(network.clone());
        }
        ContainerSpec {
            name: format!("{}-{color}-{index}", spec.name),
            image: image.reference(),
            labels,
            workload,
            host_port: None,
        }
    }

    /// A port of `x-imgctl.host_ports` for a new replica: one no container of the service is
    /// configured with (a stopped one takes its port back when started) and no other process
    /// holds on the proxy's address (`None`: no range, the engine picks).
    async fn host_port(&self, replica: &str) -> Result<Option<u16>, TargetError> {
        let Some(range) = self.spec.settings.host_ports else { return Ok(None) };
        let taken = self.engine.host_ports(&self.spec.name).await?;
        let free = range.ports().filter(|p| !taken.contains(p)).find(|&p| {
            // Held by another process: skipped. (The probe closes at once; docker binds next.)
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
        });
        free.map(Some).ok_or_else(|| TargetError::NoFreePort { range, replica: replica.to_owned() })
    }

    /// Removes containers, all at once (a failed start's).
    async fn remove_all(&self, ids: &[String]) {
        let engine = &self.engine;
        futures_util::future::join_all(ids.iter().map(|id| engine.remove(id))).await;
    }

    async fn gate(&self, ids: &[String]) -> Result<Started, TargetError> {
        let since = Instant::now();
        let (engine, spec) = (&self.engine, self.spec);
        let inspect = async |id: &str| super::adopt::inspect(engine, spec, id).await;
        let replicas = health::wait_healthy_by(ids, &spec.settings.health, inspect).await?;
        Ok(Started { replicas, gate: since.elapsed() })
    }
}

impl Target for Engine<'_> {
    async fn observe(&self) -> Result<Vec<Replica>, TargetError> {
        let mut replicas = self.engine.replicas(&self.spec.name).await?;
        // compose's containers of the service are the adopted color while imgctl has none of
        // that color (the next deploy into it removes them).
        if !replicas.iter().any(|r| r.color == ADOPTED) {
            replicas.extend(super::adopt::replicas(&self.engine, self.spec).await?);
            replicas.sort_by_key(|r| (r.color, r.index));
        }
        if let Some(network) = &self.spec.settings.proxy.network {
            let mut ips = HashMap::new();
            for replica in replicas.iter().filter(|r| r.state == ContainerState::Running) {
                if let Some(ip) = self.engine.network_ip(&replica.id, network).await? {
                    ips.insert(replica.id.clone(), ip);
                }
            }
            *self.network_ips.lock().unwrap_or_else(|e| e.into_inner()) = ips;
        }
        Ok(replicas)
    }

    async fn prepare(
        &mut self,
        image: &PinnedImage,
        auth: PullAuth,
        events: &mut dyn Events,
    ) -> Result<bool, TargetError> {
        let mut last = String::new();
        self.engine
            .pull(&image.reference(), Some(&auth), &mut |status| {
                if status != last {
                    events.note(status);
                    last = status.to_owned();
                }
            })
            .await?;
        Ok(true)
    }

    async fn start(
        &mut self,
        color: Color,
        image: &PinnedImage,
        indices: &[u32],
        deploy_id: &str,
        _events: &mut dyn Events,
    ) -> Result<Started, TargetError> {
        let mut ids = Vec::new();
        for &index in indices {
            let mut spec = self.container_spec(color, image, index, deploy_id);
            // A container left with this name by an earlier run goes first.
            if let Some(old) = self.observe().await?.into_iter().find(|r| r.name == spec.name) {
                self.engine.remove(&old.id).await?;
            }
            spec.host_port = match self.host_port(&spec.name).await {
                Ok(port) => port,
                Err(e) => {
                    self.remove_all(&ids).await;
                    return Err(e);
                }
            };
            let started = match self.engine.create(&spec).await {
                Ok(id) => {
                    ids.push(id.clone());
                    self.engine.start(&id).await
                }
                Err(e) => Err(e),
            };
            if let Err(source) = started {
                self.remove_all(&ids).await;
                return Err(TargetError::Start { replica: spec.name, source });
            }
        }
        let gated = self.gate(&ids).await;
        if gated.is_err() {
            self.remove_all(&ids).await;
        }
        gated
    }

    async fn resume(&mut self, replicas: &[Replica], _events: &mut dyn Events) -> Result<Started, TargetError> {
        for replica in replicas.iter().filter(|r| r.state != ContainerState::Running) {
            self.engine
                .start(&replica.id)
                .await
                .map_err(|source| TargetError::Start { replica: replica.name.clone(), source })?;
        }
        let ids: Vec<String> = replicas.iter().map(|r| r.id.clone()).collect();
        self.gate(&ids).await
    }

    async fn retire(&self, replica: &Replica, remove: bool) -> Result<(), TargetError> {
        if remove {
            Ok(self.engine.remove(&replica.id).await?)
        } else {
            Ok(self.engine.stop(&replica.id, self.spec.workload.stop_grace).await?)
        }
    }

    async fn check(&self, replica: &Replica) -> Result<(), TargetError> {
        let settings = &self.spec.settings.health;
        let inspected = super::adopt::inspect(&self.engine, self.spec, &replica.id).await?;
        if inspected.state != ContainerState::Running {
            return Err(TargetError::Stopped(replica.name.clone()));
        }
        if let (Some(path), Some(addr)) = (&settings.path, inspected.addr) {
            match health::probe(&addr.to_string(), path, settings.timeout).await {
                Ok(status) if (200..300).contains(&status) => {}
                Ok(status) => {
                    return Err(TargetError::Answered { replica: replica.name.clone(), path: path.clone(), status });
                }
                Err(detail) => return Err(TargetError::Probe { replica: replica.name.clone(), detail }),
            }
        }
        Ok(())
    }

    async fn open_connections(&self, replica: &Replica) -> Option<u32> {
        let port = self.spec.workload.port?;
        let pid = self.engine.local_pid(&replica.id).await.ok()??;
        super::connections::established(pid, port)
    }

    async fn compose(&self) -> Result<Option<ComposeSeen>, TargetError> {
        Ok(Some(super::adopt::seen(&self.engine, self.spec).await?))
    }

    fn address(&self, replica: &Replica) -> Option<String> {
        if self.spec.settings.proxy.network.is_some() {
            let ips = self.network_ips.lock().unwrap_or_else(|e| e.into_inner());
            let ip = *ips.get(&replica.id)?;
            return Some(SocketAddr::new(ip, self.spec.workload.port?).to_string());
        }
        replica.addr.map(|addr| crate::deploy::names::host_port(&self.spec.settings.proxy.host, addr.port()))
    }

    fn probe_address(&self, replica: &Replica) -> Option<String> {
        replica.addr.map(|addr| addr.to_string())
    }

    fn noun(&self) -> &'static str {
        "container(s)"
    }

    fn stop_verb(&self) -> &'static str {
        "stop"
    }
}

//! The Docker Engine target against the real engine: a busybox httpd replica is created,
//! started, turns healthy, answers HTTP on its published loopback port, is listed under its
//! service, is stopped and removed; a pull from a registry that does not exist fails with a
//! clear error.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::busybox::TestImage;
use common::{random_hex, require};
use imgctl::deploy::color::{Color, label};
use imgctl::deploy::docker::{ContainerSpec, DockerEngine, EngineError};
use imgctl::deploy::model::{ContainerState, Health, Healthcheck, Workload};

/// Removes every container of the test's service, however the test ends (the docker CLI, so
/// it works while unwinding and outside the runtime).
struct RemoveService(String);

impl Drop for RemoveService {
    fn drop(&mut self) {
        let filter = format!("label={}={}", label::SERVICE, self.0);
        let Ok(listed) = Command::new("docker").args(["ps", "-aq", "--filter", &filter]).output() else { return };
        for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", "-v", id]).output();
        }
    }
}

fn httpd_spec(service: &str, image: &str) -> ContainerSpec {
    let labels = [
        (label::SERVICE, service),
        (label::COLOR, "green"),
        (label::DIGEST, "sha256:0123"),
        (label::DEPLOY_ID, "test-deploy"),
        (label::REPLICA, "1"),
    ];
    ContainerSpec {
        name: format!("{service}-green-1"),
        image: image.to_owned(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        host_port: None,
        workload: Workload {
            command: Some(["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"].map(String::from).to_vec()),
            port: Some(8080),
            healthcheck: Some(Healthcheck {
                test: ["CMD", "/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/bin/busybox"]
                    .map(String::from)
                    .to_vec(),
                interval: Some(Duration::from_secs(1)),
                timeout: Some(Duration::from_secs(1)),
                retries: Some(3),
                start_period: None,
            }),
            ..Default::default()
        },
    }
}

/// The status code of `GET /bin/busybox` over a plain TCP connection.
fn http_status(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET /bin/busybox HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    head.split_whitespace().nth(1).unwrap_or_else(|| panic!("not an HTTP answer: {head:?}")).to_owned()
}

#[tokio::test]
async fn a_replica_runs_turns_healthy_answers_and_is_removed() {
    require("docker", "docker.io");
    let service = format!("imgctl-test-{}", random_hex(4));
    let image = TestImage::import(&format!("imgctl-test/httpd:{}", random_hex(4)));
    let _cleanup = RemoveService(service.clone());
    let engine = DockerEngine::connect().await.unwrap();
    let spec = httpd_spec(&service, &image.tags[0]);

    let id = engine.create(&spec).await.unwrap();
    let again = engine.create(&spec).await.unwrap_err();
    assert!(matches!(again, EngineError::NameInUse { ref name } if *name == spec.name), "{again:?}");
    let created = engine.inspect(&id).await.unwrap();
    assert_eq!((created.state, created.addr), (ContainerState::Created, None));

    engine.start(&id).await.unwrap();
    engine.start(&id).await.expect("starting a running container is fine");
    let deadline = Instant::now() + Duration::from_secs(30);
    let running = loop {
        let replica = engine.inspect(&id).await.unwrap();
        match replica.health {
            Health::Healthy => break replica,
            Health::Unhealthy => panic!("the replica turned unhealthy: {replica:?}"),
            _ if Instant::now() > deadline => panic!("not healthy after 30 s: {replica:?}"),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    };
    assert_eq!(running.state, ContainerState::Running);
    assert_eq!(running.name, spec.name);
    assert_eq!((running.color, running.index), (Color::Green, 1));
    assert_eq!((running.digest.as_str(), running.deploy_id.as_str()), ("sha256:0123", "test-deploy"));
    assert!(!running.created.is_empty());
    let addr = running.addr.expect("the port is published while running");
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 8080, "the engine picked an ephemeral host port");
    assert_eq!(http_status(addr), "200");

    let listed = engine.replicas(&service).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(engine.replicas(&format!("{service}-other")).await.unwrap().is_empty());

    engine.stop(&id, Duration::from_secs(2)).await.unwrap();
    engine.stop(&id, Duration::from_secs(2)).await.expect("stopping a stopped container is fine");
    let stopped = engine.inspect(&id).await.unwrap();
    assert_eq!((stopped.state, stopped.addr), (ContainerState::Exited, None));

    engine.remove(&id).await.unwrap();
    assert!(engine.replicas(&service).await.unwrap().is_empty());
    engine.remove(&id).await.expect("removing a removed container is fine");
    engine.stop(&id, Duration::from_secs(1)).await.expect("stopping a removed container is fine");
    let gone = engine.inspect(&id).await.unwrap_err();
    assert!(matches!(gone, EngineError::NotFound { .. }), "{gone:?}");
}

#[tokio::test]
async fn a_pull_from_nowhere_fails_with_the_reason() {
    require("docker", "docker.io");
    let engine = DockerEngine::connect().await.unwrap();
    let image = format!("127.0.0.1:1/nothing@sha256:{}", "0".repeat(64));
    assert!(!engine.has_image(&image).await.unwrap());

    let mut lines = Vec::new();
    let error = engine.pull(&image, None, &mut |line| lines.push(line.to_owned())).await.unwrap_err();
    let EngineError::PullFailed { image: failed, message } = &error else { panic!("{error:?}") };
    assert_eq!(failed, &image);
    assert!(message.contains("127.0.0.1:1"), "the engine's reason names the registry: {error}");
    assert!(error.to_string().starts_with(&format!("pulling {image} failed: ")), "{error}");
}

#[tokio::test]
async fn a_container_that_is_not_ours_is_not_a_replica() {
    require("docker", "docker.io");
    let service = format!("imgctl-test-{}", random_hex(4));
    let image = TestImage::import(&format!("imgctl-test/plain:{}", random_hex(4)));
    let _cleanup = RemoveService(service.clone());
    let engine = DockerEngine::connect().await.unwrap();
    // Labelled with the service, but without a color: damaged, so skipped rather than fatal.
    let spec = ContainerSpec {
        name: format!("{service}-damaged"),
        image: image.tags[0].clone(),
        labels: [(label::SERVICE.to_owned(), service.clone())].into(),
        ..Default::default()
    };
    let id = engine.create(&spec).await.unwrap();
    assert!(engine.replicas(&service).await.unwrap().is_empty());
    let error = engine.inspect(&id).await.unwrap_err();
    assert!(matches!(error, EngineError::NotAReplica { .. }), "{error:?}");
    engine.remove(&id).await.unwrap();
}

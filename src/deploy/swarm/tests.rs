//! The swarm service spec imgctl writes, and what it reads back.

use super::*;
use crate::deploy::color::label;

fn task(slot: u64, desired: &str, state: &str, image: &str) -> TaskInfo {
    TaskInfo {
        id: format!("task{slot}{state}"),
        slot,
        node: "n1".into(),
        image: image.into(),
        desired: desired.into(),
        state: state.into(),
        message: if state == "failed" { "started: task: non-zero exit (1)".into() } else { String::new() },
    }
}

#[test]
fn the_spec_pins_the_digest_and_carries_the_update_knobs() {
    let spec = SwarmServiceSpec {
        name: "web".into(),
        image: "r/web@sha256:aa".into(),
        replicas: 4,
        workload: Workload {
            command: Some(vec!["httpd".into()]),
            networks: vec!["front".into()],
            ..Default::default()
        },
        update_config: UpdateConfig {
            parallelism: 2,
            delay: Duration::from_secs(1),
            order: Order::StartFirst,
            failure_action: FailureAction::Rollback,
            ..UpdateConfig::default()
        },
        rollback_config: UpdateConfig { failure_action: FailureAction::Rollback, ..UpdateConfig::default() },
        ..Default::default()
    };
    let body = serde_json::to_value(service_spec(&spec).unwrap()).unwrap();
    assert_eq!(body["TaskTemplate"]["ContainerSpec"]["Image"], "r/web@sha256:aa");
    assert_eq!(body["TaskTemplate"]["ContainerSpec"]["Args"], serde_json::json!(["httpd"]));
    assert_eq!(body["TaskTemplate"]["Networks"][0]["Target"], "front");
    assert_eq!(body["Mode"]["Replicated"]["Replicas"], 4);
    let update = &body["UpdateConfig"];
    assert_eq!((update["Parallelism"].as_i64(), update["Delay"].as_i64()), (Some(2), Some(1_000_000_000)));
    assert_eq!((update["Order"].as_str(), update["FailureAction"].as_str()), (Some("start-first"), Some("rollback")));
    assert_eq!(body["RollbackConfig"]["FailureAction"], "pause", "a rollback cannot roll back");
    assert_eq!(body["RollbackConfig"]["Order"], "stop-first");
}

#[test]
fn every_task_runs_the_workload_with_imgctls_labels_over_its_own() {
    let spec = SwarmServiceSpec {
        name: "web-green".into(),
        image: "r/web@sha256:aa".into(),
        labels: [(label::COLOR.to_owned(), "green".to_owned())].into(),
        workload: Workload {
            entrypoint: Some(vec!["/bin/web".into()]),
            environment: vec!["A=1".into()],
            labels: [("team".to_owned(), "web".to_owned()), (label::COLOR.to_owned(), "purple".to_owned())].into(),
            stop_grace: Duration::from_secs(3),
            ..Default::default()
        },
        replicas: 1,
        ..Default::default()
    };
    let body = serde_json::to_value(service_spec(&spec).unwrap()).unwrap();
    let container = &body["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        (&container["Command"], &container["Env"]),
        (&serde_json::json!(["/bin/web"]), &serde_json::json!(["A=1"]))
    );
    assert_eq!(container["StopGracePeriod"], 3_000_000_000i64);
    let labels = serde_json::json!({"team": "web", "imgctl.color": "green"});
    assert_eq!((&body["Labels"], &container["Labels"]), (&labels, &labels));
}

#[test]
fn a_pinned_stack_spec_changes_the_image_and_imgctls_labels_only() {
    let live = serde_json::json!({
        "Name": "numbers_api",
        "Labels": {"com.docker.stack.namespace": "numbers", "com.docker.stack.image": "r/api:v1"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "r/api:v1@sha256:11",
                "Labels": {"com.docker.stack.namespace": "numbers"},
                "Secrets": [{"SecretName": "numbers_token", "SecretID": "s1", "File": {"Name": "token", "UID": "0", "GID": "0", "Mode": 256}}],
                "Env": ["A=1"],
            },
            "Networks": [{"Target": "n1", "Aliases": ["api"]}],
        },
        "Mode": {"Replicated": {"Replicas": 3}},
        "UpdateConfig": {"Parallelism": 1, "Order": "start-first"},
        "EndpointSpec": {"Mode": "vip"},
    });
    let mut spec: ServiceSpec = serde_json::from_value(live.clone()).unwrap();
    let labels = BTreeMap::from([(label::DIGEST.to_owned(), "sha256:22".to_owned())]);
    pin(&mut spec, "r/api@sha256:22", &labels);
    let mut expected = live;
    expected["TaskTemplate"]["ContainerSpec"]["Image"] = "r/api@sha256:22".into();
    expected["Labels"][label::DIGEST] = "sha256:22".into();
    assert_eq!(serde_json::to_value(&spec).unwrap(), expected);
}

#[test]
fn convergence_and_failure_reasons() {
    let new = "r/web@sha256:bb";
    let old = "r/web@sha256:aa";
    let done =
        [task(1, "running", "running", new), task(1, "shutdown", "shutdown", old), task(2, "running", "running", new)];
    assert!(converged(&done, new, 2));
    assert!(!converged(&done, new, 3), "a replica is missing");
    let halfway = [task(1, "running", "running", new), task(2, "running", "running", old)];
    assert!(!converged(&halfway, new, 2));
    let starting = [task(1, "running", "starting", new), task(2, "running", "running", new)];
    assert!(!converged(&starting, new, 2), "a task still in its health check");
    let failing = [task(1, "shutdown", "failed", new), task(1, "running", "running", old)];
    assert_eq!(failure_reason(&failing).unwrap(), "task task1failed (slot 1): started: task: non-zero exit (1)");
    assert_eq!(failure_reason(&done), None);
}

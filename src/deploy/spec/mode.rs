//! compose `deploy.mode`: `replicated` (the default: `deploy.replicas` tasks) or `global` (one
//! task on every swarm node). Global mode is applied where swarm runs the update itself
//! (target swarm, strategy rolling); elsewhere it is refused, saying why.

use serde_json::Value;

use super::{DeploySettings, Strategy, Target};

/// Whether `deploy` asks for global mode where it can run; why not, otherwise.
pub(super) fn global(deploy: Option<&Value>, settings: &DeploySettings) -> Result<bool, String> {
    let Some(mode) = deploy.and_then(|d| d.get("mode")).filter(|m| !m.is_null()) else { return Ok(false) };
    match mode.as_str() {
        Some("replicated") => Ok(false),
        Some("global") if settings.target != Target::Swarm => Err(
            "global runs one task on every swarm node: set x-imgctl.target: swarm and strategy: rolling (one Docker Engine has no nodes to spread over)".into(),
        ),
        Some("global") if settings.strategy != Strategy::Rolling => Err(format!(
            "global with strategy {}: both colors would need a task on every node while imgctl counts each color's replicas; use strategy: rolling (swarm's own update, node by node)",
            settings.strategy.as_str()
        )),
        Some("global") if deploy.and_then(|d| d.get("replicas")).is_some_and(|r| !r.is_null()) => {
            Err("global with deploy.replicas: a global service runs one task per node; remove deploy.replicas".into())
        }
        Some("global") => Ok(true),
        Some(jobs @ ("replicated-job" | "global-job")) => {
            Err(format!("{jobs}: a job runs to completion, and imgctl deploys long-running services"))
        }
        Some(other) => Err(format!("{other}: replicated (the default) or global")),
        None => Err(format!("{mode}: replicated (the default) or global")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::deploy::spec::parse;

    fn yaml(deploy: &str, extension: &str) -> String {
        format!(
            "services:\n  web:\n    image: r/web\n    expose: [8080]\n    healthcheck: {{test: [CMD, /bin/true]}}\n    deploy: {deploy}\n    x-imgctl: {extension}\n"
        )
    }

    #[test]
    fn global_mode_on_a_swarm_rolling_update_and_refused_elsewhere_by_name() {
        let spec = |deploy: &str, extension: &str| parse(&yaml(deploy, extension), Path::new("c.yaml"), "web");
        assert!(spec("{mode: global}", "{target: swarm, strategy: rolling}").unwrap().global);
        assert!(spec("{mode: global}", "{stack: s1}").unwrap().global, "a stack's service");
        assert!(!spec("{mode: replicated}", "{target: swarm, strategy: rolling}").unwrap().global);
        assert!(!spec("{replicas: 2}", "{target: swarm, strategy: rolling}").unwrap().global);
        let refused = |deploy: &str, extension: &str| spec(deploy, extension).map(|_| ()).unwrap_err().to_string();
        for (deploy, extension, says) in [
            (
                "{mode: global}",
                "{proxy: {upstream_file: u}}",
                "services.web.deploy.mode: global runs one task on every swarm node: set x-imgctl.target: swarm",
            ),
            (
                "{mode: global}",
                "{target: swarm, strategy: blue-green, swarm: {network: n}, proxy: {upstream_file: u}}",
                "deploy.mode: global with strategy blue-green",
            ),
            ("{mode: global, replicas: 3}", "{target: swarm, strategy: rolling}", "remove deploy.replicas"),
            (
                "{mode: global-job}",
                "{target: swarm, strategy: rolling}",
                "deploy.mode: global-job: a job runs to completion",
            ),
            (
                "{mode: everywhere}",
                "{target: swarm, strategy: rolling}",
                "deploy.mode: everywhere: replicated (the default) or global",
            ),
        ] {
            let text = refused(deploy, extension);
            assert!(text.contains(says), "{deploy} {extension}: {text}");
        }
    }
}

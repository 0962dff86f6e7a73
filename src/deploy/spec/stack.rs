//! `x-imgctl.stack: NAME` (or `imgctl deploy --stack NAME`): the service is one of a stack that
//! `docker stack deploy` made, the swarm service `NAME_SERVICE`.
//!
//! The stack's spec is `docker stack deploy`'s: its labels, networks and their aliases,
//! secrets, configs, mounts, placement, replicas, update and rollback settings. imgctl pins the
//! image by digest in that live spec and adds its own labels; the compose file's other keys
//! (secrets and configs too) are not applied. Two writers of one spec would undo each other on every run, and
//! the team that keeps `docker stack deploy` for the stack keeps its file as the one truth of
//! everything but the digest. So a stack service is only ever updated in place (target swarm,
//! strategy rolling: swarm's own update), never created by imgctl, and never run as colors.

use super::{ServiceSpec, SpecError, Strategy, Target};
use crate::deploy::names;

impl ServiceSpec {
    /// The swarm service this spec updates: `STACK_SERVICE` in a stack, else the service name.
    pub fn swarm_service(&self) -> String {
        match &self.settings.swarm.stack {
            Some(stack) => format!("{stack}_{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The name this service's lock and history are kept under: a stack's service is
    /// `STACK_SERVICE` (two stacks may each have an `api`, and neither may take the other's
    /// lock or roll back to the other's digest), any other service its own name.
    pub fn record_name(&self) -> String {
        self.swarm_service()
    }

    /// `--stack NAME`, which wins over `x-imgctl.stack`; refused as that key is.
    pub fn in_stack(mut self, stack: &str) -> Result<Self, SpecError> {
        if let Some(why) = refusal(stack, self.settings.target, self.settings.strategy) {
            return Err(SpecError::Invalid { path: self.compose_file.clone(), message: format!("--stack {why}") });
        }
        self.settings.swarm.stack = Some(stack.to_owned());
        Ok(self)
    }
}

/// `x-imgctl.stack`, checked against the target and strategy it needs.
pub(super) fn read(stack: Option<String>, target: Target, strategy: Strategy) -> Result<Option<String>, String> {
    match stack {
        Some(stack) => match refusal(&stack, target, strategy) {
            Some(why) => Err(format!("stack {why}")),
            None => Ok(Some(stack)),
        },
        None => Ok(None),
    }
}

/// Why `stack` cannot be deployed with this target and strategy (`None`: it can).
fn refusal(stack: &str, target: Target, strategy: Strategy) -> Option<String> {
    if !names::is_service_name(stack) {
        return Some(format!("{stack:?}: a stack name is {}", names::SERVICE_RULE));
    }
    if target != Target::Swarm {
        return Some(format!(
            "{stack}: a stack is a set of swarm services (docker stack deploy); set x-imgctl.target: swarm"
        ));
    }
    if strategy != Strategy::Rolling {
        return Some(format!(
            "{stack} with strategy {}: a stack's service is updated in place by swarm's own update (strategy rolling); {} runs two services of imgctl's own, which the stack does not know",
            strategy.as_str(),
            strategy.as_str()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::deploy::spec::{Strategy, Target, parse};

    fn yaml(extension: &str) -> String {
        format!(
            "services:\n  api:\n    image: r/api\n    expose: [8080]\n    healthcheck: {{test: [CMD, /bin/true]}}\n    x-imgctl: {extension}\n"
        )
    }

    #[test]
    fn a_stack_service_is_named_as_stack_deploy_names_it() {
        let spec =
            parse(&yaml("{target: swarm, strategy: rolling, stack: numbers}"), Path::new("c.yaml"), "api").unwrap();
        assert_eq!(spec.settings.swarm.stack.as_deref(), Some("numbers"));
        assert_eq!(spec.swarm_service(), "numbers_api");
        let plain = parse(&yaml("{target: swarm, strategy: rolling}"), Path::new("c.yaml"), "api").unwrap();
        assert_eq!(plain.swarm_service(), "api");
        assert_eq!(plain.in_stack("other").unwrap().swarm_service(), "other_api", "--stack");
        let spec = parse(&yaml("{target: swarm, strategy: rolling, stack: a}"), Path::new("c.yaml"), "api").unwrap();
        assert_eq!(spec.in_stack("b").unwrap().swarm_service(), "b_api", "--stack wins over the key");
        let bare = parse(&yaml("{stack: numbers}"), Path::new("c.yaml"), "api").unwrap();
        assert_eq!(
            (bare.settings.target, bare.settings.strategy),
            (Target::Swarm, Strategy::Rolling),
            "a stack's defaults"
        );
    }

    #[test]
    fn a_stack_is_refused_off_swarm_with_colors_and_with_a_hostile_name() {
        let refused =
            |extension: &str| parse(&yaml(extension), Path::new("c.yaml"), "api").map(|_| ()).unwrap_err().to_string();
        let engine = refused("{target: engine, stack: numbers}");
        assert!(engine.contains("stack numbers: a stack is a set of swarm services"), "{engine}");
        let colors = refused("{target: swarm, strategy: blue-green, stack: numbers}");
        assert!(
            colors.contains("stack numbers with strategy blue-green: a stack's service is updated in place"),
            "{colors}"
        );
        let canary = refused("{target: swarm, strategy: canary, stack: numbers}");
        assert!(canary.contains("with strategy canary"), "{canary}");
        for hostile in ["\"a;b\"", "\"-x\"", "\"a b\"", "\"\"", "\"a/b\""] {
            let text = refused(&format!("{{target: swarm, strategy: rolling, stack: {hostile}}}"));
            assert!(text.contains("a stack name is a letter or digit"), "{hostile}: {text}");
        }
        let blue_green = parse(&yaml("{proxy: {upstream_file: u}}"), Path::new("c.yaml"), "api").unwrap();
        let flag = blue_green.in_stack("numbers").unwrap_err().to_string();
        assert!(flag.contains("c.yaml: --stack numbers: a stack is a set of swarm services"), "{flag}");
        let rolling = parse(&yaml("{target: swarm, strategy: rolling}"), Path::new("c.yaml"), "api").unwrap();
        let flag = rolling.in_stack("a;b").unwrap_err().to_string();
        assert!(flag.contains("--stack \"a;b\": a stack name"), "{flag}");
    }
}

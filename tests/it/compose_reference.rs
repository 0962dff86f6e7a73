//! imgctl resolves compose files as compose does, checked against Debian's docker-compose
//! (1.29) as the reference: for each project of `tests/compose/`, `imgctl config SERVICE -o
//! json` must equal `docker-compose ... config`, field by field, for the fields imgctl uses
//! (image, command, entrypoint, environment, user, working_dir, labels, volumes, networks,
//! healthcheck, restart, stop_signal, stop_grace_period, expose, deploy.replicas,
//! update_config, rollback_config). Both run with the same environment and working directory.
//!
//! Where compose v2's specification and 1.29 differ, imgctl follows v2 and the test says so:
//! `${VAR:+alt}`/`${VAR+alt}` and nested defaults (1.29 refuses them), `env_file`'s long form
//! `{path, required}` (1.29 refuses it), the order of merged lists (1.29 sorts `expose`,
//! `volumes`...; v2 and imgctl keep the order written, and imgctl reads the first `expose` as
//! the port; the comparison below is by value, not by place).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Map, Value, json};

use crate::common::IMGCTL;

mod runtime_fields;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compose");

/// One run of both tools.
struct Case {
    /// The folder under tests/compose.
    dir: &'static str,
    /// `-f` files in order (none: the default name, or COMPOSE_FILE).
    files: &'static [&'static str],
    /// `--env-file`.
    env_file: Option<&'static str>,
    /// The process environment (besides PATH and HOME).
    env: &'static [(&'static str, &'static str)],
    /// The services compared.
    services: &'static [&'static str],
}

const CHAIN: &[&str] = &["compose.yaml", "prod.yml", "prod-healthcheck.yml", "prod-update-config.yml", "v3.yml"];

const CASES: &[Case] = &[
    // Overrides in a chain of five files, the way production runs compose.
    Case { dir: "overrides", files: CHAIN, env_file: None, env: &[], services: &["web"] },
    Case { dir: "overrides", files: &["compose.yaml", "prod.yml"], env_file: None, env: &[], services: &["web"] },
    // The same chain named by COMPOSE_FILE, with its separator.
    Case {
        dir: "overrides",
        files: &[],
        env_file: None,
        env: &[("COMPOSE_FILE", "compose.yaml:prod.yml:prod-healthcheck.yml:prod-update-config.yml:v3.yml")],
        services: &["web"],
    },
    Case {
        dir: "overrides",
        files: &[],
        env_file: None,
        env: &[("COMPOSE_FILE", "compose.yaml,prod.yml,v3.yml"), ("COMPOSE_PATH_SEPARATOR", ",")],
        services: &["web"],
    },
    // Every interpolation form 1.29 knows, the project's .env under the process environment.
    Case {
        dir: "interpolation",
        files: &[],
        env_file: None,
        env: &[("TAG", "1.4-shell"), ("RUN_AS", "1000")],
        services: &["web"],
    },
    Case {
        dir: "interpolation",
        files: &["compose.yaml"],
        env_file: None,
        env: &[("TAG", "2.0"), ("RUN_AS", "nobody"), ("PORT", "9090"), ("INTERVAL", "500ms"), ("EMPTY", "set")],
        services: &["web"],
    },
    // --env-file replaces .env.
    Case {
        dir: "interpolation",
        files: &[],
        env_file: Some("ci.env"),
        env: &[("TAG", "1.4-shell"), ("RUN_AS", "1000")],
        services: &["web"],
    },
    // env_file as a string and as a list, dotenv's syntax, environment over it.
    Case {
        dir: "env_file",
        files: &[],
        env_file: None,
        env: &[("SHELL_VAR", "from-shell"), ("FROM_SHELL", "fs")],
        services: &["web", "worker"],
    },
    // extends in the same file and from another, with its relative paths.
    Case { dir: "extends", files: &[], env_file: None, env: &[], services: &["web", "api"] },
    // YAML anchors, aliases and merge keys, x- fragments.
    Case { dir: "anchors", files: &[], env_file: None, env: &[], services: &["web", "api"] },
    // The CPU, swap, OOM, block I/O, process and session keys, deploy.placement, deploy.labels
    // and deploy.restart_policy, as people write them (numbers as strings, sizes, durations).
    Case { dir: "keys", files: &[], env_file: None, env: &[], services: &["web"] },
];

fn corpus(dir: &str) -> PathBuf {
    Path::new(CORPUS).join(dir)
}

/// Runs `program` in `dir` with only PATH, a scratch HOME and `env`.
fn run(program: &str, dir: &Path, args: &[String], env: &[(&str, &str)]) -> Output {
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose_reference_home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e} (tests/setup.sh installs docker-compose)"))
}

fn file_args(case: &Case) -> Vec<String> {
    let mut args = Vec::new();
    for file in case.files {
        args.extend(["-f".to_owned(), (*file).to_owned()]);
    }
    if let Some(env_file) = case.env_file {
        args.extend(["--env-file".to_owned(), env_file.to_owned()]);
    }
    args
}

/// `docker-compose ... config`, parsed, its `$$` read back as `$`.
fn compose_config(dir: &Path, args: &[String], env: &[(&str, &str)]) -> Result<Value, String> {
    let mut all = args.to_vec();
    all.push("config".into());
    let out = run("docker-compose", dir, &all, env);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut value: Value = serde_norway::from_slice(&out.stdout).expect("docker-compose config prints YAML");
    unescape(&mut value);
    Ok(value)
}

fn unescape(value: &mut Value) {
    match value {
        Value::String(s) => *s = s.replace("$$", "$"),
        Value::Array(list) => list.iter_mut().for_each(unescape),
        Value::Object(map) => map.values_mut().for_each(unescape),
        _ => {}
    }
}

fn imgctl_config(dir: &Path, service: &str, args: &[String], env: &[(&str, &str)]) -> Result<Value, (i32, String)> {
    let mut all = vec!["config".to_owned(), service.to_owned()];
    all.extend(args.iter().cloned());
    all.extend(["-o".to_owned(), "json".to_owned()]);
    let out = run(IMGCTL, dir, &all, env);
    if !out.status.success() {
        return Err((out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(serde_json::from_slice(&out.stdout).expect("imgctl config -o json prints JSON"))
}

/// A compose duration in milliseconds (`1m30s`, `500ms`, `2s`).
fn ms(value: &Value) -> Option<u64> {
    let text = value.as_str()?;
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        total += number
            * match &rest[..unit] {
                "ms" => 1.0,
                "s" | "" => 1000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                other => panic!("unit {other:?} in {text:?}"),
            };
        rest = &rest[unit..];
    }
    Some(total as u64)
}

/// compose's command forms as the argv docker runs (a string is split as a shell would; the
/// corpus quotes nothing).
fn argv(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(s)) => json!(s.split_whitespace().collect::<Vec<_>>()),
        Some(list @ Value::Array(_)) => list.clone(),
        _ => Value::Null,
    }
}

/// A volume as (source, target, read-only).
fn mount(value: &Value) -> (String, String, bool) {
    match value {
        Value::Object(long) => (
            long.get("source").and_then(Value::as_str).unwrap_or_default().to_owned(),
            long["target"].as_str().unwrap().to_owned(),
            long.get("read_only").and_then(Value::as_bool).unwrap_or(false),
        ),
        other => {
            let parts: Vec<&str> = other.as_str().unwrap().split(':').collect();
            match parts.as_slice() {
                [target] => (String::new(), (*target).to_owned(), false),
                [source, target] => ((*source).to_owned(), (*target).to_owned(), false),
                [source, target, mode] => {
                    ((*source).to_owned(), (*target).to_owned(), mode.split(',').any(|m| m == "ro"))
                }
                _ => panic!("volume {other}"),
            }
        }
    }
}

/// Every field imgctl uses, compose's value against imgctl's; the differences found.
fn differences(compose: &Map<String, Value>, imgctl: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut expect = |field: &str, theirs: Value, ours: Value| {
        if theirs != ours {
            found.push(format!("{field}: docker-compose {theirs}, imgctl {ours}"));
        }
    };
    let get = |key: &str| compose.get(key).cloned().unwrap_or(Value::Null);
    for key in ["image", "user", "working_dir", "restart", "stop_signal"] {
        expect(key, get(key), imgctl[key].clone());
    }
    expect("command", argv(compose.get("command")), imgctl["command"].clone());
    expect("entrypoint", argv(compose.get("entrypoint")), imgctl["entrypoint"].clone());
    expect("environment", compose.get("environment").cloned().unwrap_or(json!({})), imgctl["environment"].clone());
    expect("labels", compose.get("labels").cloned().unwrap_or(json!({})), imgctl["labels"].clone());
    let mut theirs: Vec<_> =
        compose.get("volumes").and_then(Value::as_array).into_iter().flatten().map(mount).collect();
    let mut ours: Vec<_> = imgctl["volumes"].as_array().unwrap().iter().map(mount).collect();
    theirs.sort();
    ours.sort();
    expect("volumes", json!(theirs), json!(ours));
    let mut networks: Vec<String> = match compose.get("networks") {
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        Some(Value::Array(list)) => list.iter().map(|n| n.as_str().unwrap().to_owned()).collect(),
        _ => Vec::new(),
    };
    networks.sort();
    let mut ours: Vec<String> =
        imgctl["networks"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().into()).collect();
    ours.sort();
    expect("networks", json!(networks), json!(ours));
    // imgctl serves on one port: the first expose; 1.29 sorts expose, so membership is what
    // both agree on.
    if let Some(Value::Array(expose)) = compose.get("expose") {
        let port = imgctl["port"].to_string();
        let listed = expose.iter().any(|p| p.as_str() == Some(port.as_str()));
        expect("port in expose", json!(true), json!(listed));
    }
    let stop_grace = compose.get("stop_grace_period").map(ms).unwrap_or(Some(10_000));
    expect("stop_grace_period", json!(stop_grace), json!(ms(&imgctl["stop_grace_period"])));
    match compose.get("healthcheck") {
        None => {}
        Some(hc) => {
            let test = match &hc["test"] {
                Value::String(s) => json!(["CMD-SHELL", s]),
                other => other.clone(),
            };
            expect("healthcheck.test", test, imgctl["healthcheck"]["test"].clone());
            for key in ["interval", "timeout", "start_period"] {
                expect(
                    &format!("healthcheck.{key}"),
                    json!(hc.get(key).and_then(ms)),
                    json!(ms(&imgctl["healthcheck"][key])),
                );
            }
            expect(
                "healthcheck.retries",
                hc.get("retries").cloned().unwrap_or(Value::Null),
                imgctl["healthcheck"]["retries"].clone(),
            );
        }
    }
    let deploy = compose.get("deploy").cloned().unwrap_or(json!({}));
    expect("deploy.replicas", deploy.get("replicas").cloned().unwrap_or(json!(1)), imgctl["replicas"].clone());
    for config in ["update_config", "rollback_config"] {
        for (key, theirs) in deploy.get(config).and_then(Value::as_object).into_iter().flatten() {
            let ours = &imgctl[config][key];
            let (theirs, ours) = match key.as_str() {
                "delay" | "monitor" => (json!(ms(theirs)), json!(ms(ours))),
                "max_failure_ratio" => (json!(theirs.as_f64()), json!(ours.as_f64())),
                _ => (theirs.clone(), ours.clone()),
            };
            expect(&format!("deploy.{config}.{key}"), theirs, ours);
        }
    }
    found.extend(runtime_fields::differences(compose, &imgctl["runtime"]));
    found
}

#[test]
fn imgctl_resolves_each_service_as_docker_compose_1_29_does() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in CASES {
        let dir = corpus(case.dir);
        let args = file_args(case);
        let compose = compose_config(&dir, &args, case.env)
            .unwrap_or_else(|e| panic!("docker-compose refused {} {args:?}: {e}", case.dir));
        for service in case.services {
            let theirs = compose["services"][*service].as_object().unwrap_or_else(|| panic!("{service} in {compose}"));
            let ours = imgctl_config(&dir, service, &args, case.env).unwrap_or_else(|(code, e)| {
                panic!("imgctl config {service} in {} {args:?}: exit {code}: {e}", case.dir)
            });
            for difference in differences(theirs, &ours) {
                failures.push(format!("{} {args:?} {service}: {difference}", case.dir));
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(compared, 14, "every service of every case compared");
}

#[test]
fn where_compose_v2_and_1_29_differ_imgctl_follows_v2() {
    let dir = corpus("interpolation");
    let args = ["-f".to_owned(), "v2-only.yml".to_owned()];
    let env = [("TAG", "t")];
    // 1.29's TemplateWithDefaults knows `:-`, `-`, `:?` and `?` only.
    let refused = compose_config(&dir, &args, &env).unwrap_err();
    assert!(refused.contains("Invalid interpolation format"), "{refused}");
    let ours = imgctl_config(&dir, "web", &args, &env).unwrap();
    assert_eq!(
        ours["environment"],
        json!({"ALT_COLON_SET": "tagged", "ALT_COLON_EMPTY": "", "ALT_DASH_EMPTY": "defined", "ALT_UNSET": "", "NESTED": "t"})
    );

    // env_file's long form is compose v2.24's; 1.29's schema takes strings only.
    let dir = corpus("env_file");
    let args = ["-f".to_owned(), "long.yml".to_owned()];
    let refused = compose_config(&dir, &args, &[]).unwrap_err();
    assert!(refused.contains("env_file contains"), "{refused}");
    let ours = imgctl_config(&dir, "web", &args, &[]).unwrap();
    assert_eq!(ours["environment"]["OVERRIDDEN"], "by-file", "common.env read, the optional missing.env skipped");

    // In an env file, 1.29's python-dotenv resolves ${VAR} from the process alone and
    // interpolates inside single quotes; v2 and imgctl see the project's .env too and keep
    // single quotes literal. Both keep a bare $VAR as written (v2 would expand it).
    let dir = corpus("env_file_differences");
    let theirs = compose_config(&dir, &[], &[]).unwrap();
    let ours = imgctl_config(&dir, "web", &[], &[]).unwrap();
    let theirs = &theirs["services"]["web"]["environment"];
    assert_eq!(
        (&theirs["FROM_DOTENV"], &theirs["SINGLE"], &theirs["BARE"]),
        (&json!("not seen"), &json!(""), &json!("$DOTENV_ONLY")),
        "1.29: the process has no DOTENV_ONLY, and single quotes do not stop it"
    );
    let ours = &ours["environment"];
    assert_eq!(
        (&ours["FROM_DOTENV"], &ours["SINGLE"], &ours["BARE"]),
        (&json!("from-dotenv"), &json!("${DOTENV_ONLY}"), &json!("$DOTENV_ONLY"))
    );
}

#[test]
fn a_missing_required_variable_stops_both_with_its_message() {
    let dir = corpus("interpolation");
    let args = ["-f".to_owned(), "required.yml".to_owned()];
    let theirs = compose_config(&dir, &args, &[]).unwrap_err();
    assert!(theirs.contains("set RELEASE to the version to deploy"), "{theirs}");
    let (code, ours) = imgctl_config(&dir, "web", &args, &[]).unwrap_err();
    assert_eq!(code, 2, "a configuration error");
    assert_eq!(
        ours,
        format!("error: {}/required.yml: services.web.image: set RELEASE to the version to deploy\n", dir.display())
    );
    // Set, both resolve it.
    let env = [("RELEASE", "3.1")];
    assert_eq!(compose_config(&dir, &args, &env).unwrap()["services"]["web"]["image"], "registry.example.com/web:3.1");
}

#[test]
fn the_default_file_is_found_in_a_parent_directory_as_both_composes_find_it() {
    // A project folder with its override file, run from two folders below it.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compose_parent_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let deeper = root.join("src/deeper");
    std::fs::create_dir_all(&deeper).unwrap();
    std::fs::write(
        root.join("compose.yaml"),
        "x-imgctl: {health: {path: /h}, proxy: {upstream_file: u.conf}}\nservices:\n  web:\n    image: registry.example.com/web:${TAG:-1}\n    expose: ['8080']\n    volumes: ['./data:/data']\n    environment: [MODE=base]\n",
    )
    .unwrap();
    std::fs::write(root.join("compose.override.yml"), "services:\n  web:\n    environment: [MODE=override]\n").unwrap();
    let theirs = compose_config(&deeper, &[], &[]).unwrap();
    let ours = imgctl_config(&deeper, "web", &[], &[]).unwrap();
    let web = theirs["services"]["web"].as_object().unwrap();
    assert_eq!(differences(web, &ours), Vec::<String>::new());
    assert_eq!(ours["files"], json!([root.join("compose.yaml"), root.join("compose.override.yml")]));
    assert_eq!(ours["environment"]["MODE"], "override");
    assert_eq!(mount(&ours["volumes"][0]).0, root.join("data").display().to_string(), "relative to the file's folder");

    // The project's .env: v2 reads it (after the working directory's, for what is unset), and
    // imgctl follows v2; 1.29 reads the working directory's only.
    std::fs::write(root.join(".env"), "TAG=from-project\n").unwrap();
    assert_eq!(compose_config(&deeper, &[], &[]).unwrap()["services"]["web"]["image"], "registry.example.com/web:1");
    assert_eq!(imgctl_config(&deeper, "web", &[], &[]).unwrap()["image"], "registry.example.com/web:from-project");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn every_refused_key_is_refused_by_name() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose_reference_refusals");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "container_name: web-1",
            "services.web.container_name: the two colors run side by side and cannot share one container name",
        ),
        ("build: .", "services.web.build: imgctl deploys an image a registry holds, by digest"),
        ("network_mode: host", "services.web.network_mode: the two colors must each have their own network stack"),
        ("links: [db]", "services.web.links: links bind to one container"),
        ("volumes_from: [db]", "services.web.volumes_from:"),
        // Applied now (tests/it/secrets.rs); one the top level does not define is refused.
        ("secrets: [token]", "services.web.secrets[0]: \"token\" is not defined in the top-level secrets:"),
        ("configs: [nginx_conf]", "services.web.configs[0]: \"nginx_conf\" is not defined in the top-level configs:"),
        ("scale: 2", "services.web.scale: set deploy.replicas"),
        ("mac_address: 02:42:ac:11:00:02", "services.web.mac_address: the two colors run at the same time"),
        ("cpu_count: 2", "services.web.cpu_count: imgctl does not apply it yet"),
        ("platform: linux/arm64", "services.web.platform: imgctl pins the digest the registry holds"),
        ("deploy: {mode: global}", "services.web.deploy.mode: global runs one task on every swarm node"),
        ("deploy: {endpoint_mode: dnsrr}", "services.web.deploy.endpoint_mode: not yet supported"),
        ("enviroment: {A: '1'}", "services.web.enviroment: not a compose key (did you mean environment?)"),
        ("helthcheck: {test: [CMD, 'true']}", "services.web.helthcheck: not a compose key (did you mean healthcheck?)"),
    ];
    for (key, expected) in cases {
        let text = format!(
            "x-imgctl: {{health: {{path: /h}}, proxy: {{upstream_file: u.conf}}}}\nservices:\n  web:\n    image: r/web:1\n    expose: ['8080']\n    {key}\n  db: {{image: r/db:1}}\n"
        );
        std::fs::write(dir.join("compose.yaml"), text).unwrap();
        let (code, stderr) = imgctl_config(&dir, "web", &[], &[]).unwrap_err();
        assert_eq!(code, 2, "{key}: {stderr}");
        let expected = format!("error: {}/compose.yaml: {expected}", dir.display());
        assert!(stderr.starts_with(&expected), "{key}:\n{stderr}\nexpected it to start with\n{expected}");
    }
    // Accepted, with a note on stderr.
    let text = "x-imgctl: {health: {path: /h}, proxy: {upstream_file: u.conf}}\nservices:\n  web:\n    image: r/web:1\n    expose: ['8080']\n    depends_on: [db]\n    profiles: [web]\n  db: {image: r/db:1}\n";
    std::fs::write(dir.join("compose.yaml"), text).unwrap();
    let out = run(IMGCTL, &dir, &["config".into(), "web".into()], &[]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("note: depends_on is ignored (imgctl deploys this service alone"), "{stderr}");
    assert!(stderr.contains("note: profiles is ignored"), "{stderr}");
}

/// Removes the service's containers, also after a failure.
struct Containers(String);

impl Containers {
    fn ids(&self) -> Vec<String> {
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=imgctl.service={}", self.0)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect()
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for id in self.ids() {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
    }
}

#[test]
fn a_deploy_from_two_files_and_an_env_file_runs_what_config_shows() {
    use crate::common::nginx::Nginx;
    use crate::common::web::WebImages;
    use crate::common::{TestHome, assert_success, random_hex};

    let service = format!("cfg{}", random_hex(3));
    let images = WebImages::build("compose-deploy");
    let nginx = Nginx::start(&service);
    let mut home = TestHome::new("compose-deploy");
    images.login(&mut home);
    let containers = Containers(service.clone());
    let dir = home.dir.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
    let base = format!(
        r#"x-imgctl:
  health: {{path: /health, interval: 200ms, deadline: 20s}}
  keep_warm: 1s
  drain: 200ms
  proxy: {{upstream_file: {upstream}, test: {test}, reload: {reload}}}
services:
  {service}:
    image: ${{REPO:?set REPO to the repository}}:v1
    expose: ["8080"]
    stop_signal: SIGKILL
    env_file: [app.env]
    environment:
      GREETING: ${{GREETING:-hello}}
      FROM_SHELL:
    labels: {{release: "${{RELEASE}}"}}
"#,
        upstream = nginx.upstream_file.display(),
        test = json(nginx.test_command()),
        reload = json(nginx.reload_command()),
    );
    std::fs::write(dir.join("compose.yaml"), base).unwrap();
    std::fs::write(
        dir.join("prod.yaml"),
        format!("services:\n  {service}:\n    environment: [MODE=prod]\n    deploy: {{replicas: 2}}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("app.env"), "# the app's own\nAPP_NAME=\"the app\"\nMODE=dev\n").unwrap();
    std::fs::write(dir.join("ci.env"), "GREETING=hi from ci\nRELEASE=r42\n").unwrap();
    let files = ["-f", "compose.yaml", "-f", "prod.yaml", "--env-file", "ci.env"];
    let imgctl = |args: &[&str]| {
        home.command(IMGCTL)
            .args(args)
            .args(files)
            .current_dir(&dir)
            .env("REPO", &images.repo)
            .env("FROM_SHELL", "shell")
            .output()
            .unwrap()
    };
    let expected = ["APP_NAME=the app", "MODE=prod", "GREETING=hi from ci", "FROM_SHELL=shell"];

    let shown = imgctl(&["config", &service, "-o", "json"]);
    assert_success(&shown, "imgctl config");
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shown["environment"],
        json!({"APP_NAME": "the app", "MODE": "prod", "GREETING": "hi from ci", "FROM_SHELL": "shell"})
    );
    assert_eq!(shown["replicas"], 2);

    let out = imgctl(&["deploy", &service, "--digest", &images.v1.digest]);
    assert_success(&out, "imgctl deploy from two files and an env file");
    let ids = containers.ids();
    assert_eq!(ids.len(), 2, "deploy.replicas from the override");
    for id in &ids {
        let inspect = Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{index .Config.Labels \"release\"}}|{{.Config.Image}}|{{json .Config.Env}}",
                id,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&inspect.stdout).trim().to_owned();
        let mut parts = text.splitn(3, '|');
        let (release, image, env) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let env: Vec<String> = serde_json::from_str(env).unwrap_or_else(|e| panic!("{e}: {text}"));
        for entry in expected {
            assert!(env.iter().any(|e| e == entry), "{id}: {entry} not in {env:?}");
        }
        assert!(!env.iter().any(|e| e == "MODE=dev"), "environment wins over env_file: {env:?}");
        assert_eq!((release, image), ("r42", images.v1.image.as_str()), "{id}");
    }
}

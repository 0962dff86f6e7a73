//! The loader, table-driven over in-memory files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

fn files(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    list.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_owned())).collect()
}

fn env(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn request(f: &[&str], environment: &[(&str, &str)]) -> Request {
    Request {
        files: f.iter().map(PathBuf::from).collect(),
        env_files: Vec::new(),
        environment: env(environment),
        cwd: "/srv/app".into(),
        stack: None,
        project_name: None,
    }
}

fn web(request: &Request, fs: &BTreeMap<PathBuf, String>) -> Loaded {
    load(request, fs, "web").unwrap_or_else(|e| panic!("{e}"))
}

const BASE: &str = "
x-imgctl: {keep_warm: 1m, proxy: {upstream_file: u}}
services:
  web:
    image: ${REGISTRY:-127.0.0.1:5000}/team/web:${TAG:-latest}
    command: [httpd, -f]
    environment: {MODE: prod, FROM_SHELL: null, LITERAL: $$HOME}
    expose: ['8080']
    volumes: ['./data:/data', 'logs:/logs']
    healthcheck: {test: [CMD, 'true'], interval: 2s}
    deploy: {replicas: '${REPLICAS:-2}', update_config: {parallelism: 2}}
    x-imgctl: {health: {path: /h}}
  db: {image: postgres, build: ., container_name: db}
";

const PROD: &str = "
services:
  web:
    command: httpd -f -v
    environment: [MODE=production, EXTRA=1]
    expose: ['80']
    volumes: ['/srv/data:/data:ro']
    healthcheck: {retries: 5}
    deploy: {update_config: {delay: 1s}}
    x-imgctl: {keep_warm: 5s}
";

#[test]
fn files_merge_in_order_with_composes_rules() {
    let fs =
        files(&[("/srv/app/compose.yaml", BASE), ("/srv/app/prod/prod.yml", PROD), ("/srv/app/.env", "TAG=1.4\n")]);
    let loaded = web(&request(&["compose.yaml", "prod/prod.yml"], &[("FROM_SHELL", "s")]), &fs);
    assert_eq!(loaded.files, [Path::new("/srv/app/compose.yaml"), Path::new("/srv/app/prod/prod.yml")]);
    assert_eq!(loaded.dir, Path::new("/srv/app"));
    let b = &loaded.body;
    assert_eq!(b["image"], "127.0.0.1:5000/team/web:1.4");
    assert_eq!(b["command"], "httpd -f -v");
    assert_eq!(
        Value::Object(b["environment"].as_object().unwrap().clone()),
        json!({"MODE": "production", "FROM_SHELL": "s", "LITERAL": "$HOME", "EXTRA": "1"})
    );
    assert_eq!(b["expose"], json!(["8080", "80"]));
    assert_eq!(b["volumes"], json!(["/srv/data:/data:ro", "logs:/logs"]), "paths of override files are the project's");
    assert_eq!(b["healthcheck"], json!({"test": ["CMD", "true"], "interval": "2s", "retries": 5}));
    assert_eq!(b["deploy"], json!({"replicas": 2, "update_config": {"parallelism": 2, "delay": "1s"}}));
    assert_eq!(loaded.extension, json!({"keep_warm": "5s", "proxy": {"upstream_file": "u"}, "health": {"path": "/h"}}));
    assert_eq!(
        loaded.notes,
        [
            "expose: only the first port is served through imgctl (set x-imgctl.port to choose); the others are not published"
        ]
    );
}

#[test]
fn compose_file_and_its_separator_and_the_default_names() {
    let fs = files(&[("/srv/app/compose.yaml", BASE), ("/srv/app/prod/prod.yml", PROD)]);
    let both = web(&request(&[], &[("COMPOSE_FILE", "compose.yaml:prod/prod.yml")]), &fs);
    assert_eq!(both.body["command"], "httpd -f -v");
    let comma =
        web(&request(&[], &[("COMPOSE_FILE", "compose.yaml,prod/prod.yml"), ("COMPOSE_PATH_SEPARATOR", ",")]), &fs);
    assert_eq!(comma.files.len(), 2);
    // COMPOSE_FILE may come from the project's .env too.
    let mut fs_env = fs.clone();
    fs_env.insert("/srv/app/.env".into(), "COMPOSE_FILE=compose.yaml:prod/prod.yml\n".into());
    assert_eq!(web(&request(&[], &[]), &fs_env).files.len(), 2);
    // -f wins over COMPOSE_FILE.
    assert_eq!(web(&request(&["compose.yaml"], &[("COMPOSE_FILE", "nope.yml")]), &fs).files.len(), 1);
    // Without either: the default name, and its override file.
    let mut defaults = files(&[("/srv/app/docker-compose.yml", BASE), ("/srv/app/docker-compose.override.yml", PROD)]);
    assert_eq!(web(&request(&[], &[]), &defaults).body["command"], "httpd -f -v");
    defaults.remove(Path::new("/srv/app/docker-compose.yml"));
    assert!(matches!(load(&request(&[], &[]), &defaults, "web"), Err(ConfigError::NoComposeFile)));
}

#[test]
fn the_process_environment_wins_over_env_files() {
    let fs = files(&[
        ("/srv/app/compose.yaml", BASE),
        ("/srv/app/.env", "TAG=from-dotenv\nREGISTRY=reg.dotenv\n"),
        ("/srv/app/ci.env", "TAG=from-ci\n"),
        ("/tmp/later.env", "REGISTRY=reg.later\n"),
    ]);
    let image = |r: Request| web(&r, &fs).body["image"].as_str().unwrap().to_owned();
    assert_eq!(image(request(&["compose.yaml"], &[])), "reg.dotenv/team/web:from-dotenv");
    assert_eq!(image(request(&["compose.yaml"], &[("TAG", "shell")])), "reg.dotenv/team/web:shell");
    // --env-file replaces .env; several are read in order, later ones winning.
    let mut r = request(&["compose.yaml"], &[]);
    r.env_files = vec!["ci.env".into(), "/tmp/later.env".into()];
    assert_eq!(image(r), "reg.later/team/web:from-ci");
    let mut missing = request(&["compose.yaml"], &[]);
    missing.env_files = vec!["nope.env".into()];
    assert!(
        matches!(load(&missing, &fs, "web"), Err(ConfigError::Read { path, .. }) if path == Path::new("/srv/app/nope.env"))
    );
}

#[test]
fn a_required_variable_stops_the_load_naming_file_and_key() {
    let text = "services:\n  web:\n    image: 'r/web:${TAG:?set TAG to the release}'\n";
    let fs = files(&[("/srv/app/compose.yaml", text)]);
    let error = load(&request(&["compose.yaml"], &[]), &fs, "web").unwrap_err();
    assert_eq!(error.to_string(), "/srv/app/compose.yaml: services.web.image: set TAG to the release");
    assert!(matches!(error, ConfigError::Interpolation { problem: InterpolationError::Required { .. }, .. }));
    let bad = files(&[("/srv/app/compose.yaml", "services:\n  web:\n    environment: ['P=pa$1']\n")]);
    let error = load(&request(&["compose.yaml"], &[]), &bad, "web").unwrap_err().to_string();
    assert!(error.contains("services.web.environment[0]: invalid interpolation"), "{error}");
}

#[test]
fn unset_variables_are_noted() {
    let fs = files(&[("/srv/app/compose.yaml", "services:\n  web: {image: 'r/web:$TAG', user: '${USER_ID}'}\n")]);
    let loaded = web(&request(&["compose.yaml"], &[]), &fs);
    assert_eq!(loaded.body["image"], "r/web:");
    assert_eq!(
        loaded.notes,
        [
            "the variable TAG is not set: an empty string is substituted",
            "the variable USER_ID is not set: an empty string is substituted"
        ]
    );
}

#[test]
fn env_file_in_every_form_under_environment() {
    let text = "
services:
  web:
    image: x
    env_file: [common.env, {path: ./local.env, required: false}, {path: secret.env, required: true}]
    environment: {B: own}
  single: {image: x, env_file: common.env}
  optional: {image: x, env_file: [{path: missing.env, required: false}]}
  missing: {image: x, env_file: missing.env}
";
    let fs = files(&[
        ("/srv/app/compose.yaml", text),
        ("/srv/app/common.env", "A=common\nB=common\nC=${TAG:-none}\nFROM_ENV\n"),
        ("/srv/app/secret.env", "C=secret\n"),
    ]);
    let r = request(&["compose.yaml"], &[("TAG", "t"), ("FROM_ENV", "e")]);
    let loaded = web(&r, &fs);
    assert_eq!(
        Value::Object(loaded.body["environment"].as_object().unwrap().clone()),
        json!({"A": "common", "B": "own", "C": "secret", "FROM_ENV": "e"})
    );
    assert!(!loaded.body.contains_key("env_file"));
    assert_eq!(load(&r, &fs, "single").unwrap().body["environment"]["C"], "t");
    assert_eq!(load(&r, &fs, "optional").unwrap().body["environment"], json!({}));
    let error = load(&r, &fs, "missing").unwrap_err();
    assert!(matches!(&error, ConfigError::Read { path, .. } if path == Path::new("/srv/app/missing.env")), "{error}");
    let bad = files(&[("/srv/app/compose.yaml", text), ("/srv/app/common.env", "A=1\nnot a binding\n")]);
    let error = load(&r, &bad, "single").unwrap_err().to_string();
    assert_eq!(error, "/srv/app/common.env: line 2: not KEY=VALUE");
}

#[test]
fn extends_the_same_file_and_another_with_paths_rebased() {
    let text = "
services:
  base: {image: x, environment: {A: base, B: base}, volumes: ['./data:/data'], expose: ['80']}
  web:
    extends: base
    environment: {B: web}
  other:
    extends: {file: ../common/common.yml, service: app}
    command: own
  chain: {extends: web, user: nobody}
  loop1: {extends: loop2}
  loop2: {extends: loop1}
  lost: {extends: nowhere}
";
    let common = "
services:
  root: {image: common, env_file: common.env, volumes: ['./cache:/cache', 'named:/named']}
  app: {extends: root, command: theirs, labels: [from=common]}
";
    let fs = files(&[
        ("/srv/app/compose.yaml", text),
        ("/srv/common/common.yml", common),
        ("/srv/common/common.env", "FROM_COMMON=1\n"),
    ]);
    let r = request(&["compose.yaml"], &[]);
    let web_ = web(&r, &fs);
    assert_eq!(web_.body["environment"], json!({"A": "base", "B": "web"}));
    assert_eq!(web_.body["volumes"], json!(["/srv/app/data:/data"]));
    assert!(!web_.body.contains_key("extends"));
    let other = load(&r, &fs, "other").unwrap().body;
    assert_eq!(other["image"], "common");
    assert_eq!(other["command"], "own");
    assert_eq!(other["labels"], json!({"from": "common"}));
    assert_eq!(other["volumes"], json!(["/srv/common/cache:/cache", "named:/named"]), "rebased on the other file");
    assert_eq!(other["environment"], json!({"FROM_COMMON": "1"}), "its env_file too");
    assert_eq!(load(&r, &fs, "chain").unwrap().body["environment"]["B"], "web");
    let circle = load(&r, &fs, "loop1").unwrap_err().to_string();
    assert!(circle.contains("extends runs in a circle: loop1 -> loop2 -> loop1"), "{circle}");
    let lost = load(&r, &fs, "lost").unwrap_err().to_string();
    assert!(lost.contains("services.lost.extends: there is no service \"nowhere\""), "{lost}");
}

#[test]
fn anchors_and_merge_keys_and_x_fragments() {
    let text = "
x-common: &common
  restart: always
  environment: &env {A: '1'}
x-anything: {whatever: [1, 2]}
services:
  web:
    <<: *common
    image: x
    labels: *env
    x-notes: free text
";
    let fs = files(&[("/srv/app/compose.yaml", text)]);
    let loaded = web(&request(&["compose.yaml"], &[]), &fs);
    assert_eq!(loaded.body["restart"], "always");
    assert_eq!(loaded.body["environment"], json!({"A": "1"}));
    assert_eq!(loaded.body["labels"], json!({"A": "1"}));
    assert!(loaded.notes.is_empty(), "x- keys are compose's to ignore: {:?}", loaded.notes);
}

#[test]
fn every_key_is_applied_noted_or_refused_by_name() {
    let service = |body: &str| {
        let fs = files(&[(
            "/srv/app/compose.yaml",
            &*format!("services:\n  web: {{image: x, {body}}}\n  db: {{build: .}}\n"),
        )]);
        load(&request(&["compose.yaml"], &[]), &fs, "web")
    };
    for (body, expected) in [
        ("container_name: web", "services.web.container_name: the two colors run side by side"),
        ("build: .", "services.web.build: imgctl deploys an image a registry holds"),
        ("network_mode: host", "services.web.network_mode: the two colors must each have their own network stack"),
        ("links: [db]", "services.web.links: links bind to one container"),
        ("scale: 3", "services.web.scale: set deploy.replicas"),
        ("mac_address: 02:42:ac:11:00:02", "services.web.mac_address"),
        ("enviroment: {A: 1}", "services.web.enviroment: not a compose key (did you mean environment?)"),
        ("frobnicate: 1", "services.web.frobnicate: not a compose key"),
        ("deploy: {endpoint_mode: dnsrr}", "services.web.deploy.endpoint_mode: not yet supported"),
        ("deploy: {replica: 2}", "services.web.deploy.replica: not a compose key (did you mean replicas?)"),
        ("log_driver: syslog", "services.web.log_driver: set logging.driver"),
        (
            "healthcheck: {test: [CMD, 'true'], intervall: 2s}",
            "services.web.healthcheck.intervall: not a compose key (did you mean interval?)",
        ),
        (
            "healthcheck: {test: [CMD, 'true'], start_interval: 1s}",
            "services.web.healthcheck.start_interval: not yet supported",
        ),
    ] {
        let error = service(body).unwrap_err().to_string();
        assert!(error.starts_with("/srv/app/compose.yaml: "), "{body}: {error}");
        assert!(error.contains(expected), "{body}: {error}");
    }
    let noted = service("depends_on: [db], profiles: [web], network_mode: bridge, deploy: {mode: replicated}").unwrap();
    assert_eq!(noted.notes.len(), 4, "{:?}", noted.notes);
    assert!(
        noted.notes[0].starts_with("depends_on is ignored (imgctl deploys this service alone"),
        "{:?}",
        noted.notes
    );
    let ports = service("ports: ['8080:80', {target: 81, published: 8081}], expose: ['80']").unwrap();
    assert_eq!(
        ports.notes,
        [
            "ports: the host side of 8080:80, 8081:81 is not published: each replica's port is published at a host port Docker picks (the two colors would clash on a fixed one), and the proxy reaches it there"
        ]
    );
    let two = service("expose: ['80', '81']").unwrap();
    assert_eq!(
        two.notes,
        [
            "expose: only the first port is served through imgctl (set x-imgctl.port to choose); the others are not published"
        ]
    );
    assert!(service("ports: ['80']").unwrap().notes.is_empty());
    let files = service("secrets: [token], configs: [conf]").unwrap();
    assert!(files.notes.is_empty(), "secrets and configs are applied: {:?}", files.notes);
    for runtime in [
        "cap_add: [NET_ADMIN]",
        "read_only: true",
        "deploy: {resources: {limits: {memory: 64M}}}",
        "ulimits: {nofile: 1024}",
    ] {
        assert!(service(runtime).is_ok(), "{runtime}");
    }
}

#[test]
fn an_interpolated_port_in_the_top_level_block_is_a_number() {
    let text = "x-imgctl: {port: '${PORT:-8080}', auto_promote: '${AUTO:-false}'}\nservices:\n  web: {image: x}\n";
    let fs = files(&[("/srv/app/compose.yaml", text)]);
    let loaded = web(&request(&["compose.yaml"], &[]), &fs);
    assert_eq!(loaded.extension, json!({"port": 8080, "auto_promote": false}));
}

#[test]
fn refusals_of_shape() {
    let one = |text: &str| {
        let fs = files(&[("/srv/app/compose.yaml", text)]);
        load(&request(&["compose.yaml"], &[]), &fs, "web").unwrap_err().to_string()
    };
    assert!(one("services: [").contains("/srv/app/compose.yaml: did not find expected node content"));
    assert_eq!(one("- a\n"), "/srv/app/compose.yaml: not a compose file: the top level is not a mapping");
    assert_eq!(one("services: [web]\n"), "/srv/app/compose.yaml: services is not a mapping");
    assert_eq!(one("services: {api: {image: x}}\n"), "/srv/app/compose.yaml has no service \"web\" (it has: api)");
    assert_eq!(
        one("servics: {web: {image: x}}\n"),
        "/srv/app/compose.yaml: servics: not a compose top-level key (did you mean services?)"
    );
    assert_eq!(
        one("include: [other.yaml]\n"),
        "/srv/app/compose.yaml: include: not yet supported: name each file with -f"
    );
}

#[test]
fn a_stack_file_loads_with_the_keys_imgctl_would_refuse_noted_not_refused() {
    let stack_file = "services:\n  api:\n    image: r/api:1\n    secrets: [token]\n    deploy: {endpoint_mode: dnsrr}\nsecrets:\n  token: {external: true}\n";
    let fs: BTreeMap<PathBuf, String> = [(PathBuf::from("/srv/app/stack.yml"), stack_file.to_owned())].into();
    let alone = load(&request(&["stack.yml"], &[]), &fs, "api").unwrap_err().to_string();
    assert!(alone.contains("services.api.deploy.endpoint_mode: not yet supported"), "{alone}");
    let in_stack = Request { stack: Some("numbers".into()), ..request(&["stack.yml"], &[]) };
    let loaded = load(&in_stack, &fs, "api").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.extension["stack"], "numbers", "--stack is x-imgctl.stack");
    assert_eq!((&loaded.extension["target"], &loaded.extension["strategy"]), (&"swarm".into(), &"rolling".into()));
    assert_eq!(loaded.definitions["secrets"]["token"], json!({"external": true}), "secrets are applied");
    assert!(!loaded.notes.iter().any(|n| n.starts_with("secrets")), "{:?}", loaded.notes);
    assert!(
        loaded.notes.iter().any(|n| n.starts_with("deploy.endpoint_mode is ignored (a stack's service keeps")),
        "{:?}",
        loaded.notes
    );
    let typo = "services:\n  api:\n    image: r/api:1\n    x-imgctl: {stack: numbers}\n    enviroment: {A: 1}\n";
    let fs: BTreeMap<PathBuf, String> = [(PathBuf::from("/srv/app/stack.yml"), typo.to_owned())].into();
    let error = load(&request(&["stack.yml"], &[]), &fs, "api").unwrap_err().to_string();
    assert!(error.contains("enviroment: not a compose key"), "a key compose does not know is still refused: {error}");
}

#[test]
fn the_default_file_is_searched_upwards_and_its_folder_is_the_project() {
    // compose v2 (compose-go WithDefaultConfigPath) and docker-compose 1.29 both walk up from
    // the working directory to the nearest folder with a default name.
    let fs = files(&[
        ("/srv/app/compose.yaml", BASE),
        ("/srv/app/docker-compose.yml", "services: {web: {image: not-this}}"),
        ("/srv/app/compose.override.yml", PROD),
        ("/srv/app/.env", "TAG=from-project\nREGISTRY=reg.project\n"),
        ("/srv/app/src/deeper/.env", "TAG=from-cwd\n"),
    ]);
    let mut from_below = request(&[], &[]);
    from_below.cwd = "/srv/app/src/deeper".into();
    let loaded = web(&from_below, &fs);
    assert_eq!(loaded.files, [PathBuf::from("/srv/app/compose.yaml"), PathBuf::from("/srv/app/compose.override.yml")]);
    assert_eq!(loaded.dir, Path::new("/srv/app"));
    assert_eq!(loaded.body["volumes"], json!(["/srv/data:/data:ro", "logs:/logs"]));
    // v2 reads the working directory's .env, then the project's for what is still unset.
    assert_eq!(loaded.body["image"], "reg.project/team/web:from-cwd");
    assert_eq!(
        loaded.env_files,
        [PathBuf::from("/srv/app/src/deeper/.env"), PathBuf::from("/srv/app/.env")],
        "both .env files, in the order read"
    );
    assert!(
        loaded.notes.iter().any(|n| n == "/srv/app also has docker-compose.yml: using compose.yaml (as compose does)"),
        "{:?}",
        loaded.notes
    );

    // compose v2's order within one folder: docker-compose.yml before docker-compose.yaml.
    let both = files(&[
        ("/srv/app/docker-compose.yaml", "services: {web: {image: yaml}}"),
        ("/srv/app/docker-compose.yml", "services: {web: {image: yml}}"),
    ]);
    assert_eq!(web(&request(&[], &[]), &both).body["image"], "yml");

    // Nothing up to the root: the error says where imgctl looked.
    let error = load(&from_below, &files(&[("/srv/other/compose.yaml", BASE)]), "web").unwrap_err().to_string();
    assert!(error.starts_with("no compose file here or in a parent directory (looked for compose.yaml"), "{error}");
}

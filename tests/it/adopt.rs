//! Moving a service `docker-compose up -d` runs to imgctl, against real peers: Debian's
//! docker-compose 1.29 starts the service (a busybox httpd image pulled from a real
//! `docker-registry`) behind a real nginx, and the first `imgctl deploy` takes compose's
//! containers over as the live color under `Connection: close` and keep-alive load: the new
//! version starts beside them, passes its gate, traffic switches, compose's containers are
//! drained and stopped (kept), and `imgctl rollback` starts them again.
#![allow(clippy::print_stderr)]

use crate::common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::load::{self, Load, Mode, Tally};
use common::nginx::Nginx;
use common::registry::free_port;
use common::web::WebImages;
use common::{IMGCTL, TestHome, assert_success, random_hex, stderr, stdout};

/// A compose project on this engine, taken down (`docker-compose down`) when dropped, also
/// after a failure.
struct ComposeProject {
    file: PathBuf,
    name: String,
    home: PathBuf,
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .arg("-f")
            .arg(&self.file)
            .args(["-p", &self.name, "down", "-t", "0"])
            .env("HOME", &self.home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Whatever `down` could not reach (the file gone, a container renamed).
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("label=com.docker.compose.project={}", self.name)])
            .output()
            .map(|o| stdout(&o))
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

/// One service compose runs, an nginx in front of it, the registry with its versions, and a
/// HOME with the credential. Fields drop in order: the project first.
struct Site {
    project: Option<ComposeProject>,
    service: String,
    images: WebImages,
    nginx: Nginx,
    home: TestHome,
    /// The compose project's folder.
    dir: PathBuf,
    /// The host port compose publishes the service on.
    port: u16,
}

impl Site {
    /// The project folder is `folder` (its name is the project's unless one is given).
    fn new(name: &str, folder: &str) -> Self {
        common::require("docker-compose", "docker-compose");
        let service = format!("{name}{}", random_hex(3));
        let images = WebImages::build(name);
        let nginx = Nginx::start(&service);
        let mut home = TestHome::new(name);
        images.login(&mut home);
        let dir = home.dir.join(folder);
        fs::create_dir_all(&dir).unwrap();
        // compose finds v1 in the engine, pulled from the registry (it keeps the repo digest
        // imgctl pins a rollback to).
        let v1 = format!("{}:v1", images.repo);
        assert_success(&images.docker().args(["pull", &v1]).output().unwrap(), "docker pull v1");
        let site = Self { project: None, service, images, nginx, home, dir, port: free_port() };
        site.write_compose();
        site
    }

    /// compose.yaml: the same file for docker-compose and imgctl.
    fn write_compose(&self) {
        let json = |v: Vec<String>| serde_json::to_string(&v).unwrap();
        let text = format!(
            r#"services:
  {service}:
    image: {repo}:v1
    ports: ["127.0.0.1:{port}:8080"]
    # busybox httpd as PID 1 ignores SIGTERM; it is out of traffic when it is stopped.
    stop_signal: SIGKILL
    x-imgctl:
      health: {{path: /health, interval: 200ms, healthy_threshold: 2, deadline: 20s}}
      keep_warm: 1s
      # At least nginx's settle time (1s): old workers of a slow reload finish meanwhile.
      drain: 2s
      proxy:
        upstream_file: {upstream}
        test: {test}
        reload: {reload}
        verify_url: {verify}
"#,
            service = self.service,
            repo = self.images.repo,
            port = self.port,
            upstream = self.nginx.upstream_file.display(),
            test = json(self.nginx.test_command()),
            reload = json(self.nginx.reload_command()),
            verify = self.nginx.url("/health"),
        );
        fs::write(self.dir.join("compose.yaml"), text).unwrap();
    }

    /// `docker-compose ARGS` in the project folder, with this HOME and docker config.
    fn compose(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out =
            self.home.command("docker-compose").args(args).envs(env.iter().copied()).current_dir(&self.dir).output();
        out.unwrap()
    }

    /// `docker-compose [-p NAME] up -d`, then waits until compose's container answers v1.
    fn compose_up(&mut self, project: &str, by_flag: bool) {
        let flag: &[&str] = if by_flag { &["-p", project] } else { &[] };
        let up = self.compose(&[flag, &["up", "-d"]].concat(), &[]);
        assert_success(&up, "docker-compose up -d");
        self.project = Some(ComposeProject {
            file: self.dir.join("compose.yaml"),
            name: project.to_owned(),
            home: self.home.dir.clone(),
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while load::get(self.compose_addr(), "/").map(|r| r.text().trim().to_owned()).ok().as_deref() != Some("v1") {
            assert!(Instant::now() < deadline, "compose's container never answered on {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn compose_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The user's nginx before the move: its upstream file (included in `http {}`) sends
    /// traffic to compose's published port; written by hand, so imgctl has no state yet.
    fn point_nginx_at_compose(&self) {
        let text = format!("upstream {} {{ server 127.0.0.1:{}; }}\n", self.service, self.port);
        fs::write(&self.nginx.upstream_file, text).unwrap();
        self.reload_nginx();
        assert_eq!(self.serving(), "v1");
    }

    fn reload_nginx(&self) {
        let reloads = self.nginx.reloads();
        let argv = self.nginx.reload_command();
        assert!(Command::new(&argv[0]).args(&argv[1..]).status().unwrap().success(), "nginx -s reload");
        self.nginx.wait_reloaded(reloads + 1);
    }

    fn imgctl(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = self.home.command(IMGCTL);
        command.args(args).envs(env.iter().copied()).current_dir(&self.dir).stdin(Stdio::null());
        command.output().unwrap()
    }

    fn serving(&self) -> String {
        load::get(self.nginx.addr(), "/").expect("GET / through nginx").text().trim().to_owned()
    }

    fn status(&self, env: &[(&str, &str)]) -> serde_json::Value {
        let out = self.imgctl(&["status", &self.service, "-o", "json"], env);
        assert_success(&out, "status");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// compose's containers of the project: (name, state) as `docker ps -a` sees them.
    fn compose_containers(&self, project: &str) -> Vec<(String, String)> {
        let out = Command::new("docker")
            .args(["ps", "-a", "--filter", &format!("label=com.docker.compose.project={project}")])
            .args(["--format", "{{.Names}} {{.State}}"])
            .output()
            .unwrap();
        let mut list: Vec<(String, String)> =
            stdout(&out).lines().filter_map(|l| l.split_once(' ').map(|(n, s)| (n.to_owned(), s.to_owned()))).collect();
        list.sort();
        list
    }

    fn load(&self, mode: Mode) -> Load {
        Load::start(self.nginx.addr(), "/", mode, 3)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.project.take();
        common::remove_service_containers(&self.service);
    }
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", stdout(out), stderr(out)))
}

/// A `Connection: close` load saw no failure and served `versions` (and only those).
fn assert_clean(tally: &Tally, versions: &[&str], what: &str) {
    assert!(tally.ok > 50, "{what}: too few requests to judge ({tally:?})");
    assert_eq!(tally.failed(), 0, "{what}: failed requests through nginx: {:?}", tally.errors);
    let seen: Vec<&str> = tally.by_body.keys().map(String::as_str).collect();
    assert_eq!(seen, versions, "{what}: versions served");
}

/// Runs `action` under both kinds of load; the deploy's output and what each load saw.
fn under_load(site: &Site, action: impl FnOnce() -> Output) -> (Output, Tally, Tally) {
    let close = site.load(Mode::Close);
    let keep_alive = site.load(Mode::KeepAlive);
    std::thread::sleep(Duration::from_millis(500));
    let out = action();
    std::thread::sleep(Duration::from_millis(500));
    (out, close.stop(), keep_alive.stop())
}

#[test]
fn the_first_deploy_takes_over_a_compose_project_under_load_and_rollback_gives_it_back() {
    let mut site = Site::new("adopt", "app");
    let project = format!("mv{}", random_hex(4));
    site.compose_up(&project, true);
    site.point_nginx_at_compose();
    let compose_name = format!("{project}_{}_1", site.service);
    // imgctl is told the project the way compose is: COMPOSE_PROJECT_NAME.
    let env = [("COMPOSE_PROJECT_NAME", project.as_str())];

    let v2 = site.images.v2.digest.clone();
    let (out, close, keep_alive) =
        under_load(&site, || site.imgctl(&["deploy", &site.service, "--digest", &v2, "-o", "json"], &env));
    assert_success(&out, "deploy v2 over compose's v1");
    assert_clean(&close, &["v1", "v2"], "Connection: close clients during the move");
    // compose's container is stopped, not removed: docker ps -a still lists it (a deploy that
    // ignored it would leave two copies running).
    assert_eq!(site.compose_containers(&project), [(compose_name.clone(), "exited".to_owned())]);
    let result = report(&out);
    assert_eq!(
        (result["outcome"].as_str(), result["color"].as_str(), result["previous_color"].as_str()),
        (Some("succeeded"), Some("green"), Some("blue"))
    );
    assert_eq!(result["adopted"].as_str(), Some(project.as_str()));
    assert_eq!(result["previous_digest"], site.images.v1.digest.as_str(), "compose's digest, from the registry");
    eprintln!("Connection: close clients during the move: {close:?}");
    eprintln!("keep-alive clients during the move: {keep_alive:?}");
    assert!(keep_alive.ok > 50 && keep_alive.by_body.contains_key("v2"), "{keep_alive:?}");
    assert!(
        stderr(&out).contains(&format!("taking over compose project {project}: {compose_name}")),
        "{}",
        stderr(&out)
    );

    assert_eq!(site.serving(), "v2");
    let after = site.status(&env);
    assert_eq!(after["live"], "green", "{after}");
    let states: Vec<(String, String, String, String)> = after["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (field("name"), field("color"), field("state"), field("source"))
        })
        .collect();
    assert_eq!(
        states,
        [
            (compose_name.clone(), "blue".into(), "exited".into(), "compose".into()),
            (format!("{}-green-1", site.service), "green".into(), "running".into(), "imgctl".into()),
        ],
        "{after}"
    );
    let text = site.imgctl(&["status", &site.service], &env);
    assert!(stdout(&text).contains(&format!("{compose_name} (compose)")), "{}", stdout(&text));

    // The way back: compose's own container serves again, nothing pulled or created.
    let (out, close, keep_alive) = under_load(&site, || site.imgctl(&["rollback", &site.service, "-o", "json"], &env));
    assert_success(&out, "rollback to compose's container");
    if close.failed() > 0 {
        // What the rollback did and what nginx met, for the failure below.
        eprintln!("rollback:\n{}\nnginx:\n{}", stderr(&out), site.nginx.logs());
    }
    let result = report(&out);
    assert_eq!(
        (result["digest"].as_str(), result["color"].as_str()),
        (Some(site.images.v1.digest.as_str()), Some("blue"))
    );
    assert_eq!(
        result["image"].as_str(),
        Some(site.images.v1.image.as_str()),
        "compose's image, pinned in the registry"
    );
    let steps: Vec<&str> = result["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(!steps.iter().any(|s| s.starts_with("pull")) && steps.first() == Some(&"start blue x1"), "{steps:?}");
    assert_clean(&close, &["v1", "v2"], "Connection: close clients during the rollback");
    eprintln!("Connection: close clients during the rollback: {close:?}");
    eprintln!("keep-alive clients during the rollback: {keep_alive:?}");
    assert_eq!(site.serving(), "v1");
    assert_eq!(site.compose_containers(&project), [(compose_name.clone(), "running".to_owned())]);
    assert_eq!(load::get(site.compose_addr(), "/").unwrap().text().trim(), "v1", "at compose's own port");
    assert_eq!(site.status(&env)["live"], "blue");

    // The history says what was taken over.
    let history = site.imgctl(&["history", &site.service, "-o", "json"], &env);
    assert_success(&history, "history");
    let records: Vec<serde_json::Value> = serde_json::from_slice(&history.stdout).unwrap();
    assert_eq!(records[0]["adopted"].as_str(), Some(project.as_str()), "{records:?}");
}

#[test]
fn the_project_name_comes_from_p_the_environment_or_the_folder_and_unsafe_moves_are_refused() {
    let folder = format!("Shop.{}", random_hex(3));
    let mut site = Site::new("adoptname", &folder);
    let project = folder.to_lowercase().replace('.', "");
    // No -p: docker-compose 1.29 names the project after the folder, lowercased, '.' dropped.
    site.compose_up(&project, false);
    // No upstream file of imgctl's yet (nginx reaches compose's port by its own configuration):
    // switching the file would move no traffic, so a move is refused, naming --adopt.
    fs::remove_file(&site.nginx.upstream_file).unwrap();
    let out = site.imgctl(&["deploy", &site.service, "--digest", &site.images.v2.digest], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist, so nginx cannot be sending"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--adopt"), "{}", stderr(&out));
    site.point_nginx_at_compose();
    let compose_name = format!("{project}_{}_1", site.service);
    // Before any move, status shows compose's container as the color it will stand for.
    let before = site.status(&[]);
    assert_eq!(before["live"], serde_json::Value::Null, "{before}");
    let replicas = before["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 1, "{before}");
    assert_eq!(
        (replicas[0]["name"].as_str(), replicas[0]["source"].as_str(), replicas[0]["color"].as_str()),
        (Some(compose_name.as_str()), Some("compose"), Some("blue"))
    );
    let upstream_before = fs::read_to_string(&site.nginx.upstream_file).unwrap();
    let v2 = site.images.v2.digest.clone();
    let deploy = ["deploy", site.service.as_str(), "--digest", v2.as_str()];

    let config = site.imgctl(&["config", &site.service, "-o", "json"], &[]);
    assert_success(&config, "config");
    let view: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(view["project"]["name"], project.as_str(), "{view}");
    assert!(view["project"]["from"].as_str().unwrap().starts_with("the folder name of"), "{view}");

    // From the folder, from -p, from COMPOSE_PROJECT_NAME: the dry run plans the take-over.
    let other = format!("other{}", random_hex(3));
    for (extra, env) in [
        (vec![], vec![]),
        (vec!["-p", project.as_str()], vec![("COMPOSE_PROJECT_NAME", other.as_str())]),
        (vec![], vec![("COMPOSE_PROJECT_NAME", project.as_str())]),
    ] {
        let out = site.imgctl(&[&deploy[..], &extra, &["--dry-run"]].concat(), &env);
        assert_success(&out, "dry run");
        let plan = stdout(&out);
        assert!(
            plan.contains(&format!("taking over compose project {project}: {project}_")),
            "{extra:?} {env:?}: {plan}"
        );
        assert!(plan.contains("stop (kept for a rollback) blue replicas all"), "{plan}");
    }

    // A project compose does not run the service in: refused by name, nothing changed.
    for (extra, env, from) in [
        (vec!["-p", other.as_str()], vec![], "(from -p)"),
        (vec![], vec![("COMPOSE_PROJECT_NAME", other.as_str())], "(from COMPOSE_PROJECT_NAME in the environment)"),
    ] {
        let out = site.imgctl(&[&deploy[..], &extra].concat(), &env);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let expected = format!(
            "compose runs {} in project {project}, and imgctl takes its project to be {other} {from}",
            site.service
        );
        assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    }
    // Not one compose accepts: refused with the name it would be.
    let out = site.imgctl(&[&deploy[..], &["-p", "My.Shop"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("did you mean \"myshop\"?"), "{}", stderr(&out));

    // compose's container stopped: nothing to take over safely.
    assert_success(&site.compose(&["stop", "-t", "0"], &[]), "docker-compose stop");
    let out = site.imgctl(&deploy, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is exited: imgctl takes over running containers only"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&site.nginx.upstream_file).unwrap(), upstream_before, "nginx untouched");
    let ours = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=imgctl.service={}", site.service)])
        .output()
        .unwrap();
    assert_eq!(stdout(&ours).trim(), "", "no container started");

    // --adopt writes the first upstream file from compose's container and changes nothing else.
    assert_success(&site.compose(&["start"], &[]), "docker-compose start");
    let out = site.imgctl(&["deploy", &site.service, "--adopt", "-o", "json"], &[]);
    assert_success(&out, "deploy --adopt");
    let result = report(&out);
    assert_eq!((result["action"].as_str(), result["live_color"].as_str()), (Some("adopt"), Some("blue")));
    let upstream = fs::read_to_string(&site.nginx.upstream_file).unwrap();
    assert!(upstream.contains(&format!("server 127.0.0.1:{} weight=1;", site.port)), "{upstream}");
    assert!(upstream.contains("# imgctl-state: "), "{upstream}");
    assert_eq!(site.serving(), "v1");
    // Then an ordinary deploy moves off compose's container.
    let out = site.imgctl(&[&deploy[..], &["-o", "json"]].concat(), &[]);
    assert_success(&out, "deploy after --adopt");
    assert_eq!(report(&out)["adopted"], project.as_str(), "the move is the adoption's run too");
    assert_eq!(site.serving(), "v2");
    assert_eq!(site.compose_containers(&project), [(compose_name, "exited".to_owned())]);
}

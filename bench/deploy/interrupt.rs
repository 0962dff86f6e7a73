//! Ctrl-C and SIGTERM end a run through the harness's Drop guards: the signal only sets a flag,
//! and the main thread, which checks it between steps and while it waits for a child, unwinds
//! with an [`Interrupted`] panic. Every container, service, network, image, peer process and
//! directory the guards own is then removed as after a failure; the swarm is left as found.
//!
//! On a terminal, Ctrl-C reaches the whole foreground process group: wrk, imgctl and docker
//! die with it at once, and the flag is seen within a few milliseconds. A SIGTERM sent to this
//! process alone is seen as soon as the current child is killed (at most [`POLL`] later).

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How often a wait looks at the flag and the child.
const POLL: Duration = Duration::from_millis(5);

/// The panic payload of an interrupted run: main exits 130 once the guards have dropped.
pub struct Interrupted;

/// Listens for SIGINT and SIGTERM on a thread of its own for the rest of the process.
pub fn install() {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
            let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if !INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("deploy bench: interrupted; removing what this run started...");
                }
            }
        });
    });
    // An interrupted run is not a crash: no "panicked at" message for it.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<Interrupted>().is_none() {
            default(info);
        }
    }));
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Unwinds (through every Drop guard) if a signal came.
pub fn check() {
    if interrupted() {
        std::panic::panic_any(Interrupted);
    }
}

/// Sleeps, checking the flag.
pub fn sleep(duration: Duration) {
    let end = Instant::now() + duration;
    loop {
        check();
        let now = Instant::now();
        if now >= end {
            return;
        }
        std::thread::sleep(POLL.min(end - now));
    }
}

/// What a child did: its exit status (None: killed after the deadline) and what it printed.
pub struct Ran {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

/// Runs `command` with stdin closed and its output in `BASE.out` and `BASE.err`, killing it
/// after `max` (status None) or on a signal (then unwinds).
pub fn run(command: &mut Command, base: &Path, max: Duration) -> Ran {
    let out = base.with_extension("out");
    let err = base.with_extension("err");
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("a file for the child's stdout"))
        .stderr(File::create(&err).expect("a file for the child's stderr"))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let status = wait(&mut child, max);
    let wall = started.elapsed();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    Ran { status, stdout: read(&out), stderr: read(&err), wall }
}

/// Waits for `child` up to `max`; kills it after that (None) or on a signal (then unwinds).
pub fn wait(child: &mut Child, max: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + max;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if interrupted() || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            check();
            return None;
        }
        std::thread::sleep(POLL);
    }
}

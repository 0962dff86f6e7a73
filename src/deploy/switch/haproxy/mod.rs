//! The HAProxy traffic switch: never reloads. The backend holds a pool of `server-template`
//! slots; imgctl points slots at replicas with the runtime API over the stats socket (`set
//! server B/S addr IP port P`, `weight W`, `state ready|maint`), so haproxy keeps every client
//! connection across a switch.
//!
//! Why a template pool, not `add server`/`del server` (2.6 has both): `del server` refuses a
//! server that still has an open or idle connection, which after a switch is the normal case
//! with keep-alive clients, so a retired server could not be removed until it drained; a slot
//! is simply put in `maint` (which cuts nothing that is in flight) and reused later. Slots also
//! work with every balance algorithm (dynamic servers need a dynamic one) and are declared in
//! haproxy.cfg, so an operator sees the whole pool there.
//!
//! haproxy forgets runtime changes when it restarts (every slot is back in `maint`), and has no
//! place for the deploy state, so the switch keeps the [`Traffic`] in its own state file. It is
//! written (atomically) *before* the runtime calls: the file always says where traffic is meant
//! to be, and haproxy is brought to it by replaying the file ([`Switch::reload`], which the
//! interpreter runs when it takes over a dead run's lock, and `--repair` after a haproxy
//! restart). A crash before the write changes nothing; a crash after it leaves a file that a
//! replay completes. Written after, a crash in between would leave haproxy serving a state no
//! file records, and a replay would move traffic back behind the state's back.

mod plan;
pub mod runtime;

use std::io;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::deploy::model::{Server, Traffic};
use crate::deploy::spec::HaproxySettings;
pub use plan::MAX_WEIGHT;
use plan::{plan, plan_back, weights};
use runtime::{Admin, Command, Slot, exchange, parse_servers_state, parse_stat_sessions};

/// How long one runtime command may take (haproxy answers a `set server` in microseconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The haproxy switch failed; traffic and the state file are as they were.
#[derive(Debug, thiserror::Error)]
pub enum HaproxyError {
    /// The stats socket could not be reached or talked to.
    #[error("the haproxy stats socket {path}: {source} (is haproxy running, with `stats socket {path} level admin`?)")]
    Socket {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// haproxy refused a command (an unknown backend or server, a bad value, a socket without
    /// `level admin`).
    #[error("haproxy refused `{command}`: {answer}")]
    Refused {
        /// The command.
        command: String,
        /// What haproxy answered.
        answer: String,
    },
    /// The socket lets imgctl read the servers but not change them.
    #[error("haproxy refused `{command}` on {path}: permission denied; give that `stats socket` line `level admin`")]
    NotAdmin {
        /// The socket.
        path: PathBuf,
        /// The command.
        command: String,
    },
    /// `show servers state` answered something imgctl cannot read.
    #[error("haproxy's `show servers state {backend}` answer is not readable ({reason})")]
    UnreadableState {
        /// The backend.
        backend: String,
        /// What is wrong.
        reason: String,
    },
    /// `show stat` answered something imgctl cannot read.
    #[error("haproxy's `show stat` answer for backend {backend} is not readable ({reason})")]
    UnreadableStat {
        /// The backend.
        backend: String,
        /// What is wrong.
        reason: String,
    },
    /// A backend address is not `IP:port`: haproxy 2.6 takes no DNS name at runtime without
    /// a `resolvers` section.
    #[error("{addr} is not an IP address and port: haproxy's runtime API takes IP addresses only")]
    NotAnAddress {
        /// The address.
        addr: String,
    },
    /// The backend has fewer `server-template` slots than the traffic has servers.
    #[error(
        "haproxy backend {backend} has {slots} server slots and the traffic needs {needed}: raise the count of its server-template (e.g. `server-template app 1-{needed} 127.0.0.1:1 disabled`)"
    )]
    PoolTooSmall {
        /// The backend.
        backend: String,
        /// Slots it has.
        slots: usize,
        /// Servers to place.
        needed: usize,
    },
    /// After the commands, haproxy's own view differs from what was applied.
    #[error("haproxy backend {backend}: server {slot} is {found} after the switch, not {expected}")]
    NotApplied {
        /// The backend.
        backend: String,
        /// The slot.
        slot: String,
        /// What it should be.
        expected: String,
        /// What haproxy says.
        found: String,
    },
    /// The state file could not be read or written.
    #[error("{action} {path}: {source}")]
    StateFile {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The state file does not parse (edited by hand?).
    #[error("{path}: the haproxy switch's state is damaged ({reason}); fix or remove the file")]
    DamagedState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No server would be left in the backend.
    #[error("refusing to apply traffic for {0} with no server: haproxy would point at nothing")]
    NoServers(String),
}

/// The switch over one haproxy backend.
#[derive(Debug)]
pub struct Switch<'a> {
    settings: &'a HaproxySettings,
}

impl<'a> Switch<'a> {
    /// A switch driven by `settings`.
    pub fn new(settings: &'a HaproxySettings) -> Self {
        Self { settings }
    }

    /// The state in the state file (`None`: never applied).
    pub fn read(&self) -> Result<Option<Traffic>, HaproxyError> {
        let path = &self.settings.state_file;
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| HaproxyError::DamagedState { path: path.clone(), reason: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(HaproxyError::StateFile { action: "reading", path: path.clone(), source }),
        }
    }

    /// Sends traffic where `traffic` says: checks everything it can first (addresses, the
    /// pool's size), writes the state file, then changes the slots and checks haproxy's view
    /// of them. On a failure after the write, the previous file and the slots as they were
    /// are put back. Returns how long it took.
    pub fn apply(&self, traffic: &Traffic) -> Result<Duration, HaproxyError> {
        let started = Instant::now();
        if traffic.servers.is_empty() {
            return Err(HaproxyError::NoServers(traffic.service.clone()));
        }
        let targets = targets(&traffic.servers)?;
        let before = self.slots()?;
        let (commands, placed) = self.plan(&before, &targets)?;
        let path = &self.settings.state_file;
        let previous = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(HaproxyError::StateFile { action: "reading", path: path.clone(), source }),
        };
        self.write_state(traffic)?;
        let result = self.run(&commands).and_then(|()| self.check(&targets, &placed));
        if let Err(error) = result {
            // Put the slots back as they were, then the file: whatever of this fails, a
            // replay of the file (the old state) brings haproxy back to it.
            let back = plan_back(&before, &self.slots().unwrap_or_default());
            let _ = self.run(&back);
            let _ = match previous {
                Some(bytes) => crate::atomic_file::write(path, &bytes, 0o644),
                None => std::fs::remove_file(path),
            };
            return Err(error);
        }
        Ok(started.elapsed())
    }

    /// Brings haproxy to the state file (after a haproxy restart, or an imgctl crash between
    /// writing the file and the last command). Nothing to do without a file.
    pub fn reload(&self) -> Result<(), HaproxyError> {
        let Some(traffic) = self.read()? else { return Ok(()) };
        let targets = targets(&traffic.servers)?;
        let (commands, placed) = self.plan(&self.slots()?, &targets)?;
        self.run(&commands)?;
        self.check(&targets, &placed)
    }

    /// `show servers state BACKEND`.
    pub fn slots(&self) -> Result<Vec<Slot>, HaproxyError> {
        let backend = &self.settings.backend;
        let command = format!("show servers state {backend}");
        let answer = self.send(&command)?;
        if !answer.starts_with("1\n") {
            return Err(HaproxyError::Refused { command, answer: answer.trim().to_owned() });
        }
        parse_servers_state(&answer)
            .map_err(|reason| HaproxyError::UnreadableState { backend: backend.clone(), reason })
    }

    /// The sessions haproxy has open to the servers at `addrs` (`scur` of the slots pointing
    /// there, in `maint` or not: what is in flight goes on after a switch).
    pub fn open_sessions(&self, addrs: &[String]) -> Result<u32, HaproxyError> {
        let wanted: Vec<SocketAddr> = addrs
            .iter()
            .map(|a| a.parse().map_err(|_| HaproxyError::NotAnAddress { addr: a.clone() }))
            .collect::<Result<_, _>>()?;
        let backend = &self.settings.backend;
        let answer = self.send("show stat")?;
        let servers = parse_stat_sessions(&answer, backend)
            .map_err(|reason| HaproxyError::UnreadableStat { backend: backend.clone(), reason })?;
        Ok(servers.iter().filter(|(_, addr, _)| wanted.contains(addr)).map(|(_, _, n)| n).sum())
    }

    fn plan(&self, slots: &[Slot], targets: &[(SocketAddr, u32)]) -> Result<(Vec<Command>, Vec<String>), HaproxyError> {
        plan(slots, targets).map_err(|needed| HaproxyError::PoolTooSmall {
            backend: self.settings.backend.clone(),
            slots: slots.len(),
            needed,
        })
    }

    fn run(&self, commands: &[Command]) -> Result<(), HaproxyError> {
        for command in commands {
            let line = command.line(&self.settings.backend);
            let answer = self.send(&line)?;
            if answer.trim() == "Permission denied" {
                return Err(HaproxyError::NotAdmin { path: self.settings.socket.clone(), command: line });
            }
            if !command.succeeded(&answer) {
                return Err(HaproxyError::Refused { command: line, answer: answer.trim().to_owned() });
            }
        }
        Ok(())
    }

    /// Reads the slots back: each target's slot points at it, weighted and ready; every other
    /// slot is in `maint`.
    fn check(&self, targets: &[(SocketAddr, u32)], placed: &[String]) -> Result<(), HaproxyError> {
        let not_applied = |slot: &Slot, expected: String, found: String| HaproxyError::NotApplied {
            backend: self.settings.backend.clone(),
            slot: slot.name.clone(),
            expected,
            found,
        };
        for slot in self.slots()? {
            let expected = placed.iter().position(|p| *p == slot.name).map(|t| targets[t]);
            match expected {
                Some((addr, weight)) if (slot.addr, slot.weight, slot.admin) != (addr, weight, Admin::Ready) => {
                    return Err(not_applied(
                        &slot,
                        format!("{addr} weight {weight} ready"),
                        format!("{} weight {} {}", slot.addr, slot.weight, slot.admin.word()),
                    ));
                }
                None if slot.admin != Admin::Maint => {
                    return Err(not_applied(&slot, "maint".into(), slot.admin.word().into()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn send(&self, command: &str) -> Result<String, HaproxyError> {
        let path = &self.settings.socket;
        let socket_error = |source| HaproxyError::Socket { path: path.clone(), source };
        let stream = UnixStream::connect(path).map_err(socket_error)?;
        stream.set_read_timeout(Some(COMMAND_TIMEOUT)).map_err(socket_error)?;
        stream.set_write_timeout(Some(COMMAND_TIMEOUT)).map_err(socket_error)?;
        exchange(stream, command).map_err(socket_error)
    }

    fn write_state(&self, traffic: &Traffic) -> Result<(), HaproxyError> {
        let path = &self.settings.state_file;
        let file_error = |action, path: &Path, source| HaproxyError::StateFile { action, path: path.into(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| file_error("creating", dir, e))?;
        }
        let mut text = serde_json::to_string_pretty(traffic).expect("traffic serializes");
        text.push('\n');
        crate::atomic_file::write(path, text.as_bytes(), 0o644).map_err(|e| file_error("writing", path, e))
    }
}

/// The servers as haproxy takes them: IP addresses with ports, weights within its range.
fn targets(servers: &[Server]) -> Result<Vec<(SocketAddr, u32)>, HaproxyError> {
    servers
        .iter()
        .zip(weights(servers))
        .map(|(server, weight)| {
            let addr = server.addr.parse().map_err(|_| HaproxyError::NotAnAddress { addr: server.addr.clone() })?;
            Ok((addr, weight))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::color::Color;

    fn server(addr: &str, weight: u32) -> Server {
        Server { addr: addr.into(), weight, container: "web-blue-1".into(), color: Color::Blue }
    }

    #[test]
    fn addresses_are_ip_literals() {
        assert!(targets(&[server("127.0.0.1:80", 1), server("[::1]:80", 1)]).is_ok());
        for name in ["tasks.web:8080", "no-such-host.invalid:80", "127.0.0.1", "web"] {
            assert!(matches!(targets(&[server(name, 1)]), Err(HaproxyError::NotAnAddress { .. })), "{name}");
        }
    }
}

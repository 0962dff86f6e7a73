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

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::deploy::model::{Server, Traffic};
use crate::deploy::spec::HaproxySettings;

/// haproxy's largest server weight.
pub const MAX_WEIGHT: u32 = 256;
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

/// A slot's administrative state, as `show servers state` reports it and `set server ...
/// state` sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admin {
    /// In load balancing.
    Ready,
    /// Out of load balancing, still checked and reachable by persistent connections.
    Drain,
    /// No new traffic (what is in flight goes on).
    Maint,
}

impl Admin {
    /// From `srv_admin_state`, a mask: FMAINT 0x01, IMAINT 0x02, RMAINT 0x20 put a server in
    /// maintenance; FDRAIN 0x08, IDRAIN 0x10 drain it. CMAINT 0x04 only records that the
    /// configuration said `disabled`: it stays set after `state ready`, which does serve.
    fn from_mask(mask: u32) -> Self {
        if mask & 0x23 != 0 {
            Self::Maint
        } else if mask & 0x18 != 0 {
            Self::Drain
        } else {
            Self::Ready
        }
    }

    fn word(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Drain => "drain",
            Self::Maint => "maint",
        }
    }
}

/// One server slot of the backend, as haproxy has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Its name (`app1` for `server-template app 1-8 ...`).
    pub name: String,
    /// Where it points.
    pub addr: SocketAddr,
    /// Its weight.
    pub weight: u32,
    /// Its administrative state.
    pub admin: Admin,
}

/// One runtime command on a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `set server B/S addr IP port P`
    Addr {
        /// The slot.
        slot: String,
        /// The new address.
        addr: SocketAddr,
    },
    /// `set server B/S weight W`
    Weight {
        /// The slot.
        slot: String,
        /// The new weight.
        weight: u32,
    },
    /// `set server B/S state ready|drain|maint`
    State {
        /// The slot.
        slot: String,
        /// The new state.
        admin: Admin,
    },
}

impl Command {
    /// The command line for `backend` (names are checked plain words, so nothing needs the
    /// CLI's backslash escaping).
    pub fn line(&self, backend: &str) -> String {
        match self {
            Self::Addr { slot, addr } => {
                format!("set server {backend}/{slot} addr {} port {}", addr.ip(), addr.port())
            }
            Self::Weight { slot, weight } => format!("set server {backend}/{slot} weight {weight}"),
            Self::State { slot, admin } => format!("set server {backend}/{slot} state {}", admin.word()),
        }
    }

    /// Whether `answer` says the command worked. `set server ... addr` reports what it did
    /// ("IP changed from ...", "no need to change the addr, ..."), and its errors end alike
    /// ("Invalid addr '...' by 'stats socket command'"), so only those two openings pass;
    /// `weight` and `state` answer nothing at all when they work.
    pub fn succeeded(&self, answer: &str) -> bool {
        let answer = answer.trim();
        match self {
            Self::Addr { .. } => {
                answer.starts_with("IP changed from") || answer.starts_with("no need to change the addr")
            }
            Self::Weight { .. } | Self::State { .. } => answer.is_empty(),
        }
    }
}

/// Sends one command in the CLI's non-interactive mode (one line in, the answer until haproxy
/// closes the connection) and returns the answer.
pub fn exchange<S: Read + Write>(mut stream: S, command: &str) -> io::Result<String> {
    debug_assert!(!command.contains(['\n', ';']), "one command: {command:?}");
    stream.write_all(format!("{command}\n").as_bytes())?;
    stream.flush()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    String::from_utf8(answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads `show servers state BACKEND`: a format version line (`1`), a `# ` header naming
/// the columns, one line per server. Columns are found by name, so a later version that adds
/// some still reads.
pub fn parse_servers_state(text: &str) -> Result<Vec<Slot>, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("1") => {}
        Some(other) => return Err(format!("format version {other:?}, not 1")),
        None => return Err("an empty answer".into()),
    }
    let header: Vec<&str> =
        lines.next().and_then(|l| l.strip_prefix("# ")).ok_or("no column header")?.split_whitespace().collect();
    let column = |name: &str| header.iter().position(|h| *h == name).ok_or(format!("no column {name}"));
    let (name, addr, admin, weight, port) = (
        column("srv_name")?,
        column("srv_addr")?,
        column("srv_admin_state")?,
        column("srv_uweight")?,
        column("srv_port")?,
    );
    let mut slots = Vec::new();
    for line in lines.map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |i: usize| fields.get(i).copied().ok_or(format!("a short line: {line:?}"));
        let number = |i: usize| field(i)?.parse::<u32>().map_err(|_| format!("not a number in {line:?}"));
        let ip = field(addr)?.parse().map_err(|_| format!("not an IP address in {line:?}"))?;
        let port = field(port)?.parse::<u16>().map_err(|_| format!("not a port in {line:?}"))?;
        slots.push(Slot {
            name: field(name)?.to_owned(),
            addr: SocketAddr::new(ip, port),
            weight: number(weight)?,
            admin: Admin::from_mask(number(admin)?),
        });
    }
    Ok(slots)
}

/// The weights haproxy gets for `servers`: theirs, scaled down (keeping their ratio, none
/// below 1) when one passes [`MAX_WEIGHT`].
pub fn weights(servers: &[Server]) -> Vec<u32> {
    let max = servers.iter().map(|s| s.weight).max().unwrap_or(1);
    servers
        .iter()
        .map(|s| if max <= MAX_WEIGHT { s.weight } else { (u64::from(s.weight) * 256 / u64::from(max)).max(1) as u32 })
        .collect()
}

/// The commands that bring `slots` to `targets` (address, weight), in an order that never
/// leaves the backend without a ready server that was there: new slots are pointed and
/// weighted while still in `maint`, then made ready, and only then are the leaving ones put in
/// `maint`. A target whose address a slot already has keeps that slot; the others take slots
/// in `maint` first. Commands that would change nothing are left out, so replaying a state
/// haproxy already has sends none. Returns, too, the slot each target got.
pub fn plan(slots: &[Slot], targets: &[(SocketAddr, u32)]) -> Result<(Vec<Command>, Vec<String>), usize> {
    let mut taken: Vec<Option<usize>> = vec![None; targets.len()];
    let mut used = vec![false; slots.len()];
    // Same address: the ready slot first (it may hold connections), then any.
    for (t, (addr, _)) in targets.iter().enumerate() {
        let same = |i: &usize| !used[*i] && slots[*i].addr == *addr;
        let found = (0..slots.len())
            .filter(same)
            .find(|i| slots[*i].admin == Admin::Ready)
            .or_else(|| (0..slots.len()).find(same));
        if let Some(i) = found {
            used[i] = true;
            taken[t] = Some(i);
        }
    }
    for place in taken.iter_mut().filter(|p| p.is_none()) {
        let free = |i: &usize| !used[*i];
        let i = (0..slots.len())
            .filter(free)
            .find(|i| slots[*i].admin == Admin::Maint)
            .or_else(|| (0..slots.len()).find(free))
            .ok_or(targets.len())?;
        used[i] = true;
        *place = Some(i);
    }
    let taken: Vec<usize> = taken.into_iter().map(|i| i.expect("every target has a slot")).collect();
    let mut commands = Vec::new();
    for (t, &i) in taken.iter().enumerate() {
        let (slot, (addr, weight)) = (&slots[i], targets[t]);
        if slot.addr != addr {
            commands.push(Command::Addr { slot: slot.name.clone(), addr });
        }
        if slot.weight != weight {
            commands.push(Command::Weight { slot: slot.name.clone(), weight });
        }
    }
    for &i in &taken {
        if slots[i].admin != Admin::Ready {
            commands.push(Command::State { slot: slots[i].name.clone(), admin: Admin::Ready });
        }
    }
    for (i, slot) in slots.iter().enumerate() {
        if !used[i] && slot.admin != Admin::Maint {
            commands.push(Command::State { slot: slot.name.clone(), admin: Admin::Maint });
        }
    }
    Ok((commands, taken.iter().map(|&i| slots[i].name.clone()).collect()))
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

/// The commands that put `now` back to `before`, slot by slot.
fn plan_back(before: &[Slot], now: &[Slot]) -> Vec<Command> {
    let mut commands = Vec::new();
    for old in before {
        let current = now.iter().find(|s| s.name == old.name);
        if current.is_none_or(|c| c.addr != old.addr) {
            commands.push(Command::Addr { slot: old.name.clone(), addr: old.addr });
        }
        if current.is_none_or(|c| c.weight != old.weight) {
            commands.push(Command::Weight { slot: old.name.clone(), weight: old.weight });
        }
    }
    // Ready ones before maint ones, as in `plan`.
    for admin in [Admin::Ready, Admin::Drain, Admin::Maint] {
        for old in before.iter().filter(|s| s.admin == admin) {
            if now.iter().find(|s| s.name == old.name).is_none_or(|c| c.admin != admin) {
                commands.push(Command::State { slot: old.name.clone(), admin });
            }
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::color::Color;

    /// A socket stand-in: what haproxy answers, and what was written to it.
    struct Peer {
        answer: io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.answer.read(buf)
        }
    }

    impl Write for Peer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    // Taken from haproxy 2.6.12 (`show servers state web` of `server-template s 1-3
    // 127.0.0.1:1 disabled`, s2 pointed and made ready, s3 drained).
    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 web 1 s1 127.0.0.1 0 5 1 1 8 1 0 0 8 0 0 0 - 1 - 0 0 - - 0\n3 web 2 s2 127.0.0.1 2 4 7 1 0 1 0 0 8 0 0 0 - 18081 - 0 0 - - 0\n3 web 3 s3 ::1 2 8 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0\n\n";

    fn slot(name: &str, addr: &str, weight: u32, admin: Admin) -> Slot {
        Slot { name: name.into(), addr: addr.parse().unwrap(), weight, admin }
    }

    #[test]
    fn one_command_a_connection_reads_the_answer_to_the_end() {
        let mut peer = Peer { answer: io::Cursor::new(STATE.as_bytes().to_vec()), written: Vec::new() };
        let answer = exchange(&mut peer, "show servers state web").unwrap();
        assert_eq!(peer.written, b"show servers state web\n");
        assert_eq!(answer, STATE);
        let mut bad = Peer { answer: io::Cursor::new(vec![0xff, b'\n']), written: Vec::new() };
        assert_eq!(exchange(&mut bad, "help").unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn show_servers_state_reads_by_column_name() {
        assert_eq!(
            parse_servers_state(STATE).unwrap(),
            [
                // CMAINT (0x04) alone, left by `disabled` after `state ready`, serves.
                slot("s1", "127.0.0.1:1", 1, Admin::Maint),
                slot("s2", "127.0.0.1:18081", 7, Admin::Ready),
                slot("s3", "[::1]:80", 1, Admin::Drain),
            ]
        );
        assert_eq!(parse_servers_state("1\n# be_id be_name\n\n").unwrap_err(), "no column srv_name");
        assert!(parse_servers_state("2\n# srv_name\n").unwrap_err().contains("version"));
        assert!(parse_servers_state("Can't find backend.\n\n").is_err());
        let short = STATE.replace("3 web 3 s3 ::1 2 8 1 1 0 1 0 0 8 0 0 0 - 80 - 0 0 - - 0", "3 web 3 s3 ::1 2");
        assert!(parse_servers_state(&short).unwrap_err().contains("short line"));
    }

    #[test]
    fn answers_are_read_as_haproxy_2_6_gives_them() {
        let addr = Command::Addr { slot: "s1".into(), addr: "127.0.0.1:8081".parse().unwrap() };
        let weight = Command::Weight { slot: "s1".into(), weight: 3 };
        let state = Command::State { slot: "s1".into(), admin: Admin::Ready };
        assert_eq!(addr.line("web"), "set server web/s1 addr 127.0.0.1 port 8081");
        assert_eq!(weight.line("web"), "set server web/s1 weight 3");
        assert_eq!(state.line("web"), "set server web/s1 state ready");
        let v6 = Command::Addr { slot: "s1".into(), addr: "[fd00::2]:80".parse().unwrap() };
        assert_eq!(v6.line("web"), "set server web/s1 addr fd00::2 port 80");
        let table: [(&Command, &str, bool); 9] = [
            (&addr, "no need to change the addr, port changed from '1' to '8081' by 'stats socket command'\n\n", true),
            (
                &addr,
                "IP changed from '127.0.0.1' to '::1', port changed from '8081' to '80' by 'stats socket command'\n\n",
                true,
            ),
            (&addr, "no need to change the addr, no need to change the port by 'stats socket command'\n\n", true),
            (&addr, "Invalid addr 'no-such-host.invalid' by 'stats socket command'\n\n", false),
            (&addr, "No such server.\n\n", false),
            (&weight, "\n", true),
            (&weight, "Absolute weight can only be between 0 and 256 inclusive.\n\n", false),
            (&state, "\n", true),
            (&state, "Permission denied\n\n", false),
        ];
        for (command, answer, ok) in table {
            assert_eq!(command.succeeded(answer), ok, "{command:?} {answer:?}");
        }
    }

    fn addr(a: &str) -> SocketAddr {
        a.parse().unwrap()
    }

    #[test]
    fn a_switch_points_free_slots_first_and_retires_last() {
        let slots = [
            slot("s1", "127.0.0.1:32768", 1, Admin::Ready),
            slot("s2", "127.0.0.1:1", 1, Admin::Maint),
            slot("s3", "127.0.0.1:1", 1, Admin::Maint),
        ];
        // blue (s1) to green: green takes s2, is ready before s1 leaves.
        let (commands, placed) = plan(&slots, &[(addr("127.0.0.1:32769"), 1)]).unwrap();
        assert_eq!(placed, ["s2"]);
        assert_eq!(
            commands,
            [
                Command::Addr { slot: "s2".into(), addr: addr("127.0.0.1:32769") },
                Command::State { slot: "s2".into(), admin: Admin::Ready },
                Command::State { slot: "s1".into(), admin: Admin::Maint },
            ]
        );
        // A canary keeps blue's slot and reweights it.
        let (commands, placed) = plan(&slots, &[(addr("127.0.0.1:32768"), 9), (addr("127.0.0.1:32769"), 1)]).unwrap();
        assert_eq!(placed, ["s1", "s2"]);
        assert_eq!(commands[0], Command::Weight { slot: "s1".into(), weight: 9 });
        assert_eq!(commands.last(), Some(&Command::State { slot: "s2".into(), admin: Admin::Ready }));
        // What haproxy already has: nothing to send (a replay in sync is free).
        assert_eq!(plan(&slots, &[(addr("127.0.0.1:32768"), 1)]).unwrap().0, []);
        // Three servers in a pool of three: fits; four: refused before anything is sent.
        let four = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"].map(|a| (addr(a), 1));
        assert!(plan(&slots, &four[..3]).is_ok());
        assert_eq!(plan(&slots, &four), Err(4));
    }

    fn server(addr: &str, weight: u32) -> Server {
        Server { addr: addr.into(), weight, container: "web-blue-1".into(), color: Color::Blue }
    }

    #[test]
    fn weights_fit_haproxy_and_addresses_are_ip_literals() {
        assert_eq!(weights(&[server("a", 9), server("b", 1)]), [9, 1]);
        assert_eq!(weights(&[server("a", 4288), server("b", 33)]), [256, 1]);
        assert_eq!(weights(&[server("a", 512), server("b", 256)]), [256, 128]);
        assert!(targets(&[server("127.0.0.1:80", 1), server("[::1]:80", 1)]).is_ok());
        for name in ["tasks.web:8080", "no-such-host.invalid:80", "127.0.0.1", "web"] {
            assert!(matches!(targets(&[server(name, 1)]), Err(HaproxyError::NotAnAddress { .. })), "{name}");
        }
    }

    #[test]
    fn putting_slots_back_restores_them_ready_ones_first() {
        let before = [slot("s1", "127.0.0.1:32768", 1, Admin::Ready), slot("s2", "127.0.0.1:1", 1, Admin::Maint)];
        let now = [slot("s1", "127.0.0.1:32768", 1, Admin::Maint), slot("s2", "127.0.0.1:32769", 2, Admin::Ready)];
        assert_eq!(
            plan_back(&before, &now),
            [
                Command::Addr { slot: "s2".into(), addr: addr("127.0.0.1:1") },
                Command::Weight { slot: "s2".into(), weight: 1 },
                Command::State { slot: "s1".into(), admin: Admin::Ready },
                Command::State { slot: "s2".into(), admin: Admin::Maint },
            ]
        );
        assert_eq!(plan_back(&before, &before), []);
    }
}

//! haproxy's runtime API as the switch uses it: one command a connection in the CLI's
//! non-interactive mode, `show servers state` read into [`Slot`]s, and the three `set server`
//! commands with the answers haproxy 2.6 gives when they work.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

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

    /// The word `set server ... state` takes.
    pub fn word(self) -> &'static str {
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

/// Reads `show stat` (CSV, a `# ` header naming the columns): each server of `backend` with
/// its address and current sessions (`scur`: requests in flight, not idle pooled
/// connections). Columns are found by name; the backend's and frontends' own rows are left
/// out.
pub fn parse_stat_sessions(text: &str, backend: &str) -> Result<Vec<(String, SocketAddr, u32)>, String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .ok_or("no column header")?
        .trim_end_matches(',')
        .split(',')
        .collect();
    let column = |name: &str| header.iter().position(|h| *h == name).ok_or(format!("no column {name}"));
    let (proxy, server, scur, addr) = (column("pxname")?, column("svname")?, column("scur")?, column("addr")?);
    let mut servers = Vec::new();
    for line in lines.map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let fields: Vec<&str> = line.split(',').collect();
        let field = |i: usize| fields.get(i).copied().ok_or(format!("a short line: {line:?}"));
        if field(proxy)? != backend || matches!(field(server)?, "BACKEND" | "FRONTEND") {
            continue;
        }
        let sessions = field(scur)?.parse::<u32>().map_err(|_| format!("not a number in {line:?}"))?;
        let at = field(addr)?.parse().map_err(|_| format!("not an address in {line:?}"))?;
        servers.push((field(server)?.to_owned(), at, sessions));
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    // Taken from haproxy 2.6.12 (`show stat`, cut after `addr`; a stream open on app2, which
    // is in maint).
    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,addr,\nweb,FRONTEND,,,1,1,262120,1,OPEN,,\nweb,app1,0,0,0,0,,0,MAINT,127.0.0.1:1,\nweb,app2,0,0,1,1,,1,MAINT,127.0.0.1:32771,\nweb,BACKEND,0,0,1,1,999,1,UP,,\nother,app1,0,0,7,7,,7,UP,127.0.0.1:32771,\n\n";

    #[test]
    fn show_stat_gives_each_server_its_sessions_by_column_name() {
        assert_eq!(
            parse_stat_sessions(STAT, "web").unwrap(),
            [
                ("app1".into(), "127.0.0.1:1".parse().unwrap(), 0),
                ("app2".into(), "127.0.0.1:32771".parse().unwrap(), 1)
            ]
        );
        assert_eq!(parse_stat_sessions(STAT, "none").unwrap(), []);
        assert_eq!(parse_stat_sessions("# pxname,svname\n", "web").unwrap_err(), "no column scur");
        assert!(parse_stat_sessions("Unknown command.\n", "web").is_err());
        let bad = STAT.replace("0,0,1,1,,1,MAINT", "0,0,x,1,,1,MAINT");
        assert!(parse_stat_sessions(&bad, "web").unwrap_err().contains("not a number"));
        let short = STAT.replace("web,app2,0,0,1,1,,1,MAINT,127.0.0.1:32771,", "web,app2,0");
        assert!(parse_stat_sessions(&short, "web").unwrap_err().contains("short line"));
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
}

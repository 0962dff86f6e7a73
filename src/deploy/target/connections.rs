//! Open connections to a container's port, counted in its network namespace: the kernel's
//! socket tables `/proc/PID/net/tcp` and `tcp6` of the container's main process list every
//! socket of that namespace; an ESTABLISHED one (state `01`) whose local port is the service's
//! port is a client (the proxy, or docker-proxy on its behalf) still connected.
//!
//! imgctl runs on the host as the Engine's user: where the tables cannot be read (another
//! user's process, a kernel that hides them), the count is unknown, never an error.

use std::path::Path;

/// TCP state ESTABLISHED in the kernel's socket tables.
const ESTABLISHED: &str = "01";

/// ESTABLISHED connections to local port `port` in the network namespace of process `pid`
/// (`None`: the tables could not be read).
pub fn established(pid: u32, port: u16) -> Option<u32> {
    let dir = Path::new("/proc").join(pid.to_string()).join("net");
    let mut total = 0;
    let mut read_any = false;
    for table in ["tcp", "tcp6"] {
        match std::fs::read_to_string(dir.join(table)) {
            Ok(text) => {
                total += count(&text, port)?;
                read_any = true;
            }
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && table == "tcp6" => {}
            Err(_) => return None,
        }
    }
    read_any.then_some(total)
}

/// ESTABLISHED sockets with local port `port` in one table's text (`None`: not a socket
/// table). Each line after the header is `sl local_address rem_address st ...`, addresses as
/// `HEXIP:HEXPORT`.
fn count(table: &str, port: u16) -> Option<u32> {
    let mut lines = table.lines();
    let header = lines.next()?;
    if !header.split_whitespace().take(4).eq(["sl", "local_address", "rem_address", "st"]) {
        // tcp6 names its columns remote_address.
        if !header.split_whitespace().take(4).eq(["sl", "local_address", "remote_address", "st"]) {
            return None;
        }
    }
    let mut open = 0;
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else { continue };
        let local_port = local.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if local_port == Some(port) && *state == ESTABLISHED {
            open += 1;
        }
    }
    Some(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    // From a busybox httpd container on port 8080 (1F90), one client connected over IPv4
    // mapped into its IPv6 socket, as Linux 6.1 shows them.
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 32185 1 000000003ece54db 100 0 0 10 0
   1: 0000000000000000FFFF0000020011AC:1F90 0000000000000000FFFF0000010011AC:BC22 01 00000000:00000000 02:000AFC67 00000000     0        0 32186 2 000000004153b497 20 4 31 13 -1
";
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 020011AC:1F90 010011AC:BC24 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 20 4 30 10 -1
   1: 020011AC:1F90 010011AC:BC26 06 00000000:00000000 03:00000EAF 00000000     0        0 0 3 0
   2: 020011AC:A3B2 0A000001:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";

    #[test]
    fn only_established_sockets_on_the_service_port_count() {
        // The listener (0A) does not count, nor TIME_WAIT (06), nor an outgoing connection to
        // some other host's 8080 (local port A3B2).
        assert_eq!(count(TCP6, 8080), Some(1));
        assert_eq!(count(TCP, 8080), Some(1));
        assert_eq!(count(TCP, 80), Some(0));
        assert_eq!(count(TCP.lines().next().unwrap(), 8080), Some(0), "no socket");
    }

    #[test]
    fn what_is_not_a_socket_table_is_unknown_and_damaged_lines_are_skipped() {
        assert_eq!(count("", 8080), None);
        assert_eq!(count("hello world\n1: 00:1F90 00:0000 01\n", 8080), None);
        let damaged = format!("{TCP}   3: 020011AC 01\n   4: 020011AC:ZZZZ 010011AC:BC24 01\n   5:\n");
        assert_eq!(count(&damaged, 8080), Some(1));
    }

    #[test]
    fn a_process_that_is_gone_is_unknown() {
        // pid 0 has no /proc entry.
        assert_eq!(established(0, 8080), None);
        // This process's own namespace can be read: a count, not an error.
        assert!(established(std::process::id(), 1).is_some());
    }
}

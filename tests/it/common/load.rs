//! Load through nginx for the whole length of a deploy: a few client threads sending HTTP/1.1
//! GETs and counting every outcome, so a test can assert that no request failed while traffic
//! moved. std only; the response parser is strict (status line, headers, Content-Length or
//! chunked body, or EOF where HTTP allows it) so a truncated answer is never counted as OK.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one client waits between requests.
const PAUSE: Duration = Duration::from_millis(5);
const TIMEOUT: Duration = Duration::from_secs(5);
/// A load nobody stopped (a test that panicked mid-way) still ends.
const MAX_RUN: Duration = Duration::from_secs(600);
const KEEP_ERRORS: usize = 20;
const MAX_HEADERS: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One connection per request, sent with `Connection: close`.
    Close,
    /// One connection per client, reused (HTTP/1.1 keep-alive) and replaced after an error or
    /// a `Connection: close`. nginx closes the idle keep-alive connections of the workers a
    /// reload retires; like curl, Go's net/http and browsers, a client notices a connection
    /// closed while idle before reusing it, and resends a request once on a fresh connection
    /// when a reused one ends before the first byte of an answer (RFC 9110 9.2.2: a GET is
    /// idempotent). Both are counted, neither is a failure; anything else is.
    KeepAlive,
}

/// What the clients saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Complete 2xx responses.
    pub ok: u64,
    /// Complete responses with any other status.
    pub non_2xx: u64,
    /// Requests without a complete response: refused, reset, timed out, cut short.
    pub socket_errors: u64,
    /// Keep-alive connections replaced without an error: closed by the server while idle or
    /// answered with `Connection: close`.
    pub reconnects: u64,
    /// Requests resent once on a fresh connection because the reused one ended before any
    /// byte of the answer (the race between a request and nginx closing an idle keep-alive
    /// connection on reload). Each has its outcome counted once, as `ok`, `non_2xx` or
    /// `socket_errors`.
    pub retries: u64,
    /// Trimmed body of each 2xx answer and how often it came: `"v1" -> 812`.
    pub by_body: BTreeMap<String, u64>,
    /// The first few failures: `+1.234s 502 Bad Gateway`, `+2.010s read: connection reset …`.
    pub errors: Vec<String>,
}

impl Tally {
    pub fn failed(&self) -> u64 {
        self.non_2xx + self.socket_errors
    }

    pub fn total(&self) -> u64 {
        self.ok + self.failed()
    }

    fn error(&mut self, started: Instant, what: String) {
        if self.errors.len() < KEEP_ERRORS {
            self.errors.push(format!("+{:.3}s {what}", started.elapsed().as_secs_f64()));
        }
    }
}

/// Client threads running until [`Load::stop`] (or drop, or ten minutes).
pub struct Load {
    shared: Arc<Shared>,
    clients: Vec<JoinHandle<()>>,
}

struct Shared {
    stop: AtomicBool,
    tally: Mutex<Tally>,
    started: Instant,
}

impl Load {
    /// Starts `clients` threads sending `GET path` to `addr`.
    pub fn start(addr: SocketAddr, path: &str, mode: Mode, clients: usize) -> Self {
        assert!(path.starts_with('/'), "a request path starts with /: {path:?}");
        let shared =
            Arc::new(Shared { stop: AtomicBool::new(false), tally: Mutex::default(), started: Instant::now() });
        let connection = if mode == Mode::Close { "Connection: close\r\n" } else { "" };
        let request: Arc<[u8]> =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: imgctl-test-load\r\n{connection}\r\n")
                .into_bytes()
                .into();
        let clients = (0..clients)
            .map(|_| {
                let shared = Arc::clone(&shared);
                let request = Arc::clone(&request);
                std::thread::spawn(move || Client { addr, mode, request, shared, connection: None }.run())
            })
            .collect();
        Self { shared, clients }
    }

    /// The counts so far; the clients keep going.
    pub fn snapshot(&self) -> Tally {
        self.shared.tally.lock().unwrap().clone()
    }

    /// Stops the clients, waits for their requests in flight, and returns the counts.
    pub fn stop(mut self) -> Tally {
        assert!(self.halt(), "a load client panicked; its counts are incomplete");
        self.snapshot()
    }

    /// False if a client thread panicked.
    fn halt(&mut self) -> bool {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Join every client, not only those before the first that panicked.
        self.clients.drain(..).map(JoinHandle::join).filter(Result::is_err).count() == 0
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

struct Client {
    addr: SocketAddr,
    mode: Mode,
    request: Arc<[u8]>,
    shared: Arc<Shared>,
    /// KeepAlive: the connection to reuse.
    connection: Option<BufReader<TcpStream>>,
}

enum Attempt {
    Answered(Response),
    /// A reused keep-alive connection ended before the first byte of an answer.
    Stale,
    Failed(String),
}

impl Client {
    fn run(mut self) {
        let deadline = self.shared.started + MAX_RUN;
        while !self.shared.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
            let mut reconnects = 0;
            if self.connection.as_ref().is_some_and(|c| !is_open(c)) {
                self.connection = None;
                reconnects += 1;
            }
            let mut attempt = self.attempt();
            let retried = matches!(attempt, Attempt::Stale);
            if retried {
                // The connection is gone: this attempt is on a fresh one, never Stale.
                attempt = self.attempt();
            }
            let mut tally = self.shared.tally.lock().unwrap();
            tally.retries += u64::from(retried);
            match attempt {
                Attempt::Answered(response) => {
                    if response.close && self.mode == Mode::KeepAlive {
                        reconnects += 1;
                    }
                    if (200..300).contains(&response.status) {
                        tally.ok += 1;
                        let body: String = response.text().chars().take(80).collect();
                        *tally.by_body.entry(body).or_default() += 1;
                    } else {
                        tally.non_2xx += 1;
                        tally.error(self.shared.started, response.status_line);
                    }
                }
                Attempt::Stale => unreachable!("a fresh connection is never stale"),
                Attempt::Failed(error) => {
                    tally.socket_errors += 1;
                    tally.error(self.shared.started, error);
                }
            }
            tally.reconnects += reconnects;
            drop(tally);
            std::thread::sleep(PAUSE);
        }
    }

    /// One request on the kept connection, or on a new one. Keeps the connection when the
    /// answer allows another request on it.
    fn attempt(&mut self) -> Attempt {
        let (mut connection, reused) = match self.connection.take() {
            Some(connection) => (connection, true),
            None => match connect(self.addr) {
                Ok(stream) => (BufReader::new(stream), false),
                Err(e) => return Attempt::Failed(format!("connect: {e}")),
            },
        };
        if let Err(e) = connection.get_mut().write_all(&self.request) {
            return if reused && is_closed(&e) { Attempt::Stale } else { Attempt::Failed(format!("write: {e}")) };
        }
        // Did any byte of an answer come? Only a reused connection that sent none is retried;
        // a timeout never is (the server took the request and hung).
        match connection.fill_buf().map(|buffered| buffered.is_empty()) {
            Ok(true) if reused => return Attempt::Stale,
            Err(e) if reused && is_closed(&e) => return Attempt::Stale,
            _ => {}
        }
        match read_response(&mut connection) {
            Ok(response) => {
                if self.mode == Mode::KeepAlive && !response.close {
                    self.connection = Some(connection);
                }
                Attempt::Answered(response)
            }
            Err(e) => Attempt::Failed(format!("read: {e}")),
        }
    }
}

fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
    )
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// False when the server has closed (or reset) an idle connection, or sent bytes nobody asked
/// for: reusing it would fail a request that never reached a server.
fn is_open(connection: &BufReader<TcpStream>) -> bool {
    if !connection.buffer().is_empty() {
        return false;
    }
    let stream = connection.get_ref();
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let open = matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    open && stream.set_nonblocking(false).is_ok()
}

/// One `GET path` on a fresh connection with `Connection: close`: for probes and polls.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let mut stream = connect(addr)?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: imgctl-test\r\nConnection: close\r\n\r\n")?;
    read_response(&mut BufReader::new(stream))
}

/// One complete HTTP/1.x response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// `HTTP/1.1 502 Bad Gateway`
    pub status_line: String,
    pub body: Vec<u8>,
    /// The connection cannot carry another request: `Connection: close`, an HTTP/1.0 answer
    /// without keep-alive, or a body that ran to EOF.
    pub close: bool,
}

impl Response {
    /// The body as text, trimmed: `v1`.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
}

/// Reads one response to a GET. Any answer cut short (EOF or reset before the status line,
/// inside the headers, or before the body's announced end) is an error.
pub fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let status_line = read_line(reader, "the status line")?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default().to_owned();
    let status = parts
        .next()
        .filter(|code| code.len() == 3)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("not an HTTP/1.x status line: {status_line:?}")))?;

    let mut content_length = None;
    let mut chunked = false;
    let mut close = version == "HTTP/1.0";
    let mut header_bytes = 0;
    loop {
        let line = read_line(reader, "the headers")?;
        if line.is_empty() {
            break;
        }
        header_bytes += line.len();
        if header_bytes > MAX_HEADERS {
            return Err(invalid("headers over 64 KiB".into()));
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let length = value.parse::<usize>().map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
                if length > MAX_BODY {
                    return Err(invalid(format!("Content-Length {length} over the limit")));
                }
                content_length = Some(length);
            }
            "transfer-encoding" => chunked = value.to_ascii_lowercase().split(',').any(|c| c.trim() == "chunked"),
            "connection" => {
                let tokens: Vec<String> = value.split(',').map(|t| t.trim().to_ascii_lowercase()).collect();
                if tokens.iter().any(|t| t == "close") {
                    close = true;
                } else if tokens.iter().any(|t| t == "keep-alive") {
                    close = false;
                }
            }
            _ => {}
        }
    }

    let body = if (100..200).contains(&status) || status == 204 || status == 304 {
        Vec::new()
    } else if chunked {
        read_chunked(reader)?
    } else if let Some(length) = content_length {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(|e| context(e, "the body"))?;
        body
    } else {
        // No length: the body ends where the server closes the connection (RFC 9112 6.3).
        close = true;
        let mut body = Vec::new();
        (&mut *reader).take(MAX_BODY as u64 + 1).read_to_end(&mut body).map_err(|e| context(e, "the body"))?;
        if body.len() > MAX_BODY {
            return Err(invalid("body over the limit".into()));
        }
        body
    };
    Ok(Response { status, status_line, body, close })
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader, "a chunk size")?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, then the empty line.
            while !read_line(reader, "the trailers")?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("chunked body over the limit".into()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|e| context(e, "a chunk"))?;
        if !read_line(reader, "a chunk end")?.is_empty() {
            return Err(invalid("a chunk longer than its size".into()));
        }
    }
}

/// One CRLF- (or LF-) terminated line without its terminator; EOF before the end is an error.
fn read_line(reader: &mut impl BufRead, what: &str) -> io::Result<String> {
    let mut line = Vec::new();
    (&mut *reader).take(MAX_HEADERS as u64).read_until(b'\n', &mut line).map_err(|e| context(e, what))?;
    if line.last() != Some(&b'\n') {
        let kind = if line.len() as u64 == MAX_HEADERS as u64 {
            io::ErrorKind::InvalidData
        } else {
            io::ErrorKind::UnexpectedEof
        };
        return Err(io::Error::new(kind, format!("connection ended in {what} after {} bytes", line.len())));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid(format!("{what} is not UTF-8")))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn context(error: io::Error, what: &str) -> io::Error {
    let kind = error.kind();
    let message = if kind == io::ErrorKind::UnexpectedEof {
        format!("connection ended in {what}")
    } else {
        format!("{what}: {error}")
    };
    io::Error::new(kind, message)
}

//! A hostile registry inside the test process: it serves one small image from memory under
//! several repositories, each misbehaving in its own way, behind Basic auth. One request per
//! connection (`Connection: close`), so the server stays a page of std code. Beside it runs
//! `elsewhere`, another origin (a CDN, an upload store, a token thief) that records who sent it
//! what; [`wiretap`] plays the hosts that are not on loopback.

pub mod wiretap;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::oci::sha256_digest;

/// How much an endless body offers before it ends (old clients read all of it).
pub const ENDLESS: u64 = 256 * 1024 * 1024;

/// What the servers have seen.
#[derive(Default)]
pub struct Seen {
    /// Requests answered with an injected 429 or 503.
    pub injected_failures: AtomicUsize,
    /// Requests the other origin received.
    pub redirected: AtomicUsize,
    /// Whether any request to the other origin carried an Authorization header.
    pub leaked_authorization: AtomicBool,
    /// Paths the other origin received with an Authorization header.
    pub leaked_to: Mutex<Vec<String>>,
    /// POSTs that would open an upload session.
    pub upload_posts: AtomicUsize,
    /// Token requests answered.
    pub token_requests: AtomicUsize,
    /// Bytes of endless or trickled bodies the client took (written before it hung up).
    pub body_bytes_taken: AtomicU64,
}

pub struct HostileRegistry {
    pub addr: String,
    /// The other origin: another port, so another origin to the client.
    pub elsewhere: String,
    pub seen: Arc<Seen>,
    /// The served image's manifest digest.
    pub digest: String,
    stop: Arc<AtomicBool>,
    /// The other listeners, woken on drop.
    wake: Vec<String>,
}

struct Image {
    manifest: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
    layer: String,
}

fn image() -> Image {
    let layer = vec![7u8; 100_000];
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#.to_vec();
    let (layer_digest, config_digest) = (sha256_digest(&layer), sha256_digest(&config));
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string()
    .into_bytes();
    let blobs = HashMap::from([(layer_digest.clone(), layer), (config_digest, config)]);
    Image { manifest, blobs, layer: layer_digest }
}

/// Everything a connection handler needs.
struct Server {
    image: Image,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    counter: Mutex<usize>,
    basic: String,
    addr: String,
    elsewhere: String,
    /// Upload locations the `upload-*` repositories answer a POST with.
    upload_locations: HashMap<String, String>,
}

impl HostileRegistry {
    /// Starts the server (and its other origin) on loopback; `user`/`password` is the only
    /// credential it accepts.
    pub fn start(user: &str, password: &str) -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), Vec::new(), user, password, HashMap::new())
    }

    /// Starts the server on `listener`, with `lookalikes` as more listeners of the other origin;
    /// the repository `upload-<name>` answers an upload POST with the Location
    /// `upload_locations[name]`.
    pub fn start_on(
        listener: TcpListener,
        lookalikes: Vec<TcpListener>,
        user: &str,
        password: &str,
        upload_locations: HashMap<String, String>,
    ) -> Self {
        use base64::Engine;
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let elsewhere = target.local_addr().unwrap().to_string();
        let addr = listener.local_addr().unwrap().to_string();
        let server = Arc::new(Server {
            image: image(),
            seen: seen.clone(),
            stop: stop.clone(),
            counter: Mutex::new(0),
            basic,
            addr: addr.clone(),
            elsewhere: elsewhere.clone(),
            upload_locations,
        });
        let digest = sha256_digest(&server.image.manifest);
        let mut wake = vec![elsewhere.clone()];
        for lookalike in lookalikes {
            wake.push(lookalike.local_addr().unwrap().to_string());
            accept_loop(lookalike, server.clone(), serve_elsewhere);
        }
        accept_loop(target, server.clone(), serve_elsewhere);
        accept_loop(listener, server, serve_registry);
        Self { addr, elsewhere, seen, digest, stop, wake }
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loops so they see the flag.
        for addr in std::iter::once(&self.addr).chain(&self.wake) {
            let _ = TcpStream::connect(addr);
        }
    }
}

/// A request as the servers see it.
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: String,
    pub headers: HashMap<String, String>,
}

fn accept_loop(listener: TcpListener, server: Arc<Server>, handle: fn(&mut TcpStream, Request, &Server)) {
    thread::spawn(move || {
        for stream in listener.incoming() {
            if server.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            // A client that announces a body it never sends does not hold a thread forever.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            let server = server.clone();
            thread::spawn(move || {
                if let Some(request) = read_request(&mut stream) {
                    handle(&mut stream, request, &server);
                }
            });
        }
    });
}

/// The other origin: serves blobs (a CDN), answers 401 with a challenge naming itself, hands
/// out tokens to whoever asks, takes uploads; records every credential it is sent.
fn serve_elsewhere(stream: &mut TcpStream, request: Request, server: &Server) {
    let seen = &server.seen;
    seen.redirected.fetch_add(1, Ordering::SeqCst);
    if request.headers.contains_key("authorization") {
        seen.leaked_authorization.store(true, Ordering::SeqCst);
        seen.leaked_to.lock().unwrap().push(format!("{} {}", request.method, request.path));
    }
    if request.path.starts_with("/cdn-401/") {
        let realm = format!("Bearer realm=\"http://{}/steal\",service=\"cdn\"", server.elsewhere);
        return respond(stream, 401, &[("WWW-Authenticate", realm)], b"");
    }
    if request.path.starts_with("/steal") || request.path.starts_with("/token") {
        return respond(stream, 200, &[], br#"{"token":"stolen"}"#);
    }
    if request.path.starts_with("/upload") {
        return respond(stream, 401, &[("WWW-Authenticate", "Basic realm=\"elsewhere\"".into())], b"");
    }
    let digest = request.path.rsplit('/').next().unwrap_or("");
    match server.image.blobs.get(digest) {
        Some(blob) => respond(stream, 200, &[], blob),
        None => respond(stream, 404, &[], b""),
    }
}

/// The repository and what of it a `/v2/` path names: (repository, "manifest" | "blob" |
/// "upload" | "referrers", reference).
fn route(path: &str) -> Option<(&str, &'static str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    for (marker, kind) in
        [("/blobs/uploads/", "upload"), ("/manifests/", "manifest"), ("/blobs/", "blob"), ("/referrers/", "referrers")]
    {
        if let Some(i) = rest.find(marker) {
            return Some((&rest[..i], kind, &rest[i + marker.len()..]));
        }
    }
    None
}

fn serve_registry(stream: &mut TcpStream, request: Request, server: &Server) {
    let Request { method, path, headers, .. } = &request;
    if let Some(repository) = path.strip_prefix("/token/") {
        return serve_token(stream, repository, headers, server);
    }
    let route = route(path);
    let repository = route.map_or("", |(repository, _, _)| repository);
    // Repositories whose challenge is their misbehaviour: they answer 401 whatever is sent.
    let realm = match repository {
        "realm-userinfo" => Some(format!("http://thief:hunter2@{}/token", server.elsewhere)),
        "realm-plain" => Some("http://auth.hostile.test/token".to_owned()),
        "huge-token" => Some(format!("http://{}/token/huge-token", server.addr)),
        _ => None,
    };
    if let Some(realm) = realm {
        let challenge = format!("Bearer realm=\"{realm}\",service=\"hostile\"");
        return respond(stream, 401, &[("WWW-Authenticate", challenge)], b"");
    }
    // Token repositories take the token their realm handed out; the others, Basic.
    let accepted = match repository {
        "token-forever" | "token-instant" => format!("Bearer t-{repository}"),
        _ => server.basic.clone(),
    };
    if headers.get("authorization") != Some(&accepted) {
        let challenge = match repository {
            "token-forever" | "token-instant" => {
                format!("Bearer realm=\"http://{}/token/{repository}\",service=\"hostile\"", server.addr)
            }
            _ => "Basic realm=\"hostile\"".to_owned(),
        };
        return respond(stream, 401, &[("WWW-Authenticate", challenge)], b"");
    }
    if path == "/v2/" {
        return respond(stream, 200, &[], b"{}");
    }
    match route {
        Some((repository, kind, reference)) => serve(stream, method, repository, kind, reference, server),
        None => respond(stream, 404, &[], b""),
    }
}

/// The token endpoint of the `token-*` repositories, for the registry's Basic credential.
fn serve_token(stream: &mut TcpStream, repository: &str, headers: &HashMap<String, String>, server: &Server) {
    if headers.get("authorization") != Some(&server.basic) {
        return respond(stream, 401, &[], b"");
    }
    server.seen.token_requests.fetch_add(1, Ordering::SeqCst);
    let expires_in: u64 = match repository {
        "token-forever" => u64::MAX,
        "token-instant" => 1,
        // A token answer that never ends.
        _ => return endless(stream, 200, &[], &server.seen),
    };
    let body = serde_json::json!({"token": format!("t-{repository}"), "expires_in": expires_in});
    respond(stream, 200, &[], body.to_string().as_bytes())
}

fn serve(stream: &mut TcpStream, method: &str, repository: &str, kind: &str, reference: &str, server: &Server) {
    let (image, seen) = (&server.image, &*server.seen);
    let content_type = ("Content-Type", "application/vnd.oci.image.manifest.v1+json".to_string());
    let digest_header = |d: &str| ("Docker-Content-Digest", d.to_string());
    let head = method == "HEAD";
    match (repository, kind) {
        // Every other request fails: a 429 with Retry-After first, then 503s.
        ("flaky", _) => {
            let n = {
                let mut n = server.counter.lock().unwrap();
                *n += 1;
                *n
            };
            if n % 2 == 1 {
                seen.injected_failures.fetch_add(1, Ordering::SeqCst);
                let (status, headers) =
                    if n == 1 { (429, vec![("Retry-After", "1".to_string())]) } else { (503, vec![]) };
                return respond(stream, status, &headers, b"");
            }
            serve_image(stream, head, kind, reference, image, &content_type)
        }
        // The manifest bytes differ from the digest the registry announces.
        ("liar-manifest", "manifest") => {
            let mut bytes = image.manifest.clone();
            bytes.push(b' ');
            respond(
                stream,
                200,
                &[content_type, digest_header(&sha256_digest(&image.manifest))],
                if head { b"" } else { &bytes },
            )
        }
        // The layer comes back with other bytes than its digest.
        ("liar-blob", "blob") if reference == image.layer => {
            let mut bytes = image.blobs[reference].clone();
            bytes[500] ^= 0xff;
            respond(stream, 200, &[], if head { b"" } else { &bytes })
        }
        // Blobs are served from another origin, as registries do with object storage.
        ("redirect", "blob") if !head => {
            respond(stream, 307, &[("Location", format!("http://{}/storage/{reference}", server.elsewhere))], b"")
        }
        // ... and that origin answers 401 with a challenge of its own.
        ("cdn-401", "blob") if !head => {
            respond(stream, 307, &[("Location", format!("http://{}/cdn-401/{reference}", server.elsewhere))], b"")
        }
        ("huge", "manifest") => {
            let bytes = vec![b' '; 5 * 1024 * 1024];
            respond(stream, 200, &[content_type], if head { b"" } else { &bytes })
        }
        // An error page without end.
        ("huge-error", "manifest") => endless(stream, 400, &[], seen),
        ("huge-referrers", "referrers") => {
            endless(stream, 200, &[("Content-Type", "application/vnd.oci.image.index.v1+json".into())], seen)
        }
        // The layer goes on past its size.
        ("endless-blob", "blob") if reference == image.layer && !head => endless(stream, 200, &[], seen),
        // The manifest, a byte at a time, a tenth of a second apart, never complete.
        ("trickle", "manifest") if !head => trickle(stream, content_type, &server.stop, seen),
        // Destinations: nothing is there, and uploads fail or are sent elsewhere.
        (destination, "blob") if destination.starts_with("upload-") || destination == "post-503" => {
            respond(stream, 404, &[], b"")
        }
        ("post-503", "upload") => {
            seen.upload_posts.fetch_add(1, Ordering::SeqCst);
            respond(stream, 503, &[], b"")
        }
        (destination, "upload") if destination.starts_with("upload-") => {
            seen.upload_posts.fetch_add(1, Ordering::SeqCst);
            let name = &destination["upload-".len()..];
            let location = server.upload_locations.get(name).cloned().unwrap_or_else(|| "/nowhere".into());
            respond(stream, 202, &[("Location", location)], b"")
        }
        _ => serve_image(stream, head, kind, reference, image, &content_type),
    }
}

fn serve_image(
    stream: &mut TcpStream,
    head: bool,
    kind: &str,
    reference: &str,
    image: &Image,
    content_type: &(&'static str, String),
) {
    let body: Option<&[u8]> = match kind {
        "manifest" => Some(&image.manifest),
        "blob" => image.blobs.get(reference).map(Vec::as_slice),
        _ => None,
    };
    match body {
        Some(body) => {
            let digest = ("Docker-Content-Digest", sha256_digest(body));
            let headers = if kind == "manifest" { vec![content_type.clone(), digest] } else { vec![digest] };
            if head { respond_head(stream, &headers, body.len()) } else { respond(stream, 200, &headers, body) }
        }
        None => respond(stream, 404, &[], br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}"#),
    }
}

/// A body without Content-Length, [`ENDLESS`] bytes long, ended early only by the client
/// hanging up; what the client took is added to `seen.body_bytes_taken`.
fn endless(stream: &mut TcpStream, status: u16, headers: &[(&str, String)], seen: &Seen) {
    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b'a'; 64 * 1024];
    let mut written = 0;
    while written < ENDLESS {
        match stream.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                written += n as u64;
                seen.body_bytes_taken.fetch_add(n as u64, Ordering::SeqCst);
            }
        }
    }
}

/// A 4 MiB manifest announced, sent a byte every 100 ms until the client hangs up or the
/// server stops.
fn trickle(stream: &mut TcpStream, content_type: (&str, String), stop: &AtomicBool, seen: &Seen) {
    let head = format!(
        "HTTP/1.1 200 X\r\nContent-Length: {}\r\nConnection: close\r\n{}: {}\r\n\r\n",
        4 * 1024 * 1024,
        content_type.0,
        content_type.1
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    while !stop.load(Ordering::SeqCst) && stream.write_all(b" ").is_ok() {
        seen.body_bytes_taken.fetch_add(1, Ordering::SeqCst);
        // The misbehaviour itself: a peer that is slow on purpose.
        thread::sleep(Duration::from_millis(100));
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    // Uploads are taken whole, up to a blob's worth; nothing here needs the bytes.
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Request { method, path: path.to_owned(), query: query.to_owned(), headers })
}

fn respond(stream: &mut TcpStream, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
}

fn respond_head(stream: &mut TcpStream, headers: &[(&str, String)], length: usize) {
    let mut head = format!("HTTP/1.1 200 X\r\nContent-Length: {length}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
}

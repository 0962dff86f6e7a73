//! A hostile registry inside the test process: it serves one small image from memory under
//! several repositories, each misbehaving in its own way, behind Basic auth. One request per
//! connection (`Connection: close`), so the server stays a page of std code.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::oci::sha256_digest;

/// What the server has seen.
#[derive(Default)]
pub struct Seen {
    /// Requests answered with an injected 429 or 503.
    pub injected_failures: AtomicUsize,
    /// Requests the redirect target received.
    pub redirected: AtomicUsize,
    /// Whether any request to the redirect target carried an Authorization header.
    pub leaked_authorization: AtomicBool,
}

pub struct HostileRegistry {
    pub addr: String,
    pub seen: Arc<Seen>,
    /// The served image's manifest digest.
    pub digest: String,
    stop: Arc<AtomicBool>,
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

impl HostileRegistry {
    /// Starts the server (and its redirect target) on loopback; `user`/`password` is the only
    /// credential it accepts.
    pub fn start(user: &str, password: &str) -> Self {
        use base64::Engine;
        let expected =
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let image = Arc::new(image());
        let digest = sha256_digest(&image.manifest);
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));

        // The redirect target: another port, so another origin; it must never see credentials.
        let target = TcpListener::bind("127.0.0.1:0").unwrap();
        let target_addr = target.local_addr().unwrap().to_string();
        {
            let (image, seen, stop) = (image.clone(), seen.clone(), stop.clone());
            thread::spawn(move || {
                for stream in target.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let Some((_, path, headers)) = read_request(&mut stream) else { continue };
                    seen.redirected.fetch_add(1, Ordering::SeqCst);
                    if headers.contains_key("authorization") {
                        seen.leaked_authorization.store(true, Ordering::SeqCst);
                    }
                    let digest = path.rsplit('/').next().unwrap_or("");
                    match image.blobs.get(digest) {
                        Some(blob) => respond(&mut stream, 200, &[], blob),
                        None => respond(&mut stream, 404, &[], b""),
                    }
                }
            });
        }

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let counter = Arc::new(Mutex::new(0usize));
        {
            let (image, seen, stop) = (image.clone(), seen.clone(), stop.clone());
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let (image, seen, counter, expected, target_addr) =
                        (image.clone(), seen.clone(), counter.clone(), expected.clone(), target_addr.clone());
                    thread::spawn(move || {
                        let Some((method, path, headers)) = read_request(&mut stream) else { return };
                        if headers.get("authorization") != Some(&expected) {
                            let challenge = ("WWW-Authenticate", "Basic realm=\"hostile\"".to_string());
                            return respond(&mut stream, 401, &[challenge], b"");
                        }
                        serve(&mut stream, &method, &path, &image, &seen, &counter, &target_addr);
                    });
                }
            });
        }
        Self { addr, seen, digest, stop }
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loops so they see the flag.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    image: &Image,
    seen: &Seen,
    counter: &Mutex<usize>,
    target: &str,
) {
    if path == "/v2/" {
        return respond(stream, 200, &[], b"{}");
    }
    let Some(rest) = path.strip_prefix("/v2/") else { return respond(stream, 404, &[], b"") };
    let (repository, kind, reference) = match (rest.find("/manifests/"), rest.find("/blobs/")) {
        (Some(i), _) => (&rest[..i], "manifest", &rest[i + "/manifests/".len()..]),
        (_, Some(i)) => (&rest[..i], "blob", &rest[i + "/blobs/".len()..]),
        _ => return respond(stream, 404, &[], b""),
    };
    let content_type = ("Content-Type", "application/vnd.oci.image.manifest.v1+json".to_string());
    let digest_header = |d: &str| ("Docker-Content-Digest", d.to_string());
    let head = method == "HEAD";
    match (repository, kind) {
        // Every other request fails: a 429 with Retry-After first, then 503s.
        ("flaky", _) => {
            let n = {
                let mut n = counter.lock().unwrap();
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
            respond(stream, 307, &[("Location", format!("http://{target}/storage/{reference}"))], b"")
        }
        ("huge", "manifest") => {
            let bytes = vec![b' '; 5 * 1024 * 1024];
            respond(stream, 200, &[content_type], if head { b"" } else { &bytes })
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
        _ => image.blobs.get(reference).map(Vec::as_slice),
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

fn read_request(stream: &mut TcpStream) -> Option<(String, String, HashMap<String, String>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
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
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path.split('?').next().unwrap_or("").to_owned(), headers))
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

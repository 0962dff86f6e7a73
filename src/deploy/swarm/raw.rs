//! The one field of a service's spec that bollard cannot read back: its healthcheck.
//!
//! The engine writes it as `Healthcheck` (moby's `swarm.ContainerSpec` field of that name,
//! no JSON tag), and bollard's model reads `HealthCheck` (the API's swagger). Go reads JSON
//! keys case-insensitively, so a spec bollard writes is taken; serde does not, so a spec
//! bollard reads has no healthcheck, and writing it back would drop it (a stack's service
//! losing the health gate `docker stack deploy` gave it). So the service is read once more
//! here, as plain JSON, for that field alone.

use std::time::Duration;

use bollard::models::HealthConfig;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest answer read (a service's JSON is a few KiB).
const LIMIT: u64 = 4 << 20;

/// The service's `Spec.TaskTemplate.ContainerSpec.Healthcheck` as the engine at `DOCKER_HOST`
/// (`unix://` or `tcp://`, as imgctl connects) holds it; `api`: the negotiated version.
pub(super) async fn healthcheck(name: &str, api: &str) -> Result<Option<HealthConfig>, String> {
    // Service names are letters, digits, '_', '.' and '-': nothing to escape in a path.
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(format!("{name:?} is not a service name"));
    }
    let service = get(&format!("/services/{name}"), api).await?;
    let check = &service["Spec"]["TaskTemplate"]["ContainerSpec"]["Healthcheck"];
    if check.is_null() {
        return Ok(None);
    }
    serde_json::from_value(check.clone()).map(Some).map_err(|e| format!("its Healthcheck: {e}"))
}

/// `GET /vAPI{path}` of the engine at `DOCKER_HOST`, as plain JSON (also what bollard's model
/// has no field for: a service's `PreviousSpec`).
pub(super) async fn get(path: &str, api: &str) -> Result<Value, String> {
    let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    let host = host.as_deref().unwrap_or("unix:///var/run/docker.sock");
    let request = format!("GET /v{api}{path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n");
    let answer = tokio::time::timeout(Duration::from_secs(30), exchange(host, request.as_bytes()))
        .await
        .map_err(|_| "no answer within 30 s".to_owned())??;
    let body = body(&answer)?;
    serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON: {e}"))
}

async fn exchange(host: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    if let Some(path) = host.strip_prefix("unix://") {
        let mut stream = tokio::net::UnixStream::connect(path).await.map_err(|e| format!("{host}: {e}"))?;
        stream.write_all(request).await.map_err(|e| e.to_string())?;
        stream.take(LIMIT).read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("{host}: {e}"))?;
        stream.write_all(request).await.map_err(|e| e.to_string())?;
        stream.take(LIMIT).read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
    } else {
        return Err(format!("{host}: only unix:// and tcp:// engines are read"));
    }
    Ok(answer)
}

/// The body of an HTTP/1.1 answer with status 200, de-chunked.
fn body(answer: &[u8]) -> Result<Vec<u8>, String> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").ok_or("an answer without headers")?;
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let status = head.lines().next().unwrap_or_default().to_owned();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("the engine answered {status:?}"));
    }
    let mut rest = &answer[end + 4..];
    if !head.lines().any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked")) {
        return Ok(rest.to_vec());
    }
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("a chunk without its size")?;
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or_default().trim(), 16).ok());
        let size = size.ok_or("a chunk size that is not hex")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("a chunk cut short")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("a chunk cut short")?;
    }
}

#[cfg(test)]
mod tests {
    use super::body;

    #[test]
    fn plain_and_chunked_answers() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(body(plain).unwrap(), b"{}");
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(body(chunked).unwrap(), b"{\"a\":1}");
        assert!(body(b"HTTP/1.1 404 Not Found\r\n\r\n{}").unwrap_err().contains("404"));
        assert!(
            body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab").unwrap_err().contains("cut short")
        );
        assert!(body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(body(b"garbage").is_err());
    }
}

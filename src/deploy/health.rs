//! The health gate: a new replica gets traffic only after it answers its health path
//! `healthy_threshold` times in a row (or docker calls it healthy), within the deadline.
//! A replica that exits or turns unhealthy fails the gate at once.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::docker::{DockerEngine, EngineError};
use super::model::{ContainerState, Health, Replica};
use super::spec::HealthGate;

/// A replica did not become healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Not healthy within the deadline.
    #[error("{container} was not healthy within {deadline:?}: {last}")]
    Deadline {
        /// The container.
        container: String,
        /// The gate's deadline.
        deadline: Duration,
        /// The last probe's answer.
        last: String,
    },
    /// It stopped running.
    #[error("{container} stopped running ({state}) before it was healthy")]
    Exited {
        /// The container.
        container: String,
        /// Its state.
        state: String,
    },
    /// Docker's healthcheck said unhealthy.
    #[error("{container} is unhealthy by its compose healthcheck")]
    Unhealthy {
        /// The container.
        container: String,
    },
    /// It publishes no address to probe.
    #[error("{container} publishes no port to probe (is x-imgctl.port the port it listens on?)")]
    NoAddress {
        /// The container.
        container: String,
    },
    /// The engine could not be asked.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Waits until every replica in `ids` passes `gate`; returns them as last inspected.
pub async fn wait_healthy(
    engine: &DockerEngine,
    ids: &[String],
    gate: &HealthGate,
) -> Result<Vec<Replica>, HealthError> {
    wait_healthy_by(ids, gate, async |id: &str| engine.inspect(id).await).await
}

/// [`wait_healthy`] for containers read by `inspect` (compose's, which carry no imgctl label).
pub async fn wait_healthy_by(
    ids: &[String],
    gate: &HealthGate,
    inspect: impl AsyncFn(&str) -> Result<Replica, EngineError>,
) -> Result<Vec<Replica>, HealthError> {
    let checks = ids.iter().map(|id| wait_one(&inspect, id, gate));
    futures_util::future::try_join_all(checks).await
}

async fn wait_one(
    inspect: &impl AsyncFn(&str) -> Result<Replica, EngineError>,
    id: &str,
    gate: &HealthGate,
) -> Result<Replica, HealthError> {
    let started = Instant::now();
    let mut streak = 0;
    let mut last = String::from("no probe answered yet");
    loop {
        let replica = inspect(id).await?;
        if !matches!(replica.state, ContainerState::Running) {
            return Err(HealthError::Exited {
                container: replica.name,
                state: format!("{:?}", replica.state).to_lowercase(),
            });
        }
        match &gate.path {
            Some(path) => {
                let addr = replica.addr.ok_or_else(|| HealthError::NoAddress { container: replica.name.clone() })?;
                match probe(&addr.to_string(), path, gate.timeout).await {
                    Ok(status) if (200..300).contains(&status) => {
                        streak += 1;
                        if streak >= gate.healthy_threshold {
                            return Ok(replica);
                        }
                    }
                    Ok(status) => {
                        streak = 0;
                        last = format!("GET {path} answered {status}");
                    }
                    Err(error) => {
                        streak = 0;
                        last = format!("GET {path}: {error}");
                    }
                }
            }
            None => match replica.health {
                Health::Healthy => return Ok(replica),
                Health::Unhealthy => return Err(HealthError::Unhealthy { container: replica.name }),
                Health::Starting => last = "docker health: starting".into(),
                Health::None => last = "the container has no healthcheck".into(),
            },
        }
        if started.elapsed() >= gate.deadline {
            return Err(HealthError::Deadline { container: replica.name, deadline: gate.deadline, last });
        }
        tokio::time::sleep(gate.interval).await;
    }
}

/// `GET path` on `addr` (`host:port`) over HTTP/1.1 with `Connection: close`; the status code.
pub async fn probe(addr: &str, path: &str, timeout: Duration) -> Result<u16, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: imgctl\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        // Only the status line matters; read until it is complete.
        while !head.windows(2).any(|w| w == b"\r\n") {
            let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the connection closed before an answer".to_owned());
            }
            head.extend_from_slice(&buf[..n]);
            if head.len() > 8192 {
                return Err("no HTTP status line".to_owned());
            }
        }
        let line = String::from_utf8_lossy(&head);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .filter(|_| line.starts_with("HTTP/"))
            .ok_or_else(|| format!("not an HTTP answer: {:?}", line.lines().next().unwrap_or_default()))
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
}

/// Splits `http://host:port/path` into (`host:port`, `/path`); only plain HTTP (nginx on the
/// host is reached over loopback).
pub fn split_http_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return None;
    }
    let authority = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    Some((authority, path.to_owned()))
}

/// Asks `url` until it answers 2xx `count` times in a row, for at most `deadline`.
pub async fn verify(url: &str, count: u32, timeout: Duration, deadline: Duration) -> Result<(), String> {
    let (addr, path) = split_http_url(url).ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let started = Instant::now();
    let mut streak = 0;
    let mut last = String::new();
    while started.elapsed() < deadline {
        match probe(&addr, &path, timeout).await {
            Ok(status) if (200..300).contains(&status) => {
                streak += 1;
                if streak >= count {
                    return Ok(());
                }
                continue;
            }
            Ok(status) => last = format!("answered {status}"),
            Err(error) => last = error,
        }
        streak = 0;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{url} did not answer 2xx {count} times in a row within {deadline:?} (last: {last})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(split_http_url("http://127.0.0.1:8080/health"), Some(("127.0.0.1:8080".into(), "/health".into())));
        assert_eq!(split_http_url("http://localhost"), Some(("localhost:80".into(), "/".into())));
        assert_eq!(split_http_url("https://x/"), None);
        assert_eq!(split_http_url("http:///x"), None);
    }

    #[tokio::test]
    async fn probe_reads_the_status_and_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            for answer in ["HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.0 503 Busy\r\n\r\n", "SSH-2.0-x\r\n", ""] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = socket.read(&mut buf).await;
                if answer.is_empty() {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        let t = Duration::from_millis(500);
        assert_eq!(probe(&addr, "/health", t).await, Ok(204));
        assert_eq!(probe(&addr, "/health", t).await, Ok(503));
        assert!(probe(&addr, "/health", t).await.unwrap_err().contains("not an HTTP answer"));
        assert!(probe(&addr, "/health", t).await.unwrap_err().contains("no answer within"));
    }
}

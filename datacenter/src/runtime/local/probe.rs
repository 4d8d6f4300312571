//! Health probes against one replica's port: "running" means they pass.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// No port to ask: running means the process stays up.
    Alive,
    Tcp,
    Http(String),
}

pub async fn check(probe: &Probe, port: u16) -> bool {
    match probe {
        Probe::Alive => true,
        Probe::Tcp => tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await
        .is_ok_and(|r| r.is_ok()),
        Probe::Http(path) => http_ok(port, path).await,
    }
}

async fn http_ok(port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.") && matches!(head[9], b'2' | b'3'))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

//! A minimal HTTP/1.0 GET over TCP with a time bound: the agent's health probe and its
//! mod_status read. Enough for a node talking to its own Apache; no TLS, no redirects.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// GET `path` from `addr` with `Host: host`, within `timeout` for the whole exchange;
/// the body is capped at 64 KiB.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<HttpAnswer, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: triad-agent\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut buffer = Vec::new();
        let mut limited = (&mut stream).take(64 * 1024 + 8 * 1024);
        limited
            .read_to_end(&mut buffer)
            .await
            .map_err(|e| format!("read from {addr}: {e}"))?;
        parse_response(&buffer)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("GET http://{addr}{path}: no answer within {timeout:?}"))?
}

fn parse_response(bytes: &[u8]) -> Result<HttpAnswer, String> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                status_line.chars().take(60).collect::<String>()
            )
        })?;
    Ok(HttpAnswer {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn get_reads_status_and_body_of_a_real_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let n = socket.read(&mut request).await.unwrap();
            assert!(String::from_utf8_lossy(&request[..n]).starts_with("GET /health.html HTTP/1.0"));
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await
                .unwrap();
        });
        let answer = get(addr, "n1", "/health.html", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            answer,
            HttpAnswer {
                status: 200,
                body: "ok".into()
            }
        );
    }

    #[tokio::test]
    async fn refused_and_garbage_answers_are_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(get(addr, "n1", "/", Duration::from_secs(2))
            .await
            .unwrap_err()
            .contains("connect"));
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n").is_err());
    }
}

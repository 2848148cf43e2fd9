//! A minimal HTTP/1.0 GET over std's TcpStream: the tests only fetch tiny pages from the
//! balancer or a node and need the status and body, with a hard timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{LabError, Result};

/// Status code and body of a GET.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// `GET http://addr/path` with `timeout` for connect, write and each read.
pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<Response> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| LabError::Other(format!("bad address {addr}: {e}")))?;
    let ctx = |e: std::io::Error| LabError::Other(format!("GET http://{addr}{path}: {e}"));
    let mut s = TcpStream::connect_timeout(&sa, timeout).map_err(ctx)?;
    s.set_read_timeout(Some(timeout)).map_err(ctx)?;
    s.set_write_timeout(Some(timeout)).map_err(ctx)?;
    // one write: `write!` on the stream sends each formatted piece as its own segment, and
    // Nagle's algorithm then holds the last one for the server's delayed ACK (40 ms a request)
    s.set_nodelay(true).map_err(ctx)?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: triad-lab\r\nConnection: close\r\n\r\n"
    );
    s.write_all(request.as_bytes()).map_err(ctx)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(ctx)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            LabError::Other(format!(
                "GET http://{addr}{path}: no HTTP status line in {:?}",
                head.chars().take(200).collect::<String>()
            ))
        })?;
    Ok(Response {
        status,
        body: body.to_string(),
    })
}

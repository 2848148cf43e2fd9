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
    use proptest::prelude::*;
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

    /// Heads built from HTTP's own pieces, so both the status-line and the split branches run.
    fn http_like() -> impl Strategy<Value = Vec<u8>> {
        let version = prop_oneof![
            Just("HTTP/1.1"),
            Just("HTTP/1.0"),
            Just("HTTP/2"),
            Just(""),
            Just("SSH-2.0")
        ];
        let code = prop_oneof![
            any::<u16>().prop_map(|c| c.to_string()),
            any::<u32>().prop_map(|c| c.to_string()),
            Just("-1".to_string()),
            Just("200OK".to_string()),
            "[0-9]{0,6}",
        ];
        let sep = prop_oneof![Just(" "), Just("  "), Just("\t"), Just(""), Just("\u{a0}")];
        let headers = proptest::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,20}", 0..4);
        let end = prop_oneof![Just("\r\n\r\n"), Just("\n\n"), Just("\r\n"), Just("")];
        (
            version,
            sep,
            code,
            "[ -~]{0,12}",
            headers,
            end,
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(version, sep, code, reason, headers, end, body)| {
                let mut out = format!(
                    "{version}{sep}{code} {reason}\r\n{}{end}",
                    headers.join("\r\n")
                )
                .into_bytes();
                out.extend(body);
                out
            })
    }

    proptest! {
        /// Whatever answers on the port (another service, a truncated or binary answer) is
        /// an answer or an error of bounded length, never a panic.
        #[test]
        fn http_answer_never_panics(
            bytes in prop_oneof![proptest::collection::vec(any::<u8>(), 0..512), http_like()],
        ) {
            match parse_response(&bytes) {
                Ok(answer) => {
                    // the status is the second word of the first line, nothing else
                    let text = String::from_utf8_lossy(&bytes);
                    let code = text.lines().next().and_then(|l| l.split_whitespace().nth(1));
                    prop_assert_eq!(code.and_then(|c| c.parse::<u16>().ok()), Some(answer.status));
                }
                Err(error) => {
                    prop_assert!(error.starts_with("not an HTTP answer: "), "{}", error);
                    // 60 characters, each at most `\u{10ffff}` once escaped
                    prop_assert!(error.chars().count() <= 20 + 2 + 60 * 10, "{}", error);
                }
            }
        }

        /// A well-formed answer gives its status and the whole body, blank lines included.
        #[test]
        fn http_answer_round_trips(
            status in any::<u16>(),
            reason in "[A-Za-z ]{0,16}",
            headers in proptest::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,20}", 0..4),
            body in any::<String>(),
        ) {
            let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
            for header in &headers {
                head.push_str(header);
                head.push_str("\r\n");
            }
            let bytes = format!("{head}\r\n{body}").into_bytes();
            prop_assert_eq!(parse_response(&bytes), Ok(HttpAnswer { status, body }));
        }
    }
}

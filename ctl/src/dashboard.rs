//! `triadctl dashboard url`: asks the coordinator's dashboard for a login link with this
//! operator's certificate (one HTTP/1.1 request over mutual TLS; the dashboard serves
//! HTTPS, not gRPC, so tonic's client does not apply).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use triad_daemon::tls::{TlsFiles, COORDINATOR_SERVER_NAME};

/// Why no link came.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The dashboard answered no (its reason).
    Refused(String),
    /// Not reached, or no answer in time.
    CouldNotAsk(String),
}

/// The dashboard's address from `--address` or else the coordinator's endpoint
/// (`https://10.0.0.1:7422` → `10.0.0.1:9466`).
pub fn dashboard_address(address: Option<&str>, coordinator: &str) -> String {
    if let Some(address) = address {
        return address.to_string();
    }
    let authority = coordinator
        .split_once("://")
        .map_or(coordinator, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    format!("{host}:{}", crate::cli::DEFAULT_DASHBOARD_PORT)
}

/// The status code and body of an HTTP/1.1 response.
pub fn parse_response(response: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("the dashboard's answer is not HTTP")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("the dashboard's answer has no status: {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The reason a refusal page gives (`<p id="why">`), else the page as it is.
pub fn refusal_reason(body: &str) -> String {
    body.split_once("<p id=\"why\">")
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map_or(body.trim(), |(why, _)| why)
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// A login link from the dashboard at `address`, for the holder of `files`' certificate.
pub async fn login_link(
    files: &TlsFiles,
    address: &str,
    timeout: Duration,
) -> Result<String, LinkError> {
    let config = files
        .rustls_client_config(&[b"http/1.1"])
        .map_err(|e| LinkError::CouldNotAsk(e.to_string()))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect to the dashboard at {address}: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from(COORDINATOR_SERVER_NAME)
            .map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with the dashboard at {address}: {e}"))?;
        let request = format!(
            "POST /login-link HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending to the dashboard at {address}: {e}"))?;
        let mut response = Vec::new();
        // the server may close without TLS's close_notify; what was read is the answer
        if let Err(error) = tls.read_to_end(&mut response).await {
            if response.is_empty() {
                return Err(format!("reading the dashboard at {address}: {error}"));
            }
        }
        Ok(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            LinkError::CouldNotAsk(format!(
                "the dashboard at {address} did not answer within {timeout:?}"
            ))
        })?
        .map_err(LinkError::CouldNotAsk)?;
    let (status, body) = parse_response(&response).map_err(LinkError::CouldNotAsk)?;
    if status == 200 {
        Ok(body.trim().to_string())
    } else {
        Err(LinkError::Refused(format!(
            "the dashboard refused ({status}): {}",
            refusal_reason(&body)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_defaults_to_the_coordinators_host_on_the_dashboard_port() {
        assert_eq!(
            dashboard_address(None, "https://127.0.0.1:7422"),
            "127.0.0.1:9466"
        );
        assert_eq!(
            dashboard_address(None, "http://coord.example:7422/"),
            "coord.example:9466"
        );
        assert_eq!(dashboard_address(None, "https://[::1]:7422"), "[::1]:9466");
        assert_eq!(
            dashboard_address(Some("10.0.0.1:8443"), "https://127.0.0.1:7422"),
            "10.0.0.1:8443"
        );
    }

    #[test]
    fn response_status_and_body_are_read() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhttps://x/login?token=ab\n";
        assert_eq!(
            parse_response(response).unwrap(),
            (200, "https://x/login?token=ab\n".to_string())
        );
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn refusal_page_gives_its_reason() {
        let page = "<html><h1>403 Forbidden</h1><p id=\"why\">the certificate of n1 (node) may not &quot;read&quot;</p></html>";
        assert_eq!(
            refusal_reason(page),
            "the certificate of n1 (node) may not \"read\""
        );
        assert_eq!(refusal_reason("plain"), "plain");
    }
}

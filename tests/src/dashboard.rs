//! The lab coordinator's web dashboard from outside: `curl` with and without a certificate,
//! `triadctl dashboard url` with the lab viewer's certificate, and a [`Page`] open in
//! headless Chromium that reads the node tiles as the page shows them.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::browser::{spki_hash, Browser};
use crate::cmd;
use crate::error::{LabError, Result};
use crate::triad::{lab_pki, COORDINATOR_DASHBOARD, VIEWER};
use crate::wait::{self, Poll};

/// How often a waiting test reads the page's tiles (a DevTools call costs ~1 ms).
const READ_EVERY: Duration = Duration::from_millis(20);

/// `curl` to the dashboard: (HTTP status, body). `cert`: a lab certificate name, or none.
/// The server is checked against the lab CA under its certificate's name.
pub fn curl(cert: Option<&str>, method: &str, path: &str) -> Result<(u16, String)> {
    let pki = lab_pki()?;
    let port = COORDINATOR_DASHBOARD
        .rsplit_once(':')
        .map_or("9466", |(_, p)| p);
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "10",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(pki.join("ca.pem"))
    .args(["--resolve", &format!("triad-coordinator:{port}:127.0.0.1")]);
    if let Some(name) = cert {
        c.arg("--cert")
            .arg(pki.join(format!("{name}.pem")))
            .arg("--key")
            .arg(pki.join(format!("{name}.key")));
    }
    c.arg(format!("https://triad-coordinator:{port}{path}"));
    let out = cmd::output_timeout(&mut c, Duration::from_secs(15))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code.trim().parse().map_err(|_| {
        LabError::Other(format!(
            "curl {path}: no HTTP status in {text:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    Ok((code, body.to_string()))
}

/// `triadctl dashboard url` with the lab viewer's certificate: a login link.
pub fn login_url() -> Result<String> {
    let mut c = crate::triad::triadctl_as(
        VIEWER,
        &["dashboard", "url", "--address", COORDINATOR_DASHBOARD],
    )?;
    let out = cmd::output_timeout(&mut c, Duration::from_secs(20))?;
    let out = cmd::check(&c, out)?;
    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !url.starts_with("https://") {
        return Err(LabError::Other(format!(
            "triadctl dashboard url printed {url:?}"
        )));
    }
    Ok(url)
}

/// The dashboard open in headless Chromium, logged in by a link from `triadctl`.
pub struct Page {
    pub browser: Browser,
}

impl Page {
    /// Opens the dashboard and waits until its stream has drawn `nodes` tiles.
    pub fn open(nodes: usize) -> Result<Page> {
        let pki = lab_pki()?;
        let spki = spki_hash(&pki.join("coordinator.pem"))?;
        let mut browser = Browser::launch(&spki)?;
        eprintln!("[dashboard] chromium pid {}", browser.pid());
        browser.navigate(&login_url()?)?;
        let mut page = Page { browser };
        let shown = wait::until(
            &format!("the dashboard to draw {nodes} node tiles"),
            Duration::from_secs(20),
            Duration::from_millis(100),
            || {
                let tiles = page.tiles()?;
                Ok(if tiles.len() == nodes {
                    Poll::Ready(tiles)
                } else {
                    Poll::Pending(format!(
                        "tiles {tiles:?}, page {}",
                        page.browser
                            .eval("document.title + ' ' + location.href")
                            .unwrap_or_default()
                    ))
                })
            },
        )?;
        eprintln!("[dashboard] open, tiles {shown:?}");
        Ok(page)
    }

    /// Each tile's node and state (`up`, `not ready`, `draining`, `down`) as drawn now.
    pub fn tiles(&mut self) -> Result<Vec<(String, String)>> {
        let value = self.browser.eval(
            "Array.from(document.querySelectorAll('td.tile')).map(t => [t.dataset.node, t.dataset.state])",
        )?;
        Ok(value
            .as_array()
            .map(|tiles| {
                tiles
                    .iter()
                    .map(|t| {
                        (
                            t[0].as_str().unwrap_or("").to_string(),
                            t[1].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `node`'s tile state and its colour as the page renders it (`rgb(...)`).
    pub fn tile(&mut self, node: &str) -> Result<(String, String)> {
        let value = self.browser.eval(&format!(
            "(() => {{ const t = document.querySelector('td.tile[data-node=\"{node}\"]'); \
             return t ? [t.dataset.state, getComputedStyle(t).backgroundColor] : ['absent', '']; }})()"
        ))?;
        Ok((
            value[0].as_str().unwrap_or("").to_string(),
            value[1].as_str().unwrap_or("").to_string(),
        ))
    }

    /// Reads `node`'s tile until `wanted(state)` holds; the time from `since` when it did.
    pub fn wait_tile(
        &mut self,
        node: &str,
        what: &str,
        since: Instant,
        limit: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Duration> {
        wait::until(
            &format!("{node}'s tile {what} on the dashboard"),
            limit,
            READ_EVERY,
            || {
                let (state, colour) = self.tile(node)?;
                Ok(if wanted(&state) {
                    Poll::Ready(since.elapsed())
                } else {
                    Poll::Pending(format!("{state} ({colour})"))
                })
            },
        )
    }

    /// A screenshot in the system's temp directory, its path printed.
    pub fn screenshot(&mut self, name: &str) -> Result<PathBuf> {
        let path = std::env::temp_dir().join(format!("triad-dashboard-{name}.png"));
        self.browser.screenshot(&path)?;
        eprintln!("[dashboard] screenshot: {}", path.display());
        Ok(path)
    }
}

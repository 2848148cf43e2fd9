//! A real Prometheus (Debian's `prometheus` package) on the host's loopback, scraping the
//! lab coordinator's /metrics every second and evaluating the shipped alert rules
//! (packaging/prometheus/triad-alerts.yml) every second: the lab's faults fire the rules an
//! operator would get. Its data lives in a directory of the testbed's state; dropping the
//! handle stops the process (by PID), also when a test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{IoContext, LabError, Result};
use crate::hostproc::HostProc;
use crate::wait::{self, Poll};

/// Where the lab's Prometheus listens (loopback only).
pub const LISTEN: &str = "127.0.0.1:19090";

/// The shipped alert rules, in this source tree.
pub fn shipped_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus/triad-alerts.yml")
}

/// A running Prometheus; stopped on drop.
#[derive(Debug)]
pub struct Prometheus {
    proc: HostProc,
    /// Its config, data and log.
    pub dir: PathBuf,
}

/// One alert as `GET /api/v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub name: String,
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// "pending" or "firing".
    pub state: String,
}

impl Prometheus {
    /// Starts it in `dir` (created, emptied of old data) scraping `target` (host:port) and
    /// waits until it is ready (bounded).
    pub fn start(dir: &Path, target: &str) -> Result<Prometheus> {
        let bin = "/usr/bin/prometheus";
        if !Path::new(bin).exists() {
            return Err(LabError::Other(
                "no /usr/bin/prometheus: apt-get install prometheus (scripts/install-host-deps.sh)"
                    .into(),
            ));
        }
        let data = dir.join("data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).io("create", &data)?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: triad-coordinator\n    static_configs:\n      - targets: ['{target}']\n",
                shipped_rules().display()
            ),
        )
        .io("write", &config)?;
        let mut c = Command::new(bin);
        c.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={LISTEN}"));
        let proc = HostProc::spawn("prometheus", &mut c, &dir.join("prometheus.log"))?;
        let mut prometheus = Prometheus {
            proc,
            dir: dir.to_path_buf(),
        };
        wait::until(
            "prometheus to be ready",
            Duration::from_secs(60),
            Duration::from_millis(250),
            || {
                if !prometheus.proc.alive() {
                    return Err(LabError::Other(format!(
                        "prometheus exited; see {}",
                        prometheus.dir.join("prometheus.log").display()
                    )));
                }
                Ok(
                    match crate::http::get(LISTEN, "/-/ready", Duration::from_secs(2)) {
                        Ok(r) if r.status == 200 => Poll::Ready(()),
                        Ok(r) => Poll::Pending(format!("HTTP {}", r.status)),
                        Err(e) => Poll::Pending(e.to_string()),
                    },
                )
            },
        )?;
        Ok(prometheus)
    }

    /// The alerts pending or firing now.
    pub fn alerts(&self) -> Result<Vec<Alert>> {
        let r = crate::http::get(LISTEN, "/api/v1/alerts", Duration::from_secs(5))?;
        let value: serde_json::Value = serde_json::from_str(&r.body).map_err(|e| {
            LabError::Other(format!(
                "GET /api/v1/alerts: HTTP {}: {e}: {}",
                r.status, r.body
            ))
        })?;
        Ok(value["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let labels = a["labels"].as_object().cloned().unwrap_or_default();
                Alert {
                    name: labels
                        .get("alertname")
                        .and_then(|n| n.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    labels,
                    state: a["state"].as_str().unwrap_or_default().to_string(),
                }
            })
            .collect())
    }

    /// The alert `name` with `label` = `value`, pending or firing, among `alerts`.
    fn find<'a>(alerts: &'a [Alert], name: &str, label: (&str, &str)) -> Option<&'a Alert> {
        alerts.iter().find(|a| {
            a.name == name && a.labels.get(label.0).and_then(|v| v.as_str()) == Some(label.1)
        })
    }

    /// Waits (bounded) until alert `name` with `label` = `value` is firing; returns how long
    /// it took.
    pub fn wait_firing(
        &self,
        name: &str,
        label: (&str, &str),
        limit: Duration,
    ) -> Result<Duration> {
        let t = Instant::now();
        wait::until(
            &format!("alert {name}{{{}={:?}}} firing", label.0, label.1),
            limit,
            Duration::from_millis(500),
            || {
                let alerts = self.alerts()?;
                Ok(match Self::find(&alerts, name, label) {
                    Some(a) if a.state == "firing" => Poll::Ready(t.elapsed()),
                    _ => Poll::Pending(format!("{alerts:?}")),
                })
            },
        )
    }

    /// Waits (bounded) until no alert `name` with `label` = `value` is pending or firing.
    pub fn wait_resolved(&self, name: &str, label: (&str, &str), limit: Duration) -> Result<()> {
        wait::until(
            &format!("alert {name}{{{}={:?}}} resolved", label.0, label.1),
            limit,
            Duration::from_millis(500),
            || {
                let alerts = self.alerts()?;
                Ok(if Self::find(&alerts, name, label).is_some() {
                    Poll::Pending(format!("{alerts:?}"))
                } else {
                    Poll::Ready(())
                })
            },
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Err(e) = self.proc.stop(Duration::from_secs(10)) {
            eprintln!("[prometheus] stopping pid {}: {e}", self.proc.pid);
        }
    }
}

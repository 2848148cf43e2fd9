//! One-off operations (`triadctl app run`, issue 18): a command run once on this node as a
//! transient systemd unit, its output piped back to the caller as it comes.
//!
//! `systemd-run --pipe --wait --collect` runs the command as a service of systemd (the
//! user, `RuntimeMaxSec`, the cgroup: the same as a job's run), with its stdout and stderr
//! connected to `systemd-run`'s, whose exit status is the command's. The agent reads both
//! and sends them on; a caller that goes away stops only the sending: the output is still
//! drained so the command never blocks on a full pipe, and the run goes on to its end (an
//! upgrade stopped half way is worse than one whose output nobody reads).

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use triad_proto::gossip::check_job_name;
use triad_proto::v1;
use triad_proto::v1::run_once_event::Event;

/// The longest a one-off run may be given.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The prefix of every one-off run's unit.
pub const UNIT_PREFIX: &str = "triad-run-";

/// A validated `RunOnce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOff {
    pub name: String,
    pub argv: Vec<String>,
    pub user: String,
    pub timeout: Duration,
}

/// Checks the request; every message names the field. `resolve`: whether the user and the
/// program exist here (see `runner::resolve_on_host`).
pub fn validate(
    request: v1::RunOnceRequest,
    resolve: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<OneOff, String> {
    let name = request.name;
    check_job_name(&name).map_err(|rule| format!("name {name:?}: {rule}"))?;
    triad_jobs::spec::check_argv(&request.argv).map_err(|why| format!("argv: {why}"))?;
    triad_jobs::spec::check_user(&request.user).map_err(|why| format!("user: {why}"))?;
    let timeout = Duration::from_millis(request.timeout_ms);
    if timeout < Duration::from_secs(1) || timeout > MAX_TIMEOUT {
        return Err(format!(
            "timeout: {timeout:?} is not between 1s and {MAX_TIMEOUT:?}"
        ));
    }
    resolve(&request.user, &request.argv[0])?;
    Ok(OneOff {
        name,
        argv: request.argv,
        user: request.user,
        timeout,
    })
}

/// `triad-run-NAME-STARTMS.service`.
pub fn unit_name(name: &str, start: SystemTime) -> String {
    let ms = start
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{UNIT_PREFIX}{name}-{ms}.service")
}

/// The arguments of `systemd-run` for `run` as `unit`.
pub fn systemd_run_args(unit: &str, run: &OneOff) -> Vec<String> {
    let mut args = vec![
        format!("--unit={unit}"),
        format!("--uid={}", run.user),
        "--pipe".into(),
        "--wait".into(),
        "--collect".into(),
        "--quiet".into(),
        "--service-type=exec".into(),
        format!("--description=triad one-off run {}", run.name),
        "-p".into(),
        format!("RuntimeMaxSec={}ms", run.timeout.as_millis()),
        "-p".into(),
        format!("SyslogIdentifier={UNIT_PREFIX}{}", run.name),
        "--".into(),
    ];
    args.extend(run.argv.iter().cloned());
    args
}

fn event(event: Event) -> v1::RunOnceEvent {
    v1::RunOnceEvent { event: Some(event) }
}

/// Starts `run` and returns the receiver of its events: `Started`, the output as it comes,
/// then `Exited`. Sending stops when the receiver is dropped; the run does not.
pub fn start(node: &str, run: OneOff) -> Result<mpsc::Receiver<v1::RunOnceEvent>, String> {
    let unit = unit_name(&run.name, SystemTime::now());
    let args = systemd_run_args(&unit, &run);
    let mut child = crate::exec::command("systemd-run")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("systemd-run {}: {e}", args.join(" ")))?;
    let (tx, rx) = mpsc::channel(64);
    let started = Instant::now();
    tracing::info!(name = %run.name, %unit, user = %run.user, argv = ?run.argv, "one-off run started");
    let _ = tx.try_send(event(Event::Started(v1::RunStarted {
        node: node.to_string(),
        unit: unit.clone(),
    })));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out = tokio::spawn(forward(stdout, tx.clone(), Event::Stdout));
    let err = tokio::spawn(forward(stderr, tx.clone(), Event::Stderr));
    tokio::spawn(async move {
        let _ = out.await;
        let _ = err.await;
        let status = child.wait().await;
        let duration = started.elapsed();
        let exit_status = match &status {
            Ok(status) => status.code().unwrap_or(-1),
            Err(_) => -1,
        };
        tracing::info!(name = %run.name, %unit, exit_status, ?duration, "one-off run ended");
        let _ = tx
            .send(event(Event::Exited(v1::RunExited {
                exit_status,
                duration_ms: duration.as_millis() as u64,
            })))
            .await;
    });
    Ok(rx)
}

/// Copies a pipe into events; once nobody listens, reads on without sending (the command
/// must not block on a full pipe).
async fn forward<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    tx: mpsc::Sender<v1::RunOnceEvent>,
    wrap: fn(Vec<u8>) -> Event,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 8192];
    let mut listening = true;
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if listening && tx.send(event(wrap(buf[..n].to_vec()))).await.is_err() {
                    listening = false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> v1::RunOnceRequest {
        v1::RunOnceRequest {
            name: "upgrade".into(),
            argv: vec!["/usr/bin/php".into(), "occ".into(), "upgrade".into()],
            user: "www-data".into(),
            timeout_ms: 3_600_000,
        }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let ok = |_: &str, _: &str| Ok(());
        let run = validate(request(), ok).unwrap();
        assert_eq!(run.timeout, Duration::from_secs(3600));
        let bad = |change: fn(&mut v1::RunOnceRequest)| {
            let mut r = request();
            change(&mut r);
            validate(r, ok).unwrap_err()
        };
        assert!(bad(|r| r.name = "Up Grade".into()).starts_with("name "));
        assert!(bad(|r| r.argv.clear()).starts_with("argv: "));
        assert!(bad(|r| r.user = "a b".into()).starts_with("user: "));
        assert!(bad(|r| r.timeout_ms = 0).starts_with("timeout: "));
        assert!(bad(|r| r.timeout_ms = u64::MAX).starts_with("timeout: "));
        let missing =
            |_: &str, _: &str| Err("user: \"www-data\" is not a user of this node".into());
        assert!(validate(request(), missing)
            .unwrap_err()
            .starts_with("user: "));
    }

    #[test]
    fn the_run_is_a_piped_transient_unit_bounded_by_its_timeout() {
        let run = validate(request(), |_, _| Ok(())).unwrap();
        let unit = unit_name("upgrade", UNIX_EPOCH + Duration::from_millis(1234));
        assert_eq!(unit, "triad-run-upgrade-1234.service");
        let args = systemd_run_args(&unit, &run);
        for expected in [
            "--unit=triad-run-upgrade-1234.service",
            "--uid=www-data",
            "--pipe",
            "--wait",
            "--collect",
            "RuntimeMaxSec=3600000ms",
            "SyslogIdentifier=triad-run-upgrade",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        let dashes = args.iter().position(|a| a == "--").unwrap();
        assert_eq!(args[dashes + 1..], ["/usr/bin/php", "occ", "upgrade"]);
    }
}

//! The one side effect of cluster jobs: runs as transient systemd units, behind
//! [`JobRunner`] so the tick is tested with a fake.
//!
//! A run is `systemd-run --unit=triad-job-NAME-EPOCH-STARTMS.service --uid=USER
//! -p Type=exec -p RemainAfterExit=yes -p RuntimeMaxSec=TIMEOUT -- ARGV...`: its output is in
//! the journal under the unit's name and `SyslogIdentifier=triad-job-NAME`, systemd kills it
//! at the timeout (on its monotonic clock, whatever happens to the agent), and it is a
//! child of systemd, not of the agent, so an agent restart leaves it running.
//!
//! Not `--collect`: a collected unit disappears the moment it ends, failed or not, and with
//! it how it ended. With `RemainAfterExit=yes` a finished run stays loaded (`active
//! (exited)` on success, `failed` otherwise) until the agent has read its result
//! ([`JobRunner::observe`]) and unloads it ([`JobRunner::collect`]), also across an agent
//! restart. `Type=exec` makes `systemd-run` fail when the program cannot be started (an
//! unknown user, a missing binary) instead of reporting a start that did not happen.

use std::collections::BTreeMap;
use std::time::Duration;

use triad_proto::gossip::RunOutcome;

use crate::exec::{run, HostError};
use crate::jobs::JobSpec;

/// The prefix of every run's unit name.
pub const UNIT_PREFIX: &str = "triad-job-";

/// What systemd says of a run's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Starting, running or stopping.
    Running,
    /// Ended; `duration` from systemd's monotonic timestamps when it has both.
    Ended {
        outcome: RunOutcome,
        duration: Option<Duration>,
    },
    /// No such unit loaded.
    Gone,
}

#[async_trait::async_trait]
pub trait JobRunner: Send + Sync {
    /// Start `spec` as the transient unit `unit`, its runtime bounded by `spec.timeout`.
    async fn start(&self, unit: &str, spec: &JobSpec) -> Result<(), HostError>;
    /// How the unit is now.
    async fn observe(&self, unit: &str) -> Result<Observed, HostError>;
    /// Unload an ended run's unit (its journal stays).
    async fn collect(&self, unit: &str) -> Result<(), HostError>;
    /// Every loaded unit whose name starts with [`UNIT_PREFIX`], in any state.
    async fn list(&self) -> Result<Vec<String>, HostError>;
    /// Whether the job's user and program exist on this node: `Err` names the field
    /// ("user: ...", "argv: ...").
    fn resolve(&self, spec: &JobSpec) -> Result<(), String>;
}

/// The directories a program without a `/` is looked up in (systemd's own default PATH).
const PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Whether `user` names an account of this host and `program` an executable file.
pub fn resolve_on_host(user: &str, program: &str) -> Result<(), String> {
    match nix::unistd::User::from_name(user) {
        Ok(Some(_)) => {}
        Ok(None) => return Err(format!("user: {user:?} is not a user of this node")),
        Err(e) => return Err(format!("user: looking up {user:?}: {e}")),
    }
    let executable = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if program.contains('/') {
        executable(std::path::Path::new(program))
    } else {
        PATH.iter()
            .any(|dir| executable(&std::path::Path::new(dir).join(program)))
    };
    if !found {
        return Err(format!(
            "argv: the program {program:?} is not an executable file on this node{}",
            if program.contains('/') {
                ""
            } else {
                " (looked up in systemd's PATH)"
            }
        ));
    }
    Ok(())
}

/// Production: systemd-run and systemctl.
#[derive(Debug, Clone, Default)]
pub struct SystemdJobs;

/// Bound on `systemd-run` (the tick leaves this much of the lease for it; see
/// `jobs::START_ALLOWANCE`).
pub const START_TIMEOUT: Duration = triad_jobs::lease::START_ALLOWANCE;
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(10);

/// The arguments of `systemd-run` for a run of `spec` as `unit`.
pub fn systemd_run_args(unit: &str, spec: &JobSpec) -> Vec<String> {
    let mut args = vec![
        format!("--unit={unit}"),
        format!("--uid={}", spec.user),
        format!("--description=triad job {}", spec.name),
        "--property=Type=exec".to_string(),
        "--property=RemainAfterExit=yes".to_string(),
        format!("--property=RuntimeMaxSec={}ms", spec.timeout.as_millis()),
        format!("--property=SyslogIdentifier={UNIT_PREFIX}{}", spec.name),
        "--quiet".to_string(),
        "--".to_string(),
    ];
    args.extend(spec.argv.iter().cloned());
    args
}

/// The properties [`parse_show`] reads.
const SHOW_PROPERTIES: &str = "LoadState,ActiveState,SubState,Result,ExecMainCode,ExecMainStatus,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic";

/// Pure: `systemctl show -p SHOW_PROPERTIES` output as an [`Observed`].
pub fn parse_show(text: &str) -> Observed {
    let properties: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim(), value.trim()))
        .collect();
    let get = |key: &str| properties.get(key).copied().unwrap_or("");
    if get("LoadState") == "not-found" {
        return Observed::Gone;
    }
    let ended = match get("ActiveState") {
        "active" => get("SubState") == "exited",
        "failed" | "inactive" => true,
        _ => false,
    };
    if !ended {
        return Observed::Running;
    }
    let status: Option<u8> = get("ExecMainStatus").parse().ok();
    // ExecMainCode 1 (CLD_EXITED): the command exited by itself, with its status. The unit
    // may say otherwise later: a RemainAfterExit unit left unread (the agent down) is
    // stopped at RuntimeMaxSec with Result=timeout although its run had ended well.
    let exited = get("ExecMainCode") == "1";
    let outcome = match (get("Result"), status) {
        (_, Some(status)) if exited => RunOutcome::Exit(status),
        ("success" | "exit-code", Some(status)) => RunOutcome::Exit(status),
        ("timeout", _) => RunOutcome::Timeout,
        ("signal" | "core-dump" | "oom-kill" | "watchdog", _) => RunOutcome::Signal,
        _ => RunOutcome::Failed,
    };
    let micros = |key: &str| get(key).parse::<u64>().ok().filter(|us| *us > 0);
    let duration = match (
        micros("ExecMainStartTimestampMonotonic"),
        micros("ExecMainExitTimestampMonotonic"),
    ) {
        (Some(start), Some(exit)) => exit.checked_sub(start).map(Duration::from_micros),
        _ => None,
    };
    Observed::Ended { outcome, duration }
}

/// Pure: the unit names of `systemctl list-units --plain --no-legend` output.
pub fn parse_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|unit| unit.starts_with(UNIT_PREFIX))
        .map(str::to_string)
        .collect()
}

#[async_trait::async_trait]
impl JobRunner for SystemdJobs {
    fn resolve(&self, spec: &JobSpec) -> Result<(), String> {
        resolve_on_host(&spec.user, &spec.argv[0])
    }

    async fn start(&self, unit: &str, spec: &JobSpec) -> Result<(), HostError> {
        let args = systemd_run_args(unit, spec);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("systemd-run", &args, START_TIMEOUT).await.map(|_| ())
    }

    async fn observe(&self, unit: &str) -> Result<Observed, HostError> {
        run(
            "systemctl",
            &["show", "-p", SHOW_PROPERTIES, unit],
            SYSTEMCTL_TIMEOUT,
        )
        .await
        .map(|text| parse_show(&text))
    }

    async fn collect(&self, unit: &str) -> Result<(), HostError> {
        // `stop` unloads a finished run (active, exited); `reset-failed` a failed one,
        // and refuses a unit `stop` already unloaded.
        run("systemctl", &["stop", unit], SYSTEMCTL_TIMEOUT).await?;
        let _ = run("systemctl", &["reset-failed", unit], SYSTEMCTL_TIMEOUT).await;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, HostError> {
        let pattern = format!("{UNIT_PREFIX}*");
        run(
            "systemctl",
            &[
                "list-units",
                "--all",
                "--plain",
                "--no-legend",
                "--full",
                "--type=service",
                &pattern,
            ],
            SYSTEMCTL_TIMEOUT,
        )
        .await
        .map(|text| parse_list(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_is_read_into_running_ended_or_gone() {
        let show = |load: &str, active: &str, sub: &str, result: &str, status: &str| {
            format!(
                "LoadState={load}\nActiveState={active}\nSubState={sub}\nResult={result}\n\
                 ExecMainStatus={status}\nExecMainStartTimestampMonotonic=5000000\n\
                 ExecMainExitTimestampMonotonic=7100000\n"
            )
        };
        let ended = |outcome| Observed::Ended {
            outcome,
            duration: Some(Duration::from_millis(2100)),
        };
        let cases = [
            (
                "running",
                show("loaded", "active", "running", "success", "0"),
                Observed::Running,
            ),
            (
                "starting",
                show("loaded", "activating", "start", "success", "0"),
                Observed::Running,
            ),
            (
                "stopping",
                show("loaded", "deactivating", "stop-sigterm", "success", "0"),
                Observed::Running,
            ),
            (
                "exited 0 (RemainAfterExit)",
                show("loaded", "active", "exited", "success", "0"),
                ended(RunOutcome::Exit(0)),
            ),
            (
                "exited 3",
                show("loaded", "failed", "failed", "exit-code", "3"),
                ended(RunOutcome::Exit(3)),
            ),
            (
                "unknown user (217/USER)",
                show("loaded", "failed", "failed", "exit-code", "217"),
                ended(RunOutcome::Exit(217)),
            ),
            (
                "timeout",
                show("loaded", "failed", "failed", "timeout", "15"),
                ended(RunOutcome::Timeout),
            ),
            (
                "killed",
                show("loaded", "failed", "failed", "signal", "9"),
                ended(RunOutcome::Signal),
            ),
            (
                "other",
                show("loaded", "failed", "failed", "resources", "0"),
                ended(RunOutcome::Failed),
            ),
            (
                "gone",
                show("not-found", "inactive", "dead", "success", "0"),
                Observed::Gone,
            ),
        ];
        for (case, text, expected) in cases {
            assert_eq!(parse_show(&text), expected, "{case}");
        }
        // an exited run whose unit was stopped at RuntimeMaxSec before anyone read it keeps
        // its exit status; a run killed at the timeout is a timeout
        let late = format!(
            "{}ExecMainCode=1\n",
            show("loaded", "failed", "failed", "timeout", "0")
        );
        assert_eq!(parse_show(&late), ended(RunOutcome::Exit(0)));
        let killed = format!(
            "{}ExecMainCode=2\n",
            show("loaded", "failed", "failed", "timeout", "15")
        );
        assert_eq!(parse_show(&killed), ended(RunOutcome::Timeout));
        let no_exit_time = "LoadState=loaded\nActiveState=failed\nSubState=failed\nResult=exit-code\nExecMainStatus=1\nExecMainStartTimestampMonotonic=5\nExecMainExitTimestampMonotonic=0\n";
        assert_eq!(
            parse_show(no_exit_time),
            Observed::Ended {
                outcome: RunOutcome::Exit(1),
                duration: None
            }
        );
    }

    #[test]
    fn list_units_output_yields_the_job_units() {
        let text = "triad-job-cron-3-1772445600000.service loaded active running triad job cron\n\
                    triad-job-probe-1-1772445601000.service loaded failed failed triad job probe\n\
                    other.service loaded active running x\n";
        assert_eq!(
            parse_list(text),
            [
                "triad-job-cron-3-1772445600000.service",
                "triad-job-probe-1-1772445601000.service"
            ]
        );
        assert!(parse_list("").is_empty());
    }
}

//! Cluster jobs on the lab (issue 18): a probe job whose every run appends a start and an
//! end line, with its node and the time, to a file on the volume; the runs read back from
//! it; and the job's facts from `triadctl status --output json`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{LabError, Result};
use crate::node::Node;
use crate::wait::{self, Poll};

/// Where the probe's runs leave their lines (on the volume: every node appends to it).
pub const PROBE_FILE: &str = "/var/www/triad/jobs-probe.log";
/// The probe's schedule and timeout; its lease is the default for that timeout.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(10);
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// `LeaseParams::for_job(PROBE_TIMEOUT, None)`: 5s + 5s renewal + 5s start allowance + 5s.
pub const PROBE_LEASE: Duration = Duration::from_secs(20);

/// The probe: two seconds between its start and end lines, as root (the file is on the
/// volume, root-owned).
pub const PROBE_JOB: &str = "\n[[app.jobs]]\nname = \"probe\"\n\
argv = [\"/bin/sh\", \"-c\", 'echo \"start $(hostname) $(date +%s%N)\" >> /var/www/triad/jobs-probe.log; sleep 2; echo \"end $(hostname) $(date +%s%N)\" >> /var/www/triad/jobs-probe.log']\n\
user = \"root\"\nschedule = \"10s\"\ntimeout = \"5s\"\n";

/// A job whose user exists on no node: every node refuses it, and the status says so.
pub const BAD_USER_JOB: &str = "\n[[app.jobs]]\nname = \"bad-user\"\nargv = [\"/bin/true\"]\n\
user = \"triad-nobody\"\nschedule = \"1m\"\ntimeout = \"10s\"\n";

/// One run of the probe as its lines show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub node: String,
    /// Unix nanoseconds (the containers share the host's clock).
    pub start: u128,
    /// `None`: no end line (still running, or killed at its timeout).
    pub end: Option<u128>,
}

/// The runs in the probe file's text, by start; a start is paired with its node's next end.
pub fn parse_runs(text: &str) -> std::result::Result<Vec<Run>, String> {
    let mut runs: Vec<Run> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [what, node, at] = words[..] else {
            return Err(format!(
                "probe line {line:?}: expected `start|end NODE NANOS`"
            ));
        };
        let at: u128 = at
            .parse()
            .map_err(|_| format!("probe line {line:?}: {at:?} is not a time in ns"))?;
        match what {
            "start" => runs.push(Run {
                node: node.to_string(),
                start: at,
                end: None,
            }),
            "end" => {
                let run = runs
                    .iter_mut()
                    .rev()
                    .find(|r| r.node == node && r.end.is_none() && r.start <= at)
                    .ok_or_else(|| format!("probe line {line:?}: an end without its start"))?;
                run.end = Some(at);
            }
            _ => return Err(format!("probe line {line:?}: expected start or end")),
        }
    }
    runs.sort_by_key(|r| r.start);
    Ok(runs)
}

/// Two runs that overlap: a run without an end line lasted until its timeout at most
/// (systemd's `RuntimeMaxSec`).
pub fn overlaps(runs: &[Run], timeout: Duration) -> Vec<String> {
    runs.windows(2)
        .filter_map(|pair| {
            let (a, b) = (&pair[0], &pair[1]);
            let a_end = a.end.unwrap_or(a.start + timeout.as_nanos());
            (b.start < a_end).then(|| {
                format!(
                    "{} started at {} while {}'s run from {} went on until {}{}",
                    b.node,
                    b.start,
                    a.node,
                    a.start,
                    a_end,
                    if a.end.is_none() {
                        " (its timeout: no end line)"
                    } else {
                        ""
                    }
                )
            })
        })
        .collect()
}

/// The longest time between two consecutive starts within `[from, to]` (Unix ns), and
/// the pair.
pub fn longest_gap(runs: &[Run], from: u128, to: u128) -> Option<(Duration, Run, Run)> {
    let inside: Vec<&Run> = runs
        .iter()
        .filter(|r| r.start >= from && r.start <= to)
        .collect();
    inside
        .windows(2)
        .map(|pair| {
            let gap = Duration::from_nanos((pair[1].start - pair[0].start) as u64);
            (gap, pair[0].clone(), pair[1].clone())
        })
        .max_by_key(|(gap, _, _)| *gap)
}

/// The probe's runs as `node` reads the file.
pub fn probe_runs(node: &Node) -> Result<Vec<Run>> {
    let out = node.exec_output(&["cat", PROBE_FILE], Duration::from_secs(20))?;
    if !out.status.success() {
        // not written yet
        return Ok(Vec::new());
    }
    parse_runs(&String::from_utf8_lossy(&out.stdout)).map_err(LabError::Other)
}

/// Now, in Unix nanoseconds.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The job `name` in `triadctl status --output json`.
pub fn job_status(name: &str) -> Result<serde_json::Value> {
    let status = crate::triad::status_json()?;
    status["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["name"] == name).cloned())
        .ok_or_else(|| LabError::Other(format!("no job {name:?} in the status: {status}")))
}

/// Waits until the status names a holder of `job` other than `not`; returns it.
pub fn wait_holder(job: &str, not: Option<&str>, limit: Duration) -> Result<String> {
    wait::until(
        &format!(
            "the status to name a holder of job {job}{}",
            not.map(|n| format!(" other than {n}")).unwrap_or_default()
        ),
        limit,
        Duration::from_millis(500),
        || {
            let status = job_status(job)?;
            Ok(match status["holder"].as_str() {
                Some(holder) if Some(holder) != not => Poll::Ready(holder.to_string()),
                _ => Poll::Pending(status["lease"].as_str().unwrap_or("?").to_string()),
            })
        },
    )
}

/// Waits until `node` reads a probe run that started after `after` (Unix ns) on a node
/// other than `not`; returns it.
pub fn wait_run_after(node: &Node, after: u128, not: Option<&str>, limit: Duration) -> Result<Run> {
    wait::until(
        &format!(
            "a probe run after {after}{}",
            not.map(|n| format!(" on a node other than {n}"))
                .unwrap_or_default()
        ),
        limit,
        Duration::from_millis(500),
        || {
            let runs = probe_runs(node)?;
            Ok(
                match runs
                    .into_iter()
                    .find(|r| r.start > after && Some(r.node.as_str()) != not)
                {
                    Some(run) => Poll::Ready(run),
                    None => Poll::Pending("no such run yet".into()),
                },
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u128 = 1_000_000_000;

    #[test]
    fn runs_pair_their_lines_and_overlaps_count_a_missing_end_as_the_timeout() {
        let text = format!(
            "start n1 {}\nend n1 {}\nstart n2 {}\nstart n3 {}\nend n3 {}\n",
            10 * S,
            12 * S,
            20 * S,
            24 * S,
            26 * S
        );
        let runs = parse_runs(&text).unwrap();
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[0].end, Some(12 * S));
        assert_eq!(runs[1].end, None);
        let overlapping = overlaps(&runs, Duration::from_secs(5));
        assert_eq!(overlapping.len(), 1, "{overlapping:?}");
        assert!(overlapping[0].contains("n3 started"), "{overlapping:?}");
        assert!(overlaps(&runs, Duration::from_secs(4)).is_empty());
        let (gap, a, b) = longest_gap(&runs, 0, 100 * S).unwrap();
        assert_eq!(
            (gap, a.node.as_str(), b.node.as_str()),
            (Duration::from_secs(10), "n1", "n2")
        );
        assert!(parse_runs("end n1 5\n").is_err());
        assert!(parse_runs("start n1 soon\n").is_err());
    }
}

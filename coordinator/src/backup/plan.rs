//! Pure rules of the backup loop: which node a backup is read from, when a scheduled one is
//! due, and when the newest one is too old.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use triad_jobs::schedule::Schedule;
use triad_proto::gossip::Role;

use crate::view::ClusterView;

/// A backup desyncs its node from flow control and reads its whole datadir and the volume:
/// it must never be the only node serving. So: a core node, live, ready, not draining,
/// Synced in the Primary component (never a donor or joiner), and at least one other such
/// node. Preferred: a node that is not the app's database writer (the one most nodes route
/// to), so the writes do not share their node's disk with the backup; then the lowest id.
/// The error says why no node qualifies.
pub fn pick_node(view: &ClusterView) -> Result<(String, SocketAddr), String> {
    let mut candidates: Vec<(String, SocketAddr)> = view
        .members()
        .filter(|m| {
            m.live
                && m.keys.role == Role::Core
                && m.keys.ready
                && !m.keys.draining
                && m.keys.galera.synced_in_primary()
        })
        .filter_map(|m| m.keys.grpc.map(|grpc| (m.node_id.clone(), grpc)))
        .collect();
    candidates.sort();
    match candidates.len() {
        0 => return Err("no core node is live, ready and Synced in the Primary component".into()),
        1 => {
            return Err(format!(
                "only {} is Synced and serving: a backup would desync the only node the app has; \
                 try again once another core node is ready",
                candidates[0].0
            ))
        }
        _ => {}
    }
    let writer = crate::app::routed_writer(view);
    let chosen = candidates
        .iter()
        .find(|(node, _)| Some(node.as_str()) != writer)
        .unwrap_or(&candidates[0]);
    Ok(chosen.clone())
}

/// How long a failed scheduled backup waits before the next attempt (the schedule's next
/// time may be a day away; a transient fault should not cost a day).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15 * 60);

/// Pure: a scheduled backup is due when the schedule's next time after the newest complete
/// backup (or after the coordinator's start when there is none) has come, and no attempt
/// failed within [`RETRY_AFTER_FAILURE`].
pub fn due(
    schedule: &Schedule,
    newest: Option<SystemTime>,
    last_failure: Option<SystemTime>,
    started: SystemTime,
    now: SystemTime,
) -> bool {
    let next = next_time(schedule, newest, started);
    let cooling = last_failure.is_some_and(|failed| {
        now.duration_since(failed)
            .map_or(true, |since| since < RETRY_AFTER_FAILURE)
    });
    next <= now && !cooling
}

/// The schedule's next time after the newest backup (after `started` without one), not
/// moved up to now when it has passed (`Schedule::next_after` would: a job catches up).
pub fn next_time(
    schedule: &Schedule,
    newest: Option<SystemTime>,
    started: SystemTime,
) -> SystemTime {
    let base = newest.unwrap_or(started);
    schedule.next_after(Some(base), base)
}

/// How late a scheduled backup may be before the status warns: a backup takes time.
pub const LATE_ALLOWANCE: Duration = Duration::from_secs(3600);

/// Pure: the warning when the newest backup is older than the schedule allows (its next
/// time after the newest has passed by more than [`LATE_ALLOWANCE`]), or when there is
/// none an allowance after the coordinator's start and the first scheduled time.
pub fn staleness(
    schedule: Option<&Schedule>,
    newest: Option<SystemTime>,
    started: SystemTime,
    now: SystemTime,
) -> Option<String> {
    let schedule = schedule?;
    let next = next_time(schedule, newest, started);
    let late = now.duration_since(next + LATE_ALLOWANCE).ok()?;
    Some(match newest {
        Some(newest) => format!(
            "the newest backup is {} old: the schedule ({schedule}) wanted one {} ago",
            words(now.duration_since(newest).unwrap_or_default()),
            words(late + LATE_ALLOWANCE)
        ),
        None => format!(
            "no backup yet: the schedule ({schedule}) wanted one {} ago",
            words(late + LATE_ALLOWANCE)
        ),
    })
}

/// "3h12m", "2d4h": durations for people, at most two units.
pub fn words(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{mins}m")
    } else if mins > 0 {
        format!("{mins}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::testing::{observed, view_of};

    fn synced(id: &str, grpc: &str) -> triad_cluster::membership::ObservedMember {
        let mut m = observed(id, true, true);
        m.keys.galera.state = triad_proto::gossip::GaleraState::Synced;
        m.keys.galera.cluster_status = Some("Primary".into());
        m.keys.grpc = Some(grpc.parse().unwrap());
        m
    }

    #[test]
    fn never_the_only_synced_node_and_not_the_writer_when_another_will_do() {
        let n1 = synced("n1", "10.0.0.1:7421");
        let mut n2 = synced("n2", "10.0.0.2:7421");
        let mut n3 = synced("n3", "10.0.0.3:7421");
        // only n1 qualifies: refused, naming it
        n2.keys.galera.state = triad_proto::gossip::GaleraState::Donor;
        n3.live = false;
        let error = pick_node(&view_of(&[n1.clone(), n2.clone(), n3.clone()])).unwrap_err();
        assert!(error.contains("only n1"), "{error}");
        // n1 and n3 qualify, n1 is the writer: n3
        n3.live = true;
        let mut members = vec![n1.clone(), n2.clone(), n3.clone()];
        for m in &mut members {
            m.keys.db_writer = Some("n1".into());
        }
        assert_eq!(pick_node(&view_of(&members)).unwrap().0, "n3");
        // no writer known: the lowest id
        assert_eq!(pick_node(&view_of(&[n1, n3])).unwrap().0, "n1");
        // nobody
        let error = pick_node(&view_of(&[n2])).unwrap_err();
        assert!(error.contains("no core node"), "{error}");
    }

    #[test]
    fn a_draining_or_web_node_is_never_chosen() {
        let n1 = synced("n1", "10.0.0.1:7421");
        let mut n2 = synced("n2", "10.0.0.2:7421");
        let mut n4 = synced("n4", "10.0.0.4:7421");
        n2.keys.draining = true;
        n4.keys.role = Role::Web;
        let error = pick_node(&view_of(&[n1, n2, n4])).unwrap_err();
        assert!(error.contains("only n1"), "{error}");
    }

    #[test]
    fn scheduled_backups_come_due_after_the_newest_and_pause_after_a_failure() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let daily = Schedule::parse("1d").unwrap();
        let hour = Duration::from_secs(3600);
        // the newest is 23h old: not due; 25h: due
        assert!(!due(&daily, Some(t0), None, t0, t0 + 23 * hour));
        assert!(due(&daily, Some(t0), None, t0, t0 + 25 * hour));
        // a failure 5 minutes ago holds it back, 20 minutes ago does not
        let now = t0 + 25 * hour;
        assert!(!due(
            &daily,
            Some(t0),
            Some(now - Duration::from_secs(300)),
            t0,
            now
        ));
        assert!(due(
            &daily,
            Some(t0),
            Some(now - Duration::from_secs(1200)),
            t0,
            now
        ));
        // none yet: a day after the start
        assert!(!due(&daily, None, None, t0, t0 + hour));
        assert!(due(&daily, None, None, t0, t0 + 25 * hour));
    }

    #[test]
    fn the_status_warns_only_past_the_allowance() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let daily = Schedule::parse("1d").unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(staleness(None, None, t0, t0 + 100 * hour), None);
        assert_eq!(staleness(Some(&daily), Some(t0), t0, t0 + 24 * hour), None);
        let warning = staleness(Some(&daily), Some(t0), t0, t0 + 26 * hour).unwrap();
        assert!(warning.contains("1d2h old"), "{warning}");
        assert!(warning.contains("2h0m ago"), "{warning}");
        let warning = staleness(Some(&daily), None, t0, t0 + 26 * hour).unwrap();
        assert!(warning.starts_with("no backup yet"), "{warning}");
    }
}

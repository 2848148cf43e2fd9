//! The autoscaling metric: the cluster's request rate, from each ready node's Apache
//! request counter (mod_status `Total Accesses`, gossiped as `metrics.req_total`).
//!
//! Pure: samples go in with the time they were seen, the rate comes out. Per node, the
//! increase over the window is the sum of the counter's rises; a fall means Apache
//! restarted and its counter began again from zero, so the new value is the rise (as
//! Prometheus' `rate` does). A node that is not ready is dropped: its requests are not
//! served by the cluster's capacity, and a node that comes back starts a fresh series.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Request rates over a sliding window.
#[derive(Debug, Clone)]
pub struct RequestRate {
    window: Duration,
    series: BTreeMap<String, VecDeque<(Instant, u64)>>,
}

/// The rate as computed at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// Requests per second over the whole cluster.
    pub cluster: f64,
    /// Nodes that contributed (ready, with at least two samples in the window).
    pub nodes: usize,
}

impl RequestRate {
    pub fn new(window: Duration) -> RequestRate {
        RequestRate {
            window,
            series: BTreeMap::new(),
        }
    }

    /// Record one observation: the counters of the ready nodes at `now`. Nodes missing
    /// from `ready` lose their series.
    pub fn observe(&mut self, ready: &BTreeMap<String, u64>, now: Instant) {
        let keep: BTreeSet<&String> = ready.keys().collect();
        self.series.retain(|node, _| keep.contains(node));
        for (node, total) in ready {
            let series = self.series.entry(node.clone()).or_default();
            if series.back().is_some_and(|(at, _)| *at >= now) {
                continue;
            }
            series.push_back((now, *total));
            // keep one sample older than the window so the window is fully covered
            while series.len() > 2
                && series
                    .get(1)
                    .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.window)
            {
                series.pop_front();
            }
        }
    }

    /// The cluster's request rate, or `None` before any ready node has two samples.
    pub fn rate(&self) -> Option<Rate> {
        let mut cluster = 0.0;
        let mut nodes = 0;
        for series in self.series.values() {
            let (Some((first, _)), Some((last, _))) = (series.front(), series.back()) else {
                continue;
            };
            let span = last.saturating_duration_since(*first).as_secs_f64();
            if series.len() < 2 || span <= 0.0 {
                continue;
            }
            let increase: u64 = series
                .iter()
                .zip(series.iter().skip(1))
                .map(|((_, before), (_, after))| {
                    if after >= before {
                        after - before
                    } else {
                        *after
                    }
                })
                .sum();
            cluster += increase as f64 / span;
            nodes += 1;
        }
        (nodes > 0).then_some(Rate { cluster, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    fn ready(rows: &[(&str, u64)]) -> BTreeMap<String, u64> {
        rows.iter().map(|(n, t)| (n.to_string(), *t)).collect()
    }

    #[test]
    fn rate_is_the_sum_over_ready_nodes() {
        let t = Instant::now();
        let mut rate = RequestRate::new(Duration::from_secs(60));
        assert_eq!(rate.rate(), None, "no data yet");
        rate.observe(&ready(&[("n1", 1000), ("n2", 50)]), t);
        assert_eq!(rate.rate(), None, "one sample is not a rate");
        rate.observe(&ready(&[("n1", 1100), ("n2", 250)]), at(t, 10));
        let r = rate.rate().unwrap();
        assert_eq!(r.nodes, 2);
        assert!((r.cluster - 30.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn an_apache_restart_is_not_a_negative_rate() {
        let t = Instant::now();
        let mut rate = RequestRate::new(Duration::from_secs(60));
        rate.observe(&ready(&[("n1", 5000)]), t);
        rate.observe(&ready(&[("n1", 5100)]), at(t, 10));
        // Apache restarted: the counter starts again from zero
        rate.observe(&ready(&[("n1", 40)]), at(t, 20));
        let r = rate.rate().unwrap();
        assert!((r.cluster - 7.0).abs() < 1e-9, "(100 + 40) / 20 s: {r:?}");
    }

    #[test]
    fn old_samples_leave_the_window_and_unready_nodes_leave_the_sum() {
        let t = Instant::now();
        let mut rate = RequestRate::new(Duration::from_secs(30));
        // a burst long ago, then a quiet minute
        rate.observe(&ready(&[("n1", 0), ("n2", 0)]), t);
        rate.observe(&ready(&[("n1", 10_000), ("n2", 0)]), at(t, 10));
        for s in (20..=100).step_by(10) {
            rate.observe(&ready(&[("n1", 10_000), ("n2", 0)]), at(t, s));
        }
        assert_eq!(
            rate.rate().unwrap().cluster,
            0.0,
            "the burst left the window"
        );
        // n2 is no longer ready: only n1 counts
        rate.observe(&ready(&[("n1", 10_300)]), at(t, 110));
        let r = rate.rate().unwrap();
        assert_eq!(r.nodes, 1);
        assert!((r.cluster - 300.0 / 30.0).abs() < 1e-9, "{r:?}");
    }
}

//! The autoscaling policy: a pure function from (nodes, metric, recent recommendations,
//! last action, settings, now) to a recommendation and a decision with its reason.
//!
//! - recommendation = ceil(rate / target_per_node), within [min, max]; when the load per
//!   ready node is within the tolerance band of the target, the current size stands (no
//!   flapping around the target);
//! - scale out at once, by at most `max_step` nodes, counting nodes still warming up as
//!   capacity on the way (they are not counted as serving, and not launched twice);
//! - scale in only when the highest recommendation over the stabilization window says so,
//!   one node at a time (each removal drains a node; a spike inside the window keeps them);
//! - nothing within `cooldown` of the last action; the loop re-evaluates every tick, so a
//!   need that arises during the cooldown is acted on when it ends, never dropped;
//! - no metric, no scale-in: missing data is never read as "no load";
//! - no ready node at all, no action: that is an outage for recovery, not load (and nodes
//!   that are present but not ready yet count: a recovering or crashed core node is
//!   brought back by recovery, never replaced by a launch).

use std::time::Duration;

use tokio::time::Instant;

/// `[autoscale]` policy settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub min: usize,
    pub max: usize,
    /// Requests per second one node should serve.
    pub target_per_node: f64,
    /// Relative band around the target where the size stands (0.1 = ±10 %).
    pub tolerance: f64,
    /// At most this many nodes added by one scale-out.
    pub max_step: usize,
    /// Scale in only when every recommendation over this window allows it.
    pub stabilization: Duration,
    /// No action within this long after the last one.
    pub cooldown: Duration,
}

impl Policy {
    pub fn defaults() -> Policy {
        Policy {
            min: 3,
            max: 6,
            target_per_node: 50.0,
            tolerance: 0.1,
            max_step: 2,
            stabilization: Duration::from_secs(300),
            cooldown: Duration::from_secs(60),
        }
    }

    /// The size the load asks for, within [min, max]. `None` without a metric.
    pub fn recommend(&self, rate: Option<f64>, ready: usize) -> Option<usize> {
        let rate = rate?;
        let raw = if ready > 0 {
            let per_node = rate / ready as f64;
            let ratio = per_node / self.target_per_node;
            if (ratio - 1.0).abs() <= self.tolerance {
                ready
            } else {
                (rate / self.target_per_node).ceil() as usize
            }
        } else {
            (rate / self.target_per_node).ceil() as usize
        };
        Some(raw.clamp(self.min, self.max))
    }
}

/// What the policy sees.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Nodes that serve (ready).
    pub ready: usize,
    /// Nodes present, ready or not: every core node the cluster knows (live or down: a
    /// down core node comes back through recovery, not through a launch) and the live web
    /// nodes.
    pub present: usize,
    /// Nodes launched and not ready yet.
    pub warming: usize,
    /// Nodes that may be removed (autoscaled, not core).
    pub removable: usize,
    /// The cluster's request rate (requests/s), when known.
    pub rate: Option<f64>,
    /// Recommendations of earlier ticks, oldest first (for the stabilization window).
    pub history: &'a [(Instant, usize)],
    pub last_action: Option<Instant>,
    pub now: Instant,
    /// An operator's `triadctl scale --to N` while it holds: the size to reach, whatever the
    /// metric says (still within [min, max], one bounded step and cooldown at a time, and
    /// scale-in without waiting for the stabilization window).
    pub manual: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Hold { reason: String },
    ScaleOut { add: usize, reason: String },
    ScaleIn { remove: usize, reason: String },
}

/// The policy's answer: this tick's recommendation (to append to the history) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub recommendation: Option<usize>,
    pub decision: Decision,
}

pub fn decide(policy: &Policy, inputs: &Inputs<'_>) -> Verdict {
    let recommendation = match inputs.manual {
        Some(size) => Some(size.clamp(policy.min, policy.max)),
        None => policy.recommend(inputs.rate, inputs.ready),
    };
    let hold = |reason: String| Verdict {
        recommendation,
        decision: Decision::Hold { reason },
    };
    // present nodes that are not ready (a core node recovering, a joiner) are capacity on
    // its way back: counted, so that a restart or an outage is never answered with a launch
    let counted = inputs.present.max(inputs.ready) + inputs.warming;
    if inputs.ready == 0 {
        return hold("no ready node: an outage is for recovery, not for scaling".into());
    }
    let cooling = inputs
        .last_action
        .map(|at| inputs.now.saturating_duration_since(at))
        .filter(|since| *since < policy.cooldown);
    if let Some(since) = cooling {
        return hold(format!(
            "cooldown: {:.0}s left after the last action",
            (policy.cooldown - since).as_secs_f64()
        ));
    }
    // below min: grow whatever the metric says
    if counted < policy.min {
        let add = (policy.min - counted).min(policy.max_step);
        return Verdict {
            recommendation,
            decision: Decision::ScaleOut {
                add,
                reason: format!("{counted} nodes, below the minimum {}", policy.min),
            },
        };
    }
    let Some(wanted) = recommendation else {
        return hold("no request-rate data yet".into());
    };
    if wanted > counted && inputs.manual.is_some() {
        let add = (wanted - counted).min(policy.max_step);
        return Verdict {
            recommendation,
            decision: Decision::ScaleOut {
                add,
                reason: format!("the operator asked for {wanted} nodes; {counted} counted"),
            },
        };
    }
    if wanted > counted {
        let add = (wanted - counted).min(policy.max_step);
        return Verdict {
            recommendation,
            decision: Decision::ScaleOut {
                add,
                reason: format!(
                    "{:.1} req/s needs {wanted} nodes at {} req/s each; {} ready, {} warming",
                    inputs.rate.unwrap_or(0.0),
                    policy.target_per_node,
                    inputs.ready,
                    inputs.warming
                ),
            },
        };
    }
    if inputs.warming > 0 {
        return hold(format!(
            "{} node(s) warming up; no scale-in meanwhile",
            inputs.warming
        ));
    }
    if inputs.manual.is_some() && wanted < inputs.ready {
        if inputs.removable == 0 {
            return hold(format!(
                "the operator asked for {wanted} nodes, but no autoscaled node is left to remove"
            ));
        }
        return Verdict {
            recommendation,
            decision: Decision::ScaleIn {
                remove: 1,
                reason: format!(
                    "the operator asked for {wanted} nodes; {} ready",
                    inputs.ready
                ),
            },
        };
    }
    // scale in: the highest recommendation over the stabilization window, this tick included
    let window_start = inputs.now.checked_sub(policy.stabilization);
    let covered = inputs
        .history
        .first()
        .is_some_and(|(at, _)| window_start.is_some_and(|start| *at <= start));
    let highest = inputs
        .history
        .iter()
        .filter(|(at, _)| window_start.is_none_or(|start| *at >= start))
        .map(|(_, r)| *r)
        .chain(std::iter::once(wanted))
        .max()
        .unwrap_or(wanted);
    if highest >= inputs.ready {
        return hold(format!(
            "{wanted} nodes wanted now, {highest} at most over the last {:.0}s; {} ready",
            policy.stabilization.as_secs_f64(),
            inputs.ready
        ));
    }
    if !covered {
        return hold(format!(
            "{wanted} nodes wanted; waiting for {:.0}s of history before scaling in",
            policy.stabilization.as_secs_f64()
        ));
    }
    if inputs.removable == 0 {
        return hold(format!(
            "{highest} nodes would do, but no autoscaled node is left to remove"
        ));
    }
    Verdict {
        recommendation,
        decision: Decision::ScaleIn {
            remove: 1,
            reason: format!(
                "at most {highest} nodes wanted over the last {:.0}s; {} ready",
                policy.stabilization.as_secs_f64(),
                inputs.ready
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_secs(15);
    const WARMUP: Duration = Duration::from_secs(60);

    /// A cluster driven by the policy against a load curve: added nodes serve after
    /// WARMUP, removed nodes leave at once, the metric is exact.
    struct Run {
        sizes: Vec<(u64, usize)>,
        actions: Vec<(u64, Decision)>,
    }

    fn simulate(policy: &Policy, core: usize, secs: u64, load: impl Fn(u64) -> Option<f64>) -> Run {
        let start = Instant::now();
        let mut ready = core;
        let mut warming: Vec<Instant> = Vec::new();
        let mut history: Vec<(Instant, usize)> = Vec::new();
        let mut last_action = None;
        let mut run = Run {
            sizes: Vec::new(),
            actions: Vec::new(),
        };
        let mut t = 0;
        while t <= secs {
            let now = start + Duration::from_secs(t);
            let (done, still): (Vec<Instant>, Vec<Instant>) =
                warming.iter().partition(|at| **at <= now);
            ready += done.len();
            warming = still;
            let verdict = decide(
                policy,
                &Inputs {
                    ready,
                    present: ready,
                    warming: warming.len(),
                    removable: ready - core,
                    rate: load(t),
                    history: &history,
                    last_action,
                    now,
                    manual: None,
                },
            );
            if let Some(r) = verdict.recommendation {
                history.push((now, r));
                history.retain(|(at, _)| {
                    now.saturating_duration_since(*at) <= policy.stabilization + TICK
                });
            }
            match &verdict.decision {
                Decision::Hold { .. } => {}
                Decision::ScaleOut { add, .. } => {
                    warming.extend(std::iter::repeat_n(now + WARMUP, *add));
                    last_action = Some(now);
                    run.actions.push((t, verdict.decision.clone()));
                }
                Decision::ScaleIn { remove, .. } => {
                    ready -= remove;
                    last_action = Some(now);
                    run.actions.push((t, verdict.decision.clone()));
                }
            }
            run.sizes.push((t, ready + warming.len()));
            t += TICK.as_secs();
        }
        run
    }

    fn policy() -> Policy {
        Policy {
            min: 3,
            max: 10,
            ..Policy::defaults()
        }
    }

    fn size_at(run: &Run, t: u64) -> usize {
        run.sizes.iter().rev().find(|(at, _)| *at <= t).unwrap().1
    }

    /// Invariants of every run: within [min, max], actions at least a cooldown apart.
    fn check_invariants(policy: &Policy, run: &Run) {
        for (t, size) in &run.sizes {
            assert!(
                (policy.min..=policy.max).contains(size),
                "size {size} at {t}s"
            );
        }
        for pair in run.actions.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 >= policy.cooldown.as_secs(),
                "actions closer than the cooldown: {pair:?}"
            );
        }
    }

    #[test]
    fn a_step_in_load_reaches_the_needed_size_and_returns_after_the_window() {
        let p = policy();
        // 400 req/s from 60 s to 900 s: 8 nodes at 50 req/s each
        let run = simulate(&p, 3, 2400, |t| {
            Some(if (60..900).contains(&t) { 400.0 } else { 60.0 })
        });
        check_invariants(&p, &run);
        let reached = run.sizes.iter().find(|(_, s)| *s == 8).map(|(t, _)| *t);
        assert!(
            reached.is_some_and(|t| t <= 60 + 3 * 60),
            "8 nodes at {reached:?}"
        );
        assert!(
            run.sizes.iter().all(|(_, s)| *s <= 8),
            "never more than needed"
        );
        // no scale-in before the stabilization window after the load fell
        let first_in = run
            .actions
            .iter()
            .find(|(_, d)| matches!(d, Decision::ScaleIn { .. }))
            .map(|(t, _)| *t)
            .unwrap();
        assert!(
            first_in >= 900 + p.stabilization.as_secs(),
            "scale-in at {first_in}s"
        );
        assert_eq!(size_at(&run, 2400), 3, "back to the minimum");
    }

    #[test]
    fn load_inside_the_tolerance_band_never_flaps() {
        let p = policy();
        // 150 req/s ± 8 % (a sawtooth) on 3 nodes at 50 req/s each
        let run = simulate(&p, 3, 3600, |t| {
            Some(150.0 * (0.92 + 0.16 * ((t % 120) as f64 / 120.0)))
        });
        assert!(run.actions.is_empty(), "{:?}", run.actions);
        // the same sawtooth around 5 nodes' worth, after growing to 5, stays at 5
        let run = simulate(&p, 3, 3600, |t| {
            Some(250.0 * (0.92 + 0.16 * ((t % 120) as f64 / 120.0)))
        });
        check_invariants(&p, &run);
        let after = run.actions.iter().filter(|(t, _)| *t > 600).count();
        assert_eq!(after, 0, "{:?}", run.actions);
        assert_eq!(size_at(&run, 3600), 5);
    }

    #[test]
    fn a_short_spike_scales_out_at_once_and_in_only_after_the_window() {
        let p = policy();
        // 60 s at 450 req/s at t = 300, 120 req/s otherwise
        let run = simulate(&p, 3, 1800, |t| {
            Some(if (300..360).contains(&t) {
                450.0
            } else {
                120.0
            })
        });
        check_invariants(&p, &run);
        let (first_t, first) = run.actions.first().unwrap();
        assert_eq!(*first_t, 300, "scaled out on the first tick of the spike");
        assert!(
            matches!(first, Decision::ScaleOut { add: 2, .. }),
            "bounded step: {first:?}"
        );
        for (t, d) in &run.actions {
            if matches!(d, Decision::ScaleIn { .. }) {
                assert!(*t >= 345 + p.stabilization.as_secs(), "scale-in at {t}s");
            }
        }
        assert_eq!(size_at(&run, 1800), 3);
    }

    #[test]
    fn a_ramp_only_grows_while_it_rises() {
        let p = policy();
        // 100 → 500 req/s over 10 minutes
        let run = simulate(&p, 3, 900, |t| {
            Some(100.0 + 400.0 * (t.min(600) as f64 / 600.0))
        });
        check_invariants(&p, &run);
        assert!(
            run.actions
                .iter()
                .all(|(_, d)| matches!(d, Decision::ScaleOut { .. })),
            "{:?}",
            run.actions
        );
        assert_eq!(size_at(&run, 900), 10, "500 req/s needs 10 nodes");
    }

    #[test]
    fn max_caps_growth_and_missing_data_never_shrinks() {
        let p = Policy { max: 5, ..policy() };
        let run = simulate(&p, 3, 1200, |_| Some(2000.0));
        check_invariants(&p, &run);
        assert_eq!(size_at(&run, 1200), 5);
        // grown to 5 by load, then the metric disappears: no scale-in on missing data
        let run = simulate(&p, 3, 1800, |t| (t < 300).then_some(2000.0));
        assert_eq!(size_at(&run, 1800), 5, "{:?}", run.actions);
        // below the minimum grows without any metric
        let p = Policy { min: 4, ..policy() };
        let run = simulate(&p, 3, 120, |_| None);
        assert_eq!(size_at(&run, 0), 4);
    }

    #[test]
    fn core_nodes_are_never_removed() {
        // min 1, but the 3 core nodes are not removable
        let p = Policy { min: 1, ..policy() };
        let run = simulate(&p, 3, 1200, |_| Some(10.0));
        assert!(run.actions.is_empty(), "{:?}", run.actions);
        let verdict = decide(
            &p,
            &Inputs {
                ready: 3,
                present: 3,
                warming: 0,
                removable: 0,
                rate: Some(10.0),
                history: &[],
                last_action: None,
                now: Instant::now(),
                manual: None,
            },
        );
        assert!(
            matches!(verdict.decision, Decision::Hold { .. }),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_operator_size_is_reached_within_bounds_and_needs_no_window() {
        let p = policy();
        let now = Instant::now();
        let inputs = |ready: usize, removable: usize, manual: usize| Inputs {
            ready,
            present: ready,
            warming: 0,
            removable,
            rate: Some(150.0),
            history: &[],
            last_action: None,
            now,
            manual: Some(manual),
        };
        let out = decide(&p, &inputs(3, 0, 6));
        assert!(
            matches!(out.decision, Decision::ScaleOut { add: 2, .. }),
            "{out:?}"
        );
        assert_eq!(out.recommendation, Some(6));
        // scale-in at once (no stabilization window), one node at a time
        let down = decide(&p, &inputs(6, 3, 4));
        assert!(
            matches!(down.decision, Decision::ScaleIn { remove: 1, .. }),
            "{down:?}"
        );
        // clamped to [min, max], and core nodes stay
        assert_eq!(decide(&p, &inputs(3, 0, 50)).recommendation, Some(10));
        let floor = decide(&p, &inputs(3, 0, 1));
        assert_eq!(floor.recommendation, Some(3));
        assert!(matches!(floor.decision, Decision::Hold { .. }), "{floor:?}");
    }

    #[test]
    fn an_outage_or_recovering_nodes_never_launch_nodes() {
        let p = Policy { min: 3, ..policy() };
        let inputs = |ready: usize, present: usize| Inputs {
            ready,
            present,
            warming: 0,
            removable: 0,
            rate: None,
            history: &[],
            last_action: None,
            now: Instant::now(),
            manual: None,
        };
        // the coordinator just started, or every node is down: nothing is ready
        let out = decide(&p, &inputs(0, 0));
        assert!(matches!(out.decision, Decision::Hold { .. }), "{out:?}");
        // one core node ready, two down or recovering (a full outage being recovered): the
        // minimum is met, nothing is launched
        let out = decide(&p, &inputs(1, 3));
        assert!(matches!(out.decision, Decision::Hold { .. }), "{out:?}");
        // a coordinator that just started sees one node ready and three live, and no load
        let mut starting = inputs(1, 3);
        starting.rate = Some(0.0);
        let out = decide(&p, &starting);
        assert!(matches!(out.decision, Decision::Hold { .. }), "{out:?}");
        // truly two nodes: grow to the minimum
        let out = decide(&p, &inputs(2, 2));
        assert!(
            matches!(out.decision, Decision::ScaleOut { add: 1, .. }),
            "{out:?}"
        );
    }
}

//! Autoscaling on the request rate (design section 8).
//!
//! `metric` (the cluster's request rate from the ready nodes' Apache counters, pure),
//! `policy` (the recommendation and the decision, pure), and here the loop: every
//! `interval` it reads the cluster view, feeds the metric, asks the policy and publishes a
//! status line with the rate, the target, the recommendation and why. With
//! `provider = "none"` (the only provider of this version) it observes and recommends; it
//! launches and removes nothing.

pub mod metric;
pub mod policy;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;
use triad_agent::config::ConfigError;
use triad_proto::gossip::Role;

use crate::observer::Coordinator;
use crate::view::ClusterView;
use metric::RequestRate;
use policy::{decide, Decision, Inputs, Policy};

/// `[autoscale]` as written in the file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawAutoscale {
    /// Default true when the section is present.
    enabled: Option<bool>,
    /// "none" (observe and recommend only).
    provider: Option<String>,
    min: Option<usize>,
    max: Option<usize>,
    target_per_node: Option<f64>,
    tolerance: Option<f64>,
    max_step: Option<usize>,
    window: Option<String>,
    stabilization: Option<String>,
    cooldown: Option<String>,
    interval: Option<String>,
}

/// Validated `[autoscale]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscaleSettings {
    pub policy: Policy,
    /// The request rate is averaged over this window.
    pub window: Duration,
    /// How often the loop evaluates.
    pub interval: Duration,
}

/// Resolve `[autoscale]`; `None` when absent or disabled.
pub fn resolve(
    path: &std::path::Path,
    raw: Option<&RawAutoscale>,
) -> Result<Option<AutoscaleSettings>, ConfigError> {
    let Some(raw) = raw.filter(|r| r.enabled.unwrap_or(true)) else {
        return Ok(None);
    };
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        key,
        message,
    };
    let duration = |key: &'static str, text: Option<&str>, default: u64| match text {
        None => Ok(Duration::from_secs(default)),
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| invalid(key, format!("{text:?} is not a duration like \"60s\": {e}"))),
    };
    match raw.provider.as_deref().unwrap_or("none") {
        "none" => {}
        other => {
            return Err(invalid(
                "autoscale.provider",
                format!("{other:?}: this version supports \"none\" (observe and recommend only)"),
            ))
        }
    }
    let defaults = Policy::defaults();
    let policy = Policy {
        min: raw.min.unwrap_or(defaults.min),
        max: raw.max.unwrap_or(defaults.max),
        target_per_node: raw.target_per_node.unwrap_or(defaults.target_per_node),
        tolerance: raw.tolerance.unwrap_or(defaults.tolerance),
        max_step: raw.max_step.unwrap_or(defaults.max_step),
        stabilization: duration(
            "autoscale.stabilization",
            raw.stabilization.as_deref(),
            defaults.stabilization.as_secs(),
        )?,
        cooldown: duration(
            "autoscale.cooldown",
            raw.cooldown.as_deref(),
            defaults.cooldown.as_secs(),
        )?,
    };
    if policy.min == 0 || policy.min > policy.max {
        return Err(invalid(
            "autoscale.min",
            format!(
                "min {} and max {}: need 1 <= min <= max",
                policy.min, policy.max
            ),
        ));
    }
    if !(policy.target_per_node.is_finite() && policy.target_per_node > 0.0) {
        return Err(invalid(
            "autoscale.target_per_node",
            "must be a positive number of requests per second".into(),
        ));
    }
    if !(0.0..1.0).contains(&policy.tolerance) {
        return Err(invalid(
            "autoscale.tolerance",
            "must be a fraction in [0, 1), e.g. 0.1 for ±10 %".into(),
        ));
    }
    if policy.max_step == 0 {
        return Err(invalid("autoscale.max_step", "must be at least 1".into()));
    }
    let window = duration("autoscale.window", raw.window.as_deref(), 60)?;
    let interval = duration("autoscale.interval", raw.interval.as_deref(), 15)?;
    if interval.is_zero() || window < interval * 2 {
        return Err(invalid(
            "autoscale.window",
            format!(
                "the window ({window:?}) must cover at least two evaluations (interval {interval:?})"
            ),
        ));
    }
    Ok(Some(AutoscaleSettings {
        policy,
        window,
        interval,
    }))
}

/// The loop's memory between ticks.
pub struct Autoscaler {
    settings: AutoscaleSettings,
    rate: RequestRate,
    history: VecDeque<(Instant, usize)>,
    last_action: Option<Instant>,
}

impl Autoscaler {
    pub fn new(settings: AutoscaleSettings) -> Autoscaler {
        Autoscaler {
            rate: RequestRate::new(settings.window),
            settings,
            history: VecDeque::new(),
            last_action: None,
        }
    }

    /// One evaluation over the view; returns the status line.
    pub fn tick(&mut self, view: &ClusterView, now: Instant) -> String {
        let policy = &self.settings.policy;
        let serving: Vec<_> = view
            .members()
            .filter(|m| {
                m.live
                    && m.keys.ready
                    && !m.keys.draining
                    && matches!(m.keys.role, Role::Core | Role::Web)
            })
            .collect();
        let counters: BTreeMap<String, u64> = serving
            .iter()
            .filter_map(|m| Some((m.node_id.clone(), m.keys.metrics.req_total?)))
            .collect();
        self.rate.observe(&counters, now);
        let rate = self.rate.rate();
        let ready = serving.len();
        let removable = serving.iter().filter(|m| m.keys.role == Role::Web).count();
        let history: Vec<(Instant, usize)> = self.history.iter().copied().collect();
        let verdict = decide(
            policy,
            &Inputs {
                ready,
                warming: 0,
                removable,
                rate: rate.as_ref().map(|r| r.cluster),
                history: &history,
                last_action: self.last_action,
                now,
            },
        );
        if let Some(recommendation) = verdict.recommendation {
            self.history.push_back((now, recommendation));
        }
        let keep = policy.stabilization + self.settings.interval;
        while self
            .history
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > keep)
        {
            self.history.pop_front();
        }
        let metric = match &rate {
            Some(r) => format!(
                "{:.1} req/s over {} ready node(s) ({:.1}/node, target {} ±{:.0}%)",
                r.cluster,
                ready,
                r.cluster / ready.max(1) as f64,
                policy.target_per_node,
                policy.tolerance * 100.0
            ),
            None => format!("no request rate yet ({ready} ready)"),
        };
        let recommended = verdict
            .recommendation
            .map_or("-".to_string(), |r| r.to_string());
        let what = match &verdict.decision {
            Decision::Hold { reason } => format!("hold: {reason}"),
            Decision::ScaleOut { add, reason } => {
                format!("would add {add} ({reason}); provider none: nothing launched")
            }
            Decision::ScaleIn { remove, reason } => {
                format!("would remove {remove} ({reason}); provider none: nothing removed")
            }
        };
        format!(
            "{metric} → recommend {recommended} [{}..{}]; {what}",
            policy.min, policy.max
        )
    }

    /// Run every `interval` until `stop` changes; the status line goes to the watch.
    pub fn spawn(
        mut self,
        coordinator: Arc<Coordinator>,
        mut stop: watch::Receiver<bool>,
    ) -> watch::Receiver<String> {
        let (status_tx, status) = watch::channel("starting".to_string());
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.settings.interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = String::new();
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.changed() => break,
                }
                let line = self.tick(&coordinator.view(), Instant::now());
                // log changes of decision, not every new rate
                let gist = line.split_once("; ").map_or(line.as_str(), |(_, w)| w);
                if gist != last {
                    tracing::info!(autoscale = %line, "autoscale");
                    last = gist.to_string();
                }
                status_tx.send_replace(line);
            }
        });
        status
    }
}

#[cfg(test)]
mod tests {
    use crate::config::CoordinatorConfig;
    use std::path::Path;

    const BASE: &str = "[cluster]\nname = \"lab\"\nseeds = [\"10.0.0.1:7420\"]\n[gossip]\nlisten = \"10.0.0.9:7420\"\n";

    fn parse(section: &str) -> Result<CoordinatorConfig, String> {
        CoordinatorConfig::parse(
            Path::new("c.toml"),
            &format!("{BASE}[autoscale]\n{section}"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn autoscale_section_defaults_and_bad_values_are_named() {
        let settings = parse("").unwrap().autoscale.unwrap();
        assert_eq!(settings.policy.min, 3);
        assert_eq!(settings.window.as_secs(), 60);
        assert!(parse("enabled = false").unwrap().autoscale.is_none());
        let cases = [
            ("provider = \"nova\"", "autoscale.provider"),
            ("min = 5\nmax = 4", "autoscale.min"),
            ("target_per_node = 0.0", "autoscale.target_per_node"),
            ("tolerance = 1.5", "autoscale.tolerance"),
            ("window = \"10s\"\ninterval = \"15s\"", "autoscale.window"),
            ("cooldown = \"soon\"", "autoscale.cooldown"),
            ("speed = 3", "unknown field `speed`"),
        ];
        for (text, named) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(named), "{text}: {error}");
        }
    }
}

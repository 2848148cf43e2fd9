//! Host metrics from sysinfo, behind a trait so tests can supply fixed figures.
//!
//! A failing collector never stops the agent: it leaves the metric unknown.

use triad_proto::gossip::MetricKeys;

/// A source of host metrics, sampled once per main-loop tick.
pub trait MetricsSource: Send {
    fn sample(&mut self) -> MetricKeys;
}

/// CPU and memory of the whole host, from /proc through sysinfo.
pub struct SysinfoMetrics {
    system: Option<sysinfo::System>,
}

impl std::fmt::Debug for SysinfoMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SysinfoMetrics")
    }
}

impl SysinfoMetrics {
    pub fn new() -> SysinfoMetrics {
        let system = match sysinfo::System::new() {
            Ok(system) => Some(system),
            Err(error) => {
                tracing::warn!(%error, "host metrics unavailable: sysinfo could not start");
                None
            }
        };
        SysinfoMetrics { system }
    }
}

impl Default for SysinfoMetrics {
    fn default() -> Self {
        SysinfoMetrics::new()
    }
}

impl MetricsSource for SysinfoMetrics {
    fn sample(&mut self) -> MetricKeys {
        let Some(system) = self.system.as_mut() else {
            return MetricKeys::default();
        };
        system.refresh_cpu_usage();
        system.refresh_memory();
        let cpu = f64::from(system.global_cpu_usage());
        MetricKeys {
            // the first sample has no previous reading to diff against and reads 0
            cpu_percent: Some((cpu.clamp(0.0, 100.0) * 10.0).round() / 10.0),
            mem_used_bytes: Some(system.used_memory()),
            mem_total_bytes: Some(system.total_memory()),
            req_total: None,
            busy_workers: None,
        }
    }
}

/// Fixed figures, for simulations.
#[derive(Debug, Clone, Default)]
pub struct FixedMetrics(pub MetricKeys);

impl MetricsSource for FixedMetrics {
    fn sample(&mut self) -> MetricKeys {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysinfo_reports_memory_of_this_host() {
        let sample = SysinfoMetrics::new().sample();
        let total = sample.mem_total_bytes.expect("total memory known on Linux");
        assert!(total > 0);
        assert!(sample.mem_used_bytes.unwrap() <= total);
        assert!((0.0..=100.0).contains(&sample.cpu_percent.unwrap()));
    }
}

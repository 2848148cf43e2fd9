//! Autoscaling on the request rate (design section 8).
//!
//! `metric` (the cluster's request rate from the ready nodes' Apache counters, pure),
//! `policy` (the recommendation and the decision, pure), and here the loop: every
//! `interval` it reads the cluster view, feeds the metric, asks the policy, hands scale
//! decisions to the [`scaler`] flows (through a [`provider`]) and publishes a status line
//! with the rate, the target, the recommendation and why. With `provider = "none"` it
//! observes and recommends only.

pub mod cloud_init;
pub mod config;
pub mod metric;
pub mod nova;
pub mod policy;
pub mod provider;
pub mod scaler;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use triad_proto::gossip::Role;

use crate::balancer::reconcile::BalancerStatus;
use crate::observer::Coordinator;
use crate::runner;
use crate::view::ClusterView;
use config::{AutoscaleSettings, ProviderSettings};
use metric::RequestRate;
use policy::{decide, Decision, Inputs};
use scaler::{FlowSettings, NodeCalls, NodeFact, Now, Scaler};

/// The scaler's record of its steps in flight, in the state directory.
pub const STATE_FILE: &str = "autoscale.json";

/// The loop's memory between ticks.
pub struct Autoscaler {
    settings: AutoscaleSettings,
    rate: RequestRate,
    history: VecDeque<(Instant, usize)>,
    /// The flows, when a provider acts (`None` with provider "none").
    scaler: Option<Scaler>,
    /// The balancer's members, to know when a drained node has left it.
    balancer: Option<watch::Receiver<BalancerStatus>>,
    /// `triadctl scale --to N`: the size, and until when it overrides the metric.
    manual: Option<(usize, Instant)>,
    /// The first evaluation: nothing is done before one metric window has been observed
    /// (a coordinator that just started sees a partial cluster).
    started: Option<Instant>,
}

/// An operator's `triadctl scale --to N`.
#[derive(Debug)]
pub struct ScaleCommand {
    pub to: usize,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// The autoscaling loop's status as it publishes it: the operator's line, and the facts
/// /metrics reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoscaleStatus {
    /// The line `triadctl status` shows.
    pub line: String,
    /// The cluster's request rate (requests per second), once two samples exist.
    pub rate: Option<f64>,
    /// Nodes ready to serve.
    pub ready: usize,
    /// The node count the policy recommends (None while holding without a figure).
    pub recommended: Option<usize>,
    /// Nodes the autoscaler deleted (their dead gossip entries are not shown).
    pub removed: Vec<String>,
    /// The autoscaled nodes in a step and their phase ("launching" ... "deleting"), by node.
    pub steps: BTreeMap<String, &'static str>,
}

/// The running loop: its status and the operator's command channel.
#[derive(Debug, Clone)]
pub struct AutoscaleHandle {
    status: watch::Receiver<AutoscaleStatus>,
    commands: mpsc::Sender<ScaleCommand>,
}

impl AutoscaleHandle {
    /// The status line.
    pub fn status(&self) -> String {
        self.status.borrow().line.clone()
    }

    /// The typed status (a snapshot).
    pub fn autoscale_status(&self) -> AutoscaleStatus {
        self.status.borrow().clone()
    }

    /// Nodes the autoscaler deleted (their dead gossip entries are not shown).
    pub fn removed(&self) -> Vec<String> {
        self.status.borrow().removed.clone()
    }

    pub async fn scale(&self, to: usize) -> Result<String, String> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(ScaleCommand { to, reply })
            .await
            .map_err(|_| "the autoscaling loop is not running".to_string())?;
        answer
            .await
            .map_err(|_| "the autoscaling loop stopped".to_string())?
    }
}

impl Autoscaler {
    /// `state_dir` holds `autoscale.json` (the flows' record); an unreadable record is an
    /// error naming the file.
    pub fn new(
        settings: AutoscaleSettings,
        state_dir: &std::path::Path,
        reserved: &[String],
        calls: Arc<dyn NodeCalls>,
        balancer: Option<watch::Receiver<BalancerStatus>>,
    ) -> Result<Autoscaler, String> {
        let provider: Option<Arc<dyn provider::Provider>> = match &settings.provider {
            ProviderSettings::None => None,
            ProviderSettings::Exec(exec) => Some(Arc::new(exec.clone())),
            ProviderSettings::Nova(nova) => {
                let sources = crate::openstack::config::CloudSources::from_process();
                let cloud = crate::openstack::config::load_cloud(&sources, nova.cloud.as_deref())
                    .map_err(|e| format!("[autoscale.nova] cloud: {e}"))?;
                tracing::info!(cloud = %cloud.name, source = %cloud.source, auth_url = %cloud.auth_url, "nova autoscaling provider configured");
                let session =
                    crate::openstack::session::Session::new(cloud, Duration::from_secs(30))
                        .map_err(|e| format!("[autoscale.nova] cloud: {e}"))?;
                Some(Arc::new(nova::NovaProvider::new(
                    crate::openstack::nova::Nova::new(Arc::new(session)),
                    (**nova).clone(),
                )))
            }
        };
        let scaler = match provider {
            Some(provider) => Some(Scaler::load(
                FlowSettings {
                    name_prefix: settings.name_prefix.clone(),
                    reserved: reserved.to_vec(),
                    role: "web".into(),
                    ready_timeout: settings.ready_timeout,
                    drain_timeout: settings.drain_timeout,
                    state_file: state_dir.join(STATE_FILE),
                },
                provider,
                calls,
            )?),
            None => None,
        };
        Ok(Autoscaler {
            rate: RequestRate::new(settings.window),
            settings,
            history: VecDeque::new(),
            scaler,
            balancer,
            manual: None,
            started: None,
        })
    }

    /// Nodes the flows deleted.
    pub fn removed(&self) -> Vec<String> {
        self.scaler
            .as_ref()
            .map(|s| s.record().removed.clone())
            .unwrap_or_default()
    }

    /// The operator's size: within [min, max], only with a provider that acts; it holds
    /// for the stabilization window, then the metric-based policy resumes.
    pub fn request_scale(&mut self, to: usize, now: Instant) -> Result<String, String> {
        let policy = &self.settings.policy;
        if self.scaler.is_none() {
            return Err(
                "autoscale provider is \"none\": nothing can be launched or removed".into(),
            );
        }
        if !(policy.min..=policy.max).contains(&to) {
            return Err(format!(
                "{to} is outside [min, max] = [{}, {}] ([autoscale] in the coordinator's config)",
                policy.min, policy.max
            ));
        }
        let hold = policy.stabilization.max(self.settings.interval * 4);
        self.manual = Some((to, now + hold));
        tracing::warn!(to, ?hold, "operator scale request");
        Ok(format!(
            "scaling to {to} nodes; the request-rate policy resumes in {:.0}s",
            hold.as_secs_f64()
        ))
    }

    /// One evaluation over the view: advance the flows, decide, act; returns the status.
    pub async fn tick(&mut self, view: &ClusterView, clock: Now) -> AutoscaleStatus {
        let now = clock.at;
        let facts: BTreeMap<String, NodeFact> = view
            .members()
            .map(|m| {
                (
                    m.node_id.clone(),
                    NodeFact {
                        live: m.live,
                        ready: m.live && m.keys.ready && !m.keys.draining,
                        grpc: m.keys.grpc,
                        web: m.keys.role == Role::Web,
                        galera: !matches!(
                            m.keys.galera.state,
                            triad_proto::gossip::GaleraState::NotManaged
                        ),
                    },
                )
            })
            .collect();
        let members: Option<Vec<String>> = self
            .balancer
            .as_ref()
            .map(|w| w.borrow().members.iter().map(|m| m.name.clone()).collect());
        if let Some(scaler) = self.scaler.as_mut() {
            scaler.advance(clock, &facts, members.as_deref()).await;
        }
        let policy = self.settings.policy.clone();
        let policy = &policy;
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
        let (warming, removable, last_action) = match &self.scaler {
            Some(scaler) => (
                scaler.warming(),
                scaler.removable(&facts),
                scaler.last_action_ms().and_then(|ms| {
                    now.checked_sub(Duration::from_millis(clock.unix_ms.saturating_sub(ms)))
                }),
            ),
            None => (
                0,
                serving.iter().filter(|m| m.keys.role == Role::Web).count(),
                None,
            ),
        };
        let history: Vec<(Instant, usize)> = self.history.iter().copied().collect();
        let mut verdict = decide(
            policy,
            &Inputs {
                ready,
                present: view
                    .members()
                    .filter(|m| m.keys.role == Role::Core || (m.live && m.keys.role == Role::Web))
                    .count(),
                warming,
                removable,
                rate: rate.as_ref().map(|r| r.cluster),
                history: &history,
                last_action,
                now,
                manual: self
                    .manual
                    .filter(|(_, until)| now < *until)
                    .map(|(n, _)| n),
            },
        );
        let started = *self.started.get_or_insert(now);
        let observed_for = now.saturating_duration_since(started);
        if observed_for < self.settings.window && !matches!(verdict.decision, Decision::Hold { .. })
        {
            verdict.decision = Decision::Hold {
                reason: format!(
                    "observing the cluster for {:.0}s more before acting",
                    (self.settings.window - observed_for).as_secs_f64()
                ),
            };
        }
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
        let mut what = match (&verdict.decision, self.scaler.as_mut()) {
            (Decision::Hold { reason }, _) => format!("hold: {reason}"),
            (Decision::ScaleOut { add, reason }, None) => {
                format!("would add {add} ({reason}); provider none: nothing launched")
            }
            (Decision::ScaleIn { remove, reason }, None) => {
                format!("would remove {remove} ({reason}); provider none: nothing removed")
            }
            (Decision::ScaleOut { add, reason }, Some(scaler)) => {
                scaler.scale_out(*add, &facts, clock);
                // launch now rather than one interval later
                scaler.advance(clock, &facts, members.as_deref()).await;
                format!("scaling out by {add} ({reason})")
            }
            (Decision::ScaleIn { reason, .. }, Some(scaler)) => {
                match scaler.scale_in(&facts, clock) {
                    Some(node) => format!("scaling in: draining {node} ({reason})"),
                    None => "hold: no serving autoscaled node to remove".to_string(),
                }
            }
        };
        if let Some(scaler) = &self.scaler {
            let steps = scaler.describe(clock);
            if !steps.is_empty() {
                what.push_str(&format!("; in progress: {steps}"));
            }
            if let Some(error) = &scaler.last_error {
                what.push_str(&format!("; last error: {error}"));
            }
        }
        let manual = match self.manual {
            Some((size, until)) if now < until => format!(
                "manual: {size} nodes for {:.0}s more; ",
                (until - now).as_secs_f64()
            ),
            _ => String::new(),
        };
        AutoscaleStatus {
            line: format!(
                "{manual}{metric} → recommend {recommended} [{}..{}]; {what}",
                policy.min, policy.max
            ),
            rate: rate.as_ref().map(|r| r.cluster),
            ready,
            recommended: verdict.recommendation,
            removed: self.removed(),
            steps: self.steps(),
        }
    }

    /// The autoscaled nodes and their phase.
    fn steps(&self) -> BTreeMap<String, &'static str> {
        self.scaler
            .as_ref()
            .map(|s| {
                s.record()
                    .nodes
                    .iter()
                    .map(|n| (n.node.clone(), n.phase.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Run every `interval` until `stop` changes; the status line goes to the watch.
    pub fn spawn(
        self,
        coordinator: Arc<Coordinator>,
        stop: watch::Receiver<bool>,
    ) -> AutoscaleHandle {
        let (status_tx, status) = watch::channel(AutoscaleStatus {
            line: "starting".to_string(),
            removed: self.removed(),
            ..AutoscaleStatus::default()
        });
        let (commands, receiver) = mpsc::channel::<ScaleCommand>(4);
        let pass = AutoscalePass {
            autoscaler: self,
            coordinator,
            status: status_tx,
            last: String::new(),
        };
        tokio::spawn(runner::run(
            "autoscale",
            pass,
            runner::Backoff::NEVER_USED,
            runner::Inputs::default().commands(receiver),
            stop,
        ));
        AutoscaleHandle { status, commands }
    }
}

/// The autoscaler in the runner's shape: a pass every `interval`, and at once after
/// `triadctl scale` (acting now rather than one interval later).
struct AutoscalePass {
    autoscaler: Autoscaler,
    coordinator: Arc<Coordinator>,
    status: watch::Sender<AutoscaleStatus>,
    /// The last decision logged (changes of decision are logged, not every new rate).
    last: String,
}

#[async_trait::async_trait]
impl runner::Reconciler for AutoscalePass {
    type Command = ScaleCommand;

    async fn command(&mut self, command: ScaleCommand) {
        let answer = self.autoscaler.request_scale(command.to, Instant::now());
        let _ = command.reply.send(answer);
    }

    async fn pass(&mut self) -> runner::Next {
        let status = self
            .autoscaler
            .tick(&self.coordinator.view(), Now::current())
            .await;
        let line = &status.line;
        let gist = line.split_once("; ").map_or(line.as_str(), |(_, w)| w);
        if gist != self.last {
            tracing::info!(autoscale = %line, "autoscale");
            self.last = gist.to_string();
        }
        self.status.send_replace(status);
        runner::Next::After(self.autoscaler.settings.interval)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::CoordinatorConfig;
    use std::path::Path;

    const BASE: &str = "[tls]\ninsecure = true\n[cluster]\nname = \"lab\"\nseeds = [\"10.0.0.1:7420\"]\n[gossip]\nlisten = \"10.0.0.9:7420\"\n";

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
            ("provider = \"heat\"", "autoscale.provider"),
            ("provider = \"nova\"", "autoscale.nova"),
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

    const NOVA: &str = "provider = \"nova\"\n[autoscale.nova]\nimage = \"img-1\"\nflavor = \"m1.small\"\n\
                        networks = [\"private\"]\napt_source = \"deb http://repo.example/ bookworm main\"\n";

    #[test]
    fn nova_section_resolves_with_tags_group_and_rendered_user_data() {
        let settings = parse(NOVA).unwrap().autoscale.unwrap();
        let super::ProviderSettings::Nova(nova) = settings.provider else {
            panic!("not nova: {:?}", settings.provider)
        };
        assert_eq!(nova.tags, vec!["triad", "triad-cluster=lab"]);
        assert_eq!(nova.server_group, "triad-lab-web");
        assert_eq!(nova.boot_timeout, std::time::Duration::from_secs(600));
        assert_eq!(nova.seeds, vec!["10.0.0.1:7420"]);
        let user_data = nova.user_data("web-2").unwrap();
        let text = String::from_utf8(
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, user_data).unwrap(),
        )
        .unwrap();
        assert!(
            text.starts_with("#cloud-config\n") && text.contains("hostname: \"web-2\""),
            "{text}"
        );
    }

    #[test]
    fn nova_section_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.yaml");
        let cases = [
            (
                NOVA.replace("image = \"img-1\"\n", ""),
                "autoscale.nova.image",
            ),
            (
                NOVA.replace("networks = [\"private\"]\n", ""),
                "autoscale.nova.networks",
            ),
            (
                format!("{NOVA}package_url = \"http://x/triad-agent.deb\"\n"),
                "exactly one of apt_source",
            ),
            (
                NOVA.replace("deb http", "rm -rf http"),
                "autoscale.nova.apt_source",
            ),
            (
                format!("{NOVA}agent_config = \"[galera\"\n"),
                "autoscale.nova.agent_config",
            ),
            (
                format!("{NOVA}user_data = \"{}\"\n", missing.display()),
                "absent.yaml",
            ),
            (
                format!("{NOVA}boot_timeout = \"soon\"\n"),
                "autoscale.nova.boot_timeout",
            ),
        ];
        for (text, named) in cases {
            let error = parse(&text).unwrap_err();
            assert!(error.contains(named), "{text}: {error}");
        }
        let bad_template = dir.path().join("user-data.yaml");
        std::fs::write(&bad_template, "#cloud-config\nhostname: {{host}}\n").unwrap();
        let error = parse(&format!(
            "{NOVA}user_data = \"{}\"\n",
            bad_template.display()
        ))
        .unwrap_err();
        assert!(
            error.contains("autoscale.nova.user_data") && error.contains("{{host}}"),
            "{error}"
        );
    }
}

//! Gossip benchmark (run on demand): `cargo bench -p triad-coordinator --bench gossip -- [N...]`
//!
//! `-- [N...] [v0|v1]`: for each cluster size N (default 3 10 100), N agents run in one process on chitchat's
//! in-memory transport at the production gossip interval (200 ms), in paused tokio time so
//! the figures are protocol times, not CPU speed; once with chitchat's uncompressed digest
//! (protocol V0, the default) and once with the zstd-compressed one (V1, `[gossip]
//! compressed_digest = true`), so the ratio comes from the same run. Printed per N and protocol:
//! - convergence: from the last agent's start until every agent sees all others live;
//! - detection of a stopped agent: first / p50 / max over the survivors;
//! - bytes per second per node in steady state (10 s window after convergence).
//!
//! The failure detector's sample window is 100 (8 bytes per sample per observed node), so
//! 1000 nodes stay within a few GiB.
//!
//! `bare` among the arguments runs each node as its gossip alone — chitchat through
//! `Membership`, publishing every second the keys a real agent of this harness publishes
//! (taken from one `AgentRuntime` first) with its heartbeat bumped — instead of a whole
//! `AgentRuntime` with its module loops: what 1000 nodes in one process can afford. Its
//! figures at 100 nodes beside the full agents' in the same run check that it sends what an
//! agent sends (`-- 100 bare full`).

use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use tokio::sync::watch;
use tokio::time::Instant;
use triad_agent::config::AgentConfig;
use triad_agent::metrics::FixedMetrics;
use triad_agent::runtime::AgentRuntime;
use triad_agent::testsuite::agent_config_for_test;
use triad_cluster::membership::{Membership, MembershipConfig};
use triad_proto::gossip::NodeKeys;

/// A node of the bench: a whole agent, or its gossip alone.
enum Node {
    Agent(AgentRuntime),
    Bare {
        membership: Arc<Membership>,
        stop: watch::Sender<bool>,
        beat: tokio::task::JoinHandle<()>,
    },
}

impl Node {
    fn membership(&self) -> Arc<Membership> {
        match self {
            Node::Agent(agent) => agent.membership(),
            Node::Bare { membership, .. } => membership.clone(),
        }
    }

    fn node_id(&self) -> String {
        self.membership().node_id().to_string()
    }

    async fn stop(self) {
        match self {
            Node::Agent(agent) => agent.stop().await,
            Node::Bare {
                membership,
                stop,
                beat,
            } => {
                let _ = stop.send(true);
                let _ = beat.await;
                if let Ok(membership) = Arc::try_unwrap(membership) {
                    membership.shutdown().await;
                }
            }
        }
    }
}

/// Gossip alone for `config`'s node, publishing `template` (with its own address) every
/// `heartbeat_interval` with the heartbeat bumped, as the agent's main loop does.
async fn bare(config: &AgentConfig, template: &NodeKeys, transport: &ChannelTransport) -> Node {
    let mut keys = template.clone();
    keys.grpc = Some(config.grpc_listen);
    let membership = Arc::new(
        Membership::join(
            MembershipConfig {
                node_id: config.node_id.clone(),
                generation: 1,
                cluster_id: config.cluster_name.clone(),
                seeds: config.seeds.clone(),
                settings: config.gossip.clone(),
            },
            &keys,
            transport,
        )
        .await
        .expect("gossip starts"),
    );
    let (stop, mut stopped) = watch::channel(false);
    let interval = config.heartbeat_interval;
    let publisher = membership.clone();
    let beat = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped.changed() => break,
            }
            keys.heartbeat = Some(keys.heartbeat.unwrap_or(0).wrapping_add(1));
            publisher.publish(&keys).await;
        }
    });
    Node::Bare {
        membership,
        stop,
        beat,
    }
}

/// The keys a settled agent of this harness publishes (one agent, alone for 3 s).
async fn agent_keys(transport: &ChannelTransport) -> NodeKeys {
    let config = agent_config_for_test(1, &[]);
    let agent = AgentRuntime::start(&config, 1, transport, Box::new(FixedMetrics::default()))
        .await
        .expect("agent starts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let keys = agent.state().keys();
    agent.stop().await;
    keys
}

/// CPU time of this process so far (user + system), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which may hold spaces) start at state, field 3
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5): 12th and 13th after the name
    let hz = 100; // sysconf(_SC_CLK_TCK) on Linux
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / hz)
}

/// Prints the end of a phase with the wall time so far (stderr, for long runs).
fn phase(n: usize, what: &str, wall: std::time::Instant) {
    eprintln!(
        "  n={n}: {what} (wall {:.0}s)",
        wall.elapsed().as_secs_f64()
    );
}

fn addr(i: usize) -> std::net::SocketAddr {
    // 127.1.x.y: room for more than 255 nodes
    std::net::SocketAddr::from(([127, 1, (i / 250) as u8, (i % 250 + 1) as u8], 7420))
}

async fn run(n: usize, compressed_digest: bool, bare_nodes: bool) {
    let wall = std::time::Instant::now();
    let template = if bare_nodes {
        Some(agent_keys(&ChannelTransport::with_mtu(65_507)).await)
    } else {
        None
    };
    let transport = ChannelTransport::with_mtu(65_507);
    let seeds: Vec<_> = (0..n.min(3)).map(addr).collect();
    let interval = Duration::from_millis(200);
    let mut agents = Vec::new();
    for i in 0..n {
        let mut config = agent_config_for_test(1, &seeds);
        config.node_id = format!("n{i}");
        config.address = addr(i).ip();
        config.gossip.listen = addr(i);
        config.gossip.advertise = addr(i);
        config.gossip.compressed_digest = compressed_digest;
        agents.push(match &template {
            Some(keys) => bare(&config, keys, &transport).await,
            None => Node::Agent(
                AgentRuntime::start(&config, 1, &transport, Box::new(FixedMetrics::default()))
                    .await
                    .expect("agent starts"),
            ),
        });
        tokio::time::sleep(interval / n as u32).await;
    }
    phase(n, "every node started", wall);
    let started = Instant::now();
    let mut waits = Vec::new();
    for agent in &agents {
        let mut rx = agent.membership().change_watcher().await;
        waits.push(tokio::spawn(async move {
            let _ = rx.wait_for(|live| live.len() == n).await;
            Instant::now()
        }));
    }
    let mut converged = started;
    for wait in waits {
        converged = converged.max(wait.await.unwrap());
    }
    let convergence = converged - started;
    phase(n, "converged", wall);

    let before = transport.statistics();
    let cpu_before = cpu_time();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = transport.statistics();
    let cpu_per_node = (cpu_time() - cpu_before).as_secs_f64() / n as f64 / 10.0;
    phase(n, "steady window measured", wall);
    let bytes_per_node_sec =
        (after.num_bytes_total - before.num_bytes_total) as f64 / n as f64 / 10.0;
    let messages = after.num_messages_total - before.num_messages_total;
    let avg_message =
        (after.num_bytes_total - before.num_bytes_total) as f64 / messages.max(1) as f64;

    let victim = agents.remove(n / 2);
    let victim_id: Arc<str> = victim.node_id().into();
    let killed = Instant::now();
    victim.stop().await;
    let mut waits = Vec::new();
    for agent in &agents {
        let mut rx = agent.membership().change_watcher().await;
        let victim_id = victim_id.clone();
        waits.push(tokio::spawn(async move {
            let _ = rx
                .wait_for(|live| !live.keys().any(|id| id.node_id == victim_id))
                .await;
            Instant::now()
        }));
    }
    let mut detections = Vec::new();
    for wait in waits {
        detections.push(wait.await.unwrap() - killed);
    }
    detections.sort();
    let p50 = detections[detections.len() / 2];
    println!(
        "n={n:5} {} {}  converge {:6.2}s  detect first {:5.2}s p50 {:5.2}s max {:5.2}s  {:9.0} B/s/node  avg msg {:6.0} B  cpu/node {:5.1} ms/s  (wall {:.1}s)",
        if compressed_digest { "v1" } else { "v0" },
        if bare_nodes { "bare " } else { "agent" },
        convergence.as_secs_f64(),
        detections[0].as_secs_f64(),
        p50.as_secs_f64(),
        detections.last().unwrap().as_secs_f64(),
        bytes_per_node_sec,
        avg_message,
        cpu_per_node * 1000.0,
        wall.elapsed().as_secs_f64(),
    );
    for agent in agents {
        agent.stop().await;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    // "v0" or "v1" among the arguments runs that protocol only (1000 nodes take minutes each)
    let protocols: Vec<bool> = match (
        args.iter().any(|a| a == "v0"),
        args.iter().any(|a| a == "v1"),
    ) {
        (true, false) => vec![false],
        (false, true) => vec![true],
        _ => vec![false, true],
    };
    // "bare" runs gossip-only nodes, "full" whole agents; both: each size twice
    let kinds: Vec<bool> = match (
        args.iter().any(|a| a == "bare"),
        args.iter().any(|a| a == "full"),
    ) {
        (true, false) => vec![true],
        (true, true) => vec![false, true],
        _ => vec![false],
    };
    let sizes = if sizes.is_empty() {
        vec![3, 10, 100]
    } else {
        sizes
    };
    println!("gossip interval 200 ms, phi 8, paused time (protocol seconds)");
    for n in sizes {
        for &compressed_digest in &protocols {
            for &bare_nodes in &kinds {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .start_paused(true)
                    .build()
                    .unwrap();
                runtime.block_on(run(n, compressed_digest, bare_nodes));
            }
        }
    }
}

//! Five agents and a coordinator in one process on chitchat's in-memory transport, with
//! paused tokio time: convergence, death of a stopped agent, restart as a new generation,
//! and a partition and its heal, all seen through the coordinator's view.

use std::net::SocketAddr;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use tokio::time::Instant;
use triad_agent::metrics::FixedMetrics;
use triad_agent::runtime::AgentRuntime;
use triad_agent::testsuite::{agent_config_for_test, node_gossip_addr, wait_for};
use triad_cluster::membership::GossipSettings;
use triad_coordinator::config::CoordinatorConfig;
use triad_coordinator::observer::Coordinator;

const NODES: u8 = 5;
const POLL: Duration = Duration::from_millis(50);
/// Design target: a dead node is detected within about 2 s; the test allows 5 s.
const DEATH_BOUND: Duration = Duration::from_secs(5);

struct Cluster {
    transport: ChannelTransport,
    agents: Vec<Option<AgentRuntime>>,
    coordinator: Coordinator,
    coordinator_addr: SocketAddr,
}

fn seeds() -> Vec<SocketAddr> {
    vec![node_gossip_addr(1), node_gossip_addr(2)]
}

async fn start_agent(transport: &ChannelTransport, index: u8, generation: u64) -> AgentRuntime {
    let config = agent_config_for_test(index, &seeds());
    AgentRuntime::start(
        &config,
        generation,
        transport,
        Box::new(FixedMetrics::default()),
    )
    .await
    .expect("agent starts")
}

async fn start_cluster() -> Cluster {
    let transport = ChannelTransport::with_mtu(65_507);
    let mut agents = Vec::new();
    for index in 1..=NODES {
        agents.push(Some(start_agent(&transport, index, 1).await));
        // staggered starts so gossip rounds do not tick in lockstep
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    let coordinator_addr: SocketAddr = "127.0.1.100:7420".parse().unwrap();
    let config = CoordinatorConfig {
        id: "coordinator".into(),
        cluster_name: "test".into(),
        seeds: seeds().iter().map(|s| s.to_string()).collect(),
        gossip: GossipSettings {
            sampling_window: 100,
            ..GossipSettings::production(coordinator_addr)
        },
        grpc_listen: "127.0.0.1:7422".parse().unwrap(),
        state_dir: std::env::temp_dir().join("triad-inprocess-coordinator"),
        galera_recovery: false,
        galera_grace: Duration::from_secs(3),
        galera_nodes: vec![],
        volume: None,
        autoscale: None,
        tls: None,
        app: None,
    };
    let coordinator = Coordinator::start(&config, 1, &transport)
        .await
        .expect("coordinator starts");
    Cluster {
        transport,
        agents,
        coordinator,
        coordinator_addr,
    }
}

async fn wait_all_live(cluster: &Cluster, what: &str) {
    wait_for(what, Duration::from_secs(20), POLL, || async {
        let view = cluster.coordinator.view();
        let live: Vec<&str> = view
            .members()
            .filter(|m| m.live)
            .map(|m| m.node_id.as_str())
            .collect();
        if view.len() == NODES as usize && live.len() == NODES as usize {
            Ok(())
        } else {
            Err(format!("{} members, live: {live:?}", view.len()))
        }
    })
    .await
    .unwrap();
}

/// Time from now until the coordinator's view shows `node` with the wanted liveness.
async fn time_until_live_is(
    cluster: &Cluster,
    node: &str,
    live: bool,
    bound: Duration,
) -> Duration {
    let start = Instant::now();
    wait_for(
        &format!("coordinator to see {node} live={live}"),
        bound,
        POLL,
        || async {
            match cluster.coordinator.view().get(node) {
                Some(member) if member.live == live => Ok(()),
                Some(member) => Err(format!("live={}", member.live)),
                None => Err("not in view".into()),
            }
        },
    )
    .await
    .unwrap();
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn five_agents_converge_and_the_coordinator_lists_all_live() {
    let cluster = start_cluster().await;
    wait_all_live(&cluster, "coordinator to list 5 live nodes").await;
    for agent in cluster.agents.iter().flatten() {
        let membership = agent.membership();
        let node = agent.state().identity.node_id.clone();
        wait_for(
            &format!("{node} to see 4 agents and the coordinator live"),
            Duration::from_secs(20),
            POLL,
            || {
                let membership = membership.clone();
                async move {
                    match membership.live_peer_count().await {
                        5 => Ok(()),
                        n => Err(format!("{n} live peers")),
                    }
                }
            },
        )
        .await
        .unwrap();
    }
    // the agents' main-loop heartbeat reaches the coordinator
    let view = cluster.coordinator.view();
    for member in view.members() {
        assert!(
            member.keys.heartbeat.unwrap_or(0) >= 1,
            "{} has no heartbeat",
            member.node_id
        );
        assert!(
            member.keys.ready,
            "{} not ready with no required services",
            member.node_id
        );
        assert!(member.decode_errors.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn stopped_agent_is_marked_dead_within_bound_and_restarts_as_new_generation() {
    let mut cluster = start_cluster().await;
    wait_all_live(&cluster, "initial convergence").await;

    let victim = cluster.agents[2].take().unwrap();
    victim.stop().await;
    let detection = time_until_live_is(&cluster, "n3", false, DEATH_BOUND).await;
    eprintln!("n3 marked dead after {detection:?}");
    let view = cluster.coordinator.view();
    assert_eq!(
        view.members().filter(|m| m.live).count(),
        4,
        "only n3 is dead"
    );

    cluster.agents[2] = Some(start_agent(&cluster.transport, 3, 2).await);
    wait_for(
        "n3 back live with generation 2",
        Duration::from_secs(20),
        POLL,
        || async {
            match cluster.coordinator.view().get("n3") {
                Some(m) if m.live && m.generation == 2 => Ok(()),
                Some(m) => Err(format!("generation {} live {}", m.generation, m.live)),
                None => Err("not in view".into()),
            }
        },
    )
    .await
    .unwrap();
    let view = cluster.coordinator.view();
    assert_eq!(view.len(), NODES as usize, "restart must not duplicate n3");
    assert_eq!(view.members().filter(|m| m.node_id == "n3").count(), 1);
}

#[tokio::test(start_paused = true)]
async fn partitioned_node_is_seen_dead_and_live_again_after_heal() {
    let cluster = start_cluster().await;
    wait_all_live(&cluster, "initial convergence").await;

    let victim = node_gossip_addr(4);
    let mut others: Vec<SocketAddr> = (1..=NODES)
        .filter(|i| *i != 4)
        .map(node_gossip_addr)
        .collect();
    others.push(cluster.coordinator_addr);
    for other in &others {
        cluster.transport.remove_link(victim, *other).await;
    }
    let detection = time_until_live_is(&cluster, "n4", false, DEATH_BOUND).await;
    eprintln!("partitioned n4 marked dead after {detection:?}");
    // the isolated node in turn sees everyone else dead
    let isolated = cluster.agents[3].as_ref().unwrap().membership();
    wait_for(
        "n4 to see no live peer",
        Duration::from_secs(10),
        POLL,
        || {
            let isolated = isolated.clone();
            async move {
                match isolated.live_peer_count().await {
                    0 => Ok(()),
                    n => Err(format!("{n} live peers")),
                }
            }
        },
    )
    .await
    .unwrap();

    for other in &others {
        cluster.transport.add_link(victim, *other).await;
    }
    time_until_live_is(&cluster, "n4", true, Duration::from_secs(10)).await;
    let n4 = cluster.coordinator.view().get("n4").cloned().unwrap();
    assert_eq!(
        n4.generation, 1,
        "a healed partition is the same generation"
    );
    assert_eq!(cluster.coordinator.view().len(), NODES as usize);
}

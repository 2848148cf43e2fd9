//! The balancer loop against a real HAProxy (Debian's haproxy, started by the test with a
//! generated config and an admin socket in a tempdir; frontend on 127.0.0.1, a free port):
//! three HTTP backends on 127.0.3.1-3 whose readiness the test sets through fake agents
//! (the real agent runtime and AgentService gRPC on 127.0.3.x; gossip in memory).

mod balancer_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use balancer_support::*;
use chitchat::transport::ChannelTransport;
use triad_agent::testsuite::wait_for;
use triad_coordinator::balancer::MemberState;

const BOUND: Duration = Duration::from_secs(15);

struct Lab {
    transport: ChannelTransport,
    haproxy: HaproxyProcess,
    _backends: Vec<HttpBackend>,
    nodes: Vec<FakeNode>,
    port: u16,
}

async fn lab(static_servers: bool) -> Lab {
    let port = free_port(node_ip(1));
    let mut backends = Vec::new();
    for index in 1..=3u8 {
        backends.push(
            HttpBackend::start(SocketAddr::new(node_ip(index), port), &format!("n{index}")).await,
        );
    }
    let servers = if static_servers {
        (1..=3)
            .map(|i| {
                format!(
                    "    server n{i} {}:{port} check inter 1s fall 2 rise 2\n",
                    node_ip(i)
                )
            })
            .collect()
    } else {
        String::new()
    };
    let haproxy = HaproxyProcess::start(&servers).await;
    let transport = ChannelTransport::with_mtu(65_507);
    let mut nodes = Vec::new();
    for index in 1..=3u8 {
        let node = FakeNode::start(&transport, index).await;
        node.set_apache(true).await;
        nodes.push(node);
    }
    Lab {
        transport,
        haproxy,
        _backends: backends,
        nodes,
        port,
    }
}

/// Requests through the frontend reach exactly `expected` backends.
async fn traffic_reaches(frontend: SocketAddr, expected: &[&str]) {
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let mut seen = BTreeSet::new();
    for _ in 0..(expected.len() * 6) {
        let body = get_through(frontend)
            .await
            .expect("request through haproxy");
        seen.insert(body);
    }
    assert_eq!(seen, want, "backends answering through the frontend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_haproxy_membership_follows_readiness_and_drains_before_removal() {
    let lab = lab(false).await;
    let balancer = lab.haproxy.balancer(lab.port);
    let control = Control::start(&lab.transport, balancer.clone(), test_spec()).await;

    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;
    traffic_reaches(lab.haproxy.frontend, &["n1", "n2", "n3"]).await;

    // n2 stops being ready: it leaves the pool, traffic avoids it.
    lab.nodes[1].set_apache(false).await;
    wait_active(&balancer, &["n1", "n3"], BOUND).await;
    traffic_reaches(lab.haproxy.frontend, &["n1", "n3"]).await;
    // Disabled at once (maint); the entry itself is deleted after `delete_after`.
    wait_for("n2's server entry to be deleted", BOUND, POLL, || async {
        let all = members(&balancer).await?;
        if all.iter().any(|(n, _)| n == "n2") {
            Err(format!("members {all:?}"))
        } else {
            Ok(())
        }
    })
    .await
    .unwrap();

    // ready again: it comes back.
    lab.nodes[1].set_apache(true).await;
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;
    traffic_reaches(lab.haproxy.frontend, &["n1", "n2", "n3"]).await;

    // planned removal of n3 (its agent drains): drain, then remove once it has no
    // connections (the drain-with-connections case is the next test).
    lab.nodes[2].set_draining(true);
    wait_for("n3 to be drained, then removed", BOUND, POLL, || async {
        let all = members(&balancer).await?;
        if all.iter().any(|(n, _)| n == "n3") {
            Err(format!("members {all:?}"))
        } else {
            Ok(())
        }
    })
    .await
    .unwrap();
    let status = control.balancer_loop.as_ref().unwrap().status();
    let history = status.last_changes.clone();
    assert!(
        history.iter().any(|c| c.name() == "n3"),
        "last changes mention n3: {history:?}"
    );
    wait_active(&balancer, &["n1", "n2"], BOUND).await;
    assert!(
        status.errors_total == 0,
        "no errors: {:?}",
        status.last_error
    );
    control.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_haproxy_drain_waits_for_connections_to_end() {
    let lab = lab(false).await;
    let balancer = lab.haproxy.balancer(lab.port);
    let control = Control::start(&lab.transport, balancer.clone(), test_spec()).await;
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;

    // Hold connections through HAProxy until one sits on n3 (a request whose headers
    // never end keeps the server session open).
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    wait_for("a held connection on n3", BOUND, POLL, || {
        let frontend = lab.haproxy.frontend;
        let api = balancer.api().clone();
        let held = held.clone();
        async move {
            use tokio::io::AsyncWriteExt;
            let mut stream = tokio::net::TcpStream::connect(frontend)
                .await
                .map_err(|e| e.to_string())?;
            stream
                .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
                .await
                .map_err(|e| e.to_string())?;
            held.lock().unwrap().push(stream);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let sessions = api.sessions("be_web").await.map_err(|e| e.to_string())?;
            match sessions.get("n3") {
                Some(n) if *n > 0 => Ok(()),
                other => Err(format!("n3 sessions {other:?}")),
            }
        }
    })
    .await
    .unwrap();

    lab.nodes[2].set_draining(true);
    wait_for("n3 in drain state", BOUND, POLL, || async {
        let all = members(&balancer).await?;
        if all.contains(&("n3".to_string(), MemberState::Draining)) {
            Ok(())
        } else {
            Err(format!("members {all:?}"))
        }
    })
    .await
    .unwrap();
    // While the connection lasts, n3 stays (draining); new requests go to n1/n2.
    traffic_reaches(lab.haproxy.frontend, &["n1", "n2"]).await;
    let all = members(&balancer).await.unwrap();
    assert!(
        all.contains(&("n3".to_string(), MemberState::Draining)),
        "{all:?}"
    );
    // End the connections: n3 is removed.
    held.lock().unwrap().clear();
    wait_for(
        "n3 removed once its connections ended",
        BOUND,
        POLL,
        || async {
            let all = members(&balancer).await?;
            if all.iter().any(|(n, _)| n == "n3") {
                Err(format!("members {all:?}"))
            } else {
                Ok(())
            }
        },
    )
    .await
    .unwrap();
    control.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_haproxy_restarted_coordinator_adopts_existing_servers() {
    // HAProxy starts with the three servers in its config: the loop adopts them.
    let lab = lab(true).await;
    let balancer = lab.haproxy.balancer(lab.port);
    let control = Control::start(&lab.transport, balancer.clone(), test_spec()).await;
    wait_for("the loop to run a few rounds", BOUND, POLL, || async {
        let status = control.balancer_loop.as_ref().unwrap().status();
        if status.rounds_total >= 10 {
            Ok(status)
        } else {
            Err(format!("{} rounds", status.rounds_total))
        }
    })
    .await
    .unwrap();
    let status = control.balancer_loop.as_ref().unwrap().status();
    assert_eq!(
        status.changes_total, 0,
        "adopted as is: {:?}",
        status.last_changes
    );
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;

    // Mid-way: n2 leaves; then the coordinator restarts while n2 is out and n3 goes down
    // during the restart.
    lab.nodes[1].set_apache(false).await;
    wait_active(&balancer, &["n1", "n3"], BOUND).await;
    control.stop().await;
    lab.nodes[2].set_apache(false).await;
    // With no coordinator, the balancer keeps its members (design principle 1).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(active(&balancer).await.unwrap(), ["n1", "n3"]);

    let control = Control::start(&lab.transport, balancer.clone(), test_spec()).await;
    wait_active(&balancer, &["n1"], BOUND).await;
    lab.nodes[1].set_apache(true).await;
    lab.nodes[2].set_apache(true).await;
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;
    let status = control.balancer_loop.as_ref().unwrap().status();
    assert_eq!(status.errors_total, 0, "{:?}", status.last_error);
    control.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_haproxy_blinking_readiness_does_not_flap() {
    let lab = lab(false).await;
    let balancer = lab.haproxy.balancer(lab.port);
    let control = Control::start(&lab.transport, balancer.clone(), test_spec()).await;
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;
    let before = control
        .balancer_loop
        .as_ref()
        .unwrap()
        .status()
        .changes_total;

    // n1 blinks: 300 ms down, 300 ms up, for 6 s (rise_hold is 1 s).
    let mut transitions = 0;
    let mut last_present = true;
    let blink_until = tokio::time::Instant::now() + Duration::from_secs(6);
    let mut healthy = true;
    while tokio::time::Instant::now() < blink_until {
        healthy = !healthy;
        lab.nodes[0].set_apache(healthy).await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        while tokio::time::Instant::now() < deadline {
            let present = active(&balancer).await.unwrap().contains(&"n1".to_string());
            if present != last_present {
                transitions += 1;
                last_present = present;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    assert!(
        transitions <= 1,
        "n1 went in and out of the pool {transitions} times while blinking"
    );
    let during = control
        .balancer_loop
        .as_ref()
        .unwrap()
        .status()
        .changes_total
        - before;
    // At most: disabled once, and its entry deleted while it stays out.
    assert!(during <= 2, "{during} membership changes while blinking");
    lab.nodes[0].set_apache(true).await;
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;
    control.stop().await;
}

/// Maintenance mode on a real HAProxy: clients get 503 with Retry-After and the message, the
/// allowed address is served, the servers stay members; off serves everybody again; a
/// reloaded HAProxy (maps empty again) is put back by the next convergence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_haproxy_maintenance_mode_answers_503_but_to_the_allowed() {
    use triad_coordinator::balancer::Balancer as _;
    use triad_coordinator::maintenance::Maintenance;
    let lab = lab(true).await;
    let balancer = lab.haproxy.balancer(lab.port);
    traffic_reaches(lab.haproxy.frontend, &["n1", "n2", "n3"]).await;
    let operator: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let client: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let on = Maintenance {
        message: "Upgrading: back at 14:00".into(),
        retry_after_secs: 120,
        allow: vec![operator],
        since: 0,
        bypass: String::new(),
    };
    assert!(balancer.maintenance(Some(&on)).await.unwrap(), "changed");
    assert!(
        !balancer.maintenance(Some(&on)).await.unwrap(),
        "converged: nothing to do"
    );
    let (status, answer) = get_from(client, lab.haproxy.frontend).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 503"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 120\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\nUpgrading: back at 14:00"),
        "{answer:?}"
    );
    let (status, answer) = get_from(operator, lab.haproxy.frontend).await.unwrap();
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "the allowed address: {answer}"
    );
    let members = balancer.observe().await.unwrap();
    assert_eq!(members.len(), 3);
    assert!(
        members.iter().all(|m| m.state == MemberState::Active),
        "{members:?}"
    );
    // the message changes in place
    let changed = Maintenance {
        message: "Still upgrading".into(),
        ..on.clone()
    };
    assert!(balancer.maintenance(Some(&changed)).await.unwrap());
    let (_, answer) = get_from(client, lab.haproxy.frontend).await.unwrap();
    assert!(answer.ends_with("Still upgrading"), "{answer:?}");
    assert!(balancer.maintenance(None).await.unwrap());
    let (status, answer) = get_from(client, lab.haproxy.frontend).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "off: {answer}");
    assert!(
        !balancer.maintenance(None).await.unwrap(),
        "off and converged"
    );
}

/// `triadctl drain n2` / `undrain n2` as the coordinator serves them (NodeDrain through the
/// node's real agent gRPC server): under a steady client through a real HAProxy, n2 leaves the
/// balancer once its requests end and comes back, with no failed request; the only node
/// serving is never drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_haproxy_operator_drain_and_undrain_fail_no_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use triad_proto::v1::coordinator_service_server::CoordinatorService as _;
    let lab = lab(false).await;
    let balancer = lab.haproxy.balancer(lab.port);
    let control = Control::start(&lab.transport, balancer.clone(), test_spec()).await;
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;
    let service = triad_coordinator::grpc::CoordinatorGrpc::new(control.coordinator.clone());
    // a steady client: a request every 20 ms, bounded in count and time
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let frontend = lab.haproxy.frontend;
    let client = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let (mut sent, mut failed) = (0u32, Vec::new());
            let started = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed)
                && sent < 5_000
                && started.elapsed() < Duration::from_secs(120)
            {
                sent += 1;
                if let Err(error) = get_through(frontend).await {
                    failed.push(error);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (sent, failed)
        })
    };
    let drain = |node: &str, drain: bool| {
        tonic::Request::new(triad_proto::v1::NodeDrainRequest {
            node: node.into(),
            drain,
        })
    };
    let reply = service
        .node_drain(drain("n2", true))
        .await
        .expect("drain n2");
    assert!(
        reply.get_ref().message.starts_with("n2 draining"),
        "{:?}",
        reply.get_ref()
    );
    wait_active(&balancer, &["n1", "n3"], BOUND).await;
    traffic_reaches(frontend, &["n1", "n3"]).await;
    // the agent keeps the drain (and who asked) for its next start
    let kept = triad_agent::grpc::kept_drain(&lab.nodes[1].drain_file).expect("the drain is kept");
    assert!(kept.contains("triadctl drain"), "{kept}");
    let again = service.node_drain(drain("n2", true)).await.unwrap();
    assert_eq!(again.get_ref().message, "n2 is already draining");
    service
        .node_drain(drain("n2", false))
        .await
        .expect("undrain n2");
    wait_active(&balancer, &["n1", "n2", "n3"], BOUND).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = client.await.unwrap();
    eprintln!(
        "[drain] {sent} requests through the drain and undrain of n2, {} failed",
        failed.len()
    );
    assert!(sent > 20, "the client ran: {sent}");
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    // the last node serving is never drained
    lab.nodes[0].set_apache(false).await;
    lab.nodes[1].set_apache(false).await;
    wait_for(
        "only n3 serving in the coordinator's view",
        BOUND,
        POLL,
        || {
            let coordinator = control.coordinator.clone();
            async move {
                let serving: Vec<String> = coordinator
                    .view()
                    .members()
                    .filter(|m| m.serving())
                    .map(|m| m.node_id.clone())
                    .collect();
                if serving == ["n3"] {
                    Ok(())
                } else {
                    Err(format!("serving {serving:?}"))
                }
            }
        },
    )
    .await
    .unwrap();
    let refused = service.node_drain(drain("n3", true)).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("the only node serving"),
        "{}",
        refused.message()
    );
    control.stop().await;
}

/// When no server of the backend is up (here the only one refuses connections and fails
/// its checks), clients get HAProxy's own 503 with Retry-After and a plain message
/// (`no_server_error_line` in the defaults), not a bare error page.
#[tokio::test]
async fn loopback_haproxy_no_server_up_answers_503_with_retry_after() {
    use triad_coordinator::balancer::haproxy::NO_SERVER_RETRY_AFTER;
    let port = free_port(node_ip(1));
    let haproxy = HaproxyProcess::start(&format!(
        "    server n1 {}:{port} check inter 200ms fall 1 rise 1\n",
        node_ip(1)
    ))
    .await;
    let answer = wait_for(
        "a 503 from HAProxy with the server down",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || async {
            let (status, answer) = get_from(node_ip(9), haproxy.frontend).await?;
            if status.starts_with("HTTP/1.1 503") {
                Ok(answer)
            } else {
                Err(answer)
            }
        },
    )
    .await
    .unwrap();
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nretry-after: {NO_SERVER_RETRY_AFTER}\r\n")),
        "{answer}"
    );
    assert!(
        answer.ends_with("The service is recovering; please retry shortly."),
        "{answer}"
    );
}

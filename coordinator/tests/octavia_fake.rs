//! The Octavia backend and the reconcile loop against the in-process OpenStack fake
//! (tests/openstack-fake, HTTP on 127.0.0.1:0): create from nothing, adopt existing, add
//! and remove members, ride out PENDING, 409, 5xx, timeouts and token expiry, recover
//! after a coordinator restart, surface ERROR, and never empty the pool because of a
//! transient error. The cluster view is synthetic and the agents' gRPC answers come from
//! a scripted confirmer, so these tests exercise exactly the balancer path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use tokio::time::Instant;
use triad_agent::testsuite::wait_for;
use triad_cluster::membership::ObservedMember;
use triad_coordinator::balancer::octavia::{MonitorSettings, OctaviaBalancer, OctaviaSettings};
use triad_coordinator::balancer::plan::{Spec, Verdict};
use triad_coordinator::balancer::reconcile::{BalancerLoop, Confirmer, LoopSettings};
use triad_coordinator::balancer::{Balancer, MemberChange, MemberState};
use triad_coordinator::openstack::config::{load_cloud, CloudSources};
use triad_coordinator::openstack::octavia::Octavia;
use triad_coordinator::openstack::session::Session;
use triad_coordinator::view::ClusterView;
use triad_daemon::config::StatusCodes;
use triad_openstack_fake::{FakeCloud, FakeOptions, Fault, FaultKind};
use triad_proto::gossip::{NodeKeys, Role};

const POLL: Duration = Duration::from_millis(25);
const BOUND: Duration = Duration::from_secs(20);

struct Cloud {
    fake: Arc<FakeCloud>,
    _dir: tempfile::TempDir,
    sources: CloudSources,
}

async fn cloud(options: FakeOptions) -> Cloud {
    let fake = FakeCloud::start(options).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(&file, fake.clouds_yaml("fake")).unwrap();
    let sources = CloudSources::file(&file);
    Cloud {
        fake: Arc::new(fake),
        _dir: dir,
        sources,
    }
}

impl Cloud {
    fn octavia(&self, cloud_name: &str) -> Octavia {
        let config = load_cloud(&self.sources, Some(cloud_name)).expect("cloud loads");
        Octavia::new(Arc::new(
            Session::new(config, Duration::from_millis(800)).unwrap(),
        ))
    }

    fn balancer(&self) -> OctaviaBalancer {
        OctaviaBalancer::new(self.octavia("fake"), settings())
    }

    fn pool_id(&self) -> String {
        self.fake.pools()[0]["id"].as_str().unwrap().to_string()
    }

    /// (name, weight) of the pool's members that are not being deleted.
    fn members(&self) -> Vec<(String, u64)> {
        let mut members: Vec<(String, u64)> = self
            .fake
            .members(&self.pool_id())
            .iter()
            .filter(|m| m["provisioning_status"] != "PENDING_DELETE")
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_string(),
                    m["weight"].as_u64().unwrap(),
                )
            })
            .collect();
        members.sort();
        members
    }

    fn puts(&self) -> usize {
        self.fake.successful(&Method::PUT, "/members")
    }
}

fn settings() -> OctaviaSettings {
    let mut settings = OctaviaSettings::new("triad-web", 80);
    settings.vip_subnet_id = Some("subnet-vip".into());
    settings.active_timeout = Duration::from_secs(5);
    settings.poll_initial = Duration::from_millis(10);
    settings.poll_max = Duration::from_millis(50);
    settings
}

fn add(name: &str, last_octet: u8) -> MemberChange {
    MemberChange::Add {
        name: name.into(),
        address: format!("10.0.2.{last_octet}").parse().unwrap(),
        port: 80,
    }
}

#[tokio::test]
async fn loopback_octavia_creates_everything_from_nothing_then_adds_members_once() {
    let cloud = cloud(FakeOptions::default()).await;
    let balancer = cloud.balancer();
    let members = balancer.observe().await.expect("ensure and observe");
    assert!(members.is_empty());
    let lbs = cloud.fake.load_balancers();
    assert_eq!(lbs.len(), 1);
    assert_eq!(lbs[0]["name"], "triad-web");
    assert_eq!(lbs[0]["provisioning_status"], "ACTIVE");
    let listeners = cloud.fake.listeners();
    assert_eq!(listeners[0]["protocol_port"], 80);
    let pools = cloud.fake.pools();
    assert_eq!(pools[0]["lb_algorithm"], "ROUND_ROBIN");
    assert_eq!(pools[0]["session_persistence"]["type"], "HTTP_COOKIE");
    assert_eq!(listeners[0]["default_pool_id"], pools[0]["id"]);
    let monitors = cloud.fake.monitors();
    assert_eq!(monitors[0]["pools"][0]["id"], pools[0]["id"]);
    assert_eq!(monitors[0]["delay"], 5);
    // Octavia's defaults, sent explicitly
    assert_eq!(monitors[0]["http_method"], "GET");
    assert_eq!(monitors[0]["url_path"], "/");
    assert_eq!(monitors[0]["expected_codes"], "200");

    balancer
        .apply(&[add("n1", 1), add("n2", 2)])
        .await
        .expect("batch add");
    assert_eq!(cloud.members(), [("n1".into(), 1), ("n2".into(), 1)]);
    assert_eq!(cloud.puts(), 1);
    // The same set again: no batch call at all (it would lock the load balancer).
    balancer.apply(&[add("n1", 1)]).await.unwrap();
    assert_eq!(cloud.puts(), 1, "unchanged set sends nothing");
    // Drain and remove are one batch each.
    balancer
        .apply(&[MemberChange::Drain { name: "n2".into() }])
        .await
        .unwrap();
    assert_eq!(cloud.members(), [("n1".into(), 1), ("n2".into(), 0)]);
    let observed = balancer.observe().await.unwrap();
    let n2 = observed.iter().find(|m| m.name == "n2").unwrap();
    assert_eq!(n2.state, MemberState::Draining);
    balancer
        .apply(&[MemberChange::Remove { name: "n2".into() }])
        .await
        .unwrap();
    let observed = balancer.observe().await.unwrap();
    assert_eq!(
        observed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["n1"]
    );
    assert_eq!(cloud.puts(), 3);
}

#[tokio::test]
async fn loopback_octavia_monitor_checks_the_configured_path_and_codes() {
    let cloud = cloud(FakeOptions::default()).await;
    let mut owncloud = settings();
    owncloud.monitor = Some(MonitorSettings {
        url_path: "/status.php".into(),
        expected_codes: StatusCodes::parse("200, 302").unwrap(),
        ..MonitorSettings::default()
    });
    OctaviaBalancer::new(cloud.octavia("fake"), owncloud.clone())
        .observe()
        .await
        .expect("ensure and observe");
    let monitors = cloud.fake.monitors();
    assert_eq!(monitors.len(), 1);
    assert_eq!(monitors[0]["url_path"], "/status.php");
    assert_eq!(monitors[0]["expected_codes"], "200,302");
    // a restarted coordinator reads the monitor back and finds it as configured
    let posts = cloud.fake.successful(&Method::POST, "/lbaas/");
    OctaviaBalancer::new(cloud.octavia("fake"), owncloud)
        .observe()
        .await
        .expect("adopt");
    assert_eq!(cloud.fake.successful(&Method::POST, "/lbaas/"), posts);
    assert_eq!(cloud.fake.successful(&Method::GET, "/healthmonitors/"), 1);
}

/// The fake refuses what Octavia's API refuses (octavia/api/v2/types/health_monitor.py and
/// controllers/health_monitor.py), so a monitor the coordinator sends is checked as the
/// real API would check it.
#[tokio::test]
async fn loopback_octavia_fake_refuses_health_monitors_as_octavia_does() {
    let cloud = cloud(FakeOptions::default()).await;
    let mut no_monitor = settings();
    no_monitor.monitor = None;
    OctaviaBalancer::new(cloud.octavia("fake"), no_monitor)
        .observe()
        .await
        .unwrap();
    let pool_id = cloud.pool_id();
    let api = cloud.octavia("fake");
    let monitor = |extra: serde_json::Value| {
        let mut body = serde_json::json!({
            "pool_id": pool_id, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2,
        });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    for (extra, expected) in [
        (
            serde_json::json!({"expected_codes": "2xx"}),
            "Invalid input for field/attribute expected_codes. Value: '2xx'",
        ),
        (
            serde_json::json!({"expected_codes": "200-204,301"}),
            "field/attribute expected_codes",
        ),
        (
            serde_json::json!({"url_path": "status.php"}),
            "Invalid input for field/attribute url_path",
        ),
        (
            serde_json::json!({"type": "TCP", "expected_codes": "200"}),
            "expected_codes is not a valid option for health monitors of type TCP",
        ),
        (
            serde_json::json!({"type": "PING", "url_path": "/"}),
            "url_path is not a valid option for health monitors of type PING",
        ),
        (
            serde_json::json!({"max_retries": 11}),
            "field/attribute max_retries",
        ),
    ] {
        let error = api
            .create_health_monitor(monitor(extra.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{extra}: {error}");
        assert!(error.contains("400"), "{extra}: {error}");
    }
    assert!(cloud.fake.monitors().is_empty());
    // Octavia's list syntax allows spaces after the commas; the stored value is as sent
    let created = api
        .create_health_monitor(monitor(serde_json::json!({"expected_codes": "200, 302"})))
        .await
        .expect("a valid monitor");
    assert_eq!(created.expected_codes.as_deref(), Some("200, 302"));
    assert_eq!(created.url_path.as_deref(), Some("/"));
}

#[tokio::test]
async fn loopback_octavia_adopts_existing_objects_by_name_with_application_credentials() {
    let cloud = cloud(FakeOptions::default()).await;
    cloud.balancer().apply(&[add("n1", 1)]).await.unwrap();
    let posts = cloud.fake.successful(&Method::POST, "/lbaas/");
    // A second coordinator, authenticating with the application credential.
    let adopted = OctaviaBalancer::new(cloud.octavia("fake-appcred"), settings());
    let members = adopted.observe().await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].name, "n1");
    assert_eq!(
        cloud.fake.successful(&Method::POST, "/lbaas/"),
        posts,
        "nothing created again"
    );
    assert_eq!(cloud.fake.load_balancers().len(), 1);
}

#[tokio::test]
async fn loopback_octavia_rides_out_pending_409_5xx_timeouts_and_token_expiry() {
    let cloud = cloud(FakeOptions {
        pending_polls: 4,
        ..FakeOptions::default()
    })
    .await;
    let balancer = cloud.balancer();
    balancer.observe().await.unwrap();
    // A 409 immutable (someone else's change) is "busy, retry later".
    cloud.fake.inject(Fault {
        method: Some(Method::PUT),
        path_contains: "/members".into(),
        kind: FaultKind::Status(409),
        times: 1,
    });
    let error = balancer.apply(&[add("n1", 1)]).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("busy"), "{error}");
    balancer
        .apply(&[add("n1", 1)])
        .await
        .expect("the retry goes through");
    // 5xx: transient, nothing half-done.
    cloud.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "/members".into(),
        kind: FaultKind::Status(503),
        times: 1,
    });
    let error = balancer.apply(&[add("n2", 2)]).await.unwrap_err();
    assert!(
        error.is_transient() && error.to_string().contains("503"),
        "{error}"
    );
    assert_eq!(cloud.members(), [("n1".into(), 1)]);
    // A hung API: the client's timeout, transient.
    cloud.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "/members".into(),
        kind: FaultKind::Delay(Duration::from_secs(2)),
        times: 1,
    });
    let error = balancer.apply(&[add("n2", 2)]).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    // Token expiry mid-run: one 401, re-authentication, replay.
    let issued = cloud.fake.tokens_issued();
    cloud.fake.expire_tokens();
    balancer
        .apply(&[add("n2", 2)])
        .await
        .expect("re-authenticates once");
    assert_eq!(cloud.fake.tokens_issued(), issued + 1);
    assert_eq!(cloud.members(), [("n1".into(), 1), ("n2".into(), 1)]);
}

#[tokio::test]
async fn loopback_octavia_error_status_is_surfaced_and_not_retried_blindly() {
    let cloud = cloud(FakeOptions::default()).await;
    let balancer = cloud.balancer();
    balancer.apply(&[add("n1", 1)]).await.unwrap();
    let lb_id = cloud.fake.load_balancers()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    cloud.fake.set_lb_status(&lb_id, "ERROR");
    let error = balancer.observe().await.unwrap_err();
    assert!(!error.is_transient());
    assert!(error.to_string().contains("ERROR"), "{error}");
    let error = balancer.apply(&[add("n2", 2)]).await.unwrap_err();
    assert!(error.to_string().contains("ERROR"), "{error}");
    assert_eq!(balancer.last_status().as_deref(), Some("ERROR"));
    assert_eq!(cloud.puts(), 1, "no batch call on an ERROR load balancer");
}

#[tokio::test]
async fn loopback_octavia_answer_that_is_not_json_is_a_clear_error() {
    let cloud = cloud(FakeOptions::default()).await;
    let balancer = cloud.balancer();
    balancer.observe().await.unwrap();
    cloud.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "/members".into(),
        kind: FaultKind::NotJson,
        times: 1,
    });
    let error = balancer.observe().await.unwrap_err().to_string();
    assert!(error.contains("not the expected JSON"), "{error}");
    assert!(error.contains("/v2/lbaas/pools/"), "names the URL: {error}");
    assert!(error.contains("<html>"), "quotes the body: {error}");
}

// ---- the reconcile loop over Octavia ----

/// The agents' answers, set by the test.
#[derive(Default)]
struct ScriptedAgents {
    verdicts: Mutex<BTreeMap<String, Verdict>>,
}

#[async_trait]
impl Confirmer for ScriptedAgents {
    async fn confirm(&self, node_id: &str, _grpc: SocketAddr) -> Verdict {
        self.verdicts
            .lock()
            .unwrap()
            .get(node_id)
            .copied()
            .unwrap_or(Verdict::Unreachable)
    }
}

/// A synthetic cluster: node id → (live, ready, draining), turned into a ClusterView.
#[derive(Default)]
struct World {
    nodes: Mutex<BTreeMap<String, (bool, bool, bool)>>,
    agents: Arc<ScriptedAgents>,
}

impl World {
    fn set(&self, node: &str, live: bool, ready: bool, draining: bool) {
        self.nodes
            .lock()
            .unwrap()
            .insert(node.into(), (live, ready, draining));
        let verdict = if !live {
            Verdict::Unreachable
        } else if ready && !draining {
            Verdict::Serving
        } else {
            Verdict::NotServing { draining }
        };
        self.agents
            .verdicts
            .lock()
            .unwrap()
            .insert(node.into(), verdict);
    }

    fn forget(&self, node: &str) {
        self.nodes.lock().unwrap().remove(node);
        self.agents.verdicts.lock().unwrap().remove(node);
    }

    fn view(&self) -> ClusterView {
        let observed: Vec<ObservedMember> = self
            .nodes
            .lock()
            .unwrap()
            .iter()
            .map(|(id, (live, ready, draining))| {
                let index: u8 = id[1..].parse().unwrap();
                let grpc: SocketAddr = format!("10.0.2.{index}:7421").parse().unwrap();
                let mut keys = NodeKeys::initial(Role::Core, grpc, "test");
                keys.ready = *ready;
                keys.draining = *draining;
                ObservedMember {
                    node_id: id.clone(),
                    generation: 1,
                    gossip_addr: format!("10.0.2.{index}:7420").parse().unwrap(),
                    live: *live,
                    is_self: false,
                    keys,
                    decode_errors: vec![],
                }
            })
            .collect();
        let mut view = ClusterView::default();
        view.apply(&observed, Instant::now());
        view
    }
}

fn start_loop(cloud: &Cloud, world: &Arc<World>) -> BalancerLoop {
    let view_world = world.clone();
    BalancerLoop::start(
        Arc::new(cloud.balancer()),
        Arc::new(move || view_world.view()),
        None,
        world.agents.clone(),
        LoopSettings {
            spec: Spec {
                rise_hold: Duration::from_millis(300),
                drain_timeout: Duration::from_secs(2),
                confirm_ttl: Duration::from_millis(300),
                settle: Duration::from_secs(1),
                delete_after: Duration::from_millis(500),
            },
            interval: Duration::from_millis(100),
        },
    )
}

async fn wait_members(cloud: &Cloud, expected: &[&str]) {
    wait_for(
        &format!("pool members to be {expected:?} (weight 1)"),
        BOUND,
        POLL,
        || async {
            if cloud.fake.pools().is_empty() {
                return Err("no pool yet".to_string());
            }
            let members = cloud.members();
            let names: Vec<&str> = members
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|(n, _)| n.as_str())
                .collect();
            if names == expected && members.len() == expected.len() {
                Ok(())
            } else {
                Err(format!("{members:?}"))
            }
        },
    )
    .await
    .unwrap();
}

/// Watches the pool in the background (reading the fake's store, not its HTTP API, so
/// injected faults do not blind it) and records the fewest active members seen.
fn watch_min_active(cloud: &Cloud) -> (Arc<Mutex<usize>>, tokio::task::JoinHandle<()>) {
    let min = Arc::new(Mutex::new(usize::MAX));
    let pool = cloud.pool_id();
    let fake = cloud.fake.clone();
    let recorded = min.clone();
    let handle = tokio::spawn(async move {
        loop {
            let active = fake
                .members(&pool)
                .iter()
                .filter(|m| {
                    m["provisioning_status"] != "PENDING_DELETE" && m["weight"].as_u64() != Some(0)
                })
                .count();
            {
                let mut min = recorded.lock().unwrap();
                *min = (*min).min(active);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (min, handle)
}

#[tokio::test]
async fn loopback_octavia_loop_follows_readiness_through_faults_and_restart() {
    let cloud = cloud(FakeOptions {
        pending_polls: 3,
        ..FakeOptions::default()
    })
    .await;
    let world = Arc::new(World::default());
    for node in ["n1", "n2", "n3"] {
        world.set(node, true, true, false);
    }
    let balancer_loop = start_loop(&cloud, &world);
    wait_members(&cloud, &["n1", "n2", "n3"]).await;
    let (min_active, watcher) = watch_min_active(&cloud);

    // n2 stops being ready: removed.
    world.set("n2", true, false, false);
    wait_members(&cloud, &["n1", "n3"]).await;

    // Transient trouble while n2 comes back: 5xx, 409, a timeout, an expired token.
    cloud.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "/members".into(),
        kind: FaultKind::Status(502),
        times: 2,
    });
    cloud.fake.inject(Fault {
        method: Some(Method::PUT),
        path_contains: "/members".into(),
        kind: FaultKind::Status(409),
        times: 2,
    });
    cloud.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "/loadbalancers/".into(),
        kind: FaultKind::Delay(Duration::from_secs(2)),
        times: 1,
    });
    cloud.fake.expire_tokens();
    world.set("n2", true, true, false);
    wait_members(&cloud, &["n1", "n2", "n3"]).await;
    let status = balancer_loop.status();
    assert!(status.errors_total >= 2, "the faults were seen: {status:?}");

    // Planned removal: n3 drains (weight 0), then leaves after the drain timeout.
    world.set("n3", true, false, true);
    wait_for("n3 drained to weight 0", BOUND, POLL, || async {
        let members = cloud.members();
        if members.contains(&("n3".to_string(), 0)) {
            Ok(())
        } else {
            Err(format!("{members:?}"))
        }
    })
    .await
    .unwrap();
    wait_members(&cloud, &["n1", "n2"]).await;

    // A coordinator restart: the new loop adopts the pool and sends nothing while
    // nothing changes.
    balancer_loop.stop().await;
    let puts = cloud.puts();
    let balancer_loop = start_loop(&cloud, &world);
    wait_for(
        "the restarted loop to run a few rounds",
        BOUND,
        POLL,
        || async {
            let status = balancer_loop.status();
            if status.rounds_total >= 10 {
                Ok(())
            } else {
                Err(format!("{} rounds", status.rounds_total))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(cloud.puts(), puts, "no batch call after adoption");

    // n3's node is gone from the view entirely (forgotten): nothing to remove; n2 dies
    // while 5xx errors hit: removed once the answers come back, and never an empty pool.
    world.forget("n3");
    cloud.fake.inject(Fault {
        method: None,
        path_contains: "/lbaas/".into(),
        kind: FaultKind::Status(500),
        times: 3,
    });
    world.set("n2", false, false, false);
    wait_members(&cloud, &["n1"]).await;
    // Every node looks bad: the last member stays.
    world.set("n1", false, false, false);
    let rounds = balancer_loop.status().rounds_total;
    wait_for(
        "ten more rounds with every node down",
        BOUND,
        POLL,
        || async {
            let status = balancer_loop.status();
            if status.rounds_total >= rounds + 10 {
                Ok(())
            } else {
                Err(format!("{} rounds", status.rounds_total))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        cloud.members(),
        [("n1".to_string(), 1)],
        "the last member stays"
    );
    watcher.abort();
    let min = *min_active.lock().unwrap();
    assert!(
        min >= 1,
        "the pool was never without an active member (min seen {min})"
    );
    balancer_loop.stop().await;
}

#[tokio::test]
async fn loopback_octavia_sweep_removes_members_whose_node_is_gone() {
    let cloud = cloud(FakeOptions::default()).await;
    // Left over from an earlier life: a member for a node that no longer exists.
    cloud
        .balancer()
        .apply(&[add("n1", 1), add("n9", 9)])
        .await
        .unwrap();
    let world = Arc::new(World::default());
    world.set("n1", true, true, false);
    let balancer_loop = start_loop(&cloud, &world);
    wait_members(&cloud, &["n1"]).await;
    balancer_loop.stop().await;
}

#[tokio::test]
async fn loopback_tokens_are_renewed_before_they_expire() {
    // 2 s tokens: the session renews at half their lifetime, before Keystone's expiry,
    // so no request is ever refused with 401.
    let cloud = cloud(FakeOptions {
        token_lifetime: Duration::from_secs(2),
        ..FakeOptions::default()
    })
    .await;
    let balancer = cloud.balancer();
    wait_for(
        "a second token, fetched before the first expired",
        BOUND,
        Duration::from_millis(100),
        || async {
            balancer.observe().await.map_err(|e| e.to_string())?;
            match cloud.fake.tokens_issued() {
                n if n >= 2 => Ok(()),
                n => Err(format!("{n} token(s) issued")),
            }
        },
    )
    .await
    .unwrap();
    let refused: Vec<String> = cloud
        .fake
        .log()
        .iter()
        .filter(|l| l.status == 401)
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    assert!(refused.is_empty(), "requests refused with 401: {refused:?}");
}

/// Octavia allows two load balancers of one name; Triad cannot tell which is its own, so it
/// drives neither and names both ids.
#[tokio::test]
async fn loopback_octavia_two_load_balancers_of_one_name_are_refused_naming_both() {
    let cloud = cloud(FakeOptions::default()).await;
    let balancer = cloud.balancer();
    balancer.apply(&[add("n1", 1)]).await.unwrap();
    let octavia = cloud.octavia("fake");
    let second = octavia
        .create_load_balancer(serde_json::json!({
            "name": "triad-web", "vip_subnet_id": "subnet-vip"
        }))
        .await
        .unwrap();
    let ids: Vec<String> = cloud
        .fake
        .load_balancers()
        .iter()
        .map(|lb| lb["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&second.id));
    let error = octavia.find_load_balancer("triad-web").await.unwrap_err();
    let text = error.to_string();
    assert!(
        !error.is_transient() && ids.iter().all(|id| text.contains(id.as_str())),
        "{text}"
    );
    // a coordinator that starts now (its balancer looks the name up afresh) drives neither
    let restarted = cloud.balancer();
    let text = restarted.observe().await.unwrap_err().to_string();
    assert!(
        text.contains("2 loadbalancers are named \"triad-web\"")
            && ids.iter().all(|id| text.contains(id.as_str())),
        "{text}"
    );
    assert_eq!(cloud.puts(), 1, "no member call once the name is ambiguous");
}

/// Maintenance mode on Octavia: a maintenance pool whose one member is the coordinator's
/// page server, and an L7 policy at position 1 that sends there every request without the
/// bypass cookie; the openstack CLI sees both; the page answers 503 with Retry-After and
/// the message; a policy deleted by hand is put back; off deletes the policy.
#[tokio::test]
async fn loopback_octavia_maintenance_sends_clients_to_the_page_and_off_removes_the_policy() {
    use triad_coordinator::maintenance::{Maintenance, PageServer, BYPASS_COOKIE};
    use triad_openstack_fake::cli::openstack_json;
    let cloud = cloud(FakeOptions::default()).await;
    let on = Maintenance {
        message: "Upgrading: back at 14:00".into(),
        retry_after_secs: 120,
        allow: vec![],
        since: 0,
        bypass: "0123456789abcdef0123456789abcdef".into(),
    };
    // without a page address it is refused, naming the key
    let error = cloud.balancer().maintenance(Some(&on)).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("balancer.octavia.maintenance_page"),
        "{error}"
    );
    let (wanted_tx, wanted) = tokio::sync::watch::channel(Some(on.clone()));
    let page = PageServer::start("127.0.0.1:0".parse().unwrap(), wanted)
        .await
        .unwrap();
    let with_page = || {
        let mut s = settings();
        s.maintenance_page = Some(page.local_addr());
        OctaviaBalancer::new(cloud.octavia("fake"), s)
    };
    let balancer = with_page();
    assert!(balancer.maintenance(Some(&on)).await.unwrap(), "changed");
    let policies = cloud.fake.l7policies();
    assert_eq!(policies.len(), 1, "{policies:?}");
    let policy = &policies[0];
    assert_eq!(policy["name"], "triad-web-http-maintenance");
    assert_eq!(policy["action"], "REDIRECT_TO_POOL");
    assert_eq!(policy["position"], 1);
    assert_eq!(policy["provisioning_status"], "ACTIVE");
    let pool = cloud
        .fake
        .pools()
        .into_iter()
        .find(|p| p["id"] == policy["redirect_pool_id"])
        .expect("the policy's pool exists");
    assert_eq!(pool["name"], "triad-web-pool-maintenance");
    let page_members = cloud.fake.members(pool["id"].as_str().unwrap());
    assert_eq!(page_members.len(), 1, "{page_members:?}");
    assert_eq!(page_members[0]["address"], "127.0.0.1");
    assert_eq!(page_members[0]["protocol_port"], page.local_addr().port());
    // the real client sees the policy and its rule
    let listed = openstack_json(&cloud.fake, &["loadbalancer", "l7policy", "list"]).await;
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(1),
        "l7policy list: {listed}"
    );
    assert_eq!(listed[0]["action"], "REDIRECT_TO_POOL", "{listed}");
    assert_eq!(listed[0]["position"], 1, "{listed}");
    let policy_id = policy["id"].as_str().unwrap();
    let rules = openstack_json(&cloud.fake, &["loadbalancer", "l7rule", "list", policy_id]).await;
    assert_eq!(rules.as_array().map(Vec::len), Some(1), "{rules}");
    assert_eq!(rules[0]["type"], "COOKIE", "{rules}");
    assert_eq!(rules[0]["compare_type"], "EQUAL_TO", "{rules}");
    assert_eq!(rules[0]["key"], BYPASS_COOKIE, "{rules}");
    assert_eq!(rules[0]["value"], on.bypass.as_str(), "{rules}");
    assert_eq!(rules[0]["invert"], true, "{rules}");
    // what the maintenance pool's member answers
    let answer = reqwest::get(format!("http://{}/index.php", page.local_addr()))
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "120");
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert_eq!(answer.text().await.unwrap(), "Upgrading: back at 14:00\n");
    // in place: no change, no further mutation
    let posts = cloud.fake.successful(&Method::POST, "/l7policies");
    assert!(!balancer.maintenance(Some(&on)).await.unwrap());
    assert!(!with_page().maintenance(Some(&on)).await.unwrap());
    assert_eq!(cloud.fake.successful(&Method::POST, "/l7policies"), posts);
    // deleted by hand: a balancer that looks again puts it back
    let octavia = cloud.octavia("fake");
    octavia.delete_l7policy(policy_id).await.unwrap();
    wait_for("the hand-deleted policy to go", BOUND, POLL, || async {
        // each GET of the load balancer moves the fake's PENDING countdown
        let _ = octavia.find_load_balancer("triad-web").await;
        match cloud.fake.l7policies().len() {
            0 => Ok(()),
            n => Err(format!("{n} policies")),
        }
    })
    .await
    .unwrap();
    assert!(
        with_page().maintenance(Some(&on)).await.unwrap(),
        "put back"
    );
    assert_eq!(cloud.fake.l7policies().len(), 1);
    // a new message changes only the page
    let reworded = Maintenance {
        message: "Nearly done".into(),
        ..on.clone()
    };
    wanted_tx.send_replace(Some(reworded.clone()));
    assert!(!with_page().maintenance(Some(&reworded)).await.unwrap());
    let answer = reqwest::get(format!("http://{}/", page.local_addr()))
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "Nearly done\n");
    // off: the policy goes, the members of the app's pool were never touched
    assert!(with_page().maintenance(None).await.unwrap(), "changed");
    assert!(cloud.fake.l7policies().is_empty());
    let listed = openstack_json(&cloud.fake, &["loadbalancer", "l7policy", "list"]).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    assert!(!with_page().maintenance(None).await.unwrap(), "already off");
    page.stop().await;
}

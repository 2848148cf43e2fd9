//! Shared by the HAProxy loopback tests and the failover bench: a real HAProxy started
//! from a generated config (killed by PID on drop), simple HTTP backends on 127.0.3.x,
//! fake nodes (the real agent runtime and AgentService gRPC server on 127.0.3.x, gossip on
//! chitchat's in-memory transport, readiness set by the test through the Apache key), and
//! a coordinator with the balancer loop.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use triad_agent::grpc::AgentGrpc;
use triad_agent::metrics::FixedMetrics;
use triad_agent::readiness::ReadinessCheck;
use triad_agent::runtime::AgentRuntime;
use triad_agent::testsuite::{agent_config_for_test, wait_for};
use triad_cluster::membership::GossipSettings;
use triad_coordinator::balancer::haproxy::{HaproxyBalancer, HaproxySettings};
use triad_coordinator::balancer::plan::Spec;
use triad_coordinator::balancer::reconcile::{BalancerLoop, GrpcConfirmer, LoopSettings};
use triad_coordinator::balancer::{Member, MemberState};
use triad_coordinator::config::CoordinatorConfig;
use triad_coordinator::observer::Coordinator;
use triad_proto::gossip::Health;

pub const POLL: Duration = Duration::from_millis(50);

pub fn node_ip(index: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 3, index))
}

/// A free TCP port on `ip` (bound and released; the tests run one at a time).
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running HAProxy, killed by PID when dropped; its config and socket live in a tempdir.
pub struct HaproxyProcess {
    child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub frontend: SocketAddr,
    pub backend: String,
}

impl Drop for HaproxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HaproxyProcess {
    /// Start HAProxy with one frontend on 127.0.0.1 (a free port, never 8080) and backend
    /// `be_web`, whose body is `backend_lines` (servers, checks).
    pub async fn start(backend_lines: &str) -> HaproxyProcess {
        HaproxyProcess::start_with(
            "    timeout check 2s\n    retries 3\n    option redispatch 1\n    retry-on all-retryable-errors\n",
            backend_lines,
        )
        .await
    }

    /// As [`HaproxyProcess::start`], with `defaults_lines` (checks, retries) in `defaults`.
    pub async fn start_with(defaults_lines: &str, backend_lines: &str) -> HaproxyProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("admin.sock");
        let port = free_port(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let frontend = SocketAddr::from(([127, 0, 0, 1], port));
        // maintenance mode's map and allow list, empty at start
        let (map, allow) = maintenance_files(dir.path());
        std::fs::write(&map, "").expect("maintenance map");
        std::fs::write(&allow, "").expect("maintenance allow list");
        let maintenance =
            triad_coordinator::balancer::haproxy::maintenance_frontend_line(&map, &allow);
        let no_server = triad_coordinator::balancer::haproxy::no_server_error_line();
        let config = format!(
            "global
    stats socket {socket} mode 600 level admin
    stats timeout 30s
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    {no_server}
{defaults_lines}frontend fe_web
    bind {frontend}
    {maintenance}
    default_backend be_web
backend be_web
    balance roundrobin
    option httpchk
    http-check send meth GET uri /health
    http-check expect status 200
{backend_lines}
",
            socket = socket.display()
        );
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, config).expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log file");
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("haproxy starts (Debian package haproxy)");
        let process = HaproxyProcess {
            child,
            dir,
            socket: socket.clone(),
            frontend,
            backend: "be_web".into(),
        };
        let api =
            triad_coordinator::balancer::haproxy::RuntimeApi::new(&socket, Duration::from_secs(1));
        wait_for(
            "haproxy admin socket to answer `show info`",
            Duration::from_secs(10),
            POLL,
            || {
                let api = api.clone();
                async move {
                    api.command("show info")
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}; log: {}", process.log()));
        process
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    pub fn balancer(&self, server_port: u16) -> HaproxyBalancer {
        let mut settings = HaproxySettings::new(self.socket.clone(), &self.backend, server_port);
        (settings.maintenance_map, settings.maintenance_allow) = maintenance_files(self.dir.path());
        HaproxyBalancer::new(settings)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Maintenance mode's files in an HAProxy's directory.
pub fn maintenance_files(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    (
        dir.join("maintenance.map"),
        dir.join("maintenance-allow.acl"),
    )
}

/// One GET through `frontend` from the local address `from`: (status line, whole answer).
pub async fn get_from(from: IpAddr, frontend: SocketAddr) -> Result<(String, String), String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(from, 0))
        .map_err(|e| format!("bind {from}: {e}"))?;
    let mut stream = socket.connect(frontend).await.map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.lines().next().unwrap_or("").to_string();
    Ok((status, response))
}

/// A minimal HTTP/1.1 server answering every request with its name (and `/health` with
/// 200), one request per connection. Aborting the task stops accepting (a "killed" backend).
pub struct HttpBackend {
    pub addr: SocketAddr,
    pub served: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for HttpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpBackend {
    pub async fn start(addr: SocketAddr, name: &str) -> HttpBackend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let served = Arc::new(AtomicU64::new(0));
        let counter = served.clone();
        let body = name.to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let body = body.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 4096];
                    let mut read = 0;
                    while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                        if read == buffer.len() {
                            return;
                        }
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n{}",
                        body.len(),
                        body
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        HttpBackend { addr, served, task }
    }

    pub fn kill(&self) {
        self.task.abort();
    }
}

/// One fake node: the real agent runtime (gossip in memory) and AgentService on
/// 127.0.3.index; readiness requires only Apache, which the test sets.
pub struct FakeNode {
    pub index: u8,
    pub node_id: String,
    pub grpc: SocketAddr,
    pub runtime: Option<AgentRuntime>,
    grpc_task: JoinHandle<()>,
    /// Where the agent keeps its drain flag (its state directory, a tempdir).
    pub drain_file: PathBuf,
    _state: tempfile::TempDir,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.grpc_task.abort();
    }
}

pub fn seeds() -> Vec<SocketAddr> {
    vec![SocketAddr::new(node_ip(1), triad_proto::ports::GOSSIP)]
}

impl FakeNode {
    pub async fn start(transport: &ChannelTransport, index: u8) -> FakeNode {
        let ip = node_ip(index);
        let gossip_addr = SocketAddr::new(ip, triad_proto::ports::GOSSIP);
        let listener = TcpListener::bind((ip, 0)).await.expect("bind agent gRPC");
        let grpc = listener.local_addr().expect("addr");
        let mut config = agent_config_for_test(index, &seeds());
        config.node_id = format!("n{index}");
        config.address = ip;
        config.gossip = GossipSettings {
            sampling_window: 100,
            ..GossipSettings::production(gossip_addr)
        };
        config.grpc_listen = grpc;
        config.heartbeat_interval = Duration::from_millis(200);
        config.readiness = vec![ReadinessCheck::Apache];
        let runtime = AgentRuntime::start(&config, 1, transport, Box::new(FixedMetrics::default()))
            .await
            .expect("agent starts");
        let state = tempfile::tempdir().expect("state dir");
        let drain_file = state.path().join(triad_agent::grpc::DRAIN_FILE);
        let service = AgentGrpc::new(runtime.state(), runtime.membership())
            .with_drain_file(drain_file.clone())
            .into_server();
        let grpc_task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        FakeNode {
            index,
            node_id: config.node_id,
            grpc,
            runtime: Some(runtime),
            grpc_task,
            drain_file,
            _state: state,
        }
    }

    /// Set what the agent reports for Apache; readiness follows at once, gossip within
    /// one interval.
    pub async fn set_apache(&self, healthy: bool) {
        let runtime = self.runtime.as_ref().expect("running agent");
        let state = runtime.state();
        state.update(|keys| keys.apache = if healthy { Health::Ok } else { Health::Down });
        runtime.membership().publish(&state.keys()).await;
    }

    pub fn set_draining(&self, draining: bool) {
        let runtime = self.runtime.as_ref().expect("running agent");
        runtime.state().update(|keys| keys.draining = draining);
    }
}

pub fn coordinator_config() -> CoordinatorConfig {
    // Parsed from TOML so fields other loops add keep their defaults.
    let text = "[tls]\ninsecure = true\n[cluster]\nname = \"test\"\nseeds = [\"127.0.3.1:7420\"]\n[gossip]\nlisten = \"127.0.3.100:7420\"\n[grpc]\nlisten = \"127.0.3.100:7422\"\n";
    let mut config = CoordinatorConfig::parse(std::path::Path::new("test.toml"), text)
        .expect("test config parses");
    config.gossip = GossipSettings {
        sampling_window: 100,
        ..GossipSettings::production("127.0.3.100:7420".parse().unwrap())
    };
    config
}

/// The coordinator's observer and its balancer loop.
pub struct Control {
    pub coordinator: Arc<Coordinator>,
    pub balancer_loop: Option<BalancerLoop>,
}

pub fn test_spec() -> Spec {
    Spec {
        rise_hold: Duration::from_secs(1),
        drain_timeout: Duration::from_secs(10),
        confirm_ttl: Duration::from_millis(500),
        settle: Duration::from_secs(3),
        delete_after: Duration::from_secs(1),
    }
}

impl Control {
    pub async fn start(
        transport: &ChannelTransport,
        balancer: HaproxyBalancer,
        spec: Spec,
    ) -> Control {
        let coordinator = Arc::new(
            Coordinator::start(
                &coordinator_config(),
                triad_cluster::membership::generation_now(),
                transport,
            )
            .await
            .expect("coordinator starts"),
        );
        let view_of = coordinator.clone();
        let balancer_loop = BalancerLoop::start(
            Arc::new(balancer),
            Arc::new(move || view_of.view()),
            Some(coordinator.subscribe()),
            Arc::new(GrpcConfirmer::default()),
            LoopSettings {
                spec,
                interval: Duration::from_millis(200),
            },
        );
        Control {
            coordinator,
            balancer_loop: Some(balancer_loop),
        }
    }

    pub async fn stop(mut self) {
        if let Some(balancer_loop) = self.balancer_loop.take() {
            balancer_loop.stop().await;
        }
        if let Ok(coordinator) = Arc::try_unwrap(self.coordinator) {
            coordinator.stop().await;
        }
    }
}

/// Members of the backend as HAProxy reports them: (name, state), sorted.
pub async fn members(balancer: &HaproxyBalancer) -> Result<Vec<(String, MemberState)>, String> {
    use triad_coordinator::balancer::Balancer;
    let mut members: Vec<(String, MemberState)> = balancer
        .observe()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|m: Member| (m.name, m.state))
        .collect();
    members.sort();
    Ok(members)
}

/// Active member names, sorted.
pub async fn active(balancer: &HaproxyBalancer) -> Result<Vec<String>, String> {
    Ok(members(balancer)
        .await?
        .into_iter()
        .filter(|(_, s)| *s == MemberState::Active)
        .map(|(n, _)| n)
        .collect())
}

/// Wait until the active members are exactly `expected`.
pub async fn wait_active(balancer: &HaproxyBalancer, expected: &[&str], bound: Duration) {
    let want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    wait_for(
        &format!("haproxy active members to be {expected:?}"),
        bound,
        POLL,
        || {
            let want = want.clone();
            async move {
                let all = members(balancer).await?;
                let got: Vec<String> = all
                    .iter()
                    .filter(|(_, s)| *s == MemberState::Active)
                    .map(|(n, _)| n.clone())
                    .collect();
                if got == want {
                    Ok(())
                } else {
                    Err(format!("members {all:?}"))
                }
            }
        },
    )
    .await
    .unwrap();
}

/// Send one GET through the frontend and return the body (the backend's name).
pub async fn get_through(frontend: SocketAddr) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(frontend)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "not 200: {}",
            response.lines().next().unwrap_or("")
        ));
    }
    Ok(response.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

//! Mutual TLS on the gRPC channels (issue 9), with a PKI made by `triad_daemon::pki`
//! (what `triadctl pki init` / `issue` run): the coordinator's server answers an operator
//! certificate, and refuses, each with a clear status or error, a plaintext client, a TLS
//! client without a certificate, a certificate from another CA and a node certificate; an
//! agent answers the coordinator and operators, refuses a node, and the coordinator's
//! client checks that the agent it dials is the node it meant. A renewed server
//! certificate is taken on reload. Servers on 127.0.4.x; chitchat in memory.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use tokio::net::TcpListener;
use triad_agent::grpc::AgentGrpc;
use triad_agent::metrics::FixedMetrics;
use triad_agent::runtime::AgentRuntime;
use triad_agent::testsuite::agent_config_for_test;
use triad_cluster::membership::GossipSettings;
use triad_coordinator::config::CoordinatorConfig;
use triad_coordinator::grpc::CoordinatorGrpc;
use triad_coordinator::observer::Coordinator;
use triad_daemon::pki::{self, IssueRequest};
use triad_daemon::tls::{PeerRole, TlsFiles, TlsReloader, COORDINATOR_SERVER_NAME};
use triad_proto::v1;
use triad_proto::v1::agent_service_client::AgentServiceClient;
use triad_proto::v1::coordinator_service_client::CoordinatorServiceClient;

fn issue(dir: &Path, name: &str, role: PeerRole, ip: &str) {
    pki::issue(
        dir,
        &IssueRequest {
            name: name.into(),
            role,
            ips: if ip.is_empty() {
                vec![]
            } else {
                vec![ip.parse().unwrap()]
            },
            dns: vec![],
            days: 30,
            force: true,
        },
    )
    .unwrap_or_else(|e| panic!("issue {name}: {e}"));
}

/// The cluster's PKI and a second, foreign one.
struct Pkis {
    ours: tempfile::TempDir,
    foreign: tempfile::TempDir,
}

fn pkis() -> Pkis {
    let ours = tempfile::tempdir().unwrap();
    pki::init(ours.path(), "test", 30, false).unwrap();
    issue(
        ours.path(),
        "coordinator",
        PeerRole::Coordinator,
        "127.0.0.1",
    );
    issue(ours.path(), "n1", PeerRole::Node, "127.0.4.1");
    issue(ours.path(), "n2", PeerRole::Node, "127.0.4.2");
    issue(ours.path(), "ops", PeerRole::Operator, "");
    issue(ours.path(), "watcher", PeerRole::Viewer, "");
    let foreign = tempfile::tempdir().unwrap();
    pki::init(foreign.path(), "elsewhere", 30, false).unwrap();
    issue(foreign.path(), "ops", PeerRole::Operator, "");
    Pkis { ours, foreign }
}

fn files(dir: &Path, name: &str) -> TlsFiles {
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    }
}

/// tonic's error text with its causes (a refused certificate is in the source chain).
fn chain(error: &dyn std::error::Error) -> String {
    triad_daemon::tls::error_chain(error)
}

/// A coordinator gRPC server with TLS on 127.0.0.1:<free>.
async fn coordinator_server(
    tls: TlsReloader,
    transport: &ChannelTransport,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    // the gRPC server's TLS is set up below; the config only has to be valid
    let text = "[tls]\ninsecure = true\n[cluster]\nname = \"test\"\nseeds = [\"127.0.4.1:7420\"]\n[gossip]\nlisten = \"127.0.4.100:7420\"\n";
    let config = CoordinatorConfig::parse(Path::new("test.toml"), text).unwrap();
    let coordinator = Arc::new(Coordinator::start(&config, 1, transport).await.unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = CoordinatorGrpc::new(coordinator)
        .with_tls(Some(tls.files().clone()))
        .into_server();
    let task = tokio::spawn(async move {
        let _ = triad_daemon::tls::serve(
            tonic::transport::Server::builder().add_service(service),
            listener,
            Some(tls),
            std::future::pending(),
        )
        .await;
    });
    (addr, task)
}

/// ClusterStatus through TLS with `identity` (None: no client certificate), checking the
/// server as `server_name`; Err: the status code and message, or the transport error.
async fn cluster_status(
    addr: SocketAddr,
    ca: &Path,
    identity: Option<(&Path, &Path)>,
    server_name: &str,
) -> Result<v1::ClusterStatus, String> {
    let mut config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(ca).unwrap(),
        ))
        .domain_name(server_name);
    if let Some((cert, key)) = identity {
        config = config.identity(tonic::transport::Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .tls_config(config)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("connect: {}", chain(&e)))?;
    CoordinatorServiceClient::new(channel)
        .cluster_status(v1::ClusterStatusRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{:?}: {}", s.code(), chain(&s)))
}

#[tokio::test]
async fn the_coordinator_answers_operators_only_and_says_why_it_refuses() {
    let p = pkis();
    let ours = p.ours.path();
    let transport = ChannelTransport::with_mtu(65_507);
    let tls = TlsReloader::new(files(ours, "coordinator")).unwrap();
    let (addr, _server) = coordinator_server(tls.clone(), &transport).await;
    let ca = ours.join("ca.pem");
    let cert = |name: &str| {
        (
            ours.join(format!("{name}.pem")),
            ours.join(format!("{name}.key")),
        )
    };

    // an operator of this cluster
    let (ops_cert, ops_key) = cert("ops");
    let status = cluster_status(
        addr,
        &ca,
        Some((&ops_cert, &ops_key)),
        COORDINATOR_SERVER_NAME,
    )
    .await;
    // the status says how gRPC is secured, and warns: this certificate has 30 days
    let tls_line = status.as_ref().map(|s| s.tls.clone()).unwrap_or_default();
    eprintln!("[mtls] status: tls: {tls_line}");
    assert!(
        tls_line.contains("mutual TLS as coordinator (coordinator)")
            && tls_line.contains("EXPIRES in"),
        "{status:?}"
    );

    // plaintext is not served
    let plain = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await;
    let refused = match plain {
        Err(e) => chain(&e),
        Ok(channel) => CoordinatorServiceClient::new(channel)
            .cluster_status(v1::ClusterStatusRequest {})
            .await
            .map(|_| "answered".to_string())
            .unwrap_or_else(|s| format!("{:?}: {}", s.code(), s.message())),
    };
    eprintln!("[mtls] plaintext client: {refused}");
    assert_ne!(refused, "answered", "a plaintext client got an answer");

    // TLS without a client certificate: UNAUTHENTICATED, saying what is needed
    let error = cluster_status(addr, &ca, None, COORDINATOR_SERVER_NAME)
        .await
        .unwrap_err();
    eprintln!("[mtls] no client certificate: {error}");
    assert!(
        error.starts_with("Unauthenticated")
            && error.contains("no client certificate")
            && error.contains("operator"),
        "{error}"
    );

    // a node's certificate: PERMISSION_DENIED, naming who and what role is needed
    let (n1_cert, n1_key) = cert("n1");
    let error = cluster_status(
        addr,
        &ca,
        Some((&n1_cert, &n1_key)),
        COORDINATOR_SERVER_NAME,
    )
    .await
    .unwrap_err();
    eprintln!("[mtls] node certificate: {error}");
    assert!(
        error.starts_with("PermissionDenied")
            && error.contains("n1 (node)")
            && error.contains("needs role operator"),
        "{error}"
    );

    // an operator certificate from another CA: the handshake is refused
    let foreign = p.foreign.path();
    let error = cluster_status(
        addr,
        &ca,
        Some((&foreign.join("ops.pem"), &foreign.join("ops.key"))),
        COORDINATOR_SERVER_NAME,
    )
    .await
    .unwrap_err();
    eprintln!("[mtls] operator certificate of another CA: {error}");
    assert!(error.contains("UnknownCA"), "{error}");

    // the client checks the server's name: the coordinator's certificate is not n1's
    let error = cluster_status(addr, &ca, Some((&ops_cert, &ops_key)), "n1")
        .await
        .unwrap_err();
    eprintln!("[mtls] server not the name the client expects: {error}");
    assert!(
        error.contains("connect") && error.contains("certificate"),
        "{error}"
    );

    // a renewed certificate is served after a reload (the new one has a new serial)
    let before = std::fs::read(ours.join("coordinator.pem")).unwrap();
    issue(ours, "coordinator", PeerRole::Coordinator, "127.0.0.1");
    let identity = tls.reload().unwrap();
    assert_eq!(
        (identity.name.as_str(), identity.role),
        ("coordinator", PeerRole::Coordinator)
    );
    assert!(
        triad_daemon::tls::days_left(&identity) >= 29,
        "{identity:?}"
    );
    assert_ne!(before, std::fs::read(ours.join("coordinator.pem")).unwrap());
    let status = cluster_status(
        addr,
        &ca,
        Some((&ops_cert, &ops_key)),
        COORDINATOR_SERVER_NAME,
    )
    .await;
    assert!(status.is_ok(), "after the reload: {status:?}");
    // a broken file on reload keeps the running config
    std::fs::write(ours.join("coordinator.pem"), "not a certificate").unwrap();
    let error = tls.reload().unwrap_err().to_string();
    assert!(error.contains("coordinator.pem"), "{error}");
    let status = cluster_status(
        addr,
        &ca,
        Some((&ops_cert, &ops_key)),
        COORDINATOR_SERVER_NAME,
    )
    .await;
    assert!(status.is_ok(), "after a failed reload: {status:?}");
}

/// A client of the coordinator with `name`'s certificate.
async fn coordinator_client(
    addr: SocketAddr,
    dir: &Path,
    name: &str,
) -> CoordinatorServiceClient<tonic::transport::Channel> {
    let read = |file: String| std::fs::read(dir.join(file)).unwrap();
    let config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(
            "ca.pem".into(),
        )))
        .domain_name(COORDINATOR_SERVER_NAME)
        .identity(tonic::transport::Identity::from_pem(
            read(format!("{name}.pem")),
            read(format!("{name}.key")),
        ));
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .tls_config(config)
        .unwrap()
        .connect()
        .await
        .unwrap();
    CoordinatorServiceClient::new(channel)
}

/// A viewer certificate reads the status and nothing else: every call that changes
/// something is refused with PERMISSION_DENIED naming the role it needs, while an operator's
/// same calls get past the check (and are answered by the service itself).
#[tokio::test]
async fn a_viewer_reads_the_status_and_may_change_nothing() {
    let p = pkis();
    let ours = p.ours.path();
    let transport = ChannelTransport::with_mtu(65_507);
    let tls = TlsReloader::new(files(ours, "coordinator")).unwrap();
    let (addr, _server) = coordinator_server(tls.clone(), &transport).await;
    let mut viewer = coordinator_client(addr, ours, "watcher").await;
    let status = viewer
        .cluster_status(v1::ClusterStatusRequest {})
        .await
        .expect("a viewer reads the status");
    assert_eq!(status.into_inner().cluster_name, "test");
    let mut operator = coordinator_client(addr, ours, "ops").await;
    let refused = |status: tonic::Status, call: &str| {
        assert_eq!(
            status.code(),
            tonic::Code::PermissionDenied,
            "{call}: {status:?}"
        );
        assert!(
            status.message().contains(&format!(
                "{call}: watcher (viewer) may not call this; it needs role operator"
            )),
            "{call}: {}",
            status.message()
        );
    };
    let recover = || v1::RecoverRequest {
        bootstrap_node: None,
        force: false,
    };
    refused(viewer.recover(recover()).await.unwrap_err(), "Recover");
    refused(
        viewer.scale(v1::ScaleRequest { to: 4 }).await.unwrap_err(),
        "Scale",
    );
    let maintenance = || v1::MaintenanceRequest {
        on: true,
        ..Default::default()
    };
    refused(
        viewer.maintenance(maintenance()).await.unwrap_err(),
        "Maintenance",
    );
    let run = || v1::AppRunRequest {
        name: "x".into(),
        argv: vec!["/bin/true".into()],
        ..Default::default()
    };
    refused(
        viewer.app_run(run()).await.map(|_| ()).unwrap_err(),
        "AppRun",
    );
    let resolve = || v1::VolumeResolveRequest {
        file: "/sb.txt".into(),
        policy: "bigger-file".into(),
        brick: String::new(),
    };
    refused(
        viewer.volume_resolve(resolve()).await.unwrap_err(),
        "VolumeResolve",
    );
    // the operator's same calls pass the check: this test coordinator runs no recovery,
    // autoscaling or maintenance, and says so
    for status in [
        operator.recover(recover()).await.unwrap_err(),
        operator
            .scale(v1::ScaleRequest { to: 4 })
            .await
            .unwrap_err(),
        operator.maintenance(maintenance()).await.unwrap_err(),
        operator.app_run(run()).await.map(|_| ()).unwrap_err(),
        operator.volume_resolve(resolve()).await.unwrap_err(),
    ] {
        assert_ne!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    }
}

#[tokio::test]
async fn an_agent_obeys_its_coordinator_and_operators_never_another_node() {
    let p = pkis();
    let ours = p.ours.path();
    let transport = ChannelTransport::with_mtu(65_507);
    let ip: std::net::IpAddr = "127.0.4.1".parse().unwrap();
    let gossip = SocketAddr::new(ip, triad_proto::ports::GOSSIP);
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = agent_config_for_test(1, &[gossip]);
    config.address = ip;
    config.gossip = GossipSettings {
        sampling_window: 100,
        ..GossipSettings::production(gossip)
    };
    config.grpc_listen = addr;
    let runtime = AgentRuntime::start(&config, 1, &transport, Box::new(FixedMetrics::default()))
        .await
        .unwrap();
    let service = AgentGrpc::new(runtime.state(), runtime.membership())
        .with_tls(true)
        .into_server();
    let tls = TlsReloader::new(files(ours, "n1")).unwrap();
    let _server = tokio::spawn(triad_daemon::tls::serve(
        tonic::transport::Server::builder().add_service(service),
        listener,
        Some(tls),
        std::future::pending(),
    ));

    // the coordinator, through the same client its loops use
    triad_coordinator::agent_client::set_tls(Some(files(ours, "coordinator")));
    let status = triad_coordinator::agent_client::connect(
        "n1",
        addr,
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    .unwrap()
    .status(v1::AgentStatusRequest {})
    .await;
    assert!(status.is_ok(), "{status:?}");
    // it refuses to talk to an agent that is not the node it meant
    let error = match triad_coordinator::agent_client::connect(
        "n2",
        addr,
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await
    {
        Err(error) => error.to_string(),
        Ok(mut client) => client
            .status(v1::AgentStatusRequest {})
            .await
            .map(|_| "answered".to_string())
            .unwrap_or_else(|s| s.message().to_string()),
    };
    eprintln!("[mtls] coordinator dialing n2 reaches n1: {error}");
    assert_ne!(error, "answered", "a node answered for another node's name");
    assert!(error.contains("n2"), "{error}");

    // another node may not command this one; an operator may
    let call = |name: &'static str| {
        let f = files(ours, name);
        async move {
            let config = f.client_config("n1").unwrap();
            let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
                .unwrap()
                .tls_config(config)
                .unwrap()
                .connect()
                .await
                .unwrap();
            AgentServiceClient::new(channel)
                .drain(v1::DrainRequest {
                    reason: format!("test by {name}"),
                })
                .await
        }
    };
    let denied = call("n2").await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("n2 (node)")
            && denied.message().contains("coordinator or operator"),
        "{}",
        denied.message()
    );
    // a viewer reads the coordinator's status only: an agent refuses it
    let denied = call("watcher").await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(
        denied.message().contains("watcher (viewer)"),
        "{}",
        denied.message()
    );
    assert!(
        !runtime.state().keys().draining,
        "the refused calls did nothing"
    );
    call("ops").await.expect("an operator may drain");
    assert!(runtime.state().keys().draining);
}

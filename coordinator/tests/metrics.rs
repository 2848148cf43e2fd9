//! The coordinator's `/metrics` endpoint, end to end: an agent gossips its certificate's
//! expiry (in memory), the coordinator observes it, and the real server on 127.0.0.1:<free>
//! answers the real `curl` with the coordinator's own certificate expiry (read from a
//! certificate made by `triad_daemon::pki`, its date checked with `openssl`) and the
//! node's, in the text format; 404 on another path, 405 on another method; a port already
//! taken is an error naming the address and `metrics.listen`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use triad_agent::metrics::FixedMetrics;
use triad_agent::runtime::AgentRuntime;
use triad_agent::testsuite::{agent_config_for_test, node_gossip_addr, wait_for};
use triad_coordinator::config::CoordinatorConfig;
use triad_coordinator::grpc::CoordinatorGrpc;
use triad_coordinator::metrics::{self, SnapshotSource};
use triad_coordinator::observer::Coordinator;
use triad_daemon::pki::{self, IssueRequest};
use triad_daemon::tls::{PeerRole, TlsFiles};

/// The expiry n1's agent gossips (`tls.not_after`).
const N1_NOT_AFTER: u64 = 1_900_000_000;

/// `curl -sS -i` (no proxy, bounded): the status line, headers and body as one text.
async fn curl(args: &[&str], url: &str) -> Result<String, String> {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "-i", "--noproxy", "*", "--max-time", "5"])
        .args(args)
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("cannot run curl: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "curl {args:?} {url}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|e| format!("curl output is not UTF-8: {e}"))
}

/// `promtool check metrics` (Debian's prometheus package) on `text`: it parses the text
/// format and lints names, help and types; any finding fails the test.
async fn promtool_check_metrics(text: &str) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; scripts/install-host-deps.sh does)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}\n{}{}\non:\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The status line of a `curl -i` answer.
fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default().trim()
}

/// The header named `name` (case-insensitive) of a `curl -i` answer.
fn header(answer: &str, name: &str) -> Option<String> {
    answer
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
}

/// The certificate's notAfter as Unix seconds, by `openssl` and GNU `date` (not by the
/// code under test).
fn not_after_by_openssl(cert: &Path) -> i64 {
    let output = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-enddate", "-in"])
        .arg(cert)
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "openssl: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let date = text
        .trim()
        .strip_prefix("notAfter=")
        .unwrap_or_else(|| panic!("openssl said {text:?}"));
    let output = std::process::Command::new("date")
        .args(["-u", "-d", date, "+%s"])
        .output()
        .expect("date runs");
    assert!(output.status.success(), "date -d {date:?}: {output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_show_the_coordinators_and_the_nodes_certificate_expiry() {
    // the coordinator's certificate, as `triadctl pki init` / `issue` make it
    let pki_dir = tempfile::tempdir().unwrap();
    pki::init(pki_dir.path(), "test", 30, false).unwrap();
    pki::issue(
        pki_dir.path(),
        &IssueRequest {
            name: "coordinator".into(),
            role: PeerRole::Coordinator,
            ips: vec!["127.0.0.1".parse().unwrap()],
            dns: vec![],
            days: 45,
            force: false,
        },
    )
    .unwrap();
    let files = TlsFiles {
        ca: pki_dir.path().join("ca.pem"),
        cert: pki_dir.path().join("coordinator.pem"),
        key: pki_dir.path().join("coordinator.key"),
    };
    let coordinator_not_after = not_after_by_openssl(&files.cert);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (44 * 86_400..=46 * 86_400).contains(&(coordinator_not_after - now)),
        "openssl's notAfter {coordinator_not_after} is not 45 days ahead of {now}"
    );

    // n1's agent gossips its certificate's expiry; the coordinator observes, in memory
    let transport = ChannelTransport::with_mtu(65_507);
    let seed = node_gossip_addr(1);
    let agent = AgentRuntime::start(
        &agent_config_for_test(1, &[seed]),
        1,
        &transport,
        Box::new(FixedMetrics::default()),
    )
    .await
    .unwrap();
    agent
        .state()
        .update(|keys| keys.tls_not_after = Some(N1_NOT_AFTER));
    let text = format!(
        "[tls]\ninsecure = true\n[cluster]\nname = \"test\"\nseeds = [\"{seed}\"]\n\
         [gossip]\nlisten = \"127.0.1.100:7420\"\n"
    );
    let mut config = CoordinatorConfig::parse(Path::new("test.toml"), &text).unwrap();
    config.gossip.sampling_window = 100;
    let coordinator = Arc::new(Coordinator::start(&config, 1, &transport).await.unwrap());
    let service = CoordinatorGrpc::new(coordinator.clone()).with_tls(Some(files.clone()));
    let source: SnapshotSource = Arc::new(move || service.metrics_snapshot());

    // the real server, on a port the system picks
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = metrics::serve(listener, source.clone()).unwrap();
    let addr = server.local_addr();
    let url = format!("http://{addr}/metrics");

    let node_line = format!(
        "triad_tls_certificate_expiry_timestamp_seconds{{holder=\"n1\",role=\"node\"}} {N1_NOT_AFTER}\n"
    );
    let answer = wait_for(
        "n1's certificate expiry and readiness in /metrics",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            let answer = curl(&[], &url).await?;
            if answer.contains(&node_line) && answer.contains("\ntriad_node_ready{node=\"n1\"} 1\n")
            {
                Ok(answer)
            } else {
                Err(answer)
            }
        },
    )
    .await
    .unwrap();
    eprintln!("[metrics] GET /metrics:\n{answer}");
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert_eq!(
        header(&answer, "content-type").as_deref(),
        Some(metrics::TEXT_CONTENT_TYPE),
        "{answer}"
    );
    // Prometheus's own checker reads the text format and finds nothing to lint
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    promtool_check_metrics(body).await;
    // what Prometheus asks for: OpenMetrics
    let openmetrics = curl(
        &[
            "-H",
            "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        ],
        &url,
    )
    .await
    .unwrap();
    assert_eq!(
        header(&openmetrics, "content-type").as_deref(),
        Some(metrics::CONTENT_TYPE),
        "{openmetrics}"
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    // (samples of one family come in no fixed order)
    let coordinator_line = format!(
        "\ntriad_tls_certificate_expiry_timestamp_seconds{{holder=\"coordinator\",role=\"coordinator\"}} {coordinator_not_after}\n"
    );
    assert!(
        answer.contains("\n# TYPE triad_tls_certificate_expiry_timestamp_seconds gauge\n"),
        "{answer}"
    );
    assert!(answer.contains(&coordinator_line), "{answer}");
    assert!(answer.contains("\ntriad_tls_plaintext 0\n"), "{answer}");
    assert!(
        answer.contains("# HELP triad_tls_certificate_expiry_timestamp_seconds "),
        "{answer}"
    );

    // another path, another method
    let answer = curl(&[], &format!("http://{addr}/")).await.unwrap();
    assert_eq!(status_line(&answer), "HTTP/1.1 404 Not Found", "{answer}");
    let answer = curl(&[], &format!("http://{addr}/metrics/x"))
        .await
        .unwrap();
    assert_eq!(status_line(&answer), "HTTP/1.1 404 Not Found", "{answer}");
    let answer = curl(&["-X", "POST"], &url).await.unwrap();
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 405 Method Not Allowed",
        "{answer}"
    );
    assert!(
        header(&answer, "allow").is_some_and(|a| a.contains("GET")),
        "{answer}"
    );

    // the port is taken: an error naming the address and the key, for the binary to log
    let error = metrics::start(addr, source.clone())
        .await
        .expect_err("a second server on a bound port")
        .to_string();
    eprintln!("[metrics] second bind: {error}");
    assert!(
        error.contains(&addr.to_string()) && error.contains("metrics.listen"),
        "{error}"
    );

    // stopped: the port no longer answers
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("the metrics server stops within 5 s");
    let refused = curl(&[], &url).await;
    assert!(refused.is_err(), "answered after stop: {refused:?}");

    drop(agent);
    if let Ok(coordinator) = Arc::try_unwrap(coordinator) {
        coordinator.stop().await;
    }
}

/// Plaintext gRPC shows as `triad_tls_plaintext 1` and no coordinator certificate series.
#[tokio::test]
async fn plaintext_shows_and_no_certificate_is_invented() {
    let transport = ChannelTransport::with_mtu(65_507);
    let text = "[tls]\ninsecure = true\n[cluster]\nname = \"test\"\nseeds = [\"127.0.1.1:7420\"]\n[gossip]\nlisten = \"127.0.1.100:7420\"\n";
    let config = CoordinatorConfig::parse(Path::new("test.toml"), text).unwrap();
    let coordinator = Arc::new(Coordinator::start(&config, 1, &transport).await.unwrap());
    let service = CoordinatorGrpc::new(coordinator.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let server = metrics::serve(listener, Arc::new(move || service.metrics_snapshot())).unwrap();
    let answer = curl(&[], &format!("http://{}/metrics", server.local_addr()))
        .await
        .unwrap();
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(answer.contains("\ntriad_tls_plaintext 1\n"), "{answer}");
    assert!(
        !answer.contains("triad_tls_certificate_expiry_timestamp_seconds"),
        "{answer}"
    );
    server.stop().await;
}

/// Every family the coordinator can show, in both formats, passes promtool's lint (the
/// end-to-end test above shows only what a bare cluster has).
#[tokio::test]
async fn every_family_passes_promtool() {
    promtool_check_metrics(&rich_text()).await;
}

/// Every family the coordinator can show, in the text format.
fn rich_text() -> String {
    use std::collections::BTreeMap;
    use triad_coordinator::metrics::*;
    use triad_coordinator::recovery::FinishedDecision;
    let snapshot = Snapshot {
        cluster: "lab".into(),
        version: "0.1.0".into(),
        certificates: vec![CertificateExpiry {
            holder: "n1".into(),
            role: CertificateRole::Node,
            not_after: 1_790_000_000,
        }],
        nodes: vec![NodeSample {
            node: "n1".into(),
            live: true,
            ready: true,
            services: vec![("galera", "synced")],
            galera: triad_proto::gossip::GaleraKeys {
                cluster_status: Some("Primary".into()),
                size: Some(3),
                flow_control_paused_ns: Some(5),
                recv_queue: Some(0),
                cert_failures: Some(1),
                ..Default::default()
            },
            ..Default::default()
        }],
        balancer: Some(BalancerSample::default()),
        galera: Some(GaleraSample {
            last_epoch: 2,
            open: Some(("n1".into(), "joining")),
            open_secs: Some(1.5),
            last_decision: Some(FinishedDecision {
                epoch: 1,
                bootstrapping_secs: Some(2.0),
                joining_secs: 3.0,
                total_secs: 5.0,
            }),
        }),
        volume: Some(VolumeSample {
            state: "steady",
            bricks: vec![("10.0.0.1:/b".into(), true, Some(0))],
            split_brain: vec![("10.0.0.1:/b".into(), 0)],
        }),
        autoscale: Some(AutoscaleSample {
            rate: Some(1.5),
            ready: 3,
            recommended: Some(3),
            steps: BTreeMap::from([("warming", 1)]),
        }),
        events: Some(BTreeMap::from([("operator".to_string(), 2)])),
        backup: Some(BackupSample {
            last: Some((1_790_000_000.0, 1 << 30, 300 << 20, 95.5)),
            warning: false,
            running: true,
        }),
        ..Default::default()
    };
    openmetrics_to_text(&render(&snapshot))
}

/// The shipped alert rules (packaging/prometheus/triad-alerts.yml): promtool finds them
/// valid and their unit tests (triad-alerts.test.yml) pass, and every metric they read is
/// one the coordinator renders (a renamed family would leave a rule that never fires).
#[tokio::test]
async fn the_shipped_alert_rules_pass_promtool_and_read_rendered_families() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus");
    for args in [
        ["check", "rules", "triad-alerts.yml"],
        ["test", "rules", "triad-alerts.test.yml"],
    ] {
        let output = tokio::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .await
            .expect("promtool (apt-get install prometheus)");
        assert!(
            output.status.success(),
            "promtool {args:?}: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let rules = std::fs::read_to_string(dir.join("triad-alerts.yml")).unwrap();
    let rendered = rich_text();
    let mut read = std::collections::BTreeSet::new();
    for line in rules
        .lines()
        .filter(|l| l.trim_start().starts_with("expr:"))
    {
        let mut rest = line;
        while let Some(at) = rest.find("triad_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            read.insert(name);
        }
    }
    assert!(read.len() >= 10, "{read:?}");
    for name in &read {
        assert!(
            rendered.contains(&format!("\n{name}{{")) || rendered.contains(&format!("\n{name} ")),
            "the rules read {name}, which /metrics does not show:\n{rendered}"
        );
    }
}

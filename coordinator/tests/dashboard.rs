//! The dashboard over real HTTPS on loopback with a real cluster PKI: who may read it
//! (viewer and operator certificates, a session from a login link; not node certificates,
//! not anonymous callers), and that an open page is pushed a node's crash at once.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use triad_coordinator::dashboard::{self, Sources};
use triad_coordinator::http_server::HttpServer;
use triad_coordinator::view::ClusterEvent;
use triad_daemon::pki::{self, IssueRequest};
use triad_daemon::tls::{PeerRole, TlsFiles, TlsReloader, COORDINATOR_SERVER_NAME};
use triad_proto::v1;

fn issue(dir: &Path, name: &str, role: PeerRole) {
    pki::issue(
        dir,
        &IssueRequest {
            name: name.into(),
            role,
            ips: vec!["127.0.0.1".parse().unwrap()],
            dns: vec![],
            days: 30,
            force: true,
        },
    )
    .unwrap_or_else(|e| panic!("issue {name}: {e}"));
}

fn node(id: &str, live: bool) -> v1::NodeView {
    v1::NodeView {
        node_id: id.into(),
        live,
        ready: live,
        heartbeat_age_ms: Some(100),
        ..Default::default()
    }
}

struct Fixture {
    pki: tempfile::TempDir,
    server: HttpServer,
    nodes: Arc<Mutex<Vec<v1::NodeView>>>,
    changes: broadcast::Sender<ClusterEvent>,
}

async fn fixture() -> Fixture {
    let pki = tempfile::tempdir().unwrap();
    pki::init(pki.path(), "test", 30, false).unwrap();
    issue(pki.path(), "coordinator", PeerRole::Coordinator);
    issue(pki.path(), "watcher", PeerRole::Viewer);
    issue(pki.path(), "ops", PeerRole::Operator);
    issue(pki.path(), "n1", PeerRole::Node);
    let tls = TlsReloader::new(TlsFiles {
        ca: pki.path().join("ca.pem"),
        cert: pki.path().join("coordinator.pem"),
        key: pki.path().join("coordinator.key"),
    })
    .unwrap();
    let nodes = Arc::new(Mutex::new(vec![node("n1", true), node("n2", true)]));
    let (changes, _) = broadcast::channel(16);
    let sources = Sources {
        status: {
            let nodes = nodes.clone();
            Arc::new(move || v1::ClusterStatus {
                cluster_name: "test".into(),
                nodes: nodes.lock().unwrap().clone(),
                ..Default::default()
            })
        },
        view_changes: {
            let changes = changes.clone();
            Arc::new(move || changes.subscribe())
        },
        events: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = dashboard::serve(listener, tls, sources).unwrap();
    Fixture {
        pki,
        server,
        nodes,
        changes,
    }
}

impl Fixture {
    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn url(&self, path: &str) -> String {
        format!(
            "https://{COORDINATOR_SERVER_NAME}:{}{path}",
            self.addr().port()
        )
    }

    /// A client that trusts the cluster CA, with `name`'s certificate if given.
    fn client(&self, name: Option<&str>) -> reqwest::Client {
        let ca = std::fs::read(self.pki.path().join("ca.pem")).unwrap();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .resolve(COORDINATOR_SERVER_NAME, self.addr())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        if let Some(name) = name {
            let mut pem = std::fs::read(self.pki.path().join(format!("{name}.pem"))).unwrap();
            pem.extend(std::fs::read(self.pki.path().join(format!("{name}.key"))).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }
}

#[tokio::test]
async fn viewer_and_operator_certificates_read_the_page_and_its_model() {
    let f = fixture().await;
    for name in ["watcher", "ops"] {
        let client = f.client(Some(name));
        let page = client.get(f.url("/")).send().await.unwrap();
        assert_eq!(page.status(), 200, "{name}");
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("/app.js") && !html.contains("http://") && !html.contains("https://"),
            "no outside URL: {html}"
        );
        let model: serde_json::Value = client
            .get(f.url("/api/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(model["health"], "ok", "{model}");
        assert_eq!(model["nodes"][1]["id"], "n2");
    }
    f.server.stop().await;
}

#[tokio::test]
async fn no_certificate_is_401_and_a_node_certificate_403_with_why() {
    let f = fixture().await;
    for path in ["/", "/api/status", "/api/stream"] {
        let anonymous = f.client(None).get(f.url(path)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        let body = anonymous.text().await.unwrap();
        assert!(body.contains("triadctl dashboard url"), "{path}: {body}");

        let node = f.client(Some("n1")).get(f.url(path)).send().await.unwrap();
        assert_eq!(node.status(), 403, "{path}");
        let body = node.text().await.unwrap();
        assert!(
            body.contains("n1 (node) may not read the dashboard"),
            "{path}: {body}"
        );
    }
    // the assets hold no data: a refusal page uses the stylesheet
    let css = f
        .client(None)
        .get(f.url("/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    // no link for callers without a viewer or operator certificate
    for name in [None, Some("n1")] {
        let link = f
            .client(name)
            .post(f.url("/login-link"))
            .send()
            .await
            .unwrap();
        assert!(matches!(link.status().as_u16(), 401 | 403), "{name:?}");
    }
    f.server.stop().await;
}

#[tokio::test]
async fn login_link_works_once_and_gives_a_session_cookie() {
    let f = fixture().await;
    let link = f
        .client(Some("watcher"))
        .post(f.url("/login-link"))
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), 200);
    let url = link.text().await.unwrap().trim().to_string();
    assert!(
        url.starts_with(&f.url("/login?token=")),
        "the link names the host asked: {url}"
    );
    let browser = f.client(None);
    let login = browser.get(&url).send().await.unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/");
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_string();

    let again = browser.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 401, "a link works once");

    let page = browser
        .get(f.url("/api/status"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the session reads");
    let forged = browser
        .get(f.url("/api/status"))
        .header("cookie", "triad_dashboard=00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let extend = browser
        .post(f.url("/login-link"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(extend.status(), 401, "a session mints no links");
    f.server.stop().await;
}

/// Reads server-sent events' `data:` lines from a response body.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn next_model(&mut self, within: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no model pushed within {within:?}"))
                .unwrap()
                .expect("stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn an_open_page_is_pushed_a_crash_at_once() {
    let f = fixture().await;
    let response = f
        .client(Some("watcher"))
        .get(f.url("/api/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut stream = SseReader {
        response,
        buffer: String::new(),
    };
    let first = stream.next_model(Duration::from_secs(5)).await;
    assert_eq!(first["nodes"][1]["state"], "up");

    f.nodes.lock().unwrap()[1].live = false;
    let sent = std::time::Instant::now();
    f.changes
        .send(ClusterEvent::Remove(test_member("n2")))
        .unwrap();
    let pushed = stream.next_model(Duration::from_millis(500)).await;
    assert_eq!(pushed["nodes"][1]["state"], "down", "{pushed}");
    assert_eq!(pushed["nodes"][1]["tone"], "bad");
    assert!(sent.elapsed() < Duration::from_millis(500));
    // stopping ends the open stream rather than waiting out the 2 s bound
    let stopping = std::time::Instant::now();
    f.server.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        stopping.elapsed()
    );
    let end = tokio::time::timeout(Duration::from_secs(2), stream.response.chunk()).await;
    assert!(
        matches!(end, Ok(Ok(None)) | Ok(Err(_))),
        "the stream ends with the server"
    );
}

/// A member for a change event (the stream reads the status, not the event's content).
fn test_member(id: &str) -> triad_coordinator::view::MemberView {
    triad_coordinator::view::MemberView {
        node_id: id.into(),
        generation: 1,
        gossip_addr: "127.0.0.1:7420".parse().unwrap(),
        live: false,
        keys: triad_proto::gossip::NodeKeys::initial(
            triad_proto::gossip::Role::Core,
            "127.0.0.1:7421".parse().unwrap(),
            "0.1.0",
        ),
        decode_errors: vec![],
        heartbeat_seen_at: None,
    }
}

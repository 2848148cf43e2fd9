//! The Nova autoscaling provider against the in-process OpenStack fake
//! (tests/openstack-fake, HTTP on 127.0.0.1:0): a launch creates one tagged server in a
//! soft-anti-affinity group (created once) with the rendered cloud-init user data and is
//! pending until ACTIVE; ERROR and hung builds are deleted and launched again; transient
//! failures leave nothing behind; servers without our tags are never listed or deleted;
//! the scaler's sweep deletes a stray server of ours, and every one of them past a page of
//! Nova's list. What the provider created is read back with the real `openstack` CLI.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;
use triad_coordinator::autoscale::config::ProviderSettings;
use triad_coordinator::autoscale::nova::{NovaProvider, NovaSettings};
use triad_coordinator::autoscale::provider::{Launch, Provider};
use triad_coordinator::config::CoordinatorConfig;
use triad_coordinator::openstack::config::{load_cloud, CloudSources};
use triad_coordinator::openstack::nova::Nova;
use triad_coordinator::openstack::session::Session;
use triad_coordinator::runner::Now;
use triad_openstack_fake::{BuildOutcome, FakeCloud, FakeOptions, Fault, FaultKind};

const BOUND: Duration = Duration::from_secs(20);

struct Cloud {
    fake: FakeCloud,
    _dir: tempfile::TempDir,
    provider: NovaProvider,
}

/// The coordinator's config with a `[autoscale.nova]` section (`extra` appended to it).
fn settings(extra: &str) -> NovaSettings {
    settings_with(extra, "[tls]\ninsecure = true\n")
}

/// [`settings`] with more top-level config (`head`, e.g. a `[tls]` section).
fn settings_with(extra: &str, head: &str) -> NovaSettings {
    let text = format!(
        "{head}[cluster]\nname = \"lab\"\nseeds = [\"10.0.0.11:7420\", \"10.0.0.12:7420\"]\n\
         [gossip]\nlisten = \"10.0.0.9:7420\"\n\
         [volume]\nnodes = [\"n1\", \"n2\"]\n\
         [autoscale]\nprovider = \"nova\"\nname_prefix = \"web-\"\n\
         [autoscale.nova]\ncloud = \"fake\"\nimage = \"img-debian-12\"\nflavor = \"m1.small\"\n\
         networks = [\"private\"]\nkey_name = \"ops\"\n\
         apt_source = \"deb [trusted=yes] http://10.0.0.2/triad ./\"\n{extra}"
    );
    let config = CoordinatorConfig::parse(std::path::Path::new("coordinator.toml"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    match config.autoscale.expect("[autoscale]").provider {
        ProviderSettings::Nova(nova) => *nova,
        other => panic!("not nova: {other:?}"),
    }
}

async fn cloud(options: FakeOptions, extra: &str) -> Cloud {
    let fake = FakeCloud::start(options).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(&file, fake.clouds_yaml("fake")).unwrap();
    let sources = CloudSources::file(&file);
    let config = load_cloud(&sources, Some("fake")).expect("cloud loads");
    let session = Session::new(config, Duration::from_secs(2)).unwrap();
    let provider = NovaProvider::new(Nova::new(Arc::new(session)), settings(extra));
    Cloud {
        fake,
        _dir: dir,
        provider,
    }
}

/// Launch `name` until it is done (or fails), bounded.
async fn launch_until_done(provider: &NovaProvider, name: &str) -> Vec<Launch> {
    let deadline = Instant::now() + BOUND;
    let mut seen = Vec::new();
    loop {
        let outcome = provider
            .launch(name, "web")
            .await
            .unwrap_or_else(|e| panic!("launch {name}: {e}"));
        seen.push(outcome.clone());
        if outcome == Launch::Done {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{name} not ACTIVE within {BOUND:?} ({} rounds; last: {:?})",
            seen.len(),
            &seen[seen.len().saturating_sub(3)..]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn servers_named(fake: &FakeCloud, name: &str) -> Vec<Value> {
    fake.servers()
        .into_iter()
        .filter(|s| s["name"] == name)
        .collect()
}

#[tokio::test]
async fn a_launch_creates_one_tagged_server_in_an_anti_affinity_group_with_user_data() {
    let c = cloud(FakeOptions::default(), "").await;
    let seen = launch_until_done(&c.provider, "web-1").await;
    assert!(
        matches!(seen[0], Launch::Pending(ref how) if how.contains("created")),
        "{seen:?}"
    );
    assert_eq!(c.fake.successful(&Method::POST, "/servers"), 1);
    let servers = servers_named(&c.fake, "web-1");
    assert_eq!(servers.len(), 1);
    let server = &servers[0];
    assert_eq!(server["status"], "ACTIVE");
    assert_eq!(
        server["tags"],
        serde_json::json!(["triad", "triad-cluster=lab"])
    );
    assert_eq!(server["metadata"]["triad-node"], "web-1");
    assert_eq!(server["metadata"]["triad-role"], "web");
    assert_eq!(server["key_name"], "ops");
    let groups = c.fake.server_groups();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["name"], "triad-lab-web");
    assert_eq!(groups[0]["policy"], "soft-anti-affinity");
    assert_eq!(groups[0]["members"], serde_json::json!([server["id"]]));
    let user_data =
        String::from_utf8(c.fake.user_data(server["id"].as_str().unwrap()).unwrap()).unwrap();
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    let parsed: yaml_serde::Value = yaml_serde::from_str(&user_data).unwrap();
    assert_eq!(parsed["hostname"].as_str(), Some("web-1"));
    let agent = parsed["write_files"][0]["content"].as_str().unwrap();
    assert!(
        agent.contains("id = \"web-1\"")
            && agent.contains("role = \"web\"")
            && agent.contains("name = \"lab\"")
            && agent.contains("\"10.0.0.11:7420\"")
            && agent.contains("volume = \"www\""),
        "{agent}"
    );
    assert_eq!(
        parsed["apt"]["sources"]["triad"]["source"].as_str(),
        Some("deb [trusted=yes] http://10.0.0.2/triad ./")
    );

    // launching again (a coordinator restarted mid-launch) creates nothing new; a second
    // node reuses the group
    assert_eq!(
        c.provider.launch("web-1", "web").await.unwrap(),
        Launch::Done
    );
    launch_until_done(&c.provider, "web-2").await;
    assert_eq!(c.fake.successful(&Method::POST, "/servers"), 2);
    assert_eq!(c.fake.successful(&Method::POST, "/os-server-groups"), 1);
    assert_eq!(
        c.provider.list().await.unwrap(),
        Some(vec!["web-1".to_string(), "web-2".to_string()])
    );

    c.provider.delete("web-1").await.unwrap();
    assert!(servers_named(&c.fake, "web-1").is_empty());
    c.provider
        .delete("web-1")
        .await
        .expect("already gone is done");
}

#[tokio::test]
async fn an_error_build_is_deleted_and_launched_again() {
    let c = cloud(FakeOptions::default(), "").await;
    c.fake.fail_next_build(BuildOutcome::Error(
        "No valid host was found. There are not enough hosts available.".into(),
    ));
    assert!(matches!(
        c.provider.launch("web-1", "web").await.unwrap(),
        Launch::Pending(_)
    ));
    let error = c
        .provider
        .launch("web-1", "web")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ERROR") && error.contains("No valid host was found"),
        "{error}"
    );
    assert!(
        servers_named(&c.fake, "web-1").is_empty(),
        "the ERROR server is deleted"
    );
    launch_until_done(&c.provider, "web-1").await;
    assert_eq!(c.fake.successful(&Method::POST, "/servers"), 2);
    assert_eq!(servers_named(&c.fake, "web-1").len(), 1);
}

#[tokio::test]
async fn a_hung_build_is_deleted_after_the_boot_timeout() {
    let c = cloud(FakeOptions::default(), "boot_timeout = \"300ms\"\n").await;
    c.fake.fail_next_build(BuildOutcome::Stall);
    let deadline = Instant::now() + BOUND;
    let error = loop {
        match c.provider.launch("web-1", "web").await {
            Ok(Launch::Pending(how)) => {
                assert!(how.contains("created") || how.contains("BUILD"), "{how}")
            }
            Ok(Launch::Done) => panic!("a stalled build became ACTIVE"),
            Err(error) => break error.to_string(),
        }
        assert!(Instant::now() < deadline, "no timeout within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        error.contains("still BUILD") && error.contains("boot_timeout"),
        "{error}"
    );
    assert!(servers_named(&c.fake, "web-1").is_empty());
}

#[tokio::test]
async fn transient_failures_leave_no_server_behind() {
    let c = cloud(FakeOptions::default(), "").await;
    c.fake.inject(Fault {
        method: Some(Method::POST),
        path_contains: "/compute/v2.1/servers".into(),
        kind: FaultKind::Status(503),
        times: 1,
    });
    let error = c
        .provider
        .launch("web-1", "web")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("create server web-1") && error.contains("503"),
        "{error}"
    );
    assert!(c.fake.servers().is_empty());
    c.fake.inject(Fault {
        method: Some(Method::GET),
        path_contains: "/servers/detail".into(),
        kind: FaultKind::Delay(Duration::from_secs(4)),
        times: 1,
    });
    let error = c
        .provider
        .launch("web-1", "web")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("find server web-1"), "{error}");
    assert!(c.fake.servers().is_empty(), "nothing created blind");
    launch_until_done(&c.provider, "web-1").await;
    assert_eq!(servers_named(&c.fake, "web-1").len(), 1);
}

#[tokio::test]
async fn servers_without_our_tags_are_never_listed_or_deleted() {
    let c = cloud(FakeOptions::default(), "").await;
    let foreign = c.fake.add_server("web-1", &[]);
    let other_cluster = c
        .fake
        .add_server("web-2", &["triad", "triad-cluster=other"]);
    let stray = c.fake.add_server("web-3", &["triad", "triad-cluster=lab"]);
    assert_eq!(
        c.provider.list().await.unwrap(),
        Some(vec!["web-3".to_string()])
    );
    c.provider.delete("web-1").await.unwrap();
    c.provider.delete("web-2").await.unwrap();
    let ids: Vec<Value> = c.fake.servers().iter().map(|s| s["id"].clone()).collect();
    assert!(
        ids.contains(&Value::from(foreign.clone())) && ids.contains(&Value::from(other_cluster))
    );
    // a launch of web-1 makes our own server beside the foreign one
    launch_until_done(&c.provider, "web-1").await;
    assert_eq!(servers_named(&c.fake, "web-1").len(), 2);
    c.provider.delete("web-1").await.unwrap();
    let left = servers_named(&c.fake, "web-1");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], Value::from(foreign));
    c.provider.delete("web-3").await.unwrap();
    assert!(!c.fake.servers().iter().any(|s| s["id"] == stray.as_str()));
}

struct NoCalls;

#[async_trait::async_trait]
impl triad_coordinator::autoscale::scaler::NodeCalls for NoCalls {
    async fn drain(
        &self,
        node: &str,
        _: std::net::SocketAddr,
    ) -> Result<(), triad_coordinator::agent_client::AgentError> {
        panic!("drain {node}")
    }
    async fn leave(
        &self,
        node: &str,
        _: std::net::SocketAddr,
    ) -> Result<(), triad_coordinator::agent_client::AgentError> {
        panic!("leave {node}")
    }
}

/// A scaler over `c`'s cloud (its state file in `dir`) with a 200 ms ready timeout.
fn scaler(c: &Cloud, dir: &std::path::Path) -> triad_coordinator::autoscale::scaler::Scaler {
    use triad_coordinator::autoscale::scaler::{FlowSettings, Scaler};
    let provider: Arc<dyn Provider> = Arc::new(NovaProvider::new(
        Nova::new(Arc::new(
            Session::new(
                load_cloud(
                    &CloudSources::file(&c._dir.path().join("clouds.yaml")),
                    Some("fake"),
                )
                .unwrap(),
                Duration::from_secs(2),
            )
            .unwrap(),
        )),
        settings(""),
    ));
    Scaler::load(
        FlowSettings {
            name_prefix: "web-".into(),
            reserved: vec!["n1".into(), "n2".into()],
            role: "web".into(),
            ready_timeout: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(60),
            state_file: dir.join("autoscale.json"),
        },
        provider,
        Arc::new(NoCalls),
    )
    .unwrap()
}

#[tokio::test]
async fn the_sweep_deletes_a_stray_server_of_ours() {
    let c = cloud(FakeOptions::default(), "").await;
    let dir = tempfile::tempdir().unwrap();
    let mut scaler = scaler(&c, dir.path());
    c.fake.add_server("web-5", &["triad", "triad-cluster=lab"]);
    let facts = BTreeMap::new();
    let now = Now::current();
    scaler.advance(now, &facts, None).await;
    assert_eq!(
        servers_named(&c.fake, "web-5").len(),
        1,
        "not before the ready timeout"
    );
    scaler
        .advance(now.later(Duration::from_millis(250)), &facts, None)
        .await;
    assert!(
        servers_named(&c.fake, "web-5").is_empty(),
        "a server of ours that never served is deleted after the ready timeout"
    );
}

/// With Nova answering two servers a page, the sweep still sees (and deletes) every
/// stray of ours, and none of the others.
#[tokio::test]
async fn the_sweep_sees_every_server_past_a_page() {
    let c = cloud(
        FakeOptions {
            page_size: 2,
            ..FakeOptions::default()
        },
        "",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut scaler = scaler(&c, dir.path());
    let mut foreign = Vec::new();
    for i in 3..=7 {
        c.fake
            .add_server(&format!("web-{i}"), &["triad", "triad-cluster=lab"]);
        foreign.push(c.fake.add_server(&format!("web-{i}"), &["triad"]));
    }
    let facts = BTreeMap::new();
    let now = Now::current();
    scaler.advance(now, &facts, None).await;
    assert_eq!(c.fake.servers().len(), 10, "not before the ready timeout");
    scaler
        .advance(now.later(Duration::from_millis(250)), &facts, None)
        .await;
    let left: Vec<String> = c
        .fake
        .servers()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        left, foreign,
        "all five strays of ours deleted, nothing else"
    );
    assert!(
        c.fake
            .log()
            .iter()
            .any(|l| l.path.contains("/servers/detail") && l.path.contains("marker=")),
        "the listing paged"
    );
}

/// The real `openstack` CLI reads back what the provider created: the server with its
/// tags and metadata, in the server group with its policy.
#[tokio::test]
async fn the_openstack_cli_sees_what_the_provider_created() {
    use triad_openstack_fake::cli::openstack_json;
    let c = cloud(FakeOptions::default(), "").await;
    launch_until_done(&c.provider, "web-1").await;
    let servers = openstack_json(
        &c.fake,
        &[
            "--os-compute-api-version",
            "2.64",
            "server",
            "list",
            "--tags",
            "triad-cluster=lab",
            "--long",
        ],
    )
    .await;
    assert_eq!(servers.as_array().map(Vec::len), Some(1), "{servers}");
    assert_eq!(servers[0]["Name"], "web-1", "{servers}");
    assert_eq!(servers[0]["Status"], "ACTIVE", "{servers}");
    let groups = openstack_json(
        &c.fake,
        &[
            "--os-compute-api-version",
            "2.64",
            "server",
            "group",
            "list",
            "--long",
        ],
    )
    .await;
    assert_eq!(groups[0]["Name"], "triad-lab-web", "{groups}");
    assert_eq!(groups[0]["Policy"], "soft-anti-affinity", "{groups}");
    let show = openstack_json(
        &c.fake,
        &[
            "--os-compute-api-version",
            "2.64",
            "server",
            "show",
            "web-1",
        ],
    )
    .await;
    let tags = show["tags"].to_string();
    assert!(tags.contains("triad-cluster=lab"), "{show}");
    let user_data = c
        .fake
        .user_data(show["id"].as_str().unwrap())
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b));
    assert!(user_data.is_some());
}

/// With mutual TLS, each new node's user data carries the cluster CA, a certificate issued
/// for it (its name is the node id the coordinator will check) and its key (0600); its
/// agent config points [tls] at them.
#[tokio::test]
async fn with_tls_the_user_data_carries_a_certificate_issued_for_the_node() {
    let pki = tempfile::tempdir().unwrap();
    triad_daemon::pki::init(pki.path(), "lab", 30, false).unwrap();
    let head = format!(
        "[tls]\nca = \"{d}/ca.pem\"\ncert = \"{d}/coordinator.pem\"\nkey = \"{d}/coordinator.key\"\n",
        d = pki.path().display()
    );
    let settings = settings_with("", &head);
    assert_eq!(settings.pki_dir.as_deref(), Some(pki.path()));
    let encoded = settings.user_data("web-4").unwrap();
    let text = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap(),
    )
    .unwrap();
    let parsed: yaml_serde::Value = yaml_serde::from_str(&text).unwrap();
    let files = parsed["write_files"].as_sequence().unwrap();
    let path = |i: usize| files[i]["path"].as_str().unwrap().to_string();
    assert_eq!(
        (0..files.len()).map(path).collect::<Vec<_>>(),
        vec![
            "/etc/triad/agent.toml",
            "/etc/triad/pki/ca.pem",
            "/etc/triad/pki/web-4.pem",
            "/etc/triad/pki/web-4.key"
        ]
    );
    assert_eq!(files[3]["permissions"].as_str(), Some("0600"));
    let agent = files[0]["content"].as_str().unwrap();
    assert!(
        agent.contains("[tls]") && agent.contains("cert = \"/etc/triad/pki/web-4.pem\""),
        "{agent}"
    );
    let der = rustls_pemfile_first(files[2]["content"].as_str().unwrap());
    let identity = triad_daemon::tls::identity_of(&der).unwrap();
    assert_eq!(
        (identity.name.as_str(), identity.role),
        ("web-4", triad_daemon::tls::PeerRole::Node)
    );
    // without the CA key the provider cannot issue: a config error naming the file
    std::fs::remove_file(pki.path().join("ca.key")).unwrap();
    let text = format!(
        "{head}[cluster]\nname = \"lab\"\nseeds = [\"10.0.0.11:7420\"]\n[gossip]\nlisten = \"10.0.0.9:7420\"\n\
         [autoscale]\nprovider = \"nova\"\n[autoscale.nova]\nimage = \"i\"\nflavor = \"f\"\nnetworks = [\"n\"]\n\
         package_url = \"http://x/y.deb\"\n"
    );
    let error = CoordinatorConfig::parse(std::path::Path::new("c.toml"), &text)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("autoscale.nova.pki_dir") && error.contains("ca.key"),
        "{error}"
    );
}

/// The DER of the first certificate in `pem`.
fn rustls_pemfile_first(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .expect("a certificate")
        .expect("PEM")
        .to_vec()
}

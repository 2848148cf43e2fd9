//! The fake's wire format, checked with the real `openstack` CLI (python-openstackclient
//! and python-octaviaclient from PyPI, in a venv cached at /var/tmp/triad-openstack-venv,
//! created when missing: `python3 -m venv` + `pip install`, about 30 s; needs Debian's
//! python3-venv, which scripts/install-host-deps.sh installs).
//!
//! The test creates a load balancer with a pool, its health monitor and members, and a
//! server through the HTTP API, then runs `openstack loadbalancer list`, `openstack
//! loadbalancer member list POOL`, `openstack loadbalancer healthmonitor show` and
//! `openstack server list` against the fake with a generated clouds.yaml
//! (OS_CLIENT_CONFIG_FILE) and checks that their output shows those objects.

use std::time::Duration;

use serde_json::{json, Value};
use triad_openstack_fake::cli::{openstack_cli, run};
use triad_openstack_fake::{FakeCloud, FakeOptions};

/// A minimal authenticated client for seeding the fake (raw HTTP, no Triad code).
struct Api {
    http: reqwest::Client,
    token: String,
    base: String,
}

impl Api {
    async fn login(fake: &FakeCloud) -> Api {
        let http = reqwest::Client::new();
        let base = format!("http://{}", fake.addr);
        let response = http
            .post(format!("{}/auth/tokens", fake.auth_url()))
            .json(
                &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "triad", "domain": {"name": "Default"}, "password": "correct-horse"}}},
                "scope": {"project": {"name": "web", "domain": {"name": "Default"}}}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let token = response.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_string();
        Api { http, token, base }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        microversion: Option<&str>,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-Auth-Token", &self.token);
        if let Some(version) = microversion {
            request = request.header("OpenStack-API-Version", format!("compute {version}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    /// Poll the load balancer until ACTIVE (the fake turns it ACTIVE after a few GETs).
    async fn wait_active(&self, lb: &str) {
        for _ in 0..50 {
            let body = self
                .call(
                    reqwest::Method::GET,
                    &format!("/load-balancer/v2/lbaas/loadbalancers/{lb}"),
                    None,
                    None,
                )
                .await;
            if body["loadbalancer"]["provisioning_status"] == "ACTIVE" {
                return;
            }
        }
        panic!("load balancer {lb} never became ACTIVE");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_openstack_cli_lists_what_the_fake_holds() {
    let openstack = openstack_cli().await;
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let api = Api::login(&fake).await;
    use reqwest::Method;
    let lb = api
        .call(Method::POST, "/load-balancer/v2/lbaas/loadbalancers", Some(json!({"loadbalancer": {"name": "web-lb", "vip_subnet_id": triad_openstack_fake::SUBNET_ID}})), None)
        .await["loadbalancer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_active(&lb).await;
    let listener = api
        .call(Method::POST, "/load-balancer/v2/lbaas/listeners", Some(json!({"listener": {"name": "web-http", "protocol": "HTTP", "protocol_port": 80, "loadbalancer_id": lb}})), None)
        .await["listener"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_active(&lb).await;
    let pool = api
        .call(Method::POST, "/load-balancer/v2/lbaas/pools", Some(json!({"pool": {"name": "web-pool", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "listener_id": listener, "session_persistence": {"type": "HTTP_COOKIE"}}})), None)
        .await["pool"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_active(&lb).await;
    let monitor = api
        .call(Method::POST, "/load-balancer/v2/lbaas/healthmonitors", Some(json!({"healthmonitor": {"name": "web-monitor", "pool_id": pool, "type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2, "url_path": "/status.php", "expected_codes": "200,302"}})), None)
        .await["healthmonitor"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    api.wait_active(&lb).await;
    api.call(
        Method::PUT,
        &format!("/load-balancer/v2/lbaas/pools/{pool}/members"),
        Some(json!({"members": [
            {"name": "n1", "address": "10.0.2.1", "protocol_port": 80},
            {"name": "n2", "address": "10.0.2.2", "protocol_port": 80, "weight": 0}]})),
        None,
    )
    .await;
    api.wait_active(&lb).await;
    let group = api
        .call(
            Method::POST,
            "/compute/v2.1/os-server-groups",
            Some(json!({"server_group": {"name": "web", "policy": "soft-anti-affinity"}})),
            Some("2.64"),
        )
        .await["server_group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let server = api.call(
        Method::POST,
        "/compute/v2.1/servers",
        Some(json!({"server": {"name": "web-7", "imageRef": "img-1", "flavorRef": "m1.small", "networks": "auto", "tags": ["triad:web"]},
                    "OS-SCH-HNT:scheduler_hints": {"group": group}})),
        Some("2.64"),
    )
    .await["server"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut status = Value::Null;
    for _ in 0..20 {
        status = api
            .call(
                Method::GET,
                &format!("/compute/v2.1/servers/{server}"),
                None,
                Some("2.64"),
            )
            .await["server"]["status"]
            .clone();
        if status == "ACTIVE" {
            break;
        }
    }
    assert_eq!(status, "ACTIVE", "server web-7 built");

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, fake.clouds_yaml("fake")).unwrap();
    let clouds_text = clouds.display().to_string();
    let env = [
        ("OS_CLIENT_CONFIG_FILE", clouds_text.as_str()),
        ("OS_CLOUD", "fake"),
        ("HOME", dir.path().to_str().unwrap()),
    ];
    let bound = Duration::from_secs(90);

    let (ok, stdout, stderr) = run(
        &openstack,
        &["loadbalancer", "list", "-f", "json"],
        &env,
        bound,
    )
    .await;
    assert!(ok, "openstack loadbalancer list failed: {stderr}");
    let lbs: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(lbs[0]["name"], "web-lb", "{stdout}");
    assert_eq!(lbs[0]["id"], json!(lb));
    assert_eq!(lbs[0]["provisioning_status"], "ACTIVE", "{stdout}");

    let (ok, stdout, stderr) = run(
        &openstack,
        &["loadbalancer", "member", "list", &pool, "-f", "json"],
        &env,
        bound,
    )
    .await;
    assert!(ok, "openstack loadbalancer member list failed: {stderr}");
    let members: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let mut seen: Vec<(String, String, i64)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["address"].as_str().unwrap().to_string(),
                m["weight"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("n1".into(), "10.0.2.1".into(), 1),
            ("n2".into(), "10.0.2.2".into(), 0)
        ],
        "{stdout}"
    );

    let (ok, stdout, stderr) = run(
        &openstack,
        &[
            "loadbalancer",
            "healthmonitor",
            "show",
            &monitor,
            "-f",
            "json",
        ],
        &env,
        bound,
    )
    .await;
    assert!(
        ok,
        "openstack loadbalancer healthmonitor show failed: {stderr}"
    );
    let shown: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(shown["url_path"], "/status.php", "{stdout}");
    assert_eq!(shown["expected_codes"], "200,302", "{stdout}");
    assert_eq!(shown["http_method"], "GET", "{stdout}");

    let (ok, stdout, stderr) =
        run(&openstack, &["server", "list", "-f", "json"], &env, bound).await;
    assert!(ok, "openstack server list failed: {stderr}");
    let servers: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(servers[0]["Name"], "web-7", "{stdout}");
    assert_eq!(servers[0]["Status"], "ACTIVE", "{stdout}");
}

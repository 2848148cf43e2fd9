//! Lists past one page and query strings, against the in-process OpenStack fake
//! (tests/openstack-fake, HTTP on 127.0.0.1:0) with a page size of 2: the Nova and Octavia
//! clients follow the `*_links` pages and see every object (the filters kept where
//! Octavia's next links drop them); the real `openstack` CLI sees them all through the
//! paginating fake too; names with spaces, `&`, `=`, `+` and `%` round-trip as query
//! values; a list whose next links never end is refused with an error naming the URL; and
//! the fake pages as the APIs do (limit, marker, the shape of each API's links).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use triad_coordinator::openstack::config::{load_cloud, CloudSources};
use triad_coordinator::openstack::nova::Nova;
use triad_coordinator::openstack::octavia::{MemberSpec, Octavia};
use triad_coordinator::openstack::session::{Session, MAX_PAGES};
use triad_coordinator::openstack::OpenStackError;
use triad_openstack_fake::cli::openstack_json;
use triad_openstack_fake::{FakeCloud, FakeOptions, FLAVORS, SUBNET_ID};

const PAGE: usize = 2;

struct Cloud {
    fake: FakeCloud,
    _dir: tempfile::TempDir,
    session: Arc<Session>,
}

async fn cloud() -> Cloud {
    let fake = FakeCloud::start(FakeOptions {
        page_size: PAGE,
        pending_polls: 1,
        ..FakeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(&file, fake.clouds_yaml("fake")).unwrap();
    let sources = CloudSources::file(&file);
    let config = load_cloud(&sources, Some("fake")).expect("cloud loads");
    let session = Arc::new(Session::new(config, Duration::from_secs(5)).unwrap());
    Cloud {
        fake,
        _dir: dir,
        session,
    }
}

const TAGS: [&str; 2] = ["triad", "triad-cluster=lab"];

fn tags() -> Vec<String> {
    TAGS.iter().map(|t| t.to_string()).collect()
}

/// A load balancer named `name`, polled until ACTIVE.
async fn active_lb(octavia: &Octavia, name: &str) -> String {
    let lb = octavia
        .create_load_balancer(json!({"name": name, "vip_subnet_id": SUBNET_ID}))
        .await
        .unwrap();
    wait_active(octavia, &lb.id).await;
    lb.id
}

async fn wait_active(octavia: &Octavia, lb: &str) {
    for _ in 0..20 {
        if octavia.load_balancer(lb).await.unwrap().provisioning_status == "ACTIVE" {
            return;
        }
    }
    panic!("load balancer {lb} never became ACTIVE");
}

/// A pool on a new load balancer with `count` members (10.0.2.1…), all ACTIVE.
async fn pool_with_members(octavia: &Octavia, count: u8) -> (String, Vec<MemberSpec>) {
    let lb = active_lb(octavia, "members-lb").await;
    let pool = octavia
        .create_pool(
            json!({"name": "web-pool", "loadbalancer_id": lb, "protocol": "HTTP",
                            "lb_algorithm": "ROUND_ROBIN"}),
        )
        .await
        .unwrap();
    wait_active(octavia, &lb).await;
    let specs: Vec<MemberSpec> = (1..=count)
        .map(|i| MemberSpec {
            address: format!("10.0.2.{i}"),
            protocol_port: 80,
            name: format!("n{i}"),
            weight: 1,
            admin_state_up: true,
            subnet_id: None,
            tags: vec![],
        })
        .collect();
    octavia.replace_members(&pool.id, &specs).await.unwrap();
    wait_active(octavia, &lb).await;
    (pool.id, specs)
}

#[tokio::test]
async fn octavia_lists_follow_every_page() {
    let c = cloud().await;
    let octavia = Octavia::new(c.session.clone());
    let (pool, specs) = pool_with_members(&octavia, 5).await;
    let mut names: Vec<String> = octavia
        .members(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    names.sort();
    let want: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, want, "every member, past the page of {PAGE}");

    // three of one name among five: a lookup by name sees all three (Octavia's next
    // links drop `name=`; the client keeps it) and refuses to pick one
    let mut duplicates = Vec::new();
    for name in ["dup", "other-1", "dup", "other-2", "dup"] {
        let id = active_lb(&octavia, name).await;
        if name == "dup" {
            duplicates.push(id);
        }
    }
    assert_eq!(octavia.list_load_balancers().await.unwrap().len(), 6);
    match octavia.find_load_balancer("dup").await {
        Err(OpenStackError::Ambiguous { count, ids, .. }) => {
            assert_eq!(count, 3, "{ids}");
            assert!(
                duplicates.iter().all(|id| ids.contains(id.as_str())),
                "{ids}"
            );
        }
        other => panic!("not ambiguous: {other:?}"),
    }
    let found = octavia.find_load_balancer("other-2").await.unwrap();
    assert_eq!(found.map(|lb| lb.name).as_deref(), Some("other-2"));
    // the page requests carried the marker and kept the filter
    let pages: Vec<String> = c
        .fake
        .log()
        .into_iter()
        .map(|l| l.path)
        .filter(|p| p.contains("/lbaas/loadbalancers?") && p.contains("marker="))
        .collect();
    assert!(
        !pages.is_empty() && pages.iter().any(|p| p.contains("name=dup")),
        "{pages:?}"
    );
}

#[tokio::test]
async fn nova_lists_follow_every_page() {
    let c = cloud().await;
    let nova = Nova::new(c.session.clone());
    let mut ours = Vec::new();
    for i in 1..=5 {
        c.fake.add_server(&format!("web-{i}"), &["other"]);
        ours.push(c.fake.add_server(&format!("web-{i}"), &TAGS));
    }
    let mut found: Vec<String> = nova
        .find_servers(None, &tags())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    found.sort();
    assert_eq!(found, ours, "every tagged server, past the page of {PAGE}");
    let named = nova.find_servers(Some("web-4"), &tags()).await.unwrap();
    assert_eq!(named.len(), 1);

    let flavors: Vec<String> = nova
        .flavors()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(flavors, FLAVORS);

    for i in 0..5 {
        nova.create_server_group(&format!("group-{i}"), "soft-anti-affinity")
            .await
            .unwrap();
    }
    let groups = nova.server_groups().await.unwrap();
    assert_eq!(
        groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["group-0", "group-1", "group-2", "group-3", "group-4"],
        "server groups are paged by offset"
    );
}

/// Names are the operator's: spaces, `&`, `=`, `+`, `%`, `/`, regex characters and
/// non-ASCII reach the APIs as one query value each.
#[tokio::test]
async fn names_with_query_characters_round_trip() {
    let c = cloud().await;
    let octavia = Octavia::new(c.session.clone());
    let nova = Nova::new(c.session.clone());
    let name = "web lb & co=1+2%20/é?(x)";
    active_lb(&octavia, "web lb").await;
    let id = active_lb(&octavia, name).await;
    let found = octavia.find_load_balancer(name).await.unwrap();
    assert_eq!(found.map(|lb| lb.id), Some(id));
    assert!(octavia.find_load_balancer("web").await.unwrap().is_none());

    let server = c.fake.add_server(name, &TAGS);
    c.fake.add_server("web lb", &TAGS);
    let found = nova.find_servers(Some(name), &tags()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, server);
    // the tag filter `triad,triad-cluster=lab` is one value, its ',' and '=' escaped
    assert!(
        c.fake
            .log()
            .iter()
            .any(|l| l.path.contains("tags=triad%2Ctriad-cluster%3Dlab")),
        "{:?}",
        c.fake.log()
    );
}

/// The real `openstack` CLI pages through the fake and sees every server, load balancer
/// and member.
#[tokio::test]
async fn the_openstack_cli_sees_every_object_through_the_paginating_fake() {
    let c = cloud().await;
    let octavia = Octavia::new(c.session.clone());
    for i in 1..=5 {
        c.fake.add_server(&format!("web-{i}"), &TAGS);
    }
    let (pool, _) = pool_with_members(&octavia, 5).await;
    active_lb(&octavia, "second-lb").await;
    active_lb(&octavia, "third-lb").await;

    let servers = openstack_json(&c.fake, &["server", "list"]).await;
    let mut names: Vec<&str> = servers
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Name"].as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["web-1", "web-2", "web-3", "web-4", "web-5"],
        "{servers}"
    );
    let lbs = openstack_json(&c.fake, &["loadbalancer", "list"]).await;
    assert_eq!(lbs.as_array().map(Vec::len), Some(3), "{lbs}");
    let members = openstack_json(&c.fake, &["loadbalancer", "member", "list", &pool]).await;
    assert_eq!(members.as_array().map(Vec::len), Some(5), "{members}");
    // it did page: requests with a marker reached both APIs
    let log = c.fake.log();
    for api in ["/compute/v2.1/servers", "/lbaas/loadbalancers", "/members"] {
        assert!(
            log.iter()
                .any(|l| l.path.contains(api) && l.path.contains("marker=")),
            "no paged request to {api}"
        );
    }
}

/// A loopback API whose every list page links to a next one with a new marker (and
/// Keystone, whose catalog points at it); counts the list requests.
async fn endless_api() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let pages = Arc::new(AtomicUsize::new(0));
    let token = {
        let base = base.clone();
        move || {
            let base = base.clone();
            async move {
                let body = json!({"token": {"expires_at": "2999-01-01T00:00:00Z", "catalog": [
                {"type": "load-balancer", "endpoints": [
                    {"interface": "public", "region_id": "RegionOne", "url": format!("{base}/lb")}]}]}});
                (
                    axum::http::StatusCode::CREATED,
                    [
                        ("content-type", "application/json"),
                        ("x-subject-token", "endless"),
                    ],
                    body.to_string(),
                )
            }
        }
    };
    let list = {
        let (base, pages) = (base.clone(), pages.clone());
        move || {
            let n = pages.fetch_add(1, Ordering::SeqCst);
            let body = json!({"loadbalancers": [], "loadbalancers_links": [{"rel": "next",
                "href": format!("{base}/lb/v2/lbaas/loadbalancers?limit=1&marker=m{n}")}]});
            async move { ([("content-type", "application/json")], body.to_string()) }
        }
    };
    let app = axum::Router::new()
        .route("/v3/auth/tokens", axum::routing::post(token))
        .route("/lb/v2/lbaas/loadbalancers", axum::routing::get(list));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (base, pages)
}

#[tokio::test]
async fn next_links_that_never_end_are_refused_naming_the_url() {
    let (base, pages) = endless_api().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(
        &file,
        format!("clouds:\n  endless:\n    auth:\n      auth_url: {base}/v3\n      username: u\n      password: p\n"),
    )
    .unwrap();
    let sources = CloudSources::file(&file);
    let session = Session::new(
        load_cloud(&sources, Some("endless")).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let octavia = Octavia::new(Arc::new(session));
    let error = octavia.list_load_balancers().await.unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, OpenStackError::Pagination { .. }) && !error.is_transient(),
        "{text}"
    );
    assert!(
        text.contains("/v2/lbaas/loadbalancers?limit=1&marker=m")
            && text.contains(&format!("more than {MAX_PAGES} pages")),
        "{text}"
    );
    assert_eq!(pages.load(Ordering::SeqCst), MAX_PAGES);
}

/// A next link that repeats a marker already followed is refused at once.
#[tokio::test]
async fn a_next_link_repeating_a_marker_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let catalog_base = base.clone();
    let app = axum::Router::new()
        .route(
            "/v3/auth/tokens",
            axum::routing::post(move || {
                let body = json!({"token": {"expires_at": "2999-01-01T00:00:00Z", "catalog": [
                    {"type": "compute", "endpoints": [{"interface": "public", "url": format!("{catalog_base}/compute")}]}]}});
                async move {
                    (
                        axum::http::StatusCode::CREATED,
                        [("content-type", "application/json"), ("x-subject-token", "t")],
                        body.to_string(),
                    )
                }
            }),
        )
        .route(
            "/compute/flavors",
            axum::routing::get(|| async {
                let body: Value = json!({"flavors": [{"id": "f", "name": "f"}],
                    "flavors_links": [{"rel": "next", "href": "/compute/flavors?marker=f"}]});
                ([("content-type", "application/json")], body.to_string())
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    std::fs::write(
        &file,
        format!("clouds:\n  loop:\n    auth:\n      auth_url: {base}/v3\n      username: u\n      password: p\n"),
    )
    .unwrap();
    let sources = CloudSources::file(&file);
    let session = Session::new(
        load_cloud(&sources, Some("loop")).unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    let text = Nova::new(Arc::new(session))
        .flavors()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("GET /flavors?marker=f") && text.contains("names no new marker"),
        "{text}"
    );
}

/// The fake pages as the APIs do: `limit` honoured, Octavia's next link without the
/// filters, Nova's with them, and an unknown marker refused.
#[tokio::test]
async fn the_fake_pages_like_the_apis() {
    let c = cloud().await;
    let octavia = Octavia::new(c.session.clone());
    for name in ["a", "a", "b"] {
        active_lb(&octavia, name).await;
    }
    let get = |service: &'static str, path: &'static str, query: Vec<(&str, &str)>| {
        let session = c.session.clone();
        let query: Vec<(String, String)> = query
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        async move {
            session
                .request_with(
                    reqwest::Method::GET,
                    service,
                    path,
                    &query,
                    None,
                    &[("OpenStack-API-Version", "compute 2.64")],
                )
                .await
        }
    };
    let page = get(
        "load-balancer",
        "/v2/lbaas/loadbalancers",
        vec![("name", "a"), ("limit", "1")],
    )
    .await
    .unwrap();
    assert_eq!(page["loadbalancers"].as_array().map(Vec::len), Some(1));
    let next = page["loadbalancers_links"][0]["href"].as_str().unwrap();
    assert!(
        next.ends_with(&format!(
            "/v2/lbaas/loadbalancers?limit=1&marker={}",
            page["loadbalancers"][0]["id"].as_str().unwrap()
        )),
        "{page}"
    );
    let error = get(
        "load-balancer",
        "/v2/lbaas/loadbalancers",
        vec![("marker", "no-such-id")],
    )
    .await
    .unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");

    for i in 0..3 {
        c.fake.add_server(&format!("web-{i}"), &TAGS);
    }
    let page = get(
        "compute",
        "/servers/detail",
        vec![("tags", "triad,triad-cluster=lab")],
    )
    .await
    .unwrap();
    assert_eq!(page["servers"].as_array().map(Vec::len), Some(PAGE));
    let next = page["servers_links"][0]["href"].as_str().unwrap();
    assert!(
        next.contains("/compute/v2.1/servers/detail?tags=triad%2Ctriad-cluster%3Dlab&marker="),
        "{page}"
    );
}

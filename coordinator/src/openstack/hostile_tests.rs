//! Property tests of the OpenStack client against hostile answers: Keystone tokens and
//! catalogs, Octavia objects and faults, and clouds.yaml files.
//!
//! The token and fault parsers are private to `session`, so they are driven the way the
//! coordinator drives them: a [`Session`] against a loopback HTTP server that answers
//! whatever the case says (one connection per request; it never makes the client wait).
//! Only `crate::` paths are used, so this file compiles wherever it is declared.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::openstack::config::{load_cloud, AuthMethod, CloudConfig, CloudSources, NameOrId};
use crate::openstack::octavia::{LoadBalancer, Member, Octavia, Pool, SessionPersistence};
use crate::openstack::session::Session;
use crate::openstack::{OpenStackError, Secret};

const PASSWORD: &str = "pw-never-in-errors";
const TOKEN: &str = "gAAAAB-subject-token";

/// One scripted HTTP answer.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    subject_token: bool,
    body: Vec<u8>,
}

/// A loopback server answering `/…/auth/tokens` with `auth` and everything else with `api`.
struct Fake {
    runtime: tokio::runtime::Runtime,
    base: String,
    auth: Arc<Mutex<Answer>>,
    api: Arc<Mutex<Answer>>,
}

impl Fake {
    fn start() -> Fake {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let empty = Answer {
            status: 200,
            subject_token: false,
            body: vec![],
        };
        let auth = Arc::new(Mutex::new(empty.clone()));
        let api = Arc::new(Mutex::new(empty));
        let (a, b) = (auth.clone(), api.clone());
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, a.clone(), b.clone()));
            }
        });
        let fake = Fake {
            runtime,
            base,
            auth,
            api,
        };
        fake.set_auth(good_token(&fake.base));
        fake
    }

    fn set_auth(&self, answer: Answer) {
        *self.auth.lock().unwrap() = answer;
    }

    fn set_api(&self, answer: Answer) {
        *self.api.lock().unwrap() = answer;
    }

    fn session(&self, region: Option<&str>) -> Session {
        let cloud = CloudConfig {
            name: "hostile".into(),
            source: "test".into(),
            auth_url: format!("{}/identity/v3", self.base),
            auth: AuthMethod::Password {
                user: NameOrId::Name("triad".into()),
                user_domain: NameOrId::Id("default".into()),
                password: Secret::new(PASSWORD),
                project: Some(NameOrId::Name("web".into())),
                project_domain: NameOrId::Id("default".into()),
            },
            region_name: region.map(str::to_string),
            interface: "public".into(),
            verify: true,
            cacert: None,
        };
        Session::new(cloud, Duration::from_secs(10)).unwrap()
    }
}

async fn serve(mut socket: TcpStream, auth: Arc<Mutex<Answer>>, api: Arc<Mutex<Answer>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
    let path = head.split_whitespace().nth(1).unwrap_or("");
    let answer = if path.ends_with("/auth/tokens") {
        auth.lock().unwrap().clone()
    } else {
        api.lock().unwrap().clone()
    };
    let mut out = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    if answer.subject_token {
        out.push_str(&format!("X-Subject-Token: {TOKEN}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&answer.body);
    let _ = socket.write_all(&bytes).await;
    let _ = socket.shutdown().await;
}

/// What `proptest!` does, for tests with a set-up shared by their cases: the default
/// count (PROPTEST_CASES honoured), failures saved next to this file.
fn run_cases<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = Config::with_source_file(file!());
    if let Err(error) = TestRunner::new(config).run(&strategy, test) {
        panic!("{error}");
    }
}

/// A token valid for years whose catalog points load-balancer at the fake.
fn good_token(base: &str) -> Answer {
    let body = json!({ "token": {
        "expires_at": "2999-01-01T00:00:00.000000Z",
        "issued_at": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "catalog": [{ "type": "load-balancer", "endpoints": [
            { "interface": "public", "region_id": "RegionOne", "url": format!("{base}/load-balancer/") }
        ]}]
    }});
    Answer {
        status: 201,
        subject_token: true,
        body: body.to_string().into_bytes(),
    }
}

/// Any JSON value, a few levels deep.
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::from),
        "[a-z_]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{0,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// An object whose fields are each present mostly, with the value of their type mostly
/// and any JSON otherwise (rarely enough that nested objects still decode often), plus
/// now and then an unknown field.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(name, good)| {
            proptest::option::weighted(0.97, prop_oneof![60 => good, 1 => any_json()])
                .prop_map(move |v| v.map(|v| (name.to_string(), v)))
                .boxed()
        })
        .collect();
    (
        fields,
        proptest::option::weighted(0.2, ("[a-z_]{1,10}", any_json())),
    )
        .prop_map(|(fields, extra)| {
            Value::Object(fields.into_iter().flatten().chain(extra).collect())
        })
        .boxed()
}

fn text(pattern: &'static str) -> BoxedStrategy<Value> {
    pattern.prop_map(Value::from).boxed()
}

fn words(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![4 => proptest::sample::select(words).prop_map(Value::from), 1 => text("[ -~]{0,12}")].boxed()
}

/// Keystone's time forms for any instant humantime prints, the same shape with values out
/// of range, and anything.
fn time_text() -> BoxedStrategy<String> {
    let suffix = prop_oneof![
        4 => Just("Z"),
        1 => proptest::sample::select(&["", "+00:00", ".000000Z", "-05:30", "z", "+"][..]),
    ];
    prop_oneof![
        6 => (0u64..253_402_300_800, 0u32..1_000_000_000, suffix.clone(), any::<bool>()).prop_map(|(secs, nanos, suffix, micros)| {
            let at = UNIX_EPOCH + Duration::new(secs, nanos);
            let text = if micros {
                humantime::format_rfc3339_micros(at).to_string()
            } else {
                humantime::format_rfc3339_seconds(at).to_string()
            };
            format!("{}{suffix}", text.trim_end_matches('Z'))
        }),
        2 => ("[0-9]{4}-[0-9]{2}-[0-9]{2}[T t][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?", suffix)
            .prop_map(|(t, suffix)| format!("{t}{suffix}")),
        1 => "[0-9T:.Z+-]{0,40}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// Catalog entries; URLs are the fake's or unusable ones, never another host.
fn catalog(base: String) -> BoxedStrategy<Value> {
    let url = prop_oneof![
        Just(format!("{base}/load-balancer")),
        Just(format!("{base}/load-balancer//")),
        Just(String::new()),
        Just("not a url".to_string()),
        Just("http://".to_string()),
    ]
    .prop_map(Value::from)
    .boxed();
    let endpoint = object(vec![
        ("interface", words(&["public", "internal", "admin"])),
        ("region", words(&["RegionOne", "RegionTwo"])),
        ("region_id", words(&["RegionOne", "RegionTwo"])),
        ("url", url),
    ]);
    let entry = object(vec![
        ("type", words(&["load-balancer", "compute", "identity"])),
        ("name", text("[a-z]{0,8}")),
        (
            "endpoints",
            proptest::collection::vec(endpoint, 0..4)
                .prop_map(Value::Array)
                .boxed(),
        ),
    ]);
    proptest::collection::vec(entry, 0..4)
        .prop_map(Value::Array)
        .boxed()
}

/// Keystone answers: mostly 201 with a token-shaped body, else any status and bytes.
fn keystone_answer(base: String) -> BoxedStrategy<Answer> {
    let token = object(vec![
        ("expires_at", time_text().prop_map(Value::from).boxed()),
        ("issued_at", time_text().prop_map(Value::from).boxed()),
        ("catalog", catalog(base)),
    ])
    .prop_map(|token| json!({ "token": token }).to_string().into_bytes());
    let status = prop_oneof![8 => Just(201u16), 1 => proptest::sample::select(&[200u16, 202, 300, 400, 401, 403, 404, 500, 503][..])];
    let body = prop_oneof![6 => token, 1 => proptest::collection::vec(any::<u8>(), 0..256)];
    (status, proptest::option::weighted(0.95, Just(())), body)
        .prop_map(|(status, token, body)| Answer {
            status,
            subject_token: token.is_some(),
            body,
        })
        .boxed()
}

/// Keystone's answer is outside input: any status, token body, time text or catalog
/// gives a session, or an authentication error naming the cloud and no secret.
#[test]
fn keystone_token_never_panics() {
    let fake = Fake::start();
    run_cases(
        (
            keystone_answer(fake.base.clone()),
            proptest::option::of(Just("RegionOne")),
        ),
        |(answer, region)| {
            fake.set_auth(answer);
            let session = fake.session(region);
            match fake.runtime.block_on(session.check()) {
                Ok(()) => {
                    for service in ["load-balancer", "compute"] {
                        match fake.runtime.block_on(session.endpoint(service)) {
                            Ok(url) => prop_assert!(!url.ends_with('/'), "{}", url),
                            Err(OpenStackError::NoEndpoint { cloud, .. }) => {
                                prop_assert_eq!(cloud, "hostile")
                            }
                            Err(other) => prop_assert!(false, "{}", other),
                        }
                    }
                }
                Err(OpenStackError::Auth { cloud, message, .. }) => {
                    prop_assert_eq!(cloud, "hostile");
                    prop_assert!(
                        !message.contains(PASSWORD) && !message.contains(TOKEN),
                        "{}",
                        message
                    );
                }
                Err(other) => prop_assert!(false, "not an authentication error: {}", other),
            }
            Ok(())
        },
    );
}

/// The endpoint of the configured interface and region is found among any others, with
/// any Keystone time form.
#[test]
fn keystone_catalog_round_trips() {
    let fake = Fake::start();
    let distractor = (
        proptest::sample::select(&["compute", "identity", "load-balancer"][..]),
        proptest::sample::select(&["internal", "admin", "public"][..]),
        proptest::sample::select(&["RegionTwo", "RegionThree"][..]),
    );
    let times = (
        253_402_300_000u64 - 86_400..253_402_300_799,
        proptest::sample::select(&["Z", "", ".000000Z", ".123456Z"][..]),
        0u64..1_000_000_000,
    );
    run_cases(
        (
            proptest::collection::vec(distractor, 0..5),
            any::<bool>(),
            any::<bool>(),
            "(/[a-z0-9]{1,6}){0,2}/?",
            times,
        ),
        |(distractors, regional, by_id, path, (expires, suffix, issued))| {
            let mut entries: Vec<Value> = distractors
                .iter()
                .map(|(service, interface, region)| {
                    // a load-balancer entry here differs in interface or region
                    let interface = if *service == "load-balancer" && *interface == "public" && !regional { "admin" } else { interface };
                    json!({ "type": service, "endpoints": [{ "interface": interface, "region_id": region, "url": "http://" }] })
                })
                .collect();
            let url = format!("{}/load-balancer{path}", fake.base);
            let region_key = if by_id { "region_id" } else { "region" };
            entries.push(json!({ "type": "load-balancer", "endpoints": [{ "interface": "public", region_key: "RegionOne", "url": url }] }));
            let at = |secs: u64| {
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
                    .to_string()
            };
            let body = json!({ "token": {
                "expires_at": format!("{}{suffix}", at(expires).trim_end_matches('Z')),
                "issued_at": at(issued),
                "catalog": entries,
            }});
            fake.set_auth(Answer {
                status: 201,
                subject_token: true,
                body: body.to_string().into_bytes(),
            });
            let session = fake.session(regional.then_some("RegionOne"));
            let found = fake
                .runtime
                .block_on(session.endpoint("load-balancer"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(found, url.trim_end_matches('/'));
            Ok(())
        },
    );
}

/// Fields of every Octavia type, so one object shape reaches each decoder's branches.
fn octavia_object() -> BoxedStrategy<Value> {
    let port = prop_oneof![
        any::<u16>().prop_map(Value::from),
        Just(json!(65_536)),
        Just(json!(-1))
    ]
    .boxed();
    let count = prop_oneof![any::<u32>().prop_map(Value::from), Just(json!(u64::MAX))].boxed();
    object(vec![
        ("id", text("[0-9a-f-]{0,36}")),
        ("name", text("[ -~]{0,12}")),
        (
            "provisioning_status",
            words(&["ACTIVE", "PENDING_UPDATE", "ERROR"]),
        ),
        (
            "operating_status",
            words(&["ONLINE", "OFFLINE", "NO_MONITOR"]),
        ),
        ("vip_address", text("[0-9.]{0,15}")),
        ("provider", words(&["amphora", "ovn"])),
        ("protocol", words(&["HTTP", "TCP"])),
        ("protocol_port", port),
        ("default_pool_id", text("[0-9a-f-]{0,36}")),
        ("lb_algorithm", words(&["ROUND_ROBIN", "SOURCE_IP"])),
        (
            "session_persistence",
            object(vec![
                ("type", words(&["HTTP_COOKIE", "APP_COOKIE"])),
                ("cookie_name", text("[a-z]{0,6}")),
            ]),
        ),
        ("healthmonitor_id", text("[0-9a-f-]{0,36}")),
        ("type", words(&["HTTP", "PING"])),
        ("delay", count.clone()),
        ("timeout", count.clone()),
        ("max_retries", count.clone()),
        ("address", text("[0-9.]{0,15}")),
        ("weight", count),
        (
            "admin_state_up",
            any::<bool>().prop_map(Value::from).boxed(),
        ),
        (
            "tags",
            proptest::collection::vec(text("[a-z]{0,6}"), 0..3)
                .prop_map(Value::Array)
                .boxed(),
        ),
    ])
}

/// The Octavia calls under test: the key of their answer and whether it holds a list.
const CALLS: [(&str, bool); 9] = [
    ("loadbalancer", false),
    ("loadbalancers", true),
    ("loadbalancers", true),
    ("listeners", true),
    ("pools", true),
    ("pool", false),
    ("healthmonitors", true),
    ("members", true),
    ("members", false),
];

/// The object or list under an answer's key: mostly the right shape.
fn octavia_inner(list: bool) -> BoxedStrategy<Value> {
    let objects = proptest::collection::vec(octavia_object(), 0..4)
        .prop_map(Value::Array)
        .boxed();
    if list {
        prop_oneof![8 => objects, 1 => octavia_object(), 1 => any_json()].boxed()
    } else {
        prop_oneof![8 => octavia_object(), 1 => objects, 1 => any_json()].boxed()
    }
}

/// Octavia's answers to call `call`: its object or list (sometimes under another key, or
/// the other shape), faults, any JSON, bytes.
fn octavia_body(call: usize) -> BoxedStrategy<Vec<u8>> {
    let (right, list) = CALLS[call];
    let key = prop_oneof![8 => Just(right), 1 => proptest::sample::select(&["loadbalancer", "pools", "other", ""][..])];
    let inner = octavia_inner(list);
    let fault = prop_oneof![
        any::<String>().prop_map(|s| json!({ "faultcode": "Client", "faultstring": s })),
        ("[a-zA-Z]{1,12}", any::<String>())
            .prop_map(|(k, s)| json!({ k: { "message": s, "code": 409 } })),
    ];
    // pagination links: any JSON, or a `next` link with any href (this server answers the
    // same page again, so a followed link ends on its repeated marker)
    let link = prop_oneof![
        Just(json!(format!("/v2/lbaas/{right}?limit=2&marker=m"))),
        Just(json!("?marker=")),
        Just(json!("http://[::1")),
        any_json(),
    ];
    let links = prop_oneof![
        2 => link.prop_map(|href| json!([{"rel": "previous", "href": "x"}, {"rel": "next", "href": href}])),
        1 => any_json(),
    ];
    prop_oneof![
        6 => (key, inner).prop_map(|(key, inner)| json!({ key: inner }).to_string().into_bytes()),
        1 => (octavia_inner(list), links).prop_map(move |(inner, links)| {
            json!({ right: inner, format!("{right}_links"): links }).to_string().into_bytes()
        }),
        2 => fault.prop_map(|v| v.to_string().into_bytes()),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
        1 => Just(b" \n".to_vec()),
    ]
    .boxed()
}

/// What a non-2xx answer's error must say: the `faultstring`, else some inner `message`,
/// else an excerpt of at most 200 characters and an ellipsis.
fn fault_is_explained(body: &[u8], message: &str) -> bool {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(fault) = value
        .as_ref()
        .and_then(|v| v.get("faultstring"))
        .and_then(Value::as_str)
    {
        return message == fault;
    }
    let inner = value.as_ref().and_then(Value::as_object).is_some_and(|o| {
        o.values()
            .any(|v| v.get("message").and_then(Value::as_str) == Some(message))
    });
    inner || message.chars().count() <= 201
}

/// Any Octavia answer to any call is a value, a decode or pagination error (2xx) or an
/// HTTP error with the served status whose message is the fault or a bounded excerpt.
#[test]
fn octavia_answers_never_panic() {
    let fake = Fake::start();
    let octavia = Octavia::new(Arc::new(fake.session(None)));
    let status = prop_oneof![6 => Just(200u16), 1 => Just(202u16), 1 => Just(204u16), 3 => proptest::sample::select(&[400u16, 401, 404, 409, 500, 503][..])];
    let case = (0..CALLS.len())
        .prop_flat_map(move |call| (status.clone(), octavia_body(call), Just(call)));
    run_cases(case, |(status, body, call)| {
        fake.set_api(Answer {
            status,
            subject_token: false,
            body: body.clone(),
        });
        let rt = &fake.runtime;
        let result: Result<(), OpenStackError> = match call {
            0 => rt.block_on(octavia.load_balancer("lb-1")).map(drop),
            1 => rt
                .block_on(octavia.find_load_balancer("web lb/é"))
                .map(drop),
            2 => rt.block_on(octavia.list_load_balancers()).map(drop),
            3 => rt.block_on(octavia.find_listener("l")).map(drop),
            4 => rt.block_on(octavia.find_pool("p")).map(drop),
            5 => rt.block_on(octavia.pool("p-1")).map(drop),
            6 => rt.block_on(octavia.find_health_monitor("m")).map(drop),
            7 => rt.block_on(octavia.members("p-1")).map(drop),
            _ => rt.block_on(octavia.replace_members("p-1", &[])),
        };
        let success = (200..300).contains(&status);
        match result {
            Ok(()) => prop_assert!(success),
            Err(OpenStackError::Decode { .. }) => prop_assert!(success),
            // a list whose next link comes back (this server always answers one page)
            Err(OpenStackError::Pagination { url, message }) => {
                prop_assert!(success && CALLS[call].1, "{}: {}", url, message)
            }
            // a lookup by name that lists several valid objects
            Err(OpenStackError::Ambiguous { count, .. }) => {
                prop_assert!(success && matches!(call, 1 | 3 | 4 | 6) && count > 1)
            }
            Err(OpenStackError::Http {
                status: got,
                message,
                ..
            }) => {
                prop_assert_eq!(got, status);
                prop_assert!(!success);
                prop_assert!(fault_is_explained(&body, &message), "{:?}", message);
            }
            Err(other) => prop_assert!(false, "{}", other),
        }
        Ok(())
    });
}

/// Load balancers, members and a pool, with unknown fields and defaults, decode as sent.
#[test]
fn octavia_objects_round_trip() {
    let fake = Fake::start();
    let octavia = Octavia::new(Arc::new(fake.session(None)));
    let lb = (
        "[0-9a-f-]{1,36}",
        "[ -~]{0,12}",
        "[A-Z_]{1,16}",
        proptest::option::of("[0-9.]{1,15}"),
    );
    let member = (
        "[0-9a-f-]{1,8}",
        any::<std::net::IpAddr>(),
        any::<u16>(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<bool>()),
        proptest::collection::vec("[a-z]{1,6}", 0..3),
    );
    let pool = (
        "[0-9a-f-]{1,8}",
        "[A-Z_]{1,16}",
        proptest::option::of(("[A-Z_]{1,12}", proptest::option::of("[a-z]{1,8}"))),
    );
    run_cases(
        (
            proptest::collection::vec(lb, 0..4),
            proptest::collection::vec(member, 0..4),
            pool,
            any_json(),
        ),
        |(lbs, members, (pool_id, algorithm, persistence), extra)| {
            let rt = &fake.runtime;
            let serve = |body: Value| {
                fake.set_api(Answer {
                    status: 200,
                    subject_token: false,
                    body: body.to_string().into_bytes(),
                })
            };
            let want: Vec<LoadBalancer> = lbs
                .iter()
                .map(|(id, name, status, vip)| LoadBalancer {
                    id: id.clone(),
                    name: name.clone(),
                    provisioning_status: status.clone(),
                    operating_status: String::new(),
                    vip_address: vip.clone(),
                    provider: None,
                })
                .collect();
            serve(
                json!({ "loadbalancers": lbs.iter().map(|(id, name, status, vip)| json!({
                "id": id, "name": name, "provisioning_status": status, "vip_address": vip, "flavor_id": extra,
            })).collect::<Vec<_>>() }),
            );
            prop_assert_eq!(
                rt.block_on(octavia.list_load_balancers())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
                want
            );

            let want: Vec<Member> = members
                .iter()
                .map(|(id, address, port, weight, up, tags)| Member {
                    id: id.clone(),
                    name: String::new(),
                    address: address.to_string(),
                    protocol_port: *port,
                    weight: weight.unwrap_or(1),
                    admin_state_up: up.unwrap_or(true),
                    provisioning_status: String::new(),
                    operating_status: String::new(),
                    tags: tags.clone(),
                })
                .collect();
            serve(
                json!({ "members": members.iter().map(|(id, address, port, weight, up, tags)| {
                let mut m = json!({ "id": id, "address": address.to_string(), "protocol_port": port, "tags": tags, "backup": extra });
                if let Some(w) = weight { m["weight"] = json!(w); }
                if let Some(u) = up { m["admin_state_up"] = json!(u); }
                m
            }).collect::<Vec<_>>() }),
            );
            prop_assert_eq!(
                rt.block_on(octavia.members("p"))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
                want
            );

            let persistence =
                persistence.map(|(kind, cookie_name)| SessionPersistence { kind, cookie_name });
            serve(
                json!({ "pool": { "id": pool_id, "lb_algorithm": algorithm, "protocol": "HTTP", "session_persistence": persistence, "members": [] } }),
            );
            let want = Pool {
                id: pool_id.clone(),
                name: String::new(),
                lb_algorithm: algorithm.clone(),
                protocol: "HTTP".into(),
                session_persistence: persistence,
                healthmonitor_id: None,
                provisioning_status: String::new(),
            };
            prop_assert_eq!(
                rt.block_on(octavia.pool("p"))
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
                want
            );
            Ok(())
        },
    );
}

/// Any YAML value, a few levels deep.
fn any_yaml() -> BoxedStrategy<yaml_serde::Value> {
    use yaml_serde::Value as Y;
    let leaf = prop_oneof![
        Just(Y::Null),
        any::<bool>().prop_map(Y::from),
        any::<i64>().prop_map(Y::from),
        any::<f64>().prop_map(Y::from),
        any::<String>().prop_map(Y::from),
        proptest::sample::select(
            &[
                "true",
                "no",
                "1",
                "public",
                "internalURL",
                "password",
                "v3applicationcredential",
                ""
            ][..]
        )
        .prop_map(Y::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Y::Sequence),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Y::Mapping(m.into_iter().map(|(k, v)| (Y::from(k), v)).collect())),
        ]
    })
    .boxed()
}

/// clouds.yaml documents made of its own keys with plausible values, mostly; the secrets
/// are marked so that errors can be checked for them.
fn clouds_document() -> BoxedStrategy<String> {
    use yaml_serde::Value as Y;
    let value = |good: BoxedStrategy<Y>| prop_oneof![10 => good, 1 => any_yaml()].boxed();
    let word =
        |words: &'static [&'static str]| proptest::sample::select(words).prop_map(Y::from).boxed();
    let secret = Just(Y::from(PASSWORD)).boxed();
    let name = "[a-z][a-z0-9-]{0,8}".prop_map(Y::from).boxed();
    let auth_keys: Vec<(&str, BoxedStrategy<Y>)> = vec![
        (
            "auth_url",
            word(&["http://127.0.0.1:9/v3", "https://keystone.example/identity"]),
        ),
        ("username", name.clone()),
        ("user_id", name.clone()),
        ("password", secret.clone()),
        ("user_domain_name", name.clone()),
        ("project_name", name.clone()),
        ("project_id", name.clone()),
        ("tenant_name", name.clone()),
        ("domain_id", name.clone()),
        ("application_credential_id", name.clone()),
        ("application_credential_name", name.clone()),
        ("application_credential_secret", secret),
    ];
    let mapping = |keys: Vec<(&'static str, BoxedStrategy<Y>)>, presence: f64| {
        let entries: Vec<_> = keys
            .into_iter()
            .map(|(k, v)| {
                proptest::option::weighted(presence, value(v))
                    .prop_map(move |v| v.map(|v| (Y::from(k), v)))
            })
            .collect();
        entries
            .prop_map(|e| Y::Mapping(e.into_iter().flatten().collect()))
            .boxed()
    };
    let auth = mapping(auth_keys, 0.5);
    let cloud = mapping(
        vec![
            ("auth", auth),
            (
                "auth_type",
                word(&["password", "v3password", "v3applicationcredential", "token"]),
            ),
            ("region_name", word(&["RegionOne", ""])),
            (
                "interface",
                word(&["public", "internal", "adminURL", "private"]),
            ),
            ("endpoint_type", word(&["publicURL", "internal"])),
            ("verify", word(&["false", "yes", "maybe"])),
            ("insecure", any::<bool>().prop_map(Y::from).boxed()),
            ("cacert", word(&["/etc/ssl/ca.pem"])),
        ],
        0.6,
    );
    proptest::collection::btree_map("[a-z]{1,6}", cloud, 0..3)
        .prop_map(|clouds| {
            let clouds: yaml_serde::Mapping =
                clouds.into_iter().map(|(k, v)| (Y::from(k), v)).collect();
            let mut document = yaml_serde::Mapping::new();
            document.insert(Y::from("clouds"), Y::Mapping(clouds));
            yaml_serde::to_string(&Y::Mapping(document)).unwrap()
        })
        .boxed()
}

/// clouds.yaml is the operator's (or a secure.yaml someone else wrote): any text resolves
/// to a cloud or a configuration error, and no secret is ever printed.
#[test]
fn clouds_yaml_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    let text = prop_oneof![1 => any::<String>(), 4 => clouds_document()];
    let wanted = proptest::option::of(prop_oneof!["[a-z]{1,6}", any::<String>()]);
    run_cases((text, wanted), |(text, wanted)| {
        std::fs::write(&file, &text).unwrap();
        let sources = CloudSources {
            env: BTreeMap::from([(
                "OS_CLIENT_CONFIG_FILE".to_string(),
                file.display().to_string(),
            )]),
            dirs: vec![],
        };
        match load_cloud(&sources, wanted.as_deref()) {
            Ok(cloud) => {
                prop_assert!(["public", "internal", "admin"].contains(&cloud.interface.as_str()));
                let debug = format!("{cloud:?}");
                prop_assert!(!debug.contains(PASSWORD), "{}", debug);
            }
            Err(OpenStackError::Config(message)) => {
                prop_assert!(!message.contains(PASSWORD), "{}", message)
            }
            Err(other) => prop_assert!(false, "{}", other),
        }
        Ok(())
    });
}

/// A password cloud's values, with interface spellings openstacksdk accepts, read back.
#[test]
fn clouds_yaml_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clouds.yaml");
    let interface = proptest::sample::select(
        &[
            ("public", "public"),
            ("internalURL", "internal"),
            ("admin", "admin"),
        ][..],
    );
    run_cases(
        (
            "[a-z][a-z0-9-]{0,10}",
            "[a-z][a-z0-9_.-]{0,10}",
            "[A-Za-z0-9 !#%&()*+,./:;<=>?@^_~-]{1,20}",
            proptest::option::of("[a-z][a-z0-9]{0,10}"),
            interface,
            proptest::option::of("[A-Za-z]{1,10}"),
        ),
        |(cloud, user, password, project, (spelled, interface), region)| {
            let mut auth = json!({ "auth_url": "https://keystone.example/v3", "username": user, "password": password });
            if let Some(project) = &project {
                auth["project_name"] = json!(project);
            }
            let document = json!({ "clouds": { cloud.clone(): { "auth": auth, "interface": spelled, "region_name": region } } });
            std::fs::write(&file, yaml_serde::to_string(&document).unwrap()).unwrap();
            let sources = CloudSources {
                env: BTreeMap::from([(
                    "OS_CLIENT_CONFIG_FILE".to_string(),
                    file.display().to_string(),
                )]),
                dirs: vec![],
            };
            let loaded =
                load_cloud(&sources, None).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&loaded.name, &cloud);
            prop_assert_eq!(loaded.interface, interface);
            prop_assert_eq!(loaded.region_name, region);
            prop_assert_eq!(
                loaded.auth,
                AuthMethod::Password {
                    user: NameOrId::Name(user),
                    user_domain: NameOrId::Id("default".into()),
                    password: Secret::new(password),
                    project: project.map(NameOrId::Name),
                    project_domain: NameOrId::Id("default".into()),
                }
            );
            Ok(())
        },
    );
}

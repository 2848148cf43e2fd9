//! Swift in the fake (the backups' object store, issue 19), checked two ways:
//! - with the real `openstack` CLI (python-openstackclient in the venv `cli.rs` builds):
//!   container create/list/show/delete, object create/list/show/save/delete, and paging
//!   through a listing longer than the server answers at once;
//! - over raw HTTP for what the CLI does not show: 422 on a wrong ETag, 404s, 409 on a
//!   container that still holds objects, 401/403, 411, byte ranges and binary bodies,
//!   listing formats, and an injected 503 on one object PUT.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use triad_openstack_fake::cli::{openstack_cli, run};
use triad_openstack_fake::{FakeCloud, FakeOptions, Fault, FaultKind};

const CONTAINER: &str = "triad-backups";
/// MD5 of the 256 byte values in order (Python's hashlib says so).
const ALL_BYTES_MD5: &str = "e2c865db4162bed963bfaa9ef6ac18f0";

/// `len` bytes that start with every byte value once (so no text encoding could carry
/// them), then xorshift noise from `seed`.
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if i < 256 {
                return i as u8;
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// The real `openstack` CLI against one fake (a clouds.yaml in a temporary HOME).
struct Cli {
    program: PathBuf,
    dir: tempfile::TempDir,
    clouds: String,
}

impl Cli {
    async fn new(fake: &FakeCloud) -> Cli {
        let program = openstack_cli().await;
        let dir = tempfile::tempdir().unwrap();
        let clouds = dir.path().join("clouds.yaml");
        std::fs::write(&clouds, fake.clouds_yaml("fake")).unwrap();
        Cli {
            program,
            clouds: clouds.display().to_string(),
            dir,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let home = self.dir.path().display().to_string();
        let env = [
            ("OS_CLIENT_CONFIG_FILE", self.clouds.as_str()),
            ("OS_CLOUD", "fake"),
            ("HOME", home.as_str()),
        ];
        run(&self.program, args, &env, Duration::from_secs(90)).await
    }

    /// `openstack ARGS`, which must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "openstack {args:?} failed: {stderr}");
        stdout
    }

    /// `openstack ARGS -f json`, parsed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut argv = args.to_vec();
        argv.extend(["-f", "json"]);
        let stdout = self.ok(&argv).await;
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("openstack {args:?}: {e}: {stdout}"))
    }
}

/// A file's MD5 by coreutils' md5sum (not by the fake's code).
async fn md5sum(path: &Path) -> String {
    let file = path.display().to_string();
    let (ok, stdout, stderr) = run(
        Path::new("md5sum"),
        &[file.as_str()],
        &[],
        Duration::from_secs(10),
    )
    .await;
    assert!(ok, "md5sum {file}: {stderr}");
    stdout.split_whitespace().next().unwrap().to_string()
}

fn names_of(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not a list: {rows}"))
        .iter()
        .map(|row| row["Name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_stores_lists_saves_and_deletes_backup_objects() {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let cli = Cli::new(&fake).await;

    let created = cli.json(&["container", "create", CONTAINER]).await;
    assert_eq!(created[0]["container"], CONTAINER, "{created}");
    assert_eq!(created[0]["account"], "AUTH_project-web", "{created}");
    assert_eq!(fake.swift_containers(), [CONTAINER]);

    let names = ["2024-05-01/base.tar.zst", "2024-05-02/incremental.tar.zst"];
    let bodies = [binary(5000, 1), binary(3333, 2)];
    let mut hashes = Vec::new();
    for (name, body) in names.into_iter().zip(&bodies) {
        let file = cli.file(&format!("upload-{}", hashes.len()));
        std::fs::write(&file, body).unwrap();
        let hash = md5sum(&file).await;
        let file_text = file.display().to_string();
        let uploaded = cli
            .json(&["object", "create", CONTAINER, &file_text, "--name", name])
            .await;
        assert_eq!(uploaded[0]["object"], name, "{uploaded}");
        assert_eq!(
            uploaded[0]["etag"],
            hash.as_str(),
            "the ETag is the body's MD5: {uploaded}"
        );
        hashes.push(hash);
    }
    let stored = fake.swift_objects(CONTAINER);
    assert_eq!(
        stored,
        vec![
            (names[0].to_string(), bodies[0].clone()),
            (names[1].to_string(), bodies[1].clone())
        ],
        "the fake holds the uploaded bytes"
    );

    let listed = cli.json(&["object", "list", CONTAINER, "--long"]).await;
    let rows: Vec<(String, u64, String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["Name"].as_str().unwrap().to_string(),
                row["Bytes"].as_u64().unwrap(),
                row["Hash"].as_str().unwrap().to_string(),
                row["Content Type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // the CLI sends no Content-Type: Swift guesses from the name, and .zst is unknown
    let octet = "application/octet-stream".to_string();
    assert_eq!(
        rows,
        [
            (names[0].to_string(), 5000, hashes[0].clone(), octet.clone()),
            (names[1].to_string(), 3333, hashes[1].clone(), octet)
        ],
        "{listed}"
    );
    let by_prefix = cli
        .json(&["object", "list", CONTAINER, "--prefix", "2024-05-02/"])
        .await;
    assert_eq!(names_of(&by_prefix), [names[1]], "{by_prefix}");

    let shown = cli.json(&["object", "show", CONTAINER, names[0]]).await;
    assert_eq!(shown["content-length"], "5000", "{shown}");
    assert_eq!(shown["etag"], hashes[0].as_str(), "{shown}");
    assert_eq!(shown["object"], names[0], "{shown}");

    let saved = cli.file("saved.tar.zst");
    let saved_text = saved.display().to_string();
    cli.ok(&["object", "save", CONTAINER, names[0], "--file", &saved_text])
        .await;
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        bodies[0],
        "object save gives the uploaded bytes back"
    );

    cli.ok(&["object", "delete", CONTAINER, names[0]]).await;
    assert_eq!(
        fake.swift_objects(CONTAINER),
        vec![(names[1].to_string(), bodies[1].clone())]
    );
    let after = cli.json(&["object", "list", CONTAINER]).await;
    assert_eq!(names_of(&after), [names[1]], "{after}");

    let containers = cli.json(&["container", "list", "--long"]).await;
    assert_eq!(
        containers,
        json!([{"Name": CONTAINER, "Bytes": 3333, "Count": 1}]),
        "{containers}"
    );
    let container = cli.json(&["container", "show", CONTAINER]).await;
    assert_eq!(container["object_count"], "1", "{container}");
    assert_eq!(container["bytes_used"], "3333", "{container}");

    let (ok, _, stderr) = cli.run(&["container", "delete", CONTAINER]).await;
    assert!(
        !ok && stderr.contains("409"),
        "a container holding an object is not deleted: {stderr}"
    );
    assert_eq!(fake.swift_containers(), [CONTAINER]);
    cli.ok(&["container", "delete", "--recursive", CONTAINER])
        .await;
    assert!(
        fake.swift_containers().is_empty(),
        "deleted with its object"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_pages_through_a_listing_longer_than_the_server_answers() {
    let fake = FakeCloud::start(FakeOptions {
        swift_listing_limit: 3,
        ..FakeOptions::default()
    })
    .await;
    let all: Vec<String> = (1..=7).map(|i| format!("part-{i:04}")).collect();
    for (i, name) in all.iter().enumerate() {
        fake.swift_put(CONTAINER, name, binary(300 + i, i as u64));
    }
    let cli = Cli::new(&fake).await;

    let first_page = cli.json(&["object", "list", CONTAINER]).await;
    assert_eq!(
        names_of(&first_page),
        all[..3],
        "without --all the CLI shows one server page: {first_page}"
    );
    let listed = cli.json(&["object", "list", CONTAINER, "--all"]).await;
    assert_eq!(names_of(&listed), all, "{listed}");
    let marker_requests: Vec<String> = fake
        .log()
        .iter()
        .filter(|l| l.method == Method::GET && l.path.contains("marker=part-"))
        .map(|l| l.path.clone())
        .collect();
    assert!(
        marker_requests.len() >= 2,
        "--all follows markers: {marker_requests:?}"
    );
    let window = cli
        .json(&[
            "object",
            "list",
            CONTAINER,
            "--limit",
            "2",
            "--marker",
            "part-0002",
        ])
        .await;
    assert_eq!(names_of(&window), ["part-0003", "part-0004"], "{window}");

    // `container delete --recursive` lists one page only: past the listing limit it
    // leaves objects behind and the container's DELETE is refused
    let (ok, _, stderr) = cli
        .run(&["container", "delete", "--recursive", CONTAINER])
        .await;
    assert!(!ok && stderr.contains("409"), "{stderr}");
    let left: Vec<String> = fake
        .swift_objects(CONTAINER)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        left,
        all[3..],
        "the first page was deleted, the rest is left"
    );
}

/// A raw Swift client: a token from Keystone and the object-store URL from its catalog.
struct Swift {
    http: reqwest::Client,
    token: String,
    url: String,
}

impl Swift {
    async fn login(fake: &FakeCloud) -> Swift {
        let http = reqwest::Client::new();
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
        let body: Value = response.json().await.unwrap();
        let swift = body["token"]["catalog"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["type"] == "object-store")
            .unwrap_or_else(|| panic!("no object-store in the catalog: {body}"));
        assert_eq!(swift["name"], "swift");
        let url = swift["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["interface"] == "public")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(url.ends_with("/swift/v1/AUTH_project-web"), "{url}");
        assert_eq!(url, fake.swift_url());
        Swift { http, token, url }
    }

    /// A request for `path` under the account (`""` is the account itself).
    fn at(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.is_empty() {
            self.url.clone()
        } else {
            format!("{}/{path}", self.url)
        };
        self.http
            .request(method, url)
            .header("X-Auth-Token", &self.token)
    }

    async fn status(&self, method: Method, path: &str) -> StatusCode {
        self.at(method, path).send().await.unwrap().status()
    }

    async fn create_container(&self, name: &str) {
        let status = self.status(Method::PUT, name).await;
        assert_eq!(status, StatusCode::CREATED, "PUT {name}");
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn object_put_with_a_wrong_etag_is_422_and_stores_nothing() {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let swift = Swift::login(&fake).await;
    swift.create_container(CONTAINER).await;
    assert_eq!(
        swift.status(Method::PUT, CONTAINER).await,
        StatusCode::ACCEPTED,
        "a second PUT of a container is 202"
    );
    let body = binary(4096, 3);
    let path = format!("{CONTAINER}/part-0001");
    let refused = swift
        .at(Method::PUT, &path)
        .header("ETag", "00000000000000000000000000000000")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("Unprocessable Entity"));
    assert!(
        fake.swift_objects(CONTAINER).is_empty(),
        "nothing is stored when the ETag does not match"
    );

    let ours = fake_free_md5(&body).await;
    let stored = swift
        .at(Method::PUT, &path)
        .header("ETag", format!("\"{}\"", ours.to_uppercase()))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        stored.status(),
        StatusCode::CREATED,
        "quotes and case do not matter"
    );
    assert_eq!(header(&stored, "etag"), ours, "a bare lower-case MD5");
    assert!(header(&stored, "x-trans-id").starts_with("tx"));
    assert_eq!(fake.swift_object(CONTAINER, "part-0001"), Some(body));
}

/// MD5 by coreutils, through a temporary file.
async fn fake_free_md5(body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body");
    std::fs::write(&file, body).unwrap();
    md5sum(&file).await
}

#[tokio::test]
async fn binary_objects_round_trip_with_ranges_metadata_and_conditions() {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let swift = Swift::login(&fake).await;
    swift.create_container(CONTAINER).await;
    let all_bytes: Vec<u8> = (0..=255).collect();
    let path = format!("{CONTAINER}/dumps/all-bytes.bin");
    let put = swift
        .at(Method::PUT, &path)
        .header("Content-Type", "application/x-triad-part")
        .header("X-Object-Meta-Sha256", "abc123")
        .body(all_bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(header(&put, "etag"), ALL_BYTES_MD5);

    let got = swift.at(Method::GET, &path).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(header(&got, "etag"), ALL_BYTES_MD5);
    assert_eq!(header(&got, "content-length"), "256");
    assert_eq!(header(&got, "content-type"), "application/x-triad-part");
    assert_eq!(header(&got, "x-object-meta-sha256"), "abc123");
    assert!(header(&got, "last-modified").ends_with(" GMT"));
    assert_eq!(got.bytes().await.unwrap().to_vec(), all_bytes);

    let head = swift.at(Method::HEAD, &path).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        header(&head, "content-length"),
        "256",
        "HEAD tells the size"
    );
    assert_eq!(header(&head, "etag"), ALL_BYTES_MD5);
    assert!(head.bytes().await.unwrap().is_empty());

    let ranges = [
        ("bytes=10-19", 10..20, "bytes 10-19/256"),
        ("bytes=-4", 252..256, "bytes 252-255/256"),
        ("bytes=250-", 250..256, "bytes 250-255/256"),
    ];
    for (range, span, content_range) in ranges {
        let part = swift
            .at(Method::GET, &path)
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&part, "content-range"), content_range);
        assert_eq!(part.bytes().await.unwrap().to_vec(), all_bytes[span]);
    }
    let past_end = swift
        .at(Method::GET, &path)
        .header("Range", "bytes=256-")
        .send()
        .await
        .unwrap();
    assert_eq!(past_end.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&past_end, "content-range"), "bytes */256");

    let unchanged = swift
        .at(Method::GET, &path)
        .header("If-None-Match", format!("\"{ALL_BYTES_MD5}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    let create_only = swift
        .at(Method::PUT, &path)
        .header("If-None-Match", "*")
        .body(b"other".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(create_only.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        fake.swift_object(CONTAINER, "dumps/all-bytes.bin"),
        Some(all_bytes)
    );

    // larger than axum's default body limit, with a name that needs escaping
    let large = binary(3 << 20, 4);
    let name = "dumps/2024 05/å+b.bin";
    let put = swift
        .at(Method::PUT, &format!("{CONTAINER}/{name}"))
        .body(large.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    assert_eq!(fake.swift_object(CONTAINER, name).as_ref(), Some(&large));
    let listed: Value = swift
        .at(Method::GET, CONTAINER)
        .query(&[("format", "json"), ("prefix", "dumps/2024 05/")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["name"], name, "{listed}");
    assert_eq!(listed[0]["bytes"], large.len(), "{listed}");
    let back = swift
        .at(Method::GET, &format!("{CONTAINER}/{name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap().to_vec(), large);
}

#[tokio::test]
async fn listings_answer_json_or_plain_text_and_refuse_a_limit_past_the_maximum() {
    let fake = FakeCloud::start(FakeOptions {
        swift_listing_limit: 4,
        ..FakeOptions::default()
    })
    .await;
    for name in ["a", "b/1", "b/2", "c.json"] {
        fake.swift_put(CONTAINER, name, name.as_bytes());
    }
    let swift = Swift::login(&fake).await;
    let get = |query: &'static [(&'static str, &'static str)]| {
        swift.at(Method::GET, CONTAINER).query(query).send()
    };

    let response = get(&[("format", "json")]).await.unwrap();
    assert_eq!(
        header(&response, "content-type"),
        "application/json; charset=utf-8"
    );
    assert_eq!(header(&response, "x-container-object-count"), "4");
    assert_eq!(header(&response, "x-container-bytes-used"), "13");
    let listed: Value = response.json().await.unwrap();
    assert_eq!(listed[3]["name"], "c.json");
    assert_eq!(listed[3]["bytes"], 6);
    assert_eq!(listed[3]["hash"], "f657266944ac10814bcff6a2fc69775e");
    assert_eq!(listed[3]["content_type"], "application/json");
    let modified = listed[3]["last_modified"].as_str().unwrap();
    assert_eq!(
        (modified.len(), &modified[10..11], &modified[19..20]),
        (26, "T", "."),
        "Swift's isoformat: {modified}"
    );

    let rolled: Value = get(&[("format", "json"), ("delimiter", "/")])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shape: Vec<String> = rolled
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["name"]
                .as_str()
                .or(e["subdir"].as_str())
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(shape, ["a", "b/", "c.json"], "{rolled}");
    assert_eq!(rolled[1], json!({"subdir": "b/"}));

    let plain = get(&[]).await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(header(&plain, "content-type"), "text/plain; charset=utf-8");
    assert_eq!(plain.text().await.unwrap(), "a\nb/1\nb/2\nc.json\n");
    let empty_plain = get(&[("prefix", "zzz")]).await.unwrap();
    assert_eq!(empty_plain.status(), StatusCode::NO_CONTENT);
    let empty_json = get(&[("prefix", "zzz"), ("format", "json")]).await.unwrap();
    assert_eq!(empty_json.status(), StatusCode::OK);
    assert_eq!(empty_json.text().await.unwrap(), "[]");

    let too_many = get(&[("limit", "5")]).await.unwrap();
    assert_eq!(too_many.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(too_many.text().await.unwrap(), "Maximum limit is 4");

    let head = swift.at(Method::HEAD, CONTAINER).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&head, "x-container-object-count"), "4");

    let account: Value = swift
        .at(Method::GET, "")
        .query(&[("format", "json")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(account[0]["name"], CONTAINER, "{account}");
    assert_eq!(account[0]["count"], 4, "{account}");
    assert_eq!(account[0]["bytes"], 13, "{account}");
    let head = swift.at(Method::HEAD, "").send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&head, "x-account-container-count"), "1");
    assert_eq!(header(&head, "x-account-object-count"), "4");
    assert_eq!(header(&head, "x-account-bytes-used"), "13");
}

#[tokio::test]
async fn a_missing_container_or_object_is_404_and_nothing_is_created() {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let swift = Swift::login(&fake).await;
    let put = swift
        .at(Method::PUT, "nowhere/part-0001")
        .body(b"data".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NOT_FOUND);
    assert!(put.text().await.unwrap().contains("<h1>Not Found</h1>"));
    for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
        assert_eq!(
            swift.status(method.clone(), "nowhere").await,
            StatusCode::NOT_FOUND,
            "{method} of a missing container"
        );
    }
    assert!(fake.swift_containers().is_empty());
    swift.create_container(CONTAINER).await;
    for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
        assert_eq!(
            swift
                .status(method.clone(), &format!("{CONTAINER}/absent"))
                .await,
            StatusCode::NOT_FOUND,
            "{method} of a missing object"
        );
    }
}

#[tokio::test]
async fn a_container_holding_objects_is_not_deleted() {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let swift = Swift::login(&fake).await;
    swift.create_container(CONTAINER).await;
    fake.swift_put(CONTAINER, "part-0001", b"data");
    let refused = swift.at(Method::DELETE, CONTAINER).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(refused.text().await.unwrap().contains("Conflict"));
    assert_eq!(fake.swift_objects(CONTAINER).len(), 1, "the object stays");
    assert_eq!(
        swift
            .status(Method::DELETE, &format!("{CONTAINER}/part-0001"))
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        swift.status(Method::DELETE, CONTAINER).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        swift.status(Method::HEAD, CONTAINER).await,
        StatusCode::NOT_FOUND
    );
    assert!(fake.swift_containers().is_empty());
}

#[tokio::test]
async fn swift_without_a_valid_token_is_401_and_another_account_403() {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let swift = Swift::login(&fake).await;
    swift.create_container(CONTAINER).await;
    let http = reqwest::Client::new();
    let object = format!("{}/{CONTAINER}/part-0001", swift.url);

    let anonymous = http.get(&swift.url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&anonymous, "www-authenticate").starts_with("Keystone uri="));
    let put = http
        .put(&object)
        .body(b"data".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::UNAUTHORIZED);
    let bogus = http
        .put(&object)
        .header("X-Auth-Token", "gAAAAAnot-issued")
        .body(b"data".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);
    assert!(
        fake.swift_objects(CONTAINER).is_empty(),
        "nothing stored without a token"
    );

    let other_account = swift.url.replace("AUTH_project-web", "AUTH_project-other");
    let forbidden = http
        .get(&other_account)
        .header("X-Auth-Token", &swift.token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    fake.expire_tokens();
    assert_eq!(
        swift.status(Method::GET, CONTAINER).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_injected_503_fails_one_object_put_and_the_retry_stores_it() {
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let swift = Swift::login(&fake).await;
    swift.create_container(CONTAINER).await;
    fake.inject(Fault {
        method: Some(Method::PUT),
        path_contains: format!("/{CONTAINER}/part-"),
        kind: FaultKind::Status(503),
        times: 1,
    });
    let path = format!("{CONTAINER}/part-0001");
    let body = binary(2048, 5);
    let failed = swift
        .at(Method::PUT, &path)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(failed.text().await.unwrap().contains("Service Unavailable"));
    assert!(
        fake.swift_objects(CONTAINER).is_empty(),
        "the failed PUT stored nothing"
    );
    let retried = swift
        .at(Method::PUT, &path)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert_eq!(fake.swift_object(CONTAINER, "part-0001"), Some(body));
    assert_eq!(fake.successful(&Method::PUT, "/part-0001"), 1);
}

#[tokio::test]
async fn an_object_put_without_a_length_is_411() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fake = FakeCloud::start(FakeOptions::default()).await;
    let swift = Swift::login(&fake).await;
    swift.create_container(CONTAINER).await;
    let mut stream = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
    let request = format!(
        "PUT /swift/v1/AUTH_project-web/{CONTAINER}/part-0001 HTTP/1.1\r\nHost: {}\r\nX-Auth-Token: {}\r\nConnection: close\r\n\r\n",
        fake.addr, swift.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the fake answers within 10 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
    assert!(fake.swift_objects(CONTAINER).is_empty());
}

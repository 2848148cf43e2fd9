//! Backups to an S3 API (issue 19) against a real S3-compatible server: OpenStack Swift from
//! Debian's packages (swift-proxy with its s3api middleware and tempauth, one account,
//! container and object server, memcached), started by the test on loopback ports in a
//! tempdir and stopped by PID. Requests are signed with Signature Version 4, as for AWS.
//!
//! A backup sealed into the bucket is listed only once its manifest is put, verifies and
//! reads back byte for byte; the real `s3cmd` lists its objects with the sizes the manifest
//! names; an aborted upload and a crashed one (parts without a manifest, swept at start)
//! leave nothing listed; a part damaged in the store (rewritten with s3cmd) is named by
//! verify; a manifest of another cluster is refused; a wrong secret is refused with S3's
//! own words.

mod backup_support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backup_support::{blocking, id, noise};
use triad_backup::key::BackupKey;
use triad_backup::target::Target;
use triad_coordinator::backup::config::S3Config;
use triad_coordinator::backup::s3::{S3Store, S3Target};

const BUCKET: &str = "triad-backups";
/// tempauth's account `test`, user `tester`: S3's access key id is `account:user`.
const ACCESS_KEY: &str = "test:tester";
const SECRET: &str = "testing";
const BOUND: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Swift with s3api on loopback, stopped (every process killed by PID) when dropped.
struct S3Server {
    dir: tempfile::TempDir,
    children: Vec<(String, Child)>,
    port: u16,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!(
            "{program}: {e} (Debian's swift-proxy, swift-account, swift-container, swift-object, memcached and s3cmd: scripts/install-host-deps.sh installs them)"
        )
    })
}

impl S3Server {
    fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let root = root.as_path();
        let etc = root.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(root.join("node/d1")).unwrap();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let mut server = S3Server {
            port: free_port(),
            dir,
            children: Vec::new(),
        };
        let memcached = free_port();
        let mut ports = vec![memcached];
        for ring in ["account", "container", "object"] {
            let port = free_port();
            ports.push(port);
            let builder = etc.join(format!("{ring}.builder"));
            let builder = builder.to_str().unwrap();
            for args in [
                vec![builder, "create", "4", "1", "0"],
                vec![builder, "add", &format!("r1z1-127.0.0.1:{port}/d1"), "1"],
                vec![builder, "rebalance"],
            ] {
                let out = run("swift-ring-builder", &args);
                // rebalance: 1 is a warning (one device), 2 an error
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "swift-ring-builder {args:?}: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let conf = etc.join(format!("{ring}-server.conf"));
            std::fs::write(
                &conf,
                format!(
                    "[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {port}\ndevices = {}\nmount_check = false\nswift_dir = {}\nuser = {user}\nworkers = 0\nlog_name = {ring}\n[pipeline:main]\npipeline = {ring}-server\n[app:{ring}-server]\nuse = egg:swift#{ring}\n",
                    root.join("node").display(),
                    etc.display()
                ),
            )
            .unwrap();
        }
        let proxy = etc.join("proxy-server.conf");
        std::fs::write(
            &proxy,
            format!(
                "[DEFAULT]
bind_ip = 127.0.0.1
bind_port = {port}
swift_dir = {etc}
user = {user}
workers = 0
log_name = proxy
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = {SECRET} .admin
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached}
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
",
                port = server.port,
                etc = etc.display(),
            ),
        )
        .unwrap();
        ports.push(server.port);
        let memcached_port = memcached.to_string();
        server.spawn(
            "memcached",
            &[
                "-l",
                "127.0.0.1",
                "-p",
                &memcached_port,
                "-U",
                "0",
                "-u",
                &user,
            ],
        );
        for ring in ["account", "container", "object", "proxy"] {
            let conf = etc.join(format!("{ring}-server.conf"));
            server.spawn(&format!("swift-{ring}-server"), &[conf.to_str().unwrap()]);
        }
        // every process listening, then the proxy's own health check answering
        let deadline = Instant::now() + BOUND;
        for port in ports {
            while TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_err() {
                server.check_running();
                assert!(
                    Instant::now() < deadline,
                    "nothing listens on 127.0.0.1:{port} after {BOUND:?}: {}",
                    server.logs()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        server
    }

    fn spawn(&mut self, program: &str, args: &[&str]) {
        let log = std::fs::File::create(self.dir.path().join(format!("{program}.log"))).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{program}: {e} (scripts/install-host-deps.sh installs Swift and memcached)")
            });
        self.children.push((program.to_string(), child));
    }

    /// Panics, with the logs, when a process has exited.
    fn check_running(&mut self) {
        let exited: Vec<String> = self
            .children
            .iter_mut()
            .filter_map(|(name, child)| {
                child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|status| format!("{name} {status}"))
            })
            .collect();
        assert!(exited.is_empty(), "{exited:?} exited: {}", self.logs());
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for (name, _) in &self.children {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                .unwrap_or_default();
            out.push_str(&format!("\n--- {name}\n{text}"));
        }
        out
    }

    fn config(&self) -> S3Config {
        S3Config {
            endpoint: format!("http://127.0.0.1:{}", self.port).parse().unwrap(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_key_file: self.dir.path().join("s3.secret"),
            virtual_host: false,
        }
    }

    /// The target, its secret read from a root-only file as the coordinator does.
    fn target(&self) -> S3Target {
        let config = self.config();
        std::fs::write(&config.secret_key_file, format!("{SECRET}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            &config.secret_key_file,
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        S3Store::open(&config, tokio::runtime::Handle::current())
            .expect("the store opens")
            .target()
    }

    /// The real s3cmd, configured for this server (path style, SigV4).
    fn s3cmd(&self, args: &[&str]) -> String {
        let config = self.dir.path().join("s3cfg");
        std::fs::write(
            &config,
            format!(
                "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET}\nhost_base = 127.0.0.1:{port}\nhost_bucket = 127.0.0.1:{port}\nuse_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n",
                port = self.port
            ),
        )
        .unwrap();
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = run("s3cmd", &all);
        assert!(
            out.status.success(),
            "s3cmd {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `s3cmd ls -r`: every object's name and size.
    fn objects(&self) -> Vec<(String, u64)> {
        let prefix = format!("s3://{BUCKET}/");
        self.s3cmd(&["ls", "-r", &prefix])
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (size, url) = (fields.get(2)?, fields.get(3)?);
                Some((url.strip_prefix(&prefix)?.to_string(), size.parse().ok()?))
            })
            .collect()
    }

    fn key(&self) -> Arc<BackupKey> {
        Arc::new(BackupKey::generate_file(&self.dir.path().join("backup.key")).unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn write(path: &Path, bytes: &[u8]) -> String {
    std::fs::write(path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_s3_backup_is_listed_once_whole_and_reads_back() {
    let server = blocking(S3Server::start).await;
    let (target, key) = (server.target(), server.key());
    let database = noise(300_000, 1);
    let files = noise(200_000, 2);
    let (db, fs) = (database.clone(), files.clone());
    let (manifest, read) =
        blocking(move || backup_support::made_listed_verified_read_back(&target, &key, &db, &fs))
            .await;
    assert!(read == files, "the files stream reads back byte for byte");
    assert!(
        manifest.streams[0].parts.len() >= 4,
        "several parts: {manifest:?}"
    );

    // a real S3 client sees every part and the manifest, with the manifest's sizes
    let objects = server.objects();
    for part in manifest.streams.iter().flat_map(|s| &s.parts) {
        let name = format!("20261206T100000Z/{}", part.file);
        let found = objects
            .iter()
            .find(|(o, _)| *o == name)
            .unwrap_or_else(|| panic!("{name} not in `s3cmd ls -r`: {objects:?}"));
        assert_eq!(found.1, part.bytes, "{name}");
    }
    assert!(
        objects
            .iter()
            .any(|(o, _)| o == "20261206T100000Z/manifest.json"),
        "{objects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_s3_unfinished_damaged_foreign_and_unsigned_backups_are_never_trusted() {
    let server = blocking(S3Server::start).await;
    let (target, key) = (server.target(), server.key());
    let (target2, key2) = (target.clone(), key.clone());
    let made = blocking(move || {
        backup_support::crashed_aborted_swept_then_made(&target2, &key2).expect("made")
    })
    .await;
    let left: Vec<(String, u64)> = server
        .objects()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("20261206T110000Z/"))
        .collect();
    assert!(
        left.is_empty(),
        "only the complete backup's objects are left: {left:?}"
    );

    // one byte of a part flipped and the part put again by s3cmd: verify names the part
    let part = made.streams[0].parts[1].file.clone();
    let object = format!("20261206T110000Z/{part}");
    let (target3, key3) = (target.clone(), key.clone());
    let mut bytes = blocking({
        let target = target.clone();
        let part = part.clone();
        move || {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut target.open_part(id("20261206T110000Z"), &part).unwrap(),
                &mut bytes,
            )
            .unwrap();
            bytes
        }
    })
    .await;
    bytes[100] ^= 1;
    let damaged = write(&server.path("damaged"), &bytes);
    server.s3cmd(&["put", &damaged, &format!("s3://{BUCKET}/{object}")]);
    let error = blocking(move || {
        triad_backup::verify(&target3, id("20261206T110000Z"), &key3, "lab").unwrap_err()
    })
    .await
    .to_string();
    assert!(error.contains(part.as_str()), "{error}");

    // a backup of another cluster: refused before any part is read; deleting unlists first,
    // then removes every object
    let (target4, key4) = (target.clone(), key.clone());
    blocking(move || backup_support::foreign_refused_then_deleted(&target4, &key4)).await;
    assert!(server
        .objects()
        .iter()
        .all(|(name, _)| !name.starts_with("20261206T120000Z/")));

    // a wrong secret: refused by the store, in its own words, naming the target
    let wrong = S3Store::new(
        &server.config(),
        "not-the-secret".into(),
        tokio::runtime::Handle::current(),
    )
    .unwrap()
    .target();
    let error = blocking(move || wrong.list().unwrap_err())
        .await
        .to_string();
    assert!(
        error.contains("SignatureDoesNotMatch") && error.contains(&format!("/{BUCKET}")),
        "{error}"
    );
}

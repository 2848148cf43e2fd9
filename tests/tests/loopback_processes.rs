//! Agents and a coordinator as real processes on 127.0.2.x loopback addresses, over UDP
//! gossip and gRPC, checked with the real `triadctl`; and the binaries' answers to bad
//! configuration files.
//!
//! Needs the workspace binaries built (`make build`, which `make test` does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin_dir() -> PathBuf {
    // target/<profile>/deps/<this test> → target/<profile>
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `make build` (make test does)",
        path.display()
    );
    path
}

/// Kills the processes it holds (by PID) when dropped, also when a test panics.
struct Processes(Vec<(String, Child)>);

impl Processes {
    fn spawn(&mut self, name: &str, program: &Path, args: &[&str], log: &Path) {
        let log_file = std::fs::File::create(log).unwrap();
        let child = Command::new(program)
            .args(args)
            .env("TRIAD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        self.0.push((name.to_string(), child));
    }

    fn kill(&mut self, name: &str) {
        let (_, child) = self
            .0
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("known process");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const COORDINATOR_GRPC: &str = "http://127.0.2.100:7422";

fn agent_config(index: u8) -> String {
    format!(
        r#"[node]
id = "n{index}"
role = "core"
address = "127.0.2.{index}"

[cluster]
name = "loopback"
seeds = ["127.0.2.1:7420", "127.0.2.2:7420"]

[readiness]
# no service module is managed in this test: readiness follows draining only
require = []

[galera]
# never touch this host's mysqld or apache2
managed = false

[apache]
managed = false

# loopback processes of one test: plaintext, asked for
[tls]
insecure = true
"#
    )
}

const COORDINATOR_CONFIG: &str = r#"[cluster]
name = "loopback"
seeds = ["127.0.2.1:7420", "127.0.2.2:7420"]

[gossip]
listen = "127.0.2.100:7420"

[grpc]
listen = "127.0.2.100:7422"

[galera]
recovery = false

[metrics]
listen = "127.0.2.100:9465"

[tls]
insecure = true
"#;

fn triadctl_status() -> (i32, Option<serde_json::Value>, String) {
    let output: Output = Command::new(bin("triadctl"))
        .args([
            "--coordinator",
            COORDINATOR_GRPC,
            "--timeout",
            "2s",
            "status",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&output.stdout).ok();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status.code().unwrap_or(-1), json, stderr)
}

fn node_live(json: &serde_json::Value, id: &str) -> Option<bool> {
    json["nodes"].as_array()?.iter().find(|n| n["id"] == id)?["live"].as_bool()
}

/// Poll `triadctl status` until `accept` holds, within `timeout`.
fn wait_status(
    what: &str,
    timeout: Duration,
    accept: impl Fn(i32, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        let (code, json, stderr) = triadctl_status();
        if let Some(json) = json {
            if accept(code, &json) {
                return json;
            }
            last = format!("exit {code}: {json}");
        } else {
            last = format!("exit {code}: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}; last triadctl status: {last}");
}

#[test]
fn loopback_three_agent_processes_show_live_and_a_killed_one_dead() {
    let dir = tempfile::tempdir().unwrap();
    let mut processes = Processes(Vec::new());
    for index in 1..=3u8 {
        let config = dir.path().join(format!("agent{index}.toml"));
        std::fs::write(&config, agent_config(index)).unwrap();
        processes.spawn(
            &format!("n{index}"),
            &bin("triad-agent"),
            &["--config", config.to_str().unwrap(), "run"],
            &dir.path().join(format!("agent{index}.log")),
        );
    }
    let config = dir.path().join("coordinator.toml");
    std::fs::write(&config, COORDINATOR_CONFIG).unwrap();
    processes.spawn(
        "coordinator",
        &bin("triad-coordinator"),
        &["--config", config.to_str().unwrap(), "run"],
        &dir.path().join("coordinator.log"),
    );

    let json = wait_status(
        "three live, ready nodes and exit code 0",
        Duration::from_secs(30),
        |code, json| code == 0 && json["summary"]["live"] == 3 && json["summary"]["ready"] == 3,
    );
    assert_eq!(json["cluster"], "loopback");
    for id in ["n1", "n2", "n3"] {
        assert_eq!(node_live(&json, id), Some(true), "{id} in {json}");
    }
    let n1 = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "n1")
        .unwrap();
    assert_eq!(n1["address"], "127.0.2.1");
    assert_eq!(n1["grpc"], "127.0.2.1:7421");
    assert_eq!(n1["services"]["galera"], "not-managed");

    processes.kill("n2");
    let killed_at = Instant::now();
    let json = wait_status(
        "n2 dead and a non-zero exit code",
        Duration::from_secs(15),
        |code, json| code != 0 && node_live(json, "n2") == Some(false),
    );
    eprintln!("n2 shown dead {:?} after SIGKILL", killed_at.elapsed());
    assert_eq!(json["healthy"], false);
    assert_eq!(node_live(&json, "n1"), Some(true));
    assert_eq!(node_live(&json, "n3"), Some(true));
    // the status contract (docs/status.md): a schema version, and what is not known of a
    // dead node is null, beside when it was last seen
    assert_eq!(json["schema"], 2);
    let n2 = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "n2")
        .unwrap();
    for unknown in ["ready", "draining", "services"] {
        assert!(n2[unknown].is_null(), "{unknown} of the dead n2: {n2}");
    }
    assert!(n2["heartbeat_age_ms"].as_u64().is_some(), "{n2}");
    assert_eq!(json["degraded"], serde_json::json!(["n2 unreachable"]));

    // the text rendering says the same
    let text = Command::new(bin("triadctl"))
        .args(["--coordinator", COORDINATOR_GRPC, "status"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert_eq!(text.status.code(), Some(1));
    assert!(
        stdout.starts_with("cluster loopback: 3 nodes, 2 live, 2 ready"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .any(
                |cells| cells.starts_with(&["n2", "127.0.2.2", "core", "dead", "-"])
                    && cells.contains(&"seen")
            ),
        "{stdout}"
    );
}

#[test]
fn triadctl_without_a_coordinator_says_so_and_exits_2() {
    // every command that asks the coordinator: the same code, "could not ask"
    let commands: [&[&str]; 5] = [
        &["status"],
        &["status", "--output", "json"],
        &["recover"],
        &["recover", "--bootstrap", "n1", "--force"],
        &["scale", "--to", "4"],
    ];
    for command in commands {
        let output = Command::new(bin("triadctl"))
            .args(["--coordinator", "http://127.0.2.250:9", "--timeout", "1s"])
            .args(command)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "triadctl {command:?}: {stderr}"
        );
        assert!(
            stderr.contains("cannot reach the coordinator at http://127.0.2.250:9"),
            "triadctl {command:?}: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "triadctl {command:?} printed a result"
        );
    }
    // half the TLS arguments: nothing asked either
    let output = Command::new(bin("triadctl"))
        .args(["--ca", "/nonexistent/ca.pem", "status"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ca, --cert and --key"), "{stderr}");
}

#[test]
fn triadctl_pki_refuses_to_replace_a_ca_with_exit_1_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().to_str().unwrap();
    let init = || {
        Command::new(bin("triadctl"))
            .args(["pki", "init", "--cluster", "lab", "--dir", pki])
            .output()
            .unwrap()
    };
    let first = init();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = init();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{pki}/ca.key")) && stderr.contains("already exists"),
        "{stderr}"
    );
}

/// Runs `validate-config` of `program` on `text` and returns (exit code, stderr).
fn validate(program: &str, text: Option<&str>) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    if let Some(text) = text {
        std::fs::write(&path, text).unwrap();
    }
    let output = Command::new(bin(program))
        .args(["--config", path.to_str().unwrap(), "validate-config"])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn assert_one_error_line(program: &str, text: Option<&str>, expected: &[&str]) {
    let (code, stderr) = validate(program, text);
    assert_eq!(code, 2, "{program} exit code; stderr: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one error line expected: {stderr}"
    );
    for needle in expected {
        assert!(
            stderr.contains(needle),
            "{program}: {stderr:?} lacks {needle:?}"
        );
    }
}

#[test]
fn bad_agent_configs_give_one_clear_line_and_exit_2() {
    let good = agent_config(1);
    assert_eq!(validate("triad-agent", Some(&good)).0, 0);
    assert_one_error_line(
        "triad-agent",
        Some(&good.replace("role = \"core\"", "role = \"core\"\ncolour = \"blue\"")),
        &["config.toml:4:1", "unknown field `colour`"],
    );
    assert_one_error_line(
        "triad-agent",
        Some(&good.replace("address = \"127.0.2.1\"", "address = 12")),
        &["invalid type", "in [node]", "address = 12"],
    );
    assert_one_error_line(
        "triad-agent",
        Some(&good.replace("id = \"n1\"\n", "")),
        &["missing field `id`"],
    );
    assert_one_error_line("triad-agent", None, &["config.toml: cannot read"]);
}

#[test]
fn bad_coordinator_configs_give_one_clear_line_and_exit_2() {
    assert_eq!(validate("triad-coordinator", Some(COORDINATOR_CONFIG)).0, 0);
    assert_one_error_line(
        "triad-coordinator",
        Some(&COORDINATOR_CONFIG.replace("listen = \"127.0.2.100:7420\"", "listen = \"nowhere\"")),
        &["key `gossip.listen`", "\"nowhere\""],
    );
    assert_one_error_line(
        "triad-coordinator",
        Some(&COORDINATOR_CONFIG.replace("[grpc]", "[grpc]\nport = 7")),
        &["unknown field `port`"],
    );
    assert_one_error_line("triad-coordinator", None, &["cannot read"]);
}

/// Under systemd (`WatchdogSec=30s` in the unit) the coordinator must feed the watchdog
/// while it runs: here its notify socket is ours, and `WATCHDOG_USEC` asks for a ping every
/// 100 ms. READY=1 and then WATCHDOG=1 must arrive.
#[test]
fn loopback_coordinator_feeds_the_systemd_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let config = dir.path().join("coordinator.toml");
    std::fs::write(&config, COORDINATOR_CONFIG).unwrap();
    let log = std::fs::File::create(dir.path().join("coordinator.log")).unwrap();
    // systemd names the process the watchdog is for: the shell's pid, which `exec` hands on
    let child = Command::new("sh")
        .args([
            "-c",
            "WATCHDOG_PID=$$ exec \"$0\" --config \"$1\" run",
            bin("triad-coordinator").to_str().unwrap(),
            config.to_str().unwrap(),
        ])
        .env("TRIAD_LOG", "info")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start triad-coordinator");
    let mut processes = Processes(vec![("coordinator".into(), child)]);
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 512];
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(n) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..n]).to_string();
            let ready_before = seen.iter().any(|m: &String| m.contains("READY=1"));
            if ready_before && message.contains("WATCHDOG=1") {
                processes.kill("coordinator");
                return;
            }
            seen.push(message);
        }
    }
    let log = std::fs::read_to_string(dir.path().join("coordinator.log")).unwrap_or_default();
    panic!(
        "no WATCHDOG=1 after READY=1 within 20 s; notifications: {seen:?}; coordinator log:\n{log}"
    );
}

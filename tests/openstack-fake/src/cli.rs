//! The real `openstack` CLI (python-openstackclient and python-octaviaclient from PyPI,
//! in a venv cached at /var/tmp/triad-openstack-venv, created when missing: `python3 -m
//! venv` + `pip install`, about 30 s; needs Debian's python3-venv, which
//! scripts/install-host-deps.sh installs), to check the fake's wire format and what
//! Triad's clients leave in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

const VENV: &str = "/var/tmp/triad-openstack-venv";
/// Written last, so a half-built venv (an interrupted pip) is rebuilt.
const COMPLETE_MARK: &str = ".triad-complete";

/// Run `program` with `args` and extra `env`, bounded; (success, stdout, stderr).
pub async fn run(
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    bound: Duration,
) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(program);
    command.args(args).kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(bound, command.output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} {args:?} did not finish within {bound:?}",
                program.display()
            )
        })
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The venv's `openstack`, creating the venv when it is missing or incomplete.
pub async fn openstack_cli() -> PathBuf {
    let venv = PathBuf::from(VENV);
    let openstack = venv.join("bin/openstack");
    // tests in parallel processes share the venv: one builds it while the others wait on
    // this lock (unlocked, two found it missing on a fresh machine and built it over each
    // other: "No module named 'pbr'")
    let lock_path = format!("{VENV}.lock");
    let _lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .expect("the lock task ran")
    .unwrap_or_else(|e| panic!("locking {VENV}.lock: {e}"));
    if venv.join(COMPLETE_MARK).exists() && openstack.exists() {
        return openstack;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| !p.starts_with('/') || Path::new(p).exists())
        .unwrap();
    let (ok, _, stderr) = run(
        Path::new(python),
        &["-m", "venv", VENV],
        &[],
        Duration::from_secs(120),
    )
    .await;
    assert!(ok, "python3 -m venv {VENV} failed (install python3-venv: scripts/install-host-deps.sh): {stderr}");
    let (ok, _, stderr) = run(
        &venv.join("bin/pip"),
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "python-openstackclient",
            "python-octaviaclient",
        ],
        &[],
        Duration::from_secs(600),
    )
    .await;
    assert!(
        ok,
        "pip install python-openstackclient python-octaviaclient failed: {stderr}"
    );
    std::fs::write(venv.join(COMPLETE_MARK), "").unwrap();
    openstack
}

/// Run `openstack ARGS -f json` against `fake` (a clouds.yaml in a temporary dir) and
/// parse its output; panics with stderr when it fails.
pub async fn openstack_json(fake: &crate::FakeCloud, args: &[&str]) -> serde_json::Value {
    let openstack = openstack_cli().await;
    let dir = tempfile::tempdir().expect("temporary dir");
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, fake.clouds_yaml("fake")).expect("write clouds.yaml");
    let clouds_text = clouds.display().to_string();
    let home = dir.path().display().to_string();
    let env = [
        ("OS_CLIENT_CONFIG_FILE", clouds_text.as_str()),
        ("OS_CLOUD", "fake"),
        ("HOME", home.as_str()),
    ];
    let mut argv: Vec<&str> = args.to_vec();
    argv.extend(["-f", "json"]);
    let (ok, stdout, stderr) = run(&openstack, &argv, &env, Duration::from_secs(90)).await;
    assert!(ok, "openstack {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("openstack {args:?}: {e}: {stdout}"))
}

//! The Debian packages (issue 7): built by `make deb` (which `make test` runs before nextest;
//! a test builds them itself when they are missing), lintian-clean, holding the expected
//! files, and behaving in a fresh lab node: install leaves the units enabled and active
//! (waiting, with the shipped all-comment configurations), `systemd-analyze verify` passes,
//! a reload with a filled-in configuration starts the agent, restarting and upgrading the agent
//! leave mariadb, glusterd, apache2 and the docroot mount alone, an upgrade keeps a changed
//! conffile, and purge removes config and state but not the database or the bricks.
//!
//! Every test is named `testbed_*`, so nextest runs them one at a time with the other
//! container tests (.config/nextest.toml).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use triad_tests::host::workspace_dir;
use triad_tests::wait::{self, Poll};
use triad_tests::{cmd, triad, Node, Testbed};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Debian revision cargo-deb appends (`revision`, default "1").
const REVISION: &str = "1";
/// The version the upgrade test moves to (sorts after `VERSION-REVISION`).
const UPGRADE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+upgrade1");

const AGENT_STATUS_WAITING: &str = "waiting: edit /etc/triad/agent.toml";
const COORDINATOR_STATUS_WAITING: &str = "waiting: edit /etc/triad/coordinator.toml";
const UNIT_LIMIT: Duration = Duration::from_secs(60);

fn debian_dir() -> PathBuf {
    workspace_dir().join("target/debian")
}

fn deb_path(package: &str) -> PathBuf {
    debian_dir().join(format!("{package}_{VERSION}-{REVISION}_{}.deb", deb_arch()))
}

fn deb_arch() -> String {
    Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "amd64".into())
}

const PACKAGES: [&str; 3] = ["triad-agent", "triad-coordinator", "triadctl"];

/// The three .debs of this version; runs `make deb` when one is missing.
fn debs() -> anyhow::Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = PACKAGES.iter().map(|p| deb_path(p)).collect();
    if paths.iter().any(|p| !p.exists()) {
        eprintln!(
            "packages missing in {}; running `make deb`",
            debian_dir().display()
        );
        let status = Command::new("make")
            .arg("-C")
            .arg(workspace_dir())
            .arg("deb")
            .status()
            .context("running make deb")?;
        ensure!(status.success(), "`make deb` failed: {status}");
    }
    for p in &paths {
        ensure!(p.exists(), "{} missing after `make deb`", p.display());
    }
    Ok(paths)
}

fn run(command: &mut Command) -> anyhow::Result<String> {
    Ok(cmd::run_stdout(command)?)
}

/// `dpkg-deb -c`: the paths in the package (without the leading `.`).
fn package_files(deb: &Path) -> anyhow::Result<Vec<String>> {
    let listing = run(Command::new("dpkg-deb").arg("-c").arg(deb))?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect())
}

fn control_field(deb: &Path, field: &str) -> anyhow::Result<String> {
    run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field))
}

fn expect_files(deb: &Path, expected: &[&str]) -> anyhow::Result<()> {
    let files = package_files(deb)?;
    let missing: Vec<&&str> = expected
        .iter()
        .filter(|e| !files.iter().any(|f| f == *e))
        .collect();
    ensure!(
        missing.is_empty(),
        "{} lacks {missing:?}; it holds {files:#?}",
        deb.display()
    );
    Ok(())
}

#[test]
fn testbed_packaging_debs_are_lintian_clean_and_hold_the_expected_files() -> anyhow::Result<()> {
    let debs = debs()?;
    // lintian, failing on warnings; only tags about uploads into Debian are suppressed, each
    // with its reason in packaging/lintian-suppress
    let suppress = workspace_dir().join("packaging/lintian-suppress");
    let mut lintian = Command::new("lintian");
    lintian
        .args(["--fail-on", "error,warning", "--suppress-tags-from-file"])
        .arg(&suppress)
        .args(&debs);
    let out = lintian
        .output()
        .context("running lintian (apt-get install lintian)")?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success(),
        "lintian --fail-on error,warning failed ({}):\n{report}",
        out.status
    );
    eprintln!(
        "lintian: clean ({} bytes of informational output)",
        report.len()
    );

    let agent = &debs[0];
    expect_files(
        agent,
        &[
            "/usr/bin/triad-agent",
            "/etc/triad/agent.toml",
            "/usr/lib/systemd/system/triad-agent.service",
            "/usr/lib/sysusers.d/triad-agent.conf",
            "/usr/share/man/man8/triad-agent.8.gz",
            "/usr/share/man/man8/triad-agent-run.8.gz",
            "/usr/share/man/man8/triad-agent-validate-config.8.gz",
            "/usr/share/man/man5/triad-agent.toml.5.gz",
            "/usr/share/bash-completion/completions/triad-agent",
            "/usr/share/zsh/vendor-completions/_triad-agent",
            "/usr/share/fish/vendor_completions.d/triad-agent.fish",
            "/usr/share/doc/triad-agent/changelog.Debian.gz",
            "/usr/share/doc/triad-agent/copyright",
        ],
    )?;
    let coordinator = &debs[1];
    expect_files(
        coordinator,
        &[
            "/usr/bin/triad-coordinator",
            "/etc/triad/coordinator.toml",
            "/usr/share/triad/cloud-init/web-node.yaml",
            "/usr/lib/systemd/system/triad-coordinator.service",
            "/usr/lib/sysusers.d/triad-coordinator.conf",
            "/usr/share/man/man8/triad-coordinator.8.gz",
            "/usr/share/man/man8/triad-coordinator-run.8.gz",
            "/usr/share/man/man8/triad-coordinator-validate-config.8.gz",
            "/usr/share/man/man5/triad-coordinator.toml.5.gz",
            "/usr/share/bash-completion/completions/triad-coordinator",
            "/usr/share/zsh/vendor-completions/_triad-coordinator",
            "/usr/share/fish/vendor_completions.d/triad-coordinator.fish",
        ],
    )?;
    let ctl = &debs[2];
    expect_files(
        ctl,
        &[
            "/usr/bin/triadctl",
            "/usr/share/man/man1/triadctl.1.gz",
            "/usr/share/man/man1/triadctl-status.1.gz",
            "/usr/share/man/man1/triadctl-recover.1.gz",
            "/usr/share/man/man1/triadctl-scale.1.gz",
            "/usr/share/man/man1/triadctl-pki.1.gz",
            "/usr/share/man/man1/triadctl-pki-init.1.gz",
            "/usr/share/man/man1/triadctl-pki-issue.1.gz",
            "/usr/share/bash-completion/completions/triadctl",
            "/usr/share/zsh/vendor-completions/_triadctl",
            "/usr/share/fish/vendor_completions.d/triadctl.fish",
        ],
    )?;
    // triadctl is in its own package only, so the agent and coordinator packages can be
    // installed side by side
    for deb in [agent, coordinator] {
        ensure!(
            !package_files(deb)?.iter().any(|f| f == "/usr/bin/triadctl"),
            "{} must not ship /usr/bin/triadctl",
            deb.display()
        );
    }

    // conffiles: the /etc files, nothing else
    for (deb, conffile) in [
        (agent, "/etc/triad/agent.toml"),
        (coordinator, "/etc/triad/coordinator.toml"),
    ] {
        let conffiles = run(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"))?;
        ensure!(
            conffiles.trim() == conffile,
            "{}: conffiles {conffiles:?}",
            deb.display()
        );
        // maintainer scripts: debhelper fragments were inserted in place of #DEBHELPER#
        let postrm = run(Command::new("dpkg-deb").arg("-I").arg(deb).arg("postrm"))?;
        ensure!(
            !postrm.contains("#DEBHELPER#") && postrm.contains("deb-systemd-helper"),
            "{}: postrm without the systemd fragment:\n{postrm}",
            deb.display()
        );
    }

    // dependencies: the agent on what it manages, the coordinator on none of it
    let depends = control_field(agent, "Depends")?;
    let recommends = control_field(agent, "Recommends")?;
    for p in [
        "glusterfs-client",
        "apache2",
        "libapache2-mod-php",
        "systemd",
    ] {
        ensure!(depends.contains(p), "agent Depends lacks {p}: {depends}");
    }
    for p in [
        "mariadb-server",
        "galera-4",
        "mariadb-backup",
        "glusterfs-server",
        "openssl",
        "stunnel4",
    ] {
        ensure!(
            recommends.contains(p),
            "agent Recommends lacks {p}: {recommends}"
        );
    }
    let coordinator_relations = format!(
        "{} {}",
        control_field(coordinator, "Depends")?,
        control_field(coordinator, "Recommends").unwrap_or_default()
    );
    for p in ["mariadb", "galera", "gluster", "apache2", "php"] {
        ensure!(
            !coordinator_relations.contains(p),
            "the coordinator must not depend on {p}: {coordinator_relations}"
        );
    }

    for deb in &debs {
        let size = std::fs::metadata(deb)?.len();
        let installed = control_field(deb, "Installed-Size")?;
        eprintln!(
            "{}: {:.1} MiB package, Installed-Size {installed} KiB",
            deb.file_name().unwrap_or_default().to_string_lossy(),
            size as f64 / 1048576.0
        );
    }
    Ok(())
}

/// A filled-in /etc/triad/agent.toml for `node`. Role `web`: the agent then leaves Galera
/// alone (a one-node lab has no cluster to form), so the checks below see only what the
/// package and the unit do.
fn agent_config(node: &Node) -> String {
    format!(
        "[node]\nid = \"{name}\"\nrole = \"web\"\naddress = \"{addr}\"\n\n\
[cluster]\nname = \"{cluster}\"\nseeds = [\"{addr}:{port}\"]\n\n\
[apache]\nconfigure = false\n\n[mount]\nmanaged = false\n\n\
# one node checking the packages: plaintext, asked for\n[tls]\ninsecure = true\n",
        name = node.name,
        addr = node.addr,
        cluster = triad::CLUSTER,
        port = triad::GOSSIP_PORT,
    )
}

/// Copies `deb` into the node's /var/tmp and returns the path inside the node.
fn copy_into(node: &Node, deb: &Path) -> anyhow::Result<String> {
    let name = deb
        .file_name()
        .context("deb without a file name")?
        .to_string_lossy()
        .into_owned();
    let inside = format!("/var/tmp/{name}");
    let host = node.root().join(inside.trim_start_matches('/'));
    std::fs::copy(deb, &host)
        .with_context(|| format!("copying {} into {}", deb.display(), node.name))?;
    Ok(inside)
}

/// `systemctl show -P PROPERTY UNIT` inside the node.
fn unit_property(node: &Node, unit: &str, property: &str) -> anyhow::Result<String> {
    Ok(node.exec(&["systemctl", "show", "-P", property, unit])?)
}

/// Waits until UNIT is active and its StatusText is `status`; the error carries the journal.
fn wait_status(node: &Node, unit: &str, status: &str) -> anyhow::Result<()> {
    wait::until_default(
        &format!("{unit} on {} active with status {status:?}", node.name),
        UNIT_LIMIT,
        || {
            let active = node.unit_state(unit)?;
            let text = node
                .exec(&["systemctl", "show", "-P", "StatusText", unit])
                .unwrap_or_default();
            Ok(if active == "active" && text == status {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{active}, status {text:?}"))
            })
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}\njournal:\n{}", triad::journal_tail(node, unit, 30)))
}

fn ensure_enabled(node: &Node, unit: &str) -> anyhow::Result<()> {
    let out = node.exec_output(&["systemctl", "is-enabled", unit], Duration::from_secs(15))?;
    let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(state == "enabled", "{unit} is {state:?}, not enabled");
    Ok(())
}

/// `systemd-analyze verify` on the installed unit (it checks ExecStart binaries and the man
/// pages named in Documentation=, so it runs against the installed package). The lab image is
/// a minbase Debian without man-db; there the man pages are checked as files and verify runs
/// with `--man=no`.
fn verify_unit(node: &Node, unit: &str, man_pages: &[&str]) -> anyhow::Result<()> {
    let has_man = node.exec(&["sh", "-c", "command -v man"]).is_ok();
    if !has_man {
        for page in man_pages {
            node.exec(&["test", "-f", page])
                .with_context(|| format!("{unit} documents {page}, which is not installed"))?;
        }
    }
    let path = format!("/usr/lib/systemd/system/{unit}");
    let mut args = vec!["systemd-analyze", "verify"];
    if !has_man {
        args.push("--man=no");
    }
    args.push(&path);
    let out = node.exec_output(&args, Duration::from_secs(60))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && text.trim().is_empty(),
        "{} on {}: {} {text}",
        args.join(" "),
        node.name,
        out.status
    );
    Ok(())
}

#[test]
fn testbed_packaging_fresh_node_install_waits_then_runs_and_coordinator_purges(
) -> anyhow::Result<()> {
    let debs = debs()?;
    let tb = Testbed::for_test(1)?;
    let node = tb.node("n1")?;
    let inside: Vec<String> = debs
        .iter()
        .map(|d| copy_into(node, d))
        .collect::<anyhow::Result<_>>()?;

    // the agent (and triadctl, which it recommends) with the shipped configuration
    node.exec_limit(
        &["dpkg", "-i", &inside[2], &inside[0]],
        Duration::from_secs(120),
    )?;
    ensure_enabled(node, "triad-agent")?;
    wait_status(node, "triad-agent", AGENT_STATUS_WAITING)?;
    verify_unit(
        node,
        "triad-agent.service",
        &[
            "/usr/share/man/man8/triad-agent.8.gz",
            "/usr/share/man/man5/triad-agent.toml.5.gz",
        ],
    )?;
    let version = node.exec(&["triad-agent", "--version"])?;
    ensure!(version == format!("triad-agent {VERSION}"), "{version:?}");
    let validate = node.exec(&["triad-agent", "validate-config"])?;
    ensure!(
        validate.contains("not configured yet"),
        "validate-config on the shipped file: {validate:?}"
    );
    // waiting means idle: no gossip socket, no gRPC listener
    let sockets = node.exec(&["ss", "-H", "-lntup"])?;
    ensure!(
        !sockets.contains("triad-agent"),
        "the waiting agent opened sockets:\n{sockets}"
    );
    let ctl = node.exec(&["triadctl", "--version"])?;
    ensure!(ctl == format!("triadctl {VERSION}"), "{ctl:?}");

    // the coordinator next to it: its own user, hardened unit, waiting as well
    node.exec_limit(&["dpkg", "-i", &inside[1]], Duration::from_secs(120))?;
    ensure_enabled(node, "triad-coordinator")?;
    wait_status(node, "triad-coordinator", COORDINATOR_STATUS_WAITING)?;
    verify_unit(
        node,
        "triad-coordinator.service",
        &[
            "/usr/share/man/man8/triad-coordinator.8.gz",
            "/usr/share/man/man5/triad-coordinator.toml.5.gz",
            "/usr/share/man/man1/triadctl.1.gz",
        ],
    )?;
    let pid = unit_property(node, "triad-coordinator", "MainPID")?;
    let user = node.exec(&["ps", "-o", "user:32=", "-p", &pid])?;
    ensure!(
        user == "triad-coordinator",
        "the coordinator runs as {user:?}"
    );
    let version = node.exec(&["triad-coordinator", "--version"])?;
    ensure!(
        version == format!("triad-coordinator {VERSION}"),
        "{version:?}"
    );
    let validate = node.exec(&["triad-coordinator", "validate-config"])?;
    ensure!(validate.contains("not configured yet"), "{validate:?}");
    let state_dir = node.exec(&["stat", "-c", "%U %a", "/var/lib/triad-coordinator"])?;
    ensure!(
        state_dir == "triad-coordinator 700",
        "StateDirectory /var/lib/triad-coordinator is {state_dir:?}"
    );
    let security = node
        .exec_output(
            &[
                "systemd-analyze",
                "security",
                "--no-pager",
                "triad-coordinator.service",
            ],
            Duration::from_secs(30),
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if let Some(line) = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
    {
        eprintln!("triad-coordinator.service: {}", line.trim());
    }

    // installed footprint, for the record
    let footprint = node.sh(
        "dpkg-query -W -f '${Package} ${Installed-Size} KiB installed\\n' triad-agent triad-coordinator triadctl; \
         for u in triad-agent triad-coordinator; do echo \"$u RSS $(ps -o rss= -p $(systemctl show -P MainPID $u)) KiB (waiting)\"; done",
    )?;
    eprintln!("{footprint}");

    // filling in the agent's configuration and reloading starts it for real
    node.write_file("/etc/triad/agent.toml", &agent_config(node))?;
    let waiting_pid = unit_property(node, "triad-agent", "MainPID")?;
    node.exec(&["systemctl", "reload", "triad-agent"])?;
    wait_status(
        node,
        "triad-agent",
        &format!("running: node n1, cluster {}", triad::CLUSTER),
    )?;
    let rss = node.sh("ps -o rss= -p $(systemctl show -P MainPID triad-agent)")?;
    eprintln!("triad-agent RSS {rss} KiB (running, gossiping alone)");
    let sockets = node.exec(&["ss", "-H", "-lntup"])?;
    ensure!(
        sockets.contains("triad-agent"),
        "the running agent has no socket (the idle check above would prove nothing):\n{sockets}"
    );
    ensure!(
        unit_property(node, "triad-agent", "MainPID")? == waiting_pid,
        "reload must not restart the agent"
    );
    // a broken edit fails the reload (ExecReload's validate-config) and the agent keeps running
    node.sh("printf '\\nbogus = 1\\n' >> /etc/triad/agent.toml")?;
    let reload = node.exec_output(
        &["systemctl", "reload", "triad-agent"],
        Duration::from_secs(30),
    )?;
    ensure!(
        !reload.status.success(),
        "reload accepted an invalid configuration"
    );
    ensure!(
        node.unit_state("triad-agent")? == "active",
        "agent died on a bad reload"
    );

    // the coordinator configured: it runs inside its hardened unit, sees the agent through
    // gossip and answers triadctl
    node.write_file(
        "/etc/triad/coordinator.toml",
        &format!(
            "[cluster]\nname = \"{cluster}\"\nseeds = [\"{addr}:{port}\"]\n\n\
[gossip]\nlisten = \"{addr}:7430\"\n\n[galera]\nrecovery = false\n\n[tls]\ninsecure = true\n",
            cluster = triad::CLUSTER,
            addr = node.addr,
            port = triad::GOSSIP_PORT,
        ),
    )?;
    node.exec(&["systemctl", "reload", "triad-coordinator"])?;
    wait_status(
        node,
        "triad-coordinator",
        &format!("running: cluster {}", triad::CLUSTER),
    )?;
    let status = wait::until_default("triadctl status in n1 to list node n1", UNIT_LIMIT, || {
        let out = node.exec_output(
            &["triadctl", "status", "--output", "json"],
            Duration::from_secs(15),
        )?;
        let json = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(if json.contains("\"n1\"") {
            Poll::Ready(json)
        } else {
            Poll::Pending(format!(
                "{} {json}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        })
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\njournal:\n{}",
            triad::journal_tail(node, "triad-coordinator", 30)
        )
    })?;
    eprintln!("triadctl status --output json (in n1):\n{status}");

    // purge of the coordinator: config and state go, the user stays (Debian policy)
    node.exec_limit(
        &["dpkg", "--purge", "triad-coordinator"],
        Duration::from_secs(60),
    )?;
    let left = node.sh(
        "for p in /etc/triad/coordinator.toml /var/lib/triad-coordinator /usr/bin/triad-coordinator; do [ -e $p ] && echo $p; done; true",
    )?;
    ensure!(left.is_empty(), "purge left {left}");
    node.exec(&["getent", "passwd", "triad-coordinator"])?;
    ensure!(
        node.exec(&["test", "-f", "/etc/triad/agent.toml"]).is_ok(),
        "purging the coordinator removed the agent's config"
    );

    tb.teardown_and_verify()?;
    Ok(())
}

/// A single-brick volume `www` mounted on /var/www/html by a systemd mount unit (the way
/// the design mounts the docroot), plus mariadb and apache2: the services an agent manages.
fn start_managed_services(node: &Node) -> anyhow::Result<()> {
    node.exec(&["systemctl", "start", "mariadb", "glusterd", "apache2"])?;
    for unit in ["mariadb", "glusterd", "apache2"] {
        node.wait_unit(unit, "active", UNIT_LIMIT)?;
    }
    node.exec_limit(
        &[
            "gluster",
            "--mode=script",
            "volume",
            "create",
            "www",
            "n1:/bricks/www",
            "force",
        ],
        Duration::from_secs(60),
    )?;
    node.exec_limit(
        &["gluster", "--mode=script", "volume", "start", "www"],
        Duration::from_secs(60),
    )?;
    node.write_file(
        "/etc/systemd/system/var-www-html.mount",
        "[Unit]\nDescription=docroot on the Gluster volume www\nAfter=glusterd.service\n\n\
[Mount]\nWhat=localhost:/www\nWhere=/var/www/html\nType=glusterfs\nOptions=_netdev\n",
    )?;
    node.sh("systemctl daemon-reload && systemctl start var-www-html.mount")?;
    node.wait_unit("var-www-html.mount", "active", UNIT_LIMIT)?;
    node.exec(&["sh", "-c", "echo docroot > /var/www/html/marker"])?;
    node.exec(&[
        "mariadb",
        "-e",
        "CREATE DATABASE IF NOT EXISTS app; CREATE TABLE IF NOT EXISTS app.t (v INT); INSERT INTO app.t VALUES (1)",
    ])?;
    Ok(())
}

/// (unit, MainPID or the FUSE client's PID) of every managed service.
fn managed_pids(node: &Node) -> anyhow::Result<Vec<(String, String)>> {
    let mut pids = Vec::new();
    for unit in ["mariadb", "glusterd", "apache2"] {
        let pid = unit_property(node, unit, "MainPID")?;
        ensure!(pid != "0", "{unit} has no main process");
        pids.push((unit.to_string(), pid));
    }
    let fuse = node.sh(
        "pgrep -o -f 'glusterfs.*--volfile-id=/?www.*/var/www/html' || pgrep -o -x glusterfs",
    )?;
    pids.push(("docroot FUSE client".to_string(), fuse));
    Ok(pids)
}

fn ensure_managed_untouched(
    node: &Node,
    before: &[(String, String)],
    what: &str,
) -> anyhow::Result<()> {
    let after = managed_pids(node)?;
    ensure!(
        after == before,
        "{what} disturbed managed services: before {before:?}, after {after:?}"
    );
    for unit in ["mariadb", "glusterd", "apache2", "var-www-html.mount"] {
        let state = node.unit_state(unit)?;
        ensure!(state == "active", "after {what}: {unit} is {state}");
    }
    let marker = node.exec(&["cat", "/var/www/html/marker"])?;
    ensure!(
        marker == "docroot",
        "after {what}: docroot marker reads {marker:?}"
    );
    Ok(())
}

/// The "next" agent package: this build repacked with a bumped version and a shipped
/// agent.toml that differs from the previous one (as a new release's may), in its own
/// directory so the testbed's "newest target/debian/triad-agent_*.deb" stays this build.
/// (Not `cargo deb --deb-version`: cargo-deb deletes the other versions of the package from
/// target/debian whatever `--output` says.)
fn build_upgrade_package(current: &Path) -> anyhow::Result<PathBuf> {
    let out_dir = workspace_dir().join("target/debian-upgrade");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir)?;
    let tree = out_dir.join("tree");
    run(Command::new("dpkg-deb").arg("-R").arg(current).arg(&tree))?;
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control)?;
    let old_version = format!("Version: {VERSION}-{REVISION}\n");
    ensure!(
        text.contains(&old_version),
        "{} has no {old_version:?}",
        control.display()
    );
    std::fs::write(
        &control,
        text.replace(
            &old_version,
            &format!("Version: {UPGRADE_VERSION}-{REVISION}\n"),
        ),
    )?;
    let conf = tree.join("etc/triad/agent.toml");
    let mut shipped = std::fs::read_to_string(&conf)?;
    shipped.push_str("# (changed in the upgrade test's package)\n");
    std::fs::write(&conf, shipped)?;
    if tree.join("DEBIAN/md5sums").exists() {
        run(Command::new("sh").current_dir(&tree).args([
            "-c",
            "find . -path ./DEBIAN -prune -o -type f -printf '%P\\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums",
        ]))?;
    }
    let repacked = out_dir.join(format!(
        "triad-agent_{UPGRADE_VERSION}-{REVISION}_{}.deb",
        deb_arch()
    ));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&tree)
        .arg(&repacked))?;
    std::fs::remove_dir_all(&tree)?;
    Ok(repacked)
}

#[test]
fn testbed_packaging_agent_restart_upgrade_and_purge_leave_managed_services_and_data(
) -> anyhow::Result<()> {
    let debs = debs()?;
    let upgrade = build_upgrade_package(&debs[0])?;
    let tb = Testbed::for_test(1)?;
    let node = tb.node("n1")?;
    start_managed_services(node)?;
    let before = managed_pids(node)?;

    // as cloud-init does on a new server: the configuration first, then the package (apt under
    // cloud-init passes --force-confold): the agent starts configured, no waiting, no prompt
    let agent_deb = copy_into(node, &debs[0])?;
    let ctl_deb = copy_into(node, &debs[2])?;
    let config = agent_config(node);
    node.write_file("/etc/triad/agent.toml", &config)?;
    node.exec_limit(
        &[
            "dpkg",
            "-i",
            "--force-confdef",
            "--force-confold",
            &ctl_deb,
            &agent_deb,
        ],
        Duration::from_secs(120),
    )?;
    let running = format!("running: node n1, cluster {}", triad::CLUSTER);
    wait_status(node, "triad-agent", &running)?;
    ensure!(
        node.exec(&["cat", "/etc/triad/agent.toml"])? == config.trim(),
        "installing over a pre-written configuration replaced it"
    );
    // the shipped default was left beside it; drop it so the upgrade's is recognisable
    node.exec(&["rm", "-f", "/etc/triad/agent.toml.dpkg-dist"])?;
    ensure_managed_untouched(node, &before, "installing and starting the agent")?;

    // restart, as every upgrade does: the managed services keep their processes
    let pid = unit_property(node, "triad-agent", "MainPID")?;
    node.exec(&["systemctl", "restart", "triad-agent"])?;
    wait_status(node, "triad-agent", &running)?;
    ensure!(
        unit_property(node, "triad-agent", "MainPID")? != pid,
        "agent not restarted"
    );
    ensure_managed_untouched(node, &before, "restarting the agent")?;
    // stop as well (KillMode=process): nothing else goes down with it
    node.exec(&["systemctl", "stop", "triad-agent"])?;
    node.wait_unit("triad-agent", "inactive", UNIT_LIMIT)?;
    ensure_managed_untouched(node, &before, "stopping the agent")?;
    node.exec(&["systemctl", "start", "triad-agent"])?;
    wait_status(node, "triad-agent", &running)?;

    // upgrade to the next version: the changed conffile is kept (the new default lands next
    // to it as .dpkg-dist), the agent is restarted on the new version, services untouched
    let pid = unit_property(node, "triad-agent", "MainPID")?;
    let upgrade_inside = copy_into(node, &upgrade)?;
    node.exec_limit(
        &[
            "dpkg",
            "-i",
            "--force-confdef",
            "--force-confold",
            &upgrade_inside,
        ],
        Duration::from_secs(120),
    )?;
    let installed = node.exec(&["dpkg-query", "-W", "-f", "${Version}", "triad-agent"])?;
    ensure!(
        installed == format!("{UPGRADE_VERSION}-{REVISION}"),
        "installed version {installed:?}"
    );
    let kept = node.exec(&["cat", "/etc/triad/agent.toml"])?;
    ensure!(
        kept == config.trim(),
        "the upgrade replaced the changed conffile:\n{kept}"
    );
    node.exec(&["test", "-f", "/etc/triad/agent.toml.dpkg-dist"])
        .context("the new default should be left as agent.toml.dpkg-dist")?;
    wait_status(node, "triad-agent", &running)?;
    ensure!(
        unit_property(node, "triad-agent", "MainPID")? != pid,
        "the upgrade did not restart the agent"
    );
    ensure_managed_untouched(node, &before, "upgrading the agent")?;

    // purge: config and state go; the database, the brick and the docroot stay
    node.exec(&["test", "-d", "/var/lib/triad"])
        .context("StateDirectory /var/lib/triad missing")?;
    node.exec_limit(&["dpkg", "--purge", "triad-agent"], Duration::from_secs(60))?;
    let left = node.sh(
        "for p in /etc/triad /var/lib/triad /usr/bin/triad-agent /usr/lib/systemd/system/triad-agent.service; do [ -e $p ] && echo $p; done; true",
    )?;
    ensure!(left.is_empty(), "purge left {left}");
    let rows = node.exec(&["mariadb", "-N", "-e", "SELECT COUNT(*) FROM app.t"])?;
    ensure!(
        rows == "1",
        "the database lost its rows after purge: {rows:?}"
    );
    node.exec(&["test", "-d", "/bricks/www"])
        .context("purge removed the brick")?;
    node.exec(&["test", "-d", "/var/lib/glusterd/vols/www"])
        .context("purge removed glusterd's volume")?;
    ensure_managed_untouched(node, &before, "purging the agent")?;
    if let Ok(state) = node.exec(&["systemctl", "is-active", "triad-agent"]) {
        bail!("triad-agent still {state} after purge");
    }

    tb.teardown_and_verify()?;
    Ok(())
}

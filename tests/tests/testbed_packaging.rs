//! The Debian packages (issue 7): built by `make deb` (which `make test` runs before nextest;
//! a test builds them itself when they are missing), lintian-clean, holding the expected
//! files, and behaving in a fresh lab node: install leaves the units enabled and active
//! (waiting, with the shipped all-comment configurations), `systemd-analyze verify` passes,
//! a reload with a filled-in configuration starts the agent, restarting and upgrading the agent
//! leave mariadb, glusterd, apache2 and the docroot mount alone, an upgrade keeps a changed
//! conffile, and purge removes config and state but not the database or the bricks. The
//! coordinator package drives an HAProxy on its own node through Debian's admin socket (its
//! user in group haproxy, by the postinst or the haproxy trigger) and finds
//! /etc/openstack/clouds.yaml from inside its hardened unit.
//!
//! Every test is named `testbed_*`, so nextest runs them one at a time with the other
//! container tests (.config/nextest.toml).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use triad_tests::host::workspace_dir;
use triad_tests::wait::{self, Poll};
use triad_tests::{cmd, triad, LabError, Node, Testbed};

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
            "/usr/share/triad/prometheus/triad-alerts.yml",
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

    // the coordinator joins group haproxy (Debian's admin socket) at configure and when
    // haproxy is installed later: the postinst and a file trigger on haproxy's binary
    let triggers = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(coordinator)
        .arg("triggers"))?;
    ensure!(
        triggers
            .lines()
            .any(|l| l.trim() == "interest-noawait /usr/sbin/haproxy"),
        "coordinator triggers:\n{triggers}"
    );
    let postinst = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(coordinator)
        .arg("postinst"))?;
    ensure!(
        postinst.contains("usermod -a -G haproxy triad-coordinator")
            && postinst.contains("triggered)")
            && !postinst.contains("#DEBHELPER#")
            && postinst.contains("deb-systemd-invoke"),
        "coordinator postinst:\n{postinst}"
    );
    let coordinator_depends = control_field(coordinator, "Depends")?;
    ensure!(
        coordinator_depends.contains("passwd"),
        "coordinator Depends lacks passwd (usermod): {coordinator_depends}"
    );

    // dependencies: the agent on what it manages, the coordinator on none of it
    let depends = control_field(agent, "Depends")?;
    let recommends = control_field(agent, "Recommends")?;
    for p in [
        "glusterfs-client",
        "apache2",
        "libapache2-mod-php",
        "systemd",
        "iproute2",
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

/// Debian's HAProxy admin socket: the stock /etc/haproxy/haproxy.cfg has `stats socket
/// /run/haproxy/admin.sock mode 660 level admin`, in the setgid directory /run/haproxy, so
/// the socket belongs to group haproxy. It is also `[balancer.haproxy] admin_socket`'s default.
const HAPROXY_SOCKET: &str = "/run/haproxy/admin.sock";
/// Triad's backend in the node's HAProxy (empty in haproxy.cfg: the coordinator fills it).
const HAPROXY_BACKEND: &str = "be_triad";

/// Appended to the stock haproxy.cfg: a frontend on the node's loopback and Triad's backend,
/// with no server (the coordinator adds them at run time).
const HAPROXY_TRIAD: &str = "
# Triad's backend: the coordinator adds and removes its servers through the admin socket
frontend fe_triad
    bind 127.0.0.1:8080
    default_backend be_triad

backend be_triad
    balance roundrobin
    option httpchk GET /health.html
";

/// /etc/triad/agent.toml for a web node of the two-node test below: the cluster seeded at
/// n1, Apache's default site (not configured by the agent) and readiness on Apache alone, so
/// a node is ready when /var/www/html/health.html answers.
fn serving_agent_config(node: &Node, seed: &Node) -> String {
    format!(
        "[node]\nid = \"{name}\"\nrole = \"web\"\naddress = \"{addr}\"\n\n\
[cluster]\nname = \"{cluster}\"\nseeds = [\"{seed}:{port}\"]\n\n\
[apache]\nconfigure = false\n\n[mount]\nmanaged = false\n\n\
# ready = Apache serves /health.html (no Galera, no volume in this test)\n\
[readiness]\nrequire = [\"apache\"]\n\n\
# plaintext, asked for\n[tls]\ninsecure = true\n",
        name = node.name,
        addr = node.addr,
        seed = seed.addr,
        cluster = triad::CLUSTER,
        port = triad::GOSSIP_PORT,
    )
}

/// One server of `show servers state` (HAProxy's runtime API through the admin socket).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HaproxyServer {
    name: String,
    address: String,
    /// srv_admin_state: 0 in service, a maint bit otherwise.
    admin_state: String,
}

/// The servers of Triad's backend, asked as root with socat over the admin socket.
fn haproxy_servers(node: &Node) -> triad_tests::Result<Vec<HaproxyServer>> {
    let answer = node.sh(&format!(
        "echo 'show servers state {HAPROXY_BACKEND}' | socat -t 5 - UNIX-CONNECT:{HAPROXY_SOCKET}"
    ))?;
    // a version line ("1"), a "# be_id be_name srv_id srv_name srv_addr srv_op_state
    // srv_admin_state ..." header, then one line per server
    Ok(answer
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 6 && f[1] == HAPROXY_BACKEND)
        .map(|f| HaproxyServer {
            name: f[3].to_string(),
            address: f[4].to_string(),
            admin_state: f[6].to_string(),
        })
        .collect())
}

/// `triadctl status --output json` inside the node (exit 1, a degraded cluster, still prints).
fn node_status_json(node: &Node) -> triad_tests::Result<serde_json::Value> {
    let out = node.exec_output(
        &["triadctl", "status", "--output", "json"],
        Duration::from_secs(15),
    )?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        LabError::Other(format!(
            "triadctl status --output json: {e}: {} {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// Waits until HAProxy's backend holds exactly `nodes`' servers, in service at each node's
/// address, and `triadctl status` shows them as the balancer's active members with no error.
fn wait_backend_is(node: &Node, nodes: &[&Node], what: &str) -> anyhow::Result<Duration> {
    let t0 = std::time::Instant::now();
    let mut want: Vec<HaproxyServer> = nodes
        .iter()
        .map(|n| HaproxyServer {
            name: n.name.clone(),
            address: n.addr.clone(),
            admin_state: "0".into(),
        })
        .collect();
    want.sort_by(|a, b| a.name.cmp(&b.name));
    let mut want_members: Vec<String> =
        nodes.iter().map(|n| format!("{} active", n.name)).collect();
    want_members.sort();
    wait::until_default(what, UNIT_LIMIT, || {
        let mut servers = haproxy_servers(node)?;
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        let status = node_status_json(node)?;
        let balancer = &status["balancer"];
        let mut members: Vec<String> = balancer["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        members.sort();
        Ok(
            if servers == want
                && members == want_members
                && balancer["kind"] == "haproxy"
                && balancer["last_error"].is_null()
            {
                Poll::Ready(t0.elapsed())
            } else {
                Poll::Pending(format!(
                    "haproxy {servers:?}; triadctl status balancer {balancer}"
                ))
            },
        )
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\njournal:\n{}",
            triad::journal_tail(node, "triad-coordinator", 30)
        )
    })
}

/// Waits until requests through HAProxy's frontend in `node` have been served by every one
/// of `names` (each node's health page names it; roundrobin spreads the requests once
/// HAProxy's own checks have passed).
fn wait_served_by(node: &Node, names: &[&str]) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    wait::until_default(
        &format!(
            "requests through HAProxy in {} served by {names:?}",
            node.name
        ),
        UNIT_LIMIT,
        || {
            let answer = node.sh(
                "printf 'GET /health.html HTTP/1.0\\r\\nHost: triad\\r\\n\\r\\n' | socat -t 5 - TCP:127.0.0.1:8080",
            )?;
            if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                if let Some(body) = answer.lines().last() {
                    seen.insert(body.trim().to_string());
                }
            }
            Ok(if names.iter().all(|n| seen.contains(*n)) {
                Poll::Ready(())
            } else {
                Poll::Pending(format!(
                    "served by {seen:?}; last answer {:?}",
                    answer.lines().next().unwrap_or_default()
                ))
            })
        },
    )?;
    Ok(())
}

/// The installed coordinator package, as it comes, drives HAProxy on its own node: HAProxy
/// from the image with Debian's stock haproxy.cfg (its admin socket untouched, a backend for
/// Triad appended), the coordinator .deb installed after it (the postinst puts
/// triad-coordinator into group haproxy), agents on n1 and n2 as the members. The hardened
/// unit (PrivateUsers=yes included) reaches the socket through that group: the servers
/// appear, serve, leave when a node stops serving and come back; without the group the
/// balancer reports the permission error, and haproxy (re)installed (its file trigger)
/// restores the group and restarts the coordinator. Then clouds.yaml where packaging/README.md
/// puts it, /etc/openstack/clouds.yaml 0640 root:triad-coordinator, is found by the
/// coordinator inside its sandbox.
#[test]
fn testbed_packaging_coordinator_deb_drives_a_local_haproxy() -> anyhow::Result<()> {
    let debs = debs()?;
    let tb = Testbed::for_test(2)?;
    let n1 = tb.node("n1")?;
    let n2 = tb.node("n2")?;

    // HAProxy on n1 as Debian ships it, plus Triad's (empty) backend
    let stock = node_file(n1, "/etc/haproxy/haproxy.cfg")?;
    ensure!(
        stock.contains(&format!(
            "stats socket {HAPROXY_SOCKET} mode 660 level admin"
        )),
        "the image's haproxy.cfg is not Debian's stock one:\n{stock}"
    );
    n1.write_file(
        "/etc/haproxy/haproxy.cfg",
        &format!("{stock}{HAPROXY_TRIAD}"),
    )?;
    n1.exec(&["haproxy", "-c", "-q", "-f", "/etc/haproxy/haproxy.cfg"])?;
    n1.exec(&["systemctl", "enable", "--now", "haproxy"])?;
    n1.wait_unit("haproxy", "active", UNIT_LIMIT)?;
    let socket = wait::until_value(
        &format!("{HAPROXY_SOCKET} in n1"),
        UNIT_LIMIT,
        || n1.exec(&["stat", "-c", "%U:%G %a", HAPROXY_SOCKET]),
        |s| !s.is_empty(),
    )?;
    ensure!(
        socket == "root:haproxy 660",
        "Debian's admin socket is {socket:?}, not root:haproxy 660"
    );

    // agents on both nodes (with triadctl), configured before the package comes, serving
    // Apache's default site with a health page naming the node
    for node in [n1, n2] {
        let ctl = copy_into(node, &debs[2])?;
        let agent = copy_into(node, &debs[0])?;
        node.write_file("/var/www/html/health.html", &format!("{}\n", node.name))?;
        node.write_file("/etc/triad/agent.toml", &serving_agent_config(node, n1))?;
        node.exec_limit(
            &[
                "dpkg",
                "-i",
                "--force-confdef",
                "--force-confold",
                &ctl,
                &agent,
            ],
            Duration::from_secs(120),
        )?;
    }
    for node in [n1, n2] {
        wait_status(
            node,
            "triad-agent",
            &format!("running: node {}, cluster {}", node.name, triad::CLUSTER),
        )?;
    }

    // the coordinator package, after haproxy: its user joins group haproxy
    let coordinator_deb = copy_into(n1, &debs[1])?;
    n1.exec_limit(&["dpkg", "-i", &coordinator_deb], Duration::from_secs(120))?;
    let groups = n1.exec(&["id", "-nG", "triad-coordinator"])?;
    ensure!(
        groups.split_whitespace().any(|g| g == "haproxy"),
        "triad-coordinator is not in group haproxy after install: {groups:?}"
    );
    wait_status(n1, "triad-coordinator", COORDINATOR_STATUS_WAITING)?;
    let private_users = unit_property(n1, "triad-coordinator", "PrivateUsers")?;
    ensure!(
        private_users == "yes",
        "the test is meant for the shipped unit (PrivateUsers={private_users})"
    );
    // configured with [balancer] kind = "haproxy" and the defaults of [balancer.haproxy]
    // but the backend: the admin socket is Debian's
    let coordinator_toml = format!(
        "[cluster]\nname = \"{cluster}\"\nseeds = [\"{addr}:{port}\"]\n\n\
[gossip]\nlisten = \"{addr}:7430\"\n\n[galera]\nrecovery = false\n\n\
[balancer]\nkind = \"haproxy\"\n\n[balancer.haproxy]\nbackend = \"{HAPROXY_BACKEND}\"\n\n\
[tls]\ninsecure = true\n",
        cluster = triad::CLUSTER,
        addr = n1.addr,
        port = triad::GOSSIP_PORT,
    );
    n1.write_file("/etc/triad/coordinator.toml", &coordinator_toml)?;
    n1.exec(&["systemctl", "reload", "triad-coordinator"])?;
    let running = format!("running: cluster {}", triad::CLUSTER);
    wait_status(n1, "triad-coordinator", &running)?;
    let took = wait_backend_is(
        n1,
        &[n1, n2],
        "n1 and n2 added to HAProxy's be_triad by the coordinator",
    )?;
    eprintln!("servers n1 and n2 in HAProxy {took:.1?} after the coordinator started");
    wait_served_by(n1, &["n1", "n2"])?;

    // a node that stops serving leaves the backend; back when it serves again
    n2.exec(&["rm", "/var/www/html/health.html"])?;
    let took = wait_backend_is(n1, &[n1], "n2 (not serving) removed from HAProxy")?;
    eprintln!("n2 out of HAProxy {took:.1?} after its health page went");
    n2.write_file("/var/www/html/health.html", "n2\n")?;
    let took = wait_backend_is(n1, &[n1, n2], "n2 (serving again) back in HAProxy")?;
    eprintln!("n2 back in HAProxy {took:.1?} after its health page returned");

    // the group is what grants the socket: without it the balancer reports the refusal
    // (with what to do), and HAProxy keeps its servers (an unknown balancer state means
    // no action)
    n1.exec(&["gpasswd", "-d", "triad-coordinator", "haproxy"])?;
    n1.exec(&["systemctl", "restart", "triad-coordinator"])?;
    wait_status(n1, "triad-coordinator", &running)?;
    let refused = wait::until_default(
        "the coordinator without group haproxy to report the refused socket",
        UNIT_LIMIT,
        || {
            let status = node_status_json(n1)?;
            let error = status["balancer"]["last_error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Ok(
                if error.contains("Permission denied") && error.contains("group haproxy") {
                    Poll::Ready(error)
                } else {
                    Poll::Pending(format!("balancer {}", status["balancer"]))
                },
            )
        },
    )?;
    eprintln!("without group haproxy: {refused}");
    ensure!(
        haproxy_servers(n1)?.len() == 2,
        "the servers must stay while the coordinator cannot see HAProxy"
    );
    // haproxy installed (or upgraded) after the coordinator: dpkg runs the coordinator's
    // file trigger on /usr/sbin/haproxy, activated here as haproxy's unpack would
    let pid = unit_property(n1, "triad-coordinator", "MainPID")?;
    n1.exec(&[
        "dpkg-trigger",
        "--by-package=haproxy",
        "--no-await",
        "/usr/sbin/haproxy",
    ])?;
    n1.exec_limit(
        &["dpkg", "--triggers-only", "triad-coordinator"],
        Duration::from_secs(60),
    )?;
    let groups = n1.exec(&["id", "-nG", "triad-coordinator"])?;
    ensure!(
        groups.split_whitespace().any(|g| g == "haproxy"),
        "the trigger did not restore group haproxy: {groups:?}"
    );
    wait_status(n1, "triad-coordinator", &running)?;
    ensure!(
        unit_property(n1, "triad-coordinator", "MainPID")? != pid,
        "the trigger added the group but did not restart the coordinator"
    );
    wait_backend_is(
        n1,
        &[n1, n2],
        "the restarted coordinator to drive HAProxy again",
    )?;

    // clouds.yaml where packaging/README.md puts it: the Nova provider reads it when the
    // coordinator starts (inside ProtectSystem=strict, ProtectHome, PrivateUsers), and a
    // file it cannot read stops the start. The cloud's endpoint is unreachable on purpose:
    // with min = max = 2 nothing is launched, and the balancer goes on as before.
    n1.write_file(
        "/etc/openstack/clouds.yaml",
        "clouds:\n  lab:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: triad\n      password: not-a-secret\n      project_name: triad\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n",
    )?;
    n1.exec(&[
        "chown",
        "root:triad-coordinator",
        "/etc/openstack/clouds.yaml",
    ])?;
    n1.exec(&["chmod", "0640", "/etc/openstack/clouds.yaml"])?;
    n1.write_file(
        "/etc/triad/coordinator.toml",
        &format!(
            "{coordinator_toml}\n[autoscale]\nprovider = \"nova\"\nmin = 2\nmax = 2\n\n\
[autoscale.nova]\ncloud = \"lab\"\nimage = \"0b3f6e3e-0000-4000-8000-000000000000\"\n\
flavor = \"m1.small\"\nnetworks = [\"private\"]\npackage_url = \"http://127.0.0.1:9/triad-agent.deb\"\n"
        ),
    )?;
    n1.exec(&["triad-coordinator", "validate-config"])?;
    n1.exec(&["systemctl", "restart", "triad-coordinator"])?;
    wait_status(n1, "triad-coordinator", &running)?;
    // its log line names the file (journald field F_SOURCE, from tracing's `source`)
    let pid = unit_property(n1, "triad-coordinator", "MainPID")?;
    let pid_match = format!("_PID={pid}");
    wait::until_value(
        "the coordinator's log to name /etc/openstack/clouds.yaml as its cloud config",
        UNIT_LIMIT,
        || {
            let out = n1.exec_output(
                &[
                    "journalctl",
                    "--no-pager",
                    "-o",
                    "cat",
                    &pid_match,
                    "F_SOURCE=/etc/openstack/clouds.yaml",
                ],
                Duration::from_secs(10),
            )?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        },
        |lines| lines.contains("nova autoscaling provider configured"),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}\njournal:\n{}",
            triad::journal_tail(n1, "triad-coordinator", 30)
        )
    })?;
    wait_backend_is(
        n1,
        &[n1, n2],
        "the balancer to run on beside the Nova provider",
    )?;

    tb.teardown_and_verify()?;
    Ok(())
}

/// A file of the node, read through its merged overlay root.
fn node_file(node: &Node, path: &str) -> anyhow::Result<String> {
    let host = node.root().join(path.trim_start_matches('/'));
    std::fs::read_to_string(&host).with_context(|| format!("reading {path} in {}", node.name))
}

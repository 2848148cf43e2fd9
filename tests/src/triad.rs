//! Installing Triad into the lab: the agent in every node (its .deb when one was built,
//! otherwise the freshly built binary + unit file), the coordinator on the host, and
//! `triadctl status`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd;
use crate::error::{IoContext, LabError, Result};
use crate::haproxy::{HEALTH_CODES, HEALTH_PATH};
use crate::host::workspace_dir;
use crate::hostproc::HostProc;
use crate::node::{Node, HOST_ADDR};
use crate::testbed::Testbed;
use crate::wordpress::NODE_PAGE;

/// Gossip port (UDP) of agents and coordinator.
pub const GOSSIP_PORT: u16 = 7420;
/// The agents' gRPC port.
pub const GRPC_PORT: u16 = 7421;
/// The coordinator's gRPC address on the host.
pub const COORDINATOR_GRPC: &str = "127.0.0.1:7422";
/// Cluster name used in the lab.
pub const CLUSTER: &str = "triad-lab";
/// The docroot the agents mount the volume on (the agent's default).
pub const DOCROOT: &str = "/var/www/triad";
/// The lab's volume and brick path (the agent's and coordinator's defaults).
pub const VOLUME: &str = "www";
pub const BRICK: &str = "/bricks/www";
/// The log of the docroot's FUSE client on a node (glusterfs names it after the mount point).
pub const MOUNT_LOG: &str = "/var/log/glusterfs/var-www-triad.log";
/// The lab app's database and account (`[app]`; the password file is the default's).
pub const APP_DATABASE: &str = "lab_app";
pub const APP_PASSWORD_FILE: &str = "/etc/triad/app-db.password";

/// `cargo build --workspace --bins --tests`: the same command as `make build` (see the
/// Makefile for why the tests too), so a lab or a test after it compiles nothing again (a
/// `-p triad-agent -p triad-coordinator` build unifies features over fewer packages and rebuilt ring, rustls, tonic and the Triad
/// crates, 1 min 24 s on 2 cores). An error names the command.
///
/// The variables cargo sets for a test (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...) are
/// not passed on: ring's build script reruns when they change, and with them set the
/// build from inside a test rebuilt ring, rustls and every crate above them (45 s), and
/// the next build from a shell did it again.
pub fn cargo_build() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let args = ["build", "--workspace", "--bins", "--tests"];
    let cmd = format!("{cargo} {}", args.join(" "));
    let mut command = Command::new(&cargo);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if is_set_by_cargo_for_a_crate(&name) {
            command.env_remove(name.as_ref());
        }
    }
    let st = command
        .current_dir(workspace_dir())
        .args(args)
        .status()
        .map_err(|source| LabError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if st.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            cmd,
            status: st.to_string(),
            stderr: "(see cargo's output above)".into(),
        })
    }
}

/// A variable cargo sets when it runs a crate's test or build script (not one a user sets,
/// like `CARGO_TARGET_DIR` or `CARGO_HOME`).
fn is_set_by_cargo_for_a_crate(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || matches!(
            name,
            "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR" | "OUT_DIR" | "CARGO_RUSTC_CURRENT_DIR"
        )
}

/// `CARGO_TARGET_DIR`, else the workspace's target/.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target"))
}

/// The newest of target/{debug,release}/NAME, else an installed /usr/bin/NAME.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let t = target_dir();
    let mut c: Vec<(std::time::SystemTime, PathBuf)> = ["debug", "release"]
        .iter()
        .map(|p| t.join(p).join(name))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    c.sort();
    c.pop()
        .map(|(_, p)| p)
        .or_else(|| Some(PathBuf::from("/usr/bin").join(name)).filter(|p| p.exists()))
}

/// target/release/NAME, which a bench measures (users run the release build); an error
/// saying how to build it when it is missing.
pub fn release_bin(name: &str) -> Result<PathBuf> {
    let bin = target_dir().join("release").join(name);
    if bin.exists() {
        Ok(bin)
    } else {
        Err(LabError::Other(format!(
            "{} is missing: run make deb (the release build a bench measures)",
            bin.display()
        )))
    }
}

/// The newest target/debian/triad-agent_*.deb, if any.
pub fn find_agent_deb() -> Option<PathBuf> {
    let dir = workspace_dir().join("target/debian");
    let mut v: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("triad-agent_") && n.ends_with(".deb"))
        })
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    v.sort();
    v.pop().map(|(_, p)| p)
}

/// The seeds list: every node's gossip address.
pub fn seeds(tb: &Testbed) -> Vec<String> {
    tb.nodes
        .iter()
        .map(|n| format!("{}:{GOSSIP_PORT}", n.addr))
        .collect()
}

fn toml_list(v: &[String]) -> String {
    let q: Vec<String> = v.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", q.join(", "))
}

/// The sections every lab agent has: `[node]` (with `role`), `[cluster]` (every node's
/// gossip address as seeds), `[gossip]`, `[grpc]`, `[apache]` (the health check HAProxy's
/// is, [`HEALTH_PATH`] and [`HEALTH_CODES`]).
fn agent_config_head(seeds: &[String], node: &Node, role: &str) -> String {
    format!(
        "[node]\nid = \"{name}\"\nrole = \"{role}\"\naddress = \"{addr}\"\n\n\
[cluster]\nname = \"{CLUSTER}\"\nseeds = {seeds}\n\n\
[gossip]\nlisten = \"{addr}:{GOSSIP_PORT}\"\n\n[grpc]\nlisten = \"{addr}:{GRPC_PORT}\"\n\n\
# the page and statuses the lab's HAProxy checks\n\
[apache]\nhealth_path = \"{HEALTH_PATH}\"\nhealth_codes = \"{HEALTH_CODES}\"\n\n\
# mutual TLS: the lab's cluster CA and this node's certificate (installed with the agent)\n\
[tls]\nca = \"{NODE_PKI}/ca.pem\"\ncert = \"{NODE_PKI}/{name}.pem\"\nkey = \"{NODE_PKI}/{name}.key\"\n\n",
        name = node.name,
        addr = node.addr,
        seeds = toml_list(seeds)
    )
}

/// Where a node keeps its TLS files.
pub const NODE_PKI: &str = "/etc/triad/pki";
/// The lab operator's certificate name (triadctl calls the coordinator with it).
pub const OPERATOR: &str = "lab-operator";

/// The lab coordinator's `/metrics` (Prometheus text) on the host's loopback.
pub const COORDINATOR_METRICS: &str = "127.0.0.1:9465";
/// The lab coordinator's web dashboard (HTTPS) on the host's loopback.
pub const COORDINATOR_DASHBOARD: &str = "127.0.0.1:9466";
/// The lab viewer's certificate name (the dashboard's tests read with it).
pub const VIEWER: &str = "lab-viewer";

/// `<state>/pki`.
/// The lab's backup key (an age identity) in [`lab_pki_dir`].
pub const BACKUP_KEY: &str = "backup.key";

/// Where the lab's backups go ([backup] dir): beside the lab's state, kept across labs
/// (a backup is meant to outlive its cluster; `triad-lab down` leaves it).
pub fn lab_backup_dir() -> PathBuf {
    crate::host::state_dir().join("backups")
}

pub fn lab_pki_dir() -> PathBuf {
    crate::host::state_dir().join("pki")
}

/// The lab's cluster PKI on the host (`<state>/pki`): the CA, the coordinator's and the
/// operator's certificates, made on first use with what `triadctl pki` runs.
pub fn lab_pki() -> Result<PathBuf> {
    let dir = lab_pki_dir();
    let pki_error = |e: triad_daemon::pki::PkiError| LabError::Other(format!("lab PKI: {e}"));
    if !dir.join(triad_daemon::pki::CA_CERT).exists() {
        triad_daemon::pki::init(&dir, CLUSTER, 3650, true).map_err(pki_error)?;
    }
    for (name, role) in [
        ("coordinator", triad_daemon::tls::PeerRole::Coordinator),
        (OPERATOR, triad_daemon::tls::PeerRole::Operator),
        (VIEWER, triad_daemon::tls::PeerRole::Viewer),
    ] {
        if !dir.join(format!("{name}.pem")).exists() {
            issue_cert(&dir, name, role, vec![])?;
        }
    }
    // the key the lab's backups are encrypted to ([backup] key_file), kept with the PKI so a
    // backup outlives the lab that made it
    let key = dir.join(BACKUP_KEY);
    if !key.exists() {
        triad_backup::key::BackupKey::generate_file(&key)
            .map_err(|e| LabError::Other(format!("lab backup key: {e}")))?;
    }
    // `. <state>/pki/triadctl.env` lets an operator's shell run triadctl against the lab
    let env = dir.join("triadctl.env");
    if !env.exists() {
        let d = dir.display();
        std::fs::write(
            &env,
            format!(
                "export TRIAD_COORDINATOR=https://{COORDINATOR_GRPC}\nexport TRIAD_CA={d}/ca.pem\n\
                 export TRIAD_CERT={d}/{OPERATOR}.pem\nexport TRIAD_KEY={d}/{OPERATOR}.key\n"
            ),
        )
        .io("write", &env)?;
    }
    Ok(dir)
}

fn issue_cert(
    dir: &Path,
    name: &str,
    role: triad_daemon::tls::PeerRole,
    ips: Vec<std::net::IpAddr>,
) -> Result<()> {
    triad_daemon::pki::issue(
        dir,
        &triad_daemon::pki::IssueRequest {
            name: name.to_string(),
            role,
            ips,
            dns: vec![],
            days: 365,
            force: true,
        },
    )
    .map(|_| ())
    .map_err(|e| LabError::Other(format!("lab PKI: {e}")))
}

/// Issue `node`'s certificate and put it, its key (0600) and the CA into the node.
pub fn install_node_cert(node: &Node) -> Result<()> {
    let dir = lab_pki()?;
    issue_cert(
        &dir,
        &node.name,
        triad_daemon::tls::PeerRole::Node,
        vec![node
            .addr
            .parse()
            .map_err(|e| LabError::Other(format!("{}: {e}", node.addr)))?],
    )?;
    for (file, mode) in [
        ("ca.pem".to_string(), 0o644),
        (format!("{}.pem", node.name), 0o644),
        (format!("{}.key", node.name), 0o600),
    ] {
        let src = dir.join(&file);
        let text = std::fs::read_to_string(&src).io("read", &src)?;
        let inside = format!("{NODE_PKI}/{file}");
        node.write_file(&inside, &text)?;
        let host_path = node.root().join(inside.trim_start_matches('/'));
        std::fs::set_permissions(
            &host_path,
            std::os::unix::fs::PermissionsExt::from_mode(mode),
        )
        .io("chmod", &host_path)?;
    }
    Ok(())
}

/// The lab's state-transfer method: rsync. The lab's datadirs hold a few MB, and Debian's
/// mariabackup donor script sleeps 10 s before every copy (`sleep 10` in
/// wsrep_sst_mariabackup, unconditional), on the formation's path twice (the joiners' SSTs
/// queue on the bootstrapped donor): formation took 30.5 s with mariabackup against 14.3 s
/// with rsync, in every test that forms a lab. [`agent_config_mariabackup`] keeps the
/// default for the test that checks it (testbed_volume_triad: SST over socat's OpenSSL).
pub const LAB_SST: &str = "sst_method = \"rsync\"\n";

/// The lab's Galera sizes (small buffers) and start backoff, the body of `[galera]` after
/// [`LAB_SST`]; replication and SST over TLS with each node's certificate.
const GALERA_LAB: &str = "gcache_size = \"32M\"\ninnodb_buffer_pool_size = \"64M\"\nstart_backoff = \"3s\"\ntls = true\n";

/// /etc/triad/agent.toml for `node`: a core node whose agent manages everything — Galera
/// (the rsync SST, [`LAB_SST`]; small buffers for the lab), glusterd and its brick, the
/// docroot mount, and Apache. Readiness requires all four (the default).
pub fn agent_config(tb: &Testbed, node: &Node) -> String {
    core_agent_config(&seeds(tb), node)
}

/// [`agent_config`] with Galera's default state transfer (mariabackup through the `mysql`
/// unix-socket account) instead of the lab's rsync.
pub fn agent_config_mariabackup(tb: &Testbed, node: &Node) -> String {
    agent_config(tb, node).replacen(LAB_SST, "", 1)
}

fn core_agent_config(seeds: &[String], node: &Node) -> String {
    format!(
        "{head}[galera]\n{LAB_SST}{GALERA_LAB}\n\
[gluster]\nvolume = \"{VOLUME}\"\nbrick_path = \"{BRICK}\"\n\n[mount]\ndocroot = \"{DOCROOT}\"\n",
        head = agent_config_head(seeds, node, "core")
    )
}

/// /etc/triad/agent.toml for a web node (added by `triad-lab add-node`): the same cluster,
/// seeds, gossip and gRPC keys as [`agent_config`]; stateless (issue 17): no mysqld (the
/// app reaches the database through the node's endpoint, 127.0.0.1:3307, which the
/// coordinator routes to the writer), no glusterd and no brick, the docroot mounted as a
/// client of the core nodes' volume; Apache. Readiness requires the mount and Apache.
pub fn web_agent_config(tb: &Testbed, node: &Node) -> String {
    web_agent_config_for(&seeds(tb), node)
}

fn web_agent_config_for(seeds: &[String], node: &Node) -> String {
    format!(
        "{head}[galera]\nmanaged = false\n\n\
[gluster]\n# no glusterd, no brick: the docroot mounts the volume from the core nodes\n\
managed = false\nvolume = \"{VOLUME}\"\n\n[mount]\ndocroot = \"{DOCROOT}\"\n\n\
[readiness]\nrequire = [\"mount\", \"apache\"]\n",
        head = agent_config_head(seeds, node, "web")
    )
}

/// Makes `node` a stateless web node (the image's mariadb-server must not run a mysqld
/// there: disabled and stopped) and returns its agent config ([`web_agent_config`]).
pub fn stateless_web_node(tb: &Testbed, node: &Node) -> Result<String> {
    node.sh("systemctl disable --now mariadb.service")?;
    Ok(web_agent_config(tb, node))
}

/// /etc/triad/agent.toml for a web node as it was before stateless web nodes (issue 17):
/// a Galera member, so it joins by a full state transfer; a volume client without a brick;
/// Apache. Only `triad-lab bench-scaleout` uses it, as the baseline.
pub fn galera_web_agent_config(tb: &Testbed, node: &Node) -> String {
    format!(
        "{head}[galera]\nmanaged = true\n{LAB_SST}{GALERA_LAB}\n\
[gluster]\nmanaged = false\nvolume = \"{VOLUME}\"\n\n[mount]\ndocroot = \"{DOCROOT}\"\n\n\
[readiness]\nrequire = [\"galera\", \"mount\", \"apache\"]\n",
        head = agent_config_head(&seeds(tb), node, "web")
    )
}

/// The coordinator's config: its state (the Galera decision) under the lab's state dir, so
/// every testbed starts from nothing; it drives the lab HAProxy's membership through the
/// admin socket (servers are the node ids; HAProxy's own checks stay as a second line).
pub fn coordinator_config(tb: &Testbed) -> String {
    coordinator_config_with(tb, Autoscale::Observe)
}

/// How the lab's coordinator autoscales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoscale {
    /// Observe and recommend only: tests that load the nodes must not grow the lab.
    Observe,
    /// The exec provider running `triad-lab add-node` / `remove-node` (web nodes n4, ...),
    /// between 3 and 4 nodes (`triad-lab up` and the autoscaling test).
    Exec,
}

/// The `[autoscale]` section: small figures so that a laptop's load shows a decision.
fn autoscale_section(autoscale: Autoscale) -> String {
    let common = "min = 3\ntarget_per_node = 20.0\nwindow = \"20s\"\ninterval = \"5s\"\n\
                  stabilization = \"30s\"\ncooldown = \"30s\"\n";
    match autoscale {
        Autoscale::Observe => format!("[autoscale]\nprovider = \"none\"\nmax = 5\n{common}\n"),
        Autoscale::Exec => {
            let lab = find_bin("triad-lab")
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "triad-lab".into());
            format!(
                "[autoscale]\nprovider = \"exec\"\nname_prefix = \"n\"\nmax = 4\n{common}\
                 ready_timeout = \"5m\"\ndrain_timeout = \"60s\"\n\n\
                 [autoscale.exec]\nadd = [\"{lab}\", \"add-node\", \"--role\", \"{{role}}\", \"{{node}}\"]\n\
                 remove = [\"{lab}\", \"remove-node\", \"{{node}}\"]\ntimeout = \"5m\"\n\n"
            )
        }
    }
}

/// [`coordinator_config`] with the given autoscaling.
pub fn coordinator_config_with(tb: &Testbed, autoscale: Autoscale) -> String {
    let nodes: Vec<String> = tb.nodes.iter().map(|n| n.name.clone()).collect();
    let maintenance = crate::haproxy::maintenance_files(&tb.state.join("haproxy"));
    format!(
        "[coordinator]\nstate_dir = \"{state}\"\n\n\
[cluster]\nname = \"{CLUSTER}\"\nseeds = {seeds}\n\n[gossip]\nlisten = \"{HOST_ADDR}:{GOSSIP_PORT}\"\n\n\
[grpc]\nlisten = \"{COORDINATOR_GRPC}\"\n\n[galera]\ngrace = \"3s\"\nnodes = {nodes}\n\n\
[volume]\nname = \"{VOLUME}\"\nbrick_path = \"{BRICK}\"\n# the lab's bricks live on the container's root fs\nbricks_on_root_fs = true\n\n\
[app]\ndatabase = \"{APP_DATABASE}\"\n\n\
{autoscale}\
[balancer]\nkind = \"haproxy\"\n\n[balancer.haproxy]\nadmin_socket = \"{socket}\"\nbackend = \"{backend}\"\nserver_port = 80\nmaintenance_map = \"{map}\"\nmaintenance_allow = \"{allow}\"\n\n\
[metrics]\nlisten = \"{COORDINATOR_METRICS}\"\n\n\
[dashboard]\nlisten = \"{COORDINATOR_DASHBOARD}\"\n\n\
[backup]\ndir = \"{backups}\"\nkey_file = \"{pki}/{BACKUP_KEY}\"\n# small parts, so that the lab's backups have several\npart_size = \"1MiB\"\n\n\
[tls]\nca = \"{pki}/ca.pem\"\ncert = \"{pki}/coordinator.pem\"\nkey = \"{pki}/coordinator.key\"\n",
        pki = lab_pki_dir().display(),
        backups = lab_backup_dir().display(),
        state = tb.state.join("coordinator/state").display(),
        socket = tb.state.join("haproxy/admin.sock").display(),
        map = maintenance.0.display(),
        allow = maintenance.1.display(),
        backend = crate::haproxy::BACKEND,
        seeds = toml_list(&seeds(tb)),
        nodes = toml_list(&nodes),
        autoscale = autoscale_section(autoscale),
    )
}

/// How the agent got into the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// `dpkg -i` of this .deb.
    Deb(PathBuf),
    /// This binary plus packaging/agent/triad-agent.service.
    Binary(PathBuf),
}

/// Installs the agent into `node` as a core node ([`agent_config`]) and starts it.
pub fn install_agent(tb: &Testbed, node: &Node) -> Result<AgentSource> {
    install_agent_with(node, &agent_config(tb, node))
}

/// Installs the agent into `node` with the configuration `config` and starts it (`enable
/// --now`, which returns once the agent said READY). The config is written first so the
/// unit's `ExecStartPre=validate-config` sees it.
pub fn install_agent_with(node: &Node, config: &str) -> Result<AgentSource> {
    // a package older than the freshly built binary is stale: use the binary then
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let deb = find_agent_deb().filter(|deb| {
        match (
            modified(deb),
            find_bin("triad-agent").as_deref().and_then(modified),
        ) {
            (Some(deb_time), Some(bin_time)) => deb_time >= bin_time,
            _ => true,
        }
    });
    install_agent_from(node, config, deb)
}

/// Installs the agent into `node` from `deb` (`dpkg -i`), or without one from the newest
/// built binary, writes `config` first and starts it.
pub fn install_agent_from(node: &Node, config: &str, deb: Option<PathBuf>) -> Result<AgentSource> {
    if config.contains(NODE_PKI) {
        install_node_cert(node)?;
    }
    node.write_file("/etc/triad/agent.toml", config)?;
    let src = if let Some(deb) = deb {
        let fname = deb
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let inside = format!("/var/tmp/{fname}");
        let host_path = node.root().join(inside.trim_start_matches('/'));
        std::fs::copy(&deb, &host_path).io("copy", &deb)?;
        // the package ships /etc/triad/agent.toml as a conffile; keep the one written above
        // instead of prompting (stdin is /dev/null)
        node.exec_limit(
            &[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "dpkg",
                "--force-confold",
                "--force-confdef",
                "-i",
                &inside,
            ],
            Duration::from_secs(120),
        )?;
        let _ = std::fs::remove_file(&host_path);
        AgentSource::Deb(deb)
    } else {
        let bin = find_bin("triad-agent").ok_or_else(|| {
            LabError::Other(
                "no triad-agent binary (target/debug, target/release) nor target/debian/triad-agent_*.deb; run make build".into(),
            )
        })?;
        let dst = node.root().join("usr/bin/triad-agent");
        // copy to a temp name and rename: the old binary may be running
        let tmp = node.root().join("usr/bin/.triad-agent.new");
        std::fs::copy(&bin, &tmp).io("copy", &bin)?;
        std::fs::rename(&tmp, &dst).io("rename", &tmp)?;
        let unit = workspace_dir().join("packaging/agent/triad-agent.service");
        let udst = node.root().join("etc/systemd/system/triad-agent.service");
        std::fs::copy(&unit, &udst).io("copy", &unit)?;
        install_sysusers(node)?;
        AgentSource::Binary(bin)
    };
    node.sh("systemctl daemon-reload && systemctl enable --now triad-agent")?;
    Ok(src)
}

/// The agent package's sysusers.d entry (the `triad-monitor` identity that reads MariaDB
/// status), as the package's postinst applies it; for agents installed from a binary.
pub fn install_sysusers(node: &Node) -> Result<()> {
    let src = workspace_dir().join("packaging/agent/triad-agent.sysusers");
    let text = std::fs::read_to_string(&src).io("read", &src)?;
    node.write_file("/usr/lib/sysusers.d/triad-agent.conf", &text)?;
    node.exec(&["systemd-sysusers", "triad-agent.conf"])?;
    Ok(())
}

/// The last lines of a unit's journal inside `node` (for error messages).
pub fn journal_tail(node: &Node, unit: &str, lines: u32) -> String {
    node.exec_output(
        &[
            "journalctl",
            "-u",
            unit,
            "-n",
            &lines.to_string(),
            "--no-pager",
            "-o",
            "cat",
        ],
        Duration::from_secs(10),
    )
    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    .unwrap_or_default()
}

/// Writes the coordinator config under the state dir and starts `triad-coordinator` on the host.
pub fn start_coordinator(tb: &mut Testbed) -> Result<()> {
    start_coordinator_with(tb, Autoscale::Observe)
}

/// [`start_coordinator`] with the given autoscaling.
pub fn start_coordinator_with(tb: &mut Testbed, autoscale: Autoscale) -> Result<()> {
    let config = coordinator_config_with(tb, autoscale);
    start_coordinator_config(tb, &config)
}

/// Starts the coordinator on the host with `config` (a [`coordinator_config`] and more, e.g.
/// `[[app.jobs]]` tables appended), from an empty state directory.
pub fn start_coordinator_config(tb: &mut Testbed, config: &str) -> Result<()> {
    prepare_coordinator(tb, config)?;
    spawn_coordinator(tb)
}

/// [`start_coordinator`] with a given binary (a bench measures the release build).
pub fn start_coordinator_bin(tb: &mut Testbed, bin: &Path) -> Result<()> {
    let config = coordinator_config_with(tb, Autoscale::Observe);
    prepare_coordinator(tb, &config)?;
    spawn_coordinator_bin(tb, bin)
}

/// A fresh state dir and `config` for the coordinator.
fn prepare_coordinator(tb: &Testbed, config: &str) -> Result<()> {
    let dir = tb.state.join("coordinator");
    // every testbed starts from nothing: no Galera decision or autoscaling record of an
    // earlier lab
    let state = dir.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state).io("remove", &state)?;
    }
    std::fs::create_dir_all(&dir).io("mkdir", &dir)?;
    lab_pki()?;
    let cfg = dir.join("coordinator.toml");
    std::fs::write(&cfg, config).io("write", &cfg)?;
    Ok(())
}

/// Stops the coordinator (bounded, SIGKILL after 20 s); [`resume_coordinator`] starts it
/// again.
pub fn stop_coordinator(tb: &mut Testbed) -> Result<()> {
    if let Some(mut c) = tb.coordinator.take() {
        c.stop(Duration::from_secs(20))?;
    }
    tb.save()
}

/// Starts the coordinator again with the config it had.
pub fn resume_coordinator(tb: &mut Testbed) -> Result<()> {
    spawn_coordinator(tb)
}

/// Stops the coordinator (SIGTERM) and starts it again with the same config and state, as
/// `systemctl restart triad-coordinator` would.
pub fn restart_coordinator(tb: &mut Testbed) -> Result<()> {
    restart_coordinator_bin(tb, &coordinator_bin()?)
}

/// Stops the coordinator and starts `bin` with the same config and state (a bench swaps in
/// the release build after the lab was made).
pub fn restart_coordinator_bin(tb: &mut Testbed, bin: &Path) -> Result<()> {
    if let Some(mut c) = tb.coordinator.take() {
        c.stop(Duration::from_secs(20))?;
    }
    spawn_coordinator_bin(tb, bin)
}

/// Spawns the coordinator with the config written in the testbed's state and waits until it
/// listens.
fn spawn_coordinator(tb: &mut Testbed) -> Result<()> {
    spawn_coordinator_bin(tb, &coordinator_bin()?)
}

/// The coordinator binary a lab runs: the newest build ([`find_bin`]).
fn coordinator_bin() -> Result<PathBuf> {
    find_bin("triad-coordinator")
        .ok_or_else(|| LabError::Other("no triad-coordinator binary; run make build".into()))
}

fn spawn_coordinator_bin(tb: &mut Testbed, bin: &Path) -> Result<()> {
    let dir = tb.state.join("coordinator");
    let cfg = dir.join("coordinator.toml");
    let mut c = Command::new(bin);
    c.arg("--config").arg(&cfg).arg("run");
    let mut p = HostProc::spawn("triad-coordinator", &mut c, &dir.join("coordinator.log"))?;
    // give it a moment to fail on a bad config; a clean early exit is an error too
    let r = crate::wait::until(
        "triad-coordinator to listen on 127.0.0.1:7422",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            if !p.alive() {
                return Err(LabError::Other(format!(
                    "triad-coordinator exited; see {}",
                    dir.join("coordinator.log").display()
                )));
            }
            Ok(
                match std::net::TcpStream::connect_timeout(
                    &COORDINATOR_GRPC
                        .parse()
                        .map_err(|e| LabError::Other(format!("{e}")))?,
                    Duration::from_millis(300),
                ) {
                    Ok(_) => crate::wait::Poll::Ready(()),
                    Err(e) => crate::wait::Poll::Pending(e.to_string()),
                },
            )
        },
    );
    tb.coordinator = Some(p);
    tb.save()?;
    r
}

/// `triadctl --coordinator http://127.0.0.1:7422 status [--output json]`. triadctl exits 1
/// when the cluster is degraded but still prints the status, so any output is returned; only
/// no output at all is an error.
pub fn triadctl_status(json: bool) -> Result<String> {
    let mut c = triadctl(&["status"])?;
    if json {
        c.args(["--output", "json"]);
    }
    let o = cmd::output_timeout(&mut c, Duration::from_secs(20))?;
    if o.stdout.is_empty() {
        cmd::check(&c, o)?;
        return Ok(String::new());
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `triadctl --coordinator <the lab's> ARGS…` as the lab's operator, not yet run.
pub fn triadctl(args: &[&str]) -> Result<Command> {
    triadctl_as(OPERATOR, args)
}

/// [`triadctl`] with the certificate of `holder` in the lab's PKI (the operator, the
/// viewer).
pub fn triadctl_as(holder: &str, args: &[&str]) -> Result<Command> {
    let bin = find_bin("triadctl")
        .ok_or_else(|| LabError::Other("no triadctl binary; run make build".into()))?;
    let pki = lab_pki()?;
    let mut c = Command::new(bin);
    c.args(["--coordinator", &format!("https://{COORDINATOR_GRPC}")])
        .arg("--ca")
        .arg(pki.join("ca.pem"))
        .arg("--cert")
        .arg(pki.join(format!("{holder}.pem")))
        .arg("--key")
        .arg(pki.join(format!("{holder}.key")))
        .args(args);
    Ok(c)
}

/// The coordinator's autoscaling line (`triadctl status`).
pub fn autoscale_line() -> Result<String> {
    Ok(status_json()?["autoscale"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string())
}

/// Waits until `triadctl status --output json` reports `nodes` live nodes.
pub fn wait_coordinator_live(nodes: usize, limit: Duration) -> Result<Duration> {
    let t = std::time::Instant::now();
    crate::wait::until_default(
        &format!("the coordinator to see {nodes} live nodes"),
        limit,
        || {
            let s = triadctl_status(true)?;
            let v: serde_json::Value = serde_json::from_str(&s)
                .map_err(|e| LabError::Other(format!("triadctl json: {e}: {s}")))?;
            let live = v["summary"]["live"].as_u64().unwrap_or(0) as usize;
            Ok(if live >= nodes {
                crate::wait::Poll::Ready(t.elapsed())
            } else {
                crate::wait::Poll::Pending(format!("summary {}", v["summary"]))
            })
        },
    )
}

/// Waits until the coordinator's balancer loop reaches the balancer and lists members (it
/// backs off while HAProxy is not up yet, as when the lab starts it after the coordinator).
pub fn wait_balancer_members(limit: Duration) -> Result<Duration> {
    let t = std::time::Instant::now();
    crate::wait::until_default(
        "the coordinator's balancer loop to list members",
        limit,
        || {
            let v = status_json()?;
            let balancer = &v["balancer"];
            let ok = balancer["last_error"].is_null()
                && balancer["members"]
                    .as_array()
                    .is_some_and(|m| !m.is_empty());
            Ok(if ok {
                crate::wait::Poll::Ready(t.elapsed())
            } else {
                crate::wait::Poll::Pending(format!("balancer {balancer}"))
            })
        },
    )
}

/// Nodes whose glusterd sees a peer disconnected ("n2 sees n1 Disconnected"); empty when
/// every glusterd is connected to every other.
pub fn glusterd_peers_down(tb: &Testbed) -> Vec<String> {
    let mut down = Vec::new();
    for n in &tb.nodes {
        match n.exec_limit(&["gluster", "peer", "status"], Duration::from_secs(20)) {
            Ok(text) => {
                let mut host = String::new();
                for line in text.lines() {
                    if let Some(h) = line.strip_prefix("Hostname: ") {
                        host = h.trim().to_string();
                    } else if line.starts_with("State:") && !line.contains("(Connected)") {
                        down.push(format!("{} sees {host} {}", n.name, line.trim()));
                    }
                }
            }
            Err(e) => down.push(format!("{}: gluster peer status: {e}", n.name)),
        }
    }
    down
}

/// Waits until every node's glusterd sees every other connected. Why: a glusterd whose
/// connection to a returned peer is still in TCP's connect backoff does not count that peer
/// for server quorum; measured on the lab (session 13): n2's glusterd saw n1 again only
/// 29 s after n1 was back (and "ready"), and when n3 crashed in that window n2 lost server
/// quorum and stopped its brick, so the volume answered ENOTCONN on every node for 14 s.
pub fn wait_glusterd_connected(tb: &Testbed, limit: Duration) -> Result<Duration> {
    let t = std::time::Instant::now();
    crate::wait::until_default("every glusterd to see every peer connected", limit, || {
        let down = glusterd_peers_down(tb);
        Ok(if down.is_empty() {
            crate::wait::Poll::Ready(t.elapsed())
        } else {
            crate::wait::Poll::Pending(down.join("; "))
        })
    })
}

/// The lab's PHP app: a page naming the node that serves it.
pub const INDEX_PHP: &str =
    "<?php header('Content-Type: text/plain'); echo gethostname(), \"\\n\";\n";

/// Waits until the agent-made mount on `node`'s docroot is live (a glusterfs mount whose
/// sentinel answers); returns the time taken.
pub fn wait_docroot_mounted(node: &Node, limit: Duration) -> Result<Duration> {
    let t = std::time::Instant::now();
    crate::wait::until_default(
        &format!("the volume mounted on {DOCROOT} in {}", node.name),
        limit,
        || {
            let out = node
                .exec_output(
                    &[
                        "sh",
                        "-c",
                        &format!(
                            "findmnt -n -o FSTYPE {DOCROOT}; stat -c %n {DOCROOT}/.triad-sentinel"
                        ),
                    ],
                    Duration::from_secs(10),
                )
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            Ok(
                if out.contains("fuse.glusterfs") && out.contains(".triad-sentinel") {
                    crate::wait::Poll::Ready(t.elapsed())
                } else {
                    crate::wait::Poll::Pending(format!("findmnt/stat: {:?}", out.trim()))
                },
            )
        },
    )
}

/// Puts the app (the health page [`HEALTH_PATH`], the page naming the node at
/// [`NODE_PAGE`] and, until WordPress is installed there, as index.php) on the volume
/// through `node`'s mount.
pub fn publish_app(node: &Node) -> Result<()> {
    node.sh(&format!(
        "printf 'OK\\n' > {DOCROOT}{HEALTH_PATH}.tmp && mv {DOCROOT}{HEALTH_PATH}.tmp {DOCROOT}{HEALTH_PATH} && \
         cat > {DOCROOT}{NODE_PAGE} <<'EOF'\n{INDEX_PHP}EOF\n\
         test -f {DOCROOT}/wp-settings.php || cp {DOCROOT}{NODE_PAGE} {DOCROOT}/index.php"
    ))?;
    Ok(())
}

/// The coordinator's status as JSON.
pub fn status_json() -> Result<serde_json::Value> {
    let s = triadctl_status(true)?;
    serde_json::from_str(&s).map_err(|e| LabError::Other(format!("triadctl json: {e}: {s}")))
}

/// Waits until the coordinator reports `nodes` live and ready nodes.
/// On a timeout the Galera diagnosis ([`dump_galera_diagnosis`]) is printed first: a
/// formation that does not finish is otherwise unexplained once the lab is torn down.
pub fn wait_all_ready(tb: &Testbed, nodes: usize, limit: Duration) -> Result<Duration> {
    let t = std::time::Instant::now();
    let waited = crate::wait::until_default(
        &format!("the coordinator to see {nodes} ready nodes"),
        limit,
        || {
            let v = status_json()?;
            let ready = v["summary"]["ready"].as_u64().unwrap_or(0) as usize;
            Ok(if ready >= nodes {
                crate::wait::Poll::Ready(t.elapsed())
            } else {
                let reasons: Vec<String> = v["nodes"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|n| !n["ready"].as_bool().unwrap_or(false))
                            .map(|n| format!("{}: {}", n["id"], n["not_ready_reason"]))
                            .collect()
                    })
                    .unwrap_or_default();
                crate::wait::Poll::Pending(format!(
                    "galera: {}; volume: {}; not ready: {}",
                    v["galera"]["status"],
                    v["volume"]["status"],
                    reasons.join(", ")
                ))
            })
        },
    );
    if waited.is_err() {
        dump_galera_diagnosis(tb);
    }
    waited
}

/// What a failed formation or recovery leaves to read, printed to stderr before the lab is
/// torn down: the coordinator's Galera log lines, and each node's agent and mariadb journal
/// tail (the agent's decisions, mysqld's own reasons).
pub fn dump_galera_diagnosis(tb: &Testbed) {
    let log = tb.state.join("coordinator/coordinator.log");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let galera: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("galera") || l.contains("join") || l.contains("bootstrap"))
        .collect();
    eprintln!(
        "--- {} (galera lines, last 40 of {}):",
        log.display(),
        galera.len()
    );
    for line in galera.iter().rev().take(40).rev() {
        eprintln!("{line}");
    }
    for node in &tb.nodes {
        for unit in ["triad-agent", "mariadb"] {
            eprintln!("--- {} {unit}:", node.name);
            eprintln!("{}", journal_tail(node, unit, 30));
        }
    }
}

/// True if `p` exists (helper for the CLI's messages).
pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// Removes ANSI colour sequences (the coordinator's log file is written with them).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The phases of a full-outage recovery from the coordinator's log, in seconds relative to
/// `since` (the moment the last node was running again; negative = before it), found in
/// order, by either path: the election's (outage seen, bootstrap decided with every position
/// in, bootstrapped, decision closed with every member Synced) or the fast path's (outage
/// seen, every member started for Galera's pc.recovery, the component re-formed). Only
/// lines at or after `from` count (the crash). `None` until one path's phases are all
/// logged; the text is one line for the test output and the closing notes.
pub fn recovery_breakdown(
    log: &Path,
    from: std::time::SystemTime,
    since: std::time::SystemTime,
) -> Option<String> {
    const OUTAGE: (&str, &[&str]) = (
        "outage seen",
        &["galera=no Primary component", "galera=full outage"],
    );
    let election: [(&str, &[&str]); 4] = [
        OUTAGE,
        (
            "positions in, bootstrap decided",
            &["galera bootstrap decided and persisted"],
        ),
        ("bootstrapped (Primary)", &["bootstrapped"]),
        ("joins done, all synced", &["galera decision closed"]),
    ];
    let fast: [(&str, &[&str]); 3] = [
        OUTAGE,
        (
            "fast path: every member started",
            &["for Galera's pc.recovery (up to"],
        ),
        (
            "pc.recovery re-formed (Primary)",
            &["re-formed the Primary component"],
        ),
    ];
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<(f64, String)> = text
        .lines()
        .map(strip_ansi)
        .filter_map(|line| {
            let at = humantime::parse_rfc3339_weak(line.split_whitespace().next()?).ok()?;
            if at < from {
                return None;
            }
            let offset = match at.duration_since(since) {
                Ok(after) => after.as_secs_f64(),
                Err(before) => -before.duration().as_secs_f64(),
            };
            Some((offset, line))
        })
        .collect();
    phases(&lines, &fast).or_else(|| phases(&lines, &election))
}

/// Each mark's first time, in order (each looked for only after the previous one was found:
/// formation's own "bootstrapped" lines may be logged after the crash began); `None` until
/// all are found.
fn phases(lines: &[(f64, String)], marks: &[(&str, &[&str])]) -> Option<String> {
    let mut found: Vec<Option<f64>> = vec![None; marks.len()];
    for (offset, line) in lines {
        if let Some(i) = found.iter().position(Option::is_none) {
            if marks[i].1.iter().any(|needle| line.contains(needle)) {
                found[i] = Some(*offset);
            }
        }
    }
    let parts: Option<Vec<String>> = marks
        .iter()
        .zip(found)
        .map(|((name, _), at)| at.map(|s| format!("{name} {s:+.1}s")))
        .collect();
    parts.map(|p| p.join(", "))
}

/// Waits (bounded) until the coordinator has logged every recovery phase after `from`.
pub fn wait_recovery_breakdown(
    log: &Path,
    from: std::time::SystemTime,
    since: std::time::SystemTime,
) -> Result<String> {
    crate::wait::until_default(
        "the coordinator to log every recovery phase",
        Duration::from_secs(30),
        || {
            Ok(match recovery_breakdown(log, from, since) {
                Some(text) => crate::wait::Poll::Ready(text),
                None => crate::wait::Poll::Pending("a phase is not logged yet".into()),
            })
        },
    )
}

/// What is wrong with Galera's TLS in the lab (empty: nothing). Every node's provider runs
/// with the copies of its certificate (`socket.ssl_cert` in `wsrep_provider_options`); its
/// replication port (4567) answers a TLS handshake with its own certificate, verified
/// against the lab CA by the host's `openssl s_client` (holding the operator's certificate,
/// as Galera asks its peers for one); and some node's journal shows a state transfer that
/// went through TLS (`sst_marker`, the SST script's own log line).
pub fn galera_tls_problems(tb: &Testbed, sst_marker: &str) -> Result<Vec<String>> {
    let dir = lab_pki_dir();
    let mut problems = Vec::new();
    let mut transfers = 0;
    for node in &tb.nodes {
        let options =
            crate::formation::sql(node, "SHOW GLOBAL VARIABLES LIKE 'wsrep_provider_options'")?;
        for needle in [
            "socket.ssl = YES",
            "socket.ssl_cert = /etc/mysql/triad-tls/cert.pem",
            "socket.ssl_ca = /etc/mysql/triad-tls/ca.pem",
        ] {
            if !options.contains(needle) {
                problems.push(format!(
                    "{}: no `{needle}` in wsrep_provider_options",
                    node.name
                ));
            }
        }
        let said = galera_port_handshake(
            node,
            Some((
                &dir.join(format!("{OPERATOR}.pem")),
                &dir.join(format!("{OPERATOR}.key")),
            )),
            Handshake::Leave,
        )?;
        let peer = said
            .lines()
            .find(|l| l.starts_with("Peer certificate:"))
            .unwrap_or("");
        if !said.contains("Verification: OK") || !peer.contains(&format!("CN = {}", node.name)) {
            problems.push(format!(
                "{}:4567 ({}): no TLS handshake with its own certificate of the lab CA: {}",
                node.addr,
                node.name,
                said.trim()
            ));
        }
        let journal = node.exec_output(
            &["journalctl", "--no-pager", "-o", "cat", "-u", "mariadb"],
            Duration::from_secs(30),
        )?;
        if String::from_utf8_lossy(&journal.stdout).contains(sst_marker) {
            transfers += 1;
        }
    }
    if transfers == 0 {
        problems.push(format!(
            "no node's mariadb journal shows a state transfer over TLS ({sst_marker:?})"
        ));
    }
    Ok(problems)
}

/// What `openssl s_client` does once the handshake is over.
#[derive(Clone, Copy)]
enum Handshake {
    /// Leave at once (Galera would keep an accepted client waiting).
    Leave,
    /// Stay until Galera answers or closes the connection (a refusal arrives as an alert).
    AwaitAnswer,
}

/// `openssl s_client` to `node`'s Galera port, presenting `client` (certificate, key) or
/// no certificate, verifying the port's certificate against the lab CA: what it printed.
fn galera_port_handshake(
    node: &Node,
    client: Option<(&Path, &Path)>,
    then: Handshake,
) -> Result<String> {
    let mut command = Command::new("timeout");
    command
        .args([
            "10",
            "openssl",
            "s_client",
            "-brief",
            "-verify_return_error",
        ])
        .arg("-connect")
        .arg(format!("{}:4567", node.addr))
        .arg("-CAfile")
        .arg(lab_pki_dir().join("ca.pem"));
    if let Handshake::AwaitAnswer = then {
        command.arg("-ign_eof");
    }
    if let Some((cert, key)) = client {
        command.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .io("run", Path::new("openssl"))?;
    // -brief prints the handshake summary on stderr
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Who Galera refused to let in that it should have let in (empty: every refusal held):
/// on every node's replication port, a client with a certificate of another CA gets
/// `unknown ca`, a client without a certificate `certificate required`.
pub fn galera_tls_refusals(tb: &Testbed) -> Result<Vec<String>> {
    // another cluster's CA beside the lab's state, removed before and after (a run that
    // stopped half-way leaves it for the next one to remove)
    let foreign = crate::host::state_dir().join("foreign-pki");
    let _ = std::fs::remove_dir_all(&foreign);
    let result = refusals_with(tb, &foreign);
    let _ = std::fs::remove_dir_all(&foreign);
    result
}

fn refusals_with(tb: &Testbed, foreign: &Path) -> Result<Vec<String>> {
    let pki_error = |e: triad_daemon::pki::PkiError| LabError::Other(format!("foreign PKI: {e}"));
    triad_daemon::pki::init(foreign, "another-cluster", 1, true).map_err(pki_error)?;
    let issued = triad_daemon::pki::issue(
        foreign,
        &triad_daemon::pki::IssueRequest {
            name: "n9".into(),
            role: triad_daemon::tls::PeerRole::Node,
            ips: vec![],
            dns: vec![],
            days: 1,
            force: true,
        },
    )
    .map_err(pki_error)?;
    let mut problems = Vec::new();
    for node in &tb.nodes {
        let other_ca = galera_port_handshake(
            node,
            Some((&issued.cert, &issued.key)),
            Handshake::AwaitAnswer,
        )?;
        if !other_ca.contains("alert unknown ca") {
            problems.push(format!(
                "{}: a certificate of another CA was not refused with `unknown ca`: {}",
                node.name,
                other_ca.trim()
            ));
        }
        let none = galera_port_handshake(node, None, Handshake::AwaitAnswer)?;
        if !none.contains("alert certificate required") {
            problems.push(format!(
                "{}: a client without a certificate was not refused with `certificate required`: {}",
                node.name,
                none.trim()
            ));
        }
    }
    Ok(problems)
}

/// The serial number of the certificate `node`'s Galera port presents (to the lab operator).
pub fn galera_port_serial(node: &Node) -> Result<String> {
    let dir = lab_pki_dir();
    let script = format!(
        "timeout 10 openssl s_client -connect {}:4567 -CAfile {d}/ca.pem -cert {d}/{OPERATOR}.pem \
         -key {d}/{OPERATOR}.key </dev/null 2>/dev/null | openssl x509 -noout -serial",
        node.addr,
        d = dir.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .io("run", Path::new("openssl"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("serial=")
        .map(str::to_string)
        .ok_or_else(|| {
            LabError::Other(format!(
                "{}:4567 presented no certificate: {}{}",
                node.addr,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
}

/// Where a secret of the lab shows up where it must not: the body of every private key of
/// the lab PKI (and any "PRIVATE KEY" marker) searched in the coordinator's log, every
/// node's journal, and the command lines of every process on the host and in the nodes;
/// and key files inside the nodes that are not root-only. Empty: none.
pub fn exposed_secrets(tb: &Testbed) -> Result<Vec<String>> {
    let dir = lab_pki_dir();
    // the key material: the base64 lines of every .key file (long enough to be unique)
    let mut needles: Vec<String> = vec!["PRIVATE KEY".into()];
    for entry in std::fs::read_dir(&dir).io("read", &dir)?.flatten() {
        if entry.path().extension().is_some_and(|e| e == "key") {
            let text = std::fs::read_to_string(entry.path()).io("read", entry.path())?;
            needles.extend(
                text.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 40)
                    .map(str::to_string),
            );
        }
    }
    let mut found = Vec::new();
    let mut modes_found = Vec::new();
    let mut search = |place: &str, text: &str| {
        for needle in &needles {
            if text.contains(needle.as_str()) {
                let what = if needle == "PRIVATE KEY" {
                    "a PEM private key marker"
                } else {
                    "private key material"
                };
                found.push(format!("{what} in {place}"));
            }
        }
    };
    let log = tb.state.join("coordinator/coordinator.log");
    if let Ok(text) = std::fs::read_to_string(&log) {
        search(&log.display().to_string(), &text);
    }
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .io("run", Path::new("ps"))?;
    search(
        "the host's process list",
        &String::from_utf8_lossy(&ps.stdout),
    );
    for node in &tb.nodes {
        let journal = node.exec_output(
            &["journalctl", "--no-pager", "-o", "cat"],
            Duration::from_secs(30),
        )?;
        search(
            &format!("{}'s journal", node.name),
            &String::from_utf8_lossy(&journal.stdout),
        );
        // every command line in the node, from /proc (the image need not have ps)
        let ps = node.exec_output(
            &[
                "sh",
                "-c",
                "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done",
            ],
            Duration::from_secs(10),
        )?;
        search(
            &format!("{}'s process list", node.name),
            &String::from_utf8_lossy(&ps.stdout),
        );
        modes_found.extend(loose_files(
            node,
            &format!("stat -c '%a %U %n' {NODE_PKI}/*.key"),
            &["600 root "],
            "key file not root-only",
        )?);
        // Galera's copy (mysqld runs as mysql): readable by root and the mysql group only
        modes_found.extend(loose_files(
            node,
            "stat -c '%a %U %G %n' /etc/mysql/triad-tls/key.pem /etc/mysql/triad-tls",
            &["640 root mysql ", "750 root mysql "],
            "Galera's key copy open to others",
        )?);
    }
    found.extend(modes_found);
    Ok(found)
}

/// The lines of `stat_script`'s output in `node` that start with none of `allowed`, each
/// as "<node>: <what>: <line>".
fn loose_files(
    node: &Node,
    stat_script: &str,
    allowed: &[&str],
    what: &str,
) -> Result<Vec<String>> {
    let out = node.exec_output(&["sh", "-c", stat_script], Duration::from_secs(10))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !allowed.iter().any(|a| line.starts_with(a)))
        .map(|line| format!("{}: {what}: {line}", node.name))
        .collect())
}

#[cfg(test)]
mod tests {
    /// The breakdown reads either path from the coordinator's own lines (these from the lab,
    /// 2026-12-07: a fast path, then an election after the fast path gave up).
    #[test]
    fn the_recovery_breakdown_reads_the_fast_path_and_the_election() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("coordinator.log");
        let at = |s: &str| humantime::parse_rfc3339_weak(s).unwrap();
        std::fs::write(
            &log,
            "2026-12-07T08:41:50.000000Z  INFO triad_coordinator::recovery: galera status galera=epoch 1: n1 bootstrapped\n\
             2026-12-07T08:41:52.400000Z  INFO triad_coordinator::recovery: galera status galera=no Primary component for 0.0s (grace 3s); pc.recovery cannot: no node saved a Primary view\n\
             2026-12-07T08:41:53.859783Z  INFO triad_coordinator::recovery: galera status galera=full outage: every member of Primary view 3 is back with it saved; starting n1, n2, n3 for Galera's pc.recovery (up to 10s, then an election)\n\
             2026-12-07T08:41:56.456053Z  WARN triad_coordinator::recovery::plan: full outage: Galera's pc.recovery re-formed the Primary component (view 3) without an election view=x:3 secs=2.59\n",
        )
        .unwrap();
        let crash = at("2026-12-07T08:41:51Z");
        let up = at("2026-12-07T08:41:53Z");
        assert_eq!(
            recovery_breakdown(&log, crash, up).as_deref(),
            Some(
                "outage seen -0.6s, fast path: every member started +0.9s, pc.recovery \
                 re-formed (Primary) +3.5s"
            )
        );
        std::fs::write(
            &log,
            "2026-12-07T08:42:03.000000Z  INFO triad_coordinator::recovery: galera status galera=full outage: waiting for the first Galera report of n2 (up to 10s) before electing\n\
             2026-12-07T08:42:10.726137Z  WARN triad_coordinator::recovery: galera bootstrap decided and persisted epoch=2 node=n1\n\
             2026-12-07T08:42:10.983368Z  WARN triad_coordinator::recovery: bootstrapped epoch=2 node=n1 Primary with uuid u at seqno 10\n\
             2026-12-07T08:42:25.400000Z  INFO triad_coordinator::recovery::plan: galera decision closed epoch=2 node=n1\n",
        )
        .unwrap();
        let up = at("2026-12-07T08:42:04Z");
        assert_eq!(
            recovery_breakdown(&log, at("2026-12-07T08:42:02Z"), up).as_deref(),
            Some(
                "outage seen -1.0s, positions in, bootstrap decided +6.7s, bootstrapped \
                 (Primary) +7.0s, joins done, all synced +21.4s"
            )
        );
    }

    /// The coordinator's volume options and the agent's allowlist are two lists of one
    /// contract: an option the agent refuses stops the volume's formation at that step.
    #[test]
    fn every_volume_option_the_coordinator_sets_is_one_the_agent_runs() {
        let spec = triad_coordinator::volume::VolumeSpec {
            name: VOLUME.into(),
            brick_path: BRICK.into(),
            nodes: vec!["n1".into(), "n2".into(), "n3".into()],
            ping_timeout_secs: 5,
            force: true,
        };
        let allow = ["10.214.0.11".parse().unwrap()];
        let both = [false, true]
            .into_iter()
            .flat_map(|relaxed| triad_coordinator::volume::desired_options(&spec, &allow, relaxed));
        for (key, _) in both {
            assert!(
                triad_agent::gluster::steps::SETTABLE_OPTIONS.contains(&key.as_str()),
                "the agent refuses {key}"
            );
        }
    }

    use super::*;
    use triad_agent::config::AgentConfig;
    use triad_agent::readiness::ReadinessCheck;
    use triad_proto::gossip::Role;

    fn lab_seeds(count: usize) -> Vec<String> {
        (1..=count)
            .map(|i| format!("{}:{GOSSIP_PORT}", crate::node::node_addr(i)))
            .collect()
    }

    fn node(index: usize, count: usize) -> Node {
        Node::new(
            Path::new("/nonexistent/state"),
            Path::new("/nonexistent/image"),
            index,
            count,
        )
    }

    #[test]
    fn core_agent_config_is_as_before() {
        let text = core_agent_config(&lab_seeds(3), &node(2, 3));
        assert_eq!(
            text,
            "[node]\nid = \"n2\"\nrole = \"core\"\naddress = \"10.214.0.12\"\n\n\
[cluster]\nname = \"triad-lab\"\nseeds = [\"10.214.0.11:7420\", \"10.214.0.12:7420\", \"10.214.0.13:7420\"]\n\n\
[gossip]\nlisten = \"10.214.0.12:7420\"\n\n[grpc]\nlisten = \"10.214.0.12:7421\"\n\n\
# the page and statuses the lab's HAProxy checks\n\
[apache]\nhealth_path = \"/health.html\"\nhealth_codes = \"200\"\n\n\
# mutual TLS: the lab's cluster CA and this node's certificate (installed with the agent)\n\
[tls]\nca = \"/etc/triad/pki/ca.pem\"\ncert = \"/etc/triad/pki/n2.pem\"\nkey = \"/etc/triad/pki/n2.key\"\n\n\
[galera]\nsst_method = \"rsync\"\ngcache_size = \"32M\"\ninnodb_buffer_pool_size = \"64M\"\nstart_backoff = \"3s\"\ntls = true\n\n\
[gluster]\nvolume = \"www\"\nbrick_path = \"/bricks/www\"\n\n[mount]\ndocroot = \"/var/www/triad\"\n"
        );
        // the one config with Galera's default state transfer: the agent parses it so
        let default_sst = text.replacen(LAB_SST, "", 1);
        let cfg = AgentConfig::parse(Path::new("agent.toml"), &default_sst)
            .unwrap_or_else(|e| panic!("{e}\n{default_sst}"));
        assert_eq!(cfg.galera.sst_method.as_str(), "mariabackup");
        let lab = AgentConfig::parse(Path::new("agent.toml"), &text).unwrap();
        assert_eq!(lab.galera.sst_method.as_str(), "rsync");
    }

    #[test]
    fn web_agent_config_is_stateless_and_a_volume_client() {
        let n4 = node(4, 4);
        let text = web_agent_config_for(&lab_seeds(4), &n4);
        let cfg = AgentConfig::parse(Path::new("agent.toml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(cfg.node_id, "n4");
        assert_eq!(cfg.role, Role::Web);
        assert_eq!(cfg.address.to_string(), "10.214.0.14");
        assert_eq!(cfg.cluster_name, CLUSTER);
        assert_eq!(cfg.seeds, lab_seeds(4));
        assert_eq!(cfg.grpc_listen.to_string(), "10.214.0.14:7421");
        assert_eq!(
            cfg.tls.as_ref().map(|t| t.cert.display().to_string()),
            Some("/etc/triad/pki/n4.pem".to_string())
        );
        assert!(!cfg.galera.managed, "a web node runs no mysqld");
        assert!(!cfg.readiness.contains(&ReadinessCheck::Galera));
        assert!(!cfg.gluster.managed, "no glusterd, no brick");
        assert_eq!(cfg.gluster.volume, VOLUME);
        assert!(cfg.mount.managed);
        assert_eq!(cfg.mount.docroot, Path::new(DOCROOT));
        assert!(cfg.apache.managed);
        // the agents probe what the lab's HAProxy checks
        assert_eq!(cfg.apache.health_path, crate::haproxy::HEALTH_PATH);
        assert_eq!(
            cfg.apache.health_codes.to_string(),
            crate::haproxy::HEALTH_CODES
        );
        assert_eq!(
            cfg.readiness,
            vec![ReadinessCheck::Mount, ReadinessCheck::Apache]
        );
        // the same cluster keys as a core node's config
        let core = core_agent_config(&lab_seeds(4), &n4);
        let core = AgentConfig::parse(Path::new("agent.toml"), &core).unwrap();
        assert_eq!(
            (core.cluster_name, core.seeds, core.gossip, core.grpc_listen),
            (cfg.cluster_name, cfg.seeds, cfg.gossip, cfg.grpc_listen)
        );
    }
}

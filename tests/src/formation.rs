//! "Manual formation": bringing Galera, GlusterFS and Apache up in the nodes by hand, the way
//! the measured recipe does (shared/nspawn.md, shared/testbed.md). It proves the harness and is
//! what the tests use until the agent manages these services itself.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};
use crate::haproxy::HEALTH_PATH;
use crate::http;
use crate::node::Node;
use crate::testbed::Testbed;
use crate::wait::{self, Poll};

/// The Gluster volume holding the docroot.
pub const VOLUME: &str = "www";
/// Where the volume is mounted in every node (Apache's docroot).
pub const DOCROOT: &str = "/var/www/html";
/// Path of the Galera config inside a node.
pub const GALERA_CNF: &str = "/etc/mysql/mariadb.conf.d/99-galera.cnf";

/// The lab's Galera config for `node` in a cluster of `all` (rsync SST, small buffers).
pub fn galera_config(node: &Node) -> String {
    let addrs: Vec<&str> = node.peers.iter().map(|(_, a)| a.as_str()).collect();
    format!(
        "[mysqld]\nbind-address={addr}\nbinlog_format=ROW\ndefault_storage_engine=InnoDB\n\
innodb_autoinc_lock_mode=2\ninnodb_buffer_pool_size=64M\n\
wsrep_on=ON\nwsrep_provider=/usr/lib/galera/libgalera_smm.so\n\
wsrep_provider_options=\"gcache.size=32M\"\nwsrep_cluster_name=triad-lab\n\
wsrep_cluster_address=gcomm://{cluster}\nwsrep_node_name={name}\nwsrep_node_address={addr}\n\
wsrep_sst_method=rsync\n",
        addr = node.addr,
        name = node.name,
        cluster = addrs.join(",")
    )
}

/// Runs `f` on every node in parallel and collects the first error.
pub fn each_node<F>(nodes: &[Node], f: F) -> Result<()>
where
    F: Fn(&Node) -> Result<()> + Sync,
{
    let res: Vec<Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = nodes.iter().map(|n| s.spawn(|| f(n))).collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(LabError::Other("node worker panicked".into())))
            })
            .collect()
    });
    res.into_iter().collect()
}

/// A client on the host inserting `id` into `lab.acked` through `node`'s SQL port as the
/// test user `triad_test`; `Ok` only when the server acknowledged it within `limit`. Bounded:
/// a node that crashes or is cut off while the insert is in flight leaves the client waiting
/// on a connection that never answers (no RST), which `--connect-timeout` does not cover.
pub fn insert_acked(node: &Node, id: u64, limit: Duration) -> std::result::Result<(), String> {
    let mut client = std::process::Command::new("mariadb");
    client
        .args([
            "-h",
            &node.addr,
            "-u",
            "triad_test",
            "-ptriad-test",
            "--connect-timeout=2",
            "-e",
        ])
        .arg(format!("INSERT INTO lab.acked (id) VALUES ({id})"));
    acknowledged(
        &format!("insert {id} through {}", node.name),
        crate::cmd::output_timeout(&mut client, limit),
    )
}

/// A bounded command's outcome as a write's acknowledgement: `Ok` only for a success
/// exit; otherwise `what` with the command's stderr or the error.
pub fn acknowledged(
    what: &str,
    output: Result<std::process::Output>,
) -> std::result::Result<(), String> {
    match output {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Runs SQL through the local socket inside `node` (batch mode, no column names).
pub fn sql(node: &Node, query: &str) -> Result<String> {
    node.exec_limit(&["mariadb", "-NB", "-e", query], Duration::from_secs(30))
}

/// All `wsrep_%` status variables of `node`.
pub fn wsrep(node: &Node) -> Result<HashMap<String, String>> {
    let out = node.exec_limit(
        &["mariadb", "-NB", "-e", "SHOW GLOBAL STATUS LIKE 'wsrep_%'"],
        Duration::from_secs(10),
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Waits until `node` is Synced, Primary, with cluster size `size`; returns the time taken.
pub fn wait_galera(node: &Node, size: usize, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait::until_default(
        &format!(
            "Galera on {} to be Synced/Primary with size {size}",
            node.name
        ),
        limit,
        || {
            let w = wsrep(node)?;
            let g = |k: &str| w.get(k).map(String::as_str).unwrap_or("?");
            let (state, status, sz) = (
                g("wsrep_local_state_comment"),
                g("wsrep_cluster_status"),
                g("wsrep_cluster_size"),
            );
            Ok(
                if state == "Synced" && status == "Primary" && sz == size.to_string() {
                    Poll::Ready(t.elapsed())
                } else {
                    Poll::Pending(format!("state={state} status={status} size={sz}"))
                },
            )
        },
    )
}

/// Writes the Galera config into every node and stops the standalone mariadb that booted.
pub fn galera_configure(tb: &Testbed) -> Result<()> {
    each_node(&tb.nodes, |n| {
        n.write_file(GALERA_CNF, &galera_config(n))?;
        n.exec(&["systemctl", "stop", "mariadb"])?;
        Ok(())
    })
}

/// `galera_new_cluster` on `node`, then waits for it to be Primary with size 1.
pub fn galera_bootstrap(node: &Node) -> Result<()> {
    node.exec(&["galera_new_cluster"])?;
    wait_galera(node, 1, Duration::from_secs(30))?;
    Ok(())
}

/// `systemctl start mariadb` on `node` (Type=notify: returns once it joined), then waits for
/// Synced with the expected cluster size.
pub fn galera_join(node: &Node, size: usize) -> Result<()> {
    node.exec_limit(&["systemctl", "start", "mariadb"], Duration::from_secs(120))?;
    wait_galera(node, size, Duration::from_secs(60))?;
    Ok(())
}

/// Forms Galera: config everywhere, bootstrap n1, then the others join one at a time.
pub fn galera_form(tb: &Testbed) -> Result<()> {
    galera_configure(tb)?;
    let first = tb
        .nodes
        .first()
        .ok_or_else(|| LabError::Other("no nodes".into()))?;
    galera_bootstrap(first)?;
    for (i, n) in tb.nodes.iter().enumerate().skip(1) {
        galera_join(n, i + 1)?;
    }
    Ok(())
}

/// Starts glusterd in every node (in parallel: each takes ~2 s).
pub fn gluster_start(tb: &Testbed) -> Result<()> {
    each_node(&tb.nodes, |n| {
        // enabled too, so a rebooted or restarted node brings its brick back by itself
        n.exec(&["systemctl", "enable", "--now", "glusterd"])?;
        n.wait_unit("glusterd", "active", Duration::from_secs(30))
    })
}

/// Gluster CLI in script mode on `node`.
pub fn gluster(node: &Node, args: &[&str]) -> Result<String> {
    let mut a = vec!["gluster", "--mode=script"];
    a.extend_from_slice(args);
    node.exec_limit(&a, Duration::from_secs(60))
}

/// Peer probe from n1, replica-N volume `www` on /bricks/www (`force`: the bricks are on the
/// root fs), `network.ping-timeout 5`, start, and wait until every brick is online.
pub fn gluster_volume(tb: &Testbed) -> Result<()> {
    let n1 = &tb.nodes[0];
    for n in &tb.nodes[1..] {
        gluster(n1, &["peer", "probe", &n.name])?;
    }
    let want = tb.nodes.len() - 1;
    wait::until_default(
        &format!("{want} gluster peers connected on n1"),
        Duration::from_secs(30),
        || {
            let s = gluster(n1, &["peer", "status"])?;
            let c = s.matches("Peer in Cluster (Connected)").count();
            Ok(if c == want {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{c} connected"))
            })
        },
    )?;
    let mut args: Vec<String> = vec![
        "volume".into(),
        "create".into(),
        VOLUME.into(),
        "replica".into(),
        tb.nodes.len().to_string(),
    ];
    args.extend(
        tb.nodes
            .iter()
            .map(|n| format!("{}:/bricks/{VOLUME}", n.name)),
    );
    args.push("force".into());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    gluster(n1, &a)?;
    gluster(n1, &["volume", "set", VOLUME, "network.ping-timeout", "5"])?;
    gluster(n1, &["volume", "start", VOLUME])?;
    wait_bricks_online(n1, tb.nodes.len(), Duration::from_secs(30))?;
    Ok(())
}

/// Waits until `count` bricks of the volume report online in `volume status` on `node`.
pub fn wait_bricks_online(node: &Node, count: usize, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait::until_default(
        &format!(
            "{count} bricks of {VOLUME} online (seen from {})",
            node.name
        ),
        limit,
        || {
            let s = gluster(node, &["volume", "status", VOLUME, "--xml"])?;
            let online = s
                .split("<node>")
                .skip(1)
                .filter(|b| b.contains("/bricks/") && b.contains("<status>1</status>"))
                .count();
            Ok(if online >= count {
                Poll::Ready(t.elapsed())
            } else {
                Poll::Pending(format!("{online} bricks online"))
            })
        },
    )
}

/// Mounts the volume on the docroot inside `node`.
pub fn gluster_mount(node: &Node) -> Result<()> {
    node.sh(&format!(
        "mkdir -p {DOCROOT} && mountpoint -q {DOCROOT} || mount -t glusterfs localhost:/{VOLUME} {DOCROOT}"
    ))?;
    Ok(())
}

/// glusterd everywhere, the volume, and the docroot mount in every node.
pub fn gluster_form(tb: &Testbed) -> Result<()> {
    gluster_start(tb)?;
    gluster_volume(tb)?;
    each_node(&tb.nodes, gluster_mount)
}

/// Per brick: (brick, status, pending entries) from `gluster volume heal www info`.
pub fn heal_info(node: &Node) -> Result<Vec<(String, String, Option<u64>)>> {
    let s = gluster(node, &["volume", "heal", VOLUME, "info"])?;
    let mut out = Vec::new();
    for block in s.split("Brick ").skip(1) {
        let brick = block.lines().next().unwrap_or("").trim().to_string();
        let status = block
            .lines()
            .find_map(|l| l.strip_prefix("Status:"))
            .unwrap_or("?")
            .trim()
            .to_string();
        let entries = block
            .lines()
            .find_map(|l| l.strip_prefix("Number of entries:"))
            .and_then(|v| v.trim().parse().ok());
        out.push((brick, status, entries));
    }
    Ok(out)
}

/// Waits until heal info on `node` shows every brick Connected with 0 entries.
pub fn wait_healed(node: &Node, bricks: usize, limit: Duration) -> Result<Duration> {
    let t = Instant::now();
    wait::until(
        &format!(
            "heal info on {} to show 0 entries on {bricks} bricks",
            node.name
        ),
        limit,
        Duration::from_millis(500),
        || {
            let hi = heal_info(node)?;
            let ok =
                hi.len() == bricks && hi.iter().all(|(_, s, e)| s == "Connected" && *e == Some(0));
            Ok(if ok {
                Poll::Ready(t.elapsed())
            } else {
                Poll::Pending(format!("{hi:?}"))
            })
        },
    )
}

/// The PHP page that names the node serving it.
pub const INDEX_PHP: &str =
    "<?php header('Content-Type: text/plain'); echo gethostname(), \"\\n\";\n";

/// Writes the health page ([`HEALTH_PATH`]) and index.php (also as the node page) into the docroot of `node`
/// (through the node, so a mounted volume gets them) and removes Debian's default index.html.
pub fn apache_docroot(node: &Node) -> Result<()> {
    node.sh(&format!(
        "rm -f {DOCROOT}/index.html && printf 'OK\\n' > {DOCROOT}{HEALTH_PATH} && cat > {DOCROOT}/index.php <<'EOF'\n{INDEX_PHP}EOF\ncp {DOCROOT}/index.php {DOCROOT}{}",
        crate::wordpress::NODE_PAGE
    ))?;
    Ok(())
}

/// Makes sure apache2 runs in every node and serves the health page (HTTP 200 from the host).
pub fn apache_form(tb: &Testbed) -> Result<()> {
    for n in &tb.nodes {
        apache_docroot(n)?;
    }
    each_node(&tb.nodes, |n| {
        n.exec(&["systemctl", "restart", "apache2"])?;
        wait_http(
            &format!("{}:80", n.addr),
            HEALTH_PATH,
            Duration::from_secs(30),
        )?;
        Ok(())
    })
}

/// Waits until `GET http://addr/path` answers 200; returns the body.
pub fn wait_http(addr: &str, path: &str, limit: Duration) -> Result<String> {
    wait::until_default(&format!("HTTP 200 from http://{addr}{path}"), limit, || {
        let r = http::get(addr, path, Duration::from_secs(3))?;
        Ok(if r.status == 200 {
            Poll::Ready(r.body)
        } else {
            Poll::Pending(format!("HTTP {}", r.status))
        })
    })
}

/// Galera + Gluster (docroot on the volume) + Apache in every node: the whole stack by hand.
pub fn form_all(tb: &Testbed) -> Result<()> {
    let t0 = Instant::now();
    let lap = |m: &str| eprintln!("[formation {:6.1}s] {m}", t0.elapsed().as_secs_f64());
    galera_form(tb)?;
    lap("galera formed (bootstrap n1, others joined)");
    gluster_form(tb)?;
    lap("gluster volume www mounted on /var/www/html everywhere");
    apache_form(tb)?;
    lap(&format!("apache serving {HEALTH_PATH} on every node"));
    Ok(())
}

/// The ids in `lab.acked` on `node` (read through its own socket).
pub fn present_ids(node: &Node) -> Result<std::collections::BTreeSet<u64>> {
    Ok(sql(node, "SELECT id FROM lab.acked")?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// `lab.acked` and the host's client account `triad_test` (what [`insert_acked`] uses).
pub fn prepare_schema(node: &Node) -> Result<()> {
    let host = crate::node::HOST_ADDR;
    sql(
        node,
        &format!(
            "CREATE DATABASE IF NOT EXISTS lab; CREATE TABLE IF NOT EXISTS lab.acked (id BIGINT PRIMARY KEY); \
             CREATE USER IF NOT EXISTS 'triad_test'@'{host}' IDENTIFIED BY 'triad-test'; \
             GRANT ALL ON lab.* TO 'triad_test'@'{host}'"
        ),
    )?;
    Ok(())
}

/// Inserts ids through the nodes round-robin while `fault` runs on another thread; returns
/// the acknowledged ids (bounded: at most 20000 attempts, and the fault's end ends it).
pub fn insert_during<T: Send>(
    tb: &Testbed,
    first_id: u64,
    fault: impl FnOnce() -> Result<T> + Send,
) -> Result<(Vec<u64>, T)> {
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut acked = Vec::new();
    let outcome = std::thread::scope(|scope| -> Result<T> {
        let handle = scope.spawn(|| {
            let result = fault();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            result
        });
        let mut id = first_id;
        while !done.load(std::sync::atomic::Ordering::SeqCst) && id < first_id + 20_000 {
            let node = &tb.nodes[(id as usize) % tb.nodes.len()];
            if insert_acked(node, id, Duration::from_secs(5)).is_ok() {
                acked.push(id);
            }
            id += 1;
        }
        handle
            .join()
            .map_err(|_| LabError::Other("fault thread panicked".into()))?
    })?;
    Ok((acked, outcome))
}

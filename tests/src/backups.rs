//! The lab's backups (issue 19): `triadctl backup` as an operator runs it, and a backup's
//! parts read back with the lab's key ([`crate::triad::BACKUP_KEY`]) to check what it holds:
//! the files part unpacked with `tar` on the host, the database part extracted, prepared and
//! served on a node by a standalone `mariadbd` (mbstream, mariadb-backup --prepare: what a
//! restore does first), so a test can query the rows the backup holds.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::cmd;
use crate::error::{IoContext, LabError, Result};
use crate::node::Node;
use crate::triad::{lab_backup_dir, lab_pki_dir, triadctl, BACKUP_KEY};

/// A backup of the lab's size takes seconds; this bounds a stuck one.
const BACKUP_LIMIT: Duration = Duration::from_secs(600);

/// `triadctl backup now`: the new backup's id (from its summary line on stdout).
pub fn now() -> Result<String> {
    made(now_output()?)
}

/// [`now`] bounded by `limit` (a benchmark's gigabytes).
pub fn now_within(limit: Duration) -> Result<String> {
    made(now_run(&[], limit)?)
}

/// `triadctl backup now --quiesce` (maintenance mode meanwhile): the new backup's id.
pub fn now_quiesced() -> Result<String> {
    made(now_run(&["--quiesce"], BACKUP_LIMIT)?)
}

/// `triadctl backup now` with `flags`, bounded by `limit`, whatever it answers.
fn now_run(flags: &[&str], limit: Duration) -> Result<Output> {
    let mut args = vec!["backup", "now"];
    args.extend_from_slice(flags);
    cmd::output_timeout(&mut triadctl(&args)?, limit)
}

/// The id in `backup now`'s summary line, or the failure with what it said.
fn made(output: Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(LabError::Other(format!(
            "triadctl backup now: {}: {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    // "backup 20261206T083700Z: 12 MiB from n2 ..."
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("backup "))
        .and_then(|rest| rest.split(':').next())
        .map(str::to_string)
        .ok_or_else(|| LabError::Other(format!("triadctl backup now said no id: {stdout}")))
}

/// `triadctl backup now`, whatever it answers.
pub fn now_output() -> Result<Output> {
    now_run(&[], BACKUP_LIMIT)
}

/// `triadctl backup verify ID`, whatever it answers.
pub fn verify_output(id: &str) -> Result<Output> {
    cmd::output_timeout(&mut triadctl(&["backup", "verify", id])?, BACKUP_LIMIT)
}

/// `triadctl backup restore ID [--force]`, whatever it answers (bounded: a restore of the
/// lab's backup takes a minute or two).
pub fn restore_output(id: &str, force: bool) -> Result<Output> {
    restore_output_within(id, force, BACKUP_LIMIT)
}

/// [`restore_output`] bounded by `limit` (a benchmark's gigabytes).
pub fn restore_output_within(id: &str, force: bool, limit: Duration) -> Result<Output> {
    let mut args = vec!["backup", "restore", id];
    if force {
        args.push("--force");
    }
    cmd::output_timeout(&mut triadctl(&args)?, limit)
}

/// SHA-256 of every file under the docroot as `node` sees its mount: path -> hash.
pub fn docroot_sums(node: &Node) -> Result<std::collections::BTreeMap<String, String>> {
    let out = node.exec_limit(
        &[
            "sh",
            "-c",
            &format!(
                "cd {} && find . -type f -print0 | xargs -0 -r sha256sum",
                crate::triad::DOCROOT
            ),
        ],
        Duration::from_secs(120),
    )?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_once("  "))
        .map(|(sum, path)| (path.to_string(), sum.to_string()))
        .collect())
}

/// `triadctl backup list -o json`.
pub fn list() -> Result<serde_json::Value> {
    let output = cmd::output_timeout(
        &mut triadctl(&["backup", "list", "-o", "json"])?,
        Duration::from_secs(60),
    )?;
    if !output.status.success() {
        return Err(LabError::Other(format!(
            "triadctl backup list: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| LabError::Other(format!("triadctl backup list -o json: {e}")))
}

/// The lab's key, as the coordinator reads it.
pub fn key() -> Result<triad_backup::key::BackupKey> {
    let path = lab_pki_dir().join(BACKUP_KEY);
    triad_backup::key::BackupKey::load(&path)
        .map_err(|e| LabError::Other(format!("the lab's backup key: {e}")))
}

/// Backup `id`'s stream `name` ("database" or "files") decrypted and decompressed into
/// the file `out`, every part checked against the manifest on the way.
pub fn plaintext(id: &str, name: &str, out: &Path) -> Result<()> {
    use triad_backup::target::Target as _;
    let target = triad_backup::DirTarget::new(lab_backup_dir())
        .map_err(|e| LabError::Other(format!("the lab's backups: {e}")))?;
    let id = triad_backup::BackupId::parse(id)
        .map_err(|e| LabError::Other(format!("backup id {id:?}: {e}")))?;
    let manifest = target
        .manifest(id)
        .map_err(|e| LabError::Other(format!("backup {id}: {e}")))?;
    let stream = triad_backup::manifest::StreamKind::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| LabError::Other(format!("no stream {name:?} in a backup")))?;
    let mut file = std::fs::File::create(out).io("create", out)?;
    triad_backup::read_stream(&target, &manifest, stream, &key()?, &mut file, &mut |_| {})
        .map_err(|e| LabError::Other(format!("backup {id}, {name}: {e}")))
}

/// Backup `id`'s files unpacked into a new directory under `scratch`.
pub fn unpack_files(id: &str, scratch: &Path) -> Result<PathBuf> {
    let tar = scratch.join(format!("{id}.files.tar"));
    plaintext(id, "files", &tar)?;
    let dir = scratch.join(format!("{id}.files"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).io("remove", &dir)?;
    }
    std::fs::create_dir_all(&dir).io("mkdir", &dir)?;
    let mut c = std::process::Command::new("tar");
    c.arg("-x").arg("-f").arg(&tar).arg("-C").arg(&dir);
    let out = cmd::output_timeout(&mut c, Duration::from_secs(120))?;
    cmd::check(&c, out)?;
    std::fs::remove_file(&tar).io("remove", &tar)?;
    Ok(dir)
}

/// Where a node holds a backup's database while it is checked.
const SCRATCH: &str = "/var/tmp/triad-backup-check";
const UNIT: &str = "triad-backup-check";

/// Runs `sql` (`mariadb -N -e`) against backup `id`'s database, extracted and prepared on
/// `node` and served there by a standalone `mariadbd` (no Galera, no network) for the
/// query only; everything is removed afterwards, also on failure.
pub fn query_database(node: &Node, id: &str, sql: &str) -> Result<String> {
    let stream = node.root().join("var/tmp/triad-backup-check.xbstream");
    plaintext(id, "database", &stream)?;
    let result = (|| {
        node.sh(&format!(
            "set -e; rm -rf {SCRATCH}; mkdir -p {SCRATCH}; \
             mbstream -x -C {SCRATCH} < /var/tmp/triad-backup-check.xbstream; \
             mariadb-backup --prepare --target-dir={SCRATCH} 2> /var/tmp/triad-backup-check.prepare.log \
               || {{ tail -20 /var/tmp/triad-backup-check.prepare.log >&2; exit 1; }}; \
             chown -R mysql:mysql {SCRATCH}"
        ))?;
        node.exec(&[
            "systemd-run",
            &format!("--unit={UNIT}"),
            "--",
            "/usr/sbin/mariadbd",
            "--no-defaults",
            &format!("--datadir={SCRATCH}"),
            &format!("--socket={SCRATCH}.sock"),
            &format!("--pid-file={SCRATCH}.pid"),
            "--skip-networking",
            "--skip-grant-tables",
            "--innodb-buffer-pool-size=32M",
            "--user=mysql",
        ])?;
        crate::wait::until(
            "the backup's database served by a standalone mariadbd",
            Duration::from_secs(60),
            Duration::from_millis(300),
            || {
                let o = node.exec_output(
                    &[
                        "mariadb",
                        &format!("--socket={SCRATCH}.sock"),
                        "-N",
                        "-e",
                        sql,
                    ],
                    Duration::from_secs(20),
                )?;
                Ok(if o.status.success() {
                    crate::wait::Poll::Ready(String::from_utf8_lossy(&o.stdout).trim().to_string())
                } else {
                    crate::wait::Poll::Pending(String::from_utf8_lossy(&o.stderr).to_string())
                })
            },
        )
    })();
    let _ = node.exec(&["systemctl", "stop", UNIT]);
    let _ = node.exec(&["systemctl", "reset-failed", UNIT]);
    let _ = node.sh(&format!(
        "rm -rf {SCRATCH} {SCRATCH}.sock {SCRATCH}.pid /var/tmp/triad-backup-check.xbstream /var/tmp/triad-backup-check.prepare.log"
    ));
    result
}

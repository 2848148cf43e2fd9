//! Restore (issue 19), the node's half: what the node holds (for the coordinator's refusal
//! of a cluster that is not empty), the database streamed into the datadir the Galera
//! driver emptied and holds, and the files streamed into the mounted docroot.
//!
//! The database: `mbstream -x` into a staging directory beside the datadir (the same file
//! system, so the move back is renames), `mariadb-backup --prepare`, the Galera position in
//! the stream checked against the manifest's, `mariadb-backup --move-back`, `chown`, and
//! `grastate.dat` written with that position and `safe_to_bootstrap: 1`: the coordinator's
//! fenced bootstrap then checks the node reports exactly the backup's position.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::xbstream::{galera_point, GALERA_INFO_FILES};
use crate::exec::HostError;
use crate::galera::driver::GaleraDriver;

/// Bound of `mariadb-backup --prepare` and `--move-back` (a 2 GiB database takes about a
/// minute on the lab; the bound is for a stuck command, not a slow one).
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(3 * 3600);
/// Table names a survey reports (the count is whole).
pub const SURVEY_NAMES: usize = 5;
/// The schemas a server has before anything is put in it.
pub const SYSTEM_SCHEMAS: [&str; 4] = ["mysql", "information_schema", "performance_schema", "sys"];

/// The plaintext a restore streams in, after its header.
#[async_trait::async_trait]
pub trait Chunks: Send {
    /// The next bytes; `None` at the end. An error ends the restore (the caller is gone,
    /// or sent something else than data).
    async fn next(&mut self) -> Result<Option<Vec<u8>>, String>;
}

/// What a restore's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub backup_id: String,
    pub galera_uuid: String,
    pub galera_seqno: i64,
    pub plain_bytes: u64,
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The node's state does not allow it (names what would).
    #[error("{0}")]
    Refused(String),
    /// Bad input: a header missing or wrong, a byte count that differs.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Host(#[from] HostError),
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
}

/// What the node holds, for the coordinator's check before a restore.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Survey {
    /// Tables outside [`SYSTEM_SCHEMAS`]; None: mysqld does not answer.
    pub tables: Option<u64>,
    pub table_names: Vec<String>,
    /// Entries at the top of the docroot; None: not mounted.
    pub files: Option<u64>,
}

/// The survey's statement: user tables, one `schema.table` per line.
pub fn tables_query() -> String {
    let system: Vec<String> = SYSTEM_SCHEMAS.iter().map(|s| format!("'{s}'")).collect();
    format!(
        "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA NOT IN ({}) ORDER BY 1",
        system.join(", ")
    )
}

/// Pure: the survey's table lines into a count and the first names.
pub fn count_tables(output: &str) -> (u64, Vec<String>) {
    let names: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    (
        names.len() as u64,
        names
            .iter()
            .take(SURVEY_NAMES)
            .map(|n| n.to_string())
            .collect(),
    )
}

/// Reads what the node holds: tables through the `mariadb` client as root (when mysqld
/// runs), entries of the docroot (when `mounted`).
pub async fn survey(socket: &Path, docroot: &Path, mounted: bool) -> Survey {
    let socket = format!("--socket={}", socket.display());
    let query = tables_query();
    let tables = crate::exec::run(
        "mariadb",
        &super::client_args(&socket, &query),
        Duration::from_secs(30),
    )
    .await
    .map(|out| count_tables(&out));
    let files = if mounted {
        app_entries(docroot).await.ok().map(|e| e.len() as u64)
    } else {
        None
    };
    match tables {
        Ok((count, names)) => Survey {
            tables: Some(count),
            table_names: names,
            files,
        },
        Err(error) => {
            tracing::info!("restore survey: no table count: {error}");
            Survey {
                tables: None,
                table_names: vec![],
                files,
            }
        }
    }
}

/// Entries at the top of the docroot that are the volume's or Triad's, not the app's code
/// or uploads: not counted as data, never moved aside (Gluster's trash is not restored
/// either; the PHP sessions under Triad's directory are).
pub const NOT_THE_APPS: [&str; 3] = [
    crate::mount::SENTINEL,
    super::GLUSTER_TRASH,
    crate::apache::config::TRIAD_DIR,
];

/// The app's names at the top of the docroot.
async fn app_entries(docroot: &Path) -> Result<Vec<std::ffi::OsString>, HostError> {
    Ok(entries(docroot)
        .await?
        .into_iter()
        .filter(|name| !NOT_THE_APPS.iter().any(|own| name == *own))
        .collect())
}

/// The names at the top of `dir`.
async fn entries(dir: &Path) -> Result<Vec<std::ffi::OsString>, HostError> {
    let shown = || format!("reading {}", dir.display());
    let mut read = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| HostError::new(shown(), e.to_string()))?;
    let mut names = Vec::new();
    while let Some(entry) = read
        .next_entry()
        .await
        .map_err(|e| HostError::new(shown(), e.to_string()))?
    {
        names.push(entry.file_name());
    }
    Ok(names)
}

/// A backup id as the restore's paths use it: the backup format's `YYYYMMDDTHHMMSSZ`
/// (checked here by shape: it becomes part of a path).
pub fn check_id(id: &str) -> Result<(), RestoreError> {
    let shaped = id.len() == 16
        && id.char_indices().all(|(i, c)| match i {
            8 => c == 'T',
            15 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    if shaped {
        Ok(())
    } else {
        Err(RestoreError::Invalid(format!(
            "backup id {id:?} is not of the form YYYYMMDDTHHMMSSZ"
        )))
    }
}

/// Where the stream is extracted and prepared: beside the datadir, on its file system.
pub fn staging_dir(datadir: &Path, id: &str) -> PathBuf {
    datadir.with_file_name(format!(".triad-restore-{id}"))
}

/// Pure: `grastate.dat` for a restored datadir: the backup's position, and safe to
/// bootstrap (it is the only copy of that history on this cluster; the coordinator still
/// fences the bootstrap on this position).
pub fn grastate(uuid: &str, seqno: i64) -> String {
    format!(
        "# GALERA saved state\nversion: 2.1\nuuid:    {uuid}\nseqno:   {seqno}\nsafe_to_bootstrap: 1\n"
    )
}

/// Pure: the prepared backup's Galera position agrees with the manifest's.
pub fn check_position(content: &[u8], uuid: &str, seqno: i64) -> Result<(), RestoreError> {
    let Some(point) = galera_point(content) else {
        return Err(RestoreError::Invalid(format!(
            "the backup's galera info is unreadable: {:?}",
            String::from_utf8_lossy(content).trim()
        )));
    };
    if point.uuid != uuid.to_ascii_lowercase() || point.seqno != seqno {
        return Err(RestoreError::Invalid(format!(
            "the stream holds position {}:{}, the manifest says {uuid}:{seqno}",
            point.uuid, point.seqno
        )));
    }
    Ok(())
}

/// The backup's database into the datadir that `galera` holds empty for this restore.
pub async fn database(
    galera: &GaleraDriver,
    header: &Header,
    chunks: &mut dyn Chunks,
) -> Result<String, RestoreError> {
    check_id(&header.backup_id)?;
    let datadir = galera
        .restore_writing(&header.backup_id)
        .await
        .map_err(|e| RestoreError::Refused(e.to_string()))?;
    let result = database_into(&datadir, header, chunks).await;
    galera.restore_written().await;
    result
}

async fn database_into(
    datadir: &Path,
    header: &Header,
    chunks: &mut dyn Chunks,
) -> Result<String, RestoreError> {
    let left = entries(datadir).await?;
    if !left.is_empty() {
        return Err(RestoreError::Refused(format!(
            "{} is not empty ({} entries): RestorePrepare leaves it empty",
            datadir.display(),
            left.len()
        )));
    }
    let staging = staging_dir(datadir, &header.backup_id);
    if staging.exists() {
        remove_dir(&staging).await?;
    }
    create_private_dir(&staging).await?;
    let result = async {
        let staged = staging.display().to_string();
        let bytes = feed(&["mbstream", "-x", "-C", &staged], chunks).await?;
        check_bytes(bytes, header.plain_bytes)?;
        let info = GALERA_INFO_FILES
            .iter()
            .map(|name| staging.join(name))
            .find(|p| p.exists())
            .ok_or_else(|| {
                RestoreError::Invalid("the backup holds no xtrabackup_galera_info".into())
            })?;
        let content = tokio::fs::read(&info)
            .await
            .map_err(|e| HostError::new(format!("reading {}", info.display()), e.to_string()))?;
        check_position(&content, &header.galera_uuid, header.galera_seqno)?;
        let target = format!("--target-dir={staged}");
        run_long(&["mariadb-backup", "--prepare", &target]).await?;
        let data = format!("--datadir={}", datadir.display());
        run_long(&["mariadb-backup", "--move-back", &target, &data]).await?;
        let shown = datadir.display().to_string();
        run_long(&["chown", "-R", "mysql:mysql", &shown]).await?;
        let grastate_path = datadir.join("grastate.dat");
        triad_daemon::fs::durable_write(
            &grastate_path,
            &grastate(&header.galera_uuid, header.galera_seqno),
        )
        .map_err(|e| {
            HostError::new(
                format!("writing {}", grastate_path.display()),
                e.to_string(),
            )
        })?;
        let path = grastate_path.display().to_string();
        run_long(&["chown", "mysql:mysql", &path]).await?;
        Ok(format!(
            "{} restored into {} at {}:{}",
            triad_daemon::units::bytes(bytes),
            datadir.display(),
            header.galera_uuid,
            header.galera_seqno
        ))
    }
    .await;
    if let Err(error) = remove_dir(&staging).await {
        tracing::warn!("restore: the staging directory stays: {error}");
    }
    result
}

/// The backup's files into the mounted docroot: refused when it holds anything, unless
/// `force` (then what is there goes into `.triad-before-restore-<id>/` first).
pub async fn files(
    docroot: &Path,
    mounted: bool,
    header: &Header,
    chunks: &mut dyn Chunks,
) -> Result<String, RestoreError> {
    check_id(&header.backup_id)?;
    if !mounted {
        return Err(RestoreError::Refused(format!(
            "the volume is not mounted at {}",
            docroot.display()
        )));
    }
    let present = app_entries(docroot).await?;
    let mut kept = None;
    if !present.is_empty() {
        if !header.force {
            return Err(RestoreError::Refused(format!(
                "{} holds {} entries; use --force to move them aside",
                docroot.display(),
                present.len()
            )));
        }
        let aside = docroot.join(format!(".triad-before-restore-{}", header.backup_id));
        create_private_dir(&aside).await?;
        let aside_name = aside.file_name().map(|n| n.to_os_string());
        for name in present {
            if Some(&name) == aside_name.as_ref() {
                continue;
            }
            let from = docroot.join(&name);
            tokio::fs::rename(&from, aside.join(&name))
                .await
                .map_err(|e| {
                    HostError::new(format!("moving {} aside", from.display()), e.to_string())
                })?;
        }
        kept = Some(aside);
    }
    let (bytes, unpacked) = unpack_into(docroot, chunks).await?;
    check_bytes(bytes, header.plain_bytes)?;
    let mut message = format!(
        "{} of files restored into {} ({} files, {} directories, {} links)",
        triad_daemon::units::bytes(bytes),
        docroot.display(),
        unpacked.files,
        unpacked.directories,
        unpacked.links,
    );
    if unpacked.skipped > 0 {
        message.push_str(&format!("; {} devices or FIFOs not made", unpacked.skipped));
    }
    if let Some(kept) = kept {
        message.push_str(&format!("; what was there is in {}", kept.display()));
    }
    Ok(message)
}

/// The chunks unpacked under `root` by [`super::unpack`] on a blocking thread; answers
/// the bytes taken. A stream that breaks stops the unpack (what was written stays).
async fn unpack_into(
    root: &Path,
    chunks: &mut dyn Chunks,
) -> Result<(u64, super::unpack::Unpacked), RestoreError> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    let into = root.to_path_buf();
    let unpacking = tokio::task::spawn_blocking(move || {
        super::unpack::unpack(&into, ChannelReader::new(receiver))
    });
    let mut bytes = 0u64;
    let mut broke = None;
    loop {
        match chunks.next().await {
            Ok(Some(data)) => {
                let len = data.len() as u64;
                if sender.send(data).await.is_err() {
                    break; // the unpack stopped: its error is the one reported
                }
                bytes += len;
            }
            Ok(None) => break,
            Err(why) => {
                broke = Some(why);
                break;
            }
        }
    }
    drop(sender);
    let unpacked = unpacking
        .await
        .map_err(|e| HostError::new("unpacking the files", e.to_string()))?;
    let what = format!("unpacking the files into {}", root.display());
    if let Some(why) = broke {
        return Err(RestoreError::Invalid(format!(
            "{what}: the stream broke: {why}"
        )));
    }
    let unpacked = unpacked.map_err(|e| HostError::new(what, e.to_string()))?;
    Ok((bytes, unpacked))
}

/// A `Read` over the chunks a channel brings (on a blocking thread).
struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl ChannelReader {
    fn new(receiver: tokio::sync::mpsc::Receiver<Vec<u8>>) -> ChannelReader {
        ChannelReader {
            receiver,
            chunk: Vec::new(),
            at: 0,
        }
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.receiver.blocking_recv() {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn check_bytes(got: u64, expected: u64) -> Result<(), RestoreError> {
    if got != expected {
        return Err(RestoreError::Invalid(format!(
            "{got} bytes arrived, the header announced {expected}"
        )));
    }
    Ok(())
}

async fn create_private_dir(path: &Path) -> Result<(), RestoreError> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.mode(0o700);
    builder
        .create(path)
        .await
        .map_err(|e| HostError::new(format!("creating {}", path.display()), e.to_string()).into())
}

async fn remove_dir(path: &Path) -> Result<(), RestoreError> {
    tokio::fs::remove_dir_all(path)
        .await
        .map_err(|e| HostError::new(format!("removing {}", path.display()), e.to_string()).into())
}

/// A command of the restore that may take long (prepare, move back, chown).
async fn run_long(argv: &[&str]) -> Result<String, RestoreError> {
    let (program, args) = argv.split_first().expect("a command");
    Ok(crate::exec::run(program, args, PREPARE_TIMEOUT).await?)
}

/// Runs `argv` with the chunks on its stdin; answers the bytes written once it exited 0.
/// A command that dies early is reported with its stderr, not as a broken pipe.
async fn feed(argv: &[&str], chunks: &mut dyn Chunks) -> Result<u64, RestoreError> {
    let line = argv.join(" ");
    let (program, args) = argv.split_first().expect("a command");
    let mut child = crate::exec::command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HostError::new(&line, format!("cannot run: {e}")))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let tail = tokio::spawn(super::read_tail(Box::new(stderr)));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut bytes = 0u64;
    let mut broke = None;
    loop {
        match chunks.next().await {
            Ok(Some(data)) => {
                if let Err(error) = stdin.write_all(&data).await {
                    broke = Some(format!("writing to it: {error}"));
                    break;
                }
                bytes += data.len() as u64;
            }
            Ok(None) => break,
            Err(why) => {
                let _ = child.kill().await;
                return Err(RestoreError::Invalid(format!(
                    "{line}: the stream broke: {why}"
                )));
            }
        }
    }
    let _ = stdin.shutdown().await;
    drop(stdin);
    let status = child
        .wait()
        .await
        .map_err(|e| HostError::new(&line, format!("waiting for it: {e}")))?;
    let stderr = tail.await.map(|t| t.text()).unwrap_or_default();
    if !status.success() {
        return Err(RestoreError::Command {
            command: line,
            status: super::Exit::from(status).to_string(),
            stderr,
        });
    }
    if let Some(broke) = broke {
        return Err(RestoreError::Command {
            command: line,
            status: "exit status 0".into(),
            stderr: broke,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "9dc7cbba-e8fa-11f1-9cdd-af8aaf7b5b31";

    struct Fed(Vec<Result<Vec<u8>, String>>);

    #[async_trait::async_trait]
    impl Chunks for Fed {
        async fn next(&mut self) -> Result<Option<Vec<u8>>, String> {
            if self.0.is_empty() {
                return Ok(None);
            }
            self.0.remove(0).map(Some)
        }
    }

    #[test]
    fn the_survey_counts_user_tables_and_names_the_first() {
        let query = tables_query();
        for schema in SYSTEM_SCHEMAS {
            assert!(query.contains(&format!("'{schema}'")), "{query}");
        }
        assert_eq!(count_tables(""), (0, vec![]));
        let many: String = (0..8).map(|i| format!("wp.t{i}\n")).collect();
        let (count, names) = count_tables(&many);
        assert_eq!(count, 8);
        assert_eq!(names, ["wp.t0", "wp.t1", "wp.t2", "wp.t3", "wp.t4"]);
    }

    #[test]
    fn the_restored_grastate_is_the_backups_position_and_safe_to_bootstrap() {
        let text = grastate(U, 232);
        let parsed = triad_galera::position::parse_grastate(&text).unwrap();
        assert_eq!(parsed.position.uuid, U);
        assert_eq!(parsed.position.seqno, 232);
        assert!(parsed.safe_to_bootstrap);
    }

    #[test]
    fn a_stream_whose_position_differs_from_the_manifest_is_refused() {
        assert_eq!(
            check_position(format!("{U}:232\n").as_bytes(), U, 232),
            Ok(())
        );
        let other = check_position(format!("{U}:231\n").as_bytes(), U, 232).unwrap_err();
        assert!(
            other.to_string().contains(":231, the manifest says"),
            "{other}"
        );
        assert!(matches!(
            check_position(b"garbage", U, 232),
            Err(RestoreError::Invalid(_))
        ));
    }

    #[test]
    fn staging_sits_beside_the_datadir() {
        assert_eq!(
            staging_dir(Path::new("/var/lib/mysql"), "20261206T101500Z"),
            Path::new("/var/lib/.triad-restore-20261206T101500Z")
        );
        assert!(check_id("../../etc").is_err());
        assert!(check_id("20261206T101500Z").is_ok());
    }

    #[tokio::test]
    async fn feeding_counts_bytes_and_names_a_command_that_fails() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("cat > {}", out.display());
        let mut chunks = Fed(vec![Ok(b"hello ".to_vec()), Ok(b"world".to_vec())]);
        let bytes = feed(&["sh", "-c", &script], &mut chunks).await.unwrap();
        assert_eq!(bytes, 11);
        assert_eq!(std::fs::read(&out).unwrap(), b"hello world");

        // dies at once: its stderr, not a broken pipe, is the error
        let mut chunks = Fed(vec![Ok(vec![0u8; 1 << 20]), Ok(vec![0u8; 1 << 20])]);
        let error = feed(&["sh", "-c", "echo no space left >&2; exit 2"], &mut chunks)
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("exit status 2") && text.contains("no space left"),
            "{text}"
        );

        // the caller's stream breaks: the command is killed, the error says so
        let mut chunks = Fed(vec![Ok(b"x".to_vec()), Err("caller gone".into())]);
        let error = feed(&["sh", "-c", "cat > /dev/null"], &mut chunks)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("caller gone"), "{error}");
    }

    #[tokio::test]
    async fn files_refuse_a_docroot_that_holds_anything_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("index.php"), b"old").unwrap();
        // the volume's own entries are neither counted nor moved
        std::fs::write(root.join(crate::mount::SENTINEL), b"").unwrap();
        std::fs::create_dir(root.join(".trashcan")).unwrap();
        std::fs::create_dir(root.join(".triad")).unwrap();
        // a tar of one file, made by the real tar
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("new.txt"), b"restored").unwrap();
        let tar = std::process::Command::new("tar")
            .args(["--create", "--file=-", "--directory"])
            .arg(src.path())
            .arg(".")
            .output()
            .unwrap();
        assert!(tar.status.success());
        let mut header = Header {
            backup_id: "20261206T101500Z".into(),
            galera_uuid: String::new(),
            galera_seqno: -1,
            plain_bytes: tar.stdout.len() as u64,
            force: false,
        };
        let refused = files(root, true, &header, &mut Fed(vec![Ok(tar.stdout.clone())]))
            .await
            .unwrap_err();
        assert!(matches!(refused, RestoreError::Refused(_)), "{refused}");
        assert!(refused.to_string().contains("--force"), "{refused}");
        assert!(matches!(
            files(root, false, &header, &mut Fed(vec![])).await,
            Err(RestoreError::Refused(_))
        ));

        header.force = true;
        let message = files(root, true, &header, &mut Fed(vec![Ok(tar.stdout.clone())]))
            .await
            .unwrap();
        assert!(
            message.contains(".triad-before-restore-20261206T101500Z"),
            "{message}"
        );
        assert_eq!(std::fs::read(root.join("new.txt")).unwrap(), b"restored");
        assert_eq!(
            std::fs::read(root.join(".triad-before-restore-20261206T101500Z/index.php")).unwrap(),
            b"old"
        );
        assert!(!root.join("index.php").exists());
        assert!(root.join(".trashcan").is_dir() && root.join(crate::mount::SENTINEL).exists());

        // fewer bytes than announced: refused after the fact, named
        header.plain_bytes += 1;
        let short = files(
            tempfile::tempdir().unwrap().path(),
            true,
            &header,
            &mut Fed(vec![Ok(tar.stdout)]),
        )
        .await
        .unwrap_err();
        assert!(short.to_string().contains("announced"), "{short}");
    }
}

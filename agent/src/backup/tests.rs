//! The backup stream against an in-memory host: what runs in which order, what the caller
//! receives, and that the desync is lifted on every path.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;
use triad_proto::gossip::GaleraState;

use super::xbstream::tests::{backup_stream, eof, payload};
use super::*;

const UUID: &str = "d38587ce-246c-11e5-bcce-6bbd0831cc0f";
const TEMP: &str = "/var/tmp/triad-backup-test";
const DATABASE_COMMAND: &str = "mariadb-backup --backup --stream=xbstream --galera-info \
     --target-dir=/var/tmp/triad-backup-test --tmpdir=/var/tmp/triad-backup-test \
     --user=root --socket=/run/mysqld/mysqld.sock";
const FILES_COMMAND: &str =
    "tar --create --file=- --directory=/var/www/triad --numeric-owner --one-file-system --exclude=./.trashcan .";

/// What the fake command does.
struct Script {
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    stderr: Vec<u8>,
    exit: Exit,
}

impl Script {
    fn new(stdout: impl AsyncRead + Send + Unpin + 'static, stderr: &str, exit: Exit) -> Script {
        Script {
            stdout: Box::new(stdout),
            stderr: stderr.as_bytes().to_vec(),
            exit,
        }
    }
}

#[derive(Default)]
struct FakeHost {
    log: Arc<Mutex<Vec<String>>>,
    desynced: Mutex<bool>,
    /// `SET GLOBAL wsrep_desync = ON` fails.
    desync_fails: bool,
    /// What `spawn` starts; none: the program does not exist.
    script: Mutex<Option<Script>>,
}

impl FakeHost {
    fn running(script: Script) -> Arc<FakeHost> {
        Arc::new(FakeHost {
            script: Mutex::new(Some(script)),
            ..FakeHost::default()
        })
    }

    fn note(&self, entry: impl Into<String>) {
        self.log.lock().unwrap().push(entry.into());
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl BackupHost for FakeHost {
    async fn desynced(&self) -> Result<bool, HostError> {
        self.note("desynced?");
        Ok(*self.desynced.lock().unwrap())
    }

    async fn set_desync(&self, on: bool) -> Result<(), HostError> {
        self.note(if on { "desync on" } else { "desync off" });
        if on && self.desync_fails {
            return Err(HostError::new(
                "mariadb -e 'SET GLOBAL wsrep_desync = ON'",
                "exit status: 1: ERROR 2002 (HY000): Can't connect to local server",
            ));
        }
        *self.desynced.lock().unwrap() = on;
        Ok(())
    }

    fn lift_desync_blocking(&self) -> Result<(), HostError> {
        self.note("desync off (blocking)");
        *self.desynced.lock().unwrap() = false;
        Ok(())
    }

    async fn temp_dir(&self) -> Result<PathBuf, HostError> {
        self.note("temp dir");
        Ok(PathBuf::from(TEMP))
    }

    fn remove_temp_dir(&self, dir: &Path) -> Result<(), HostError> {
        self.note(format!("remove {}", dir.display()));
        Ok(())
    }

    fn spawn(&self, argv: &[String]) -> Result<Spawned, HostError> {
        let line = argv.join(" ");
        self.note(format!("spawn {line}"));
        let Some(script) = self.script.lock().unwrap().take() else {
            return Err(HostError::new(
                line,
                "cannot run: No such file or directory (os error 2)",
            ));
        };
        Ok(Spawned {
            stdout: script.stdout,
            stderr: Box::new(Cursor::new(script.stderr)),
            process: Box::new(FakeProcess {
                exit: script.exit,
                log: self.log.clone(),
            }),
        })
    }
}

struct FakeProcess {
    exit: Exit,
    log: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl Running for FakeProcess {
    async fn wait(&mut self) -> Result<Exit, HostError> {
        self.log.lock().unwrap().push("exited".into());
        Ok(self.exit)
    }

    async fn kill(&mut self) {
        self.log.lock().unwrap().push("kill".into());
    }
}

/// Output without end, counting the reads made of it.
struct Endless {
    reads: Arc<AtomicUsize>,
}

impl AsyncRead for Endless {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let n = buf.remaining().min(1024);
        buf.put_slice(&vec![0u8; n]);
        Poll::Ready(Ok(()))
    }
}

/// A payload chunk whose payload never ends (read from [`Endless`] after it).
fn endless_database_output(reads: Arc<AtomicUsize>) -> impl AsyncRead + Send + Unpin {
    let mut head = payload("ibdata1", 0, b"");
    // the payload length, after magic, flags, type, path length and the 7-byte path
    head[21..29].copy_from_slice(&(1u64 << 40).to_le_bytes());
    // its checksum is not checked: ibdata1 is not collected
    Cursor::new(head).chain(Endless { reads })
}

fn settings() -> BackupSettings {
    BackupSettings {
        node_id: "n1".into(),
        socket: PathBuf::from("/run/mysqld/mysqld.sock"),
        docroot: PathBuf::from("/var/www/triad"),
    }
}

/// A core node Synced in a Primary component, its docroot mounted.
fn healthy() -> Facts {
    Facts {
        role: Role::Core,
        galera: GaleraKeys {
            state: GaleraState::Synced,
            cluster_status: Some("Primary".into()),
            ..GaleraKeys::default()
        },
        mount: MountState::Ok,
    }
}

/// Everything the stream sends: its data, the size of each data chunk, and its end.
async fn drain(mut rx: mpsc::Receiver<Item>) -> (Vec<u8>, Vec<usize>, Result<Done, BackupError>) {
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the stream ends within 10 s");
        let end = match item {
            Some(Ok(Piece::Data(bytes))) => {
                sizes.push(bytes.len());
                data.extend_from_slice(&bytes);
                continue;
            }
            Some(Ok(Piece::Done(done))) => Ok(done),
            Some(Err(error)) => Err(error),
            None => panic!("the stream ended without done or an error"),
        };
        assert!(rx.recv().await.is_none(), "nothing follows the end");
        return (data, sizes, end);
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 5 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_database_backup_streams_desynced_and_ends_with_the_galera_point() {
    let stream = backup_stream(&format!("{UUID}:1352215 0-1-1352200\n"));
    let host = FakeHost::running(Script::new(
        Cursor::new(stream.clone()),
        "[00] 2026-01-01 00:00:00 completed OK!\n",
        Exit::Code(0),
    ));
    let backups = Backups::new(settings(), host.clone());
    let rx = backups.start(Kind::Database, &healthy()).await.unwrap();
    let (data, _, end) = drain(rx).await;
    assert_eq!(data, stream, "the bytes pass untouched");
    let done = end.unwrap();
    assert_eq!(done.bytes, stream.len() as u64);
    assert_eq!(
        done.galera,
        Some(GaleraPoint {
            uuid: UUID.into(),
            seqno: 1352215,
            gtid: Some("0-1-1352200".into()),
            domain_id: None,
        })
    );
    assert_eq!(
        host.log(),
        [
            "desynced?".to_string(),
            "desync on".into(),
            "temp dir".into(),
            format!("spawn {DATABASE_COMMAND}"),
            "exited".into(),
            format!("remove {TEMP}"),
            "desync off".into(),
        ],
        "the desync is lifted before done is sent"
    );
    assert_eq!(backups.busy.available_permits(), 1, "the next may start");
}

#[tokio::test]
async fn output_is_sent_in_chunks_of_at_most_256_kib() {
    let big = vec![7u8; 600 * 1024];
    let info = format!("{UUID}:3\n");
    let stream = [
        payload("ibdata1", 0, &big),
        payload("xtrabackup_galera_info", 0, info.as_bytes()),
        eof("xtrabackup_galera_info"),
        eof("ibdata1"),
    ]
    .concat();
    let host = FakeHost::running(Script::new(Cursor::new(stream.clone()), "", Exit::Code(0)));
    let backups = Backups::new(settings(), host);
    let (data, sizes, end) = drain(backups.start(Kind::Database, &healthy()).await.unwrap()).await;
    assert_eq!(data, stream);
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= CHUNK_BYTES), "{sizes:?}");
    assert_eq!(end.unwrap().galera.unwrap().seqno, 3);
}

#[tokio::test]
async fn a_failing_backup_names_the_command_and_its_last_stderr_lines_and_lifts_the_desync() {
    let stream = backup_stream(&format!("{UUID}:5\n"));
    let mut stderr: String = (0..25).map(|i| format!("[00] line {i}\n")).collect();
    stderr.push_str("[00] FATAL ERROR: failed to execute query BACKUP STAGE START");
    let host = FakeHost::running(Script::new(
        Cursor::new(stream[..100].to_vec()),
        &stderr,
        Exit::Code(1),
    ));
    let backups = Backups::new(settings(), host.clone());
    let (data, _, end) = drain(backups.start(Kind::Database, &healthy()).await.unwrap()).await;
    assert_eq!(data, stream[..100], "what came before the failure was sent");
    let error = end.unwrap_err();
    assert!(
        matches!(
            error,
            BackupError::Command {
                exit: Exit::Code(1),
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.starts_with(DATABASE_COMMAND), "{message}");
    assert!(message.contains("failed (exit status 1)"), "{message}");
    assert!(message.ends_with("BACKUP STAGE START"), "{message}");
    assert!(message.contains("[00] line 24 | "), "{message}");
    assert!(
        !message.contains("line 5 |"),
        "only the last 20 lines: {message}"
    );
    assert_eq!(host.log().last().unwrap(), "desync off");
    assert!(host.log().contains(&format!("remove {TEMP}")));
}

#[tokio::test]
async fn a_whole_stream_without_the_galera_info_is_a_failure() {
    let stream = [payload("ibdata1", 0, b"pages"), eof("ibdata1")].concat();
    let host = FakeHost::running(Script::new(Cursor::new(stream), "", Exit::Code(0)));
    let backups = Backups::new(settings(), host.clone());
    let (_, _, end) = drain(backups.start(Kind::Database, &healthy()).await.unwrap()).await;
    let error = end.unwrap_err();
    assert!(matches!(error, BackupError::Position { .. }), "{error:?}");
    assert!(
        error.to_string().contains("no xtrabackup_galera_info"),
        "{error}"
    );
    assert_eq!(host.log().last().unwrap(), "desync off");
}

#[tokio::test]
async fn output_that_is_not_an_xbstream_kills_the_command() {
    let host = FakeHost::running(Script::new(
        Cursor::new(b"mariadb-backup: unknown option".to_vec()),
        "",
        Exit::Code(0),
    ));
    let backups = Backups::new(settings(), host.clone());
    let (_, _, end) = drain(backups.start(Kind::Database, &healthy()).await.unwrap()).await;
    let error = end.unwrap_err();
    assert!(
        matches!(
            &error,
            BackupError::Stream {
                error: XbstreamError::BadMagic { at: 0, .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("byte 0: no xbstream chunk magic"),
        "{error}"
    );
    let log = host.log();
    assert!(log.contains(&"kill".to_string()), "{log:?}");
    assert_eq!(log.last().unwrap(), "desync off");
}

#[tokio::test]
async fn a_caller_that_goes_away_kills_the_command_and_the_desync_is_lifted() {
    let reads = Arc::new(AtomicUsize::new(0));
    let host = FakeHost::running(Script::new(
        endless_database_output(reads),
        "",
        Exit::Signal(9),
    ));
    let backups = Backups::new(settings(), host.clone());
    let mut rx = backups.start(Kind::Database, &healthy()).await.unwrap();
    assert!(matches!(rx.recv().await, Some(Ok(Piece::Data(_)))));
    drop(rx);
    wait_for("the desync lifted", || {
        host.log().last().map(String::as_str) == Some("desync off")
    })
    .await;
    let log = host.log();
    let kill = log.iter().position(|e| e == "kill").expect("killed");
    let removed = log.iter().position(|e| e.starts_with("remove ")).unwrap();
    assert!(kill < removed, "{log:?}");
    assert!(!log.contains(&"exited".to_string()), "{log:?}");
    wait_for("the stream's permit released", || {
        backups.busy.available_permits() == 1
    })
    .await;
}

#[tokio::test]
async fn a_slow_caller_holds_the_command_back() {
    let reads = Arc::new(AtomicUsize::new(0));
    let host = FakeHost::running(Script::new(
        Endless {
            reads: reads.clone(),
        },
        "",
        Exit::Code(0),
    ));
    let backups = Backups::new(settings(), host.clone());
    let rx = backups.start(Kind::Files, &healthy()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let read = reads.load(Ordering::SeqCst);
    assert!(
        read <= CHANNEL_CHUNKS + 2,
        "{read} reads with nobody receiving: the channel holds {CHANNEL_CHUNKS}"
    );
    drop(rx);
    wait_for("the command killed", || {
        host.log().contains(&"kill".to_string())
    })
    .await;
}

#[tokio::test]
async fn a_second_backup_is_refused_while_one_streams() {
    let host = FakeHost::running(Script::new(
        endless_database_output(Arc::default()),
        "",
        Exit::Code(0),
    ));
    let backups = Backups::new(settings(), host.clone());
    let first = backups.start(Kind::Database, &healthy()).await.unwrap();
    for kind in [Kind::Database, Kind::Files] {
        let error = backups.start(kind, &healthy()).await.unwrap_err();
        assert_eq!(error, BackupError::Busy);
        assert_eq!(
            error.to_string(),
            "a backup is already streaming from this node"
        );
    }
    drop(first);
    wait_for("the first stream's end", || {
        backups.busy.available_permits() == 1
    })
    .await;
    // the fake's one command is spent: the next start gets as far as spawning
    let error = backups.start(Kind::Files, &healthy()).await.unwrap_err();
    assert!(error.to_string().contains("No such file"), "{error}");
}

#[tokio::test]
async fn refusals_touch_nothing_on_the_node() {
    let host = FakeHost::running(Script::new(Cursor::new(Vec::new()), "", Exit::Code(0)));
    let backups = Backups::new(settings(), host.clone());
    let mut web = healthy();
    web.role = Role::Web;
    let error = backups.start(Kind::Database, &web).await.unwrap_err();
    assert!(matches!(error, BackupError::Refused(_)), "{error:?}");
    let mut stale = healthy();
    stale.mount = MountState::Stale;
    let error = backups.start(Kind::Files, &stale).await.unwrap_err();
    assert!(matches!(error, BackupError::Refused(_)), "{error:?}");
    assert!(host.log().is_empty(), "{:?}", host.log());
    assert_eq!(backups.busy.available_permits(), 1);
}

#[test]
fn the_checks_say_why_a_part_is_refused() {
    let docroot = Path::new("/var/www/triad");
    assert_eq!(check(Kind::Database, &healthy(), docroot), Ok(()));
    assert_eq!(check(Kind::Files, &healthy(), docroot), Ok(()));
    let refused = |kind, change: fn(&mut Facts)| {
        let mut facts = healthy();
        change(&mut facts);
        match check(kind, &facts, docroot) {
            Err(BackupError::Refused(why)) => why,
            other => panic!("{other:?}"),
        }
    };
    let web = refused(Kind::Database, |f| f.role = Role::Web);
    assert!(web.starts_with("this is a web node"), "{web}");
    let donor = refused(Kind::Database, |f| f.galera.state = GaleraState::Donor);
    assert!(
        donor.starts_with("galera here is donor (Primary)"),
        "{donor}"
    );
    let cut_off = refused(Kind::Database, |f| {
        f.galera.cluster_status = Some("non-Primary".into())
    });
    assert!(cut_off.contains("synced (non-Primary)"), "{cut_off}");
    let unmanaged = refused(Kind::Database, |f| f.galera.state = GaleraState::NotManaged);
    assert!(unmanaged.contains("not-managed"), "{unmanaged}");
    let stale = refused(Kind::Files, |f| f.mount = MountState::Stale);
    assert!(stale.contains("/var/www/triad is stale"), "{stale}");
    let absent = refused(Kind::Files, |f| f.mount = MountState::Absent);
    assert!(absent.contains("is absent"), "{absent}");
    let no_mount = refused(Kind::Files, |f| f.mount = MountState::NotManaged);
    assert!(no_mount.contains("not managed"), "{no_mount}");
    // a web node's files are backed up: it mounts the volume too
    let mut web = healthy();
    web.role = Role::Web;
    assert_eq!(check(Kind::Files, &web, docroot), Ok(()));
}

#[tokio::test]
async fn a_node_already_desynced_is_refused_and_left_as_it_is() {
    let host = Arc::new(FakeHost {
        desynced: Mutex::new(true),
        ..FakeHost::default()
    });
    let backups = Backups::new(settings(), host.clone());
    let error = backups.start(Kind::Database, &healthy()).await.unwrap_err();
    assert!(
        matches!(&error, BackupError::Refused(why) if why.starts_with("wsrep_desync is already ON")),
        "{error:?}"
    );
    assert_eq!(host.log(), ["desynced?"]);
    assert!(*host.desynced.lock().unwrap(), "not the agent's to lift");
}

#[tokio::test]
async fn a_desync_that_fails_is_an_error_and_lifted_all_the_same() {
    let host = Arc::new(FakeHost {
        desync_fails: true,
        ..FakeHost::default()
    });
    let backups = Backups::new(settings(), host.clone());
    let error = backups.start(Kind::Database, &healthy()).await.unwrap_err();
    assert!(matches!(error, BackupError::Host(_)), "{error:?}");
    assert!(error.to_string().contains("wsrep_desync = ON"), "{error}");
    assert_eq!(host.log(), ["desynced?", "desync on", "desync off"]);
    assert_eq!(backups.busy.available_permits(), 1);
}

#[tokio::test]
async fn a_command_that_cannot_start_leaves_nothing_behind() {
    let host = Arc::new(FakeHost::default());
    let backups = Backups::new(settings(), host.clone());
    let error = backups.start(Kind::Database, &healthy()).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{DATABASE_COMMAND}: cannot run: No such file or directory (os error 2)")
    );
    assert_eq!(
        host.log(),
        [
            "desynced?".to_string(),
            "desync on".into(),
            "temp dir".into(),
            format!("spawn {DATABASE_COMMAND}"),
            format!("remove {TEMP}"),
            "desync off".into(),
        ]
    );
}

#[tokio::test]
async fn files_are_a_tar_of_the_docroot_and_tars_exit_1_still_whole() {
    let archive = b"docroot as a tar".to_vec();
    let host = FakeHost::running(Script::new(
        Cursor::new(archive.clone()),
        "tar: ./data/owncloud.log: file changed as we read it\n",
        Exit::Code(1),
    ));
    let backups = Backups::new(settings(), host.clone());
    let (data, _, end) = drain(backups.start(Kind::Files, &healthy()).await.unwrap()).await;
    assert_eq!(data, archive);
    assert_eq!(
        end.unwrap(),
        Done {
            bytes: archive.len() as u64,
            galera: None
        }
    );
    assert_eq!(
        host.log(),
        [format!("spawn {FILES_COMMAND}"), "exited".into()],
        "no desync, no directory"
    );
    for exit in [Exit::Code(2), Exit::Signal(9)] {
        let host = FakeHost::running(Script::new(
            Cursor::new(archive.clone()),
            "tar: ./x: Cannot open: Transport endpoint is not connected\ntar: Exiting with failure status due to previous errors\n",
            exit,
        ));
        let backups = Backups::new(settings(), host);
        let (_, _, end) = drain(backups.start(Kind::Files, &healthy()).await.unwrap()).await;
        let message = end.unwrap_err().to_string();
        assert!(
            message.starts_with(&format!(
                "{FILES_COMMAND} failed ({exit}): tar: ./x: Cannot open"
            )),
            "{message}"
        );
    }
}

#[test]
fn exits_are_judged_per_command() {
    assert_eq!(judge(Kind::Database, Exit::Code(0)), Verdict::Whole);
    assert_eq!(judge(Kind::Database, Exit::Code(1)), Verdict::Failed);
    assert_eq!(judge(Kind::Database, Exit::Signal(9)), Verdict::Failed);
    assert_eq!(judge(Kind::Files, Exit::Code(0)), Verdict::Whole);
    assert!(matches!(
        judge(Kind::Files, Exit::Code(1)),
        Verdict::WholeWithWarning(_)
    ));
    assert_eq!(judge(Kind::Files, Exit::Code(2)), Verdict::Failed);
    assert_eq!(judge(Kind::Files, Exit::Signal(15)), Verdict::Failed);
    assert_eq!(Exit::Signal(9).to_string(), "killed by signal 9");
}

#[test]
fn the_commands_are_mariadb_backup_and_gnu_tar() {
    let database = database_command(Path::new("/run/mysqld/mysqld.sock"), Path::new(TEMP));
    assert_eq!(database.join(" "), DATABASE_COMMAND);
    assert_eq!(
        files_command(Path::new("/var/www/triad")).join(" "),
        FILES_COMMAND
    );
    assert_eq!(desync_statement(true), "SET GLOBAL wsrep_desync = ON");
    assert_eq!(desync_statement(false), "SET GLOBAL wsrep_desync = OFF");
    assert_eq!(parse_desynced("1\n"), Some(true));
    assert_eq!(parse_desynced("0\n"), Some(false));
    assert_eq!(parse_desynced("OFF"), Some(false));
    assert_eq!(parse_desynced("ERROR"), None);
}

#[test]
fn the_stderr_tail_keeps_the_last_lines_bounded() {
    assert_eq!(StderrTail::default().text(), "nothing on stderr");
    let mut tail = StderrTail::default();
    let text: String = (0..30).map(|i| format!("line {i}\r\n\n")).collect();
    for piece in text.as_bytes().chunks(3) {
        tail.push(piece);
    }
    tail.push(b"no newline at the end");
    let kept = tail.text();
    let lines: Vec<&str> = kept.split(" | ").collect();
    assert_eq!(lines.len(), STDERR_LINES);
    assert_eq!(lines[0], "line 11");
    assert_eq!(lines[STDERR_LINES - 1], "no newline at the end");
    let mut long = StderrTail::default();
    long.push(&vec![b'x'; 10_000]);
    long.push(b"\nshort\n");
    let kept = long.text();
    assert_eq!(kept, format!("{} | short", "x".repeat(STDERR_LINE_BYTES)));
}

#[tokio::test]
async fn a_desync_guard_dropped_without_its_lift_lifts_blocking() {
    let host = Arc::new(FakeHost::default());
    *host.desynced.lock().unwrap() = true;
    let guard = DesyncGuard {
        host: Some(host.clone()),
        node: "n1".into(),
    };
    drop(guard);
    assert_eq!(host.log(), ["desync off (blocking)"]);
    let guard = DesyncGuard {
        host: Some(host.clone()),
        node: "n1".into(),
    };
    guard.lift().await;
    assert_eq!(
        host.log(),
        ["desync off (blocking)", "desync off"],
        "lifted once"
    );
}

#[test]
fn the_database_part_ends_only_with_a_readable_position() {
    let command = "mariadb-backup --backup";
    let scan = |stream: &[u8]| {
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        scanner.feed(stream).unwrap();
        scanner
    };
    let newer = [
        payload(
            "mariadb_backup_galera_info",
            0,
            format!("{UUID}:8").as_bytes(),
        ),
        eof("mariadb_backup_galera_info"),
    ]
    .concat();
    let done = database_done(command, &scan(&newer)).unwrap();
    assert_eq!(done.galera.unwrap().seqno, 8, "MariaDB 11.1's name");
    let garbage = [
        payload("xtrabackup_galera_info", 0, b"no position here"),
        eof("xtrabackup_galera_info"),
    ]
    .concat();
    let error = database_done(command, &scan(&garbage)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "mariadb-backup --backup: xtrabackup_galera_info holds \"no position here\", not uuid:seqno"
    );
    let unended = payload("xtrabackup_galera_info", 0, format!("{UUID}:8").as_bytes());
    let error = database_done(command, &scan(&unended)).unwrap_err();
    assert!(
        error.to_string().contains("without its end chunk"),
        "{error}"
    );
    let cut = &newer[..newer.len() - 3];
    let error = database_done(command, &scan(cut)).unwrap_err();
    assert!(
        matches!(
            &error,
            BackupError::Stream {
                error: XbstreamError::Truncated { .. },
                ..
            }
        ),
        "{error:?}"
    );
}

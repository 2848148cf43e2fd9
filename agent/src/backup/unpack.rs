//! The restore's files (issue 19): a tar stream written into the docroot by several writers
//! at once.
//!
//! On the replica volume every file costs round trips to three bricks (create, write,
//! owner, mode, time, release): about 33 ms a file on the lab, so GNU tar, which writes one
//! file after the other, took 94 s for WordPress's 2,600 files. Eight tar processes on
//! parts of the list took 27 s (16: 31 s), so the stream is read here, in order, and the
//! files are written by [`WRITERS`] threads. Directories are made in order before the files
//! they hold; their owner, mode and time are set last, deepest first (a file written into a
//! directory changes its time). Hard links wait until every file is written. Large files are
//! written by the reading thread (their cost is bytes, not round trips), so the memory held
//! is bounded by the queue: [`QUEUE`] files of at most [`SMALL`] bytes.
//!
//! What GNU tar would do with `--numeric-owner --same-owner --same-permissions`: numeric
//! owners, the mode bits with set-id, modification times; the entry `./.trashcan` (Gluster's)
//! and whatever is under it is left out. Device and FIFO entries are counted and skipped:
//! a web docroot has none, and making devices on the volume is not something a restore
//! should do.

use std::collections::HashSet;
use std::fs::{File, FileTimes, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Threads writing files at once (8 was the fastest of 4, 8 and 16 on the lab).
pub const WRITERS: usize = 8;
/// Files at most this large are queued to the writers; larger ones the reader writes.
pub const SMALL: u64 = 1 << 20;
/// Files queued to the writers at most.
pub const QUEUE: usize = 4 * WRITERS;

/// What an unpack wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub directories: u64,
    pub links: u64,
    /// Devices and FIFOs, not made.
    pub skipped: u64,
}

/// Owner, mode and modification time of an entry.
#[derive(Debug, Clone, Copy)]
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
}

impl Meta {
    fn of(header: &tar::Header, path: &Path) -> io::Result<Meta> {
        let bad = |what: &str, e: io::Error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: its {what}: {e}", path.display()),
            )
        };
        Ok(Meta {
            uid: header.uid().map_err(|e| bad("owner", e))? as u32,
            gid: header.gid().map_err(|e| bad("group", e))? as u32,
            mode: header.mode().map_err(|e| bad("mode", e))? & 0o7777,
            mtime: header.mtime().map_err(|e| bad("time", e))?,
        })
    }

    fn time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.mtime)
    }

    /// Owner, then mode (a change of owner clears set-id bits), then time.
    fn apply(&self, file: &File, path: &Path) -> io::Result<()> {
        let named = |what: &str, e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("{}: setting its {what}: {e}", path.display()),
            )
        };
        std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid))
            .map_err(|e| named("owner", e))?;
        file.set_permissions(Permissions::from_mode(self.mode))
            .map_err(|e| named("mode", e))?;
        let time = self.time();
        file.set_times(FileTimes::new().set_modified(time).set_accessed(time))
            .map_err(|e| named("time", e))
    }
}

/// A regular file to write.
struct Job {
    path: PathBuf,
    meta: Meta,
    data: Vec<u8>,
}

/// Writes the tar stream read from `input` under `root` and reads `input` to its end (the
/// stream's padding after the archive's end included). The first error stops it, naming
/// the entry; what was written stays.
pub fn unpack(root: &Path, input: impl Read) -> io::Result<Unpacked> {
    let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
    let queue = Arc::new(Mutex::new(queue));
    let failed: Arc<Mutex<Option<io::Error>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || loop {
                let job = match queue.lock().map(|q| q.recv()) {
                    Ok(Ok(job)) => job,
                    _ => return,
                };
                if let Err(e) = write_file(&job.path, job.meta, &mut job.data.as_slice()) {
                    let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    return;
                }
            })
        })
        .collect();
    let read = read_entries(root, input, &jobs, &failed);
    drop(jobs);
    for writer in writers {
        let _ = writer.join();
    }
    let mut done = read?;
    if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    // after every file: hard links to them, then the directories' owners, modes and times
    for (path, target) in std::mem::take(&mut done.links) {
        std::fs::hard_link(&target, &path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{}: linking to {}: {e}", path.display(), target.display()),
            )
        })?;
    }
    for (path, meta) in done.directories.iter().rev() {
        let dir = File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        meta.apply(&dir, path)?;
    }
    Ok(done.unpacked)
}

/// What the reading pass leaves for after the writers.
#[derive(Default)]
struct Pending {
    unpacked: Unpacked,
    directories: Vec<(PathBuf, Meta)>,
    links: Vec<(PathBuf, PathBuf)>,
}

fn read_entries(
    root: &Path,
    input: impl Read,
    jobs: &mpsc::SyncSender<Job>,
    failed: &Mutex<Option<io::Error>>,
) -> io::Result<Pending> {
    let mut done = Pending::default();
    let mut made: HashSet<PathBuf> = HashSet::new();
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries()? {
        if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
            // the writer's error is the one reported; the rest of the stream is not read
            // (the sender stops when it finds nobody reading)
            return Ok(done);
        }
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let relative = inside(&name)?;
        if excluded(&relative) {
            continue;
        }
        let path = root.join(&relative);
        let meta = Meta::of(entry.header(), &path)?;
        if let Some(parent) = relative.parent() {
            if !parent.as_os_str().is_empty() && !made.contains(parent) {
                std::fs::create_dir_all(root.join(parent)).map_err(|e| named(&path, e))?;
                made.insert(parent.to_path_buf());
            }
        }
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                if !relative.as_os_str().is_empty() {
                    match std::fs::create_dir(&path) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                            return Err(named(&path, e))
                        }
                        _ => {}
                    }
                    made.insert(relative.clone());
                    done.unpacked.directories += 1;
                }
                done.directories.push((path, meta));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                done.unpacked.files += 1;
                if entry.size() > SMALL {
                    write_file(&path, meta, &mut entry)?;
                } else {
                    let mut data = Vec::with_capacity(entry.size() as usize);
                    entry.read_to_end(&mut data)?;
                    if jobs.send(Job { path, meta, data }).is_err() {
                        return Ok(done); // every writer stopped: an error is reported
                    }
                }
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| invalid(&path, "a symbolic link without a target"))?;
                if let Err(e) = std::os::unix::fs::symlink(&target, &path) {
                    // as tar: what is in the way is replaced (a directory is not)
                    if e.kind() != io::ErrorKind::AlreadyExists {
                        return Err(named(&path, e));
                    }
                    std::fs::remove_file(&path)
                        .and_then(|()| std::os::unix::fs::symlink(&target, &path))
                        .map_err(|e| named(&path, e))?;
                }
                std::os::unix::fs::lchown(&path, Some(meta.uid), Some(meta.gid))
                    .map_err(|e| named(&path, e))?;
                let time = nix::sys::time::TimeSpec::from_duration(Duration::from_secs(meta.mtime));
                nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &path,
                    &time,
                    &time,
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| named(&path, io::Error::from(e)))?;
                done.unpacked.links += 1;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| invalid(&path, "a hard link without a target"))?;
                let target = inside(&target)?;
                if target.as_os_str().is_empty() {
                    return Err(invalid(&path, "a hard link to the root"));
                }
                done.links.push((path, root.join(target)));
                done.unpacked.links += 1;
            }
            tar::EntryType::Char
            | tar::EntryType::Block
            | tar::EntryType::Fifo
            | tar::EntryType::GNUSparse => {
                tracing::warn!("restore: {} ({kind:?}) is not made", path.display());
                done.unpacked.skipped += 1;
            }
            // PAX and GNU long-name records are read by `entries`; others carry no file
            _ => {}
        }
    }
    // the archive ends with zero blocks and padding to its record size: read them too,
    // so that the sender sees every byte taken
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    Ok(done)
}

/// The entry's path under the root (empty for the root itself); an absolute path or one
/// that climbs out is refused.
fn inside(name: &Path) -> io::Result<PathBuf> {
    let mut relative = PathBuf::new();
    for component in name.components() {
        match component {
            Component::CurDir => {}
            Component::Normal(part) => relative.push(part),
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(invalid(name, "a path outside the docroot"));
            }
        }
    }
    Ok(relative)
}

/// Gluster's trash directory and its content stay out (as `--exclude=./.trashcan`).
fn excluded(relative: &Path) -> bool {
    relative
        .components()
        .next()
        .is_some_and(|first| first.as_os_str() == super::GLUSTER_TRASH)
}

/// Writes a regular file (replacing one that is there) and sets its owner, mode and time.
fn write_file(path: &Path, meta: Meta, data: &mut dyn Read) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| named(path, e))?;
    io::copy(data, &mut file).map_err(|e| named(path, e))?;
    file.flush().map_err(|e| named(path, e))?;
    meta.apply(&file, path)
}

fn named(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sh(script: &str) {
        let out = Command::new("sh").arg("-ec").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Counts what the unpack took.
    struct Counted<'a>(&'a [u8], usize);

    impl Read for Counted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn what_gnu_tar_wrote_is_unpacked_as_gnu_tar_compares_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dest) = (tmp.path().join("src"), tmp.path().join("dest"));
        std::fs::create_dir_all(&dest).unwrap();
        // small and large files, an empty one, modes, a read-only directory, links, many
        // files in one directory (the writers at once), times in the past, the trash
        sh(&format!(
            "cd {src}/.. && mkdir -p src/a/b src/ro src/.trashcan src/many && cd src
             printf hello > a/b/small && chmod 0640 a/b/small
             head -c 3000000 /dev/urandom > a/large && chmod 0604 a/large
             : > empty && printf x > ro/inside && chmod 0555 ro
             ln -s a/b/small link && ln a/large a/hard && printf t > .trashcan/gone
             for i in $(seq 1 200); do printf $i > many/f$i; done
             touch -h -d '2001-02-03 04:05:06' a/b/small a/large link many/f7 ro
             touch -d '2002-01-01' a/b a many . ",
            src = src.display()
        ));
        let archive = Command::new("tar")
            .args(["--create", "--file=-", "--numeric-owner", "--directory"])
            .arg(&src)
            .arg(".")
            .output()
            .unwrap();
        assert!(archive.status.success());
        let mut input = Counted(&archive.stdout, 0);
        let unpacked = unpack(&dest, &mut input).unwrap();
        assert_eq!(input.1, archive.stdout.len(), "the stream read to its end");
        assert_eq!(
            unpacked,
            Unpacked {
                files: 204,
                directories: 4,
                links: 2,
                skipped: 0
            }
        );
        assert!(!dest.join(".trashcan").exists(), "the trash stays out");
        // GNU tar's own comparison: contents, modes, owners, times, link targets
        let diff = Command::new("tar")
            .args(["--diff", "--file=-", "--exclude=./.trashcan", "--directory"])
            .arg(&dest)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(&archive.stdout)
                    .unwrap();
                child.wait_with_output()
            })
            .unwrap();
        assert!(
            diff.status.success(),
            "tar --diff: {}",
            String::from_utf8_lossy(&diff.stdout)
        );
        use std::os::unix::fs::MetadataExt;
        let (large, hard) = (
            std::fs::metadata(dest.join("a/large")).unwrap(),
            std::fs::metadata(dest.join("a/hard")).unwrap(),
        );
        assert_eq!(large.ino(), hard.ino(), "a hard link, not a copy");
    }

    /// A one-entry archive whose name is written raw (the builder refuses `..`).
    fn raw_archive(name: &str, kind: tar::EntryType) -> Vec<u8> {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_entry_type(kind);
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"hi"[..]).unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_path_out_of_the_docroot_is_refused_and_a_failing_write_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        for name in ["../escaped", "/abs"] {
            let error = unpack(&root, &raw_archive(name, tar::EntryType::Regular)[..])
                .unwrap_err()
                .to_string();
            assert!(error.contains("outside the docroot"), "{name}: {error}");
        }
        assert!(!tmp.path().join("escaped").exists());
        // a directory where the file goes: the writer's error names the file
        std::fs::create_dir(root.join("x")).unwrap();
        let error = unpack(&root, &raw_archive("x", tar::EntryType::Regular)[..])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("{}", root.join("x").display())),
            "{error}"
        );
    }
}

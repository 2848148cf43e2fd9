//! Files written so that they survive a power cut.

use std::path::Path;

/// Write `text` to `path` so that it survives a power cut: a temporary file beside it
/// (`<name>.tmp`), fsync, rename over `path`, fsync of the directory. For decisions that
/// are persisted before they are acted on (the Galera epoch and decision, the autoscaling
/// record, a node found ahead).
pub fn durable_write(path: &Path, text: &str) -> std::io::Result<()> {
    write_through_temporary(path, text, None)
}

/// Remove the file at `path`; one already absent is no error (undoing a flag kept in a
/// file: a drain, a maintenance, a relaxed quorum).
pub fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Like [`durable_write`], for a secret: the temporary file is created with `mode` (never
/// readable by others, not even for an instant) before anything is written to it.
pub fn durable_write_private(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    write_through_temporary(path, text, Some(mode))
}

/// Temporary file beside `path` (created with `mode` when given, else as `File::create`
/// does), fsync, rename, fsync of the directory.
fn write_through_temporary(path: &Path, text: &str, mode: Option<u32>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut file = match mode {
        None => std::fs::File::create(&tmp)?,
        Some(mode) => {
            let _ = std::fs::remove_file(&tmp);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?
        }
    };
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

//! Reading a backup back: parts in, plaintext out, everything checked.
//!
//! Order of checks, so that each failure names its cause: the key's recipient against the
//! manifest's before any part is opened (a wrong key is said to be one, not reported as
//! corruption); while reading, each part's length and SHA-256 against the manifest, checked
//! when the part ends and before any byte of the next part is handed on; at the end, the
//! plaintext's length and SHA-256.
//!
//! Parts are streamed, not held in memory. That is safe because age authenticates its
//! stream every 64 KiB: no byte reaches `out` that age has not verified, so a damaged part
//! shows up as a decryption error at the latest at its end. When decryption fails in the
//! middle of a part, the rest of that part is read and hashed first, so the error names the
//! damaged part rather than only "decryption failed".
//!
//! The plaintext is written to `out` as it is verified chunk by chunk; the whole stream is
//! confirmed only when [`read_stream`] returns `Ok` (a restore must not use its output
//! before that).

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::id::BackupId;
use crate::key::BackupKey;
use crate::manifest::{Manifest, ManifestError, PartEntry, StreamKind};
use crate::seal::hex;
use crate::target::Target;

const BUFFER: usize = 64 * 1024;

/// Reads stream `stream` of the backup `manifest` describes from `target`, decrypts it with
/// `key`, decompresses it and writes the plaintext to `out`, calling `progress` with the
/// plaintext bytes written so far. Takes the manifest (not only the stream's entry)
/// because its recipient is checked against `key` before anything is read.
pub fn read_stream(
    target: &dyn Target,
    manifest: &Manifest,
    stream: StreamKind,
    key: &BackupKey,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<(), Error> {
    let id = manifest.id;
    check_key(manifest, stream, key)?;
    let entry = manifest.stream(stream).ok_or(Error::Manifest {
        id,
        source: ManifestError::MissingStream { stream },
    })?;
    let mut parts = PartsReader::new(target, id, &entry.parts);
    let (plain_bytes, plain_sha256) = match decode(&mut parts, key, out, progress) {
        Ok(done) => done,
        Err(failure) => return Err(parts.explain(failure, stream, key)),
    };
    // age stops at the end of its stream; make sure the parts did too, all checked.
    parts.read_to_end_checked()?;
    if plain_bytes != entry.plain_bytes {
        return Err(Error::PlainMismatch {
            id,
            stream,
            what: "length",
            expected: entry.plain_bytes.to_string(),
            found: plain_bytes.to_string(),
        });
    }
    if plain_sha256 != entry.plain_sha256 {
        return Err(Error::PlainMismatch {
            id,
            stream,
            what: "SHA-256",
            expected: entry.plain_sha256.clone(),
            found: plain_sha256,
        });
    }
    Ok(())
}

/// Checks backup `id` at `target` whole: its manifest (of `cluster`), then every stream
/// read and checked with `key` (into nothing). Returns the manifest.
pub fn verify(
    target: &dyn Target,
    id: BackupId,
    key: &BackupKey,
    cluster: &str,
) -> Result<Manifest, Error> {
    verify_with_progress(target, id, key, cluster, &mut |_| {})
}

/// [`verify`], calling `progress` with the plaintext bytes read so far, all streams
/// together (the manifest's `plain_bytes` summed is the end).
pub fn verify_with_progress(
    target: &dyn Target,
    id: BackupId,
    key: &BackupKey,
    cluster: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<Manifest, Error> {
    let manifest = target.manifest(id)?;
    manifest
        .check(cluster)
        .map_err(|source| Error::Manifest { id, source })?;
    for stream in StreamKind::ALL {
        check_key(&manifest, stream, key)?;
    }
    let mut done_before: u64 = 0;
    for stream in StreamKind::ALL {
        read_stream(
            target,
            &manifest,
            stream,
            key,
            &mut io::sink(),
            &mut |plain| progress(done_before + plain),
        )?;
        done_before += manifest.stream(stream).map_or(0, |entry| entry.plain_bytes);
    }
    Ok(manifest)
}

fn check_key(manifest: &Manifest, stream: StreamKind, key: &BackupKey) -> Result<(), Error> {
    let key_recipient = key.recipient().to_string();
    if manifest.encryption.recipient == key_recipient {
        return Ok(());
    }
    Err(Error::WrongKey {
        id: manifest.id,
        stream,
        key_path: key.path().to_owned(),
        key_recipient,
        manifest_recipient: manifest.encryption.recipient.clone(),
    })
}

/// Why decoding stopped, before [`PartsReader::explain`] says which part (if any) is to
/// blame.
enum DecodeFailure {
    Decrypt(age::DecryptError),
    Io(io::Error),
    Output(io::Error),
}

/// age, then zstd, then `out`; returns the plaintext's length and SHA-256.
fn decode(
    parts: &mut PartsReader<'_>,
    key: &BackupKey,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, String), DecodeFailure> {
    let decryptor = age::Decryptor::new(parts).map_err(DecodeFailure::Decrypt)?;
    let decrypted = decryptor
        .decrypt(std::iter::once(key.identity() as &dyn age::Identity))
        .map_err(DecodeFailure::Decrypt)?;
    let mut plain = zstd::stream::read::Decoder::new(decrypted).map_err(DecodeFailure::Io)?;
    let mut hash = Sha256::new();
    let mut total: u64 = 0;
    let mut buffer = vec![0u8; BUFFER];
    loop {
        let read = match plain.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(DecodeFailure::Io(err)),
        };
        let chunk = &buffer[..read];
        hash.update(chunk);
        out.write_all(chunk).map_err(DecodeFailure::Output)?;
        total += read as u64;
        progress(total);
    }
    Ok((total, hex(&hash.finalize())))
}

/// A stream's parts read in order as one byte stream, each checked against the manifest
/// when it ends.
struct PartsReader<'a> {
    target: &'a dyn Target,
    id: BackupId,
    parts: &'a [PartEntry],
    /// The part being read, or the next to open.
    next: usize,
    current: Option<OpenPart>,
    /// The first failure, kept typed; the `io::Error` handed to age only carries its text.
    failure: Option<Error>,
    failed: Option<String>,
}

struct OpenPart {
    reader: Box<dyn Read + Send>,
    hash: Sha256,
    read: u64,
}

impl<'a> PartsReader<'a> {
    fn new(target: &'a dyn Target, id: BackupId, parts: &'a [PartEntry]) -> PartsReader<'a> {
        PartsReader {
            target,
            id,
            parts,
            next: 0,
            current: None,
            failure: None,
            failed: None,
        }
    }

    /// Reads from the current part, opening it first if needed: `Some(n)` bytes, or `None`
    /// when the part has ended and passed its checks (the next call moves on).
    fn read_current(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Error> {
        let parts = self.parts;
        let Some(entry) = parts.get(self.next) else {
            return Ok(None);
        };
        if self.current.is_none() {
            let reader = self
                .target
                .open_part(self.id, &entry.file)
                .map_err(|source| Error::PartUnreadable {
                    id: self.id,
                    file: entry.file.clone(),
                    source: Box::new(source),
                })?;
            self.current = Some(OpenPart {
                reader,
                hash: Sha256::new(),
                read: 0,
            });
        }
        let current = self.current.as_mut().expect("opened just above");
        let read = loop {
            match current.reader.read(buf) {
                Ok(read) => break read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::PartRead {
                        id: self.id,
                        file: entry.file.clone(),
                        source,
                    })
                }
            }
        };
        current.read += read as u64;
        if current.read > entry.bytes {
            return Err(Error::PartTooLong {
                id: self.id,
                file: entry.file.clone(),
                expected: entry.bytes,
            });
        }
        if read > 0 {
            current.hash.update(&buf[..read]);
            return Ok(Some(read));
        }
        // The part has ended: check it before a byte of the next one is handed on.
        if current.read < entry.bytes {
            return Err(Error::PartTruncated {
                id: self.id,
                file: entry.file.clone(),
                expected: entry.bytes,
                found: current.read,
            });
        }
        let found = hex(&current.hash.clone().finalize());
        if found != entry.sha256 {
            return Err(Error::PartCorrupt {
                id: self.id,
                file: entry.file.clone(),
                expected: entry.sha256.clone(),
                found,
            });
        }
        self.current = None;
        self.next += 1;
        Ok(None)
    }

    /// The next bytes of the stream, across part boundaries; 0 after the last part.
    fn read_stream(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.next < self.parts.len() {
            if let Some(read) = self.read_current(buf)? {
                return Ok(read);
            }
        }
        Ok(0)
    }

    fn fail(&mut self, err: Error) -> io::Error {
        let message = err.to_string();
        self.failure = Some(err);
        self.failed = Some(message.clone());
        io::Error::other(message)
    }

    /// Reads the rest of the part being read, so that its checks run.
    fn finish_current_part(&mut self) -> Result<(), Error> {
        if self.failed.is_some() || self.current.is_none() {
            return Ok(());
        }
        let mut scratch = vec![0u8; BUFFER];
        while self.read_current(&mut scratch)?.is_some() {}
        Ok(())
    }

    /// Reads whatever age left unread (nothing, normally) through every part's checks.
    fn read_to_end_checked(&mut self) -> Result<(), Error> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        let mut scratch = vec![0u8; BUFFER];
        while self.read_stream(&mut scratch)? > 0 {}
        Ok(())
    }

    /// The error to report for a failed decode: a part's own failure if there was one (or
    /// if reading the rest of the current part reveals one), else the decode's.
    fn explain(&mut self, failure: DecodeFailure, stream: StreamKind, key: &BackupKey) -> Error {
        let id = self.id;
        if let Some(err) = self.failure.take() {
            return err;
        }
        if let DecodeFailure::Output(source) = failure {
            return Error::Output { id, stream, source };
        }
        if let Err(part_error) = self.finish_current_part() {
            return part_error;
        }
        match failure {
            DecodeFailure::Decrypt(age::DecryptError::NoMatchingKeys) => Error::KeyDoesNotOpen {
                id,
                stream,
                key_recipient: key.recipient().to_string(),
            },
            DecodeFailure::Decrypt(age::DecryptError::Io(source)) | DecodeFailure::Io(source) => {
                Error::Decode { id, stream, source }
            }
            DecodeFailure::Decrypt(source) => Error::Decrypt { id, stream, source },
            DecodeFailure::Output(source) => Error::Output { id, stream, source },
        }
    }
}

impl Read for PartsReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(message) = &self.failed {
            return Err(io::Error::other(message.clone()));
        }
        self.read_stream(buf).map_err(|err| self.fail(err))
    }
}

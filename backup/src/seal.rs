//! Sealing one stream: plaintext in (the [`Sealer`] is an `io::Write`), parts out to an
//! [`Upload`]. The plaintext is hashed (SHA-256) and counted, compressed with zstd level 3,
//! encrypted with age to one X25519 recipient, and the ciphertext cut into parts of
//! `part_size` bytes, each hashed and handed to the upload as soon as it is full (so memory
//! stays at about one part). A failing put is retried ([`Retry`]); when it still fails, the
//! stream fails with an error naming the backup and the part.
//!
//! Only the recipient is needed: the coordinator can make backups without holding the
//! secret key.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::manifest::{PartEntry, StreamEntry, StreamKind, MAX_PARTS};
use crate::retry::{retry, Retry};
use crate::target::Upload;

/// 64 MiB: large enough that a backup has few files, small enough to hold one in memory.
pub const DEFAULT_PART_SIZE: usize = 64 * 1024 * 1024;
/// zstd's own default: most of the gain for little CPU on the coordinator.
pub const ZSTD_LEVEL: i32 = 3;

/// How a stream is cut and stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealOptions {
    /// The largest part in bytes (the last part of a stream is usually smaller).
    pub part_size: usize,
    /// How a failing put is retried.
    pub retry: Retry,
}

impl Default for SealOptions {
    fn default() -> SealOptions {
        SealOptions {
            part_size: DEFAULT_PART_SIZE,
            retry: Retry::DEFAULT,
        }
    }
}

type Pipeline<'a> = zstd::stream::write::Encoder<'static, age::stream::StreamWriter<Parts<'a>>>;

/// Writes one stream of a backup: write the plaintext, then [`Sealer::finish`] for its
/// manifest entry. After a write error the stream is lost: drop the upload (or abort it).
pub struct Sealer<'a> {
    stream: StreamKind,
    pipeline: Pipeline<'a>,
    failure: FailureSlot,
    plain_hash: Sha256,
    plain_bytes: u64,
}

impl<'a> Sealer<'a> {
    /// Starts stream `stream` of the backup `upload` is writing, encrypted to `recipient`.
    pub fn new(
        upload: &'a mut dyn Upload,
        stream: StreamKind,
        recipient: &age::x25519::Recipient,
        options: SealOptions,
    ) -> Result<Sealer<'a>, Error> {
        if options.part_size == 0 {
            return Err(Error::PartSize);
        }
        let failure = FailureSlot::default();
        let parts = Parts {
            upload,
            stream,
            part_size: options.part_size,
            retry: options.retry,
            buffer: Vec::new(),
            done: Vec::new(),
            stored_bytes: 0,
            failure: failure.clone(),
        };
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                .map_err(|source| Error::Encrypt { stream, source })?;
        let encrypted = encryptor
            .wrap_output(parts)
            .map_err(|err| failure.explain(stream, err))?;
        let pipeline = zstd::stream::write::Encoder::new(encrypted, ZSTD_LEVEL)
            .map_err(|err| failure.explain(stream, err))?;
        Ok(Sealer {
            stream,
            pipeline,
            failure,
            plain_hash: Sha256::new(),
            plain_bytes: 0,
        })
    }

    /// Writes all of `bytes`, with a typed error (naming the part whose put failed) rather
    /// than the `io::Error` of the `Write` implementation.
    pub fn write_chunk(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.write_all(bytes)
            .map_err(|err| self.failure.explain(self.stream, err))
    }

    /// The plaintext bytes written so far.
    pub fn plain_bytes(&self) -> u64 {
        self.plain_bytes
    }

    /// Ends compression and encryption, stores the last part, and returns the stream's
    /// manifest entry. An empty stream still has one part: the age header.
    pub fn finish(self) -> Result<StreamEntry, Error> {
        let Sealer {
            stream,
            pipeline,
            failure,
            plain_hash,
            plain_bytes,
        } = self;
        let encrypted = pipeline
            .finish()
            .map_err(|err| failure.explain(stream, err))?;
        let parts = encrypted
            .finish()
            .map_err(|err| failure.explain(stream, err))?;
        let (parts, stored_bytes) = parts.finish()?;
        Ok(StreamEntry {
            name: stream,
            format: stream.format(),
            plain_bytes,
            plain_sha256: hex(&plain_hash.finalize()),
            stored_bytes,
            parts,
        })
    }
}

impl Write for Sealer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.pipeline.write(buf)?;
        self.plain_hash.update(&buf[..written]);
        self.plain_bytes += written as u64;
        Ok(written)
    }

    /// Does nothing: a part is stored when full or at [`Sealer::finish`], and flushing zstd
    /// on every call would only make the stream larger.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The end of the pipeline: ciphertext in, full parts to the upload.
struct Parts<'a> {
    upload: &'a mut dyn Upload,
    stream: StreamKind,
    part_size: usize,
    retry: Retry,
    /// The part being filled; never `part_size` bytes or more between calls.
    buffer: Vec<u8>,
    done: Vec<PartEntry>,
    stored_bytes: u64,
    /// Where a failed put leaves its error (the stream cannot be completed after one).
    failure: FailureSlot,
}

/// The typed error of a failed put, kept aside: it reaches the top only as an `io::Error`
/// through zstd and age (whose header writer even turns it into text), so the error naming
/// the part would otherwise be lost.
#[derive(Clone, Default)]
struct FailureSlot(Arc<Mutex<Option<Error>>>);

impl FailureSlot {
    fn is_set(&self) -> bool {
        self.lock().is_some()
    }

    /// Keeps `err` (the first one only) and returns its text as an `io::Error`.
    fn set(&self, err: Error) -> io::Error {
        let message = err.to_string();
        self.lock().get_or_insert(err);
        io::Error::other(message)
    }

    /// The error to report for `err` from the pipeline: a failed put's, if there was one.
    fn explain(&self, stream: StreamKind, err: io::Error) -> Error {
        let put_error = self.lock().take();
        match put_error {
            Some(put_error) => {
                // Still failed: later writes and `finish` must not succeed.
                *self.lock() = Some(Error::SealFailed { stream });
                put_error
            }
            None => Error::Seal {
                stream,
                source: err,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Error>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Parts<'_> {
    /// Stores the buffer as the next part (retried), and records it.
    fn put_buffer(&mut self) -> Result<(), Error> {
        let seq = self.done.len();
        if seq >= MAX_PARTS {
            return Err(Error::TooManyParts {
                stream: self.stream,
                part_size: self.part_size,
            });
        }
        let file = self.stream.part_file(seq);
        let sha256 = hex(&Sha256::digest(&self.buffer));
        let upload = &mut *self.upload;
        let bytes = &self.buffer;
        retry(self.retry, |_attempt| upload.put_part(&file, bytes)).map_err(|source| {
            Error::PutPart {
                id: upload.id(),
                file: file.clone(),
                attempts: self.retry.attempts(),
                source: Box::new(source),
            }
        })?;
        let length = self.buffer.len() as u64;
        self.done.push(PartEntry {
            file,
            bytes: length,
            sha256,
        });
        self.stored_bytes += length;
        self.buffer.clear();
        Ok(())
    }

    /// Stores what is left as the last part (the first, if nothing was stored yet).
    fn finish(mut self) -> Result<(Vec<PartEntry>, u64), Error> {
        if self.failure.is_set() {
            return Err(Error::SealFailed {
                stream: self.stream,
            });
        }
        if !self.buffer.is_empty() || self.done.is_empty() {
            self.put_buffer()?;
        }
        Ok((self.done, self.stored_bytes))
    }
}

impl Write for Parts<'_> {
    /// Takes all of `buf` (age's header writer treats a short write as an error), storing
    /// each part as it fills.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failure.is_set() {
            return Err(io::Error::other(format!(
                "stream {}: an earlier part could not be stored",
                self.stream
            )));
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let taken = rest.len().min(self.part_size - self.buffer.len());
            self.buffer.extend_from_slice(&rest[..taken]);
            rest = &rest[taken..];
            if self.buffer.len() == self.part_size {
                if let Err(err) = self.put_buffer() {
                    return Err(self.failure.set(err));
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lowercase hex, as the manifest records hashes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::BackupId;
    use crate::manifest::Manifest;
    use crate::tests::noise;
    use std::num::NonZeroU32;
    use std::time::Duration;

    /// An upload that keeps parts in memory and fails the first `failures` puts.
    struct MemoryUpload {
        parts: Vec<(String, Vec<u8>)>,
        failures: u32,
        attempts: u32,
    }

    impl Upload for MemoryUpload {
        fn id(&self) -> BackupId {
            "20261206T083700Z".parse().unwrap()
        }

        fn put_part(&mut self, file: &str, bytes: &[u8]) -> Result<(), Error> {
            self.attempts += 1;
            if self.failures > 0 {
                self.failures -= 1;
                return Err(Error::io(
                    "write",
                    format!("/mem/{file}"),
                    io::Error::other("disk full"),
                ));
            }
            self.parts.push((file.to_owned(), bytes.to_vec()));
            Ok(())
        }

        fn commit(self: Box<Self>, _manifest: &Manifest) -> Result<(), Error> {
            Ok(())
        }

        fn abort(self: Box<Self>) -> Result<(), Error> {
            Ok(())
        }
    }

    fn memory(failures: u32) -> MemoryUpload {
        MemoryUpload {
            parts: Vec::new(),
            failures,
            attempts: 0,
        }
    }

    fn options(part_size: usize) -> SealOptions {
        SealOptions {
            part_size,
            retry: Retry::new(NonZeroU32::new(3).unwrap(), Duration::ZERO),
        }
    }

    fn recipient() -> age::x25519::Recipient {
        age::x25519::Identity::generate().to_public()
    }

    #[test]
    fn the_sealer_can_move_to_a_blocking_thread() {
        fn send<T: Send>() {}
        send::<Sealer<'static>>();
    }

    #[test]
    fn parts_are_full_except_the_last_and_recorded() {
        let mut upload = memory(0);
        let mut sealer =
            Sealer::new(&mut upload, StreamKind::Files, &recipient(), options(1000)).unwrap();
        // Incompressible, so the ciphertext spans several parts.
        let data = noise(5000, 7);
        sealer.write_chunk(&data).unwrap();
        assert_eq!(sealer.plain_bytes(), 5000);
        let entry = sealer.finish().unwrap();
        assert_eq!(entry.plain_bytes, 5000);
        assert_eq!(entry.plain_sha256, hex(&Sha256::digest(&data)));
        assert!(entry.parts.len() >= 5, "{entry:?}");
        let names: Vec<&str> = upload.parts.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names[..2], ["files.00000", "files.00001"]);
        for (index, (entry_part, (name, bytes))) in
            entry.parts.iter().zip(&upload.parts).enumerate()
        {
            assert_eq!(&entry_part.file, name);
            assert_eq!(entry_part.bytes, bytes.len() as u64);
            assert_eq!(entry_part.sha256, hex(&Sha256::digest(bytes)));
            if index + 1 < entry.parts.len() {
                assert_eq!(bytes.len(), 1000);
            }
        }
        let stored: u64 = upload.parts.iter().map(|(_, b)| b.len() as u64).sum();
        assert_eq!(entry.stored_bytes, stored);
        assert!(upload.parts[0].1.starts_with(b"age-encryption.org/v1\n"));
    }

    #[test]
    fn an_empty_stream_is_one_part_holding_the_age_header() {
        let mut upload = memory(0);
        let sealer = Sealer::new(
            &mut upload,
            StreamKind::Database,
            &recipient(),
            options(1 << 20),
        )
        .unwrap();
        let entry = sealer.finish().unwrap();
        assert_eq!(entry.plain_bytes, 0);
        assert_eq!(entry.parts.len(), 1);
        assert_eq!(entry.parts[0].file, "database.00000");
        assert!(entry.parts[0].bytes > 0);
    }

    #[test]
    fn a_put_that_fails_briefly_is_retried() {
        let mut upload = memory(2);
        let mut sealer =
            Sealer::new(&mut upload, StreamKind::Files, &recipient(), options(100)).unwrap();
        sealer.write_chunk(b"hello").unwrap();
        sealer.finish().unwrap();
        assert!(upload.attempts >= 3);
    }

    #[test]
    fn a_put_that_keeps_failing_fails_the_stream_naming_the_part() {
        // 100-byte parts: the age header alone fills the first, so `new` already fails.
        let mut upload = memory(u32::MAX);
        let err = Sealer::new(
            &mut upload,
            StreamKind::Database,
            &recipient(),
            options(100),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            matches!(&err, Error::PutPart { file, attempts: 3, .. } if file == "database.00000"),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("backup 20261206T083700Z")
                && message.contains("database.00000")
                && message.contains("disk full"),
            "{message}"
        );
        assert_eq!(upload.attempts, 3);
    }

    #[test]
    fn after_a_failed_write_the_stream_cannot_be_finished() {
        let mut upload = memory(u32::MAX);
        let mut sealer =
            Sealer::new(&mut upload, StreamKind::Files, &recipient(), options(1000)).unwrap();
        // Enough incompressible data for zstd and age to hand on a full part.
        let err = sealer.write_chunk(&noise(300_000, 1)).unwrap_err();
        assert!(
            matches!(&err, Error::PutPart { file, .. } if file == "files.00000"),
            "{err}"
        );
        assert!(matches!(
            sealer.finish(),
            Err(Error::SealFailed { .. } | Error::Seal { .. })
        ));
    }

    #[test]
    fn a_zero_part_size_is_refused() {
        let mut upload = memory(0);
        assert!(matches!(
            Sealer::new(&mut upload, StreamKind::Files, &recipient(), options(0)),
            Err(Error::PartSize)
        ));
    }
}

//! mariadb-backup's xbstream, read as it passes: the backup is forwarded byte for byte, and
//! this scanner only follows the chunk boundaries to pick out a few small named files (the
//! Galera position, `xtrabackup_galera_info`) without holding the stream in memory.
//!
//! The format, from MariaDB's `extra/mariabackup/xbstream.h`, `xbstream_write.cc` and
//! `xbstream_read.cc` (10.11; Percona's sparse chunk type `S` does not exist in MariaDB). A
//! stream is a sequence of chunks; every integer is little-endian:
//!
//! ```text
//! magic "XBSTCK01" (8) | flags (1) | type (1) | path length (4) | path
//! type 'P' (payload), then: payload length (8) | offset in the file (8) | crc32 (4) | payload
//! type 'E' (end of the file): nothing more
//! ```
//!
//! The path is at most 511 bytes (FN_REFLEN - 1). The crc32 is zlib's (ISO 3309) of the
//! payload. A chunk of an unknown type is an error unless its flags carry
//! `XB_STREAM_FLAG_IGNORABLE` (0x01): mbstream then reads it with the payload layout and
//! skips it, and so does this scanner. A file's chunks come in order (each offset is the
//! previous offset plus its length; mbstream refuses anything else), interleaved with other
//! files' chunks when mariadb-backup copies in parallel.
//!
//! Checksums are verified only for the collected files' chunks: verifying every payload
//! would cost a crc32 pass over the whole backup on the node, while the copy is checked
//! where it is restored (`mbstream -x` verifies every chunk).

use std::fmt;

use triad_galera::position::is_uuid;

/// The chunk magic.
const MAGIC: &[u8; 8] = b"XBSTCK01";
/// Magic, flags, type, path length.
const HEAD_LEN: usize = 14;
/// Payload length, offset, checksum.
const PAYLOAD_HEAD_LEN: usize = 20;
/// `XB_STREAM_FLAG_IGNORABLE`: a reader may skip the chunk when it does not know its type.
const FLAG_IGNORABLE: u8 = 0x01;
/// mbstream refuses a path of FN_REFLEN (512) bytes or more.
pub const MAX_PATH: u32 = 511;
/// The most kept of one collected file: the files wanted here hold one short line.
pub const MAX_COLLECTED: usize = 4096;

/// The names mariadb-backup gives the Galera position file: `xtrabackup_galera_info` up to
/// MariaDB 11.0 (Debian 12 ships 10.11), `mariadb_backup_galera_info` from 11.1.
pub const GALERA_INFO_FILES: [&str; 2] = ["xtrabackup_galera_info", "mariadb_backup_galera_info"];

/// A stream this scanner cannot follow; `at` is the byte offset, in the whole stream, of
/// the chunk at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XbstreamError {
    #[error("byte {at}: no xbstream chunk magic \"XBSTCK01\" (found {found:?})")]
    BadMagic { at: u64, found: String },
    #[error("byte {at}: unknown xbstream chunk type {code:#04x} without the ignorable flag")]
    UnknownType { at: u64, code: u8 },
    #[error("byte {at}: xbstream chunk path of {len} bytes (mbstream allows {MAX_PATH})")]
    PathTooLong { at: u64, len: u32 },
    #[error(
        "byte {at}: chunk of {path} at file offset {offset}, expected {expected} (out of order)"
    )]
    OutOfOrder {
        at: u64,
        path: String,
        offset: u64,
        expected: u64,
    },
    #[error("byte {at}: chunk of {path} fails its crc32 (recorded {recorded:#010x}, computed {computed:#010x})")]
    Checksum {
        at: u64,
        path: String,
        recorded: u32,
        computed: u32,
    },
    #[error("the stream ends inside the chunk that starts at byte {at}")]
    Truncated { at: u64 },
}

/// What the stream held of one wanted file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen<'a> {
    /// No chunk of it.
    Absent,
    /// Chunks, but not its end-of-file chunk (yet).
    Incomplete,
    /// Longer than [`MAX_COLLECTED`]: not kept.
    TooLarge,
    /// Its whole content.
    Complete(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkType {
    Payload,
    Eof,
    /// Unknown, with the ignorable flag: payload layout, skipped.
    Skipped,
}

/// The part of a chunk the next bytes belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Head,
    Path {
        chunk_type: ChunkType,
        len: usize,
    },
    PayloadHead {
        /// The wanted file this chunk belongs to, if any.
        file: Option<usize>,
    },
    Payload {
        file: Option<usize>,
        remaining: u64,
        recorded: u32,
        crc: u32,
    },
}

#[derive(Debug, Clone)]
struct Wanted {
    name: String,
    content: Vec<u8>,
    /// The offset the file's next chunk must have.
    next_offset: u64,
    seen: bool,
    complete: bool,
    too_large: bool,
}

/// Follows an xbstream fed in pieces of any size, in order; see the module doc.
#[derive(Debug, Clone)]
pub struct Scanner {
    wanted: Vec<Wanted>,
    part: Part,
    /// The bytes of the current fixed-size part (head, path, payload head).
    pending: Vec<u8>,
    /// Stream offset of the chunk being read.
    chunk_start: u64,
    /// Bytes fed so far.
    position: u64,
    /// The first error: the stream cannot be followed past it.
    failed: Option<XbstreamError>,
}

impl Scanner {
    /// A scanner that keeps the content of the files named `wanted` (paths as in the stream,
    /// e.g. `xtrabackup_galera_info`), at most [`MAX_COLLECTED`] bytes each.
    pub fn new(wanted: &[&str]) -> Scanner {
        Scanner {
            wanted: wanted
                .iter()
                .map(|name| Wanted {
                    name: name.to_string(),
                    content: Vec::new(),
                    next_offset: 0,
                    seen: false,
                    complete: false,
                    too_large: false,
                })
                .collect(),
            part: Part::Head,
            pending: Vec::with_capacity(HEAD_LEN),
            chunk_start: 0,
            position: 0,
            failed: None,
        }
    }

    /// The next bytes of the stream. After an error every later call returns it again.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), XbstreamError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.follow(bytes);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// The stream ended: Ok when it ended between two chunks.
    pub fn finish(&self) -> Result<(), XbstreamError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.part == Part::Head && self.pending.is_empty() {
            Ok(())
        } else {
            Err(XbstreamError::Truncated {
                at: self.chunk_start,
            })
        }
    }

    /// Bytes fed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// What the stream held of `name` (one of the wanted names).
    pub fn file(&self, name: &str) -> Seen<'_> {
        match self.wanted.iter().find(|w| w.name == name) {
            None => Seen::Absent,
            Some(w) if !w.seen => Seen::Absent,
            Some(w) if w.too_large => Seen::TooLarge,
            Some(w) if !w.complete => Seen::Incomplete,
            Some(w) => Seen::Complete(&w.content),
        }
    }

    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), XbstreamError> {
        loop {
            // parts of no length (an empty path, an empty payload) end without input
            while self.left_in_part() == 0 {
                self.end_part()?;
            }
            if bytes.is_empty() {
                return Ok(());
            }
            let taken = self.take(bytes);
            debug_assert!(taken > 0, "a part with bytes left takes some");
            bytes = &bytes[taken..];
            self.position += taken as u64;
        }
    }

    fn left_in_part(&self) -> u64 {
        let fixed = |len: usize| (len - self.pending.len()) as u64;
        match &self.part {
            Part::Head => fixed(HEAD_LEN),
            Part::Path { len, .. } => fixed(*len),
            Part::PayloadHead { .. } => fixed(PAYLOAD_HEAD_LEN),
            Part::Payload { remaining, .. } => *remaining,
        }
    }

    /// Takes what the current part still needs of `bytes`; returns how much.
    fn take(&mut self, bytes: &[u8]) -> usize {
        let wanted = &mut self.wanted;
        if let Part::Payload {
            file,
            remaining,
            crc,
            ..
        } = &mut self.part
        {
            let n = usize::try_from(*remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
            let piece = &bytes[..n];
            if let Some(index) = *file {
                *crc = crc32_update(*crc, piece);
                let file = &mut wanted[index];
                if file.content.len() + piece.len() > MAX_COLLECTED {
                    file.too_large = true;
                    file.content.clear();
                } else if !file.too_large {
                    file.content.extend_from_slice(piece);
                }
                file.next_offset += n as u64;
            }
            *remaining -= n as u64;
            return n;
        }
        let n = (self.left_in_part() as usize).min(bytes.len());
        self.pending.extend_from_slice(&bytes[..n]);
        n
    }

    /// The current part is whole: read it and move to the next.
    fn end_part(&mut self) -> Result<(), XbstreamError> {
        let at = self.chunk_start;
        let part = std::mem::replace(&mut self.part, Part::Head);
        let bytes = std::mem::take(&mut self.pending);
        self.part = match part {
            Part::Head => {
                if &bytes[..8] != MAGIC {
                    return Err(XbstreamError::BadMagic {
                        at,
                        found: String::from_utf8_lossy(&bytes[..8]).into_owned(),
                    });
                }
                let flags = bytes[8];
                let chunk_type = match bytes[9] {
                    b'P' => ChunkType::Payload,
                    b'E' => ChunkType::Eof,
                    _ if flags & FLAG_IGNORABLE != 0 => ChunkType::Skipped,
                    code => return Err(XbstreamError::UnknownType { at, code }),
                };
                let len = u32::from_le_bytes(bytes[10..14].try_into().unwrap());
                if len > MAX_PATH {
                    return Err(XbstreamError::PathTooLong { at, len });
                }
                Part::Path {
                    chunk_type,
                    len: len as usize,
                }
            }
            Part::Path { chunk_type, .. } => {
                let file = match chunk_type {
                    ChunkType::Skipped => None,
                    ChunkType::Payload | ChunkType::Eof => self.wanted_index(&bytes),
                };
                match chunk_type {
                    ChunkType::Eof => {
                        if let Some(index) = file {
                            let wanted = &mut self.wanted[index];
                            wanted.seen = true;
                            wanted.complete = true;
                        }
                        self.next_chunk()
                    }
                    ChunkType::Payload | ChunkType::Skipped => Part::PayloadHead { file },
                }
            }
            Part::PayloadHead { file } => {
                let length = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
                let offset = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                let recorded = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
                if let Some(index) = file {
                    let wanted = &mut self.wanted[index];
                    if offset != wanted.next_offset {
                        return Err(XbstreamError::OutOfOrder {
                            at,
                            path: wanted.name.clone(),
                            offset,
                            expected: wanted.next_offset,
                        });
                    }
                    wanted.seen = true;
                    wanted.complete = false;
                }
                Part::Payload {
                    file,
                    remaining: length,
                    recorded,
                    crc: 0,
                }
            }
            Part::Payload {
                file,
                recorded,
                crc,
                ..
            } => {
                if let Some(index) = file {
                    if crc != recorded {
                        return Err(XbstreamError::Checksum {
                            at,
                            path: self.wanted[index].name.clone(),
                            recorded,
                            computed: crc,
                        });
                    }
                }
                self.next_chunk()
            }
        };
        Ok(())
    }

    fn next_chunk(&mut self) -> Part {
        self.chunk_start = self.position;
        Part::Head
    }

    fn wanted_index(&self, path: &[u8]) -> Option<usize> {
        let path = path.strip_prefix(b"./").unwrap_or(path);
        self.wanted.iter().position(|w| w.name.as_bytes() == path)
    }
}

/// The crc32 of ISO 3309 (zlib's `crc32`, what mariadb-backup records), continued over
/// `bytes` from `crc` (0 to start).
pub fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// The Galera position a backup holds, from its `xtrabackup_galera_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaleraPoint {
    /// The cluster state uuid, lowercase.
    pub uuid: String,
    /// `wsrep_last_committed` when the backup's copy was consistent; -1 when undefined.
    pub seqno: i64,
    /// The GTID (`domain-server-seqno`, or several joined by commas) written beside it.
    pub gtid: Option<String>,
    /// A bare number after the position: `wsrep_gtid_domain_id` (what the SST scripts of
    /// MariaDB 10.4 and later pass to the joiner in the same place).
    pub domain_id: Option<u32>,
}

impl fmt::Display for GaleraPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.uuid, self.seqno)?;
        if let Some(gtid) = &self.gtid {
            write!(f, " {gtid}")?;
        }
        if let Some(domain) = self.domain_id {
            write!(f, " (gtid domain {domain})")?;
        }
        Ok(())
    }
}

/// Pure: the position in an `xtrabackup_galera_info`. mariadb-backup writes
/// `wsrep_local_state_uuid:wsrep_last_committed` and a newline (`write_galera_info` in
/// backup_mysql.cc); accepted after it, separated by a space: a GTID (`0-1-42`) or a bare
/// gtid domain id. The state id may also carry the GTID the way `--wsrep-recover` prints it
/// (`uuid:seqno,D-S-N` or `uuid:D-S-N,seqno`). Anything else after the position is ignored
/// (the caller logs the raw content). `None` when there is no `uuid:seqno`.
pub fn galera_point(content: &[u8]) -> Option<GaleraPoint> {
    let text = std::str::from_utf8(content).ok()?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut words = line.split_whitespace();
    let state = words.next()?;
    let (uuid, rest) = state.split_once(':')?;
    if !is_uuid(uuid) {
        return None;
    }
    let parts: Vec<&str> = rest.split(',').collect();
    let (seqno_text, mut gtid) = match parts.as_slice() {
        [seqno] => (*seqno, None),
        [seqno, gtid] if is_gtid(gtid) => (*seqno, Some(gtid.to_string())),
        [gtid, seqno] if is_gtid(gtid) => (*seqno, Some(gtid.to_string())),
        _ => return None,
    };
    let seqno: i64 = seqno_text.parse().ok().filter(|s| *s >= -1)?;
    let mut domain_id = None;
    if let Some(after) = words.next() {
        if after.split(',').all(is_gtid) {
            gtid = Some(after.to_string());
        } else if after.chars().all(|c| c.is_ascii_digit()) {
            domain_id = after.parse().ok();
        }
    }
    Some(GaleraPoint {
        uuid: uuid.to_ascii_lowercase(),
        seqno,
        gtid,
        domain_id,
    })
}

/// `domain-server-seqno`, all three decimal.
fn is_gtid(text: &str) -> bool {
    let pieces: Vec<&str> = text.split('-').collect();
    pieces.len() == 3
        && pieces
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const UUID: &str = "d38587ce-246c-11e5-bcce-6bbd0831cc0f";

    /// A payload chunk as `xb_stream_write_chunk` lays it out.
    pub(crate) fn payload(path: &str, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut chunk = MAGIC.to_vec();
        chunk.push(0);
        chunk.push(b'P');
        chunk.extend_from_slice(&(path.len() as u32).to_le_bytes());
        chunk.extend_from_slice(path.as_bytes());
        chunk.extend_from_slice(&(data.len() as u64).to_le_bytes());
        chunk.extend_from_slice(&offset.to_le_bytes());
        chunk.extend_from_slice(&crc32_update(0, data).to_le_bytes());
        chunk.extend_from_slice(data);
        chunk
    }

    /// An end-of-file chunk as `xb_stream_write_eof` lays it out.
    pub(crate) fn eof(path: &str) -> Vec<u8> {
        let mut chunk = MAGIC.to_vec();
        chunk.push(0);
        chunk.push(b'E');
        chunk.extend_from_slice(&(path.len() as u32).to_le_bytes());
        chunk.extend_from_slice(path.as_bytes());
        chunk
    }

    /// A small backup: a data file in two chunks, the galera info in two chunks between
    /// them (as parallel copies interleave), an empty payload, an empty file, the ends.
    pub(crate) fn backup_stream(galera_info: &str) -> Vec<u8> {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let (info_a, info_b) = galera_info.as_bytes().split_at(galera_info.len() / 2);
        [
            payload("ibdata1", 0, &data[..200]),
            payload("xtrabackup_galera_info", 0, info_a),
            payload("ibdata1", 200, &data[200..]),
            payload("xtrabackup_galera_info", info_a.len() as u64, info_b),
            payload("ibdata1", 300, b""),
            eof("xtrabackup_galera_info"),
            eof("ibdata1"),
            eof("empty.frm"),
        ]
        .concat()
    }

    fn scan_in_pieces(stream: &[u8], size: usize) -> Scanner {
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        for piece in stream.chunks(size) {
            scanner
                .feed(piece)
                .unwrap_or_else(|e| panic!("pieces of {size}: {e}"));
        }
        scanner
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32_update(0, b"123456789"), 0xCBF4_3926);
        let split = crc32_update(crc32_update(0, b"1234"), b"56789");
        assert_eq!(split, 0xCBF4_3926);
        assert_eq!(crc32_update(0, b""), 0);
    }

    #[test]
    fn a_file_is_collected_whatever_the_pieces_the_stream_comes_in() {
        let info = format!("{UUID}:1352215\n");
        let stream = backup_stream(&info);
        for size in (1..=stream.len()).chain([7, 64 * 1024]) {
            let scanner = scan_in_pieces(&stream, size);
            assert_eq!(scanner.finish(), Ok(()), "pieces of {size}");
            assert_eq!(
                scanner.file("xtrabackup_galera_info"),
                Seen::Complete(info.as_bytes()),
                "pieces of {size}"
            );
            assert_eq!(scanner.file("mariadb_backup_galera_info"), Seen::Absent);
            assert_eq!(scanner.position(), stream.len() as u64);
        }
    }

    #[test]
    fn a_payload_split_across_feeds_of_a_large_chunk_is_followed() {
        let big = vec![0xA5u8; 3 * 256 * 1024 + 17];
        let info = format!("{UUID}:5\n");
        let stream = [
            payload("db/t1.ibd", 0, &big),
            payload("./xtrabackup_galera_info", 0, info.as_bytes()),
            eof("./xtrabackup_galera_info"),
            eof("db/t1.ibd"),
        ]
        .concat();
        // the size of a pipe read
        let scanner = scan_in_pieces(&stream, 65536);
        assert_eq!(scanner.finish(), Ok(()));
        assert_eq!(
            scanner.file("xtrabackup_galera_info"),
            Seen::Complete(info.as_bytes()),
            "a leading ./ in the stream's path names the same file"
        );
    }

    #[test]
    fn a_file_without_its_end_chunk_is_incomplete_and_a_cut_stream_truncated() {
        let info = format!("{UUID}:5\n");
        let first = payload("xtrabackup_galera_info", 0, info.as_bytes());
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        scanner.feed(&first).unwrap();
        assert_eq!(scanner.finish(), Ok(()), "between two chunks");
        assert_eq!(scanner.file("xtrabackup_galera_info"), Seen::Incomplete);
        let second = eof("xtrabackup_galera_info");
        scanner.feed(&second[..5]).unwrap();
        assert_eq!(
            scanner.finish(),
            Err(XbstreamError::Truncated {
                at: first.len() as u64
            })
        );
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        scanner.feed(&first[..first.len() - 1]).unwrap();
        assert_eq!(
            scanner.finish(),
            Err(XbstreamError::Truncated { at: 0 }),
            "inside the payload"
        );
    }

    #[test]
    fn bad_magic_names_the_byte_offset_and_sticks() {
        let good = payload("ibdata1", 0, b"0123456789");
        let mut stream = good.clone();
        stream.extend_from_slice(b"XBSTCK02\0P\0\0\0\0");
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        let error = scanner.feed(&stream).unwrap_err();
        assert_eq!(
            error,
            XbstreamError::BadMagic {
                at: good.len() as u64,
                found: "XBSTCK02".into()
            }
        );
        assert!(error
            .to_string()
            .starts_with(&format!("byte {}: ", good.len())));
        assert_eq!(scanner.feed(&good), Err(error.clone()), "sticky");
        assert_eq!(scanner.finish(), Err(error));
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        let error = scanner.feed(b"tar archive, not an xbstream").unwrap_err();
        assert!(
            matches!(error, XbstreamError::BadMagic { at: 0, .. }),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_chunk_type_is_an_error_unless_ignorable() {
        let mut unknown = payload("future", 0, b"abc");
        unknown[9] = b'S';
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        let error = scanner.feed(&unknown).unwrap_err();
        assert_eq!(error, XbstreamError::UnknownType { at: 0, code: b'S' });
        unknown[8] = FLAG_IGNORABLE;
        let info = format!("{UUID}:9\n");
        let stream = [
            unknown,
            payload("xtrabackup_galera_info", 0, info.as_bytes()),
            eof("xtrabackup_galera_info"),
        ]
        .concat();
        let scanner = scan_in_pieces(&stream, 3);
        assert_eq!(scanner.finish(), Ok(()));
        assert_eq!(
            scanner.file("xtrabackup_galera_info"),
            Seen::Complete(info.as_bytes())
        );
    }

    #[test]
    fn a_wanted_files_chunks_must_come_in_order_with_their_checksum() {
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        let first = payload("xtrabackup_galera_info", 0, b"abc");
        let stream = [first.clone(), payload("xtrabackup_galera_info", 4, b"d")].concat();
        assert_eq!(
            scanner.feed(&stream),
            Err(XbstreamError::OutOfOrder {
                at: first.len() as u64,
                path: "xtrabackup_galera_info".into(),
                offset: 4,
                expected: 3
            })
        );
        let mut corrupt = payload("xtrabackup_galera_info", 0, b"abc");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        let error = scanner.feed(&corrupt).unwrap_err();
        assert!(
            matches!(&error, XbstreamError::Checksum { at: 0, path, .. } if path == "xtrabackup_galera_info"),
            "{error}"
        );
        // other files' payloads are forwarded unchecked (see the module doc)
        let mut other = payload("ibdata1", 0, b"abc");
        let last = other.len() - 1;
        other[last] ^= 1;
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        assert_eq!(scanner.feed(&other), Ok(()));
    }

    #[test]
    fn a_wanted_file_past_the_bound_is_not_kept() {
        let big = vec![b'x'; MAX_COLLECTED + 1];
        let stream = [
            payload("xtrabackup_galera_info", 0, &big[..MAX_COLLECTED]),
            payload("xtrabackup_galera_info", MAX_COLLECTED as u64, &big[..1]),
            eof("xtrabackup_galera_info"),
        ]
        .concat();
        let scanner = scan_in_pieces(&stream, 1000);
        assert_eq!(scanner.finish(), Ok(()));
        assert_eq!(scanner.file("xtrabackup_galera_info"), Seen::TooLarge);
    }

    #[test]
    fn a_path_longer_than_mbstream_allows_is_an_error() {
        let long = "d/".repeat(256);
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        assert_eq!(
            scanner.feed(&eof(&long)),
            Err(XbstreamError::PathTooLong { at: 0, len: 512 })
        );
        let mut scanner = Scanner::new(&GALERA_INFO_FILES);
        assert_eq!(scanner.feed(&eof(&long[..511])), Ok(()));
    }

    #[test]
    fn the_galera_point_is_read_in_every_form_mariadb_backup_writes() {
        let point = galera_point(format!("{UUID}:1352215\n").as_bytes()).unwrap();
        assert_eq!(
            point,
            GaleraPoint {
                uuid: UUID.into(),
                seqno: 1352215,
                gtid: None,
                domain_id: None
            }
        );
        let with_gtid = galera_point(format!("{UUID}:42 0-1-40\n").as_bytes()).unwrap();
        assert_eq!(with_gtid.seqno, 42);
        assert_eq!(with_gtid.gtid.as_deref(), Some("0-1-40"));
        let with_domain = galera_point(format!("{UUID}:42 7\n").as_bytes()).unwrap();
        assert_eq!((with_domain.gtid, with_domain.domain_id), (None, Some(7)));
        let recovered = galera_point(format!("{UUID}:0-1-40,42").as_bytes()).unwrap();
        assert_eq!(
            (recovered.seqno, recovered.gtid.as_deref()),
            (42, Some("0-1-40"))
        );
        let upper = galera_point(format!("{}:-1", UUID.to_uppercase()).as_bytes()).unwrap();
        assert_eq!((upper.uuid.as_str(), upper.seqno), (UUID, -1));
        let several = galera_point(format!("{UUID}:42 0-1-40,1-2-3").as_bytes()).unwrap();
        assert_eq!(several.gtid.as_deref(), Some("0-1-40,1-2-3"));
        assert_eq!(
            several.to_string(),
            format!("{UUID}:42 0-1-40,1-2-3"),
            "shown as written"
        );
    }

    #[test]
    fn anything_without_uuid_and_seqno_is_no_galera_point() {
        for bad in [
            String::new(),
            "\n\n".into(),
            UUID.into(),
            format!("{UUID}:"),
            format!("{UUID}:abc"),
            format!("{UUID}:-2"),
            format!("{UUID}:1,2"),
            "d38587ce-246c-11e5-bcce:5".into(),
            "not a position".into(),
        ] {
            assert_eq!(galera_point(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(galera_point(b"\xff\xfe:1"), None);
    }
}

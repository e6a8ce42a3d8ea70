//! A confined tar reader for `boot.tar.xz`: it yields regular files and
//! directories with normalized relative paths, and refuses everything else
//! before a byte of it is used (`research/reliability.md` P16; the `tar`
//! crate's advisories GHSA-62jx-8vmh-4mcw and GHSA-j4xf-2g29-59ph).
//!
//! Refused, each with an error naming the entry: symlinks, hard links,
//! devices, FIFOs, sparse and other special entries; absolute paths, `..`,
//! backslashes, non-UTF-8 names; a path through an earlier *file* entry or
//! replacing an earlier entry; two names for one entry (a GNU long name and
//! a pax path, which readers resolve differently); more than [`TarLimits::max_entries`] entries,
//! [`TarLimits::max_total_bytes`] of file data, or paths longer or deeper
//! than the limits; headers with bad checksums; v7 (pre-ustar) headers; data
//! after the end-of-archive marker that is not zero padding.
//!
//! Accepted: ustar, GNU (`L` long names) and POSIX pax (`x`/`g` extended
//! headers: `path` and `size` are honoured, other keys ignored) archives, as
//! GNU tar, bsdtar, Python's tarfile and the `tar` crate write them. Modes,
//! owners and times are ignored: the target is FAT, which stores none.
//!
//! Why not the `tar` crate's reader: it reads GNU long names and pax headers
//! into memory at whatever size the header claims. Here every buffer has a
//! fixed bound, so a hostile archive cannot make the node allocate.
//!
//! What this module must not do: write anything (it only reads), or accept a
//! name FAT cannot hold on the promise that a later step checks it — the FAT
//! builder does check, and the pipeline reports that as a refused entry too.

use std::collections::HashMap;
use std::io::{self, Read};

use k8r_core::io::read_full;

/// Tar block size.
const BLOCK: usize = 512;

/// Bounds on what an archive may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TarLimits {
    /// Entries, directories and extension headers included.
    pub max_entries: u32,
    /// Total bytes of file data.
    pub max_total_bytes: u64,
    /// Bytes of a normalized path (`overlays/vc4-kms-v3d.dtbo`).
    pub max_path_bytes: usize,
    /// Components of a path.
    pub max_depth: usize,
    /// Bytes of one pax extended header.
    pub max_pax_bytes: u64,
}

impl Default for TarLimits {
    /// Generous for a Raspberry Pi boot partition (a few hundred files: firmware,
    /// kernel, initrd, device trees, overlays) and small enough to refuse a
    /// flood: 10 000 entries, 1 GiB of data, 255-byte paths, 16 levels, 64 KiB
    /// pax headers.
    fn default() -> Self {
        TarLimits {
            max_entries: 10_000,
            max_total_bytes: 1 << 30,
            max_path_bytes: 255,
            max_depth: 16,
            max_pax_bytes: 64 << 10,
        }
    }
}

/// Why reading the archive stopped.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// The archive holds something confined extraction refuses.
    #[error("archive entry {entry:?}: {reason}")]
    Refused {
        /// The entry's path as stored, or its position when there is none.
        entry: String,
        /// Why.
        reason: String,
    },
    /// Reading the underlying stream failed.
    #[error("reading the archive: {0}")]
    Io(#[source] io::Error),
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of `size` bytes; read them from the [`ConfinedTar`].
    File {
        /// Bytes of data.
        size: u64,
    },
    /// A directory.
    Dir,
}

/// One accepted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Normalized relative path: components joined by `/`, no leading `/`,
    /// no `.` or empty components (`overlays/vc4-kms-v3d.dtbo`).
    pub path: String,
    /// File or directory.
    pub kind: EntryKind,
}

/// Reads a tar stream entry by entry (see the module docs). Call
/// [`next_entry`](Self::next_entry) until it returns `None`, reading each
/// file's data through `Read` in between, then [`finish`](Self::finish).
#[derive(Debug)]
pub struct ConfinedTar<R> {
    inner: R,
    limits: TarLimits,
    /// Data of the current file not yet read by the caller.
    data_left: u64,
    /// Zero padding after the current file's data.
    pad_left: u64,
    /// The current entry's stored name, for errors while reading its data.
    current: String,
    /// Bytes consumed from `inner`, for messages.
    offset: u64,
    entries: u32,
    total: u64,
    /// Every path seen so far → whether it is a directory.
    seen: HashMap<String, bool>,
    ended: bool,
}

/// Extension headers waiting for the entry they describe.
#[derive(Debug, Default)]
struct Pending {
    path: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Pending {
    /// Take the entry's name from an extension header. A second name for
    /// the same entry (a GNU long name and a pax path, or two of either) is
    /// refused: tools disagree on which wins, so the node would extract
    /// another tree than the one `tar -t` shows.
    fn name_once(&mut self, name: Vec<u8>, header: &str) -> Result<(), TarError> {
        if self.path.is_some() {
            return Err(refused(header, "a second name for the same entry (GNU long name and pax path)".into()));
        }
        self.path = Some(name);
        Ok(())
    }
}

impl<R: Read> ConfinedTar<R> {
    /// Read the archive in `inner` within `limits`.
    pub fn new(inner: R, limits: TarLimits) -> Self {
        ConfinedTar {
            inner,
            limits,
            data_left: 0,
            pad_left: 0,
            current: String::new(),
            offset: 0,
            entries: 0,
            total: 0,
            seen: HashMap::new(),
            ended: false,
        }
    }

    /// The next accepted entry, or `None` at the end-of-archive marker.
    /// Unread data of the previous file is skipped.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        if self.ended {
            return Ok(None);
        }
        self.skip(self.data_left + self.pad_left)?;
        (self.data_left, self.pad_left) = (0, 0);
        let mut pending = Pending::default();
        loop {
            let at = self.offset;
            let mut block = [0u8; BLOCK];
            if !self.read_block(&mut block)? {
                return Err(self.refuse_at(at, "the archive ends without an end-of-archive marker"));
            }
            if block.iter().all(|&b| b == 0) {
                return self.end_marker(at).map(|()| None);
            }
            let header = Header::parse(&block).map_err(|reason| self.refuse_at(at, reason))?;
            match header.typeflag {
                b'x' | b'g' => {
                    self.count(&header.stored_name())?;
                    self.pax(&header, &mut pending)?;
                }
                b'L' => {
                    self.count("GNU long name")?;
                    let name = self.long_name(&header)?;
                    pending.name_once(name, "GNU long name")?;
                }
                _ => {
                    if let Some(entry) = self.entry(&header, pending)? {
                        return Ok(Some(entry));
                    }
                    pending = Pending::default();
                }
            }
        }
    }

    /// After `next_entry` returned `None`: check that what follows the
    /// end-of-archive marker is zero padding, and give back the stream.
    pub fn finish(mut self) -> Result<R, TarError> {
        if !self.ended {
            return Err(self.refuse_at(self.offset, "finish called before the end of the archive"));
        }
        let mut buf = [0u8; 8192];
        loop {
            let n = read_full(&mut self.inner, &mut buf).map_err(TarError::Io)?;
            if n == 0 {
                return Ok(self.inner);
            }
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(self.refuse_at(self.offset, "data after the end-of-archive marker"));
            }
            self.offset += n as u64;
        }
    }

    /// Headers read so far (entries and extension headers).
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Two zero blocks end an archive; one followed by anything else is
    /// refused rather than guessed at.
    fn end_marker(&mut self, at: u64) -> Result<(), TarError> {
        let mut block = [0u8; BLOCK];
        if !self.read_block(&mut block)? || block.iter().any(|&b| b != 0) {
            return Err(self.refuse_at(at, "a lone zero block is not an end-of-archive marker"));
        }
        self.ended = true;
        Ok(())
    }

    /// Count a header (entries and extension headers alike) against the limit.
    fn count(&mut self, entry: &str) -> Result<(), TarError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(refused(entry, format!("more than {} entries", self.limits.max_entries)));
        }
        Ok(())
    }

    /// A pax extended header (`x` for the next entry, `g` for all).
    fn pax(&mut self, header: &Header, pending: &mut Pending) -> Result<(), TarError> {
        let name = header.stored_name();
        let body = self.small_body(header, self.limits.max_pax_bytes, &name)?;
        let records = parse_pax(&body).map_err(|reason| refused(&name, reason))?;
        for (key, value) in records {
            if key.starts_with("GNU.sparse.") {
                return Err(refused(&name, "sparse files are not accepted".into()));
            }
            if header.typeflag == b'g' {
                continue; // global defaults: path/size there describe no entry
            }
            match key.as_str() {
                "path" => pending.name_once(value, &name)?,
                "size" => {
                    let size = std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok());
                    pending.size = Some(size.ok_or_else(|| refused(&name, "pax size is not a number".into()))?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A GNU `L` header: the next entry's name.
    fn long_name(&mut self, header: &Header) -> Result<Vec<u8>, TarError> {
        let limit = self.limits.max_path_bytes as u64 + 1;
        let mut body = self.small_body(header, limit, "GNU long name")?;
        while body.last() == Some(&0) {
            body.pop();
        }
        Ok(body)
    }

    /// Read the body of an extension header of at most `limit` bytes.
    fn small_body(&mut self, header: &Header, limit: u64, name: &str) -> Result<Vec<u8>, TarError> {
        if header.size > limit {
            let reason = format!("extension header of {} bytes; at most {limit} are accepted", header.size);
            return Err(refused(name, reason));
        }
        // Bounded by `limit` just above.
        let mut body = vec![0u8; header.size as usize];
        let got = read_full(&mut self.inner, &mut body).map_err(TarError::Io)?;
        self.offset += got as u64;
        if got < body.len() {
            return Err(refused(name, "the archive ends inside this header".into()));
        }
        self.skip(padding(header.size))?;
        Ok(body)
    }

    /// A real entry: check it and make it current. `None` for the root
    /// directory entry (`./`), which names nothing to create.
    fn entry(&mut self, header: &Header, pending: Pending) -> Result<Option<Entry>, TarError> {
        let raw = pending.path.unwrap_or_else(|| header.name.clone());
        let stored = String::from_utf8_lossy(&raw).into_owned();
        self.count(&stored)?;
        let kind = match header.typeflag {
            b'0' | 0 => EntryKind::File { size: pending.size.unwrap_or(header.size) },
            b'5' => EntryKind::Dir,
            other => return Err(refused(&stored, kind_refusal(other))),
        };
        let size = match kind {
            EntryKind::File { size } => size,
            EntryKind::Dir => pending.size.unwrap_or(header.size),
        };
        if kind == EntryKind::Dir && size != 0 {
            return Err(refused(&stored, format!("a directory entry with {size} bytes of data")));
        }
        if kind != EntryKind::Dir && raw.ends_with(b"/") {
            return Err(refused(&stored, "a regular file whose name ends in '/'".into()));
        }
        let path = self.normalize(&raw).map_err(|reason| refused(&stored, reason))?;
        if path.is_empty() {
            if kind == EntryKind::Dir {
                return Ok(None);
            }
            return Err(refused(&stored, "a file needs a name".into()));
        }
        self.admit(&path, kind).map_err(|reason| refused(&stored, reason))?;
        self.total = self.total.saturating_add(size);
        if self.total > self.limits.max_total_bytes {
            let reason = format!("more than {} bytes of file data in the archive", self.limits.max_total_bytes);
            return Err(refused(&stored, reason));
        }
        (self.data_left, self.pad_left, self.current) = (size, padding(size), stored);
        Ok(Some(Entry { path, kind }))
    }

    /// The relative path of `raw`, or why it is refused.
    fn normalize(&self, raw: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(raw).map_err(|_| "the name is not UTF-8".to_string())?;
        if text.starts_with('/') {
            return Err("absolute paths are not accepted".into());
        }
        if text.contains('\\') {
            return Err("backslashes are not accepted in names".into());
        }
        if text.contains('\0') {
            return Err("the name contains NUL".into());
        }
        let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        if parts.contains(&"..") {
            return Err("'..' is not accepted in paths".into());
        }
        if parts.len() > self.limits.max_depth {
            return Err(format!("more than {} levels deep", self.limits.max_depth));
        }
        let path = parts.join("/");
        if path.len() > self.limits.max_path_bytes {
            return Err(format!("the path is longer than {} bytes", self.limits.max_path_bytes));
        }
        Ok(path)
    }

    /// Check `path` against earlier entries and record it (with its parents
    /// as directories).
    fn admit(&mut self, path: &str, kind: EntryKind) -> Result<(), String> {
        let is_dir = kind == EntryKind::Dir;
        let mut parent = String::new();
        for part in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.seen.get(&parent) {
                Some(false) => return Err(format!("the path goes through the earlier file entry {parent:?}")),
                Some(true) => {}
                None => {
                    self.seen.insert(parent.clone(), true);
                }
            }
        }
        match self.seen.get(path) {
            Some(true) if is_dir => return Ok(()),
            Some(true) => return Err("replaces an earlier directory entry".into()),
            Some(false) => return Err("duplicates an earlier entry".into()),
            None => {}
        }
        self.seen.insert(path.to_string(), is_dir);
        Ok(())
    }

    /// Read one block; `false` at a clean EOF, an error for a partial block.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let n = read_full(&mut self.inner, block).map_err(TarError::Io)?;
        self.offset += n as u64;
        match n {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(self.refuse_at(self.offset - n as u64, "the archive ends inside a header")),
        }
    }

    /// Read and drop `n` bytes (unread data, padding); EOF is an error.
    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = read_full(&mut self.inner, &mut buf[..want]).map_err(TarError::Io)?;
            self.offset += got as u64;
            if got < want {
                let entry =
                    if self.current.is_empty() { format!("at byte {}", self.offset) } else { self.current.clone() };
                return Err(refused(&entry, "the archive ends inside this entry".into()));
            }
            n -= got as u64;
        }
        Ok(())
    }

    fn refuse_at(&self, at: u64, reason: &str) -> TarError {
        refused(&format!("header at byte {at}"), reason.to_string())
    }
}

impl<R: Read> Read for ConfinedTar<R> {
    /// The current file's data; `Ok(0)` at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (buf.len() as u64).min(self.data_left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                refused(&self.current, "the archive ends inside this file's data".into()),
            ));
        }
        self.data_left -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

fn refused(entry: &str, reason: String) -> TarError {
    TarError::Refused { entry: entry.to_string(), reason }
}

/// Why an entry type is refused.
fn kind_refusal(typeflag: u8) -> String {
    let what = match typeflag {
        b'1' => "hard links",
        b'2' => "symbolic links",
        b'3' => "character devices",
        b'4' => "block devices",
        b'6' => "FIFOs",
        b'7' => "contiguous files",
        b'K' => "long link names (links)",
        b'S' => "sparse files",
        b'V' => "volume labels",
        b'M' => "multi-volume continuations",
        b'D' => "GNU dump directories",
        _ => return format!("entry type {:?} is not accepted (only files and directories)", char::from(typeflag)),
    };
    format!("{what} are not accepted (only regular files and directories)")
}

/// Zero padding after `size` bytes of data.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The fields of a ustar/GNU header this reader uses.
#[derive(Debug)]
struct Header {
    /// `prefix/name` for POSIX ustar, `name` otherwise (NUL-trimmed).
    name: Vec<u8>,
    size: u64,
    typeflag: u8,
}

impl Header {
    fn parse(b: &[u8; BLOCK]) -> Result<Header, &'static str> {
        let stored = parse_octal(&b[148..156]).ok_or("the header checksum field is not a number")?;
        let unsigned: u64 =
            b.iter().enumerate().map(|(i, &x)| if (148..156).contains(&i) { 32 } else { u64::from(x) }).sum();
        let signed: i64 =
            b.iter().enumerate().map(|(i, &x)| if (148..156).contains(&i) { 32 } else { i64::from(x as i8) }).sum();
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err("the header checksum does not match");
        }
        let posix = &b[257..263] == b"ustar\0";
        let gnu = &b[257..265] == b"ustar  \0";
        if !posix && !gnu {
            return Err("not a ustar, GNU or pax header (v7 archives are not accepted)");
        }
        let size = parse_number(&b[124..136]).ok_or("the size field is not a number")?;
        let mut name = trim_nul(&b[0..100]).to_vec();
        let prefix = trim_nul(&b[345..500]);
        if posix && !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
        Ok(Header { name, size, typeflag: b[156] })
    }

    fn stored_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

fn trim_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// A numeric field: octal digits (space/NUL padded), or GNU base-256 when
/// the high bit of the first byte is set (negative values are refused).
fn parse_number(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(&0x80) => field[1..].iter().try_fold(0u64, |acc, &b| acc.checked_mul(256)?.checked_add(u64::from(b))),
        Some(&b) if b & 0x80 != 0 => None,
        _ => parse_octal(field),
    }
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = trim_nul(field);
    let digits = std::str::from_utf8(text).ok()?.trim_matches(' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// pax records: `"<len> <key>=<value>\n"`, `len` counting the whole record.
fn parse_pax(mut body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let space = body.iter().position(|&b| b == b' ').ok_or("a pax record without a length")?;
        let len: usize = std::str::from_utf8(&body[..space])
            .ok()
            .and_then(|l| l.parse().ok())
            .filter(|&l| l > space + 1 && l <= body.len())
            .ok_or("a pax record with a bad length")?;
        let record = &body[space + 1..len];
        let record = record.strip_suffix(b"\n").ok_or("a pax record not ending in a newline")?;
        let eq = record.iter().position(|&b| b == b'=').ok_or("a pax record without '='")?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| "a pax key that is not UTF-8")?;
        out.push((key.to_string(), record[eq + 1..].to_vec()));
        body = &body[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block with `name`, `typeflag` and `size`, POSIX ustar magic
    /// and a correct checksum; `tweak` edits it before the checksum.
    fn header(name: &[u8], typeflag: u8, size: u64) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
        b[100..107].copy_from_slice(b"0000644");
        b[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        b[156] = typeflag;
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        checksum(&mut b);
        b
    }

    fn checksum(b: &mut [u8; BLOCK]) {
        b[148..156].fill(b' ');
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    }

    /// An archive of (name, type, data) entries and the end marker.
    fn archive(entries: &[(&[u8], u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, t, data) in entries {
            out.extend_from_slice(&header(name, *t, data.len() as u64));
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend_from_slice(&[0u8; 2 * BLOCK]);
        out
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in records {
            let inner = format!(" {k}={v}\n");
            let mut len = inner.len() + 1;
            while format!("{len}{inner}").len() != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len}{inner}").as_bytes());
        }
        body
    }

    /// Entries as read: path, and data for files.
    type Entries = Vec<(String, Option<Vec<u8>>)>;

    /// Read everything; returns the entries with their data.
    fn read_all(bytes: &[u8], limits: TarLimits) -> Result<Entries, TarError> {
        let mut tar = ConfinedTar::new(bytes, limits);
        let mut out = Vec::new();
        while let Some(e) = tar.next_entry()? {
            let data = match e.kind {
                EntryKind::File { .. } => {
                    let mut d = Vec::new();
                    tar.read_to_end(&mut d).map_err(TarError::Io)?;
                    Some(d)
                }
                EntryKind::Dir => None,
            };
            out.push((e.path, data));
        }
        tar.finish()?;
        Ok(out)
    }

    #[test]
    fn reads_files_and_directories() {
        let a = archive(&[
            (b"./", b'5', b""),
            (b"./overlays/", b'5', b""),
            (b"./overlays/a.dtbo", b'0', b"dtbo"),
            (b"config.txt", 0, b"[all]\n"),
        ]);
        let got = read_all(&a, TarLimits::default()).expect("valid");
        let want = [
            ("overlays".to_string(), None),
            ("overlays/a.dtbo".to_string(), Some(b"dtbo".to_vec())),
            ("config.txt".to_string(), Some(b"[all]\n".to_vec())),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn honours_pax_path_and_size_and_gnu_long_names() {
        let long = "d/".to_string() + &"n".repeat(150);
        let body = pax(&[("path", &long), ("mtime", "1.5")]);
        let mut a = Vec::new();
        a.extend_from_slice(&header(b"PaxHeaders/x", b'x', body.len() as u64));
        a.extend_from_slice(&body);
        a.resize(a.len().div_ceil(BLOCK) * BLOCK, 0);
        a.extend_from_slice(&header(b"truncated-name", b'0', 3));
        a.extend_from_slice(b"abc");
        a.resize(a.len().div_ceil(BLOCK) * BLOCK, 0);
        let gnu_name = "e/".to_string() + &"m".repeat(120);
        let mut l = header(b"././@LongLink", b'L', gnu_name.len() as u64 + 1);
        l[257..265].copy_from_slice(b"ustar  \0");
        checksum(&mut l);
        a.extend_from_slice(&l);
        a.extend_from_slice(gnu_name.as_bytes());
        a.push(0);
        a.resize(a.len().div_ceil(BLOCK) * BLOCK, 0);
        a.extend_from_slice(&header(b"short", b'0', 1));
        a.extend_from_slice(b"z");
        a.resize(a.len().div_ceil(BLOCK) * BLOCK, 0);
        a.extend_from_slice(&[0u8; 2 * BLOCK]);
        let got = read_all(&a, TarLimits::default()).expect("valid");
        assert_eq!(got, [(long, Some(b"abc".to_vec())), (gnu_name, Some(b"z".to_vec()))]);
    }

    #[test]
    fn refuses_hostile_entries() {
        let tiny =
            TarLimits { max_entries: 3, max_total_bytes: 10, max_path_bytes: 20, max_depth: 3, ..TarLimits::default() };
        type Case<'a> = (&'a str, Vec<(&'a [u8], u8, &'a [u8])>, &'a str);
        let cases: Vec<Case> = vec![
            ("symlink", vec![(b"d", b'2', b"")], "symbolic links are not accepted"),
            ("hard link", vec![(b"h", b'1', b"")], "hard links are not accepted"),
            ("char device", vec![(b"c", b'3', b"")], "character devices"),
            ("block device", vec![(b"b", b'4', b"")], "block devices"),
            ("fifo", vec![(b"f", b'6', b"")], "FIFOs"),
            ("sparse", vec![(b"s", b'S', b"")], "sparse files"),
            ("unknown type", vec![(b"u", b'Z', b"")], "entry type 'Z'"),
            ("parent dir", vec![(b"../x", b'0', b"x")], "'..' is not accepted"),
            ("inner parent", vec![(b"a/../../x", b'0', b"x")], "'..' is not accepted"),
            ("absolute", vec![(b"/etc/x", b'0', b"x")], "absolute paths"),
            ("backslash", vec![(b"a\\..\\x", b'0', b"x")], "backslashes"),
            ("not utf-8", vec![(b"\xff", b'0', b"x")], "not UTF-8"),
            ("through a file", vec![(b"f", b'0', b"x"), (b"f/evil", b'0', b"x")], "through the earlier file"),
            ("duplicate", vec![(b"f", b'0', b"x"), (b"./f", b'0', b"y")], "duplicates an earlier entry"),
            ("file over dir", vec![(b"d/", b'5', b""), (b"d", b'0', b"y")], "replaces an earlier directory"),
            ("dir over file", vec![(b"f", b'0', b""), (b"f/", b'5', b"")], "duplicates an earlier entry"),
            (
                "too many",
                vec![(b"1", b'0', b""), (b"2", b'0', b""), (b"3", b'0', b""), (b"4", b'0', b"")],
                "more than 3 entries",
            ),
            ("too much data", vec![(b"big", b'0', b"01234567890")], "more than 10 bytes"),
            ("too long", vec![(b"aaaaaaaaaaaaaaaaaaaaa", b'0', b"")], "longer than 20 bytes"),
            ("too deep", vec![(b"a/b/c/d", b'0', b"")], "more than 3 levels"),
            ("dir with data", vec![(b"d/", b'5', b"xx")], "directory entry with 2 bytes"),
            ("file named like a dir", vec![(b"x/", b'0', b"")], "ends in '/'"),
            ("nameless file", vec![(b".", b'0', b"")], "a file needs a name"),
        ];
        for (name, entries, want) in cases {
            let err = read_all(&archive(&entries), tiny).expect_err(name);
            assert!(matches!(err, TarError::Refused { .. }), "{name}: {err}");
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn refuses_malformed_archives() {
        let good = archive(&[(b"a", b'0', b"abc")]);
        let mut bad_sum = good.clone();
        bad_sum[0] = b'b';
        let mut v7 = good.clone();
        v7[257..265].fill(0);
        let mut head = [0u8; BLOCK];
        head.copy_from_slice(&v7[..BLOCK]);
        checksum(&mut head);
        v7[..BLOCK].copy_from_slice(&head);
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0, 0, 7]);
        let mut lone_zero = good[..2 * BLOCK].to_vec();
        lone_zero.extend_from_slice(&[0u8; BLOCK]);
        lone_zero.extend_from_slice(&header(b"b", b'0', 0));
        let huge_pax = {
            let mut a = header(b"p", b'x', 1 << 20).to_vec();
            a.resize(a.len() + (1 << 20), b'1');
            a
        };
        let huge_long = header(b"././@LongLink", b'L', 1 << 30).to_vec();
        let sparse_pax = {
            let body = pax(&[("GNU.sparse.map", "0,1")]);
            let mut a = header(b"p", b'x', body.len() as u64).to_vec();
            a.extend_from_slice(&body);
            a.resize(a.len().div_ceil(BLOCK) * BLOCK, 0);
            a.extend_from_slice(&archive(&[(b"s", b'0', b"")]));
            a
        };
        let cases: [(&str, Vec<u8>, &str); 9] = [
            ("bad checksum", bad_sum, "checksum does not match"),
            ("v7 header", v7, "v7 archives are not accepted"),
            ("trailing data", trailing, "data after the end-of-archive marker"),
            ("lone zero block", lone_zero, "lone zero block"),
            ("no end marker", good[..2 * BLOCK].to_vec(), "without an end-of-archive marker"),
            ("cut in data", good[..BLOCK + 2].to_vec(), "ends inside this"),
            ("cut in header", good[..100].to_vec(), "ends inside a header"),
            ("huge pax", huge_pax, "at most 65536 are accepted"),
            ("huge long name", huge_long, "at most 256 are accepted"),
        ];
        for (name, bytes, want) in cases {
            let err = read_all(&bytes, TarLimits::default()).expect_err(name);
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
        let err = read_all(&sparse_pax, TarLimits::default()).expect_err("sparse pax");
        assert!(err.to_string().contains("sparse files"), "{err}");
        // A pax path and a GNU long name for one entry: GNU tar takes the
        // pax one, other readers the other; refused either way round.
        let body = pax(&[("path", "boot/pax-name")]);
        let mut two_names = header(b"p", b'x', body.len() as u64).to_vec();
        two_names.extend_from_slice(&body);
        two_names.resize(two_names.len().div_ceil(BLOCK) * BLOCK, 0);
        let long = b"boot/gnu-name\0";
        let mut l = header(b"././@LongLink", b'L', long.len() as u64);
        l[257..265].copy_from_slice(b"ustar  \0");
        checksum(&mut l);
        two_names.extend_from_slice(&l);
        two_names.extend_from_slice(long);
        two_names.resize(two_names.len().div_ceil(BLOCK) * BLOCK, 0);
        two_names.extend_from_slice(&archive(&[(b"short", b'0', b"x")]));
        let err = read_all(&two_names, TarLimits::default()).expect_err("two names");
        assert!(err.to_string().contains("a second name for the same entry"), "{err}");
    }

    #[test]
    fn numbers_parse_in_octal_and_base_256() {
        assert_eq!(parse_number(b"00000001750\0"), Some(1000));
        assert_eq!(parse_number(b"     17 \0\0\0\0"), Some(15));
        assert_eq!(parse_number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00]), Some(256));
        assert_eq!(parse_number(&[0xff; 12]), None, "negative base-256");
        assert_eq!(parse_number(&[0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None, "overflows u64");
        assert_eq!(parse_number(b"9"), None);
    }
}

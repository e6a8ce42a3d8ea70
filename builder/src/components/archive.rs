//! Confined unpacking of tar archives (plain, gzip, xz or zstd, told apart by
//! their magic bytes) into a fresh directory of the staging area.
//!
//! The tar crate parses blocks, checksums and numeric fields; everything
//! that decides *where* bytes go is done here, because the crate's own
//! `unpack` has let archives write outside their target (GHSA-62jx-8vmh-4mcw,
//! GHSA-j4xf-2g29-59ph; research/reliability.md P16). Entries are read raw
//! and GNU long names, long links and pax records are applied by this module
//! with size bounds (the crate reads them into memory unbounded), and an
//! archive whose GNU long name and pax path disagree is refused rather than
//! read one way here and another way by GNU tar.
//!
//! What is accepted: regular files and directories; symlinks and hard links
//! only when the [`Policy`] says so. A symlink is never created on the host:
//! it is returned as an [`Item`] for the image, and no later entry may lie
//! under it. A hard link becomes a second name for an earlier regular file of
//! the same archive (the image gets a copy). Names must be relative UTF-8
//! paths without `..`, control characters, or components over 255 bytes;
//! `./` prefixes and empty components are dropped. Devices, FIFOs, sparse
//! files and unknown entry types are refused. Counts and sizes are bounded
//! by [`Limits`] before any byte of an entry is read. Modes keep their
//! permission and sticky bits; setuid and setgid are dropped (with a
//! warning) unless [`Policy::keep_setid`]. Owners are ignored: everything in
//! the image is root:root.
//!
//! Unpacking is all or nothing: it fills a temporary directory beside the
//! target, hashes the archive bytes as they are read, and renames the
//! directory into place only when every entry passed and the digest
//! matches. On any error the temporary directory is removed, so the staging
//! area is left as it was.
//!
//! This module must not: create anything outside the directory it is given,
//! follow a link on the host, allocate by a size an archive states without a
//! bound, or keep a partial result.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use k8r_config::Sha256;
use k8r_core::compress::Compression;
use k8r_core::io::HashReader;

/// Longest path the image's ext4 resolves (`PATH_MAX` less the NUL).
pub const MAX_PATH: usize = 4095;
/// Longest file name (one path component) ext4 stores.
pub const MAX_NAME: usize = 255;
/// Largest GNU long-name or long-link record read.
const MAX_LONG_NAME: u64 = 8192;
/// Largest pax extended header read.
const MAX_PAX: u64 = 1 << 16;

/// Bounds on what one archive may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries (files, directories, links, pax global headers).
    pub max_entries: u64,
    /// Bytes of one regular file.
    pub max_entry_bytes: u64,
    /// Bytes of all regular files together.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    /// Generous for real payloads (containerd's archive holds 5 files and
    /// ~150 MiB; large Debian packages a few thousand files), small enough
    /// that a hostile archive cannot fill the build host.
    fn default() -> Self {
        Limits { max_entries: 200_000, max_entry_bytes: 4 << 30, max_total_bytes: 8 << 30 }
    }
}

/// What an archive may contain beyond regular files and directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Symlinks are returned as [`Node::Symlink`] items (else refused).
    pub symlinks: bool,
    /// Hard links to earlier regular files become copies (else refused).
    pub hard_links: bool,
    /// Keep setuid/setgid bits (else dropped, with a warning).
    pub keep_setid: bool,
    /// Size and count bounds.
    pub limits: Limits,
}

impl Policy {
    /// Kubernetes component archives: regular files and directories only.
    pub fn component() -> Policy {
        Policy { symlinks: false, hard_links: false, keep_setid: false, limits: Limits::default() }
    }

    /// `[[extra]]` payloads and `.deb` data: symlinks and hard links too, as
    /// packages carry them; setuid/setgid still dropped. k8r does not run
    /// maintainer scripts, and a setuid binary in a golden image is a
    /// privilege every node inherits, so it must not arrive unnoticed; the
    /// node's own tools (kubelet, kubeadm, containerd) all run as root and
    /// need none.
    pub fn extra() -> Policy {
        Policy { symlinks: true, hard_links: true, keep_setid: false, limits: Limits::default() }
    }
}

/// What an unpacked entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file, unpacked to `host`.
    File {
        /// Where its bytes are on the build host (inside the unpack directory).
        host: PathBuf,
        /// Permission bits (`0o7777` at most, setuid/setgid per policy).
        mode: u32,
        /// Length in bytes.
        size: u64,
    },
    /// A directory (created on the host too).
    Dir {
        /// Permission bits.
        mode: u32,
    },
    /// A symlink, for the image only (never created on the host).
    Symlink {
        /// The link's content, as the archive gives it.
        target: String,
    },
}

/// One entry of an unpacked archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Normalised relative path (`usr/bin/x`; never empty, no `.`/`..`).
    pub path: String,
    /// What it is.
    pub node: Node,
}

/// A successfully unpacked archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The directory the files are in.
    pub dir: PathBuf,
    /// Every entry in archive order, implicit parent directories (`0755`)
    /// before the first entry under them.
    pub items: Vec<Item>,
    /// sha256 of the archive file as it was read.
    pub sha256: Sha256,
    /// Length of the archive file.
    pub size: u64,
}

/// Why an archive was refused.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// An absolute name.
    #[error("has an absolute path")]
    Absolute,
    /// A `..` component.
    #[error("has a '..' component")]
    ParentDir,
    /// A name k8r cannot put into the image.
    #[error("has an unusable name: {0}")]
    BadName(String),
    /// An entry type the policy does not allow.
    #[error("is a {0}, which k8r does not unpack here")]
    Kind(&'static str),
    /// An entry below a symlink of the same archive.
    #[error("lies under {link:?}, a symlink earlier in the archive")]
    ThroughLink {
        /// The symlink's path.
        link: String,
    },
    /// An entry below a regular file of the same archive.
    #[error("lies under {file:?}, a regular file earlier in the archive")]
    UnderFile {
        /// The file's path.
        file: String,
    },
    /// The same name twice.
    #[error("appears twice in the archive")]
    Duplicate,
    /// A name reused for another kind of entry.
    #[error("replaces an earlier {0} of the same name")]
    Replaces(&'static str),
    /// A symlink or hard link target k8r refuses.
    #[error("has an unusable link target: {0}")]
    LinkTarget(String),
    /// Non-file entries carry no data.
    #[error("is a {0} that carries {1} bytes of data")]
    DataOnNonFile(&'static str, u64),
    /// Too many entries.
    #[error("has more than {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// A file larger than allowed.
    #[error("is {size} bytes, more than the {limit} allowed for one file")]
    EntryTooLarge {
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// All files together larger than allowed.
    #[error("brings the archive's files past the {limit} bytes allowed in total")]
    TotalTooLarge {
        /// The limit.
        limit: u64,
    },
    /// A GNU long name or pax header k8r refuses.
    #[error("has an unusable extension header: {0}")]
    Extension(String),
    /// A file shorter than its header says.
    #[error("ends after {got} of its {size} bytes")]
    Truncated {
        /// Bytes read.
        got: u64,
        /// Bytes declared.
        size: u64,
    },
    /// The archive bytes are not the ones that were verified.
    #[error("sha256 of the archive is {actual}, but {expected} was expected")]
    Digest {
        /// The digest it had to have.
        expected: Sha256,
        /// What was read.
        actual: Sha256,
    },
    /// A compression k8r does not read.
    #[error("is compressed with {0}, which k8r does not read (use gzip, xz or zstd)")]
    Compression(&'static str),
    /// A Debian package that breaks deb(5), or does not fit the image.
    #[error("{0}")]
    Deb(String),
    /// The bytes are not a readable archive (or decompression failed).
    #[error("cannot be read as an archive: {0}")]
    Format(#[source] io::Error),
    /// The archive file cannot be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Writing to the staging area failed.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The host path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// An archive refused, naming the archive and, when known, the entry.
#[derive(Debug, thiserror::Error)]
pub struct UnpackError {
    /// The archive, as the caller named it (`crictl-v1.33.0-linux-amd64.tar.gz`).
    pub archive: String,
    /// The entry's name as the archive gives it, when one is to blame.
    pub entry: Option<String>,
    /// What is wrong.
    #[source]
    pub problem: Problem,
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(e) => write!(f, "{}: entry {e:?} {}", self.archive, self.problem),
            None => write!(f, "{}: {}", self.archive, self.problem),
        }
    }
}

/// A [`Problem`] with the entry it is about.
#[derive(Debug)]
pub(crate) struct Located {
    pub(crate) entry: Option<String>,
    pub(crate) problem: Problem,
}

impl Located {
    pub(crate) fn new(entry: Option<String>, problem: Problem) -> Self {
        Located { entry, problem }
    }

    pub(crate) fn archive(problem: Problem) -> Self {
        Located { entry: None, problem }
    }

    pub(crate) fn into_error(self, archive: &str) -> UnpackError {
        UnpackError { archive: archive.to_string(), entry: self.entry, problem: self.problem }
    }
}

impl From<Problem> for Located {
    fn from(problem: Problem) -> Self {
        Located::archive(problem)
    }
}

// ---- names -----------------------------------------------------------------

/// Normalise an archive name: `None` for the archive root (`.`, `./`),
/// else a relative path of real components joined by `/`.
pub fn normalize(raw: &[u8]) -> Result<Option<String>, Problem> {
    let text = std::str::from_utf8(raw).map_err(|_| Problem::BadName("not UTF-8".into()))?;
    if text.is_empty() {
        return Err(Problem::BadName("empty".into()));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err(Problem::BadName("contains a control character (newline, NUL, …)".into()));
    }
    if text.starts_with('/') {
        return Err(Problem::Absolute);
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(Problem::ParentDir),
            p if p.len() > MAX_NAME => {
                return Err(Problem::BadName(format!("a component is longer than {MAX_NAME} bytes")));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    let path = parts.join("/");
    if path.len() > MAX_PATH {
        return Err(Problem::BadName(format!("longer than {MAX_PATH} bytes")));
    }
    Ok(Some(path))
}

/// Check a symlink's content: the image resolves it at run time inside its
/// own root, so relative and absolute targets are both fine; it must be
/// text debugfs can write.
fn link_target(raw: Option<&[u8]>) -> Result<String, Problem> {
    let raw = raw.ok_or_else(|| Problem::LinkTarget("missing".into()))?;
    let text = std::str::from_utf8(raw).map_err(|_| Problem::LinkTarget("not UTF-8".into()))?;
    if text.is_empty() || text.len() > MAX_PATH {
        return Err(Problem::LinkTarget(format!("{} bytes long", text.len())));
    }
    if text.chars().any(|c| c.is_control()) {
        return Err(Problem::LinkTarget("contains a control character".into()));
    }
    Ok(text.to_string())
}

/// The proper prefixes of a normalised path: `a/b/c` → `a`, `a/b`.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

// ---- the raw entry walk ----------------------------------------------------

/// One real entry (extension headers applied).
pub(crate) struct TarEntry<'a> {
    /// Name bytes (pax path, GNU long name or the header's).
    pub(crate) name: Vec<u8>,
    /// Link target bytes, if any.
    pub(crate) link: Option<Vec<u8>>,
    /// The type flag (`0`, `5`, `2`, …).
    pub(crate) type_byte: u8,
    /// Mode from the header.
    pub(crate) mode: u32,
    /// Data length.
    pub(crate) size: u64,
    /// The data.
    pub(crate) data: &'a mut dyn Read,
}

/// Extension headers seen since the last real entry.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_seen: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.long_link.is_none() && !self.pax_seen
    }

    /// Pick a name from the pax record, the GNU record or the header,
    /// refusing records that disagree.
    fn pick(
        pax: Option<Vec<u8>>,
        gnu: Option<Vec<u8>>,
        header: Option<Vec<u8>>,
        what: &str,
    ) -> Result<Option<Vec<u8>>, Problem> {
        let gnu = gnu.map(|mut g| {
            while g.last() == Some(&0) {
                g.pop();
            }
            g
        });
        match (pax, gnu) {
            (Some(p), Some(g)) if p != g => {
                Err(Problem::Extension(format!("its GNU long {what} and pax {what} disagree")))
            }
            (Some(p), _) => Ok(Some(p)),
            (None, Some(g)) => Ok(Some(g)),
            (None, None) => Ok(header),
        }
    }
}

fn read_extension(r: &mut impl Read, size: u64, max: u64, what: &str) -> Result<Vec<u8>, Problem> {
    if size > max {
        return Err(Problem::Extension(format!("a {what} of {size} bytes (at most {max} are read)")));
    }
    let mut v = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    r.take(size).read_to_end(&mut v).map_err(Problem::Format)?;
    if v.len() as u64 != size {
        return Err(Problem::Truncated { got: v.len() as u64, size });
    }
    Ok(v)
}

fn apply_pax(data: &[u8], p: &mut Pending) -> Result<(), Problem> {
    if p.pax_seen {
        return Err(Problem::Extension("two pax headers describe one entry".into()));
    }
    p.pax_seen = true;
    for record in tar::PaxExtensions::new(data) {
        let record = record.map_err(|_| Problem::Extension("a malformed pax record".into()))?;
        let key = record.key_bytes();
        match key {
            b"path" => p.pax_path = Some(record.value_bytes().to_vec()),
            b"linkpath" => p.pax_link = Some(record.value_bytes().to_vec()),
            // GNU tar writes `size` only past 8 GiB, far beyond the limits;
            // honouring it here would need the crate's block walk to agree.
            b"size" => return Err(Problem::Extension("a pax size record (files over 8 GiB are not unpacked)".into())),
            k if k.starts_with(b"GNU.sparse.") => return Err(Problem::Kind("GNU sparse file")),
            // Times, owners and xattrs: the image's files are root:root
            // with the build's times and no extended attributes.
            _ => {}
        }
    }
    Ok(())
}

/// Walk the real entries of a tar stream, applying GNU long names, long
/// links and pax records with bounds, and counting entries against
/// `limits`. `f` sees each entry once; data it leaves unread is skipped.
pub(crate) fn walk<R: Read>(
    stream: R,
    limits: &Limits,
    mut f: impl FnMut(TarEntry<'_>) -> Result<(), Problem>,
) -> Result<(), Located> {
    let mut archive = tar::Archive::new(stream);
    let entries = archive.entries().map_err(Problem::Format)?.raw(true);
    let mut pending = Pending::default();
    let mut count = 0u64;
    for entry in entries {
        let mut entry = entry.map_err(Problem::Format)?;
        let header_name = entry.path_bytes().into_owned();
        let at = |problem| Located::new(Some(String::from_utf8_lossy(&header_name).into_owned()), problem);
        let type_byte = entry.header().entry_type().as_byte();
        let size = entry.size();
        match type_byte {
            b'L' | b'K' => {
                let what = if type_byte == b'L' { "GNU long name" } else { "GNU long link" };
                let slot = if type_byte == b'L' { &mut pending.long_name } else { &mut pending.long_link };
                if slot.is_some() {
                    return Err(at(Problem::Extension(format!("two {what} records describe one entry"))));
                }
                *slot = Some(read_extension(&mut entry, size, MAX_LONG_NAME, what).map_err(at)?);
            }
            b'x' => {
                let data = read_extension(&mut entry, size, MAX_PAX, "pax header").map_err(at)?;
                apply_pax(&data, &mut pending).map_err(at)?;
            }
            b'g' => {
                count += 1;
                if count > limits.max_entries {
                    return Err(at(Problem::TooManyEntries { limit: limits.max_entries }));
                }
                // Global pax records carry defaults (comments, times) that
                // do not change where anything goes.
                read_extension(&mut entry, size, MAX_PAX, "pax global header").map_err(at)?;
            }
            _ => {
                count += 1;
                let p = std::mem::take(&mut pending);
                let name = Pending::pick(p.pax_path, p.long_name, Some(header_name.clone()), "name")
                    .map_err(&at)?
                    .unwrap_or_default();
                let at = |problem| Located::new(Some(String::from_utf8_lossy(&name).into_owned()), problem);
                if count > limits.max_entries {
                    return Err(at(Problem::TooManyEntries { limit: limits.max_entries }));
                }
                let header_link = entry.header().link_name_bytes().map(|l| l.into_owned());
                let link = Pending::pick(p.pax_link, p.long_link, header_link, "link name").map_err(at)?;
                let mode = entry.header().mode().map_err(|e| at(Problem::Format(e)))?;
                let e = TarEntry { name: name.clone(), link, type_byte, mode, size, data: &mut entry };
                f(e).map_err(at)?;
            }
        }
    }
    if !pending.is_empty() {
        return Err(Located::archive(Problem::Extension(
            "the archive ends with an extension header that describes no entry".into(),
        )));
    }
    Ok(())
}

// ---- compression -------------------------------------------------------------

/// How a stream is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// A plain tar.
    Plain,
    /// gzip (`.tar.gz`, `.tgz`).
    Gzip,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

/// Recognise the compression from the magic bytes.
pub(crate) fn sniff(head: &[u8]) -> Result<Codec, Problem> {
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Codec::Gzip
    } else if head.starts_with(b"BZh") {
        return Err(Problem::Compression("bzip2"));
    } else {
        match Compression::sniff(head) {
            Compression::Xz => Codec::Xz,
            Compression::Zstd => Codec::Zstd,
            Compression::None => Codec::Plain,
        }
    })
}

/// A decoder for `codec` over `r`.
pub(crate) fn decoder<'a>(codec: Codec, r: impl Read + Send + 'a) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match codec {
        Codec::Plain => Box::new(r),
        // Multi-member, as pigz and some release pipelines write.
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Codec::Xz => k8r_core::compress::decoder(Compression::Xz, r, 1)?,
        Codec::Zstd => k8r_core::compress::decoder(Compression::Zstd, r, 1)?,
    })
}

/// Decode a (possibly compressed) tar stream, sniffing its compression.
pub(crate) fn decoded<'a>(r: impl Read + Send + 'a) -> Result<Box<dyn Read + Send + 'a>, Problem> {
    let mut buffered = BufReader::with_capacity(1 << 16, r);
    let codec = sniff(buffered.fill_buf().map_err(Problem::Format)?)?;
    decoder(codec, buffered).map_err(Problem::Format)
}

// ---- the unpacker ------------------------------------------------------------

/// Kind of a name already seen, with the index of its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Dir(usize),
    File(usize),
    Symlink,
}

/// Fills a directory from entries, checking every rule in the module docs.
/// Host paths in its items are relative to `root` until [`Scratch::commit`].
pub(crate) struct Unpacker<'p> {
    root: PathBuf,
    policy: &'p Policy,
    seen: BTreeMap<String, Seen>,
    items: Vec<Item>,
    total: u64,
}

/// What an entry type is allowed to become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
}

impl<'p> Unpacker<'p> {
    pub(crate) fn new(root: &Path, policy: &'p Policy) -> Self {
        Unpacker { root: root.to_path_buf(), policy, seen: BTreeMap::new(), items: Vec::new(), total: 0 }
    }

    /// The items so far (host paths relative to the root).
    pub(crate) fn into_items(self) -> Vec<Item> {
        self.items
    }

    fn kind(&self, type_byte: u8) -> Result<Kind, Problem> {
        match type_byte {
            b'0' | 0 | b'7' => Ok(Kind::File),
            b'5' => Ok(Kind::Dir),
            b'2' if self.policy.symlinks => Ok(Kind::Symlink),
            b'2' => Err(Problem::Kind("symlink")),
            b'1' if self.policy.hard_links => Ok(Kind::HardLink),
            b'1' => Err(Problem::Kind("hard link")),
            b'3' => Err(Problem::Kind("character device")),
            b'4' => Err(Problem::Kind("block device")),
            b'6' => Err(Problem::Kind("FIFO")),
            b'S' => Err(Problem::Kind("GNU sparse file")),
            _ => Err(Problem::Kind("entry of an unknown type")),
        }
    }

    /// Drop setuid/setgid unless the policy keeps them.
    fn mode(&self, raw: u32, path: &str) -> u32 {
        let mode = raw & 0o7777;
        if mode & 0o6000 != 0 && !self.policy.keep_setid {
            tracing::warn!("{path}: dropping the setuid/setgid bits of mode {mode:04o}");
            return mode & !0o6000;
        }
        mode
    }

    /// Take one entry.
    pub(crate) fn add(&mut self, e: TarEntry<'_>) -> Result<(), Problem> {
        let kind = self.kind(e.type_byte)?;
        if kind != Kind::File && e.size != 0 {
            let what = match kind {
                Kind::Dir => "directory",
                Kind::Symlink => "symlink",
                _ => "hard link",
            };
            return Err(Problem::DataOnNonFile(what, e.size));
        }
        let Some(path) = normalize(&e.name)? else {
            // The archive root (`./`): its mode is not the target's business.
            return if kind == Kind::Dir { Ok(()) } else { Err(Problem::BadName("names the archive root".into())) };
        };
        if kind == Kind::File && e.name.ends_with(b"/") {
            return Err(Problem::BadName("a file whose name ends with '/'".into()));
        }
        self.check_parents(&path)?;
        match kind {
            Kind::Dir => self.dir(path, e.mode),
            Kind::File => self.file(path, e),
            Kind::Symlink => self.symlink(path, e.link.as_deref()),
            Kind::HardLink => self.hard_link(path, e.link.as_deref()),
        }
    }

    /// No entry may lie under a symlink or a file; missing parents are
    /// created as `0755` directories.
    fn check_parents(&mut self, path: &str) -> Result<(), Problem> {
        for parent in parents(path) {
            match self.seen.get(parent) {
                Some(Seen::Symlink) => return Err(Problem::ThroughLink { link: parent.to_string() }),
                Some(Seen::File(_)) => return Err(Problem::UnderFile { file: parent.to_string() }),
                Some(Seen::Dir(_)) => {}
                None => self.make_dir(parent.to_string(), 0o755)?,
            }
        }
        Ok(())
    }

    fn make_dir(&mut self, path: String, mode: u32) -> Result<(), Problem> {
        let host = self.root.join(&path);
        fs::create_dir(&host).map_err(|source| Problem::Write { path: host, source })?;
        self.seen.insert(path.clone(), Seen::Dir(self.items.len()));
        self.items.push(Item { path, node: Node::Dir { mode } });
        Ok(())
    }

    fn dir(&mut self, path: String, raw_mode: u32) -> Result<(), Problem> {
        let mode = self.mode(raw_mode, &path);
        match self.seen.get(&path) {
            None => self.make_dir(path, mode),
            // A directory listed again (or after its contents): the last
            // mode wins, as with tar.
            Some(Seen::Dir(i)) => {
                self.items[*i].node = Node::Dir { mode };
                Ok(())
            }
            Some(Seen::File(_)) => Err(Problem::Replaces("regular file")),
            Some(Seen::Symlink) => Err(Problem::Replaces("symlink")),
        }
    }

    fn claim_new(&self, path: &str) -> Result<(), Problem> {
        match self.seen.get(path) {
            None => Ok(()),
            Some(Seen::Dir(_)) => Err(Problem::Replaces("directory")),
            Some(_) => Err(Problem::Duplicate),
        }
    }

    fn file(&mut self, path: String, e: TarEntry<'_>) -> Result<(), Problem> {
        self.claim_new(&path)?;
        let limits = &self.policy.limits;
        if e.size > limits.max_entry_bytes {
            return Err(Problem::EntryTooLarge { size: e.size, limit: limits.max_entry_bytes });
        }
        self.total = self.total.saturating_add(e.size);
        if self.total > limits.max_total_bytes {
            return Err(Problem::TotalTooLarge { limit: limits.max_total_bytes });
        }
        let mode = self.mode(e.mode, &path);
        let host = self.root.join(&path);
        // create_new: never through a link, never over anything.
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&host)
            .map_err(|source| Problem::Write { path: host.clone(), source })?;
        let got = copy_file_data(e.data, &mut out, &host)?;
        if got != e.size {
            return Err(Problem::Truncated { got, size: e.size });
        }
        self.seen.insert(path.clone(), Seen::File(self.items.len()));
        self.items
            .push(Item { path: path.clone(), node: Node::File { host: PathBuf::from(path), mode, size: e.size } });
        Ok(())
    }

    fn symlink(&mut self, path: String, link: Option<&[u8]>) -> Result<(), Problem> {
        self.claim_new(&path)?;
        let target = link_target(link)?;
        self.seen.insert(path.clone(), Seen::Symlink);
        self.items.push(Item { path, node: Node::Symlink { target } });
        Ok(())
    }

    fn hard_link(&mut self, path: String, link: Option<&[u8]>) -> Result<(), Problem> {
        self.claim_new(&path)?;
        let raw = link.ok_or_else(|| Problem::LinkTarget("missing".into()))?;
        let target = normalize(raw)
            .map_err(|p| Problem::LinkTarget(format!("hard link to a name that {p}")))?
            .ok_or_else(|| Problem::LinkTarget("hard link to the archive root".into()))?;
        let Some(Seen::File(i)) = self.seen.get(&target).copied() else {
            return Err(Problem::LinkTarget(format!(
                "hard link to {target:?}, which is not a regular file earlier in the archive"
            )));
        };
        let node = self.items[i].node.clone();
        self.seen.insert(path.clone(), Seen::File(self.items.len()));
        self.items.push(Item { path, node });
        Ok(())
    }
}

/// Copy an entry's data to its file; returns the bytes copied.
fn copy_file_data(data: &mut dyn Read, out: &mut File, host: &Path) -> Result<u64, Problem> {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Problem::Format(e)),
        };
        io::Write::write_all(out, &buf[..n]).map_err(|source| Problem::Write { path: host.to_path_buf(), source })?;
        total += n as u64;
    }
    Ok(total)
}

// ---- all or nothing ----------------------------------------------------------

/// A temporary directory beside an unpack target, renamed onto it on
/// success and removed otherwise.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// Start unpacking towards `into`, which must not exist yet; its parent must.
    pub(crate) fn begin(into: &Path) -> Result<Scratch, Problem> {
        let write_err = |source| Problem::Write { path: into.to_path_buf(), source };
        match fs::symlink_metadata(into) {
            Ok(_) => return Err(write_err(io::Error::new(io::ErrorKind::AlreadyExists, "it already exists"))),
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(write_err(e)),
            Err(_) => {}
        }
        let parent = into.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = tempfile::Builder::new().prefix(".unpack-").tempdir_in(parent).map_err(write_err)?;
        Ok(Scratch { dir })
    }

    /// The directory to fill.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Move the result to `into` and make the items' host paths absolute there.
    pub(crate) fn commit(self, into: &Path, mut items: Vec<Item>) -> Result<Vec<Item>, Problem> {
        fs::rename(self.dir.path(), into).map_err(|source| Problem::Write { path: into.to_path_buf(), source })?;
        // Renamed away: nothing left for the guard to remove.
        let _ = self.dir.keep();
        for item in &mut items {
            if let Node::File { host, .. } = &mut item.node {
                *host = into.join(&*host);
            }
        }
        Ok(items)
    }
}

/// Read the rest of `r` (so a digest covers the whole file).
pub(crate) fn drain(r: &mut impl Read) -> Result<(), Problem> {
    io::copy(r, &mut io::sink()).map(|_| ()).map_err(Problem::Format)
}

/// Unpack the tar archive at `archive` (plain, gzip, xz or zstd) into
/// `into` (which must not exist; its parent must), confined as the module
/// docs say. When `expected` is given, the bytes read must hash to it.
/// `label` names the archive in errors.
pub fn unpack_file(
    archive: &Path,
    label: &str,
    expected: Option<Sha256>,
    into: &Path,
    policy: &Policy,
) -> Result<Unpacked, UnpackError> {
    unpack_inner(archive, expected, into, policy).map_err(|l| l.into_error(label))
}

fn unpack_inner(archive: &Path, expected: Option<Sha256>, into: &Path, policy: &Policy) -> Result<Unpacked, Located> {
    let file = File::open(archive).map_err(|source| Problem::Read { path: archive.to_path_buf(), source })?;
    let scratch = Scratch::begin(into)?;
    let mut hashing = HashReader::new(file);
    let mut unpacker = Unpacker::new(scratch.path(), policy);
    walk(decoded(&mut hashing)?, &policy.limits, |e| unpacker.add(e))?;
    drain(&mut hashing)?;
    let (sha256, size, _) = hashing.finish();
    check_digest(expected, sha256)?;
    let items = scratch.commit(into, unpacker.into_items())?;
    Ok(Unpacked { dir: into.to_path_buf(), items, sha256, size })
}

/// The digest read must be the one expected, if any.
pub(crate) fn check_digest(expected: Option<Sha256>, actual: Sha256) -> Result<(), Problem> {
    match expected {
        Some(expected) if expected != actual => Err(Problem::Digest { expected, actual }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let ok = [
            ("plain", "a/b", Some("a/b")),
            ("dot prefix", "./usr/bin/x", Some("usr/bin/x")),
            ("dir slash", "bin/", Some("bin")),
            ("double slash", "a//b", Some("a/b")),
            ("inner dot", "a/./b", Some("a/b")),
            ("root", "./", None),
            ("bare dot", ".", None),
            ("dots in names", "..a/b..", Some("..a/b..")),
        ];
        for (name, input, want) in ok {
            assert_eq!(normalize(input.as_bytes()).expect(name).as_deref(), want, "{name}");
        }
        let long = "x".repeat(MAX_NAME + 1);
        let deep = vec!["d"; MAX_PATH / 2 + 2].join("/"); // 4097 bytes
        let bad: [(&str, &[u8], &str); 9] = [
            ("absolute", b"/etc/passwd", "absolute"),
            ("dotdot", b"../x", "'..'"),
            ("inner dotdot", b"a/../../x", "'..'"),
            ("newline", b"a\nb", "control"),
            ("nul", b"a\0b", "control"),
            ("not utf-8", b"a\xffb", "UTF-8"),
            ("empty", b"", "empty"),
            ("long component", long.as_bytes(), "longer than 255"),
            ("long path", deep.as_bytes(), "longer than 4095"),
        ];
        for (name, input, want) in bad {
            let err = normalize(input).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    #[test]
    fn parents_are_proper_prefixes() {
        assert_eq!(parents("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(parents("a").count(), 0);
    }

    #[test]
    fn codecs() {
        let cases: [(&str, &[u8], Option<Codec>); 5] = [
            ("gzip", &[0x1f, 0x8b, 8], Some(Codec::Gzip)),
            ("xz", &[0xfd, b'7', b'z', b'X', b'Z', 0], Some(Codec::Xz)),
            ("zstd", &[0x28, 0xb5, 0x2f, 0xfd], Some(Codec::Zstd)),
            ("plain", b"usr/\0\0\0", Some(Codec::Plain)),
            ("bzip2", b"BZh91AY", None),
        ];
        for (name, head, want) in cases {
            assert_eq!(sniff(head).ok(), want, "{name}");
        }
    }

    #[test]
    fn link_targets() {
        assert_eq!(link_target(Some(b"../lib/x")).expect("relative"), "../lib/x");
        assert_eq!(link_target(Some(b"/usr/bin/x")).expect("absolute"), "/usr/bin/x");
        for (name, bad) in [("empty", &b""[..]), ("newline", b"a\nb"), ("binary", b"\xff")] {
            assert!(link_target(Some(bad)).is_err(), "{name}");
        }
        assert!(link_target(None).is_err());
    }
}

//! `k8r flash IMAGE DEVICE`: write a golden image to a card, a disk or an
//! image file, bmap-aware, streamed, and verified by reading it back.
//!
//! 1. [`plan`]: find the input (a file or an HTTP(S) URL; plain, `.xz` or
//!    `.zst`, sniffed by magic bytes) and its block map (`--bmap`, or a
//!    `.bmap` beside the image as `bmaptool` looks for it), and decide
//!    whether the target may be written ([`k8r_core::hostdisk`]: never a
//!    mounted disk or the host's own, never one too small, a non-removable
//!    one only with `--force`). Nothing is written yet; the caller asks the
//!    user with the returned [`Plan`].
//! 2. [`flash`]: a reader thread decodes the input and hashes each mapped
//!    range against the bmap as it streams (unmapped bytes are skipped: a
//!    seek on a plain file, decoded and dropped otherwise); the calling
//!    thread writes the mapped ranges in 4 MiB aligned chunks. A range whose
//!    input does not match the bmap stops everything with an error.
//! 3. Verification overlaps the write: every [`VERIFY_BATCH`] bytes of
//!    complete ranges, the writer syncs (`fdatasync`), drops the cached
//!    pages of those ranges (`posix_fadvise(DONTNEED)`) and hands them to
//!    [`VERIFY_THREADS`] threads that read them back from the storage, not
//!    from memory, and compare their sha256 with the bmap's while the next
//!    batch is written. The last batch follows the final `fsync` and a drop
//!    of the whole target's cache (`BLKFLSBUF` on a block device). Without a
//!    bmap the whole image is one range, checked against the sha256 of the
//!    bytes streamed in.
//!
//! The block device is opened with `O_EXCL` (refused by the kernel while
//! anything on it is mounted), after the checks and before the first write.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context};
use k8r_config::Sha256;
use k8r_core::bmap::Bmap;
use k8r_core::compress::{self, Compression};
use k8r_core::disk::{Disk, FileDisk};
use k8r_core::hostdisk::{Assessment, DevNum, HostView};
use k8r_core::io::progress::{Counter, Progress, Reporter};
use serde::Serialize;
use sha2::Digest;

/// Bytes per write: large and aligned (ranges start on 4 KiB blocks), so a
/// card gets few, big requests.
pub const CHUNK: usize = 2 << 20;

/// Chunks in flight between the reader and the writer (memory: `(POOL + 2)
/// × CHUNK`, 8 MiB; with xz's decoder threads the whole stays under 64 MiB).
const POOL: usize = 2;

/// How much mapped data ahead of the reader a plain input file is asked to
/// read ahead (`POSIX_FADV_WILLNEED`), so the disk works while the reader
/// hashes.
const READAHEAD: u64 = 32 << 20;

/// xz decoder threads, at most. Each holds about three blocks (input,
/// output, dictionary: some 25 MiB with k8r's 8 MiB blocks), so this is
/// what keeps a flash under 64 MiB on a machine of any core count (with
/// every core, 8 threads took 215 MiB). Two threads decode 230 MiB/s of
/// image on this project's 2-core test host (`benches/upgrade.rs`, the
/// floor), more than an SD card takes.
const DECODE_THREADS: usize = 2;

/// Threads that read back and hash in the verification pass.
const VERIFY_THREADS: usize = 2;

/// Complete ranges written between two syncs that hand them to the
/// verification threads.
const VERIFY_BATCH: u64 = 64 << 20;

/// What to flash where.
#[derive(Debug, Clone, Default)]
pub struct FlashOptions {
    /// The image: a path or an `http://`/`https://` URL; `.img`, `.img.xz`, `.img.zst`.
    pub image: String,
    /// The block device or image file to write.
    pub target: PathBuf,
    /// The block map to use (path or URL) instead of looking beside the image.
    pub bmap: Option<String>,
    /// Write every byte of the image, ignoring any bmap.
    pub no_bmap: bool,
    /// Write a disk the kernel does not mark removable.
    pub force: bool,
}

/// Where the image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// A local file.
    File(PathBuf),
    /// An HTTP(S) URL.
    Url(String),
}

impl std::fmt::Display for ImageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageSource::File(p) => write!(f, "{}", p.display()),
            ImageSource::Url(u) => f.write_str(u),
        }
    }
}

/// What is being written to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// A block device, with what the host checks found.
    BlockDevice {
        /// The whole disk's kernel name.
        disk: String,
        /// Its size in bytes.
        size: u64,
        /// Whether it is removable.
        removable: bool,
    },
    /// An image file (created if missing; grown to the image size).
    File {
        /// Whether it existed before.
        existed: bool,
    },
}

/// The decisions made before any write: show it to the user, then [`flash`].
#[derive(Debug, Clone)]
pub struct Plan {
    /// The input.
    pub source: ImageSource,
    /// The block map, and where it was found.
    pub bmap: Option<(String, Bmap)>,
    /// The target's path.
    pub target: PathBuf,
    /// The target's kind.
    pub kind: TargetKind,
    /// The image's size, when known before streaming (from the bmap, the
    /// file, or an xz index).
    pub image_size: Option<u64>,
}

impl Plan {
    /// Bytes that will be written, when known.
    pub fn bytes_to_write(&self) -> Option<u64> {
        match &self.bmap {
            Some((_, b)) => Some(b.mapped_bytes()),
            None => self.image_size,
        }
    }
}

/// What [`flash`] did.
#[derive(Debug, Clone, Serialize)]
pub struct FlashReport {
    /// The input.
    pub image: String,
    /// The target.
    pub target: PathBuf,
    /// The block map used, if any.
    pub bmap: Option<String>,
    /// Compression of the input.
    pub compression: Compression,
    /// The image's size in bytes.
    pub image_size: u64,
    /// Bytes written (the mapped bytes with a bmap).
    pub bytes_written: u64,
    /// Bytes read back and compared.
    pub bytes_verified: u64,
    /// Seconds spent reading, writing and syncing.
    pub write_seconds: f64,
    /// Seconds the verification took after the write ended (most ranges
    /// are verified while later ones are written).
    pub verify_seconds: f64,
}

/// Decide what to do; refuse unsafe targets. Writes nothing.
pub fn plan(opts: &FlashOptions) -> anyhow::Result<Plan> {
    let source = if opts.image.starts_with("http://") || opts.image.starts_with("https://") {
        ImageSource::Url(opts.image.clone())
    } else {
        let p = PathBuf::from(&opts.image);
        anyhow::ensure!(p.is_file(), "{} is not an image file", p.display());
        ImageSource::File(p)
    };
    // 1. The block map.
    let bmap = if opts.no_bmap {
        None
    } else if let Some(b) = &opts.bmap {
        Some((b.clone(), load_bmap(b)?.with_context(|| format!("the bmap {b} does not exist"))?))
    } else {
        find_bmap(&opts.image)?
    };
    if bmap.is_none() && !opts.no_bmap {
        tracing::warn!("no bmap beside {}; writing every byte of the image", opts.image);
    }
    // 2. The image's size, and that the bmap is for it.
    let mut image_size = bmap.as_ref().map(|(_, b)| b.image_size);
    if let ImageSource::File(p) = &source {
        let known = local_image_size(p)?;
        if let (Some(b), Some(k)) = (image_size, known) {
            anyhow::ensure!(
                b == k,
                "the bmap {} is for a {b}-byte image, but {} holds {k} bytes",
                bmap.as_ref().map(|(w, _)| w.as_str()).unwrap_or_default(),
                p.display()
            );
        }
        image_size = image_size.or(known);
    }
    // 3. The target.
    let kind = check_target(&opts.target, &source, image_size.unwrap_or(0), opts.force)?;
    Ok(Plan { source, bmap, target: opts.target.clone(), kind, image_size })
}

/// The decompressed size of a local image, when it can be known without
/// decoding: a plain file's length, an xz file's index.
fn local_image_size(path: &Path) -> anyhow::Result<Option<u64>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut head = [0u8; 8];
    let n = k8r_core::io::read_full(&mut &file, &mut head).with_context(|| format!("reading {}", path.display()))?;
    Ok(match Compression::sniff(&head[..n]) {
        Compression::None => Some(file.metadata().with_context(|| format!("reading {}", path.display()))?.len()),
        Compression::Xz => compress::xz_info(&file)
            .with_context(|| format!("reading the xz index of {}", path.display()))?
            .map(|i| i.uncompressed),
        Compression::Zstd => None,
    })
}

/// Where `bmaptool` looks for a bmap: `X.img.xz` → `X.img.bmap`, `X.bmap`,
/// `X.img.xz.bmap`.
pub fn bmap_candidates(image: &str) -> Vec<String> {
    let plain = [".xz", ".zst", ".gz", ".bz2"].iter().find_map(|s| image.strip_suffix(s)).unwrap_or(image);
    let mut out = vec![format!("{plain}.bmap")];
    if let Some(stem) = plain.strip_suffix(".img") {
        out.push(format!("{stem}.bmap"));
    }
    let beside = format!("{image}.bmap");
    if !out.contains(&beside) {
        out.push(beside);
    }
    out
}

fn find_bmap(image: &str) -> anyhow::Result<Option<(String, Bmap)>> {
    for c in bmap_candidates(image) {
        if let Some(b) = load_bmap(&c)? {
            tracing::info!("using the block map {c}");
            return Ok(Some((c, b)));
        }
    }
    Ok(None)
}

/// Read a bmap from a path or URL; `None` when it does not exist.
fn load_bmap(at: &str) -> anyhow::Result<Option<Bmap>> {
    let bytes = if at.starts_with("http://") || at.starts_with("https://") {
        let client = k8r_core::http::Client::new(Default::default());
        match client.get_bytes(at, k8r_core::bmap::MAX_BMAP_BYTES as u64) {
            Ok(b) => b,
            Err(k8r_core::http::HttpError::Status { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("fetching the bmap {at}")),
        }
    } else {
        match std::fs::read(at) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading the bmap {at}")),
        }
    };
    Bmap::parse(&bytes).map(Some).with_context(|| format!("reading the bmap {at}"))
}

/// The checks on the target; an error lists every refusal.
fn check_target(target: &Path, source: &ImageSource, need: u64, force: bool) -> anyhow::Result<TargetKind> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = match std::fs::metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(TargetKind::File { existed: false }),
        Err(e) => return Err(e).with_context(|| format!("reading metadata of {}", target.display())),
    };
    if let ImageSource::File(src) = source {
        let s = std::fs::metadata(src).with_context(|| format!("reading metadata of {}", src.display()))?;
        anyhow::ensure!((s.dev(), s.ino()) != (meta.dev(), meta.ino()), "{} is the image itself", target.display());
    }
    if meta.file_type().is_file() {
        return Ok(TargetKind::File { existed: true });
    }
    anyhow::ensure!(
        meta.file_type().is_block_device(),
        "{} is neither a block device nor an image file",
        target.display()
    );
    let a: Assessment = HostView::live()?
        .assess(DevNum::of_node(target)?)
        .with_context(|| format!("checking {} before writing it", target.display()))?;
    let refusals = a.refusals(need, force);
    if !refusals.is_empty() {
        let list: Vec<String> = refusals.iter().map(ToString::to_string).collect();
        bail!("refusing to write {}: {}", target.display(), list.join("; "));
    }
    Ok(TargetKind::BlockDevice { disk: a.disk, size: a.size, removable: a.removable })
}

/// The input: a plain local file seeks over unmapped bytes; anything else
/// is a stream decoded and dropped there.
enum Input {
    Seekable(File),
    Stream(Box<dyn Read + Send>),
}

impl Input {
    fn open(source: &ImageSource) -> anyhow::Result<(Compression, Input)> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(DECODE_THREADS) as u32);
        match source {
            ImageSource::File(p) => {
                let mut f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
                let mut head = [0u8; 8];
                let n =
                    k8r_core::io::read_full(&mut f, &mut head).with_context(|| format!("reading {}", p.display()))?;
                f.seek(SeekFrom::Start(0)).with_context(|| format!("seeking in {}", p.display()))?;
                match Compression::sniff(&head[..n]) {
                    Compression::None => Ok((Compression::None, Input::Seekable(f))),
                    c => Ok((c, Input::Stream(compress::decoder(c, f, threads)?))),
                }
            }
            ImageSource::Url(u) => {
                let d =
                    k8r_core::http::Client::new(Default::default()).open(u).with_context(|| format!("fetching {u}"))?;
                let (c, r) = compress::auto_decoder(d, threads).with_context(|| format!("reading {u}"))?;
                Ok((c, Input::Stream(r)))
            }
        }
    }

    fn skip(&mut self, n: u64, scratch: &mut [u8]) -> io::Result<()> {
        match self {
            Input::Seekable(f) => f.seek(SeekFrom::Current(n as i64)).map(drop),
            Input::Stream(r) => {
                let mut left = n;
                while left > 0 {
                    let k = (left as usize).min(scratch.len());
                    let got = k8r_core::io::read_full(r, &mut scratch[..k])?;
                    if got < k {
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the image ends early"));
                    }
                    left -= k as u64;
                }
                Ok(())
            }
        }
    }

    /// Ask the kernel to start reading `len` bytes at `offset` of a plain
    /// file (a hint: errors are ignored; streams have nothing to prefetch).
    fn will_need(&self, offset: u64, len: u64) {
        if let Input::Seekable(f) = self {
            let _ = nix::fcntl::posix_fadvise(
                f,
                offset as libc::off_t,
                len as libc::off_t,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
            );
        }
    }

    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Seekable(f) => k8r_core::io::read_full(f, buf),
            Input::Stream(r) => k8r_core::io::read_full(r, buf),
        }
    }
}

/// A byte range the target must hold, with its digest.
#[derive(Debug, Clone, Copy)]
struct Expect {
    offset: u64,
    len: u64,
    sha256: Sha256,
}

/// Reader → writer.
enum Msg {
    Data {
        offset: u64,
        buf: Vec<u8>,
        len: usize,
    },
    /// A range is complete: all its data was sent and matched the bmap.
    Range(Expect),
    Done {
        image_size: u64,
    },
}

/// Write and verify. The plan's checks were made by [`plan`]; the block
/// device's `O_EXCL` open happens here.
pub fn flash(plan: &Plan) -> anyhow::Result<FlashReport> {
    let (compression, input) = Input::open(&plan.source)?;
    let mut target = Target::open(plan)?;
    let name = plan.target.display().to_string();
    // The verification threads read through their own handle.
    let reader = target.disk.file().try_clone().with_context(|| format!("opening {name} for the read-back"))?;
    let checked = Counter::new(0);
    let (verify_tx, verify_rx) = mpsc::channel::<Expect>();
    let verify_rx = std::sync::Mutex::new(verify_rx);
    let started = Instant::now();
    let bar = Reporter::new(format!("writing {name}"), plan.bytes_to_write().unwrap_or(0));
    std::thread::scope(|s| {
        let workers: Vec<_> =
            (0..VERIFY_THREADS).map(|_| s.spawn(|| verify_some(&reader, &name, &verify_rx, &checked))).collect();
        // 1. Stream in, write out; complete batches go to the verifiers.
        let written = stream(input, plan, &mut target, &bar, &verify_tx);
        bar.finish();
        let result = written.with_context(|| format!("writing {} to {name}", plan.source)).and_then(
            |(image_size, last, written)| {
                target.finish(image_size)?;
                let write_seconds = started.elapsed().as_secs_f64();
                tracing::info!("wrote {written} bytes to {name} in {write_seconds:.1} s; verifying the rest");
                // 2. The last ranges, read back from the storage.
                target.disk.drop_cache()?;
                for e in last {
                    let _ = verify_tx.send(e);
                }
                Ok((image_size, written, write_seconds))
            },
        );
        drop(verify_tx);
        let verified = workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("a verify thread panicked"))?)
            .collect::<anyhow::Result<Vec<()>>>();
        let (image_size, bytes_written, write_seconds) = result?;
        verified?;
        Ok(FlashReport {
            image: plan.source.to_string(),
            target: plan.target.clone(),
            bmap: plan.bmap.as_ref().map(|(w, _)| w.clone()),
            compression,
            image_size,
            bytes_written,
            bytes_verified: checked.done(),
            write_seconds,
            verify_seconds: started.elapsed().as_secs_f64() - write_seconds,
        })
    })
}

/// The target, opened for writing.
struct Target {
    disk: FileDisk,
    /// An image file grows as needed; a device never does.
    grows: bool,
}

impl Target {
    fn open(plan: &Plan) -> anyhow::Result<Target> {
        let path = &plan.target;
        match plan.kind {
            TargetKind::BlockDevice { .. } => Ok(Target { disk: FileDisk::open_exclusive(path)?, grows: false }),
            TargetKind::File { existed } => {
                if !existed {
                    FileDisk::create(path, 0)?;
                }
                let mut disk = FileDisk::open_rw(path)?;
                if let Some(size) = plan.image_size.filter(|s| *s > disk.size()) {
                    disk.file().set_len(size).with_context(|| format!("growing {} to {size} bytes", path.display()))?;
                    disk.refresh_size()?;
                }
                Ok(Target { disk, grows: true })
            }
        }
    }

    /// Make the ranges in `batch` durable and drop their cached pages, so
    /// reading them back reads the storage.
    fn settle(&mut self, batch: &[Expect]) -> anyhow::Result<()> {
        self.disk.file().sync_data().with_context(|| format!("syncing {}", self.disk.name()))?;
        for e in batch {
            nix::fcntl::posix_fadvise(
                self.disk.file(),
                e.offset as libc::off_t,
                e.len as libc::off_t,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            )
            .with_context(|| format!("dropping the cached pages of {}", self.disk.name()))?;
        }
        Ok(())
    }

    fn write(&mut self, buf: &[u8], offset: u64) -> anyhow::Result<()> {
        let end = offset + buf.len() as u64;
        if self.grows && end > self.disk.size() {
            self.disk.file().set_len(end).with_context(|| format!("growing {}", self.disk.name()))?;
            self.disk.refresh_size()?;
        }
        self.disk.write_all_at(buf, offset).with_context(|| format!("writing {} bytes at {offset}", buf.len()))
    }

    /// An image file ends where the image does (holes included); then sync.
    fn finish(&mut self, image_size: u64) -> anyhow::Result<()> {
        if self.grows && self.disk.size() < image_size {
            self.disk.file().set_len(image_size).with_context(|| format!("sizing {}", self.disk.name()))?;
            self.disk.refresh_size()?;
        }
        self.disk.sync().with_context(|| format!("syncing {}", self.disk.name()))
    }
}

/// Run the reader thread and write what it sends; every [`VERIFY_BATCH`]
/// bytes of complete ranges are settled and sent to `verify`. Returns the
/// image size, the ranges not sent yet, and the bytes written.
fn stream(
    input: Input,
    plan: &Plan,
    target: &mut Target,
    progress: &dyn Progress,
    verify: &mpsc::Sender<Expect>,
) -> anyhow::Result<(u64, Vec<Expect>, u64)> {
    let (data_tx, data_rx) = mpsc::sync_channel::<anyhow::Result<Msg>>(POOL);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let bmap = plan.bmap.as_ref().map(|(_, b)| b);
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let r = match bmap {
                Some(b) => read_mapped(input, b, &data_tx, &free_rx),
                None => read_all(input, &data_tx, &free_rx),
            };
            if let Err(e) = r {
                let _ = data_tx.send(Err(e));
            }
        });
        let mut written = 0u64;
        let (mut batch, mut batch_bytes) = (Vec::new(), 0u64);
        let result = (|| loop {
            match data_rx.recv() {
                Ok(Ok(Msg::Data { offset, buf, len })) => {
                    target.write(&buf[..len], offset)?;
                    written += len as u64;
                    progress.inc(len as u64);
                    let _ = free_tx.send(buf);
                }
                Ok(Ok(Msg::Range(e))) => {
                    batch_bytes += e.len;
                    batch.push(e);
                    if batch_bytes >= VERIFY_BATCH {
                        target.settle(&batch)?;
                        for e in batch.drain(..) {
                            verify.send(e).map_err(|_| anyhow::anyhow!("the verification stopped"))?;
                        }
                        batch_bytes = 0;
                    }
                }
                Ok(Ok(Msg::Done { image_size })) => return Ok((image_size, std::mem::take(&mut batch), written)),
                Ok(Err(e)) => return Err(e),
                Err(_) => bail!("the reader stopped without a result"),
            }
        })();
        // Unblock the reader if the writer stopped first.
        drop(data_rx);
        drop(free_tx);
        reader.join().map_err(|_| anyhow::anyhow!("the reader thread panicked"))?;
        result
    })
}

/// A buffer from the pool: a returned one, or a new one while fewer than
/// [`POOL`] + 2 exist (one in the reader, one in the writer).
fn take_buffer(free: &mpsc::Receiver<Vec<u8>>, made: &mut usize) -> anyhow::Result<Vec<u8>> {
    if let Ok(b) = free.try_recv() {
        return Ok(b);
    }
    if *made < POOL + 2 {
        *made += 1;
        return Ok(vec![0u8; CHUNK]);
    }
    free.recv().map_err(|_| anyhow::anyhow!("the writer stopped"))
}

fn send(tx: &mpsc::SyncSender<anyhow::Result<Msg>>, m: Msg) -> anyhow::Result<()> {
    tx.send(Ok(m)).map_err(|_| anyhow::anyhow!("the writer stopped"))
}

/// Stream the mapped ranges of `bmap`, each hashed against the bmap.
fn read_mapped(
    mut input: Input,
    bmap: &Bmap,
    tx: &mpsc::SyncSender<anyhow::Result<Msg>>,
    free: &mpsc::Receiver<Vec<u8>>,
) -> anyhow::Result<()> {
    let bs = bmap.block_size;
    let mut scratch = vec![0u8; 1 << 20];
    let mut made = 0;
    let mut pos = 0u64;
    // Ranges up to this index have been announced with will_need.
    let (mut announced, mut ahead) = (0usize, 0u64);
    for (i, r) in bmap.ranges.iter().enumerate() {
        let (start, len) = (r.offset(bs), r.len(bs, bmap.image_size));
        ahead = ahead.saturating_sub(len);
        while announced < bmap.ranges.len() && (announced <= i || ahead < READAHEAD) {
            let a = &bmap.ranges[announced];
            let alen = a.len(bs, bmap.image_size);
            input.will_need(a.offset(bs), alen);
            ahead += alen;
            announced += 1;
        }
        input.skip(start - pos, &mut scratch).with_context(|| format!("reading the image up to byte {start}"))?;
        let mut hash = sha2::Sha256::new();
        let mut done = 0u64;
        while done < len {
            let mut buf = take_buffer(free, &mut made)?;
            let n = ((len - done) as usize).min(CHUNK);
            let got = input
                .read_full(&mut buf[..n])
                .with_context(|| format!("reading the image at byte {}", start + done))?;
            if got < n {
                bail!(
                    "the image ends at byte {}, inside mapped blocks {}-{}: it is truncated or the bmap is for another image",
                    start + done + got as u64,
                    r.first,
                    r.last
                );
            }
            hash.update(&buf[..n]);
            send(tx, Msg::Data { offset: start + done, buf, len: n })?;
            done += n as u64;
        }
        let got = Sha256(hash.finalize().into());
        if got != r.sha256 {
            bail!(
                "blocks {}-{} of the image hash to {got}, the bmap says {}: the image is corrupt or the bmap is for \
                 another image",
                r.first,
                r.last,
                r.sha256
            );
        }
        send(tx, Msg::Range(Expect { offset: start, len, sha256: got }))?;
        pos = start + len;
    }
    send(tx, Msg::Done { image_size: bmap.image_size })
}

/// Stream every byte (no bmap); the digest of everything is what the
/// read-back must match.
fn read_all(
    mut input: Input,
    tx: &mpsc::SyncSender<anyhow::Result<Msg>>,
    free: &mpsc::Receiver<Vec<u8>>,
) -> anyhow::Result<()> {
    let mut made = 0;
    let mut hash = sha2::Sha256::new();
    let mut pos = 0u64;
    loop {
        let mut buf = take_buffer(free, &mut made)?;
        let n = input.read_full(&mut buf).with_context(|| format!("reading the image at byte {pos}"))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        send(tx, Msg::Data { offset: pos, buf, len: n })?;
        pos += n as u64;
    }
    send(tx, Msg::Range(Expect { offset: 0, len: pos, sha256: Sha256(hash.finalize().into()) }))?;
    send(tx, Msg::Done { image_size: pos })
}

/// Read ranges back from `disk` (named `name`) as they arrive on `next`
/// and compare them with what was written, until the channel closes.
fn verify_some(
    disk: &File,
    name: &str,
    next: &std::sync::Mutex<mpsc::Receiver<Expect>>,
    checked: &dyn Progress,
) -> anyhow::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let e = match next.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => bail!("a verify thread panicked"),
        };
        let Ok(e) = e else { return Ok(()) };
        // Start the whole range's reads at once (large requests, not the
        // default 128 KiB read-ahead); a hint, so errors are ignored.
        let _ = nix::fcntl::posix_fadvise(
            disk,
            e.offset as libc::off_t,
            e.len as libc::off_t,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        );
        let mut hash = sha2::Sha256::new();
        let mut done = 0u64;
        while done < e.len {
            let n = ((e.len - done) as usize).min(CHUNK);
            disk.read_exact_at(&mut buf[..n], e.offset + done)
                .with_context(|| format!("reading {name} back at byte {}", e.offset + done))?;
            hash.update(&buf[..n]);
            checked.inc(n as u64);
            done += n as u64;
        }
        let got = Sha256(hash.finalize().into());
        if got != e.sha256 {
            bail!(
                "verification failed: bytes {}..{} of {name} read back as {got}, but {} was written",
                e.offset,
                e.offset + e.len,
                e.sha256
            );
        }
    }
}

/// Human-readable size (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmap_candidates_follow_bmaptool() {
        assert_eq!(bmap_candidates("a/x.img.xz"), ["a/x.img.bmap", "a/x.bmap", "a/x.img.xz.bmap"]);
        assert_eq!(bmap_candidates("x.img"), ["x.img.bmap", "x.bmap"]);
        assert_eq!(bmap_candidates("http://h/x.raw.zst"), ["http://h/x.raw.bmap", "http://h/x.raw.zst.bmap"]);
    }

    /// The read-back names the range and both digests when the storage
    /// does not hold what was written, and stops at the first bad range.
    #[test]
    fn read_back_mismatch_is_an_error() {
        let mut f = tempfile::tempfile().expect("temp file");
        std::io::Write::write_all(&mut f, &[7u8; 8192]).expect("write");
        let good = Sha256(sha2::Sha256::digest([7u8; 4096]).into());
        let (tx, rx) = mpsc::channel();
        tx.send(Expect { offset: 0, len: 4096, sha256: good }).expect("send");
        tx.send(Expect { offset: 4096, len: 4096, sha256: Sha256([0; 32]) }).expect("send");
        drop(tx);
        let checked = Counter::new(0);
        let err = verify_some(&f, "card", &std::sync::Mutex::new(rx), &checked).expect_err("a bad range");
        let msg = format!("{err:#}");
        assert!(msg.contains("bytes 4096..8192 of card read back as"), "{msg}");
        assert_eq!(checked.done(), 8192);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}

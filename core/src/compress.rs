//! Compressed streams: multi-block xz (so decoding uses every core) and
//! zstd, chosen by magic bytes when reading.

use std::io::{self, BufReader, Read, Write};

use serde::{Deserialize, Serialize};

/// A compression format k8r reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// No compression.
    None,
    /// xz, written as independent blocks so it decodes on all cores. The
    /// default, compatible with k8r's `image.img.xz`.
    #[default]
    Xz,
    /// zstd (faster to decode; `.zst`).
    Zstd,
}

impl Compression {
    /// The file-name suffix (`".xz"`, `".zst"`, `""`).
    pub const fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
        }
    }

    /// Recognise a format from the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Memory the xz decoder may use for threading before it falls back to one
/// thread. Blocks of 32 MiB need about 2 × 32 MiB per thread.
const XZ_THREADING_MEMLIMIT: u64 = 256 << 20;

/// Memory an xz stream may ask for at all (its dictionary, on one thread);
/// more is refused before any is allocated. A stream declares its own
/// dictionary size, up to 1.5 GiB, and decoding fills it: without a bound a
/// hostile `image.img.xz` could exhaust a node's memory before its digest
/// is ever compared. 256 MiB is four times what `xz -9` needs (64 MiB).
pub const XZ_MEMLIMIT: u64 = 256 << 20;

/// The largest zstd window a stream may ask for: 2^27 = 128 MiB (what
/// `zstd --long` uses by default). A frame declares its window size, up to
/// 2 GiB with `--long=31`, and the decoder allocates it before any byte is
/// checked; k8r's encoder stays within this ([`Encoder::new`]).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// A decoder for `format` over `r` using up to `threads` threads (xz only;
/// zstd decodes faster than a disk on one core).
pub fn decoder<'a>(
    format: Compression,
    r: impl Read + Send + 'a,
    threads: u32,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match format {
        Compression::None => Box::new(r),
        Compression::Xz => {
            // memlimit_threading must be set: a zero limit silently decodes on
            // one thread; memlimit_stop zero fails at once (liblzma pitfall).
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(threads.max(1))
                .memlimit_threading(XZ_THREADING_MEMLIMIT)
                .memlimit_stop(XZ_MEMLIMIT)
                .decoder()
                .map_err(io::Error::other)?;
            Box::new(liblzma::read::XzDecoder::new_stream(BufReader::with_capacity(1 << 20, r), stream))
        }
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(r)?;
            // A frame declares its window and the decoder allocates it: cap
            // it, as XZ_MEMLIMIT caps xz dictionaries.
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
            Box::new(d)
        }
    })
}

/// Sniff the format of `r` and decode it; plain input passes through.
pub fn auto_decoder<'a>(
    r: impl Read + Send + 'a,
    threads: u32,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let head = io::BufRead::fill_buf(&mut r)?;
    let format = Compression::sniff(head);
    Ok((format, decoder(format, r, threads)?))
}

/// Settings for writing a compressed artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    /// The format.
    pub format: Compression,
    /// Compression level: xz preset 0–9, zstd level 1–19.
    pub level: u32,
    /// Worker threads.
    pub threads: u32,
    /// xz block size in bytes: each block decodes independently, which is
    /// what lets the node decode on several cores.
    pub block_size: u64,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            format: Compression::Xz,
            level: 6,
            threads: std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2),
            block_size: 8 << 20,
        }
    }
}

/// A compressing writer; call [`Encoder::finish`] to flush the trailer.
pub enum Encoder<W: Write> {
    /// Plain passthrough.
    None(W),
    /// xz (multi-threaded, multi-block).
    Xz(liblzma::write::XzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::None(_) => "Encoder::None",
            Encoder::Xz(_) => "Encoder::Xz",
            Encoder::Zstd(_) => "Encoder::Zstd",
        })
    }
}

impl<W: Write> Encoder<W> {
    /// Start compressing into `w`.
    pub fn new(w: W, opts: EncodeOptions) -> io::Result<Self> {
        Ok(match opts.format {
            Compression::None => Encoder::None(w),
            Compression::Xz => {
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(opts.threads.max(1))
                    .preset(opts.level.min(9))
                    .block_size(opts.block_size)
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(io::Error::other)?;
                Encoder::Xz(liblzma::write::XzEncoder::new_stream(w, stream))
            }
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, opts.level.clamp(1, 19) as i32)?;
                e.long_distance_matching(true)?;
                e.window_log(ZSTD_WINDOW_LOG_MAX)?;
                e.multithread(opts.threads.max(1))?;
                Encoder::Zstd(e)
            }
        })
    }

    /// Write the trailer and return the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// What the index of an xz file says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XzInfo {
    /// Total decompressed size of all streams.
    pub uncompressed: u64,
    /// Number of blocks (1 means the file decodes on one core only).
    pub blocks: u64,
    /// Number of concatenated streams.
    pub streams: u64,
}

/// Upper bound on records read from xz indexes (a 1 TiB image in 1 MiB blocks).
const XZ_MAX_RECORDS: u64 = 1 << 20;

/// Read the decompressed size and block count of an xz file from its
/// index(es) at the end, without decoding. Returns `None` when the file is
/// not xz. Multi-stream files and stream padding are handled.
pub fn xz_info(file: &std::fs::File) -> io::Result<Option<XzInfo>> {
    use std::os::unix::fs::FileExt;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("xz index: {what}"));
    let len = file.metadata()?.len();
    let mut head = [0u8; 6];
    if len < 32 || file.read_exact_at(&mut head, 0).is_err() || Compression::sniff(&head) != Compression::Xz {
        return Ok(None);
    }
    let mut info = XzInfo { uncompressed: 0, blocks: 0, streams: 0 };
    let mut end = len;
    while end > 0 {
        // Stream padding: multiples of four zero bytes.
        let mut word = [0u8; 4];
        let word_at = end.checked_sub(4).ok_or_else(|| bad("truncated stream"))?;
        file.read_exact_at(&mut word, word_at)?;
        if word == [0; 4] {
            end -= 4;
            continue;
        }
        if end < 24 {
            return Err(bad("truncated stream"));
        }
        let mut footer = [0u8; 12];
        file.read_exact_at(&mut footer, end - 12)?;
        if &footer[10..] != b"YZ" {
            return Err(bad("no stream footer magic"));
        }
        let index_size = (u64::from(u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]])) + 1) * 4;
        let index_start = (end - 12).checked_sub(index_size).ok_or_else(|| bad("index larger than the file"))?;
        if index_size > (XZ_MAX_RECORDS * 20).max(1 << 16) {
            return Err(bad("index absurdly large"));
        }
        let mut index = vec![0u8; index_size as usize];
        file.read_exact_at(&mut index, index_start)?;
        let (records, blocks_size) = parse_xz_index(&index, &mut info).map_err(|e| bad(&e))?;
        info.blocks += records;
        info.streams += 1;
        end = index_start.checked_sub(blocks_size + 12).ok_or_else(|| bad("blocks larger than the file"))?;
        if info.streams > XZ_MAX_RECORDS {
            return Err(bad("too many streams"));
        }
    }
    Ok(Some(info))
}

/// Parse one xz index; adds uncompressed sizes to `info`, returns (records,
/// total padded size of the stream's blocks).
fn parse_xz_index(index: &[u8], info: &mut XzInfo) -> Result<(u64, u64), String> {
    fn vli(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
        let mut v = 0u64;
        for i in 0..9 {
            let b = *buf.get(*pos).ok_or("truncated number")?;
            *pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("number too long".into())
    }
    if index.first() != Some(&0) {
        return Err("no index indicator".into());
    }
    let mut pos = 1;
    let records = vli(index, &mut pos)?;
    if records > XZ_MAX_RECORDS {
        return Err(format!("{records} records"));
    }
    let mut blocks_size = 0u64;
    for _ in 0..records {
        let unpadded = vli(index, &mut pos)?;
        let uncompressed = vli(index, &mut pos)?;
        blocks_size = blocks_size.checked_add(unpadded.div_ceil(4) * 4).ok_or("sizes overflow")?;
        info.uncompressed = info.uncompressed.checked_add(uncompressed).ok_or("sizes overflow")?;
    }
    Ok((records, blocks_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(format: Compression) {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let opts = EncodeOptions { format, level: 1, threads: 2, block_size: 1 << 20 };
        let mut enc = Encoder::new(Vec::new(), opts).expect("encoder");
        enc.write_all(&data).expect("write");
        let packed = enc.finish().expect("finish");
        assert_eq!(Compression::sniff(&packed), format);
        let (sniffed, mut dec) = auto_decoder(&packed[..], 2).expect("decoder");
        assert_eq!(sniffed, format);
        let mut out = Vec::new();
        dec.read_to_end(&mut out).expect("decode");
        assert!(out == data, "{format:?} round trip differs");
    }

    #[test]
    fn xz_round_trips() {
        round_trip(Compression::Xz);
    }

    #[test]
    fn zstd_round_trips() {
        round_trip(Compression::Zstd);
    }

    #[test]
    fn plain_passes_through() {
        round_trip(Compression::None);
    }

    #[test]
    fn xz_index_gives_size_and_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.xz");
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 13) as u8).collect();
        let opts = EncodeOptions { format: Compression::Xz, level: 0, threads: 2, block_size: 1 << 20 };
        let mut enc = Encoder::new(Vec::new(), opts).expect("encoder");
        enc.write_all(&data).expect("write");
        let mut packed = enc.finish().expect("finish");
        // A second stream after padding, as `cat a.xz b.xz` makes.
        let second = packed.clone();
        packed.extend_from_slice(&[0; 8]);
        packed.extend_from_slice(&second);
        std::fs::write(&path, &packed).expect("write");
        let info = xz_info(&std::fs::File::open(&path).expect("open")).expect("parse").expect("is xz");
        assert_eq!(info, XzInfo { uncompressed: 10_000_000, blocks: 10, streams: 2 });
        std::fs::write(&path, b"not xz at all, just some text for the test").expect("write");
        assert_eq!(xz_info(&std::fs::File::open(&path).expect("open")).expect("parse"), None);
        let mut cut = second.clone();
        cut.truncate(cut.len() - 3);
        std::fs::write(&path, &cut).expect("write");
        assert!(xz_info(&std::fs::File::open(&path).expect("open")).is_err(), "truncated file");
    }

    /// An xz stream whose block asks for a 1.5 GiB dictionary (the
    /// LZMA2 property byte of its first block raised, the header CRC fixed)
    /// is refused by the memory limit; the original decodes.
    #[test]
    fn an_xz_dictionary_past_the_limit_is_refused() {
        let data = b"hello k8r\n".repeat(100);
        let opts = EncodeOptions { format: Compression::Xz, level: 6, threads: 1, block_size: 1 << 20 };
        let mut enc = Encoder::new(Vec::new(), opts).expect("encoder");
        enc.write_all(&data).expect("write");
        let good = enc.finish().expect("finish");
        // Stream header (12 bytes), then the block header: size, flags,
        // optional sizes (varints), filter id 0x21, props size 1, props.
        let mut bad = good.clone();
        let (start, len) = (12, (usize::from(good[12]) + 1) * 4);
        let mut at = start + 2;
        for present in [0x40, 0x80] {
            if good[start + 1] & present != 0 {
                while bad[at] & 0x80 != 0 {
                    at += 1;
                }
                at += 1;
            }
        }
        assert_eq!(&bad[at..at + 2], &[0x21, 0x01], "an LZMA2 filter with one property byte");
        bad[at + 2] = 0x25; // 3 × 2^29 bytes
        let crc = crc32fast::hash(&bad[start..start + len - 4]).to_le_bytes();
        bad[start + len - 4..start + len].copy_from_slice(&crc);
        let decode = |bytes: &[u8]| -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            decoder(Compression::Xz, bytes, 2)?.read_to_end(&mut out)?;
            Ok(out)
        };
        assert_eq!(decode(&good).expect("the original decodes"), data);
        let err = decode(&bad).map(|v| v.len()).expect_err("1.5 GiB dictionary");
        assert!(err.to_string().to_lowercase().contains("memory"), "{err}");
    }

    /// Found while writing the `xz_index` fuzz target: an index whose sizes
    /// put the previous stream's end 2 bytes into the file made the padding
    /// check subtract past zero (a panic in debug builds).
    #[test]
    fn an_xz_index_pointing_before_the_file_start_is_an_error() {
        let mut bytes = vec![0u8; 34];
        bytes[..6].copy_from_slice(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]);
        // Index at 14..22 (backward size 1 → 8 bytes): indicator, 0 records.
        // Footer at 22..34: CRC32, backward size, flags, magic.
        bytes[26..30].copy_from_slice(&1u32.to_le_bytes());
        bytes[32..34].copy_from_slice(b"YZ");
        let mut f = tempfile::tempfile().expect("tempfile");
        f.write_all(&bytes).expect("write");
        let err = xz_info(&f).expect_err("a stream cannot end 2 bytes into the file");
        assert!(err.to_string().contains("xz index: truncated stream"), "{err}");
    }

    /// The window a zstd frame declares (RFC 8878 §3.1.1.1.2): the
    /// Window_Descriptor, or the content size for a single-segment frame.
    fn zstd_window(frame: &[u8]) -> u64 {
        assert_eq!(&frame[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        let fhd = frame[4];
        assert_eq!(fhd & 0x20, 0, "a streamed frame has a window descriptor");
        let wd = frame[5];
        let base = 1u64 << (10 + (wd >> 3));
        base + base / 8 * u64::from(wd & 7)
    }

    #[test]
    fn zstd_windows_past_128_mib_are_refused_and_ours_stay_within() {
        let data = b"k8r zstd window test\n".repeat(50_000);
        // k8r's encoder (level 19, long mode, threads) declares at most 2^27.
        let opts = EncodeOptions { format: Compression::Zstd, level: 19, threads: 2, block_size: 0 };
        let mut enc = Encoder::new(Vec::new(), opts).expect("encoder");
        enc.write_all(&data).expect("write");
        let ours = enc.finish().expect("finish");
        assert!(zstd_window(&ours) <= 1 << ZSTD_WINDOW_LOG_MAX, "window {}", zstd_window(&ours));
        let decode = |bytes: &[u8]| -> io::Result<Vec<u8>> {
            let mut out = Vec::new();
            decoder(Compression::Zstd, bytes, 1)?.read_to_end(&mut out)?;
            Ok(out)
        };
        assert_eq!(decode(&ours).expect("ours decodes"), data);
        // A stream made with --long=28 asks for a 256 MiB window: refused
        // before the window is allocated; 2^27 is still fine.
        for (log, ok) in [(27u32, true), (28, false), (31, false)] {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
            e.long_distance_matching(true).expect("ldm");
            e.window_log(log).expect("window");
            e.write_all(&data).expect("write");
            let packed = e.finish().expect("finish");
            assert_eq!(zstd_window(&packed), 1 << log);
            match decode(&packed) {
                Ok(out) => assert!(ok && out == data, "window 2^{log} decoded"),
                Err(e) => assert!(!ok, "window 2^{log} refused: {e}"),
            }
        }
    }

    #[test]
    fn corrupt_xz_is_an_error() {
        let opts = EncodeOptions { format: Compression::Xz, level: 1, threads: 1, block_size: 1 << 20 };
        let mut enc = Encoder::new(Vec::new(), opts).expect("encoder");
        enc.write_all(&[7u8; 100_000]).expect("write");
        let mut packed = enc.finish().expect("finish");
        let mid = packed.len() / 2;
        packed[mid] ^= 0x40;
        let mut out = Vec::new();
        let r = decoder(Compression::Xz, &packed[..], 2).expect("decoder").read_to_end(&mut out);
        assert!(r.is_err(), "bit flip must be detected");
    }
}

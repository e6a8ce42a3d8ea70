//! Block maps in bmaptool's XML format (version 2.0, sha256): which blocks of
//! a sparse disk image hold data, with a checksum per range. `k8r build`
//! writes one beside `bootable_image.img`; `k8r flash` writes only mapped
//! ranges and verifies each. Files made by `bmaptool create` are accepted and
//! `bmaptool copy` accepts ours.

use std::fmt::Write as _;
use std::fs::File;
use std::io;
use std::path::Path;

use anyhow::Context;
use k8r_config::Sha256;
use sha2::Digest;

/// Block size k8r maps with: the page and ext4 block size.
pub const BMAP_BLOCK_SIZE: u64 = 4096;

/// A bmap larger than this is refused before parsing.
pub const MAX_BMAP_BYTES: usize = 64 << 20;

/// At most this many ranges are accepted from an untrusted bmap.
pub const MAX_RANGES: usize = 1 << 20;

/// One mapped range of blocks, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BmapRange {
    /// First block.
    pub first: u64,
    /// Last block (inclusive).
    pub last: u64,
    /// sha256 of the range's bytes.
    pub sha256: Sha256,
}

impl BmapRange {
    /// Byte offset of the range.
    pub fn offset(&self, block_size: u64) -> u64 {
        self.first * block_size
    }

    /// Byte length of the range (the last block may be cut by the image end).
    pub fn len(&self, block_size: u64, image_size: u64) -> u64 {
        ((self.last + 1) * block_size).min(image_size) - self.first * block_size
    }
}

/// A block map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    /// Apparent size of the image in bytes.
    pub image_size: u64,
    /// Block size in bytes.
    pub block_size: u64,
    /// Mapped ranges, sorted, non-overlapping.
    pub ranges: Vec<BmapRange>,
}

/// Why a bmap was refused.
#[derive(Debug, thiserror::Error)]
pub enum BmapError {
    /// Larger than [`MAX_BMAP_BYTES`].
    #[error("bmap is {0} bytes, more than the {MAX_BMAP_BYTES} allowed")]
    TooLarge(usize),
    /// Malformed XML or a missing element.
    #[error("bmap is not valid: {0}")]
    Syntax(String),
    /// A version or checksum type k8r does not read.
    #[error("bmap {0} is not supported (k8r reads version 2.x with sha256 checksums)")]
    Unsupported(String),
    /// The file's own checksum does not match.
    #[error("bmap file checksum mismatch: the file says {stated}, its content hashes to {actual}")]
    FileChecksum {
        /// Checksum in the file.
        stated: String,
        /// Checksum computed.
        actual: String,
    },
    /// Ranges out of order, overlapping or past the image.
    #[error("bmap range {range}: {reason}")]
    Range {
        /// The range as written.
        range: String,
        /// What is wrong.
        reason: String,
    },
}

impl Bmap {
    /// Number of mapped blocks.
    pub fn mapped_blocks(&self) -> u64 {
        self.ranges.iter().map(|r| r.last - r.first + 1).sum()
    }

    /// Number of mapped bytes.
    pub fn mapped_bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.len(self.block_size, self.image_size)).sum()
    }

    /// Total blocks of the image.
    pub fn blocks(&self) -> u64 {
        self.image_size.div_ceil(self.block_size)
    }

    /// Render bmaptool-compatible XML (format 2.0) with its file checksum.
    pub fn to_xml(&self) -> String {
        let zeros = "0".repeat(64);
        let text = self.render(&zeros);
        let actual = Sha256(sha2::Sha256::digest(text.as_bytes()).into()).to_hex();
        text.replacen(
            &format!("<BmapFileChecksum> {zeros} </BmapFileChecksum>"),
            &format!("<BmapFileChecksum> {actual} </BmapFileChecksum>"),
            1,
        )
    }

    fn render(&self, file_checksum: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "<?xml version=\"1.0\" ?>");
        let _ = writeln!(s, "<!-- Block map of a k8r golden image, bmaptool format 2.0. -->");
        let _ = writeln!(s, "<bmap version=\"2.0\">");
        let _ = writeln!(s, "    <ImageSize> {} </ImageSize>", self.image_size);
        let _ = writeln!(s, "    <BlockSize> {} </BlockSize>", self.block_size);
        let _ = writeln!(s, "    <BlocksCount> {} </BlocksCount>", self.blocks());
        let _ = writeln!(s, "    <MappedBlocksCount> {} </MappedBlocksCount>", self.mapped_blocks());
        let _ = writeln!(s, "    <ChecksumType> sha256 </ChecksumType>");
        let _ = writeln!(s, "    <BmapFileChecksum> {file_checksum} </BmapFileChecksum>");
        let _ = writeln!(s, "    <BlockMap>");
        for r in &self.ranges {
            if r.first == r.last {
                let _ = writeln!(s, "        <Range chksum=\"{}\"> {} </Range>", r.sha256, r.first);
            } else {
                let _ = writeln!(s, "        <Range chksum=\"{}\"> {}-{} </Range>", r.sha256, r.first, r.last);
            }
        }
        let _ = writeln!(s, "    </BlockMap>");
        let _ = writeln!(s, "</bmap>");
        s
    }

    /// Parse and validate a bmap from an untrusted source.
    pub fn parse(xml: &[u8]) -> Result<Bmap, BmapError> {
        if xml.len() > MAX_BMAP_BYTES {
            return Err(BmapError::TooLarge(xml.len()));
        }
        let text = std::str::from_utf8(xml).map_err(|_| BmapError::Syntax("not UTF-8".into()))?;
        let raw = parse_elements(text)?;
        let version = raw.version.ok_or_else(|| BmapError::Syntax("no <bmap version=…>".into()))?;
        if !version.starts_with("2.") {
            return Err(BmapError::Unsupported(format!("version {version}")));
        }
        let cs_type = raw.checksum_type.unwrap_or_default();
        if cs_type != "sha256" {
            return Err(BmapError::Unsupported(format!("checksum type {cs_type:?}")));
        }
        check_file_checksum(text, raw.file_checksum.as_deref())?;
        let num = |v: Option<String>, name: &str| -> Result<u64, BmapError> {
            v.ok_or_else(|| BmapError::Syntax(format!("no <{name}>")))?
                .parse()
                .map_err(|_| BmapError::Syntax(format!("<{name}> is not a number")))
        };
        let image_size = num(raw.image_size, "ImageSize")?;
        let block_size = num(raw.block_size, "BlockSize")?;
        if !(512..=(1 << 24)).contains(&block_size) || !block_size.is_power_of_two() {
            return Err(BmapError::Syntax(format!("block size {block_size} is not a power of two in 512..16M")));
        }
        let bmap = Bmap { image_size, block_size, ranges: raw.ranges };
        bmap.validate_ranges()?;
        Ok(bmap)
    }

    fn validate_ranges(&self) -> Result<(), BmapError> {
        let blocks = self.blocks();
        let mut next = 0u64;
        for r in &self.ranges {
            let bad =
                |reason: &str| BmapError::Range { range: format!("{}-{}", r.first, r.last), reason: reason.into() };
            if r.last < r.first {
                return Err(bad("ends before it starts"));
            }
            if r.first < next {
                return Err(bad("overlaps or is out of order"));
            }
            if r.last >= blocks {
                return Err(bad(&format!("lies past the image's {blocks} blocks")));
            }
            next = r.last + 1;
        }
        Ok(())
    }
}

#[derive(Default)]
struct RawBmap {
    version: Option<String>,
    image_size: Option<String>,
    block_size: Option<String>,
    checksum_type: Option<String>,
    file_checksum: Option<String>,
    ranges: Vec<BmapRange>,
}

fn parse_elements(text: &str) -> Result<RawBmap, BmapError> {
    use quick_xml::events::Event;
    let syntax = |e: &dyn std::fmt::Display| BmapError::Syntax(e.to_string());
    let mut reader = quick_xml::Reader::from_str(text);
    let mut raw = RawBmap::default();
    let mut current: Option<String> = None;
    let mut chksum: Option<String> = None;
    loop {
        match reader.read_event().map_err(|e| syntax(&e))? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| syntax(&e))?;
                    let value = attr.unescape_value().map_err(|e| syntax(&e))?.into_owned();
                    match (name.as_str(), attr.key.as_ref()) {
                        ("bmap", b"version") => raw.version = Some(value),
                        ("Range", b"chksum") => chksum = Some(value),
                        _ => {}
                    }
                }
                current = Some(name);
            }
            Event::Text(t) => {
                let value = t.decode().map_err(|e| syntax(&e))?.trim().to_string();
                match current.as_deref() {
                    Some("ImageSize") => raw.image_size = Some(value),
                    Some("BlockSize") => raw.block_size = Some(value),
                    Some("ChecksumType") => raw.checksum_type = Some(value),
                    Some("BmapFileChecksum") => raw.file_checksum = Some(value),
                    Some("Range") => {
                        if raw.ranges.len() >= MAX_RANGES {
                            return Err(BmapError::Syntax(format!("more than {MAX_RANGES} ranges")));
                        }
                        raw.ranges.push(parse_range(&value, chksum.take())?);
                    }
                    _ => {}
                }
            }
            Event::End(_) => current = None,
            Event::Eof => return Ok(raw),
            _ => {}
        }
    }
}

fn parse_range(value: &str, chksum: Option<String>) -> Result<BmapRange, BmapError> {
    let bad = || BmapError::Range { range: value.to_string(), reason: "is not N or N-M".into() };
    let (first, last) = match value.split_once('-') {
        Some((a, b)) => (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?),
        None => {
            let n = value.trim().parse().map_err(|_| bad())?;
            (n, n)
        }
    };
    let sha256 = chksum
        .ok_or_else(|| BmapError::Range { range: value.to_string(), reason: "has no chksum".into() })?
        .parse()
        .map_err(|e: k8r_config::digest::Sha256ParseError| BmapError::Range {
            range: value.into(),
            reason: e.to_string(),
        })?;
    Ok(BmapRange { first, last, sha256 })
}

fn check_file_checksum(text: &str, stated: Option<&str>) -> Result<(), BmapError> {
    let stated = stated.ok_or_else(|| BmapError::Syntax("no <BmapFileChecksum>".into()))?;
    if stated.len() != 64 {
        return Err(BmapError::Syntax("<BmapFileChecksum> is not a sha256".into()));
    }
    let zeroed = text.replacen(stated, &"0".repeat(64), 1);
    let actual = Sha256(sha2::Sha256::digest(zeroed.as_bytes()).into()).to_hex();
    if !actual.eq_ignore_ascii_case(stated) {
        return Err(BmapError::FileChecksum { stated: stated.into(), actual });
    }
    Ok(())
}

/// The data ranges `(offset, len)` of a sparse file, from `SEEK_DATA`/`SEEK_HOLE`.
pub fn data_ranges(file: &File) -> io::Result<Vec<(u64, u64)>> {
    let size = file.metadata()?.len();
    let fd = file;
    let mut ranges = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match nix::unistd::lseek(fd, pos as i64, nix::unistd::Whence::SeekData) {
            Ok(s) => s as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = nix::unistd::lseek(fd, start as i64, nix::unistd::Whence::SeekHole).map_err(io::Error::from)? as u64;
        ranges.push((start, end.min(size) - start));
        pos = end;
    }
    Ok(ranges)
}

/// What [`scan`] returns: the bmap of a sparse image and the sha256 of all
/// its bytes (holes read as zeros), computed in one pass.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The block map.
    pub bmap: Bmap,
    /// sha256 of the whole image.
    pub image_sha256: Sha256,
}

/// Map the data blocks of the sparse image at `path` and hash everything:
/// the ranges on a second thread ([`crate::io::sha256_disk_range`]) while
/// this one hashes the whole image (the longer, strictly sequential pass,
/// holes fed as zeros).
pub fn scan(path: &Path, progress: &dyn crate::io::progress::Progress) -> anyhow::Result<Scan> {
    use std::os::unix::fs::FileExt;
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata().with_context(|| format!("reading metadata of {}", path.display()))?.len();
    let bs = BMAP_BLOCK_SIZE;
    // Merge data extents at block granularity.
    let mut blocks: Vec<(u64, u64)> = Vec::new();
    for (off, len) in data_ranges(&file).with_context(|| format!("mapping the data of {}", path.display()))? {
        let (first, last) = (off / bs, (off + len).div_ceil(bs) - 1);
        match blocks.last_mut() {
            Some(prev) if first <= prev.1 + 1 => prev.1 = prev.1.max(last),
            _ => blocks.push((first, last)),
        }
    }
    let byte_range = |(first, last): (u64, u64)| (first * bs, ((last + 1) * bs).min(size));
    let (ranges, whole) = std::thread::scope(|s| {
        let ranges = s.spawn(|| -> anyhow::Result<Vec<BmapRange>> {
            let disk = crate::disk::FileDisk::open(path)?;
            let mut ranges = Vec::with_capacity(blocks.len());
            for &(first, last) in &blocks {
                let (start, end) = byte_range((first, last));
                let sha256 = crate::io::sha256_disk_range(&disk, start, end - start).map_err(|e| {
                    anyhow::Error::new(e.source).context(format!("reading {} at {}", path.display(), start + e.at))
                })?;
                ranges.push(BmapRange { first, last, sha256 });
            }
            Ok(ranges)
        });
        let whole = (|| -> anyhow::Result<Sha256> {
            let mut whole = sha2::Sha256::new();
            let zeros = vec![0u8; crate::io::BUFFER_SIZE];
            let mut buf = vec![0u8; crate::io::BUFFER_SIZE];
            let mut pos = 0u64;
            for &block in &blocks {
                let (start, end) = byte_range(block);
                feed_zeros(&mut whole, &zeros, start - pos);
                progress.inc(start - pos);
                let mut at = start;
                while at < end {
                    let n = ((end - at) as usize).min(buf.len());
                    file.read_exact_at(&mut buf[..n], at)
                        .with_context(|| format!("reading {} at {at}", path.display()))?;
                    whole.update(&buf[..n]);
                    progress.inc(n as u64);
                    at += n as u64;
                }
                pos = end;
            }
            feed_zeros(&mut whole, &zeros, size - pos);
            progress.inc(size - pos);
            Ok(Sha256(whole.finalize().into()))
        })();
        let ranges = ranges.join().map_err(|_| anyhow::anyhow!("the range hashing thread panicked"));
        (ranges, whole)
    });
    Ok(Scan { bmap: Bmap { image_size: size, block_size: bs, ranges: ranges?? }, image_sha256: whole? })
}

fn feed_zeros(h: &mut sha2::Sha256, zeros: &[u8], mut n: u64) {
    while n > 0 {
        let k = (n as usize).min(zeros.len());
        h.update(&zeros[..k]);
        n -= k as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn sample() -> Bmap {
        let d: Sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().expect("hex");
        Bmap {
            image_size: 10 * 4096 + 100,
            block_size: 4096,
            ranges: vec![BmapRange { first: 0, last: 1, sha256: d }, BmapRange { first: 5, last: 5, sha256: d }],
        }
    }

    #[test]
    fn round_trips_with_file_checksum() {
        let b = sample();
        let xml = b.to_xml();
        assert!(xml.contains(
            "<Range chksum=\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"> 5 </Range>"
        ));
        assert_eq!(Bmap::parse(xml.as_bytes()).expect("parses"), b);
        assert_eq!(b.mapped_blocks(), 3);
        assert_eq!(b.blocks(), 11);
    }

    #[test]
    fn refuses_tampering_and_nonsense() {
        let xml = sample().to_xml();
        let tampered = xml.replace("> 5 <", "> 6 <");
        assert!(matches!(Bmap::parse(tampered.as_bytes()), Err(BmapError::FileChecksum { .. })));
        let cases = [
            (Bmap { ranges: vec![sample().ranges[1], sample().ranges[0]], ..sample() }, "out of order"),
            (Bmap { image_size: 4096, ..sample() }, "past the image"),
        ];
        for (b, want) in cases {
            let err = Bmap::parse(b.to_xml().as_bytes()).expect_err(want).to_string();
            assert!(err.contains(want), "{err}");
        }
        assert!(matches!(Bmap::parse(b"<bmap version=\"1.3\"></bmap>"), Err(BmapError::Unsupported(_))));
        assert!(Bmap::parse(b"garbage <<<").is_err());
    }

    #[test]
    fn scans_a_sparse_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("img");
        let f = File::create(&path).expect("create");
        f.set_len(64 << 20).expect("size");
        f.write_all_at(&[1u8; 10], 0).expect("w");
        f.write_all_at(&[2u8; 8192], 32 << 20).expect("w");
        drop(f);
        let scan = scan(&path, &crate::io::progress::NoProgress).expect("scan");
        assert_eq!(scan.bmap.ranges.len(), 2);
        assert_eq!(scan.bmap.ranges[0].first, 0);
        assert_eq!(scan.bmap.ranges[1].first, (32 << 20) / 4096);
        let (want, _) = crate::io::sha256_reader(File::open(&path).expect("open")).expect("hash");
        assert_eq!(scan.image_sha256, want);
        let (first, _) =
            crate::io::sha256_reader(&[1u8; 10].iter().copied().chain([0u8; 4086]).collect::<Vec<u8>>()[..])
                .expect("hash");
        assert_eq!(scan.bmap.ranges[0].sha256, first);
    }
}

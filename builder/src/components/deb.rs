//! Debian packages (`.deb`, deb(5)) unpacked the way `dpkg --unpack` would
//! place their files, without dpkg: an `ar` archive of `debian-binary`
//! (format `2.x`), `control.tar[.gz|.xz|.zst]` and
//! `data.tar[.gz|.xz|.zst]`, in that order, with members named `_…` (e.g.
//! signatures) ignored between them and anything after `data.tar` ignored,
//! as deb(5) says. The control file's `Architecture` must be the image's
//! or `all`. `data.tar` goes through the same confined unpacking as every
//! other archive ([`super::archive`]).
//!
//! The `ar` container is read here (it is 60-byte text headers) rather than
//! with the `ar` crate, which sizes buffers by untrusted header fields and
//! can index out of bounds on hostile name tables.
//!
//! What this does not do, and says so in the log: run maintainer scripts
//! (`preinst`, `postinst`, …), record the package in dpkg's database, or
//! check dependencies. A package that needs its `postinst` (users, groups,
//! alternatives) should be installed on the node instead.
//!
//! This module must not: read a member's size without a bound when it goes
//! to memory, unpack `data.tar` before the architecture is checked, or keep
//! a partial result.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use k8r_config::{Arch, Sha256};
use k8r_core::io::HashReader;

use super::archive::{self, Limits, Located, Policy, Problem, Scratch, UnpackError, Unpacked, Unpacker};

/// Largest `debian-binary` member read.
const MAX_DEBIAN_BINARY: u64 = 64;
/// Largest control file read (real ones are a few KiB).
const MAX_CONTROL: u64 = 1 << 20;
/// Bounds on `control.tar`: it holds a handful of small files, the largest
/// being `md5sums` (a few MiB for the biggest packages).
const CONTROL_LIMITS: Limits = Limits { max_entries: 1000, max_entry_bytes: 64 << 20, max_total_bytes: 64 << 20 };

/// Maintainer scripts dpkg would run and k8r does not.
const MAINTAINER_SCRIPTS: [&str; 6] = ["preinst", "postinst", "prerm", "postrm", "config", "triggers"];

/// What a package says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebInfo {
    /// `Package`.
    pub package: String,
    /// `Version`.
    pub version: String,
    /// `Architecture` (`arm64`, `amd64` or `all`).
    pub architecture: String,
    /// Maintainer scripts the package has, which k8r did not run.
    pub maintainer_scripts: Vec<String>,
}

/// One `ar` member header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: String,
    size: u64,
}

/// The `ar` global header.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";

/// Read the next member header; `None` at the end of the archive.
fn next_member(r: &mut impl Read) -> Result<Option<Member>, Problem> {
    let mut header = [0u8; 60];
    let got = k8r_core::io::read_full(r, &mut header).map_err(Problem::Format)?;
    if got == 0 {
        return Ok(None);
    }
    if got < header.len() || &header[58..60] != b"`\n" {
        return Err(Problem::Deb("has a damaged ar member header".into()));
    }
    let name = std::str::from_utf8(&header[..16])
        .ok()
        .map(|n| n.trim_end_matches(' '))
        .map(|n| n.strip_suffix('/').unwrap_or(n))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| Problem::Deb("has an ar member with an unreadable name".into()))?
        .to_string();
    let size = std::str::from_utf8(&header[48..58])
        .ok()
        .map(|s| s.trim_end_matches(' '))
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Problem::Deb(format!("has an ar member {name:?} with an unreadable size")))?;
    Ok(Some(Member { name, size }))
}

/// Skip a member's padding byte (members start at even offsets). The
/// member's data must have been read or drained.
fn skip_pad(r: &mut impl Read, member: &Member) -> Result<(), Problem> {
    if member.size % 2 == 1 {
        let mut pad = [0u8; 1];
        // A missing final pad byte at the very end is tolerated, as by dpkg.
        k8r_core::io::read_full(r, &mut pad).map_err(Problem::Format)?;
    }
    Ok(())
}

/// The compression a member's name announces (`data.tar.xz` → xz); the
/// bytes must agree.
fn member_codec(member: &Member, stem: &str, head: &[u8]) -> Result<archive::Codec, Problem> {
    let suffix = &member.name[stem.len()..];
    let want = match suffix {
        "" => archive::Codec::Plain,
        ".gz" => archive::Codec::Gzip,
        ".xz" => archive::Codec::Xz,
        ".zst" => archive::Codec::Zstd,
        ".bz2" => return Err(Problem::Compression("bzip2")),
        ".lzma" => return Err(Problem::Compression("lzma")),
        _ => return Err(Problem::Deb(format!("has a member {:?} of an unknown kind", member.name))),
    };
    let got = archive::sniff(head)?;
    if got != want {
        return Err(Problem::Deb(format!("member {:?} is not compressed the way its name says", member.name)));
    }
    Ok(want)
}

/// A member's bytes, decoded per its name.
fn member_stream<'a>(
    member: &Member,
    stem: &str,
    body: &'a mut (dyn Read + Send),
) -> Result<Box<dyn Read + Send + 'a>, Problem> {
    let mut buffered = BufReader::with_capacity(1 << 16, body);
    let head = io::BufRead::fill_buf(&mut buffered).map_err(Problem::Format)?;
    let codec = member_codec(member, stem, head)?;
    archive::decoder(codec, buffered).map_err(Problem::Format)
}

/// Check `debian-binary`: format 2.x.
fn check_format(text: &[u8]) -> Result<(), Problem> {
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let version = String::from_utf8_lossy(line);
    if version.split('.').next() == Some("2") && version.contains('.') {
        Ok(())
    } else {
        Err(Problem::Deb(format!("is package format {version:?}; k8r reads format 2.x")))
    }
}

/// Fields of the control file's first paragraph that k8r needs.
pub fn parse_control(text: &str) -> Result<(String, String, String), Problem> {
    let field = |key: &str| {
        text.lines()
            .take_while(|l| !l.trim().is_empty())
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Problem::Deb(format!("has no {key} field in its control file")))
    };
    Ok((field("Package")?, field("Version")?, field("Architecture")?))
}

/// What `control.tar` holds that matters here.
#[derive(Default)]
struct Control {
    text: Option<String>,
    scripts: Vec<String>,
}

fn read_control(stream: impl Read) -> Result<Control, Located> {
    let mut control = Control::default();
    archive::walk(stream, &CONTROL_LIMITS, |e| {
        if e.size > CONTROL_LIMITS.max_entry_bytes {
            return Err(Problem::EntryTooLarge { size: e.size, limit: CONTROL_LIMITS.max_entry_bytes });
        }
        let Some(name) = archive::normalize(&e.name)? else { return Ok(()) };
        if !matches!(e.type_byte, b'0' | 0) {
            return Ok(());
        }
        if name == "control" {
            if e.size > MAX_CONTROL {
                return Err(Problem::EntryTooLarge { size: e.size, limit: MAX_CONTROL });
            }
            let mut bytes = Vec::new();
            e.data.take(MAX_CONTROL).read_to_end(&mut bytes).map_err(Problem::Format)?;
            control.text = Some(String::from_utf8_lossy(&bytes).into_owned());
        } else if MAINTAINER_SCRIPTS.contains(&name.as_str()) {
            control.scripts.push(name);
        }
        Ok(())
    })?;
    Ok(control)
}

/// Unpack the `data.tar` of the package at `deb` into `into` (which must not
/// exist), after checking its format and that it is built for `arch`. When
/// `expected` is given the file's bytes must hash to it. `label` names the
/// package in errors.
pub fn unpack_deb(
    deb: &Path,
    label: &str,
    expected: Option<Sha256>,
    into: &Path,
    policy: &Policy,
    arch: Arch,
) -> Result<(Unpacked, DebInfo), UnpackError> {
    unpack_inner(deb, expected, into, policy, arch).map_err(|l| l.into_error(label))
}

fn unpack_inner(
    deb: &Path,
    expected: Option<Sha256>,
    into: &Path,
    policy: &Policy,
    arch: Arch,
) -> Result<(Unpacked, DebInfo), Located> {
    let file = File::open(deb).map_err(|source| Problem::Read { path: deb.to_path_buf(), source })?;
    let scratch = Scratch::begin(into)?;
    let mut hashing = HashReader::new(file);
    let mut r = BufReader::with_capacity(1 << 16, &mut hashing);
    let mut magic = [0u8; 8];
    let got = k8r_core::io::read_full(&mut r, &mut magic).map_err(Problem::Format)?;
    if got != magic.len() || &magic != AR_MAGIC {
        return Err(Problem::Deb("is not a Debian package (no ar archive header)".into()).into());
    }
    read_debian_binary(&mut r)?;
    let info = read_control_member(&mut r, arch)?;
    let mut unpacker = Unpacker::new(scratch.path(), policy);
    read_data_member(&mut r, &mut unpacker, &policy.limits)?;
    // Later members are ignored (deb(5)), but hashed.
    archive::drain(&mut r)?;
    drop(r);
    let (sha256, size, _) = hashing.finish();
    archive::check_digest(expected, sha256)?;
    let items = scratch.commit(into, unpacker.into_items())?;
    if !info.maintainer_scripts.is_empty() {
        tracing::warn!(
            "{} {}: k8r does not run its maintainer scripts ({}); the files are in place, but what those scripts set up is not",
            info.package,
            info.version,
            info.maintainer_scripts.join(", ")
        );
    }
    Ok((Unpacked { dir: into.to_path_buf(), items, sha256, size }, info))
}

/// The next member that is not an ignorable `_…` one.
fn next_significant(r: &mut impl Read) -> Result<Option<Member>, Problem> {
    while let Some(m) = next_member(r)? {
        if !m.name.starts_with('_') {
            return Ok(Some(m));
        }
        archive::drain(&mut Read::take(&mut *r, m.size))?;
        skip_pad(r, &m)?;
    }
    Ok(None)
}

fn read_debian_binary(r: &mut (impl Read + Send)) -> Result<(), Problem> {
    let m = next_member(r)?.ok_or_else(|| Problem::Deb("is an empty ar archive".into()))?;
    if m.name != "debian-binary" {
        return Err(Problem::Deb(format!("starts with member {:?}, not debian-binary", m.name)));
    }
    if m.size > MAX_DEBIAN_BINARY {
        return Err(Problem::Deb(format!("has a debian-binary member of {} bytes", m.size)));
    }
    let mut text = Vec::new();
    Read::take(&mut *r, m.size).read_to_end(&mut text).map_err(Problem::Format)?;
    skip_pad(r, &m)?;
    check_format(&text)
}

fn read_control_member(r: &mut (impl Read + Send), arch: Arch) -> Result<DebInfo, Located> {
    let m = next_significant(r)?.ok_or_else(|| Problem::Deb("has no control.tar member".into()))?;
    if !m.name.starts_with("control.tar") {
        return Err(Problem::Deb(format!("has member {:?} where control.tar belongs", m.name)).into());
    }
    let mut body = Read::take(&mut *r, m.size);
    let control = read_control(member_stream(&m, "control.tar", &mut body)?)?;
    archive::drain(&mut body)?;
    skip_pad(r, &m)?;
    let text = control.text.ok_or_else(|| Problem::Deb("has no control file in control.tar".into()))?;
    let (package, version, architecture) = parse_control(&text)?;
    if architecture != "all" && architecture != arch.go_arch() {
        return Err(Problem::Deb(format!(
            "{package} {version} is built for {architecture}, but the image is {} ({arch})",
            arch.go_arch()
        ))
        .into());
    }
    Ok(DebInfo { package, version, architecture, maintainer_scripts: control.scripts })
}

fn read_data_member(r: &mut (impl Read + Send), unpacker: &mut Unpacker<'_>, limits: &Limits) -> Result<(), Located> {
    let m = next_significant(r)?.ok_or_else(|| Problem::Deb("has no data.tar member".into()))?;
    if !m.name.starts_with("data.tar") {
        return Err(Problem::Deb(format!("has member {:?} where data.tar belongs", m.name)).into());
    }
    let mut body = Read::take(&mut *r, m.size);
    archive::walk(member_stream(&m, "data.tar", &mut body)?, limits, |e| unpacker.add(e))?;
    archive::drain(&mut body)?;
    skip_pad(r, &m)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: &str) -> Vec<u8> {
        let mut h = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}", 0, 0, 0, 100644).into_bytes();
        h.extend_from_slice(b"`\n");
        h
    }

    #[test]
    fn ar_headers() {
        let m = next_member(&mut &header("data.tar.xz/", "1234")[..]).expect("valid").expect("member");
        assert_eq!(m, Member { name: "data.tar.xz".into(), size: 1234 });
        assert_eq!(next_member(&mut &b""[..]).expect("end"), None);
        let bad = [
            ("short", b"debian-binary   0".to_vec()),
            ("no size", header("x", "")),
            ("negative", header("x", "-1")),
            ("hex", header("x", "0x10")),
            ("bad name", header("\u{1}", "1")),
        ];
        for (name, bytes) in bad {
            assert!(next_member(&mut &bytes[..]).is_err(), "{name}");
        }
    }

    #[test]
    fn formats() {
        assert!(check_format(b"2.0\n").is_ok());
        assert!(check_format(b"2.1\nextra\n").is_ok());
        for bad in [&b"1.0\n"[..], b"3.0\n", b"2\n", b""] {
            assert!(check_format(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_fields() {
        let text = "Package: nfs-common\nVersion: 1:2.6.4-3ubuntu5\nDescription: x\n more\nArchitecture: arm64\n\nPackage: other\n";
        let (p, v, a) = parse_control(text).expect("parses");
        assert_eq!((p.as_str(), v.as_str(), a.as_str()), ("nfs-common", "1:2.6.4-3ubuntu5", "arm64"));
        let err = parse_control("Package: x\nVersion: 1\n\nArchitecture: all\n").expect_err("second paragraph");
        assert!(err.to_string().contains("Architecture"), "{err}");
    }
}

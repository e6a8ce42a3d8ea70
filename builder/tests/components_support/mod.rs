//! Helpers shared by the components tests: a fast HTTP client, a loopback
//! server, snapshots of directory trees (to prove "unchanged"), and tar
//! archives written header by header, hostile ones included.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8r_builder::fetch::Cache;
use k8r_config::Sha256;
use k8r_core::http::{Client, RetryPolicy};
use k8r_tests::faultserver::{FaultServer, Faults};
use sha2::Digest;

/// A client that gives up fast (tests only ever talk to loopback).
pub fn fast_client() -> Client {
    Client::new(RetryPolicy {
        attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
    })
}

/// A cache in `dir` with the fast client.
pub fn cache(dir: &Path) -> Cache {
    Cache::new(dir).with_client(fast_client())
}

/// sha256 of bytes.
pub fn sha(bytes: &[u8]) -> Sha256 {
    Sha256(sha2::Sha256::digest(bytes).into())
}

/// Serve `files` (path → bytes).
pub fn serve(files: &[(&str, &[u8])]) -> FaultServer {
    let map: BTreeMap<String, Vec<u8>> = files.iter().map(|(p, b)| (p.to_string(), b.to_vec())).collect();
    FaultServer::start(map, Faults::default()).expect("start loopback server")
}

/// Every path under `root` with its kind, mode and content digest.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).expect("read_dir").map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        let meta = fs::symlink_metadata(&p).expect("metadata");
        let rel = p.strip_prefix(root).expect("under root").to_path_buf();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.is_dir() {
            out.insert(rel, format!("dir {mode:o}"));
            walk(root, &p, out);
        } else if meta.is_symlink() {
            out.insert(rel, format!("link -> {}", fs::read_link(&p).expect("readlink").display()));
        } else {
            let bytes = fs::read(&p).expect("read");
            out.insert(rel, format!("file {mode:o} {} {}", meta.size(), sha(&bytes)));
        }
    }
}

/// One tar entry, described at the header level so hostile ones can be
/// written (the tar crate's `append_path` helpers refuse `..` and absolute
/// names, which is exactly what the tests need to write).
#[derive(Debug, Clone)]
pub enum E {
    /// A regular file.
    File(&'static str, &'static [u8], u32),
    /// A directory.
    Dir(&'static str, u32),
    /// A symlink.
    Symlink(&'static str, &'static str),
    /// A hard link.
    Hard(&'static str, &'static str),
    /// A character device.
    Char(&'static str),
    /// A block device.
    Block(&'static str),
    /// A FIFO.
    Fifo(&'static str),
    /// A regular file whose header declares `size` bytes but carries none.
    Declared(&'static str, u64),
    /// A header of a raw type byte with no data.
    Raw(&'static str, u8),
    /// A GNU long-name record for the next entry.
    LongName(Vec<u8>),
    /// A GNU long-name record that declares `size` bytes and carries none.
    LongNameDeclared(u64),
    /// A pax extended header with these records.
    Pax(Vec<(&'static str, Vec<u8>)>),
}

/// Write a raw name into a GNU header (the crate's `set_path` checks it).
fn set_name(h: &mut tar::Header, name: &[u8]) {
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.name = [0; 100];
    gnu.name[..name.len()].copy_from_slice(name);
}

fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    set_name(&mut h, name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_704_067_200);
    h
}

fn link_header(name: &str, kind: tar::EntryType, target: &str, mode: u32) -> tar::Header {
    let mut h = header(name, kind, 0, mode);
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.linkname = [0; 100];
    gnu.linkname[..target.len()].copy_from_slice(target.as_bytes());
    h
}

fn append(out: &mut Vec<u8>, mut h: tar::Header, data: &[u8]) {
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// A tar archive of `entries`, ended by two zero blocks.
pub fn tar(entries: &[E]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut out = Vec::new();
    for e in entries {
        match e {
            E::File(n, data, mode) => append(&mut out, header(n, T::Regular, data.len() as u64, *mode), data),
            E::Dir(n, mode) => append(&mut out, header(n, T::Directory, 0, *mode), &[]),
            E::Symlink(n, target) => append(&mut out, link_header(n, T::Symlink, target, 0o777), &[]),
            E::Hard(n, target) => append(&mut out, link_header(n, T::Link, target, 0o644), &[]),
            E::Char(n) => append(&mut out, header(n, T::Char, 0, 0o600), &[]),
            E::Block(n) => append(&mut out, header(n, T::Block, 0, 0o600), &[]),
            E::Fifo(n) => append(&mut out, header(n, T::Fifo, 0, 0o600), &[]),
            E::Declared(n, size) => {
                // Header only: what a 10 GiB sparse or truncated archive starts with.
                let mut h = header(n, T::Regular, *size, 0o644);
                h.set_cksum();
                out.extend_from_slice(h.as_bytes());
            }
            E::Raw(n, byte) => append(&mut out, header(n, T::new(*byte), 0, 0o644), &[]),
            E::LongName(name) => {
                let mut data = name.clone();
                data.push(0);
                append(&mut out, header("././@LongLink", T::GNULongName, data.len() as u64, 0o644), &data);
            }
            E::LongNameDeclared(size) => {
                let mut h = header("././@LongLink", T::GNULongName, *size, 0o644);
                h.set_cksum();
                out.extend_from_slice(h.as_bytes());
            }
            E::Pax(records) => {
                let mut data = Vec::new();
                for (k, v) in records {
                    // "%d %s=%s\n" where the length counts itself.
                    let body_len = k.len() + v.len() + 3;
                    let mut len = body_len + 1;
                    while len.to_string().len() + body_len != len {
                        len += 1;
                    }
                    data.extend_from_slice(format!("{len} {k}=").as_bytes());
                    data.extend_from_slice(v);
                    data.push(b'\n');
                }
                let mut h = tar::Header::new_ustar();
                h.set_path("PaxHeaders/x").expect("pax name");
                h.set_entry_type(T::XHeader);
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                append(&mut out, h, &data);
            }
        }
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// gzip `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, data).expect("gzip");
    e.finish().expect("gzip")
}

/// Write `bytes` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).expect("write fixture file");
    p
}

/// Run a command that must succeed (the tools are test prerequisites: a
/// missing one fails the test with its name).
pub fn run(cmd: &mut std::process::Command) -> String {
    let out = k8r_core::cmd::run(cmd).expect("external tool");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

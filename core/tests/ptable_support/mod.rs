//! Shared helpers for the `ptable_*` integration tests: k8r layouts, sparse
//! images, and the independent tools (sfdisk, partx, sgdisk) whose verdicts
//! the tests compare against. A missing tool fails the test; it never skips.

#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use k8r_config::units::MIB;
use k8r_core::cmd;
use k8r_core::ptable::{DiskId, PartType, Partition, PartitionTable};
use k8r_core::FileDisk;
use serde::Deserialize;
use uuid::Uuid;

/// Sectors per MiB.
pub const M: u64 = MIB / 512;

/// Fail (not skip) when a tool the test relies on is missing.
pub fn require(tool: &str) {
    assert!(cmd::exists(tool), "{tool} is required for this test (CI installs it); install it and run again");
}

/// A sparse image of `sectors` sectors.
pub fn sparse_image(dir: &Path, name: &str, sectors: u64) -> PathBuf {
    let path = dir.join(name);
    FileDisk::create(&path, sectors * 512).expect("create sparse image");
    path
}

/// Extend (or shrink) an image file to `sectors`.
pub fn resize_image(path: &Path, sectors: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).expect("open image");
    f.set_len(sectors * 512).expect("resize image");
}

/// The k8r layout (DESIGN.md "Disk layout") on MBR: 1–3 FAT primaries,
/// 4 the extended container, 5–7 ext4 logicals, 7 to the end (1 MiB aligned).
pub fn k8r_mbr(signature: u32, disk_sectors: u64) -> PartitionTable {
    let end = disk_sectors / M * M;
    let p = Partition::mbr;
    let parts = vec![
        p(1, 4 * M, 8 * M, PartType::FAT32_LBA).with_bootable(true),
        p(2, 12 * M, 16 * M, PartType::FAT32_LBA),
        p(3, 28 * M, 16 * M, PartType::FAT32_LBA),
        p(4, 44 * M, end - 44 * M, PartType::EXTENDED_LBA),
        p(5, 45 * M, 24 * M, PartType::LINUX),
        p(6, 70 * M, 24 * M, PartType::LINUX),
        p(7, 95 * M, end - 95 * M, PartType::LINUX),
    ];
    PartitionTable::new_mbr(signature, disk_sectors, parts).expect("valid k8r MBR layout")
}

/// The k8r layout on GPT (entry 4 unused).
pub fn k8r_gpt(disk_sectors: u64) -> PartitionTable {
    let end = (disk_sectors - 33) / M * M;
    let p = |n: u32, start: u64, len: u64, t: PartType, name: &str| {
        Partition::gpt(n, start, len, t, Uuid::from_u128(0x5eed_0000 + u128::from(n)), name)
    };
    let parts = vec![
        p(1, 4 * M, 8 * M, PartType::GPT_BASIC_DATA, "config"),
        p(2, 12 * M, 16 * M, PartType::GPT_BASIC_DATA, "boot-a"),
        p(3, 28 * M, 16 * M, PartType::GPT_BASIC_DATA, "boot-b"),
        p(5, 45 * M, 24 * M, PartType::GPT_LINUX_FS, "working"),
        p(6, 70 * M, 24 * M, PartType::GPT_LINUX_FS, "image"),
        p(7, 95 * M, end - 95 * M, PartType::GPT_LINUX_FS, "data"),
    ];
    let guid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    PartitionTable::new_gpt(guid, disk_sectors, parts).expect("valid k8r GPT layout")
}

/// `sfdisk -J` output.
#[derive(Debug, Deserialize)]
pub struct SfdiskJson {
    pub partitiontable: SfdiskTable,
}

/// The table part of `sfdisk -J`.
#[derive(Debug, Deserialize)]
pub struct SfdiskTable {
    pub label: String,
    pub id: String,
    pub device: String,
    #[serde(default)]
    pub firstlba: Option<u64>,
    #[serde(default)]
    pub lastlba: Option<u64>,
    #[serde(default)]
    pub partitions: Vec<SfdiskPartition>,
}

/// One partition of `sfdisk -J`.
#[derive(Debug, Deserialize)]
pub struct SfdiskPartition {
    pub node: String,
    pub start: u64,
    pub size: u64,
    #[serde(rename = "type")]
    pub ptype: String,
    #[serde(default)]
    pub bootable: bool,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub attrs: Option<String>,
}

impl SfdiskTable {
    /// The partition number from the node name (`disk.img7` → 7).
    pub fn number(&self, p: &SfdiskPartition) -> u32 {
        p.node.strip_prefix(&self.device).and_then(|n| n.parse().ok()).expect("node is device + number")
    }
}

/// Parse `sfdisk -J` of an image.
pub fn sfdisk_json(path: &Path) -> SfdiskTable {
    require("sfdisk");
    let out: SfdiskJson = cmd::run_json(Command::new("sfdisk").arg("-J").arg(path)).expect("sfdisk -J");
    out.partitiontable
}

/// `sfdisk -V` must find no errors.
pub fn sfdisk_verify(path: &Path) {
    require("sfdisk");
    let out = cmd::run_stdout(Command::new("sfdisk").arg("-V").arg(path)).expect("sfdisk -V exits 0");
    assert!(out.contains("No errors detected"), "sfdisk -V on {}:\n{out}", path.display());
}

/// `sgdisk -v` must find no problems (and, if `strict`, print no warnings).
pub fn sgdisk_check(path: &Path, strict: bool) {
    require("sgdisk");
    let out = cmd::run(Command::new("sgdisk").arg("-v").arg(path)).expect("sgdisk -v exits 0");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("No problems found"), "sgdisk -v on {}:\n{text}", path.display());
    if strict {
        assert!(!text.to_lowercase().contains("warning"), "sgdisk -v warns on {}:\n{text}", path.display());
    }
}

/// `sgdisk -v` finds no problems and prints no warnings.
pub fn sgdisk_verify(path: &Path) {
    sgdisk_check(path, true);
}

/// One partition as `sgdisk -p` lists it: (number, first, last, code, name).
pub fn sgdisk_print(path: &Path) -> Vec<(u32, u64, u64, String, String)> {
    require("sgdisk");
    let out = cmd::run_stdout(Command::new("sgdisk").arg("-p").arg(path)).expect("sgdisk -p");
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in out.lines() {
        if line.trim_start().starts_with("Number") {
            in_table = true;
            continue;
        }
        if !in_table || line.trim().is_empty() {
            continue;
        }
        // "   1            8192           24575   8.0 MiB     0700  config"
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 6, "unexpected sgdisk -p line {line:?}");
        let name = f.get(6..).map(|n| n.join(" ")).unwrap_or_default();
        rows.push((
            f[0].parse().expect("n"),
            f[1].parse().expect("first"),
            f[2].parse().expect("last"),
            f[5].into(),
            name,
        ));
    }
    rows
}

/// `partx -P` (libblkid's reading of the table): one map per partition.
pub fn partx(path: &Path) -> Vec<std::collections::BTreeMap<String, String>> {
    require("partx");
    let out =
        cmd::run_stdout(Command::new("partx").args(["-o", "NR,START,SECTORS,TYPE,UUID,NAME,FLAGS", "-P"]).arg(path))
            .expect("partx -P");
    out.lines()
        .map(|line| {
            let mut row = std::collections::BTreeMap::new();
            let mut rest = line.trim();
            while let Some(eq) = rest.find("=\"") {
                let key = rest[..eq].trim().to_string();
                let after = &rest[eq + 2..];
                let close = after.find('"').expect("closing quote");
                row.insert(key, after[..close].to_string());
                rest = &after[close + 1..];
            }
            row
        })
        .collect()
}

/// The sfdisk type string of a partition type (`c`, `83`, or an upper-case GUID).
pub fn sfdisk_type(t: PartType) -> String {
    match t {
        PartType::Mbr(b) => format!("{b:x}"),
        PartType::Gpt(g) => g.hyphenated().to_string().to_uppercase(),
    }
}

/// Check an image k8r wrote against `table` with sfdisk -J, sfdisk -V and
/// partx (and sgdisk -v/-p on GPT, which must not even warn): label,
/// label-id, every partition's start, size, type, bootable flag, PARTUUID
/// and GPT name.
pub fn assert_tools_agree(path: &Path, table: &PartitionTable) {
    tools_agree(path, table, true);
}

/// As [`assert_tools_agree`], but sgdisk may warn (about tables other tools
/// wrote, such as sfdisk's gap before first-lba 2048).
pub fn assert_sfdisk_agrees(path: &Path, table: &PartitionTable) {
    tools_agree(path, table, false);
}

fn tools_agree(path: &Path, table: &PartitionTable, strict: bool) {
    let sf = sfdisk_json(path);
    match table.disk_id {
        DiskId::Mbr(sig) => {
            assert_eq!(sf.label, "dos");
            assert_eq!(sf.id, format!("0x{sig:08x}"));
        }
        DiskId::Gpt(g) => {
            assert_eq!(sf.label, "gpt");
            assert_eq!(sf.id, g.hyphenated().to_string().to_uppercase());
        }
    }
    assert_eq!(sf.partitions.len(), table.partitions.len(), "sfdisk sees every partition: {sf:?}");
    for sp in &sf.partitions {
        let n = sf.number(sp);
        let p = table.get(n).unwrap_or_else(|| panic!("sfdisk lists partition {n}, which k8r did not write"));
        assert_eq!((sp.start, sp.size), (p.start, p.sectors), "partition {n} position");
        assert_eq!(sp.ptype, sfdisk_type(p.ptype), "partition {n} type");
        if table.kind == k8r_config::vocab::TableKind::Mbr {
            assert_eq!(sp.bootable, p.bootable, "partition {n} bootable");
        } else {
            assert_eq!(sp.name.as_deref().unwrap_or(""), p.name, "partition {n} name");
            let legacy = sp.attrs.as_deref().unwrap_or("").contains("LegacyBIOSBootable");
            assert_eq!(legacy, p.bootable, "partition {n} legacy bootable attribute");
        }
    }
    sfdisk_verify(path);
    for row in partx(path) {
        let n: u32 = row["NR"].parse().expect("NR");
        let p = table.get(n).unwrap_or_else(|| panic!("partx lists partition {n}"));
        assert_eq!(row["START"], p.start.to_string(), "partx start of {n}");
        assert_eq!(Some(row["UUID"].clone()), table.partuuid(n), "PARTUUID of partition {n}");
    }
    if table.kind == k8r_config::vocab::TableKind::Gpt {
        sgdisk_check(path, strict);
        let rows = sgdisk_print(path);
        assert_eq!(rows.len(), table.partitions.len(), "sgdisk -p lists every partition");
        for (n, first, last, _code, name) in rows {
            let p = table.get(n).unwrap_or_else(|| panic!("sgdisk lists partition {n}"));
            assert_eq!((first, last, name.as_str()), (p.start, p.last_lba(), p.name.as_str()), "sgdisk -p of {n}");
        }
    }
}

/// Run an sfdisk script on an image.
pub fn sfdisk_script(path: &Path, script: &str) {
    require("sfdisk");
    let dir = path.parent().expect("image has a parent dir");
    let script_path = dir.join("script.sfdisk");
    std::fs::write(&script_path, script).expect("write script");
    cmd::run(Command::new("sh").arg("-c").arg(format!(
        "sfdisk --no-reread --no-tell-kernel '{}' < '{}'",
        path.display(),
        script_path.display()
    )))
    .expect("sfdisk applies the script");
}

/// A disk that stores only the sectors written to it (so a "1 GiB" disk
/// costs a few KiB), for crash tests that copy the disk many times.
#[derive(Debug, Clone, Default)]
pub struct SparseDisk {
    pub size: u64,
    pub sectors: std::collections::HashMap<u64, [u8; 512]>,
}

impl SparseDisk {
    pub fn new(sectors: u64) -> Self {
        SparseDisk { size: sectors * 512, sectors: Default::default() }
    }

    /// Copy the stored sectors into a sparse image file.
    pub fn save(&self, path: &Path) {
        let mut f = FileDisk::create(path, self.size).expect("create image");
        for (lba, s) in &self.sectors {
            k8r_core::Disk::write_all_at(&mut f, s, lba * 512).expect("write sector");
        }
    }

    fn check(&self, offset: u64, len: usize) -> std::io::Result<()> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "outside the disk")),
        }
    }
}

impl k8r_core::Disk for SparseDisk {
    fn name(&self) -> String {
        "sparse test disk".into()
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.check(offset, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let (lba, within) = (at / 512, (at % 512) as usize);
            let n = (512 - within).min(buf.len() - done);
            match self.sectors.get(&lba) {
                Some(s) => buf[done..done + n].copy_from_slice(&s[within..within + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
        Ok(())
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.check(offset, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let (lba, within) = (at / 512, (at % 512) as usize);
            let n = (512 - within).min(buf.len() - done);
            self.sectors.entry(lba).or_insert([0; 512])[within..within + n].copy_from_slice(&buf[done..done + n]);
            done += n;
        }
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A disk that loses power after `budget` sectors have been written: the
/// write that crosses the budget is torn at a sector boundary, and every
/// later write fails.
#[derive(Debug)]
pub struct CrashDisk<D> {
    pub inner: D,
    pub budget: u64,
}

impl<D: k8r_core::Disk> k8r_core::Disk for CrashDisk<D> {
    fn name(&self) -> String {
        format!("{} (power cut after {} more sectors)", self.inner.name(), self.budget)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        assert!(offset % 512 == 0 && buf.len() % 512 == 0, "table writes are whole sectors");
        for (i, sector) in buf.chunks(512).enumerate() {
            if self.budget == 0 {
                return Err(std::io::Error::other("power cut"));
            }
            self.inner.write_all_at(sector, offset + 512 * i as u64)?;
            self.budget -= 1;
        }
        Ok(())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }
}

//! The golden `/etc/fstab`: the vendor's file with its root, boot and swap
//! lines replaced by k8r's, which name partitions by PARTUUID (block copies
//! duplicate labels and UUIDs, so `LABEL=writable` would be ambiguous), mount
//! boot-A read-only (the running boot partition is never written), and
//! mount the data partition. Pure.

pub use k8r_config::node::{DATA_BINDS, DATA_MOUNT};

/// Marks the lines k8r owns.
const K8R_MARK: &str = "# k8r:";

/// What k8r's fstab lines point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabTargets {
    /// PARTUUID of the working root.
    pub working: String,
    /// PARTUUID of boot-A.
    pub boot_a: String,
    /// PARTUUID of the data partition.
    pub data: String,
}

/// What [`rewrite`] did, for the build log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The new file.
    pub text: String,
    /// Where the boot partition is mounted (from the vendor's fstab, or
    /// `/boot/firmware`).
    pub boot_mount: String,
    /// Vendor lines that were replaced or disabled, verbatim.
    pub dropped: Vec<String>,
}

/// Mount points of boot partitions vendors use, most specific first.
const BOOT_MOUNTS: [&str; 3] = ["/boot/firmware", "/boot/efi", "/boot"];

/// Rewrite the vendor fstab for a k8r disk.
pub fn rewrite(vendor: &str, t: &FstabTargets) -> Rewritten {
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut boot_mount = None;
    for line in vendor.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let is_entry = !line.trim_start().starts_with('#') && fields.len() >= 3;
        if line.contains(K8R_MARK) || (!is_entry && line.trim_start().starts_with(K8R_MARK)) {
            continue; // an earlier k8r block: regenerate it
        }
        if !is_entry {
            kept.push(line.to_string());
            continue;
        }
        let (mount, fstype) = (fields[1], fields[2]);
        if mount == "/" {
            dropped.push(line.to_string());
        } else if fstype == "swap" {
            dropped.push(line.to_string());
            kept.push(format!("{K8R_MARK} swap is off for the kubelet: {line}"));
        } else if fstype.contains("fat") && BOOT_MOUNTS.contains(&mount) {
            boot_mount.get_or_insert_with(|| mount.to_string());
            dropped.push(line.to_string());
        } else if mount == DATA_MOUNT || DATA_BINDS.iter().any(|(_, t, _)| *t == mount) {
            dropped.push(line.to_string());
        } else {
            kept.push(line.to_string());
        }
    }
    while kept.last().is_some_and(|l| l.trim().is_empty()) {
        kept.pop();
    }
    let boot_mount = boot_mount.unwrap_or_else(|| "/boot/firmware".to_string());
    let mut text = kept.join("\n");
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(&format!(
        "{K8R_MARK} partitions by PARTUUID; labels are duplicated by block copies.\n\
         PARTUUID={} / ext4 defaults,noatime,errors=remount-ro 0 1\n\
         {K8R_MARK} boot-A is never written while it runs the node.\n\
         PARTUUID={} {boot_mount} vfat ro,nofail,umask=0022 0 0\n\
         {K8R_MARK} persistent state (etcd, PKI, kubelet identity, containerd); survives reinstalls.\n\
         PARTUUID={} {DATA_MOUNT} ext4 defaults,noatime,nofail 0 2\n\
         {K8R_MARK} cluster state on the data partition, bind-mounted where Kubernetes expects it.\n",
        t.working, t.boot_a, t.data
    ));
    for (dir, target, _) in DATA_BINDS {
        text.push_str(&format!(
            "{DATA_MOUNT}/{dir} {target} none bind,nofail,x-systemd.requires-mounts-for={DATA_MOUNT} 0 0\n"
        ));
    }
    Rewritten { text, boot_mount, dropped }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> FstabTargets {
        FstabTargets { working: "6b387221-05".into(), boot_a: "6b387221-02".into(), data: "6b387221-07".into() }
    }

    #[test]
    fn ubuntu_fstab() {
        let vendor = "LABEL=writable\t/\text4\tdiscard,errors=remount-ro\t0 1\nLABEL=system-boot       /boot/firmware  vfat    defaults        0       1\n";
        let r = rewrite(vendor, &targets());
        assert_eq!(r.boot_mount, "/boot/firmware");
        assert_eq!(r.dropped.len(), 2);
        assert!(!r.text.contains("LABEL="), "{}", r.text);
        assert!(r.text.contains("PARTUUID=6b387221-05 / ext4"));
        assert!(r.text.contains("PARTUUID=6b387221-02 /boot/firmware vfat ro,nofail"));
        assert!(r.text.contains("PARTUUID=6b387221-07 /var/lib/k8r ext4"));
    }

    #[test]
    fn raspberry_pi_os_fstab_keeps_other_lines_and_disables_swap() {
        let vendor = "proc            /proc           proc    defaults          0       0\nPARTUUID=a1b2c3d4-01  /boot           vfat    defaults          0       2\nPARTUUID=a1b2c3d4-02  /               ext4    defaults,noatime  0       1\n/var/swap none swap sw 0 0\n# a comment\n";
        let r = rewrite(vendor, &targets());
        assert_eq!(r.boot_mount, "/boot");
        assert!(r.text.starts_with("proc            /proc"), "{}", r.text);
        assert!(r.text.contains("# a comment"));
        assert!(r.text.contains("# k8r: swap is off for the kubelet: /var/swap none swap sw 0 0"));
        assert!(!r.text.contains("a1b2c3d4"));
        assert!(r.text.contains("PARTUUID=6b387221-02 /boot vfat"));
    }

    #[test]
    fn rewrite_is_idempotent() {
        let once = rewrite("LABEL=writable / ext4 defaults 0 1\n", &targets());
        let twice = rewrite(&once.text, &targets());
        assert_eq!(once.text, twice.text);
    }

    #[test]
    fn empty_vendor_fstab() {
        let r = rewrite("", &targets());
        assert!(r.text.starts_with("# k8r: partitions by PARTUUID"));
        assert_eq!(r.text.lines().filter(|l| l.starts_with("PARTUUID=")).count(), 3);
        assert!(r.text.contains("/var/lib/k8r/etcd /var/lib/etcd none bind,nofail"), "{}", r.text);
    }
}

//! [`Node`]: what every flow needs: the host, the node config the builder
//! baked in (`/etc/k8r/node.toml`), the boot control, and where the
//! runtime keeps its files on the data partition.

use std::path::PathBuf;

use anyhow::Context;
use k8r_config::node::{NodeConfig, NODE_CONFIG_PATH};
use k8r_config::{Arch, InitSystem, Role};

use crate::bootctl::BootControl;
use crate::decide::Mode;
use crate::host::Host;
use crate::nodedisk::NodeDisk;

/// Where the runtime's per-boot files live (tmpfs): the lock, progress.
pub const RUN_DIR: &str = "/run/k8r";

/// The running node.
pub struct Node<'h> {
    /// Side effects.
    pub host: &'h dyn Host,
    /// `/etc/k8r/node.toml`.
    pub config: NodeConfig,
    /// How boot targets are switched.
    pub boot: BootControl,
    /// Service or PID 1.
    pub mode: Mode,
}

impl std::fmt::Debug for Node<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("root", &self.host.root())
            .field("boot", &self.boot)
            .field("mode", &self.mode)
            .finish()
    }
}

impl<'h> Node<'h> {
    /// Load the node config and resolve the boot control.
    pub fn load(host: &'h dyn Host, mode: Mode) -> anyhow::Result<Node<'h>> {
        let path = host.path(NODE_CONFIG_PATH);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (written by `k8r build`; is this a k8r image?)", path.display()))?;
        let config = NodeConfig::parse(&text).with_context(|| format!("{} is not valid", path.display()))?;
        let boot = BootControl::detect(host, config.firmware)?;
        Ok(Node { host, config, boot, mode })
    }

    /// The boot disk, with the running root's partitions protected.
    pub fn open_disk(&self) -> anyhow::Result<NodeDisk> {
        let running = self.running_role()?;
        NodeDisk::new(self.host.open_boot_disk()?, running)
    }

    /// The role of the partition holding the running root.
    pub fn running_role(&self) -> anyhow::Result<Role> {
        let number = self.host.running_partition()?;
        Role::from_number(number)
            .filter(|r| matches!(r, Role::Working | Role::Image))
            .with_context(|| format!("the running root is on partition {number}, which is not a k8r root slot"))
    }

    /// `path` (absolute on the node) under the host's root.
    pub fn path(&self, path: &str) -> PathBuf {
        self.host.path(path)
    }

    /// The data partition's mount point.
    pub fn data_dir(&self) -> PathBuf {
        self.host.path(&self.config.data_mount)
    }

    /// k8r's own state directory on data (0700).
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir().join("state")
    }

    /// The node state record.
    pub fn state_path(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    /// Secrets moved off the seed (0700; files 0600).
    pub fn secrets_dir(&self) -> PathBuf {
        self.data_dir().join("secrets")
    }

    /// The per-boot runtime directory.
    pub fn run_dir(&self) -> PathBuf {
        self.host.path(RUN_DIR)
    }

    /// This boot's id.
    pub fn boot_id(&self) -> String {
        std::fs::read_to_string(self.host.path("/proc/sys/kernel/random/boot_id"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string())
    }

    /// The running root's init system.
    pub fn init_system(&self) -> InitSystem {
        if self.host.path("/run/systemd/system").is_dir() || self.host.path("/lib/systemd/systemd").exists() {
            InitSystem::Systemd
        } else {
            InitSystem::OpenRc
        }
    }

    /// The CPU this binary runs on.
    pub fn arch(&self) -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }
}

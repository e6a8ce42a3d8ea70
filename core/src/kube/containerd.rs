//! containerd's `config.toml` for a Kubernetes node, the per-registry
//! `hosts.toml` files for registries reached over plain HTTP, and
//! `crictl.yaml`. Pure text generators.
//!
//! containerd 1.x reads config version 2 and containerd 2.x version 3, in
//! which the CRI plugin is split into `io.containerd.cri.v1.images` and
//! `io.containerd.cri.v1.runtime`
//! (<https://github.com/containerd/containerd/blob/main/docs/PLUGINS.md>,
//! <https://github.com/containerd/containerd/blob/main/RELEASES.md>).
//! Registries are configured through `config_path` and `hosts.toml`, the
//! only mechanism containerd 2.x still has
//! (<https://github.com/containerd/containerd/blob/main/docs/hosts.md>).
//! The pause image is left to containerd's default, which matches its
//! release.
//!
//! Must not: write files, or emit settings for containerd releases k8r has
//! not checked (older than 1.6, or 3.x and later).

use k8r_config::cluster::kube::Version;
use k8r_config::cluster::net::Endpoint;

use super::{CgroupDriver, CRI_SOCKET, RUNC_BIN};

/// Where containerd reads its config.
pub const CONFIG_PATH: &str = "/etc/containerd/config.toml";
/// containerd's per-registry host configuration directory (`config_path`).
pub const CERTS_D: &str = "/etc/containerd/certs.d";
/// Where crictl reads its config.
pub const CRICTL_CONFIG_PATH: &str = "/etc/crictl.yaml";

/// A containerd release k8r cannot write a config for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("containerd {version} is not supported: k8r writes configs for containerd 1.6, 1.7 and 2.x")]
pub struct UnsupportedContainerd {
    /// The release asked for.
    pub version: String,
}

/// The `version` of containerd's config file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigVersion {
    /// containerd 1.6 and 1.7.
    V2,
    /// containerd 2.x.
    V3,
}

impl ConfigVersion {
    /// The format containerd `version` reads. 1.6 is the oldest release
    /// with `hosts.toml` and a supported Kubernetes CRI.
    pub fn for_release(version: &Version) -> Result<ConfigVersion, UnsupportedContainerd> {
        match (version.major, version.minor) {
            (1, 6..) => Ok(ConfigVersion::V2),
            (2, _) => Ok(ConfigVersion::V3),
            _ => Err(UnsupportedContainerd { version: version.to_string() }),
        }
    }
}

/// `config.toml` for containerd `version` under `driver`.
pub fn config_toml(version: &Version, driver: CgroupDriver) -> Result<String, UnsupportedContainerd> {
    let (images, runtime, format) = match ConfigVersion::for_release(version)? {
        ConfigVersion::V2 => ("io.containerd.grpc.v1.cri", "io.containerd.grpc.v1.cri", 2),
        ConfigVersion::V3 => ("io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime", 3),
    };
    let systemd = driver == CgroupDriver::Systemd;
    Ok(format!(
        "\
# Written by k8r for containerd {version}; Kubernetes talks to it over CRI.
version = {format}

# Registry settings live in one hosts.toml per registry below this directory.
[plugins.\"{images}\".registry]
  config_path = {certs_d}

[plugins.\"{runtime}\".containerd.runtimes.runc]
  runtime_type = \"io.containerd.runc.v2\"

[plugins.\"{runtime}\".containerd.runtimes.runc.options]
  # runc is installed by k8r, not found on PATH.
  BinaryName = {runc}
  # Must match the kubelet's cgroupDriver ({driver}).
  SystemdCgroup = {systemd}
",
        certs_d = toml_string(CERTS_D),
        runc = toml_string(RUNC_BIN),
    ))
}

/// The `certs.d` directory for `registry` (`/etc/containerd/certs.d/registry.lan:5000`).
pub fn hosts_dir(registry: &Endpoint) -> String {
    format!("{CERTS_D}/{registry}")
}

/// `hosts.toml` that sends pulls and pushes for `registry` over plain HTTP
/// (cluster.toml `containerd.insecure-registries`).
pub fn hosts_toml(registry: &Endpoint) -> String {
    let url = toml_string(&format!("http://{registry}"));
    format!(
        "\
# Written by k8r: {registry} is reached over plain HTTP (containerd.insecure-registries).
server = {url}

[host.{url}]
  capabilities = [\"pull\", \"resolve\", \"push\"]
"
    )
}

/// `crictl.yaml`: crictl talks to containerd without `--runtime-endpoint`.
pub fn crictl_yaml() -> String {
    let doc = serde_json::json!({
        "runtime-endpoint": CRI_SOCKET,
        "image-endpoint": CRI_SOCKET,
        "timeout": 10,
    });
    format!("# Written by k8r.\n{}", super::yaml::to_yaml(&doc))
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().expect("valid version")
    }

    #[test]
    fn config_version_by_release() {
        let cases = [
            ("1.6", "1.6.38", Ok(ConfigVersion::V2)),
            ("1.7", "1.7.27", Ok(ConfigVersion::V2)),
            ("2.0", "2.0.5", Ok(ConfigVersion::V3)),
            ("2.1", "2.1.5", Ok(ConfigVersion::V3)),
            ("too old", "1.5.18", Err(())),
            ("unknown future", "3.0.0", Err(())),
        ];
        for (name, input, want) in cases {
            assert_eq!(ConfigVersion::for_release(&v(input)).map_err(|_| ()), want, "{name}");
        }
    }

    #[test]
    fn unsupported_release_is_named() {
        let err = config_toml(&v("1.5.0"), CgroupDriver::Systemd).expect_err("too old");
        assert!(err.to_string().contains("containerd 1.5.0"), "{err}");
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}

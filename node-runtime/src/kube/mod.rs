//! Kubernetes on the node: everything k8r-node decides about kubeadm, the
//! kubelet and the cluster, as pure functions over typed inputs.
//!
//! * [`kubeadm`]: kubeadm configuration (`v1beta3` before Kubernetes 1.31,
//!   `v1beta4` from 1.31) from the node config and the seed.
//! * [`skew`]: the version-skew gate an upgrade or reinstall must pass
//!   before anything is written, and the binary-vs-state check that decides
//!   whether the kubelet may start or `kubeadm upgrade` is due.
//! * [`join`]: bootstrap tokens from the OS CSPRNG, the CA public-key pin,
//!   and join seeds for new nodes.
//! * [`health`]: node health checks as data, with JSON and Markdown reports.
//! * [`commands`]: the [`commands::KubeCommands`] seam through which the
//!   node runs kubeadm, kubectl and crictl, the argv of every call k8r
//!   makes, and parsers for their output.
//!
//! Must not: touch files, devices or processes itself. Side effects go
//! through the small traits defined here ([`commands::KubeCommands`],
//! [`health::Probe`]), which the runtime wires to its `Host`.

pub mod commands;
pub mod health;
pub mod join;
pub mod kubeadm;
pub mod skew;

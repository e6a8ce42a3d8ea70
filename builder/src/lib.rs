//! The k8r builder: turns a vendor Raspberry Pi image into a golden image
//! and upgrade artifacts, as a normal user (no root, loop devices or mounts).

pub mod components;
pub mod fetch;
pub mod golden;
pub mod layout;
pub mod node_binary;

//! The k8r builder: turns a vendor Raspberry Pi image into a golden image
//! and upgrade artifacts, as a normal user (no root, loop devices or mounts).

pub mod artifacts;
pub mod assemble;
pub mod build;
pub mod cli;
pub mod components;
pub mod estimate;
pub mod fetch;
pub mod flash;
pub mod golden;
pub mod inspect;
pub mod layout;
pub mod logging;
pub mod node_binary;
pub mod secrets;
pub mod seed;
pub mod serve;
pub mod signing;
pub mod vendor;

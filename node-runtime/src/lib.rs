//! The k8r node runtime (`k8r-node`): the agent on every node.

pub mod kube;
pub mod upgrade;

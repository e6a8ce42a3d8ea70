//! `k8r-node`: the node agent.

fn main() {
    println!("k8r-node {}", env!("CARGO_PKG_VERSION"));
}

//! `k8r`: the host-side builder.

fn main() {
    println!("k8r {}", env!("CARGO_PKG_VERSION"));
}

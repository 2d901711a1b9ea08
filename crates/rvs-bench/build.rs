//! Builds the benchmark's eBPF programs in bpf/ with clang: rvs-io's build
//! script, shared (every `*.c` in `bpf/` becomes `$OUT_DIR/<stem>.o`).

#[path = "../rvs-io/build.rs"]
mod bpf_build;

fn main() -> std::process::ExitCode {
    println!("cargo:rerun-if-changed=../rvs-io/build.rs");
    bpf_build::main()
}

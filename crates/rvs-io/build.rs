//! Builds the eBPF programs in bpf/ with clang (see the xdp module). Also
//! rvs-bench's build script (its build.rs calls this file's `main`).
//!
//! Every `*.c` in `bpf/` (and in `tests/bpf/`, for programs only tests load)
//! becomes `$OUT_DIR/<stem>.o`, embedded with `include_bytes!`.
//! Needs clang (any version that targets BPF; Debian 12 ships 14) and the
//! libbpf headers (`bpf/bpf_helpers.h`): `apt-get install clang libbpf-dev`.
//! `$CLANG` overrides the compiler.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

/// Directories whose `*.c` files are BPF programs.
const BPF_DIRS: &[&str] = &["bpf", "tests/bpf"];

const INSTALL_HINT: &str = "install them with `apt-get install clang libbpf-dev`";

pub fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    let mut sources = Vec::new();
    for dir in BPF_DIRS {
        println!("cargo:rerun-if-changed={dir}");
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "c") {
                sources.push(path);
            }
        }
    }
    sources.sort();
    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
        let stem = src.file_stem().expect("a .c file has a stem");
        let obj = out_dir.join(format!("{}.o", stem.to_string_lossy()));
        if let Err(msg) = compile(&clang, src, &obj) {
            println!("cargo:warning={msg}");
            eprintln!("error: {msg}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn compile(clang: &str, src: &Path, obj: &Path) -> Result<(), String> {
    let krate = env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "rvs-io".to_owned());
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() && env::var_os("CLANG").is_none() {
        return Err(format!(
            "{krate}: /usr/include/bpf/bpf_helpers.h is missing: the BPF programs need the \
             libbpf headers and clang; {INSTALL_HINT}"
        ));
    }
    let status = Command::new(clang)
        .args([
            "-O2",
            "-g", // BTF: aya needs it for the BTF-defined maps; do not strip.
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-Wall",
            "-Werror",
            "-c",
        ])
        .arg(src)
        .arg("-o")
        .arg(obj)
        .status()
        .map_err(|e| {
            format!(
                "{krate}: cannot run `{clang}` to build the BPF program {} ({e}): the BPF \
                 programs need clang and the libbpf headers; {INSTALL_HINT}",
                src.display()
            )
        })?;
    if !status.success() {
        return Err(format!(
            "{krate}: `{clang}` failed to build the BPF program {} ({status}); if headers are \
             missing, {INSTALL_HINT}",
            src.display()
        ));
    }
    Ok(())
}

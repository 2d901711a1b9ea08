//! rvsadm — the ipvsadm-compatible command line.
//!
//! The command line is built in the
//! control-plane and data-plane milestones; this binary currently only
//! reports its version and that state.

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version") | Some("-v") => {
            println!("rvsadm {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "rvsadm {}: the ipvsadm command line is not implemented yet in this build \
                 (only the engine library, rvs-core, is). See README.md.",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}

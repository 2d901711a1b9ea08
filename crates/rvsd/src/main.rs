//! rvsd — the rvs director daemon. All logic lives in the library (`rvsd::run`).

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(rvsd::run(std::env::args_os().skip(1)))
}

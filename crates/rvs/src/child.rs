//! The other rvs programs and their processes, shared by `lab` and `bench`.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The binary `name` (rvsd, rvsadm) installed next to this `rvs`.
pub fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let p = exe.with_file_name(name);
    if p.exists() {
        Ok(p)
    } else {
        Err(format!(
            "{} not found next to rvs (build the workspace: cargo build --release)",
            p.display()
        ))
    }
}

/// Stop a daemon the way an operator would: SIGTERM, up to 5 s for a clean
/// exit, then SIGKILL.
pub fn stop(c: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

//! Network-namespace plumbing shared by `rvs lab` and `rvs bench`: running
//! `ip`, entering a namespace from a thread, veth pairs, addresses,
//! offloads, and removing a namespace with its processes.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Run a command; its stdout, or an error naming it with its stderr.
pub fn run_cmd(args: &[&str]) -> Result<String, String> {
    let (prog, rest) = args.split_first().ok_or("empty command")?;
    let o = Command::new(prog)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !o.status.success() {
        return Err(format!(
            "'{}' failed ({}): {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Run `f` on a thread that entered network namespace `ns`.
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter(&path)?;
        f()
    })
    .join()
    .map_err(|_| "namespace thread panicked".to_string())?
}

/// Move the calling thread into the network namespace at `path`.
pub fn enter(path: &str) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("{path}: {e}"))?;
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("setns {path}: {e}"))
}

/// A veth from `a` (named `a_if`) to `b` (named `b_if`), one queue each, up.
pub fn veth(a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), String> {
    run_cmd(&[
        "ip",
        "-n",
        a,
        "link",
        "add",
        a_if,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b,
        "numtxqueues",
        "1",
        "numrxqueues",
        "1",
    ])?;
    run_cmd(&["ip", "-n", a, "link", "set", a_if, "up"])?;
    run_cmd(&["ip", "-n", b, "link", "set", b_if, "up"])?;
    Ok(())
}

/// `ip -n NS addr add CIDR dev DEV`.
pub fn addr(ns: &str, cidr: &str, dev: &str) -> Result<(), String> {
    run_cmd(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]).map(|_| ())
}

/// Kill every process in `ns`, then delete it.
pub fn remove_ns(ns: &str) {
    let pids = |sig: &str| {
        if let Ok(out) = run_cmd(&["ip", "netns", "pids", ns]) {
            for pid in out.split_whitespace() {
                let _ = Command::new("kill")
                    .args([sig, pid])
                    .stderr(Stdio::null())
                    .status();
            }
            !out.trim().is_empty()
        } else {
            false
        }
    };
    if pids("-TERM") {
        std::thread::sleep(Duration::from_millis(200));
        pids("-KILL");
    }
    let _ = Command::new("ip")
        .args(["netns", "del", ns])
        .stderr(Stdio::null())
        .status();
}

/// GRO on for `iface` in `ns` (`ethtool -K IF gro on`): a veth then
/// receives through NAPI (which can be threaded and pinned) rather than the
/// sender's CPU's backlog, and takes frames XDP redirects into it.
pub fn gro_on(ns: &str, iface: &str) -> Result<(), String> {
    let i = iface.to_string();
    in_ns(ns, move || {
        rvs_io::packet::set_gro(&i, true).map_err(|e| format!("GRO on {i}: {e}"))
    })
}

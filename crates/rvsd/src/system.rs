//! What rvsd reads from the system: interfaces, entropy, time.

use std::io::{self, Read};
use std::path::Path;

/// `IFF_UP`.
const IFF_UP: u32 = 0x1;
/// `IFF_LOOPBACK`.
const IFF_LOOPBACK: u32 = 0x8;

const SYS_NET: &str = "/sys/class/net";

/// Whether `name` can be an interface name (and so a safe path component).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0'])
        && !name.chars().any(char::is_whitespace)
}

/// Whether interface `name` exists in this network namespace.
pub fn interface_exists(name: &str) -> bool {
    valid_ifname(name) && Path::new(SYS_NET).join(name).exists()
}

/// The MTU of interface `name`, `None` if there is no such interface.
pub fn interface_mtu(name: &str) -> Option<u32> {
    if !interface_exists(name) {
        return None;
    }
    let mtu = std::fs::read_to_string(Path::new(SYS_NET).join(name).join("mtu")).ok();
    Some(mtu.and_then(|m| m.trim().parse().ok()).unwrap_or(1500))
}

fn parse_flags(text: &str) -> Option<u32> {
    let t = text.trim();
    u32::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).ok()
}

/// Every interface that is up and not a loopback, sorted by name.
pub fn default_interfaces() -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SYS_NET)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let flags = std::fs::read_to_string(entry.path().join("flags"))
            .ok()
            .and_then(|f| parse_flags(&f));
        if let Some(f) = flags
            && f & IFF_UP != 0
            && f & IFF_LOOPBACK == 0
        {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// A random key for the connection hash (32 bytes of `/dev/urandom`).
pub fn random_hash_key() -> io::Result<[u64; 4]> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let mut key = [0u64; 4];
    for (k, chunk) in key.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *k = u64::from_le_bytes(b);
    }
    Ok(key)
}

/// The engine's clock: milliseconds since the daemon started.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Clock {
        Clock {
            start: std::time::Instant::now(),
        }
    }

    /// Now, as the engine counts time.
    pub fn now(&self) -> rvs_core::Instant {
        rvs_core::Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }
}

/// The nice value of control-plane threads that do bulk work (the
/// connection listing's writer) where SCHED_IDLE is refused: the lowest
/// priority, so that the forwarding threads (nice 0) get the CPU whenever
/// they want it, as the kernel's softirq forwarding preempts ipvsadm's
/// dump.
pub const BACKGROUND_NICE: i32 = 19;

/// Where [`lower_thread_priority`] put the calling thread.
#[derive(Debug)]
pub enum Background {
    /// SCHED_IDLE: it runs only on a CPU nothing else wants.
    Idle,
    /// SCHED_IDLE was refused (the error): nice [`BACKGROUND_NICE`].
    Nice(io::Error),
}

/// Lower the calling thread (not the process) for bulk work: SCHED_IDLE
/// (`rvs_io::sched`), else [`BACKGROUND_NICE`] (`setpriority(2)` with
/// `PRIO_PROCESS` and the thread's id). Lowering needs no privilege; a
/// seccomp filter may refuse either (`EPERM`), which the caller logs.
/// Irreversible without `CAP_SYS_NICE`: only for a thread that ends with
/// its work.
pub fn lower_thread_priority() -> io::Result<Background> {
    match rvs_io::sched::set_idle() {
        Ok(()) => Ok(Background::Idle),
        Err(idle) => {
            rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICE)
                .map_err(io::Error::from)?;
            Ok(Background::Nice(idle))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_one_thread_only() {
        let me = rvs_io::sched::policy().unwrap();
        let lowered = std::thread::spawn(|| {
            let b = lower_thread_priority().unwrap();
            (b, rvs_io::sched::policy().unwrap())
        })
        .join()
        .unwrap();
        match lowered {
            (Background::Idle, p) => assert_eq!(p.0, 5, "SCHED_IDLE"),
            (Background::Nice(e), _) => eprintln!("SCHED_IDLE refused here ({e}): nice 19"),
        }
        assert_eq!(rvs_io::sched::policy().unwrap(), me);
    }

    #[test]
    fn names_and_flags() {
        assert!(!valid_ifname("../etc"));
        assert!(!valid_ifname(".."));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("abcdefghijklmnop"));
        assert!(valid_ifname("eth0.100"));
        assert!(interface_exists("lo"));
        assert!(!interface_exists("no-such-if0"));
        assert!(interface_mtu("lo").is_some());
        assert_eq!(parse_flags("0x1003\n"), Some(0x1003));
        let d = default_interfaces().unwrap();
        assert!(!d.iter().any(|n| n == "lo"));
    }

    #[test]
    fn keys_differ() {
        assert_ne!(random_hash_key().unwrap(), random_hash_key().unwrap());
    }
}

//! Network namespaces for the benches: `rvsbench-<pid>-*`, built with
//! iproute2, removed (with every process in them) when the [`Topo`] drops:
//! on success, on error and after SIGINT/SIGTERM (the signal only sets a
//! flag; every load loop polls it and returns, and the drop cleans up).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use crate::netns::{addr, enter, gro_on, in_ns, remove_ns, run_cmd, veth};

/// Namespace name prefix of every bench.
pub const PREFIX: &str = "rvsbench-";

/// The flag SIGINT and SIGTERM set.
pub type Stop = Arc<AtomicBool>;

/// Register SIGINT/SIGTERM to set the returned flag.
pub fn stop_flag() -> Result<Stop, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    Ok(stop)
}

/// Whether a stop was asked for.
pub fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}

/// `Err("interrupted")` once a stop was asked for.
pub fn check(stop: &AtomicBool) -> Result<(), String> {
    if stopped(stop) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Write `value` to a sysctl/sysfs file inside namespace `ns` (sysfs needs
/// the namespace's own mount: `ip netns exec` makes one).
pub fn ns_write(ns: &str, path: &str, value: &str) -> Result<(), String> {
    run_cmd(&[
        "ip",
        "netns",
        "exec",
        ns,
        "sh",
        "-c",
        &format!("echo {value} > {path}"),
    ])
    .map(|_| ())
}

/// Pin every thread of process `pid` to `cpu`.
pub fn pin(pid: u32, cpu: usize) -> Result<(), String> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(|e| format!("/proc/{pid}/task: {e}"))?;
    for t in tasks.flatten() {
        let Some(tid) = t
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            continue;
        };
        rustix::thread::sched_setaffinity(Some(tid), &set)
            .map_err(|e| format!("pin {pid}/{tid:?} to CPU {cpu}: {e}"))?;
    }
    Ok(())
}

/// Scheduling policy of thread or process `pid` with util-linux `chrt`:
/// `idle` (SCHED_IDLE) or `fifo1` (SCHED_FIFO priority 1).
pub fn chrt(pid: u32, policy: &str) -> Result<(), String> {
    let (flag, prio) = match policy {
        "idle" => ("-i", "0"),
        "fifo1" => ("-f", "1"),
        other => return Err(format!("unknown scheduling policy '{other}'")),
    };
    run_cmd(&["chrt", flag, "-p", prio, &pid.to_string()]).map(|_| ())
}

/// Pin the calling thread to `cpu`.
pub fn pin_self(cpu: usize) -> Result<(), String> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| format!("pin to CPU {cpu}: {e}"))
}

/// Pids of the kernel threads named `napi/IF-*` (threaded NAPI of `iface`).
pub fn napi_threads(iface: &str) -> Vec<u32> {
    let want = format!("napi/{iface}-");
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                && comm.trim_end().starts_with(&want)
            {
                v.push(pid);
            }
        }
    }
    v
}

/// Threaded NAPI on `iface` in `ns`, its threads pinned to `cpu`; the
/// number of threads pinned.
pub fn threaded_napi(ns: &str, iface: &str, cpu: usize) -> Result<usize, String> {
    ns_write(ns, &format!("/sys/class/net/{iface}/threaded"), "1")?;
    let pids = napi_threads(iface);
    for &p in &pids {
        pin(p, cpu)?;
    }
    Ok(pids.len())
}

/// `/sys/class/net/IF/FILE` of `iface` in `ns` (sysfs needs the
/// namespace's own mount: `ip netns exec` makes one).
fn sysfs_net(ns: &str, iface: &str, file: &str) -> Result<String, String> {
    run_cmd(&[
        "ip",
        "netns",
        "exec",
        ns,
        "cat",
        &format!("/sys/class/net/{iface}/{file}"),
    ])
}

/// A counter of `iface` in `ns` (`/sys/class/net/IF/statistics/NAME`).
pub fn if_stat(ns: &str, iface: &str, name: &str) -> Result<u64, String> {
    let out = sysfs_net(ns, iface, &format!("statistics/{name}"))?;
    out.trim()
        .parse()
        .map_err(|_| format!("bad {name} counter of {iface}: '{}'", out.trim()))
}

/// The MAC address of `iface` in `ns`.
pub fn mac(ns: &str, iface: &str) -> Result<[u8; 6], String> {
    let out = sysfs_net(ns, iface, "address")?;
    parse_mac(out.trim()).ok_or_else(|| format!("bad MAC address '{}' of {iface}", out.trim()))
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(m)
}

/// Namespaces and processes of one bench topology, all removed on drop.
#[derive(Debug)]
pub struct Topo {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    /// A private scratch directory, removed on drop.
    pub dir: PathBuf,
}

impl Topo {
    /// An empty topology named after `what` and this process.
    pub fn new(what: &str) -> Result<Topo, String> {
        let prefix = format!("{PREFIX}{}-{what}-", std::process::id());
        let dir = std::env::temp_dir().join(prefix.trim_end_matches('-'));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Topo {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        })
    }

    /// A new namespace `<prefix><short>` with `lo` up; its full name.
    pub fn ns(&mut self, short: &str) -> Result<String, String> {
        let name = format!("{}{short}", self.prefix);
        run_cmd(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run_cmd(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Start `program args` in `ns` (stdout/stderr to `log` in the scratch
    /// directory); it is killed on drop. Returns its pid.
    pub fn spawn(
        &mut self,
        ns: &str,
        log: &str,
        program: &str,
        args: &[&str],
    ) -> Result<u32, String> {
        let log = File::create(self.dir.join(log)).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("spawn {program}: {e}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Whether the child with `pid` has exited.
    pub fn exited(&mut self, pid: u32) -> bool {
        self.children
            .iter_mut()
            .find(|c| c.id() == pid)
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// Stop one child (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.swap_remove(i);
            crate::child::stop(&mut c);
        }
    }

    /// The text of a log in the scratch directory.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for c in &mut self.children {
            crate::child::stop(c);
        }
        for ns in &self.namespaces {
            remove_ns(ns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Busy and total jiffies of every CPU, from `/proc/stat`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuTimes {
    /// Per CPU: (busy, total). Busy is everything but idle and iowait.
    pub cpus: Vec<(u64, u64)>,
    /// Per CPU: softirq jiffies.
    pub softirq: Vec<u64>,
}

impl CpuTimes {
    /// Read `/proc/stat`.
    pub fn now() -> CpuTimes {
        parse_proc_stat(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
    }

    /// Busy seconds of `cpu` since `earlier` (USER_HZ = 100).
    pub fn busy_since(&self, earlier: &CpuTimes, cpu: usize) -> Option<f64> {
        let (b1, _) = *self.cpus.get(cpu)?;
        let (b0, _) = *earlier.cpus.get(cpu)?;
        Some(b1.saturating_sub(b0) as f64 / 100.0)
    }

    /// Softirq seconds of `cpu` since `earlier`.
    pub fn softirq_since(&self, earlier: &CpuTimes, cpu: usize) -> Option<f64> {
        let s1 = *self.softirq.get(cpu)?;
        let s0 = *earlier.softirq.get(cpu)?;
        Some(s1.saturating_sub(s0) as f64 / 100.0)
    }
}

/// Parse the `cpuN` lines of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> CpuTimes {
    let mut cpus = Vec::new();
    let mut softirq = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(idx) = name
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal (guest counted in user).
        let total: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        if cpus.len() <= idx {
            cpus.resize(idx + 1, (0, 0));
            softirq.resize(idx + 1, 0);
        }
        cpus[idx] = (total.saturating_sub(idle), total);
        softirq[idx] = v.get(6).copied().unwrap_or(0);
    }
    CpuTimes { cpus, softirq }
}

/// utime + stime (clock ticks) of a `/proc/.../stat` line.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime 14 and stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks (user + system) used so far by each thread (by thread id) of
/// each of `pids`.
pub fn cpu_ticks(pids: &[u32]) -> std::collections::HashMap<u32, u64> {
    let mut ticks = std::collections::HashMap::new();
    for pid in pids {
        let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for t in rd.flatten() {
            let Some(tid) = t.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(v) = std::fs::read_to_string(t.path().join("stat"))
                .ok()
                .and_then(|s| parse_stat_ticks(&s))
            {
                ticks.insert(tid, v);
            }
        }
    }
    ticks
}

/// CPU seconds the threads of `after` used since `before` (both from
/// [`cpu_ticks`]): a thread that exited in between is not counted, one
/// that started is counted from its start, so the figure is never
/// negative.
pub fn cpu_seconds_between(
    before: &std::collections::HashMap<u32, u64>,
    after: &std::collections::HashMap<u32, u64>,
) -> f64 {
    let ticks: u64 = after
        .iter()
        .map(|(tid, &t)| t.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    ticks as f64 / 100.0
}

/// CPU seconds used so far by the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|s| parse_stat_ticks(&s))
        .map_or(0.0, |t| t as f64 / 100.0)
}

/// Wait up to `timeout` for `ok()`; false on timeout or stop.
pub fn wait_for(stop: &AtomicBool, timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if stopped(stop) || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `rvsadm ARGS` (the sibling binary) in namespace `ns`; its stdout.
pub fn adm(ns: &str, args: &[&str]) -> Result<String, String> {
    let rvsadm = crate::child::sibling("rvsadm")?;
    let rvsadm = rvsadm
        .to_str()
        .ok_or("rvsadm path is not UTF-8")?
        .to_string();
    let mut v = vec!["ip", "netns", "exec", ns, &rvsadm];
    v.extend_from_slice(args);
    run_cmd(&v)
}

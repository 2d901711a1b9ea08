//! The helpers the integration tests of the rvs crates used to copy
//! between their `tests/common` modules: the root check, the workspace's
//! built binaries, commands that must succeed, network namespaces (threads
//! that enter one, veths between two) — nothing specific to one crate.
//!
//! A dev-dependency only: no production crate depends on it. Each crate's
//! `tests/common/mod.rs` re-exports what it uses and keeps what is its own
//! (rvsd's `Lab`, the session tests' `rvs lab`, frame builders…).

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A binary of the workspace, next to the test executable's directory.
///
/// # Panics
///
/// When it is not built (run the tests through `cargo test --workspace`).
pub fn bin(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built (run the tests through cargo test/nextest --workspace)",
        p.display()
    );
    p
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether to run: root, or skip (with a message) when
/// `RVS_SKIP_PRIVILEGED_TESTS=1`; panics otherwise.
pub fn privileged() -> bool {
    if is_root() {
        return true;
    }
    if std::env::var("RVS_SKIP_PRIVILEGED_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: needs root (RVS_SKIP_PRIVILEGED_TESTS=1)");
        return false;
    }
    panic!(
        "network-namespace tests need root (CI runs them as root; set RVS_SKIP_PRIVILEGED_TESTS=1 to skip)"
    );
}

/// Panics unless root (tests that never skip).
pub fn require_root() {
    assert!(
        is_root(),
        "network-namespace tests need root (CI runs them as root)"
    );
}

/// Run `args[0]` with the rest as arguments; panics unless it succeeds.
pub fn run(args: &[&str]) -> Output {
    let o = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Run a command; its stdout. Panics with its stderr when it fails.
pub fn sh(args: &[&str]) -> String {
    let o = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
    assert!(
        o.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ip ARGS…`; its stdout. Panics with its stderr when it fails.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n ns WORDS…` (the words split on whitespace), expecting success.
pub fn ipn(ns: &str, words: &str) {
    let mut v = vec!["ip", "-n", ns];
    v.extend(words.split_whitespace());
    run(&v);
}

/// Enter network namespace `ns` (`/run/netns/NS`) on the calling thread.
fn enter_netns(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

/// Run `f` on a thread that entered network namespace `ns`; its result (a
/// panic of `f` goes on in the caller). `f` may borrow from the caller.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(&path);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Start `f` on a new thread that entered network namespace `ns`.
pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter_netns(&path);
        f()
    })
}

/// A veth from `a` (named `a_if`) to `b` (named `b_if`), one queue each, up.
pub fn veth(a: &str, a_if: &str, b: &str, b_if: &str) {
    veth_queues(a, a_if, b, b_if, 1);
}

/// A veth from `a` (named `a_if`) to `b` (named `b_if`), `q` queues each, up.
pub fn veth_queues(a: &str, a_if: &str, b: &str, b_if: &str, q: u32) {
    ipn(
        a,
        &format!(
            "link add {a_if} numtxqueues {q} numrxqueues {q} type veth peer name {b_if} \
             netns {b} numtxqueues {q} numrxqueues {q}"
        ),
    );
    ipn(a, &format!("link set {a_if} up"));
    ipn(b, &format!("link set {b_if} up"));
    wait_up(a, a_if);
    wait_up(b, b_if);
}

/// Wait until `dev` in `ns` says `state UP`: the kernel attaches its qdisc
/// (frames sent before are dropped) and sets its operstate from the
/// link-watch work, up to a second after `link set up` on a busy machine.
pub fn wait_up(ns: &str, dev: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show", dev])
            .output()
            .expect("ip link show");
        if String::from_utf8_lossy(&o.stdout).contains("state UP") {
            return;
        }
        assert!(Instant::now() < deadline, "{dev} in {ns} never came up");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The fuzz harnesses' generator (README, "Fuzzing"): a seeded xorshift,
/// so that a failure reproduces from its seed and iteration. A seed of 0
/// gives only zeros: the harnesses' seeds are odd.
#[derive(Debug, Clone)]
pub struct FuzzRng(pub u64);

impl FuzzRng {
    /// The next 64 bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A fuzz harness's iterations and seed: `RVS_FUZZ_ITERS` and
/// `RVS_FUZZ_SEED` when set (and numbers), else the harness's defaults.
pub fn fuzz_env(iters: u64, seed: u64) -> (u64, u64) {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    (var("RVS_FUZZ_ITERS", iters), var("RVS_FUZZ_SEED", seed))
}

/// The two-sided 97.5 % quantile of Student's t with `df` degrees of
/// freedom (1 to 30; the normal's beyond).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    T.get(df.wrapping_sub(1)).copied().unwrap_or(1.96)
}

/// The mean of `x` and the half-width of its 95 % confidence interval
/// (Student's t; NaN for fewer than two values): how the paired
/// measurements (health checks against forwarding, the packet path's
/// scaling) state a ratio.
pub fn mean_ci95(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    if x.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, t975(x.len() - 1) * (var / n).sqrt())
}

#[cfg(test)]
mod stats_tests {
    use super::mean_ci95;

    #[test]
    fn mean_and_interval() {
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12);
        // s = 1, t(2) = 4.303: 4.303 / sqrt(3).
        assert!((h - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(mean_ci95(&[5.0]).1.is_nan());
    }
}

//! `rvs lab nat|dr|tun`: the whole lab, end to end (namespaces, rvsd --io
//! xdp, real HTTP servers), and nothing left behind.
//!
//! Needs root, iproute2, python3 and AF_XDP; skipped (with a message)
//! without root or iproute2. `rvsd`/`rvsadm` must sit next to `rvs` (run
//! through cargo test/nextest --workspace).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RVS: &str = env!("CARGO_BIN_EXE_rvs");

fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        if std::env::var_os("RVS_SKIP_PRIVILEGED_TESTS").is_none() {
            panic!(
                "needs root (network namespaces, XDP) (CI runs as root; set RVS_SKIP_PRIVILEGED_TESTS=1 to skip)"
            );
        }
        eprintln!("skipped: needs root (network namespaces, XDP)");
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        if std::env::var_os("RVS_SKIP_PRIVILEGED_TESTS").is_none() {
            panic!(
                "needs iproute2 (`ip`) (CI runs as root; set RVS_SKIP_PRIVILEGED_TESTS=1 to skip)"
            );
        }
        eprintln!("skipped: needs iproute2 (`ip`)");
        return false;
    }
    true
}

fn lab(mode: &str) {
    if !can_run() {
        return;
    }
    let start = Instant::now();
    let child = Command::new(RVS)
        .args(["lab", mode, "--requests", "6"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rvs");
    let pid = child.id();
    let out = child.wait_with_output().expect("rvs lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rvs lab {mode}: {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "rvs lab {mode} took {:?}",
        start.elapsed()
    );
    let answers: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("request "))
        .collect();
    assert_eq!(answers.len(), 6, "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    // rr over two real servers: both answered, three times each.
    for rs in ["rs1 ", "rs2 "] {
        let n = answers.iter().filter(|l| l.contains(rs)).count();
        assert_eq!(n, 3, "{rs}answered {n} times:\n{stdout}");
    }
    assert!(stdout.contains("6/6 requests answered"), "{stdout}");
    // The stats block.
    assert!(stdout.contains("rvsadm -Ln --stats"), "{stdout}");
    assert!(
        stdout.contains("Prot LocalAddress:Port               Conns   InPkts  OutPkts"),
        "{stdout}"
    );
    let vip = stdout
        .lines()
        .find(|l| l.starts_with("TCP "))
        .unwrap_or_else(|| panic!("no service line:\n{stdout}"));
    let conns: u64 = vip
        .split_whitespace()
        .nth(2)
        .and_then(|f| f.parse().ok())
        .expect("Conns");
    assert_eq!(conns, 6, "{stdout}");
    // Nothing left behind.
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    let prefix = format!("rvslab-{pid}-");
    assert!(
        !list.lines().any(|l| l.starts_with(&prefix)),
        "namespaces left:\n{list}"
    );
    assert!(
        !std::env::temp_dir().join(format!("rvslab-{pid}")).exists(),
        "temp dir left"
    );
}

#[test]
fn netns_lab_dr() {
    lab("dr");
}

#[test]
fn netns_lab_nat() {
    lab("nat");
}

#[test]
fn netns_lab_tun() {
    lab("tun");
}

#[test]
fn lab_rejects_bad_arguments() {
    for args in [
        &["lab"][..],
        &["lab", "xyz"],
        &["lab", "dr", "--servers", "9"],
        &["lab", "dr", "--servers", "0"],
        &["lab", "nat", "--scheduler", "nope"],
        &["lab", "tun", "--requests", "0"],
    ] {
        let o = Command::new(RVS).args(args).output().expect("rvs");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
}

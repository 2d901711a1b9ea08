//! `rvs lab ha` (DR and NAT): two directors with keepalived (VRRP only)
//! and connection sync; the long-lived connections survive the master's
//! failure and its return. Needs root and keepalived (scripts/test.sh
//! installs it; with RVS_REQUIRE_KEEPALIVED set its absence fails).

use std::process::Command;

fn can_run() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        eprintln!("SKIP: needs root (network namespaces)");
        return false;
    }
    if Command::new("keepalived")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("RVS_REQUIRE_KEEPALIVED").is_none(),
            "RVS_REQUIRE_KEEPALIVED is set but keepalived is not installed"
        );
        eprintln!("SKIP: keepalived is not installed");
        return false;
    }
    true
}

fn lab(extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_rvs"))
        .args(["lab", "ha", "--conns", "20"])
        .args(extra)
        .env_remove("RVS_SOCKET")
        .output()
        .expect("rvs lab ha");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "rvs lab ha {extra:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for step in ["failover", "failback"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(step))
            .unwrap_or_else(|| panic!("no {step} line:\n{stdout}"));
        assert!(line.contains("lost: 0 of 20"), "{line}");
    }
}

#[test]
fn netns_lab_ha_dr() {
    if can_run() {
        lab(&[]);
    }
}

#[test]
fn netns_lab_ha_nat() {
    if can_run() {
        lab(&["--nat"]);
    }
}

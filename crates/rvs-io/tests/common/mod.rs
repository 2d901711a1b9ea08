//! Harness shared by rvs-io's integration tests: the root checks (skip with
//! a message when `RVS_SKIP_PRIVILEGED_TESTS` is set), commands, and the raw
//! Ethernet/IP frame builders of the classifier tests. Namespace threads and
//! `ip` come from `rvs-testsupport`.

// Not every test file uses every item.
#![allow(dead_code)]

use std::net::Ipv6Addr;
use std::process::Command;

// Not every test file uses every item.
#[allow(unused_imports)]
pub use rvs_testsupport::{in_netns as in_ns, ip, is_root};

/// Whether to run: root; otherwise skip (with a message naming `what` needs
/// root) when `RVS_SKIP_PRIVILEGED_TESTS` is set, and panic when not.
pub fn privileged(what: &str) -> bool {
    if is_root() {
        return true;
    }
    skip_or_panic(&format!("root ({what})"))
}

/// [`privileged`], and iproute2 (`ip`) installed.
pub fn privileged_ip(what: &str) -> bool {
    if !privileged(what) {
        return false;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return skip_or_panic("iproute2 (`ip`)");
    }
    true
}

/// `false` with a message when `RVS_SKIP_PRIVILEGED_TESTS` is set; a panic
/// saying the test needs `missing` otherwise.
fn skip_or_panic(missing: &str) -> bool {
    if std::env::var_os("RVS_SKIP_PRIVILEGED_TESTS").is_none() {
        panic!("needs {missing} (CI runs as root; set RVS_SKIP_PRIVILEGED_TESTS=1 to skip)");
    }
    eprintln!("skipped: needs {missing}");
    false
}

/// Panics unless root (tests that never skip).
pub fn require_root(what: &str) {
    assert!(is_root(), "{what} tests need root (CI runs them as root)");
}

/// `program args…`, expecting success; its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A veth `near` (in the test's namespace) whose peer lives in namespace
/// `ns`; the veth and the namespace are removed on drop.
pub struct Pair {
    pub ns: String,
    pub near: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.near])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

pub const ETH_IP: u16 = 0x0800;
pub const ETH_IP6: u16 = 0x86dd;

/// An Ethernet frame (02:..:01 from 02:..:02) carrying `l3`, with a VLAN 100
/// tag for each TPID of `tags`.
pub fn eth(ethertype: u16, tags: &[u16], l3: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for &tpid in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&[0x00, 0x64]); // VLAN 100
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

/// IPv4 header with `opt_words` 4-byte option words and the raw
/// flags/fragment-offset field, followed by `l4`.
pub fn ipv4_opts(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    frag: u16,
    opt_words: u8,
    l4: &[u8],
) -> Vec<u8> {
    let ihl = 5 + opt_words;
    let total = u16::from(ihl) * 4 + l4.len() as u16;
    let mut h = vec![0x40 | ihl, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend(std::iter::repeat_n(1u8, usize::from(opt_words) * 4)); // NOPs
    h.extend_from_slice(l4);
    h
}

/// An IPv4 packet (DF, no options) carrying `l4`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_opts(src, dst, proto, 0x4000, 0, l4) // DF
}

/// An IPv6 packet carrying `l4` (`next` header).
pub fn ipv6(src: &str, dst: &str, next: u8, l4: &[u8]) -> Vec<u8> {
    let addr = |s: &str| -> Ipv6Addr { s.parse().unwrap_or_else(|e| panic!("{s}: {e}")) };
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&addr(src).octets());
    h.extend_from_slice(&addr(dst).octets());
    h.extend_from_slice(l4);
    h
}

/// The first 8 bytes of a TCP/UDP/SCTP header (all an ICMP error quotes),
/// padded to 20.
pub fn l4(sport: u16, dport: u16) -> Vec<u8> {
    let mut h = sport.to_be_bytes().to_vec();
    h.extend_from_slice(&dport.to_be_bytes());
    h.resize(20, 0);
    h
}

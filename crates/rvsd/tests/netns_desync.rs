//! No silent desync between rvsd's table and its data plane (issue #13,
//! item 5), end to end, as root in network namespaces:
//!
//! * a change the XDP classifier's maps cannot hold (the 16385th virtual
//!   service) is refused by rvsadm with ipvsadm's "Memory allocation
//!   problem" and rvsd's reason, and changes nothing; before, it was
//!   acknowledged and silently missing from the classifier;
//! * a change the data plane fails to take (injected with
//!   `RVSD_INJECT_SYNC_FAIL`) fails in rvsadm with the reason, shows in
//!   `rvs dataplane`, and is retried until it takes; before, rvsadm
//!   returned 0 after a silent 2 s wait. Both backends.

mod common;
use common::*;

use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};

const PREFIX: &str = "rvsds";

/// A director namespace with one veth (to a peer namespace) for rvsd to
/// serve.
fn director(lab: &mut Lab) -> String {
    let peer = lab.ns("p");
    let d = lab.ns("d");
    veth(&d, "eth0", &peer, "eth0");
    ipn(&d, "addr add 10.0.0.2/24 dev eth0");
    d
}

fn rvs(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("rvs"))
        .args(args)
        .env_remove("RVS_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("rvs")
}

fn services(lab: &Lab, ns: &str) -> usize {
    lab.adm_ok(ns, &["-L", "-n"])
        .lines()
        .filter(|l| l.starts_with("TCP") || l.starts_with("UDP"))
        .count()
}

#[test]
fn netns_a_service_past_the_classifier_is_refused() {
    require_root();
    let mut lab = Lab::new(PREFIX, "full");
    let d = director(&mut lab);
    lab.start_rvsd(&d, Some("xdp"), &["eth0"], &["--fast-path", "off"]);
    let max = rvs_io::xdp::MAX_SERVICES;
    let mut rules = String::new();
    for n in 0..max {
        let _ = writeln!(rules, "-A -t 10.{}.{}.1:80 -s rr", n / 256, n % 256);
    }
    exec_with_input(
        &d,
        &[bin("rvsadm").to_str().expect("path"), "-R"],
        rules.as_bytes(),
    );
    assert_eq!(services(&lab, &d), max);

    let o = lab.adm(&d, &["-A", "-t", "10.200.0.1:80", "-s", "rr"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(255), "{err}");
    assert!(
        err.starts_with("Memory allocation problem\nrvsd: ")
            && err.contains("16385 entries, capacity 16384"),
        "{err}"
    );
    assert_eq!(services(&lab, &d), max, "nothing changed");
    // A restore that would end past the map changes nothing either.
    let mut more = String::new();
    let _ = writeln!(more, "-D -t 10.0.0.1:80");
    let _ = writeln!(more, "-A -t 10.200.0.1:80 -s rr");
    let _ = writeln!(more, "-A -t 10.200.0.2:80 -s rr");
    let o = Command::new("ip")
        .args(["netns", "exec", &d])
        .arg(bin("rvsadm"))
        .arg("-R")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(more.as_bytes())?;
            c.wait_with_output()
        })
        .expect("rvsadm -R");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(255), "{err}");
    assert!(
        err.contains("capacity 16384") && err.contains("nothing was applied"),
        "{err}"
    );
    let listing = lab.adm_ok(&d, &["-L", "-n"]);
    assert!(
        listing.contains("10.0.0.1:80"),
        "the -D line was not applied"
    );
    assert!(!listing.contains("10.200.0.1:80"));
    // Room made first: fits.
    lab.adm_ok(&d, &["-D", "-t", "10.0.0.1:80"]);
    lab.adm_ok(&d, &["-A", "-t", "10.200.0.1:80", "-s", "rr"]);
    assert_eq!(services(&lab, &d), max);
}

fn refused_sync(io: &str) {
    require_root();
    let mut lab = Lab::new(PREFIX, &format!("inj{io}"));
    lab.env.push(("RVSD_INJECT_SYNC_FAIL".into(), "81".into()));
    let d = director(&mut lab);
    lab.start_rvsd(&d, Some(io), &["eth0"], &["--fast-path", "off"]);
    lab.adm_ok(&d, &["-A", "-t", "10.0.0.100:80", "-s", "rr"]);

    let o = lab.adm(&d, &["-A", "-t", "10.0.0.100:81", "-s", "rr"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(255), "{err}");
    assert!(
        err.starts_with("Input/output error\nrvsd: ")
            && err.contains("could not take it")
            && err.contains("RVSD_INJECT_SYNC_FAIL"),
        "{err}"
    );
    let o = rvs(&d, &["dataplane"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("OUT OF STEP"), "{out}");
    // Undone: in step again, and later changes are acknowledged.
    lab.adm_ok(&d, &["-D", "-t", "10.0.0.100:81"]);
    let o = rvs(&d, &["dataplane"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("OUT OF STEP"), "{out}");
    lab.adm_ok(&d, &["-A", "-t", "10.0.0.100:82", "-s", "rr"]);
    let log = lab.rvsd_log();
    assert!(
        log.contains("cannot put table generation") && log.contains("holds the table again"),
        "{log}"
    );
}

#[test]
fn netns_a_change_the_xdp_data_plane_fails_to_take_is_not_acknowledged() {
    refused_sync("xdp");
}

#[test]
fn netns_a_change_the_packet_data_plane_fails_to_take_is_not_acknowledged() {
    refused_sync("packet");
}

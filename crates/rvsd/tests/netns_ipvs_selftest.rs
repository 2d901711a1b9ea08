//! The Linux kernel's own IPVS selftest
//! (`tools/testing/selftests/net/netfilter/ipvs.sh`), reproduced with rvsd +
//! rvsadm as the director, and 1 MiB transfers through the same topology.
//!
//! The script's topology, addresses and port, rebuilt here as it builds
//! them (`setup`), with every interface's offloads left at the kernel's
//! defaults: no ethtool, no checksum offload turned off. A client's veth
//! (under the client's bridge) has transmit checksum offload on, so its TCP
//! frames carry a *partial* checksum (only the pseudo-header sum) and the
//! director must finish it before the frames leave for a real server.
//!
//! ```text
//!   ns0 (client)            ns1 (director)             ns2 (real server)
//!   br0 10.0.0.2/24
//!    ├─ veth01 ────────── veth10 10.0.0.1/24
//!    │                    veth12 172.16.0.1/24 ────── veth21 172.16.0.2/24
//!    └─ veth02 ──────────────────────────────────────── veth20 10.0.0.3/24
//!   VIP 207.175.44.110, port 8080
//! ```
//!
//! How the script maps to this file:
//!
//! * `setup()`: [`setup`], the same namespaces (named `rvsipvs-…-c|d|r`),
//!   veths, bridge and addresses; the 32 random bytes of `dd if=/dev/urandom
//!   bs=32 count=1`. Its `sleep 1` is left out (nothing here waits on DAD).
//! * `test_dr`, `test_nat`, `test_tun`: [`configure`], line by line: the
//!   client's route to the VIP via 10.0.0.1 dev br0; the director's sysctls
//!   (`ip_forward`, `send_redirects` for TUN); the script's `ipvsadm`
//!   command lines run as they are by `rvsadm` (after rvsd is started in
//!   ns1 on veth10 and veth12, where the kernel's IPVS is simply there); the
//!   VIP on `lo:1` of the director; on the real server `arp_ignore=1`,
//!   `arp_announce=2`, `rp_filter=0` (all, veth21), the VIP on `lo:1`, for
//!   NAT `ip link del veth20` and the default route via 172.16.0.1.
//! * TUN: `modprobe ipip; ip link set tunl0 up` on the real server is
//!   `rvs realserver up --vip VIP --tun` (the XDP decapsulator on its
//!   interfaces; this kernel has no ipip module); the script's
//!   `net.ipv4.conf.tunl0.rp_filter=0` has no interface to apply to (the
//!   decapsulated packets arrive on veth21, whose `rp_filter` is 0). On the
//!   director the script loads ipip too; rvsd encapsulates by itself.
//! * `test_service`: [`test_service`]: `timeout 5 socat -u -4
//!   TCP-LISTEN:8080,reuseaddr STDOUT > outfile` in ns2 (instead of `sleep
//!   0.2`, wait until it listens), `timeout 2 socat -u -4 STDIN
//!   TCP:VIP:8080 < infile` in ns0, then the received file must equal the
//!   sent one (`cmp`).
//!
//! Each mode runs with rvsd's default packet I/O (XDP; its fast path as
//! `RVSD_FAST_PATH` says, default on: scripts/test.sh runs this file again
//! with `RVSD_FAST_PATH=off`) and with `--io packet`. With the script's pure
//! defaults no veth peer of the director is in NAPI mode (no GRO, no XDP)
//! except, in TUN, the real server's veth21 (the decapsulator's XDP
//! program): the fast path may be on but send nowhere. The tests print
//! what it did (`fast path: … hits N`).
//!
//! The `*_1mb` tests send 1 MiB of random bytes from the client, its
//! offloads still at their defaults (checksum offload and TSO on), through
//! the same topology with GRO on the director's veth peers (veth01, veth21:
//! NAPI mode, so that the fast path can send to them, as `rvs lab` does),
//! and compare what arrives byte for byte. With the fast path on they check
//! that it forwarded (hits > 0); with `RVSD_FAST_PATH=off` that it did not.
//!
//! The same 1 MiB over `--io packet` (`*_1mb_packet`): with no XDP
//! program on veth10 (one there turns TSO off on its peer veth01), the
//! client's TSO packets reach AF_PACKET whole, up to 64 KiB; rvsd cuts
//! them into segments (`tso-cut` in `rvs dataplane`). Before it did, they
//! were dropped for want of buffer room and 1 MiB took 10-30 s or timed
//! out.
//!
//! Needs root, iproute2, socat and `timeout` (coreutils); with
//! `RVS_SKIP_PRIVILEGED_TESTS=1` and no root the tests say so and pass.
//! Namespaces (prefix `rvsipvs-`), processes and files are removed by the
//! harness's guard, also when a test fails.

use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_proto::client::{Client, Endpoint};
use rvs_proto::{FastPathCounters, Reply, Request};

mod common;
use common::*;

/// The prefix of this file's namespaces.
const PREFIX: &str = "rvsipvs";

// The script's addresses and port.
const PORT: u16 = 8080;
const VIP: &str = "207.175.44.110";
const CIP: &str = "10.0.0.2";
const GIP: &str = "10.0.0.1";
const DIP: &str = "172.16.0.1";
const RIP: &str = "172.16.0.2";
const SIP: &str = "10.0.0.3";
/// The script's `datalen`.
const DATALEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Dr,
    Nat,
    Tun,
}

/// The three namespaces of the script.
struct Topology {
    /// ns0: the client, on br0.
    ns0: String,
    /// ns1: the director.
    ns1: String,
    /// ns2: the real server.
    ns2: String,
}

/// The script's `setup()`. `napi`: GRO on the director's veth peers
/// (veth01, veth21), the one change the 1 MB tests make, so that rvsd's
/// fast path has somewhere to send.
fn setup(lab: &mut Lab, napi: bool) -> Topology {
    let ns0 = lab.ns("c");
    let ns1 = lab.ns("d");
    let ns2 = lab.ns("r");
    run(&[
        "ip", "link", "add", "veth01", "netns", &ns0, "type", "veth", "peer", "name", "veth10",
        "netns", &ns1,
    ]);
    run(&[
        "ip", "link", "add", "veth02", "netns", &ns0, "type", "veth", "peer", "name", "veth20",
        "netns", &ns2,
    ]);
    run(&[
        "ip", "link", "add", "veth12", "netns", &ns1, "type", "veth", "peer", "name", "veth21",
        "netns", &ns2,
    ]);
    ipn(&ns0, "link set veth01 up");
    ipn(&ns0, "link set veth02 up");
    ipn(&ns0, "link add br0 type bridge");
    ipn(&ns0, "link set veth01 master br0");
    ipn(&ns0, "link set veth02 master br0");
    ipn(&ns0, "link set br0 up");
    ipn(&ns0, &format!("addr add {CIP}/24 dev br0"));

    ipn(&ns1, "link set veth10 up");
    ipn(&ns1, &format!("addr add {GIP}/24 dev veth10"));
    ipn(&ns1, "link set veth12 up");
    ipn(&ns1, &format!("addr add {DIP}/24 dev veth12"));

    ipn(&ns2, "link set veth21 up");
    ipn(&ns2, &format!("addr add {RIP}/24 dev veth21"));
    ipn(&ns2, "link set veth20 up");
    ipn(&ns2, &format!("addr add {SIP}/24 dev veth20"));

    if napi {
        napi_peer(&ns0, "veth01");
        napi_peer(&ns2, "veth21");
    }
    Topology { ns0, ns1, ns2 }
}

/// The script's `test_dr`, `test_nat` or `test_tun` up to `test_service`,
/// with rvsd started (`io`: its `--io`, `extra`: more options) where the
/// script's first `ipvsadm` runs. rvsd's child index.
fn configure(lab: &mut Lab, t: &Topology, mode: Mode, io: Option<&str>, extra: &[&str]) -> usize {
    let svc = format!("{VIP}:{PORT}");
    let rs = format!("{RIP}:{PORT}");
    ipn(&t.ns0, &format!("route add {VIP} via {GIP} dev br0"));
    match mode {
        Mode::Dr | Mode::Nat => lab.sysctl(&t.ns1, "net.ipv4.ip_forward", "1"),
        Mode::Tun => {
            // `modprobe -q ipip; ip link set tunl0 up`: not needed, rvsd
            // encapsulates by itself.
            lab.sysctl(&t.ns1, "net.ipv4.ip_forward", "0");
            lab.sysctl(&t.ns1, "net.ipv4.conf.all.send_redirects", "0");
            lab.sysctl(&t.ns1, "net.ipv4.conf.default.send_redirects", "0");
        }
    }
    let rvsd = lab.start_rvsd(&t.ns1, io, &["veth10", "veth12"], extra);
    lab.adm_ok(&t.ns1, &["-A", "-t", &svc, "-s", "rr"]);
    match mode {
        Mode::Dr => lab.adm_ok(&t.ns1, &["-a", "-t", &svc, "-r", &rs]),
        Mode::Nat => lab.adm_ok(&t.ns1, &["-a", "-m", "-t", &svc, "-r", &rs]),
        Mode::Tun => lab.adm_ok(&t.ns1, &["-a", "-i", "-t", &svc, "-r", &rs]),
    };
    ipn(&t.ns1, &format!("addr add {VIP}/32 dev lo:1"));

    match mode {
        Mode::Dr | Mode::Tun => {
            // "avoid incorrect arp response", "avoid reverse route lookup"
            lab.sysctl(&t.ns2, "net.ipv4.conf.all.arp_ignore", "1");
            lab.sysctl(&t.ns2, "net.ipv4.conf.all.arp_announce", "2");
            lab.sysctl(&t.ns2, "net.ipv4.conf.all.rp_filter", "0");
            lab.sysctl(&t.ns2, "net.ipv4.conf.veth21.rp_filter", "0");
            ipn(&t.ns2, &format!("addr add {VIP}/32 dev lo:1"));
            if mode == Mode::Tun {
                // `modprobe -q ipip; ip link set tunl0 up` (and the
                // tunl0 rp_filter): the XDP decapsulator. After the VIP is
                // on lo: `up` leaves an address that is there alone.
                lab.realserver_tun(&t.ns2, VIP);
            }
        }
        Mode::Nat => {
            ipn(&t.ns2, "link del veth20");
            ipn(&t.ns2, &format!("route add default via {DIP} dev veth21"));
        }
    }
    rvsd
}

/// `n` random bytes (`dd if=/dev/urandom`).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut v))
        .expect("/dev/urandom");
    v
}

/// The script's `test_service` with `payload`: the real server's `socat`
/// listens (killed after `server_limit` s), the client's sends (killed
/// after `client_limit` s); what the server received. Panics with `why()`
/// when a side fails.
fn test_service(
    lab: &mut Lab,
    t: &Topology,
    payload: &[u8],
    (server_limit, client_limit): (u64, u64),
    why: impl Fn(&Lab) -> String,
) -> Vec<u8> {
    let infile = lab.temp_path("infile");
    let outfile = lab.temp_path("outfile");
    std::fs::write(&infile, payload).expect("infile");
    // server_listen
    let out = File::create(&outfile).expect("outfile");
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns2,
            "timeout",
            &server_limit.to_string(),
        ])
        .args(["socat", "-u", "-4", &format!("TCP-LISTEN:{PORT},reuseaddr")])
        .arg("STDOUT")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn socat (install socat)");
    lab.children.push(server);
    let server = lab.children.len() - 1;
    wait_listening(&t.ns2, PORT);
    // client_connect
    let client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns0,
            "timeout",
            &client_limit.to_string(),
        ])
        .args(["socat", "-u", "-4", "STDIN", &format!("TCP:{VIP}:{PORT}")])
        .stdin(Stdio::from(File::open(&infile).expect("infile")))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("socat");
    // verify_data: wait for the server, then cmp.
    let deadline = Instant::now() + Duration::from_secs(server_limit + 2);
    let status = loop {
        if let Some(st) = lab.children[server].try_wait().expect("wait") {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the server's socat did not end\n{}",
            why(lab)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        client.status.success(),
        "client socat: {} {}\nserver: {status}\n{}",
        client.status,
        String::from_utf8_lossy(&client.stderr),
        why(lab)
    );
    assert!(status.success(), "server socat: {status}\n{}", why(lab));
    std::fs::read(&outfile).expect("outfile")
}

/// Until something listens on TCP `port` in `ns` (at most 5 s).
fn wait_listening(ns: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ss = run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "ss",
            "-Hltn",
            &format!("sport = :{port}"),
        ]);
        if !String::from_utf8_lossy(&ss.stdout).trim().is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} in {ns}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The data-plane counters of the rvsd of `ns`: partial checksums its
/// workers finished, and the fast path's counters (`None` when it is off).
fn dataplane(ns: &str) -> (u64, Option<FastPathCounters>) {
    in_netns(ns, || {
        let mut c = Client::connect(&Endpoint::Abstract("rvsd.ctl".into())).expect("connect");
        match c.call(Request::DataPlaneStats).expect("call") {
            Reply::DataPlaneStats {
                workers, fast_path, ..
            } => (workers.iter().map(|w| w.csum_completed).sum(), fast_path),
            other => panic!("unexpected reply {other:?}"),
        }
    })
}

/// One line on what the fast path did.
fn fast_path_summary(f: &Option<FastPathCounters>) -> String {
    match f {
        None => "fast path: off".to_string(),
        Some(f) if f.egress.is_empty() => format!(
            "fast path: {} but sends nowhere (no director veth peer in NAPI mode), hits {}",
            f.mode, f.hits
        ),
        Some(f) => format!(
            "fast path: {} towards {}, hits {}, misses {}, installs {}, \
             partial checksums finished {} (left to the engine {})",
            f.mode,
            f.egress.join(", "),
            f.hits,
            f.misses,
            f.installs,
            f.csum_completed,
            f.csum_slow
        ),
    }
}

/// The partial checksums rvsd finished, in its workers and its fast path:
/// the client's default offloads must have sent some (else the test would
/// not test what it is for).
fn partial_checksums(workers: u64, f: &Option<FastPathCounters>) -> u64 {
    workers + f.as_ref().map_or(0, |f| f.csum_completed)
}

/// `--fast-path` as `RVSD_FAST_PATH` asks, given explicitly: with the
/// script's pure defaults the fast path may have nowhere to send, which the
/// harness would refuse for `RVSD_FAST_PATH=on` (see `start_rvsd`).
fn fast_path_option() -> Vec<String> {
    match std::env::var("RVSD_FAST_PATH") {
        Ok(v) => vec!["--fast-path".to_string(), v],
        Err(_) => Vec::new(),
    }
}

/// Frames and bytes `iface` of `ns` received.
fn rx_counts(ns: &str, iface: &str) -> (u64, u64) {
    let read = |what: &str| -> u64 {
        let o = run(&[
            "ip",
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{iface}/statistics/{what}"),
        ]);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("counter")
    };
    (read("rx_packets"), read("rx_bytes"))
}

/// What a failure message shows: the director's table, counters and log.
fn director_state(lab: &Lab, t: &Topology) -> String {
    let stats =
        String::from_utf8_lossy(&lab.adm(&t.ns1, &["-L", "-n", "--stats", "--exact"]).stdout)
            .into_owned();
    let conns = String::from_utf8_lossy(&lab.adm(&t.ns1, &["-L", "-n", "-c"]).stdout).into_owned();
    let dp = Command::new("ip")
        .args(["netns", "exec", &t.ns1])
        .arg(bin("rvs"))
        .arg("dataplane")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // The director's links: their RX bytes per packet show frames larger
    // than the MTU (a local sender's GSO frames, unsegmented).
    let links = Command::new("ip")
        .args(["-n", &t.ns1, "-s", "link", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    format!(
        "--- rvsadm -Ln --stats --exact\n{stats}--- rvsadm -Lnc\n{conns}--- rvs dataplane\n{dp}\
         --- ip -s link (director)\n{links}--- rvsd log\n{}",
        lab.rvsd_log()
    )
}

fn tools() -> bool {
    if !privileged() {
        return false;
    }
    for tool in [["socat", "-V"], ["timeout", "--version"]] {
        if Command::new(tool[0]).arg(tool[1]).output().is_err() {
            if std::env::var("RVS_SKIP_PRIVILEGED_TESTS").as_deref() == Ok("1") {
                eprintln!("skipped: needs {}", tool[0]);
                return false;
            }
            panic!("needs {} (scripts/test.sh installs socat)", tool[0]);
        }
    }
    true
}

/// The script's run of one mode: setup, test_MODE, test_service, cmp.
fn selftest(mode: Mode, io: Option<&str>) {
    if !tools() {
        return;
    }
    let start = Instant::now();
    let tag = format!("{mode:?}{}", io.unwrap_or("")).to_lowercase();
    let mut lab = Lab::new(PREFIX, &tag);
    let t = setup(&mut lab, false);
    let fp = fast_path_option();
    let extra: Vec<&str> = if io.is_none() {
        fp.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    configure(&mut lab, &t, mode, io, &extra);
    let payload = random_bytes(DATALEN);
    // The script's timeouts: 5 s for the server, 2 s for the client.
    let got = test_service(&mut lab, &t, &payload, (5, 2), |lab| {
        director_state(lab, &t)
    });
    let state = director_state(&lab, &t);
    assert_eq!(got, payload, "{mode:?}: what arrived differs\n{state}");
    let (csum, f) = dataplane(&t.ns1);
    eprintln!(
        "ipvs.sh {mode:?} (--io {}): PASS in {:?}; partial checksums finished by the workers {csum}; {}",
        io.unwrap_or("auto"),
        start.elapsed(),
        fast_path_summary(&f)
    );
    assert!(
        partial_checksums(csum, &f) > 0,
        "no partial checksum came (client offloads not at the defaults?)\n{state}"
    );
    // One connection through the service, as ipvsadm would count it.
    let svc = format!("{VIP}:{PORT}");
    let list = lab.adm_ok(&t.ns1, &["-L", "-n", "--stats", "--exact"]);
    assert_eq!(service_stats(&list, &svc)[0], 1, "{state}");
}

#[test]
fn netns_ipvs_selftest_dr() {
    selftest(Mode::Dr, None);
}

#[test]
fn netns_ipvs_selftest_nat() {
    selftest(Mode::Nat, None);
}

#[test]
fn netns_ipvs_selftest_tun() {
    selftest(Mode::Tun, None);
}

#[test]
fn netns_ipvs_selftest_dr_packet() {
    selftest(Mode::Dr, Some("packet"));
}

#[test]
fn netns_ipvs_selftest_nat_packet() {
    selftest(Mode::Nat, Some("packet"));
}

#[test]
fn netns_ipvs_selftest_tun_packet() {
    selftest(Mode::Tun, Some("packet"));
}

/// 1 MiB from a client with default offloads through `mode`, byte-exact;
/// with the fast path on (`RVSD_FAST_PATH` unset, on or all) it must have
/// forwarded some of it, with it off none.
fn one_mib(mode: Mode, io: Option<&str>) {
    if !tools() {
        return;
    }
    let start = Instant::now();
    let tag = format!("{mode:?}1m{}", io.unwrap_or("")).to_lowercase();
    let mut lab = Lab::new(PREFIX, &tag);
    let t = setup(&mut lab, true);
    // No --fast-path of our own: RVSD_FAST_PATH (default on) decides, and
    // the harness checks that with it on rvsd sends somewhere.
    configure(&mut lab, &t, mode, io, &[]);
    let off = std::env::var("RVSD_FAST_PATH").as_deref() == Ok("off");
    if !off && io.is_none() {
        // The fast path sends to an interface once it has seen a redirect
        // reach it. Where live-frames test runs are refused (EPERM, as on
        // this project's machine) rvsd decides from a real flow's trial
        // frame, retried 1 s later if it went unseen, which can outlast a
        // 1 MiB transfer (650 ms): short transfers first, until it sends
        // somewhere (at most 10 s); the 1 MiB below must then use it.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let warm = random_bytes(64 << 10);
            let got = test_service(&mut lab, &t, &warm, (30, 25), |lab| director_state(lab, &t));
            assert!(got == warm, "{mode:?}: the warm-up's bytes differ");
            let (_, f) = dataplane(&t.ns1);
            if f.is_none_or(|f| !f.egress.is_empty()) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let payload = random_bytes(1 << 20);
    let got = test_service(&mut lab, &t, &payload, (30, 25), |lab| {
        director_state(lab, &t)
    });
    let state = director_state(&lab, &t);
    assert_eq!(got.len(), payload.len(), "{mode:?}: length\n{state}");
    assert!(got == payload, "{mode:?}: the bytes differ\n{state}");
    let (csum, f) = dataplane(&t.ns1);
    // Frames larger than the MTU are a local sender's GSO frames, which
    // the client's default offloads (TSO) make unless an XDP program on
    // veth10 turns GSO off on its peer.
    let (frames, bytes) = rx_counts(&t.ns1, "veth10");
    eprintln!(
        "1 MiB {mode:?} (--io {}): byte-exact in {:?}; veth10 received {frames} frames, \
         {} bytes each on average; partial checksums finished by the workers {csum}; {}",
        io.unwrap_or("auto"),
        start.elapsed(),
        bytes / frames.max(1),
        fast_path_summary(&f)
    );
    assert!(
        partial_checksums(csum, &f) > 0,
        "no partial checksum came (client offloads not at the defaults?)\n{state}"
    );
    let log = lab.rvsd_log();
    if off {
        assert!(f.is_none(), "fast path on with RVSD_FAST_PATH=off: {f:?}");
    } else if log.contains("--io xdp") {
        let f = f.unwrap_or_else(|| panic!("fast path off:\n{state}"));
        assert!(
            f.hits > 0,
            "the fast path forwarded nothing: {f:?}\n{state}"
        );
    }
}

#[test]
fn netns_ipvs_selftest_dr_1mb() {
    one_mib(Mode::Dr, None);
}

#[test]
fn netns_ipvs_selftest_dr_1mb_packet() {
    one_mib(Mode::Dr, Some("packet"));
}

#[test]
fn netns_ipvs_selftest_nat_1mb() {
    one_mib(Mode::Nat, None);
}

#[test]
fn netns_ipvs_selftest_nat_1mb_packet() {
    one_mib(Mode::Nat, Some("packet"));
}

#[test]
fn netns_ipvs_selftest_tun_1mb() {
    one_mib(Mode::Tun, None);
}

#[test]
fn netns_ipvs_selftest_tun_1mb_packet() {
    one_mib(Mode::Tun, Some("packet"));
}

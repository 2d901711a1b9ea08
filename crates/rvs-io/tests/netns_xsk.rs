//! AF_XDP sockets (`rvs_io::xsk`) on veth pairs between two network
//! namespaces, with real UDP traffic from kernel sockets.
//!
//! Topology: namespace A (`va0` 10.77.0.1, `va1` 10.77.1.1) and namespace B
//! (`vb0` 10.77.0.2, `vb1` 10.77.1.2), `vaN` and `vbN` joined by a veth
//! pair. The test thread enters B (setns) to load the XDP program and open
//! the AF_XDP sockets; the UDP sockets of A are created by a short-lived
//! thread that entered A. The XDP program is the test's own
//! (tests/bpf/redirect_udp.c, compiled with clang when the test runs): every
//! IPv4 UDP frame goes to the socket of its RX queue.
//!
//! Needs root, clang with the libbpf headers, and AF_XDP in the kernel (CI
//! has them). Namespaces are deleted by a guard, also when a test fails.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aya::Ebpf;
use aya::maps::XskMap;
use aya::programs::{Xdp, XdpMode};
use rvs_io::xsk::{self, FrameBuf, UmemConfig, Verdict, XskSocket, XskStats, wait_readable};

mod common;
use common::*;

// ---------------------------------------------------------------- topology

fn mac_a(link: u8) -> [u8; 6] {
    [0x02, 0x77, 0, 0, 0xa0, link]
}

fn mac_b(link: u8) -> [u8; 6] {
    [0x02, 0x77, 0, 0, 0xb0, link]
}

fn mac_str(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

fn addr_a(link: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, link, 1)
}

fn addr_b(link: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, link, 2)
}

/// Namespaces A and B; deleted (with their veth pairs) on drop.
struct Topo {
    a: String,
    b: String,
}

impl Topo {
    /// A and B joined by `va0`/`vb0` with `queues` RX and TX queues each.
    fn new(queues: u32) -> Topo {
        require_root("AF_XDP network-namespace");
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "rvsxsk-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let topo = Topo {
            a: format!("{tag}-a"),
            b: format!("{tag}-b"),
        };
        run("ip", &["netns", "add", &topo.a]);
        run("ip", &["netns", "add", &topo.b]);
        topo.link(0, queues);
        topo
    }

    /// Add the pair `va{link}`/`vb{link}`.
    fn link(&self, link: u8, queues: u32) {
        let q = queues.to_string();
        let (va, vb) = (format!("va{link}"), format!("vb{link}"));
        let (ma, mb) = (mac_str(mac_a(link)), mac_str(mac_b(link)));
        #[rustfmt::skip]
        run("ip", &[
            "-n", &self.a, "link", "add", &va, "address", &ma,
            "numtxqueues", &q, "numrxqueues", &q,
            "type", "veth", "peer", "name", &vb, "address", &mb,
            "numtxqueues", &q, "numrxqueues", &q, "netns", &self.b,
        ]);
        for (ns, dev, addr) in [(&self.a, &va, addr_a(link)), (&self.b, &vb, addr_b(link))] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev],
            );
            run("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
    }

    /// Run a shell command in namespace A (`ip netns exec` also gives it
    /// A's sysfs).
    fn sh_a(&self, script: &str) -> String {
        run("ip", &["netns", "exec", &self.a, "sh", "-c", script])
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn setns(f: &File) -> std::io::Result<()> {
    // SAFETY: setns on a namespace fd we hold open; affects this thread only.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread is in a namespace until this is dropped.
struct InNetns {
    orig: File,
}

fn enter(ns: &str) -> InNetns {
    let orig = File::open("/proc/thread-self/ns/net").expect("own netns");
    let target = File::open(format!("/var/run/netns/{ns}")).expect("netns file");
    setns(&target).expect("setns");
    InNetns { orig }
}

impl Drop for InNetns {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.orig) {
            eprintln!("cannot return to the original network namespace: {e}");
        }
    }
}

/// A UDP socket bound to `addr` in namespace `ns` (it stays in `ns`).
fn udp_in(ns: &str, addr: SocketAddrV4) -> UdpSocket {
    let ns = ns.to_string();
    let s = std::thread::spawn(move || {
        let _in = enter(&ns);
        UdpSocket::bind(addr).expect("bind UDP socket")
    })
    .join()
    .expect("thread");
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

// ---------------------------------------------------------------- XDP program

fn redirect_object() -> &'static [u8] {
    static OBJ: OnceLock<Vec<u8>> = OnceLock::new();
    OBJ.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bpf/redirect_udp.c");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("redirect_udp-{}.o", std::process::id()));
        let include = format!("-I/usr/include/{}-linux-gnu", std::env::consts::ARCH);
        let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
        #[rustfmt::skip]
        run(&clang, &[
            "-O2", "-g", "-target", "bpf", &include, "-Wall", "-Werror",
            "-c", src.to_str().unwrap(), "-o", out.to_str().unwrap(),
        ]);
        let bytes = std::fs::read(&out).expect("read BPF object");
        let _ = std::fs::remove_file(&out);
        bytes
    })
}

/// tests/bpf/redirect_udp.c attached to an interface; detached on drop.
struct Redirect {
    bpf: Ebpf,
}

impl Redirect {
    fn attach(ifname: &str) -> Redirect {
        let mut bpf = Ebpf::load(redirect_object()).expect("load BPF object");
        let prog: &mut Xdp = bpf
            .program_mut("redirect_udp")
            .expect("program")
            .try_into()
            .expect("XDP program");
        prog.load().expect("verifier");
        prog.attach(ifname, XdpMode::Driver)
            .expect("attach XDP (native)");
        Redirect { bpf }
    }

    fn set(&mut self, queue: u32, xsk: &XskSocket) {
        let mut map = XskMap::try_from(self.bpf.map_mut("xsks").expect("xsks")).expect("XskMap");
        map.set(queue, xsk.fd(), 0).expect("XSKMAP update");
    }
}

// ---------------------------------------------------------------- packets

/// The parts of an Ethernet + IPv4 + UDP frame the tests look at.
#[derive(Debug)]
struct Udp<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &'a [u8],
    /// Offset of the UDP header.
    l4: usize,
}

fn parse_udp(f: &[u8]) -> Option<Udp<'_>> {
    if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 17 {
        return None;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let l4 = 14 + ihl;
    let udp_len = usize::from(u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]));
    let ip = |o: usize| Ipv4Addr::new(f[o], f[o + 1], f[o + 2], f[o + 3]);
    let port = |o: usize| u16::from_be_bytes([f[o], f[o + 1]]);
    Some(Udp {
        src: SocketAddrV4::new(ip(14 + 12), port(l4)),
        dst: SocketAddrV4::new(ip(14 + 16), port(l4 + 2)),
        payload: f.get(l4 + 8..l4 + udp_len)?,
        l4,
    })
}

/// Turn a UDP frame into its reply in place: swap MACs, addresses and
/// ports. Both checksums stay valid (they are sums, swapping reorders them)
/// once a checksum that A's transmit checksum offload left partial (the
/// kernel's default on veth) is finished, as rvsd finishes it.
fn make_reply(f: &mut [u8], l4: usize) {
    if let Ok(rvs_wire::Parsed::Ip(m)) = rvs_wire::parse_frame(f) {
        rvs_wire::complete_partial(f, &m);
    }
    let (dst, src) = f[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let (s, d) = f[14 + 12..14 + 20].split_at_mut(4);
    s.swap_with_slice(d);
    let (s, d) = f[l4..l4 + 4].split_at_mut(2);
    s.swap_with_slice(d);
}

/// One's-complement sum check of the UDP checksum (0 = none, also valid).
fn udp_checksum_ok(f: &[u8], l4: usize) -> bool {
    let udp = &f[l4..];
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp[6..8] == [0, 0] {
        return true;
    }
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&f[14 + 12..14 + 20]);
    add(&[0, 17]);
    add(&(len as u16).to_be_bytes());
    add(&udp[..len]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

fn assert_frames_accounted(st: &XskStats, cfg: &UmemConfig) {
    assert_eq!(
        st.frames_free + st.frames_fill + st.frames_tx,
        cfg.frames,
        "every frame is somewhere: {st:?}"
    );
}

/// Flush until every transmission has completed.
fn flush_until_completed(xsk: &mut XskSocket) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        xsk.flush().expect("flush");
        let st = xsk.stats();
        if st.frames_tx == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "TX not completed: {st:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

const B_PORT: u16 = 6001;

// ---------------------------------------------------------------- tests

/// One queue: datagrams from A arrive on the RX ring with their bytes and
/// the headroom; one is bounced back in place (TxSame) and a UDP socket in
/// A receives it as a valid reply.
#[test]
fn netns_xsk_rx_and_tx_same() {
    let topo = Topo::new(1);
    let a = udp_in(&topo.a, SocketAddrV4::new(addr_a(0), 5001));
    let _in_b = enter(&topo.b);
    assert_eq!(XskSocket::queue_count("vb0").unwrap(), 1);

    let mut prog = Redirect::attach("vb0");
    let cfg = UmemConfig::default();
    let mut xsk = XskSocket::open("vb0", 0, &cfg).expect("open AF_XDP socket");
    assert_eq!(xsk.queue(), 0);
    assert_eq!(xsk.ifname(), "vb0");
    prog.set(0, &xsk);

    let b = SocketAddrV4::new(addr_b(0), B_PORT);
    for i in 0..5 {
        a.send_to(format!("hello {i}").as_bytes(), b).unwrap();
    }

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.len() < 5 && Instant::now() < deadline {
        wait_readable(&[&xsk], 100).unwrap();
        xsk.rx_batch(64, |f: &mut FrameBuf<'_>| {
            let Some(u) = parse_udp(f.data()) else {
                return Verdict::Drop;
            };
            assert_eq!(u.src, SocketAddrV4::new(addr_a(0), 5001));
            assert_eq!(u.dst, b);
            assert_eq!(f.data()[..6], mac_b(0));
            assert_eq!(f.data()[6..12], mac_a(0));
            assert_eq!(
                f.start(),
                (xsk::XDP_PACKET_HEADROOM + cfg.headroom) as usize,
                "headroom"
            );
            assert_eq!(f.buf().len(), cfg.frame_size as usize);
            // A's veth keeps the kernel's transmit checksum offload: the
            // checksum may arrive partial; finished, it must be right.
            let l4 = u.l4;
            if let Ok(rvs_wire::Parsed::Ip(m)) = rvs_wire::parse_frame(f.data()) {
                rvs_wire::complete_partial(f.data_mut(), &m);
            }
            assert!(
                udp_checksum_ok(f.data(), l4),
                "UDP checksum wrong once finished"
            );
            let u = parse_udp(f.data()).expect("still UDP");
            got.push(String::from_utf8_lossy(u.payload).into_owned());
            if got.len() == 1 {
                let l4 = u.l4;
                make_reply(f.data_mut(), l4);
                f.tx_same()
            } else {
                Verdict::Drop
            }
        })
        .unwrap();
        xsk.flush().unwrap();
    }
    let want: Vec<String> = (0..5).map(|i| format!("hello {i}")).collect();
    assert_eq!(got, want);

    let mut buf = [0u8; 64];
    let (n, from) = a.recv_from(&mut buf).expect("the bounced reply reaches A");
    assert_eq!(&buf[..n], b"hello 0");
    assert_eq!(from, SocketAddr::V4(b));

    flush_until_completed(&mut xsk);
    let st = xsk.stats();
    assert_eq!(st.rx_packets, 5);
    assert_eq!(st.tx_packets, 1);
    assert_eq!(st.tx_completed, 1);
    assert_eq!(st.dropped_verdict, 4);
    assert_eq!(
        st.dropped_no_frame + st.dropped_ring_full + st.dropped_invalid,
        0
    );
    assert_frames_accounted(&st, &cfg);
    let k = st.kernel.expect("XDP_STATISTICS");
    assert_eq!(k.rx_dropped, 0, "{k:?}");
    assert_eq!(k.rx_invalid_descs + k.tx_invalid_descs, 0, "{k:?}");

    // Idle: the wait sleeps for its timeout instead of spinning.
    let t = Instant::now();
    wait_readable(&[&xsk], 200).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(xsk.rx_batch(64, |_| Verdict::Drop).unwrap(), 0);
}

/// Opening fails cleanly, with the kernel's errno.
#[test]
fn netns_xsk_open_errors() {
    let topo = Topo::new(1);
    let _in_b = enter(&topo.b);
    let cfg = UmemConfig::default();
    let errno = |r: Result<XskSocket, xsk::XskError>| r.expect_err("must fail").raw_os_error();
    assert_eq!(
        errno(XskSocket::open("nosuch0", 0, &cfg)),
        Some(libc::ENODEV)
    );
    assert!(XskSocket::queue_count("nosuch0").is_err());
    // A queue the device does not have.
    assert_eq!(errno(XskSocket::open("vb0", 7, &cfg)), Some(libc::EINVAL));
    // One socket per queue (each with its own UMEM).
    let first = XskSocket::open("vb0", 0, &cfg).expect("first socket");
    assert_eq!(errno(XskSocket::open("vb0", 0, &cfg)), Some(libc::EBUSY));
    drop(first);
    // The kernel releases the queue asynchronously; open waits for it.
    XskSocket::open("vb0", 0, &cfg).expect("the queue is free again");
}

/// Two queues, one socket per queue: flows spread over both, every datagram
/// arrives exactly once, and each socket bounces its own.
#[test]
fn netns_xsk_one_socket_per_queue() {
    let topo = Topo::new(2);
    let flows: Vec<UdpSocket> = (0..64)
        .map(|_| udp_in(&topo.a, SocketAddrV4::new(addr_a(0), 0)))
        .collect();
    let _in_b = enter(&topo.b);
    let queues = XskSocket::queue_count("vb0").unwrap();
    assert_eq!(queues, 2);

    let mut prog = Redirect::attach("vb0");
    let cfg = UmemConfig {
        frames: 256,
        ..UmemConfig::default()
    };
    let mut socks: Vec<XskSocket> = (0..queues)
        .map(|q| XskSocket::open("vb0", q, &cfg).expect("open AF_XDP socket"))
        .collect();
    for s in &socks {
        prog.set(s.queue(), s);
    }

    let b = SocketAddrV4::new(addr_b(0), B_PORT);
    for (i, s) in flows.iter().enumerate() {
        s.send_to(format!("flow {i}").as_bytes(), b).unwrap();
    }

    let mut seen = vec![0u32; flows.len()];
    let mut per_queue = vec![0u32; socks.len()];
    let deadline = Instant::now() + Duration::from_secs(3);
    while seen.iter().sum::<u32>() < flows.len() as u32 && Instant::now() < deadline {
        let refs: Vec<&XskSocket> = socks.iter().collect();
        wait_readable(&refs, 100).unwrap();
        for s in &mut socks {
            let q = s.queue() as usize;
            s.rx_batch(64, |f| {
                let Some(u) = parse_udp(f.data()) else {
                    return Verdict::Drop;
                };
                let i: usize = std::str::from_utf8(u.payload)
                    .ok()
                    .and_then(|p| p.strip_prefix("flow "))
                    .and_then(|n| n.parse().ok())
                    .expect("payload");
                seen[i] += 1;
                per_queue[q] += 1;
                let l4 = u.l4;
                make_reply(f.data_mut(), l4);
                f.tx_same()
            })
            .unwrap();
            s.flush().unwrap();
        }
    }
    assert!(seen.iter().all(|&n| n == 1), "each flow once: {seen:?}");
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "64 flows should use both queues: {per_queue:?}"
    );

    for (i, s) in flows.iter().enumerate() {
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).expect("reply");
        assert_eq!(&buf[..n], format!("flow {i}").as_bytes());
        assert_eq!(from, SocketAddr::V4(b));
    }
    for s in &mut socks {
        flush_until_completed(s);
        let st = s.stats();
        assert_eq!(st.rx_packets, u64::from(per_queue[s.queue() as usize]));
        assert_eq!(st.tx_completed, st.rx_packets);
        assert_frames_accounted(&st, &cfg);
    }
}

/// Cross-interface forwarding: a frame received on vb0 is copied (tx_copy)
/// out of vb1 and reaches A through va1. Also: tx_copy refuses frames that do
/// not fit, stops when the TX share of the UMEM is used up, and recovers
/// once the kernel completed them.
#[test]
fn netns_xsk_tx_copy_to_other_interface() {
    let topo = Topo::new(1);
    topo.link(1, 1);
    // The reply from 10.77.0.2 arrives on va1: no reverse-path filter.
    topo.sh_a(
        "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter; \
         echo 0 > /proc/sys/net/ipv4/conf/va1/rp_filter",
    );
    let rx_va1 = || -> u64 {
        topo.sh_a("cat /sys/class/net/va1/statistics/rx_packets")
            .trim()
            .parse()
            .unwrap()
    };
    let a = udp_in(&topo.a, SocketAddrV4::new(addr_a(0), 5003));
    let _in_b = enter(&topo.b);

    let mut prog = Redirect::attach("vb0");
    let cfg = UmemConfig {
        frames: 128,
        ..UmemConfig::default()
    };
    let mut in0 = XskSocket::open("vb0", 0, &cfg).expect("open vb0");
    let mut out1 = XskSocket::open("vb1", 0, &cfg).expect("open vb1");
    prog.set(0, &in0);

    // Oversized and empty frames are refused.
    assert!(!out1.tx_copy(&vec![0u8; cfg.frame_size as usize + 1]));
    assert!(!out1.tx_copy(&[]));
    assert_eq!(out1.stats().dropped_invalid, 2);

    let before = rx_va1();
    let b = SocketAddrV4::new(addr_b(0), B_PORT);
    a.send_to(b"over there", b).unwrap();
    let mut forwarded = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while forwarded == 0 && Instant::now() < deadline {
        wait_readable(&[&in0], 100).unwrap();
        in0.rx_batch(64, |f| {
            let Some(u) = parse_udp(f.data()) else {
                return Verdict::Drop;
            };
            let l4 = u.l4;
            let mut reply = [0u8; 2048];
            let r = &mut reply[..f.len()];
            r.copy_from_slice(f.data());
            make_reply(r, l4);
            r[..6].copy_from_slice(&mac_a(1));
            r[6..12].copy_from_slice(&mac_b(1));
            assert!(out1.tx_copy(r), "a free TX frame");
            forwarded += 1;
            Verdict::Done
        })
        .unwrap();
        in0.flush().unwrap();
    }
    assert_eq!(forwarded, 1);
    out1.flush().unwrap();

    let mut buf = [0u8; 64];
    let (n, from) = a.recv_from(&mut buf).expect("forwarded reply reaches A");
    assert_eq!(&buf[..n], b"over there");
    assert_eq!(from, SocketAddr::V4(b));
    assert!(rx_va1() > before, "it came in through va1");
    flush_until_completed(&mut out1);
    let st = in0.stats();
    assert_eq!(
        (st.rx_packets, st.dropped_verdict, st.tx_packets),
        (1, 0, 0)
    );
    assert_frames_accounted(&st, &cfg);

    // Exhaust the TX share: frames nobody in A will take (unknown MAC).
    let mut junk = [0u8; 60];
    junk[..6].copy_from_slice(&[0x02, 0x77, 0, 0, 0xee, 0xee]);
    junk[6..12].copy_from_slice(&mac_b(1));
    junk[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental
    let mut queued = 0;
    while out1.tx_copy(&junk) {
        queued += 1;
    }
    let st = out1.stats();
    assert_eq!(queued, cfg.frames - cfg.frames / 2, "{st:?}");
    assert_eq!(st.dropped_no_frame, 1);
    assert_eq!(st.frames_fill, cfg.frames / 2, "RX share untouched");
    flush_until_completed(&mut out1);
    assert!(out1.tx_copy(&junk), "frames are back after completion");
    flush_until_completed(&mut out1);
    let st = out1.stats();
    assert_eq!(st.tx_completed, u64::from(queued) + 2);
    assert_frames_accounted(&st, &cfg);
    assert_eq!(st.kernel.expect("XDP_STATISTICS").tx_invalid_descs, 0);
}

/// One's-complement checksum of an IPv4 header (checksum field zeroed).
fn ipv4_header_checksum(h: &[u8]) -> [u8; 2] {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (!(sum as u16)).to_be_bytes()
}

/// Encapsulation in the headroom: the reply is wrapped in place, in front of
/// the received frame, into outer Ethernet + IPv4 + UDP + VXLAN headers and
/// sent with TxSame; A's VXLAN device takes it apart and its kernel delivers
/// the inner reply. (VXLAN stands in for IPIP, which this kernel lacks; the
/// mechanics for the engine are the same: push a header, send.)
#[test]
fn netns_xsk_tx_same_with_prepended_header() {
    const VNI: u32 = 42;
    const VXLAN_MAC: [u8; 6] = [0x02, 0x77, 0, 0, 0xa0, 0x42];
    let topo = Topo::new(1);
    #[rustfmt::skip]
    run("ip", &[
        "-n", &topo.a, "link", "add", "vx0", "address", &mac_str(VXLAN_MAC),
        "type", "vxlan", "id", &VNI.to_string(), "dstport", "4789",
        "local", &addr_a(0).to_string(), "dev", "va0",
    ]);
    run("ip", &["-n", &topo.a, "link", "set", "vx0", "up"]);
    topo.sh_a(
        "echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter; \
               echo 0 > /proc/sys/net/ipv4/conf/vx0/rp_filter",
    );
    let a = udp_in(&topo.a, SocketAddrV4::new(addr_a(0), 5005));
    let _in_b = enter(&topo.b);
    let mut prog = Redirect::attach("vb0");
    let cfg = UmemConfig::default();
    let mut xsk = XskSocket::open("vb0", 0, &cfg).expect("open AF_XDP socket");
    prog.set(0, &xsk);

    let b = SocketAddrV4::new(addr_b(0), B_PORT);
    a.send_to(b"wrapped", b).unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while xsk.stats().tx_packets == 0 && Instant::now() < deadline {
        wait_readable(&[&xsk], 100).unwrap();
        xsk.rx_batch(64, |f| {
            let Some(u) = parse_udp(f.data()) else {
                return Verdict::Drop;
            };
            // The inner frame: the reply, addressed to A's VXLAN device.
            let l4 = u.l4;
            make_reply(f.data_mut(), l4);
            f.data_mut()[..6].copy_from_slice(&VXLAN_MAC);
            let inner_len = f.len();
            let hdr = f.push_front(14 + 20 + 8 + 8).expect("headroom");
            let (eth, rest) = hdr.split_at_mut(14);
            eth[..6].copy_from_slice(&mac_a(0));
            eth[6..12].copy_from_slice(&mac_b(0));
            eth[12..14].copy_from_slice(&[0x08, 0x00]);
            let (ip, rest) = rest.split_at_mut(20);
            let total = (20 + 8 + 8 + inner_len) as u16;
            ip.copy_from_slice(&[
                0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[12..16].copy_from_slice(&addr_b(0).octets());
            ip[16..20].copy_from_slice(&addr_a(0).octets());
            let c = ipv4_header_checksum(ip);
            ip[10..12].copy_from_slice(&c);
            let (udp, vxlan) = rest.split_at_mut(8);
            udp[..2].copy_from_slice(&49152u16.to_be_bytes());
            udp[2..4].copy_from_slice(&4789u16.to_be_bytes());
            udp[4..6].copy_from_slice(&(total - 20).to_be_bytes());
            udp[6..8].copy_from_slice(&[0, 0]); // no checksum (IPv4)
            vxlan.copy_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 0]);
            vxlan[4..7].copy_from_slice(&VNI.to_be_bytes()[1..]);
            assert_eq!(
                f.start(),
                (xsk::XDP_PACKET_HEADROOM + cfg.headroom) as usize - 50
            );
            f.tx_same()
        })
        .unwrap();
        xsk.flush().unwrap();
    }
    let mut buf = [0u8; 64];
    let (n, from) = a.recv_from(&mut buf).expect("decapsulated reply reaches A");
    assert_eq!(&buf[..n], b"wrapped");
    assert_eq!(from, SocketAddr::V4(b));
    let vx_rx: u64 = topo
        .sh_a("cat /sys/class/net/vx0/statistics/rx_packets")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(vx_rx, 1, "it came through the VXLAN device");
    flush_until_completed(&mut xsk);
    assert_frames_accounted(&xsk.stats(), &cfg);
}

/// A small UMEM (64 frames, 32 for RX) survives many more packets than it
/// has frames: ping-pong recycles every frame many times; a burst larger
/// than the fill ring is partly dropped by the kernel (and counted), and
/// nothing leaks.
#[test]
fn netns_xsk_frames_recycle() {
    let topo = Topo::new(1);
    let a = udp_in(&topo.a, SocketAddrV4::new(addr_a(0), 5004));
    a.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let _in_b = enter(&topo.b);
    let mut prog = Redirect::attach("vb0");
    let cfg = UmemConfig {
        frames: 64,
        ..UmemConfig::default()
    };
    let mut xsk = XskSocket::open("vb0", 0, &cfg).expect("open AF_XDP socket");
    prog.set(0, &xsk);
    let b = SocketAddrV4::new(addr_b(0), B_PORT);

    let bounce = |xsk: &mut XskSocket, until: u64| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while xsk.stats().rx_packets < until && Instant::now() < deadline {
            wait_readable(&[&*xsk], 50).unwrap();
            xsk.rx_batch(64, |f| match parse_udp(f.data()) {
                Some(u) => {
                    let l4 = u.l4;
                    make_reply(f.data_mut(), l4);
                    f.tx_same()
                }
                None => Verdict::Drop,
            })
            .unwrap();
            xsk.flush().unwrap();
        }
    };

    // Ping-pong: 400 round trips through 64 frames.
    let mut buf = [0u8; 64];
    for i in 0..400u64 {
        let msg = format!("ping {i}");
        a.send_to(msg.as_bytes(), b).unwrap();
        bounce(&mut xsk, i + 1);
        let (n, _) = a.recv_from(&mut buf).expect("pong");
        assert_eq!(&buf[..n], msg.as_bytes());
    }
    flush_until_completed(&mut xsk);
    let st = xsk.stats();
    assert_eq!((st.rx_packets, st.tx_completed), (400, 400));
    assert_frames_accounted(&st, &cfg);

    // Burst: 200 datagrams while nobody reads the RX ring.
    for i in 0..200 {
        a.send_to(format!("burst {i}").as_bytes(), b).unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = xsk.stats().rx_packets;
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_millis(300) {
        wait_readable(&[&xsk], 50).unwrap();
        let n = xsk
            .rx_batch(64, |f| match parse_udp(f.data()) {
                Some(u) => {
                    let l4 = u.l4;
                    make_reply(f.data_mut(), l4);
                    f.tx_same()
                }
                None => Verdict::Drop,
            })
            .unwrap();
        xsk.flush().unwrap();
        if n > 0 {
            last = Instant::now();
        }
    }
    flush_until_completed(&mut xsk);
    let st = xsk.stats();
    let received = st.rx_packets - before;
    let k = st.kernel.expect("XDP_STATISTICS");
    eprintln!("burst: received {received} of 200, kernel {k:?}");
    assert!(received >= 32, "at least a fill ring's worth: {received}");
    assert_eq!(
        received + k.rx_dropped,
        200,
        "losses are visible in the kernel's counters: {k:?}"
    );
    assert_frames_accounted(&st, &cfg);
    let mut replies = 0;
    while a.recv_from(&mut buf).is_ok() {
        replies += 1;
    }
    assert_eq!(replies, received);

    // Still healthy afterwards.
    a.send_to(b"after", b).unwrap();
    bounce(&mut xsk, st.rx_packets + 1);
    let (n, _) = a.recv_from(&mut buf).expect("pong after the burst");
    assert_eq!(&buf[..n], b"after");
}

/// TxSame over many full batches: more frames than the TX ring holds go out
/// through it, so the reservation taken for each batch must see the room
/// the kernel made since the last one (a stale view once dropped frames
/// with plenty of room in the ring: 300+ lost per 5 s of HTTP load).
#[test]
fn netns_xsk_tx_same_never_runs_short_of_ring() {
    let topo = Topo::new(1);
    let a = udp_in(&topo.a, SocketAddrV4::new(addr_a(0), 5005));
    a.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let _in_b = enter(&topo.b);
    let mut prog = Redirect::attach("vb0");
    let cfg = UmemConfig::default();
    let mut xsk = XskSocket::open("vb0", 0, &cfg).expect("open AF_XDP socket");
    prog.set(0, &xsk);
    let b = SocketAddrV4::new(addr_b(0), B_PORT);
    // 200 bursts of 37: 7400 frames through a 4096-slot TX ring, in
    // batches that do not divide the ring, so that some batch finds a
    // few cached free slots but fewer than it needs.
    let (bursts, per_burst) = (200u64, 37u64);
    let mut buf = [0u8; 64];
    let mut replies = 0u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    for round in 0..bursts {
        for i in 0..per_burst {
            a.send_to(format!("r{round} {i}").as_bytes(), b).unwrap();
        }
        let until = (round + 1) * per_burst;
        while xsk.stats().rx_packets < until && Instant::now() < deadline {
            wait_readable(&[&xsk], 50).unwrap();
            xsk.rx_batch(64, |f| match parse_udp(f.data()) {
                Some(u) => {
                    let l4 = u.l4;
                    make_reply(f.data_mut(), l4);
                    f.tx_same()
                }
                None => Verdict::Drop,
            })
            .unwrap();
            xsk.flush().unwrap();
        }
        while replies < until && a.recv_from(&mut buf).is_ok() {
            replies += 1;
        }
    }
    flush_until_completed(&mut xsk);
    let st = xsk.stats();
    assert_eq!(st.dropped_ring_full, 0, "{st:?}");
    assert_eq!(st.rx_packets, bursts * per_burst, "{st:?}");
    assert_eq!(replies, bursts * per_burst, "every frame came back: {st:?}");
    assert_frames_accounted(&st, &cfg);
}

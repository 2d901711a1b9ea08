//! The classifier on a real interface: two network namespaces joined by a
//! veth pair with two queues each. The director side (`va` in namespace A:
//! 10.200.0.1, 10.200.0.10, fd00:200::1) runs the classifier; the peer (`vb`
//! in namespace B: 10.200.0.2, fd00:200::2) plays client and real server.
//!
//! Needs root and iproute2; skipped (with a message) otherwise. Each test
//! makes its own namespaces (named after the process id and the test) and a
//! guard deletes them, which also destroys the veth pair, even on failure.
//! The classifier is attached from a thread that entered namespace A with
//! setns(2); packets are sent from threads in namespace B.

use std::{
    alloc::{Layout, alloc_zeroed, dealloc},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    num::NonZeroU32,
    process::Command,
    ptr::NonNull,
    time::{Duration, Instant},
};

use rustix::net::{AddressFamily, SocketType, ipproto, sockopt};
use rvs_io::xdp::{
    AttachMode, ClassKey, ClassStats, Classifier, XdpError, XdpState, ifindex, remove_xdp,
    xdp_state,
};

mod common;
use common::ip as sh;
use common::*;

const UDP: u8 = 17;
const A4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const A4_ANY: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 10);
const B4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 2);

/// Two namespaces and the veth pair between them; deleted on drop.
struct Lab {
    a: String,
    b: String,
}

impl Lab {
    fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let lab = Self {
            a: format!("rvsx-{pid}-{tag}-a"),
            b: format!("rvsx-{pid}-{tag}-b"),
        };
        // The guard exists before anything is created: a failure below
        // still deletes what was made.
        sh(&["netns", "add", &lab.a]);
        sh(&["netns", "add", &lab.b]);
        let (a, b) = (lab.a.as_str(), lab.b.as_str());
        #[rustfmt::skip]
        sh(&["-n", a, "link", "add", "va", "numtxqueues", "2", "numrxqueues", "2",
             "type", "veth", "peer", "name", "vb", "netns", b,
             "numtxqueues", "2", "numrxqueues", "2"]);
        for (ns, dev, addrs) in [
            (
                a,
                "va",
                &["10.200.0.1/24", "10.200.0.10/24", "fd00:200::1/64"][..],
            ),
            (b, "vb", &["10.200.0.2/24", "fd00:200::2/64"][..]),
        ] {
            for addr in addrs {
                let mut args = vec!["-n", ns, "addr", "add", addr, "dev", dev];
                if addr.contains(':') {
                    args.push("nodad");
                }
                sh(&args);
            }
            sh(&["-n", ns, "link", "set", "lo", "up"]);
            sh(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab
    }

    /// `ip -d link show va` in namespace A.
    fn link_a(&self) -> String {
        sh(&["-n", &self.a, "-d", "link", "show", "va"])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// One ICMP echo from the calling thread's namespace to `dst`; true if the
/// reply came within a second. (Raw socket: `ping` is not always installed.)
fn ping(dst: IpAddr) -> bool {
    let (family, proto, req_type, reply_type) = match dst {
        IpAddr::V4(_) => (AddressFamily::INET, ipproto::ICMP, 8u8, 0u8),
        IpAddr::V6(_) => (AddressFamily::INET6, ipproto::ICMPV6, 128, 129),
    };
    let sock = rustix::net::socket(family, SocketType::RAW, Some(proto)).expect("raw socket");
    sockopt::set_socket_timeout(
        &sock,
        sockopt::Timeout::Recv,
        Some(Duration::from_millis(200)),
    )
    .unwrap();
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut req = vec![req_type, 0, 0, 0];
    req.extend_from_slice(&id.to_be_bytes());
    req.extend_from_slice(&1u16.to_be_bytes());
    req.extend_from_slice(b"rvs-xdp-test");
    if dst.is_ipv4() {
        // The kernel fills in the ICMPv6 checksum, not the ICMPv4 one.
        let sum = checksum(&req);
        req[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    let addr = SocketAddr::new(dst, 0);
    rustix::net::sendto(&sock, &req, rustix::net::SendFlags::empty(), &addr).expect("sendto");
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let Ok((n, _)) = rustix::net::recv(&sock, &mut buf[..], rustix::net::RecvFlags::empty())
        else {
            continue;
        };
        // IPv4 raw sockets deliver the IP header; IPv6 ones do not.
        let icmp = if dst.is_ipv4() {
            let ihl = usize::from(buf[0] & 0xf) * 4;
            &buf[ihl..n]
        } else {
            &buf[..n]
        };
        if icmp.len() >= 8 && icmp[0] == reply_type && icmp[4..6] == id.to_be_bytes() {
            return true;
        }
    }
    false
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends `n` UDP datagrams of `len` bytes from namespace `ns`.
fn send_udp(ns: &str, from: SocketAddr, to: SocketAddr, n: usize, len: usize) {
    in_ns(ns, || {
        let s = UdpSocket::bind(from).expect("bind");
        for _ in 0..n {
            s.send_to(&vec![0x55; len], to).expect("send_to");
        }
    });
}

/// Waits (up to 2 s: veth's XDP runs in NAPI, after send returns) until
/// `done` holds for the classifier's counters; returns the last reading.
fn wait_stats(c: &Classifier, done: impl Fn(&ClassStats) -> bool) -> ClassStats {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let s = c.stats().unwrap();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn key(addr: impl Into<IpAddr>, port: u16) -> ClassKey {
    ClassKey {
        proto: UDP,
        addr: addr.into(),
        port,
    }
}

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

#[test]
fn attach_native_pass_and_count() {
    if !privileged_ip("network namespaces, XDP") {
        return;
    }
    let lab = Lab::new("pass");
    let b = lab.b.clone();
    in_ns(&lab.a, || {
        let mut c = Classifier::attach(&["va".to_owned()]).expect("attach");
        let att = &c.attachments()[0];
        assert_eq!(
            att.mode,
            AttachMode::Driver,
            "veth does native XDP: {att:?}"
        );
        assert_eq!(att.ifindex, ifindex("va").unwrap());
        assert!(att.replaced.is_empty());
        let link = lab.link_a();
        assert!(
            link.contains(&format!("prog/xdp id {}", c.program_id())),
            "{link}"
        );
        assert!(link.contains("xdp "), "{link}");
        assert_eq!(
            xdp_state(att.ifindex).unwrap(),
            XdpState {
                driver: Some(c.program_id()),
                ..XdpState::default()
            }
        );
        let va = att.ifindex;

        c.set_services(&[key(A4, 9999), key(A4_ANY, 0), key(A6, 9999)])
            .unwrap();

        // ARP, ND and echo requests are not rvs's: the kernel answers.
        in_ns(&b, || {
            assert!(ping(A4.into()), "ping 10.200.0.1 through XDP_PASS");
            assert!(ping(A6.into()), "ping fd00:200::1 through XDP_PASS");
        });
        let s = c.stats().unwrap();
        assert!(s.passed >= 2, "{s:?}");
        assert_eq!((s.no_socket, s.redirected), (0, 0), "{s:?}");

        // Service traffic without an if_base entry, then without a socket.
        let from = sa(B4, 0);
        send_udp(&b, from, sa(A4, 9999), 3, 64);
        let s = wait_stats(&c, |s| s.no_socket >= 3);
        assert_eq!(s.no_socket, 3, "{s:?}");
        c.set_if_base(va, 4).unwrap();
        send_udp(&b, from, sa(A4, 9999), 2, 64);
        send_udp(&b, from, sa(A4_ANY, 1234), 1, 64);
        send_udp(&b, sa(B6, 0), sa(A6, 9999), 1, 64);
        let s = wait_stats(&c, |s| s.no_socket >= 7);
        assert_eq!(s.no_socket, 7, "{s:?}");

        // Another port of a VIP: passed.
        let passed = c.stats().unwrap().passed;
        send_udp(&b, from, sa(A4, 9998), 2, 64);
        let s = wait_stats(&c, |s| s.passed >= passed + 2);
        assert!(s.passed >= passed + 2, "{s:?}");
        assert_eq!(s.no_socket, 7, "{s:?}");

        // 3000 bytes over a 1500-byte MTU: three fragments (1480 + 1480 + 48
        // bytes of IP payload), all rvs's (claimed by address).
        send_udp(&b, from, sa(A4, 9999), 1, 3000);
        let s = wait_stats(&c, |s| s.no_socket >= 10);
        assert_eq!((s.no_socket, s.fragments_claimed), (10, 3), "{s:?}");
        assert_eq!(s.fragments, 0, "{s:?}");
        assert_eq!((s.redirected, s.malformed), (0, 0), "{s:?}");
        in_ns(&b, || assert!(ping(A4.into()), "still pings"));
    });
}

#[test]
fn icmp_errors_through_veth() {
    if !privileged_ip("network namespaces, XDP") {
        return;
    }
    let lab = Lab::new("icmp");
    in_ns(&lab.a, || {
        let mut c = Classifier::attach(&["va".to_owned()]).expect("attach");
        c.set_services(&[key(A4_ANY, 0), key(A6, 5555)]).unwrap();
        c.set_nat_sources(&[key(B4, 6002)]).unwrap();
        // B answers each datagram to a closed port with a port unreachable
        // that quotes it.
        // 1. Quoted source is a service (VIP -> client).
        send_udp(&lab.a, sa(A4_ANY, 5555), sa(B4, 6001), 1, 32);
        // 2. Quoted destination is a NAT real server (director -> server).
        send_udp(&lab.a, sa(A4, 0), sa(B4, 6002), 1, 32);
        // 3. The same over IPv6.
        send_udp(&lab.a, sa(A6, 5555), sa(B6, 6001), 1, 32);
        let s = wait_stats(&c, |s| s.no_socket >= 3);
        assert_eq!(s.no_socket, 3, "{s:?}");
        // 4. Unrelated: the director's own traffic.
        let passed = s.passed;
        send_udp(&lab.a, sa(A4, 0), sa(B4, 6003), 1, 32);
        let s = wait_stats(&c, |s| s.passed > passed);
        assert!(s.passed > passed, "{s:?}");
        assert_eq!(s.no_socket, 3, "{s:?}");
    });
}

/// One AF_XDP socket (xdpilone, copy mode) on a queue, with its own UMEM.
struct Xsk {
    /// Dropped (closing the socket) before the area is freed.
    parts: Option<XskParts>,
    mem: NonNull<u8>,
    layout: Layout,
}

struct XskParts {
    rx: xdpilone::RingRx,
    _fq: xdpilone::DeviceQueue,
    _user: xdpilone::User,
    _sock: xdpilone::Socket,
    _umem: xdpilone::Umem,
}

const FRAMES: u32 = 64;

impl Xsk {
    fn new(ifindex: u32, queue: u32) -> Self {
        let layout = Layout::from_size_align(FRAMES as usize * 4096, 4096).unwrap();
        // SAFETY: the layout has a non-zero size.
        let mem = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("alloc");
        let area = NonNull::slice_from_raw_parts(mem, layout.size());
        let config = xdpilone::UmemConfig {
            fill_size: FRAMES,
            complete_size: FRAMES,
            ..xdpilone::UmemConfig::default()
        };
        // SAFETY: `area` is page-aligned and zeroed, and is freed only in
        // Drop, after the Umem and everything using it are gone.
        let umem = unsafe { xdpilone::Umem::new(config, area) }.expect("umem");
        let mut info = xdpilone::IfInfo::invalid();
        info.from_ifindex(ifindex).expect("ifinfo");
        info.set_queue(queue);
        let sock = xdpilone::Socket::with_shared(&info, &umem).expect("xsk socket");
        let mut fq = umem.fq_cq(&sock).expect("fill/completion rings");
        let user = umem
            .rx_tx(
                &sock,
                &xdpilone::SocketConfig {
                    rx_size: NonZeroU32::new(FRAMES),
                    tx_size: None,
                    bind_flags: 0,
                },
            )
            .expect("rx ring");
        umem.bind(&user).expect("bind");
        let rx = user.map_rx().expect("map rx");
        let offsets: Vec<u64> = (0..FRAMES)
            .map(|i| umem.frame(xdpilone::BufIdx(i)).unwrap().offset)
            .collect();
        {
            let mut w = fq.fill(FRAMES);
            w.insert(offsets.into_iter());
            w.commit();
        }
        Self {
            parts: Some(XskParts {
                rx,
                _fq: fq,
                _user: user,
                _sock: sock,
                _umem: umem,
            }),
            mem,
            layout,
        }
    }

    /// Frames waiting on the RX ring: (length, UDP destination port).
    fn drain(&mut self) -> Vec<(u32, u16)> {
        let mem = self.mem;
        let rx = &mut self.parts.as_mut().expect("open").rx;
        let mut out = Vec::new();
        let mut r = rx.receive(FRAMES);
        while let Some(d) = r.read() {
            // SAFETY: the kernel wrote `d.len` bytes at offset `d.addr` of
            // our UMEM (it never writes past a frame); the frame is ours
            // until it goes back on the fill ring (never, here).
            let frame = unsafe {
                std::slice::from_raw_parts(mem.as_ptr().add(d.addr as usize), d.len as usize)
            };
            // Ethernet + IPv4 (no options from the kernel's UDP) + UDP.
            let dport = u16::from_be_bytes([frame[36], frame[37]]);
            out.push((d.len, dport));
        }
        r.release();
        out
    }

    fn fd(&self) -> std::os::fd::RawFd {
        self.parts.as_ref().expect("open").rx.as_raw_fd()
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        // Close the socket and unregister the UMEM first.
        self.parts = None;
        // SAFETY: allocated in `new` with this layout; nothing refers to it
        // any more.
        unsafe { dealloc(self.mem.as_ptr(), self.layout) };
    }
}

#[test]
fn redirect_to_af_xdp() {
    if !privileged_ip("network namespaces, XDP") {
        return;
    }
    let lab = Lab::new("xsk");
    let b = lab.b.clone();
    in_ns(&lab.a, || {
        let mut c = Classifier::attach(&["va".to_owned()]).expect("attach");
        let va = ifindex("va").unwrap();
        c.set_services(&[key(A4, 9999)]).unwrap();
        let base = 6;
        c.set_if_base(va, base).unwrap();
        let mut socks: Vec<Xsk> = (0..2).map(|q| Xsk::new(va, q)).collect();
        for (q, s) in socks.iter().enumerate() {
            c.xsk_map_set(base + q as u32, s.fd()).unwrap();
        }

        send_udp(&b, sa(B4, 0), sa(A4, 9999), 3, 100);
        let s = wait_stats(&c, |s| s.redirected >= 3);
        assert_eq!((s.redirected, s.no_socket), (3, 0), "{s:?}");
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < 3 && Instant::now() < deadline {
            for s in &mut socks {
                got.extend(s.drain());
            }
        }
        assert_eq!(
            got,
            vec![(14 + 20 + 8 + 100, 9999); 3],
            "frames on the RX rings"
        );
        in_ns(&b, || assert!(ping(A4.into()), "ping is not redirected"));

        // Sockets gone from the map: passed again.
        c.xsk_map_unset(base).unwrap();
        c.xsk_map_unset(base + 1).unwrap();
        send_udp(&b, sa(B4, 0), sa(A4, 9999), 1, 100);
        let s = wait_stats(&c, |s| s.no_socket >= 1);
        assert_eq!((s.redirected, s.no_socket), (3, 1), "{s:?}");
        drop(c);
        drop(socks);
    });
}

#[test]
fn replaces_and_detaches() {
    if !privileged_ip("network namespaces, XDP") {
        return;
    }
    let lab = Lab::new("repl");
    in_ns(&lab.a, || {
        let va = ifindex("va").unwrap();
        assert_eq!(
            remove_xdp("va").unwrap(),
            Vec::<u32>::new(),
            "nothing to remove"
        );

        // A program left behind by another tool, in generic mode, attached
        // through netlink (it outlives its loader).
        let obj = concat!(env!("OUT_DIR"), "/classify.o");
        #[rustfmt::skip]
        sh(&["link", "set", "dev", "va", "xdpgeneric", "obj", obj, "sec", "xdp"]);
        let old = xdp_state(va)
            .unwrap()
            .skb
            .expect("ip attached a generic program");

        let c1 = Classifier::attach(&["va".to_owned()]).expect("attach over a leftover");
        assert_eq!(c1.attachments()[0].replaced, vec![old]);
        assert_eq!(
            xdp_state(va).unwrap(),
            XdpState {
                driver: Some(c1.program_id()),
                ..XdpState::default()
            }
        );

        // A second classifier while the first still holds its bpf_link.
        let c2 = Classifier::attach(&["va".to_owned()]).expect("attach over a live link");
        assert_eq!(c2.attachments()[0].replaced, vec![c1.program_id()]);
        let want = XdpState {
            driver: Some(c2.program_id()),
            ..XdpState::default()
        };
        assert_eq!(xdp_state(va).unwrap(), want);
        let link = lab.link_a();
        assert_eq!(
            link.matches("prog/xdp id").count(),
            1,
            "no stacking: {link}"
        );
        assert!(
            link.contains(&format!("prog/xdp id {}", c2.program_id())),
            "{link}"
        );

        // Dropping the replaced one leaves the new one alone.
        drop(c1);
        assert_eq!(xdp_state(va).unwrap(), want);

        c2.detach();
        assert!(xdp_state(va).unwrap().is_empty());
        let link = lab.link_a();
        assert!(!link.contains("xdp"), "{link}");
    });
}

#[test]
fn skb_mode_fallback_and_errors() {
    if !privileged_ip("network namespaces, XDP") {
        return;
    }
    let lab = Lab::new("skb");
    in_ns(&lab.a, || {
        // Loopback has no native XDP.
        let c = Classifier::attach(&["lo".to_owned(), "va".to_owned(), "lo".to_owned()])
            .expect("attach");
        let atts = c.attachments();
        assert_eq!(atts.len(), 2, "duplicates are attached once: {atts:?}");
        assert_eq!(atts[0].iface, "lo");
        assert_eq!(atts[0].mode, AttachMode::Skb);
        assert!(atts[0].driver_error.is_some());
        assert_eq!(atts[1].mode, AttachMode::Driver);
        assert_eq!(xdp_state(1).unwrap().skb, Some(c.program_id()));
        drop(c);
        assert!(xdp_state(1).unwrap().is_empty());
        assert!(xdp_state(ifindex("va").unwrap()).unwrap().is_empty());

        match Classifier::attach(&["va".to_owned(), "rvs-nope0".to_owned()]) {
            Err(XdpError::Interface { name, .. }) => assert_eq!(name, "rvs-nope0"),
            other => panic!("expected an interface error, got {other:?}"),
        }
        // The interface attached before the error was detached again.
        assert!(xdp_state(ifindex("va").unwrap()).unwrap().is_empty());
        assert!(matches!(
            ifindex("rvs-nope0"),
            Err(XdpError::Interface { .. })
        ));
    });
}

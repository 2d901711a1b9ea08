//! AF_PACKET sockets (`rvs_io::packet`) and the nftables table
//! (`rvs_io::nft`) in a private network namespace.
//!
//! Topology: one namespace `rvspkt-io-PID-N` with a veth pair `p0`/`p1`.
//! The test body runs in a thread that entered the namespace (setns), so
//! the sockets it opens and the `nft` it runs are the namespace's.
//!
//! Needs root and nft (CI has them); with `RVS_SKIP_PRIVILEGED_TESTS=1` and
//! no root, the tests say so and pass. The namespace is deleted by a guard,
//! also when a test fails.

use std::collections::HashSet;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rvs_io::nft::{self, Claims, NftInterface, NftTable};
use rvs_io::packet::{PacketConfig, PacketSocket, wait_readable};
use rvs_io::xdp::ClassKey;
use rvs_io::xsk::Verdict;

mod common;
use common::*;

/// The namespace with `p0`/`p1` (`queues` queues each); deleted on drop.
struct Ns(String);

impl Ns {
    fn new(queues: u32) -> Ns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rvspkt-io-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Ns(name);
        let q = queues.to_string();
        #[rustfmt::skip]
        run("ip", &[
            "-n", &ns.0, "link", "add", "p0", "numtxqueues", &q, "numrxqueues", &q,
            "type", "veth", "peer", "name", "p1", "numtxqueues", &q, "numrxqueues", &q,
        ]);
        for dev in ["p0", "p1"] {
            run("ip", &["-n", &ns.0, "link", "set", dev, "up"]);
        }
        // The kernel attaches a device's qdisc (until then frames sent on
        // it are dropped) and sets its operstate from its link-watch work,
        // up to a second after `link set up` on a busy machine: wait for
        // both ends to say UP before the test sends anything.
        let deadline = Instant::now() + Duration::from_secs(10);
        for dev in ["p0", "p1"] {
            loop {
                let o = Command::new("ip")
                    .args(["-n", &ns.0, "-o", "link", "show", dev])
                    .output()
                    .expect("ip link show");
                if String::from_utf8_lossy(&o.stdout).contains("state UP") {
                    break;
                }
                assert!(Instant::now() < deadline, "{dev} never came up");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        ns
    }

    /// Run `f` in a thread that entered the namespace.
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = File::open(&path).expect("open netns");
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A UDP/IPv4 frame from 10.9.0.1 to 10.9.0.2:9, numbered `n` (in the
/// source port and the payload), to `dst` (MAC); UDP checksum 0 (none).
fn frame_to(dst: [u8; 6], n: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]); // src
    f.extend_from_slice(&[0x08, 0x00]);
    let payload = format!("frame {n:05}");
    let ip_len = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[10, 9, 0, 1, 10, 9, 0, 2]);
    let mut sum = 0u32;
    for w in f[14..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&(10000 + n).to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload.as_bytes());
    f
}

fn frame(n: u16) -> Vec<u8> {
    frame_to([0x02, 0, 0, 0, 0, 1], n)
}

/// Whether `f` is one of our test frames (IPv6 router solicitations and
/// the like show up too).
fn is_test_frame(f: &[u8]) -> bool {
    f.len() > 42
        && f[12..14] == [0x08, 0x00]
        && f[23] == 17
        && (10000..11000).contains(&u16::from_be_bytes([f[34], f[35]]))
}

/// Receive from `socks` until `want` frames came or 3 s passed; the frames
/// (bytes), by socket.
fn collect(socks: &mut [PacketSocket], want: usize, echo: bool) -> Vec<Vec<Vec<u8>>> {
    let mut got: Vec<Vec<Vec<u8>>> = socks.iter().map(|_| Vec::new()).collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    while got.iter().map(Vec::len).sum::<usize>() < want && Instant::now() < deadline {
        let fds: Vec<_> = socks.iter().map(PacketSocket::fd).collect();
        wait_readable(&fds, 50).expect("poll");
        for (s, g) in socks.iter_mut().zip(got.iter_mut()) {
            s.rx_batch(64, |f| {
                if is_test_frame(f.data()) {
                    g.push(f.data().to_vec());
                    if echo {
                        return f.tx_same();
                    }
                }
                Verdict::Done
            })
            .expect("rx_batch");
            s.flush().expect("flush");
        }
    }
    got
}

#[test]
fn batches_both_ways_and_no_own_tx() {
    if !privileged("network namespaces") {
        return;
    }
    let ns = Ns::new(1);
    ns.enter(|| {
        let cfg = PacketConfig::default();
        let mut tx = PacketSocket::open("p0", &cfg).expect("open p0");
        let mut rx = [PacketSocket::open("p1", &cfg).expect("open p1")];
        let n = 100u16;
        for i in 0..n {
            assert!(tx.tx_copy(&frame(i)));
        }
        assert_eq!(tx.tx_pending(), n as usize);
        tx.flush().expect("flush");
        assert_eq!(tx.tx_pending(), 0);
        assert_eq!(tx.stats().tx_packets, u64::from(n));
        // p1 receives each frame once, byte-exact, in order; p1 echoes them
        // back out (TxSame).
        let got = collect(&mut rx, n as usize, true);
        assert_eq!(got[0].len(), n as usize);
        for (i, f) in got[0].iter().enumerate() {
            assert_eq!(f, &frame(i as u16), "frame {i}");
        }
        assert_eq!(rx[0].stats().tx_packets, u64::from(n));
        // p0 gets the echoes, and never its own transmissions back
        // (PACKET_IGNORE_OUTGOING): exactly n frames.
        let mut back = [tx];
        let got = collect(&mut back, n as usize + 1, false);
        assert_eq!(got[0].len(), n as usize, "own frames read back?");
        assert_eq!(got[0][7], frame(7));
        let k = back[0].kernel_stats().expect("PACKET_STATISTICS");
        assert_eq!(k.drops, 0);
        // Bad input: empty and oversized frames are refused, not sent.
        assert!(!back[0].tx_copy(&[]));
        assert!(!back[0].tx_copy(&vec![0u8; 70000]));
        assert_eq!(back[0].tx_pending(), 0);
        assert_eq!(back[0].stats().tx_invalid, 2);
        assert_eq!(back[0].stats().tx_dropped, 0);
        assert!(PacketSocket::open("nosuchif0", &cfg).is_err());
    });
}

#[test]
fn fanout_shares_flows_between_sockets() {
    if !privileged("network namespaces") {
        return;
    }
    let ns = Ns::new(1);
    ns.enter(|| {
        let cfg = PacketConfig::default();
        let mut tx = PacketSocket::open_tx_only("p0", &cfg).expect("open p0");
        let mut a = PacketSocket::open("p1", &cfg).expect("open p1 a");
        let mut b = PacketSocket::open("p1", &cfg).expect("open p1 b");
        let id = a.join_fanout(None).expect("new fanout group");
        assert_eq!(b.join_fanout(Some(id)).expect("join fanout group"), id);
        let n = 200u16;
        for i in 0..n {
            assert!(tx.tx_copy(&frame(i)));
        }
        tx.flush().expect("flush");
        let mut socks = [a, b];
        let got = collect(&mut socks, n as usize, false);
        let total: usize = got.iter().map(Vec::len).sum();
        assert_eq!(total, n as usize, "every frame exactly once");
        let all: HashSet<Vec<u8>> = got.iter().flatten().cloned().collect();
        assert_eq!(all.len(), n as usize);
        assert!(
            got[0].len() > 10 && got[1].len() > 10,
            "flows spread over both sockets: {} / {}",
            got[0].len(),
            got[1].len()
        );
    });
}

fn tables() -> String {
    run("nft", &["list", "tables"])
}

fn table() -> String {
    run("nft", &["list", "table", "netdev", "rvs"])
}

#[test]
fn nft_table_install_replace_remove() {
    if !privileged("network namespaces") {
        return;
    }
    let ns = Ns::new(1);
    ns.enter(|| {
        let ifindex = |name: &str| {
            let s = run("ip", &["-o", "link", "show", name]);
            s.split(':').next().unwrap().trim().parse::<u32>().unwrap()
        };
        let ifaces = vec![
            NftInterface {
                name: "p0".into(),
                ifindex: ifindex("p0"),
            },
            NftInterface {
                name: "p1".into(),
                ifindex: ifindex("p1"),
            },
        ];
        let vip: IpAddr = "10.9.0.100".parse().unwrap();
        let mut t = NftTable::install(ifaces.clone()).expect("install");
        let listed = table();
        assert!(listed.contains("hook ingress device \"p0\""), "{listed}");
        assert!(listed.contains("hook ingress device \"p1\""), "{listed}");
        let services = [ClassKey {
            proto: 6,
            addr: vip,
            port: 80,
        }];
        t.set(&Claims {
            services: &services,
            ..Claims::default()
        })
        .expect("set");
        let listed = table();
        // Per interface: the service, and its address's TCP fragments.
        assert_eq!(listed.matches("ip daddr 10.9.0.100").count(), 4, "{listed}");
        assert_eq!(listed.matches("frag-off").count(), 2, "{listed}");
        // Replaced, not added to.
        let services2 = [ClassKey {
            proto: 17,
            addr: vip,
            port: 53,
        }];
        t.set(&Claims {
            services: &services2,
            ..Claims::default()
        })
        .expect("set again");
        let listed = table();
        assert!(!listed.contains("dport 80"), "{listed}");
        assert_eq!(listed.matches("udp dport 53").count(), 2, "{listed}");
        // The table is owned by the session's nft: when that ends, however
        // (here SIGKILL, as when rvsd is killed), the kernel deletes it.
        assert!(listed.contains("flags owner"), "{listed}");
        let pid = t.owner_pid().to_string();
        std::mem::forget(t);
        assert!(
            Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while tables().contains("rvs") {
            assert!(Instant::now() < deadline, "table left: {}", tables());
            std::thread::sleep(Duration::from_millis(10));
        }
        // A table left by an older rvs (not owned) is replaced by the next
        // install, not stacked.
        nft::apply(&nft::ruleset(&ifaces, &Claims::default()).unwrap()).expect("unowned");
        let t = NftTable::install(ifaces.clone()).expect("reinstall");
        let listed = table();
        assert!(listed.contains("flags owner"), "{listed}");
        assert_eq!(tables().matches("netdev rvs").count(), 1);
        // Another owner's table (a second rvsd in the namespace) is not
        // taken over.
        assert!(NftTable::install(ifaces.clone()).is_err());
        // Bad input: refused before nft runs, nothing half-applied.
        let bad = vec![NftInterface {
            name: "p0\"; flush ruleset".into(),
            ifindex: 999,
        }];
        assert!(NftTable::install(bad).is_err());
        assert!(
            table().contains("device \"p0\""),
            "the good table is still there"
        );
        t.remove().expect("remove");
        assert!(!tables().contains("rvs"), "{}", tables());
        // Drop removes too.
        drop(NftTable::install(ifaces).expect("install"));
        assert!(!tables().contains("rvs"), "{}", tables());
    });
}

#[test]
fn nft_drops_claimed_frames_before_the_kernel_not_the_tap() {
    if !privileged("network namespaces") {
        return;
    }
    let ns = Ns::new(1);
    run(
        "ip",
        &["-n", &ns.0, "addr", "add", "10.9.0.2/24", "dev", "p1"],
    );
    ns.enter(|| {
        let link = run("ip", &["-o", "link", "show", "p1"]);
        let ifindex: u32 = link.split(':').next().unwrap().trim().parse().unwrap();
        let mac_text = link
            .split("link/ether ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("p1 MAC");
        let mut mac = [0u8; 6];
        for (m, h) in mac.iter_mut().zip(mac_text.split(':')) {
            *m = u8::from_str_radix(h, 16).unwrap();
        }
        // Claim the "replies" of 10.9.0.1:10005 (as a NAT real server's).
        let nat = [ClassKey {
            proto: 17,
            addr: "10.9.0.1".parse().unwrap(),
            port: 10005,
        }];
        let mut t = NftTable::install(vec![NftInterface {
            name: "p1".into(),
            ifindex,
        }])
        .expect("install");
        t.set(&Claims {
            nat: &nat,
            ..Claims::default()
        })
        .expect("set");
        let udp = std::net::UdpSocket::bind("10.9.0.2:9").expect("bind 10.9.0.2:9");
        udp.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let cfg = PacketConfig::default();
        let mut tx = PacketSocket::open_tx_only("p0", &cfg).expect("p0");
        let mut rx = [PacketSocket::open("p1", &cfg).expect("p1")];
        for i in 0..10 {
            assert!(tx.tx_copy(&frame_to(mac, i)));
        }
        tx.flush().expect("flush");
        // The tap sees all ten, claimed one included.
        let got = collect(&mut rx, 10, false);
        assert_eq!(got[0].len(), 10, "the tap sees claimed frames too");
        // The kernel's socket gets the nine others, never the claimed one.
        let mut seen = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            seen.push((from.port(), buf[..n].to_vec()));
        }
        assert_eq!(seen.len(), 9, "{seen:?}");
        assert!(seen.iter().all(|(p, _)| *p != 10005), "{seen:?}");
        drop(t);
        assert!(!tables().contains("rvs"));
        // Without the table the kernel gets that one too.
        assert!(tx.tx_copy(&frame_to(mac, 5)));
        tx.flush().expect("flush");
        let (_, from) = udp.recv_from(&mut buf).expect("unclaimed now");
        assert_eq!(from.port(), 10005);
    });
}

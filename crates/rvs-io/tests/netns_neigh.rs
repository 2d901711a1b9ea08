//! Next-hop resolution against a real kernel, in network namespaces.
//!
//! Needs root and iproute2; skipped (with a message) otherwise. Each test
//! builds its own pair of namespaces (deleted by a guard, also on failure):
//!
//! ```text
//!  ns A (resolver)                         ns B
//!  a0 02:00:00:0a:00:NN  ── veth ──  b0 02:00:00:0b:00:NN
//!     10.77.NN.1/24, fd77:NN::1/64          10.77.NN.2/24, 10.77.NN.3/24, fd77:NN::2/64
//!     mtu 1400
//!  198.18.NN.0/24 via 10.77.NN.2
//!  fd78:NN::/64   via fd77:NN::2
//! ```
//!
//! The resolver is started from a thread that `setns`'d into A: its own
//! thread inherits that namespace (checked: it sees only A's interfaces).

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use rvs_io::neigh::{NeighError, NextHop, Resolver, ResolverConfig};

mod common;
use common::*;

const T: Duration = Duration::from_secs(3);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A network namespace, deleted on drop.
struct Ns {
    name: String,
}

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("rvsnb-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ns = Ns { name };
        run(&["netns", "add", &ns.name]);
        ns.ip("link set lo up");
        ns
    }

    /// `ip -n <ns> <args>`; panics on failure.
    fn ip(&self, args: &str) {
        let mut v = vec!["-n", &self.name];
        v.extend(args.split_whitespace());
        run(&v);
    }

    /// `ip -n <ns> <args>` output.
    fn ip_out(&self, args: &str) -> String {
        let mut v = vec!["-n", &self.name];
        v.extend(args.split_whitespace());
        let out = Command::new("ip").args(&v).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn run(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The two-namespace topology of the module comment, numbered `n`.
struct Topo {
    n: u8,
    a: Ns,
    b: Ns,
}

impl Topo {
    fn new(n: u8) -> Topo {
        let a = Ns::new(&format!("{n}a"));
        let b = Ns::new(&format!("{n}b"));
        a.ip(&format!(
            "link add a0 type veth peer name b0 netns {}",
            b.name
        ));
        a.ip(&format!(
            "link set a0 address 02:00:00:0a:00:{n:02x} mtu 1400"
        ));
        a.ip(&format!("addr add 10.77.{n}.1/24 dev a0"));
        a.ip(&format!("addr add fd77:{n}::1/64 dev a0 nodad"));
        a.ip("link set a0 up");
        b.ip(&format!("link set b0 address 02:00:00:0b:00:{n:02x}"));
        b.ip(&format!("addr add 10.77.{n}.2/24 dev b0"));
        b.ip(&format!("addr add 10.77.{n}.3/24 dev b0"));
        b.ip(&format!("addr add fd77:{n}::2/64 dev b0 nodad"));
        b.ip("link set b0 up");
        a.ip(&format!("route add 198.18.{n}.0/24 via 10.77.{n}.2"));
        a.ip(&format!("route add fd78:{n}::/64 via fd77:{n}::2"));
        Topo { n, a, b }
    }

    fn a_mac(&self) -> [u8; 6] {
        [2, 0, 0, 0x0a, 0, self.n]
    }

    fn b_mac(&self) -> [u8; 6] {
        [2, 0, 0, 0x0b, 0, self.n]
    }

    fn v4(&self, host: u8) -> IpAddr {
        ip(&format!("10.77.{}.{host}", self.n))
    }

    /// A resolver whose thread lives in namespace A.
    fn resolver(&self) -> Resolver {
        self.resolver_with(ResolverConfig::default())
    }

    fn resolver_with(&self, cfg: ResolverConfig) -> Resolver {
        let path = format!("/run/netns/{}", self.a.name);
        let r = std::thread::spawn(move || {
            let ns = File::open(path).expect("open netns");
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network)).expect("setns");
            Resolver::start_with(cfg).expect("start resolver")
        })
        .join()
        .unwrap();
        // The resolver thread inherited A: it sees A's links, not the host's.
        let mut names: Vec<String> = r.interfaces().into_iter().map(|l| l.name).collect();
        names.sort();
        assert_eq!(names, ["a0", "lo"], "the resolver thread is in namespace A");
        r
    }

    fn a0(&self, r: &Resolver) -> u32 {
        r.interface_by_name("a0").expect("a0").ifindex
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn directly_connected_and_routed_ipv4() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(1);
    let r = t.resolver();
    let a0 = t.a0(&r);

    for host in [2, 3] {
        // Both addresses of B: the same neighbour MAC, no gateway.
        let dst = t.v4(host);
        let hop = r.resolve(dst, T).unwrap();
        assert_eq!(
            hop,
            NextHop {
                ifindex: a0,
                ifname: "a0".into(),
                neighbour_mac: t.b_mac(),
                via: dst,
                src: Some(t.v4(1)),
            }
        );
    }
    let routed = ip("198.18.1.9");
    let hop = r.resolve(routed, T).unwrap();
    assert_eq!(hop.ifindex, a0);
    assert_eq!(hop.via, t.v4(2), "via the gateway");
    assert_eq!(hop.neighbour_mac, t.b_mac(), "the gateway's MAC");
    assert_eq!(hop.src, Some(t.v4(1)));
    // The kernel's own neighbour table agrees.
    let kernel = t.a.ip_out("neigh show 10.77.1.2 dev a0");
    assert!(kernel.contains("02:00:00:0b:00:01"), "{kernel}");
}

#[test]
fn interface_info() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(2);
    let r = t.resolver();
    let a0 = r.interface_by_name("a0").unwrap();
    assert_eq!(a0.mac, t.a_mac());
    assert_eq!(a0.mtu, 1400);
    assert!(a0.up);
    assert!(a0.addrs.contains(&t.v4(1)), "{:?}", a0.addrs);
    assert!(a0.addrs.contains(&ip("fd77:2::1")), "{:?}", a0.addrs);
    assert_eq!(r.interface(a0.ifindex), Some(a0.clone()));
    assert_eq!(r.interface(9999), None);
    let lo = r.interface_by_name("lo").unwrap();
    assert_eq!(lo.ifindex, 1);
    assert!(lo.up);
    assert!(lo.addrs.contains(&ip("127.0.0.1")), "{:?}", lo.addrs);

    // Address and state changes show up.
    t.a.ip("addr add 10.77.2.100/24 dev a0");
    wait_until("the new address", T, || {
        r.interface(a0.ifindex).unwrap().addrs.contains(&t.v4(100))
    });
    t.a.ip("link set a0 down");
    wait_until("a0 down", T, || !r.interface(a0.ifindex).unwrap().up);
}

#[test]
fn lookup_misses_then_fills_in_the_background() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(3);
    let r = t.resolver();
    let dst = t.v4(3);
    assert_eq!(r.lookup(dst), None, "nothing cached, nothing blocks");
    let mut hop = None;
    wait_until("the background resolution", T, || {
        hop = r.lookup(dst);
        hop.is_some()
    });
    let hop = hop.unwrap();
    assert_eq!(hop.neighbour_mac, t.b_mac());
    assert_eq!(hop.ifindex, t.a0(&r));
    assert!(r.hops().contains(&(dst, hop)));

    // Routed and IPv6 destinations the same way.
    for dst in [ip("198.18.3.1"), ip("fd77:3::2"), ip("fd78:3::1")] {
        assert_eq!(r.lookup(dst), None);
        wait_until("the background resolution", T, || {
            r.lookup(dst).is_some_and(|h| h.neighbour_mac == t.b_mac())
        });
    }

    // Forgotten destinations start over.
    r.forget(dst);
    assert_eq!(r.lookup(dst), None);
    wait_until("the resolution after forget", T, || r.lookup(dst).is_some());
}

#[test]
fn generation_moves_on_mtu_and_neighbour_changes() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(4);
    let r = t.resolver();
    let a0 = t.a0(&r);
    let dst = t.v4(2);
    r.resolve(dst, T).unwrap();

    let g = r.generation();
    t.a.ip("link set a0 mtu 1300");
    wait_until("generation after the MTU change", T, || r.generation() > g);
    wait_until("the new MTU", T, || r.interface(a0).unwrap().mtu == 1300);

    let g = r.generation();
    // `ip neigh flush` may report "flush not complete": the resolver has the
    // kernel resolve the deleted neighbour again at once, as traffic would.
    let out = t.a.ip_out("neigh flush dev a0");
    eprintln!("flush: {out}");
    wait_until("generation after the flush", T, || r.generation() > g);
    // The hop keeps its MAC while the kernel resolves the neighbour again.
    assert_eq!(r.lookup(dst).unwrap().neighbour_mac, t.b_mac());
    wait_until("the kernel re-resolving the flushed neighbour", T, || {
        t.a.ip_out("neigh show 10.77.4.2 dev a0")
            .contains("02:00:00:0b:00:04")
    });

    // A changed neighbour MAC reaches the hop.
    let g = r.generation();
    t.a.ip("neigh replace 10.77.4.2 lladdr 02:00:00:00:00:99 dev a0 nud permanent");
    wait_until("the new MAC", T, || {
        r.lookup(dst).unwrap().neighbour_mac == [2, 0, 0, 0, 0, 0x99]
    });
    assert!(r.generation() > g);
}

#[test]
fn ipv6_connected_and_routed() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(5);
    let r = t.resolver();
    let a0 = t.a0(&r);
    let hop = r.resolve(ip("fd77:5::2"), T).unwrap();
    assert_eq!(
        hop,
        NextHop {
            ifindex: a0,
            ifname: "a0".into(),
            neighbour_mac: t.b_mac(),
            via: ip("fd77:5::2"),
            src: Some(ip("fd77:5::1")),
        }
    );
    let hop = r.resolve(ip("fd78:5::42"), T).unwrap();
    assert_eq!(hop.via, ip("fd77:5::2"));
    assert_eq!(hop.neighbour_mac, t.b_mac());
    assert_eq!(hop.ifindex, a0);
}

#[test]
fn local_and_unreachable_destinations() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(6);
    t.a.ip("route add unreachable 198.51.100.0/24");
    t.a.ip("route add prohibit 192.0.2.0/24");
    let r = t.resolver();
    for local in [t.v4(1), ip("fd77:6::1"), ip("127.0.0.1"), ip("::1")] {
        assert_eq!(r.resolve(local, T), Err(NeighError::Local(local)));
    }
    for dst in [
        ip("203.0.113.1"),
        ip("198.51.100.1"),
        ip("192.0.2.1"),
        ip("2001:db8::1"),
        ip("10.77.6.255"),
    ] {
        let e = r.resolve(dst, T).unwrap_err();
        assert!(
            matches!(&e, NeighError::NoRoute { dst: d, .. } if *d == dst),
            "{dst}: {e}"
        );
    }
    assert_eq!(r.lookup(ip("203.0.113.1")), None);

    // A route appears: the failed destination resolves on the next try.
    t.a.ip("route add 203.0.113.0/24 via 10.77.6.3");
    let hop = r.resolve(ip("203.0.113.1"), T).unwrap();
    assert_eq!(hop.via, t.v4(3));
}

#[test]
fn silent_neighbour_is_unresolved() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(7);
    t.a.ip("route add 198.18.77.0/24 via 10.77.7.99");
    let r = t.resolver_with(ResolverConfig {
        retry_after: Duration::from_millis(100),
        ..ResolverConfig::default()
    });
    let start = Instant::now();
    let silent = t.v4(99);
    let routed = ip("198.18.77.1");
    let silent6 = ip("fd77:7::99");
    let a0 = t.a0(&r);
    let unresolved = |dst, via| NeighError::Unresolved {
        dst,
        via,
        ifindex: a0,
    };
    std::thread::scope(|s| {
        // A routed destination behind the same silent gateway, and IPv6, at
        // the same time.
        let behind = s.spawn(|| r.resolve(routed, Duration::from_secs(8)));
        let v6 = s.spawn(|| r.resolve(silent6, Duration::from_secs(8)));
        let e = r.resolve(silent, Duration::from_secs(8)).unwrap_err();
        assert_eq!(e, unresolved(silent, silent));
        assert_eq!(behind.join().unwrap(), Err(unresolved(routed, silent)));
        assert_eq!(v6.join().unwrap(), Err(unresolved(silent6, silent6)));
    });
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "{took:?}");
    eprintln!("FAILED after {took:?}");

    // The gateway comes alive: a lookup after `retry_after` tries again.
    t.b.ip("addr add 10.77.7.99/24 dev b0");
    std::thread::sleep(Duration::from_millis(150));
    wait_until("the retried resolution", T, || {
        r.lookup(routed)
            .is_some_and(|h| h.neighbour_mac == t.b_mac() && h.via == silent)
    });
}

#[test]
fn route_and_link_changes_move_hops() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(8);
    let r = t.resolver();
    let dst = ip("198.18.8.9");
    assert_eq!(r.resolve(dst, T).unwrap().via, t.v4(2));

    let g = r.generation();
    t.a.ip("route replace 198.18.8.0/24 via 10.77.8.3");
    wait_until("the new gateway", T, || {
        r.lookup(dst)
            .is_some_and(|h| h.via == t.v4(3) && h.neighbour_mac == t.b_mac())
    });
    assert!(r.generation() > g);

    // B's MAC changes and A learns it (gratuitous-ARP-free: re-probe): the
    // hop follows once the kernel's entry does.
    t.b.ip("link set b0 address 02:00:00:0b:01:08");
    t.a.ip_out("neigh flush dev a0");
    wait_until("the new MAC of B", T, || {
        r.lookup(dst)
            .is_some_and(|h| h.neighbour_mac == [2, 0, 0, 0x0b, 1, 8])
    });

    // The link goes away: the hop fails (no route), the interface is gone.
    let a0 = t.a0(&r);
    t.a.ip("link del a0");
    wait_until("the hop to fail", T, || r.lookup(dst).is_none());
    wait_until("a0 to disappear", T, || r.interface(a0).is_none());
    let e = r.resolve(dst, T).unwrap_err();
    assert!(matches!(e, NeighError::NoRoute { .. }), "{e}");
}

#[test]
fn idle_destinations_are_forgotten() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(9);
    let r = t.resolver_with(ResolverConfig {
        idle_timeout: Duration::from_millis(300),
        ..ResolverConfig::default()
    });
    let (idle, busy) = (t.v4(2), t.v4(3));
    r.resolve(idle, T).unwrap();
    r.resolve(busy, T).unwrap();
    let g = r.generation();
    let start = Instant::now();
    // `busy` is looked up all along; `idle` is not.
    wait_until("the idle destination to go", T, || {
        assert!(r.lookup(busy).is_some(), "a destination in use stays");
        std::thread::sleep(Duration::from_millis(20));
        !r.hops().iter().any(|(d, _)| *d == idle)
    });
    assert!(start.elapsed() >= Duration::from_millis(250));
    assert!(r.generation() > g, "forgetting a hop moves the generation");
    assert!(r.lookup(busy).is_some());
    // Asked for again, it comes back.
    wait_until("the idle destination to return", T, || {
        r.lookup(idle).is_some()
    });
}

#[test]
fn stale_neighbours_in_use_are_probed() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(10);
    // DELAY lasts 1 s instead of 5 before the kernel probes.
    let out = Command::new("ip")
        .args(["netns", "exec", &t.a.name, "sysctl", "-qw"])
        .arg("net.ipv4.neigh.a0.delay_first_probe_time=1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = t.resolver_with(ResolverConfig {
        refresh_interval: Duration::from_millis(200),
        ..ResolverConfig::default()
    });
    r.resolve(t.v4(2), T).unwrap();
    let state = || t.a.ip_out("neigh show 10.77.10.2 dev a0");
    wait_until("the kernel to confirm the entry", T, || {
        state().contains("REACHABLE")
    });
    // A STALE entry stays STALE until something sends through the kernel,
    // which nothing does here: the resolver's refresh must get it probed.
    t.a.ip("neigh change 10.77.10.2 dev a0 lladdr 02:00:00:0b:00:0a nud stale");
    assert!(state().contains("STALE"));
    wait_until("the entry to be confirmed again", T, || {
        state().contains("REACHABLE")
    });
    assert_eq!(r.lookup(t.v4(2)).unwrap().neighbour_mac, t.b_mac());
}

/// New destinations reach the data plane through `take_ready`, each once,
/// without moving the generation each (a flood of spoofed NAT clients made the data
/// plane copy every hop once per new one).
#[test]
fn new_destinations_come_through_take_ready() {
    if !privileged_ip("network namespaces") {
        return;
    }
    let t = Topo::new(11);
    let r = t.resolver();
    r.resolve(t.v4(2), T).unwrap();
    let _ = r.take_ready();
    let g = r.generation();
    let dsts: Vec<IpAddr> = (1..=200u8).map(|i| ip(&format!("198.18.11.{i}"))).collect();
    for d in &dsts {
        assert!(r.lookup(*d).is_none(), "not resolved yet");
    }
    let mut got = std::collections::HashSet::new();
    wait_until("every new destination ready", T, || {
        for (d, h) in r.take_ready() {
            assert_eq!(h.via, t.v4(2));
            got.insert(d);
        }
        dsts.iter().all(|d| got.contains(d))
    });
    // A neighbour's state may have moved it once or twice; 200 new hops
    // alone do not.
    assert!(
        r.generation() - g < 10,
        "generation {g} -> {}",
        r.generation()
    );
    assert!(r.take_ready().is_empty(), "each is reported once");
}

//! What rvsd does where live-frames test runs are refused
//! (`RVS_LIVE_FRAMES=off` here, as on such a host): `probe_redirect`
//! says so (a distinct error), and `redirwatch` decides from the fast
//! path's own redirects of real traffic whether a veth takes them. A veth
//! whose peer is in NAPI mode (GRO) is found to take them after one trial
//! frame; one whose peer is not loses exactly one frame per trial, trials
//! backing off, and the rest of its flow is left to the slow path. A peer
//! that leaves NAPI mode is found out after two rounds of lost redirects.
//!
//! Topology, all in namespaces of this test (`rvsrw-…`): sender `s0` (ns
//! S) — `in0` [ns D: the classifier] `napi0` — `p0` (ns N, GRO on), and
//! [D] `plain0` — `p0` (ns P, nothing). The fast path has one DR entry per
//! egress for a UDP flow from S. Rounds run on a simulated clock (a
//! second each) so that the backoff shows without waiting for it.
//!
//! Needs root; skips with a message when not root and
//! `RVS_SKIP_PRIVILEGED_TESTS=1`. Namespaces are removed by a guard.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use rvs_io::flowcache::{FlowAction, FlowKey, FlowRewrite};
use rvs_io::redirwatch::{Phase, RedirectWatch, Sample, TRIAL_BUDGET};
use rvs_io::xdp::{Classifier, XdpError, ifindex, xdp_xmit_counters};

mod common;
use common::*;

/// The namespaces, deleted on drop (with them, their veths).
struct Nss(Vec<String>);

impl Drop for Nss {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn mac_of(ns: &str, ifname: &str) -> [u8; 6] {
    let out = run("ip", &["-n", ns, "-br", "link", "show", ifname]);
    let m = out
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no MAC in {out}"));
    let b: Vec<u8> = m
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).expect("hex"))
        .collect();
    b.try_into().expect("6 bytes")
}

/// `n` UDP datagrams from S to `dst`:`port`.
fn send(ns: &str, dst: Ipv4Addr, port: u16, n: usize) {
    in_ns(ns, move || {
        let s = UdpSocket::bind("10.77.1.2:5000").expect("bind");
        for i in 0..n {
            s.send_to(&[i as u8; 64], (dst, port)).expect("send");
        }
    });
}

/// One egress under watch.
struct Egress {
    name: &'static str,
    ifindex: u32,
    watch: RedirectWatch,
    sent: u64,
}

/// The readings of watched `name` (`ifindex`) in `ns`, as rvsd takes them:
/// the fast path's counts, then the veth's counters.
fn sample(ns: &str, c: &Classifier, name: &'static str, ifindex: u32) -> Sample {
    let watch = c
        .flow_cache()
        .watch_counts(ifindex)
        .expect("watch counts")
        .expect("watched");
    let counters = in_ns(ns, move || {
        std::thread::sleep(Duration::from_millis(20)); // the flush
        xdp_xmit_counters(name).expect("xdp_xmit counters")
    });
    Sample { watch, counters }
}

#[test]
fn without_live_frames_real_redirects_decide() {
    if !privileged("network namespaces") {
        return;
    }
    // SAFETY: the only test of this binary, before any thread of its own.
    unsafe { std::env::set_var(rvs_io::livefr::ENV, "off") };
    let id = std::process::id() % 100_000;
    let [s, d, n, p] = ["s", "d", "n", "p"].map(|x| format!("rvsrw-{x}-{id}"));
    let _guard = Nss(vec![s.clone(), d.clone(), n.clone(), p.clone()]);
    for ns in [&s, &d, &n, &p] {
        run("ip", &["netns", "add", ns]);
    }
    for (a_ns, a, b_ns, b) in [
        (&s, "s0", &d, "in0"),
        (&d, "napi0", &n, "p0"),
        (&d, "plain0", &p, "p0"),
    ] {
        run(
            "ip",
            &[
                "-n", a_ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", b_ns,
            ],
        );
        run("ip", &["-n", a_ns, "link", "set", a, "up"]);
        run("ip", &["-n", b_ns, "link", "set", b, "up"]);
    }
    run(
        "ip",
        &["-n", &s, "addr", "add", "10.77.1.2/24", "dev", "s0"],
    );
    run(
        "ip",
        &["-n", &s, "route", "add", "10.77.2.0/24", "via", "10.77.1.1"],
    );
    let in_mac = mac_of(&d, "in0")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    run(
        "ip",
        &[
            "-n",
            &s,
            "neigh",
            "add",
            "10.77.1.1",
            "lladdr",
            &in_mac,
            "dev",
            "s0",
        ],
    );
    in_ns(&n, || rvs_io::packet::set_gro("p0", true).expect("gro on"));

    let mut c = in_ns(&d, || {
        Classifier::attach(&["in0".to_string()]).expect("attach")
    });
    let (napi_idx, plain_idx) = in_ns(&d, || {
        (
            ifindex("napi0").expect("ifindex"),
            ifindex("plain0").expect("ifindex"),
        )
    });
    // The probe cannot answer here, and says why.
    let dn = d.clone();
    let mac = mac_of(&d, "napi0");
    let c2 = in_ns(&dn, move || {
        let e = c.probe_redirect("napi0", napi_idx, mac).map(|_| ());
        (c, e)
    });
    c = c2.0;
    match c2.1 {
        Err(XdpError::LiveFramesRefused { errno, detail }) => {
            assert_eq!(errno, libc::EPERM);
            assert!(detail.contains("RVS_LIVE_FRAMES=off"), "{detail}");
        }
        other => panic!("probe with RVS_LIVE_FRAMES=off: {other:?}"),
    }

    // One flow per egress, and their watches.
    let mut egress = Vec::new();
    for (name, idx, peer_ns, port) in [
        ("napi0", napi_idx, &n, 6000u16),
        ("plain0", plain_idx, &p, 6001),
    ] {
        let key = FlowKey {
            proto: 17,
            src: IpAddr::V4(Ipv4Addr::new(10, 77, 1, 2)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 77, 2, 2)),
            sport: 5000,
            dport: port,
        };
        let action = FlowAction {
            rewrite: FlowRewrite::Dr,
            ifindex: idx,
            src_mac: mac_of(&d, name),
            dst_mac: mac_of(peer_ns, "p0"),
            mtu: 1500,
            conn: 1,
            cookie: 0,
        };
        // The baseline before any redirect can happen.
        c.flow_cache_mut()
            .watch(idx, rvs_io::flowcache::Gate::Budget(0))
            .expect("watch");
        let (watch, gate) = RedirectWatch::new(sample(&d, &c, name, idx));
        c.flow_cache_mut().set_gate(idx, gate).expect("gate");
        c.flow_cache_mut().insert(&key, &action).expect("insert");
        egress.push(Egress {
            name,
            ifindex: idx,
            watch,
            sent: 0,
        });
    }

    // Rounds of a simulated second: 20 datagrams per flow, then a look.
    const PER_ROUND: usize = 20;
    const ROUNDS: u32 = 8;
    let t0 = Instant::now();
    let mut flipped_at = [None; 2];
    for r in 0..ROUNDS {
        let now = t0 + Duration::from_secs(u64::from(r) + 1);
        for (i, e) in egress.iter_mut().enumerate() {
            send(&s, Ipv4Addr::new(10, 77, 2, 2), 6000 + i as u16, PER_ROUND);
            e.sent += PER_ROUND as u64;
            let smp = sample(&d, &c, e.name, e.ifindex);
            let step = e.watch.round(smp, now);
            if let Some(g) = step.gate {
                c.flow_cache_mut().set_gate(e.ifindex, g).expect("gate");
            }
            if step.flip == Some(true) {
                flipped_at[i].get_or_insert(r);
            }
            eprintln!(
                "round {r} {}: {:?} redirected {} held {} xmit {:?}: {}",
                e.name,
                e.watch.phase(),
                smp.watch.redirected,
                smp.watch.held,
                smp.counters,
                e.watch.describe(now)
            );
        }
    }
    let [napi, plain] = [&egress[0], &egress[1]];
    let cn = c.flow_cache().watch_counts(napi.ifindex).unwrap().unwrap();
    let cp = c.flow_cache().watch_counts(plain.ifindex).unwrap().unwrap();
    let xn = in_ns(&d, || xdp_xmit_counters("napi0").unwrap());
    let xp = in_ns(&d, || xdp_xmit_counters("plain0").unwrap());
    eprintln!(
        "NAPI peer: on at round {:?}; redirected {} of {} (held {}), xdp_xmit {xn:?}",
        flipped_at[0], cn.redirected, napi.sent, cn.held
    );
    eprintln!(
        "plain peer: {:?}; redirected (lost) {} of {} in {} trials (held {}), xdp_xmit {xp:?}",
        plain.watch.phase(),
        cp.redirected,
        plain.sent,
        plain.watch.trials(),
        cp.held
    );
    // The NAPI peer: on after its first round (one trial frame), then all.
    assert!(
        napi.watch.takes(),
        "{}",
        napi.watch.describe(Instant::now())
    );
    assert_eq!(flipped_at[0], Some(0));
    assert_eq!(
        cn.redirected + cn.held,
        napi.sent,
        "every frame one or the other"
    );
    assert_eq!(cn.held, PER_ROUND as u64 - u64::from(TRIAL_BUDGET));
    assert_eq!(xn.delivered + xn.refused, cn.redirected, "all delivered");
    assert_eq!(napi.watch.lost(), 0);
    // The plain peer: never on; one frame per trial lost, nothing else.
    assert!(!plain.watch.takes());
    assert!(matches!(
        plain.watch.phase(),
        Phase::Off { .. } | Phase::Trial
    ));
    assert_eq!(xp, Default::default(), "nothing counted without NAPI");
    assert_eq!(cp.redirected + cp.held, plain.sent);
    assert_eq!(plain.watch.lost(), cp.redirected);
    assert!(
        cp.redirected <= plain.watch.trials() * u64::from(TRIAL_BUDGET),
        "lost {} in {} trials",
        cp.redirected,
        plain.watch.trials()
    );
    // Trials after 1, 2, 4 s: rounds 0, 2, 5 (the 8th, 9 s, is too soon).
    assert_eq!(plain.watch.trials(), 3);
    assert_eq!(cp.redirected, 3);

    // The NAPI peer leaves NAPI mode: two rounds of lost redirects turn it
    // off; what is lost is those rounds' traffic.
    in_ns(&n, || {
        rvs_io::packet::set_gro("p0", false).expect("gro off")
    });
    let e = &mut egress[0];
    let mut off_at = None;
    for r in ROUNDS..ROUNDS + 4 {
        let now = t0 + Duration::from_secs(u64::from(r) + 1);
        send(&s, Ipv4Addr::new(10, 77, 2, 2), 6000, PER_ROUND);
        let smp = sample(&d, &c, e.name, e.ifindex);
        let step = e.watch.round(smp, now);
        if let Some(g) = step.gate {
            c.flow_cache_mut().set_gate(e.ifindex, g).expect("gate");
        }
        if step.flip == Some(false) {
            off_at.get_or_insert(r - ROUNDS);
        }
    }
    eprintln!(
        "NAPI peer without GRO: off after {:?} round(s), {} frame(s) lost; {}",
        off_at.map(|r| r + 1),
        e.watch.lost(),
        e.watch
            .describe(t0 + Duration::from_secs(u64::from(ROUNDS) + 4))
    );
    assert_eq!(off_at, Some(1), "off at the second lost round");
    assert!(!e.watch.takes());
    // The two rounds, then the trial a second later: one frame.
    assert_eq!(e.watch.lost(), 2 * PER_ROUND as u64 + 1);
    drop(c);
}

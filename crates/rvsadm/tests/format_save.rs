//! Snapshots of `ipvsadm -S` / `-S -n`, and properties of the save format.

mod format_fixtures;

use std::net::IpAddr;

use format_fixtures::*;
use insta::assert_snapshot;
use proptest::prelude::*;
use rvs_proto::{
    DestInfo, Fwd, Proto, SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2,
    SVC_F_SCHED3, ServiceId, ServiceInfo, TunKind,
};
use rvsadm::format::{self, Numeric};

#[test]
fn format_save_numeric() {
    assert_snapshot!(
        "save_numeric",
        visible(&format::save(&big_table(), true, &Fake))
    );
}

#[test]
fn format_save_names() {
    assert_snapshot!(
        "save_names",
        visible(&format::save(&big_table(), false, &Fake))
    );
}

#[test]
fn format_save_empty() {
    assert_eq!(format::save(&[], true, &Numeric), "");
}

#[test]
fn format_save_ignores_thresholds_and_counters() {
    let mut t = big_table();
    let before = format::save(&t, true, &Numeric);
    for s in &mut t {
        s.stats = stats(1, 2, 3, 4, 5);
        for d in &mut s.dests {
            d.spec.u_threshold = 7;
            d.spec.l_threshold = 3;
            d.active = 9;
        }
    }
    assert_eq!(format::save(&t, true, &Numeric), before);
}

// ---- properties ----

fn arb_addr(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u16; 8]>().prop_map(|w| IpAddr::V6(w.into())).boxed()
    } else {
        any::<u32>().prop_map(|a| IpAddr::V4(a.into())).boxed()
    }
}

/// Addresses whose every 32-bit word is below 2^31 (IPv4 below
/// 128.0.0.0): the range where libipvs's wrapping comparisons agree with
/// the natural order.
fn arb_low_addr(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u32; 4]>()
            .prop_map(|w| {
                let mut b = [0u8; 16];
                for (i, x) in w.iter().enumerate() {
                    b[i * 4..i * 4 + 4].copy_from_slice(&(x & 0x7fff_ffff).to_be_bytes());
                }
                IpAddr::V6(b.into())
            })
            .boxed()
    } else {
        (0u32..0x8000_0000)
            .prop_map(|a| IpAddr::V4(a.into()))
            .boxed()
    }
}

fn arb_dest(low: bool) -> impl Strategy<Value = DestInfo> {
    (
        any::<bool>(),
        any::<u16>(),
        0usize..4,
        0u32..70000,
        0usize..3,
        any::<u16>(),
        0u16..3,
    )
        .prop_flat_map(move |(v6, port, fwd, weight, tk, tport, tflags)| {
            let a = if low { arb_low_addr(v6) } else { arb_addr(v6) };
            a.prop_map(move |addr| {
                let fwd = [Fwd::Masq, Fwd::Local, Fwd::Tunnel, Fwd::Route][fwd];
                let mut d = dest(&addr.to_string(), port, fwd, weight);
                d.spec.tunnel.kind = [TunKind::Ipip, TunKind::Gue, TunKind::Gre][tk];
                d.spec.tunnel.port = tport;
                d.spec.tunnel.flags = tflags;
                d
            })
        })
}

fn arb_service(low: bool) -> impl Strategy<Value = ServiceInfo> {
    let id = (
        any::<bool>(),
        any::<bool>(),
        0usize..3,
        any::<u16>(),
        any::<u32>(),
    )
        .prop_flat_map(move |(is_fwm, v6, proto, port, mark)| {
            let a = if low { arb_low_addr(v6) } else { arb_addr(v6) };
            a.prop_map(move |addr| {
                if is_fwm {
                    let mark = if low { mark % 0x8000_0000 } else { mark };
                    fwm(mark.max(1), v6)
                } else {
                    let proto = [Proto::Tcp, Proto::Udp, Proto::Sctp][proto];
                    ServiceId::Addr { proto, addr, port }
                }
            })
        });
    (
        id,
        prop::sample::select(vec!["rr", "wlc", "sh", "mh", "lblcr"]),
        0u32..64,
        1u32..100_000,
        any::<u32>(),
        prop::option::of(Just("sip")),
        prop::collection::vec(arb_dest(low), 0..5),
    )
        .prop_map(
            move |(id, sched, bits, timeout, mask, pe_name, mut dests)| {
                if low {
                    // A mixed-family pair compares the IPv4 address with
                    // the IPv6 one's first word only; keep these tables
                    // single-family.
                    dests.retain(|d| d.spec.addr.is_ipv6() == id.is_v6());
                }
                let mut s = svc(id, sched);
                s.spec.flags |= bits
                    & (SVC_F_PERSISTENT
                        | SVC_F_ONEPACKET
                        | SVC_F_SCHED1
                        | SVC_F_SCHED2
                        | SVC_F_SCHED3);
                s.spec.timeout = timeout;
                s.spec.netmask = if id.is_v6() { mask % 129 } else { mask };
                s.spec.pe = pe_name.map(str::to_owned);
                s.dests = dests;
                s
            },
        )
}

/// Unique services (the kernel's table has no duplicates), unique dests.
fn dedup(mut t: Vec<ServiceInfo>) -> Vec<ServiceInfo> {
    let mut seen = Vec::new();
    t.retain(|s| {
        let new = !seen.contains(&s.spec.id);
        seen.push(s.spec.id);
        new
    });
    for s in &mut t {
        let mut seen = Vec::new();
        s.dests.retain(|d| {
            let k = (d.spec.addr, d.spec.port);
            let new = !seen.contains(&k);
            seen.push(k);
            new
        });
    }
    t
}

/// The natural order of a service, valid where the comparisons don't wrap.
fn natural_key(s: &ServiceInfo) -> (u32, u8, u8, u128, u16) {
    match s.spec.id {
        ServiceId::Fwmark { v6, mark } => (mark, if v6 { 10 } else { 2 }, 6, 0, 0),
        ServiceId::Addr { proto, addr, port } => {
            let (af, a) = match addr {
                IpAddr::V4(v4) => (2, u128::from(u32::from(v4)) << 96),
                IpAddr::V6(v6) => (10, u128::from(v6)),
            };
            (0, af, proto.number(), a, port)
        }
    }
}

/// The `-A` line of one service.
fn svc_line(s: &ServiceInfo) -> String {
    let out = format::save(std::slice::from_ref(s), true, &Numeric);
    out.lines().next().unwrap().to_owned()
}

/// The `-a` line of one dest of `s`.
fn dest_line(s: &ServiceInfo, d: &DestInfo) -> String {
    let mut one = s.clone();
    one.dests = vec![d.clone()];
    let out = format::save(std::slice::from_ref(&one), true, &Numeric);
    out.lines().nth(1).unwrap().to_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any table (wrapping comparisons included): the output is
    /// deterministic, has one -A line per service and one -a line per
    /// dest right under its service, never saves thresholds, and lists
    /// every service exactly once.
    #[test]
    fn format_save_prop_stable(t in prop::collection::vec(arb_service(false), 0..12)) {
        let t = dedup(t);
        let a = format::save(&t, true, &Numeric);
        prop_assert_eq!(&a, &format::save(&t, true, &Numeric));
        prop_assert!(a.is_empty() || a.ends_with('\n'));
        let n_svc = a.lines().filter(|l| l.starts_with("-A ")).count();
        let n_dst = a.lines().filter(|l| l.starts_with("-a ")).count();
        prop_assert_eq!(n_svc, t.len());
        prop_assert_eq!(n_dst, t.iter().map(|s| s.dests.len()).sum::<usize>());
        let mut current = None;
        for l in a.lines() {
            prop_assert!(!l.contains(" -x ") && !l.contains(" -y "));
            if let Some(rest) = l.strip_prefix("-A ") {
                current = Some(rest.split(" -s ").next().unwrap().to_owned());
            } else {
                let rest = l.strip_prefix("-a ").unwrap();
                let svc = current.as_deref().unwrap();
                prop_assert!(rest.starts_with(&format!("{svc} -r ")), "{} under {}", l, svc);
            }
        }
        let mut want: Vec<String> = t.iter().map(svc_line).collect();
        let mut got: Vec<String> =
            a.lines().filter(|l| l.starts_with("-A ")).map(str::to_owned).collect();
        want.sort();
        got.sort();
        prop_assert_eq!(got, want);
    }

    /// Where libipvs's comparisons don't wrap, services come out sorted by
    /// (fwmark, family, protocol, address, port) and dests by (address,
    /// port), whatever the input order.
    #[test]
    fn format_save_prop_sorted(
        t in prop::collection::vec(arb_service(true), 0..12),
        seed in any::<u64>(),
    ) {
        let t = dedup(t);
        let a = format::save(&t, true, &Numeric);
        let mut sorted = t.clone();
        sorted.sort_by_key(natural_key);
        let mut want = String::new();
        for s in &sorted {
            want.push_str(&svc_line(s));
            want.push('\n');
            let mut ds = s.dests.clone();
            ds.sort_by_key(|d| (d.spec.addr, d.spec.port));
            for d in &ds {
                want.push_str(&dest_line(s, d));
                want.push('\n');
            }
        }
        prop_assert_eq!(&a, &want);
        // Another input order gives the same text.
        let mut shuffled = t.clone();
        let mut x = seed;
        for i in (1..shuffled.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (x >> 33) as usize % (i + 1));
        }
        for s in &mut shuffled {
            s.dests.reverse();
        }
        prop_assert_eq!(&a, &format::save(&shuffled, true, &Numeric));
    }
}

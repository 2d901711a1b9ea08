//! Test support for the scheduler unit tests: building real-server lists,
//! applying list changes the way the service code does (newest first), and
//! collecting pick sequences.

use core::net::{IpAddr, Ipv4Addr};

use crate::dest::{Dest, DestConfig, DestId};
use crate::sched::{DestChange, SchedInput, Scheduler};
use crate::time::Instant;

/// Real server `n`: 10.0.0.n:80 (or 10.0.x.y for n > 255), weight `weight`.
pub(crate) fn dest(n: u32, weight: u32) -> Dest {
    let addr = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | n));
    let cfg = DestConfig {
        weight,
        ..DestConfig::new(addr, 80)
    };
    Dest::new(DestId(n), &cfg)
}

/// A list in the given order (index 0 = newest) with ids 1, 2, 3, …
pub(crate) fn list(weights: &[u32]) -> Vec<Dest> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| dest(i as u32 + 1, w))
        .collect()
}

/// Bind `s` to `dests` (`DestChange::Init`), panicking on error.
pub(crate) fn init(s: &mut dyn Scheduler, dests: &[Dest]) {
    s.update(dests, DestChange::Init).expect("init");
}

/// Add `d` at the head of `dests` and tell `s`.
pub(crate) fn add(s: &mut dyn Scheduler, dests: &mut Vec<Dest>, d: Dest) {
    let id = d.id;
    dests.insert(0, d);
    s.update(dests, DestChange::Added(id)).expect("add");
}

/// Remove dest `id` from `dests` and tell `s`.
pub(crate) fn remove(s: &mut dyn Scheduler, dests: &mut Vec<Dest>, id: DestId) {
    let index = dests.iter().position(|d| d.id == id).expect("present");
    let d = dests.remove(index);
    let key = crate::sched::shared::dest_key(&d.addr, d.port);
    s.update(dests, DestChange::Removed { id, key, index })
        .expect("remove");
}

/// Change dest `id`'s weight as `-e` does and tell `s`.
pub(crate) fn edit_weight(s: &mut dyn Scheduler, dests: &mut [Dest], id: DestId, weight: u32) {
    let d = dests.iter_mut().find(|d| d.id == id).expect("present");
    let cfg = DestConfig {
        weight,
        ..d.config()
    };
    d.apply_config(&cfg);
    s.update(dests, DestChange::Edited(id)).expect("edit");
}

/// A TCP packet 192.0.2.1:40000 -> 198.51.100.1:80 at time zero.
pub(crate) fn input() -> SchedInput {
    SchedInput {
        saddr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        sport: 40000,
        daddr: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        dport: 80,
        proto: 6,
        svc_flags: 0,
        now: Instant::ZERO,
    }
}

/// Input from client `saddr` (other fields as [`input`]).
pub(crate) fn from(saddr: IpAddr) -> SchedInput {
    SchedInput { saddr, ..input() }
}

/// Input towards destination `daddr` at `now` (other fields as [`input`]).
pub(crate) fn to(daddr: IpAddr, now: Instant) -> SchedInput {
    SchedInput {
        daddr,
        now,
        ..input()
    }
}

/// The id of the dest picked for `inp`, if any.
pub(crate) fn pick(s: &mut dyn Scheduler, dests: &[Dest], inp: &SchedInput) -> Option<u32> {
    s.schedule(dests, inp).map(|i| dests[i].id.0)
}

/// Ids of `n` successive picks with the same input (`0` for "none").
pub(crate) fn picks(s: &mut dyn Scheduler, dests: &[Dest], n: usize) -> Vec<u32> {
    let inp = input();
    (0..n).map(|_| pick(s, dests, &inp).unwrap_or(0)).collect()
}

/// The i-th of a family of distinct IPv4 client addresses.
pub(crate) fn client(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        0xC000_0000u32.wrapping_add(i.wrapping_mul(2_654_435_761)),
    ))
}

#[test]
fn by_name_knows_every_scheduler() {
    for &name in crate::sched::NAMES {
        let s = crate::sched::by_name(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(s.name(), name);
    }
    assert!(crate::sched::by_name("nope").is_none());
    assert!(crate::sched::by_name("").is_none());
    assert!(crate::sched::by_name("none").is_none());
    assert!(crate::sched::by_name("twos").is_none());
}

#[test]
fn every_scheduler_fails_cleanly_without_dests() {
    for &name in crate::sched::NAMES {
        let mut s = crate::sched::by_name(name).unwrap();
        init(s.as_mut(), &[]);
        assert_eq!(s.schedule(&[], &input()), None, "{name}");
        s.tick(Instant::from_secs(100_000));
    }
}

#[test]
fn every_scheduler_skips_quiesced_and_overloaded() {
    for &name in crate::sched::NAMES {
        let mut s = crate::sched::by_name(name).unwrap();
        let mut dests = list(&[0, 3, 2]);
        dests[1].overload = true;
        init(s.as_mut(), &dests);
        // dh/sh/mh may hash onto an unusable server and then fail, but must
        // never return one; the others must return dest 3.
        for i in 0..50 {
            let inp = SchedInput {
                saddr: client(i),
                daddr: client(i + 1000),
                ..input()
            };
            match pick(s.as_mut(), &dests, &inp) {
                Some(id) => assert_eq!(id, 3, "{name}"),
                None => assert!(matches!(name, "dh" | "sh" | "mh"), "{name}"),
            }
        }
    }
}

/// `n` picks with the same input, each counting as a new active connection
/// on the chosen dest (as binding it would). Ids, `0` for "none".
pub(crate) fn simulate(s: &mut dyn Scheduler, dests: &mut [Dest], n: usize) -> Vec<u32> {
    let inp = input();
    (0..n)
        .map(|_| match s.schedule(dests, &inp) {
            Some(i) => {
                dests[i].activeconns += 1;
                dests[i].id.0
            }
            None => 0,
        })
        .collect()
}

/// Set activeconns/inactconns of each dest in list order.
pub(crate) fn conns(dests: &mut [Dest], counts: &[(u32, u32)]) {
    for (d, &(a, i)) in dests.iter_mut().zip(counts) {
        d.activeconns = a;
        d.inactconns = i;
    }
}

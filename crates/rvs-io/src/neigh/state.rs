//! The resolver's decisions, without sockets, threads or clocks (time is
//! passed in): the types of the tables the thread mirrors, what a tracked
//! destination's state is from its route and those tables ([`decide`]),
//! which destinations use which neighbour ([`reassign`], [`unuse`]), the
//! bookkeeping of a publication ([`record`]: pending set, failure time,
//! whether the data plane must be told), and what the timers find
//! ([`pending_expired`], [`stale_in_use`]). The [`Worker`](super::worker::Worker)
//! does the I/O around them (netlink, the shared slots, the ready queue);
//! these are unit-tested here without namespaces.
//!
//! Still in the worker, and what moving them would take: the event
//! application (`link_msg`, `addr_msg`, `neigh_msg`: they would take the
//! parsed fields instead of netlink messages), `settle`'s ordering (links,
//! then routes, which needs `RTM_GETROUTE` answers passed in), the idle
//! sweep (it reads the `used` flags of the shared slots) and `solicit`'s
//! de-duplication (a pure "should solicit" before the send). A `State`
//! struct holding the tables, with the worker owning one next to its
//! sockets, would let a test drive whole event sequences.

use std::collections::{HashMap, HashSet, hash_map::Entry};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use netlink_packet_route::link::LinkFlags;

use super::{NeighError, NextHop};

// Neighbour states (NUD_*).
pub(super) const NUD_INCOMPLETE: u16 = 0x01;
pub(super) const NUD_REACHABLE: u16 = 0x02;
pub(super) const NUD_STALE: u16 = 0x04;
pub(super) const NUD_DELAY: u16 = 0x08;
pub(super) const NUD_PROBE: u16 = 0x10;
pub(super) const NUD_FAILED: u16 = 0x20;
pub(super) const NUD_NOARP: u16 = 0x40;
pub(super) const NUD_PERMANENT: u16 = 0x80;
/// States in which the entry's link-layer address can be used.
pub(super) const NUD_USABLE: u16 =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_NOARP | NUD_PERMANENT;

pub(super) type NKey = (u32, IpAddr);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Neigh {
    pub(super) state: u16,
    pub(super) mac: Option<[u8; 6]>,
}

impl Neigh {
    pub(super) fn usable_mac(&self) -> Option<[u8; 6]> {
        if self.state & NUD_USABLE != 0 {
            self.mac
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    pub(super) name: String,
    pub(super) mac: Option<[u8; 6]>,
    pub(super) mtu: u32,
    pub(super) flags: LinkFlags,
}

impl Link {
    /// Frames out of this link need a neighbour's MAC.
    pub(super) fn needs_neighbour(&self) -> bool {
        self.mac.is_some()
            && !self
                .flags
                .intersects(LinkFlags::Noarp | LinkFlags::Loopback)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub(super) ifindex: u32,
    pub(super) via: IpAddr,
    pub(super) src: Option<IpAddr>,
}

/// What the thread knows about a tracked destination.
#[derive(Debug)]
pub(super) struct Dst {
    pub(super) route: Result<Route, NeighError>,
    /// What is published in the slot (without the failure time); `None`
    /// before the first publication.
    pub(super) published: Option<Published>,
    /// When the current wait for a neighbour started.
    pub(super) pending_since: Option<Instant>,
    pub(super) failed_at: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Published {
    Pending,
    Ready(NextHop),
    Failed(NeighError),
}

/// What [`decide`] found for a destination.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Decision {
    /// The state to publish.
    pub(super) next: Published,
    /// The neighbour to ask the kernel to resolve (before publishing).
    pub(super) solicit: Option<NKey>,
    /// The neighbour that has a usable entry: its solicitation is over.
    pub(super) answered: Option<NKey>,
}

impl Decision {
    fn just(next: Published) -> Decision {
        Decision {
            next,
            solicit: None,
            answered: None,
        }
    }
}

/// The state of `dst` from its `route` and the tables, given what was
/// published before (`prev`). `fresh`: a new attempt (first request, retry,
/// route change), which may solicit even a neighbour that failed.
pub(super) fn decide(
    dst: IpAddr,
    route: &Result<Route, NeighError>,
    prev: Option<&Published>,
    links: &HashMap<u32, Link>,
    neighs: &HashMap<NKey, Neigh>,
    solicited: &HashMap<NKey, Instant>,
    fresh: bool,
) -> Decision {
    let r = match route {
        Err(e) => return Decision::just(Published::Failed(e.clone())),
        Ok(r) => r,
    };
    let Some((ifname, needs_neighbour)) = links
        .get(&r.ifindex)
        .map(|l| (l.name.clone(), l.needs_neighbour()))
    else {
        let reason = format!("unknown egress interface {}", r.ifindex);
        return Decision::just(Published::Failed(NeighError::NoRoute { dst, reason }));
    };
    let hop = NextHop {
        ifindex: r.ifindex,
        ifname,
        neighbour_mac: [0; 6],
        via: r.via,
        src: r.src,
    };
    if !needs_neighbour {
        return Decision::just(Published::Ready(hop));
    }
    let key = (r.ifindex, r.via);
    let n = neighs.get(&key).copied();
    if let Some(mac) = n.and_then(|n| n.usable_mac()) {
        return Decision {
            next: Published::Ready(NextHop {
                neighbour_mac: mac,
                ..hop
            }),
            solicit: None,
            answered: Some(key),
        };
    }
    let failed = n.is_some_and(|n| n.state == NUD_FAILED);
    let unresolved = NeighError::Unresolved {
        dst,
        via: r.via,
        ifindex: r.ifindex,
    };
    let (next, solicit) = match prev {
        // Deleted, or being probed again: keep the last MAC meanwhile (same
        // interface and neighbour only).
        Some(Published::Ready(old))
            if !fresh && old.ifindex == hop.ifindex && old.via == hop.via =>
        {
            if failed {
                (Published::Failed(unresolved), false)
            } else {
                let next = Published::Ready(NextHop {
                    neighbour_mac: old.neighbour_mac,
                    ..hop
                });
                (next, true)
            }
        }
        // Stays failed until retried.
        Some(Published::Failed(e)) if !fresh => (Published::Failed(e.clone()), false),
        Some(Published::Pending) if !fresh && failed && solicited.contains_key(&key) => {
            (Published::Failed(unresolved), false)
        }
        _ => (Published::Pending, true),
    };
    Decision {
        next,
        solicit: solicit.then_some(key),
        answered: None,
    }
}

/// `dst` no longer uses the neighbour `key`; a neighbour nobody uses is
/// forgotten (its solicitation time too).
pub(super) fn unuse(
    users: &mut HashMap<NKey, HashSet<IpAddr>>,
    solicited: &mut HashMap<NKey, Instant>,
    key: NKey,
    dst: IpAddr,
) {
    if let Entry::Occupied(mut e) = users.entry(key) {
        e.get_mut().remove(&dst);
        if e.get().is_empty() {
            e.remove();
            solicited.remove(&key);
        }
    }
}

/// `dst`'s next hop went from the neighbour `old` to `new` (either may be
/// none: no route).
pub(super) fn reassign(
    users: &mut HashMap<NKey, HashSet<IpAddr>>,
    solicited: &mut HashMap<NKey, Instant>,
    dst: IpAddr,
    old: Option<NKey>,
    new: Option<NKey>,
) {
    if old != new {
        if let Some(k) = old {
            unuse(users, solicited, k, dst);
        }
        if let Some(k) = new {
            users.entry(k).or_default().insert(dst);
        }
    }
}

/// What publishing a state does besides recording it ([`record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Effects {
    /// The destination became ready: queue it for the data plane
    /// ([`Resolver::take_ready`](super::Resolver::take_ready)).
    pub(super) newly_ready: bool,
    /// A ready hop changed or went: move the generation.
    pub(super) bump: bool,
    /// Write the shared slot (the state changed, or a new attempt failed
    /// again and its failure time is refreshed).
    pub(super) write: bool,
}

/// Record `next` as the published state of `dst` (`d`): when its wait for a
/// neighbour started (and the `pending` set the timers look at), when it
/// failed, and what must be told. `attempt`: the outcome of a new attempt,
/// whose failure time is refreshed even when the failure is the same.
pub(super) fn record(
    d: &mut Dst,
    pending: &mut HashSet<IpAddr>,
    dst: IpAddr,
    next: &Published,
    attempt: bool,
    now: Instant,
) -> Effects {
    let changed = d.published.as_ref() != Some(next);
    match next {
        Published::Pending => {
            if d.pending_since.is_none() || changed {
                d.pending_since = Some(now);
            }
            pending.insert(dst);
        }
        Published::Ready(_) => {
            d.pending_since = None;
            pending.remove(&dst);
        }
        Published::Failed(_) => {
            d.pending_since = None;
            pending.remove(&dst);
            if changed || attempt {
                d.failed_at = now;
            }
        }
    }
    let was_ready = matches!(d.published, Some(Published::Ready(_)));
    d.published = Some(next.clone());
    let refresh_failure = attempt && matches!(next, Published::Failed(_));
    Effects {
        newly_ready: changed && !was_ready && matches!(next, Published::Ready(_)),
        bump: changed && was_ready,
        write: changed || refresh_failure,
    }
}

/// The destinations whose neighbour neither answered nor failed within
/// `timeout`, with the failure each gets.
pub(super) fn pending_expired(
    pending: &HashSet<IpAddr>,
    dsts: &HashMap<IpAddr, Dst>,
    timeout: Duration,
    now: Instant,
) -> Vec<(IpAddr, NeighError)> {
    pending
        .iter()
        .filter_map(|dst| {
            let d = dsts.get(dst)?;
            let since = d.pending_since?;
            if now < since + timeout {
                return None;
            }
            let err = match &d.route {
                Ok(r) => NeighError::Unresolved {
                    dst: *dst,
                    via: r.via,
                    ifindex: r.ifindex,
                },
                Err(e) => e.clone(),
            };
            Some((*dst, err))
        })
        .collect()
}

/// The neighbours to re-probe: `STALE`, and the next hop of a destination
/// published ready.
pub(super) fn stale_in_use(
    users: &HashMap<NKey, HashSet<IpAddr>>,
    neighs: &HashMap<NKey, Neigh>,
    dsts: &HashMap<IpAddr, Dst>,
) -> Vec<NKey> {
    users
        .iter()
        .filter(|(key, users)| {
            neighs.get(key).is_some_and(|n| n.state == NUD_STALE)
                && users.iter().any(|d| {
                    dsts.get(d)
                        .is_some_and(|d| matches!(d.published, Some(Published::Ready(_))))
                })
        })
        .map(|(key, _)| *key)
        .collect()
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::neighbour::NeighbourState;

    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// eth0 (index 2, Ethernet) and tun0 (index 3, no MAC: no neighbour).
    fn links() -> HashMap<u32, Link> {
        let eth = Link {
            name: "eth0".into(),
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            flags: LinkFlags::Up | LinkFlags::Running,
        };
        let tun = Link {
            name: "tun0".into(),
            mac: None,
            mtu: 1480,
            flags: LinkFlags::Up | LinkFlags::Running,
        };
        HashMap::from([(2, eth), (3, tun)])
    }

    fn via(gw: &str) -> Result<Route, NeighError> {
        Ok(Route {
            ifindex: 2,
            via: ip(gw),
            src: Some(ip("10.0.0.2")),
        })
    }

    fn neighs(state: u16, mac: Option<[u8; 6]>) -> HashMap<NKey, Neigh> {
        HashMap::from([((2, ip("10.0.0.1")), Neigh { state, mac })])
    }

    fn ready(mac: [u8; 6]) -> Published {
        Published::Ready(NextHop {
            ifindex: 2,
            ifname: "eth0".into(),
            neighbour_mac: mac,
            via: ip("10.0.0.1"),
            src: Some(ip("10.0.0.2")),
        })
    }

    fn dst_with(published: Option<Published>, now: Instant) -> Dst {
        Dst {
            route: via("10.0.0.1"),
            published,
            pending_since: None,
            failed_at: now,
        }
    }

    #[test]
    fn a_destination_from_its_route_and_the_tables() {
        let dst = ip("192.0.2.7");
        let key = (2, ip("10.0.0.1"));
        let links = links();
        let none = HashMap::new();
        let no_sol = HashMap::new();
        let route = via("10.0.0.1");

        // No route, or an interface the thread does not know: failed.
        let err = NeighError::Local(dst);
        let d = decide(dst, &Err(err.clone()), None, &links, &none, &no_sol, true);
        assert_eq!(d.next, Published::Failed(err));
        let unknown = Ok(Route {
            ifindex: 9,
            ..route.clone().unwrap()
        });
        let d = decide(dst, &unknown, None, &links, &none, &no_sol, true);
        assert!(matches!(
            d.next,
            Published::Failed(NeighError::NoRoute { .. })
        ));
        assert_eq!(d.solicit, None);

        // A link without neighbours: ready at once, zero MAC.
        let tun = Ok(Route {
            ifindex: 3,
            ..route.clone().unwrap()
        });
        let d = decide(dst, &tun, None, &links, &none, &no_sol, true);
        assert!(
            matches!(&d.next, Published::Ready(h) if h.neighbour_mac == [0; 6] && h.ifname == "tun0")
        );

        // A usable entry: ready with its MAC, and its solicitation is over.
        let n = neighs(NUD_REACHABLE, Some(MAC));
        let d = decide(dst, &route, None, &links, &n, &no_sol, true);
        assert_eq!(d.next, ready(MAC));
        assert_eq!((d.solicit, d.answered), (None, Some(key)));

        // No entry: pending, and the kernel is asked.
        let d = decide(dst, &route, None, &links, &none, &no_sol, true);
        assert_eq!((d.next, d.solicit), (Published::Pending, Some(key)));
    }

    #[test]
    fn a_ready_destination_whose_neighbour_goes() {
        let dst = ip("192.0.2.7");
        let key = (2, ip("10.0.0.1"));
        let (links, no_sol) = (links(), HashMap::new());
        let route = via("10.0.0.1");
        let was = ready(MAC);

        // Deleted (flush, garbage collection): the last MAC is kept while
        // the kernel resolves it again.
        let d = decide(
            dst,
            &route,
            Some(&was),
            &links,
            &HashMap::new(),
            &no_sol,
            false,
        );
        assert_eq!((d.next, d.solicit), (ready(MAC), Some(key)));
        let probing = neighs(NUD_INCOMPLETE, None);
        let d = decide(dst, &route, Some(&was), &links, &probing, &no_sol, false);
        assert_eq!(d.next, ready(MAC));

        // FAILED: the destination fails, nothing is asked.
        let failed = neighs(NUD_FAILED, None);
        let d = decide(dst, &route, Some(&was), &links, &failed, &no_sol, false);
        let unresolved = NeighError::Unresolved {
            dst,
            via: ip("10.0.0.1"),
            ifindex: 2,
        };
        assert_eq!((d.next, d.solicit), (Published::Failed(unresolved), None));

        // Another gateway: a new neighbour, not the old MAC.
        let other = via("10.0.0.254");
        let d = decide(
            dst,
            &other,
            Some(&was),
            &links,
            &HashMap::new(),
            &no_sol,
            false,
        );
        assert_eq!(d.next, Published::Pending);
        assert_eq!(d.solicit, Some((2, ip("10.0.0.254"))));
    }

    #[test]
    fn failures_stay_until_retried() {
        let dst = ip("192.0.2.7");
        let key = (2, ip("10.0.0.1"));
        let (links, route) = (links(), via("10.0.0.1"));
        let failed = neighs(NUD_FAILED, None);
        let err = NeighError::Unresolved {
            dst,
            via: ip("10.0.0.1"),
            ifindex: 2,
        };
        let was = Published::Failed(err.clone());
        let none = HashMap::new();
        let d = decide(dst, &route, Some(&was), &links, &failed, &none, false);
        assert_eq!((d.next, d.solicit), (was.clone(), None));
        // A new attempt asks the kernel again, even for a FAILED entry.
        let d = decide(dst, &route, Some(&was), &links, &failed, &none, true);
        assert_eq!((d.next, d.solicit), (Published::Pending, Some(key)));

        // Pending: FAILED fails it only once this resolver asked (an old
        // FAILED entry is asked again first).
        let pending = Published::Pending;
        let d = decide(dst, &route, Some(&pending), &links, &failed, &none, false);
        assert_eq!((d.next, d.solicit), (Published::Pending, Some(key)));
        let asked = HashMap::from([(key, Instant::now())]);
        let d = decide(dst, &route, Some(&pending), &links, &failed, &asked, false);
        assert_eq!((d.next, d.solicit), (Published::Failed(err), None));
    }

    #[test]
    fn which_destinations_use_which_neighbour() {
        let (a, b) = ((2, ip("10.0.0.1")), (2, ip("10.0.0.254")));
        let (d1, d2) = (ip("192.0.2.1"), ip("192.0.2.2"));
        let mut users = HashMap::new();
        let mut solicited = HashMap::from([(a, Instant::now()), (b, Instant::now())]);
        reassign(&mut users, &mut solicited, d1, None, Some(a));
        reassign(&mut users, &mut solicited, d2, None, Some(a));
        assert_eq!(users[&a], HashSet::from([d1, d2]));
        // d1 moves to b: a keeps d2.
        reassign(&mut users, &mut solicited, d1, Some(a), Some(b));
        assert_eq!(users[&a], HashSet::from([d2]));
        assert_eq!(users[&b], HashSet::from([d1]));
        // Same neighbour: nothing changes.
        reassign(&mut users, &mut solicited, d1, Some(b), Some(b));
        assert_eq!(users[&b], HashSet::from([d1]));
        // The last user of a goes (no route): a is forgotten, its
        // solicitation time too; b's stays.
        reassign(&mut users, &mut solicited, d2, Some(a), None);
        assert!(!users.contains_key(&a));
        assert!(!solicited.contains_key(&a) && solicited.contains_key(&b));
        unuse(&mut users, &mut solicited, b, d1);
        assert!(users.is_empty() && solicited.is_empty());
    }

    #[test]
    fn publication_bookkeeping() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let dst = ip("192.0.2.7");
        let mut pending = HashSet::new();
        let mut d = dst_with(None, t0);

        // Pending: the wait starts, the timers watch it; the slot is written.
        let fx = record(&mut d, &mut pending, dst, &Published::Pending, true, t0);
        assert_eq!(
            fx,
            Effects {
                newly_ready: false,
                bump: false,
                write: true
            }
        );
        assert_eq!((d.pending_since, pending.contains(&dst)), (Some(t0), true));
        // Pending again: the wait goes on from t0, nothing to write.
        let fx = record(&mut d, &mut pending, dst, &Published::Pending, false, t1);
        assert!(!fx.write);
        assert_eq!(d.pending_since, Some(t0));

        // Ready: queued for the data plane, the generation stays.
        let fx = record(&mut d, &mut pending, dst, &ready(MAC), false, t1);
        assert_eq!(
            fx,
            Effects {
                newly_ready: true,
                bump: false,
                write: true
            }
        );
        assert_eq!((d.pending_since, pending.contains(&dst)), (None, false));
        // The same again: nothing.
        let fx = record(&mut d, &mut pending, dst, &ready(MAC), false, t1);
        assert_eq!(
            fx,
            Effects {
                newly_ready: false,
                bump: false,
                write: false
            }
        );
        // A ready hop that changes: the generation moves.
        let fx = record(
            &mut d,
            &mut pending,
            dst,
            &ready([2, 0, 0, 0, 0, 10]),
            false,
            t1,
        );
        assert_eq!((fx.newly_ready, fx.bump, fx.write), (false, true, true));

        // Failed: the failure time is set; the same failure from a new
        // attempt refreshes it (and the slot), from a re-evaluation not.
        let err = Published::Failed(NeighError::Timeout(dst));
        let fx = record(&mut d, &mut pending, dst, &err, false, t1);
        assert_eq!((fx.bump, fx.write, d.failed_at), (true, true, t1));
        let t2 = t1 + Duration::from_secs(1);
        let fx = record(&mut d, &mut pending, dst, &err, false, t2);
        assert_eq!((fx.write, d.failed_at), (false, t1));
        let fx = record(&mut d, &mut pending, dst, &err, true, t2);
        assert_eq!((fx.write, d.failed_at), (true, t2));
    }

    #[test]
    fn timers() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(5);
        let (waiting, no_route, ready_dst) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        let mut dsts = HashMap::new();
        let mut d = dst_with(Some(Published::Pending), t0);
        d.pending_since = Some(t0);
        dsts.insert(waiting, d);
        let mut d = dst_with(Some(Published::Pending), t0);
        d.route = Err(NeighError::Local(no_route));
        d.pending_since = Some(t0 + Duration::from_secs(2));
        dsts.insert(no_route, d);
        dsts.insert(ready_dst, dst_with(Some(ready(MAC)), t0));
        let pending = HashSet::from([waiting, no_route]);

        assert!(pending_expired(&pending, &dsts, timeout, t0 + Duration::from_secs(4)).is_empty());
        let at5 = pending_expired(&pending, &dsts, timeout, t0 + timeout);
        let unresolved = NeighError::Unresolved {
            dst: waiting,
            via: ip("10.0.0.1"),
            ifindex: 2,
        };
        assert_eq!(at5, vec![(waiting, unresolved)]);
        let mut at7 = pending_expired(&pending, &dsts, timeout, t0 + Duration::from_secs(7));
        at7.sort_by_key(|(d, _)| *d);
        assert_eq!(at7.len(), 2);
        assert_eq!(at7[1], (no_route, NeighError::Local(no_route)));

        // Re-probed: STALE neighbours of a ready destination only.
        let key = (2, ip("10.0.0.1"));
        let users = HashMap::from([(key, HashSet::from([ready_dst]))]);
        assert_eq!(
            stale_in_use(&users, &neighs(NUD_STALE, Some(MAC)), &dsts),
            vec![key]
        );
        assert!(stale_in_use(&users, &neighs(NUD_REACHABLE, Some(MAC)), &dsts).is_empty());
        let waiting_only = HashMap::from([(key, HashSet::from([waiting]))]);
        assert!(stale_in_use(&waiting_only, &neighs(NUD_STALE, Some(MAC)), &dsts).is_empty());
    }

    #[test]
    fn neighbour_states() {
        let mac = Some([2, 0, 0, 0, 0, 1]);
        for s in [
            NUD_REACHABLE,
            NUD_STALE,
            NUD_DELAY,
            NUD_PROBE,
            NUD_PERMANENT,
            NUD_NOARP,
        ] {
            assert_eq!(Neigh { state: s, mac }.usable_mac(), mac);
        }
        for s in [0, NUD_INCOMPLETE, NUD_FAILED] {
            assert_eq!(Neigh { state: s, mac }.usable_mac(), None);
        }
        assert_eq!(
            Neigh {
                state: NUD_REACHABLE,
                mac: None
            }
            .usable_mac(),
            None
        );
        assert_eq!(u16::from(NeighbourState::Stale), NUD_STALE);
    }

    #[test]
    fn links_needing_neighbours() {
        let eth = Link {
            name: "eth0".into(),
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
            flags: LinkFlags::Up | LinkFlags::Running,
        };
        assert!(eth.needs_neighbour());
        assert!(
            !Link {
                flags: LinkFlags::Noarp,
                ..eth.clone()
            }
            .needs_neighbour()
        );
        assert!(
            !Link {
                flags: LinkFlags::Loopback,
                ..eth.clone()
            }
            .needs_neighbour()
        );
        assert!(!Link { mac: None, ..eth }.needs_neighbour());
    }
}

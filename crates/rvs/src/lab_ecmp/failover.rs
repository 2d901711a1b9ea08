//! `--failover`: quiesce and restore a director's real servers, drain
//! director 1, kill director 2, pull the fourth's link, and report how
//! long the router took and what the long-lived connections lost.

use super::observe::{
    BEAT, Gaps, bench, carriers, conns_by_director, exercise, fail_text, gap_stats, get, lost,
    next_hops, open_conns, open_to, ping, probe, wait_hops,
};
use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::child::sibling;
use crate::netns::run_cmd;

use super::{CLIENT_IP, Conn, ECHO_PORT, Lab, Opts, VIP, check_stop, exec, s};

pub(super) fn failover(
    lab: &mut Lab,
    client: &str,
    router: &str,
    o: &Opts,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut conns = open_conns(client, o.conns)?;
    // The control: connections from the client to the real servers'
    // own addresses, through the router but no director, exercised with
    // the others around each event. What they pause is the machine's
    // (every process of the lab shares its two CPUs with whatever else
    // runs), not the failover's.
    let direct: Vec<String> = (1..=o.servers)
        .map(|i| format!("10.6.0.{}", 20 + i))
        .collect();
    let mut control = open_to(client, &direct, CONTROL)?;
    let names = ping(&mut conns, 0, Duration::from_secs(3));
    let by_port = conns_by_director(&lab.directors, ECHO_PORT);
    let mut per_dir = vec![0u32; lab.directors.len()];
    // Each connection's director when it opened (`None`: not found in
    // exactly one table).
    let orig: Vec<Option<usize>> = conns
        .iter()
        .map(|c| match by_port.get(&c.port).map(Vec::as_slice) {
            Some([i]) => Some(*i),
            _ => None,
        })
        .collect();
    for i in orig.iter().flatten() {
        per_dir[*i] += 1;
    }
    let mut track = Track {
        orig,
        moved: vec![false; conns.len()],
        slot_moved: None,
        share: 0.0,
    };
    println!(
        "long-lived: {} connections to {VIP}:{ECHO_PORT}, by director {:?}, {} answered",
        conns.len(),
        per_dir,
        names.iter().filter(|n| !n.is_empty()).count()
    );
    let mut seq = 1;
    if o.sync {
        // A master sends a message when it is full or 2 s old (the
        // kernel's IPVS_SYNC_FLUSH_TIME): with a few connections, that is
        // when the other directors learn them.
        std::thread::sleep(Duration::from_millis(2500));
        ping(&mut conns, seq, Duration::from_secs(3));
        seq += 1;
    }

    // (0) Health: the last director's real servers all quiesced (weight 0,
    // as a checker does): it withdraws; restored: it announces again.
    check_stop(stop)?;
    let rvsadm = s(&sibling("rvsadm")?)?;
    let all: Vec<String> = lab.directors.iter().map(|d| d.ip.clone()).collect();
    let last = lab
        .directors
        .last()
        .map(|d| d.ns.clone())
        .unwrap_or_default();
    let svc = format!("{VIP}:80");
    let rips: Vec<String> = (1..=o.servers)
        .map(|i| format!("10.6.0.{}", 20 + i))
        .collect();
    let weights = |w: &str| -> Result<(), String> {
        for rip in &rips {
            exec(
                &last,
                &[&rvsadm, "-e", "-t", &svc, "-r", rip, "-g", "-w", w],
            )?;
        }
        Ok(())
    };
    weights("0")?;
    let gone = wait_hops(router, &all[..all.len() - 1], Duration::from_secs(10))?;
    weights("1")?;
    let back = wait_hops(router, &all, Duration::from_secs(10))?;
    println!(
        "health: d{n}'s real servers at weight 0: the router dropped d{n} after {} ms; \
         back at weight 1: announced again after {} ms",
        gone.as_millis(),
        back.as_millis(),
        n = all.len()
    );
    bench(lab, client, o);

    // (0b) A real server more on every director: each director's `mh`
    // table changes, so a flow the router moves to another director is
    // scheduled there to another server unless that director knows it
    // (full-mesh sync).
    if o.add_server {
        check_stop(stop)?;
        let extra = format!("10.6.0.{}", 20 + o.servers + 1);
        for d in &lab.directors {
            for port in ["80", "9000"] {
                let svc = format!("{VIP}:{port}");
                exec(
                    &d.ns,
                    &[&rvsadm, "-a", "-t", &svc, "-r", &extra, "-g", "-w", "1"],
                )?;
            }
        }
        for _ in 0..3 {
            ping(&mut conns, seq, Duration::from_secs(5));
            seq += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        let list = |n: u8| -> Vec<(std::net::IpAddr, u16, u32)> {
            (1..=n)
                .filter_map(|i| Some((format!("10.6.0.{}", 20 + i).parse().ok()?, ECHO_PORT, 1)))
                .collect()
        };
        let (moved, total) =
            rvs_core::sched::mh::slots_moved(&list(o.servers), &list(o.servers + 1));
        track.share = moved as f64 / total as f64;
        // Each connection's real server by `mh` (mh-port: the client's
        // port is hashed too) before and after; before must be the one
        // that answered the first ping.
        let client_ip: std::net::IpAddr = CLIENT_IP.parse().map_err(|e| format!("{e}"))?;
        let server = |n: u8, port: u16| rvs_core::sched::mh::server_for(&list(n), client_ip, port);
        let agree = conns
            .iter()
            .zip(&names)
            .filter(|(c, name)| {
                server(o.servers, c.port).is_some_and(|(a, _)| {
                    name.strip_prefix("rs")
                        .and_then(|k| k.parse::<u8>().ok())
                        .is_some_and(|k| a.to_string() == format!("10.6.0.{}", 20 + k))
                })
            })
            .count();
        let slot_moved: Vec<bool> = conns
            .iter()
            .map(|c| server(o.servers, c.port) != server(o.servers + 1, c.port))
            .collect();
        println!(
            "mh by the client's port (rvs_core): {agree}/{} connections on the real server \
             that answered them; {} of them on a slot that moves to another server ({:.1} \
             expected from the share of slots)",
            conns.len(),
            slot_moved.iter().filter(|m| **m).count(),
            conns.len() as f64 * track.share
        );
        track.slot_moved = Some(slot_moved);
        println!(
            "add a real server ({extra}) on every director: mh moved {moved} of {total} slots \
             ({:.1}% of the flows a director has not seen go to another server); long-lived \
             connections lost: {} (connection sync: {})",
            100.0 * moved as f64 / total as f64,
            lost(&conns),
            if o.sync { "full mesh" } else { "off" }
        );
    }

    // (1) Drain director 1: withdraw first, keep forwarding, then stop.
    check_stop(stop)?;
    let rvs = s(&std::env::current_exe().map_err(|e| e.to_string())?)?;
    let rest: Vec<String> = lab.directors[1..].iter().map(|d| d.ip.clone()).collect();
    let before_event = alive(&conns);
    let w0 = Instant::now();
    let (res, gaps) = exercise(&mut conns, &mut control, || -> Result<_, String> {
        std::thread::sleep(LEAD);
        let carrier = carriers(&lab.directors, ECHO_PORT);
        let d1 = &lab.directors[0];
        let t0 = Instant::now();
        let out = exec(
            &d1.ns,
            &[
                &rvs,
                "drain",
                "--drain-file",
                &d1.drain_file,
                "--state-file",
                &d1.state_file,
            ],
        )?;
        let withdrawn = t0.elapsed();
        let routed = wait_hops(router, &rest, Duration::from_secs(10))?;
        let d1_alive = lab.directors[0]
            .rvsd
            .as_mut()
            .map(|c| matches!(c.try_wait(), Ok(None)))
            .unwrap_or(false);
        std::thread::sleep(TAIL);
        Ok((carrier, out, withdrawn, routed, d1_alive))
    });
    let (carrier, out, withdrawn, routed, d1_alive) = res?;
    println!(
        "drain d1: rvs drain returned after {} ms ({}); the router dropped d1 {} ms after \
         the drain began; d1's rvsd still forwarding then: {}",
        withdrawn.as_millis(),
        out.lines().next().unwrap_or(""),
        (withdrawn + routed).as_millis(),
        if d1_alive { "yes" } else { "NO" }
    );
    pauses(
        "drain d1",
        0,
        &carrier,
        &conns,
        &before_event,
        &gaps,
        w0.elapsed(),
    );
    // In-flight flows: through d1 until the router moved them, then adopted
    // by the others (mh + sloppy_tcp). Exercise them, then stop d1's rvsd.
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost_drain_before_stop = lost(&conns);
    if let Some(mut c) = lab.directors[0].rvsd.take() {
        crate::child::stop(&mut c);
    }
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost_drain = lost(&conns);
    track.note_moves(lab, &conns, o);
    let ok_new = (0..10)
        .filter(|_| get(client, Duration::from_secs(3)).is_ok())
        .count();
    println!(
        "drain d1: long-lived connections lost: {lost_drain_before_stop} while d1 still forwarded, \
         {lost_drain} after its rvsd stopped (of {}); new requests: {ok_new}/10",
        conns.len()
    );
    bench(lab, client, o);
    if lab.directors.len() < 3 {
        track.report(&conns, o);
        return Ok(());
    }

    // (2) Director 2 dies: SIGKILL its rvsd, BGP speaker and rvs announce.
    check_stop(stop)?;
    let alive_before = conns.len() - lost_drain;
    let rest: Vec<String> = lab.directors[2..].iter().map(|d| d.ip.clone()).collect();
    let before_event = alive(&conns);
    let w0 = Instant::now();
    let (res, gaps) = exercise(&mut conns, &mut control, || -> Result<_, String> {
        std::thread::sleep(LEAD);
        let carrier = carriers(&lab.directors, ECHO_PORT);
        let t0 = Instant::now();
        {
            let d2 = &mut lab.directors[1];
            let mut all: Vec<Child> = d2.rvsd.take().into_iter().collect();
            all.append(&mut d2.speaker);
            all.extend(d2.announce.take());
            for c in &mut all {
                let _ = c.kill();
            }
            for c in &mut all {
                let _ = c.wait();
            }
        }
        let killed = t0.elapsed();
        // The router's view: when d2's next hop goes (BFD).
        let routed = watch_gone(router, &lab.directors[1].ip, t0, Duration::from_secs(20));
        let (last_fail, tries) = probe(client, t0);
        let routed = routed.join().ok().flatten();
        wait_hops(router, &rest, Duration::from_secs(10))?;
        std::thread::sleep(TAIL);
        Ok((carrier, killed, routed, last_fail, tries))
    });
    let (carrier, killed, routed, last_fail, tries) = res?;
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost_death = lost(&conns) - lost_drain;
    track.note_moves(lab, &conns, o);
    println!(
        "kill d2 (SIGKILL rvsd, {}, rvs announce in {} ms): the router dropped d2 after {}; \
         new connections failed until {} ({tries} tried); long-lived connections lost: {lost_death} \
         of {alive_before} ({}; flows moved to another director {})",
        o.speaker.name(),
        killed.as_millis(),
        match routed {
            Some(t) => format!("{} ms", t.as_millis()),
            None => "NEVER (20 s)".into(),
        },
        fail_text(last_fail),
        if o.sync {
            "full-mesh connection sync"
        } else {
            "no connection sync"
        },
        if o.sync {
            "are known there"
        } else if o.no_sloppy {
            "are dropped there: sloppy_tcp is off"
        } else {
            "are adopted there by mh + sloppy_tcp"
        }
    );
    let reasons: BTreeMap<String, usize> =
        conns
            .iter()
            .filter_map(|c| c.lost.clone())
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r).or_default() += 1;
                m
            });
    if !reasons.is_empty() {
        println!("lost connections, by error: {reasons:?}");
    }
    pauses(
        "kill d2",
        1,
        &carrier,
        &conns,
        &before_event,
        &gaps,
        w0.elapsed(),
    );
    bench(lab, client, o);
    if lab.directors.len() < 4 {
        track.report(&conns, o);
        return shutdown_last(lab, router);
    }

    // (3) Director 3's link pulled (its switch port down): nothing closes
    // the BGP session; BFD (100 ms x 3) tells the router.
    check_stop(stop)?;
    let before = lost(&conns);
    let gone = lab.directors[2].ip.clone();
    let port = "p-d3";
    let sw = lab
        .namespaces
        .iter()
        .find(|n| n.ends_with("switch"))
        .cloned()
        .unwrap_or_default();
    let before_event = alive(&conns);
    let w0 = Instant::now();
    let (res, gaps) = exercise(&mut conns, &mut control, || -> Result<_, String> {
        std::thread::sleep(LEAD);
        let carrier = carriers(&lab.directors, ECHO_PORT);
        let t0 = Instant::now();
        let wall0 = std::time::SystemTime::now();
        run_cmd(&["ip", "-n", &sw, "link", "set", port, "down"])?;
        let routed = watch_gone(router, &gone, t0, Duration::from_secs(10));
        let (last_fail, tries) = probe(client, t0);
        let routed = routed.join().ok().flatten();
        std::thread::sleep(TAIL);
        Ok((carrier, routed, last_fail, tries, wall0))
    });
    let (carrier, routed, last_fail, tries, wall0) = res?;
    // The watcher above polls `ip route` from an ordinary thread: on a
    // loaded machine it can see the change late (1169 ms once, when the
    // client's new connections worked again 534 ms after the pull). The
    // router's BIRD (real-time) logs when its BFD expired the session.
    let expired = bfd_expired(&lab.dir.join("router-bird.log"), &gone, wall0);
    for _ in 0..5 {
        ping(&mut conns, seq, Duration::from_secs(5));
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    track.note_moves(lab, &conns, o);
    let ok_new = (0..10)
        .filter(|_| get(client, Duration::from_secs(3)).is_ok())
        .count();
    println!(
        "pull d3's link: the router dropped d3 after {} (BFD; its BIRD expired the session after \
         {}); new connections failed until {} ({tries} tried); long-lived connections lost: {} of \
         {}; new requests: {ok_new}/10",
        match routed {
            Some(t) => format!("{} ms", t.as_millis()),
            None => "NEVER (10 s)".into(),
        },
        match expired {
            Some(t) => format!("{} ms", t.as_millis()),
            None => "? ms".into(),
        },
        fail_text(last_fail),
        lost(&conns) - before,
        conns.len() - before
    );
    pauses(
        "pull d3's link",
        2,
        &carrier,
        &conns,
        &before_event,
        &gaps,
        w0.elapsed(),
    );
    if let Some(mut c) = lab.directors[2].rvsd.take() {
        crate::child::stop(&mut c);
    }
    bench(lab, client, o);
    track.report(&conns, o);
    shutdown_last(lab, router)
}

/// What predicts the loss after `--add-server` without sync: a
/// connection is lost when the router moves it to a director that has no
/// entry for it (that director schedules it anew: `mh` + `sloppy_tcp`) and
/// its `mh` slot moved to another real server (which resets it).
struct Track {
    /// The director of each connection when it opened.
    orig: Vec<Option<usize>>,
    /// Seen in another director's table since (without sync, only the
    /// flows the router moved are).
    moved: Vec<bool>,
    /// Whether each connection's slot moved (`--add-server`).
    slot_moved: Option<Vec<bool>>,
    /// The share of the slots that moved.
    share: f64,
}

impl Track {
    /// After an event and a few pings: the connections that the live
    /// directors' tables show on another director than their own. With
    /// sync every director has every connection: nothing to learn.
    fn note_moves(&mut self, lab: &Lab, conns: &[Conn], o: &Opts) {
        if o.sync || !o.add_server {
            return;
        }
        let by_port = conns_by_director(&lab.directors, ECHO_PORT);
        for (i, c) in conns.iter().enumerate() {
            if let Some(ds) = by_port.get(&c.port)
                && ds.iter().any(|d| Some(*d) != self.orig[i])
            {
                self.moved[i] = true;
            }
        }
    }

    /// The loss against the prediction (`--add-server` only).
    fn report(&self, conns: &[Conn], o: &Opts) {
        let Some(slot_moved) = &self.slot_moved else {
            return;
        };
        let lost: Vec<bool> = conns.iter().map(|c| c.lost.is_some()).collect();
        let n_lost = lost.iter().filter(|l| **l).count();
        if o.sync {
            println!(
                "loss vs slot share: full-mesh sync, every director knows every connection: \
                 predicted 0 lost, lost {n_lost}"
            );
            return;
        }
        let unknown = self.orig.iter().filter(|d| d.is_none()).count();
        let moved = self.moved.iter().filter(|m| **m).count();
        let predicted: Vec<bool> = self
            .moved
            .iter()
            .zip(slot_moved)
            .map(|(m, s)| *m && *s)
            .collect();
        let n_pred = predicted.iter().filter(|p| **p).count();
        let ports = |want: (bool, bool)| -> Vec<u16> {
            conns
                .iter()
                .enumerate()
                .filter(|(i, _)| (lost[*i], predicted[*i]) == want)
                .map(|(_, c)| c.port)
                .collect()
        };
        let (surprise, spared) = (ports((true, false)), ports((false, true)));
        let p = self.share;
        let expect = moved as f64 * p;
        let sigma = (expect * (1.0 - p)).sqrt();
        println!(
            "loss vs slot share: the router moved {moved} of {} connections to a director \
             without their entry ({unknown} of unknown director); {n_pred} of those on a moved \
             slot; lost {n_lost} (the slot share predicts {expect:.1} +- {sigma:.1}: \
             {moved} x {:.1}%); lost exactly the predicted connections: {}",
            conns.len(),
            100.0 * p,
            if surprise.is_empty() && spared.is_empty() {
                "yes".to_string()
            } else {
                format!("NO (lost, not predicted: {surprise:?}; predicted, not lost: {spared:?})")
            }
        );
    }
}

/// When the router's BIRD logged "Session to `ip` expired" (BFD), after
/// `wall0`: its log's times are UTC with milliseconds (`TZ=UTC`, see
/// `Lab::spawn_speaker`); within a minute.
fn bfd_expired(log: &std::path::Path, ip: &str, wall0: std::time::SystemTime) -> Option<Duration> {
    const DAY: u64 = 86_400_000;
    let since = wall0.duration_since(std::time::UNIX_EPOCH).ok()?;
    let start = (since.as_millis() as u64) % DAY;
    let text = std::fs::read_to_string(log).ok()?;
    let key = format!("Session to {ip} expired");
    text.lines()
        .filter(|l| l.contains(&key))
        .filter_map(|l| {
            // "2026-12-07 04:03:13.898 <TRACE> bfd1: ..."
            let t = l.split_whitespace().nth(1)?;
            let (hms, ms) = t.split_once('.')?;
            let mut f = hms.split(':').map(|x| x.parse::<u64>().ok());
            let (h, m, sec) = (f.next()??, f.next()??, f.next()??);
            let at = ((h * 60 + m) * 60 + sec) * 1000 + ms.parse::<u64>().ok()?;
            let after = (at + DAY - start) % DAY;
            (after < 60_000).then(|| Duration::from_millis(after))
        })
        .min()
}

/// SIGTERM to the last director's `rvs announce`: it withdraws before it
/// exits (its rvsd still runs), so the router loses the route.
fn shutdown_last(lab: &mut Lab, router: &str) -> Result<(), String> {
    let Some(d) = lab.directors.last_mut() else {
        return Ok(());
    };
    let Some(mut ann) = d.announce.take() else {
        return Ok(());
    };
    let t0 = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &ann.id().to_string()])
        .status();
    let status = ann.wait().map_err(|e| e.to_string())?;
    let exited = t0.elapsed();
    wait_hops(router, &[], Duration::from_secs(10))?;
    let alive = d
        .rvsd
        .as_mut()
        .map(|c| matches!(c.try_wait(), Ok(None)))
        .unwrap_or(false);
    println!(
        "SIGTERM to the last director's rvs announce: it exited ({status}) after {} ms; \
         the router has no route to {VIP} {} ms after the signal; its rvsd still running: {}",
        exited.as_millis(),
        t0.elapsed().as_millis(),
        if alive { "yes" } else { "NO" }
    );
    Ok(())
}

/// How long the connections are exercised before an event (their
/// baseline) and after the router has moved them and new requests work.
const LEAD: Duration = Duration::from_secs(1);
/// Control connections (client to the real servers, no director).
const CONTROL: u32 = 60;
const TAIL: Duration = Duration::from_secs(1);

fn alive(conns: &[Conn]) -> Vec<bool> {
    conns.iter().map(|c| c.lost.is_none()).collect()
}

/// A thread that watches the router's next hops from `t0`: when `gone`
/// left them (`None`: not within `limit`).
fn watch_gone(
    router: &str,
    gone: &str,
    t0: Instant,
    limit: Duration,
) -> std::thread::JoinHandle<Option<Duration>> {
    let (router, gone) = (router.to_string(), gone.to_string());
    std::thread::spawn(move || {
        while t0.elapsed() < limit {
            if !next_hops(&router).contains(&gone) {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    })
}

/// The longest gaps between answers while the connections were exercised
/// around an event, for those the failed director carried just before it
/// and for the others (by the directors' tables; those in none, or moved
/// within the last second, are left out); connections lost before are not
/// counted, those lost meanwhile are counted apart. Then the control
/// connections' (no director): the stall every connection shared.
fn pauses(
    what: &str,
    failed: usize,
    carrier: &BTreeMap<u16, usize>,
    conns: &[Conn],
    alive: &[bool],
    gaps: &Gaps,
    window: Duration,
) {
    let control = &gaps.control;
    let (mut mine, mut others, mut lost_mine, mut lost_others, mut unknown) =
        (Vec::new(), Vec::new(), 0, 0, 0);
    for ((c, a), g) in conns.iter().zip(alive).zip(&gaps.conns) {
        if !*a {
            continue;
        }
        match (carrier.get(&c.port), g) {
            (None, _) => unknown += 1,
            (Some(d), Some(g)) if *d == failed => mine.push(*g),
            (Some(d), None) if *d == failed => lost_mine += 1,
            (Some(_), Some(g)) => others.push(*g),
            (Some(_), None) => lost_others += 1,
        }
    }
    println!(
        "pauses, {what}: d{n}'s {}; the others' {}; lost meanwhile: {lost_mine} of d{n}'s, \
         {lost_others} of the others'; {unknown} of no single director (each connection sends \
         a line every {} ms and waits for its echo, from {} ms before the event to {} ms after \
         the router moved and new requests worked: {} ms); the control (to the real servers \
         directly, no director): {}, {} lost",
        gap_stats(&mine),
        gap_stats(&others),
        BEAT.as_millis(),
        LEAD.as_millis(),
        TAIL.as_millis(),
        window.as_millis(),
        gap_stats(&control.iter().flatten().copied().collect::<Vec<_>>()),
        control.iter().filter(|g| g.is_none()).count(),
        n = failed + 1
    );
}

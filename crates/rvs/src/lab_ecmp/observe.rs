//! What the client and the router see: the router's next hops, HTTP
//! requests and long-lived connections from the client, which director
//! carried them, and the request rate at each stage.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::netns::{in_ns, run_cmd};
use rvs_proto::client::{Client, DEFAULT_ABSTRACT_NAME, Endpoint};

use super::{Conn, Director, ECHO_PORT, Lab, Opts, VIP};

/// The router's next hops for the VIP (`ip route`), sorted.
pub(super) fn next_hops(router: &str) -> Vec<String> {
    let out =
        run_cmd(&["ip", "-n", router, "route", "show", &format!("{VIP}/32")]).unwrap_or_default();
    let mut v: Vec<String> = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "via")
        .map(|w| w[1].to_string())
        .collect();
    v.sort();
    v
}

/// Wait until the router's next hops are `want`; the time it took.
pub(super) fn wait_hops(
    router: &str,
    want: &[String],
    timeout: Duration,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    let mut want = want.to_vec();
    want.sort();
    loop {
        let got = next_hops(router);
        if got == want {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "the router's route to {VIP} has next hops {got:?}, not {want:?}, after {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One HTTP/1.0 GET from the client namespace: (client port, body).
pub(super) fn get(client: &str, timeout: Duration) -> Result<(u16, String), String> {
    in_ns(client, move || {
        let addr: SocketAddr = format!("{VIP}:80").parse().map_err(|e| format!("{e}"))?;
        let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
        let port = s.local_addr().map_err(|e| e.to_string())?.port();
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        write!(s, "GET / HTTP/1.0\r\nHost: {VIP}\r\n\r\n").map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.trim().to_string())
            .ok_or("no HTTP response")?;
        Ok((port, body))
    })
}

/// The connection table of the rvsd in `ns` (empty if it does not answer),
/// asked in parts.
fn director_conns(ns: &str) -> Vec<rvs_proto::ConnInfo> {
    in_ns(ns, || {
        let ep = Endpoint::Abstract(DEFAULT_ABSTRACT_NAME.into());
        Client::connect(&ep)
            .map_err(|e| e.to_string())?
            .list_conns_all()
    })
    .unwrap_or_default()
}

/// Client ports → the directors (indexes) whose tables have them, for the
/// service VIP:`vport` (a client port may be reused towards another port).
/// Entries learnt from the sync daemon are left out: the director that
/// scheduled a connection, or adopted it, is the one listed.
pub(super) fn conns_by_director(dirs: &[Director], vport: u16) -> BTreeMap<u16, Vec<usize>> {
    let mut m: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, d) in dirs.iter().enumerate() {
        if d.rvsd.is_none() {
            continue;
        }
        let list = director_conns(&d.ns);
        for c in list {
            if c.vaddr.to_string() == VIP
                && c.vport == vport
                && c.flags & rvs_core::conn::flags::SYNC == 0
            {
                m.entry(c.cport).or_default().push(i);
            }
        }
    }
    m
}

pub(super) fn open_conns(client: &str, n: u32) -> Result<Vec<Conn>, String> {
    open_to(client, &[VIP.to_string()], n)
}

/// `n` connections from the client to the echo servers at `addrs` (in
/// turn), on port [`ECHO_PORT`].
pub(super) fn open_to(client: &str, addrs: &[String], n: u32) -> Result<Vec<Conn>, String> {
    let addrs: Vec<SocketAddr> = addrs
        .iter()
        .map(|a| {
            format!("{a}:{ECHO_PORT}")
                .parse()
                .map_err(|e| format!("{e}"))
        })
        .collect::<Result<_, String>>()?;
    in_ns(client, move || {
        let mut v = Vec::new();
        for addr in addrs.iter().cycle().take(n as usize) {
            let s = TcpStream::connect_timeout(addr, Duration::from_secs(3))
                .map_err(|e| format!("long-lived connect: {e}"))?;
            let port = s.local_addr().map_err(|e| e.to_string())?.port();
            let w = s.try_clone().map_err(|e| e.to_string())?;
            v.push(Conn {
                port,
                r: BufReader::new(s),
                w,
                lost: None,
            });
        }
        Ok(v)
    })
}

/// One line through every connection still alive; a connection that does
/// not answer within `timeout` of the send (TCP retransmits included) is
/// lost.
/// Returns the real servers' names by connection.
pub(super) fn ping(conns: &mut [Conn], seq: u32, timeout: Duration) -> Vec<String> {
    let mut names = vec![String::new(); conns.len()];
    for c in conns.iter_mut().filter(|c| c.lost.is_none()) {
        if let Err(e) = writeln!(c.w, "ping {seq}") {
            c.lost = Some(format!("send: {e}"));
        }
    }
    let deadline = Instant::now() + timeout;
    for (i, c) in conns.iter_mut().enumerate() {
        if c.lost.is_some() {
            continue;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let _ = c.r.get_ref().set_read_timeout(Some(left));
        let mut line = String::new();
        match c.r.read_line(&mut line) {
            Ok(0) => c.lost = Some("closed".into()),
            Ok(_) if line.trim_end().ends_with(&format!("ping {seq}")) => {
                names[i] = line.split_whitespace().next().unwrap_or("").to_string();
            }
            Ok(_) => c.lost = Some(format!("unexpected {line:?}")),
            Err(e) => c.lost = Some(e.to_string()),
        }
    }
    names
}

/// From the client, after an event at `t0`: a new connection every 50 ms
/// (500 ms to answer) until 20 in a row succeed. When the last failed one
/// ended (`None`: none failed), and how many were tried.
pub(super) fn probe(client: &str, t0: Instant) -> (Option<Duration>, u32) {
    let mut last_fail = None;
    let (mut streak, mut tries) = (0, 0);
    while streak < 20 && t0.elapsed() < Duration::from_secs(20) {
        let start = t0.elapsed();
        tries += 1;
        match get(client, Duration::from_millis(500)) {
            Ok(_) => streak += 1,
            Err(_) => {
                streak = 0;
                last_fail = Some(start + Duration::from_millis(500));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (last_fail, tries)
}

pub(super) fn fail_text(last_fail: Option<Duration>) -> String {
    match last_fail {
        Some(t) => format!("{} ms after it", t.as_millis()),
        None => "never (no failure)".into(),
    }
}

/// Closed-loop HTTP requests from 8 client threads for `secs`: requests/s.
fn rate(client: &str, secs: u32) -> f64 {
    let until = Instant::now() + Duration::from_secs(u64::from(secs));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let client = client.to_string();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < until {
                    if get(&client, Duration::from_secs(2)).is_ok() {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let n: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    n as f64 / f64::from(secs)
}

pub(super) fn bench(lab: &Lab, client: &str, o: &Opts) {
    if o.bench > 0 {
        let n = lab.directors.iter().filter(|d| d.rvsd.is_some()).count();
        println!(
            "bench: {n} director(s): {:.0} requests/s (8 client threads, HTTP/1.0, {} s)",
            rate(client, o.bench),
            o.bench
        );
    }
}

pub(super) fn lost(conns: &[Conn]) -> usize {
    conns.iter().filter(|c| c.lost.is_some()).count()
}

/// The director that carries each client port of VIP:`vport` now: of the
/// live directors whose tables have it (not learnt from sync), the one
/// whose entry was refreshed last (the most seconds left). A flow the
/// router moved stays in its old director's table until it expires there;
/// a tie (moved within the last second) leaves it out.
pub(super) fn carriers(dirs: &[Director], vport: u16) -> BTreeMap<u16, usize> {
    let mut best: BTreeMap<u16, (u64, Option<usize>)> = BTreeMap::new();
    for (i, d) in dirs.iter().enumerate() {
        if d.rvsd.is_none() {
            continue;
        }
        let list = director_conns(&d.ns);
        for c in list {
            if c.vaddr.to_string() != VIP
                || c.vport != vport
                || c.flags & rvs_core::conn::flags::SYNC != 0
            {
                continue;
            }
            match best.get_mut(&c.cport) {
                None => {
                    best.insert(c.cport, (c.expire_secs, Some(i)));
                }
                Some(b) if c.expire_secs > b.0 => *b = (c.expire_secs, Some(i)),
                Some(b) if c.expire_secs == b.0 && b.1 != Some(i) => b.1 = None,
                Some(_) => {}
            }
        }
    }
    best.into_iter()
        .filter_map(|(port, (_, d))| Some((port, d?)))
        .collect()
}

/// How often each long-lived connection sends a line while exercised.
pub(super) const BEAT: Duration = Duration::from_millis(100);

/// The longest gap between two answers while exercised, by connection
/// (`None`: lost meanwhile, or before).
pub(super) struct Gaps {
    pub conns: Vec<Option<Duration>>,
    pub control: Vec<Option<Duration>>,
}

/// Run `during` while every live connection of `conns` and `control`,
/// each from its own thread, sends a line every [`BEAT`] and waits for its
/// echo (5 s, TCP retransmits included; no answer: lost). Returns what
/// `during` returned and, by connection of `conns` and of `control`, the
/// longest time between two consecutive answers (from the start for the
/// first one) while it ran, `None` for a connection lost meanwhile (or
/// before).
pub(super) fn exercise<T>(
    conns: &mut [Conn],
    control: &mut [Conn],
    during: impl FnOnce() -> T,
) -> (T, Gaps) {
    let done = AtomicBool::new(false);
    let n = conns.len();
    std::thread::scope(|sc| {
        let threads: Vec<_> = conns
            .iter_mut()
            .chain(control.iter_mut())
            .map(|c| {
                let done = &done;
                std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_scoped(sc, move || beat(c, done))
            })
            .collect();
        let out = during();
        done.store(true, Ordering::Relaxed);
        let mut gaps: Vec<Option<Duration>> = threads
            .into_iter()
            .map(|t| t.ok().and_then(|t| t.join().ok()).flatten())
            .collect();
        let control = gaps.split_off(n);
        (
            out,
            Gaps {
                conns: gaps,
                control,
            },
        )
    })
}

fn beat(c: &mut Conn, done: &AtomicBool) -> Option<Duration> {
    if c.lost.is_some() {
        return None;
    }
    let _ = c.r.get_ref().set_read_timeout(Some(Duration::from_secs(5)));
    // One segment per line, sent at once: Nagle would hold a line's tail
    // until the server's delayed ACK (40 ms).
    let _ = c.w.set_nodelay(true);
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    let mut k = 0u32;
    while !done.load(Ordering::Relaxed) {
        k += 1;
        if let Err(e) = c.w.write_all(format!("beat {k}\n").as_bytes()) {
            c.lost = Some(format!("send: {e}"));
            return None;
        }
        let mut line = String::new();
        match c.r.read_line(&mut line) {
            Ok(0) => c.lost = Some("closed".into()),
            Ok(_) if line.trim_end().ends_with(&format!("beat {k}")) => {}
            Ok(_) => c.lost = Some(format!("unexpected {line:?}")),
            Err(e) => c.lost = Some(e.to_string()),
        }
        if c.lost.is_some() {
            return None;
        }
        let now = Instant::now();
        longest = longest.max(now - last);
        last = now;
        std::thread::sleep(BEAT);
    }
    Some(longest)
}

/// `n`, median, p99 (nearest rank) and max of the longest gaps, in ms.
pub(super) fn gap_stats(gaps: &[Duration]) -> String {
    let mut ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    let n = ms.len();
    if n == 0 {
        return "0 connections".into();
    }
    let at = |q: f64| ms[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    format!(
        "{n} connections: longest gap median {} / p99 {} / max {} ms",
        at(0.5),
        at(0.99),
        ms[n - 1]
    )
}

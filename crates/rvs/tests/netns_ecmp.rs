//! `rvs lab ecmp --failover --directors 4`: directors (rvsd DR `mh` + BIRD +
//! `rvs announce`) behind a router running BIRD with ECMP, end to end:
//!
//! * requests are spread over the directors (and the real servers);
//! * a director whose real servers are all at weight 0 withdraws, and
//!   announces again when one is back;
//! * `rvs drain` on d1: the route is withdrawn while d1's rvsd still
//!   forwards, and no long-lived connection is lost, before or after d1's
//!   rvsd stops (the flows the router moves are adopted by the other
//!   directors: `mh` + `sloppy_tcp`, the same real server everywhere);
//! * SIGKILL of d2's rvsd, BIRD and `rvs announce`: the router drops d2
//!   within the BFD detect time (or at once, when the BGP session's socket
//!   closes), new requests succeed, and the number of long-lived
//!   connections lost is reported (0 expected with mid-flow adoption; no
//!   connection sync is involved);
//! * SIGTERM to the last `rvs announce`: the route is withdrawn, it exits 0,
//!   rvsd still runs;
//! * d3's link pulled: BFD alone tells the router (under a second), nothing
//!   lost;
//! * with `--no-sloppy`, the connections the router moves are lost: the
//!   figure without adoption (and without sync);
//! * pauses: around the drain, the SIGKILL and the pulled link every
//!   long-lived connection sends a line every 100 ms and waits for its
//!   echo; the longest gap between two answers, for the connections the
//!   failed director carried and for the others, bounds how long each
//!   stood still (see `pauses`).
//!
//! Needs root, iproute2, python3, AF_XDP and BIRD 2 (`bird2`, installed by
//! scripts/test.sh). Without BIRD it says so and skips, unless
//! `RVS_REQUIRE_BIRD` is set; the decision logic of `rvs announce` has its
//! unit tests (`announce::tests`) either way.

use std::process::Command;

mod common;
use common::*;

/// One lab at a time: they would share the two CPUs.
static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lab(conns: &str, extra: &[&str]) -> String {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut args = vec![
        "lab",
        "ecmp",
        "--failover",
        "--directors",
        "4",
        "--requests",
        "30",
        "--conns",
        conns,
    ];
    args.extend_from_slice(extra);
    let child = spawn_rvs(&args);
    let pid = child.id();
    let out = child.wait_with_output().expect("rvs lab ecmp");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "rvs lab ecmp: {}\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
    // Nothing left behind.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(
        !ns.contains(&format!("rvslab-{pid}-")),
        "namespaces left behind:\n{ns}"
    );
    stdout
}

/// `rvs drain` on d1: the route went while d1's rvsd still forwarded, and
/// no long-lived connection was lost, before or after it stopped.
fn assert_drained_cleanly(out: &str) {
    assert!(
        out.contains("d1's rvsd still forwarding then: yes"),
        "{out}"
    );
    for key in ["still forwarded, ", "lost: "] {
        assert_eq!(num_after(out, "drain d1: long-lived", key), 0, "{out}");
    }
}

/// d2 killed: the router dropped it within the BFD/hold time; d3's link
/// pulled: within BFD's (100 ms x 3); no long-lived connection lost in
/// either. The two times (ms).
fn assert_failed_over_cleanly(out: &str) -> (u32, u32) {
    let dropped = num_after(out, "kill d2", "the router dropped d2 after ");
    assert!(dropped < 3000, "router took {dropped} ms:\n{out}");
    assert_eq!(num_after(out, "kill d2", "connections lost: "), 0, "{out}");
    // When the router's BFD expired d3 (its BIRD's log), else when the
    // lab's watcher of its routes saw d3 go (late when the machine is
    // loaded: it polls `ip route` from an ordinary thread).
    let watched = num_after(out, "pull d3", "the router dropped d3 after ");
    let key = "its BIRD expired the session after ";
    let bfd = out
        .lines()
        .find(|l| l.starts_with("pull d3") && l.contains(key))
        .and_then(|l| {
            let rest = &l[l.find(key).unwrap() + key.len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(watched);
    assert!(
        bfd < 1000,
        "BFD took {bfd} ms (the route watcher: {watched} ms):\n{out}"
    );
    assert_eq!(num_after(out, "pull d3", "connections lost: "), 0, "{out}");
    (dropped, bfd)
}

/// The number after `key` on the line starting with `prefix`.
fn num_after(out: &str, prefix: &str, key: &str) -> u32 {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix) && l.contains(key))
        .unwrap_or_else(|| panic!("no '{prefix}…{key}' line:\n{out}"));
    let rest = &line[line.find(key).unwrap() + key.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key}: {line}"))
}

/// The figures of a `pauses, <what>:` line: (its beat; the failed
/// director's connections: count, median and max of their longest gaps,
/// lost meanwhile; the same for the others; the control connections,
/// which bypass the directors: count and max), in ms.
#[derive(Debug)]
struct Pauses {
    beat: u32,
    failed: (u32, u32, u32, u32),
    others: (u32, u32, u32, u32),
    control: (u32, u32),
}

impl Pauses {
    /// The bound of a connection that never paused for the failover: the
    /// beat plus [`STILL_MS`], plus what the control connections (no
    /// director on their path) stood still beyond the beat meanwhile:
    /// the machine's stall, which every connection shares (the client's
    /// threads, the echo servers, the router wait for the same two CPUs).
    fn still(&self) -> u32 {
        self.beat + STILL_MS + self.stall()
    }

    /// What the control connections stood still beyond the beat.
    fn stall(&self) -> u32 {
        self.control.1.saturating_sub(self.beat)
    }

    /// Connections whose longest gap was `longest` never paused for the
    /// failover: under [`Pauses::still`]. Unless the machine itself stood
    /// still more than [`STILL_MS`] beyond the beat (the control did):
    /// then a lost segment's 200 ms cannot be told from the stall, which
    /// every connection shares but not by the same amount (once, after a
    /// 1.4 s stall at load ~44, the others' longest gap exceeded the
    /// control's by 217 ms: more connections, a longer tail; their path
    /// has a director more), so the pause is not judged, and the test says
    /// so. Losses are judged either way.
    fn assert_still(&self, longest: u32, out: &str) {
        if self.stall() > STILL_MS {
            println!(
                "pauses not judged: the control (no director) stood still {} ms beyond the beat \
                 (the loaded machine): {self:?}",
                self.stall()
            );
            return;
        }
        assert!(longest < self.still(), "{self:?}\n{out}");
    }
}

fn pauses(out: &str, what: &str) -> Pauses {
    let prefix = format!("pauses, {what}:");
    let line = out
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line:\n{out}"));
    let (failed, others) = line
        .split_once("; the others' ")
        .unwrap_or_else(|| panic!("{line}"));
    let group = |part: &str, lost_key: &str| {
        let count = part
            .split(" connections:")
            .next()
            .and_then(|t| t.rsplit(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no count: {line}"));
        (
            count,
            num_after(part, "", "median "),
            num_after(part, "", "/ max "),
            num_after(line, "", lost_key),
        )
    };
    let (_, control) = line
        .split_once("the control (")
        .unwrap_or_else(|| panic!("no control: {line}"));
    Pauses {
        beat: num_after(line, "", "a line every "),
        failed: group(failed, "lost meanwhile: "),
        others: group(others, "'s, "),
        control: (
            num_after(control, "", "): "),
            num_after(control, "", "/ max "),
        ),
    }
}

/// A connection that never paused: its longest gap stays under the beat
/// plus 150 ms. Measured on the 2-vCPU test VM shared with other builds
/// and tests (debug build, 300 connections; 19 runs, load average 3 to 22,
/// BIRD and FRR directors): the longest gap of a connection the failed
/// director did not carry exceeded the beat by 59 ms at most in 18 runs
/// and by 75 ms in one (FRR, load 10); a single lost segment would cost at least
/// TCP's minimum retransmission timeout (200 ms) on top of the beat, so
/// 150 ms separates "kept flowing" from "stalled" with room for the load.
/// It is also under what the router takes to detect a dead director
/// without a closed session (BFD, 100 ms x 3: 230-320 ms measured).
/// Under a heavier load every process of the lab waits for a CPU, and
/// every connection stands still alike, the control connections (which
/// bypass the directors) too: in one run of this file at load 40-63, the
/// others' longest gap 133-2045 ms, the control's 130-2364 ms, event by
/// event; what the control stood still beyond the beat is added to the
/// bounds (`Pauses::still`, `Pauses::stall`).
const STILL_MS: u32 = 150;

#[test]
fn ecmp_spreads_drains_and_survives_a_director() {
    if !can_run_with(&[]) || !bird_runs() {
        return;
    }
    // The figure: 300 long-lived connections.
    let out = lab("300", &[]);
    assert!(out.contains("30/30 requests answered"), "{out}");
    // Spread: every director and more than one real server carried some.
    for d in [
        "director d1 ",
        "director d2 ",
        "director d3 ",
        "director d4 ",
    ] {
        assert!(out.contains(d), "{d}carried nothing:\n{out}");
    }
    assert!(
        out.contains("health: d4's real servers at weight 0"),
        "{out}"
    );
    let servers = ["rs1 ", "rs2 ", "rs3 "]
        .iter()
        .filter(|rs| {
            out.lines()
                .any(|l| l.starts_with("request") && l.contains(*rs))
        })
        .count();
    assert!(servers >= 2, "one real server only:\n{out}");
    // Drain: withdrawn while forwarding, nothing lost, new requests fine.
    assert_drained_cleanly(&out);
    assert!(out.contains("new requests: 10/10"), "{out}");
    // Death: the router drops d2 within the BFD/hold time, new requests
    // recover, and with mid-flow adoption no long-lived connection is lost.
    // Link pulled: BFD (100 ms x 3) is the only signal.
    let (dropped, bfd) = assert_failed_over_cleanly(&out);
    assert_eq!(out.matches("new requests: 10/10").count(), 2, "{out}");
    // Pauses. Drain: withdrawn before forwarding stops, so nobody stands
    // still, d1's connections included.
    let p = pauses(&out, "drain d1");
    println!("pauses: drain d1 {p:?}");
    assert!(p.failed.0 > 0 && p.others.0 > 0, "{p:?}\n{out}");
    assert_eq!((p.failed.3, p.others.3), (0, 0), "{p:?}\n{out}");
    p.assert_still(p.failed.2, &out);
    p.assert_still(p.others.2, &out);
    // SIGKILL: the others never pause; d2's answer again once the router
    // has moved them: within twice its detection time (a segment sent
    // just before it is retransmitted after at most about as long again;
    // the RTO doubles) plus a second for the minimum RTO, the beat and
    // the load, plus the machine's stall (the control's).
    let p = pauses(&out, "kill d2");
    println!("pauses: kill d2 {p:?} (router: {dropped} ms)");
    assert!(p.failed.0 > 0 && p.others.0 > 0, "{p:?}\n{out}");
    assert_eq!((p.failed.3, p.others.3), (0, 0), "{p:?}\n{out}");
    p.assert_still(p.others.2, &out);
    assert!(p.failed.2 <= 2 * dropped + 1000 + p.stall(), "{p:?}\n{out}");
    // Pulled link: d3's connections stand still until BFD has told the
    // router (no answer can cross the outage: their longest gap is at
    // least its length, less the router's polling), then answer again
    // within the same bound; the others never pause.
    let p = pauses(&out, "pull d3's link");
    println!("pauses: pull d3's link {p:?} (BFD: {bfd} ms)");
    assert!(p.failed.0 > 0 && p.others.0 > 0, "{p:?}\n{out}");
    assert_eq!((p.failed.3, p.others.3), (0, 0), "{p:?}\n{out}");
    assert!(p.failed.1 + 50 >= bfd, "{p:?}\n{out}");
    assert!(p.failed.2 <= 2 * bfd + 1000 + p.stall(), "{p:?}\n{out}");
    p.assert_still(p.others.2, &out);
    // SIGTERM to rvs announce: withdrawn before it exits, rvsd untouched.
    assert!(
        out.contains("exited (exit status: 0)") && out.contains("its rvsd still running: yes"),
        "{out}"
    );
}

#[test]
fn without_sloppy_tcp_the_moved_connections_are_lost() {
    if !can_run_with(&[]) || !bird_runs() {
        return;
    }
    let out = lab("60", &["--no-sloppy"]);
    // d1's share (drain) and d2's (death) are lost: the router moves them
    // to directors that have never seen them; the figure is reported.
    let drained = num_after(&out, "drain d1: long-lived", "still forwarded, ");
    let killed = num_after(&out, "kill d2", "connections lost: ");
    let pulled = num_after(&out, "pull d3", "connections lost: ");
    println!(
        "without sloppy_tcp: {drained} lost on drain, {killed} on SIGKILL, {pulled} on a pulled link (of 60)"
    );
    assert!(drained > 0 && killed > 0, "{out}");
}

/// Issue 18, item 4: a real server added on every director changes every
/// `mh` table; flows the router then moves are scheduled anew by
/// directors that have not seen them. With full-mesh sync (each director a
/// master and a backup with syncid 0) every director knows every
/// connection: none of the 300 is lost.
#[test]
fn full_mesh_sync_keeps_moved_flows_across_a_real_server_change() {
    if !can_run_with(&[]) || !bird_runs() {
        return;
    }
    let out = lab("300", &["--sync", "--add-server"]);
    assert!(out.contains("predicted 0 lost, lost 0"), "{out}");
    assert_eq!(
        num_after(&out, "add a real server", "connections lost: "),
        0,
        "{out}"
    );
    assert_eq!(
        num_after(&out, "drain d1: long-lived", "connections lost: "),
        0,
        "{out}"
    );
    assert_eq!(
        num_after(&out, "drain d1: long-lived", "still forwarded, "),
        0,
        "{out}"
    );
    assert_eq!(num_after(&out, "kill d2", "connections lost: "), 0, "{out}");
    assert_eq!(num_after(&out, "pull d3", "connections lost: "), 0, "{out}");
}

/// The same change without sync (issue 18, "loss vs slot share"): a
/// connection is lost when the router moves it to a director without its
/// entry (drain, SIGKILL, pulled link) and its `mh` slot moved to the new
/// server. The lab computes each connection's `mh` pick before and after
/// (rvs_core, checked against the real server that answered it) and sees
/// which connections the router moved (in the directors' tables): exactly
/// the predicted ones are lost, and their number is within 4 sigma of the
/// binomial prediction (moved connections x share of moved slots).
#[test]
fn without_sync_a_real_server_change_loses_moved_flows() {
    if !can_run_with(&[]) || !bird_runs() {
        return;
    }
    let out = lab("300", &["--add-server"]);
    let slots = num_after(&out, "add a real server", "mh moved ");
    let total = num_after(&out, "add a real server", &format!("mh moved {slots} of "));
    assert_eq!(
        num_after(&out, "mh by the client's port", "(rvs_core): "),
        300,
        "the mh picks computed by the lab differ from the real servers seen:\n{out}"
    );
    let at_risk = num_after(&out, "mh by the client's port", "them; ");
    let drained = num_after(&out, "drain d1: long-lived", "still forwarded, ");
    let killed = num_after(&out, "kill d2", "connections lost: ");
    let pulled = num_after(&out, "pull d3", "connections lost: ");
    let moved = num_after(&out, "loss vs slot share", "the router moved ");
    let predicted = num_after(&out, "loss vs slot share", "unknown director); ");
    let lost = num_after(&out, "loss vs slot share", "lost ");
    assert_eq!(num_after(&out, "loss vs slot share", "entry ("), 0, "{out}");
    let p = f64::from(slots) / f64::from(total);
    let expect = f64::from(moved) * p;
    let sigma = (expect * (1.0 - p)).sqrt();
    println!(
        "without sync, after a real server was added (mh moved {slots} of {total} slots, \
         {:.1}%; {at_risk} of 300 connections on a moved slot): {drained} lost on drain, \
         {killed} on SIGKILL, {pulled} on a pulled link; {lost} in all, of {moved} the router \
         moved to a director without their entry: predicted {predicted} (those on a moved \
         slot), {expect:.1} +- {sigma:.1} by the slot share",
        100.0 * p
    );
    assert_eq!(drained + killed + pulled, lost, "{out}");
    assert!(
        out.contains("lost exactly the predicted connections: yes"),
        "{out}"
    );
    assert_eq!(lost, predicted, "{out}");
    assert!(
        (f64::from(lost) - expect).abs() <= 4.0 * sigma,
        "{lost} lost, {expect:.1} +- {sigma:.1} expected:\n{out}"
    );
    assert!(lost > 0, "{out}");
}

/// `--speaker frr`: every director runs FRR (zebra, staticd, bgpd and bfdd,
/// their sockets and pid files in the lab's directory) configured with
/// `dist/bgp/frr-director.conf` (its addresses replaced), and `rvs
/// announce` runs the hooks of dist/bgp/README.md: vtysh adds the VIP's
/// `network` statement to bgpd to announce, removes it to withdraw. The
/// router (BIRD) gets the route from all four, loses and regains d4's with
/// its real servers' weights, loses d1's on `rvs drain`, d2's when its FRR
/// is killed, d3's by BFD (bfdd) when its link is pulled, and the last
/// one's on SIGTERM to its `rvs announce`; no long-lived connection is
/// lost, and the pauses stay within the bounds above.
#[test]
fn frr_directors_announce_withdraw_and_fail_over() {
    if !can_run_with(&[]) || !bird_runs() || !frr_runs(&["zebra", "staticd", "bgpd", "bfdd"]) {
        return;
    }
    // The 300 long-lived connections, as with BIRD.
    let out = lab("300", &["--speaker", "frr"]);
    assert!(out.contains("+ FRR + rvs announce"), "{out}");
    // Announced by all four.
    assert!(
        out.contains("router: route to 10.6.9.100 via 10.6.0.11, 10.6.0.12, 10.6.0.13, 10.6.0.14"),
        "{out}"
    );
    // Withdrawn and announced again (real servers' weights).
    assert!(
        out.contains("health: d4's real servers at weight 0: the router dropped d4 after"),
        "{out}"
    );
    // Drain: withdrawn while rvsd forwards.
    assert_drained_cleanly(&out);
    // FRR killed: the session closes (or BFD).
    assert!(
        out.contains("kill d2 (SIGKILL rvsd, FRR, rvs announce"),
        "{out}"
    );
    // Pulled link: bfdd's BFD (100 ms x 3) is the only signal.
    let (dropped, bfd) = assert_failed_over_cleanly(&out);
    // The others never pause, at the drain or the SIGKILL (FRR's session
    // goes by BFD before the closed socket: d2's pause like a pulled
    // link's).
    for (what, detect) in [("drain d1", 0), ("kill d2", dropped)] {
        let p = pauses(&out, what);
        println!("pauses (FRR): {what} {p:?}");
        assert_eq!((p.failed.3, p.others.3), (0, 0), "{p:?}\n{out}");
        assert!(p.failed.2 <= 2 * detect + 1000 + p.stall(), "{p:?}\n{out}");
        p.assert_still(p.others.2, &out);
    }
    let p = pauses(&out, "pull d3's link");
    println!("pauses (FRR): pull d3's link {p:?} (BFD: {bfd} ms)");
    assert_eq!((p.failed.3, p.others.3), (0, 0), "{p:?}\n{out}");
    assert!(p.failed.2 <= 2 * bfd + 1000 + p.stall(), "{p:?}\n{out}");
    p.assert_still(p.others.2, &out);
    // SIGTERM: vtysh withdraws before rvs announce exits.
    assert!(
        out.contains("exited (exit status: 0)") && out.contains("its rvsd still running: yes"),
        "{out}"
    );
}

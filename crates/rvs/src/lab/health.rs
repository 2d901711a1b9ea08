// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs lab MODE --health`: the real servers come from a keepalived.conf
//! (one `virtual_server`, an HTTP_GET checker per real server) that
//! `rvs health run` checks in the director's namespace and applies to
//! rvsd; after the usual requests, rs1's HTTP server is stopped, and the
//! lab shows how long the checker took to take it out of the table, that
//! new requests then all go to the others, and how long it took to put it
//! back once its server runs again.

use std::fs::File;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::{HTTP_SERVER, Lab, Mode, Opts, check_stop, http_get, in_ns};

/// The checker's timing: a check every second, a server down after two
/// failed ones (`retry 1`, one second apart), each given one second.
const TIMING: &str = "delay_loop 1, retry 1, delay_before_retry 1, connect_timeout 1";

/// keepalived.conf for the lab's service and real servers.
pub(super) fn conf(o: &Opts, vip: &str, rips: &[String]) -> String {
    let kind = match o.mode {
        Mode::Nat => "NAT",
        Mode::Dr | Mode::DrRouted => "DR",
        Mode::Tun => "TUN",
    };
    let mut c = format!(
        "! written by rvs lab {} --health\n\
         virtual_server {vip} 80 {{\n    delay_loop 1\n    lb_algo {}\n    \
         lb_kind {kind}\n    protocol TCP\n",
        o.mode.name(),
        o.scheduler
    );
    for rip in rips {
        c += &format!(
            "    real_server {rip} 80 {{\n        weight 1\n        HTTP_GET {{\n            \
             url {{\n                path /\n                status_code 200\n            }}\n            \
             connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        \
             }}\n    }}\n"
        );
    }
    c + "}\n"
}

fn state_path(lab: &Lab) -> String {
    lab.dir.join("health.json").to_string_lossy().into_owned()
}

fn log_path(lab: &Lab) -> std::path::PathBuf {
    lab.dir.join("health.log")
}

/// Real servers of the table (`-> ADDR:PORT` lines) with a weight above 0.
fn in_table(lab: &Lab, director: &str) -> Vec<String> {
    lab.adm(director, &["-L", "-n"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "->").then_some(())?;
            let addr = w.next()?;
            let weight: u32 = w.nth(1)?.parse().ok()?;
            (weight > 0).then(|| addr.rsplit_once(':').map_or(addr, |(a, _)| a).to_string())
        })
        .collect()
}

/// Wait until `done` holds for the table, at most `limit`: how long it
/// took.
fn wait_table(
    lab: &Lab,
    director: &str,
    limit: Duration,
    stop: &AtomicBool,
    done: impl Fn(&[String]) -> bool,
) -> Result<Option<Duration>, String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        check_stop(stop)?;
        if done(&in_table(lab, director)) {
            return Ok(Some(t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(None)
}

/// Write the configuration, start `rvs health run` in the director's
/// namespace and wait until every real server is in the table.
pub(super) fn start(
    lab: &mut Lab,
    o: &Opts,
    director: &str,
    rvs: &str,
    vip: &str,
    rips: &[String],
    stop: &AtomicBool,
) -> Result<(), String> {
    let file = lab.dir.join("keepalived.conf");
    std::fs::write(&file, conf(o, vip, rips)).map_err(|e| format!("{}: {e}", file.display()))?;
    let log = File::create(log_path(lab)).map_err(|e| e.to_string())?;
    let child = Command::new("ip")
        .args(["netns", "exec", director, rvs, "health", "run"])
        .arg(&file)
        .args(["--state", &state_path(lab)])
        .env_remove("RVS_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("spawn rvs health run: {e}"))?;
    lab.children.push(child);
    println!(
        "health: rvs health run {} ({} real servers, HTTP_GET /, {TIMING})",
        file.display(),
        rips.len()
    );
    let all = |t: &[String]| rips.iter().all(|r| t.contains(r));
    if wait_table(lab, director, Duration::from_secs(15), stop, all)?.is_none() {
        let log = std::fs::read_to_string(log_path(lab)).unwrap_or_default();
        return Err(format!(
            "rvs health run did not put every real server in the table in 15 s:\n{log}"
        ));
    }
    Ok(())
}

/// Stop rs1's HTTP server, see it leave the table, send new requests,
/// start it again, see it come back; the report.
#[allow(clippy::too_many_arguments)]
pub(super) fn stop_and_start(
    lab: &mut Lab,
    director: &str,
    client: &str,
    addr: SocketAddr,
    rss: &[String],
    rips: &[String],
    http: &[usize],
    stop: &AtomicBool,
) -> Result<String, String> {
    let (victim, vrip) = (&rss[0], rips[0].clone());
    let mut out = String::new();
    let server = &mut lab.children[http[0]];
    let _ = server.kill();
    let _ = server.wait();
    let gone = wait_table(lab, director, Duration::from_secs(15), stop, |t| {
        !t.contains(&vrip)
    })?;
    let Some(gone) = gone else {
        return Err(format!(
            "rs1 ({vrip}) still in the table 15 s after its HTTP server stopped:\n{}",
            std::fs::read_to_string(log_path(lab)).unwrap_or_default()
        ));
    };
    out += &format!(
        "health: rs1's HTTP server ({vrip}) stopped; rvs health took it out of the table \
         after {:.1} s (at most ~4 s with {TIMING})\n",
        gone.as_secs_f64()
    );
    // New requests: all answered, none by rs1.
    let (mut ok, mut by_victim) = (0, 0);
    let mut by: Vec<(String, u32)> = Vec::new();
    const AFTER: u32 = 10;
    for _ in 0..AFTER {
        check_stop(stop)?;
        if let Ok(body) = in_ns(client, move || http_get(addr, Duration::from_secs(3))) {
            ok += 1;
            let name = body.split_whitespace().next().unwrap_or("?").to_string();
            if name == "rs1" {
                by_victim += 1;
            }
            match by.iter_mut().find(|(n, _)| *n == name) {
                Some((_, k)) => *k += 1,
                None => by.push((name, 1)),
            }
        }
    }
    by.sort();
    let spread: Vec<String> = by.iter().map(|(n, k)| format!("{n} x{k}")).collect();
    out += &format!(
        "health: {ok}/{AFTER} new requests answered while rs1 is down ({}), {by_victim} by rs1\n",
        spread.join(", ")
    );
    // rs1's server again.
    let www = lab.dir.join("rs1");
    let www = www.to_str().ok_or("temp path is not UTF-8")?.to_string();
    lab.spawn(victim, "python3", &["-c", HTTP_SERVER, &www])?;
    let back = wait_table(lab, director, Duration::from_secs(15), stop, |t| {
        t.contains(&vrip)
    })?;
    match back {
        Some(d) => {
            out += &format!(
                "health: rs1's HTTP server started again; back in the table after {:.1} s \
                 (one successful check: at most ~1 s after it answers)\n",
                d.as_secs_f64()
            )
        }
        None => out += "health: rs1 NOT back in the table 15 s after its server started\n",
    }
    // The checker writes its state file about once a second: wait (a
    // little) for the one that has rs1 up again.
    let rvs = std::env::current_exe().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let show = loop {
        let o = Command::new("ip")
            .args(["netns", "exec", director])
            .arg(&rvs)
            .args(["health", "show", "--state", &state_path(lab)])
            .output()
            .map_err(|e| format!("rvs health show: {e}"))?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if !text.contains(" DOWN ") || t0.elapsed() > Duration::from_secs(3) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    out += &format!("--- rvs health show (in {director}) ---\n{show}");
    if by_victim > 0 || ok != AFTER || back.is_none() {
        return Err(format!(
            "{out}the checker did not take rs1 out and back as expected\nrvs health log:\n{}",
            std::fs::read_to_string(log_path(lab)).unwrap_or_default()
        ));
    }
    Ok(out)
}

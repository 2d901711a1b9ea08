// SPDX-License-Identifier: GPL-2.0-or-later
//! `rvs lab MODE --health`: the real servers come from a keepalived.conf
//! (one `virtual_server`, an HTTP_GET checker per real server) that
//! `rvs health run` checks in the director's namespace and applies to
//! rvsd; after the usual requests, rs1's HTTP server is stopped, and the
//! lab shows how long the checker took to take it out of the table, that
//! new requests then all go to the others, and how long it took to put it
//! back once its server runs again.
//!
//! `--health-conf FILE` runs FILE instead (the worked example,
//! `dist/keepalived/keepalived.conf`, has the addresses of `rvs lab dr
//! --servers 3`): the real servers then also serve HTTPS on 443 (a
//! certificate made for the lab), DNS on UDP 53 and SMTP on 25, and the
//! demonstration is on FILE's `virtual_server VIP 80`.

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

/// The real servers' other services for `--health-conf`: `name cert
/// key`; HTTPS on 443 (answers `name`), DNS on UDP 53 (any query with at
/// least a header: the same id, QR set, rcode 0), SMTP on 25 (220, HELO
/// or EHLO 250, QUIT 221).
const MORE_SERVERS: &str = "\
import socket, ssl, sys, threading
name, cert, key = sys.argv[1:4]
def listener(port):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('0.0.0.0', port))
    l.listen(64)
    return l
def serve(l, one):
    while True:
        c, _ = l.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()
def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(('0.0.0.0', 53))
    while True:
        q, a = s.recvfrom(2048)
        if len(q) >= 12:
            r = bytearray(q)
            r[2] |= 0x80
            r[3] &= 0xf0
            s.sendto(bytes(r), a)
def smtp(c):
    try:
        c.settimeout(5)
        c.sendall(b'220 ' + name.encode() + b' ESMTP\\r\\n')
        for line in c.makefile('rb'):
            verb = line[:4].upper()
            if verb in (b'HELO', b'EHLO'):
                c.sendall(b'250 ' + name.encode() + b'\\r\\n')
            elif verb == b'QUIT':
                c.sendall(b'221 bye\\r\\n')
                break
            else:
                c.sendall(b'250 ok\\r\\n')
    except Exception:
        pass
    finally:
        c.close()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
def https(c):
    try:
        c.settimeout(5)
        t = ctx.wrap_socket(c, server_side=True)
        req = b''
        while b'\\r\\n\\r\\n' not in req:
            d = t.recv(1024)
            if not d:
                break
            req += d
        body = (name + '\\n').encode()
        t.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n' % len(body) + body)
        t.close()
    except Exception:
        c.close()
threading.Thread(target=dns, daemon=True).start()
threading.Thread(target=serve, args=(listener(25), smtp), daemon=True).start()
serve(listener(443), https)
";

/// Start rs `name`'s [`MORE_SERVERS`] in namespace `rs` (the lab's
/// certificate made at the first) and wait until its HTTPS port answers.
pub(super) fn start_more_servers(lab: &mut Lab, rs: &str, name: &str) -> Result<(), String> {
    let (cert, key) = (lab.dir.join("lab-cert.pem"), lab.dir.join("lab-key.pem"));
    if !cert.exists() {
        // For the lab only: SSL_GET does not verify it (as keepalived's).
        let c = rcgen::generate_simple_self_signed(vec!["www.example.com".into()])
            .map_err(|e| format!("the lab's certificate: {e}"))?;
        std::fs::write(&key, c.key_pair.serialize_pem()).map_err(|e| e.to_string())?;
        std::fs::write(&cert, c.cert.pem()).map_err(|e| e.to_string())?;
    }
    let path = |p: &std::path::Path| {
        p.to_str()
            .map(str::to_string)
            .ok_or("temp path is not UTF-8")
    };
    let (cert, key) = (path(&cert)?, path(&key)?);
    lab.spawn(rs, "python3", &["-c", MORE_SERVERS, name, &cert, &key])?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = in_ns(rs, || {
            Ok(std::net::TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], 443)),
                Duration::from_millis(300),
            )
            .is_ok())
        })?;
        if up {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the HTTPS, DNS and SMTP servers in {rs} did not come up"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Check that `file` parses and has `virtual_server VIP 80` (TCP) with
/// `rip1` port 80 among its real servers and one more: where the lab
/// shows a real server leave and come back. Its real servers on port 80.
fn check_conf(file: &std::path::Path, vip: &str, rips: &[String]) -> Result<Vec<String>, String> {
    use crate::keepalived::conf::{VsAddr, load};
    let (conf, _warnings) = load(file).map_err(|e| e.to_string())?;
    let vip: std::net::IpAddr = vip.parse().map_err(|e| format!("{vip}: {e}"))?;
    let web = conf
        .services
        .iter()
        .find(|v| v.addr == VsAddr::Addr(vip, 80));
    let reals: Vec<String> = web
        .map(|v| {
            v.reals
                .iter()
                .filter(|r| r.port == 80)
                .map(|r| r.addr.to_string())
                .collect()
        })
        .unwrap_or_default();
    if !reals.contains(&rips[0]) || reals.len() < 2 {
        return Err(format!(
            "{}: the lab shows a real server leave and come back on `virtual_server {vip} 80` \
             with real servers {} port 80 and at least one more; this lab's VIP and real \
             servers are {vip} and {} (the example's addresses are those of `rvs lab dr \
             --servers 3`)",
            file.display(),
            rips[0],
            rips.join(" ")
        ));
    }
    Ok(reals)
}

fn state_path(lab: &Lab) -> String {
    lab.dir.join("health.json").to_string_lossy().into_owned()
}

fn log_path(lab: &Lab) -> std::path::PathBuf {
    lab.dir.join("health.log")
}

/// Real servers of the table's `TCP VIP:80` service (its `-> ADDR:PORT`
/// lines) with a weight above 0.
fn in_table(lab: &Lab, director: &str, vip: &str) -> Vec<String> {
    let web = format!("{vip}:80");
    let mut in_web = false;
    lab.adm(director, &["-L", "-n"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let first = w.next()?;
            if first != "->" {
                // A service line (`TCP  VIP:80 wlc`) or a heading.
                in_web = first == "TCP" && w.next() == Some(web.as_str());
                return None;
            }
            in_web.then_some(())?;
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
    vip: &str,
    limit: Duration,
    stop: &AtomicBool,
    done: impl Fn(&[String]) -> bool,
) -> Result<Option<Duration>, String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        check_stop(stop)?;
        if done(&in_table(lab, director, vip)) {
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
    // The real servers to wait for: with the lab's own file every one,
    // with another its web service's.
    let (file, want) = match &o.health_conf {
        Some(f) => (f.clone(), check_conf(f, vip, rips)?),
        None => {
            let file = lab.dir.join("keepalived.conf");
            std::fs::write(&file, conf(o, vip, rips))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            (file, rips.to_vec())
        }
    };
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
    if o.health_conf.is_some() {
        println!(
            "health: rvs health run {} (the demonstration on its virtual_server {vip} 80)",
            file.display()
        );
    } else {
        println!(
            "health: rvs health run {} ({} real servers, HTTP_GET /, {TIMING})",
            file.display(),
            rips.len()
        );
    }
    let all = |t: &[String]| want.iter().all(|r| t.contains(r));
    if wait_table(lab, director, vip, Duration::from_secs(20), stop, all)?.is_none() {
        let log = std::fs::read_to_string(log_path(lab)).unwrap_or_default();
        return Err(format!(
            "rvs health run did not put every real server of {vip}:80 in the table in 20 s:\n{log}"
        ));
    }
    if o.health_conf.is_some() {
        // Every checker's first result (the first checks spread over a
        // second; a check may take its connect_timeout).
        std::thread::sleep(Duration::from_secs(4));
        println!(
            "--- rvs health show (in {director}) ---\n{}",
            show(lab, director)?
        );
    }
    Ok(())
}

/// `rvs health show` of the lab's checker.
fn show(lab: &Lab, director: &str) -> Result<String, String> {
    let rvs = std::env::current_exe().map_err(|e| e.to_string())?;
    let o = Command::new("ip")
        .args(["netns", "exec", director])
        .arg(&rvs)
        .args(["health", "show", "--state", &state_path(lab)])
        .output()
        .map_err(|e| format!("rvs health show: {e}"))?;
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
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
    own_conf: bool,
    stop: &AtomicBool,
) -> Result<String, String> {
    let (victim, vrip) = (&rss[0], rips[0].clone());
    let vip = addr.ip().to_string();
    let vip = vip.as_str();
    let mut out = String::new();
    let server = &mut lab.children[http[0]];
    let _ = server.kill();
    let _ = server.wait();
    let gone = wait_table(lab, director, vip, Duration::from_secs(20), stop, |t| {
        !t.contains(&vrip)
    })?;
    let Some(gone) = gone else {
        return Err(format!(
            "rs1 ({vrip}) still in the table 20 s after its HTTP server stopped:\n{}",
            std::fs::read_to_string(log_path(lab)).unwrap_or_default()
        ));
    };
    out += &format!(
        "health: rs1's HTTP server ({vrip}) stopped; rvs health took it out of the table \
         after {:.1} s ({})\n",
        gone.as_secs_f64(),
        if own_conf {
            format!("at most ~4 s with {TIMING}")
        } else {
            "the file's delay_loop, retry and delay_before_retry".to_string()
        }
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
    let back = wait_table(lab, director, vip, Duration::from_secs(20), stop, |t| {
        t.contains(&vrip)
    })?;
    match back {
        Some(d) => {
            out += &format!(
                "health: rs1's HTTP server started again; back in the table after {:.1} s \
                 (one successful check: at most {} after it answers)\n",
                d.as_secs_f64(),
                if own_conf {
                    "~1 s"
                } else {
                    "the file's delay_loop"
                }
            )
        }
        None => out += "health: rs1 NOT back in the table 20 s after its server started\n",
    }
    // The checker writes its state file about once a second: wait (a
    // little) for the one that has rs1 up again.
    let t0 = Instant::now();
    let show = loop {
        let text = show(lab, director)?;
        let rs1 = text
            .lines()
            .skip_while(|l| !l.starts_with(&format!("VS [{vip}]:tcp:80")))
            .find(|l| l.contains(&format!("RS [{vrip}]:tcp:80")));
        if rs1.is_none_or(|l| !l.contains(" DOWN ")) || t0.elapsed() > Duration::from_secs(3) {
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

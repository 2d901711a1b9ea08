//! `rvs bench http`: HTTP through the VIP, rvs against the proxies.
//!
//! Topology: one bridged segment (a `sw` namespace) with the client
//! (10.8.1.1/24), the director (10.8.1.2/24 and 10.8.2.1/24 on one
//! interface, the VIP 10.8.1.100 on `lo`) and one real server 10.8.2.11/24
//! (`rvs realserver up --vip VIP --tun`: the VIP on `lo`, the ARP sysctls,
//! the IP-in-IP decapsulator) running nginx (two workers, a 13-byte file,
//! keep-alive). Every contender reaches the same single server, so the
//! figures differ only by what sits in the path:
//!
//! * `direct`: the client to the real server's address;
//! * `rvs-dr`, `rvs-nat`, `rvs-tun`: `rvsd --io xdp --fast-path MODE`, the
//!   VIP port 80 with `-g`, `-m`, `-i` (for NAT the real server's replies
//!   route through the director; otherwise they go straight to the
//!   client). MODE is `$RVSD_FAST_PATH` (`off`, `on`, `all`), `on` when it
//!   is unset; with the fast path on, the director's bridge port has GRO on
//!   while these rows run (NAPI mode: a veth takes the frames XDP
//!   redirects into its peer only then);
//! * `haproxy-tcp`: HAProxy 1 thread, `mode tcp`, on VIP:81;
//! * `nginx-stream`: nginx 1 worker, `stream` proxy, on VIP:82.
//!
//! Each is measured with `wrk` (keep-alive, 1 thread, 50 connections) and
//! with `ab` (a new connection per request, concurrency 50): requests per
//! second and latency percentiles (wrk: 50/90/99 %; ab: 50/90/99 % of whole
//! requests, connection included). Full mode: the median of 3 runs (by
//! requests/s) of each; quick mode: one run.

use super::topo::{self, Stop, Topo, addr, adm, run_cmd, veth};
use super::{Opts, Row};
use crate::child::sibling;
use std::time::Duration;

const VIP: &str = "10.8.1.100";
const CLIENT: &str = "10.8.1.1";
const DIP: &str = "10.8.1.2";
const DIP2: &str = "10.8.2.1";
const RIP: &str = "10.8.2.11";
const CONNS: u32 = 50;

/// Figures of one load run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub rps: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub errors: Option<f64>,
}

/// A wrk latency such as `1.23ms`, `850.00us`, `1.01s`, in milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e3)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mul)
}

/// The figures of `wrk --latency` output.
pub fn parse_wrk(out: &str) -> Load {
    let mut l = Load {
        errors: Some(0.0),
        ..Load::default()
    };
    let mut errors = 0.0;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            l.rps = v.trim().parse().ok();
        }
        let mut f = t.split_whitespace();
        match (f.next(), f.next()) {
            (Some("50%"), Some(v)) => l.p50_ms = parse_duration_ms(v),
            (Some("90%"), Some(v)) => l.p90_ms = parse_duration_ms(v),
            (Some("99%"), Some(v)) => l.p99_ms = parse_duration_ms(v),
            _ => {}
        }
        // "Socket errors: connect 0, read 0, write 0, timeout 0" and
        // "Non-2xx or 3xx responses: N".
        if let Some(rest) = t.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    l.errors = Some(errors);
    l
}

/// The figures of `ab` output.
pub fn parse_ab(out: &str) -> Load {
    let mut l = Load::default();
    let mut errors = 0.0;
    for line in out.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests per second:") {
            l.rps = v.split_whitespace().next().and_then(|x| x.parse().ok());
        }
        if let Some(v) = t.strip_prefix("Failed requests:") {
            errors += v.trim().parse::<f64>().unwrap_or(0.0);
        }
        if let Some(v) = t.strip_prefix("Non-2xx responses:") {
            errors += v.trim().parse::<f64>().unwrap_or(0.0);
        }
        let mut f = t.split_whitespace();
        match (f.next(), f.next()) {
            (Some("50%"), Some(v)) => l.p50_ms = v.parse().ok(),
            (Some("90%"), Some(v)) => l.p90_ms = v.parse().ok(),
            (Some("99%"), Some(v)) => l.p99_ms = v.parse().ok(),
            _ => {}
        }
    }
    if l.rps.is_some() {
        l.errors = Some(errors);
    }
    l
}

fn row(name: String, l: Load, note: String) -> Row {
    Row::new("http", name)
        .with("rps", l.rps)
        .with("p50_ms", l.p50_ms)
        .with("p90_ms", l.p90_ms)
        .with("p99_ms", l.p99_ms)
        .with("errors", l.errors)
        .note(note)
}

struct Net {
    client: String,
    dir: String,
    rs: String,
    /// The switch (the bridge and the peers of everyone's `eth0`).
    sw: String,
}

fn build(t: &mut Topo) -> Result<Net, String> {
    let client = t.ns("client")?;
    let dir = t.ns("dir")?;
    let rs = t.ns("rs1")?;
    let sw = t.ns("sw")?;
    run_cmd(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
    run_cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
    for (ns, port) in [(&client, "p-client"), (&dir, "p-dir"), (&rs, "p-rs1")] {
        veth(&sw, port, ns, "eth0")?;
        run_cmd(&["ip", "-n", &sw, "link", "set", port, "master", "br0"])?;
    }
    // Offloads stay at the host's defaults: the client's and the server's
    // TCP checksums reach the director partial, as on any Linux host whose
    // device offloads them, and the director must finish them.
    // The director's peer stays out of NAPI mode (whose 256-frame ring
    // drops bursts) except while rvsd runs with the fast path on, which
    // needs it (rvs_rows).
    addr(&client, &format!("{CLIENT}/24"), "eth0")?;
    addr(&dir, &format!("{DIP}/24"), "eth0")?;
    addr(&dir, &format!("{DIP2}/24"), "eth0")?;
    addr(&dir, &format!("{VIP}/32"), "lo")?;
    addr(&rs, &format!("{RIP}/24"), "eth0")?;
    // The client reaches the VIP through the director, the server directly.
    run_cmd(&[
        "ip",
        "-n",
        &client,
        "route",
        "add",
        &format!("{VIP}/32"),
        "via",
        DIP,
    ])?;
    run_cmd(&[
        "ip",
        "-n",
        &client,
        "route",
        "add",
        "10.8.2.0/24",
        "dev",
        "eth0",
    ])?;
    // The server: default route via the director (NAT replies), the
    // client's segment on-link (direct replies) except during NAT.
    run_cmd(&["ip", "-n", &rs, "route", "add", "default", "via", DIP2])?;
    rs_direct_route(&rs, true)?;
    for ns in [&client, &rs, &dir] {
        for (knob, value) in [
            ("/proc/sys/net/core/somaxconn", "8192"),
            ("/proc/sys/net/ipv4/tcp_max_syn_backlog", "8192"),
            ("/proc/sys/net/ipv4/ip_local_port_range", "1024 65000"),
            ("/proc/sys/net/ipv4/tcp_tw_reuse", "1"),
        ] {
            topo::ns_write(ns, knob, &format!("'{value}'"))?;
        }
    }
    // `rvs realserver up`: the rvs next to this rvs-bench.
    let rvs = sibling("rvs")?;
    let rvs = rvs.to_str().ok_or("rvs path is not UTF-8")?.to_string();
    let state = t.dir.join("rs1.json");
    let state = state.to_str().ok_or("temp path is not UTF-8")?.to_string();
    run_cmd(&[
        "ip",
        "netns",
        "exec",
        &rs,
        &rvs,
        "realserver",
        "up",
        "--vip",
        VIP,
        "--tun",
        "--dev",
        "eth0",
        "--state",
        &state,
    ])?;
    Ok(Net {
        client,
        dir,
        rs,
        sw,
    })
}

fn rs_direct_route(rs: &str, on: bool) -> Result<(), String> {
    if on {
        run_cmd(&[
            "ip",
            "-n",
            rs,
            "route",
            "replace",
            "10.8.1.0/24",
            "dev",
            "eth0",
        ])
        .map(|_| ())
    } else {
        run_cmd(&["ip", "-n", rs, "route", "del", "10.8.1.0/24", "dev", "eth0"]).map(|_| ())
    }
}

fn dir_str(t: &Topo, name: &str) -> Result<String, String> {
    let p = t.dir.join(name);
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| "temp path is not UTF-8".to_string())
}

/// nginx serving `www` on port 80 with `workers` processes.
pub fn nginx_server_conf(dir: &str, workers: u32) -> String {
    format!(
        "worker_processes {workers};\ndaemon off;\npid {dir}/rs.pid;\nerror_log {dir}/rs.err;\n\
         events {{ worker_connections 16384; }}\n\
         http {{\n access_log off;\n keepalive_requests 100000000;\n keepalive_timeout 60;\n\
         client_body_temp_path {dir}/tmp;\n\
         server {{\n  listen 80 backlog=8192 reuseport;\n  root {dir}/www;\n  location / {{ }}\n }}\n}}\n"
    )
}

/// nginx `stream` proxy on `listen` to `upstream`, one worker.
pub fn nginx_stream_conf(dir: &str, module: &str, listen: &str, upstream: &str) -> String {
    format!(
        "load_module {module};\nworker_processes 1;\ndaemon off;\npid {dir}/stream.pid;\n\
         error_log {dir}/stream.err;\nevents {{ worker_connections 16384; }}\n\
         stream {{\n upstream rs {{ server {upstream}; }}\n server {{\n  listen {listen} backlog=8192;\n  proxy_pass rs;\n }}\n}}\n"
    )
}

/// HAProxy in TCP mode on `listen` to `upstream`, one thread.
pub fn haproxy_conf(listen: &str, upstream: &str) -> String {
    format!(
        "global\n  maxconn 8000\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 5s\n  \
         timeout client 30s\n  timeout server 30s\nfrontend f\n  bind {listen}\n  default_backend b\n\
         backend b\n  server s1 {upstream}\n"
    )
}

const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

fn wait_port(n: &Net, ns_is_client: bool, target: &str, stop: &Stop) -> bool {
    let ns = if ns_is_client { &n.client } else { &n.dir };
    let target: std::net::SocketAddr = match target.parse() {
        Ok(a) => a,
        Err(_) => return false,
    };
    topo::wait_for(stop, Duration::from_secs(10), || {
        topo::in_ns(ns, move || {
            Ok(std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)).is_ok())
        })
        .unwrap_or(false)
    })
}

/// One wrk run (keep-alive).
fn wrk(n: &Net, url: &str, seconds: u32) -> Result<Load, String> {
    let out = run_cmd(&[
        "ip",
        "netns",
        "exec",
        &n.client,
        "timeout",
        &format!("{}", seconds + 20),
        "wrk",
        "-t1",
        "-c",
        &CONNS.to_string(),
        "-d",
        &format!("{seconds}s"),
        "--timeout",
        "5s",
        "--latency",
        url,
    ])?;
    Ok(parse_wrk(&out))
}

/// One ab run (a new connection per request).
fn ab(n: &Net, url: &str, seconds: u32) -> Result<Load, String> {
    let out = run_cmd(&[
        "ip",
        "netns",
        "exec",
        &n.client,
        "timeout",
        &format!("{}", seconds + 20),
        "ab",
        "-q",
        "-r",
        "-s",
        "5",
        "-c",
        &CONNS.to_string(),
        "-n",
        "2000000",
        "-t",
        &seconds.to_string(),
        url,
    ])?;
    Ok(parse_ab(&out))
}

/// The median (by requests/s) of `repeats` runs of `f`; an error if every
/// run failed.
fn median_run(
    repeats: u32,
    stop: &Stop,
    mut f: impl FnMut() -> Result<Load, String>,
) -> Result<Load, String> {
    let mut v = Vec::new();
    let mut last_err = String::new();
    for _ in 0..repeats.max(1) {
        topo::check(stop)?;
        match f() {
            Ok(l) if l.rps.is_some() => v.push(l),
            Ok(_) => last_err = "no figures in the tool's output".into(),
            Err(e) => last_err = first_line(&e),
        }
        // Let TIME_WAIT and the director's connection table settle a little.
        std::thread::sleep(Duration::from_millis(300));
    }
    if v.is_empty() {
        return Err(last_err);
    }
    v.sort_by(|a, b| a.rps.unwrap_or(0.0).total_cmp(&b.rps.unwrap_or(0.0)));
    Ok(v[v.len() / 2])
}

/// Measure `url` with wrk and ab from the client; two rows.
fn load(
    n: &Net,
    name: &str,
    url: &str,
    seconds: u32,
    repeats: u32,
    stop: &Stop,
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (tool, l) in [
        ("wrk", median_run(repeats, stop, || wrk(n, url, seconds))),
        ("ab", median_run(repeats, stop, || ab(n, url, seconds))),
    ] {
        topo::check(stop)?;
        match l {
            Ok(l) => rows.push(row(format!("{tool} {name}"), l, String::new())),
            Err(e) => rows.push(row(format!("{tool} {name}"), Load::default(), e)),
        }
    }
    Ok(rows)
}

/// The line of a server's log that says why it did not start: the first
/// alert or emergency, else the last line.
pub fn why_line(log: &str) -> String {
    let l = log
        .lines()
        .find(|l| l.contains("ALERT") || l.contains("[emerg]"))
        .or_else(|| log.lines().rfind(|l| !l.trim().is_empty()))
        .unwrap_or("no log");
    first_line(l)
}

fn first_line(e: &str) -> String {
    e.lines().next().unwrap_or("").chars().take(160).collect()
}

fn unavailable(name: &str, why: &str) -> Vec<Row> {
    ["wrk", "ab"]
        .iter()
        .map(|tool| {
            row(
                format!("{tool} {name}"),
                Load::default(),
                format!("unavailable: {why}"),
            )
        })
        .collect()
}

/// rvsd's `--fast-path` for the rvs rows: `$RVSD_FAST_PATH` when it is
/// `off`, `on` or `all`, else `on`.
pub fn fast_path_mode(env: Option<&str>) -> &'static str {
    match env {
        Some("off") => "off",
        Some("all") => "all",
        _ => "on",
    }
}

/// What this family changes from the host's defaults, printed with its
/// output.
pub const SETTINGS: &str = "settings changed for this run (http): somaxconn and \
tcp_max_syn_backlog 8192, ip_local_port_range 1024-65000, tcp_tw_reuse 1 in the client, \
director and server namespaces (connection churn of the load tools); GRO on the switch's \
port to the director while rvsd runs with its fast path (NAPI mode, so the veth takes \
frames XDP redirects); offloads at the host's defaults";

/// The rvs rows: rvsd --io xdp, DR, NAT, TUN in turn.
fn rvs_rows(
    t: &mut Topo,
    n: &Net,
    seconds: u32,
    repeats: u32,
    stop: &Stop,
) -> Result<Vec<Row>, String> {
    let rvsd = sibling("rvsd")?;
    let rvsd = rvsd.to_str().ok_or("rvsd path is not UTF-8")?.to_string();
    let fast = fast_path_mode(std::env::var("RVSD_FAST_PATH").ok().as_deref());
    if fast != "off" {
        topo::gro_on(&n.sw, "p-dir")?;
    }
    let pid = t.spawn(
        &n.dir,
        "rvsd.log",
        &rvsd,
        &["--io", "xdp", "--interface", "eth0", "--fast-path", fast],
    )?;
    let res = rvs_rows_with(t, n, pid, seconds, repeats, stop);
    if fast != "off" {
        let sw = n.sw.clone();
        topo::in_ns(&sw, || {
            rvs_io::packet::set_gro("p-dir", false).map_err(|e| format!("GRO off on p-dir: {e}"))
        })?;
    }
    res
}

/// [`rvs_rows`] once rvsd (`pid`) is started: it is stopped at the end.
fn rvs_rows_with(
    t: &mut Topo,
    n: &Net,
    pid: u32,
    seconds: u32,
    repeats: u32,
    stop: &Stop,
) -> Result<Vec<Row>, String> {
    if !topo::wait_for(stop, Duration::from_secs(10), || {
        adm(&n.dir, &["-L", "-n"]).is_ok()
    }) || t.exited(pid)
    {
        let l = t.log("rvsd.log");
        t.stop(pid);
        return Err(format!("rvsd --io xdp did not come up: {}", l.trim()));
    }
    let res = (|| {
        let mut rows = Vec::new();
        let svc = format!("{VIP}:80");
        let url = format!("http://{VIP}/");
        for (mode, flag) in [("dr", "-g"), ("nat", "-m"), ("tun", "-i")] {
            topo::check(stop)?;
            adm(&n.dir, &["-C"])?;
            adm(&n.dir, &["-A", "-t", &svc, "-s", "rr"])?;
            adm(&n.dir, &["-a", "-t", &svc, "-r", RIP, flag, "-w", "1"])?;
            rs_direct_route(&n.rs, mode != "nat")?;
            // Until the data plane takes the VIP's packets the director's
            // own stack answers (with a reset): wait for a real answer.
            let ok = topo::wait_for(stop, Duration::from_secs(10), || {
                run_cmd(&[
                    "ip",
                    "netns",
                    "exec",
                    &n.client,
                    "curl",
                    "-sf",
                    "-m",
                    "2",
                    "-o",
                    "/dev/null",
                    &url,
                ])
                .is_ok()
            });
            if ok {
                rows.extend(load(
                    n,
                    &format!("rvs-{mode}"),
                    &url,
                    seconds,
                    repeats,
                    stop,
                )?);
            } else {
                rows.extend(unavailable(
                    &format!("rvs-{mode}"),
                    "no answer through the VIP",
                ));
            }
        }
        rs_direct_route(&n.rs, true)?;
        adm(&n.dir, &["-C"])?;
        Ok(rows)
    })();
    t.stop(pid);
    super::print_worker_summary("http, rvsd --io xdp", &t.log("rvsd.log"));
    res.map_err(|e: String| format!("{e}\nrvsd log:\n{}", t.log("rvsd.log").trim()))
}

/// Run the family.
pub fn run(o: &Opts, stop: &Stop) -> Result<Vec<Row>, String> {
    sibling("rvsd")?;
    sibling("rvsadm")?;
    sibling("rvs")?;
    let seconds = o.seconds();
    let repeats = o.repeats();
    let mut t = Topo::new("http")?;
    let n = build(&mut t)?;
    println!("{SETTINGS}");
    let d = dir_str(&t, "")?;
    let d = d.trim_end_matches('/').to_string();
    for sub in ["www", "tmp"] {
        std::fs::create_dir_all(t.dir.join(sub)).map_err(|e| e.to_string())?;
    }
    std::fs::write(t.dir.join("www/index.html"), "hello, rvs!\n").map_err(|e| e.to_string())?;
    let conf = t.dir.join("rs.conf");
    std::fs::write(&conf, nginx_server_conf(&d, 2)).map_err(|e| e.to_string())?;
    let conf = dir_str(&t, "rs.conf")?;
    let rs_ns = n.rs.clone();
    t.spawn(&rs_ns, "rs.log", "nginx", &["-p", &d, "-c", &conf])?;
    if !wait_port(&n, true, &format!("{RIP}:80"), stop) {
        return Err(format!(
            "nginx in the real server did not come up: {}{}",
            t.log("rs.log").trim(),
            t.log("rs.err").trim()
        ));
    }
    let mut rows = Vec::new();
    rows.extend(load(
        &n,
        "direct",
        &format!("http://{RIP}/"),
        seconds,
        repeats,
        stop,
    )?);

    match rvs_rows(&mut t, &n, seconds, repeats, stop) {
        Ok(r) => rows.extend(r),
        Err(e) => {
            eprintln!("rvs bench http: rvs: {e}");
            for m in ["dr", "nat", "tun"] {
                rows.extend(unavailable(&format!("rvs-{m}"), &first_line(&e)));
            }
        }
    }

    // HAProxy, TCP mode.
    let hconf = t.dir.join("haproxy.cfg");
    std::fs::write(
        &hconf,
        haproxy_conf(&format!("{VIP}:81"), &format!("{RIP}:80")),
    )
    .map_err(|e| e.to_string())?;
    let hconf = dir_str(&t, "haproxy.cfg")?;
    let dir_ns = n.dir.clone();
    match t.spawn(&dir_ns, "haproxy.log", "haproxy", &["-db", "-f", &hconf]) {
        Ok(pid) => {
            if wait_port(&n, true, &format!("{VIP}:81"), stop) {
                rows.extend(load(
                    &n,
                    "haproxy-tcp",
                    &format!("http://{VIP}:81/"),
                    seconds,
                    repeats,
                    stop,
                )?);
            } else {
                rows.extend(unavailable("haproxy-tcp", &why_line(&t.log("haproxy.log"))));
            }
            t.stop(pid);
        }
        Err(e) => rows.extend(unavailable("haproxy-tcp", &e)),
    }

    // nginx stream.
    if std::path::Path::new(STREAM_MODULE).exists() {
        let sconf = t.dir.join("stream.conf");
        std::fs::write(
            &sconf,
            nginx_stream_conf(
                &d,
                STREAM_MODULE,
                &format!("{VIP}:82"),
                &format!("{RIP}:80"),
            ),
        )
        .map_err(|e| e.to_string())?;
        let sconf = dir_str(&t, "stream.conf")?;
        match t.spawn(&dir_ns, "stream.log", "nginx", &["-p", &d, "-c", &sconf]) {
            Ok(pid) => {
                if wait_port(&n, true, &format!("{VIP}:82"), stop) {
                    rows.extend(load(
                        &n,
                        "nginx-stream",
                        &format!("http://{VIP}:82/"),
                        seconds,
                        repeats,
                        stop,
                    )?);
                } else {
                    let why = format!("{}{}", t.log("stream.log"), t.log("stream.err"));
                    rows.extend(unavailable("nginx-stream", &why_line(&why)));
                }
                t.stop(pid);
            }
            Err(e) => rows.extend(unavailable("nginx-stream", &e)),
        }
    } else {
        rows.extend(unavailable(
            "nginx-stream",
            "no ngx_stream_module (apt-get install libnginx-mod-stream)",
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod fast_path_tests {
    use super::fast_path_mode;

    #[test]
    fn fast_path_mode_follows_the_environment() {
        assert_eq!(fast_path_mode(None), "on");
        assert_eq!(fast_path_mode(Some("off")), "off");
        assert_eq!(fast_path_mode(Some("all")), "all");
        assert_eq!(fast_path_mode(Some("on")), "on");
        // rvsd refuses what it does not know; the bench takes the default.
        assert_eq!(fast_path_mode(Some("maybe")), "on");
    }
}

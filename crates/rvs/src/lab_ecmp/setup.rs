//! The lab's BIRD configurations (the ECMP router, each director) and
//! its construction: namespaces, links, rvsd, BIRD and `rvs announce` on
//! every director, the real servers; then the requests and the report.

use super::failover::failover;
use super::observe::{conns_by_director, get, wait_hops};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::child::sibling;
use crate::lab::{ECHO_SERVER, HTTP_SERVER};
use crate::netns::{addr as ip_addr_add, gro_on, run_cmd};

use super::{
    Director, ECHO_PORT, FRR_DIR, Lab, Opts, ROUTER_LAN, Speaker, VIP, check_stop, exec, s, sysctl,
};

fn router_conf(n: u8, speaker: Speaker) -> String {
    // With FRR's bfdd the first BFD session was seen to go down right
    // after BGP had come up (why was not established), and BIRD then holds
    // the session in its error wait (60 s by default): 1 s instead, and
    // the fast rate before the session is up (BIRD's idle rate is 1 s).
    let (idle, wait) = match speaker {
        Speaker::Bird => ("", ""),
        Speaker::Frr => (" idle tx interval 100 ms;", " error wait time 1, 5;"),
    };
    let mut c = format!(
        "log stderr all;\n\
         debug protocols {{ states }};\n\
         router id {ROUTER_LAN};\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{ merge paths on; ipv4 {{ export where source = RTS_BGP; import none; }}; }}\n\
         protocol bfd {{ debug {{ states, events }}; interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3;{idle} }}; }}\n\
         template bgp director {{ local {ROUTER_LAN} as 65000; hold time 3; keepalive time 1; \
         connect retry time 1;{wait} bfd on; ipv4 {{ import all; export none; }}; }}\n"
    );
    for i in 1..=n {
        c.push_str(&format!(
            "protocol bgp d{i} from director {{ neighbor 10.6.0.{} as 65001; }}\n",
            10 + i
        ));
    }
    c
}

/// `dist/bgp/frr-director.conf` with the lab's addresses: what the test
/// of `--speaker frr` runs is the file shipped.
const FRR_CONF: &str = include_str!("../../../../dist/bgp/frr-director.conf");

fn frr_conf(ip: &str) -> String {
    // Its daemons' messages in the lab's logs.
    let log = "log stdout informational\n";
    log.to_string()
        + &FRR_CONF
            .replace("198.51.100.11", ip)
            .replace("198.51.100.1", ROUTER_LAN)
            .replace("192.0.2.100", VIP)
}

/// Wait for the unix sockets `paths` (FRR's daemons create them when
/// ready).
fn wait_sockets(paths: &[String], what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !paths.iter().all(|p| std::path::Path::new(p).exists()) {
        if Instant::now() > deadline {
            return Err(format!("{what}: no {paths:?} after 15 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// FRR on director `i`: zebra, then staticd (unused, as a stock
/// installation runs it), bgpd and bfdd (their own pid
/// files and sockets under `run`, owned by the frr user the daemons run
/// as), then the configuration through vtysh, as `vtysh -b` loads
/// frr.conf at boot. The daemons go to the last director as they start
/// (stopped with it); returns the announce and withdraw commands.
fn start_frr(
    lab: &mut Lab,
    ns: &str,
    i: u8,
    ip: &str,
    run: &str,
) -> Result<(String, String), String> {
    std::fs::create_dir_all(run).map_err(|e| format!("{run}: {e}"))?;
    run_cmd(&["chown", "frr:frr", run])?;
    let conf = s(&lab.dir.join(format!("d{i}-frr.conf")))?;
    std::fs::write(&conf, frr_conf(ip)).map_err(|e| e.to_string())?;
    let empty = s(&lab.dir.join("frr-empty.conf"))?;
    std::fs::write(&empty, "").map_err(|e| e.to_string())?;
    let zserv = format!("{run}/zserv.api");
    for daemon in ["zebra", "staticd", "bgpd", "bfdd"] {
        let prog = format!("{FRR_DIR}/{daemon}");
        let pid = format!("{run}/{daemon}.pid");
        let c = lab.spawn_speaker(
            ns,
            &[
                &prog,
                "-f",
                &empty,
                "-i",
                &pid,
                "--vty_socket",
                run,
                "-z",
                &zserv,
            ],
            &format!("d{i}-{daemon}.log"),
        )?;
        if let Some(d) = lab.directors.last_mut() {
            d.speaker.push(c);
        }
        if daemon == "zebra" {
            wait_sockets(std::slice::from_ref(&zserv), "zebra")?;
        }
    }
    let vty: Vec<String> = ["zebra", "staticd", "bgpd", "bfdd"]
        .iter()
        .map(|d| format!("{run}/{d}.vty"))
        .collect();
    wait_sockets(&vty, "FRR")?;
    exec(ns, &["vtysh", "--vty_socket", run, "-f", &conf])?;
    let vtysh = |cmd: &str| {
        format!(
            "vtysh --vty_socket {run} -c 'conf t' -c 'router bgp 65001' \
             -c 'address-family ipv4 unicast' -c '{cmd} {VIP}/32'"
        )
    };
    Ok((vtysh("network"), vtysh("no network")))
}

fn director_conf(ip: &str) -> String {
    format!(
        "log stderr all;\n\
         router id {ip};\n\
         protocol device {{ }}\n\
         protocol bfd {{ debug {{ states, events }}; interface \"*\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }}; }}\n\
         protocol static vip {{ disabled yes; ipv4; route {VIP}/32 blackhole; }}\n\
         protocol bgp uplink {{ local {ip} as 65001; neighbor {ROUTER_LAN} as 65000; hold time 3; \
         keepalive time 1; connect retry time 1; bfd on; \
         ipv4 {{ import none; export where proto = \"vip\"; next hop self; }}; }}\n"
    )
}

pub(super) fn build_and_run(
    lab: &mut Lab,
    prefix: &str,
    o: &Opts,
    stop: &AtomicBool,
) -> Result<String, String> {
    let client = lab.ns(prefix, "client")?;
    let router = lab.ns(prefix, "router")?;
    let sw = lab.ns(prefix, "switch")?;
    crate::netns::veth(&client, "eth0", &router, "eth0")?;
    ip_addr_add(&client, "10.6.1.2/24", "eth0")?;
    ip_addr_add(&router, "10.6.1.1/24", "eth0")?;
    run_cmd(&[
        "ip", "-n", &client, "route", "add", "default", "via", "10.6.1.1",
    ])?;
    run_cmd(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
    run_cmd(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
    let attach = |ns: &str, port: &str, addr: &str, dev: &str| -> Result<(), String> {
        crate::netns::veth(&sw, port, ns, dev)?;
        run_cmd(&["ip", "-n", &sw, "link", "set", port, "master", "br0"])?;
        ip_addr_add(ns, &format!("{addr}/24"), dev)
    };
    attach(&router, "p-router", ROUTER_LAN, "eth1")?;
    sysctl(&router, "/proc/sys/net/ipv4/ip_forward", "1")?;
    sysctl(&router, "/proc/sys/net/ipv4/fib_multipath_hash_policy", "1")?;
    check_stop(stop)?;

    // Real servers.
    let rvs = s(&std::env::current_exe().map_err(|e| e.to_string())?)?;
    let mut rips = Vec::new();
    let mut rss = Vec::new();
    // With --add-server, one more real server, added to the services
    // during --failover.
    for i in 1..=o.servers + u8::from(o.add_server) {
        let rs = lab.ns(prefix, &format!("rs{i}"))?;
        let rip = format!("10.6.0.{}", 20 + i);
        attach(&rs, &format!("p-rs{i}"), &rip, "eth0")?;
        run_cmd(&[
            "ip", "-n", &rs, "route", "add", "default", "via", ROUTER_LAN,
        ])?;
        let state = s(&lab.dir.join(format!("rs{i}.json")))?;
        exec(
            &rs,
            &[&rvs, "realserver", "up", "--vip", VIP, "--state", &state],
        )?;
        let name = format!("rs{i}");
        let www = lab.dir.join(&name);
        std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
        std::fs::write(www.join("index.html"), format!("{name} {rip}\n"))
            .map_err(|e| e.to_string())?;
        let www = s(&www)?;
        let http = lab.spawn(
            &rs,
            &["python3", "-c", HTTP_SERVER, &www],
            &format!("{name}-http.log"),
        )?;
        lab.children.push(http);
        let echo = lab.spawn(
            &rs,
            &["python3", "-c", ECHO_SERVER, &name],
            &format!("{name}-echo.log"),
        )?;
        lab.children.push(echo);
        rips.push(rip);
        rss.push(rs);
    }
    if o.add_server {
        rips.pop();
    }

    // Router's BIRD.
    let rconf = lab.dir.join("router-bird.conf");
    std::fs::write(&rconf, router_conf(o.directors, o.speaker)).map_err(|e| e.to_string())?;
    let rsock = s(&lab.dir.join("router-bird.ctl"))?;
    let rbird = lab.spawn_speaker(
        &router,
        &["bird", "-f", "-c", &s(&rconf)?, "-s", &rsock],
        "router-bird.log",
    )?;
    lab.children.push(rbird);

    // Directors.
    let rvsd = s(&sibling("rvsd")?)?;
    let rvsadm = s(&sibling("rvsadm")?)?;
    for i in 1..=o.directors {
        check_stop(stop)?;
        let ns = lab.ns(prefix, &format!("d{i}"))?;
        let ip = format!("10.6.0.{}", 10 + i);
        attach(&ns, &format!("p-d{i}"), &ip, "eth0")?;
        // The XDP fast path redirects into the switch port: NAPI on it.
        gro_on(&sw, &format!("p-d{i}"))?;
        run_cmd(&[
            "ip", "-n", &ns, "route", "add", "default", "via", ROUTER_LAN,
        ])?;
        ip_addr_add(&ns, &format!("{VIP}/32"), "lo")?;
        // The VIP is the director's own address too: with rvsd gone
        // (killed, crashed) and before the router has moved its flows, the
        // packets still sent here would reach the kernel's stack, which
        // answers a mid-flow segment with a RST (measured: about a fifth
        // of the dead director's connections, with RVSD_FAST_PATH=off).
        // Dropped instead, they are retransmitted once the router has
        // moved the flow. rvsd takes its packets before netfilter (XDP).
        exec(
            &ns,
            &[
                "nft",
                &format!(
                    "add table ip rvslab ; add chain ip rvslab input {{ type filter hook input \
                     priority 0 ; }} ; add rule ip rvslab input iifname \"eth0\" ip daddr {VIP} drop"
                ),
            ],
        )?;
        let mut args = vec![rvsd.as_str(), "--interface", "eth0"];
        if let Some(io) = &o.io {
            args.extend(["--io", io]);
        }
        let child = lab.spawn(&ns, &args, &format!("d{i}-rvsd.log"))?;
        // BIRD's control socket, or FRR's directory of sockets.
        let sock = s(&lab.dir.join(match o.speaker {
            Speaker::Bird => format!("d{i}-bird.ctl"),
            Speaker::Frr => format!("d{i}-frr"),
        }))?;
        let d = Director {
            ns: ns.clone(),
            ip: ip.clone(),
            rvsd: Some(child),
            speaker: Vec::new(),
            announce: None,
            sock,
            drain_file: s(&lab.dir.join(format!("d{i}.drain")))?,
            state_file: s(&lab.dir.join(format!("d{i}.state")))?,
        };
        lab.directors.push(d);
        let deadline = Instant::now() + Duration::from_secs(15);
        while exec(&ns, &[&rvsadm, "-L", "-n"]).is_err() {
            check_stop(stop)?;
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(lab.dir.join(format!("d{i}-rvsd.log")))
                    .unwrap_or_default();
                return Err(format!("rvsd in {ns} did not come up:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for port in ["80", "9000"] {
            let svc = format!("{VIP}:{port}");
            exec(
                &ns,
                &[&rvsadm, "-A", "-t", &svc, "-s", "mh", "-b", "mh-port"],
            )?;
            for rip in &rips {
                exec(
                    &ns,
                    &[&rvsadm, "-a", "-t", &svc, "-r", rip, "-g", "-w", "1"],
                )?;
            }
        }
        if !o.no_sloppy {
            exec(&ns, &[&rvs, "sysctl", "-w", "net.ipv4.vs.sloppy_tcp=1"])?;
        }
        if o.sync {
            // Full mesh: send this director's connections, learn everyone
            // else's (syncid 0 accepts every syncid; multicast loop is off,
            // so no director hears itself).
            exec(
                &ns,
                &[
                    &rvsadm,
                    "--start-daemon",
                    "master",
                    "--mcast-interface",
                    "eth0",
                ],
            )?;
            exec(
                &ns,
                &[
                    &rvsadm,
                    "--start-daemon",
                    "backup",
                    "--mcast-interface",
                    "eth0",
                    "--syncid",
                    "0",
                ],
            )?;
        }
        let d = lab.directors.last().unwrap();
        let (sock, drain, state) = (d.sock.clone(), d.drain_file.clone(), d.state_file.clone());
        let (ann, wd) = match o.speaker {
            Speaker::Bird => {
                let conf = lab.dir.join(format!("d{i}-bird.conf"));
                std::fs::write(&conf, director_conf(&ip)).map_err(|e| e.to_string())?;
                let bird = lab.spawn_speaker(
                    &ns,
                    &["bird", "-f", "-c", &s(&conf)?, "-s", &sock],
                    &format!("d{i}-bird.log"),
                )?;
                lab.directors.last_mut().unwrap().speaker.push(bird);
                (
                    format!("birdc -s {sock} enable vip"),
                    format!("birdc -s {sock} disable vip"),
                )
            }
            Speaker::Frr => start_frr(lab, &ns, i, &ip, &sock)?,
        };
        let svc = format!("{VIP}:80");
        let announce = lab.spawn(
            &ns,
            &[
                &rvs,
                "announce",
                "-t",
                &svc,
                "--announce-cmd",
                &ann,
                "--withdraw-cmd",
                &wd,
                "--interval",
                "100",
                "--drain-file",
                &drain,
                "--state-file",
                &state,
            ],
            &format!("d{i}-announce.log"),
        )?;
        lab.directors.last_mut().unwrap().announce = Some(announce);
    }
    let all: Vec<String> = lab.directors.iter().map(|d| d.ip.clone()).collect();
    let up = wait_hops(&router, &all, Duration::from_secs(60)).map_err(|e| {
        let logs: String = (1..=o.directors)
            .map(|i| {
                let f = |n: &str| std::fs::read_to_string(lab.dir.join(n)).unwrap_or_default();
                format!(
                    "--- d{i} announce:\n{}--- d{i} bird:\n{}--- d{i} bgpd:\n{}--- d{i} bfdd:\n{}",
                    f(&format!("d{i}-announce.log")),
                    f(&format!("d{i}-bird.log")),
                    f(&format!("d{i}-bgpd.log")),
                    f(&format!("d{i}-bfdd.log"))
                )
            })
            .collect();
        format!(
            "{e}\n{logs}--- router bird:\n{}",
            std::fs::read_to_string(lab.dir.join("router-bird.log")).unwrap_or_default()
        )
    })?;
    println!(
        "rvs lab ecmp: client 10.6.1.2 -> router 10.6.1.1 (BIRD, ECMP, L4 hash) -> {} director(s) {} \
         (rvsd DR mh-port sloppy_tcp={} + {} + rvs announce) -> {} real server(s) {}; VIP {VIP}:80 and :{ECHO_PORT}",
        o.directors,
        all.join(" "),
        u8::from(!o.no_sloppy),
        o.speaker.name(),
        o.servers,
        rips.join(" ")
    );
    println!(
        "router: route to {VIP} via {} after {} ms",
        all.join(", "),
        up.as_millis()
    );

    // Requests.
    let mut answers = Vec::new();
    let mut failed = 0;
    for n in 1..=o.requests {
        check_stop(stop)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match get(&client, Duration::from_secs(3)) {
                Ok(a) => {
                    answers.push((n, a));
                    break;
                }
                Err(e) if n == 1 && Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    println!("request {n:>3}: FAILED ({e})");
                    failed += 1;
                    break;
                }
            }
        }
    }
    let by_port = conns_by_director(&lab.directors, 80);
    let mut per_dir: BTreeMap<String, u32> = BTreeMap::new();
    for (n, (port, body)) in &answers {
        let d = match by_port.get(port).map(Vec::as_slice) {
            Some([i]) => format!("d{}", i + 1),
            Some(v) => format!("{:?}", v.iter().map(|i| i + 1).collect::<Vec<_>>()),
            None => "d?".into(),
        };
        println!("request {n:>3}: client port {port:>5} -> director {d} -> {body}");
        *per_dir.entry(d).or_default() += 1;
    }
    let spread: Vec<String> = per_dir.iter().map(|(d, c)| format!("{d}: {c}")).collect();
    println!(
        "{}/{} requests answered; by director: {}",
        answers.len(),
        o.requests,
        spread.join(", ")
    );
    if failed > 0 {
        return Err(format!("{failed} of {} requests failed", o.requests));
    }

    if o.failover && o.directors >= 2 {
        failover(lab, &client, &router, o, stop)?;
        // What the router's BIRD saw (sessions and BFD: a session expired
        // and why): whether a step took more than the director it was
        // about.
        let log = std::fs::read_to_string(lab.dir.join("router-bird.log")).unwrap_or_default();
        for l in log.lines().filter(|l| {
            ["<ERR>", "<WARN>", "<RMT>", "State changed", "expired"]
                .iter()
                .any(|k| l.contains(k))
        }) {
            println!("router BIRD: {l}");
        }
    }

    let mut out = String::new();
    if o.keep {
        out.push_str("--- kept running; enter a namespace with:\n");
        for ns in &lab.namespaces {
            out.push_str(&format!("  ip netns exec {ns} bash\n"));
        }
        out.push_str(&format!(
            "router: birdc -s {rsock} show route; logs in {}\nremove it all with: rvs lab clean\n",
            lab.dir.display()
        ));
    }
    Ok(out)
}

//! `rvs lab ha`: an active and a backup director, the VIP moved by
//! keepalived (VRRP only), the connection table copied by the IPVS sync
//! protocol (`dist/keepalived/rvs-sync-notify` switches the sync daemons
//! with the VRRP state), so that a failover keeps established connections.
//!
//! * DR: one bridged segment 10.7.0.0/24: client .1, directors A .2 and
//!   B .3, real servers .11 and .12 (the VIP 10.7.0.100 on their `lo`, by
//!   `rvs realserver up`). keepalived puts the VIP on the master's eth0.
//! * NAT (`--nat`): the client's segment 10.7.0.0/24 (client .1, A .2,
//!   B .3, the VIP on the master's eth0) and the servers' 10.7.1.0/24 (A
//!   .2, B .3, real servers .11 and .12 whose gateway .1 is keepalived's
//!   second address: it moves with the VIP).
//!
//! Both directors run rvsd with the same table (VIP:9000, a line echo, rr),
//! `sync_threshold` "3 0" and `sync_refresh_period` 2 (each connection sent
//! again every 2 s of its activity, so that a returning director learns
//! quiet connections too), and keepalived (A priority 150, B 100, `preempt_delay 10`). The lab opens
//! `--conns` long-lived connections through A, lets B learn them, then
//! fails A (keepalived stopped, rvsd killed), reports how long the client
//! waited and how many connections were lost, brings A back (it learns the
//! connections as a backup, then takes over) and reports again. `--keep`
//! leaves it running afterwards.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::child::sibling;
use crate::lab::{ECHO_SERVER, PREFIX};
use crate::netns::{addr as ip_addr_add, gro_on, in_ns, remove_ns, run_cmd, veth};

const VIP: &str = "10.7.0.100";
const PORT: u16 = 9000;

/// The notify script keepalived runs (the one `dist/` ships).
const NOTIFY: &str = include_str!("../../../dist/keepalived/rvs-sync-notify");

/// `rvs lab ha` options.
#[derive(Debug, Clone)]
pub struct Opts {
    /// NAT instead of DR.
    pub nat: bool,
    /// Long-lived connections.
    pub conns: u32,
    /// Leave it running.
    pub keep: bool,
}

struct Lab {
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
    keep: bool,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.namespaces {
            remove_ns(ns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn ns(&mut self, prefix: &str, short: &str) -> Result<String, String> {
        let name = format!("{prefix}{short}");
        run_cmd(&["ip", "netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run_cmd(&["ip", "-n", &name, "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// Start `args` in `ns` with its output in `log`; its index.
    fn spawn(&mut self, ns: &str, args: &[&str], log: &str) -> Result<usize, String> {
        let log = File::create(self.dir.join(log)).map_err(|e| e.to_string())?;
        let c = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .env_remove("RVS_SOCKET")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", args[0]))?;
        self.children.push(c);
        Ok(self.children.len() - 1)
    }

    fn path(&self, name: &str) -> Result<String, String> {
        self.dir
            .join(name)
            .to_str()
            .map(str::to_string)
            .ok_or_else(|| "temp path is not UTF-8".into())
    }
}

fn exec(ns: &str, args: &[&str]) -> Result<String, String> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    run_cmd(&v)
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<Duration, String> {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > limit {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(t0.elapsed())
}

/// A long-lived connection of the client.
struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    server: Option<String>,
    lost: bool,
}

/// One line through every connection still alive (each must answer from
/// the server it started on); those that fail are lost.
fn ping(conns: &mut [Conn], seq: u32) {
    for c in conns.iter_mut().filter(|c| !c.lost) {
        let mut line = String::new();
        let ok = writeln!(c.w, "ping {seq}").is_ok() && c.r.read_line(&mut line).is_ok();
        let (who, text) = line.trim_end().split_once(' ').unwrap_or(("", ""));
        let same = c.server.get_or_insert_with(|| who.to_string()) == who;
        if !ok || text != format!("ping {seq}") || !same {
            c.lost = true;
        }
    }
}

fn lost(conns: &[Conn]) -> usize {
    conns.iter().filter(|c| c.lost).count()
}

fn keepalived_conf(o: &Opts, notify: &str, rvsadm: &str, priority: u8) -> String {
    let mut addrs = format!("    {VIP}/32 dev eth0\n");
    if o.nat {
        addrs.push_str("    10.7.1.1/32 dev eth1\n");
    }
    format!(
        "global_defs {{\n  script_user root\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
         priority {priority}\n  advert_int 1\n  preempt_delay 10\n  \
         virtual_ipaddress {{\n{addrs}  }}\n  \
         notify \"{notify} --ipvsadm {rvsadm} eth0 51\"\n}}\n"
    )
}

/// Whether `-L --daemon` in `ns` lists a `role` daemon.
fn has_daemon(rvsadm: &str, ns: &str, role: &str) -> bool {
    exec(ns, &[rvsadm, "-L", "--daemon"]).is_ok_and(|o| o.contains(&format!("{role} sync daemon")))
}

/// Connections `ns`'s rvsd holds with origin SYNC.
fn synced(rvs: &str, ns: &str) -> usize {
    exec(ns, &[rvs, "proc", "ip_vs_conn_sync"])
        .map(|o| o.lines().filter(|l| l.contains(" SYNC")).count())
        .unwrap_or(0)
}

/// `rvs lab ha`.
pub fn run(o: &Opts) -> Result<String, String> {
    let rvsd = sibling("rvsd")?;
    let rvsadm = sibling("rvsadm")?;
    if Command::new("keepalived")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        return Err(
            "keepalived not available: apt-get install --no-install-recommends keepalived \
             (its Recommends, the kernel's ipvsadm, would take /usr/sbin/ipvsadm)"
                .into(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| e.to_string())?;
    }
    let prefix = format!("{PREFIX}{}-", std::process::id());
    let dir = std::env::temp_dir().join(prefix.trim_end_matches('-'));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut lab = Lab {
        namespaces: Vec::new(),
        children: Vec::new(),
        dir,
        keep: false,
    };
    let s = |p: PathBuf| p.to_str().map(str::to_string).ok_or("path is not UTF-8");
    let (rvsd, rvsadm) = (s(rvsd)?, s(rvsadm)?);
    let res = build_and_run(&mut lab, &prefix, o, &rvsd, &rvsadm, &stop);
    if o.keep && res.is_ok() {
        lab.keep = true;
        let mut out = res?;
        out.push_str(&format!(
            "\nkept: namespaces {}; enter one with `ip netns exec NAME bash`; files in {}; \
             remove it all with `rvs lab clean`\n",
            lab.namespaces.join(", "),
            lab.dir.display()
        ));
        return Ok(out);
    }
    res
}

fn build_and_run(
    lab: &mut Lab,
    prefix: &str,
    o: &Opts,
    rvsd: &str,
    rvsadm: &str,
    stop: &AtomicBool,
) -> Result<String, String> {
    let rvs = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .to_str()
        .ok_or("path is not UTF-8")?
        .to_string();
    let mut out = String::new();
    let sw0 = lab.ns(prefix, "sw0")?;
    let client = lab.ns(prefix, "client")?;
    let a = lab.ns(prefix, "a")?;
    let b = lab.ns(prefix, "b")?;
    run_cmd(&["ip", "-n", &sw0, "link", "add", "br0", "type", "bridge"])?;
    run_cmd(&["ip", "-n", &sw0, "link", "set", "br0", "up"])?;
    let attach = |sw: &str, br: &str, ns: &str, port: &str, dev: &str, addr: &str| {
        veth(sw, port, ns, dev)?;
        run_cmd(&["ip", "-n", sw, "link", "set", port, "master", br])?;
        ip_addr_add(ns, addr, dev)
    };
    attach(&sw0, "br0", &client, "pc", "eth0", "10.7.0.1/24")?;
    attach(&sw0, "br0", &a, "pa0", "eth0", "10.7.0.2/24")?;
    attach(&sw0, "br0", &b, "pb0", "eth0", "10.7.0.3/24")?;
    gro_on(&sw0, "pa0")?;
    gro_on(&sw0, "pb0")?;
    let (server_sw, server_br, net) = if o.nat {
        let sw1 = lab.ns(prefix, "sw1")?;
        run_cmd(&["ip", "-n", &sw1, "link", "add", "br1", "type", "bridge"])?;
        run_cmd(&["ip", "-n", &sw1, "link", "set", "br1", "up"])?;
        attach(&sw1, "br1", &a, "pa1", "eth1", "10.7.1.2/24")?;
        attach(&sw1, "br1", &b, "pb1", "eth1", "10.7.1.3/24")?;
        gro_on(&sw1, "pa1")?;
        gro_on(&sw1, "pb1")?;
        (sw1, "br1", "10.7.1")
    } else {
        (sw0.clone(), "br0", "10.7.0")
    };
    let mut rips = Vec::new();
    for i in 1..=2u8 {
        let rs = lab.ns(prefix, &format!("rs{i}"))?;
        let rip = format!("{net}.{}", 10 + i);
        attach(
            &server_sw,
            server_br,
            &rs,
            &format!("prs{i}"),
            "eth0",
            &format!("{rip}/24"),
        )?;
        if o.nat {
            run_cmd(&[
                "ip", "-n", &rs, "route", "add", "default", "via", "10.7.1.1",
            ])?;
        } else {
            let state = lab.path(&format!("rs{i}.json"))?;
            exec(
                &rs,
                &[&rvs, "realserver", "up", "--vip", VIP, "--state", &state],
            )?;
        }
        let name = format!("rs{i}");
        lab.spawn(
            &rs,
            &["python3", "-c", ECHO_SERVER, &name],
            &format!("{name}.log"),
        )?;
        rips.push(rip);
    }
    // Both directors: rvsd, the table, keepalived.
    let notify = lab.path("rvs-sync-notify")?;
    std::fs::write(&notify, NOTIFY).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())?;
    let fwd = if o.nat { "-m" } else { "-g" };
    let ifaces: &[&str] = if o.nat { &["eth0", "eth1"] } else { &["eth0"] };
    let svc = format!("{VIP}:{PORT}");
    let start_director =
        |lab: &mut Lab, ns: &str, tag: &str, prio: u8| -> Result<(usize, usize), String> {
            let mut args = vec![rvsd];
            for i in ifaces {
                args.extend(["--interface", i]);
            }
            let d = lab.spawn(ns, &args, &format!("{tag}-rvsd.log"))?;
            wait_for("rvsd", Duration::from_secs(15), || {
                exec(ns, &[rvsadm, "-L", "-n"]).is_ok()
            })?;
            exec(ns, &[rvsadm, "-A", "-t", &svc, "-s", "rr"])?;
            for rip in &rips {
                exec(ns, &[rvsadm, "-a", "-t", &svc, "-r", rip, fwd])?;
            }
            // A connection is sent again every 2 s of its activity, not
            // every 50 of its packets (the default "3 50"): a director that
            // comes back learns quiet connections before it takes over.
            exec(
                ns,
                &[
                    &rvs,
                    "sysctl",
                    "-w",
                    "net.ipv4.vs.sync_threshold=3 0",
                    "net.ipv4.vs.sync_refresh_period=2",
                ],
            )?;
            let conf = lab.path(&format!("{tag}-keepalived.conf"))?;
            std::fs::write(&conf, keepalived_conf(o, &notify, rvsadm, prio))
                .map_err(|e| e.to_string())?;
            let (pid, vpid) = (
                lab.path(&format!("{tag}-ka.pid"))?,
                lab.path(&format!("{tag}-vrrp.pid"))?,
            );
            let k = lab.spawn(
                ns,
                &[
                    "keepalived",
                    "-n",
                    "-l",
                    "-D",
                    "-P",
                    "-f",
                    &conf,
                    "-p",
                    &pid,
                    "-r",
                    &vpid,
                ],
                &format!("{tag}-keepalived.log"),
            )?;
            Ok((d, k))
        };
    let (rvsd_a, ka_a) = start_director(lab, &a, "a", 150)?;
    start_director(lab, &b, "b", 100)?;
    let t = wait_for("A master, B backup", Duration::from_secs(20), || {
        has_daemon(rvsadm, &a, "master") && has_daemon(rvsadm, &b, "backup")
    })?;
    out.push_str(&format!(
        "{} lab: A (10.7.0.2) is the VRRP master after {} ms, B (10.7.0.3) the backup; \
         the VIP {VIP} is on A's eth0{}\n",
        if o.nat { "NAT" } else { "DR" },
        t.as_millis(),
        if o.nat {
            ", the real servers' gateway 10.7.1.1 on A's eth1"
        } else {
            ""
        }
    ));
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    // Long-lived connections through A.
    let n = o.conns;
    let mut conns = in_ns(&client, move || -> Result<Vec<Conn>, String> {
        let addr: SocketAddr = format!("{VIP}:{PORT}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        (0..n)
            .map(|_| {
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                    .map_err(|e| format!("connect: {e}"))?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let w = s.try_clone().map_err(|e| e.to_string())?;
                Ok(Conn {
                    r: BufReader::new(s),
                    w,
                    server: None,
                    lost: false,
                })
            })
            .collect()
    })?;
    let mut seq = 0;
    for _ in 0..3 {
        ping(&mut conns, seq);
        seq += 1;
    }
    let learnt = wait_for(
        "B to learn the connections",
        Duration::from_secs(10),
        || synced(&rvs, &b) >= conns.len(),
    );
    out.push_str(&format!(
        "{} long-lived connections through A; B learnt them over the sync protocol {}\n",
        conns.len(),
        match learnt {
            Ok(t) => format!("within {} ms", t.as_millis()),
            Err(e) => format!("NOT ALL: {e}"),
        }
    ));
    // A fails: keepalived stopped (the VIP leaves with a priority-0
    // advertisement), rvsd killed.
    let t0 = Instant::now();
    for i in [ka_a, rvsd_a] {
        let pid = lab.children[i].id().to_string();
        let sig = if i == ka_a { "-TERM" } else { "-KILL" };
        run_cmd(&["kill", sig, &pid])?;
        let _ = lab.children[i].wait();
    }
    ping(&mut conns, seq);
    seq += 1;
    let waited = t0.elapsed();
    wait_for("B master", Duration::from_secs(5), || {
        has_daemon(rvsadm, &b, "master")
    })?;
    for _ in 0..5 {
        ping(&mut conns, seq);
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    out.push_str(&format!(
        "failover (A's keepalived stopped, its rvsd killed): the connections answered through \
         B {} ms later; lost: {} of {}\n",
        waited.as_millis(),
        lost(&conns),
        conns.len()
    ));
    if stop.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    // A comes back: a backup first (it learns B's connections), master
    // again after preempt_delay.
    let before = lost(&conns);
    let t0 = Instant::now();
    start_director(lab, &a, "a2", 150)?;
    let mut n = 0;
    let t = wait_for("A master again", Duration::from_secs(30), || {
        // Keep the connections busy meanwhile (B resends each every 50
        // of its packets).
        n += 1;
        if n % 2 == 0 {
            ping(&mut conns, seq);
            seq += 1;
        }
        has_daemon(rvsadm, &a, "master") && has_daemon(rvsadm, &b, "backup")
    })?;
    for _ in 0..5 {
        ping(&mut conns, seq);
        seq += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    out.push_str(&format!(
        "failback (A started again): master after {} ms (preempt_delay 10 s: it learns the \
         connections as a backup first); lost: {} of {}\n",
        (t0.elapsed().max(t)).as_millis(),
        lost(&conns) - before,
        conns.len() - before
    ));
    Ok(out)
}

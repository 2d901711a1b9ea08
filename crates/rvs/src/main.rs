//! rvs — the companion tool: `demo`, `lab`, `realserver`, `bench`,
//! `proc`, `fwmark`, `sysctl`.

mod announce;
mod child;
mod dataplane;
mod demo;
mod fwmark;
mod keepalived;
mod lab;
mod lab_ecmp;
mod lab_ha;
mod netns;
mod procfs;
mod realserver;
mod sysctl;
mod top;

use std::process::ExitCode;

use rvs_core::FwdMethod;

const USAGE: &str = "\
Usage: rvs <command> [options]

Commands:
  demo [dr|nat|tun|all]   play simulated TCP conversations through the rvs
                          engine and show where each connection went
      --servers N         real servers (1..=200, default 3)
      --scheduler S       scheduler (rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf;
                          default wlc)
      --requests N        connections per mode (1..=100000, default 6)
  bench [packet|syn|http|conntable|control]
                          rvs against the kernel and the proxies, side by side
                          in private rvsbench-* namespaces (needs root); no
                          name runs them all. Prints a table per family, the
                          goals, and one line of JSON with every figure
      --quick             short runs (under 2 minutes in all)
      --seconds N         seconds per measured point (default 2 quick, 5)
      --services N        control: virtual services (default 10000)
      --dests N           control: real servers per service (default 10)
      --repeat N          control: runs per step, the median (default 3)
      --svg FILE          also write the figures as a chart (SVG) to FILE
                          (runs the rvs-bench program next to rvs, built from
                          the source tree; not in the Debian package)
  proc ip_vs|ip_vs_conn|ip_vs_conn_sync|ip_vs_stats
                          print rvsd's tables in the kernel's /proc/net formats
                          (for tools such as node_exporter's ipvs collector)
  realserver up --vip ADDR [--vip ADDR...] [--tun] [--dev IF...]
                          prepare a DR/TUN real server: VIPs on lo, ARP sysctls;
                          --tun: rp_filter off and the XDP IP-in-IP decapsulator
                          on --dev IF (default: every up non-loopback interface)
  realserver down         undo exactly what 'realserver up' changed
      --state FILE        record of what up changed
                          (default /run/rvs/realserver.json)
  lab nat|dr|tun|dr-routed
                          build the seed's LVS topology in network namespaces
                          (client, director running rvsd, real servers
                          with an HTTP server on port 80), send HTTP requests
                          through the VIP, show who answered and the stats,
                          then remove it all (needs root, python3);
                          dr-routed: DR with the client behind a router, the
                          real servers replying through the router
      --servers N         real servers (1..=8, default 2)
      --scheduler S       scheduler (default rr)
      --requests N        HTTP requests (1..=10000, default 10)
      --keep              leave the lab running; print how to enter it
      --io xdp|packet     the director's packet I/O (default: rvsd's, auto)
      --health            the real servers come from a keepalived.conf that
                          'rvs health run' checks (HTTP_GET); then rs1's
                          HTTP server is stopped and started again: how
                          long the checker took to take it out and back
      --health-conf FILE  --health with FILE instead of the lab's own
                          keepalived.conf; the real servers also serve
                          HTTPS, DNS and SMTP (the example:
                          'rvs lab dr --servers 3 --health-conf
                          dist/keepalived/keepalived.conf')
  lab ha [--nat]          two directors (rvsd + keepalived, VRRP only) that
                          sync connections: long-lived connections through
                          the master survive its failure and its return
      --conns N           long-lived connections (default 50)
  lab ecmp                three active directors (rvsd DR mh + BIRD + rvs
                          announce) behind a router running BIRD with ECMP;
                          prints the director and real server of each request
      --directors N       directors (1..=8, default 3)
      --failover          then drain d1 (rvs drain) and SIGKILL d2, holding
                          --conns N long-lived connections (default 30)
      --no-sloppy         leave sloppy_tcp off (moved flows are then lost)
      --sync              full-mesh connection sync (each director: master
                          and backup --syncid 0 sync daemons)
      --add-server        with --failover, first add one more real server
                          to every director (mh moves ~1/(N+1) of its slots:
                          moved flows then need --sync)
      --bench S           requests/s for S seconds at each --failover stage
      --speaker bird|frr  the directors' BGP speaker (default bird; frr:
                          zebra, staticd, bgpd, bfdd per director, with
                          dist/bgp/frr-director.conf)
  lab clean               remove every rvslab-* namespace and its processes
  dataplane               rvsd's packet-path counters: per worker thread
                          (rx, tx, forwarded, replies, passed, dropped,
                          need-hop, tx-full, no-port, kernel-drop) and the XDP
                          classifier's
  top [--once]            live view of rvsd, refreshed every second:
                          services with rates, connections and a history,
                          the selected service's real servers, the data
                          plane (keys: up/down or k/j, s sorts, q quits;
                          --once prints one frame and exits)
  fwmark add|del|list|flush|save
                          firewall-mark rules for rvsadm -A -f N services
                          (rvs fwmark -h for the options)
  sysctl [-a|NAME...|-w NAME=VALUE...|-p FILE]
                          rvsd's IPVS sysctls under the kernel's names
                          (net.ipv4.vs.sloppy_tcp ...; rvs sysctl -h)
  health run FILE|check FILE|show
                          keepalived.conf's virtual servers and checkers
                          (TCP_CHECK, HTTP_GET, SSL_GET, DNS_CHECK, SMTP_CHECK,
                          UDP_CHECK, PING_CHECK, MISC_CHECK) run against rvsd;
                          show: each real server's state (rvs health -h)
  announce -t VIP:PORT --announce-cmd CMD --withdraw-cmd CMD
                          announce the VIP (BGP through BIRD/FRR: dist/bgp/)
                          while rvsd forwards and the service has a real
                          server with weight > 0; withdraw otherwise, on
                          drain and on SIGTERM/SIGINT (rvs announce -h)
  drain [--undo]          withdraw the VIP first, keep forwarding
                          in-flight flows (rvs drain -h)
  -h, --help              this text
  -V, --version           version
";

fn main() -> ExitCode {
    // A script of `rvs health run` that runs as a user with supplementary
    // groups: first thing, while this process has one thread.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == keepalived::runas::EXEC_AS) {
        // Its words come from keepalived.conf, which is UTF-8.
        let args: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        eprintln!("rvs: {}", keepalived::runas::exec_as(&args));
        return ExitCode::from(1);
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("rvs: {msg}");
            ExitCode::from(2)
        }
    }
}

/// The arguments after a command that parses its own (`fwmark`, `sysctl`).
fn rest_args(parser: &mut lexopt::Parser) -> Result<Vec<String>, String> {
    parser
        .raw_args()
        .map_err(|e| e.to_string())?
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("invalid argument {a:?}"))
        })
        .collect()
}

fn run() -> Result<(), String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let cmd = match parser.next().map_err(|e| e.to_string())? {
        Some(Value(v)) => v.string().map_err(|e| e.to_string())?,
        Some(Short('h')) | Some(Long("help")) => {
            print!("{USAGE}");
            return Ok(());
        }
        Some(Short('V')) | Some(Long("version")) => {
            println!("rvs {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some(other) => return Err(format!("{}\n{USAGE}", other.unexpected())),
        None => return Err(format!("a command is needed\n{USAGE}")),
    };
    match cmd.as_str() {
        "demo" => {
            let opts = parse_demo(&mut parser)?;
            print!("{}", demo::run(&opts)?);
            Ok(())
        }
        "bench" => bench(rest_args(&mut parser)?),
        "dataplane" => {
            print!("{}", dataplane::run()?);
            Ok(())
        }
        "top" => {
            let args = rest_args(&mut parser)?;
            match args.as_slice() {
                [] => top::run(false),
                [o] if o == "--once" => top::run(true),
                _ => Err(format!("top: unexpected {args:?} (only --once)")),
            }
        }
        "proc" => {
            let what = match parser.next().map_err(|e| e.to_string())? {
                Some(Value(v)) => v.string().map_err(|e| e.to_string())?,
                _ => {
                    return Err(
                        "proc needs one of: ip_vs, ip_vs_conn, ip_vs_conn_sync, ip_vs_stats".into(),
                    );
                }
            };
            print!("{}", procfs::dump(&what)?);
            Ok(())
        }
        "realserver" => {
            let opts = parse_realserver(&mut parser)?;
            print!("{}", realserver::run(&opts)?);
            Ok(())
        }
        "lab" => match parse_lab(&mut parser)? {
            LabCmd::Clean => {
                print!("{}", lab::clean()?);
                Ok(())
            }
            LabCmd::Classic(opts) => {
                print!("{}", lab::run(&opts)?);
                Ok(())
            }
            LabCmd::Ecmp(opts) => {
                print!("{}", lab_ecmp::run(&opts)?);
                Ok(())
            }
            LabCmd::Ha(opts) => {
                print!("{}", lab_ha::run(&opts)?);
                Ok(())
            }
        },
        "fwmark" => {
            print!("{}", fwmark::run(&rest_args(&mut parser)?)?);
            Ok(())
        }
        "health" => {
            print!("{}", keepalived::main(&rest_args(&mut parser)?)?);
            Ok(())
        }
        "sysctl" => {
            print!("{}", sysctl::run(&rest_args(&mut parser)?)?);
            Ok(())
        }
        "announce" => announce::main_announce(&rest_args(&mut parser)?),
        "drain" => {
            print!("{}", announce::main_drain(&rest_args(&mut parser)?)?);
            Ok(())
        }
        other => Err(format!("unknown command '{other}'\n{USAGE}")),
    }
}

/// What `rvs lab` runs.
enum LabCmd {
    Clean,
    Classic(lab::Opts),
    Ecmp(lab_ecmp::Opts),
    Ha(lab_ha::Opts),
}

/// `lab MODE [options]`, or `lab clean`.
fn parse_lab(parser: &mut lexopt::Parser) -> Result<LabCmd, String> {
    use lexopt::prelude::*;
    let mut o = lab::Opts {
        mode: lab::Mode::Nat,
        servers: 2,
        scheduler: "rr".into(),
        requests: 10,
        keep: false,
        io: None,
        health: false,
        health_conf: None,
    };
    let mut e = lab_ecmp::Opts {
        directors: 3,
        servers: 0,
        requests: 0,
        conns: 30,
        failover: false,
        keep: false,
        io: None,
        no_sloppy: false,
        bench: 0,
        sync: false,
        add_server: false,
        speaker: lab_ecmp::Speaker::Bird,
    };
    let (mut servers_set, mut requests_set) = (false, false);
    let (mut nat, mut conns_set) = (false, false);
    let mut what = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Value(v) if what.is_none() => what = Some(v.string().map_err(|e| e.to_string())?),
            Long("directors") => e.directors = num_value(parser, "--directors", 8)? as u8,
            Long("conns") => {
                e.conns = num_value(parser, "--conns", 1000)?;
                conns_set = true;
            }
            Long("nat") => nat = true,
            Long("failover") => e.failover = true,
            Long("no-sloppy") => e.no_sloppy = true,
            Long("sync") => e.sync = true,
            Long("add-server") => e.add_server = true,
            Long("speaker") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                e.speaker = lab_ecmp::Speaker::parse(&v.string().map_err(|e| e.to_string())?)?;
            }
            Long("bench") => e.bench = num_value(parser, "--bench", 600)?,
            Long("servers") => {
                o.servers = num_value(parser, "--servers", 8)? as u8;
                servers_set = true;
            }
            Long("requests") => {
                o.requests = num_value(parser, "--requests", 10_000)?;
                requests_set = true;
            }
            Long("scheduler") => {
                let s = scheduler_value(parser)?;
                o.scheduler = s;
            }
            Long("keep") => o.keep = true,
            Long("health") => o.health = true,
            Long("health-conf") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                o.health = true;
                o.health_conf = Some(std::path::PathBuf::from(v));
            }
            Long("io") => {
                let v = parser.value().map_err(|e| e.to_string())?;
                o.io = Some(lab::parse_io(&v.string().map_err(|e| e.to_string())?)?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    o.mode = match what.as_deref() {
        Some("nat") => lab::Mode::Nat,
        Some("dr") => lab::Mode::Dr,
        Some("tun") => lab::Mode::Tun,
        Some("dr-routed") => lab::Mode::DrRouted,
        Some("clean") => return Ok(LabCmd::Clean),
        Some(m @ ("ha" | "ecmp")) if o.health => {
            return Err(format!(
                "--health is for the nat, dr, tun and dr-routed labs, not {m}"
            ));
        }
        Some("ha") => {
            return Ok(LabCmd::Ha(lab_ha::Opts {
                nat,
                conns: if conns_set { e.conns } else { 50 },
                keep: o.keep,
            }));
        }
        Some("ecmp") => {
            e.servers = if servers_set { o.servers } else { 3 };
            e.requests = if requests_set { o.requests } else { 12 };
            e.keep = o.keep;
            e.io = o.io;
            return Ok(LabCmd::Ecmp(e));
        }
        Some(m) => {
            return Err(format!(
                "unknown lab '{m}': expected nat, dr, tun, dr-routed, ecmp or clean"
            ));
        }
        None => return Err("lab needs a mode: nat, dr, tun, dr-routed (or clean)".into()),
    };
    if let Some(f) = &o.health_conf {
        // Refused before anything is built: the file:line of the error.
        keepalived::conf::load(f).map_err(|e| format!("--health-conf: {e}"))?;
    }
    if o.health && o.servers < 2 {
        return Err(format!(
            "--health stops one real server to show the checker at work: it needs \
             --servers 2 or more (not {})",
            o.servers
        ));
    }
    Ok(LabCmd::Classic(o))
}

fn parse_realserver(parser: &mut lexopt::Parser) -> Result<realserver::Opts, String> {
    use lexopt::prelude::*;
    let mut o = realserver::Opts {
        up: true,
        vips: Vec::new(),
        tun: false,
        devs: Vec::new(),
        state: realserver::DEFAULT_STATE.into(),
    };
    let mut what = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Value(v) if what.is_none() => what = Some(v.string().map_err(|e| e.to_string())?),
            Long("vip") => {
                let s = parser
                    .value()
                    .map_err(|e| e.to_string())?
                    .string()
                    .map_err(|e| e.to_string())?;
                let a = s.parse().map_err(|_| {
                    format!("invalid --vip '{s}': expected an IPv4 or IPv6 address")
                })?;
                o.vips.push(a);
            }
            Long("tun") => o.tun = true,
            Long("dev") => o.devs.push(
                parser
                    .value()
                    .map_err(|e| e.to_string())?
                    .string()
                    .map_err(|e| e.to_string())?,
            ),
            Long("state") => o.state = parser.value().map_err(|e| e.to_string())?.into(),
            other => return Err(other.unexpected().to_string()),
        }
    }
    match what.as_deref() {
        Some("up") => Ok(o),
        Some("down") => {
            if !o.vips.is_empty() || o.tun || !o.devs.is_empty() {
                return Err("realserver down takes no --vip, --tun or --dev: it undoes \
                            what 'realserver up' recorded (--state FILE)"
                    .into());
            }
            o.up = false;
            Ok(o)
        }
        Some(other) => Err(format!("unknown realserver action '{other}': up or down")),
        None => Err("realserver needs an action: up or down".into()),
    }
}

/// `rvs bench ARGS`: execs `rvs-bench ARGS`, found next to this `rvs`. The
/// benchmarks and their traffic generator live in their own crate
/// (crates/rvs-bench), so that this binary carries none of that code.
fn bench(args: Vec<String>) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name("rvs-bench");
    if !path.exists() {
        return Err(format!(
            "bench: rvs-bench is not installed ({} not found): the benchmarks are not part of \
             the package; build them from the source tree (cargo build --release -p rvs-bench) \
             and run target/release/rvs bench",
            path.display()
        ));
    }
    let e = std::process::Command::new(&path).args(args).exec();
    Err(format!("bench: cannot run {}: {e}", path.display()))
}

fn parse_demo(parser: &mut lexopt::Parser) -> Result<demo::DemoOpts, String> {
    use lexopt::prelude::*;
    let mut opts = demo::DemoOpts {
        modes: vec![FwdMethod::Route, FwdMethod::Masq, FwdMethod::Tunnel],
        servers: 3,
        scheduler: "wlc".into(),
        requests: 6,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Long("servers") => opts.servers = num_value(parser, "--servers", 200)? as u8,
            Long("requests") => opts.requests = num_value(parser, "--requests", 100_000)?,
            Long("scheduler") => {
                let s = scheduler_value(parser)?;
                opts.scheduler = s;
            }
            Value(v) => {
                let m = v.string().map_err(|e| e.to_string())?;
                opts.modes = match m.as_str() {
                    "dr" => vec![FwdMethod::Route],
                    "nat" => vec![FwdMethod::Masq],
                    "tun" => vec![FwdMethod::Tunnel],
                    "all" => vec![FwdMethod::Route, FwdMethod::Masq, FwdMethod::Tunnel],
                    _ => return Err(format!("unknown mode '{m}': expected dr, nat, tun or all")),
                };
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    Ok(opts)
}

/// The value of a numeric option, within 1..=`max`.
fn num_value(parser: &mut lexopt::Parser, what: &str, max: u32) -> Result<u32, String> {
    use lexopt::prelude::*;
    let s = parser
        .value()
        .map_err(|e| e.to_string())?
        .string()
        .map_err(|e| e.to_string())?;
    match s.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("invalid {what} '{s}': expected 1..={max}")),
    }
}

/// The value of `--scheduler`: a scheduler rvs knows.
fn scheduler_value(parser: &mut lexopt::Parser) -> Result<String, String> {
    use lexopt::prelude::*;
    let s = parser
        .value()
        .map_err(|e| e.to_string())?
        .string()
        .map_err(|e| e.to_string())?;
    if !rvs_core::sched::NAMES.contains(&s.as_str()) {
        return Err(format!("unknown scheduler '{s}'"));
    }
    Ok(s)
}

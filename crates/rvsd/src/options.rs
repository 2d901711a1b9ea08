//! Command-line options.

use std::ffi::OsString;
use std::path::PathBuf;

use rvs_proto::client::Endpoint;

/// Usage text for `--help`.
pub const USAGE: &str = "\
Usage: rvsd [OPTIONS]

The rvs director daemon: owns the virtual-server table of the network
namespace it runs in and serves rvsadm (the ipvsadm-compatible command line).
Runs in the foreground and logs to stderr, one event per line: plain lines
with a timestamp, or `<N>`-prefixed lines for journald when stderr is the
journal ($JOURNAL_STREAM).

Options:
  --socket PATH|@NAME   control endpoint (default: $RVS_SOCKET, else the
                        abstract socket @rvsd.ctl of this network namespace)
  --interface IF        interface to serve (repeatable; default: every
                        interface that is up, except loopback)
  --io MODE             packet I/O (needs root except `none`):
                        `auto` (default): `xdp` if the XDP classifier
                          attaches and the sockets open, else `packet`;
                        `xdp`: XDP classifier on the served interfaces,
                          service traffic through AF_XDP sockets;
                        `packet`: AF_PACKET sockets, and an nftables table
                          (`table netdev rvs`) that keeps the kernel from
                          answering what rvs claims (needs `nft`);
                        `none`: control plane only, nothing is forwarded.
                        One worker thread per RX queue.
  --fast-path MODE      XDP fast path for established flows, where XDP
                        is in use (`--io xdp`, or `auto` choosing it);
                        $RVSD_FAST_PATH sets the default:
                        `on` (default): packets of established flows are
                          forwarded inside the XDP program; rvsd still
                          sees every SYN, FIN and RST, and its counters
                          (`rvsadm -L --stats`, `-c`) include every packet;
                          only towards interfaces that take redirected XDP
                          frames: physical ones, any in XDP generic mode,
                          and veths whose peer is in NAPI mode (an XDP
                          program or GRO on it: probed every second);
                        `all`: towards every veth, unprobed (frames towards
                          a peer not in NAPI mode are lost);
                        `off`: every packet through the engine.
                        Always off with `--io packet` and `--io none`.
  --engines MODE        how workers share the engine ($RVSD_ENGINES sets
                        the default):
                        `per-worker` (default): with more than one
                          worker, each has its own engine replica (no
                          lock shared on the packet path); a frame is
                          handed to the worker whose replica owns its
                          client address (masked by the persistent
                          services' netmasks), so both directions of a
                          NAT connection meet. Each service's scheduler
                          state (rr/wrr position, lblc/lblcr table) and
                          the servers' connection counts are shared, so
                          every scheduler decides as the kernel's does;
                        `shared`: one engine, each worker locks it for a
                          batch of frames
  --max-conns N         connection entries (templates included) the table
                        holds, 1024 to 268435456 (default 1048576, about
                        125 MB at the bound); from 15/16 of it a new
                        connection first evicts the oldest entry still in
                        SYN_RECV (a SYN flood's); at it, new connections
                        are dropped (both counted: rvs dataplane); with
                        per-worker engines, N bounds their tables together
  --fast-path-entries N flows the fast path caches (default 65536); the
                        least recently used go back to the slow path
  --rules FILE          load rules at start, all or nothing: lines in
                        `ipvsadm -S` format and `rvs fwmark add ...` lines
                        (`{ rvs fwmark save; rvsadm -S; } > FILE`); a bad
                        file stops rvsd with exit status 2
  --group NAME|GID      members of this group (primary or supplementary)
                        may use the control API too; by default only root,
                        holders of CAP_NET_ADMIN in rvsd's user namespace
                        and rvsd's own user may
  --save FILE           write the rules (in the --rules format) to FILE
                        after every change, before rvsadm sees it
                        acknowledged: a temporary file, fsync, rename, so
                        FILE is always whole and a kill -9 loses no rule;
                        SIGHUP writes it again. Usually the --rules file
  --conn-state FILE     restarts keep connections: on SIGTERM/SIGINT rvsd
                        leaves nftables rules that drop what it claims
                        (table netdev rvs_handover: the kernel must not
                        reset connections while no rvsd runs) and writes
                        its connection table to FILE; at start it takes
                        the connections back from FILE (if written in the
                        last 10 minutes; then FILE is removed) and deletes
                        that table once its data plane runs
  --metrics ADDR:PORT   serve Prometheus metrics over HTTP at
                        http://ADDR:PORT/metrics: node_exporter's
                        node_ipvs_* series (same names and labels, so its
                        dashboards and alerts work) and rvs_* series of
                        the data plane. Off unless given. Read-only and
                        unauthenticated, like node_exporter: bind it to
                        127.0.0.1 or a management address, not to the
                        VIPs' network (the table's addresses and counters
                        are in it)
  --metrics-backend-labels LIST
                        labels of the per-real-server node_ipvs_backend_*
                        series, comma-separated, as node_exporter's
                        --collector.ipvs.backend-labels: any of
                        local_address, local_port, remote_address,
                        remote_port, proto, local_mark (default: all);
                        real servers with equal kept labels are summed,
                        which bounds the series of large tables
  --log-level LEVEL     log events of LEVEL and above: `error`, `warn`,
                        `info` (default), `debug` (every control request
                        too), `trace` or `off`; wins over $RUST_LOG, which
                        is read without it (its filter syntax, e.g.
                        `debug` or `info,rvsd::dataplane=debug`). Repeated
                        data-plane errors are logged once per 10 s per
                        interface or worker, with the count left out
  --fwmark-source SRC   where fwmark rules come from: `host` (default):
                        rvsd also follows the host's MARK rules of mangle
                        PREROUTING (iptables, nf_tables or legacy, and nft
                        chains on the prerouting hook setting `meta mark`),
                        checked every second, as if added with `rvs fwmark
                        add` (`rvs fwmark list` shows them, with the rules
                        it leaves to the kernel and why); `rvs`: only
                        `rvs fwmark` rules, for hosts whose marks mean
                        something else
  -h, --help            print this help
  -V, --version         print the version
";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--socket` (else `RVS_SOCKET`, else the default).
    pub socket: Option<Endpoint>,
    /// `--interface`, in order given, without duplicates.
    pub interfaces: Vec<String>,
    /// `--rules`.
    pub rules: Option<PathBuf>,
    /// `--save`.
    pub save: Option<PathBuf>,
    /// `--conn-state`.
    pub conn_state: Option<PathBuf>,
    /// `--io`.
    pub io: IoMode,
    /// `--fast-path` (else `RVSD_FAST_PATH`, else on; it takes effect only
    /// where XDP is in use).
    pub fast_path: FastPathMode,
    /// `--fast-path-entries`.
    pub fast_path_entries: u32,
    /// `--group`, as given.
    pub group: Option<String>,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--engines` (else `RVSD_ENGINES`, else per-worker).
    pub engines: Option<crate::engines::EngineMode>,
    /// `--metrics`.
    pub metrics: Option<std::net::SocketAddr>,
    /// `--metrics-backend-labels`.
    pub metrics_labels: crate::metrics::BackendLabels,
    /// `--log-level` (else `RUST_LOG`, else `info`).
    pub log_level: Option<crate::log::LogLevel>,
    /// `--fwmark-source host` (true, the default) or `rvs`.
    pub fwmark_from_host: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            socket: None,
            interfaces: Vec::new(),
            rules: None,
            save: None,
            conn_state: None,
            io: IoMode::default(),
            fast_path: FastPathMode::default(),
            fast_path_entries: FAST_PATH_ENTRIES,
            group: None,
            max_conns: MAX_CONNS,
            engines: None,
            metrics: None,
            metrics_labels: crate::metrics::BackendLabels::default(),
            log_level: None,
            fwmark_from_host: true,
        }
    }
}

/// Default of `--max-conns` (the engine's default).
pub const MAX_CONNS: usize = 1 << 20;
/// Bounds of `--max-conns`.
pub const MAX_CONNS_RANGE: std::ops::RangeInclusive<usize> = 1024..=1 << 28;

/// Default of `--fast-path-entries` (rvs-io's `FLOW_CACHE_MAX`).
pub const FAST_PATH_ENTRIES: u32 = 65536;
/// Largest `--fast-path-entries`.
pub const FAST_PATH_ENTRIES_MAX: u32 = 1 << 24;

/// `--fast-path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPathMode {
    /// Every packet through the engine.
    Off,
    /// Established flows in XDP, towards interfaces known (or probed) to
    /// take redirected XDP frames. The default; without XDP (`--io packet`
    /// or `none`) it is off.
    #[default]
    On,
    /// Also towards virtual interfaces (veth peers in NAPI mode).
    All,
}

impl FastPathMode {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FastPathMode::Off => "off",
            FastPathMode::On => "on",
            FastPathMode::All => "all",
        }
    }

    /// Parse `off`, `on` or `all` (`what` names the source in the error).
    pub fn parse(v: &str, what: &'static str) -> Result<Self, UsageError> {
        match v {
            "off" => Ok(FastPathMode::Off),
            "on" => Ok(FastPathMode::On),
            "all" => Ok(FastPathMode::All),
            _ => Err(UsageError::expected(what, v, "`on`, `off` or `all`")),
        }
    }
}

/// A bad command line (or `RVSD_FAST_PATH`): the message printed after
/// `rvsd: `, before the pointer to `--help`.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// What lexopt refuses: an unknown option, a missing value...
    #[error(transparent)]
    Args(#[from] lexopt::Error),
    /// A value that is not UTF-8 (`what`: the option or variable).
    #[error("{0}: not valid UTF-8")]
    NotUtf8(&'static str),
    /// An empty value.
    #[error("{0}: empty value")]
    Empty(&'static str),
    /// A value not among those accepted.
    #[error("{option} {value}: expected {expected}")]
    Expected {
        /// The option (or variable).
        option: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: String,
    },
    /// `--metrics-backend-labels` not UTF-8.
    #[error("--metrics-backend-labels: not UTF-8")]
    LabelsNotUtf8,
    /// `--metrics-backend-labels` with unknown labels.
    #[error("--metrics-backend-labels {value}: {source}")]
    Labels {
        /// The value given.
        value: String,
        /// The labels not known.
        #[source]
        source: crate::metrics::UnknownLabels,
    },
}

impl UsageError {
    fn expected(option: &'static str, value: &str, expected: impl Into<String>) -> UsageError {
        UsageError::Expected {
            option,
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// The packet I/O of `--io`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// Control plane only: nothing is forwarded.
    None,
    /// XDP classifier and AF_XDP sockets.
    Xdp,
    /// AF_PACKET sockets and nftables drop rules.
    Packet,
    /// `Xdp` if it opens, else `Packet`.
    #[default]
    Auto,
}

impl IoMode {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            IoMode::None => "none",
            IoMode::Xdp => "xdp",
            IoMode::Packet => "packet",
            IoMode::Auto => "auto",
        }
    }
}

/// The parsed command line.
// Made once at start and moved once: a box would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Serve.
    Run(Options),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Parse the arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    parse_with_env(args, std::env::var_os("RVSD_FAST_PATH"))
}

/// [`parse`] with `RVSD_FAST_PATH` given.
pub fn parse_with_env(
    args: impl IntoIterator<Item = OsString>,
    fast_path_env: Option<OsString>,
) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let mut o = Options::default();
    if let Some(v) = fast_path_env {
        let v = v
            .into_string()
            .map_err(|_| UsageError::NotUtf8("RVSD_FAST_PATH"))?;
        o.fast_path = FastPathMode::parse(&v, "RVSD_FAST_PATH")?;
    }
    let text = |v: OsString, what: &'static str| {
        v.into_string()
            .map_err(|_| UsageError::NotUtf8(what))
            .and_then(|s| {
                if s.is_empty() {
                    Err(UsageError::Empty(what))
                } else {
                    Ok(s)
                }
            })
    };
    while let Some(arg) = p.next()? {
        match arg {
            Long("socket") => {
                let v = text(p.value()?, "--socket")?;
                o.socket = Some(Endpoint::parse(&v));
            }
            Long("interface") => {
                let v = text(p.value()?, "--interface")?;
                if !o.interfaces.contains(&v) {
                    o.interfaces.push(v);
                }
            }
            Long("rules") => {
                let v = p.value()?;
                if v.is_empty() {
                    return Err(UsageError::Empty("--rules"));
                }
                o.rules = Some(PathBuf::from(v));
            }
            Long("save") => {
                let v = p.value()?;
                if v.is_empty() {
                    return Err(UsageError::Empty("--save"));
                }
                o.save = Some(PathBuf::from(v));
            }
            Long("engines") => {
                let v = text(p.value()?, "--engines")?;
                o.engines = Some(crate::engines::EngineMode::parse(&v).ok_or_else(|| {
                    UsageError::expected("--engines", &v, "`shared` or `per-worker`")
                })?);
            }
            Long("conn-state") => {
                let v = p.value()?;
                if v.is_empty() {
                    return Err(UsageError::Empty("--conn-state"));
                }
                o.conn_state = Some(PathBuf::from(v));
            }
            Long("io") => {
                let v = text(p.value()?, "--io")?;
                o.io = match v.as_str() {
                    "none" => IoMode::None,
                    "xdp" => IoMode::Xdp,
                    "packet" => IoMode::Packet,
                    "auto" => IoMode::Auto,
                    _ => {
                        return Err(UsageError::expected(
                            "--io",
                            &v,
                            "`auto`, `xdp`, `packet` or `none`",
                        ));
                    }
                };
            }
            Long("fwmark-source") => {
                let v = text(p.value()?, "--fwmark-source")?;
                o.fwmark_from_host = match v.as_str() {
                    "host" => true,
                    "rvs" => false,
                    _ => {
                        return Err(UsageError::expected(
                            "--fwmark-source",
                            &v,
                            "`host` or `rvs`",
                        ));
                    }
                };
            }
            Long("fast-path") => {
                let v = text(p.value()?, "--fast-path")?;
                o.fast_path = FastPathMode::parse(&v, "--fast-path")?;
            }
            Long("fast-path-entries") => {
                let v = text(p.value()?, "--fast-path-entries")?;
                o.fast_path_entries = match v.parse::<u32>() {
                    Ok(n) if (1..=FAST_PATH_ENTRIES_MAX).contains(&n) => n,
                    _ => {
                        return Err(UsageError::expected(
                            "--fast-path-entries",
                            &v,
                            format!("a number from 1 to {FAST_PATH_ENTRIES_MAX}"),
                        ));
                    }
                };
            }
            Long("group") => {
                o.group = Some(text(p.value()?, "--group")?);
            }
            Long("max-conns") => {
                let v = text(p.value()?, "--max-conns")?;
                o.max_conns = match v.parse::<usize>() {
                    Ok(n) if MAX_CONNS_RANGE.contains(&n) => n,
                    _ => {
                        return Err(UsageError::expected(
                            "--max-conns",
                            &v,
                            format!(
                                "a number from {} to {}",
                                MAX_CONNS_RANGE.start(),
                                MAX_CONNS_RANGE.end()
                            ),
                        ));
                    }
                };
            }
            Long("metrics") => {
                let v = text(p.value()?, "--metrics")?;
                o.metrics = Some(v.parse().map_err(|_| {
                    UsageError::expected(
                        "--metrics",
                        &v,
                        "ADDR:PORT (e.g. 127.0.0.1:9876, [::1]:9876)",
                    )
                })?);
            }
            Long("metrics-backend-labels") => {
                let v = p.value()?;
                let v = v.into_string().map_err(|_| UsageError::LabelsNotUtf8)?;
                o.metrics_labels = crate::metrics::BackendLabels::parse(&v)
                    .map_err(|source| UsageError::Labels { value: v, source })?;
            }
            Long("log-level") => {
                let v = text(p.value()?, "--log-level")?;
                o.log_level = Some(crate::log::LogLevel::parse(&v).ok_or_else(|| {
                    UsageError::expected(
                        "--log-level",
                        &v,
                        format!("one of {}", crate::log::LEVELS.join(", ")),
                    )
                })?);
            }
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Short('v') | Long("version") => return Ok(Command::Version),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Command::Run(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    /// `parse` as if `RVSD_FAST_PATH` were unset.
    fn parse(a: Vec<OsString>) -> Result<Command, UsageError> {
        parse_with_env(a, None)
    }

    #[test]
    fn parses() {
        let c = parse(args(&[
            "--socket",
            "@x",
            "--interface=eth0",
            "--interface",
            "eth1",
            "--interface",
            "eth0",
            "--rules",
            "/etc/rvs/rules",
            "--save",
            "/etc/rvs/rules",
        ]))
        .unwrap();
        assert_eq!(
            c,
            Command::Run(Options {
                socket: Some(Endpoint::Abstract("x".into())),
                interfaces: vec!["eth0".into(), "eth1".into()],
                rules: Some("/etc/rvs/rules".into()),
                save: Some("/etc/rvs/rules".into()),
                conn_state: None,
                io: IoMode::Auto,
                fast_path: FastPathMode::On,
                fast_path_entries: FAST_PATH_ENTRIES,
                group: None,
                max_conns: MAX_CONNS,
                engines: None,
                metrics: None,
                metrics_labels: crate::metrics::BackendLabels::default(),
                log_level: None,
                fwmark_from_host: true,
            })
        );
        assert_eq!(
            parse(args(&["--fwmark-source", "rvs"])).unwrap(),
            Command::Run(Options {
                fwmark_from_host: false,
                ..Options::default()
            })
        );
        assert!(parse(args(&["--fwmark-source", "iptables"])).is_err());
        assert_eq!(
            parse(args(&[
                "--metrics",
                "[::1]:9876",
                "--metrics-backend-labels",
                "proto,local_port"
            ]))
            .unwrap(),
            Command::Run(Options {
                metrics: Some("[::1]:9876".parse().unwrap()),
                metrics_labels: crate::metrics::BackendLabels::parse("local_port,proto").unwrap(),
                ..Options::default()
            })
        );
        assert!(parse(args(&["--metrics", "9876"])).is_err());
        assert!(parse(args(&["--metrics-backend-labels", "port"])).is_err());
        assert_eq!(
            parse(args(&["--group", "rvs"])).unwrap(),
            Command::Run(Options {
                group: Some("rvs".into()),
                ..Options::default()
            })
        );
        assert!(parse(args(&["--group", ""])).is_err());
        assert_eq!(
            parse(args(&["--log-level", "warn"])).unwrap(),
            Command::Run(Options {
                log_level: crate::log::LogLevel::parse("warn"),
                ..Options::default()
            })
        );
        assert!(parse(args(&["--log-level", "loud"])).is_err());
        assert_eq!(parse(args(&["--help"])).unwrap(), Command::Help);
        assert_eq!(parse(args(&["-V"])).unwrap(), Command::Version);
        assert_eq!(parse(args(&[])).unwrap(), Command::Run(Options::default()));
        assert!(parse(args(&["--bogus"])).is_err());
        assert!(parse(args(&["--rules"])).is_err());
        assert!(parse(args(&["--save"])).is_err());
        assert!(parse(args(&["--max-conns", "10"])).is_err());
        assert!(parse(args(&["--max-conns", "x"])).is_err());
        assert!(parse(args(&["--save", ""])).is_err());
        assert!(parse(args(&["stray"])).is_err());
        assert!(parse(args(&["--interface", ""])).is_err());
        assert_eq!(
            parse(args(&["--io", "xdp"])).unwrap(),
            Command::Run(Options {
                io: IoMode::Xdp,
                ..Options::default()
            })
        );
        for (name, mode) in [
            ("none", IoMode::None),
            ("packet", IoMode::Packet),
            ("auto", IoMode::Auto),
        ] {
            assert_eq!(
                parse(args(&["--io", name])).unwrap(),
                Command::Run(Options {
                    io: mode,
                    ..Options::default()
                })
            );
            assert_eq!(mode.name(), name);
        }
        assert!(parse(args(&["--io", "dpdk"])).is_err());
        assert!(parse(args(&["--io"])).is_err());
    }

    #[test]
    fn engines_option() {
        use crate::engines::EngineMode;
        for m in [EngineMode::Shared, EngineMode::PerWorker] {
            assert_eq!(
                parse(args(&["--engines", m.name()])).unwrap(),
                Command::Run(Options {
                    engines: Some(m),
                    ..Options::default()
                })
            );
        }
        // Not given: the environment or the default decides (at start).
        assert_eq!(Options::default().engines, None);
        let e = parse(args(&["--engines", "per-cpu"]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "--engines per-cpu: expected `shared` or `per-worker`");
        assert!(parse(args(&["--engines"])).is_err());
    }

    #[test]
    fn fast_path_options() {
        let run = |o: Options| Command::Run(o);
        for m in [FastPathMode::Off, FastPathMode::On, FastPathMode::All] {
            assert_eq!(
                parse(args(&["--fast-path", m.name()])).unwrap(),
                run(Options {
                    fast_path: m,
                    ..Options::default()
                })
            );
        }
        // On by default; the environment sets the default; the option wins.
        assert_eq!(Options::default().fast_path, FastPathMode::On);
        let env = |v: &str| Some(OsString::from(v));
        let off = run(Options {
            fast_path: FastPathMode::Off,
            ..Options::default()
        });
        assert_eq!(parse_with_env(args(&[]), env("off")).unwrap(), off);
        assert_eq!(
            parse_with_env(args(&["--fast-path", "off"]), env("on")).unwrap(),
            off
        );
        assert_eq!(
            parse_with_env(args(&["--fast-path", "on"]), env("off")).unwrap(),
            run(Options::default())
        );
        assert_eq!(
            parse_with_env(args(&["--io", "packet"]), env("all")).unwrap(),
            run(Options {
                io: IoMode::Packet,
                fast_path: FastPathMode::All,
                ..Options::default()
            })
        );
        let e = parse_with_env(args(&[]), env("maybe"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("RVSD_FAST_PATH maybe"), "{e}");
        assert!(parse(args(&["--fast-path", "fast"])).is_err());
        assert_eq!(
            parse(args(&["--fast-path-entries", "4"])).unwrap(),
            run(Options {
                fast_path_entries: 4,
                ..Options::default()
            })
        );
        let text = |a: &[&str]| parse(args(a)).unwrap_err().to_string();
        assert_eq!(
            text(&["--io", "dpdk"]),
            "--io dpdk: expected `auto`, `xdp`, `packet` or `none`"
        );
        assert_eq!(text(&["--rules", ""]), "--rules: empty value");
        assert_eq!(text(&["--interface", ""]), "--interface: empty value");
        assert_eq!(
            text(&["--max-conns", "1"]),
            "--max-conns 1: expected a number from 1024 to 268435456"
        );
        assert_eq!(
            text(&["--fast-path-entries", "0"]),
            "--fast-path-entries 0: expected a number from 1 to 16777216"
        );
        assert_eq!(
            text(&["--metrics-backend-labels", "bogus"]),
            "--metrics-backend-labels bogus: unknown IPVS backend labels: \"bogus\" \
             (known: local_address,local_port,remote_address,remote_port,proto,local_mark)"
        );
        assert_eq!(text(&["--bogus"]), "invalid option '--bogus'");
        for bad in ["0", "-1", "x", "16777217"] {
            let e = parse(args(&["--fast-path-entries", bad]))
                .unwrap_err()
                .to_string();
            assert!(e.contains("--fast-path-entries"), "{e}");
        }
    }
}

//! ipvsadm's command-line grammar, parsed into control-API operations.
//!
//! The contract is `ipvs-interface.md` §1 and §3; ipvsadm 1.31's
//! `parse_options` / `process_options` are followed step by step, so the
//! *first* error ipvsadm would report is the one reported here:
//!
//! 1. popt scanning (`popt.rs`); the first option must be a command, else
//!    [`CliError::TryHelp`]. `-h` / `-v` return at once, ignoring the rest.
//! 2. Options in command-line order: duplicate slot
//!    (`multiple '%s' options specified`), then the value's own check.
//!    A popt error stops the scan ([`CliError::Popt`]).
//! 3. `--set`'s three values, then any leftover word
//!    (`unexpected argument %s`), then `-b` (it needs the final `-s`).
//! 4. The legality table (`table.rs`), then the per-command checks.
//!
//! Deliberate readings of ipvsadm worth knowing:
//! * A second command (`-L -A`, `-A ... -h`) is not `multiple commands
//!   specified`: ipvsadm's option loop has no case for commands and fails
//!   with ``invalid option `%s'`` quoting popt's last consumed word (exit 2).
//!   That is what is produced here; `multiple commands specified` is
//!   unreachable in ipvsadm and here.
//! * `-Z` with a service whose address, port and mark are all zero
//!   (`-Z -t 0.0.0.0:0`) zeroes everything, as libipvs then omits the
//!   service attribute.
//! * `-b` made only of commas (ipvsadm crashes on it) is
//!   ``invalid scheduler flag `<arg>'``.
//! * Names copied into fixed C buffers are truncated as ipvsadm does
//!   (scheduler and interface 15 bytes, PE 16), at a character boundary.
//! * Host names go through `names::host_v4` (first IPv4 address), service
//!   names through `names::port_by_name` for the service's protocol.

mod help;
mod parse;
mod popt;
mod table;

use std::net::{IpAddr, Ipv4Addr};

use rvs_proto::{
    BatchLine, DaemonRole, DaemonSpec, DestSpec, Fwd, Op, Proto, SVC_F_ONEPACKET, SVC_F_PERSISTENT,
    SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3, ServiceId, ServiceSpec, TUN_F_CSUM, TUN_F_REMCSUM,
    TunKind, TunnelSpec,
};

pub use help::{help_text, version_line};
use popt::{Found, Key, Scanner};
use table::{Cmd, OPTNAMES, has, optc};

/// `MAX_TIMEOUT`: 31 days.
const MAX_TIMEOUT: i64 = 86400 * 31;
/// `IPVS_SVC_PERSISTENT_TIMEOUT`.
const DEFAULT_PERSISTENT_TIMEOUT: u32 = 6 * 60;
/// `DEF_SCHED`.
const DEFAULT_SCHEDULER: &str = "wlc";
/// `DEF_MCAST_IFN`.
const DEFAULT_MCAST_IFN: &str = "eth0";

/// What `-L` should show. Which listing wins when several are asked for is
/// ipvsadm's: `connection`, else `service` (one service), else `timeout`,
/// else `daemon`, else the whole table (the legality table already allows
/// only one of the first four).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// `-t/-u/--sctp-service/-f`: list this service only.
    pub service: Option<ServiceId>,
    /// `-n`.
    pub numeric: bool,
    /// `-c`: connection entries.
    pub connection: bool,
    /// `--timeout`.
    pub timeout: bool,
    /// `--daemon`.
    pub daemon: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--nosort`.
    pub nosort: bool,
    /// `-X/--exact`.
    pub exact: bool,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A -E -D -C -a -e -d -Z --set --start-daemon --stop-daemon`.
    Apply(Op),
    /// `-L` / `-l` (and no arguments at all).
    List(ListOpts),
    /// `-S [-n]`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-R`: read stdin and call [`parse_restore`].
    Restore,
    /// `-h`: print [`help_text`] to stdout, exit 0.
    Help,
    /// `-v`: print [`version_line`] to stdout, exit 0.
    Version,
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// ipvsadm's `fail()`: the message (no trailing newline; `-6 used before
    /// -f` carries its own embedded `\n`), exit status 2.
    Fail(String),
    /// ``Try `%s -h' or '%s --help' for more information.``, exit 255.
    TryHelp,
    /// A popt error, `"<word>: <popt message>"`, exit 255.
    Popt(String),
}

impl CliError {
    /// The process exit status ipvsadm uses.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Fail(_) => 2,
            CliError::TryHelp | CliError::Popt(_) => 255,
        }
    }

    /// The complete stderr text, final newline included.
    pub fn render(&self, argv0: &str) -> String {
        match self {
            CliError::Fail(m) | CliError::Popt(m) => format!("{m}\n"),
            CliError::TryHelp => {
                format!("Try `{argv0} -h' or '{argv0} --help' for more information.\n")
            }
        }
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError::Fail(msg.into()))
}

/// Parse a command line (`args` without `argv[0]`).
///
/// No arguments at all lists the table, like `ipvsadm` alone. `argv0` is
/// accepted for symmetry with [`CliError::render`]; parsing does not depend
/// on it.
pub fn parse_args(argv0: &str, args: &[String]) -> Result<Command, CliError> {
    let _ = argv0;
    if args.is_empty() {
        return Ok(Command::List(ListOpts::default()));
    }
    parse_line(args)
}

/// Parse restore input (what `-S` writes, what `-R` reads).
///
/// Every line is split on spaces, tabs and carriage returns; tokens equal to
/// `ipvsadm` are dropped wherever they are; lines left empty are skipped, and
/// so are lines whose first token starts with `#` (comments, which
/// `ipvsadm-restore` filters out before ipvsadm sees them). Every other line
/// is parsed like a command line.
///
/// Unlike ipvsadm, the whole input is parsed before anything is applied: the
/// first bad line is returned as `Err((line_number, error))` (1-based) and
/// nothing is applied. Lines must change state ([`Command::Apply`]): `-R`
/// on a line is [`CliError::TryHelp`] (ipvsadm's recursion guard), and a
/// listing, `-S`, `-h` or `-v` line is
/// `Fail("unexpected command in restore input")` (exit 2) — ipvsadm would
/// run it in the middle of the restore (and exit at `-h`/`-v`).
pub fn parse_restore(argv0: &str, input: &str) -> Result<Vec<BatchLine>, (usize, CliError)> {
    let mut out = Vec::new();
    for (i, line) in input.split('\n').enumerate() {
        let line_no = i + 1;
        let mut raw = line
            .split([' ', '\t', '\r'])
            .filter(|t| !t.is_empty())
            .peekable();
        if raw.peek().is_some_and(|t| t.starts_with('#')) {
            continue;
        }
        let tokens: Vec<String> = raw
            .filter(|&t| t != "ipvsadm")
            .map(str::to_string)
            .collect();
        if tokens.is_empty() {
            continue;
        }
        match parse_args(argv0, &tokens) {
            Ok(Command::Apply(op)) => out.push(BatchLine { line: line_no, op }),
            Ok(Command::Restore) => return Err((line_no, CliError::TryHelp)),
            Ok(_) => {
                return Err((
                    line_no,
                    CliError::Fail("unexpected command in restore input".into()),
                ));
            }
            Err(e) => return Err((line_no, e)),
        }
    }
    Ok(out)
}

/// Address family of the service / destination as known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Af {
    Unspec,
    V4,
    V6,
}

fn af_of(addr: IpAddr) -> Af {
    match addr {
        IpAddr::V4(_) => Af::V4,
        IpAddr::V6(_) => Af::V6,
    }
}

/// ipvsadm's `struct ipvs_command_entry` plus the option set.
#[derive(Debug)]
struct State {
    options: u64,
    // Service.
    svc_af: Af,
    svc_proto: Option<Proto>,
    svc_addr: IpAddr,
    svc_port: u16,
    fwmark: u32,
    sched: String,
    svc_flags: u32,
    svc_timeout: u32,
    netmask: u32,
    pe: String,
    sched_flags_arg: String,
    // Destination.
    dest_addr: IpAddr,
    dest_port: u16,
    fwd: Fwd,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunKind,
    tun_port: u16,
    tun_flags: u16,
    // Daemon.
    role: DaemonRole,
    mcast_ifn: String,
    syncid: u32,
    mcast_group: Option<IpAddr>,
    mcast_port: u16,
    mcast_ttl: u8,
    sync_maxlen: u16,
}

impl State {
    fn new(role: DaemonRole) -> Self {
        State {
            options: 0,
            svc_af: Af::Unspec,
            svc_proto: None,
            svc_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            svc_port: 0,
            fwmark: 0,
            sched: String::new(),
            svc_flags: 0,
            svc_timeout: 0,
            netmask: 0xffff_ffff,
            pe: String::new(),
            sched_flags_arg: String::new(),
            dest_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dest_port: 0,
            fwd: Fwd::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunKind::Ipip,
            tun_port: 0,
            tun_flags: 0,
            role,
            mcast_ifn: String::new(),
            syncid: 0,
            mcast_group: None,
            mcast_port: 0,
            mcast_ttl: 0,
            sync_maxlen: 0,
        }
    }

    /// `set_option`.
    fn set(&mut self, slot: usize) -> Result<(), CliError> {
        if has(self.options, slot) {
            return fail(format!("multiple '{}' options specified", OPTNAMES[slot]));
        }
        self.options |= 1 << slot;
        Ok(())
    }

    fn has(&self, slot: usize) -> bool {
        has(self.options, slot)
    }

    /// One option after the command (the body of ipvsadm's option loop).
    fn option(&mut self, f: Found<'_>) -> Result<(), CliError> {
        let arg = f.arg.unwrap_or("");
        let number = |text: &str, min: i64, max: i64, msg: &str| -> Result<i64, CliError> {
            parse::string_to_number(text, min, max).ok_or_else(|| CliError::Fail(msg.into()))
        };
        match f.key {
            Key::AddService
            | Key::EditService
            | Key::DeleteService
            | Key::Clear
            | Key::List
            | Key::Zero
            | Key::AddServer
            | Key::EditServer
            | Key::DeleteServer
            | Key::Set
            | Key::Help
            | Key::Version
            | Key::Restore
            | Key::Save
            | Key::StartDaemon
            | Key::StopDaemon => return fail(format!("invalid option `{}'", f.word)),
            Key::TcpService | Key::UdpService | Key::SctpService => {
                self.set(optc::SERVICE)?;
                let proto = match f.key {
                    Key::TcpService => Proto::Tcp,
                    Key::UdpService => Proto::Udp,
                    _ => Proto::Sctp,
                };
                self.svc_proto = Some(proto);
                let Some((addr, port)) = parse::parse_service(arg, Some(proto)) else {
                    return fail("illegal virtual server address[:port] specified");
                };
                self.svc_addr = addr;
                self.svc_af = af_of(addr);
                if addr.is_ipv6() {
                    self.netmask = 128;
                }
                if let Some(p) = port {
                    self.svc_port = p;
                }
            }
            Key::FwmarkService => {
                self.set(optc::SERVICE)?;
                self.svc_af = Af::V4;
                self.svc_proto = Some(Proto::Tcp);
                let mark =
                    parse::string_to_number(arg, 1, i64::from(u32::MAX)).ok_or_else(|| {
                        CliError::Fail(format!("invalid fwmark value `{arg}' specified"))
                    })?;
                self.fwmark = mark as u32;
            }
            Key::Scheduler => {
                self.set(optc::SCHEDULER)?;
                self.sched = parse::truncate_bytes(arg, 15);
            }
            Key::Persistent => {
                self.set(optc::PERSISTENT)?;
                self.svc_flags |= SVC_F_PERSISTENT;
                self.svc_timeout = match f.arg {
                    None => DEFAULT_PERSISTENT_TIMEOUT,
                    Some(t) => timeout_value(t, 1)?,
                };
            }
            Key::Netmask => {
                self.set(optc::NETMASK)?;
                if self.svc_af != Af::V6 {
                    match parse::host_or_dotted(arg) {
                        Some(m) => self.netmask = u32::from(m),
                        None => return fail("illegal virtual server persistent mask specified"),
                    }
                } else {
                    let m = parse::atoi(arg) as u32;
                    if !(1..=128).contains(&m) {
                        return fail("illegal ipv6 netmask specified");
                    }
                    self.netmask = m;
                }
            }
            Key::RealServer => {
                self.set(optc::SERVER)?;
                let Some((addr, port)) = parse::parse_service(arg, self.svc_proto) else {
                    return fail("illegal real server address[:port] specified");
                };
                self.dest_addr = addr;
                self.dest_port = port.unwrap_or(self.svc_port);
            }
            Key::Ipip | Key::Gatewaying | Key::Masquerading => {
                self.set(optc::FORWARD)?;
                self.fwd = match f.key {
                    Key::Ipip => Fwd::Tunnel,
                    Key::Gatewaying => Fwd::Route,
                    _ => Fwd::Masq,
                };
            }
            Key::Weight => {
                self.set(optc::WEIGHT)?;
                self.weight = number(arg, 0, 65535, "illegal weight specified")? as u32;
            }
            Key::UThreshold => {
                self.set(optc::UTHRESHOLD)?;
                self.u_threshold =
                    number(arg, 0, i64::from(i32::MAX), "illegal u_threshold specified")? as u32;
            }
            Key::LThreshold => {
                self.set(optc::LTHRESHOLD)?;
                self.l_threshold =
                    number(arg, 0, i64::from(i32::MAX), "illegal l_threshold specified")? as u32;
            }
            Key::Connection => self.set(optc::CONNECTION)?,
            Key::Numeric => self.set(optc::NUMERIC)?,
            Key::McastInterface => {
                self.set(optc::MCAST)?;
                self.mcast_ifn = parse::truncate_bytes(arg, 15);
            }
            Key::Syncid => {
                self.set(optc::SYNCID)?;
                self.syncid = number(arg, 0, 255, "illegal syncid specified")? as u32;
            }
            Key::Timeout => self.set(optc::TIMEOUT)?,
            Key::Daemon => self.set(optc::DAEMON)?,
            Key::Stats => self.set(optc::STATS)?,
            Key::Rate => self.set(optc::RATE)?,
            Key::Thresholds => self.set(optc::THRESHOLDS)?,
            Key::PersistentConn => self.set(optc::PERSISTENTCONN)?,
            Key::NoSort => self.set(optc::NOSORT)?,
            Key::Sort => {}
            Key::Exact => self.set(optc::EXACT)?,
            Key::Ipv6 => {
                if self.fwmark == 0 {
                    return fail("-6 used before -f\n");
                }
                self.svc_af = Af::V6;
                self.netmask = 128;
            }
            Key::Ops => {
                self.set(optc::ONEPACKET)?;
                self.svc_flags |= SVC_F_ONEPACKET;
            }
            Key::Pe => {
                self.set(optc::PE)?;
                self.pe = parse::truncate_bytes(arg, 16);
            }
            Key::SchedFlags => {
                self.set(optc::SCHED_FLAGS)?;
                self.sched_flags_arg = parse::truncate_bytes(arg, 127);
            }
            Key::McastGroup => {
                self.set(optc::MCAST_GROUP)?;
                self.mcast_group = Some(parse::mcast_group(arg).map_err(CliError::Fail)?);
            }
            Key::McastPort => {
                self.set(optc::MCAST_PORT)?;
                self.mcast_port = number(arg, 1, 65535, "illegal mcast-port specified")? as u16;
            }
            Key::McastTtl => {
                self.set(optc::MCAST_TTL)?;
                self.mcast_ttl = number(arg, 1, 255, "illegal mcast-ttl specified")? as u8;
            }
            Key::SyncMaxlen => {
                self.set(optc::SYNC_MAXLEN)?;
                self.sync_maxlen =
                    number(arg, 1, 65535 - 20 - 8, "illegal sync-maxlen specified")? as u16;
            }
            Key::TunInfo => self.set(optc::TUN_INFO)?,
            Key::TunType => {
                self.set(optc::TUN_TYPE)?;
                self.tun_type = match arg {
                    "ipip" => TunKind::Ipip,
                    "gue" => TunKind::Gue,
                    "gre" => TunKind::Gre,
                    _ => return fail("illegal tunnel type specified"),
                };
            }
            Key::TunPort => {
                self.set(optc::TUN_PORT)?;
                self.tun_port = number(arg, 1, 65535, "illegal tunnel port specified")? as u16;
            }
            Key::TunNocsum => self.set(optc::TUN_NOCSUM)?,
            Key::TunCsum => {
                self.set(optc::TUN_CSUM)?;
                self.tun_flags |= TUN_F_CSUM;
            }
            Key::TunRemcsum => {
                self.set(optc::TUN_REMCSUM)?;
                self.tun_flags |= TUN_F_REMCSUM;
            }
        }
        Ok(())
    }

    /// The service as identified so far.
    fn service_id(&self) -> ServiceId {
        if self.fwmark != 0 {
            ServiceId::Fwmark {
                v6: self.svc_af == Af::V6,
                mark: self.fwmark,
            }
        } else {
            ServiceId::Addr {
                proto: self.svc_proto.unwrap_or(Proto::Tcp),
                addr: self.svc_addr,
                port: self.svc_port,
            }
        }
    }

    fn service_spec(&self) -> ServiceSpec {
        ServiceSpec {
            id: self.service_id(),
            scheduler: self.sched.clone(),
            flags: self.svc_flags,
            timeout: self.svc_timeout,
            netmask: self.netmask,
            pe: (!self.pe.is_empty()).then(|| self.pe.clone()),
        }
    }

    fn dest_spec(&self) -> DestSpec {
        DestSpec {
            addr: self.dest_addr,
            port: self.dest_port,
            fwd: self.fwd,
            weight: self.weight,
            u_threshold: self.u_threshold,
            l_threshold: self.l_threshold,
            tunnel: TunnelSpec {
                kind: self.tun_type,
                port: self.tun_port,
                flags: self.tun_flags,
            },
        }
    }
}

/// `parse_timeout(buf, min, MAX_TIMEOUT)`.
fn timeout_value(text: &str, min: i64) -> Result<u32, CliError> {
    match parse::string_to_number(text, min, MAX_TIMEOUT) {
        Some(v) => Ok(v as u32),
        None => fail(format!("invalid timeout value `{text}' specified")),
    }
}

/// `parse_sched_flags`.
fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, CliError> {
    let sched = if sched.is_empty() {
        DEFAULT_SCHEDULER
    } else {
        sched
    };
    let mut flags = 0;
    let mut any = false;
    for flag in arg.split(',').filter(|t| !t.is_empty()) {
        any = true;
        let (bit, needs) = match flag {
            "flag-1" => (SVC_F_SCHED1, None),
            "flag-2" => (SVC_F_SCHED2, None),
            "flag-3" => (SVC_F_SCHED3, None),
            "sh-fallback" => (SVC_F_SCHED1, Some("sh")),
            "sh-port" => (SVC_F_SCHED2, Some("sh")),
            "mh-fallback" => (SVC_F_SCHED1, Some("mh")),
            "mh-port" => (SVC_F_SCHED2, Some("mh")),
            _ => return fail(format!("invalid scheduler flag `{flag}'")),
        };
        flags |= bit;
        if needs.is_some_and(|s| s != sched) {
            return fail(format!("incompatible scheduler flag `{flag}'"));
        }
    }
    if !any {
        return fail(format!("invalid scheduler flag `{arg}'"));
    }
    Ok(flags)
}

/// `process_options` for one argument vector (without `argv[0]`).
fn parse_line(args: &[String]) -> Result<Command, CliError> {
    let mut sc = Scanner::new(args);
    let Some(Ok(first)) = sc.next_opt() else {
        return Err(CliError::TryHelp);
    };
    let role = |arg: Option<&str>| match arg {
        Some("master") => Some(DaemonRole::Master),
        Some("backup") => Some(DaemonRole::Backup),
        _ => None,
    };
    let mut daemon_role = DaemonRole::Master;
    let cmd = match first.key {
        Key::AddService => Cmd::Add,
        Key::EditService => Cmd::Edit,
        Key::DeleteService => Cmd::Del,
        Key::AddServer => Cmd::AddDest,
        Key::EditServer => Cmd::EditDest,
        Key::DeleteServer => Cmd::DelDest,
        Key::Clear => Cmd::Flush,
        Key::List => Cmd::List,
        Key::Zero => Cmd::Zero,
        Key::Set => Cmd::Timeout,
        Key::Restore => Cmd::Restore,
        Key::Save => Cmd::Save,
        Key::StartDaemon => {
            daemon_role = role(first.arg)
                .ok_or_else(|| CliError::Fail("illegal start-daemon parameter specified".into()))?;
            Cmd::StartDaemon
        }
        Key::StopDaemon => {
            daemon_role = role(first.arg)
                .ok_or_else(|| CliError::Fail("illegal start_daemon specified".into()))?;
            Cmd::StopDaemon
        }
        Key::Help => return Ok(Command::Help),
        Key::Version => return Ok(Command::Version),
        _ => return Err(CliError::TryHelp),
    };

    let mut st = State::new(daemon_role);
    while let Some(found) = sc.next_opt() {
        match found {
            Ok(f) => st.option(f)?,
            Err((e, word)) => return Err(CliError::Popt(format!("{word}: {}", e.text()))),
        }
    }

    let mut leftovers = sc.into_leftovers().into_iter();
    let mut set_values = [0u32; 3];
    if cmd == Cmd::Timeout {
        let (Some(a), Some(b), Some(c)) = (leftovers.next(), leftovers.next(), leftovers.next())
        else {
            return fail("--set option requires 3 timeout values");
        };
        set_values = [
            timeout_value(a, 0)?,
            timeout_value(b, 0)?,
            timeout_value(c, 0)?,
        ];
    }
    if let Some(word) = leftovers.next() {
        return fail(format!("unexpected argument {word}"));
    }
    if !st.sched_flags_arg.is_empty() {
        st.svc_flags &= !(SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3);
        st.svc_flags |= parse_sched_flags(&st.sched, &st.sched_flags_arg)?;
    }

    table::generic_opt_check(cmd, st.options).map_err(CliError::Fail)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if st.fwmark == 0 && st.svc_port == 0 && st.svc_flags & SVC_F_PERSISTENT == 0 {
            return fail("Zero port specified for non-persistent service");
        }
        if st.svc_flags & SVC_F_ONEPACKET != 0 && st.fwmark == 0 && st.svc_proto != Some(Proto::Udp)
        {
            return fail("One-Packet Scheduling is only for UDP virtual services");
        }
        if st.sched.is_empty() {
            st.sched = DEFAULT_SCHEDULER.to_string();
        }
    }
    if cmd == Cmd::StartDaemon && st.mcast_ifn.is_empty() {
        st.mcast_ifn = DEFAULT_MCAST_IFN.to_string();
    }
    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if st.fwmark == 0 && matches!(st.fwd, Fwd::Tunnel | Fwd::Route) {
            st.dest_port = st.svc_port;
        }
        if af_of(st.dest_addr) != st.svc_af && st.fwd != Fwd::Tunnel {
            return fail("Different address family is allowed only for tunneling servers");
        }
        let tun_opts = [
            optc::TUN_TYPE,
            optc::TUN_PORT,
            optc::TUN_NOCSUM,
            optc::TUN_CSUM,
            optc::TUN_REMCSUM,
        ];
        if tun_opts.iter().any(|&o| st.has(o)) && st.fwd != Fwd::Tunnel {
            return fail("Tunnel options conflict with forward method");
        }
        let tun_index = match st.tun_type {
            TunKind::Ipip => 0,
            TunKind::Gue => 1,
            TunKind::Gre => 2,
        };
        table::tunnel_opt_check(tun_index, st.options).map_err(CliError::Fail)?;
    }

    let op = match cmd {
        Cmd::List => {
            let any = |slots: &[usize]| slots.iter().any(|&o| st.has(o));
            if (any(&[optc::CONNECTION, optc::TIMEOUT, optc::DAEMON])
                && any(&[optc::STATS, optc::RATE, optc::THRESHOLDS]))
                || (any(&[optc::TIMEOUT, optc::DAEMON]) && st.has(optc::PERSISTENTCONN))
            {
                return fail("options conflicts in the list command");
            }
            return Ok(Command::List(ListOpts {
                service: st.has(optc::SERVICE).then(|| st.service_id()),
                numeric: st.has(optc::NUMERIC),
                connection: st.has(optc::CONNECTION),
                timeout: st.has(optc::TIMEOUT),
                daemon: st.has(optc::DAEMON),
                stats: st.has(optc::STATS),
                rate: st.has(optc::RATE),
                thresholds: st.has(optc::THRESHOLDS),
                persistent_conn: st.has(optc::PERSISTENTCONN),
                tun_info: st.has(optc::TUN_INFO),
                nosort: st.has(optc::NOSORT),
                exact: st.has(optc::EXACT),
            }));
        }
        Cmd::Restore => return Ok(Command::Restore),
        Cmd::Save => {
            return Ok(Command::Save {
                numeric: st.has(optc::NUMERIC),
            });
        }
        Cmd::Flush => Op::Flush,
        Cmd::Add => Op::AddService(st.service_spec()),
        Cmd::Edit => Op::EditService(st.service_spec()),
        Cmd::Del => Op::DeleteService(st.service_id()),
        Cmd::Zero => {
            let everything = st.fwmark == 0 && st.svc_addr.is_unspecified() && st.svc_port == 0;
            Op::Zero((st.has(optc::SERVICE) && !everything).then(|| st.service_id()))
        }
        Cmd::AddDest => Op::AddDest {
            service: st.service_id(),
            dest: st.dest_spec(),
        },
        Cmd::EditDest => Op::EditDest {
            service: st.service_id(),
            dest: st.dest_spec(),
        },
        Cmd::DelDest => Op::DeleteDest {
            service: st.service_id(),
            addr: st.dest_addr,
            port: st.dest_port,
        },
        Cmd::Timeout => Op::SetTimeouts {
            tcp: set_values[0],
            tcpfin: set_values[1],
            udp: set_values[2],
        },
        Cmd::StartDaemon => Op::StartDaemon(DaemonSpec {
            role: st.role,
            mcast_ifn: st.mcast_ifn.clone(),
            syncid: st.syncid,
            maxlen: st.sync_maxlen,
            group: st.mcast_group,
            port: st.mcast_port,
            ttl: st.mcast_ttl,
        }),
        Cmd::StopDaemon => Op::StopDaemon(st.role),
    };
    Ok(Command::Apply(op))
}

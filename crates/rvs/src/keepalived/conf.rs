// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived.conf's `virtual_server` world as values: virtual servers,
//! their real servers and checkers, with keepalived's defaults and
//! inheritance resolved (checker ← real server ← virtual server ←
//! keepalived's default).
//!
//! `global_defs`, `vrrp_*` and the other blocks of keepalived's VRRP side
//! are accepted and ignored; an unknown keyword is a warning with its file
//! and line (the statement is skipped, as keepalived does); a bad value, a
//! missing one or an unbalanced brace refuses the whole file.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rvs_proto::{Fwd, Proto, SVC_F_ONEPACKET, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3};

use super::lex::{self, ConfError, Node, Pos, err_at};

/// keepalived's default `delay_loop`.
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `virtual_server` blocks, in file order.
    pub services: Vec<VirtualServer>,
}

/// What a `virtual_server` line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VsAddr {
    /// `virtual_server IP [PORT]`.
    Addr(IpAddr, u16),
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`: the group's members.
    Group(String, Vec<GroupMember>),
}

/// One line of a `virtual_server_group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupMember {
    /// An address (ranges are expanded) and port.
    Addr(IpAddr, u16),
    /// A firewall mark.
    Fwmark(u32),
}

/// A `virtual_server` block.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    /// Its address, mark or group.
    pub addr: VsAddr,
    /// Where the block starts.
    pub pos: Pos,
    /// `lvs_sched`/`lb_algo` (default `wlc`, as ipvsadm).
    pub sched: String,
    /// `lvs_sched` flags and `ops`, as `SVC_F_*` bits.
    pub sched_flags: u32,
    /// `lvs_method`/`lb_kind` (default NAT, as keepalived).
    pub fwd: Fwd,
    /// `protocol` (default TCP).
    pub proto: Proto,
    /// `persistence_timeout` (seconds), if persistent.
    pub persistence_timeout: Option<u32>,
    /// `persistence_granularity`: IPv4 mask (host order) or IPv6 prefix.
    pub persistence_granularity: Option<u32>,
    /// `ip_family inet6` (only matters for fwmark services).
    pub ipv6: Option<bool>,
    /// `alpha`: real servers start down until their first success.
    pub alpha: bool,
    /// `omega` (accepted; see the README).
    pub omega: bool,
    /// `quorum` (default 1).
    pub quorum: u32,
    /// `hysteresis` (default 0).
    pub hysteresis: u32,
    /// `sorry_server IP [PORT]`.
    pub sorry_server: Option<(IpAddr, u16)>,
    /// `sorry_server_inhibit`.
    pub sorry_server_inhibit: bool,
    /// `sorry_server_lvs_method` (default: the service's).
    pub sorry_server_fwd: Option<Fwd>,
    /// `quorum_up` script.
    pub quorum_up: Option<String>,
    /// `quorum_down` script.
    pub quorum_down: Option<String>,
    /// The real servers.
    pub reals: Vec<RealServer>,
}

/// A `real_server` block.
#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    /// Address.
    pub addr: IpAddr,
    /// Port (default: the virtual server's).
    pub port: u16,
    /// Where the block starts.
    pub pos: Pos,
    /// `weight` (default 1).
    pub weight: u32,
    /// Forwarding method (its own `lvs_method`, else the service's).
    pub fwd: Fwd,
    /// `inhibit_on_failure` (its own or the virtual server's): weight 0
    /// instead of removal when down.
    pub inhibit_on_failure: bool,
    /// `notify_up` script.
    pub notify_up: Option<String>,
    /// `notify_down` script.
    pub notify_down: Option<String>,
    /// `uthreshold`.
    pub uthreshold: u32,
    /// `lthreshold`.
    pub lthreshold: u32,
    /// Its checkers (none: always up, as keepalived).
    pub checkers: Vec<Checker>,
}

/// Timing of one checker, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `delay_loop`: between two checks once settled.
    pub delay_loop: Duration,
    /// `connect_timeout`: bound of one attempt.
    pub connect_timeout: Duration,
    /// `retry`/`nb_get_retry`: failed attempts retried before down.
    pub retry: u32,
    /// `delay_before_retry`: between a failed attempt and its retry.
    pub delay_before_retry: Duration,
    /// `warmup`: the first attempt waits a random time up to this.
    pub warmup: Option<Duration>,
}

/// A checker block.
#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    /// What it checks.
    pub kind: CheckKind,
    /// `connect_ip` (default: the real server's address).
    pub connect_ip: IpAddr,
    /// `connect_port` (default: the real server's port).
    pub connect_port: u16,
    /// `bindto`: source address.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: source port.
    pub bind_port: Option<u16>,
    /// `fwmark`: the mark (SO_MARK) of the checker's packets.
    pub fwmark: Option<u32>,
    /// Timing.
    pub timing: Timing,
    /// `alpha` (its own or the virtual server's).
    pub alpha: bool,
    /// Where the block starts.
    pub pos: Pos,
}

/// The checkers rvs runs.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// `TCP_CHECK`: a connect.
    Tcp,
    /// `HTTP_GET` (`tls` false) or `SSL_GET` (true).
    Http {
        /// SSL_GET.
        tls: bool,
        /// `enable_sni`: SSL_GET sends the virtualhost as SNI.
        sni: bool,
        /// The `url` blocks.
        urls: Vec<Url>,
        /// `virtualhost` of the checker (or of the virtual server).
        virtualhost: Option<String>,
        /// `http_protocol` (`1.0`, `1.0C`, `1.1`; default 1.0).
        http_protocol: String,
    },
    /// `MISC_CHECK`.
    Misc {
        /// `misc_path`: the command line (split on blanks).
        path: String,
        /// `misc_timeout` (default: delay_loop).
        timeout: Duration,
        /// `misc_dynamic`.
        dynamic: bool,
    },
    /// `DNS_CHECK`: one UDP query; up on a reply with the query's id and
    /// rcode 0.
    Dns {
        /// `type` as its RR type number (default SOA, 6).
        qtype: u16,
        /// `name` (default ".").
        name: String,
    },
    /// `SMTP_CHECK`: the 220 banner, `HELO helo_name` answered by 250.
    Smtp {
        /// `helo_name` (default keepalived's `smtpchecker.keepalived.org`).
        helo: String,
    },
    /// `UDP_CHECK`: a datagram of `payload`.
    Udp {
        /// `payload` (hex in the file; empty: an empty datagram).
        payload: Vec<u8>,
        /// `require_reply`: a reply must come (`Some`), and start with these
        /// bytes when not empty (only then are the lengths checked, as in
        /// keepalived's check_udp.c).
        require_reply: Option<Vec<u8>>,
        /// The wildcard nibbles (`x`) of `require_reply`'s data: bits set
        /// are not compared (empty: none).
        reply_mask: Vec<u8>,
        /// `min_reply_length` (default 0).
        min_len: u16,
        /// `max_reply_length` (default 255).
        max_len: u16,
    },
    /// `PING_CHECK`: an ICMP (ICMPv6) echo answered.
    Ping,
    /// `FILE_CHECK`: the number in a `track_file`'s file (keepalived >= 2.2).
    File(FileCheck),
}

/// A `FILE_CHECK` with its `track_file` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCheck {
    /// The `track_file` name.
    pub name: String,
    /// Its `file`.
    pub path: String,
    /// The FILE_CHECK's `weight`, else the track_file's (default 1).
    pub weight: i32,
    /// `reverse` (of the same `weight` line).
    pub reverse: bool,
    /// The track_file's `init_file`: the value and `overwrite`.
    pub init: Option<(i64, bool)>,
}

/// keepalived's IPVS_WEIGHT_FAULT: a tracked value this low (or lower)
/// puts the checker down.
pub const WEIGHT_FAULT: i64 = i32::MIN as i64;

impl FileCheck {
    /// keepalived's rule for a value read from the file: `None` when the
    /// checker is down, else the change it makes to the real server's
    /// weight. Weight 0: any non-zero value is down (`reverse`: zero is
    /// down), no weight change. Otherwise `value * weight` (negated with
    /// `reverse`) is added to the real server's weight, unless it is
    /// `<= -2^31`, which is down.
    pub fn status(&self, value: i64) -> Option<i64> {
        if self.weight == 0 {
            return ((value != 0) == self.reverse).then_some(0);
        }
        let sign = if self.reverse { -1 } else { 1 };
        let v = value.saturating_mul(i64::from(self.weight) * sign);
        let v = v.clamp(WEIGHT_FAULT, i64::from(i32::MAX));
        (v != WEIGHT_FAULT).then_some(v)
    }
}

/// A file's number as keepalived reads it (`strtol(buf, NULL, 0)` of its
/// first 127 bytes): blanks, a sign, then `0x` hex, `0` octal or decimal
/// digits up to the first other character; no digits: 0. `None`: out of
/// range (-2^31..=2^31), which keepalived ignores (the last value stays).
pub fn track_value(text: &[u8]) -> Option<i64> {
    let t = &text[..text.len().min(127)];
    let mut i = t.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let neg = match t.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let rest = &t[i..];
    let (radix, digits) = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, &rest[2..]),
        [b'0', ..] => (8, rest),
        _ => (10, rest),
    };
    let mut v: i64 = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        v = v.checked_mul(i64::from(radix))?.checked_add(i64::from(d))?;
    }
    let v = if neg { -v } else { v };
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&v)
        .then_some(v)
}

/// A top-level `track_file NAME { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrackFile {
    path: String,
    weight: i32,
    reverse: bool,
    init: Option<(i64, bool)>,
}

/// keepalived's DNS_CHECK types and their RR type numbers.
pub const DNS_TYPES: [(&str, u16); 7] = [
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
];

/// keepalived's default SMTP_CHECK `helo_name` (check_smtp.h).
pub const SMTP_DEFAULT_HELO: &str = "smtpchecker.keepalived.org";

/// A `url` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `path`.
    pub path: String,
    /// `digest`: MD5 of the body, lower-case hex.
    pub digest: Option<String>,
    /// `status_code` ranges (inclusive); empty: 200-299.
    pub status: Vec<(u16, u16)>,
    /// `virtualhost` of this url.
    pub virtualhost: Option<String>,
    /// `regex`: the body must match it (with `regex_no_match`: must not).
    pub regex: Option<String>,
    /// `regex_no_match`.
    pub regex_no_match: bool,
}

impl VirtualServer {
    /// The sorry server as a real server (weight 1, no checkers).
    pub fn sorry(&self) -> Option<RealServer> {
        let (addr, port) = self.sorry_server?;
        Some(RealServer {
            addr,
            port,
            pos: self.pos.clone(),
            weight: 1,
            fwd: self.sorry_server_fwd.unwrap_or(self.fwd),
            inhibit_on_failure: self.sorry_server_inhibit,
            notify_up: None,
            notify_down: None,
            uthreshold: 0,
            lthreshold: 0,
            checkers: Vec::new(),
        })
    }
}

impl Url {
    /// Whether `code` is an accepted status.
    pub fn status_ok(&self, code: u16) -> bool {
        if self.status.is_empty() {
            return (200..300).contains(&code);
        }
        self.status.iter().any(|&(a, b)| a <= code && code <= b)
    }
}

/// Blocks and keywords of keepalived's other parts: accepted, ignored.
fn ignored_top(key: &str) -> bool {
    key == "global_defs"
        || key.starts_with("vrrp_")
        || key.starts_with("garp_")
        || matches!(
            key,
            "static_ipaddress"
                | "static_routes"
                | "static_rules"
                | "linkbeat_use_polling"
                | "net_namespace"
                | "instance"
                | "use_pid_dir"
                | "bfd_instance"
                | "track_process"
                | "SSL"
        )
}

/// Parse `path` (with its includes): the configuration and its warnings.
pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfError> {
    let mut warnings = Vec::new();
    let tree = lex::parse_file(path, &mut warnings)?;
    let conf = build(&tree, &mut warnings)?;
    Ok((conf, warnings))
}

/// Values of a `virtual_server` or `real_server` that its children inherit.
#[derive(Debug, Clone, Copy, Default)]
struct Inherit {
    delay_loop: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    inhibit_on_failure: Option<bool>,
    alpha: Option<bool>,
    warmup: Option<Duration>,
}

impl Inherit {
    /// Take an inheritable keyword; false if `n` is not one.
    fn take(&mut self, n: &Node) -> Result<bool, ConfError> {
        match n.key.as_str() {
            "delay_loop" => self.delay_loop = Some(duration(n)?),
            "connect_timeout" => self.connect_timeout = Some(duration(n)?),
            "retry" | "nb_get_retry" => self.retry = Some(number(n, 0, u32::MAX.into())? as u32),
            "delay_before_retry" => self.delay_before_retry = Some(duration(n)?),
            "inhibit_on_failure" => self.inhibit_on_failure = Some(flag(n)?),
            "alpha" => self.alpha = Some(flag(n)?),
            "warmup" => self.warmup = Some(duration(n)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn over(self, parent: Inherit) -> Inherit {
        Inherit {
            delay_loop: self.delay_loop.or(parent.delay_loop),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            inhibit_on_failure: self.inhibit_on_failure.or(parent.inhibit_on_failure),
            alpha: self.alpha.or(parent.alpha),
            warmup: self.warmup.or(parent.warmup),
        }
    }
}

fn unknown(n: &Node, warnings: &mut Vec<String>) {
    warnings.push(format!("{}: Unknown keyword '{}'", n.pos, n.key));
}

fn unsupported(n: &Node, warnings: &mut Vec<String>) {
    warnings.push(format!(
        "{}: '{}' is not supported by rvs yet; ignored",
        n.pos, n.key
    ));
}

fn no_block(n: &Node) -> Result<(), ConfError> {
    if n.block.is_some() {
        return Err(err_at(&n.pos, format!("'{}' takes no block", n.key)));
    }
    Ok(())
}

fn block(n: &Node) -> Result<&[Node], ConfError> {
    n.block
        .as_deref()
        .ok_or_else(|| err_at(&n.pos, format!("'{}' needs a block {{ ... }}", n.key)))
}

/// The one value of `n`.
fn value(n: &Node) -> Result<&str, ConfError> {
    no_block(n)?;
    match n.args.as_slice() {
        [v] => Ok(v),
        [] => Err(err_at(&n.pos, format!("'{}' needs a value", n.key))),
        _ => Err(err_at(&n.pos, format!("'{}' takes one value", n.key))),
    }
}

/// A keyword without a value, or with `true`/`false`-like one.
fn flag(n: &Node) -> Result<bool, ConfError> {
    no_block(n)?;
    match n.args.first().map(String::as_str) {
        None | Some("true") | Some("on") | Some("yes") => Ok(true),
        Some("false") | Some("off") | Some("no") => Ok(false),
        Some(v) => Err(err_at(
            &n.pos,
            format!("'{}' takes no value (got '{v}')", n.key),
        )),
    }
}

fn number(n: &Node, min: u64, max: u64) -> Result<u64, ConfError> {
    let v = value(n)?;
    match v.parse::<u64>() {
        Ok(x) if (min..=max).contains(&x) => Ok(x),
        _ => Err(err_at(
            &n.pos,
            format!("'{}': invalid number '{v}' (expected {min}..={max})", n.key),
        )),
    }
}

/// Seconds, decimals allowed (keepalived's timers), up to a day... or more.
fn duration_text(pos: &Pos, key: &str, v: &str) -> Result<Duration, ConfError> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && (0.0..=4_294_967.0).contains(&x) => {
            Ok(Duration::from_micros((x * 1e6).round() as u64))
        }
        _ => Err(err_at(pos, format!("'{key}': invalid time '{v}'"))),
    }
}

fn duration(n: &Node) -> Result<Duration, ConfError> {
    duration_text(&n.pos, &n.key, value(n)?)
}

fn ip(pos: &Pos, v: &str) -> Result<IpAddr, ConfError> {
    v.parse()
        .map_err(|_| err_at(pos, format!("invalid address '{v}'")))
}

fn port(pos: &Pos, v: &str) -> Result<u16, ConfError> {
    v.parse()
        .map_err(|_| err_at(pos, format!("invalid port '{v}'")))
}

/// `IP [PORT]` of `n`.
fn addr_port(n: &Node) -> Result<(IpAddr, u16), ConfError> {
    match n.args.as_slice() {
        [a] => Ok((ip(&n.pos, a)?, 0)),
        [a, p] => Ok((ip(&n.pos, a)?, port(&n.pos, p)?)),
        [] => Err(err_at(&n.pos, format!("'{}' needs an address", n.key))),
        _ => Err(err_at(
            &n.pos,
            format!("'{}' takes an address and a port", n.key),
        )),
    }
}

fn method(n: &Node) -> Result<Fwd, ConfError> {
    no_block(n)?;
    match n.args.first().map(String::as_str) {
        Some("NAT") => Ok(Fwd::Masq),
        Some("DR") => Ok(Fwd::Route),
        Some("TUN") => Ok(Fwd::Tunnel),
        Some(v) => Err(err_at(
            &n.pos,
            format!("'{}': unknown method '{v}' (NAT, DR or TUN)", n.key),
        )),
        None => Err(err_at(&n.pos, format!("'{}' needs a value", n.key))),
    }
}

/// `virtual_server_group NAME { … }` members.
fn group_members(n: &Node) -> Result<Vec<GroupMember>, ConfError> {
    let mut out = Vec::new();
    for m in block(n)? {
        if m.key == "fwmark" {
            let mark = match m.args.first() {
                Some(v) => v.parse::<u32>().ok().filter(|&x| x > 0),
                None => None,
            };
            let mark = mark.ok_or_else(|| err_at(&m.pos, "fwmark needs a mark 1..=4294967295"))?;
            out.push(GroupMember::Fwmark(mark));
            continue;
        }
        let port = match m.args.first() {
            Some(p) => port(&m.pos, p)?,
            None => 0,
        };
        // IP, or IP-LAST (a range of the last byte/hextet).
        let (first, last) = match m.key.split_once('-') {
            Some((a, l)) => (a, Some(l)),
            None => (m.key.as_str(), None),
        };
        if first.contains('/') {
            return Err(err_at(
                &m.pos,
                "address/prefix group members are not supported by rvs yet",
            ));
        }
        let a = ip(&m.pos, first)?;
        match (a, last) {
            (a, None) => out.push(GroupMember::Addr(a, port)),
            (IpAddr::V4(v4), Some(l)) => {
                let o = v4.octets();
                let l: u8 = l
                    .parse()
                    .ok()
                    .filter(|&l| l >= o[3])
                    .ok_or_else(|| err_at(&m.pos, format!("invalid range '{}'", m.key)))?;
                for x in o[3]..=l {
                    out.push(GroupMember::Addr(IpAddr::from([o[0], o[1], o[2], x]), port));
                }
            }
            (IpAddr::V6(v6), Some(l)) => {
                let s = v6.segments();
                let l = u16::from_str_radix(l, 16)
                    .ok()
                    .filter(|&l| l >= s[7])
                    .ok_or_else(|| err_at(&m.pos, format!("invalid range '{}'", m.key)))?;
                for x in s[7]..=l {
                    let mut t = s;
                    t[7] = x;
                    out.push(GroupMember::Addr(IpAddr::from(t), port));
                }
            }
        }
    }
    Ok(out)
}

/// Statements into a configuration.
pub fn build(tree: &[Node], warnings: &mut Vec<String>) -> Result<Config, ConfError> {
    // Groups first: a virtual_server may name one defined after it.
    let mut groups = std::collections::HashMap::new();
    for n in tree {
        if n.key == "virtual_server_group" {
            let name = value_of_block(n)?;
            groups.insert(name.to_string(), group_members(n)?);
        }
    }
    // track_file blocks too: a FILE_CHECK may name one defined after it.
    let mut tracks = std::collections::HashMap::new();
    for n in tree {
        if n.key == "track_file" || n.key == "vrrp_track_file" {
            let name = value_of_block(n)?;
            if tracks.contains_key(name) {
                return Err(err_at(
                    &n.pos,
                    format!("track_file '{name}' is defined twice"),
                ));
            }
            tracks.insert(name.to_string(), track_file(n, warnings)?);
        }
    }
    let mut services = Vec::new();
    for n in tree {
        match n.key.as_str() {
            "virtual_server" => services.push(virtual_server(n, &groups, &tracks, warnings)?),
            "virtual_server_group" | "track_file" | "vrrp_track_file" => {}
            k if ignored_top(k) => {}
            _ => unknown(n, warnings),
        }
    }
    Ok(Config { services })
}

/// `track_file NAME { file PATH; weight N [reverse]; init_file [V] [overwrite] }`.
fn track_file(n: &Node, warnings: &mut Vec<String>) -> Result<TrackFile, ConfError> {
    let mut path = None;
    let mut weight = None;
    let mut reverse = false;
    let mut init = None;
    for c in block(n)? {
        match c.key.as_str() {
            "file" => {
                if path.is_some() {
                    return Err(err_at(&c.pos, "track_file: 'file' is set twice"));
                }
                path = Some(value(c)?.to_string());
            }
            "weight" => {
                if weight.is_some() {
                    return Err(err_at(&c.pos, "track_file: 'weight' is set twice"));
                }
                let (w, r) = track_weight(c, 254)?;
                (weight, reverse) = (Some(w), r);
            }
            "init_file" => {
                no_block(c)?;
                let mut value = 0i64;
                let mut overwrite = false;
                for a in &c.args {
                    if a == "overwrite" {
                        overwrite = true;
                        continue;
                    }
                    value = a
                        .parse::<i32>()
                        .map_err(|_| err_at(&c.pos, format!("init_file: invalid value '{a}'")))?
                        .into();
                    if !(-254..=254).contains(&value) {
                        warnings.push(format!(
                            "{}: track_file init value {value} is outside the sensible range [-254, 254]",
                            c.pos
                        ));
                    }
                }
                init = Some((value, overwrite));
            }
            _ => unknown(c, warnings),
        }
    }
    Ok(TrackFile {
        path: path.ok_or_else(|| err_at(&n.pos, "track_file needs a 'file'"))?,
        weight: weight.unwrap_or(1),
        reverse,
        init,
    })
}

/// `weight N [reverse|noreverse]` of a track_file (|N| <= `max`) or a
/// FILE_CHECK.
fn track_weight(c: &Node, max: i32) -> Result<(i32, bool), ConfError> {
    no_block(c)?;
    let Some((w, opts)) = c.args.split_first() else {
        return Err(err_at(&c.pos, "'weight' needs a value"));
    };
    let w = w
        .parse::<i32>()
        .ok()
        .filter(|w| (-max..=max).contains(w))
        .ok_or_else(|| {
            err_at(
                &c.pos,
                format!("'weight': invalid number '{w}' (expected -{max}..={max})"),
            )
        })?;
    let reverse = match opts {
        [] => false,
        [r] if r == "reverse" => true,
        [r] if r == "noreverse" => false,
        _ => {
            return Err(err_at(
                &c.pos,
                format!("'weight': unknown option '{}' (reverse)", opts.join(" ")),
            ));
        }
    };
    Ok((w, reverse))
}

/// `FILE_CHECK { track_file NAME; weight N [reverse] }` of a real server.
fn file_check(
    n: &Node,
    rs: &RealServer,
    tracks: &std::collections::HashMap<String, TrackFile>,
    warnings: &mut Vec<String>,
) -> Result<Checker, ConfError> {
    let mut name = None;
    let mut weight = (0, false);
    for c in block(n)? {
        match c.key.as_str() {
            "track_file" => name = Some((value(c)?.to_string(), c.pos.clone())),
            "weight" => weight = track_weight(c, i32::MAX)?,
            _ => unknown(c, warnings),
        }
    }
    let (name, pos) = name.ok_or_else(|| err_at(&n.pos, "FILE_CHECK needs a track_file"))?;
    let t = tracks
        .get(&name)
        .ok_or_else(|| err_at(&pos, format!("track_file '{name}' is not defined")))?;
    // keepalived: a FILE_CHECK weight of 0 takes the track_file's (and its
    // reverse).
    let (weight, reverse) = if weight.0 == 0 {
        (t.weight, t.reverse)
    } else {
        weight
    };
    Ok(Checker {
        kind: CheckKind::File(FileCheck {
            name,
            path: t.path.clone(),
            weight,
            reverse,
            init: t.init,
        }),
        connect_ip: rs.addr,
        connect_port: rs.port,
        bindto: None,
        bind_port: None,
        fwmark: None,
        // Read every second (keepalived reacts at once, through inotify);
        // no retries, no alpha: the value is known at the start.
        timing: Timing {
            delay_loop: FILE_POLL,
            connect_timeout: FILE_POLL,
            retry: 0,
            delay_before_retry: FILE_POLL,
            warmup: None,
        },
        alpha: false,
        pos: n.pos.clone(),
    })
}

/// How often a FILE_CHECK reads its file.
pub const FILE_POLL: Duration = Duration::from_secs(1);

/// The single argument of a block statement (`virtual_server_group NAME {`).
fn value_of_block(n: &Node) -> Result<&str, ConfError> {
    block(n)?;
    match n.args.as_slice() {
        [v] => Ok(v),
        _ => Err(err_at(&n.pos, format!("'{}' needs one name", n.key))),
    }
}

fn virtual_server(
    n: &Node,
    groups: &std::collections::HashMap<String, Vec<GroupMember>>,
    tracks: &std::collections::HashMap<String, TrackFile>,
    warnings: &mut Vec<String>,
) -> Result<VirtualServer, ConfError> {
    let body = block(n)?;
    let addr = match n.args.as_slice() {
        [k, m] if k == "fwmark" => VsAddr::Fwmark(
            m.parse::<u32>()
                .ok()
                .filter(|&x| x > 0)
                .ok_or_else(|| err_at(&n.pos, format!("invalid fwmark '{m}'")))?,
        ),
        [k, name] if k == "group" => match groups.get(name) {
            Some(m) => VsAddr::Group(name.clone(), m.clone()),
            None => {
                return Err(err_at(
                    &n.pos,
                    format!("virtual_server_group '{name}' is not defined"),
                ));
            }
        },
        _ => {
            let (a, p) = addr_port(n)?;
            VsAddr::Addr(a, p)
        }
    };
    let mut vs = VirtualServer {
        addr,
        pos: n.pos.clone(),
        sched: "wlc".into(),
        sched_flags: 0,
        fwd: Fwd::Masq,
        proto: Proto::Tcp,
        persistence_timeout: None,
        persistence_granularity: None,
        ipv6: None,
        alpha: false,
        omega: false,
        quorum: 1,
        hysteresis: 0,
        sorry_server: None,
        sorry_server_inhibit: false,
        sorry_server_fwd: None,
        quorum_up: None,
        quorum_down: None,
        reals: Vec::new(),
    };
    let mut inh = Inherit::default();
    let mut virtualhost = None;
    let mut real_nodes = Vec::new();
    for c in body {
        if inh.take(c)? {
            continue;
        }
        match c.key.as_str() {
            "lvs_sched" | "lb_algo" => {
                no_block(c)?;
                let Some((s, flags)) = c.args.split_first() else {
                    return Err(err_at(&c.pos, format!("'{}' needs a scheduler", c.key)));
                };
                vs.sched = s.clone();
                for f in flags {
                    vs.sched_flags |= sched_flag(&c.pos, f)?;
                }
            }
            "ops" => {
                flag(c)?;
                vs.sched_flags |= SVC_F_ONEPACKET;
            }
            "flag-1" | "sh-fallback" | "mh-fallback" | "flag-2" | "sh-port" | "mh-port"
            | "flag-3" | "hashed" => {
                flag(c)?;
                vs.sched_flags |= sched_flag(&c.pos, &c.key)?;
            }
            "lvs_method" | "lb_kind" => vs.fwd = method(c)?,
            "protocol" => {
                vs.proto = match value(c)? {
                    "TCP" => Proto::Tcp,
                    "UDP" => Proto::Udp,
                    "SCTP" => Proto::Sctp,
                    v => return Err(err_at(&c.pos, format!("unknown protocol '{v}'"))),
                }
            }
            "persistence_timeout" => {
                // keepalived: without a value, 360 s.
                vs.persistence_timeout = Some(if c.args.is_empty() {
                    no_block(c)?;
                    360
                } else {
                    number(c, 1, u32::MAX.into())? as u32
                });
            }
            "persistence_granularity" => {
                let v = value(c)?;
                vs.persistence_granularity = Some(match v.parse::<std::net::Ipv4Addr>() {
                    Ok(m) => u32::from(m),
                    Err(_) => match v.parse::<u32>() {
                        Ok(p) if (1..=128).contains(&p) => p,
                        _ => {
                            return Err(err_at(
                                &c.pos,
                                format!("invalid persistence_granularity '{v}'"),
                            ));
                        }
                    },
                });
            }
            "ip_family" => {
                vs.ipv6 = Some(match value(c)? {
                    "inet" => false,
                    "inet6" => true,
                    v => return Err(err_at(&c.pos, format!("unknown ip_family '{v}'"))),
                })
            }
            "omega" => vs.omega = flag(c)?,
            "quorum" => vs.quorum = number(c, 1, u32::MAX.into())? as u32,
            "hysteresis" => vs.hysteresis = number(c, 0, u32::MAX.into())? as u32,
            "sorry_server" => {
                no_block(c)?;
                vs.sorry_server = Some(addr_port(c)?);
            }
            "sorry_server_inhibit" => vs.sorry_server_inhibit = flag(c)?,
            "sorry_server_lvs_method" => vs.sorry_server_fwd = Some(method(c)?),
            "quorum_up" => vs.quorum_up = Some(script(c)?),
            "quorum_down" => vs.quorum_down = Some(script(c)?),
            "virtualhost" => virtualhost = Some(value(c)?.to_string()),
            "real_server" => real_nodes.push(c),
            "ha_suspend" | "smtp_alert" | "snmp_name" | "persistence_engine" | "retry_attempts" => {
                unsupported(c, warnings)
            }
            _ => unknown(c, warnings),
        }
    }
    vs.alpha = inh.alpha.unwrap_or(false);
    let vport = match &vs.addr {
        VsAddr::Addr(_, p) => *p,
        _ => 0,
    };
    for r in real_nodes {
        let rs = real_server(r, &vs, vport, inh, virtualhost.as_deref(), tracks, warnings)?;
        vs.reals.push(rs);
    }
    if let Some((_, p)) = &mut vs.sorry_server
        && *p == 0
    {
        *p = vport;
    }
    Ok(vs)
}

fn sched_flag(pos: &Pos, f: &str) -> Result<u32, ConfError> {
    Ok(match f {
        "flag-1" | "sh-fallback" | "mh-fallback" => SVC_F_SCHED1,
        "flag-2" | "sh-port" | "mh-port" => SVC_F_SCHED2,
        "flag-3" => SVC_F_SCHED3,
        "ops" => SVC_F_ONEPACKET,
        // Every live service is hashed anyway.
        "hashed" => 0,
        _ => return Err(err_at(pos, format!("unknown scheduler flag '{f}'"))),
    })
}

fn real_server(
    n: &Node,
    vs: &VirtualServer,
    vport: u16,
    parent: Inherit,
    virtualhost: Option<&str>,
    tracks: &std::collections::HashMap<String, TrackFile>,
    warnings: &mut Vec<String>,
) -> Result<RealServer, ConfError> {
    let (addr, mut port) = addr_port(n)?;
    if port == 0 {
        port = vport;
    }
    let mut rs = RealServer {
        addr,
        port,
        pos: n.pos.clone(),
        weight: 1,
        fwd: vs.fwd,
        inhibit_on_failure: false,
        notify_up: None,
        notify_down: None,
        uthreshold: 0,
        lthreshold: 0,
        checkers: Vec::new(),
    };
    let mut inh = Inherit::default();
    let mut checker_nodes = Vec::new();
    for c in n.block.as_deref().unwrap_or_default() {
        if inh.take(c)? {
            continue;
        }
        match c.key.as_str() {
            "weight" => rs.weight = number(c, 0, 65535)? as u32,
            "lvs_method" => rs.fwd = method(c)?,
            "notify_up" => rs.notify_up = Some(script(c)?),
            "notify_down" => rs.notify_down = Some(script(c)?),
            "uthreshold" => rs.uthreshold = number(c, 0, u32::MAX.into())? as u32,
            "lthreshold" => rs.lthreshold = number(c, 0, u32::MAX.into())? as u32,
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK"
            | "UDP_CHECK" | "PING_CHECK" | "FILE_CHECK" => checker_nodes.push(c),
            // BFD_CHECK follows a session of keepalived's BFD process, which
            // rvs does not have.
            "BFD_CHECK" => {
                warnings.push(format!(
                    "{}: {} is not supported by rvs yet; the checker is ignored",
                    c.pos, c.key
                ));
            }
            "smtp_alert" | "virtualhost" => unsupported(c, warnings),
            _ => unknown(c, warnings),
        }
    }
    let inh = inh.over(parent);
    rs.inhibit_on_failure = inh.inhibit_on_failure.unwrap_or(false);
    for c in checker_nodes {
        if c.key == "FILE_CHECK" {
            let ck = file_check(c, &rs, tracks, warnings)?;
            rs.checkers.push(ck);
            continue;
        }
        let cks = checker(c, &rs, inh, virtualhost, warnings)?;
        rs.checkers.extend(cks);
    }
    Ok(rs)
}

/// A script line (`notify_up "/path arg"` or unquoted words).
fn script(n: &Node) -> Result<String, ConfError> {
    no_block(n)?;
    if n.args.is_empty() {
        return Err(err_at(&n.pos, format!("'{}' needs a script", n.key)));
    }
    Ok(n.args.join(" "))
}

/// The connection options every checker but MISC_CHECK takes (keepalived's
/// `install_checker_common_keywords`), also those of an SMTP `host` block.
#[derive(Debug, Clone, Copy, Default)]
struct ConnOpts {
    connect_ip: Option<IpAddr>,
    connect_port: Option<u16>,
    bindto: Option<IpAddr>,
    bind_port: Option<u16>,
    fwmark: Option<u32>,
    connect_timeout: Option<Duration>,
}

impl ConnOpts {
    /// Take a connection keyword; false if `c` is not one.
    fn take(&mut self, c: &Node, warnings: &mut Vec<String>) -> Result<bool, ConfError> {
        match c.key.as_str() {
            "connect_ip" => self.connect_ip = Some(ip(&c.pos, value(c)?)?),
            "connect_port" => self.connect_port = Some(port(&c.pos, value(c)?)?),
            "bindto" => self.bindto = Some(ip(&c.pos, value(c)?)?),
            "bind_port" => self.bind_port = Some(port(&c.pos, value(c)?)?),
            "fwmark" => self.fwmark = Some(number(c, 0, u32::MAX.into())? as u32),
            "connect_timeout" => self.connect_timeout = Some(duration(c)?),
            "bind_if" => unsupported(c, warnings),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn over(self, parent: ConnOpts) -> ConnOpts {
        ConnOpts {
            connect_ip: self.connect_ip.or(parent.connect_ip),
            connect_port: self.connect_port.or(parent.connect_port),
            bindto: self.bindto.or(parent.bindto),
            bind_port: self.bind_port.or(parent.bind_port),
            fwmark: self.fwmark.or(parent.fwmark),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
        }
    }
}

/// keepalived's hex strings (`read_hex_str`, UDP_CHECK `payload` and
/// `require_reply`): words of hex digits, two digits an octet, a digit
/// alone before a blank or the end an octet of its own ("7" is 0x07);
/// with `wildcard`, `x` is a nibble that matches anything. The octets and
/// their mask (bits set: wildcard; empty when there is none).
fn hex_str(n: &Node, wildcard: bool) -> Result<(Vec<u8>, Vec<u8>), ConfError> {
    no_block(n)?;
    let text = n.args.join(" ");
    let bad = || err_at(&n.pos, format!("invalid hex string for '{}'", n.key));
    let nibble = |c: char| -> Result<(u8, u8), ConfError> {
        match c.to_digit(16) {
            Some(d) => Ok((d as u8, 0)),
            None if wildcard && c.eq_ignore_ascii_case(&'x') => Ok((0, 0x0f)),
            None => Err(bad()),
        }
    };
    let (mut data, mut mask) = (Vec::new(), Vec::new());
    let mut it = text.chars().peekable();
    loop {
        while it.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(c) = it.next() else { break };
        let (mut v, mut m) = nibble(c)?;
        if let Some(c2) = it.next_if(|c| *c != ' ' && *c != '\t') {
            let (v2, m2) = nibble(c2)?;
            (v, m) = (v << 4 | v2, m << 4 | m2);
        }
        data.push(v);
        mask.push(m);
    }
    if data.is_empty() {
        return Err(bad());
    }
    if mask.iter().all(|&m| m == 0) {
        mask.clear();
    }
    Ok((data, mask))
}

/// One checker block: one checker, or one per `host` of an SMTP_CHECK.
fn checker(
    n: &Node,
    rs: &RealServer,
    parent: Inherit,
    vs_virtualhost: Option<&str>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Checker>, ConfError> {
    let body = block(n)?;
    let mut inh = Inherit::default();
    let mut co = ConnOpts::default();
    let mut urls = Vec::new();
    let mut virtualhost = None;
    let mut http_protocol = "1.0".to_string();
    let mut sni = false;
    let mut misc_path = None;
    let mut misc_timeout = None;
    let mut misc_dynamic = false;
    let mut dns_type = 6;
    let mut dns_name = ".".to_string();
    let mut helo = SMTP_DEFAULT_HELO.to_string();
    let mut hosts = Vec::new();
    let mut payload = Vec::new();
    let mut require_reply = None;
    let mut reply_mask = Vec::new();
    let mut min_len = 0u16;
    let mut max_len = 255u16;
    let kind = n.key.as_str();
    let is_misc = kind == "MISC_CHECK";
    for c in body {
        if !is_misc && c.key != "connect_timeout" && co.take(c, warnings)? {
            continue;
        }
        if inh.take(c)? {
            continue;
        }
        match (kind, c.key.as_str()) {
            (_, "log_all_failures") => {
                flag(c)?;
            }
            ("HTTP_GET" | "SSL_GET", "url") => urls.push(url(c, warnings)?),
            ("HTTP_GET" | "SSL_GET", "virtualhost") => virtualhost = Some(value(c)?.to_string()),
            ("HTTP_GET" | "SSL_GET", "http_protocol") => {
                http_protocol = match value(c)? {
                    v @ ("1.0" | "1.0C" | "1.1") => v.to_string(),
                    v => return Err(err_at(&c.pos, format!("unknown http_protocol '{v}'"))),
                }
            }
            ("SSL_GET", "enable_sni") => sni = flag(c)?,
            ("HTTP_GET" | "SSL_GET", "fast_recovery" | "sni_name" | "tls_compliant") => {
                unsupported(c, warnings)
            }
            ("MISC_CHECK", "misc_path") => misc_path = Some(script(c)?),
            ("MISC_CHECK", "misc_timeout") => misc_timeout = Some(duration(c)?),
            ("MISC_CHECK", "misc_dynamic") => misc_dynamic = flag(c)?,
            ("MISC_CHECK", "user") => unsupported(c, warnings),
            // keepalived reports a bad type or name and ignores it.
            ("DNS_CHECK", "type") => {
                let v = value(c)?;
                match DNS_TYPES.iter().find(|(t, _)| t.eq_ignore_ascii_case(v)) {
                    Some(&(_, n)) => dns_type = n,
                    None => warnings.push(format!(
                        "{}: Unknown DNS check type {v} - ignoring (A NS CNAME SOA MX TXT AAAA)",
                        c.pos
                    )),
                }
            }
            ("DNS_CHECK", "name") => {
                let v = value(c)?;
                let labels_ok = v == "."
                    || v.trim_end_matches('.')
                        .split('.')
                        .all(|l| !l.is_empty() && l.len() <= 63);
                if labels_ok && v.len() <= 253 {
                    dns_name = v.to_string();
                } else {
                    warnings.push(format!(
                        "{}: DNS_CHECK name '{v}' has an empty or over-long label - ignoring",
                        c.pos
                    ));
                }
            }
            ("SMTP_CHECK", "helo_name") => helo = value(c)?.to_string(),
            ("SMTP_CHECK", "host") => {
                let mut h = ConnOpts::default();
                for hc in block(c)? {
                    if !h.take(hc, warnings)? {
                        unknown(hc, warnings);
                    }
                }
                hosts.push(h);
                warnings.push(format!(
                    "{}: The SMTP_CHECK host block is deprecated. Please define additional checkers.",
                    c.pos
                ));
            }
            ("UDP_CHECK", "payload") => payload = hex_str(c, false)?.0,
            ("UDP_CHECK", "require_reply") => {
                if c.args.is_empty() {
                    no_block(c)?;
                    require_reply = Some(Vec::new());
                } else {
                    let (d, m) = hex_str(c, true)?;
                    require_reply = Some(d);
                    reply_mask = m;
                }
            }
            ("UDP_CHECK", "min_reply_length") => min_len = number(c, 0, 65535)? as u16,
            ("UDP_CHECK", "max_reply_length") => max_len = number(c, 0, 65535)? as u16,
            _ => unknown(c, warnings),
        }
    }
    if kind == "UDP_CHECK" && min_len > max_len {
        warnings.push(format!(
            "{}: UDP_CHECK min_reply_length {min_len} > max_reply_length {max_len} - will always fail",
            n.pos
        ));
    }
    let inh = inh.over(parent);
    let delay_loop = inh.delay_loop.unwrap_or(DEFAULT_DELAY_LOOP);
    let timing = Timing {
        delay_loop,
        connect_timeout: inh.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        retry: inh.retry.unwrap_or(match kind {
            "MISC_CHECK" => 0,
            // check_dns.h: DNS_DEFAULT_RETRY.
            "DNS_CHECK" => 3,
            _ => 1,
        }),
        delay_before_retry: inh.delay_before_retry.unwrap_or(match kind {
            "HTTP_GET" | "SSL_GET" => Duration::from_secs(3),
            // check_dns.c: default_delay_before_retry 0, "will default to
            // delay_loop".
            "DNS_CHECK" => delay_loop,
            _ => Duration::from_secs(1),
        }),
        warmup: inh.warmup,
    };
    let kind = match kind {
        "TCP_CHECK" => CheckKind::Tcp,
        "MISC_CHECK" => CheckKind::Misc {
            path: misc_path.ok_or_else(|| err_at(&n.pos, "MISC_CHECK needs misc_path"))?,
            timeout: misc_timeout.unwrap_or(delay_loop),
            dynamic: misc_dynamic,
        },
        "DNS_CHECK" => CheckKind::Dns {
            qtype: dns_type,
            name: dns_name,
        },
        "SMTP_CHECK" => CheckKind::Smtp { helo },
        "UDP_CHECK" => CheckKind::Udp {
            payload,
            require_reply,
            reply_mask,
            min_len,
            max_len,
        },
        "PING_CHECK" => CheckKind::Ping,
        _ => {
            if urls.is_empty() {
                return Err(err_at(&n.pos, format!("{} needs a url block", n.key)));
            }
            CheckKind::Http {
                tls: n.key == "SSL_GET",
                sni,
                urls,
                virtualhost: virtualhost.or(vs_virtualhost.map(str::to_string)),
                http_protocol,
            }
        }
    };
    // An SMTP_CHECK with `host` blocks checks each host (keepalived 2.x makes
    // them separate checkers); unset options come from the checker's own.
    if hosts.is_empty() {
        hosts.push(ConnOpts::default());
    }
    Ok(hosts
        .into_iter()
        .map(|h| {
            let h = h.over(co);
            Checker {
                kind: kind.clone(),
                connect_ip: h.connect_ip.unwrap_or(rs.addr),
                connect_port: h.connect_port.unwrap_or(rs.port),
                bindto: h.bindto,
                bind_port: h.bind_port,
                fwmark: h.fwmark,
                timing: Timing {
                    connect_timeout: h.connect_timeout.unwrap_or(timing.connect_timeout),
                    ..timing
                },
                alpha: inh.alpha.unwrap_or(false),
                pos: n.pos.clone(),
            }
        })
        .collect())
}

/// `status_code 200 301-302 …`.
fn status_codes(n: &Node) -> Result<Vec<(u16, u16)>, ConfError> {
    no_block(n)?;
    if n.args.is_empty() {
        return Err(err_at(&n.pos, "'status_code' needs a value"));
    }
    let code = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| err_at(&n.pos, format!("invalid status_code '{s}'")))
    };
    n.args
        .iter()
        .map(|a| match a.split_once('-') {
            Some((x, y)) => {
                let (x, y) = (code(x)?, code(y)?);
                if x > y {
                    return Err(err_at(&n.pos, format!("invalid status_code range '{a}'")));
                }
                Ok((x, y))
            }
            None => code(a).map(|c| (c, c)),
        })
        .collect()
}

fn url(n: &Node, warnings: &mut Vec<String>) -> Result<Url, ConfError> {
    let mut u = Url {
        path: String::new(),
        digest: None,
        status: Vec::new(),
        virtualhost: None,
        regex: None,
        regex_no_match: false,
    };
    for c in block(n)? {
        match c.key.as_str() {
            "path" => u.path = value(c)?.to_string(),
            "digest" => {
                let d = value(c)?;
                if d.len() != 32 || !d.chars().all(|x| x.is_ascii_hexdigit()) {
                    return Err(err_at(&c.pos, format!("invalid MD5 digest '{d}'")));
                }
                u.digest = Some(d.to_ascii_lowercase());
            }
            "status_code" => u.status.extend(status_codes(c)?),
            "virtualhost" => u.virtualhost = Some(value(c)?.to_string()),
            "regex" => {
                let r = value(c)?;
                regex::bytes::Regex::new(r)
                    .map_err(|e| err_at(&c.pos, format!("invalid regex '{r}': {e}")))?;
                u.regex = Some(r.to_string());
            }
            "regex_no_match" => u.regex_no_match = flag(c)?,
            "regex_options" | "regex_stack" | "regex_min_offset" | "regex_max_offset" => {
                unsupported(c, warnings)
            }
            _ => unknown(c, warnings),
        }
    }
    if u.path.is_empty() {
        return Err(err_at(&n.pos, "url needs a path"));
    }
    if u.regex_no_match && u.regex.is_none() {
        return Err(err_at(&n.pos, "regex_no_match needs a regex"));
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn parse(text: &str) -> Result<(Config, Vec<String>), ConfError> {
        let mut w = Vec::new();
        let t = lex::parse_text(text, "k.conf", Path::new("/nonexistent"), &mut w)?;
        let c = build(&t, &mut w)?;
        Ok((c, w))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const FULL: &str = r#"
global_defs {
    router_id LVS_TEST
    notification_email { root@localhost }
}
vrrp_instance VI_1 {
    state MASTER
    virtual_ipaddress { 10.0.0.100 }
}
virtual_server 10.0.0.100 80 {
    delay_loop 2
    lvs_sched wrr
    lvs_method DR
    protocol TCP
    persistence_timeout 120
    persistence_granularity 255.255.255.0
    retry 2
    delay_before_retry 1.5
    connect_timeout 3
    inhibit_on_failure
    alpha
    omega
    quorum 2
    hysteresis 1
    sorry_server 10.0.0.99 8080
    sorry_server_inhibit
    sorry_server_lvs_method NAT
    quorum_up "/bin/echo up"
    quorum_down /bin/echo down
    virtualhost www.example.com
    real_server 10.0.0.11 80 {
        weight 3
        uthreshold 100
        lthreshold 10
        notify_up "/bin/echo up"
        notify_down /bin/echo down
        HTTP_GET {
            url {
                path /health
                digest 9B3A0C85A887A256D6939DA88AABD8CD
                status_code 200 301-302
                regex "^ok [0-9]+"
                regex_no_match
            }
            url { path /second }
            connect_ip 10.0.1.11
            connect_port 8080
            bindto 10.0.0.1
            connect_timeout 1
            nb_get_retry 4
            warmup 2
            http_protocol 1.1
        }
        TCP_CHECK {
            delay_before_retry 0.5
        }
    }
    real_server 10.0.0.12 {
        inhibit_on_failure false
        lvs_method NAT
        MISC_CHECK {
            misc_path "/usr/local/bin/check.sh 10.0.0.12"
            misc_timeout 4
            misc_dynamic
        }
    }
}
virtual_server fwmark 7 {
    lb_algo sh sh-port sh-fallback
    lb_kind TUN
    protocol UDP
    real_server 10.0.0.21 53 { TCP_CHECK { } }
}
"#;

    #[test]
    fn every_keyword() {
        let (c, w) = parse(FULL).unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.services.len(), 2);
        let vs = &c.services[0];
        assert_eq!(vs.addr, VsAddr::Addr(ip("10.0.0.100"), 80));
        assert_eq!(vs.pos.line, 10);
        assert_eq!(vs.sched, "wrr");
        assert_eq!(vs.fwd, Fwd::Route);
        assert_eq!(vs.proto, Proto::Tcp);
        assert_eq!(vs.persistence_timeout, Some(120));
        assert_eq!(
            vs.persistence_granularity,
            Some(u32::from(Ipv4Addr::new(255, 255, 255, 0)))
        );
        assert!(vs.alpha && vs.omega && vs.sorry_server_inhibit);
        assert_eq!((vs.quorum, vs.hysteresis), (2, 1));
        assert_eq!(vs.sorry_server, Some((ip("10.0.0.99"), 8080)));
        let sorry = vs.sorry().unwrap();
        assert_eq!((sorry.fwd, sorry.weight), (Fwd::Masq, 1));
        assert!(sorry.inhibit_on_failure);
        assert_eq!(vs.quorum_up.as_deref(), Some("/bin/echo up"));
        assert_eq!(vs.quorum_down.as_deref(), Some("/bin/echo down"));
        let r1 = &vs.reals[0];
        assert_eq!((r1.addr, r1.port, r1.weight), (ip("10.0.0.11"), 80, 3));
        assert_eq!((r1.uthreshold, r1.lthreshold), (100, 10));
        assert!(r1.inhibit_on_failure);
        assert_eq!(r1.fwd, Fwd::Route);
        assert_eq!(r1.notify_up.as_deref(), Some("/bin/echo up"));
        assert_eq!(r1.notify_down.as_deref(), Some("/bin/echo down"));
        let http = &r1.checkers[0];
        assert_eq!(http.connect_ip, ip("10.0.1.11"));
        assert_eq!(http.connect_port, 8080);
        assert_eq!(http.bindto, Some(ip("10.0.0.1")));
        assert!(http.alpha);
        assert_eq!(
            http.timing,
            Timing {
                delay_loop: Duration::from_secs(2),
                connect_timeout: Duration::from_secs(1),
                retry: 4,
                delay_before_retry: Duration::from_millis(1500),
                warmup: Some(Duration::from_secs(2)),
            }
        );
        let CheckKind::Http {
            tls,
            urls,
            virtualhost,
            http_protocol,
            ..
        } = &http.kind
        else {
            panic!("{http:?}")
        };
        assert!(!tls);
        assert_eq!(virtualhost.as_deref(), Some("www.example.com"));
        assert_eq!(http_protocol, "1.1");
        assert_eq!(urls[0].path, "/health");
        assert_eq!(
            urls[0].digest.as_deref(),
            Some("9b3a0c85a887a256d6939da88aabd8cd")
        );
        assert_eq!(urls[0].status, [(200, 200), (301, 302)]);
        assert_eq!(urls[0].regex.as_deref(), Some("^ok [0-9]+"));
        assert!(urls[0].regex_no_match && !urls[1].regex_no_match);
        assert!(urls[0].status_ok(301) && !urls[0].status_ok(204));
        assert!(urls[1].status_ok(204) && !urls[1].status_ok(500));
        let tcp = &r1.checkers[1];
        assert_eq!(tcp.kind, CheckKind::Tcp);
        assert_eq!((tcp.connect_ip, tcp.connect_port), (ip("10.0.0.11"), 80));
        assert_eq!(tcp.timing.retry, 2);
        assert_eq!(tcp.timing.delay_before_retry, Duration::from_millis(500));
        assert_eq!(tcp.timing.connect_timeout, Duration::from_secs(3));
        let r2 = &vs.reals[1];
        assert_eq!(r2.port, 80, "the virtual server's port");
        assert!(!r2.inhibit_on_failure);
        assert_eq!(r2.fwd, Fwd::Masq);
        assert_eq!(
            r2.checkers[0].kind,
            CheckKind::Misc {
                path: "/usr/local/bin/check.sh 10.0.0.12".into(),
                timeout: Duration::from_secs(4),
                dynamic: true,
            }
        );
        let fw = &c.services[1];
        assert_eq!(fw.addr, VsAddr::Fwmark(7));
        assert_eq!(
            (fw.sched.as_str(), fw.sched_flags),
            ("sh", SVC_F_SCHED1 | SVC_F_SCHED2)
        );
        assert_eq!((fw.fwd, fw.proto), (Fwd::Tunnel, Proto::Udp));
        let d = &fw.reals[0].checkers[0];
        // keepalived's defaults.
        assert_eq!(
            d.timing,
            Timing {
                delay_loop: DEFAULT_DELAY_LOOP,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                retry: 1,
                delay_before_retry: Duration::from_secs(1),
                warmup: None,
            }
        );
        assert!(!d.alpha);
    }

    #[test]
    fn groups_and_defaults() {
        let (c, w) = parse(
            "virtual_server_group G {\n  10.0.0.1 80\n  10.0.0.5-7 443\n  fwmark 3\n}\n\
             virtual_server group G {\n  real_server 10.1.0.1 80 {\n    HTTP_GET { url { path / } }\n    \
             MISC_CHECK { misc_path /bin/true }\n  }\n}\n",
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let VsAddr::Group(name, m) = &c.services[0].addr else {
            panic!()
        };
        assert_eq!(name, "G");
        assert_eq!(
            m,
            &[
                GroupMember::Addr(ip("10.0.0.1"), 80),
                GroupMember::Addr(ip("10.0.0.5"), 443),
                GroupMember::Addr(ip("10.0.0.6"), 443),
                GroupMember::Addr(ip("10.0.0.7"), 443),
                GroupMember::Fwmark(3),
            ]
        );
        let vs = &c.services[0];
        assert_eq!(
            (vs.sched.as_str(), vs.fwd, vs.proto),
            ("wlc", Fwd::Masq, Proto::Tcp)
        );
        let ck = &vs.reals[0].checkers;
        assert_eq!(ck[0].timing.delay_before_retry, Duration::from_secs(3));
        assert_eq!(ck[1].timing.retry, 0, "MISC_CHECK: no retry by default");
        let CheckKind::Misc { timeout, .. } = &ck[1].kind else {
            panic!()
        };
        assert_eq!(
            *timeout, DEFAULT_DELAY_LOOP,
            "misc_timeout defaults to delay_loop"
        );
    }

    #[test]
    fn unknown_keywords_warn_with_file_and_line() {
        let (c, w) = parse(
            "frobnicate 1\nvirtual_server 10.0.0.1 80 {\n  bogus_key 1\n  real_server 10.0.0.2 80 {\n    \
             weight 2\n    funky\n    TCP_CHECK { wat 3 }\n    BFD_CHECK { name x }\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(
            w,
            [
                "k.conf:1: Unknown keyword 'frobnicate'",
                "k.conf:3: Unknown keyword 'bogus_key'",
                "k.conf:6: Unknown keyword 'funky'",
                "k.conf:8: BFD_CHECK is not supported by rvs yet; the checker is ignored",
                "k.conf:7: Unknown keyword 'wat'",
            ]
        );
        assert_eq!(c.services[0].reals[0].weight, 2);
        assert_eq!(c.services[0].reals[0].checkers.len(), 1);
    }

    #[test]
    fn ssl_dns_smtp_udp_ping_checkers() {
        let (c, w) = parse(
            "virtual_server 10.0.0.1 443 {\n  delay_loop 3\n  real_server 10.0.0.2 443 {\n    \
             SSL_GET {\n      url { path /h }\n      virtualhost www.example.com\n      \
             enable_sni\n      connect_port 8443\n      bindto 10.0.0.9\n      bind_port 999\n      \
             fwmark 7\n      connect_timeout 2\n    }\n    \
             DNS_CHECK {\n      type aaaa\n      name example.com.\n      connect_ip 10.0.0.3\n    }\n    \
             DNS_CHECK {\n    }\n    \
             SMTP_CHECK {\n      helo_name me.example\n      connect_port 25\n      \
             host {\n        connect_ip 10.0.0.4\n        connect_timeout 4\n      }\n      \
             host {\n        connect_ip 10.0.0.5\n        connect_port 587\n      }\n    }\n    \
             SMTP_CHECK {\n    }\n    \
             UDP_CHECK {\n      payload 1 02ab\n      require_reply 0304 5x\n      \
             min_reply_length 2\n      max_reply_length 9\n    }\n    \
             UDP_CHECK {\n      require_reply\n    }\n    \
             PING_CHECK {\n      connect_ip 10.0.0.6\n      retry 5\n    }\n  }\n}\n",
        )
        .unwrap();
        assert_eq!(
            w,
            [
                "k.conf:24: The SMTP_CHECK host block is deprecated. Please define additional checkers.",
                "k.conf:28: The SMTP_CHECK host block is deprecated. Please define additional checkers.",
            ]
        );
        let ck = &c.services[0].reals[0].checkers;
        assert_eq!(ck.len(), 9);
        let CheckKind::Http {
            tls,
            sni,
            virtualhost,
            ..
        } = &ck[0].kind
        else {
            panic!("{:?}", ck[0])
        };
        assert!(*tls && *sni);
        assert_eq!(virtualhost.as_deref(), Some("www.example.com"));
        assert_eq!(ck[0].connect_port, 8443);
        assert_eq!(ck[0].bindto, Some(ip("10.0.0.9")));
        assert_eq!(ck[0].bind_port, Some(999));
        assert_eq!(ck[0].fwmark, Some(7));
        assert_eq!(ck[0].timing.connect_timeout, Duration::from_secs(2));
        assert_eq!(
            ck[1].kind,
            CheckKind::Dns {
                qtype: 28,
                name: "example.com.".into()
            }
        );
        assert_eq!(ck[1].connect_ip, ip("10.0.0.3"));
        assert_eq!(
            ck[1].timing.retry, 3,
            "DNS_CHECK retries 3 times by default"
        );
        assert_eq!(
            ck[1].timing.delay_before_retry,
            Duration::from_secs(3),
            "DNS_CHECK retries after delay_loop by default"
        );
        assert_eq!(
            ck[2].kind,
            CheckKind::Dns {
                qtype: 6,
                name: ".".into()
            },
            "SOA of the root by default"
        );
        assert_eq!(ck[2].connect_ip, ip("10.0.0.2"));
        // SMTP: one checker per host, options from the checker's own.
        let helo = CheckKind::Smtp {
            helo: "me.example".into(),
        };
        assert_eq!(
            (&ck[3].kind, ck[3].connect_ip, ck[3].connect_port),
            (&helo, ip("10.0.0.4"), 25)
        );
        assert_eq!(ck[3].timing.connect_timeout, Duration::from_secs(4));
        assert_eq!(
            (&ck[4].kind, ck[4].connect_ip, ck[4].connect_port),
            (&helo, ip("10.0.0.5"), 587)
        );
        assert_eq!(ck[4].timing.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(
            ck[5].kind,
            CheckKind::Smtp {
                helo: SMTP_DEFAULT_HELO.into()
            }
        );
        assert_eq!(
            (ck[5].connect_ip, ck[5].connect_port),
            (ip("10.0.0.2"), 443)
        );
        assert_eq!(
            ck[6].kind,
            CheckKind::Udp {
                payload: vec![1, 2, 0xab],
                require_reply: Some(vec![3, 4, 0x50]),
                reply_mask: vec![0, 0, 0x0f],
                min_len: 2,
                max_len: 9
            }
        );
        assert_eq!(
            ck[7].kind,
            CheckKind::Udp {
                payload: vec![],
                require_reply: Some(vec![]),
                reply_mask: vec![],
                min_len: 0,
                max_len: 255
            }
        );
        assert_eq!(ck[8].kind, CheckKind::Ping);
        assert_eq!(ck[8].connect_ip, ip("10.0.0.6"));
        assert_eq!(ck[8].timing.retry, 5);

        let e = |t: &str| parse(t).unwrap_err().to_string();
        let one = |body: &str| {
            format!(
                "virtual_server 10.0.0.1 53 {{\n real_server 10.0.0.2 53 {{\n  {body}\n }}\n}}\n"
            )
        };
        let (c, w) = parse(&one("DNS_CHECK {\n type PTR\n name a..b\n }")).unwrap();
        assert_eq!(
            w,
            [
                "k.conf:4: Unknown DNS check type PTR - ignoring (A NS CNAME SOA MX TXT AAAA)",
                "k.conf:5: DNS_CHECK name 'a..b' has an empty or over-long label - ignoring"
            ]
        );
        assert_eq!(
            c.services[0].reals[0].checkers[0].kind,
            CheckKind::Dns {
                qtype: 6,
                name: ".".into()
            }
        );
        assert_eq!(
            e(&one("UDP_CHECK { payload 0g }")),
            "k.conf:3: invalid hex string for 'payload'"
        );
        assert_eq!(
            e(&one("UDP_CHECK { payload 0x }")),
            "k.conf:3: invalid hex string for 'payload'"
        );
        let (_, w) = parse(&one(
            "UDP_CHECK {\n min_reply_length 9\n max_reply_length 2\n }",
        ))
        .unwrap();
        assert!(w[0].contains("will always fail"), "{w:?}");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            e("virtual_server 10.0.0.1 80 {\n  delay_loop x\n}\n"),
            "k.conf:2: 'delay_loop': invalid time 'x'"
        );
        assert_eq!(
            e("virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.300 80 {\n  }\n}\n"),
            "k.conf:2: invalid address '10.0.0.300'"
        );
        assert_eq!(
            e("virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.3 80 {\n   weight\n  }\n}\n"),
            "k.conf:3: 'weight' needs a value"
        );
        assert_eq!(
            e(
                "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.3 80 {\n   weight 70000\n  }\n}\n"
            ),
            "k.conf:3: 'weight': invalid number '70000' (expected 0..=65535)"
        );
        assert_eq!(
            e("virtual_server 10.0.0.1 99999 {\n}\n"),
            "k.conf:1: invalid port '99999'"
        );
        assert_eq!(
            e("virtual_server 10.0.0.1 80 {\n  lb_kind FOO\n}\n"),
            "k.conf:2: 'lb_kind': unknown method 'FOO' (NAT, DR or TUN)"
        );
        assert_eq!(
            e("virtual_server group NOPE {\n}\n"),
            "k.conf:1: virtual_server_group 'NOPE' is not defined"
        );
        assert_eq!(
            e(
                "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    status_code 200-100\n    path /\n}}}}\n"
            ),
            "k.conf:5: invalid status_code range '200-100'"
        );
        assert_eq!(
            e(
                "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  MISC_CHECK {\n  }\n }\n}\n"
            ),
            "k.conf:3: MISC_CHECK needs misc_path"
        );
        assert_eq!(
            e("virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n"),
            "k.conf:2: '{' is never closed"
        );
    }

    #[test]
    fn file_check_and_track_file() {
        let text = "virtual_server 10.0.0.1 80 {\n\
             real_server 10.0.0.2 80 {\n\
              FILE_CHECK { track_file up }\n\
              FILE_CHECK {\n track_file up\n weight -3 reverse\n }\n\
              FILE_CHECK { track_file drain }\n\
             }\n}\n\
             track_file up {\n file /run/up\n init_file 5 overwrite\n}\n\
             vrrp_track_file drain {\n file /run/drain\n weight 0 reverse\n init_file\n}\n";
        let (c, w) = parse(text).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let cks = &c.services[0].reals[0].checkers;
        let f = |i: usize| match &cks[i].kind {
            CheckKind::File(f) => f.clone(),
            k => panic!("{k:?}"),
        };
        // Defined after its use; the track_file's weight (default 1).
        assert_eq!(
            f(0),
            FileCheck {
                name: "up".into(),
                path: "/run/up".into(),
                weight: 1,
                reverse: false,
                init: Some((5, true)),
            }
        );
        assert_eq!((f(1).weight, f(1).reverse), (-3, true));
        assert_eq!(
            (f(2).weight, f(2).reverse, f(2).init),
            (0, true, Some((0, false)))
        );
        assert_eq!(cks[0].timing.delay_loop, FILE_POLL);
        assert_eq!((cks[0].timing.retry, cks[0].alpha), (0, false));
        assert_eq!(cks[1].pos.line, 4);
        // BFD_CHECK is still ignored, with a warning.
        let (c, w) = parse(
            "virtual_server 10.0.0.1 80 {\n real_server 10.0.0.2 80 {\n  BFD_CHECK { name x }\n }\n}\n",
        )
        .unwrap();
        assert!(c.services[0].reals[0].checkers.is_empty());
        assert_eq!(
            w,
            ["k.conf:3: BFD_CHECK is not supported by rvs yet; the checker is ignored"]
        );
        // An out-of-range init value is kept, with keepalived's warning.
        let (_, w) = parse("track_file t {\n file /x\n init_file 300\n}\n").unwrap();
        assert_eq!(
            w,
            ["k.conf:3: track_file init value 300 is outside the sensible range [-254, 254]"]
        );
    }

    #[test]
    fn file_check_errors_name_file_and_line() {
        let e = |t: &str| parse(t).unwrap_err().to_string();
        let vs = |body: &str| {
            format!(
                "track_file t {{\n file /x\n}}\nvirtual_server 10.0.0.1 80 {{\n real_server 10.0.0.2 80 {{\n{body}\n }}\n}}\n"
            )
        };
        assert_eq!(
            e(&vs("  FILE_CHECK {\n   track_file nope\n  }")),
            "k.conf:7: track_file 'nope' is not defined"
        );
        assert_eq!(
            e(&vs("  FILE_CHECK {\n  }")),
            "k.conf:6: FILE_CHECK needs a track_file"
        );
        assert_eq!(
            e(&vs(
                "  FILE_CHECK {\n   track_file t\n   weight 2 sideways\n  }"
            )),
            "k.conf:8: 'weight': unknown option 'sideways' (reverse)"
        );
        assert_eq!(
            e(&vs("  FILE_CHECK {\n   track_file t\n   weight x\n  }")),
            "k.conf:8: 'weight': invalid number 'x' (expected -2147483647..=2147483647)"
        );
        assert_eq!(
            e("track_file t {\n weight 300\n file /x\n}\n"),
            "k.conf:2: 'weight': invalid number '300' (expected -254..=254)"
        );
        assert_eq!(
            e("track_file t {\n weight 1\n}\n"),
            "k.conf:1: track_file needs a 'file'"
        );
        assert_eq!(
            e("track_file t {\n file /x\n file /y\n}\n"),
            "k.conf:3: track_file: 'file' is set twice"
        );
        assert_eq!(
            e("track_file t {\n file /x\n init_file abc\n}\n"),
            "k.conf:3: init_file: invalid value 'abc'"
        );
        assert_eq!(
            e("track_file t {\n file /x\n}\ntrack_file t {\n file /y\n}\n"),
            "k.conf:4: track_file 't' is defined twice"
        );
    }

    #[test]
    fn file_check_semantics() {
        let fc = |weight, reverse| FileCheck {
            name: "t".into(),
            path: "/x".into(),
            weight,
            reverse,
            init: None,
        };
        // Weight 0: non-zero is down; reverse: zero is down. No weight change.
        assert_eq!(fc(0, false).status(0), Some(0));
        assert_eq!(fc(0, false).status(1), None);
        assert_eq!(fc(0, false).status(-7), None);
        assert_eq!(fc(0, true).status(0), None);
        assert_eq!(fc(0, true).status(3), Some(0));
        // Otherwise value * weight (negated with reverse) is added...
        assert_eq!(fc(1, false).status(0), Some(0));
        assert_eq!(fc(1, false).status(5), Some(5));
        assert_eq!(fc(-2, false).status(5), Some(-10));
        assert_eq!(fc(2, true).status(5), Some(-10));
        assert_eq!(fc(2, true).status(-5), Some(10));
        // ... unless it reaches -2^31: down.
        assert_eq!(fc(1, false).status(-2147483648), None);
        assert_eq!(fc(1, false).status(-2147483647), Some(-2147483647));
        assert_eq!(fc(254, false).status(-10_000_000), None);
        assert_eq!(fc(254, false).status(10_000_000), Some(i64::from(i32::MAX)));
        // strtol(…, 0): blanks, sign, hex, octal, trailing text.
        assert_eq!(track_value(b""), Some(0));
        assert_eq!(track_value(b"junk"), Some(0));
        assert_eq!(track_value(b"  42\n"), Some(42));
        assert_eq!(track_value(b"-3 down"), Some(-3));
        assert_eq!(track_value(b"+7"), Some(7));
        assert_eq!(track_value(b"0x1F"), Some(31));
        assert_eq!(track_value(b"010"), Some(8));
        assert_eq!(track_value(b"0x"), Some(0));
        assert_eq!(track_value(b"09"), Some(0));
        assert_eq!(track_value(b"2147483648"), Some(2147483648));
        assert_eq!(track_value(b"2147483649"), None);
        assert_eq!(track_value(b"-2147483649"), None);
        assert_eq!(track_value(b"99999999999999999999999"), None);
    }

    /// keepalived's own samples (tests/fixtures/keepalived/SOURCE.md).
    #[test]
    fn keepalived_samples_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived");
        let load = |n: &str| load(&dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
        let (c, w) = load("keepalived.conf.sample");
        assert_eq!(c.services.len(), 1);
        assert!(w.is_empty(), "{w:?}");
        let vs = &c.services[0];
        assert_eq!(vs.addr, VsAddr::Addr(ip("10.10.10.2"), 1358));
        assert_eq!(vs.persistence_timeout, Some(50));
        let ck = &vs.reals[0].checkers[0];
        assert_eq!(ck.timing.retry, 3);
        assert_eq!(ck.timing.delay_loop, Duration::from_secs(6));

        let (c, w) = load("keepalived.conf.status_code");
        assert!(w.is_empty(), "{w:?}");
        let CheckKind::Http { tls, urls, .. } = &c.services[0].reals[0].checkers[0].kind else {
            panic!()
        };
        assert!(*tls);
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[1].status, [(200, 200)]);

        let (c, w) = load("keepalived.conf.virtual_server_group");
        assert!(w.is_empty(), "{w:?}");
        let VsAddr::Group(_, m) = &c.services[0].addr else {
            panic!()
        };
        assert_eq!(m.len(), 3 + 8 + 2);
        assert_eq!(c.services[0].reals.len(), 2);

        let (c, w) = load("keepalived.conf.misc_check");
        assert!(w.is_empty(), "{w:?}");
        let CheckKind::Misc { path, dynamic, .. } = &c.services[0].reals[0].checkers[0].kind else {
            panic!()
        };
        assert_eq!(
            (path.as_str(), *dynamic),
            ("/usr/local/bin/script.sh", false)
        );
    }
}

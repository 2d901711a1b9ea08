// SPDX-License-Identifier: GPL-2.0-or-later
//! keepalived.conf's `virtual_server` world as values: virtual servers,
//! their real servers and checkers, with keepalived's defaults and
//! inheritance resolved (checker ← real server ← virtual server ←
//! keepalived's default).
//!
//! `global_defs` is read for its script settings (`script_user`,
//! `enable_script_security`, `set_supplementary_groups`; `scripts.rs`), the
//! rest of it, `vrrp_*` and the other blocks of keepalived's VRRP side are
//! accepted and ignored; an unknown keyword is a warning with its file
//! and line (the statement is skipped, as keepalived does); a bad value, a
//! missing one or an unbalanced brace refuses the whole file.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rvs_proto::{Fwd, Proto};

use super::lex::{self, ConfError, Node, Pos, err_at};
pub use super::runas::RunAs;

mod alerts;
mod bfd;
mod checker;
#[cfg(test)]
mod checker_tests;
mod lvs;
mod notify;
mod process;
mod scripts;
#[cfg(test)]
mod scripts_tests;
mod server;
mod ssl;
mod ssl_key;
#[cfg(test)]
mod tests;

pub use alerts::Smtp;
pub use bfd::BfdInstance;
use checker::*;
pub use lvs::{FlushOnStop, Lvs};
pub use notify::{Fifo, Notifications};
pub use process::Process;
use process::process;
use scripts::Scripts;
use server::*;
pub use ssl::TlsClient;

/// keepalived's default `delay_loop`.
pub const DEFAULT_DELAY_LOOP: Duration = Duration::from_secs(60);
/// keepalived's default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The `virtual_server` blocks, in file order.
    pub services: Vec<VirtualServer>,
    /// `global_defs`'s settings of the checker process.
    pub process: Process,
    /// `global_defs`'s e-mail alert settings.
    pub smtp: Smtp,
    /// `global_defs`'s notification FIFOs and `rs_init_notifies`.
    pub notify: Notifications,
    /// `global_defs`'s IPVS table settings (`lvs_flush`,
    /// `lvs_flush_on_stop`, `lvs_timeouts`).
    pub lvs: Lvs,
    /// The `bfd_instance` blocks the checker runs sessions for.
    pub bfd: Vec<BfdInstance>,
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
    /// `persistence_engine`: `sip`, IPVS's one persistence engine (the
    /// templates of a persistent UDP service keyed by SIP Call-ID too).
    pub persistence_engine: Option<String>,
    /// `ip_family inet6` (only matters for fwmark services).
    pub ipv6: Option<bool>,
    /// `alpha`: real servers start down until their first success.
    pub alpha: bool,
    /// `omega`: the down notifiers run when the checker stops.
    pub omega: bool,
    /// `smtp_alert` (resolved with keepalived's defaults once the file is
    /// read: `Some`).
    pub smtp_alert: Option<bool>,
    /// `ha_suspend`: its checkers pause while none of its addresses is
    /// an address of this host (a VRRP backup's).
    pub ha_suspend: bool,
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
    pub quorum_up: Option<Notify>,
    /// `quorum_down` script.
    pub quorum_down: Option<Notify>,
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
    pub notify_up: Option<Notify>,
    /// `notify_down` script.
    pub notify_down: Option<Notify>,
    /// `uthreshold`.
    pub uthreshold: u32,
    /// `lthreshold`.
    pub lthreshold: u32,
    /// `smtp_alert` (resolved with keepalived's defaults: `Some`).
    pub smtp_alert: Option<bool>,
    /// Its checkers (none: always up, as keepalived).
    pub checkers: Vec<Checker>,
}

/// A `notify_up`/`notify_down`/`quorum_up`/`quorum_down` script
/// (`SCRIPT [USER [[:]GROUP]]`), run through `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The command line.
    pub cmd: String,
    /// Who runs it: its own user, else `script_user`'s, else keepalived's
    /// default.
    pub user: RunAs,
    /// Where it is configured.
    pub pos: Pos,
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

impl Checker {
    /// A checker that events drive, not sockets (FILE_CHECK's file,
    /// BFD_CHECK's session), on real server `rs`: no retries, and every
    /// [`FILE_POLL`] where it must be polled.
    pub(super) fn driven(kind: CheckKind, rs: &RealServer, alpha: bool, pos: &Pos) -> Checker {
        Checker {
            kind,
            connect_ip: rs.addr,
            connect_port: rs.port,
            bindto: None,
            bind_port: None,
            bind_if: None,
            fwmark: None,
            timing: Timing {
                delay_loop: FILE_POLL,
                connect_timeout: FILE_POLL,
                retry: 0,
                delay_before_retry: FILE_POLL,
                warmup: None,
            },
            alpha,
            pos: pos.clone(),
        }
    }
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
    /// `bind_if`: the interface its packets leave by (SO_BINDTODEVICE;
    /// the scope of a link-local `connect_ip`).
    pub bind_if: Option<String>,
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
        /// `enable_sni`: SSL_GET sends a server name (SNI): `sni_name`,
        /// else the url's virtualhost, else the checker's.
        sni: bool,
        /// SSL_GET's `sni_name`.
        sni_name: Option<String>,
        /// SSL_GET's `tls_compliant`: each exchange ends with a
        /// close_notify (keepalived's default is a quiet shutdown).
        tls_compliant: bool,
        /// The `url` blocks.
        urls: Vec<Url>,
        /// `virtualhost` of the checker (or of the virtual server).
        virtualhost: Option<String>,
        /// `http_protocol` (`1.0`, `1.0C`, `1.1`; default 1.0).
        http_protocol: String,
        /// SSL_GET's client certificate (the top-level `SSL` block).
        client: Option<TlsClient>,
    },
    /// `MISC_CHECK`.
    Misc {
        /// `misc_path`: the command line (split on blanks).
        path: String,
        /// `misc_timeout` (default: delay_loop).
        timeout: Duration,
        /// `misc_dynamic`.
        dynamic: bool,
        /// Who runs it: `user`, else `script_user`'s, else keepalived's
        /// default.
        user: RunAs,
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
    /// `BFD_CHECK`: follows the session of the `bfd_instance` it names.
    Bfd {
        /// The `bfd_instance`.
        name: String,
    },
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
    /// `regex_options`, `regex_min_offset`, `regex_max_offset`.
    pub regex_options: RegexOptions,
    /// SSL_GET's url `tls_compliant`: end with a close_notify.
    pub tls_compliant: bool,
}

/// The options of a url's `regex` that change what it matches:
/// keepalived's PCRE2 options (`regex_options`) that rvs applies, and the
/// offsets where a match may start. Applied by `check/pattern.rs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RegexOptions {
    /// `caseless`.
    pub caseless: bool,
    /// `multiline`: `^` and `$` at every line.
    pub multiline: bool,
    /// `dotall`: `.` matches a newline too.
    pub dotall: bool,
    /// `extended`: white space and `#` comments in the pattern ignored.
    pub extended: bool,
    /// `ungreedy`: quantifiers lazy unless followed by `?`.
    pub ungreedy: bool,
    /// `utf` or `ucp`: the body as UTF-8, `\w`, `\d`, `\b` and caseless
    /// matching by Unicode's rules (PCRE2's default is one byte a
    /// character, ASCII classes).
    pub unicode: bool,
    /// `firstline`: the match starts on the body's first line.
    pub firstline: bool,
    /// `dollar_endonly`: `$` matches at the very end only (by default,
    /// as PCRE2's, also before a newline that ends the body).
    pub dollar_endonly: bool,
    /// `alt_bsux`: `\U` and a `\u` without four hex digits are the
    /// letters, `\uhhhh` a character, `\x` takes exactly two hex digits
    /// (ECMAScript's escapes).
    pub alt_bsux: bool,
    /// `allow_empty_class`: `[]` matches nothing and `[^]` any character
    /// (by default a `]` first in a class is a member).
    pub allow_empty_class: bool,
    /// `match_unset_backref`: a back-reference to a group that did not
    /// take part matches the empty string (by default it fails).
    pub match_unset_backref: bool,
    /// `regex_min_offset`: the match starts at this offset of the body or
    /// later.
    pub min_offset: usize,
    /// `regex_max_offset`: the match starts at this offset or earlier.
    pub max_offset: Option<usize>,
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
            smtp_alert: Some(false),
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
    key.starts_with("vrrp_")
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
                | "track_process"
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
    // global_defs's script settings too: they apply to every script.
    let mut scripts = Scripts::global(tree, warnings)?;
    let process = process(tree, warnings)?;
    let (smtp, alert, alert_checker) = alerts::global(tree, warnings)?;
    let mut notify = notify::global(tree, &mut scripts, warnings)?;
    let lvs = lvs::global(tree, warnings)?;
    let tls_client = ssl::global(tree, warnings)?;
    let bfd = bfd::instances(tree, warnings)?;
    let mut services = Vec::new();
    for n in tree {
        match n.key.as_str() {
            "virtual_server" => {
                services.push(virtual_server(n, &groups, &tracks, &mut scripts, warnings)?)
            }
            "virtual_server_group"
            | "track_file"
            | "vrrp_track_file"
            | "global_defs"
            | "bfd_instance"
            | "SSL" => {}
            k if ignored_top(k) => {}
            _ => unknown(n, warnings),
        }
    }
    bfd::resolve(&mut services, &bfd, warnings);
    scripts.secure(&mut services, &mut notify, warnings);
    // Every SSL_GET presents the SSL block's certificate.
    for ck in services
        .iter_mut()
        .flat_map(|v| &mut v.reals)
        .flat_map(|r| &mut r.checkers)
    {
        if let CheckKind::Http {
            tls: true, client, ..
        } = &mut ck.kind
        {
            client.clone_from(&tls_client);
        }
    }
    alerts::resolve(&mut services, alert, alert_checker);
    Ok(Config {
        services,
        process,
        smtp,
        notify,
        lvs,
        bfd,
    })
}

/// The single argument of a block statement (`virtual_server_group NAME {`).
fn value_of_block(n: &Node) -> Result<&str, ConfError> {
    block(n)?;
    match n.args.as_slice() {
        [v] => Ok(v),
        _ => Err(err_at(&n.pos, format!("'{}' needs one name", n.key))),
    }
}

/// How often a FILE_CHECK reads its file where it cannot be watched
/// (`run/file_watch.rs`); its delay_loop.
pub const FILE_POLL: Duration = Duration::from_secs(1);

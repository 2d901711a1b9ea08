// Over ~800 lines on purpose (issue #14): about 620 lines of code (the ruleset as text, pure, and the one call that applies it) and the unit tests of that text beside it.
//! nftables drop rules that keep the kernel from answering what rvs claims
//! (`--io packet`).
//!
//! An AF_PACKET socket gets a copy of each frame; the kernel still gets the
//! original, and would answer a SYN to a virtual service without a local
//! listener with a reset, or forward a NAT real server's reply untranslated.
//! One table, `table netdev rvs`, holds an ingress-hook chain per served
//! interface that drops what rvs claims: service traffic (protocol, virtual
//! address, port), replies of NAT real servers (protocol, source address,
//! source port), ICMP errors about either (as the XDP classifier claims
//! them; the quoted IPv4 header without options, the quoted IPv6 header
//! without extension headers) and what the fwmark rules of fwmark services
//! match, and IPv4 fragments of those by address (`ip frag-off & 0x3fff !=
//! 0`: MF or an offset; only the first fragment has ports, so a fragment to
//! a virtual address, to a fwmark rule's prefix or from a NAT real server
//! is dropped whatever its port, as the XDP classifier claims it; rvs
//! forwards fragments itself, see `rvs_core::frag`). Packet
//! taps see frames before the netdev ingress hook, and each fragment
//! separately (reassembly comes later, in the IP layer), so rvs still gets
//! them.
//!
//! [`ruleset`] is a pure function from what is claimed to the text of one
//! `nft -f` transaction that replaces the whole table (a table left over
//! by an older rvs is replaced, not stacked); [`NftTable`] applies it
//! through a long-lived `nft -i` ([`Session`]) whose netlink socket owns
//! the table (`flags owner`): the kernel deletes the table when that
//! socket closes, so it cannot outlive rvsd, whatever kills it.

use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::xdp::ClassKey;

/// The table's name (family `netdev`).
pub const TABLE: &str = "rvs";

/// Priority of the ingress chains: early, before other netdev filters.
pub const PRIORITY: i32 = -500;

/// One served interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftInterface {
    /// Name, as `device "…"` of the chain.
    pub name: String,
    /// Index, to match fwmark rules restricted to an ingress interface.
    pub ifindex: u32,
}

/// A fwmark rule's match (`-d ADDR/LEN [-p PROTO] [--dport P,…] [-i IF]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwmarkMatch {
    /// Destination network.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// IP protocol number; `None`: TCP, UDP and SCTP.
    pub proto: Option<u8>,
    /// Destination ports; empty: every port.
    pub dports: Vec<u16>,
    /// Ingress interface index; `None`: every served interface.
    pub iif: Option<u32>,
}

/// Everything to drop in front of the kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Claims<'a> {
    /// (proto, virtual address, port; 0 = every port) of the services.
    pub services: &'a [ClassKey],
    /// (proto, real server, port; 0 = every port) of the NAT real servers.
    pub nat: &'a [ClassKey],
    /// Fwmark rules of fwmark services.
    pub fwmark: &'a [FwmarkMatch],
    /// The director's own addresses: what a NAT real server sends to one
    /// of them is the director's own connection (a health check) and is
    /// not dropped (ICMP errors and fragments of those connections still
    /// are: rare, and not told apart here).
    pub local: &'a [IpAddr],
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` is not installed.
    #[error("cannot run `nft` ({0}): install the nftables package")]
    Missing(io::Error),
    /// `nft` refused the ruleset.
    #[error("nft -f failed: {0}")]
    Failed(String),
    /// An interface name that cannot be quoted safely.
    #[error("interface name {0:?} cannot be used in an nftables rule")]
    IfName(String),
    /// A fwmark rule with a bad prefix.
    #[error("bad prefix {addr}/{len}")]
    Prefix {
        /// Address.
        addr: IpAddr,
        /// Length.
        len: u8,
    },
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

fn family(a: &IpAddr) -> &'static str {
    match a {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

/// The chain name of an interface: `in_` and its index (names may hold
/// characters chain names may not).
fn chain_name(i: &NftInterface) -> String {
    format!("in_{}", i.ifindex)
}

/// Whether `name` is safe inside double quotes in nft's grammar.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:+".contains(&b))
}

/// Which end of the packet an ICMP error quotes is matched.
#[derive(Clone, Copy)]
enum Quoted {
    Src,
    Dst,
}

/// A rule dropping ICMP (ICMPv6) errors whose quoted packet has `k`'s
/// protocol and, at the `end` side, its address and port (0: any). Raw
/// payload offsets from the ICMP header: the quoted IPv4 header starts 8
/// bytes in and must have no options (`0x45`); the quoted IPv6 header has no
/// extension headers.
fn icmp_error_rule(k: &ClassKey, end: Quoted) -> String {
    match k.addr {
        IpAddr::V4(a) => {
            let (addr_bit, port_bit) = match end {
                Quoted::Src => (160, 224),
                Quoted::Dst => (192, 240),
            };
            let mut r = format!(
                "icmp type {{ destination-unreachable, source-quench, time-exceeded, \
                 parameter-problem }} @th,64,8 0x45 @th,136,8 {} @th,{addr_bit},32 0x{:08x}",
                k.proto,
                u32::from(a)
            );
            if k.port != 0 {
                let _ = write!(r, " @th,{port_bit},16 {}", k.port);
            }
            r.push_str(" drop");
            r
        }
        IpAddr::V6(a) => {
            let (addr_bit, port_bit) = match end {
                Quoted::Src => (128, 384),
                Quoted::Dst => (256, 400),
            };
            let mut r = format!(
                "icmpv6 type {{ destination-unreachable, packet-too-big, time-exceeded, \
                 parameter-problem }} @th,112,8 {} @th,{addr_bit},128 0x{:032x}",
                k.proto,
                u128::from(a)
            );
            if k.port != 0 {
                let _ = write!(r, " @th,{port_bit},16 {}", k.port);
            }
            r.push_str(" drop");
            r
        }
    }
}

/// The drop rules of one interface, one per line, without indentation.
fn rules_for(iface: &NftInterface, claims: &Claims<'_>) -> Result<Vec<String>, NftError> {
    let mut out = Vec::new();
    for k in claims.services {
        let mut r = format!(
            "{} daddr {} meta l4proto {}",
            family(&k.addr),
            k.addr,
            proto_name(k.proto)
        );
        if k.port != 0 {
            let _ = write!(r, " th dport {}", k.port);
        }
        r.push_str(" drop");
        out.push(r);
    }
    for k in claims.nat {
        let mut r = format!(
            "{} saddr {} meta l4proto {}",
            family(&k.addr),
            k.addr,
            proto_name(k.proto)
        );
        if k.port != 0 {
            let _ = write!(r, " th sport {}", k.port);
        }
        if claims.local.iter().any(|a| a.is_ipv4() == k.addr.is_ipv4()) {
            let (fam, set) = if k.addr.is_ipv4() {
                ("ip", LOCAL4)
            } else {
                ("ip6", LOCAL6)
            };
            let _ = write!(r, " {fam} daddr != @{set}");
        }
        r.push_str(" drop");
        out.push(r);
    }
    // IPv4 fragments by address (any port), as the classifier claims them.
    let mut frag: Vec<(&str, u8, IpAddr)> = Vec::new();
    frag.extend(claims.services.iter().map(|k| ("daddr", k.proto, k.addr)));
    frag.extend(claims.nat.iter().map(|k| ("saddr", k.proto, k.addr)));
    frag.retain(|(_, _, a)| a.is_ipv4());
    let mut seen = std::collections::HashSet::new();
    for (end, proto, addr) in frag {
        if seen.insert((end, proto, addr)) {
            out.push(format!(
                "ip {end} {addr} meta l4proto {} {FRAGMENT} drop",
                proto_name(proto)
            ));
        }
    }
    // ICMP errors about claimed traffic: about a packet to a NAT real
    // server (quoted destination), or from a virtual service (quoted
    // source), as the XDP classifier claims them.
    for k in claims.nat {
        out.push(icmp_error_rule(k, Quoted::Dst));
    }
    for k in claims.services {
        out.push(icmp_error_rule(k, Quoted::Src));
    }
    for m in claims.fwmark {
        if m.iif.is_some_and(|i| i != iface.ifindex) {
            continue;
        }
        let max = if m.addr.is_ipv4() { 32 } else { 128 };
        if m.prefix_len > max {
            return Err(NftError::Prefix {
                addr: m.addr,
                len: m.prefix_len,
            });
        }
        let mut r = format!("{} daddr {}/{}", family(&m.addr), m.addr, m.prefix_len);
        match m.proto {
            Some(p) => {
                let _ = write!(r, " meta l4proto {}", proto_name(p));
            }
            None => r.push_str(" meta l4proto { tcp, udp, sctp }"),
        }
        match m.dports.as_slice() {
            [] => {}
            [p] => {
                let _ = write!(r, " th dport {p}");
            }
            ps => {
                let mut ps = ps.to_vec();
                ps.sort_unstable();
                ps.dedup();
                let list: Vec<String> = ps.iter().map(u16::to_string).collect();
                let _ = write!(r, " th dport {{ {} }}", list.join(", "));
            }
        }
        if m.addr.is_ipv4() {
            // Its fragments, whatever the port.
            let at = r.find(" th dport").unwrap_or(r.len());
            out.push(format!("{} {FRAGMENT} drop", &r[..at]));
        }
        r.push_str(" drop");
        out.push(r);
    }
    Ok(out)
}

/// Matches an IPv4 fragment: MF set or a non-zero offset.
const FRAGMENT: &str = "ip frag-off & 0x3fff != 0";

/// The `nft -f` text of one transaction that replaces `table netdev rvs`
/// with one ingress chain per interface dropping `claims`.
///
/// `add table` first so the `delete` of a table that is not there does not
/// fail the transaction; all or nothing is applied.
pub fn ruleset(ifaces: &[NftInterface], claims: &Claims<'_>) -> Result<String, NftError> {
    ruleset_in(TABLE, ifaces, claims)
}

/// [`ruleset`] for the netdev table `table` (rvsd's restart hand-over
/// uses one of its own: [`HANDOVER_TABLE`]).
pub fn ruleset_in(
    table: &str,
    ifaces: &[NftInterface],
    claims: &Claims<'_>,
) -> Result<String, NftError> {
    let mut s = String::new();
    let _ = writeln!(s, "add table netdev {table}");
    let _ = writeln!(s, "delete table netdev {table}");
    let _ = writeln!(s, "table netdev {table} {{");
    // The director's own addresses, named once for every NAT rule.
    for (set, ty, v4) in [(LOCAL4, "ipv4_addr", true), (LOCAL6, "ipv6_addr", false)] {
        let elems: Vec<String> = claims
            .local
            .iter()
            .filter(|a| a.is_ipv4() == v4)
            .map(IpAddr::to_string)
            .collect();
        if !elems.is_empty() {
            let _ = writeln!(
                s,
                "\tset {set} {{ type {ty}; elements = {{ {} }}; }}",
                elems.join(", ")
            );
        }
    }
    for i in ifaces {
        if !valid_ifname(&i.name) {
            return Err(NftError::IfName(i.name.clone()));
        }
        let _ = writeln!(s, "\tchain {} {{", chain_name(i));
        let _ = writeln!(
            s,
            "\t\ttype filter hook ingress device \"{}\" priority {PRIORITY}; policy accept;",
            i.name
        );
        for r in rules_for(i, claims)? {
            let _ = writeln!(s, "\t\t{r}");
        }
        let _ = writeln!(s, "\t}}");
    }
    let _ = writeln!(s, "}}");
    Ok(s)
}

/// Names of the sets of the director's own addresses.
const LOCAL4: &str = "local4";
const LOCAL6: &str = "local6";

/// The transaction that removes the table (if it is there).
pub fn delete_ruleset() -> String {
    delete_ruleset_in(TABLE)
}

/// The transaction that removes the netdev table `table` (if it is there).
pub fn delete_ruleset_in(table: &str) -> String {
    format!("add table netdev {table}\ndelete table netdev {table}\n")
}

/// The table rvsd leaves while it restarts (`rvsd --conn-state`): it drops
/// what rvsd claims between the old rvsd's data plane stopping and the new
/// one's starting, so that the kernel does not answer established
/// connections' packets with resets in that gap (TCP retransmits them to
/// the new rvsd). Not owned: it outlives the process on purpose; the next
/// rvsd deletes it once its own data plane runs.
pub const HANDOVER_TABLE: &str = "rvs_handover";

/// Run `nft -f -` with `text` on its standard input (in the calling
/// thread's network namespace).
pub fn apply(text: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Missing)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| NftError::Failed(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NftError::Failed(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// [`ruleset`] for the table a [`Session`] owns: `flags owner` (the
/// kernel deletes the table when the netlink socket that made it closes,
/// that is when the session's `nft` ends: with rvsd, however it ends) and
/// a counter named `marker` that tells the session the transaction went in.
pub fn owned_ruleset(
    ifaces: &[NftInterface],
    claims: &Claims<'_>,
    marker: &str,
) -> Result<String, NftError> {
    let text = ruleset(ifaces, claims)?;
    let head = format!("table netdev {TABLE} {{\n");
    // The `add` must carry the flag too: the kernel refuses to change
    // whether an existing table is owned (EOPNOTSUPP).
    let add = format!("add table netdev {TABLE}\n");
    Ok(text
        .replacen(
            &add,
            &format!("add table netdev {TABLE} {{ flags owner; }}\n"),
            1,
        )
        .replacen(
            &head,
            &format!("{head}\tflags owner;\n\tcounter {marker} {{\n\t}}\n"),
            1,
        ))
}

/// `nft -f` text as one line of `nft -i` (one transaction): statements
/// joined by `;`, none after an opening brace.
pub fn one_line(text: &str) -> String {
    let mut out = String::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let l = l.trim_end_matches(';');
        out.push_str(l);
        out.push_str(if l.ends_with('{') { " " } else { " ; " });
    }
    out
}

/// How long a transaction may take before the session is given up.
const SESSION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A long-lived `nft -i` (in the network namespace of the thread that
/// started it) whose netlink socket owns the table. Its standard input is
/// a pipe from this process: when rvsd ends, even by SIGKILL, `nft` reads
/// end of file, exits, and the kernel deletes the table, so a crashed
/// rvsd never leaves drop rules that black-hole its services.
#[derive(Debug)]
pub struct Session {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    /// Output chunks: (from stderr, bytes).
    rx: std::sync::mpsc::Receiver<(bool, Vec<u8>)>,
}

impl Session {
    /// Start `nft -i`.
    pub fn start() -> Result<Session, NftError> {
        // No PR_SET_PDEATHSIG: it fires when the *thread* that started nft
        // ends, which may be long before the process does. The pipe is
        // enough: it closes with the process, however it ends.
        let mut cmd = Command::new("nft");
        cmd.arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(NftError::Missing)?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| NftError::Failed("no stdin".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        for (is_err, pipe) in [
            (
                false,
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn io::Read + Send>),
            ),
            (
                true,
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn io::Read + Send>),
            ),
        ] {
            let Some(mut pipe) = pipe else { continue };
            let tx = tx.clone();
            std::thread::Builder::new()
                .name("nft-output".into())
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 || tx.send((is_err, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| NftError::Failed(format!("cannot start a thread: {e}")))?;
        }
        Ok(Session { child, stdin, rx })
    }

    /// The name of the counter that marks transaction `generation` of this
    /// session (unique: another session's table never has it).
    fn marker(&self, generation: u64) -> String {
        format!("gen_{}_{generation}", self.child.id())
    }

    /// Run `text` (`nft -f` syntax) as one transaction that creates the
    /// counter `marker`; then list that counter: it is there only if the
    /// transaction went in. Errors carry what nft printed.
    fn transact(&mut self, text: &str, marker: &str) -> Result<(), NftError> {
        let probe = format!("list counter netdev {TABLE} {marker}");
        let script = format!("{}\n{probe}\n", one_line(text));
        self.stdin
            .write_all(script.as_bytes())
            .and_then(|()| self.stdin.flush())
            .map_err(|e| NftError::Failed(format!("writing to nft: {e}")))?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let deadline = std::time::Instant::now() + SESSION_TIMEOUT;
        let want = format!("counter {marker} {{");
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((false, b)) => out.extend_from_slice(&b),
                Ok((true, b)) => err.extend_from_slice(&b),
                Err(_) => {
                    return Err(NftError::Failed(format!(
                        "nft -i did not answer in {SESSION_TIMEOUT:?}: {}",
                        String::from_utf8_lossy(&err).trim()
                    )));
                }
            }
            if String::from_utf8_lossy(&out).contains(&want) {
                return Ok(());
            }
            // The probe's own error ends the exchange: the transaction
            // failed, and its errors came first.
            if String::from_utf8_lossy(&err).contains(&probe) {
                return Err(NftError::Failed(
                    String::from_utf8_lossy(&err)
                        .lines()
                        .find(|l| l.starts_with("Error"))
                        .unwrap_or("nft refused the ruleset")
                        .to_string(),
                ));
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // End of input: nft exits, and the kernel deletes the table.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rvs table of the network namespace, for the served interfaces,
/// owned by a [`Session`]; gone when it is dropped, or when the process
/// ends in any way.
#[derive(Debug)]
pub struct NftTable {
    ifaces: Vec<NftInterface>,
    session: Session,
    generation: u64,
    /// The rules last applied (to skip no-op updates).
    applied: Option<String>,
}

impl NftTable {
    /// Install the table with nothing claimed. A table left by an rvs that
    /// did not own its table (an older version) is replaced; one owned by
    /// a running rvsd is not (nft refuses: two daemons in one namespace).
    pub fn install(ifaces: Vec<NftInterface>) -> Result<NftTable, NftError> {
        // Names checked before nft runs.
        ruleset(&ifaces, &Claims::default())?;
        // A table of an older rvs, not owned, would refuse the owner flag:
        // delete it first (a table a running rvsd owns stays: the delete is
        // refused, and so is the install below).
        let _ = apply(&delete_ruleset());
        let mut t = NftTable {
            ifaces,
            session: Session::start()?,
            generation: 0,
            applied: None,
        };
        t.set(&Claims::default())?;
        Ok(t)
    }

    /// Replace the rules with `claims`, atomically; nothing changes on error.
    pub fn set(&mut self, claims: &Claims<'_>) -> Result<(), NftError> {
        let text = ruleset(&self.ifaces, claims)?;
        if self.applied.as_deref() == Some(text.as_str()) {
            return Ok(());
        }
        let generation = self.generation + 1;
        let marker = self.session.marker(generation);
        let owned = owned_ruleset(&self.ifaces, claims, &marker)?;
        self.session.transact(&owned, &marker)?;
        self.generation = generation;
        self.applied = Some(text);
        Ok(())
    }

    /// The rules last applied (as [`ruleset`] makes them).
    pub fn applied(&self) -> Option<&str> {
        self.applied.as_deref()
    }

    /// The process id of the `nft` that owns the table.
    pub fn owner_pid(&self) -> u32 {
        self.session.child.id()
    }

    /// Delete the table now (ending the session that owns it).
    pub fn remove(self) -> Result<(), NftError> {
        drop(self);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(proto: u8, addr: &str, port: u16) -> ClassKey {
        ClassKey {
            proto,
            addr: addr.parse().unwrap(),
            port,
        }
    }

    fn ifs() -> Vec<NftInterface> {
        vec![
            NftInterface {
                name: "eth0".into(),
                ifindex: 2,
            },
            NftInterface {
                name: "eth1".into(),
                ifindex: 3,
            },
        ]
    }

    #[test]
    fn owned_and_one_line() {
        let t = owned_ruleset(&ifs()[..1], &Claims::default(), "gen_7").unwrap();
        assert_eq!(
            one_line(&t),
            "add table netdev rvs { flags owner; } ; delete table netdev rvs ; \
             table netdev rvs { flags owner ; counter gen_7 { } ; chain in_2 { \
             type filter hook ingress device \"eth0\" priority -500; policy accept ; } ; } ; "
        );
    }

    #[test]
    fn empty_claims() {
        let t = ruleset(&ifs()[..1], &Claims::default()).unwrap();
        assert_eq!(
            t,
            "add table netdev rvs\n\
             delete table netdev rvs\n\
             table netdev rvs {\n\
             \tchain in_2 {\n\
             \t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;\n\
             \t}\n\
             }\n"
        );
    }

    #[test]
    fn services_nat_and_fwmark() {
        let services = [
            k(6, "10.0.0.1", 80),
            k(17, "10.0.0.1", 0),
            k(132, "2001:db8::1", 9),
        ];
        let nat = [k(6, "192.168.1.2", 8080), k(17, "192.168.1.3", 0)];
        let fwmark = [
            FwmarkMatch {
                addr: "10.1.0.0".parse().unwrap(),
                prefix_len: 24,
                proto: None,
                dports: vec![443, 80, 443],
                iif: None,
            },
            FwmarkMatch {
                addr: "10.2.0.0".parse().unwrap(),
                prefix_len: 16,
                proto: Some(6),
                dports: vec![22],
                iif: Some(3),
            },
            FwmarkMatch {
                addr: "2001:db8:1::".parse().unwrap(),
                prefix_len: 48,
                proto: Some(17),
                dports: vec![],
                iif: None,
            },
        ];
        let claims = Claims {
            services: &services,
            nat: &nat,
            fwmark: &fwmark,
            local: &[],
        };
        let t = ruleset(&ifs(), &claims).unwrap();
        let common = "\
\t\tip daddr 10.0.0.1 meta l4proto tcp th dport 80 drop
\t\tip daddr 10.0.0.1 meta l4proto udp drop
\t\tip6 daddr 2001:db8::1 meta l4proto sctp th dport 9 drop
\t\tip saddr 192.168.1.2 meta l4proto tcp th sport 8080 drop
\t\tip saddr 192.168.1.3 meta l4proto udp drop
\t\tip daddr 10.0.0.1 meta l4proto tcp ip frag-off & 0x3fff != 0 drop
\t\tip daddr 10.0.0.1 meta l4proto udp ip frag-off & 0x3fff != 0 drop
\t\tip saddr 192.168.1.2 meta l4proto tcp ip frag-off & 0x3fff != 0 drop
\t\tip saddr 192.168.1.3 meta l4proto udp ip frag-off & 0x3fff != 0 drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 6 @th,192,32 0xc0a80102 @th,240,16 8080 drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 17 @th,192,32 0xc0a80103 drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 6 @th,160,32 0x0a000001 @th,224,16 80 drop
\t\ticmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } @th,64,8 0x45 @th,136,8 17 @th,160,32 0x0a000001 drop
\t\ticmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } @th,112,8 132 @th,128,128 0x20010db8000000000000000000000001 @th,384,16 9 drop
\t\tip daddr 10.1.0.0/24 meta l4proto { tcp, udp, sctp } ip frag-off & 0x3fff != 0 drop
\t\tip daddr 10.1.0.0/24 meta l4proto { tcp, udp, sctp } th dport { 80, 443 } drop
";
        let expected = format!(
            "add table netdev rvs
delete table netdev rvs
table netdev rvs {{
\tchain in_2 {{
\t\ttype filter hook ingress device \"eth0\" priority -500; policy accept;
{common}\t\tip6 daddr 2001:db8:1::/48 meta l4proto udp drop
\t}}
\tchain in_3 {{
\t\ttype filter hook ingress device \"eth1\" priority -500; policy accept;
{common}\t\tip daddr 10.2.0.0/16 meta l4proto tcp ip frag-off & 0x3fff != 0 drop
\t\tip daddr 10.2.0.0/16 meta l4proto tcp th dport 22 drop
\t\tip6 daddr 2001:db8:1::/48 meta l4proto udp drop
\t}}
}}
"
        );
        assert_eq!(t, expected);
    }

    /// What a NAT real server sends to the director's own addresses is
    /// not dropped: its own connections (health checks) are the kernel's.
    #[test]
    fn nat_rules_spare_the_directors_own_addresses() {
        let nat = [k(6, "192.168.1.2", 8080), k(6, "2001:db8::2", 80)];
        let local: Vec<IpAddr> = ["10.0.0.2", "127.0.0.1", "::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let t = ruleset(
            &ifs(),
            &Claims {
                nat: &nat,
                local: &local,
                ..Claims::default()
            },
        )
        .unwrap();
        assert!(
            t.contains("\tset local4 { type ipv4_addr; elements = { 10.0.0.2, 127.0.0.1 }; }\n"),
            "{t}"
        );
        assert!(
            t.contains("\tset local6 { type ipv6_addr; elements = { ::1 }; }\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "ip saddr 192.168.1.2 meta l4proto tcp th sport 8080 ip daddr != @local4 drop"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "ip6 saddr 2001:db8::2 meta l4proto tcp th sport 80 ip6 daddr != @local6 drop"
            ),
            "{t}"
        );
    }

    #[test]
    fn bad_input() {
        let bad_if = [NftInterface {
            name: "a\"; flush ruleset".into(),
            ifindex: 9,
        }];
        assert!(matches!(
            ruleset(&bad_if, &Claims::default()),
            Err(NftError::IfName(_))
        ));
        let fw = [FwmarkMatch {
            addr: "10.0.0.0".parse().unwrap(),
            prefix_len: 33,
            proto: None,
            dports: vec![],
            iif: None,
        }];
        assert!(matches!(
            ruleset(
                &ifs(),
                &Claims {
                    fwmark: &fw,
                    ..Claims::default()
                }
            ),
            Err(NftError::Prefix { .. })
        ));
        assert_eq!(
            delete_ruleset(),
            "add table netdev rvs\ndelete table netdev rvs\n"
        );
    }
}

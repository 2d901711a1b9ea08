// Over ~800 lines on purpose (issue #14): the Classifier over one loaded classify.o (load, attach, map setters, test runs, redirect probes) and its error type are one unit; what stands alone is in xdp/.
//! The XDP classifier: `bpf/classify.c`, its maps, and attaching it.
//!
//! The program runs on every frame an interface receives and steers what rvs
//! owns to the AF_XDP socket of (ingress interface, rx queue); everything else
//! (ARP, ND, SSH to the director, other ports) goes on to the kernel with
//! `XDP_PASS`. A frame is rvs's when it is
//!
//! * TCP, UDP or SCTP to a virtual service: `(proto, dst addr, dst port)` is
//!   in [`Classifier::set_services`], or `(proto, dst addr, 0)` is (a port-0
//!   service owns every port of its address);
//! * TCP, UDP or SCTP from a NAT real server: `(proto, src addr, src port)`
//!   (or port 0) is in [`Classifier::set_nat_sources`], unless it is for
//!   one of the director's own addresses ([`Classifier::set_local_addrs`]):
//!   the director's own connections to its real servers (health checks)
//!   are the kernel's;
//! * an ICMP error (IPv4 types 3, 4, 11, 12; ICMPv6 types 1 to 4) about such
//!   a flow: the quoted packet's destination is a NAT real server (an error
//!   about a director-to-server packet) or its source is a service (an error
//!   about a VIP-to-client packet);
//! * TCP, UDP or SCTP that a firewall-mark rule matches
//!   ([`Classifier::set_fwmark_rules`]): destination in the rule's prefix,
//!   protocol, destination port and ingress interface as the rule says.
//!   The caller passes only rules whose packets the engine takes (rules of
//!   marks that have a fwmark service); ICMP errors about fwmark flows are
//!   not claimed.
//!
//! * an IPv4 fragment (MF set or a non-zero offset) of TCP, UDP or SCTP,
//!   claimed by address (only the first fragment has ports): to an address
//!   of [`Classifier::set_services`], from one of
//!   [`Classifier::set_nat_sources`] (same protocol, any port; the maps
//!   `frag_dst` / `frag_src` are kept from those sets), or to a fwmark
//!   prefix with a matcher of its protocol and interface. Fragments to a
//!   virtual address for a port no service has are claimed too, and lost:
//!   see classify.c.
//!
//! Passed unseen: other IPv4 fragments, IPv6 packets with extension
//! headers (fragments included), frames that are not IPv4/IPv6 after at most
//! one VLAN tag. Truncated frames are passed and counted.
//!
//! The socket slot of a frame is `if_base[ingress ifindex] + rx queue`
//! ([`Classifier::set_if_base`], [`Classifier::xsk_map_set`]). With no
//! `if_base` entry or an empty slot the frame is passed (and counted in
//! [`ClassStats::no_socket`]): while rvsd starts, or if a worker is missing,
//! the host behaves as if rvs were not there.
//!
//! # Network namespaces
//!
//! Interface names and indices are those of the calling thread's network
//! namespace: call [`Classifier::attach`], [`ifindex`] and [`remove_xdp`] from
//! a thread in the interfaces' namespace. The maps work from anywhere.
//!
//! # Replacing a program already attached
//!
//! [`Classifier::attach`] first removes whatever XDP program the interface
//! has, in every mode ([`remove_xdp`]), so a program left by a crashed rvsd
//! (or by `ip link set … xdp obj`) is replaced, never stacked. aya cannot
//! detach programs it did not attach, so this module does it itself:
//! rtnetlink `RTM_SETLINK` with `IFLA_XDP_FD = -1` for programs attached
//! through netlink, and `BPF_LINK_DETACH` for programs held by a bpf_link
//! (the kernel refuses the netlink request for those with `EBUSY`). The
//! bpf_link is found by walking the kernel's links (`BPF_LINK_GET_NEXT_ID`)
//! for an XDP link whose ifindex and program id match what rtnetlink reports
//! for the interface.
//!
//! Removal and attach are two steps, not an atomic swap: for that moment the
//! interface runs no XDP program (everything goes to the kernel). A removed
//! program is not put back if the attach then fails.
//!
//! # Minimum kernel version
//!
//! 5.9 (`BPF_LINK_DETACH`); native XDP and AF_XDP on veth need 5.x as well.

use std::{collections::HashSet, ffi::CString, fmt, io, net::IpAddr, os::fd::RawFd};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap, lpm_trie::LpmTrie},
    programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};

use crate::flowcache::{FLOW_CACHE_MAX, FlowCache};
use crate::nft::FwmarkMatch;

mod detach;
mod errors;
mod fwmark;
mod maps;
#[cfg(test)]
mod tests;
mod xmit;

pub(crate) use detach::rtnl_request;
pub use detach::{XdpState, remove_xdp, xdp_state};
pub use errors::{errno_name, errno_of, error_chain, ifindex, verifier_msg};
use fwmark::fwmark_entries;
use maps::{FwmMaps, RawKey, frag_keys, is_not_found, sync_lpm, sync_set};
pub use xmit::{XmitCounters, redirect_taken, xdp_xmit_counters};

/// The classifier object, built from `bpf/classify.c` by build.rs.
static CLASSIFY_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/classify.o"));

/// Name of the XDP program in `bpf/classify.c`.
const PROGRAM: &str = "rvs_classify";
/// Name of the redirect probe in `bpf/classify.c`.
const PROBE: &str = "rvs_probe";
/// Frames one [`Classifier::probe_redirect`] sends.
const PROBE_FRAMES: u32 = 4;

/// Capacity of the `services` map (`SERVICES_MAX` in classify.c).
pub const MAX_SERVICES: usize = 16384;
/// Capacity of the `nat_src` map (`NAT_SRC_MAX` in classify.c).
pub const MAX_NAT_SOURCES: usize = 16384;
/// Capacity of the `local_addr` map (`LOCAL_ADDR_MAX` in classify.c).
pub const MAX_LOCAL_ADDRS: usize = 4096;
/// Distinct rule prefixes per address family (`FWM_PREFIXES_MAX` in classify.c).
pub const MAX_FWMARK_PREFIXES: usize = 4096;
/// (protocol, interface, ports) matchers one prefix holds, counting those of
/// the shorter prefixes that cover it (`FWM_MATCH_MAX` in classify.c).
pub const MAX_FWMARK_MATCHERS: usize = 8;
/// Ports of one matcher (`FWM_PORTS_MAX` in classify.c); rules of one
/// (protocol, interface) with more ports together take several matchers.
pub const MAX_FWMARK_PORTS: usize = 16;
/// Capacity of the `if_base` map (`IF_BASE_MAX` in classify.c).
pub const MAX_INTERFACES: usize = 256;
/// Slots of the `xsks` map (`XSKS_MAX` in classify.c): `if_base + queue`
/// must stay below this, or the frame is passed as if no socket were there.
pub const MAX_XSK_SLOTS: u32 = 1024;

// Indices of the `stats` map (enum in classify.c).
const STAT_REDIRECTED: u32 = 0;
const STAT_PASSED: u32 = 1;
const STAT_NO_SOCKET: u32 = 2;
const STAT_MALFORMED: u32 = 3;
const STAT_FRAGMENT: u32 = 4;
const STAT_SYN: u32 = 6;
const STAT_SYN_SHED: u32 = 7;
const STAT_FRAG_CLAIMED: u32 = 5;

// XDP actions (enum xdp_action).
/// `XDP_PASS`: a [`Classifier::test_run`] result.
pub const XDP_PASS: u32 = 2;
/// `XDP_DROP`: a frame the classifier dropped (a SYN the SYN guard shed).
pub const XDP_DROP: u32 = 1;
/// `XDP_REDIRECT`: a [`Classifier::test_run`] result.
pub const XDP_REDIRECT: u32 = 4;

/// Errors of the XDP classifier.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// No such interface (in the calling thread's network namespace).
    #[error("interface {name}: {source}")]
    Interface {
        /// The name asked for.
        name: String,
        /// Why it could not be resolved.
        #[source]
        source: io::Error,
    },
    /// The object could not be loaded, or the verifier rejected the program.
    #[error("loading the XDP classifier: {0}")]
    Load(String),
    /// Neither native nor generic (SKB) mode could be attached.
    #[error("attaching XDP to {iface}: driver mode: {driver}; skb mode: {skb}")]
    Attach {
        /// Interface name.
        iface: String,
        /// Why native mode failed.
        driver: String,
        /// Why generic mode failed.
        skb: String,
    },
    /// The XDP program already on an interface could not be removed.
    #[error("removing the XDP program already on {iface}: {detail}")]
    Replace {
        /// Interface name.
        iface: String,
        /// What failed.
        detail: String,
    },
    /// A map operation failed (for example, the map is full).
    #[error("map {map}: {source}")]
    Map {
        /// Name of the map in classify.c.
        map: &'static str,
        /// aya's error.
        #[source]
        source: MapError,
    },
    /// More keys than the map holds.
    #[error("map {map}: {wanted} entries, capacity {capacity}")]
    TooMany {
        /// Name of the map in classify.c.
        map: &'static str,
        /// Entries asked for.
        wanted: usize,
        /// Capacity of the map.
        capacity: usize,
    },
    /// An rtnetlink or bpf(2) call failed.
    #[error("{call}: {source}")]
    Sys {
        /// The request.
        call: &'static str,
        /// errno.
        #[source]
        source: io::Error,
    },
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("test run: {0}")]
    TestRun(String),
    /// The host refuses `BPF_PROG_TEST_RUN` in live-frames mode (or
    /// `RVS_LIVE_FRAMES=off` says to act as if it did: [`crate::livefr`]).
    #[error("{detail}")]
    LiveFramesRefused {
        /// The errno of the refusal ([`crate::livefr::FORCED_ERRNO`] when forced).
        errno: i32,
        /// What happened, for the log: `live-frames test runs refused (EPERM): ...`.
        detail: String,
    },
    /// The fwmark rules covering one prefix need more matchers than the
    /// classifier holds per prefix.
    #[error(
        "fwmark rules: destination {prefix} is covered by {matchers} different \
         (protocol, interface, ports) matches; the XDP classifier holds {MAX_FWMARK_MATCHERS}"
    )]
    FwmarkTooComplex {
        /// The prefix, `ADDR/LEN`.
        prefix: String,
        /// Matchers it would need.
        matchers: usize,
    },
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> XdpError {
    move |source| XdpError::Map { map, source }
}

/// A key of the services or NAT-source set: L4 protocol, address, port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClassKey {
    /// IP protocol number: 6 (TCP), 17 (UDP) or 132 (SCTP). The classifier
    /// looks only at these; a key with any other protocol never matches.
    pub proto: u8,
    /// The service's virtual address, or the NAT real server's address.
    pub addr: IpAddr,
    /// Port in host order; 0 matches every port of `addr`.
    pub port: u16,
}

/// Whether the classifier's maps can hold `services`, `nat` (distinct
/// keys) and the fwmark `rules`, without touching any map: the check rvsd
/// runs before it accepts a change ([`Classifier::set_services`],
/// [`Classifier::set_nat_sources`] and [`Classifier::set_fwmark_rules`]
/// then cannot fail for want of room).
///
/// # Errors
///
/// [`XdpError::TooMany`] or [`XdpError::FwmarkTooComplex`], naming the
/// map and its capacity.
pub fn check_capacity(
    services: &[ClassKey],
    nat: &[ClassKey],
    rules: &[FwmarkMatch],
) -> Result<(), XdpError> {
    let distinct = |keys: &[ClassKey]| keys.iter().map(RawKey::from).collect::<HashSet<_>>().len();
    for (map, keys, capacity) in [
        ("services", services, MAX_SERVICES),
        ("nat_src", nat, MAX_NAT_SOURCES),
    ] {
        let wanted = distinct(keys);
        if wanted > capacity {
            return Err(XdpError::TooMany {
                map,
                wanted,
                capacity,
            });
        }
    }
    let entries = fwmark_entries(rules)?;
    let v6 = entries.iter().filter(|e| e.addr.is_ipv6()).count();
    for (map, wanted) in [("fwm_v4", entries.len() - v6), ("fwm_v6", v6)] {
        if wanted > MAX_FWMARK_PREFIXES {
            return Err(XdpError::TooMany {
                map,
                wanted,
                capacity: MAX_FWMARK_PREFIXES,
            });
        }
    }
    Ok(())
}

/// How the program runs on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Native XDP, in the driver (`XDP_FLAGS_DRV_MODE`).
    Driver,
    /// Generic XDP, after the kernel built an skb (`XDP_FLAGS_SKB_MODE`):
    /// slower, and AF_XDP is copy mode only.
    Skb,
}

/// One interface the classifier is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Interface name.
    pub iface: String,
    /// Its index.
    pub ifindex: u32,
    /// The mode the program runs in.
    pub mode: AttachMode,
    /// Why native mode was refused, when `mode` is [`AttachMode::Skb`].
    pub driver_error: Option<String>,
    /// Ids of the XDP programs removed from the interface first.
    pub replaced: Vec<u32>,
}

/// Counters of the classifier, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Frames handed to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that are not rvs's (`XDP_PASS`).
    pub passed: u64,
    /// rvs's frames passed because their interface has no `if_base` entry
    /// or their slot has no socket.
    pub no_socket: u64,
    /// Truncated or malformed frames (passed).
    pub malformed: u64,
    /// IPv4 fragments not claimed by address (passed).
    pub fragments: u64,
    /// Pure TCP SYNs among the claimed frames.
    pub syns: u64,
    /// Of those, shed by the SYN guard ([`Classifier::set_syn_shed`]).
    pub syn_shed: u64,
    /// IPv4 fragments claimed by address (redirected, or passed for want
    /// of a socket).
    pub fragments_claimed: u64,
}

/// The loaded classifier, its maps and its attachments.
///
/// Dropping it detaches the program from every interface.
pub struct Classifier {
    services: HashMap<MapData, RawKey, u32>,
    nat_src: HashMap<MapData, RawKey, u32>,
    /// (proto, address, 0) of the services' and NAT sources' addresses:
    /// fragments claimed by address.
    frag_dst: HashMap<MapData, RawKey, u32>,
    frag_src: HashMap<MapData, RawKey, u32>,
    /// The director's own addresses: frames from a NAT real server to one
    /// of them are the director's own connections, left to the kernel.
    local_addr: HashMap<MapData, RawKey, u32>,
    /// Boxed: rarely touched, and it keeps the classifier small.
    fwm: Box<FwmMaps>,
    if_base: HashMap<MapData, u32, u32>,
    if_mac: HashMap<MapData, u32, u64>,
    xsks: XskMap<MapData>,
    stats: PerCpuArray<MapData, u64>,
    /// `syn_guard`: the share of pure SYNs to shed, of `u32::MAX`.
    syn_guard: Array<MapData, u32>,
    /// The fast path's flow cache (`rvs_flows`, `rvs_fp_stats`).
    flow_cache: FlowCache,
    links: Vec<XdpLinkId>,
    attachments: Vec<Attachment>,
    prog_id: u32,
    ebpf: Ebpf,
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("prog_id", &self.prog_id)
            .field("attachments", &self.attachments)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// Loads the program and attaches it to each interface, in native mode,
    /// falling back to generic (SKB) mode when the driver refuses
    /// ([`Classifier::attachments`] reports which). An XDP program already on
    /// an interface is removed first (see the module documentation).
    ///
    /// With no interfaces the program is only loaded: the maps and
    /// [`Classifier::test_run`] work.
    ///
    /// # Errors
    ///
    /// Unknown interface, load or verifier failure, a program that cannot be
    /// removed, or neither mode attaching. Interfaces attached before the
    /// error are detached again.
    pub fn attach(ifaces: &[String]) -> Result<Self, XdpError> {
        Self::attach_sized(ifaces, FLOW_CACHE_MAX)
    }

    /// As [`Classifier::attach`], with a flow cache of `flow_entries`
    /// entries (at least 1; [`FLOW_CACHE_MAX`] by default): a small cache
    /// only sends more established flows through the slow path.
    ///
    /// # Errors
    ///
    /// As [`Classifier::attach`]; `flow_entries` of 0.
    pub fn attach_sized(ifaces: &[String], flow_entries: u32) -> Result<Self, XdpError> {
        if flow_entries == 0 {
            return Err(XdpError::Load(
                "the flow cache needs at least one entry".into(),
            ));
        }
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("rvs_flows", flow_entries)
            .load(CLASSIFY_OBJ)
            .map_err(|e| load_err(&e))?;
        let prog = xdp_program(&mut ebpf)?;
        prog.load().map_err(|e| XdpError::Load(verifier_msg(&e)))?;
        let prog_id = prog.info().map_err(|e| XdpError::Load(e.to_string()))?.id();
        let probe: &mut Xdp = ebpf
            .program_mut(PROBE)
            .ok_or_else(|| XdpError::Load(format!("no program {PROBE}")))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(e.to_string()))?;
        probe.load().map_err(|e| XdpError::Load(verifier_msg(&e)))?;
        let prog = xdp_program(&mut ebpf)?;

        let mut links = Vec::new();
        let mut attachments: Vec<Attachment> = Vec::new();
        for iface in ifaces {
            let ifindex = ifindex(iface)?;
            if attachments.iter().any(|a| a.ifindex == ifindex) {
                continue;
            }
            let replaced = remove_xdp(iface)?;
            let (link, mode, driver_error) = match prog.attach_to_if_index(ifindex, XdpMode::Driver)
            {
                Ok(link) => (link, AttachMode::Driver, None),
                Err(driver) => {
                    let driver = error_chain(&driver);
                    match prog.attach_to_if_index(ifindex, XdpMode::Skb) {
                        Ok(link) => (link, AttachMode::Skb, Some(driver)),
                        Err(skb) => {
                            return Err(XdpError::Attach {
                                iface: iface.clone(),
                                driver,
                                skb: error_chain(&skb),
                            });
                        }
                    }
                }
            };
            links.push(link);
            attachments.push(Attachment {
                iface: iface.clone(),
                ifindex,
                mode,
                driver_error,
                replaced,
            });
        }

        let services = take_map(&mut ebpf, "services", HashMap::try_from)?;
        let nat_src = take_map(&mut ebpf, "nat_src", HashMap::try_from)?;
        let frag_dst = take_map(&mut ebpf, "frag_dst", HashMap::try_from)?;
        let frag_src = take_map(&mut ebpf, "frag_src", HashMap::try_from)?;
        let local_addr = take_map(&mut ebpf, "local_addr", HashMap::try_from)?;
        let fwm_v4 = take_map(&mut ebpf, "fwm_v4", LpmTrie::try_from)?;
        let fwm_v6 = take_map(&mut ebpf, "fwm_v6", LpmTrie::try_from)?;
        let if_base = take_map(&mut ebpf, "if_base", HashMap::try_from)?;
        let if_mac = take_map(&mut ebpf, "if_mac", HashMap::try_from)?;
        let xsks = take_map(&mut ebpf, "xsks", XskMap::try_from)?;
        let stats = take_map(&mut ebpf, "stats", PerCpuArray::try_from)?;
        let syn_guard = take_map(&mut ebpf, "syn_guard", Array::try_from)?;
        let flow_cache =
            FlowCache::from_ebpf(&mut ebpf).map_err(|e| XdpError::Load(e.to_string()))?;
        Ok(Self {
            services,
            nat_src,
            frag_dst,
            frag_src,
            local_addr,
            fwm: Box::new(FwmMaps {
                v4: fwm_v4,
                v6: fwm_v6,
            }),
            if_base,
            if_mac,
            xsks,
            stats,
            syn_guard,
            flow_cache,
            links,
            attachments,
            prog_id,
            ebpf,
        })
    }

    /// The fast path's flow cache.
    pub fn flow_cache(&self) -> &FlowCache {
        &self.flow_cache
    }

    /// The fast path's flow cache, to install and remove entries.
    pub fn flow_cache_mut(&mut self) -> &mut FlowCache {
        &mut self.flow_cache
    }

    /// The interfaces the program is attached to, and how.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// The kernel's id of the loaded program (as `ip -d link` shows it).
    pub fn program_id(&self) -> u32 {
        self.prog_id
    }

    /// Makes the services map equal to `keys`: adds the new keys, then
    /// removes the stale ones (so a key in both sets never disappears). When
    /// old and new together would overflow the map, stale keys go first.
    ///
    /// # Errors
    ///
    /// More than [`MAX_SERVICES`] keys, or a map operation failing.
    pub fn set_services(&mut self, keys: &[ClassKey]) -> Result<(), XdpError> {
        sync_set(&mut self.services, "services", MAX_SERVICES, keys)?;
        sync_set(
            &mut self.frag_dst,
            "frag_dst",
            MAX_SERVICES,
            &frag_keys(keys),
        )
    }

    /// Makes the NAT-source map (real servers of NAT services, whose replies
    /// rvs owns) equal to `keys`, like [`Classifier::set_services`].
    ///
    /// # Errors
    ///
    /// More than [`MAX_NAT_SOURCES`] keys, or a map operation failing.
    pub fn set_nat_sources(&mut self, keys: &[ClassKey]) -> Result<(), XdpError> {
        sync_set(&mut self.nat_src, "nat_src", MAX_NAT_SOURCES, keys)?;
        sync_set(
            &mut self.frag_src,
            "frag_src",
            MAX_NAT_SOURCES,
            &frag_keys(keys),
        )
    }

    /// Makes the director's own addresses (of the network namespace the
    /// classifier serves) equal to `addrs`: a frame from a NAT real server
    /// to one of them is the director's own connection (a health check)
    /// and goes to the kernel, not to rvs. Beyond [`MAX_LOCAL_ADDRS`] the
    /// rest are left out (their connections to NAT real servers then fail).
    ///
    /// # Errors
    ///
    /// A map operation failing.
    pub fn set_local_addrs(&mut self, addrs: &[IpAddr]) -> Result<(), XdpError> {
        let keys: Vec<ClassKey> = addrs
            .iter()
            .take(MAX_LOCAL_ADDRS)
            .map(|&addr| ClassKey {
                proto: 0,
                addr,
                port: 0,
            })
            .collect();
        sync_set(&mut self.local_addr, "local_addr", MAX_LOCAL_ADDRS, &keys)
    }

    /// Makes the fwmark maps claim exactly what `rules` match (destination
    /// prefix, protocol, destination ports, ingress interface). Pass only
    /// rules whose packets the engine takes: a claimed frame cannot go back
    /// to the kernel. Nothing changes when the rules do not fit.
    ///
    /// # Errors
    ///
    /// More than [`MAX_FWMARK_PREFIXES`] prefixes in a family, more than
    /// [`MAX_FWMARK_MATCHERS`] matchers for one prefix
    /// ([`XdpError::FwmarkTooComplex`]), or a map operation failing.
    pub fn set_fwmark_rules(&mut self, rules: &[FwmarkMatch]) -> Result<(), XdpError> {
        let entries = fwmark_entries(rules)?;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for e in entries {
            let len = u32::from(e.prefix_len);
            match e.addr {
                IpAddr::V4(a) => v4.push((a.octets(), len, e.value)),
                IpAddr::V6(a) => v6.push((a.octets(), len, e.value)),
            }
        }
        if v6.len() > MAX_FWMARK_PREFIXES {
            return Err(XdpError::TooMany {
                map: "fwm_v6",
                wanted: v6.len(),
                capacity: MAX_FWMARK_PREFIXES,
            });
        }
        sync_lpm(&mut self.fwm.v4, "fwm_v4", &v4)?;
        sync_lpm(&mut self.fwm.v6, "fwm_v6", &v6)
    }

    /// Frames received on `ifindex`, queue `q`, go to xsks slot `base + q`.
    ///
    /// # Errors
    ///
    /// The map is full ([`MAX_INTERFACES`]).
    pub fn set_if_base(&mut self, ifindex: u32, base: u32) -> Result<(), XdpError> {
        self.if_base
            .insert(ifindex, base, 0)
            .map_err(map_err("if_base"))
    }

    /// The MAC address of `ifindex`: unicast frames addressed to another
    /// station (not a VRRP virtual MAC) are passed to the kernel, which
    /// drops them, rather than claimed (`if_mac` in classify.c). Keep it in
    /// step when the address changes; without an entry nothing is checked.
    ///
    /// # Errors
    ///
    /// The map is full ([`MAX_INTERFACES`]).
    pub fn set_if_mac(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<(), XdpError> {
        let mut v = [0u8; 8];
        v[..6].copy_from_slice(&mac);
        self.if_mac
            .insert(ifindex, u64::from_ne_bytes(v), 0)
            .map_err(map_err("if_mac"))
    }

    /// Forgets the slot base of `ifindex`: its frames are passed again.
    ///
    /// # Errors
    ///
    /// The map operation failed (a missing entry is not an error).
    pub fn unset_if_base(&mut self, ifindex: u32) -> Result<(), XdpError> {
        match self.if_base.remove(&ifindex) {
            Err(e) if !is_not_found(&e) => Err(map_err("if_base")(e)),
            _ => Ok(()),
        }
    }

    /// Puts the AF_XDP socket `fd` in slot `slot` of the xsks map (aya
    /// `XskMap::set`). The socket must be bound to the interface and queue
    /// the slot stands for, or the kernel drops what is redirected to it.
    ///
    /// # Errors
    ///
    /// `slot` out of range ([`MAX_XSK_SLOTS`]), or `fd` not an AF_XDP socket.
    pub fn xsk_map_set(&mut self, slot: u32, fd: RawFd) -> Result<(), XdpError> {
        self.xsks.set(slot, fd, 0).map_err(map_err("xsks"))
    }

    /// Empties slot `slot` of the xsks map (a missing entry is not an error).
    ///
    /// # Errors
    ///
    /// `slot` out of range, or the map operation failed.
    pub fn xsk_map_unset(&mut self, slot: u32) -> Result<(), XdpError> {
        match self.xsks.unset(slot) {
            Err(e) if !is_not_found(&e) => Err(map_err("xsks")(e)),
            _ => Ok(()),
        }
    }

    /// The per-CPU counters, summed.
    ///
    /// # Errors
    ///
    /// The map could not be read.
    pub fn stats(&self) -> Result<ClassStats, XdpError> {
        let get = |idx: u32| -> Result<u64, XdpError> {
            let values = self.stats.get(&idx, 0).map_err(map_err("stats"))?;
            Ok(values.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
        };
        Ok(ClassStats {
            redirected: get(STAT_REDIRECTED)?,
            passed: get(STAT_PASSED)?,
            no_socket: get(STAT_NO_SOCKET)?,
            malformed: get(STAT_MALFORMED)?,
            fragments: get(STAT_FRAGMENT)?,
            syns: get(STAT_SYN)?,
            syn_shed: get(STAT_SYN_SHED)?,
            fragments_claimed: get(STAT_FRAG_CLAIMED)?,
        })
    }

    /// Shed `share` (0.0 to 1.0) of the pure TCP SYNs the classifier claims,
    /// at random, before their AF_XDP ring (the SYN guard; 0 = none). What
    /// it shed is counted in [`ClassStats::syn_shed`].
    ///
    /// # Errors
    ///
    /// The map update failed.
    pub fn set_syn_shed(&mut self, share: f64) -> Result<(), XdpError> {
        let threshold = (share.clamp(0.0, 1.0) * f64::from(u32::MAX)) as u32;
        self.syn_guard
            .set(0, threshold, 0)
            .map_err(map_err("syn_guard"))
    }

    /// Runs the program once on `frame` (`BPF_PROG_TEST_RUN`) and returns its
    /// action ([`XDP_PASS`], [`XDP_REDIRECT`]). The kernel runs it as if the
    /// frame came in on queue 0 of `lo` of the calling thread's namespace; the
    /// counters move as for a real frame. For tests and diagnostics.
    ///
    /// # Errors
    ///
    /// The kernel refused the run (frames shorter than 14 bytes, say).
    pub fn test_run(&self, frame: &[u8]) -> Result<u32, XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| XdpError::Load(format!("no program {PROGRAM}")))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(e.to_string()))?;
        let opts = TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        };
        prog.test_run(opts)
            .map(|r| r.return_value)
            .map_err(|e| XdpError::TestRun(error_chain(&e)))
    }

    /// Whether frames an XDP program redirects (as the fast path does,
    /// also back out of the ingress interface) out of interface `ifname` (`ifindex`, MAC `mac`) reach
    /// its peer, rather than being refused whole: a veth takes them only
    /// while its peer is in NAPI mode (an XDP program or GRO on it).
    ///
    /// Sends [`PROBE_FRAMES`] frames of the IEEE local experimental
    /// EtherType 0x88B5 from and to `mac` out of the interface
    /// (`BPF_PROG_TEST_RUN` in live-frames mode, kernel 5.18+) and compares
    /// the veth's XDP transmit counters before and after
    /// ([`redirect_taken`]). The peer drops the frames (not for it,
    /// unknown type).
    ///
    /// In `veth_xdp_xmit` (drivers/net/veth.c), a peer without NAPI makes
    /// the whole batch fail with `-ENXIO` before anything is counted; with
    /// NAPI, each frame is counted either as delivered
    /// (`tx_queue_N_xdp_xmit`) or, when the peer's ring is full or the
    /// frame too long, as an error (`tx_queue_N_xdp_xmit_errors`). So a
    /// move of either counter, by the probe's frames or by anyone else's
    /// redirects meanwhile, means "the interface takes redirects"; a busy
    /// peer dropping some frames does not turn the answer into "no".
    ///
    /// # Errors
    ///
    /// [`XdpError::LiveFramesRefused`] when the host refuses live-frames
    /// test runs ([`crate::livefr::is_refusal`]) or `RVS_LIVE_FRAMES=off`
    /// says to act as if ([`crate::livefr::forced_off`]): the answer must
    /// then come from elsewhere (rvsd watches real redirects:
    /// [`crate::redirwatch`]). Otherwise the interface has no such counters
    /// (not a veth), or the kernel refused the run for another reason.
    pub fn probe_redirect(
        &self,
        ifname: &str,
        ifindex: u32,
        mac: [u8; 6],
    ) -> Result<bool, XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program(PROBE)
            .ok_or_else(|| XdpError::Load(format!("no program {PROBE}")))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(e.to_string()))?;
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&mac);
        frame[6..12].copy_from_slice(&mac);
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
        frame[14..32].copy_from_slice(b"rvs redirect probe");
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
        let before = xdp_xmit_counters(ifname)?;
        if crate::livefr::forced_off() {
            return Err(XdpError::LiveFramesRefused {
                errno: crate::livefr::FORCED_ERRNO,
                detail: crate::livefr::forced_message(),
            });
        }
        let opts = TestRunOptions {
            data_in: Some(&frame),
            ctx_in: Some(&ctx),
            repeat: PROBE_FRAMES,
            attrs: TestRunAttrs::new().xdp_live_frames(0),
            ..TestRunOptions::default()
        };
        prog.test_run(opts).map_err(|e| {
            let text = error_chain(&e);
            match errno_of(&e).or_else(|| crate::livefr::errno_in(&text)) {
                Some(errno) if crate::livefr::is_refusal(errno) => XdpError::LiveFramesRefused {
                    errno,
                    detail: format!(
                        "live-frames test runs refused ({}): {text}",
                        errno_name(errno)
                    ),
                },
                _ => XdpError::TestRun(text),
            }
        })?;
        let after = xdp_xmit_counters(ifname)?;
        Ok(redirect_taken(before, after))
    }

    /// Detaches the program from every interface and unloads it (as Drop).
    pub fn detach(self) {
        drop(self);
    }

    fn detach_all(&mut self) {
        let links = std::mem::take(&mut self.links);
        if let Ok(prog) = xdp_program(&mut self.ebpf) {
            for link in links {
                // A link another Classifier replaced is already detached in
                // the kernel; closing it is all that is left.
                let _ = prog.detach(link);
            }
        }
    }
}

impl Drop for Classifier {
    fn drop(&mut self) {
        self.detach_all();
    }
}

fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| XdpError::Load(format!("no program {PROGRAM} in classify.o")))?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(e.to_string()))
}

fn take_map<M>(
    ebpf: &mut Ebpf,
    name: &'static str,
    convert: impl FnOnce(aya::maps::Map) -> Result<M, MapError>,
) -> Result<M, XdpError> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| XdpError::Load(format!("no map {name} in classify.o")))?;
    convert(map).map_err(map_err(name))
}

fn load_err(e: &EbpfError) -> XdpError {
    XdpError::Load(error_chain(e))
}

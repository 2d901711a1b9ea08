//! The XDP fast path's flow cache: `rvs_flows` and `rvs_fp_stats` of
//! `bpf/fastpath.h`.
//!
//! rvsd installs, for a flow its engine already forwards, the key of the
//! flow's packets as they arrive ([`FlowKey`]) and what the engine does to
//! them ([`FlowAction`]); the XDP program then forwards the flow's packets
//! itself, byte for byte as the engine would, and counts them in the entry
//! ([`FlowCounters`]). rvsd reads the counters ([`FlowCache::counters`]),
//! credits the deltas to its statistics and refreshes the connection's timer
//! from `last_seen_ns` (`CLOCK_MONOTONIC_COARSE`, [`monotonic_now_ns`]).
//!
//! The map is an LRU hash of [`FLOW_CACHE_MAX`] entries: the kernel may
//! evict an entry at any time, and the flow's next packet then goes through
//! the slow path (the engine), never to the floor.
//!
//! Where rvsd cannot probe whether a veth takes redirected frames
//! (live-frames test runs refused), it watches the egress instead
//! ([`FlowCache::watch`], [`crate::redirwatch`]): entries towards it carry
//! its slot, the program counts their redirects per interface
//! (`rvs_fp_watch`) and lets through only what the interface's gate allows
//! (`rvs_fp_gate`); other entries skip both.
//!
//! The maps live in whichever object includes `fastpath.h`:
//! [`FlowCache::from_ebpf`] takes them from an [`aya::Ebpf`] (the classifier
//! later; `FastPathTestProgram`, with the `test-programs` feature, now).

use std::{
    fmt,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd},
};

use aya::{
    Ebpf, Pod,
    maps::{Array, HashMap, IterableMap, MapData, MapError, PerCpuArray, PerCpuValues},
};

/// Capacity of `rvs_flows` (`RVS_FLOW_CACHE_MAX` in fastpath.h).
pub const FLOW_CACHE_MAX: u32 = 65536;

/// Name of the flow map in fastpath.h.
const FLOWS_MAP: &str = "rvs_flows";
/// Name of the per-CPU counter map in fastpath.h.
const STATS_MAP: &str = "rvs_fp_stats";
/// Name of the per-CPU counters of watched egress interfaces in fastpath.h.
const WATCH_MAP: &str = "rvs_fp_watch";
/// Name of the gates of watched egress interfaces in fastpath.h.
const GATE_MAP: &str = "rvs_fp_gate";

/// Slots of `rvs_fp_watch` and `rvs_fp_gate` (`RVS_FP_WATCH_MAX`); slot 0
/// means "not watched", so one less interface can be watched.
pub const WATCH_MAX: u32 = 64;
/// `RVS_FP_F_WATCH_SLOT`: the bits of `struct rvs_flow_action.flags` that
/// hold the slot.
const WATCH_SLOT_MASK: u16 = 0x3f;
const _: () = assert!(WATCH_MAX == WATCH_SLOT_MASK as u32 + 1);

// struct rvs_flow_action.method
const METHOD_DR: u8 = 1;
const METHOD_TUN: u8 = 2;
const METHOD_NAT_IN: u8 = 3;
const METHOD_NAT_OUT: u8 = 4;

// Families of fastpath.h.
const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

const TCP: u8 = 6;
const UDP: u8 = 17;
const SCTP: u8 = 132;

// Indices of `rvs_fp_stats` (enum in fastpath.h).
const STAT_HIT: u32 = 0;
const STAT_MISS: u32 = 1;
const STAT_SKIP: u32 = 2;
const STAT_TOO_BIG: u32 = 3;
const STAT_TTL: u32 = 4;
const STAT_ERROR: u32 = 5;
const STAT_CSUM: u32 = 6;
const STAT_CSUM_SLOW: u32 = 7;

/// Errors of the flow cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowCacheError {
    /// The object has no such map, or it has another layout.
    #[error("flow cache: {0}")]
    Load(String),
    /// A map operation failed.
    #[error("flow cache map {map}: {source}")]
    Map {
        /// Name of the map in fastpath.h.
        map: &'static str,
        /// aya's error.
        #[source]
        source: MapError,
    },
    /// The entry cannot be expressed, or the fast path could never apply it.
    #[error("flow cache entry: {0}")]
    Invalid(&'static str),
    /// `BPF_PROG_TEST_RUN` failed.
    #[error("test run: {0}")]
    TestRun(String),
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> FlowCacheError {
    move |source| FlowCacheError::Map { map, source }
}

/// A flow as its packets arrive at the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// IP protocol: 6 (TCP), 17 (UDP) or 132 (SCTP).
    pub proto: u8,
    /// Source address of the packets.
    pub src: IpAddr,
    /// Destination address of the packets.
    pub dst: IpAddr,
    /// Source port, host order.
    pub sport: u16,
    /// Destination port, host order.
    pub dport: u16,
}

/// What the fast path does to a flow's packets besides new MACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowRewrite {
    /// Direct routing: the MACs only.
    Dr,
    /// IP-in-IP (or IPv6-in-IP) with an outer header from `src` to `dst`,
    /// TTL 64, as `rvs_wire::encap_ipip`. Both of one family.
    Tun {
        /// Outer source: the director's address on the egress link.
        src: IpAddr,
        /// Outer destination: the real server.
        dst: IpAddr,
    },
    /// NAT, client → real server: destination := (`addr`, `port`).
    NatIn {
        /// The real server's address (the packets' family).
        addr: IpAddr,
        /// The real server's port, host order.
        port: u16,
    },
    /// NAT, real server → client: TTL − 1, source := (`addr`, `port`).
    NatOut {
        /// The virtual address (the packets' family).
        addr: IpAddr,
        /// The virtual port, host order.
        port: u16,
    },
}

/// A forwarding decision the fast path carries out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowAction {
    /// The rewrite.
    pub rewrite: FlowRewrite,
    /// Egress interface, sent to with `bpf_redirect` (also when it is the
    /// ingress one: a veth wakes a GRO-only peer after a redirect, not after
    /// `XDP_TX`; see `rvs_fp_send` in bpf/fastpath.h).
    pub ifindex: u32,
    /// Source MAC: the egress interface's.
    pub src_mac: [u8; 6],
    /// Destination MAC: the next hop's.
    pub dst_mac: [u8; 6],
    /// IP MTU of the egress link: a tunnelled packet that would exceed it
    /// goes to the slow path. Unused by the other methods.
    pub mtu: u16,
    /// rvsd's connection handle, returned by [`FlowCache::counters`].
    pub conn: u32,
    /// Free for rvsd (e.g. a generation to tell a reused handle apart).
    pub cookie: u32,
}

/// Traffic the fast path forwarded for one entry since it was installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FlowCounters {
    /// Packets.
    pub packets: u64,
    /// Bytes, counted as the engine counts them (IP length).
    pub bytes: u64,
    /// `CLOCK_MONOTONIC_COARSE` nanoseconds of the last packet
    /// (`bpf_ktime_get_coarse_ns`, tick resolution); 0 if none yet.
    pub last_seen_ns: u64,
}

/// One entry read back by [`FlowCache::counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowEntry {
    /// The flow.
    pub key: FlowKey,
    /// [`FlowAction::conn`].
    pub conn: u32,
    /// [`FlowAction::cookie`].
    pub cookie: u32,
    /// Its counters.
    pub counters: FlowCounters,
}

/// Counters of the fast path itself, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathStats {
    /// Frames forwarded by the fast path.
    pub hits: u64,
    /// Packets it could have handled but found no entry for.
    pub misses: u64,
    /// IP packets it never handles (TCP SYN/FIN/RST, fragments, options,
    /// other protocols...).
    pub skipped: u64,
    /// Hits left to the slow path: the tunnelled packet would exceed the MTU.
    pub too_big: u64,
    /// Hits left to the slow path: TTL or hop limit <= 1 on the NAT reply path.
    pub ttl: u64,
    /// Hits left to the slow path (or dropped) because the entry does not
    /// fit the packet or a helper failed.
    pub errors: u64,
    /// Hits whose checksum a sender's offload left partial, finished in
    /// XDP (and forwarded).
    pub csum_completed: u64,
    /// Hits with a partial checksum left to the slow path to finish (an
    /// SCTP CRC32c, a segment over 2048 bytes).
    pub csum_slow: u64,
}

/// `struct rvs_flow_key` of fastpath.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RawFlowKey {
    proto: u8,
    family: u8,
    pad: u16,
    /// Network order; IPv4 in `[0]`.
    saddr: [u32; 4],
    daddr: [u32; 4],
    /// Network order.
    sport: u16,
    dport: u16,
}

const _: () = assert!(size_of::<RawFlowKey>() == 40);

// SAFETY: RawFlowKey is repr(C), made of integers only, and has no padding
// (1 + 1 + 2 + 16 + 16 + 2 + 2 = 40 bytes at alignment 4, checked above):
// every byte pattern is a valid value and no byte is uninitialised.
unsafe impl Pod for RawFlowKey {}

impl RawFlowKey {
    const ZERO: Self = Self {
        proto: 0,
        family: 0,
        pad: 0,
        saddr: [0; 4],
        daddr: [0; 4],
        sport: 0,
        dport: 0,
    };
}

/// `struct rvs_flow_action` of fastpath.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RawFlowAction {
    packets: u64,
    bytes: u64,
    last_seen: u64,
    conn: u32,
    ifindex: u32,
    method: u8,
    family: u8,
    /// Host order.
    mtu: u16,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    /// Network order; IPv4 in `[0]`.
    addr_src: [u32; 4],
    addr_dst: [u32; 4],
    /// Network order.
    port: u16,
    flags: u16,
    cookie: u32,
}

const _: () = assert!(size_of::<RawFlowAction>() == 88);
const _: () = assert!(std::mem::offset_of!(RawFlowAction, addr_src) == 48);
const _: () = assert!(std::mem::offset_of!(RawFlowAction, port) == 80);

// SAFETY: RawFlowAction is repr(C), made of integers and byte arrays only,
// and has no padding (24 + 4 + 4 + 1 + 1 + 2 + 6 + 6 + 16 + 16 + 2 + 2 + 4
// = 88 bytes at alignment 8, size and offsets checked above): every byte
// pattern is a valid value and no byte is uninitialised.
unsafe impl Pod for RawFlowAction {}

impl RawFlowAction {
    const ZERO: Self = Self {
        packets: 0,
        bytes: 0,
        last_seen: 0,
        conn: 0,
        ifindex: 0,
        method: 0,
        family: 0,
        mtu: 0,
        dst_mac: [0; 6],
        src_mac: [0; 6],
        addr_src: [0; 4],
        addr_dst: [0; 4],
        port: 0,
        flags: 0,
        cookie: 0,
    };
}

/// `struct rvs_fp_watch_count` of fastpath.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RawWatchCount {
    redirected: u64,
    held: u64,
}

// SAFETY: two u64, no padding: every byte pattern is valid.
unsafe impl Pod for RawWatchCount {}

/// `struct rvs_fp_gate` of fastpath.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct RawGate {
    closed: u32,
    pad: u32,
    budget: i64,
}

const _: () = assert!(size_of::<RawGate>() == 16);

// SAFETY: integers only, no padding (4 + 4 + 8 at alignment 8): every byte
// pattern is valid.
unsafe impl Pod for RawGate {}

/// What the fast path may send to a watched egress interface
/// ([`FlowCache::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Everything its entries match.
    Open,
    /// At most this many more frames (0: none); the others go to the slow
    /// path untouched.
    Budget(u32),
}

/// What the fast path did towards a watched egress interface since it was
/// watched (summed over CPUs), and its gate now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchCounts {
    /// Frames redirected to it.
    pub redirected: u64,
    /// Frames its gate left to the slow path.
    pub held: u64,
    /// The gate's budget left, `None` while open. Read before the
    /// counters: a budget spent and not counted as redirected was spent on
    /// a frame the fast path then left to the slow path (TTL, MTU...).
    pub budget_left: Option<i64>,
}

mod batch;
mod convert;
#[cfg(feature = "test-programs")]
mod testprog;

pub use batch::BATCH;
use batch::{push_entry, take_unsupported};
#[cfg(feature = "test-programs")]
pub use testprog::{FastPathTestProgram, TestProgram, TestRunOutput};

/// `CLOCK_MONOTONIC_COARSE` now, in nanoseconds: the clock of
/// [`FlowCounters::last_seen_ns`] (`bpf_ktime_get_coarse_ns`). The same
/// clock as `CLOCK_MONOTONIC` (and so as `std::time::Instant`) at tick
/// resolution: up to one tick (1 to 10 ms) behind it.
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE
    // exists since Linux 2.6.32, so the call cannot fail (and `ts` stays
    // zero if it did).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The fast path's maps in a loaded object.
pub struct FlowCache {
    flows: HashMap<MapData, RawFlowKey, RawFlowAction>,
    stats: PerCpuArray<MapData, u64>,
    watch: PerCpuArray<MapData, RawWatchCount>,
    gates: Array<MapData, RawGate>,
    /// The ifindex watched in each slot (index), 0 = free; slot 0 unused.
    slots: [u32; WATCH_MAX as usize],
    /// Why the kernel refused `BPF_MAP_LOOKUP_AND_DELETE_ELEM` on the
    /// flows map (before 5.14), if it did: [`FlowCache::remove`] then reads,
    /// then deletes.
    take_refused: Option<String>,
    /// Why the kernel refused `BPF_MAP_UPDATE_BATCH`, if it did:
    /// [`FlowCache::insert_many`] then writes entry by entry.
    batch_refused: Option<String>,
}

impl fmt::Debug for FlowCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowCache").finish_non_exhaustive()
    }
}

impl FlowCache {
    /// Takes `rvs_flows` and `rvs_fp_stats` out of a loaded object that
    /// includes fastpath.h (they are no longer in `ebpf` afterwards).
    ///
    /// # Errors
    ///
    /// A map is missing or has another key or value size.
    pub fn from_ebpf(ebpf: &mut Ebpf) -> Result<Self, FlowCacheError> {
        let flows = ebpf
            .take_map(FLOWS_MAP)
            .ok_or_else(|| FlowCacheError::Load(format!("no map {FLOWS_MAP}")))?;
        let flows = HashMap::try_from(flows).map_err(map_err(FLOWS_MAP))?;
        let stats = ebpf
            .take_map(STATS_MAP)
            .ok_or_else(|| FlowCacheError::Load(format!("no map {STATS_MAP}")))?;
        let stats = PerCpuArray::try_from(stats).map_err(map_err(STATS_MAP))?;
        let watch = ebpf
            .take_map(WATCH_MAP)
            .ok_or_else(|| FlowCacheError::Load(format!("no map {WATCH_MAP}")))?;
        let watch = PerCpuArray::try_from(watch).map_err(map_err(WATCH_MAP))?;
        let gates = ebpf
            .take_map(GATE_MAP)
            .ok_or_else(|| FlowCacheError::Load(format!("no map {GATE_MAP}")))?;
        let gates = Array::try_from(gates).map_err(map_err(GATE_MAP))?;
        Ok(Self {
            flows,
            stats,
            watch,
            gates,
            slots: [0; WATCH_MAX as usize],
            take_refused: None,
            batch_refused: None,
        })
    }

    /// The watch slot of egress `ifindex`, 0 if it is not watched.
    fn slot_of(&self, ifindex: u32) -> u16 {
        if ifindex == 0 {
            return 0;
        }
        self.slots
            .iter()
            .position(|&i| i == ifindex)
            .map_or(0, |s| s as u16)
    }

    /// Watches egress `ifindex` from now on: entries installed afterwards
    /// that send there count their redirects per interface and obey its
    /// `gate` ([`WatchCounts`], [`FlowCache::set_gate`]); entries installed
    /// before do not (reinstall them). Counts start at zero. Watching an
    /// interface again only sets its gate. This is how rvsd decides whether
    /// a veth takes redirected frames when the host refuses live-frames
    /// test runs (the redirect probe): see `redirwatch`.
    ///
    /// # Errors
    ///
    /// [`WATCH_MAX`] - 1 interfaces watched already, or a map update
    /// failing.
    pub fn watch(&mut self, ifindex: u32, gate: Gate) -> Result<(), FlowCacheError> {
        if ifindex == 0 {
            return Err(FlowCacheError::Invalid("watch: ifindex 0"));
        }
        if self.slot_of(ifindex) == 0 {
            let slot = (1..WATCH_MAX as usize)
                .find(|&s| self.slots[s] == 0)
                .ok_or(FlowCacheError::Invalid(
                    "watch: too many watched interfaces",
                ))?;
            let cpus = aya::util::nr_cpus()
                .map_err(|(what, e)| FlowCacheError::Load(format!("{what}: {e}")))?;
            let zero = PerCpuValues::try_from(vec![RawWatchCount::default(); cpus])
                .map_err(|e| FlowCacheError::Load(format!("per-CPU values: {e}")))?;
            self.watch
                .set(slot as u32, zero, 0)
                .map_err(map_err(WATCH_MAP))?;
            self.slots[slot] = ifindex;
        }
        self.set_gate(ifindex, gate)
    }

    /// Sets the gate of watched egress `ifindex`.
    ///
    /// # Errors
    ///
    /// [`FlowCacheError::Invalid`] if it is not watched, or the map update
    /// failing.
    pub fn set_gate(&mut self, ifindex: u32, gate: Gate) -> Result<(), FlowCacheError> {
        let slot = self.slot_of(ifindex);
        if slot == 0 {
            return Err(FlowCacheError::Invalid("gate: interface not watched"));
        }
        let raw = match gate {
            Gate::Open => RawGate::default(),
            Gate::Budget(n) => RawGate {
                closed: 1,
                pad: 0,
                budget: i64::from(n),
            },
        };
        self.gates
            .set(u32::from(slot), raw, 0)
            .map_err(map_err(GATE_MAP))
    }

    /// What the fast path did towards watched egress `ifindex`, `None` if
    /// it is not watched.
    ///
    /// # Errors
    ///
    /// A map lookup failing.
    pub fn watch_counts(&self, ifindex: u32) -> Result<Option<WatchCounts>, FlowCacheError> {
        let slot = u32::from(self.slot_of(ifindex));
        if slot == 0 {
            return Ok(None);
        }
        let g = self.gates.get(&slot, 0).map_err(map_err(GATE_MAP))?;
        let v = self.watch.get(&slot, 0).map_err(map_err(WATCH_MAP))?;
        let (redirected, held) = v.iter().fold((0u64, 0u64), |(r, h), c| {
            (r.wrapping_add(c.redirected), h.wrapping_add(c.held))
        });
        Ok(Some(WatchCounts {
            redirected,
            held,
            budget_left: (g.closed != 0).then_some(g.budget),
        }))
    }

    /// Installs (or replaces) the entry of `key`, counters zero. Traffic
    /// counted by a replaced entry is lost: use [`FlowCache::replace`] to
    /// get it back.
    ///
    /// # Errors
    ///
    /// [`FlowCacheError::Invalid`] for an entry the program could not apply
    /// (nothing is written), or the map update failing.
    pub fn insert(&mut self, key: &FlowKey, action: &FlowAction) -> Result<(), FlowCacheError> {
        let (k, v) = self.raw_entry(key, action)?;
        self.flows.insert(k, v, 0).map_err(map_err(FLOWS_MAP))
    }

    /// The map's key and value for `key` → `action`, the value with the
    /// watch slot of its egress.
    fn raw_entry(
        &self,
        key: &FlowKey,
        action: &FlowAction,
    ) -> Result<(RawFlowKey, RawFlowAction), FlowCacheError> {
        let k = key.to_raw()?;
        let mut v = action.to_raw(key)?;
        v.flags = self.slot_of(action.ifindex);
        Ok((k, v))
    }

    /// [`FlowCache::insert`] of every entry of `entries`, in order, the
    /// valid ones in one `BPF_MAP_UPDATE_BATCH` (entry by entry where the
    /// kernel refuses it: [`FlowCache::insert_fallback`] says why). Returns
    /// one result per entry, in order: an entry the program could not
    /// apply is refused alone ([`FlowCacheError::Invalid`], nothing
    /// written), as is one whose write failed (the entries after it are
    /// still written, one by one).
    pub fn insert_many(
        &mut self,
        entries: &[(FlowKey, FlowAction)],
    ) -> Vec<Result<(), FlowCacheError>> {
        let mut results: Vec<Result<(), FlowCacheError>> = Vec::with_capacity(entries.len());
        let (mut keys, mut values, mut at) = (Vec::new(), Vec::new(), Vec::new());
        for (i, (key, action)) in entries.iter().enumerate() {
            match self.raw_entry(key, action) {
                Ok((k, v)) => {
                    keys.push(k);
                    values.push(v);
                    at.push(i);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        let mut written = 0;
        if self.batch_refused.is_none() && !keys.is_empty() {
            let (n, r) = self.put_raw_batch(&keys, &values);
            written = n;
            match r {
                Ok(()) => {}
                Err(e) if n == 0 && take_unsupported(&e) => {
                    self.batch_refused = Some(e.to_string());
                }
                Err(io_error) => {
                    // The entry the kernel stopped at failed; the rest are
                    // tried one by one below.
                    results[at[n]] = Err(map_err(FLOWS_MAP)(MapError::SyscallError(
                        aya::sys::SyscallError {
                            call: "bpf_map_update_batch",
                            io_error,
                        },
                    )));
                    written = n + 1;
                }
            }
        }
        for j in written..keys.len() {
            if let Err(e) = self.flows.insert(keys[j], values[j], 0) {
                results[at[j]] = Err(map_err(FLOWS_MAP)(e));
            }
        }
        results
    }

    /// Why [`FlowCache::insert_many`] writes entry by entry: the kernel's
    /// refusal of `BPF_MAP_UPDATE_BATCH` (kernels before 5.6), once met.
    pub fn insert_fallback(&self) -> Option<&str> {
        self.batch_refused.as_deref()
    }

    /// As [`FlowCache::insert`], returning the counters of the entry it
    /// replaced (packets forwarded between the read and the write are lost:
    /// a few at most).
    ///
    /// # Errors
    ///
    /// As [`FlowCache::insert`].
    pub fn replace(
        &mut self,
        key: &FlowKey,
        action: &FlowAction,
    ) -> Result<Option<FlowCounters>, FlowCacheError> {
        let (k, v) = self.raw_entry(key, action)?;
        let old = self.get_raw(&k)?;
        self.flows.insert(k, v, 0).map_err(map_err(FLOWS_MAP))?;
        Ok(old.map(|o| FlowCounters::from(&o)))
    }

    /// Removes the entry of `key`, returning its last counters (`None` if
    /// there was none: never installed, or evicted). One system call
    /// (`BPF_MAP_LOOKUP_AND_DELETE_ELEM`); two, a read and the delete, on
    /// a kernel without it ([`FlowCache::remove_fallback`] says why).
    ///
    /// # Errors
    ///
    /// A key the cache could not hold, or a map operation failing.
    pub fn remove(&mut self, key: &FlowKey) -> Result<Option<FlowCounters>, FlowCacheError> {
        let k = key.to_raw()?;
        if self.take_refused.is_none() {
            // One syscall: the entry's last counters and its removal.
            match self.take_raw(&k) {
                Ok(old) => return Ok(old.map(|o| FlowCounters::from(&o))),
                Err(e) if take_unsupported(&e) => {
                    self.take_refused = Some(e.to_string());
                }
                Err(io_error) => {
                    return Err(map_err(FLOWS_MAP)(MapError::SyscallError(
                        aya::sys::SyscallError {
                            call: "bpf_map_lookup_and_delete_elem",
                            io_error,
                        },
                    )));
                }
            }
        }
        let Some(old) = self.get_raw(&k)? else {
            return Ok(None);
        };
        match self.flows.remove(&k) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(Some(FlowCounters::from(&old))),
            Err(e) => Err(map_err(FLOWS_MAP)(e)),
        }
    }

    /// Why [`FlowCache::remove`] takes two system calls (a read, then the
    /// delete) instead of one: the kernel's refusal of
    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` on hash maps (kernels before 5.14),
    /// once a removal met it; `None` while it has not.
    pub fn remove_fallback(&self) -> Option<&str> {
        self.take_refused.as_deref()
    }

    /// Makes [`FlowCache::remove`] read, then delete, as on a kernel that
    /// refuses `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (tests of that path).
    #[doc(hidden)]
    pub fn force_remove_fallback(&mut self) {
        self.take_refused = Some("forced".into());
    }

    /// Makes [`FlowCache::insert_many`] write entry by entry, as on a
    /// kernel that refuses `BPF_MAP_UPDATE_BATCH` (tests of that path).
    #[doc(hidden)]
    pub fn force_insert_fallback(&mut self) {
        self.batch_refused = Some("forced".into());
    }

    /// The entry of `key`, if installed.
    ///
    /// # Errors
    ///
    /// A key the cache could not hold, a failed lookup, or an entry the
    /// program did not write (unknown method or family).
    pub fn get(&self, key: &FlowKey) -> Result<Option<(FlowAction, FlowCounters)>, FlowCacheError> {
        let k = key.to_raw()?;
        let Some(v) = self.get_raw(&k)? else {
            return Ok(None);
        };
        let action = FlowAction::from_raw(&v).ok_or(FlowCacheError::Invalid(
            "an entry with an unknown method or family",
        ))?;
        Ok(Some((action, FlowCounters::from(&v))))
    }

    fn get_raw(&self, k: &RawFlowKey) -> Result<Option<RawFlowAction>, FlowCacheError> {
        match self.flows.get(k, 0) {
            Ok(v) => Ok(Some(v)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(FLOWS_MAP)(e)),
        }
    }

    /// Reads every entry's counters into `out` (cleared first), for rvsd to
    /// credit the deltas since its last read.
    ///
    /// Uses `BPF_MAP_LOOKUP_BATCH` (kernel 5.6+; aya 0.14 does not wrap it),
    /// [`BATCH`] entries a syscall; where the kernel refuses it, walks the
    /// keys (two syscalls per entry). Entries evicted or removed during the
    /// read are skipped; entries added during it may be missed (read on the
    /// next pass).
    ///
    /// # Errors
    ///
    /// A map operation failing other than on a vanished key.
    pub fn counters(&self, out: &mut Vec<FlowEntry>) -> Result<(), FlowCacheError> {
        out.clear();
        match self.counters_batched(out) {
            Ok(()) => Ok(()),
            // EINVAL/ENOTSUPP: no batch operations for this map or kernel.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(524)) => {
                out.clear();
                self.counters_by_key(out)
            }
            Err(e) => Err(FlowCacheError::Map {
                map: FLOWS_MAP,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "bpf_map_lookup_batch",
                    io_error: e,
                }),
            }),
        }
    }

    /// [`FlowCache::counters`] one key at a time (its fallback, public to
    /// compare the two): `out` is not cleared.
    ///
    /// # Errors
    ///
    /// A map operation failing other than on a vanished key.
    pub fn counters_by_key(&self, out: &mut Vec<FlowEntry>) -> Result<(), FlowCacheError> {
        for item in self.flows.iter() {
            let (k, v) = match item {
                Ok(kv) => kv,
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(FLOWS_MAP)(e)),
            };
            push_entry(out, &k, &v);
        }
        Ok(())
    }

    /// Removes every entry whose `conn` handle matches `pred` (e.g. all the
    /// flows of a deleted real server, or every flow after a configuration
    /// change), returning them with their last counters.
    ///
    /// # Errors
    ///
    /// As [`FlowCache::counters`]; entries removed before the error stay
    /// removed.
    pub fn remove_where(
        &mut self,
        mut pred: impl FnMut(&FlowEntry) -> bool,
    ) -> Result<Vec<FlowEntry>, FlowCacheError> {
        let mut all = Vec::new();
        self.counters(&mut all)?;
        all.retain(|e| pred(e));
        for e in &all {
            let k = e.key.to_raw()?;
            match self.flows.remove(&k) {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(err) => return Err(map_err(FLOWS_MAP)(err)),
            }
        }
        Ok(all)
    }

    /// The fast path's own counters, summed over CPUs.
    ///
    /// # Errors
    ///
    /// The per-CPU lookup failing.
    pub fn stats(&self) -> Result<FastPathStats, FlowCacheError> {
        let sum = |i: u32| -> Result<u64, FlowCacheError> {
            let v = self.stats.get(&i, 0).map_err(map_err(STATS_MAP))?;
            Ok(v.iter().fold(0u64, |a, x| a.wrapping_add(*x)))
        };
        Ok(FastPathStats {
            hits: sum(STAT_HIT)?,
            misses: sum(STAT_MISS)?,
            skipped: sum(STAT_SKIP)?,
            too_big: sum(STAT_TOO_BIG)?,
            ttl: sum(STAT_TTL)?,
            errors: sum(STAT_ERROR)?,
            csum_completed: sum(STAT_CSUM)?,
            csum_slow: sum(STAT_CSUM_SLOW)?,
        })
    }
}

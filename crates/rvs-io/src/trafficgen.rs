//! The packet generator and sink of `rvs bench packet`: `bpf/trafficgen.c`.
//!
//! [`Generator`] sends 64-byte UDP/IPv4 frames over many flows out of an
//! interface as native XDP frames: user space runs the never-attached
//! program `rvs_gen` with `BPF_PROG_TEST_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`, kernel 5.18+) and the interface as its
//! ingress, so every `XDP_TX` leaves that interface (the technique of
//! xdp-trafficgen). Frames reach a veth peer as XDP frames, not socket
//! buffers: neither the sender nor the receiver pays for an skb, which
//! keeps the generator from being the bottleneck (6–8 Mpps into a veth on
//! this kind of machine, against about 1 Mpps for an AF_XDP copy-mode or
//! AF_PACKET sender). The peer must be in NAPI mode (an XDP program or GRO
//! on it), or the veth drops the frames.
//!
//! [`Sink`] is `rvs_sink` attached (native mode) to the sink's interface:
//! it counts IPv4 frames and their bytes and drops them, so the sink costs
//! little and needs no socket.
//!
//! [`Redirect`] is `rvs_redirect` attached to an interface: the bare XDP
//! forwarder (rewrite the Ethernet addresses of IPv4 frames, redirect them
//! out of another interface), the bench's floor for what forwarding in XDP
//! costs.
//!
//! [`Pass`] is `rvs_pass` attached to an interface: it passes every frame,
//! and puts a veth in NAPI mode so that it takes its peer's XDP frames.
//!
//! Interface names and indices are those of the calling thread's network
//! namespace; once attached or loaded, the objects work from any namespace.

use aya::{
    Ebpf, Pod,
    maps::{Array, MapData, PerCpuArray},
    programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};

use crate::xdp::{XdpError, error_chain, ifindex, verifier_msg};

/// The object, built from `bpf/trafficgen.c` by build.rs.
static OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trafficgen.o"));

/// Length of every generated frame (64 bytes on the wire with the FCS).
pub const FRAME_LEN: usize = 60;

/// Header bytes the generator rewrites in every frame (Ethernet, IPv4, UDP).
const HDR_LEN: usize = 42;

/// Frames the kernel keeps in flight per live-frames batch (its default).
pub const BATCH: u32 = 64;

/// What to send: one UDP/IPv4 flow per source port, round robin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flows {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub dst_port: u16,
    /// First source port.
    pub sport_base: u16,
    /// Number of flows: source ports `sport_base..sport_base + flows`
    /// (at least 1, at most what fits below 65536).
    pub flows: u16,
}

/// Frame of flow number `i`: Ethernet, IPv4 (don't fragment, TTL 64, valid
/// header checksum), UDP from source port `sport_base + i` (checksum 0:
/// none, legal over IPv4), zero padding to [`FRAME_LEN`].
pub fn frame(f: &Flows, i: u16) -> [u8; FRAME_LEN] {
    let mut b = [0u8; FRAME_LEN];
    b[0..6].copy_from_slice(&f.dst_mac);
    b[6..12].copy_from_slice(&f.src_mac);
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut b[14..34];
    ip[0] = 0x45;
    let total = (FRAME_LEN - 14) as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&f.src_ip);
    ip[16..20].copy_from_slice(&f.dst_ip);
    let c = !rvs_wire::checksum::data(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut b[34..42];
    udp[0..2].copy_from_slice(&f.sport_base.wrapping_add(i).to_be_bytes());
    udp[2..4].copy_from_slice(&f.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((FRAME_LEN - 34) as u16).to_be_bytes());
    b
}

/// `struct gen_cfg` of trafficgen.c.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct GenCfg {
    hdr: [u8; HDR_LEN + 6],
    flows: u32,
    sport_base: u16,
    pad: u16,
    rate: u64,
    burst: u64,
    quantum: u64,
}

const _: () = assert!(size_of::<GenCfg>() == 80);

// SAFETY: GenCfg is repr(C), made of integers only, and has no padding
// (48 + 4 + 2 + 2 = 56 bytes, then three u64 at offset 56, a multiple of
// 8: 80 bytes, checked above): every byte pattern is a valid value and no
// byte is uninitialised.
unsafe impl Pod for GenCfg {}

/// `struct gen_pace` of trafficgen.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct GenPace {
    start_ns: u64,
    sent: u64,
}

// SAFETY: two u64, no padding.
unsafe impl Pod for GenPace {}

/// Frames a paced generator that fell behind may send back to back: a
/// quarter of a veth's receive ring (256 frames).
pub const PACED_BURST: u64 = 64;

/// Paced frames go out this many at a time, back to back (an eighth of a
/// veth's ring): the receiver wakes once per group, as behind a NIC that
/// coalesces interrupts, not once per frame.
pub const PACED_QUANTUM: u64 = 32;

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, XdpError> {
    ebpf.program_mut(name)
        .ok_or_else(|| XdpError::Load(format!("no program {name} in trafficgen.o")))?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(e.to_string()))
}

fn per_cpu_sum(ebpf: &Ebpf, map: &'static str, idx: u32) -> Result<u64, XdpError> {
    let m = ebpf
        .map(map)
        .ok_or_else(|| XdpError::Load(format!("no map {map} in trafficgen.o")))?;
    let m: PerCpuArray<&MapData, u64> =
        PerCpuArray::try_from(m).map_err(|source| XdpError::Map { map, source })?;
    let v = m
        .get(&idx, 0)
        .map_err(|source| XdpError::Map { map, source })?;
    Ok(v.iter().fold(0u64, |a, x| a.wrapping_add(*x)))
}

/// Sets entry 0 of the array map `map` to `value`.
fn set_first<V: Pod>(ebpf: &mut Ebpf, map: &'static str, value: V) -> Result<(), XdpError> {
    let m = ebpf
        .map_mut(map)
        .ok_or_else(|| XdpError::Load(format!("no map {map} in trafficgen.o")))?;
    let mut m: Array<&mut MapData, V> =
        Array::try_from(m).map_err(|source| XdpError::Map { map, source })?;
    m.set(0, value, 0)
        .map_err(|source| XdpError::Map { map, source })
}

/// The generator, loaded, sending out of one interface.
pub struct Generator {
    ebpf: Ebpf,
    frame: [u8; FRAME_LEN],
    ifindex: u32,
    cfg: GenCfg,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("ifindex", &self.ifindex)
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// Loads `rvs_gen` to send `flows` out of `iface`.
    ///
    /// # Errors
    ///
    /// No flows, more flows than source ports above `sport_base`, no such
    /// interface, a load or map failure.
    pub fn load(iface: &str, flows: &Flows) -> Result<Self, XdpError> {
        if flows.flows == 0 || u32::from(flows.sport_base) + u32::from(flows.flows) > 65536 {
            return Err(XdpError::Load(format!(
                "generator: {} flows from source port {} do not fit in 1..=65535",
                flows.flows, flows.sport_base
            )));
        }
        let ifindex = ifindex(iface)?;
        let mut ebpf = Ebpf::load(OBJ).map_err(|e| XdpError::Load(error_chain(&e)))?;
        program(&mut ebpf, "rvs_gen")?
            .load()
            .map_err(|e| XdpError::Load(verifier_msg(&e)))?;
        let frame = frame(flows, 0);
        let mut hdr = [0u8; HDR_LEN + 6];
        hdr[..HDR_LEN].copy_from_slice(&frame[..HDR_LEN]);
        let cfg = GenCfg {
            hdr,
            flows: u32::from(flows.flows),
            sport_base: flows.sport_base,
            pad: 0,
            rate: 0,
            burst: PACED_BURST,
            quantum: PACED_QUANTUM,
        };
        let mut g = Self {
            ebpf,
            frame,
            ifindex,
            cfg,
        };
        g.write_cfg()?;
        Ok(g)
    }

    fn write_cfg(&mut self) -> Result<(), XdpError> {
        set_first(&mut self.ebpf, "gen_cfg", self.cfg)
    }

    /// Paces what [`Generator::send`] sends from now on: `rate` frames a
    /// second (`None`: as fast as possible), counted from the first frame
    /// of the next send, in groups of [`PACED_QUANTUM`]. A frame not yet due is dropped unsent (the
    /// kernel's loop turns on), so the rate holds within one call, and
    /// the time between calls (tens of milliseconds: the kernel sets up
    /// and tears down its frame pool) is not made up with a burst of more
    /// than [`PACED_BURST`] frames.
    ///
    /// # Errors
    ///
    /// A map could not be written.
    pub fn pace(&mut self, rate: Option<u64>) -> Result<(), XdpError> {
        self.cfg.rate = rate.unwrap_or(0);
        self.write_cfg()?;
        set_first(&mut self.ebpf, "gen_pace", GenPace::default())
    }

    /// Runs the program `count` times (one system call; the kernel runs it
    /// in batches of [`BATCH`] on the calling thread's CPU, sending each
    /// batch before the next): `count` frames, or those due in that time
    /// when paced ([`Generator::pace`]). Frames the receiving side cannot
    /// take (its ring full) are dropped there, as on a wire. Each call
    /// also costs a fixed setup and teardown of the kernel's frame pool
    /// (about 25 ms on this machine): send millions at a time.
    ///
    /// # Errors
    ///
    /// The kernel refused the run (no live-frames mode, the interface gone).
    pub fn send(&self, count: u32) -> Result<(), XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program("rvs_gen")
            .ok_or_else(|| XdpError::Load("no program rvs_gen".into()))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(e.to_string()))?;
        // struct xdp_md: data, data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(FRAME_LEN as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&self.ifindex.to_ne_bytes());
        let opts = TestRunOptions {
            data_in: Some(&self.frame),
            ctx_in: Some(&ctx),
            repeat: count.max(1),
            attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
            ..TestRunOptions::default()
        };
        prog.test_run(opts)
            .map(|_| ())
            .map_err(|e| XdpError::TestRun(error_chain(&e)))
    }

    /// Frames generated so far (sent, not those a pace dropped unsent).
    ///
    /// # Errors
    ///
    /// The map could not be read.
    pub fn generated(&self) -> Result<u64, XdpError> {
        per_cpu_sum(&self.ebpf, "gen_state", 0)
    }
}

/// What a [`Sink`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkCount {
    /// IPv4 frames dropped.
    pub packets: u64,
    /// Their bytes (Ethernet header included).
    pub bytes: u64,
}

/// `rvs_sink` attached to one interface; detached when dropped.
pub struct Sink {
    ebpf: Ebpf,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink").finish_non_exhaustive()
    }
}

impl Sink {
    /// Attaches the sink to `iface` in native mode (a veth: it also puts
    /// the interface in NAPI mode, so its peer can redirect XDP frames to
    /// it).
    ///
    /// # Errors
    ///
    /// No such interface, no native XDP on it, a load failure.
    pub fn attach(iface: &str) -> Result<Self, XdpError> {
        Ok(Self {
            ebpf: attach_native(iface, "rvs_sink", |_| Ok(()))?,
        })
    }

    /// What the sink counted so far.
    ///
    /// # Errors
    ///
    /// The map could not be read.
    pub fn count(&self) -> Result<SinkCount, XdpError> {
        Ok(SinkCount {
            packets: per_cpu_sum(&self.ebpf, "sink_count", 0)?,
            bytes: per_cpu_sum(&self.ebpf, "sink_count", 1)?,
        })
    }
}

/// `rvs_pass` attached to one interface; detached when dropped.
pub struct Pass {
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pass").finish_non_exhaustive()
    }
}

impl Pass {
    /// Attaches the pass-everything program to `iface` (native mode).
    ///
    /// # Errors
    ///
    /// No such interface, no native XDP on it, a load failure.
    pub fn attach(iface: &str) -> Result<Self, XdpError> {
        Ok(Self {
            _ebpf: attach_native(iface, "rvs_pass", |_| Ok(()))?,
        })
    }
}

/// Loads the object, lets `setup` fill its maps, loads program `name` and
/// attaches it to `iface` in native mode.
fn attach_native(
    iface: &str,
    name: &str,
    setup: impl FnOnce(&mut Ebpf) -> Result<(), XdpError>,
) -> Result<Ebpf, XdpError> {
    ifindex(iface)?;
    let mut ebpf = Ebpf::load(OBJ).map_err(|e| XdpError::Load(error_chain(&e)))?;
    setup(&mut ebpf)?;
    let prog = program(&mut ebpf, name)?;
    prog.load().map_err(|e| XdpError::Load(verifier_msg(&e)))?;
    prog.attach(iface, XdpMode::Driver).map_err(|e| {
        XdpError::Load(format!(
            "attach XDP program {name} to {iface}: {}",
            error_chain(&e)
        ))
    })?;
    Ok(ebpf)
}

/// `struct redirect_cfg` of trafficgen.c.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct RedirectCfg {
    dst: [u8; 6],
    src: [u8; 6],
    ifindex: u32,
}

const _: () = assert!(size_of::<RedirectCfg>() == 16);

// SAFETY: RedirectCfg is repr(C), made of integers only, and has no padding
// (6 + 6 + 4 = 16 bytes at alignment 4, checked above).
unsafe impl Pod for RedirectCfg {}

/// `rvs_redirect` attached to one interface; detached when dropped.
pub struct Redirect {
    _ebpf: Ebpf,
}

impl std::fmt::Debug for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redirect").finish_non_exhaustive()
    }
}

impl Redirect {
    /// Attaches the bare forwarder to `iface` (native mode): IPv4 frames
    /// leave through `out` with Ethernet source `src` and destination
    /// `dst`; everything else passes.
    ///
    /// # Errors
    ///
    /// No such interface, no native XDP on `iface`, a load failure.
    pub fn attach(iface: &str, out: &str, src: [u8; 6], dst: [u8; 6]) -> Result<Self, XdpError> {
        let out = ifindex(out)?;
        let cfg = RedirectCfg {
            dst,
            src,
            ifindex: out,
        };
        let ebpf = attach_native(iface, "rvs_redirect", |ebpf| {
            set_first(ebpf, "redirect_cfg", cfg)
        })?;
        Ok(Self { _ebpf: ebpf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows() -> Flows {
        Flows {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: [10, 9, 1, 1],
            dst_ip: [10, 9, 1, 100],
            dst_port: 9,
            sport_base: 10000,
            flows: 1024,
        }
    }

    #[test]
    fn frame_is_udp_ipv4_with_a_valid_header_checksum() {
        let f = frame(&flows(), 3);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(
            !rvs_wire::checksum::data(&f[14..34]),
            0,
            "header sums to 0xffff"
        );
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 10003);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 9);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 26);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 46);
    }

    #[test]
    fn the_checksum_ignores_the_ports() {
        // The program rewrites only the source port: the IPv4 header
        // checksum of the template holds for every flow.
        let a = frame(&flows(), 0);
        let b = frame(&flows(), 1023);
        assert_eq!(&a[14..34], &b[14..34]);
    }

    #[test]
    fn too_many_flows_is_an_error_before_anything_is_loaded() {
        let mut f = flows();
        f.sport_base = 65000;
        f.flows = 1000;
        let e = Generator::load("lo", &f).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");
        f.flows = 0;
        assert!(Generator::load("lo", &f).is_err());
    }
}

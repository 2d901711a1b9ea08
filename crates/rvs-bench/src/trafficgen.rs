//! The packet generators and the sink of `rvs bench packet`: `bpf/trafficgen.c`.
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
//! on it), or the veth drops the frames. Some hosts refuse live-frames
//! test runs ([`rvs_io::livefr`]): then [`Generator::send`] returns
//! [`XdpError::LiveFramesRefused`] with the kernel's reason, and so does
//! every send under `RVS_LIVE_FRAMES=off`.
//!
//! [`PacketGenerator`] is the fallback for such hosts: the same frames
//! sent with `sendmmsg(2)` on an AF_PACKET socket (`PACKET_QDISC_BYPASS`),
//! paced or flat out. They leave as socket buffers, so a veth peer running
//! XDP must first copy each into an XDP frame: every contender measured
//! with it pays that copy.
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

use std::net::Ipv4Addr;

use rvs_io::livefr;
use rvs_io::xdp::{XdpError, errno_name, errno_of, error_chain, ifindex, verifier_msg};

/// The object, built from `bpf/trafficgen.c` by build.rs.
static OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trafficgen.o"));

/// Length of every generated frame (64 bytes on the wire with the FCS).
pub const FRAME_LEN: usize = 60;

/// Header bytes the generator rewrites in every frame (Ethernet, IPv4, UDP).
const HDR_LEN: usize = 42;

/// Frames the kernel keeps in flight per live-frames batch (its default).
pub const BATCH: u32 = 64;

/// The UDP checksum of the generated frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UdpCsum {
    /// Zero: no checksum (legal over IPv4).
    #[default]
    Zero,
    /// The full checksum of each frame (as a sender without checksum
    /// offload writes it).
    Full,
    /// Partial, as Linux leaves it under transmit checksum offload: the
    /// folded, non-inverted sum of the pseudo-header, for the device (or
    /// whoever forwards the frame) to finish. It does not depend on the
    /// ports, so it is the same for every flow.
    Partial,
}

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
    /// The UDP checksum.
    pub csum: UdpCsum,
}

/// Length of the UDP segment of every frame (header and zero payload).
const UDP_LEN: u16 = (FRAME_LEN - 34) as u16;

/// The folded sum of the pseudo-header and the UDP segment of `f`'s frames
/// with source port and checksum zero: a flow's full checksum is that plus
/// its source port, folded and inverted ([`full_csum`]).
fn csum_base(f: &Flows) -> u16 {
    let (src, dst) = (Ipv4Addr::from(f.src_ip), Ipv4Addr::from(f.dst_ip));
    let mut udp = [0u8; UDP_LEN as usize];
    udp[2..4].copy_from_slice(&f.dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&UDP_LEN.to_be_bytes());
    rvs_wire::checksum::combine(&[
        rvs_wire::checksum::pseudo_header_v4(&src, &dst, 17, u32::from(UDP_LEN)),
        rvs_wire::checksum::data(&udp),
    ])
}

/// The full UDP checksum of the flow with source port `sport`, from
/// [`csum_base`]: what `rvs_gen` computes per frame (0 goes out as 0xffff,
/// 0 meaning "no checksum").
fn full_csum(base: u16, sport: u16) -> u16 {
    let s = u32::from(base) + u32::from(sport);
    let c = !(((s & 0xffff) + (s >> 16)) as u16);
    if c == 0 { 0xffff } else { c }
}

/// Frame of flow number `i`: Ethernet, IPv4 (don't fragment, TTL 64, valid
/// header checksum), UDP from source port `sport_base + i` with the
/// checksum `f.csum` asks for, zero padding to [`FRAME_LEN`].
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
    udp[4..6].copy_from_slice(&UDP_LEN.to_be_bytes());
    let c = match f.csum {
        UdpCsum::Zero => 0,
        UdpCsum::Full => full_csum(csum_base(f), f.sport_base.wrapping_add(i)),
        UdpCsum::Partial => rvs_wire::checksum::pseudo_header_v4(
            &Ipv4Addr::from(f.src_ip),
            &Ipv4Addr::from(f.dst_ip),
            17,
            u32::from(UDP_LEN),
        ),
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    b
}

/// One TCP SYN (IPv4, 20-byte TCP header, no options, window 64240, valid
/// IP and TCP checksums) from `src:sport` to `dst:dport` with sequence
/// number `seq`, padded to [`FRAME_LEN`]: the frames of a spoofed-SYN
/// flood ([`PacketGenerator::from_frames`]).
pub fn syn_frame(
    macs: ([u8; 6], [u8; 6]),
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
) -> [u8; FRAME_LEN] {
    let (src_mac, dst_mac) = macs;
    let mut b = [0u8; FRAME_LEN];
    b[0..6].copy_from_slice(&dst_mac);
    b[6..12].copy_from_slice(&src_mac);
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut b[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&src.0);
    ip[16..20].copy_from_slice(&dst.0);
    let c = !rvs_wire::checksum::data(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let tcp = &mut b[34..54];
    tcp[0..2].copy_from_slice(&src.1.to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    let c = !rvs_wire::checksum::combine(&[
        rvs_wire::checksum::pseudo_header_v4(&Ipv4Addr::from(src.0), &Ipv4Addr::from(dst.0), 6, 20),
        rvs_wire::checksum::data(tcp),
    ]);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
    b
}

/// Bytes of a SYN the generator writes (Ethernet, IPv4, TCP).
const SYN_LEN: usize = 54;

/// What to send instead of UDP: a TCP SYN of a new connection per frame.
/// Connection `i` comes from `src_ip` with `i >> 10` in its low 16 bits
/// (which must be zero) and source port `sport_base + (i & 1023)`, to
/// `dst_ip:dst_port`; `conns` of them (at most 2^26), then again from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynFlows {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub dst_port: u16,
    pub sport_base: u16,
    pub conns: u32,
}

/// Source ports per source address of [`SynFlows`].
pub const SYN_PORTS_PER_HOST: u32 = 1024;

impl SynFlows {
    /// The source of connection `i`.
    fn source(&self, i: u32) -> ([u8; 4], u16) {
        let host = ((i / SYN_PORTS_PER_HOST) as u16).to_be_bytes();
        let [a, b, _, _] = self.src_ip;
        (
            [a, b, host[0], host[1]],
            self.sport_base
                .wrapping_add((i % SYN_PORTS_PER_HOST) as u16),
        )
    }

    /// The frame of connection `i` (what the generator sends).
    pub fn frame(&self, i: u32) -> [u8; FRAME_LEN] {
        syn_frame(
            (self.src_mac, self.dst_mac),
            self.source(i),
            (self.dst_ip, self.dst_port),
            SYN_SEQ,
        )
    }

    /// Every frame, for the AF_PACKET generator.
    pub fn frames(&self) -> Vec<[u8; FRAME_LEN]> {
        (0..self.conns).map(|i| self.frame(i)).collect()
    }
}

/// The sequence number of every generated SYN.
const SYN_SEQ: u32 = 0x5259_5300;

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
    csum_base: u32,
    csum_full: u32,
    syn_hdr: [u8; SYN_LEN + 2],
    syn: u32,
    ip_base: u32,
    tcp_base: u32,
    pad2: u32,
}

const _: () = assert!(size_of::<GenCfg>() == 160);

impl GenCfg {
    /// Nothing to send yet, unpaced.
    const EMPTY: GenCfg = GenCfg {
        hdr: [0; HDR_LEN + 6],
        flows: 0,
        sport_base: 0,
        pad: 0,
        rate: 0,
        burst: PACED_BURST,
        quantum: PACED_QUANTUM,
        csum_base: 0,
        csum_full: 0,
        syn_hdr: [0; SYN_LEN + 2],
        syn: 0,
        ip_base: 0,
        tcp_base: 0,
        pad2: 0,
    };
}

// SAFETY: GenCfg is repr(C), made of integers only, and has no padding
// (48 + 4 + 2 + 2 = 56 bytes, then three u64 at offset 56, a multiple of
// 8, then two u32: 88 bytes, then 56 bytes and four u32: 160 bytes, a
// multiple of 8, checked above): every byte pattern is a valid value and
// no byte is uninitialised.
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
        let frame = frame(flows, 0);
        let mut hdr = [0u8; HDR_LEN + 6];
        hdr[..HDR_LEN].copy_from_slice(&frame[..HDR_LEN]);
        Self::load_cfg(
            iface,
            frame,
            GenCfg {
                hdr,
                flows: u32::from(flows.flows),
                sport_base: flows.sport_base,
                csum_base: u32::from(csum_base(flows)),
                csum_full: u32::from(flows.csum == UdpCsum::Full),
                ..GenCfg::EMPTY
            },
        )
    }

    /// Loads `rvs_gen` to send the SYNs of `flows` out of `iface`.
    ///
    /// # Errors
    ///
    /// No connections or more than 2^26, a source address whose low 16
    /// bits are not zero, no such interface, a load or map failure.
    pub fn load_syn(iface: &str, flows: &SynFlows) -> Result<Self, XdpError> {
        if flows.conns == 0 || flows.conns > 1 << 26 || flows.src_ip[2..] != [0, 0] {
            return Err(XdpError::Load(format!(
                "generator: {} SYNs from {:?}: 1 to 2^26, from an address ending in .0.0",
                flows.conns, flows.src_ip
            )));
        }
        // The template: connection 0 with source port 0 (its address's low
        // 16 bits are 0), the sums without the checksums.
        let mut t = syn_frame(
            (flows.src_mac, flows.dst_mac),
            (flows.src_ip, 0),
            (flows.dst_ip, flows.dst_port),
            SYN_SEQ,
        );
        t[24..26].fill(0);
        t[50..52].fill(0);
        let ip_base = rvs_wire::checksum::data(&t[14..34]);
        let tcp_base = rvs_wire::checksum::combine(&[
            rvs_wire::checksum::pseudo_header_v4(
                &Ipv4Addr::from(flows.src_ip),
                &Ipv4Addr::from(flows.dst_ip),
                6,
                20,
            ),
            rvs_wire::checksum::data(&t[34..54]),
        ]);
        let mut syn_hdr = [0u8; SYN_LEN + 2];
        syn_hdr[..SYN_LEN].copy_from_slice(&t[..SYN_LEN]);
        Self::load_cfg(
            iface,
            flows.frame(0),
            GenCfg {
                flows: flows.conns,
                sport_base: flows.sport_base,
                syn_hdr,
                syn: 1,
                ip_base: u32::from(ip_base),
                tcp_base: u32::from(tcp_base),
                ..GenCfg::EMPTY
            },
        )
    }

    fn load_cfg(iface: &str, frame: [u8; FRAME_LEN], cfg: GenCfg) -> Result<Self, XdpError> {
        let ifindex = ifindex(iface)?;
        let mut ebpf = Ebpf::load(OBJ).map_err(|e| XdpError::Load(error_chain(&e)))?;
        program(&mut ebpf, "rvs_gen")?
            .load()
            .map_err(|e| XdpError::Load(verifier_msg(&e)))?;
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
    /// [`XdpError::LiveFramesRefused`] when the host refuses live-frames
    /// test runs (the errno says so: [`livefr::is_refusal`]) or
    /// `RVS_LIVE_FRAMES=off` ([`livefr::forced_off`]): use
    /// [`PacketGenerator`]. Otherwise the kernel's error (the interface
    /// gone...).
    pub fn send(&self, count: u32) -> Result<(), XdpError> {
        if livefr::forced_off() {
            return Err(XdpError::LiveFramesRefused {
                errno: livefr::FORCED_ERRNO,
                detail: livefr::forced_message(),
            });
        }
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
        prog.test_run(opts).map(|_| ()).map_err(|e| {
            let text = error_chain(&e);
            match errno_of(&e).or_else(|| livefr::errno_in(&text)) {
                Some(errno) if livefr::is_refusal(errno) => XdpError::LiveFramesRefused {
                    errno,
                    detail: format!(
                        "live-frames test runs refused ({}): {text}",
                        errno_name(errno)
                    ),
                },
                _ => XdpError::TestRun(text),
            }
        })
    }

    /// Runs the program once, not live: the frame it writes (the next
    /// flow's; it counts as generated). Hosts that refuse live-frames
    /// test runs allow this one, so tests check what the generator writes.
    ///
    /// # Errors
    ///
    /// The kernel's.
    pub fn sample(&self) -> Result<[u8; FRAME_LEN], XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program("rvs_gen")
            .ok_or_else(|| XdpError::Load("no program rvs_gen".into()))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(e.to_string()))?;
        let mut out = [0u8; FRAME_LEN];
        let opts = TestRunOptions {
            data_in: Some(&self.frame),
            data_out: Some(&mut out),
            repeat: 1,
            ..TestRunOptions::default()
        };
        prog.test_run(opts)
            .map_err(|e| XdpError::TestRun(error_chain(&e)))?;
        Ok(out)
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

mod attached;
mod packet;

pub use attached::{Pass, Redirect, Sink, SinkCount};
pub use packet::{PACKET_BATCH, PacketGenerator};

#[cfg(test)]
mod tests;

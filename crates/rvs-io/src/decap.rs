//! The real server's IP-in-IP decapsulator: `bpf/decap.c`, for
//! `rvs realserver up --tun` on hosts whose kernel has no `ipip`/`sit`
//! module.
//!
//! For a frame whose outer header is IPv4 with protocol 4 (IPIP) or 41 (IPv6
//! in IPv4), or IPv6 with next header 4 or 41 (RFC 2473, no extension
//! headers), and whose inner destination is one of the VIPs given to
//! [`attach`], the program strips the outer header (`bpf_xdp_adjust_head`,
//! moving the Ethernet header forward and setting its ethertype to the inner
//! family) and passes the frame: the kernel then receives the client's packet
//! as if it had come in directly. Everything else (IPv4 fragments, IPv6
//! outer headers with extension headers, VLAN-tagged frames, other VIPs) is
//! passed untouched.
//!
//! # Persistence
//!
//! [`attach`] attaches through rtnetlink (`IFLA_XDP_FD`), not through a
//! bpf_link: the interface itself then holds the program, which stays
//! attached after the calling process exits, with no bpffs pin (a pin would
//! live in the caller's mount namespace, which `ip netns exec` makes private
//! and throws away). [`detach`] removes it again through rtnetlink, only if
//! the interface still runs the program id [`attach`] returned.
//!
//! Interface names and indices are those of the calling thread's network
//! namespace.

use std::{
    collections::HashSet,
    net::IpAddr,
    os::fd::{AsFd, AsRawFd},
};

use aya::{
    Ebpf, Pod,
    maps::{HashMap, MapData},
    programs::{ProgramError, TestRun, TestRunOptions, Xdp},
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage, LinkXdp},
};

use crate::xdp::{
    AttachMode, XdpError, error_chain, ifindex, rtnl_request, verifier_msg, xdp_state,
};

/// The decapsulator object, built from `bpf/decap.c` by build.rs.
static DECAP_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/decap.o"));

/// Name of the XDP program in `bpf/decap.c`.
const PROGRAM: &str = "rvs_decap";

/// Capacity of the `vips` map (`VIPS_MAX` in decap.c).
pub const MAX_VIPS: usize = 4096;

// XDP_FLAGS_* of linux/if_link.h.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `struct vip_key` of decap.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct VipKey {
    family: u8,
    pad: [u8; 3],
    /// Network order; IPv4 in `addr[0]`.
    addr: [u32; 4],
}

const _: () = assert!(size_of::<VipKey>() == 20);

// SAFETY: VipKey is repr(C), made of integers only, and has no padding
// (1 + 3 + 16 = 20 bytes at alignment 4, checked above): every byte pattern
// is a valid value and no byte is uninitialised.
unsafe impl Pod for VipKey {}

impl From<IpAddr> for VipKey {
    fn from(a: IpAddr) -> Self {
        match a {
            IpAddr::V4(a) => Self {
                family: 4,
                pad: [0; 3],
                addr: [u32::from_ne_bytes(a.octets()), 0, 0, 0],
            },
            IpAddr::V6(a) => {
                let o = a.octets();
                let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                Self {
                    family: 6,
                    pad: [0; 3],
                    addr: [w(0), w(4), w(8), w(12)],
                }
            }
        }
    }
}

/// The decapsulator attached to one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecapAttachment {
    /// Interface name.
    pub iface: String,
    /// Its index.
    pub ifindex: u32,
    /// The mode the program runs in.
    pub mode: AttachMode,
    /// The kernel's id of the attached program.
    pub prog_id: u32,
}

/// The decapsulator loaded (not attached), with its `vips` filled: for
/// [`Decap::test_run`].
pub struct Decap {
    ebpf: Ebpf,
    prog_id: u32,
}

impl std::fmt::Debug for Decap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decap")
            .field("prog_id", &self.prog_id)
            .finish_non_exhaustive()
    }
}

impl Decap {
    /// Loads the program and fills its `vips` map.
    ///
    /// # Errors
    ///
    /// Load or verifier failure, more than [`MAX_VIPS`] addresses, a map
    /// operation failing.
    pub fn load(vips: &[IpAddr]) -> Result<Self, XdpError> {
        let keys: HashSet<VipKey> = vips.iter().map(|a| VipKey::from(*a)).collect();
        if keys.len() > MAX_VIPS {
            return Err(XdpError::TooMany {
                map: "vips",
                wanted: keys.len(),
                capacity: MAX_VIPS,
            });
        }
        let mut ebpf = Ebpf::load(DECAP_OBJ).map_err(|e| XdpError::Load(error_chain(&e)))?;
        let prog = program(&mut ebpf)?;
        prog.load().map_err(|e| XdpError::Load(verifier_msg(&e)))?;
        let prog_id = prog.info().map_err(|e| XdpError::Load(e.to_string()))?.id();
        {
            let map = ebpf
                .map_mut("vips")
                .ok_or_else(|| XdpError::Load("no map vips in decap.o".into()))?;
            let mut map: HashMap<&mut MapData, VipKey, u32> =
                HashMap::try_from(map).map_err(|source| XdpError::Map {
                    map: "vips",
                    source,
                })?;
            for k in &keys {
                map.insert(*k, 0, 0).map_err(|source| XdpError::Map {
                    map: "vips",
                    source,
                })?;
            }
        }
        Ok(Self { ebpf, prog_id })
    }

    /// The kernel's id of the loaded program.
    pub fn program_id(&self) -> u32 {
        self.prog_id
    }

    /// Runs the program once on `frame` (`BPF_PROG_TEST_RUN`) and returns its
    /// action and the frame as the program left it.
    ///
    /// # Errors
    ///
    /// The kernel refused the run.
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), XdpError> {
        let prog: &Xdp = self
            .ebpf
            .program(PROGRAM)
            .ok_or_else(|| XdpError::Load(format!("no program {PROGRAM}")))?
            .try_into()
            .map_err(|e: ProgramError| XdpError::Load(e.to_string()))?;
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        };
        let r = prog
            .test_run(opts)
            .map_err(|e| XdpError::TestRun(error_chain(&e)))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// Attaches this program to `iface` through rtnetlink, in native mode,
    /// falling back to generic (SKB) mode. The interface must have no XDP
    /// program (the kernel refuses otherwise: call [`detach`] first).
    fn attach_to(&mut self, iface: &str) -> Result<DecapAttachment, XdpError> {
        let ifindex = ifindex(iface)?;
        let prog = program(&mut self.ebpf)?;
        let fd = prog
            .fd()
            .map_err(|e| XdpError::Load(e.to_string()))?
            .as_fd()
            .as_raw_fd();
        let mode = match netlink_xdp_set(ifindex, fd, XDP_FLAGS_DRV_MODE) {
            Ok(()) => AttachMode::Driver,
            Err(driver) => match netlink_xdp_set(ifindex, fd, XDP_FLAGS_SKB_MODE) {
                Ok(()) => AttachMode::Skb,
                Err(skb) => {
                    return Err(XdpError::Attach {
                        iface: iface.to_owned(),
                        driver: driver.to_string(),
                        skb: skb.to_string(),
                    });
                }
            },
        };
        Ok(DecapAttachment {
            iface: iface.to_owned(),
            ifindex,
            mode,
            prog_id: self.prog_id,
        })
    }
}

/// Loads the decapsulator with `vips` and attaches it to `iface` through
/// rtnetlink, in native mode or else generic mode. It stays attached after
/// this process exits (see the module documentation).
///
/// The interface must run no XDP program: a program that is there is not
/// replaced (it may be rvsd's classifier); the caller removes its own
/// previous decapsulator with [`detach`] first.
///
/// # Errors
///
/// Unknown interface, an XDP program already attached, load failure, or
/// neither mode attaching.
pub fn attach(iface: &str, vips: &[IpAddr]) -> Result<DecapAttachment, XdpError> {
    let idx = ifindex(iface)?;
    let state = xdp_state(idx)?;
    if !state.is_empty() {
        return Err(XdpError::Replace {
            iface: iface.to_owned(),
            detail: format!(
                "the interface already runs an XDP program ({state:?}); rvs does not replace it"
            ),
        });
    }
    let mut d = Decap::load(vips)?;
    d.attach_to(iface)
}

/// Removes the XDP program `prog_id` from interface `ifindex` if, and only
/// if, the interface still runs it; returns whether it did.
///
/// # Errors
///
/// The rtnetlink request failed (an interface that is gone is not an error:
/// `Ok(false)`).
pub fn detach(ifindex: u32, prog_id: u32) -> Result<bool, XdpError> {
    let state = match xdp_state(ifindex) {
        Ok(s) => s,
        Err(XdpError::Sys { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let flag = if state.driver == Some(prog_id) {
        XDP_FLAGS_DRV_MODE
    } else if state.skb == Some(prog_id) {
        XDP_FLAGS_SKB_MODE
    } else {
        return Ok(false);
    };
    netlink_xdp_set(ifindex, -1, flag).map_err(|source| XdpError::Sys {
        call: "RTM_SETLINK (XDP off)",
        source,
    })?;
    Ok(true)
}

/// `ip link set dev IF xdp{drv,generic} fd FD` (`FD` -1: off).
fn netlink_xdp_set(ifindex: u32, fd: i32, mode_flag: u32) -> std::io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Xdp(vec![
        LinkXdp::Fd(fd),
        LinkXdp::Flags(mode_flag),
    ]));
    rtnl_request(RouteNetlinkMessage::SetLink(msg)).map(drop)
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(PROGRAM)
        .ok_or_else(|| XdpError::Load(format!("no program {PROGRAM} in decap.o")))?
        .try_into()
        .map_err(|e: ProgramError| XdpError::Load(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_key_layout() {
        let k = VipKey::from("10.0.0.100".parse::<IpAddr>().unwrap());
        // SAFETY: VipKey is Pod (no padding), so all its 20 bytes are initialised.
        let bytes: [u8; 20] = unsafe { std::mem::transmute(k) };
        assert_eq!(bytes[..8], [4, 0, 0, 0, 10, 0, 0, 100]);
        assert_eq!(bytes[8..], [0; 12]);
    }

    #[test]
    fn max_vips_matches_decap_c() {
        let src = include_str!("../bpf/decap.c");
        assert!(src.contains(&format!("#define VIPS_MAX {MAX_VIPS}")));
    }
}

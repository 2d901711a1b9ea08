//! The XDP programs on an interface (rtnetlink) and their removal, whoever
//! attached them: rtnetlink, or `BPF_LINK_DETACH` for a bpf_link (see the
//! module documentation of [`crate::xdp`]).

use std::{
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd},
};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage, LinkXdp},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{XdpError, ifindex};

/// XDP programs on an interface, by mode (program ids).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpState {
    /// Native (driver) mode.
    pub driver: Option<u32>,
    /// Generic (SKB) mode.
    pub skb: Option<u32>,
    /// Hardware offload.
    pub hw: Option<u32>,
}

impl XdpState {
    /// Whether no program is attached in any mode.
    pub fn is_empty(&self) -> bool {
        self.driver.is_none() && self.skb.is_none() && self.hw.is_none()
    }
}

/// The XDP programs on interface `ifindex`, by mode (rtnetlink).
///
/// # Errors
///
/// The rtnetlink request failed (no such interface: `ENODEV`).
pub fn xdp_state(ifindex: u32) -> Result<XdpState, XdpError> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    let replies =
        rtnl_request(RouteNetlinkMessage::GetLink(msg)).map_err(|source| XdpError::Sys {
            call: "RTM_GETLINK",
            source,
        })?;
    let mut state = XdpState::default();
    for reply in replies {
        let RouteNetlinkMessage::NewLink(link) = reply else {
            continue;
        };
        for attr in link.attributes {
            let LinkAttribute::Xdp(xdp) = attr else {
                continue;
            };
            for x in xdp {
                match x {
                    LinkXdp::DrvProgId(id) if id != 0 => state.driver = Some(id),
                    LinkXdp::SkbProgId(id) if id != 0 => state.skb = Some(id),
                    LinkXdp::HwProgId(id) if id != 0 => state.hw = Some(id),
                    _ => {}
                }
            }
        }
    }
    Ok(state)
}

// XDP_FLAGS_* of linux/if_link.h.
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_FLAGS_HW_MODE: u32 = 1 << 3;

/// Removes every XDP program from interface `iface` (in the calling thread's
/// namespace), whoever attached it, and returns their ids. See the module
/// documentation for how.
///
/// # Errors
///
/// Unknown interface, or a program that could not be removed.
pub fn remove_xdp(iface: &str) -> Result<Vec<u32>, XdpError> {
    let idx = ifindex(iface)?;
    let state = xdp_state(idx)?;
    let mut removed = Vec::new();
    let replace_err = |detail: String| XdpError::Replace {
        iface: iface.to_owned(),
        detail,
    };
    for (flag, id) in [
        (XDP_FLAGS_SKB_MODE, state.skb),
        (XDP_FLAGS_DRV_MODE, state.driver),
        (XDP_FLAGS_HW_MODE, state.hw),
    ] {
        let Some(id) = id else { continue };
        match netlink_xdp_off(idx, flag) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                // Held by a bpf_link: netlink may not touch it.
                let n = detach_bpf_links(idx, id)
                    .map_err(|e| replace_err(format!("program {id}: BPF_LINK_DETACH: {e}")))?;
                if n == 0 {
                    return Err(replace_err(format!(
                        "program {id} is held by a bpf_link that could not be found"
                    )));
                }
            }
            Err(e) => return Err(replace_err(format!("program {id}: RTM_SETLINK: {e}"))),
        }
        removed.push(id);
    }
    let after = xdp_state(idx)?;
    if !after.is_empty() {
        return Err(replace_err(format!(
            "still attached after removal: {after:?}"
        )));
    }
    Ok(removed)
}

/// `ip link set dev IF xdp{generic,drv,offload} off`.
fn netlink_xdp_off(ifindex: u32, mode_flag: u32) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = ifindex;
    msg.attributes.push(LinkAttribute::Xdp(vec![
        LinkXdp::Fd(-1),
        LinkXdp::Flags(mode_flag),
    ]));
    rtnl_request(RouteNetlinkMessage::SetLink(msg)).map(drop)
}

/// Sends one rtnetlink request with `NLM_F_ACK` and collects the replies up
/// to the acknowledgement.
pub(crate) fn rtnl_request(msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = 1;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    sock.send(&buf, 0)?;

    let mut replies = Vec::new();
    loop {
        let (data, _) = sock.recv_from_full()?;
        if data.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "netlink: empty read",
            ));
        }
        let mut off = 0;
        while off < data.len() {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let len = msg.header.length as usize;
            if len == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "netlink: zero length",
                ));
            }
            off += (len + 3) & !3;
            match msg.payload {
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(replies),
                        Some(_) => Err(e.to_io()),
                    };
                }
                NetlinkPayload::Done(_) => return Ok(replies),
                NetlinkPayload::InnerMessage(m) => replies.push(m),
                _ => {}
            }
        }
    }
}

// bpf(2) commands and constants of linux/bpf.h.
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_LINK_TYPE_XDP: u32 = 6;

/// `union bpf_attr`, large enough for the commands above, zeroed.
#[repr(C, align(8))]
struct BpfAttr([u8; 64]);

impl BpfAttr {
    fn new() -> Self {
        Self([0; 64])
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
}

/// `struct bpf_link_info` as u32 words, zeroed (a larger buffer than the
/// kernel's struct is fine as long as its tail is zero).
#[repr(C, align(8))]
struct LinkInfo([u32; 32]);

fn sys_bpf(cmd: libc::c_long, attr: &mut BpfAttr) -> io::Result<libc::c_long> {
    // SAFETY: bpf(2) reads and writes at most `size` bytes of `attr`, which
    // is valid, writable and that large; any pointer inside it was set by
    // the caller to a live buffer of the advertised length.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            size_of::<BpfAttr>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// Detaches (`BPF_LINK_DETACH`) every XDP bpf_link on `ifindex` whose program
/// is `prog_id`; returns how many.
///
/// bpf_link_info reports the ifindex but not the namespace: matching the
/// program id too (as rtnetlink reports it for this namespace's interface)
/// keeps links in other namespaces that reuse the ifindex out of reach,
/// unless the very same program is attached there.
fn detach_bpf_links(ifindex: u32, prog_id: u32) -> io::Result<usize> {
    let mut detached = 0;
    let mut id = 0u32;
    loop {
        let mut attr = BpfAttr::new();
        attr.put_u32(0, id); // start_id
        match sys_bpf(BPF_LINK_GET_NEXT_ID, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(detached),
            Err(e) => return Err(e),
        }
        id = attr.get_u32(4); // next_id
        let mut attr = BpfAttr::new();
        attr.put_u32(0, id); // link_id
        let fd = match sys_bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) {
            Ok(fd) => {
                // SAFETY: the kernel just returned this new descriptor; it
                // is owned by nobody else.
                unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
            }
            // Gone meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        // struct bpf_link_info: type, id, prog_id, then the union at 16
        // (8-byte aligned); xdp.ifindex is its first field.
        let mut info = LinkInfo([0; 32]);
        let mut attr = BpfAttr::new();
        attr.put_u32(0, fd.as_raw_fd() as u32); // bpf_fd
        attr.put_u32(4, size_of::<LinkInfo>() as u32); // info_len
        attr.put_u64(8, info.0.as_mut_ptr() as u64); // info
        sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
        let (link_type, link_prog, link_ifindex) = (info.0[0], info.0[2], info.0[4]);
        if link_type == BPF_LINK_TYPE_XDP && link_prog == prog_id && link_ifindex == ifindex {
            let mut attr = BpfAttr::new();
            attr.put_u32(0, fd.as_fd().as_raw_fd() as u32); // link_fd
            sys_bpf(BPF_LINK_DETACH, &mut attr)?;
            detached += 1;
        }
    }
}

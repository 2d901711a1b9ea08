// SPDX-License-Identifier: GPL-2.0-or-later
//! The programs attached to an interface: [`Sink`], [`Pass`] and the bare
//! XDP forwarder [`Redirect`].

use super::*;

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

//! A veth's XDP transmit counters (`ethtool -S`, its driver statistics):
//! whether redirected frames reach it.

use std::{ffi::CString, io};

use super::XdpError;

/// A veth's counts of the frames XDP redirected into it (`ethtool -S`),
/// summed over its transmit queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XmitCounters {
    /// Frames put on the peer's ring (`tx_queue_N_xdp_xmit`).
    pub delivered: u64,
    /// Frames the peer's NAPI ring had no room for, or too long for its
    /// MTU (`tx_queue_N_xdp_xmit_errors`).
    pub refused: u64,
}

/// Whether a veth whose XDP transmit counters went from `before` to
/// `after` while redirected frames were sent into it takes redirects:
/// either counter moved. Only a veth whose peer is in NAPI mode counts at
/// all (delivered, or refused for a full ring); without NAPI the kernel
/// refuses the whole batch before counting. A counter that went down (the
/// interface was re-created) is no sign.
pub fn redirect_taken(before: XmitCounters, after: XmitCounters) -> bool {
    after.delivered > before.delivered || after.refused > before.refused
}

/// The XDP transmit counters among driver statistics `stats` (names and
/// values), or `None` if there are none (not a veth).
fn xmit_counters(stats: &[(String, u64)]) -> Option<XmitCounters> {
    let mut found = false;
    let mut c = XmitCounters::default();
    for (name, v) in stats {
        let Some(rest) = name.strip_prefix("tx_queue_") else {
            continue;
        };
        let Some((queue, what)) = rest.split_once('_') else {
            continue;
        };
        if queue.is_empty() || !queue.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        match what {
            "xdp_xmit" => c.delivered = c.delivered.wrapping_add(*v),
            "xdp_xmit_errors" => c.refused = c.refused.wrapping_add(*v),
            _ => continue,
        }
        found = true;
    }
    found.then_some(c)
}

/// The XDP transmit counters of veth `ifname` (in the calling thread's
/// namespace), summed over its queues ([`redirect_taken`]).
///
/// # Errors
///
/// The driver statistics could not be read, or have no such counters (not
/// a veth).
pub fn xdp_xmit_counters(ifname: &str) -> Result<XmitCounters, XdpError> {
    let stats = ethtool_stats(ifname)
        .map_err(|e| XdpError::TestRun(format!("{ifname}: driver statistics: {e}")))?;
    xmit_counters(&stats).ok_or_else(|| {
        XdpError::TestRun(format!(
            "{ifname}: no tx_queue_N_xdp_xmit statistics (not a veth)"
        ))
    })
}

const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
/// More driver statistics than any interface has.
const MAX_STATS: usize = 4096;

/// Two `u32`s in one `u64` word, in memory order.
fn pair(a: u32, b: u32) -> u64 {
    let mut w = [0u8; 8];
    w[..4].copy_from_slice(&a.to_ne_bytes());
    w[4..].copy_from_slice(&b.to_ne_bytes());
    u64::from_ne_bytes(w)
}

/// The driver statistics of `ifname` (`ethtool -S`), names and values.
fn ethtool_stats(ifname: &str) -> io::Result<Vec<(String, u64)>> {
    let cname = CString::new(ifname)
        .ok()
        .filter(|c| c.as_bytes().len() < libc::IFNAMSIZ)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // struct ethtool_sset_info { u32 cmd, reserved; u64 sset_mask; u32 data[]; }
    let mut info = [pair(ETHTOOL_GSSET_INFO, 0), 1u64 << ETH_SS_STATS, 0];
    crate::ethtool::ioctl(&cname, info.as_mut_ptr().cast())?;
    let n = if info[1] & (1 << ETH_SS_STATS) != 0 {
        let b = info[2].to_ne_bytes();
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
    } else {
        0
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    if n > MAX_STATS {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    // struct ethtool_gstrings { u32 cmd, string_set, len; u8 data[]; }
    let mut strings = vec![0u32; 3 + n * ETH_GSTRING_LEN / 4];
    strings[0] = ETHTOOL_GSTRINGS;
    strings[1] = ETH_SS_STATS;
    strings[2] = n as u32;
    crate::ethtool::ioctl(&cname, strings.as_mut_ptr().cast())?;
    // struct ethtool_stats { u32 cmd, n_stats; u64 data[]; }
    let mut values = vec![0u64; 1 + n];
    values[0] = pair(ETHTOOL_GSTATS, n as u32);
    crate::ethtool::ioctl(&cname, values.as_mut_ptr().cast())?;
    let got = (strings[2] as usize).min(n);
    let bytes: Vec<u8> = strings[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(bytes
        .chunks(ETH_GSTRING_LEN)
        .take(got)
        .zip(&values[1..])
        .map(|(name, v)| {
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            (String::from_utf8_lossy(&name[..end]).into_owned(), *v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_probe_decision() {
        let c = |delivered, refused| XmitCounters { delivered, refused };
        // No NAPI on the peer: the kernel refuses the batch uncounted.
        assert!(!redirect_taken(c(10, 2), c(10, 2)));
        // Delivered, all or some.
        assert!(redirect_taken(c(10, 2), c(14, 2)));
        assert!(redirect_taken(c(10, 2), c(11, 5)));
        // A busy peer's full ring refused every probe frame: NAPI is on.
        assert!(redirect_taken(c(10, 2), c(10, 6)));
        // Counters that went down (a re-created veth) say nothing.
        assert!(!redirect_taken(c(10, 2), c(0, 0)));
    }

    #[test]
    fn xmit_counters_from_driver_statistics() {
        let s = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(n, x)| (n.to_string(), *x)).collect()
        };
        let veth = s(&[
            ("peer_ifindex", 7),
            ("rx_queue_0_xdp_packets", 100),
            ("rx_queue_0_xdp_tx_errors", 50),
            ("tx_queue_0_xdp_xmit", 3),
            ("tx_queue_0_xdp_xmit_errors", 1),
            ("tx_queue_1_xdp_xmit", 4),
            ("tx_queue_1_xdp_xmit_errors", 2),
        ]);
        assert_eq!(
            xmit_counters(&veth),
            Some(XmitCounters {
                delivered: 7,
                refused: 3
            })
        );
        assert_eq!(xmit_counters(&s(&[("rx_packets", 1)])), None);
        assert_eq!(xmit_counters(&[]), None);
        // Look-alikes are not counters of a queue.
        assert_eq!(
            xmit_counters(&s(&[("tx_queue__xdp_xmit", 1), ("tx_queue_x_xdp_xmit", 1)])),
            None
        );
    }
}

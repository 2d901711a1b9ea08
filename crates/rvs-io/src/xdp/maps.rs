//! Writing the classifier's sets and tries: the key layout of classify.c
//! and the syncs that make a map hold exactly what is wanted.

use std::{collections::HashSet, net::IpAddr};

use aya::{
    Pod,
    maps::{
        HashMap, MapData, MapError,
        lpm_trie::{Key as LpmKey, LpmTrie},
    },
};

use super::fwmark::RawFwmValue;
use super::{ClassKey, MAX_FWMARK_PREFIXES, XdpError, map_err};

/// `struct class_key` of classify.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct RawKey {
    proto: u8,
    family: u8,
    pad: [u8; 2],
    /// Network order; IPv4 in `addr[0]`.
    addr: [u32; 4],
    /// Network order.
    port: u16,
    pad2: u16,
}

const _: () = assert!(size_of::<RawKey>() == 24);

// SAFETY: RawKey is repr(C), made of integers only, and has no padding
// (1 + 1 + 2 + 16 + 2 + 2 = 24 bytes at alignment 4, checked above): every
// byte pattern is a valid value and no byte is uninitialised.
unsafe impl Pod for RawKey {}

impl From<&ClassKey> for RawKey {
    fn from(k: &ClassKey) -> Self {
        let (family, addr) = match k.addr {
            IpAddr::V4(a) => (4, [u32::from_ne_bytes(a.octets()), 0, 0, 0]),
            IpAddr::V6(a) => {
                let o = a.octets();
                let w = |i: usize| u32::from_ne_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                (6, [w(0), w(4), w(8), w(12)])
            }
        };
        Self {
            proto: k.proto,
            family,
            pad: [0; 2],
            addr,
            port: k.port.to_be(),
            pad2: 0,
        }
    }
}

/// The fwmark tries of classify.c.
pub(super) struct FwmMaps {
    pub(super) v4: LpmTrie<MapData, [u8; 4], RawFwmValue>,
    pub(super) v6: LpmTrie<MapData, [u8; 16], RawFwmValue>,
}

/// Makes an LPM trie hold exactly `want` (address bytes, prefix length →
/// value): stale prefixes go first (a rule removed never claims a moment
/// longer), then new and changed ones are written.
pub(super) fn sync_lpm<const N: usize>(
    map: &mut LpmTrie<MapData, [u8; N], RawFwmValue>,
    name: &'static str,
    want: &[([u8; N], u32, RawFwmValue)],
) -> Result<(), XdpError> {
    if want.len() > MAX_FWMARK_PREFIXES {
        return Err(XdpError::TooMany {
            map: name,
            wanted: want.len(),
            capacity: MAX_FWMARK_PREFIXES,
        });
    }
    let have: Vec<([u8; N], u32)> = map
        .keys()
        .map(|k| k.map(|k| (k.data(), k.prefix_len())))
        .collect::<Result<_, _>>()
        .map_err(map_err(name))?;
    for (data, len) in &have {
        if !want.iter().any(|(d, l, _)| d == data && l == len) {
            match map.remove(&LpmKey::new(*len, *data)) {
                Err(e) if !is_not_found(&e) => return Err(map_err(name)(e)),
                _ => {}
            }
        }
    }
    for (data, len, value) in want {
        let key = LpmKey::new(*len, *data);
        if map.get(&key, 0).ok().as_ref() != Some(value) {
            map.insert(&key, value, 0).map_err(map_err(name))?;
        }
    }
    Ok(())
}

/// A delete of a key that is not there (aya reports ENOENT as a syscall error).
pub(super) fn is_not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound => true,
        MapError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// The fragment keys of `keys`: (proto, IPv4 address, 0), deduplicated
/// (IPv6 fragments are not claimed).
pub(super) fn frag_keys(keys: &[ClassKey]) -> Vec<ClassKey> {
    let mut v: Vec<ClassKey> = keys
        .iter()
        .filter(|k| k.addr.is_ipv4())
        .map(|k| ClassKey { port: 0, ..*k })
        .collect();
    v.sort_unstable_by_key(|k| (k.proto, k.addr));
    v.dedup();
    v
}

pub(super) fn sync_set(
    map: &mut HashMap<MapData, RawKey, u32>,
    name: &'static str,
    capacity: usize,
    keys: &[ClassKey],
) -> Result<(), XdpError> {
    let want: HashSet<RawKey> = keys.iter().map(RawKey::from).collect();
    if want.len() > capacity {
        return Err(XdpError::TooMany {
            map: name,
            wanted: want.len(),
            capacity,
        });
    }
    let have: HashSet<RawKey> = map
        .keys()
        .collect::<Result<_, _>>()
        .map_err(map_err(name))?;
    let stale: Vec<RawKey> = have.difference(&want).copied().collect();
    let new: Vec<RawKey> = want.difference(&have).copied().collect();
    let remove = |map: &mut HashMap<MapData, RawKey, u32>| -> Result<(), XdpError> {
        for k in &stale {
            match map.remove(k) {
                Err(e) if !is_not_found(&e) => return Err(map_err(name)(e)),
                _ => {}
            }
        }
        Ok(())
    };
    let stale_first = have.len() + new.len() > capacity;
    if stale_first {
        remove(map)?;
    }
    for k in &new {
        map.insert(*k, 0, 0).map_err(map_err(name))?;
    }
    if !stale_first {
        remove(map)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_key_layout() {
        let k = RawKey::from(&ClassKey {
            proto: 17,
            addr: "10.1.2.3".parse().unwrap(),
            port: 0x1234,
        });
        // SAFETY: RawKey is Pod (no padding), so all its 24 bytes are initialised.
        let bytes: [u8; 24] = unsafe { std::mem::transmute(k) };
        assert_eq!(
            bytes,
            [
                17, 4, 0, 0, 10, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0
            ]
        );
        let k = RawKey::from(&ClassKey {
            proto: 6,
            addr: "2001:db8::1".parse().unwrap(),
            port: 80,
        });
        // SAFETY: as above.
        let bytes: [u8; 24] = unsafe { std::mem::transmute(k) };
        assert_eq!(bytes[..4], [6, 6, 0, 0]);
        assert_eq!(bytes[4..8], [0x20, 0x01, 0x0d, 0xb8]);
        assert_eq!(bytes[16..20], [0, 0, 0, 1]);
        assert_eq!(bytes[20..], [0, 80, 0, 0]);
    }

    #[test]
    fn v4_and_v6_keys_differ() {
        // 32.1.13.184 and 2001:db8:: have the same address words.
        let v4 = RawKey::from(&ClassKey {
            proto: 6,
            addr: "32.1.13.184".parse().unwrap(),
            port: 80,
        });
        let v6 = RawKey::from(&ClassKey {
            proto: 6,
            addr: "2001:db8::".parse().unwrap(),
            port: 80,
        });
        assert_eq!(v4.addr, v6.addr);
        assert_ne!(v4, v6);
    }
}

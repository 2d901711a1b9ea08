//! ipvsadm's listing order: libipvs's `ipvs_cmp_services` /
//! `ipvs_cmp_dests` under glibc's `qsort`.
//!
//! The comparators subtract unsigned 32-bit values and use the difference
//! as an `int` (`int r = ntohl(a) - ntohl(b)`), so values 2^31 or more
//! apart compare the "wrong" way round: `200.0.0.1` sorts before
//! `10.0.0.1`, fwmark 3000000000 before every address service. Such a
//! comparison is not transitive (10.0.0.1 > 200.0.0.1 > 100.0.0.1 >
//! 10.0.0.1), so the result depends on the sorting algorithm; glibc's
//! `qsort` is a top-down merge sort (`msort_with_tmp`: left half `n / 2`,
//! ties and `<= 0` take the left element), reproduced exactly by
//! [`qsort`] (checked against glibc 2.36; glibc's `qsort` briefly became an
//! introsort during 2.39's development and had the merge sort reinstated
//! before release).

use std::net::IpAddr;

use rvs_proto::{DestInfo, ServiceId, ServiceInfo};

use super::common::svc_proto;

/// `AF_INET` / `AF_INET6` as libipvs compares them.
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;

/// glibc's `qsort` (its merge sort, `msort_with_tmp`) with a C comparator.
pub fn qsort<T: Copy>(v: &mut [T], cmp: &dyn Fn(T, T) -> i32) {
    let mut tmp = Vec::with_capacity(v.len());
    msort(v, &mut tmp, cmp);
}

fn msort<T: Copy>(b: &mut [T], tmp: &mut Vec<T>, cmp: &dyn Fn(T, T) -> i32) {
    let n = b.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (left, right) = b.split_at_mut(n1);
        msort(left, tmp, cmp);
        msort(right, tmp, cmp);
    }
    tmp.clear();
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(b[i], b[j]) <= 0 {
            tmp.push(b[i]);
            i += 1;
        } else {
            tmp.push(b[j]);
            j += 1;
        }
    }
    // The rest of the left half follows; the rest of the right half is
    // already in place.
    tmp.extend_from_slice(&b[i..n1]);
    b[..tmp.len()].copy_from_slice(tmp);
}

/// `(int)(a - b)` on unsigned 32-bit values.
fn csub(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// An address as the 16-byte `union nf_inet_addr` in host-order words: an
/// IPv4 address is the first word, the rest zero.
fn words(a: IpAddr) -> [u32; 4] {
    match a {
        IpAddr::V4(v4) => [u32::from(v4), 0, 0, 0],
        IpAddr::V6(v6) => {
            let s = v6.segments();
            [
                (u32::from(s[0]) << 16) | u32::from(s[1]),
                (u32::from(s[2]) << 16) | u32::from(s[3]),
                (u32::from(s[4]) << 16) | u32::from(s[5]),
                (u32::from(s[6]) << 16) | u32::from(s[7]),
            ]
        }
    }
}

/// The address part of both comparators; the family is the first
/// operand's (as in libipvs), IPv6 compared word by word up to the first
/// difference.
fn cmp_addr(v6: bool, a: IpAddr, b: IpAddr) -> i32 {
    let (wa, wb) = (words(a), words(b));
    if v6 {
        let mut r = 0;
        for i in 0..4 {
            if r != 0 {
                break;
            }
            r = csub(wa[i], wb[i]);
        }
        r
    } else {
        csub(wa[0], wb[0])
    }
}

/// `ipvs_cmp_services`: fwmark, af, protocol, address, port.
pub fn cmp_services(s1: &ServiceInfo, s2: &ServiceInfo) -> i32 {
    struct Key {
        fwmark: u32,
        af: i32,
        proto: i32,
        addr: IpAddr,
        port: u16,
    }
    fn key(s: &ServiceInfo) -> Key {
        let (fwmark, addr, port) = match s.spec.id {
            ServiceId::Addr { addr, port, .. } => (0, addr, port),
            ServiceId::Fwmark { v6, mark } => (
                mark,
                if v6 {
                    IpAddr::V6(0.into())
                } else {
                    IpAddr::V4(0.into())
                },
                0,
            ),
        };
        Key {
            fwmark,
            af: if s.spec.id.is_v6() { AF_INET6 } else { AF_INET },
            proto: i32::from(svc_proto(&s.spec).number()),
            addr,
            port,
        }
    }
    let (a, b) = (key(s1), key(s2));
    let r = csub(a.fwmark, b.fwmark);
    if r != 0 {
        return r;
    }
    let r = a.af - b.af;
    if r != 0 {
        return r;
    }
    let r = a.proto - b.proto;
    if r != 0 {
        return r;
    }
    let r = cmp_addr(a.af == AF_INET6, a.addr, b.addr);
    if r != 0 {
        return r;
    }
    i32::from(a.port) - i32::from(b.port)
}

/// `ipvs_cmp_dests`: address, then port.
pub fn cmp_dests(d1: &DestInfo, d2: &DestInfo) -> i32 {
    let r = cmp_addr(d1.spec.addr.is_ipv6(), d1.spec.addr, d2.spec.addr);
    if r != 0 {
        return r;
    }
    i32::from(d1.spec.port) - i32::from(d2.spec.port)
}

/// Services in listing order: sorted like ipvsadm, or as given (`nosort`).
pub fn services(s: &[ServiceInfo], nosort: bool) -> Vec<&ServiceInfo> {
    let mut v: Vec<&ServiceInfo> = s.iter().collect();
    if !nosort {
        qsort(&mut v, &|a, b| cmp_services(a, b));
    }
    v
}

/// A service's destinations in listing order: sorted like ipvsadm, or as
/// given (`nosort`: the daemon's order, newest first like the kernel's).
pub fn dests(s: &ServiceInfo, nosort: bool) -> Vec<&DestInfo> {
    let mut v: Vec<&DestInfo> = s.dests.iter().collect();
    if !nosort {
        qsort(&mut v, &|a, b| cmp_dests(a, b));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_sort_merge_sort_is_glibc_order() {
        // A comparator that is not transitive: values compared with the
        // wrapping subtraction. glibc's merge sort result for this input
        // (checked against glibc 2.36 qsort with the same comparator).
        let mut v: Vec<u32> = vec![0x0A00_0001, 0xC800_0001, 0x6400_0001, 0x0A00_0002];
        qsort(&mut v, &|a, b| csub(a, b));
        // [10.0.0.1, 200.0.0.1] -> [200.0.0.1, 10.0.0.1];
        // [100.0.0.1, 10.0.0.2] -> [10.0.0.2, 100.0.0.1];
        // merge: 200 vs 10.0.0.2: 0xBE000000 < 0 -> 200;
        //        10.0.0.1 vs 10.0.0.2 -> 10.0.0.1; then 10.0.0.2, 100.0.0.1.
        assert_eq!(v, vec![0xC800_0001, 0x0A00_0001, 0x0A00_0002, 0x6400_0001]);
    }

    #[test]
    fn format_sort_addr_quirk() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "200.0.0.1".parse().unwrap();
        assert!(cmp_addr(false, a, b) > 0);
        assert!(cmp_addr(false, b, a) < 0);
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let d: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(cmp_addr(true, c, d) < 0);
        let e: IpAddr = "b001:db8::1".parse().unwrap();
        assert!(cmp_addr(true, c, e) > 0);
    }
}

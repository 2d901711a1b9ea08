//! The map commands aya 0.14 does not wrap: reading the flow cache with
//! `BPF_MAP_LOOKUP_BATCH` (the fast way of [`FlowCache::counters`]),
//! writing many entries with `BPF_MAP_UPDATE_BATCH`
//! ([`FlowCache::insert_many`]) and taking an entry out with
//! `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (one system call for
//! [`FlowCache::remove`] instead of two).

use super::*;

impl FlowCache {
    /// [`FlowCache::counters`] with `BPF_MAP_LOOKUP_BATCH`.
    pub(super) fn counters_batched(&self, out: &mut Vec<FlowEntry>) -> std::io::Result<()> {
        let fd = IterableMap::map(&self.flows).fd().as_fd().as_raw_fd();
        let mut keys = vec![RawFlowKey::ZERO; BATCH];
        let mut values = vec![RawFlowAction::ZERO; BATCH];
        // The hash map's batch token is a bucket index.
        let mut cursor: u32 = 0;
        let mut first = true;
        loop {
            let mut next: u32 = 0;
            let mut attr = BatchAttr {
                in_batch: if first {
                    0
                } else {
                    std::ptr::addr_of!(cursor) as u64
                },
                out_batch: std::ptr::addr_of_mut!(next) as u64,
                keys: keys.as_mut_ptr() as u64,
                values: values.as_mut_ptr() as u64,
                count: BATCH as u32,
                map_fd: fd as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: `attr` is the `batch` member of `union bpf_attr`
            // (checked layout, 56 bytes, the kernel zero-extends the rest);
            // `keys` and `values` hold `count` elements of exactly the map's
            // key and value sizes (checked by aya when the map was taken),
            // `cursor` and `next` are u32 (the hash map's batch token), and
            // all of them outlive the call.
            let r = unsafe { sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) };
            // ENOENT: the end, the last entries came with it. Other errors
            // (ENOSPC with nothing read: one bucket holds more than BATCH
            // entries, not seen with jhash) are the caller's.
            let done = match r {
                Ok(()) => false,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
                Err(e) => return Err(e),
            };
            let n = (attr.count as usize).min(BATCH);
            for (k, v) in keys.iter().zip(&values).take(n) {
                push_entry(out, k, v);
            }
            if done {
                return Ok(());
            }
            cursor = next;
            first = false;
        }
    }
}

impl FlowCache {
    /// The entry of `k`, removed from the map in the same system call
    /// (`BPF_MAP_LOOKUP_AND_DELETE_ELEM`, hash maps since Linux 5.14);
    /// `None` if there was none. The kernel's error otherwise.
    pub(super) fn take_raw(&mut self, k: &RawFlowKey) -> std::io::Result<Option<RawFlowAction>> {
        let fd = IterableMap::map(&self.flows).fd().as_fd().as_raw_fd();
        let mut value = RawFlowAction::ZERO;
        let mut attr = ElemAttr {
            map_fd: fd as u32,
            _pad: 0,
            key: std::ptr::from_ref(k) as u64,
            value: std::ptr::addr_of_mut!(value) as u64,
            flags: 0,
        };
        // SAFETY: `attr` is the map-element member of `union bpf_attr`
        // (checked layout, 32 bytes); `key` and `value` point to a key and
        // a value of exactly the map's sizes (checked by aya when the map
        // was taken), which outlive the call.
        match unsafe { sys_bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut attr) } {
            Ok(()) => Ok(Some(value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl FlowCache {
    /// Writes `keys[i]` → `values[i]` (`BPF_MAP_UPDATE_BATCH`, hash maps
    /// since Linux 5.6), in order, in as few system calls as the kernel
    /// takes. Returns how many were written before an error, with it.
    pub(super) fn put_raw_batch(
        &mut self,
        keys: &[RawFlowKey],
        values: &[RawFlowAction],
    ) -> (usize, std::io::Result<()>) {
        debug_assert_eq!(keys.len(), values.len());
        let fd = IterableMap::map(&self.flows).fd().as_fd().as_raw_fd();
        let mut done = 0;
        while done < keys.len() {
            let mut attr = BatchAttr {
                in_batch: 0,
                out_batch: 0,
                keys: keys[done..].as_ptr() as u64,
                values: values[done..].as_ptr() as u64,
                count: (keys.len() - done) as u32,
                map_fd: fd as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: `attr` is the `batch` member of `union bpf_attr`
            // (checked layout); `keys` and `values` hold `count` elements
            // from `done` on, of exactly the map's key and value sizes
            // (checked by aya when the map was taken), only read by the
            // kernel, and outlive the call.
            let r = unsafe { sys_bpf(BPF_MAP_UPDATE_BATCH, &mut attr) };
            // The kernel writes back how many it updated, error or not.
            let n = (attr.count as usize).min(keys.len() - done);
            done += n;
            if let Err(e) = r {
                return (done, Err(e));
            }
            if n == 0 {
                break;
            }
        }
        (done, Ok(()))
    }
}

/// `BPF_MAP_UPDATE_BATCH` of `enum bpf_cmd`.
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// Whether `e` says the kernel has no `BPF_MAP_LOOKUP_AND_DELETE_ELEM` for
/// this map (EINVAL: an unknown command or member; ENOTSUPP, 524, the
/// kernel's own "not supported" before 5.14's hash map support).
pub(super) fn take_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | 524)
    )
}

/// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` of `enum bpf_cmd`.
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;

/// The map-element member of `union bpf_attr` (linux/bpf.h: `map_fd`, the
/// key, the value, the flags).
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const _: () = assert!(size_of::<ElemAttr>() == 32);
const _: () = assert!(std::mem::offset_of!(ElemAttr, key) == 8);

/// The `bpf(2)` system call: command `cmd` with `attr`, a member of
/// `union bpf_attr` (its size is passed; the kernel zero-extends the rest).
///
/// # Safety
///
/// `attr` must have the layout of the member of `union bpf_attr` that
/// `cmd` reads, and every pointer in it must be valid, for the duration
/// of the call, for what the kernel reads or writes through it.
unsafe fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<()> {
    // SAFETY: the caller's contract; `attr` is valid for `size_of::<T>()`.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Entries read per `BPF_MAP_LOOKUP_BATCH`.
pub const BATCH: usize = 512;

/// `BPF_MAP_LOOKUP_BATCH` of `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr` (linux/bpf.h).
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = assert!(size_of::<BatchAttr>() == 56);
const _: () = assert!(std::mem::offset_of!(BatchAttr, map_fd) == 36);

/// Appends the entry of a raw key and value read from the map.
pub(super) fn push_entry(out: &mut Vec<FlowEntry>, k: &RawFlowKey, v: &RawFlowAction) {
    // Keys only ever come from FlowKey::to_raw; skip anything else.
    if let Some(key) = FlowKey::from_raw(k) {
        out.push(FlowEntry {
            key,
            conn: v.conn,
            cookie: v.cookie,
            counters: FlowCounters::from(v),
        });
    }
}

// SPDX-License-Identifier: GPL-2.0-or-later
//! Scheduling policies of the calling thread, which neither std, rustix
//! nor nix sets (`sched_setscheduler`):
//!
//! * real time, as keepalived's `checker_rt_priority` asks for it:
//!   SCHED_RR with `SCHED_RESET_ON_FORK`, so that the threads and processes
//!   it starts (scripts, mail senders) run at the normal policy;
//! * idle (SCHED_IDLE), for bulk control-plane work that must never take
//!   a CPU from forwarding (rvsd's connection listing): it runs only on a
//!   CPU nothing else wants, far below even nice 19.

use std::io;

/// The priorities SCHED_RR accepts on this kernel (1..=99 on Linux).
pub fn round_robin_range() -> (i32, i32) {
    // SAFETY: plain system calls on an integer argument; no memory is
    // shared with the kernel.
    let (min, max) = unsafe {
        (
            libc::sched_get_priority_min(libc::SCHED_RR),
            libc::sched_get_priority_max(libc::SCHED_RR),
        )
    };
    (min, max)
}

/// Put the calling thread at SCHED_RR `priority`, reset on fork.
pub fn set_round_robin(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: pid 0 is the calling thread; `param` is a valid
    // `sched_param` that outlives the call, which only reads it.
    let r =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Put the calling thread at SCHED_IDLE. No privilege is needed to lower
/// a thread's policy; a seccomp filter may refuse it (`EPERM`).
/// Irreversible without `CAP_SYS_NICE`: only for a thread that ends with
/// its work.
pub fn set_idle() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid
    // `sched_param` that outlives the call, which only reads it.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's scheduling policy (without the reset-on-fork
/// flag) and whether it is reset on fork.
pub fn policy() -> io::Result<(i32, bool)> {
    // SAFETY: pid 0 is the calling thread; no memory is passed.
    let p = unsafe { libc::sched_getscheduler(0) };
    if p < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        p & !libc::SCHED_RESET_ON_FORK,
        p & libc::SCHED_RESET_ON_FORK != 0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_on_a_thread_of_its_own() {
        let (lowered, me) = std::thread::spawn(|| {
            set_idle().unwrap();
            policy().unwrap()
        })
        .join()
        .map(|l| (l, policy().unwrap()))
        .unwrap();
        assert_eq!(lowered, (libc::SCHED_IDLE, false));
        assert_eq!(me.0, libc::SCHED_OTHER, "only that thread");
    }

    #[test]
    fn round_robin_on_a_thread_of_its_own() {
        let (min, max) = round_robin_range();
        assert!(min >= 1 && max >= min, "{min}..{max}");
        std::thread::spawn(move || match set_round_robin(min) {
            Ok(()) => {
                assert_eq!(policy().unwrap(), (libc::SCHED_RR, true));
                // A thread it starts runs at the normal policy.
                let child = std::thread::spawn(|| policy().unwrap()).join().unwrap();
                assert_eq!(child, (libc::SCHED_OTHER, false));
            }
            Err(e) => {
                // Without CAP_SYS_NICE (or an RLIMIT_RTPRIO): refused.
                eprintln!("skipped: SCHED_RR refused here: {e}");
                assert_eq!(e.raw_os_error(), Some(libc::EPERM));
            }
        })
        .join()
        .unwrap();
    }
}

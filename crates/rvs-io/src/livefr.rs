//! `BPF_PROG_TEST_RUN` in live-frames mode (kernel 5.18+), which the
//! redirect probe and the benchmark's generator use, and which some hosts
//! refuse: seen as root with `EPERM` on a kernel with lockdown, landlock
//! and bpf LSMs and no `CAP_SYS_RESOURCE`. Callers detect the refusal
//! ([`is_refusal`]), fall back, and say why.
//!
//! `RVS_LIVE_FRAMES=off` makes rvs behave as on such a host without
//! asking the kernel ([`forced_off`]): the tests use it to cover the
//! fallbacks on hosts that allow live frames, and an operator can use it
//! to rule the live-frames paths out.

/// The environment variable: `off` forces the refusal.
pub const ENV: &str = "RVS_LIVE_FRAMES";

/// The errno of a refusal forced by [`forced_off`]
/// ([`crate::xdp::XdpError::LiveFramesRefused`]).
pub const FORCED_ERRNO: i32 = libc::EPERM;

/// Whether `RVS_LIVE_FRAMES=off` is set.
pub fn forced_off() -> bool {
    std::env::var(ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off"))
}

/// The message of a run refused because of [`forced_off`].
pub fn forced_message() -> String {
    format!("live-frames test runs refused ({ENV}=off)")
}

/// Whether an errno from a live-frames `BPF_PROG_TEST_RUN` means the host
/// refuses the mode itself (rather than a bad frame or a missing
/// interface): `EPERM`/`EACCES` (capabilities, lockdown, an LSM),
/// `EINVAL` (a kernel without the flag), `EOPNOTSUPP`/`ENOTSUPP` (524).
pub fn is_refusal(errno: i32) -> bool {
    matches!(
        errno,
        libc::EPERM | libc::EACCES | libc::EINVAL | libc::EOPNOTSUPP | 524
    )
}

/// The errno inside an error chain's text (`... (os error 1)`), for
/// errors that were flattened into strings.
pub fn errno_in(text: &str) -> Option<i32> {
    let i = text.rfind("os error ")?;
    let rest = &text[i + "os error ".len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        assert!(is_refusal(libc::EPERM));
        assert!(is_refusal(524));
        assert!(!is_refusal(libc::ENODEV));
        assert_eq!(
            errno_in("bpf_prog_test_run failed: Operation not permitted (os error 1)"),
            Some(1)
        );
        assert_eq!(errno_in("no errno"), None);
    }
}

//! Unit tests of the classifier module (no program loaded).

use super::*;

/// The constants shared with classify.c agree with it.
#[test]
fn constants_match_classify_c() {
    let src = include_str!("../../bpf/classify.c");
    // `#define NAME value` or `NAME = value,` (enum).
    let value = |name: &str| -> u64 {
        src.lines()
            .map(str::trim)
            .find_map(|l| {
                let rest = l.strip_prefix("#define ").unwrap_or(l);
                let rest = rest.strip_prefix(name)?.trim_start();
                let rest = rest.strip_prefix("= ").unwrap_or(rest);
                let v: String = rest.chars().take_while(char::is_ascii_digit).collect();
                v.parse().ok()
            })
            .unwrap_or_else(|| panic!("{name} not in classify.c"))
    };
    assert_eq!(value("SERVICES_MAX"), MAX_SERVICES as u64);
    assert_eq!(value("NAT_SRC_MAX"), MAX_NAT_SOURCES as u64);
    assert_eq!(value("IF_BASE_MAX"), MAX_INTERFACES as u64);
    assert_eq!(value("XSKS_MAX"), u64::from(MAX_XSK_SLOTS));
    assert_eq!(value("STAT_REDIRECTED"), u64::from(STAT_REDIRECTED));
    assert_eq!(value("STAT_PASSED"), u64::from(STAT_PASSED));
    assert_eq!(value("STAT_NO_SOCKET"), u64::from(STAT_NO_SOCKET));
    assert_eq!(value("STAT_MALFORMED"), u64::from(STAT_MALFORMED));
    assert_eq!(value("STAT_FRAGMENT"), u64::from(STAT_FRAGMENT));
    assert_eq!(value("STAT_FRAG_CLAIMED"), u64::from(STAT_FRAG_CLAIMED));
    assert_eq!(value("FRAG_DST_MAX"), MAX_SERVICES as u64);
    assert_eq!(value("FRAG_SRC_MAX"), MAX_NAT_SOURCES as u64);
    assert_eq!(value("FAMILY_V4"), 4);
    assert_eq!(value("FAMILY_V6"), 6);
    assert_eq!(value("FWM_PREFIXES_MAX"), MAX_FWMARK_PREFIXES as u64);
    assert_eq!(value("FWM_MATCH_MAX"), MAX_FWMARK_MATCHERS as u64);
    assert_eq!(value("FWM_PORTS_MAX"), MAX_FWMARK_PORTS as u64);
}

#[test]
fn classifier_is_send() {
    fn send<T: Send>() {}
    send::<Classifier>();
}

#[test]
fn refused_test_runs_are_told_apart() {
    let e = |errno| {
        ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_prog_test_run",
            io_error: io::Error::from_raw_os_error(errno),
        })
    };
    assert_eq!(errno_of(&e(libc::EPERM)), Some(libc::EPERM));
    assert_eq!(errno_of(&e(libc::ENODEV)), Some(libc::ENODEV));
    assert_eq!(errno_of(&ProgramError::NotLoaded), None);
    assert_eq!(errno_name(libc::EPERM), "EPERM");
    assert_eq!(errno_name(524), "ENOTSUPP");
}

//! Errors as operators and tests read them: errnos and their names, the
//! verifier's log, an error's whole chain; interface indices.

use super::*;

/// The errno of the first `io::Error` in `e`'s chain.
pub fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(n);
        }
        cur = err.source();
    }
    None
}

/// The symbolic name of the errnos [`crate::livefr::is_refusal`] knows.
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::EPERM => "EPERM".into(),
        libc::EACCES => "EACCES".into(),
        libc::EINVAL => "EINVAL".into(),
        libc::EOPNOTSUPP => "EOPNOTSUPP".into(),
        524 => "ENOTSUPP".into(),
        n => format!("errno {n}"),
    }
}

/// The verifier's log is in the error's Display: keep all of it.
pub fn verifier_msg(e: &ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            format!("{io_error}\n{verifier_log}")
        }
        other => error_chain(other),
    }
}

/// `e`'s message and those of its sources, joined by `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

/// Index of interface `name` in the calling thread's network namespace
/// (`if_nametoindex(3)`; `/sys/class/net` shows the namespace sysfs was
/// mounted in, which is wrong for a thread that entered another one).
///
/// # Errors
///
/// No such interface, or a name with a NUL byte.
pub fn ifindex(name: &str) -> Result<u32, XdpError> {
    let err = |source| XdpError::Interface {
        name: name.to_owned(),
        source,
    };
    let c = CString::new(name).map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(idx)
}

//! ipvsadm's error texts for failed operations (`ipvs_strerror`, reference
//! §3.3): the text depends on the operation and the errno.

use rvs_proto::{ErrorReply, Op};

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EIO: i32 = 5;
const ENOMEM: i32 = 12;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EINVAL: i32 = 22;
const ERANGE: i32 = 34;
const ENOPROTOOPT: i32 = 92;
const EOPNOTSUPP: i32 = 95;
const EAFNOSUPPORT: i32 = 97;
const EMSGSIZE: i32 = 90;

/// The text ipvsadm prints when `op` failed with `errno`.
pub fn for_op(op: &Op, errno: i32) -> String {
    let specific = match (op, errno) {
        (Op::AddService(_), EEXIST) => Some("Service already exists"),
        (Op::AddService(_) | Op::EditService(_), ENOENT) => {
            Some("Scheduler or persistence engine not found")
        }
        (Op::EditService(_) | Op::DeleteService(_) | Op::Zero(_), ESRCH) => Some("No such service"),
        (Op::AddDest { .. } | Op::EditDest { .. } | Op::DeleteDest { .. }, ESRCH) => {
            Some("Service not defined")
        }
        (Op::AddDest { .. }, EEXIST) => Some("Destination already exists"),
        (Op::EditDest { .. } | Op::DeleteDest { .. }, ENOENT) => Some("No such destination"),
        (Op::StartDaemon(_), EEXIST) => Some("Daemon has already run"),
        (Op::StopDaemon(_), ESRCH) => Some("No daemon is running"),
        _ => None,
    };
    specific.map_or_else(|| generic(errno), str::to_string)
}

/// The text for a failed listing (`get_services`, `get_dests`, `get_service`).
pub fn for_listing(errno: i32) -> String {
    if errno == ESRCH {
        "No such service".into()
    } else {
        generic(errno)
    }
}

/// The text for an error reply, using the operation it names if any.
pub fn for_reply(e: &ErrorReply) -> String {
    match &e.op {
        Some(op) => for_op(op, e.errno),
        None => generic(e.errno),
    }
}

/// Texts that apply to every operation, else `strerror(errno)`.
fn generic(errno: i32) -> String {
    match errno {
        EPERM => "Permission denied (you must be root)",
        EINVAL => "Invalid operation.  Possibly wrong module version, address not unicast, ...",
        ENOPROTOOPT => "Protocol not available",
        ENOMEM => "Memory allocation problem",
        EOPNOTSUPP => "Operation not supported with IPv6",
        EAFNOSUPPORT => "Operation not supported with specified address family",
        EMSGSIZE => "Module is wrong version",
        ENOENT => "No such file or directory",
        ESRCH => "No such process",
        EEXIST => "File exists",
        ENODEV => "No such device",
        ERANGE => "Numerical result out of range",
        EIO => "Input/output error",
        _ => return format!("Unknown error {errno}"),
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_proto::{ServiceId, ServiceSpec};

    fn svc() -> ServiceSpec {
        ServiceSpec {
            id: ServiceId::Fwmark { v6: false, mark: 1 },
            scheduler: "wlc".into(),
            flags: 0,
            timeout: 0,
            netmask: u32::MAX,
            pe: None,
        }
    }

    #[test]
    fn texts_by_operation() {
        let id = ServiceId::Fwmark { v6: false, mark: 1 };
        assert_eq!(
            for_op(&Op::AddService(svc()), EEXIST),
            "Service already exists"
        );
        assert_eq!(for_op(&Op::EditService(svc()), ESRCH), "No such service");
        assert_eq!(for_op(&Op::DeleteService(id), ESRCH), "No such service");
        assert_eq!(
            for_op(
                &Op::DeleteDest {
                    service: id,
                    addr: "1.2.3.4".parse().unwrap(),
                    port: 80
                },
                ENOENT
            ),
            "No such destination"
        );
        assert_eq!(for_op(&Op::Flush, ERANGE), "Numerical result out of range");
        assert_eq!(
            for_op(&Op::Flush, EINVAL),
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        );
        assert_eq!(for_listing(ESRCH), "No such service");
    }
}

//! ipvsadm grammar (in progress).

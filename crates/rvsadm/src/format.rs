//! ipvsadm output formats (in progress).

//! The process's environment as libc holds it, read without copying: the step inherits it as is
//! (`run/vfork`), and the configuration needs only its `PODVISOR_*` entries.

use nix::libc;

/// libc's NULL-terminated array of `NAME=value` strings.
pub fn raw() -> *const *const libc::c_char {
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: reading the libc global; podvisor never changes its own environment.
    unsafe { environ }
}

/// Calls `each` with every `NAME=value` entry as bytes, in order.
pub fn for_each(mut each: impl FnMut(&[u8])) {
    let mut entry = raw();
    // SAFETY: environ is NULL-terminated and its strings NUL-terminated; podvisor never
    // changes its environment, so it stays valid while we read it.
    unsafe {
        while !entry.is_null() && !(*entry).is_null() {
            each(std::ffi::CStr::from_ptr(*entry).to_bytes());
            entry = entry.add(1);
        }
    }
}

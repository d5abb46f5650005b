//! The spool binary: all of it is in the library, which it enters at `app::main`.
//!
//! spool enters at its own C `main` instead of Rust's runtime start-up, which reads
//! /proc/self/maps to find the main thread's stack guard and sets up an alternate signal
//! stack: work that is a measurable part of a command run once per message. `app::main`
//! does the parts of that start-up spool needs (standard descriptors, SIGPIPE), with the
//! library's `process` module.
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[allow(unsafe_code)] // exporting `main`, and reading the argument vector C hands it
#[unsafe(no_mangle)]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    use std::os::unix::ffi::OsStrExt;
    // The arguments come from here, not std::env::args_os(): without Rust's start-up,
    // std knows them only on glibc.
    let count = usize::try_from(argc).unwrap_or(0);
    let args = (0..count).map(|i| {
        // SAFETY: C passes argc valid, NUL-terminated strings in argv, alive for the
        // whole process.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        std::ffi::OsStr::from_bytes(arg.to_bytes()).to_os_string()
    });
    std::ffi::c_int::from(spool::app::main(args.collect()))
}

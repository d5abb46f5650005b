//! The spool binary: all of it is in the library's `app` module.
//!
//! spool enters at its own C `main` instead of Rust's runtime start-up, which reads
//! /proc/self/maps to find the main thread's stack guard and sets up an alternate signal
//! stack: work that is a measurable part of a command run once per message. `app::main`
//! does the parts of that start-up spool needs (standard descriptors, SIGPIPE).
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
#[allow(unsafe_code)] // exporting the symbol `main` is an unsafe attribute
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    std::ffi::c_int::from(spool::app::main())
}

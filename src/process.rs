//! Process start-up: what Rust's runtime start-up would have done, and what spool needs
//! of it.
//!
//! The binary enters at its own C `main` (see src/main.rs), so nothing has yet made sure
//! that the standard descriptors are open, or that SIGPIPE does not kill the process.
//! [`start`] does both, and installs the panic hook that turns an internal error into
//! one `spool: ` line; [`guarded`] turns the unwinding panic into exit status 2. At the
//! end, [`die_of`] ends a run that a signal stopped as killed by that signal.
//!
//! Invariant: after [`start`], descriptors 0, 1 and 2 are open, and a standard
//! descriptor that was closed when spool started is held by a /dev/null that cannot be
//! used (opened the wrong way round), so that using it fails with EBADF.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::exit::ExitStatus;

/// Which of standard output and standard error were closed when spool started (they
/// are occupied by a /dev/null that cannot be written); the commands `spool run` starts
/// get a writable /dev/null there instead.
static CLOSED_AT_START: [AtomicBool; 3] = [
    AtomicBool::new(false),
    AtomicBool::new(false),
    AtomicBool::new(false),
];

/// Whether standard descriptor `fd` (0, 1 or 2) was closed when spool started.
pub(crate) fn closed_at_start(fd: usize) -> bool {
    CLOSED_AT_START
        .get(fd)
        .is_some_and(|c| c.load(Ordering::Relaxed))
}

/// Prepares the process: standard descriptors, signals, the panic hook. Fails only when
/// /dev/null cannot be opened.
pub(crate) fn start() -> io::Result<()> {
    standard_descriptors()?;
    // A write to a closed pipe must fail with EPIPE, and one past RLIMIT_FSIZE with EFBIG,
    // rather than kill the process. Catching the signals (rather than ignoring them) also
    // leaves the commands of `spool run` with their default actions.
    for signal in [signal_hook::consts::SIGPIPE, signal_hook::consts::SIGXFSZ] {
        let _ = signal_hook::flag::register(signal, std::sync::Arc::new(AtomicBool::new(false)));
    }
    std::panic::set_hook(Box::new(|info| {
        eprintln!("spool: internal error: {info}");
    }));
    Ok(())
}

/// Runs `body`; a panic in it (already reported by the hook) ends in an error status.
pub(crate) fn guarded(body: impl FnOnce() -> ExitStatus + std::panic::UnwindSafe) -> ExitStatus {
    std::panic::catch_unwind(body).unwrap_or(ExitStatus::Error)
}

/// Ends the process as killed by `signal` (SIGINT or SIGTERM), with the signal's default
/// action restored: the way a process that was interrupted tells its parent so. Returns
/// only where the signal does not kill spool; the caller then exits with 128 + its number.
///
/// Called last, when the work is done: the commands finished, the joblog closed.
pub(crate) fn die_of(signal: i32) {
    // What std's standard output may still hold (the rest is written unbuffered).
    let _ = io::stdout().flush();
    // The first process of a PID namespace (spool as a container's entry point) ignores
    // the signals it sends itself whose action is the default one: the kernel drops them.
    // Raising one there would return, and the raising below then aborts.
    if rustix::process::getpid().is_init() {
        return;
    }
    // Restores the default action, unblocks the signal and raises it; the process dies
    // of it before the call returns. (Should it return, it aborts.)
    let _ = signal_hook::low_level::emulate_default_handler(signal);
}

/// Occupies a closed standard descriptor, as Rust's start-up would, so that no file spool
/// opens becomes its standard output; but with /dev/null opened so that using it fails
/// with EBADF: `spool pop >&-` then keeps the message instead of writing it to nothing,
/// and `spool push <&-` pushes nothing instead of an empty message.
fn standard_descriptors() -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let wanted = [
        (rustix::stdio::stdin(), OFlags::WRONLY),
        (rustix::stdio::stdout(), OFlags::RDONLY),
        (rustix::stdio::stderr(), OFlags::RDONLY),
    ];
    for (i, (fd, unusable)) in wanted.into_iter().enumerate() {
        if rustix::io::fcntl_getfd(fd) != Err(rustix::io::Errno::BADF) {
            continue;
        }
        CLOSED_AT_START[i].store(true, Ordering::Relaxed);
        // The lowest free descriptor is the closed one: the ones below it are open.
        let null = rustix::fs::open("/dev/null", unusable, Mode::empty())?;
        if null.as_raw_fd() == fd.as_raw_fd() {
            let _ = null.into_raw_fd(); // kept open for the life of the process
        }
    }
    Ok(())
}

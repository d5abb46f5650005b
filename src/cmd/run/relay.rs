//! The commands' output on its way to spool's own.
//!
//! One command at a time may write to spool's standard output and error directly
//! ([`Mode::Inherit`]). Otherwise each command writes into two pipes, which run reads in
//! its one poll loop (the pipes are in an epoll set, itself one of the descriptors the
//! loop polls), without blocking, and passes on:
//!
//! - [`Mode::Lines`] (more than one command at a time): complete lines only, each in one
//!   write, so that no command's line is cut by another's. What holds exactly: a
//!   command's last line without a newline is written when it ends, and another command's
//!   line may follow it directly, on the same line; a line longer than [`LONGEST_LINE`]
//!   is passed on in pieces of that size (so that memory stays bounded), and other
//!   commands' lines may come between them.
//! - [`Mode::Chunks`] (one command at a time, captured for the joblog's byte count): the
//!   bytes as they come, since nothing can mix with them.
//! - [`Mode::Group`] (`--group`): all of a command's output, held in memory, written when
//!   it ends, standard output then standard error.
//!
//! The status line of `--progress` stays at the bottom of a terminal's standard error: it
//! is erased only when something is written to that terminal, and drawn again right after,
//! unless a line is left unfinished there (it would be drawn over).
//!
//! Invariants: a byte of a command's standard output is counted once (the joblog's
//! Receive), and a command whose standard output could not be written in full is marked
//! [`Capture::lost`], so that its message is kept rather than acked. When spool's own
//! standard output fails (a closed pipe), everything later meant for it is dropped and
//! counted as lost. A standard error that cannot be written changes nothing. A standard
//! output or error closed when spool started is written to nothing, as the command
//! itself would have. When a command ends, what its pipes hold is read before they are
//! closed; output that processes it left in the background write later is not passed on.

use std::fs::File;
use std::io::{self, IsTerminal, PipeReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};

use rustix::buffer::spare_capacity;
use rustix::event::{Timespec, epoll};

/// How the commands' output reaches spool's standard output and error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// The command writes to spool's own descriptors.
    Inherit,
    /// Through pipes, a complete line at a time.
    Lines,
    /// Through pipes, as it comes.
    Chunks,
    /// Through pipes, all of it when the command ends.
    Group,
}

/// The longest line [`Mode::Lines`] holds back waiting for its end.
pub(super) const LONGEST_LINE: usize = 1 << 20;

/// How much is read from one pipe each time the loop finds it readable: then the other
/// pipes get their turn.
const READ_TURN: usize = 256 * 1024;

/// How much is read from a pipe after its command ended: what the command wrote is all in
/// the pipe (at most its capacity, 1 MiB unless raised by root); the bound stops a
/// process the command left behind from keeping run reading.
const LAST_READ: usize = 4 << 20;

/// What a stream of a command has not passed on yet, and the rule for passing it on.
pub(super) struct Pending {
    mode: Mode,
    held: Vec<u8>,
}

impl Pending {
    pub(super) fn new(mode: Mode) -> Pending {
        Pending {
            mode,
            held: Vec::new(),
        }
    }

    /// Takes `data` read from the command and calls `write` with what goes out now, each
    /// call one write.
    pub(super) fn push(&mut self, data: &[u8], mut write: impl FnMut(&[u8])) {
        match self.mode {
            Mode::Inherit | Mode::Chunks => write(data),
            Mode::Group => self.held.extend_from_slice(data),
            Mode::Lines => {
                match data.iter().rposition(|&b| b == b'\n') {
                    Some(end) if self.held.is_empty() => {
                        write(&data[..=end]);
                        self.held.extend_from_slice(&data[end + 1..]);
                    }
                    Some(end) => {
                        self.held.extend_from_slice(&data[..=end]);
                        write(&self.held);
                        self.held.clear();
                        self.held.extend_from_slice(&data[end + 1..]);
                    }
                    None => self.held.extend_from_slice(data),
                }
                while self.held.len() >= LONGEST_LINE {
                    write(&self.held[..LONGEST_LINE]);
                    self.held.drain(..LONGEST_LINE);
                }
            }
        }
    }

    /// The command ended: calls `write` with what is left, if anything.
    pub(super) fn finish(&mut self, mut write: impl FnMut(&[u8])) {
        if !self.held.is_empty() {
            write(&self.held);
        }
        self.held = Vec::new();
    }
}

/// One of spool's own outputs, as the relay writes to it.
struct Sink {
    /// A dup of the descriptor; `None` when it was closed at start (written to nothing).
    file: Option<File>,
    /// The first error writing to it: nothing more is written.
    failed: Option<io::Error>,
    /// Whether the last byte written was a newline (or nothing was written).
    at_line_start: bool,
}

impl Sink {
    fn new(fd: BorrowedFd<'_>, closed_at_start: bool) -> io::Result<Sink> {
        let file = if closed_at_start {
            None
        } else {
            Some(File::from(fd.try_clone_to_owned()?))
        };
        Ok(Sink {
            file,
            failed: None,
            at_line_start: true,
        })
    }

    /// Writes `data` in one write (more only if the kernel takes less); false when it
    /// was not written.
    fn write(&mut self, data: &[u8]) -> bool {
        if self.failed.is_some() {
            return false;
        }
        let Some(file) = &mut self.file else {
            return true;
        };
        match file.write_all(data) {
            Ok(()) => {
                if let Some(&last) = data.last() {
                    self.at_line_start = last == b'\n';
                }
                true
            }
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// The status line of `--progress`, at the bottom of a terminal's standard error.
#[derive(Default)]
struct Status {
    /// The line to show, cut to the terminal's width when drawn.
    text: Option<String>,
    /// What is on the screen, the cursor at its end: nothing was written since it was
    /// drawn.
    drawn: Option<String>,
}

/// spool's standard output and error, as the relay writes to them, with the status line
/// kept at the bottom of standard error: erased before anything else is written to the
/// terminal, and drawn again after.
struct Outputs {
    out: Sink,
    err: Sink,
    status: Status,
    /// Standard output is a terminal (where the status line would be written over).
    out_is_terminal: bool,
}

impl Outputs {
    /// Writes `data` to standard error, or standard output, erasing the status line first
    /// when it is on the same terminal; false when it was not written.
    fn write(&mut self, stderr: bool, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        if stderr || self.out_is_terminal {
            self.erase_status();
        }
        if stderr {
            self.err.write(data)
        } else {
            self.out.write(data)
        }
    }

    /// Whether a line of output is unfinished on the terminal: a status line drawn there
    /// would be drawn over it.
    fn unfinished(&self) -> bool {
        !self.err.at_line_start || (self.out_is_terminal && !self.out.at_line_start)
    }

    /// Draws the status line when it is not on the screen as it should be, if it can be
    /// drawn: not over an unfinished line. Cut one column short of the terminal's width (as
    /// it is now), so that it never wraps: `\r` then reaches its start.
    fn draw_status(&mut self) {
        let Some(text) = &self.status.text else {
            return;
        };
        if self.status.drawn.is_none() && self.unfinished() {
            return;
        }
        let columns = self
            .err
            .file
            .as_ref()
            .and_then(|f| rustix::termios::tcgetwinsize(f).ok())
            .map_or(0, |size| usize::from(size.ws_col));
        let line = fit(text, columns);
        if self.status.drawn.as_deref() == Some(line) {
            return;
        }
        let at_line_start = self.err.at_line_start;
        let drawn = self.err.write(format!("\r\x1b[K{line}").as_bytes());
        self.err.at_line_start = at_line_start;
        self.status.drawn = drawn.then(|| line.to_string());
    }

    /// Erases the status line, if it is on the screen.
    fn erase_status(&mut self) {
        if self.status.drawn.take().is_some() {
            let at_line_start = self.err.at_line_start;
            self.err.write(b"\r\x1b[K");
            self.err.at_line_start = at_line_start;
        }
    }
}

/// The start of `text` that fits in a terminal `columns` wide, one column short, without
/// the separator it was cut at; all of it for a width of 0 (unknown).
fn fit(text: &str, columns: usize) -> &str {
    if columns == 0 {
        return text;
    }
    match text.char_indices().nth(columns - 1) {
        Some((end, _)) => text[..end].trim_end_matches([' ', ',']),
        None => text,
    }
}

/// One stream of a command, read through a pipe.
struct Stream {
    /// The read end, nonblocking, in the epoll set; `None` once closed.
    pipe: Option<PipeReader>,
    pending: Pending,
    /// Bytes read.
    bytes: u64,
}

impl Stream {
    fn new(pipe: PipeReader, mode: Mode) -> Stream {
        Stream {
            pipe: Some(pipe),
            pending: Pending::new(mode),
            bytes: 0,
        }
    }
}

/// The output of one command, captured.
pub(super) struct Capture {
    key: u64,
    out: Stream,
    err: Stream,
    lost: bool,
}

impl Capture {
    /// Bytes the command wrote to its standard output (so far).
    pub(super) fn received(&self) -> u64 {
        self.out.bytes
    }

    /// Whether some of the command's standard output could not be written.
    pub(super) fn lost(&self) -> bool {
        self.lost
    }
}

/// The commands' output on its way to spool's, and spool's own lines on standard error.
pub(super) struct Relay {
    mode: Mode,
    /// The pipes being read; `None` when the commands write directly.
    epoll: Option<OwnedFd>,
    outputs: Outputs,
    buf: Vec<u8>,
    events: Vec<epoll::Event>,
    next_key: u64,
}

impl Relay {
    /// A relay in `mode`, writing to spool's standard output and error.
    pub(super) fn new(mode: Mode) -> io::Result<Relay> {
        let epoll = match mode {
            Mode::Inherit => None,
            _ => Some(epoll::create(epoll::CreateFlags::CLOEXEC)?),
        };
        Ok(Relay {
            mode,
            epoll,
            outputs: Outputs {
                out: Sink::new(io::stdout().as_fd(), crate::process::closed_at_start(1))?,
                err: Sink::new(io::stderr().as_fd(), crate::process::closed_at_start(2))?,
                status: Status::default(),
                out_is_terminal: io::stdout().is_terminal(),
            },
            buf: Vec::new(),
            events: Vec::new(),
            next_key: 0,
        })
    }

    /// Shows `text` as the status line at the bottom of a terminal's standard error, in
    /// place of the last one, and again after each write of output or of spool's own
    /// lines. It is not drawn while a line of output is unfinished on the terminal: it
    /// would be drawn over.
    pub(super) fn show_status(&mut self, text: String) {
        self.outputs.status.text = Some(text);
        self.outputs.draw_status();
    }

    /// Leaves the status line on the terminal, ended, for good: nothing is drawn after.
    pub(super) fn end_status(&mut self) {
        let outputs = &mut self.outputs;
        outputs.status.text = None;
        if outputs.status.drawn.take().is_some() {
            outputs.err.write(b"\n");
        }
    }

    /// The descriptor that is readable when a command's output waits to be read, if the
    /// output is captured.
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.epoll.as_ref().map(AsFd::as_fd)
    }

    /// The error that stopped the writing of standard output, if any.
    pub(super) fn output_failed(&self) -> Option<&io::Error> {
        self.outputs.out.failed.as_ref()
    }

    /// Sets the standard output and error of `cmd`: spool's own (or nothing, where spool's
    /// was closed at start), or pipes, whose read ends the returned capture holds.
    pub(super) fn connect(&mut self, cmd: &mut Command) -> io::Result<Option<Capture>> {
        let Some(epoll) = &self.epoll else {
            // Where spool's own output was closed, the command writes to nothing rather
            // than to the unwritable /dev/null that holds the descriptor's place in spool.
            if crate::process::closed_at_start(1) {
                cmd.stdout(Stdio::null());
            }
            if crate::process::closed_at_start(2) {
                cmd.stderr(Stdio::null());
            }
            return Ok(None);
        };
        let (out_read, out_write) = io::pipe()?;
        let (err_read, err_write) = io::pipe()?;
        let key = self.next_key;
        self.next_key += 1;
        for (pipe, stream) in [(&out_read, 0), (&err_read, 1)] {
            rustix::io::ioctl_fionbio(pipe, true)?;
            let data = epoll::EventData::new_u64(key << 1 | stream);
            epoll::add(epoll, pipe, data, epoll::EventFlags::IN)?;
        }
        // The write ends go to the command and are closed here when `cmd` is dropped.
        cmd.stdout(Stdio::from(out_write))
            .stderr(Stdio::from(err_write));
        Ok(Some(Capture {
            key,
            out: Stream::new(out_read, self.mode),
            err: Stream::new(err_read, self.mode),
            lost: false,
        }))
    }

    /// Reads what waits in the pipes of `captures` and passes it on (the status line
    /// erased only when something is written, and drawn again after).
    pub(super) fn pump(&mut self, captures: &mut [&mut Capture]) {
        let Some(epoll) = &self.epoll else {
            return;
        };
        self.events.clear();
        self.events.reserve(64);
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if epoll::wait(epoll, spare_capacity(&mut self.events), Some(&now)).is_err() {
            return; // EINTR: the loop comes back
        }
        let events = std::mem::take(&mut self.events);
        for event in &events {
            let data = event.data.u64();
            if let Some(capture) = captures.iter_mut().find(|c| c.key == data >> 1) {
                self.read(capture, data & 1 == 1, READ_TURN);
            }
        }
        self.events = events;
        self.outputs.draw_status();
    }

    /// The command of `capture` ended: reads what its pipes still hold, writes what is
    /// left, and closes them.
    pub(super) fn finish(&mut self, capture: &mut Capture) {
        for stderr in [false, true] {
            self.read(capture, stderr, LAST_READ);
            self.close(capture, stderr);
        }
        let outputs = &mut self.outputs;
        let lost = &mut capture.lost;
        capture.out.pending.finish(|data| {
            if !outputs.write(false, data) {
                *lost = true;
            }
        });
        capture.err.pending.finish(|data| {
            outputs.write(true, data);
        });
        outputs.draw_status();
    }

    /// Reads up to `limit` bytes from one stream of `capture` and passes them on; closes
    /// the stream at its end.
    fn read(&mut self, capture: &mut Capture, stderr: bool, limit: usize) {
        if self.buf.is_empty() {
            self.buf = vec![0; 64 * 1024];
        }
        let Relay { outputs, buf, .. } = self;
        let stream = if stderr {
            &mut capture.err
        } else {
            &mut capture.out
        };
        let lost = &mut capture.lost;
        let mut total = 0;
        let mut ended = false;
        while total < limit {
            let Some(pipe) = &mut stream.pipe else {
                return;
            };
            match pipe.read(buf) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => {
                    total += n;
                    stream.bytes += n as u64;
                    let sink = if stderr { &outputs.err } else { &outputs.out };
                    if sink.failed.is_some() {
                        // Nowhere to go: not held either.
                        *lost |= !stderr;
                        continue;
                    }
                    stream.pending.push(&buf[..n], |data| {
                        if !outputs.write(stderr, data) && !stderr {
                            *lost = true;
                        }
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    ended = true;
                    break;
                }
            }
        }
        if ended {
            self.close(capture, stderr);
        }
    }

    /// Closes one stream's pipe, taking it out of the epoll set first.
    fn close(&mut self, capture: &mut Capture, stderr: bool) {
        let stream = if stderr {
            &mut capture.err
        } else {
            &mut capture.out
        };
        if let (Some(pipe), Some(epoll)) = (stream.pipe.take(), &self.epoll) {
            // Closing the only descriptor of the pipe would take it out of the set too.
            let _ = epoll::delete(epoll, &pipe);
        }
    }

    /// Writes one line of spool's own (`line` ends with a newline) on standard error,
    /// starting a line of its own after a command's unfinished one. A standard error that
    /// cannot be written changes nothing.
    pub(super) fn say(&mut self, line: &str) {
        let outputs = &mut self.outputs;
        if outputs.err.at_line_start || self.mode == Mode::Inherit {
            outputs.write(true, line.as_bytes());
        } else {
            outputs.write(true, format!("\n{line}").as_bytes());
        }
        outputs.draw_status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writes `Pending` makes for `pieces`, then at the end (`None` between the two).
    fn writes(mode: Mode, pieces: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut p = Pending::new(mode);
        let mut out = Vec::new();
        for piece in pieces {
            p.push(piece, |d| out.push(Some(d.to_vec())));
        }
        out.push(None);
        p.finish(|d| out.push(Some(d.to_vec())));
        out
    }

    fn w(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_go_out_whole_and_the_last_partial_one_at_the_end() {
        assert_eq!(
            writes(Mode::Lines, &[b"ab", b"c\nde", b"f\ng\nh", b"i"]),
            [w("abc\n"), w("def\ng\n"), None, w("hi")]
        );
        // Several lines read at once leave in one write.
        assert_eq!(writes(Mode::Lines, &[b"1\n2\n3\n"]), [w("1\n2\n3\n"), None]);
        // Pieces without a newline are held; nothing is left for the end after one.
        assert_eq!(
            writes(Mode::Lines, &[b"a", b"b", b"c", b"\n"]),
            [w("abc\n"), None]
        );
        assert_eq!(writes(Mode::Lines, &[]), [None]);
        assert_eq!(writes(Mode::Lines, &[b""]), [None]);
    }

    #[test]
    fn a_line_longer_than_the_limit_goes_out_in_pieces() {
        let long = vec![b'x'; LONGEST_LINE + 10];
        let got = writes(Mode::Lines, &[&long, b"y\n"]);
        assert_eq!(got.len(), 3, "one piece, the rest of the line, the end");
        assert_eq!(got[0].as_ref().unwrap().len(), LONGEST_LINE);
        let mut rest = vec![b'x'; 10];
        rest.extend_from_slice(b"y\n");
        assert_eq!(got[1].as_ref().unwrap(), &rest);
        assert_eq!(got[2], None);
    }

    #[test]
    fn the_status_line_is_cut_to_the_terminals_width() {
        let line = "12 done, 0 failed attempts, 4 running";
        assert_eq!(fit(line, 0), line, "width unknown");
        assert_eq!(fit(line, 80), line);
        assert_eq!(fit(line, line.len() + 1), line);
        // One column short of the width, so that it never wraps.
        assert_eq!(
            fit(line, line.len()),
            "12 done, 0 failed attempts, 4 runnin"
        );
        assert_eq!(fit(line, 10), "12 done");
        assert_eq!(fit(line, 11), "12 done, 0");
        assert_eq!(fit(line, 1), "");
    }

    #[test]
    fn chunks_go_out_as_read_and_groups_at_the_end() {
        assert_eq!(
            writes(Mode::Chunks, &[b"a", b"b\nc"]),
            [w("a"), w("b\nc"), None]
        );
        assert_eq!(
            writes(Mode::Group, &[b"a", b"b\nc", b"\n"]),
            [None, w("ab\nc\n")]
        );
        assert_eq!(writes(Mode::Group, &[]), [None]);
    }
}

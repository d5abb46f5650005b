//! Payloads on their way in and out, whatever holds them: a message is read from a
//! [`Payload`] (an open file, or bytes in memory) and written into a [`Sink`].

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, Write};
use std::path::Path;
use std::process::Stdio;

use super::error::{Error, Result};

/// A message's bytes, positioned at their start.
pub enum Payload {
    /// An open file (the local engine's messages).
    File(File),
    /// Bytes in memory (a message that came over a connection).
    Memory(Cursor<Vec<u8>>),
}

impl Payload {
    /// Copies the rest of the payload to `out` (with `copy_file_range` or `sendfile`
    /// from a file, where the kernel allows), returning the bytes copied.
    pub fn copy_to(&mut self, out: &mut File) -> io::Result<u64> {
        match self {
            Payload::File(file) => io::copy(file, out),
            Payload::Memory(bytes) => io::copy(bytes, out),
        }
    }

    /// The payload's size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        match self {
            Payload::File(file) => file.metadata().map(|m| m.len()),
            Payload::Memory(bytes) => Ok(bytes.get_ref().len() as u64),
        }
    }

    /// The payload as the standard input of a child process. Bytes in memory go into an
    /// anonymous file first, so the child reads a file either way.
    pub fn into_stdin(self) -> io::Result<Stdio> {
        match self {
            Payload::File(file) => Ok(Stdio::from(file)),
            Payload::Memory(bytes) => {
                let fd =
                    rustix::fs::memfd_create("spool-message", rustix::fs::MemfdFlags::CLOEXEC)?;
                let mut file = File::from(fd);
                file.write_all(bytes.get_ref())?;
                file.rewind()?;
                Ok(Stdio::from(file))
            }
        }
    }
}

impl Read for Payload {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Payload::File(file) => file.read(buf),
            Payload::Memory(bytes) => bytes.read(buf),
        }
    }
}

/// Where one message being pushed is written: its errors name the place.
pub struct Sink<'a> {
    out: &'a mut dyn Write,
    place: &'a Path,
}

impl<'a> Sink<'a> {
    /// A sink writing to `out`, which errors call `place`.
    pub fn new(out: &'a mut dyn Write, place: &'a Path) -> Sink<'a> {
        Sink { out, place }
    }

    /// Writes all of `buf`.
    pub fn write_all(&mut self, buf: &[u8]) -> Result<()> {
        self.out
            .write_all(buf)
            .map_err(|e| Error::io("write", self.place, e))
    }
}

/// Reads until `buf` is full or the end; returns how much was read.
pub fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_payloads_read_and_feed_a_child() {
        let mut p = Payload::Memory(Cursor::new(b"hello".to_vec()));
        let mut buf = [0u8; 8];
        assert_eq!(read_full(&mut p, &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        let stdin = Payload::Memory(Cursor::new(b"abc".to_vec()))
            .into_stdin()
            .unwrap();
        let out = std::process::Command::new("cat")
            .stdin(stdin)
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"abc");
    }
}

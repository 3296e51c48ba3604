//! One direction of a relay, as a poll state machine: read from one socket, write to the
//! other, pass the end of file on.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use tokio::net::TcpStream;

use super::Limiter;

/// The buffer for small reads ([`SCRATCH`]). A read that fills it marks a bulk transfer, which on
/// Linux continues with `splice(2)`.
const SMALL: usize = 16 * 1024;

thread_local! {
    /// The buffer small reads go through: one per thread, filled and emptied within one
    /// call (nothing awaits in between), so no message pays for zeroing 16 KiB of stack.
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; SMALL].into_boxed_slice());
}

/// One direction's state between polls. Waiting holds no buffer: bytes are only kept here
/// when the destination would not take them at once.
pub(super) struct Flow {
    /// Bytes read (small mode) that the destination has not taken yet (boxed: rare).
    spill: Option<Box<Spill>>,
    /// The pipe of a bulk transfer in progress.
    #[cfg(target_os = "linux")]
    pipe: Option<super::pipe::Pipe>,
    /// The bandwidth cap, if any (boxed: most flows have none).
    limiter: Option<Box<Limiter>>,
    /// End of file seen and passed on.
    finished: bool,
}

struct Spill {
    bytes: Box<[u8]>,
    written: usize,
}

impl Flow {
    pub(super) fn new(limiter: Option<Box<Limiter>>) -> Self {
        Self {
            spill: None,
            #[cfg(target_os = "linux")]
            pipe: None,
            limiter,
            finished: false,
        }
    }

    /// Moves what can be moved now; ready once the end of file has been passed on.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
        to: &TcpStream,
        counter: &AtomicU64,
    ) -> Poll<io::Result<()>> {
        loop {
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_flush(cx, to))?;
            let allowance = match &mut self.limiter {
                Some(limiter) => ready!(limiter.poll_allowance(cx, usize::MAX)),
                None => usize::MAX,
            };
            ready!(from.poll_read_ready(cx))?;
            match self.read(from, to, allowance) {
                Ok(0) => {
                    pass_end_of_file(to)?;
                    self.finished = true;
                }
                Ok(moved) => {
                    counter.fetch_add(moved as u64, Ordering::Relaxed);
                    if let Some(limiter) = &mut self.limiter {
                        limiter.spend(moved);
                    }
                }
                // Readiness is cleared: the next poll_read_ready registers for a wake-up.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Reads what is there (at most `allowance`) and passes it on as far as `to` takes it.
    /// Returns the bytes read, 0 at end of file.
    fn read(&mut self, from: &TcpStream, to: &TcpStream, allowance: usize) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if let Some(pipe) = &mut self.pipe {
            let result = splice_in(pipe, from, allowance);
            if matches!(&result, Err(error) if error.kind() == io::ErrorKind::WouldBlock) {
                // The burst is over: give the (empty) pipe back while waiting.
                self.pipe = None;
            }
            return result;
        }
        let (read, spill) = SCRATCH.with_borrow_mut(|buffer| -> io::Result<_> {
            let read = from.try_read(&mut buffer[..allowance.min(SMALL)])?;
            if read == 0 {
                return Ok((0, None));
            }
            let written = match to.try_write(&buffer[..read]) {
                Ok(written) => written,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
                Err(error) => return Err(error),
            };
            let spill = (written < read).then(|| {
                Box::new(Spill {
                    bytes: buffer[written..read].into(),
                    written: 0,
                })
            });
            Ok((read, spill))
        })?;
        if read == 0 {
            return Ok(0);
        }
        if spill.is_some() {
            self.spill = spill;
        }
        #[cfg(target_os = "linux")]
        if read == SMALL {
            // A full buffer: more is probably waiting. Without a pipe (descriptors
            // exhausted), small reads simply go on.
            self.pipe = super::pipe::Pipe::take().ok();
        }
        Ok(read)
    }

    /// Writes out what is held (spilled bytes, or a pipe's contents).
    fn poll_flush(&mut self, cx: &mut Context<'_>, to: &TcpStream) -> Poll<io::Result<()>> {
        #[cfg(target_os = "linux")]
        if let Some(pipe) = &mut self.pipe {
            while pipe.filled > 0 {
                ready!(to.poll_write_ready(cx))?;
                match splice_out(pipe, to) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
        }
        if let Some(spill) = &mut self.spill {
            while spill.written < spill.bytes.len() {
                ready!(to.poll_write_ready(cx))?;
                match to.try_write(&spill.bytes[spill.written..]) {
                    Ok(written) => spill.written += written,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                    Err(error) => return Poll::Ready(Err(error)),
                }
            }
            self.spill = None;
        }
        Poll::Ready(Ok(()))
    }
}

/// The source is finished: shut down the destination's writing side.
fn pass_end_of_file(to: &TcpStream) -> io::Result<()> {
    match rustix::net::shutdown(to, rustix::net::Shutdown::Write) {
        // The peer may have gone already; the other direction will see it.
        Ok(()) | Err(rustix::io::Errno::NOTCONN) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(target_os = "linux")]
const SPLICE_FLAGS: rustix::pipe::SpliceFlags =
    rustix::pipe::SpliceFlags::NONBLOCK.union(rustix::pipe::SpliceFlags::MOVE);

/// Socket → (empty) pipe, at most the pipe's capacity.
#[cfg(target_os = "linux")]
fn splice_in(
    pipe: &mut super::pipe::Pipe,
    from: &TcpStream,
    allowance: usize,
) -> io::Result<usize> {
    let (_, pipe_in) = pipe.ends()?;
    let want = allowance.min(pipe.capacity());
    let moved = from.try_io(tokio::io::Interest::READABLE, || {
        rustix::pipe::splice(from, None, pipe_in, None, want, SPLICE_FLAGS).map_err(io::Error::from)
    })?;
    pipe.filled = moved;
    Ok(moved)
}

/// Pipe → socket, as much as the socket takes.
#[cfg(target_os = "linux")]
fn splice_out(pipe: &mut super::pipe::Pipe, to: &TcpStream) -> io::Result<()> {
    let (pipe_out, _) = pipe.ends()?;
    let filled = pipe.filled;
    let moved = to.try_io(tokio::io::Interest::WRITABLE, || {
        rustix::pipe::splice(pipe_out, None, to, None, filled, SPLICE_FLAGS)
            .map_err(io::Error::from)
    })?;
    if moved == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    pipe.filled -= moved;
    Ok(())
}

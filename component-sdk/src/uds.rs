//! A Unix stream socket that wakes its task only when there is data to read.
//!
//! On Linux, each time a Unix socket's peer reads, the kernel signals the
//! writer that it has room again (`EPOLLOUT`), whether or not the writer was
//! waiting for room. tokio's `UnixStream` registers for both directions,
//! edge-triggered, so every message the other side consumes wakes this
//! side's thread for nothing: `strace` of the gateway showed, per component
//! call, one `epoll_wait` that returned only `EPOLLOUT` right after the
//! component read the request, then a second for the reply. On a VM whose
//! idle vCPUs halt, each wake-up costs tens of µs (BENCHMARKS.md).
//!
//! [`UnixConn`] registers the socket for reads only and writes straight to
//! it. Only when the kernel buffer is full (a write would block) does it
//! register a duplicate of the socket for writes, wait for room, and drop
//! that registration again once the write went through.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// The most one read takes from the socket.
const READ_CHUNK: usize = 16 * 1024;

/// A connected Unix stream socket, registered with tokio for reads only.
#[derive(Debug)]
pub struct UnixConn {
    read: AsyncFd<StdUnixStream>,
    /// A duplicate registered for writes, only while a write waits for room.
    write: Option<AsyncFd<StdUnixStream>>,
    /// What one read takes from the socket, before it is copied out.
    scratch: Box<[u8]>,
}

impl UnixConn {
    /// Take over `stream` (it is made non-blocking).
    ///
    /// # Errors
    /// When the socket cannot be made non-blocking or registered with the
    /// runtime's reactor (e.g. outside a Tokio runtime).
    pub fn new(stream: StdUnixStream) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            read: register(stream, Interest::READABLE)?,
            write: None,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        })
    }

    /// Connect to the socket at `path`.
    ///
    /// # Errors
    /// As [`tokio::net::UnixStream::connect`].
    pub async fn connect(path: impl AsRef<std::path::Path>) -> io::Result<Self> {
        let stream = tokio::net::UnixStream::connect(path).await?;
        Self::from_tokio(stream)
    }

    /// Take over a stream tokio accepted or connected.
    ///
    /// # Errors
    /// As [`UnixConn::new`].
    pub fn from_tokio(stream: tokio::net::UnixStream) -> io::Result<Self> {
        Self::new(stream.into_std()?)
    }

    /// Run `write` on the socket, waiting for room when it would block.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        write: impl Fn(&StdUnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(waiting) = &self.write {
                let mut guard = ready!(waiting.poll_write_ready(cx))?;
                if let Ok(result) = guard.try_io(|fd| write(fd.get_ref())) {
                    self.write = None;
                    return Poll::Ready(result);
                }
                continue;
            }
            match write(self.read.get_ref()) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // Registering reports the current state at once, so room
                    // made since the failed write is not missed.
                    let duplicate = self.read.get_ref().try_clone()?;
                    self.write = Some(register(duplicate, Interest::WRITABLE)?);
                }
                other => return Poll::Ready(other),
            }
        }
    }
}

/// Register `stream` with the reactor for `interest` only.
///
/// tokio deprecated the safe constructor because an arbitrary `AsRawFd`
/// type could close or swap its descriptor while registered; its successor
/// is `unsafe`, which this workspace forbids. A std `UnixStream` owns its
/// descriptor until dropped, and the `AsyncFd` owns the stream, so the
/// condition holds here.
#[allow(deprecated)]
fn register(stream: StdUnixStream, interest: Interest) -> io::Result<AsyncFd<StdUnixStream>> {
    AsyncFd::with_interest(stream, interest)
}

impl AsyncRead for UnixConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Self { read, scratch, .. } = self.get_mut();
        loop {
            let mut guard = ready!(read.poll_read_ready(cx))?;
            // Safe code cannot read into the caller's uninitialised buffer,
            // and zeroing it first costs as much as the buffer is large (h2
            // offers kilobytes for a message of a few dozen bytes): read into
            // this connection's scratch buffer, then copy only what arrived.
            let room = buf.remaining().min(scratch.len());
            let into = &mut scratch[..room];
            match guard.try_io(|fd| fd.get_ref().read(into)) {
                Ok(Ok(n)) => {
                    // A read that did not fill the buffer emptied the socket:
                    // wait for the next edge instead of a read that fails
                    // with `EAGAIN` (as tokio's own sockets do).
                    if 0 < n && n < room {
                        guard.clear_ready();
                    }
                    buf.put_slice(scratch.get(..n).unwrap_or_default());
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for UnixConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut stream| stream.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut stream| stream.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the socket; nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.read.get_ref().shutdown(std::net::Shutdown::Write))
    }
}

impl tonic::transport::server::Connected for UnixConn {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn carries_bytes_both_ways() {
        let (a, b) = StdUnixStream::pair().unwrap();
        let (mut a, mut b) = (UnixConn::new(a).unwrap(), UnixConn::new(b).unwrap());
        a.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        b.write_all(b"pong").await.unwrap();
        a.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong");
        a.shutdown().await.unwrap();
        assert_eq!(
            b.read(&mut got).await.unwrap(),
            0,
            "end of stream after shutdown"
        );
    }

    /// A write larger than the kernel's socket buffer blocks, waits for the
    /// reader to make room, and completes; the write registration is gone
    /// afterwards.
    #[tokio::test]
    async fn a_write_that_fills_the_buffer_waits_for_room() {
        let (a, b) = StdUnixStream::pair().unwrap();
        let (mut a, mut b) = (UnixConn::new(a).unwrap(), UnixConn::new(b).unwrap());
        let payload: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&payload).await.unwrap();
            assert!(a.write.is_none(), "the write registration was dropped");
            a
        });
        let mut got = Vec::with_capacity(expected.len());
        let mut chunk = vec![0u8; 64 * 1024];
        while got.len() < expected.len() {
            let n = b.read(&mut chunk).await.unwrap();
            assert!(n > 0, "stream ended early");
            got.extend_from_slice(&chunk[..n]);
        }
        assert!(got == expected, "bytes arrived intact and in order");
        drop(writer.await.unwrap());
        assert_eq!(
            b.read(&mut chunk).await.unwrap(),
            0,
            "end of stream after drop"
        );
    }
}

//! Endless response bodies (a viewer's stream) written by the relay itself once hyper has sent
//! their head, over HTTP/1.x.
//!
//! Why: hyper keeps, for as long as an HTTP/1 connection is open, a read buffer and a buffer for
//! response heads of 8 KB each (hyper 1.12 has no setting for either), and it runs its
//! dispatcher around every chunk of a body. A viewer's connection carries one response that
//! never ends, so after its head those buffers serve nothing, yet they were 16 of the 21 KB of
//! heap each viewer held (docs/benchmarks.md, "Where the memory goes").
//!
//! How: the viewer's body is parked in its connection's [`Handover`] (`conn::endless_body`) and
//! hyper is given a body that polls it from there. When the response reaches hyper, the
//! connection's service says which framing hyper will write it in ([`Handover::settle`]: chunked over
//! HTTP/1.1, close-delimited over HTTP/1.0, hyper's rule for a body of unknown length in
//! `proto/h1/role.rs`), or keeps the body with hyper when the head is not one it can continue.
//! Once hyper has flushed everything it was given (the head, and any chunk it took), the
//! connection's driver (`conn`, `serve_http1`) takes the body out, takes the socket back from
//! hyper (`into_parts`, which frees hyper's buffers but the read buffer it hands back, which the
//! driver drops at once) and writes the rest itself ([`write`]).
//! The connection ends with the body: for a viewer, when the relay shuts down, its source goes
//! away, or the client closes.
//!
//! Everything a viewer does per frame (pacing, renditions, counting) stays in its body stream
//! (`fanout::viewer`). The writer frames and writes what the stream yields (a frame's part comes
//! already framed, built once for every viewer: [`Chunk`]), as hyper did: it
//! asks for the next chunk while the last one is being written, and the viewer waits for the
//! flush that follows the write (`conn::ConnState::poll_flushed_since`) before it picks the
//! frame, so a slow link still shows as a slow flush.
//!
//! HTTP/2 never hands over: hyper serves those bodies as any other.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::Stream;
use poem::http::{header, HeaderMap, Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A body that may be handed over: a stream of chunks, each written whole.
pub type Chunks = Pin<Box<dyn Stream<Item = io::Result<Chunk>> + Send>>;

/// One piece of an endless body as its stream yields it: bytes, or bytes already framed as one
/// HTTP/1.1 chunk in the buffer that holds them.
///
/// Why framed: a frame's part is built once per frame and shared by every viewer, so the chunk's
/// size line and closing CRLF can be built once with it, around it in the same buffer. The
/// writer then sends one buffer per frame. Sent as three pieces (size line, part, CRLF) in one
/// `writev`, with the size line made per viewer, the same bytes cost a copy of the floor 11 %
/// more CPU at 1000 viewers, and the relay a few percent (docs/benchmarks.md).
#[derive(Clone, Debug)]
pub enum Chunk {
    Plain(Bytes),
    /// `buf`: a size line of `head` bytes, the data, CRLF. Made by [`Chunk::framed`] only.
    Framed {
        buf: Bytes,
        head: u8,
    },
}

impl Chunk {
    /// The data `write` appends to an empty buffer (about `size_hint` bytes), framed as one chunk
    /// in that buffer: room for the size line is kept before the data, and filled in after.
    pub fn framed(size_hint: usize, write: impl FnOnce(&mut Vec<u8>)) -> Chunk {
        const ROOM: usize = ChunkHead::MAX_LEN;
        let mut buf = Vec::with_capacity(ROOM + size_hint + 2);
        buf.resize(ROOM, 0);
        write(&mut buf);
        let head = ChunkHead::new(buf.len() - ROOM);
        let start = ROOM - head.len;
        buf[start..ROOM].copy_from_slice(head.bytes());
        buf.extend_from_slice(b"\r\n");
        let mut buf = Bytes::from(buf);
        buf.advance(start);
        Chunk::Framed {
            buf,
            head: head.len as u8,
        }
    }

    /// Bytes of data (the framing not counted).
    pub fn len(&self) -> usize {
        match self {
            Chunk::Plain(data) => data.len(),
            Chunk::Framed { buf, head } => buf.len() - usize::from(*head) - 2,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data alone (a view of the same buffer).
    pub fn into_data(self) -> Bytes {
        match self {
            Chunk::Plain(data) => data,
            Chunk::Framed { mut buf, head } => {
                buf.truncate(buf.len() - 2);
                buf.advance(usize::from(head));
                buf
            }
        }
    }
}

impl From<Bytes> for Chunk {
    fn from(data: Bytes) -> Self {
        Chunk::Plain(data)
    }
}

/// How the body's bytes are delimited on the wire: what hyper wrote in the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.1: `Transfer-Encoding: chunked`.
    Chunked,
    /// HTTP/1.0: the body runs until the connection closes.
    CloseDelimited,
}

/// A connection's slot for a body parked while hyper serves its head (one per HTTP/1
/// connection, in its `conn::ConnState`). Every method takes the connection's flush count where
/// it needs it: a flush means everything handed to hyper before it is in the kernel.
#[derive(Default)]
pub struct Handover(Mutex<Option<Parked>>);

struct Parked {
    chunks: Chunks,
    /// What hyper writes the body in, once [`Handover::settle`] has seen the head; `None`:
    /// hyper keeps it.
    framing: Option<Framing>,
    /// The connection's flush count when hyper last took something that is not yet written: the
    /// head, or a chunk. Everything is in the kernel once the count has passed it. `None` until
    /// hyper first polls the body, which it does only after it has encoded the head.
    handed_at: Option<u64>,
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parked = self.lock();
        f.debug_struct("Handover")
            .field("parked", &parked.is_some())
            .field("framing", &parked.as_ref().and_then(|p| p.framing))
            .finish()
    }
}

impl Handover {
    fn lock(&self) -> MutexGuard<'_, Option<Parked>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parks `chunks`, the response body about to be given to hyper (as a body that polls it
    /// here, [`Handover::poll_parked`]).
    pub fn park(&self, chunks: Chunks) {
        let old = self.lock().replace(Parked {
            chunks,
            framing: None,
            handed_at: None,
        });
        // One response at a time on an HTTP/1 connection, and hyper drops a body once it has
        // ended (which empties the slot, [`Handover::clear`]).
        debug_assert!(old.is_none(), "a body was still parked");
    }

    /// Called by the connection's service with the request as hyper read it and the response
    /// head hyper is about to write: decides the framing a parked body continues in. A head hyper
    /// would frame otherwise (a length, a HEAD request, a status without a body), or a protocol
    /// version without a rule here, keeps the body with hyper.
    pub fn settle(
        &self,
        version: Version,
        method: &Method,
        status: StatusCode,
        headers: &HeaderMap,
    ) {
        let mut slot = self.lock();
        let Some(parked) = slot.as_mut() else {
            return;
        };
        let plain = method == Method::GET
            && status == StatusCode::OK
            && !headers.contains_key(header::CONTENT_LENGTH)
            && !headers.contains_key(header::TRANSFER_ENCODING);
        parked.framing = match version {
            Version::HTTP_11 if plain => Some(Framing::Chunked),
            Version::HTTP_10 if plain => Some(Framing::CloseDelimited),
            _ => None,
        };
    }

    /// What hyper's body does: polls the parked body, noting what hyper has taken. `flushes`:
    /// the connection's flush count now.
    pub fn poll_parked(
        &self,
        cx: &mut Context<'_>,
        flushes: u64,
    ) -> Poll<Option<io::Result<Bytes>>> {
        // hyper frames what it writes itself: it gets the data alone.
        let mut slot = self.lock();
        let Some(parked) = slot.as_mut() else {
            // Taken over, and hyper is being dropped; or ended before.
            return Poll::Ready(None);
        };
        match parked.chunks.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                parked.handed_at = Some(flushes);
                Poll::Ready(Some(Ok(chunk.into_data())))
            }
            Poll::Pending => {
                // The first poll comes after hyper has encoded the head.
                parked.handed_at.get_or_insert(flushes);
                Poll::Pending
            }
            Poll::Ready(end) => {
                let ended = slot.take();
                drop(slot);
                drop(ended);
                Poll::Ready(end.map(|item| item.map(Chunk::into_data)))
            }
        }
    }

    /// Drops the parked body, if any: hyper dropped the body that polled it (the client left, or
    /// the body ended), and the parked one goes with it as hyper's own would (it holds the
    /// viewer's places, and the connection's state, which holds this slot).
    pub fn clear(&self) {
        let parked = self.lock().take();
        drop(parked);
    }

    /// Takes the parked body out if hyper has flushed everything it was given (`flushes`: the
    /// connection's count now), so the socket can be taken back from hyper without losing a
    /// byte. Called by the driver each time hyper's connection future has run and is waiting:
    /// only hyper's polls move the slot or the flush count.
    pub fn ready_to_take(&self, flushes: u64) -> Option<(Chunks, Framing)> {
        let mut slot = self.lock();
        let parked = slot.as_ref()?;
        let framing = parked.framing?;
        if parked.handed_at.is_none_or(|at| flushes <= at) {
            return None;
        }
        slot.take().map(|p| (p.chunks, framing))
    }
}

/// Writes `chunks` on `io` in `framing` until they end (then the connection is closed), the
/// client closes, or a write fails. Each chunk is written whole and flushed (out of TLS's buffer
/// too); meanwhile the next one is asked for, at most one ahead. (hyper asks for up to 16 ahead,
/// but a viewer yields nothing until the flush after its last chunk, so it sees the same.)
///
/// `unread`: whether hyper had read bytes past the request that nobody will answer. `give_up`:
/// once it completes, a write still under way (a link that is slow or stopped reading) is
/// abandoned and the connection ended. It is polled only while a write did not finish at its
/// first try, and during the last write (the end of the body, once a connection): the body
/// itself ends at once on shutdown, and a future polled once a frame for every viewer costs a
/// cache miss each time.
pub fn write<S, G>(io: S, chunks: Chunks, framing: Framing, unread: bool, give_up: G) -> Write<S, G>
where
    S: AsyncRead + AsyncWrite + Unpin,
    G: Future<Output = ()>,
{
    Write {
        step: Step::Next,
        // Read only to see the client close, and only while waiting for a chunk: a client that
        // stops reading in the middle of a write is found by the write failing
        // (TCP_USER_TIMEOUT, `conn`, at most 20 s). Nothing the client sends is answered (a
        // second request cannot follow an endless body); once it has sent something, reading
        // stops, as hyper stops with bytes in its buffer, so a client cannot make the relay read
        // without end.
        reading: !unread,
        framing,
        out: Bytes::new(),
        ahead: None,
        chunks,
        io,
        give_up,
    }
}

pin_project_lite::pin_project! {
    /// The future of [`write`]: a state machine written out rather than an `async fn`, so that
    /// what it touches per frame is a few fields side by side, in this order (`repr(C)`). As an
    /// `async fn` with a `select!`, each frame wrote a fresh write future into its state and
    /// read the select's, over several cache lines that a thousand viewers' frames had evicted
    /// since (docs/benchmarks.md, "The writer as a state machine").
    #[repr(C)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Write<S, G> {
        step: Step,
        reading: bool,
        framing: Framing,
        // What is left to write of the chunk (or the body's end) under way.
        out: Bytes,
        // The next chunk, asked for while the last one was being written.
        ahead: Option<Option<io::Result<Chunk>>>,
        chunks: Chunks,
        io: S,
        #[pin]
        give_up: G,
    }
}

/// Where [`Write`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Waiting for the next chunk (and watching for the client to close).
    Next,
    /// Writing `out`, then flushing.
    Chunk,
    /// Writing the body's end in `out`, then flushing.
    End,
    /// Closing the connection.
    Close,
}

impl<S, G> Future for Write<S, G>
where
    S: AsyncRead + AsyncWrite + Unpin,
    G: Future<Output = ()>,
{
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        loop {
            match *this.step {
                Step::Next => {
                    let next = match this.ahead.take() {
                        Some(next) => next,
                        None => match this.chunks.as_mut().poll_next(cx) {
                            Poll::Ready(next) => next,
                            Poll::Pending => {
                                if !*this.reading {
                                    return Poll::Pending;
                                }
                                let mut discard = [0u8; 64];
                                let mut read = ReadBuf::new(&mut discard);
                                match Pin::new(&mut *this.io).poll_read(cx, &mut read) {
                                    Poll::Pending => return Poll::Pending,
                                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                                    Poll::Ready(Ok(())) if read.filled().is_empty() => {
                                        return Poll::Ready(Ok(()));
                                    }
                                    Poll::Ready(Ok(())) => {
                                        *this.reading = false;
                                        continue;
                                    }
                                }
                            }
                        },
                    };
                    match next {
                        // An empty chunk would end a chunked body; hyper skips them too.
                        Some(Ok(chunk)) if chunk.is_empty() => {}
                        Some(Ok(chunk)) => {
                            *this.out = on_the_wire(*this.framing, chunk);
                            *this.step = Step::Chunk;
                        }
                        Some(Err(err)) => return Poll::Ready(Err(err)),
                        None => {
                            if *this.framing == Framing::Chunked {
                                *this.out = Bytes::from_static(b"0\r\n\r\n");
                            }
                            *this.step = Step::End;
                        }
                    }
                }
                Step::Chunk | Step::End => match write_out(this.io, this.out, cx) {
                    Poll::Ready(Ok(())) if *this.step == Step::Chunk => {
                        // An emptied `Bytes` still holds its buffer: let the frame's part go
                        // now, not when the next chunk comes (a capped or held viewer's may be
                        // seconds away).
                        *this.out = Bytes::new();
                        *this.step = Step::Next;
                    }
                    Poll::Ready(Ok(())) => *this.step = Step::Close,
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {
                        // A slow link: the next chunk is asked for meanwhile (the viewer waits
                        // for this write's flush before it picks one), and the relay may give
                        // up on the write (on shutdown every body ends, a dead link's too).
                        if *this.step == Step::Chunk && this.ahead.is_none() {
                            if let Poll::Ready(next) = this.chunks.as_mut().poll_next(cx) {
                                *this.ahead = Some(next);
                            }
                        }
                        if this.give_up.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Err(gave_up()));
                        }
                        return Poll::Pending;
                    }
                },
                Step::Close => {
                    return match Pin::new(&mut *this.io).poll_shutdown(cx) {
                        Poll::Pending if this.give_up.as_mut().poll(cx).is_ready() => {
                            Poll::Ready(Err(gave_up()))
                        }
                        other => other,
                    };
                }
            }
        }
    }
}

/// A chunk's bytes as `framing` puts them on the wire: a framed chunk as it came (one buffer,
/// one plain `write`: fewer instructions per frame than a vectored write, callgrind); a plain
/// one, only the preamble, copied into its frame; close-delimited, the data alone.
fn on_the_wire(framing: Framing, chunk: Chunk) -> Bytes {
    match (framing, chunk) {
        (Framing::Chunked, Chunk::Framed { buf, .. }) => buf,
        (Framing::Chunked, Chunk::Plain(data)) => on_the_wire(
            framing,
            Chunk::framed(data.len(), |buf| buf.extend_from_slice(&data)),
        ),
        (Framing::CloseDelimited, chunk) => chunk.into_data(),
    }
}

/// Writes `out` whole, then flushes: the flush is what the viewer waits for
/// (`conn::ConnState::poll_flushed_since`). Resumes where the last poll left off.
fn write_out<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Bytes,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while !out.is_empty() {
        match std::task::ready!(Pin::new(&mut *io).poll_write(cx, out)) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => out.advance(n),
            Err(err) => return Poll::Ready(Err(err)),
        }
    }
    Pin::new(io).poll_flush(cx)
}

fn gave_up() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "write still under way when the relay gave up on it",
    )
}

/// A chunk's size line: hex digits and CRLF.
struct ChunkHead {
    buf: [u8; ChunkHead::MAX_LEN],
    len: usize,
}

impl ChunkHead {
    /// 16 hex digits (a `usize`) and CRLF.
    const MAX_LEN: usize = 18;

    fn new(size: usize) -> Self {
        let mut buf = [0u8; Self::MAX_LEN];
        let digits = (usize::BITS - size.leading_zeros()).div_ceil(4).max(1) as usize;
        for (i, digit) in buf[..digits].iter_mut().enumerate() {
            let nibble = (size >> (4 * (digits - 1 - i))) & 0xf;
            *digit = b"0123456789ABCDEF"[nibble];
        }
        buf[digits..digits + 2].copy_from_slice(b"\r\n");
        ChunkHead {
            buf,
            len: digits + 2,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::AsyncReadExt;
    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// `write` with no shutdown to give up on.
    async fn write_never_giving_up(
        io: &mut tokio::io::DuplexStream,
        chunks: Chunks,
        framing: Framing,
    ) -> io::Result<()> {
        write(io, chunks, framing, false, std::future::pending()).await
    }

    #[test]
    fn chunk_heads_are_hex_sizes() {
        for (size, want) in [
            (0usize, "0\r\n"),
            (1, "1\r\n"),
            (15, "F\r\n"),
            (16, "10\r\n"),
            (49_152, "C000\r\n"),
            (usize::MAX, "FFFFFFFFFFFFFFFF\r\n"),
        ] {
            assert_eq!(ChunkHead::new(size).bytes(), want.as_bytes(), "{size}");
        }
    }

    /// A body of the chunks sent through the returned sender; it ends when the sender is dropped.
    fn channel_body<T: Into<Chunk> + Send + 'static>() -> (mpsc::UnboundedSender<T>, Chunks) {
        let (tx, rx) = mpsc::unbounded_channel::<T>();
        let body: Chunks = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|c| (Ok(c.into()), rx))
        }));
        (tx, body)
    }

    fn chunks(parts: &[&'static [u8]]) -> Chunks {
        let items: Vec<io::Result<Chunk>> = parts
            .iter()
            .map(|p| Ok(Bytes::from_static(p).into()))
            .collect();
        Box::pin(futures_util::stream::iter(items))
    }

    /// `data` framed in place, as a frame's part is built.
    fn framed(data: &[u8]) -> Chunk {
        Chunk::framed(0, |buf| buf.extend_from_slice(data))
    }

    /// Writes `parts` through [`write`] into one end of a pipe and returns what the other end
    /// read: the body as a client sees it.
    async fn written(parts: &[&'static [u8]], framing: Framing) -> Vec<u8> {
        written_chunks(chunks(parts), framing).await
    }

    async fn written_chunks(chunks: Chunks, framing: Framing) -> Vec<u8> {
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let writer =
            tokio::spawn(async move { write_never_giving_up(&mut ours, chunks, framing).await });
        let mut got = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            theirs.read_to_end(&mut got),
        )
        .await
        .expect("the writer closes when the body ends")
        .unwrap();
        writer.await.unwrap().unwrap();
        got
    }

    #[tokio::test]
    async fn chunked_bodies_are_framed_and_terminated() {
        let got = written(&[b"--frame\r\n", b"", &[7u8; 300]], Framing::Chunked).await;
        let mut want = b"9\r\n--frame\r\n\r\n12C\r\n".to_vec();
        want.extend_from_slice(&[7u8; 300]);
        want.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(got, want);
    }

    #[test]
    fn a_chunk_framed_in_place_is_its_size_line_data_and_crlf() {
        for data in [&b""[..], b"x", &[7u8; 300]] {
            let chunk = framed(data);
            assert_eq!(chunk.len(), data.len());
            let Chunk::Framed { buf, .. } = chunk.clone() else {
                panic!("framed");
            };
            let mut want = ChunkHead::new(data.len()).bytes().to_vec();
            want.extend_from_slice(data);
            want.extend_from_slice(b"\r\n");
            assert_eq!(&buf[..], &want[..]);
            assert_eq!(&chunk.into_data()[..], data);
        }
    }

    #[tokio::test]
    async fn framed_and_plain_chunks_make_the_same_body() {
        // Chunked: the framed chunk goes as it is; close-delimited: its data alone.
        let body = |framing| {
            let items: Vec<io::Result<Chunk>> = vec![
                Ok(Bytes::from_static(b"--frame\r\n").into()),
                Ok(framed(&[7u8; 300])),
                Ok(framed(b"")),
            ];
            written_chunks(Box::pin(futures_util::stream::iter(items)), framing)
        };
        assert_eq!(
            body(Framing::Chunked).await,
            written(&[b"--frame\r\n", &[7u8; 300]], Framing::Chunked).await
        );
        assert_eq!(
            body(Framing::CloseDelimited).await,
            written(&[b"--frame\r\n", &[7u8; 300]], Framing::CloseDelimited).await
        );
    }

    #[tokio::test]
    async fn close_delimited_bodies_are_the_bytes_then_the_close() {
        let got = written(&[b"ab", b"cd"], Framing::CloseDelimited).await;
        assert_eq!(got, b"abcd");
    }

    #[tokio::test]
    async fn the_next_chunk_is_asked_for_while_the_last_is_written() {
        // A viewer waits for the flush after its last chunk while it is being asked for the next
        // (that wait is how its pacer sees a slow link), so the writer must ask during the write.
        let (mut ours, mut theirs) = tokio::io::duplex(16);
        let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = asked.clone();
        let endless: Chunks = Box::pin(futures_util::stream::unfold((), move |()| {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n == 0 {
                    Some((Ok(Bytes::from_static(&[1u8; 1000]).into()), ()))
                } else {
                    std::future::pending().await
                }
            }
        }));
        let writer = tokio::spawn(async move {
            write_never_giving_up(&mut ours, endless, Framing::Chunked).await
        });
        // Nothing is read, so the first chunk cannot be written whole.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while asked.load(std::sync::atomic::Ordering::SeqCst) < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the second chunk is asked for while the first waits for the reader");
        let mut first = [0u8; 16];
        theirs.read_exact(&mut first).await.unwrap();
        assert_eq!(&first[..5], b"3E8\r\n");
        assert!(!writer.is_finished());
        writer.abort();
    }

    #[tokio::test]
    async fn a_client_that_closes_ends_the_writer() {
        let (mut ours, theirs) = tokio::io::duplex(1024);
        drop(theirs);
        let endless: Chunks = Box::pin(futures_util::stream::pending());
        let res = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            write_never_giving_up(&mut ours, endless, Framing::Chunked),
        )
        .await
        .expect("the writer sees the close while it waits for a chunk");
        assert!(res.is_ok(), "{res:?}");
    }

    #[tokio::test]
    async fn a_client_that_closes_between_chunks_ends_the_writer() {
        let (tx, mut w) = Watched::start(64);
        for _ in 0..3 {
            tx.send(Bytes::from_static(b"small")).unwrap();
            let mut framed = [0u8; 10];
            tokio::time::timeout(Duration::from_secs(5), w.theirs.read_exact(&mut framed))
                .await
                .expect("the chunk arrives")
                .unwrap();
            assert_eq!(&framed, b"5\r\nsmall\r\n");
        }
        drop(w.theirs);
        let res = tokio::time::timeout(Duration::from_secs(5), w.writer)
            .await
            .expect("the writer sees the close while it waits for a chunk")
            .unwrap();
        assert!(res.is_ok(), "{res:?}");
        drop(tx);
    }

    #[tokio::test]
    async fn a_written_chunk_is_let_go_at_once() {
        // A frame's part goes out as it is (framed), shared with every viewer of the frame.
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let (tx, body) = channel_body::<Chunk>();
        let writer =
            tokio::spawn(
                async move { write_never_giving_up(&mut ours, body, Framing::Chunked).await },
            );
        let part = framed(&[7u8; 20]);
        let Chunk::Framed { buf, .. } = part.clone() else {
            panic!("framed");
        };
        tx.send(part).unwrap();
        let mut got = vec![0u8; buf.len()];
        tokio::time::timeout(Duration::from_secs(5), theirs.read_exact(&mut got))
            .await
            .expect("the chunk arrives")
            .unwrap();
        assert_eq!(got, buf);
        // The poll that wrote it also let it go, while the writer waits for the next chunk.
        tokio::time::timeout(Duration::from_secs(5), async {
            while !buf.is_unique() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the writer keeps no reference to a chunk it has written");
        drop(tx);
        writer.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_client_that_sent_something_still_gets_its_chunks() {
        // Reading stops once the client has sent anything; later chunks still go out.
        let (mut ours, mut theirs) = tokio::io::duplex(1024);
        let (tx, body) = channel_body::<Bytes>();
        let writer =
            tokio::spawn(
                async move { write_never_giving_up(&mut ours, body, Framing::Chunked).await },
            );
        use tokio::io::AsyncWriteExt;
        theirs.write_all(b"x").await.unwrap();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tx.send(Bytes::from_static(b"small")).unwrap();
        let mut framed = [0u8; 10];
        tokio::time::timeout(Duration::from_secs(5), theirs.read_exact(&mut framed))
            .await
            .expect("the chunk arrives after the client sent a byte")
            .unwrap();
        assert_eq!(&framed, b"5\r\nsmall\r\n");
        drop(tx);
        let mut end = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), theirs.read_to_end(&mut end))
            .await
            .expect("the body ends when its chunks do")
            .unwrap();
        assert_eq!(end, b"0\r\n\r\n");
        writer.await.unwrap().unwrap();
    }

    /// A writer of the chunks sent through the sender [`Watched::start`] returns (the body ends
    /// when it is dropped) into a pipe of `pipe` bytes, with a give-up future that counts its
    /// polls and completes once `fire` is sent.
    struct Watched {
        theirs: tokio::io::DuplexStream,
        polls: Arc<AtomicUsize>,
        fire: oneshot::Sender<()>,
        writer: tokio::task::JoinHandle<io::Result<()>>,
    }

    impl Watched {
        fn start(pipe: usize) -> (mpsc::UnboundedSender<Bytes>, Watched) {
            let (mut ours, theirs) = tokio::io::duplex(pipe);
            let (tx, body) = channel_body();
            let polls = Arc::new(AtomicUsize::new(0));
            let (fire, mut fired) = oneshot::channel::<()>();
            let counted = polls.clone();
            let give_up = std::future::poll_fn(move |cx| {
                counted.fetch_add(1, Ordering::SeqCst);
                Pin::new(&mut fired).poll(cx).map(|_| ())
            });
            let writer = tokio::spawn(async move {
                write(&mut ours, body, Framing::Chunked, false, give_up).await
            });
            let watched = Watched {
                theirs,
                polls,
                fire,
                writer,
            };
            (tx, watched)
        }

        /// Waits until the writer watches give_up (a write under way), fires it, and checks
        /// that the writer ends with TimedOut.
        async fn gives_up(self) {
            tokio::time::timeout(Duration::from_secs(5), async {
                while self.polls.load(Ordering::SeqCst) == 0 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("give_up is polled while a write is under way");
            assert!(!self.writer.is_finished());
            self.fire.send(()).unwrap();
            let res = tokio::time::timeout(Duration::from_secs(5), self.writer)
                .await
                .expect("the writer ends once told to give up")
                .unwrap();
            assert_eq!(res.unwrap_err().kind(), io::ErrorKind::TimedOut);
        }
    }

    #[tokio::test]
    async fn give_up_is_polled_only_while_a_write_is_under_way_and_then_ends_it() {
        let (tx, mut w) = Watched::start(64);
        // A chunk the pipe takes at once, then a wait for the next: no poll of give_up.
        tx.send(Bytes::from_static(b"small")).unwrap();
        let mut framed = [0u8; 10];
        tokio::time::timeout(Duration::from_secs(5), w.theirs.read_exact(&mut framed))
            .await
            .expect("the small chunk arrives")
            .unwrap();
        assert_eq!(&framed, b"5\r\nsmall\r\n");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(w.polls.load(Ordering::SeqCst), 0, "polled on the fast path");
        // A chunk nobody reads: the write is under way, and give_up is watched.
        tx.send(Bytes::from_static(&[1u8; 1000])).unwrap();
        w.gives_up().await;
    }

    #[tokio::test]
    async fn the_end_of_a_body_is_abandoned_too() {
        // 14 bytes framed fit in the 16-byte pipe; the 5-byte end does not.
        let (tx, w) = Watched::start(16);
        tx.send(Bytes::from_static(b"123456789")).unwrap();
        drop(tx);
        w.gives_up().await;
    }
}

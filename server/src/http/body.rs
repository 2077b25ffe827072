//! Request bodies read by the relay itself: the next chunk within a wait, and a whole body
//! capped in bytes. A pushed JPEG ([`super::ingest`]) and a viewer's report ([`super::api`]) are
//! read by the same loop; each caller turns [`Unread`] into its own [`super::error::ApiError`],
//! since what is too large or too slow, and what the client is told, differs between them.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum Unread {
    /// The connection failed mid-body (the client went away or sent a broken chunk).
    Io(std::io::Error),
    /// More than `limit`: `size` bytes had arrived with the chunk that went over.
    TooLarge { size: usize, limit: usize },
    /// No chunk for the whole wait.
    Idle,
}

/// The next chunk of `chunks` within `wait`: `Ok(None)` at the body's end.
pub async fn next_chunk_within(
    chunks: &mut (impl Stream<Item = std::io::Result<Bytes>> + Unpin),
    wait: Duration,
) -> Result<Option<Bytes>, Unread> {
    match tokio::time::timeout(wait, chunks.next()).await {
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
        Ok(Some(Err(e))) => Err(Unread::Io(e)),
        Ok(None) => Ok(None),
        Err(_) => Err(Unread::Idle),
    }
}

/// The whole of `body`, at most `limit` bytes, each chunk within `idle` of the one before. Stops
/// reading at the chunk that goes over, so a client cannot make the relay hold more than
/// `limit` plus one chunk.
pub async fn read_capped(body: poem::Body, limit: usize, idle: Duration) -> Result<Bytes, Unread> {
    let mut data = BytesMut::new();
    let mut chunks = Box::pin(body.into_bytes_stream());
    while let Some(chunk) = next_chunk_within(&mut chunks, idle).await? {
        let size = data.len() + chunk.len();
        if size > limit {
            return Err(Unread::TooLarge { size, limit });
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&'static [u8]]) -> poem::Body {
        let chunks: Vec<std::io::Result<Bytes>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        poem::Body::from_bytes_stream(futures_util::stream::iter(chunks))
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let read = read_capped(body(&[b"ab", b"cd"]), 4, Duration::from_secs(1)).await;
        assert_eq!(read.unwrap(), Bytes::from_static(b"abcd"));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_stops_at_the_chunk_that_goes_over() {
        let read = read_capped(body(&[b"ab", b"cde", b"f"]), 4, Duration::from_secs(1)).await;
        assert!(
            matches!(read, Err(Unread::TooLarge { size: 5, limit: 4 })),
            "{read:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_stops_sending_is_idle() {
        let stalled =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"ab"))])
                .chain(futures_util::stream::pending());
        let body = poem::Body::from_bytes_stream(stalled);
        let read = read_capped(body, 4, Duration::from_millis(50)).await;
        assert!(matches!(read, Err(Unread::Idle)), "{read:?}");
    }
}

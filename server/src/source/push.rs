//! `push`: frames pushed by another process to `POST /streams/NAME/ingest`, for a pipeline that
//! already has its frames (an OpenCV or ML process drawing on them) and should not serve HTTP.
//!
//! The [`IngestHub`] is shared by the ingest handler (which writes) and the [`PushSource`] (which
//! the stream driver reads): the newest pushed frame waits in a one-slot channel, so a pusher
//! faster than the viewers never builds a queue. One pusher at a time: a second concurrent one is
//! refused, unless the stream is configured to let the newer pusher replace the older.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Source, SourceError, SourceFrame, SourceInfo};
use crate::auth::raw_digest;

/// A token: compared, never shown. `Debug` and `Display` print `***`, so it cannot reach a log or
/// an error message by accident; empty or blank tokens are refused when parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: &str) -> Result<Secret, String> {
        if value.trim().is_empty() {
            return Err("a token must not be empty or blank".into());
        }
        Ok(Secret(value.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Secret, String> {
        Secret::new(s)
    }
}

/// Default limit on one pushed frame.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How a push stream is set up (from `--stream NAME=push?...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOptions {
    /// This stream's ingest token; `None` uses `--ingest-token`.
    pub token: Option<Secret>,
    /// A new pusher replaces the current one instead of being refused with 409.
    pub replace: bool,
    /// Largest frame accepted, bytes (413 beyond).
    pub max_bytes: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            token: None,
            replace: false,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// A pushed frame.
#[derive(Debug)]
pub struct Pushed {
    pub jpeg: Bytes,
    pub captured_micros: u64,
    pub width: u32,
    pub height: u32,
}

/// The meeting point of ingest requests and the stream.
pub struct IngestHub {
    /// SHA-256 of the token: comparing digests takes the same time whatever the guess's length.
    token_digest: [u8; 32],
    pub replace: bool,
    pub max_bytes: usize,
    tx: watch::Sender<Option<Arc<Pushed>>>,
    /// The pusher holding the stream now: its id and the token that ends it when replaced.
    pusher: Mutex<Option<(u64, CancellationToken)>>,
    next_id: AtomicU64,
    pub frames_in: AtomicU64,
}

/// Why a pusher may not push now.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

impl IngestHub {
    /// True if `given` is this stream's token. Compared in constant time, so response timing
    /// tells nothing about how much of a guess was right.
    pub fn token_matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        raw_digest(given.trim()).ct_eq(&self.token_digest).into()
    }

    /// Takes the stream for a pusher: refused while another one pushes, unless `replace`, in
    /// which case the other one's lease is cancelled.
    pub fn begin(self: &Arc<Self>) -> Result<Lease, Busy> {
        let mut pusher = self.pusher.lock().unwrap();
        if let Some((_, current)) = pusher.as_ref() {
            if !self.replace {
                return Err(Busy);
            }
            current.cancel();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let replaced = CancellationToken::new();
        *pusher = Some((id, replaced.clone()));
        Ok(Lease {
            hub: self.clone(),
            id,
            replaced,
        })
    }

    /// Publishes a frame as the newest.
    pub fn publish(&self, frame: Pushed) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.tx.send_replace(Some(Arc::new(frame)));
    }
}

/// A pusher's hold on the stream; released on drop.
pub struct Lease {
    hub: Arc<IngestHub>,
    id: u64,
    /// Cancelled when a newer pusher replaces this one.
    pub replaced: CancellationToken,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut pusher = self.hub.pusher.lock().unwrap();
        if pusher.as_ref().is_some_and(|(id, _)| *id == self.id) {
            *pusher = None;
        }
    }
}

/// The stream's side: waits for pushed frames.
pub struct PushSource {
    hub: Arc<IngestHub>,
    rx: watch::Receiver<Option<Arc<Pushed>>>,
    size: Option<(u32, u32)>,
}

impl PushSource {
    /// A push source and the hub its ingest endpoint feeds. `token` is the one in force.
    pub fn new(options: &PushOptions, token: &Secret) -> (PushSource, Arc<IngestHub>) {
        let (tx, rx) = watch::channel(None);
        let hub = Arc::new(IngestHub {
            token_digest: raw_digest(token.expose()),
            replace: options.replace,
            max_bytes: options.max_bytes,
            tx,
            pusher: Mutex::new(None),
            next_id: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
        });
        (
            PushSource {
                hub: hub.clone(),
                rx,
                size: None,
            },
            hub,
        )
    }
}

#[async_trait::async_trait]
impl Source for PushSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        loop {
            self.rx
                .changed()
                .await
                .map_err(|_| SourceError::Failed("ingest hub closed".into()))?;
            let Some(frame) = self.rx.borrow_and_update().clone() else {
                continue;
            };
            self.size = Some((frame.width, frame.height));
            return Ok(SourceFrame {
                captured_micros: frame.captured_micros,
                jpeg: frame.jpeg.clone(),
                width: frame.width,
                height: frame.height,
            });
        }
    }

    fn pause(&mut self) {
        // A frame pushed while nobody watched is not news to the next viewer.
        self.rx.borrow_and_update();
    }

    fn info(&self) -> SourceInfo {
        let pushing = self.hub.pusher.lock().unwrap().is_some();
        SourceInfo {
            kind: "push",
            fps: 0.0,
            width: self.size.map(|s| s.0),
            height: self.size.map(|s| s.1),
            device: Some(if pushing {
                "pusher connected".into()
            } else {
                "no pusher".into()
            }),
            ..Default::default()
        }
    }
}

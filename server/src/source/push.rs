//! `push`: frames pushed by another process to `POST /streams/NAME/ingest`, for a pipeline that
//! already has its frames (an OpenCV or ML process drawing on them) and should not serve HTTP.
//!
//! The [`IngestHub`] is shared by the ingest handler (which writes) and the [`PushSource`] (which
//! the stream driver reads): the newest pushed frame waits in the one-slot channel of a
//! [`super::feed`], so a pusher
//! faster than the viewers never builds a queue. One pusher at a time: a second concurrent one is
//! refused, unless the stream is configured to let the newer pusher replace the older.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use super::feed::{self, Feed, Feeder};
use super::options::{parse_flag, parse_max_bytes, unknown_param, Parts};
use super::{Pipeline, Source, SourceError, SourceFrame, SourceInfo};
use crate::secret::Secret;

/// Default limit on one pushed frame.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How a push stream is set up (from `--stream NAME=push?...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushOptions {
    /// This stream's ingest token; `None` falls back to the relay's (which one is decided by
    /// `crate::http::auth::AccessConfig::ingest_token`, the one place that does).
    pub token: Option<Secret>,
    /// A new pusher replaces the current one instead of being refused with 409.
    pub replace: bool,
    /// Largest frame accepted, bytes (413 beyond).
    pub max_bytes: usize,
    /// Largest metadata accepted with a frame, bytes.
    pub max_meta: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            token: None,
            replace: false,
            max_bytes: DEFAULT_MAX_BYTES,
            max_meta: Pipeline::DEFAULT_MAX_META,
        }
    }
}

impl std::str::FromStr for PushOptions {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let parts = Parts::split(spec)?;
        parts.no_arg("push?token=T")?;
        let mut o = PushOptions::default();
        for (key, value) in parts.params {
            match key {
                "token" => o.token = Some(Secret::new(value)?),
                "replace" => o.replace = parse_flag("replace", value)?,
                "max_bytes" => o.max_bytes = parse_max_bytes(value)?,
                "max_meta" => o.max_meta = parse_max_bytes(value)?,
                other => {
                    return Err(unknown_param(
                        "push",
                        other,
                        "token, replace, max_bytes, max_meta",
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// The token is a secret: never shown (the API prints specs).
impl std::fmt::Display for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "push?max_bytes={}", self.max_bytes)?;
        if self.max_meta != Pipeline::DEFAULT_MAX_META {
            write!(f, "&max_meta={}", self.max_meta)?;
        }
        if self.replace {
            write!(f, "&replace=1")?;
        }
        Ok(())
    }
}

/// The meeting point of ingest requests and the stream.
pub struct IngestHub {
    pub replace: bool,
    pub max_bytes: usize,
    pub max_meta: usize,
    feeder: Feeder,
    /// The pusher holding the stream now: its id and the token that ends it when replaced.
    pusher: Mutex<Option<(u64, CancellationToken)>>,
    next_id: AtomicU64,
    pub frames_in: AtomicU64,
}

/// Why a pusher may not push now.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy;

impl IngestHub {
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
    pub fn publish(&self, frame: SourceFrame) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
        self.feeder.publish(frame);
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

/// The stream's side: waits for pushed frames. No NO SIGNAL here: a push stream without a
/// pusher simply has nothing new (and snapshots say so).
pub struct PushSource {
    hub: Arc<IngestHub>,
    feed: Feed,
}

impl PushSource {
    /// A push source and the hub its ingest endpoint feeds.
    pub fn new(name: &str, options: &PushOptions) -> (PushSource, Arc<IngestHub>) {
        let (feed, feeder) = feed::channel(name, "the pusher".into(), String::new(), None);
        let feed = feed.keep_frames_from_pause();
        let hub = Arc::new(IngestHub {
            replace: options.replace,
            max_bytes: options.max_bytes,
            max_meta: options.max_meta,
            feeder,
            pusher: Mutex::new(None),
            next_id: AtomicU64::new(0),
            frames_in: AtomicU64::new(0),
        });
        (
            PushSource {
                hub: hub.clone(),
                feed,
            },
            hub,
        )
    }
}

#[async_trait::async_trait]
impl Source for PushSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        self.feed.next_frame().await
    }

    fn pause(&mut self) {
        // A frame pushed while nobody watched is not news to the next viewer.
        self.feed.pause();
    }

    fn info(&self) -> SourceInfo {
        let pushing = self.hub.pusher.lock().unwrap().is_some();
        SourceInfo {
            device: Some(if pushing {
                "pusher connected".into()
            } else {
                "no pusher".into()
            }),
            dropped_parts: None,
            ..self.feed.info("push")
        }
    }
}

//! The camera source: a reader thread and a converter thread per camera, frames handed to the
//! async side through the source's [`crate::source::feed`] (one-slot channel, demand, and a NO
//! SIGNAL picture whenever the camera cannot deliver).
//!
//! The reader thread only reads: as fast as the device delivers, it leaves the newest raw frame
//! in a one-slot mailbox, so the driver's buffers are drained however slow conversion is (no
//! OpenCV-style capture backlog, even with `mirror=1` on a small board). The converter thread
//! takes whatever is newest there and converts it once: MJPEG passes through (with the standard
//! Huffman tables inserted when the camera left them out), raw frames are encoded at the
//! configured quality. Never once per viewer. A frame that arrives while the previous one is
//! still being converted simply replaces the waiting one.
//!
//! The reader's states: idle (nobody has asked for a frame for `idle_close`: the device is
//! closed), opening (with backoff while it fails), streaming. A read error closes the device and
//! goes back to opening, so an unplugged camera is picked up again when it returns, and viewers,
//! who were shown NO SIGNAL meanwhile, get live frames again without reconnecting. Neither
//! thread is joined: a read stuck in a driver must not hold up the relay's exit.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::convert;
use super::device::{CameraBackend, CameraDevice, CameraError, Mode, PixelFormat, RawFrame};
use super::options::CameraOptions;
use crate::backoff::Backoff;
use crate::clock::unix_micros_now;
use crate::source::feed::{self, Feed, Feeder, Patience};
use crate::source::{Source, SourceError, SourceFrame, SourceInfo};

/// NO SIGNAL after this long without a frame: a camera that is still opening (no frame yet, no
/// error yet) gets 5 s, since opening, setting the format and starting the sensor take more than
/// a second on many webcams; a live one 1 s, or three of its frame intervals if longer.
const PATIENCE: Patience = Patience {
    opening: Duration::from_secs(5),
    stalled: Duration::from_secs(1),
};
/// Reopen backoff: doubles from 250 ms up to 5 s; reset by the first good frame.
const REOPEN: Backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));

/// What the reader reports of the device, for the API (the feed keeps its name, whether it is
/// live, and the error).
#[derive(Clone, Debug, Default)]
struct Status {
    mode: Option<Mode>,
    capture_fps: Option<f64>,
}

/// State shared by the source (async side) and its threads.
struct Shared {
    status: Mutex<Status>,
    /// Demand, errors and the frames themselves.
    feeder: Feeder,
    /// The newest raw frame and its capture time, waiting for the converter.
    mailbox: Mutex<Option<(RawFrame, u64)>>,
    mail: Condvar,
}

impl Shared {
    /// The status, even if a thread panicked while holding it (it holds plain data).
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stopped(&self) -> bool {
        self.feeder.stopped().is_cancelled()
    }

    /// Sleeps until `until` or until stopped, whatever else wakes the thread (the feed unparks
    /// it on every request for a frame, which must not cut a backoff short).
    fn sleep_until(&self, until: Instant) {
        while !self.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            thread::park_timeout(left);
        }
    }
}

pub struct CameraSource {
    shared: Arc<Shared>,
    feed: Feed,
}

impl CameraSource {
    /// Starts the camera's threads (idle until the first frame is asked for). With `require`,
    /// first opens the device once and fails if it cannot be opened.
    pub fn start(
        name: &str,
        options: CameraOptions,
        backend: Arc<dyn CameraBackend>,
        require: bool,
    ) -> Result<CameraSource, CameraError> {
        let device = options.selector.to_string();
        let (feed, feeder) = feed::channel(
            name,
            device.clone(),
            format!("opening {device}"),
            Some(PATIENCE),
        );
        feeder.set_format(None, options.request.size);
        if require {
            // The device opened for the check stays open for one idle period, for the first viewer.
            feeder.want_now();
        }
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::default()),
            feeder,
            mailbox: Mutex::new(None),
            mail: Condvar::new(),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let spawn_error = |e: std::io::Error| CameraError::Open {
            device: device.clone(),
            reason: format!("cannot start the capture threads: {e}"),
        };
        {
            let (shared, options) = (shared.clone(), options.clone());
            thread::Builder::new()
                .name(format!("convert-{name}"))
                .spawn(move || convert_loop(&options, &shared))
                .map_err(spawn_error)?;
        }
        let reader = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("camera-{name}"))
                .spawn(move || read_loop(&*backend, &options, &shared, require.then_some(ready_tx)))
                .map_err(spawn_error)?
                .thread()
                .clone()
        };
        // The reader parks while nobody asks for frames; a request (or the feed's end) wakes it.
        shared.feeder.on_demand(move || reader.unpark());
        let source = CameraSource { shared, feed };
        if require {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                // Dropping `source` stops the threads.
                Ok(Err(err)) => return Err(err),
                Err(_) => {
                    return Err(CameraError::Open {
                        device,
                        reason: "capture thread ended".into(),
                    })
                }
            }
        }
        Ok(source)
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        // The feed's end stops the reader (it is unparked then); the converter waits on the
        // mailbox, so it is told here, under the mailbox's lock so the wake-up cannot fall
        // between its check and its wait.
        self.shared.feeder.stopped().cancel();
        let _mailbox = self
            .shared
            .mailbox
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.shared.mail.notify_all();
    }
}

#[async_trait::async_trait]
impl Source for CameraSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        self.feed.next_frame().await
    }

    fn pause(&mut self) {
        self.feed.pause();
    }

    fn info(&self) -> SourceInfo {
        let status = self.shared.status().clone();
        SourceInfo {
            fps: status.mode.map_or(0.0, |m| f64::from(m.fps)),
            width: status.mode.map(|m| m.width),
            height: status.mode.map(|m| m.height),
            format: status.mode.map(|m| m.to_string()),
            // What arrives while NO SIGNAL shows is not the camera's rate.
            capture_fps: status
                .capture_fps
                .filter(|_| !self.feed.showing_no_signal()),
            dropped_parts: None,
            // The device: its name once open, the spec's selector before.
            ..self.feed.info("camera")
        }
    }
}

/// The reader thread. `ready` (with `--require-camera`) gets the result of the first open.
fn read_loop(
    backend: &dyn CameraBackend,
    options: &CameraOptions,
    shared: &Shared,
    mut ready: Option<std::sync::mpsc::Sender<Result<(), CameraError>>>,
) {
    let _span = tracing::info_span!("camera", device = %options.selector).entered();
    let mut device: Option<Box<dyn CameraDevice>> = None;
    let mut backoff = REOPEN;
    let mut meter = FpsMeter::default();
    let mut delivered_since_open = false;
    loop {
        if shared.stopped() {
            break;
        }
        if !(ready.is_some() || shared.feeder.asked_within(options.idle_close)) {
            if device.take().is_some() {
                tracing::info!(
                    "nobody watching for {} s; camera closed",
                    options.idle_close.as_secs()
                );
                shared.status().capture_fps = None;
                shared.feeder.set_live(false);
            }
            // Woken by the next request for a frame, or by shutdown.
            thread::park_timeout(Duration::from_millis(500));
            continue;
        }

        let dev = match device.as_mut() {
            Some(dev) => dev,
            None => match backend.open(&options.selector, &options.request) {
                Ok(dev) => {
                    tracing::info!(device = %dev.name(), mode = %dev.mode(), "camera open");
                    {
                        let mode = dev.mode();
                        shared.status().mode = Some(mode);
                        shared.feeder.set_what(dev.name());
                        let period = Duration::from_secs_f64(1.0 / f64::from(mode.fps.max(1)));
                        shared
                            .feeder
                            .set_format(Some(period), Some((mode.width, mode.height)));
                        shared.feeder.set_live(true);
                    }
                    meter = FpsMeter::default();
                    delivered_since_open = false;
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                    device.insert(dev)
                }
                Err(err) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(err));
                        return;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(%err, retry_in_ms = delay.as_millis() as u64, "camera unavailable");
                    shared.feeder.set_error(err.to_string());
                    shared.sleep_until(Instant::now() + delay);
                    continue;
                }
            },
        };

        match dev.read() {
            Ok(raw) => {
                let captured_micros = unix_micros_now();
                if !delivered_since_open {
                    // The camera works: the next failure starts its backoff afresh.
                    delivered_since_open = true;
                    backoff.reset();
                }
                if let Some(fps) = meter.tick() {
                    shared.status().capture_fps = Some(fps);
                }
                // Replaces a frame the converter has not taken yet: only the newest matters.
                *shared.mailbox.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((raw, captured_micros));
                shared.mail.notify_one();
            }
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(%err, retry_in_ms = delay.as_millis() as u64, "camera read failed; reopening");
                shared.status().capture_fps = None;
                shared.feeder.set_error(err.to_string());
                device = None;
                shared.sleep_until(Instant::now() + delay);
            }
        }
    }
    drop(device);
    tracing::debug!("reader thread ended; camera released");
}

/// The converter thread: newest raw frame in, JPEG out, once per frame.
fn convert_loop(options: &CameraOptions, shared: &Shared) {
    let mut encoder = convert::RawEncoder::new();
    loop {
        let (raw, captured_micros) = {
            let mut mailbox = shared.mailbox.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if shared.stopped() {
                    return;
                }
                if let Some(mail) = mailbox.take() {
                    break mail;
                }
                mailbox = shared.mail.wait(mailbox).unwrap_or_else(|p| p.into_inner());
            }
        };
        let (width, height) = (raw.width, raw.height);
        // A decoder or encoder bug on one odd frame must cost that frame, not the stream.
        let converted = catch_unwind(AssertUnwindSafe(|| match raw.format {
            PixelFormat::Mjpeg if options.mirror => {
                convert::mirror_jpeg(&raw.data, options.quality)
            }
            // Passed through as delivered, unless its Huffman tables must be added.
            PixelFormat::Mjpeg => {
                let fixed = match convert::ensure_huffman_tables(&raw.data) {
                    std::borrow::Cow::Owned(fixed) => Some(fixed),
                    std::borrow::Cow::Borrowed(_) => None,
                };
                Ok(fixed.unwrap_or(raw.data))
            }
            _ => encoder.encode(&raw, options.quality, options.mirror),
        }));
        match converted {
            Ok(Ok(jpeg)) => shared.feeder.publish(SourceFrame {
                jpeg: Bytes::from(jpeg),
                captured_micros,
                width,
                height,
                pipeline: Default::default(),
            }),
            // Shown in the API (and on NO SIGNAL if no frame converts at all).
            Ok(Err(err)) => {
                tracing::debug!(%err, "frame skipped");
                shared
                    .feeder
                    .set_error(format!("frame could not be converted: {err}"));
            }
            Err(_) => {
                tracing::warn!("frame conversion panicked; frame skipped");
                encoder = convert::RawEncoder::new();
                shared
                    .feeder
                    .set_error("frame conversion failed (panic); frame skipped");
            }
        }
    }
}

/// Frames per second over the last second of captures.
#[derive(Default)]
struct FpsMeter {
    window_start: Option<Instant>,
    count: u32,
}

impl FpsMeter {
    /// Counts a frame; returns the rate once per second.
    fn tick(&mut self) -> Option<f64> {
        let start = *self.window_start.get_or_insert_with(Instant::now);
        self.count += 1;
        let elapsed = start.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let fps = f64::from(self.count) / elapsed.as_secs_f64();
            self.window_start = Some(Instant::now());
            self.count = 0;
            return Some(fps);
        }
        None
    }
}

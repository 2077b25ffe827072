//! The camera source: one capture thread per camera, frames handed to the async side through a
//! one-slot channel, and a NO SIGNAL picture whenever the camera cannot deliver.
//!
//! The thread reads the device as fast as it delivers and keeps only the newest frame, so
//! neither the driver's buffers nor ours ever hold a backlog (the OpenCV capture-buffer lag of
//! the classic Flask recipe). Each frame is converted once, on this thread: MJPEG passes through
//! (with the standard Huffman tables inserted when the camera left them out), raw frames are
//! encoded at the configured quality. Never once per viewer.
//!
//! States of the thread: idle (nobody has asked for a frame for `idle_close`: the device is
//! closed), opening (with backoff while it fails), streaming. A read error closes the device and
//! goes back to opening, so an unplugged camera is picked up again when it returns, and viewers,
//! who were shown NO SIGNAL meanwhile, get live frames again without reconnecting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::convert;
use super::device::{
    CameraBackend, CameraDevice, CameraError, DeviceSelector, Mode, ModeRequest, PixelFormat,
};
use crate::frame::unix_micros_now;
use crate::source::{draw, Source, SourceError, SourceFrame, SourceInfo};

/// How a camera stream is set up (from `--stream NAME=camera...`).
#[derive(Clone, Debug, PartialEq)]
pub struct CameraOptions {
    pub selector: DeviceSelector,
    pub request: ModeRequest,
    /// JPEG quality for raw frames and for mirrored MJPEG.
    pub quality: u8,
    /// Flip horizontally, the mirror view webcam users expect.
    pub mirror: bool,
    /// Close the device after this long without anyone asking for frames.
    pub idle_close: Duration,
}

impl Default for CameraOptions {
    fn default() -> Self {
        CameraOptions {
            selector: DeviceSelector::First,
            request: ModeRequest::default(),
            quality: 80,
            mirror: false,
            idle_close: Duration::from_secs(10),
        }
    }
}

/// While the camera delivers nothing, a NO SIGNAL frame goes out this often.
const NO_SIGNAL_EVERY: Duration = Duration::from_secs(1);
/// Reopen backoff: doubles from 250 ms up to 5 s.
const REOPEN_START: Duration = Duration::from_millis(250);
const REOPEN_MAX: Duration = Duration::from_secs(5);

/// `last_demand_ms` before anyone has asked for a frame.
const NEVER: u64 = u64::MAX;

/// A converted frame from the capture thread.
#[derive(Debug)]
struct Captured {
    jpeg: Bytes,
    captured_micros: u64,
    width: u32,
    height: u32,
}

/// What the capture thread reports, for the API and the NO SIGNAL text.
#[derive(Clone, Debug, Default)]
struct Status {
    device: Option<String>,
    mode: Option<Mode>,
    open: bool,
    last_error: Option<String>,
    capture_fps: Option<f64>,
}

/// State shared by the source (async side) and its capture thread.
struct Shared {
    status: Mutex<Status>,
    /// When a frame was last asked for, ms since `epoch` ([`NEVER`] before the first); the thread
    /// closes the device when this gets older than `idle_close`.
    last_demand_ms: AtomicU64,
    epoch: Instant,
    stop: AtomicBool,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn set_error(&self, err: &CameraError) {
        let mut status = self.status.lock().unwrap();
        status.last_error = Some(err.to_string());
    }
}

pub struct CameraSource {
    name: String,
    options: CameraOptions,
    shared: Arc<Shared>,
    thread: thread::Thread,
    frames: watch::Receiver<Option<Arc<Captured>>>,
    /// When the source last returned a frame (live or NO SIGNAL).
    last_returned: Instant,
    /// Size of the last live frame, so NO SIGNAL matches it.
    last_size: Option<(u32, u32)>,
    /// Set by `pause`: the next `next_frame` starts a new wait.
    paused: bool,
}

impl CameraSource {
    /// Starts the capture thread (idle until the first frame is asked for). With `require`, first
    /// opens the device once and fails if it cannot be opened.
    pub fn start(
        name: &str,
        options: CameraOptions,
        backend: Arc<dyn CameraBackend>,
        require: bool,
    ) -> Result<CameraSource, CameraError> {
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::default()),
            last_demand_ms: AtomicU64::new(NEVER),
            epoch: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let (tx, rx) = watch::channel(None);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let device = options.selector.to_string();
        let thread = {
            let (shared, options) = (shared.clone(), options.clone());
            thread::Builder::new()
                .name(format!("camera-{name}"))
                .spawn(move || {
                    capture_loop(
                        &*backend,
                        &options,
                        &shared,
                        &tx,
                        require.then_some(ready_tx),
                    )
                })
                .map_err(|e| CameraError::Open {
                    device: device.clone(),
                    reason: format!("cannot start the capture thread: {e}"),
                })?
                .thread()
                .clone()
        };
        if require {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    shared.stop.store(true, Ordering::Release);
                    thread.unpark();
                    return Err(err);
                }
                Err(_) => {
                    return Err(CameraError::Open {
                        device: options.selector.to_string(),
                        reason: "capture thread ended".into(),
                    })
                }
            }
        }
        Ok(CameraSource {
            name: name.to_string(),
            options,
            shared,
            thread,
            frames: rx,
            last_returned: Instant::now(),
            last_size: None,
            // The first request starts the NO SIGNAL clock, as after a pause: the camera gets a full
            // period to open (or to fail with a reason worth showing).
            paused: true,
        })
    }

    fn no_signal(&mut self) -> Result<SourceFrame, SourceError> {
        let status = self.shared.status.lock().unwrap().clone();
        let reason = match (&status.last_error, status.open) {
            (Some(err), _) => err.clone(),
            (None, true) => format!(
                "no frame from {} for {} s",
                status.device.as_deref().unwrap_or("the camera"),
                self.last_returned.elapsed().as_secs().max(1)
            ),
            (None, false) => format!("opening {}", self.options.selector),
        };
        let (w, h) = self
            .last_size
            .or(status.mode.map(|m| (m.width, m.height)))
            .or(self.options.request.size)
            .unwrap_or((640, 480));
        let captured_micros = unix_micros_now();
        let jpeg = render_no_signal(&self.name, &reason, w as usize, h as usize, captured_micros)
            .map_err(|e| SourceError::Failed(format!("cannot draw NO SIGNAL: {e}")))?;
        Ok(SourceFrame {
            captured_micros,
            jpeg: Bytes::from(jpeg),
            width: w,
            height: h,
        })
    }
}

impl Drop for CameraSource {
    fn drop(&mut self) {
        // The thread drops the device (releasing the camera) when it sees this. It is not joined:
        // a read stuck in the driver must not hold up the relay's exit.
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

#[async_trait::async_trait]
impl Source for CameraSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        if std::mem::take(&mut self.paused) {
            self.last_returned = Instant::now();
            // Frames captured before the pause (the thread reads on until it closes the camera)
            // are old by now: only what is captured from here on counts.
            self.frames.borrow_and_update();
        }
        loop {
            self.shared
                .last_demand_ms
                .store(self.shared.now_ms(), Ordering::Release);
            self.thread.unpark();
            let deadline = tokio::time::Instant::from_std(self.last_returned + NO_SIGNAL_EVERY);
            tokio::select! {
                changed = self.frames.changed() => {
                    if changed.is_err() {
                        return Err(SourceError::Failed("the capture thread has ended".into()));
                    }
                    let Some(frame) = self.frames.borrow_and_update().clone() else { continue };
                    self.last_returned = Instant::now();
                    self.last_size = Some((frame.width, frame.height));
                    return Ok(SourceFrame {
                        captured_micros: frame.captured_micros,
                        jpeg: frame.jpeg.clone(),
                        width: frame.width,
                        height: frame.height,
                    });
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.last_returned = Instant::now();
                    return self.no_signal();
                }
            }
        }
    }

    fn pause(&mut self) {
        // Nobody watches. When someone does again, give the camera (which the capture thread may
        // have closed meanwhile) a full NO SIGNAL period to reopen before saying it has no signal.
        self.paused = true;
    }

    fn info(&self) -> SourceInfo {
        let status = self.shared.status.lock().unwrap().clone();
        SourceInfo {
            kind: "camera",
            fps: status.mode.map_or(0.0, |m| f64::from(m.fps)),
            width: status.mode.map(|m| m.width),
            height: status.mode.map(|m| m.height),
            device: status
                .device
                .clone()
                .or_else(|| Some(self.options.selector.to_string())),
            format: status.mode.map(|m| m.to_string()),
            capture_fps: status.capture_fps,
            last_error: status.last_error.clone(),
        }
    }
}

/// The capture thread. `ready` (with `--require-camera`) gets the result of the first open.
fn capture_loop(
    backend: &dyn CameraBackend,
    options: &CameraOptions,
    shared: &Shared,
    tx: &watch::Sender<Option<Arc<Captured>>>,
    mut ready: Option<std::sync::mpsc::Sender<Result<(), CameraError>>>,
) {
    let _span = tracing::info_span!("camera", device = %options.selector).entered();
    let mut device: Option<Box<dyn CameraDevice>> = None;
    let mut backoff = REOPEN_START;
    let mut encoder = convert::RawEncoder::new();
    let mut meter = FpsMeter::default();
    loop {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let last_demand = shared.last_demand_ms.load(Ordering::Acquire);
        let recently_asked = last_demand != NEVER
            && shared.now_ms().saturating_sub(last_demand) < options.idle_close.as_millis() as u64;
        let wanted = ready.is_some() || recently_asked;
        if !wanted {
            if device.take().is_some() {
                tracing::info!(
                    "nobody watching for {} s; camera closed",
                    options.idle_close.as_secs()
                );
                let mut status = shared.status.lock().unwrap();
                status.open = false;
                status.capture_fps = None;
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
                        let mut status = shared.status.lock().unwrap();
                        status.device = Some(dev.name());
                        status.mode = Some(dev.mode());
                        status.open = true;
                        status.last_error = None;
                    }
                    backoff = REOPEN_START;
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
                    tracing::warn!(%err, retry_in_ms = backoff.as_millis() as u64, "camera unavailable");
                    shared.set_error(&err);
                    thread::park_timeout(backoff);
                    backoff = (backoff * 2).min(REOPEN_MAX);
                    continue;
                }
            },
        };

        match dev.read() {
            Ok(raw) => {
                let captured_micros = unix_micros_now();
                let (width, height) = (raw.width, raw.height);
                let converted = match raw.format {
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
                };
                match converted {
                    Ok(jpeg) => {
                        let fps = meter.tick();
                        let mut status = shared.status.lock().unwrap();
                        status.capture_fps = fps.or(status.capture_fps);
                        status.last_error = None;
                        drop(status);
                        tx.send_replace(Some(Arc::new(Captured {
                            jpeg: Bytes::from(jpeg),
                            captured_micros,
                            width,
                            height,
                        })));
                    }
                    // One bad frame (a truncated JPEG from the driver) is skipped, not fatal.
                    Err(err) => tracing::debug!(%err, "frame skipped"),
                }
            }
            Err(err) => {
                tracing::warn!(%err, "camera read failed; reopening");
                shared.set_error(&err);
                shared.status.lock().unwrap().open = false;
                device = None;
                thread::park_timeout(backoff);
                backoff = (backoff * 2).min(REOPEN_MAX);
            }
        }
    }
    drop(device);
    tracing::debug!("capture thread ended; camera released");
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

/// The NO SIGNAL picture: the stream's name, why, and the time (so a viewer can see it is the
/// relay talking, live, and not a frozen camera).
pub fn render_no_signal(
    stream: &str,
    reason: &str,
    width: usize,
    height: usize,
    now_micros: u64,
) -> Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let mut rgb = vec![0u8; width * height * 3];
    draw::fill(&mut rgb, width, height, (0, 0, width, height), [24, 24, 32]);
    let big = (width / 160).clamp(1, 6);
    let small = (width / 480).clamp(1, 3);
    let mut y = height / 6;
    draw::text(
        &mut rgb,
        width,
        height,
        (width / 12, y),
        big,
        "NO SIGNAL",
        [255, 80, 80],
    );
    y += 12 * big;
    draw::text(
        &mut rgb,
        width,
        height,
        (width / 12, y),
        small,
        &format!("stream {stream}"),
        [230, 230, 230],
    );
    y += 12 * small;
    // Wrap the reason to the width, between words where it can.
    let per_line = ((width - width / 12) / (8 * small)).max(8);
    for line in wrap(reason, per_line).iter().take(6) {
        draw::text(
            &mut rgb,
            width,
            height,
            (width / 12, y),
            small,
            line,
            [200, 200, 120],
        );
        y += 10 * small;
    }
    let secs = now_micros / 1_000_000;
    let clock = format!(
        "{:02}:{:02}:{:02} UTC - retrying",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    );
    draw::text(
        &mut rgb,
        width,
        height,
        (width / 12, y + 4 * small),
        small,
        &clock,
        [160, 160, 160],
    );
    draw::encode_rgb(&rgb, width, height, 70, 32 * 1024)
}

/// Greedy word wrap to `width` characters; words longer than a line are cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_between_words() {
        assert_eq!(
            wrap("no such file or directory", 12),
            ["no such file", "or directory"]
        );
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert!(wrap("", 10).is_empty());
    }

    #[test]
    fn no_signal_is_a_jpeg_of_the_asked_size() {
        let jpeg = render_no_signal("cam", "cannot open camera 0: gone", 320, 240, 0).unwrap();
        assert_eq!(crate::jpeg::dimensions(&jpeg), Some((320, 240)));
    }
}

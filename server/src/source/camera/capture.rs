//! The camera source: a reader thread and a converter thread per camera, frames handed to the
//! async side through a one-slot channel, and a NO SIGNAL picture whenever the camera cannot
//! deliver.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::convert;
use super::device::{
    CameraBackend, CameraDevice, CameraError, DeviceSelector, Mode, ModeRequest, PixelFormat,
    RawFrame,
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
/// How long a live camera may go without a frame before NO SIGNAL: at least this, and at least
/// three of its frame intervals (a 1 fps camera is not "lost" between two frames).
const STALL_AFTER: Duration = Duration::from_secs(1);
/// How long a camera that is still opening (no frame yet, no error yet) gets: opening, setting
/// the format and starting the sensor take more than a second on many webcams.
const OPENING_GRACE: Duration = Duration::from_secs(5);
/// Reopen backoff: doubles from 250 ms up to 5 s; reset by the first good frame.
const REOPEN_START: Duration = Duration::from_millis(250);
const REOPEN_MAX: Duration = Duration::from_secs(5);

/// `last_demand_ms` before anyone has asked for a frame.
const NEVER: u64 = u64::MAX;

/// A converted frame, ready for the stream.
#[derive(Debug)]
struct Captured {
    jpeg: Bytes,
    captured_micros: u64,
    width: u32,
    height: u32,
}

/// What the threads report, for the API and the NO SIGNAL text.
#[derive(Clone, Debug, Default)]
struct Status {
    device: Option<String>,
    mode: Option<Mode>,
    open: bool,
    last_error: Option<String>,
    capture_fps: Option<f64>,
}

/// State shared by the source (async side) and its threads.
struct Shared {
    status: Mutex<Status>,
    /// When a frame was last asked for, ms since `epoch` ([`NEVER`] before the first); the reader
    /// closes the device when this gets older than `idle_close`.
    last_demand_ms: AtomicU64,
    epoch: Instant,
    stop: AtomicBool,
    /// The newest raw frame and its capture time, waiting for the converter.
    mailbox: Mutex<Option<(RawFrame, u64)>>,
    mail: Condvar,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The status, even if a thread panicked while holding it (it holds plain data).
    fn status(&self) -> MutexGuard<'_, Status> {
        self.status
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set_error(&self, err: impl ToString) {
        self.status().last_error = Some(err.to_string());
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps until `until` or until stopped, whatever else wakes the thread (the async side
    /// unparks it on every request for a frame, which must not cut a backoff short).
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
    name: String,
    options: CameraOptions,
    shared: Arc<Shared>,
    reader: thread::Thread,
    frames: watch::Receiver<Option<Arc<Captured>>>,
    /// When the source last returned a frame (live or NO SIGNAL).
    last_returned: Instant,
    /// When it last returned a live frame.
    last_live: Option<Instant>,
    /// The last frame returned was NO SIGNAL.
    showing_no_signal: bool,
    /// Size of the last live frame, so NO SIGNAL matches it.
    last_size: Option<(u32, u32)>,
    /// Set by `pause`: the next `next_frame` starts a new wait.
    paused: bool,
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
        let shared = Arc::new(Shared {
            status: Mutex::new(Status::default()),
            last_demand_ms: AtomicU64::new(NEVER),
            epoch: Instant::now(),
            stop: AtomicBool::new(false),
            mailbox: Mutex::new(None),
            mail: Condvar::new(),
        });
        if require {
            // The device opened for the check stays open for one idle period, for the first viewer.
            shared.last_demand_ms.store(0, Ordering::Release);
        }
        let (tx, rx) = watch::channel(None);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let device = options.selector.to_string();
        let spawn_error = |e: std::io::Error| CameraError::Open {
            device: device.clone(),
            reason: format!("cannot start the capture threads: {e}"),
        };
        {
            let (shared, options) = (shared.clone(), options.clone());
            thread::Builder::new()
                .name(format!("convert-{name}"))
                .spawn(move || convert_loop(&options, &shared, &tx))
                .map_err(spawn_error)?;
        }
        let reader = {
            let (shared, options) = (shared.clone(), options.clone());
            thread::Builder::new()
                .name(format!("camera-{name}"))
                .spawn(move || read_loop(&*backend, &options, &shared, require.then_some(ready_tx)))
                .map_err(spawn_error)?
                .thread()
                .clone()
        };
        let source = CameraSource {
            name: name.to_string(),
            options,
            shared,
            reader,
            frames: rx,
            last_returned: Instant::now(),
            last_live: None,
            showing_no_signal: false,
            last_size: None,
            // The first request starts the NO SIGNAL clock, as after a pause.
            paused: true,
        };
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

    /// How long to wait for the next live frame before showing NO SIGNAL.
    fn patience(&self) -> Duration {
        if self.showing_no_signal {
            return NO_SIGNAL_EVERY;
        }
        let status = self.shared.status();
        if !status.open && status.last_error.is_none() {
            return OPENING_GRACE;
        }
        let period = status.mode.map_or(Duration::ZERO, |m| {
            Duration::from_secs_f64(3.0 / f64::from(m.fps.max(1)))
        });
        STALL_AFTER.max(period)
    }

    fn no_signal(&mut self) -> Result<SourceFrame, SourceError> {
        let reason = {
            let mut status = self.shared.status();
            status.capture_fps = None;
            match (&status.last_error, status.open) {
                (Some(err), _) => err.clone(),
                (None, true) => {
                    let since = self.last_live.map_or(0, |t| t.elapsed().as_secs()).max(1);
                    let reason = format!(
                        "no frame from {} for {since} s",
                        status.device.as_deref().unwrap_or("the camera")
                    );
                    status.last_error = Some(reason.clone());
                    reason
                }
                (None, false) => format!("opening {}", self.options.selector),
            }
        };
        let (w, h) = self
            .last_size
            .or(self.shared.status().mode.map(|m| (m.width, m.height)))
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
        // The threads drop the device (releasing the camera) when they see this.
        self.shared.stop.store(true, Ordering::Release);
        self.reader.unpark();
        self.shared.mail.notify_all();
    }
}

#[async_trait::async_trait]
impl Source for CameraSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        if std::mem::take(&mut self.paused) {
            self.last_returned = Instant::now();
            self.showing_no_signal = false;
            // Frames converted before the pause (the threads run on until the camera closes)
            // are old by now: only what is captured from here on counts.
            self.frames.borrow_and_update();
        }
        loop {
            self.shared
                .last_demand_ms
                .store(self.shared.now_ms(), Ordering::Release);
            self.reader.unpark();
            // Re-checked every 200 ms: the patience shrinks as soon as the reader reports an
            // error (an open that failed), and NO SIGNAL should then say so promptly.
            let no_signal_at = self.last_returned + self.patience();
            let wake = no_signal_at.min(Instant::now() + Duration::from_millis(200));
            tokio::select! {
                changed = self.frames.changed() => {
                    if changed.is_err() {
                        return Err(SourceError::Failed("the camera's converter thread has ended".into()));
                    }
                    let Some(frame) = self.frames.borrow_and_update().clone() else { continue };
                    self.last_returned = Instant::now();
                    self.last_live = Some(self.last_returned);
                    self.showing_no_signal = false;
                    self.last_size = Some((frame.width, frame.height));
                    return Ok(SourceFrame {
                        captured_micros: frame.captured_micros,
                        jpeg: frame.jpeg.clone(),
                        width: frame.width,
                        height: frame.height,
                    });
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    if Instant::now() < no_signal_at {
                        continue;
                    }
                    self.last_returned = Instant::now();
                    self.showing_no_signal = true;
                    return self.no_signal();
                }
            }
        }
    }

    fn pause(&mut self) {
        // Nobody watches. When someone does again, give the camera (which the reader may have
        // closed meanwhile) its full opening grace before saying it has no signal.
        self.paused = true;
    }

    fn info(&self) -> SourceInfo {
        let status = self.shared.status().clone();
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
            dropped_parts: None,
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
    let mut backoff = REOPEN_START;
    let mut meter = FpsMeter::default();
    let mut delivered_since_open = false;
    loop {
        if shared.stopped() {
            break;
        }
        let last_demand = shared.last_demand_ms.load(Ordering::Acquire);
        let recently_asked = last_demand != NEVER
            && shared.now_ms().saturating_sub(last_demand) < options.idle_close.as_millis() as u64;
        if !(ready.is_some() || recently_asked) {
            if device.take().is_some() {
                tracing::info!(
                    "nobody watching for {} s; camera closed",
                    options.idle_close.as_secs()
                );
                let mut status = shared.status();
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
                        let mut status = shared.status();
                        status.device = Some(dev.name());
                        status.mode = Some(dev.mode());
                        status.open = true;
                        status.last_error = None;
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
                    tracing::warn!(%err, retry_in_ms = backoff.as_millis() as u64, "camera unavailable");
                    shared.set_error(&err);
                    shared.sleep_until(Instant::now() + backoff);
                    backoff = (backoff * 2).min(REOPEN_MAX);
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
                    backoff = REOPEN_START;
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
                tracing::warn!(%err, retry_in_ms = backoff.as_millis() as u64, "camera read failed; reopening");
                {
                    let mut status = shared.status();
                    status.last_error = Some(err.to_string());
                    status.open = false;
                    status.capture_fps = None;
                }
                device = None;
                shared.sleep_until(Instant::now() + backoff);
                backoff = (backoff * 2).min(REOPEN_MAX);
            }
        }
    }
    drop(device);
    tracing::debug!("reader thread ended; camera released");
}

/// The converter thread: newest raw frame in, JPEG out, once per frame.
fn convert_loop(
    options: &CameraOptions,
    shared: &Shared,
    tx: &watch::Sender<Option<Arc<Captured>>>,
) {
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
            Ok(Ok(jpeg)) => {
                shared.status().last_error = None;
                tx.send_replace(Some(Arc::new(Captured {
                    jpeg: Bytes::from(jpeg),
                    captured_micros,
                    width,
                    height,
                })));
            }
            // Shown in the API (and on NO SIGNAL if no frame converts at all).
            Ok(Err(err)) => {
                tracing::debug!(%err, "frame skipped");
                shared.set_error(format!("frame could not be converted: {err}"));
            }
            Err(_) => {
                tracing::warn!("frame conversion panicked; frame skipped");
                encoder = convert::RawEncoder::new();
                shared.set_error("frame conversion failed (panic); frame skipped");
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

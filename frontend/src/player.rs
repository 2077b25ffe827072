//! The fetch path: reads `NAME.frames` (or a wall, `wall.frames?names=...`) with `fetch()` and a
//! stream reader, cuts parts with the shared parser, decodes off the main thread
//! (`createImageBitmap`), and paints only the newest frame onto a canvas at the next animation
//! frame.
//!
//! One connection feeds one or more screens (a canvas each, with its own figures). A stream's
//! player has one screen, which takes every part; a wall's has one per stream on it, and each
//! part goes to the screen its `X-Stream` names. Everything below about frames is per screen;
//! the connection, its failures and the animation frame that paints are shared.
//!
//! Frame flow, at most one of each at a time per screen, so nothing queues behind a slow decode
//! or a hidden tab: a received part waits in `next` while another decodes (a newer part replaces
//! it); a decoded bitmap waits in `pending` for the animation frame (a newer bitmap replaces it).
//! Every bitmap is closed: on paint, when superseded, or when the player stops. No object URLs.
//!
//! A frame's metadata (`?meta=1`: a JSON part right before its JPEG part, same `X-Sequence`)
//! travels with that frame through decode and paint and is drawn right after its picture, in the
//! same animation frame ([`crate::meta_canvas`]), while the viewer's switch is on. Its stage times
//! and arrival go to the waterfall ([`crate::waterfall`]) when it is painted.
//!
//! Failure handling, decided after each attempt ends (its request is always aborted first, so
//! a failed attempt never keeps a connection):
//! - the relay does not answer `/api/time` either: it is down or restarting; reconnect quickly.
//! - the stream was delivering frames and broke off, or went silent for [`STALL_MS`] (a
//!   connection lost without a reset): reconnect quickly (no fallback).
//! - the relay answered with an error status (unknown stream, shutting down): retry with
//!   backoff, no fallback: an `<img>` would get the same answer.
//! - the relay answers, but streaming through fetch yielded nothing (a network or CORS error, a
//!   body that is not the expected multipart, a stream cut before its first frame): fall back to
//!   a plain `<img>` (the view renders it) and retry fetch with backoff; the first frame through
//!   fetch ends the fallback.
//! - the browser cannot read response bodies as streams: fall back for good.
//!
//! A connected stream with no frames yet (a source starting, a push stream with no pusher)
//! simply waits: that is not fetch's fault, and an `<img>` would show nothing either.
//!
//! No Yew here: the view reads [`Player::view`] a few times a second.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use gloo_timers::callback::Interval;
use js_sys::{Reflect, Uint8Array};
use mjpeg_shared::meta::shapes_of;
use mjpeg_shared::multipart::{MultipartParser, Part};
use mjpeg_shared::wire::{Rendition, META_CONTENT_TYPE};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    AbortController, Blob, BlobPropertyBag, CanvasRenderingContext2d, HtmlCanvasElement,
    ImageBitmap, ReadableStreamDefaultReader, RequestCache, RequestInit, Response,
};

use crate::clock::Estimate;
use crate::stats::{FrameStats, Snapshot};
use crate::web;

/// A stream that delivered frames and then sends nothing for this long is reconnected (every
/// source the relay has sends at least one frame a second while it is being watched, NO SIGNAL
/// included; a push stream whose pusher paused just reconnects, harmlessly).
pub const STALL_MS: f64 = 15_000.0;
/// Reconnect delays while the relay is down: doubling from the first to the last.
const RECONNECT_MS: (u32, u32) = (250, 2_000);
/// Delays between fetch retries while falling back to `<img>`.
const FALLBACK_RETRY_MS: (u32, u32) = (2_000, 30_000);

/// What the player is doing.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Opening the stream.
    Connecting,
    /// Connected; no frame yet (the source may be starting, or waiting for a pusher).
    Waiting,
    /// Frames arrive through fetch.
    Playing,
    /// The stream broke off or the relay is down; fetch is retried soon.
    Reconnecting { reason: String },
    /// Fetch streaming does not work from here; a plain `<img>` stands in. `retry` is false
    /// when the browser cannot stream fetch bodies at all.
    Fallback { reason: String, retry: bool },
}

impl Mode {
    /// The transport a user sees: `fetch` or `img-fallback`.
    pub fn transport(&self) -> &'static str {
        match self {
            Mode::Fallback { .. } => "img-fallback",
            _ => "fetch",
        }
    }
    /// A one-word state for `data-state`.
    pub fn state(&self) -> &'static str {
        match self {
            Mode::Connecting => "connecting",
            Mode::Waiting => "waiting",
            Mode::Playing => "playing",
            Mode::Reconnecting { .. } => "reconnecting",
            Mode::Fallback { .. } => "fallback",
        }
    }
}

/// Why an attempt ended.
#[derive(Debug)]
enum Failure {
    Network(String),
    Status(u16, String),
    Parse(String),
    Unsupported(&'static str),
    Stalled,
    Ended,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Network(e) => write!(f, "fetch failed: {e}"),
            Failure::Status(code, msg) => write!(f, "the relay answered {code}: {msg}"),
            Failure::Parse(e) => write!(f, "the stream could not be parsed: {e}"),
            Failure::Unsupported(why) => f.write_str(why),
            Failure::Stalled => write!(f, "nothing arrived for {} s", STALL_MS / 1000.0),
            Failure::Ended => f.write_str("the stream ended"),
        }
    }
}

/// What the view shows, read a few times a second.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayerView {
    pub mode: Mode,
    pub stats: Snapshot,
    /// Bitmaps decoded and not yet closed (0 or 1 or 2 in steady state; growth is a leak).
    pub open_bitmaps: u32,
    /// Milliseconds from navigation to the first frame painted.
    pub first_paint_ms: Option<f64>,
    /// Parts the browser could not decode as images.
    pub undecodable: u64,
    /// Stretches of the stream the parser refused (it resynchronises at the next boundary).
    pub parse_errors: u64,
    /// Shapes drawn over the newest frame painted (0 with the switch off or no metadata).
    pub meta_shapes: usize,
    /// Frames painted with their metadata drawn.
    pub meta_frames: u64,
    /// The rendition of the newest frame painted, as `X-Rendition` says (`None`: the source's
    /// own frames).
    pub rendition: Option<Rendition>,
}

/// A running fetch-path player; stops (aborting its request) when dropped.
pub struct Player {
    inner: Rc<Inner>,
}

/// What a frame brings besides its pixels, carried from its part to its paint.
struct Timeline {
    capture_us: Option<f64>,
    stages: Vec<(String, u64)>,
    /// Local time its part was complete.
    arrived_at: f64,
    /// Its metadata (JSON), if it came with any.
    meta: Option<Bytes>,
    rendition: Option<Rendition>,
}

struct Frame {
    blob: Blob,
    timeline: Timeline,
}

struct Decoded {
    bitmap: ImageBitmap,
    timeline: Timeline,
}

/// A canvas fed by the connection, with its own frames and figures.
pub struct Screen {
    /// The stream it shows on a wall (`X-Stream`); `None` takes every part.
    stream: Option<String>,
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    stats: RefCell<FrameStats>,
    /// Parts received for it in the current attempt.
    attempt_frames: Cell<u64>,
    decoding: Cell<bool>,
    next: RefCell<Option<Frame>>,
    pending: RefCell<Option<Decoded>>,
    open_bitmaps: Cell<u32>,
    undecodable: Cell<u64>,
    first_paint_ms: Cell<Option<f64>>,
    /// The metadata part just read, waiting for its JPEG part: (its sequence number, the JSON).
    meta_next: RefCell<Option<(u64, Bytes)>>,
    meta_shapes: Cell<usize>,
    meta_frames: Cell<u64>,
    rendition: Cell<Option<Rendition>>,
}

impl Screen {
    /// `canvas` showing `stream` on a wall, or every part (`None`).
    pub fn new(stream: Option<String>, canvas: HtmlCanvasElement) -> Result<Screen, String> {
        let ctx = web::context_2d(&canvas, false)?;
        Ok(Screen {
            stream,
            canvas,
            ctx,
            stats: RefCell::new(FrameStats::new()),
            attempt_frames: Cell::new(0),
            decoding: Cell::new(false),
            next: RefCell::new(None),
            pending: RefCell::new(None),
            open_bitmaps: Cell::new(0),
            undecodable: Cell::new(0),
            first_paint_ms: Cell::new(None),
            meta_next: RefCell::new(None),
            meta_shapes: Cell::new(0),
            meta_frames: Cell::new(0),
            rendition: Cell::new(None),
        })
    }

    /// Takes a part with this `X-Stream` (or none).
    fn takes(&self, stream: Option<&str>) -> bool {
        self.stream.is_none() || self.stream.as_deref() == stream
    }
}

/// The connection, and the screens it feeds.
struct Inner {
    url: String,
    screens: Vec<Screen>,
    mode: RefCell<Mode>,
    stopped: Cell<bool>,
    abort: RefCell<Option<AbortController>>,
    /// Parts received in the current attempt, on any screen.
    attempt_frames: Cell<u64>,
    parse_errors: Cell<u64>,
    /// Local time of the last chunk received, for the stall watchdog.
    last_chunk_us: Cell<f64>,
    /// One animation frame paints every screen with a new frame.
    paint_frames: RefCell<Option<web::AnimationFrames>>,
    /// The viewer's switch: draw metadata over the picture.
    show_meta: Rc<Cell<bool>>,
}

impl Player {
    /// Starts playing `url` (a `.frames` endpoint, or a wall) onto `screens`, drawing frames'
    /// metadata while `show_meta` is set.
    pub fn start(url: String, screens: Vec<Screen>, show_meta: Rc<Cell<bool>>) -> Player {
        let inner = Rc::new(Inner {
            url,
            screens,
            mode: RefCell::new(Mode::Connecting),
            stopped: Cell::new(false),
            abort: RefCell::new(None),
            attempt_frames: Cell::new(0),
            parse_errors: Cell::new(0),
            last_chunk_us: Cell::new(0.0),
            paint_frames: RefCell::new(None),
            show_meta,
        });
        let weak: Weak<Inner> = Rc::downgrade(&inner);
        *inner.paint_frames.borrow_mut() = Some(web::AnimationFrames::new(move |at| {
            if let Some(inner) = weak.upgrade() {
                inner.paint(at);
            }
        }));
        spawn_local(run(inner.clone()));
        Player { inner }
    }

    /// Starts playing a stream's `url` onto one canvas (every part goes to it).
    #[cfg(test)]
    pub fn single(
        url: String,
        canvas: HtmlCanvasElement,
        show_meta: Rc<Cell<bool>>,
    ) -> Result<Player, String> {
        Ok(Player::start(
            url,
            vec![Screen::new(None, canvas)?],
            show_meta,
        ))
    }

    /// The first screen's figures (a stream's player has only that one).
    #[cfg(test)]
    pub fn view(&self, clock: Option<Estimate>) -> PlayerView {
        self.views(clock).swap_remove(0)
    }

    /// The figures for each screen's overlay at this moment, in the order given to `start`.
    pub fn views(&self, clock: Option<Estimate>) -> Vec<PlayerView> {
        let i = &self.inner;
        let now = web::now_us();
        i.screens
            .iter()
            .map(|s| PlayerView {
                // A wall's stream whose first frame has not come yet waits, whatever the others do.
                mode: match &*i.mode.borrow() {
                    Mode::Playing if s.attempt_frames.get() == 0 => Mode::Waiting,
                    mode => mode.clone(),
                },
                stats: s.stats.borrow_mut().snapshot(now, clock),
                open_bitmaps: s.open_bitmaps.get(),
                first_paint_ms: s.first_paint_ms.get(),
                undecodable: s.undecodable.get(),
                parse_errors: i.parse_errors.get(),
                meta_shapes: s.meta_shapes.get(),
                meta_frames: s.meta_frames.get(),
                rendition: s.rendition.get(),
            })
            .collect()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let i = &self.inner;
        i.stopped.set(true);
        if let Some(ctrl) = i.abort.borrow_mut().take() {
            ctrl.abort();
        }
        i.paint_frames.borrow_mut().take();
        for s in &i.screens {
            s.next.borrow_mut().take();
            if let Some(d) = s.pending.borrow_mut().take() {
                s.close(d.bitmap);
            }
        }
    }
}

/// The attempt loop; see the module docs.
async fn run(inner: Rc<Inner>) {
    if !fetch_streams_supported() {
        inner.set_mode(Mode::Fallback {
            reason: "this browser cannot read a fetch response as a stream".into(),
            retry: false,
        });
        return;
    }
    let mut reconnect = RECONNECT_MS.0;
    let mut fallback = FALLBACK_RETRY_MS.0;
    loop {
        if inner.stopped.get() {
            return;
        }
        inner.attempt_frames.set(0);
        for s in &inner.screens {
            s.attempt_frames.set(0);
        }
        let failure = match read_stream(&inner).await {
            Ok(()) => Failure::Ended,
            Err(f) => f,
        };
        // However the attempt ended, its request ends here too.
        if let Some(ctrl) = inner.abort.borrow_mut().take() {
            ctrl.abort();
        }
        if inner.stopped.get() {
            return;
        }
        let delivered = inner.attempt_frames.get() > 0;
        for s in &inner.screens {
            s.stats.borrow_mut().restart();
        }
        if let Failure::Unsupported(why) = failure {
            inner.set_mode(Mode::Fallback {
                reason: why.into(),
                retry: false,
            });
            return;
        }
        if delivered {
            reconnect = RECONNECT_MS.0;
            fallback = FALLBACK_RETRY_MS.0;
        }
        let reachable = web::relay_reachable().await;
        if inner.stopped.get() {
            return;
        }
        let delay = if !reachable {
            inner.set_mode(Mode::Reconnecting {
                reason: format!("the relay does not answer ({failure})"),
            });
            {
                let d = reconnect;
                reconnect = (d * 2).min(RECONNECT_MS.1);
                d
            }
        } else if delivered {
            inner.set_mode(Mode::Reconnecting {
                reason: failure.to_string(),
            });
            RECONNECT_MS.0
        } else if let Failure::Status(400..=499, _) = failure {
            // The relay refused this stream (unknown, unauthorised); an <img> would be refused
            // alike. A 5xx is more likely a gateway in between, and counts as a fetch failure.
            inner.set_mode(Mode::Reconnecting {
                reason: failure.to_string(),
            });
            let d = fallback;
            fallback = (d * 2).min(FALLBACK_RETRY_MS.1);
            d
        } else {
            inner.set_mode(Mode::Fallback {
                reason: failure.to_string(),
                retry: true,
            });
            {
                let d = fallback;
                fallback = (d * 2).min(FALLBACK_RETRY_MS.1);
                d
            }
        };
        web::sleep_ms(delay).await;
        if inner.stopped.get() {
            return;
        }
    }
}

/// `fetch` with a readable response body (missing in old browsers).
fn fetch_streams_supported() -> bool {
    let global = js_sys::global();
    let has = |name: &str| {
        Reflect::get(&global, &name.into())
            .map(|v| !v.is_undefined())
            .unwrap_or(false)
    };
    has("ReadableStream") && has("AbortController") && has("createImageBitmap")
}

/// One attempt: fetch, then read parts until the stream ends or fails.
async fn read_stream(inner: &Rc<Inner>) -> Result<(), Failure> {
    let ctrl = AbortController::new().map_err(|e| Failure::Network(describe(&e)))?;
    *inner.abort.borrow_mut() = Some(ctrl.clone());
    let init = RequestInit::new();
    init.set_signal(Some(&ctrl.signal()));
    init.set_cache(RequestCache::NoStore);
    if let Some(auth) = crate::auth::header() {
        let headers = web_sys::Headers::new().map_err(|e| Failure::Network(describe(&e)))?;
        headers
            .set("Authorization", &auth)
            .map_err(|e| Failure::Network(describe(&e)))?;
        init.set_headers(&headers);
    }

    if inner.stopped.get() {
        // Stopped between spawning and now: never open the request.
        return Err(Failure::Ended);
    }
    // A new response: nothing from the last one belongs to its frames.
    for s in &inner.screens {
        s.meta_next.borrow_mut().take();
    }

    // A connection can die without a reset (a laptop sleeping, a NAT forgetting it): then read()
    // waits forever. Once frames flowed, silence for STALL_MS ends the attempt.
    let stalled = Rc::new(Cell::new(false));
    let _watchdog = {
        let (weak, ctrl, stalled) = (Rc::downgrade(inner), ctrl.clone(), stalled.clone());
        Interval::new(STALL_MS as u32 / 3, move || {
            if weak.upgrade().is_some_and(|i| {
                i.attempt_frames.get() > 0 && web::now_us() - i.last_chunk_us.get() > STALL_MS * 1e3
            }) {
                stalled.set(true);
                ctrl.abort();
            }
        })
    };
    let network = |e: JsValue| {
        if stalled.get() {
            Failure::Stalled
        } else {
            Failure::Network(describe(&e))
        }
    };

    let resp: Response = JsFuture::from(web::window().fetch_with_str_and_init(&inner.url, &init))
        .await
        .map_err(network)?
        .unchecked_into();
    if !resp.ok() {
        let body = match resp.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|t| t.as_string()),
            Err(_) => None,
        };
        let msg = body
            .and_then(|b| serde_json_error(&b))
            .unwrap_or_else(|| resp.status_text());
        return Err(Failure::Status(resp.status(), msg));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut parser = MultipartParser::from_content_type(&content_type)
        .map_err(|e| Failure::Parse(e.to_string()))?;
    let body = resp.body().ok_or(Failure::Unsupported(
        "the response has no readable body stream",
    ))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    if !matches!(*inner.mode.borrow(), Mode::Fallback { .. }) {
        inner.set_mode(Mode::Waiting);
    }

    loop {
        let result = JsFuture::from(reader.read()).await.map_err(network)?;
        if Reflect::get(&result, &"done".into())
            .map(|d| d.is_truthy())
            .unwrap_or(true)
        {
            return Ok(());
        }
        let chunk: Uint8Array = Reflect::get(&result, &"value".into())
            .map_err(network)?
            .unchecked_into();
        let started = web::now_us();
        inner.last_chunk_us.set(started);
        parser.push(&chunk.to_vec());
        // The chunk's parsing is charged to the screen of the last part it completed.
        let mut charged = None;
        loop {
            match parser.next_part() {
                Ok(Some(part)) => charged = inner.on_part(part).or(charged),
                Ok(None) => break,
                // Before any frame: this is not our stream (something in between rewrote it).
                Err(e) if inner.attempt_frames.get() == 0 => {
                    return Err(Failure::Parse(e.to_string()))
                }
                // Mid-stream: the parser skips to the next boundary; count it and go on.
                Err(_) => inner.parse_errors.set(inner.parse_errors.get() + 1),
            }
        }
        if let Some(screen) = inner.screens.get(charged.unwrap_or(0)) {
            let now = web::now_us();
            screen.stats.borrow_mut().on_work(now, now - started);
        }
    }
}

/// The `error` field of a relay error body.
fn serde_json_error(body: &str) -> Option<String> {
    let v = js_sys::JSON::parse(body).ok()?;
    Reflect::get(&v, &"error".into()).ok()?.as_string()
}

/// A thrown JS value in words ("TypeError: Failed to fetch").
fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| format!("{}: {}", e.name(), e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

impl Inner {
    fn set_mode(&self, mode: Mode) {
        *self.mode.borrow_mut() = mode;
    }

    /// A complete part: count it and hand it to its screen's decoder (or park it as the
    /// newest). A metadata part waits for the JPEG part after it. Returns the screen it went to
    /// (none: a wall part for a stream this player does not show).
    fn on_part(self: &Rc<Self>, part: Part) -> Option<usize> {
        let index = self.screens.iter().position(|s| s.takes(part.stream()))?;
        let screen = &self.screens[index];
        if part.content_type().as_deref() == Some(META_CONTENT_TYPE) {
            // Kept as bytes: parsed only if its frame is painted with the switch on.
            *screen.meta_next.borrow_mut() = part.sequence().map(|seq| (seq, part.body));
            return Some(index);
        }
        // The waiting metadata is this frame's only if the sequence numbers match: a frame
        // whose metadata went missing shows no box rather than another frame's.
        let meta = match screen.meta_next.borrow_mut().take() {
            Some((seq, json)) if Some(seq) == part.sequence() => Some(json),
            _ => None,
        };
        let now = web::now_us();
        let capture_us = part.timestamp_micros().map(|t| t as f64);
        screen
            .stats
            .borrow_mut()
            .on_received(now, part.sequence(), capture_us, part.body.len());
        screen.attempt_frames.set(screen.attempt_frames.get() + 1);
        if self.attempt_frames.replace(self.attempt_frames.get() + 1) == 0 {
            self.set_mode(Mode::Playing);
        }
        let Some(blob) = jpeg_blob(&part.body) else {
            screen.undecodable.set(screen.undecodable.get() + 1);
            return Some(index);
        };
        let frame = Frame {
            blob,
            timeline: Timeline {
                capture_us,
                stages: part.stages(),
                arrived_at: now,
                meta,
                rendition: part.rendition(),
            },
        };
        if screen.decoding.get() {
            if screen.next.replace(Some(frame)).is_some() {
                screen.stats.borrow_mut().on_superseded();
            }
        } else {
            self.decode(index, frame);
        }
        Some(index)
    }

    /// Decodes off the main thread; the bitmap waits in its screen's `pending` for the next
    /// animation frame.
    fn decode(self: &Rc<Self>, index: usize, frame: Frame) {
        let screen = &self.screens[index];
        let promise = match web::window().create_image_bitmap_with_blob(&frame.blob) {
            Ok(p) => p,
            Err(_) => {
                screen.undecodable.set(screen.undecodable.get() + 1);
                return;
            }
        };
        screen.decoding.set(true);
        let inner = self.clone();
        spawn_local(async move {
            let result = JsFuture::from(promise).await;
            let screen = &inner.screens[index];
            screen.decoding.set(false);
            match result {
                Ok(bitmap) => {
                    let bitmap: ImageBitmap = bitmap.unchecked_into();
                    screen.open_bitmaps.set(screen.open_bitmaps.get() + 1);
                    if inner.stopped.get() {
                        screen.close(bitmap);
                        return;
                    }
                    let decoded = Decoded {
                        bitmap,
                        timeline: frame.timeline,
                    };
                    if let Some(old) = screen.pending.replace(Some(decoded)) {
                        screen.close(old.bitmap);
                        screen.stats.borrow_mut().on_superseded();
                    }
                    inner.schedule_paint();
                }
                Err(_) => screen.undecodable.set(screen.undecodable.get() + 1),
            }
            if !inner.stopped.get() {
                let next = screen.next.borrow_mut().take();
                if let Some(next) = next {
                    inner.decode(index, next);
                }
            }
        });
    }

    fn schedule_paint(&self) {
        if let Some(frames) = self.paint_frames.borrow().as_ref() {
            frames.request();
        }
    }

    /// Animation frame beginning at `at`: what was drawn in the last one is presented now;
    /// every screen with a new frame draws it, and one more animation frame is asked for to
    /// present that.
    fn paint(&self, at: f64) {
        let mut drawn = false;
        for screen in &self.screens {
            screen.stats.borrow_mut().on_presented(at);
            drawn |= screen.paint(self.show_meta.get());
        }
        if drawn {
            self.schedule_paint();
        }
    }
}

impl Screen {
    /// Draws the newest decoded frame, closes its bitmap, counts the paint; false when there
    /// was none.
    fn paint(&self, show_meta: bool) -> bool {
        let Some(d) = self.pending.borrow_mut().take() else {
            return false;
        };
        let started = web::now_us();
        let (w, h) = (d.bitmap.width(), d.bitmap.height());
        if self.canvas.width() != w || self.canvas.height() != h {
            self.canvas.set_width(w);
            self.canvas.set_height(h);
        }
        let _ = self.ctx.draw_image_with_image_bitmap(&d.bitmap, 0.0, 0.0);
        self.close(d.bitmap);
        let t = d.timeline;
        let shapes = match (&t.meta, show_meta) {
            (Some(json), true) => shapes_of(json),
            _ => Vec::new(),
        };
        if !shapes.is_empty() {
            crate::meta_canvas::draw(&self.ctx, f64::from(w), f64::from(h), &shapes);
            self.meta_frames.set(self.meta_frames.get() + 1);
        }
        self.meta_shapes.set(shapes.len());
        self.rendition.set(t.rendition);
        let now = web::now_us();
        let mut stats = self.stats.borrow_mut();
        stats.on_painted(now, t.capture_us, w, h);
        if let Some(capture) = t.capture_us {
            stats.on_timeline(now, capture, &t.stages, t.arrived_at);
        }
        stats.on_work(now, now - started);
        if self.first_paint_ms.get().is_none() {
            self.first_paint_ms.set(Some(web::since_navigation_ms()));
        }
        true
    }

    fn close(&self, bitmap: ImageBitmap) {
        bitmap.close();
        self.open_bitmaps
            .set(self.open_bitmaps.get().saturating_sub(1));
    }
}

/// The part's bytes as an `image/jpeg` Blob (one copy out of wasm memory).
fn jpeg_blob(jpeg: &[u8]) -> Option<Blob> {
    let parts = js_sys::Array::of1(&Uint8Array::from(jpeg));
    let opts = BlobPropertyBag::new();
    opts.set_type("image/jpeg");
    Blob::new_with_u8_array_sequence_and_options(&parts, &opts).ok()
}

//! The `<img>` path's eyes: a plain `<img>` gives script no per-frame event, so each animation
//! frame this draws the image's top-left corner onto a small same-origin canvas and decodes the
//! frame stamp (`mjpeg_shared::stamp`) from its pixels. A new sequence number means the browser
//! now shows a new frame; its capture time gives the latency as seen on screen.
//!
//! Only the stamp's 128x64 pixels are drawn and read back, from a canvas created with
//! `willReadFrequently` so reading back stays cheap. Streams without a stamp (anything but the
//! test pattern, unless a source paints one) show frames but no latency.
//!
//! No Yew here: the view reads [`StampReader::view`] a few times a second.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use mjpeg_shared::stamp;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlImageElement};

use crate::clock::Estimate;
use crate::stats::{FrameStats, Snapshot};
use crate::web;

/// What the view shows.
#[derive(Clone, Debug, PartialEq)]
pub struct StampView {
    pub stats: Snapshot,
    /// The image shows pixels (it has loaded at least one frame).
    pub showing: bool,
    /// A stamp was read from the current picture.
    pub stamped: bool,
}

/// Reads stamps off an `<img>` every animation frame until dropped.
pub struct StampReader {
    inner: Rc<Inner>,
}

struct Inner {
    img: HtmlImageElement,
    ctx: CanvasRenderingContext2d,
    stats: RefCell<FrameStats>,
    last_seq: Cell<Option<u32>>,
    stamped: Cell<bool>,
    frames: RefCell<Option<web::AnimationFrames>>,
}

impl StampReader {
    pub fn start(img: HtmlImageElement) -> Result<StampReader, String> {
        let canvas: HtmlCanvasElement = web::window()
            .document()
            .and_then(|d| d.create_element("canvas").ok())
            .and_then(|c| c.dyn_into().ok())
            .ok_or("cannot create a canvas")?;
        canvas.set_width(stamp::WIDTH as u32);
        canvas.set_height(stamp::HEIGHT as u32);
        let ctx = web::context_2d(&canvas, true)?;
        let inner = Rc::new(Inner {
            img,
            ctx,
            stats: RefCell::new(FrameStats::new()),
            last_seq: Cell::new(None),
            stamped: Cell::new(false),
            frames: RefCell::new(None),
        });
        let weak: Weak<Inner> = Rc::downgrade(&inner);
        *inner.frames.borrow_mut() = Some(web::AnimationFrames::new(move |at| {
            if let Some(inner) = weak.upgrade() {
                inner.tick(at);
                inner.schedule();
            }
        }));
        inner.schedule();
        Ok(StampReader { inner })
    }

    pub fn view(&self, clock: Option<Estimate>) -> StampView {
        let i = &self.inner;
        StampView {
            stats: i.stats.borrow_mut().snapshot(web::now_us(), clock),
            showing: i.img.natural_width() > 0,
            stamped: i.stamped.get(),
        }
    }

    /// The `<img>` reconnected: the next frame starts a new run.
    pub fn restart(&self) {
        self.inner.stats.borrow_mut().restart();
        self.inner.last_seq.set(None);
    }
}

impl Drop for StampReader {
    fn drop(&mut self) {
        self.inner.frames.borrow_mut().take();
    }
}

impl Inner {
    fn schedule(&self) {
        if let Some(frames) = self.frames.borrow().as_ref() {
            frames.request();
        }
    }

    /// Animation frame beginning at `at`: a frame read in the last one is on screen now; a new
    /// stamp here is a frame the browser shows from this one on.
    fn tick(&self, at: f64) {
        self.stats.borrow_mut().on_presented(at);
        let (w, h) = (self.img.natural_width(), self.img.natural_height());
        if w == 0 || h == 0 {
            return;
        }
        let started = web::now_us();
        let (sw, sh) = (stamp::WIDTH as f64, stamp::HEIGHT as f64);
        let drawn = self
            .ctx
            .draw_image_with_html_image_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                &self.img, 0.0, 0.0, sw, sh, 0.0, 0.0, sw, sh,
            );
        let found = drawn
            .ok()
            .and_then(|_| self.ctx.get_image_data(0.0, 0.0, sw, sh).ok())
            .and_then(|data| stamp::decode(&data.data(), stamp::WIDTH, stamp::HEIGHT, 4));
        let now = web::now_us();
        let mut stats = self.stats.borrow_mut();
        stats.on_work(now, now - started);
        self.stamped.set(found.is_some());
        if let Some(s) = found {
            if self.last_seq.replace(Some(s.seq)) != Some(s.seq) {
                stats.on_shown(now, u64::from(s.seq), s.capture_micros as f64, w, h);
            }
        }
    }
}

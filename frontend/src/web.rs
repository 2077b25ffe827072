//! Small helpers over the browser's APIs: the local clock, JSON requests to the relay, the
//! protocol the page came over.

use std::cell::Cell;
use std::rc::Rc;

use mjpeg_shared::api::ErrorBody;
use serde::de::DeserializeOwned;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::RequestCache;

pub fn window() -> web_sys::Window {
    web_sys::window().expect("the dashboard runs in a window")
}

/// The local clock, Unix microseconds: `performance.timeOrigin + performance.now()`.
///
/// Monotonic and sub-millisecond, unlike `Date.now()`. It can drift from the wall clock after
/// the machine sleeps; that is harmless here because latencies are only ever computed against
/// the clock offset measured with this same clock (`clock.rs`), re-probed every few seconds.
pub fn now_us() -> f64 {
    page_time_us(performance().now())
}

/// A page timestamp (milliseconds since the time origin: `performance.now()`, an animation
/// frame's, Resource Timing's) on the [`now_us`] scale.
pub fn page_time_us(ms: f64) -> f64 {
    (performance().time_origin() + ms) * 1000.0
}

fn performance() -> web_sys::Performance {
    window()
        .performance()
        .expect("performance is available in every browser the dashboard supports")
}

/// `req` with the kept credentials, if any.
fn with_auth(req: gloo_net::http::RequestBuilder) -> gloo_net::http::RequestBuilder {
    match crate::auth::header() {
        Some(auth) => req.header("Authorization", &auth),
        None => req,
    }
}

/// Milliseconds since navigation started (`performance.now()`).
pub fn since_navigation_ms() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or(0.0)
}

/// Why a request to the relay failed.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpError {
    /// The HTTP status; 0 when no answer came (network, CORS, relay down).
    pub status: u16,
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// GET `url` as JSON, with the kept token if any; the error names the HTTP status and the
/// relay's message.
pub async fn get_json<T: DeserializeOwned>(url: &str) -> Result<T, HttpError> {
    Ok(get_json_from(url).await?.0)
}

/// [`get_json`], and the absolute URL the answer came from, as the browser fetched it (its
/// Resource Timing entry's name: gloo-net rewrites a URL's query, adding a `&`).
pub async fn get_json_from<T: DeserializeOwned>(url: &str) -> Result<(T, String), HttpError> {
    let req = with_auth(gloo_net::http::Request::get(url).cache(RequestCache::NoStore));
    let resp = req.send().await.map_err(|e| HttpError {
        status: 0,
        message: format!("{url}: {e}"),
    })?;
    if !resp.ok() {
        let msg = resp
            .json::<ErrorBody>()
            .await
            .map(|b| b.error)
            .unwrap_or_else(|_| resp.status_text());
        return Err(HttpError {
            status: resp.status(),
            message: format!("{url}: {} {msg}", resp.status()),
        });
    }
    let body = resp.json::<T>().await.map_err(|e| HttpError {
        status: resp.status(),
        message: format!("{url}: bad JSON: {e}"),
    })?;
    Ok((body, resp.url()))
}

/// POST `body` as JSON to `url`, with the kept token if any; the error names the HTTP status.
pub async fn post_json<T: serde::Serialize>(url: &str, body: &T) -> Result<(), HttpError> {
    let req = with_auth(gloo_net::http::Request::post(url));
    let failed = |status: u16, e: &dyn std::fmt::Display| HttpError {
        status,
        message: format!("{url}: {e}"),
    };
    let resp = req
        .json(body)
        .map_err(|e| failed(0, &e))?
        .send()
        .await
        .map_err(|e| failed(0, &e))?;
    if resp.ok() {
        Ok(())
    } else {
        Err(failed(resp.status(), &resp.status_text()))
    }
}

/// How coarse the page's timers are: without cross-origin isolation Chromium rounds
/// `performance.now()` and Resource Timing to 100 µs, up or down at random.
const TIMER_RESOLUTION_US: f64 = 100.0;

/// When the browser's network stack sent the request for the absolute `url` and when the first
/// byte of its answer came (Resource Timing's `requestStart` and `responseStart`), on the
/// [`now_us`] scale, widened by the timers' resolution on each side so the true moments lie
/// within. These are taken off the main thread, so unlike the moments a script sees, they do
/// not wait behind its other work. None when the browser does not say (the entry is added when
/// the response ends, so it is looked for twice).
pub async fn request_window_us(url: &str) -> Option<(f64, f64)> {
    let perf = window().performance()?;
    for _ in 0..2 {
        let entries = perf.get_entries_by_name_with_entry_type(url, "resource");
        let newest = entries.length().checked_sub(1).and_then(|i| {
            entries
                .get(i)
                .dyn_into::<web_sys::PerformanceResourceTiming>()
                .ok()
        });
        if let Some(e) = newest {
            // 0 means "not exposed" (a cross-origin answer without Timing-Allow-Origin).
            return (e.request_start() > 0.0).then(|| {
                (
                    page_time_us(e.request_start()) - TIMER_RESOLUTION_US,
                    page_time_us(e.response_start()) + TIMER_RESOLUTION_US,
                )
            });
        }
        sleep_ms(20).await;
    }
    None
}

/// Empties the page's Resource Timing buffer. It keeps 250 entries by default and then drops
/// new ones; the dashboard reads only its clock probes' entries, so each probe clears it first.
pub fn clear_resource_timings() {
    if let Some(perf) = window().performance() {
        perf.clear_resource_timings();
    }
}

/// True when the relay itself answers its `/api/time`: with the time, or refusing the
/// credentials (401, 403). Anything else is not the relay answering: a 5xx is what a proxy in
/// front says while the relay is down, a 404 some other server. Tells "the relay is down" apart
/// from "the relay is up but streaming through fetch does not work from here".
pub async fn relay_reachable() -> bool {
    match get_json::<mjpeg_shared::api::ServerTime>("/api/time").await {
        Ok(_) => true,
        Err(e) => matches!(e.status, 401 | 403),
    }
}

/// The protocol the page itself was loaded over (`h2`, `http/1.1`, ...), or "" when unknown.
pub fn page_protocol() -> String {
    let Some(perf) = window().performance() else {
        return String::new();
    };
    perf.get_entries_by_type("navigation")
        .get(0)
        .dyn_into::<web_sys::PerformanceEntry>()
        .ok()
        .and_then(|e| js_sys::Reflect::get(&e, &"nextHopProtocol".into()).ok())
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// The page is in a background tab (no animation frames run).
pub fn page_hidden() -> bool {
    window().document().is_some_and(|d| d.hidden())
}

/// The canvas's 2D context; `will_read_frequently` keeps its pixels on the CPU side, which
/// makes `getImageData` cheap (for canvases that are read back, not just painted).
pub fn context_2d(
    canvas: &web_sys::HtmlCanvasElement,
    will_read_frequently: bool,
) -> Result<web_sys::CanvasRenderingContext2d, String> {
    let opts = web_sys::ContextAttributes2d::new();
    opts.set_will_read_frequently(will_read_frequently);
    canvas
        .get_context_with_context_options("2d", &opts)
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into().ok())
        .ok_or_else(|| "no 2d canvas context".to_string())
}

/// Sleeps `ms` milliseconds.
pub async fn sleep_ms(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// One `requestAnimationFrame` callback, reused for every request (no closure per frame);
/// a pending request is cancelled on drop. Drop it only outside its own callback.
pub struct AnimationFrames {
    closure: Closure<dyn FnMut(f64)>,
    pending: Rc<Cell<Option<i32>>>,
}

impl AnimationFrames {
    /// `on_frame` gets the frame's timestamp (when the frame began, the same for every callback
    /// in it) on the [`now_us`] scale.
    pub fn new(mut on_frame: impl FnMut(f64) + 'static) -> Self {
        let pending = Rc::new(Cell::new(None));
        let p = pending.clone();
        let closure = Closure::new(move |timestamp_ms: f64| {
            p.set(None);
            on_frame(page_time_us(timestamp_ms));
        });
        AnimationFrames { closure, pending }
    }

    /// Asks for a call at the next animation frame, unless one is already asked for.
    pub fn request(&self) {
        if self.pending.get().is_none() {
            let cb = self.closure.as_ref().unchecked_ref();
            if let Ok(id) = window().request_animation_frame(cb) {
                self.pending.set(Some(id));
            }
        }
    }
}

impl Drop for AnimationFrames {
    fn drop(&mut self) {
        if let Some(id) = self.pending.take() {
            let _ = window().cancel_animation_frame(id);
        }
    }
}

/// The page's document.
pub fn document() -> web_sys::Document {
    window().document().expect("a page has a document")
}

/// An event listener, removed when dropped.
pub struct Listener {
    target: web_sys::EventTarget,
    event: &'static str,
    closure: Closure<dyn FnMut()>,
}

impl Listener {
    /// Calls `on_event` at each `event` on `target` until dropped.
    pub fn new(
        target: &web_sys::EventTarget,
        event: &'static str,
        on_event: impl FnMut() + 'static,
    ) -> Self {
        let closure = Closure::<dyn FnMut()>::new(on_event);
        let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        Listener {
            target: target.clone(),
            event,
            closure,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.event, self.closure.as_ref().unchecked_ref());
    }
}

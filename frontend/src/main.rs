//! The mjpeg-relay dashboard (Yew, WebAssembly; Trunk builds it from the root `index.html`).
//!
//! Map:
//! - [`components`]: the Yew function components, one per file (`App` at the top).
//! - [`hooks`]: the glue between components and the plain modules below; refreshes the tree at
//!   overlay rate only. Per-frame work never goes through Yew state.
//! - [`player`]: the fetch path (stream reader, shared parser, off-thread decode, canvas paint,
//!   fallback decisions).
//! - [`stamp_reader`]: the `<img>` path's latency, read back from the frame stamp in its pixels.
//! - [`meta_canvas`]: a frame's metadata (boxes, lines, points, text) drawn over it.
//! - [`stats`]: FPS, latency percentiles, jitter, bitrate, skips (plain Rust, host-tested).
//! - [`waterfall`]: capture to paint checkpoint by checkpoint, as medians (plain Rust,
//!   host-tested).
//! - [`clock`]: NTP-style clock offset to the relay (plain Rust, host-tested).
//! - [`budget`]: how many streams fit the browser's connections (plain Rust, host-tested).
//! - [`tiles`]: what the wall asks the relay for (plain Rust, host-tested).
//! - [`auth`]: the relay's token, when it asks for one.
//! - [`web`]: small helpers over browser APIs.
#![forbid(unsafe_code)]

mod auth;
#[cfg(all(test, target_arch = "wasm32"))]
mod browser_tests;
mod budget;
mod clock;
mod components;
mod hooks;
mod meta_canvas;
mod player;
mod stamp_reader;
mod stats;
mod tiles;
mod waterfall;
mod web;

fn main() {
    // index.html shows a plain <img> if the app never marks itself started (no WebAssembly,
    // or the module failed to load). If that happened before a slow start, close it: it holds
    // a connection outside the dashboard's budget.
    let window = web::window();
    let _ = js_sys::Reflect::set(
        &window,
        &"__mjpegStarted".into(),
        &wasm_bindgen::JsValue::TRUE,
    );
    if let Some(plain) = window.document().and_then(|d| d.get_element_by_id("plain")) {
        if let Some(img) = plain.query_selector("img").ok().flatten() {
            let _ = img.set_attribute("src", "");
        }
        plain.remove();
    }
    yew::Renderer::<components::App>::new().render();
}

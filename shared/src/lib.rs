//! mjpeg-relay's shared vocabulary: what goes over the wire and how to read it back.
//!
//! Used by the server (to write streams), the dashboard compiled to WebAssembly (to read them) and
//! the tests and load client (to check them). No I/O and no runtime here, so it builds for
//! `wasm32-unknown-unknown` as well as the host.
//!
//! - [`wire`]: boundary, content types, header names, timestamp format, and the exact bytes of a
//!   part in each stream layout. `docs/wire-format.md` is the prose version of this module.
//! - [`api`]: the JSON bodies of `/api/*` and of error responses.
//! - [`meta`]: what a frame's metadata draws (boxes, lines, points, text), for the relay's
//!   `overlay=1` and the dashboard alike.
//! - [`multipart`]: an incremental multipart parser for this relay's streams and other servers'.
//! - [`stamp`]: the machine-readable block code the test pattern paints into each frame, so a
//!   reader of pixels (a plain `<img>` drawn onto a canvas) can tell which frame it is showing.
#![forbid(unsafe_code)]

pub mod api;
pub mod meta;
pub mod multipart;
pub mod stamp;
pub mod wire;

//! mjpeg-relay: capture once, fan out to every viewer.
//!
//! Crate map, one layer per line, lowest first. A module uses only modules on its own line or
//! on lines above it (`tests/layers.rs` in this crate checks it, and that no two modules import
//! each other).
//!
//! 1. Foundations, used everywhere: [`clock`] (Unix microseconds), [`backoff`] (retry delays),
//!    [`jpeg`] (sizes from JPEG headers), [`secret`] (tokens and passwords that never print),
//!    [`redact`] (secrets cut out of source URLs), [`signed`] (signed embed URLs); and, for unit
//!    tests only, `testing` (a waker that counts its wake-ups).
//! 2. [`source`]: where frames come from. The [`source::Source`] trait, the `NAME=SOURCE` grammar
//!    ([`source::spec`]), the [`source::feed`] every live source delivers through (one-slot
//!    channel, demand, NO SIGNAL), and the sources: test pattern, files, camera, ffmpeg,
//!    upstream, push.
//! 3. [`net`]: accepting and serving connections, flush tracking that keeps frames from piling
//!    up ([`net::conn`]), TLS and HTTP/2 ([`net::tls`]).
//! 4. [`fanout`]: one stream's newest frame, its demand and driver ([`fanout::stream`]), a frame's
//!    wire bytes built once ([`fanout::frame`]), one viewer's body ([`fanout::viewer`]).
//! 5. [`http`]: routes, the one access check ([`http::auth`]), errors and their statuses
//!    ([`http::error`]), streams and snapshots, the API, ingest, `/metrics`, the built-in page.
//! 6. [`relay`]: assembling the streams and the site from specs and options, and serving them;
//!    [`config`]: the command line and the `--config` file merged into settings.
//! 7. [`cli`]: the `mjpeg-relay` command: subcommands, signals, logging.
//!
//! [`run`] serves an already-bound listener until a shutdown token fires, which is what lets
//! tests start the real server on port 0.
#![forbid(unsafe_code)]

pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fanout;
pub mod http;
pub mod jpeg;
pub mod net;
pub mod redact;
pub mod relay;
pub mod secret;
pub mod signed;
pub mod source;
#[cfg(test)]
pub(crate) mod testing;

pub use relay::{run, Relay, RelayOptions, StartError};

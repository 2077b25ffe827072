//! Cameras: one device opened once, read on its own thread, shared by every viewer, released
//! when nobody watches; a NO SIGNAL picture while it is missing (through [`crate::source::feed`]).
//!
//! - [`device`]: the traits hardware sits behind (backend, open device), modes and their choice.
//! - [`nokhwa`]: the real backend (V4L2 on Linux, through nokhwa).
//! - [`convert`]: Huffman tables for MJPEG that lacks them, raw frames to JPEG, mirroring.
//! - [`options`]: `camera:...` specs, parsed and printed.
//! - [`capture`]: the reader and converter threads and the [`CameraSource`] the stream driver
//!   pulls from.

pub mod capture;
pub mod convert;
pub mod device;
pub mod nokhwa;
pub mod options;

pub use capture::CameraSource;
pub use options::CameraOptions;

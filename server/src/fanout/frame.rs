//! A captured frame: one JPEG, encoded once, shared by every viewer.
//!
//! The wire bytes of a frame in each layout are built at most once, the first time a viewer of that
//! layout needs them, and then handed to every other viewer as a cheap `Bytes` clone. A viewer
//! never copies or re-encodes a frame.

use std::sync::OnceLock;

use bytes::Bytes;
use mjpeg_shared::wire::Layout;

/// One frame as published by a stream.
#[derive(Debug)]
pub struct Frame {
    /// Position in the stream, counting from 1.
    pub seq: u64,
    /// When the picture was taken, Unix microseconds.
    pub captured_micros: u64,
    /// The JPEG.
    pub jpeg: Bytes,
    /// Width and height in pixels (0 when the JPEG's header could not be read).
    pub width: u32,
    pub height: u32,
    parts: [OnceLock<Bytes>; 3],
}

impl Frame {
    pub fn new(seq: u64, captured_micros: u64, jpeg: Bytes, width: u32, height: u32) -> Self {
        Frame {
            seq,
            captured_micros,
            jpeg,
            width,
            height,
            parts: Default::default(),
        }
    }

    /// This frame as one part of a stream in `layout`, built on first use.
    pub fn part(&self, layout: Layout) -> Bytes {
        self.parts[layout.index()]
            .get_or_init(|| {
                let mut out = Vec::new();
                layout.write_part(&mut out, &self.jpeg, self.seq, self.captured_micros);
                Bytes::from(out)
            })
            .clone()
    }
}

//! Turning what a camera delivers into a JPEG a browser shows, once per captured frame, on the
//! capture thread.
//!
//! - [`ensure_huffman_tables`]: many UVC webcams send MJPEG frames without Huffman tables (the
//!   "AVI1" convention: the decoder is expected to know the standard tables of JPEG Annex K.3).
//!   Browsers and strict decoders refuse such frames, so the standard tables are inserted. This is
//!   a copy of the frame with one segment more, not a re-encode.
//! - [`RawEncoder`] / [`encode_raw`]: raw frames (YUYV, NV12, grey, RGB, BGR) encoded to JPEG.
//!   YUYV and NV12 are already Y'CbCr, which is what JPEG stores: their samples are fed to
//!   jpeg-encoder row by row through its [`ImageBuffer`] trait, with no RGB round trip and no
//!   intermediate frame-sized buffer. The encoder takes every chroma plane at full resolution and
//!   subsamples it to 4:2:0 itself, so each chroma sample is written twice (YUYV) or four times
//!   (NV12). The samples are passed through as they are (as µStreamer does): a camera that sends
//!   limited-range video gets slightly lifted blacks, which is not worth a per-pixel rescale.
//! - [`mirror_jpeg`]: the mirror view of an MJPEG camera costs a decode and a re-encode.
//!
//! Mirroring raw frames happens while the samples are copied, so it costs next to nothing.

use std::borrow::Cow;

use jpeg_encoder::{
    ChromaSubsamplingMethod, ColorType, Encoder, ImageBuffer, JpegColorType, SamplingFactor,
};

use super::device::{PixelFormat, RawFrame};

/// Why a frame could not be converted. Each is about one frame; the next may convert fine.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{format} frame of {width}x{height} needs {expected} bytes, got {actual}")]
    TooShort {
        format: PixelFormat,
        width: u32,
        height: u32,
        expected: usize,
        actual: usize,
    },
    #[error("cannot encode a {format} frame of {width}x{height}: {reason}")]
    Unsupported {
        format: PixelFormat,
        width: u32,
        height: u32,
        reason: &'static str,
    },
    #[error("JPEG decoding failed: {0}")]
    Decode(String),
    #[error("JPEG encoding failed: {0}")]
    Encode(#[from] jpeg_encoder::EncodingError),
}

// The typical Huffman tables of JPEG Annex K.3 (K.3.1 for DC, K.3.2 for AC): for each, the number
// of codes of each length 1..=16, then the symbols in code order.

const LUMA_DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const LUMA_DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const CHROMA_DC_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const CHROMA_DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];

const LUMA_AC_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
#[rustfmt::skip]
const LUMA_AC_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7,
    0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5,
    0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2,
    0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

const CHROMA_AC_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
#[rustfmt::skip]
const CHROMA_AC_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0,
    0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18, 0x19, 0x1A, 0x26,
    0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3,
    0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA,
    0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8,
    0xF9, 0xFA,
];

/// The four tables of a DHT segment, each with its class (high nibble: 0 DC, 1 AC) and id (low
/// nibble: 0 luma, 1 chroma), the assignment MJPEG decoders assume.
const STANDARD_TABLES: [(u8, &[u8; 16], &[u8]); 4] = [
    (0x00, &LUMA_DC_BITS, &LUMA_DC_VALUES),
    (0x10, &LUMA_AC_BITS, &LUMA_AC_VALUES),
    (0x01, &CHROMA_DC_BITS, &CHROMA_DC_VALUES),
    (0x11, &CHROMA_AC_BITS, &CHROMA_AC_VALUES),
];

const DHT: u8 = 0xC4;
const SOS: u8 = 0xDA;

/// The frame with the standard Huffman tables inserted right before its scan if none of its
/// segments up to the scan defines any; otherwise, or if `jpeg` is not a JPEG that reaches its
/// scan, `jpeg` as it is.
pub fn ensure_huffman_tables(jpeg: &[u8]) -> Cow<'_, [u8]> {
    match sos_without_dht(jpeg) {
        Some(sos) => {
            let mut out = Vec::with_capacity(jpeg.len() + 420);
            out.extend_from_slice(&jpeg[..sos]);
            write_standard_dht(&mut out);
            out.extend_from_slice(&jpeg[sos..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(jpeg),
    }
}

/// Offset of the SOS marker if no DHT segment comes before it. Walks the segment lengths, so a
/// 0xFF 0xC4 inside another segment's payload does not count.
fn sos_without_dht(data: &[u8]) -> Option<usize> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    loop {
        let [0xFF, marker] = *data.get(i..i + 2)? else {
            return None;
        };
        match marker {
            // A fill byte before a marker.
            0xFF => i += 1,
            DHT => return None,
            SOS => return Some(i),
            // Markers without a length: TEM, RSTn; an EOI here means there is no scan.
            0x01 | 0xD0..=0xD8 => i += 2,
            0xD9 => return None,
            _ => {
                let len = usize::from(u16::from_be_bytes(data.get(i + 2..i + 4)?.try_into().ok()?));
                if len < 2 {
                    return None;
                }
                i += 2 + len;
            }
        }
    }
}

fn write_standard_dht(out: &mut Vec<u8>) {
    let len: usize = 2 + STANDARD_TABLES
        .iter()
        .map(|(_, _, values)| 17 + values.len())
        .sum::<usize>();
    out.extend_from_slice(&[0xFF, DHT]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    for (class_id, bits, values) in STANDARD_TABLES {
        out.push(class_id);
        out.extend_from_slice(bits);
        out.extend_from_slice(values);
    }
}

/// Encodes raw frames, keeping what it can between frames: the mirror buffer of packed formats,
/// and the last JPEG's size so that the next one is written into one right-sized allocation.
#[derive(Debug, Default)]
pub struct RawEncoder {
    /// A mirrored copy of a grey, RGB or BGR frame (YUYV and NV12 mirror while feeding).
    scratch: Vec<u8>,
    last_len: usize,
}

impl RawEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes `frame` to a JPEG (4:2:0 for colour), flipped horizontally if `mirror`.
    /// `frame.data` may be longer than the format needs (drivers pad); it may not be shorter.
    pub fn encode(
        &mut self,
        frame: &RawFrame,
        quality: u8,
        mirror: bool,
    ) -> Result<Vec<u8>, ConvertError> {
        let (format, width, height) = (frame.format, frame.width, frame.height);
        let unsupported = |reason| ConvertError::Unsupported {
            format,
            width,
            height,
            reason,
        };
        let Some(expected) = format.frame_len(width, height) else {
            return Err(unsupported("it is already a JPEG"));
        };
        if frame.data.len() < expected {
            return Err(ConvertError::TooShort {
                format,
                width,
                height,
                expected,
                actual: frame.data.len(),
            });
        }
        let (Ok(w), Ok(h)) = (u16::try_from(width), u16::try_from(height)) else {
            return Err(unsupported("JPEG allows at most 65535 pixels each way"));
        };
        // Chroma is shared by pixel pairs (YUYV) or 2x2 squares (NV12); cameras only use even sizes.
        match format {
            _ if w == 0 || h == 0 => return Err(unsupported("the picture is empty")),
            PixelFormat::Yuyv if w % 2 != 0 => return Err(unsupported("YUYV needs an even width")),
            PixelFormat::Nv12 if w % 2 != 0 || h % 2 != 0 => {
                return Err(unsupported("NV12 needs an even width and height"))
            }
            _ => {}
        }
        let data = &frame.data[..expected];

        let mut out = Vec::with_capacity(self.last_len + self.last_len / 4);
        let mut encoder = Encoder::new(&mut out, quality);
        // Also above quality 90, where jpeg-encoder would switch to 4:4:4: camera chroma is 4:2:2
        // or 4:2:0 to begin with, and 4:4:4 would double the blocks to encode for little to see.
        encoder.set_sampling_factor(SamplingFactor::F_2_2);
        match format {
            PixelFormat::Yuyv => {
                // YUYV has a chroma sample on every row: average each pair of rows rather than
                // dropping one of them (the horizontal pairs are equal, so this is a 2x1 average).
                encoder.set_chroma_subsampling_method(ChromaSubsamplingMethod::Average);
                encoder.encode_image(Yuyv {
                    data,
                    width: w,
                    height: h,
                    mirror,
                })?
            }
            // NV12 chroma is 4:2:0 already: the top-left sample of each 2x2 square is exact.
            PixelFormat::Nv12 => encoder.encode_image(Nv12 {
                data,
                width: w,
                height: h,
                mirror,
            })?,
            PixelFormat::Gray | PixelFormat::Rgb | PixelFormat::Bgr => {
                let (color, channels) = match format {
                    PixelFormat::Gray => (ColorType::Luma, 1),
                    PixelFormat::Rgb => (ColorType::Rgb, 3),
                    _ => (ColorType::Bgr, 3),
                };
                // Packed frames go to jpeg-encoder's own (SIMD) colour conversion as they are;
                // mirrored, they go through a flipped copy first.
                let pixels = if mirror {
                    mirror_rows(data, usize::from(w), channels, &mut self.scratch);
                    &self.scratch
                } else {
                    data
                };
                encoder.encode(pixels, w, h, color)?
            }
            PixelFormat::Mjpeg => unreachable!("refused above"),
        }
        self.last_len = out.len();
        Ok(out)
    }
}

/// One-off [`RawEncoder::encode`]; a capture loop should keep a [`RawEncoder`].
pub fn encode_raw(frame: &RawFrame, quality: u8, mirror: bool) -> Result<Vec<u8>, ConvertError> {
    RawEncoder::new().encode(frame, quality, mirror)
}

/// Decodes an MJPEG frame, flips it horizontally and encodes it again (4:2:0).
pub fn mirror_jpeg(jpeg: &[u8], quality: u8) -> Result<Vec<u8>, ConvertError> {
    let jpeg = ensure_huffman_tables(jpeg);
    let decoded = crate::source::draw::decode(&jpeg).map_err(ConvertError::Decode)?;
    let (pixels, w, h, channels) = (
        decoded.pixels,
        decoded.width,
        decoded.height,
        decoded.channels,
    );
    // Greyscale frames decode to one channel whatever was asked.
    let color = if channels == 1 {
        ColorType::Luma
    } else {
        ColorType::Rgb
    };
    let mut flipped = Vec::new();
    mirror_rows(&pixels, w, channels, &mut flipped);
    // zune-jpeg refuses images over 16384 pixels each way, so the size fits in u16.
    let mut out = Vec::with_capacity(jpeg.len() + jpeg.len() / 4);
    let mut encoder = Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(SamplingFactor::F_2_2);
    encoder.encode(&flipped, w as u16, h as u16, color)?;
    Ok(out)
}

/// Copies packed pixels of `channels` bytes into `out`, each row of `width` pixels reversed.
fn mirror_rows(pixels: &[u8], width: usize, channels: usize, out: &mut Vec<u8>) {
    out.clear();
    if width == 0 {
        return;
    }
    for row in pixels.chunks_exact(width * channels) {
        for px in row.chunks_exact(channels).rev() {
            out.extend_from_slice(px);
        }
    }
}

/// Appends `n` zeros to `buf` and returns them, to be filled in place: cheaper than pushing byte
/// by byte, and lets the copies below vectorise.
fn grow(buf: &mut Vec<u8>, n: usize) -> &mut [u8] {
    let start = buf.len();
    buf.resize(start + n, 0);
    &mut buf[start..]
}

/// A YUYV frame (Y0 U Y1 V per pixel pair) as jpeg-encoder reads it: one row of Y, Cb and Cr at a
/// time, each at full width.
struct Yuyv<'a> {
    data: &'a [u8],
    width: u16,
    height: u16,
    mirror: bool,
}

impl ImageBuffer for Yuyv<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let w = usize::from(self.width);
        let row = &self.data[usize::from(y) * w * 2..][..w * 2];
        let [luma, cb, cr, _] = buffers;
        let dst = grow(luma, w)
            .chunks_exact_mut(2)
            .zip(grow(cb, w).chunks_exact_mut(2))
            .zip(grow(cr, w).chunks_exact_mut(2));
        if self.mirror {
            // Pairs in reverse order and the two pixels of a pair swapped; a pair keeps its chroma.
            for (((y2, cb2), cr2), src) in dst.zip(row.chunks_exact(4).rev()) {
                y2.copy_from_slice(&[src[2], src[0]]);
                cb2.fill(src[1]);
                cr2.fill(src[3]);
            }
        } else {
            for (((y2, cb2), cr2), src) in dst.zip(row.chunks_exact(4)) {
                y2.copy_from_slice(&[src[0], src[2]]);
                cb2.fill(src[1]);
                cr2.fill(src[3]);
            }
        }
    }
}

/// An NV12 frame (a Y plane, then a half-size plane of interleaved Cb Cr) as jpeg-encoder reads it.
struct Nv12<'a> {
    data: &'a [u8],
    width: u16,
    height: u16,
    mirror: bool,
}

impl ImageBuffer for Nv12<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let (w, h, y) = (
            usize::from(self.width),
            usize::from(self.height),
            usize::from(y),
        );
        let luma_row = &self.data[y * w..][..w];
        // Chroma rows are as many bytes as luma rows: w/2 pairs of Cb Cr, one row per two.
        let chroma_row = &self.data[w * h + y / 2 * w..][..w];
        let [luma, cb, cr, _] = buffers;
        let luma = grow(luma, w);
        let dst = grow(cb, w)
            .chunks_exact_mut(2)
            .zip(grow(cr, w).chunks_exact_mut(2));
        if self.mirror {
            for (d, s) in luma.iter_mut().zip(luma_row.iter().rev()) {
                *d = *s;
            }
            for ((cb2, cr2), src) in dst.zip(chroma_row.chunks_exact(2).rev()) {
                cb2.fill(src[0]);
                cr2.fill(src[1]);
            }
        } else {
            luma.copy_from_slice(luma_row);
            for ((cb2, cr2), src) in dst.zip(chroma_row.chunks_exact(2)) {
                cb2.fill(src[0]);
                cr2.fill(src[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    const W: usize = 80;
    const H: usize = 48;

    /// Four flat quadrants (their edges deliberately off the 16-pixel block grid), in RGB.
    fn picture(w: usize, h: usize) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(match (x < w / 2, y < h / 2) {
                    (true, true) => &[220, 40, 40],
                    (false, true) => &[40, 60, 220],
                    (true, false) => &[40, 200, 60],
                    (false, false) => &[230, 220, 60],
                });
            }
        }
        rgb
    }

    fn mirrored(rgb: &[u8], w: usize) -> Vec<u8> {
        let mut out = Vec::new();
        mirror_rows(rgb, w, 3, &mut out);
        out
    }

    /// JFIF's full-range conversion, which is what the encoder assumes YUYV and NV12 carry.
    fn ycbcr(p: &[u8]) -> [f32; 3] {
        let [r, g, b] = [p[0], p[1], p[2]].map(f32::from);
        [
            0.299 * r + 0.587 * g + 0.114 * b,
            128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b,
            128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b,
        ]
    }

    fn byte(v: f32) -> u8 {
        v.round().clamp(0.0, 255.0) as u8
    }

    /// The picture as a camera would deliver it in `format`.
    fn to_format(rgb: &[u8], w: usize, h: usize, format: PixelFormat) -> Vec<u8> {
        let px = |x: usize, y: usize| ycbcr(&rgb[(y * w + x) * 3..]);
        let mut out = Vec::new();
        match format {
            PixelFormat::Rgb => out.extend_from_slice(rgb),
            PixelFormat::Bgr => rgb
                .chunks_exact(3)
                .for_each(|p| out.extend_from_slice(&[p[2], p[1], p[0]])),
            PixelFormat::Gray => out.extend(rgb.chunks_exact(3).map(|p| byte(ycbcr(p)[0]))),
            PixelFormat::Yuyv => {
                for y in 0..h {
                    for x in (0..w).step_by(2) {
                        let (a, b) = (px(x, y), px(x + 1, y));
                        let avg = |c: usize| byte((a[c] + b[c]) / 2.0);
                        out.extend_from_slice(&[byte(a[0]), avg(1), byte(b[0]), avg(2)]);
                    }
                }
            }
            PixelFormat::Nv12 => {
                out.extend((0..w * h).map(|i| byte(px(i % w, i / w)[0])));
                for y in (0..h).step_by(2) {
                    for x in (0..w).step_by(2) {
                        let s = [px(x, y), px(x + 1, y), px(x, y + 1), px(x + 1, y + 1)];
                        let avg = |c: usize| byte(s.iter().map(|p| p[c]).sum::<f32>() / 4.0);
                        out.extend_from_slice(&[avg(1), avg(2)]);
                    }
                }
            }
            PixelFormat::Mjpeg => unreachable!(),
        }
        out
    }

    /// Decodes strictly, to RGB: (width, height, pixels).
    fn decode(jpeg: &[u8]) -> Result<(usize, usize, Vec<u8>), String> {
        let options = DecoderOptions::default()
            .set_strict_mode(true)
            .jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
        let rgb = decoder.decode().map_err(|e| format!("{e:?}"))?;
        let (w, h) = decoder.dimensions().ok_or("no size")?;
        assert_eq!(rgb.len(), w * h * 3, "decoded to RGB");
        Ok((w, h, rgb))
    }

    /// Lossy equality: small mean error overall, and each quadrant's centre has its colour.
    fn assert_close(actual: &[u8], expected: &[u8], w: usize, h: usize, what: &str) {
        assert_eq!(actual.len(), expected.len(), "{what}: size");
        let mean = actual
            .iter()
            .zip(expected)
            .map(|(a, e)| a.abs_diff(*e) as f64)
            .sum::<f64>()
            / actual.len() as f64;
        assert!(mean < 8.0, "{what}: mean error {mean:.1}");
        for (x, y) in [
            (w / 4, h / 4),
            (3 * w / 4, h / 4),
            (w / 4, 3 * h / 4),
            (3 * w / 4, 3 * h / 4),
        ] {
            let i = (y * w + x) * 3;
            let (a, e) = (&actual[i..i + 3], &expected[i..i + 3]);
            assert!(
                a.iter().zip(e).all(|(a, e)| a.abs_diff(*e) <= 12),
                "{what}: at ({x}, {y}) {a:?}, expected {e:?}"
            );
        }
    }

    fn jpeg_of(rgb: &[u8], w: usize, h: usize, color: ColorType) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new(&mut out, 85)
            .encode(rgb, w as u16, h as u16, color)
            .unwrap();
        out
    }

    /// (marker, offset) of each segment from SOI up to and including SOS.
    fn segments(jpeg: &[u8]) -> Vec<(u8, usize)> {
        let mut out = Vec::new();
        let mut i = 2;
        while jpeg[i + 1] != SOS {
            out.push((jpeg[i + 1], i));
            i += 2 + usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        }
        out.push((SOS, i));
        out
    }

    /// The JPEG without its DHT segments, as an MJPEG camera sends it.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let segs = segments(jpeg);
        let mut out = jpeg[..2].to_vec();
        for (n, &(marker, start)) in segs.iter().enumerate() {
            let end = segs.get(n + 1).map_or(jpeg.len(), |s| s.1);
            if marker != DHT {
                out.extend_from_slice(&jpeg[start..end]);
            }
        }
        out
    }

    /// The same JPEG with its APP0 saying "AVI1" instead of "JFIF", as UVC cameras write it.
    fn as_avi1(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg.to_vec();
        assert_eq!(&out[2..4], [0xFF, 0xE0]);
        out[6..11].copy_from_slice(b"AVI1\0");
        out
    }

    fn markers(jpeg: &[u8]) -> Vec<u8> {
        segments(jpeg).into_iter().map(|s| s.0).collect()
    }

    #[test]
    fn standard_tables_are_inserted_where_missing() {
        let rgb = picture(W, H);
        let grey: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
        for original in [
            jpeg_of(&rgb, W, H, ColorType::Rgb),
            jpeg_of(&grey, W, H, ColorType::Luma),
        ] {
            assert!(markers(&original).contains(&DHT));
            let reference = decode(&original).unwrap();
            for stripped in [strip_dht(&original), as_avi1(&strip_dht(&original))] {
                assert!(!markers(&stripped).contains(&DHT));
                if &stripped[6..10] != b"AVI1" {
                    assert!(
                        decode(&stripped).is_err(),
                        "a strict decoder needs the tables"
                    );
                }
                let fixed = ensure_huffman_tables(&stripped);
                assert!(matches!(fixed, Cow::Owned(_)));
                let m = markers(&fixed);
                assert_eq!(&m[m.len() - 2..], [DHT, SOS], "one DHT, right before SOS");
                assert_eq!(m.iter().filter(|&&m| m == DHT).count(), 1);
                assert_eq!(
                    decode(&fixed).unwrap(),
                    reference,
                    "same pixels as with the encoder's own tables"
                );
            }
        }
    }

    #[test]
    fn frames_with_tables_are_left_alone() {
        let jpeg = jpeg_of(&picture(W, H), W, H, ColorType::Rgb);
        let out = ensure_huffman_tables(&jpeg);
        assert!(
            matches!(out, Cow::Borrowed(b) if b.as_ptr() == jpeg.as_ptr() && b.len() == jpeg.len())
        );
    }

    #[test]
    fn any_input_is_survived_and_non_jpeg_passes_through() {
        let stripped = strip_dht(&jpeg_of(&picture(W, H), W, H, ColorType::Rgb));
        let sos = segments(&stripped).last().unwrap().1;
        let mut seed = 0x2545_F491_u32;
        let mut rng = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize
        };
        // Every truncation: tables only once the SOS marker is there.
        for len in 0..stripped.len() {
            let out = ensure_huffman_tables(&stripped[..len]);
            assert_eq!(
                matches!(out, Cow::Owned(_)),
                len >= sos + 2,
                "truncated to {len}"
            );
        }
        for _ in 0..5000 {
            // Random bytes, half of them after an SOI marker.
            let mut junk: Vec<u8> = (0..rng() % 64).map(|_| rng() as u8).collect();
            if rng() % 2 == 0 {
                junk.splice(0..0, [0xFF, 0xD8]);
            }
            let _ = ensure_huffman_tables(&junk);
            // A real header with a few bytes changed.
            let mut broken = stripped[..sos + 20].to_vec();
            for _ in 0..1 + rng() % 4 {
                let i = rng() % broken.len();
                broken[i] = rng() as u8;
            }
            let _ = ensure_huffman_tables(&broken);
        }
        assert!(matches!(
            ensure_huffman_tables(b"not a jpeg"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(ensure_huffman_tables(b""), Cow::Borrowed(_)));
    }

    fn frame(data: Vec<u8>, format: PixelFormat, w: usize, h: usize) -> RawFrame {
        RawFrame {
            data,
            format,
            width: w as u32,
            height: h as u32,
        }
    }

    #[test]
    fn raw_formats_encode_to_the_same_picture_and_mirror() {
        let rgb = picture(W, H);
        let grey: Vec<u8> = rgb
            .chunks_exact(3)
            .flat_map(|p| [byte(ycbcr(p)[0]); 3])
            .collect();
        let mut encoder = RawEncoder::new();
        for format in [
            PixelFormat::Yuyv,
            PixelFormat::Nv12,
            PixelFormat::Gray,
            PixelFormat::Rgb,
            PixelFormat::Bgr,
        ] {
            let expected = if format == PixelFormat::Gray {
                &grey
            } else {
                &rgb
            };
            let mut data = to_format(&rgb, W, H, format);
            // Drivers may pad frames; the padding is not picture.
            data.extend_from_slice(&[0xAA; 100]);
            let raw = frame(data, format, W, H);
            for mirror in [false, true] {
                let jpeg = encoder.encode(&raw, 90, mirror).unwrap();
                let (w, h, decoded) = decode(&jpeg).unwrap();
                assert_eq!((w, h), (W, H), "{format}");
                let expected = if mirror {
                    mirrored(expected, W)
                } else {
                    expected.clone()
                };
                assert_close(
                    &decoded,
                    &expected,
                    W,
                    H,
                    &format!("{format} mirror={mirror}"),
                );
            }
            assert_eq!(decode(&encode_raw(&raw, 90, false).unwrap()).unwrap().0, W);
        }
    }

    /// The flat quadrants above cannot tell the two pixels of a YUYV pair apart: rows exactly.
    #[test]
    fn yuyv_and_nv12_rows_are_fed_exactly() {
        let rows = |image: &dyn ImageBuffer| {
            let mut bufs: [Vec<u8>; 4] = Default::default();
            image.fill_buffers(0, &mut bufs);
            image.fill_buffers(1, &mut bufs);
            bufs
        };
        let yuyv = [
            10, 100, 11, 200, 12, 101, 13, 201, 20, 102, 21, 202, 22, 103, 23, 203,
        ];
        let nv12 = [10, 11, 12, 13, 20, 21, 22, 23, 100, 200, 101, 201];
        let (data, width, height) = (&yuyv[..], 4, 2);
        let plain = [
            Yuyv {
                data,
                width,
                height,
                mirror: false,
            },
            Yuyv {
                data,
                width,
                height,
                mirror: true,
            },
        ];
        let data = &nv12[..];
        let nv = [
            Nv12 {
                data,
                width,
                height,
                mirror: false,
            },
            Nv12 {
                data,
                width,
                height,
                mirror: true,
            },
        ];
        assert_eq!(
            rows(&plain[0]),
            [
                vec![10, 11, 12, 13, 20, 21, 22, 23],
                vec![100, 100, 101, 101, 102, 102, 103, 103],
                vec![200, 200, 201, 201, 202, 202, 203, 203],
                vec![]
            ]
        );
        assert_eq!(
            rows(&plain[1]),
            [
                vec![13, 12, 11, 10, 23, 22, 21, 20],
                vec![101, 101, 100, 100, 103, 103, 102, 102],
                vec![201, 201, 200, 200, 203, 203, 202, 202],
                vec![]
            ]
        );
        assert_eq!(
            rows(&nv[0]),
            [
                vec![10, 11, 12, 13, 20, 21, 22, 23],
                vec![100, 100, 101, 101, 100, 100, 101, 101],
                vec![200, 200, 201, 201, 200, 200, 201, 201],
                vec![]
            ]
        );
        assert_eq!(
            rows(&nv[1]),
            [
                vec![13, 12, 11, 10, 23, 22, 21, 20],
                vec![101, 101, 100, 100, 101, 101, 100, 100],
                vec![201, 201, 200, 200, 201, 201, 200, 200],
                vec![]
            ]
        );
    }

    #[test]
    fn unusable_raw_frames_are_errors() {
        for format in [
            PixelFormat::Yuyv,
            PixelFormat::Nv12,
            PixelFormat::Gray,
            PixelFormat::Rgb,
            PixelFormat::Bgr,
        ] {
            let expected = format.frame_len(W as u32, H as u32).unwrap();
            let err =
                encode_raw(&frame(vec![0; expected - 1], format, W, H), 80, false).unwrap_err();
            assert!(
                matches!(err, ConvertError::TooShort { expected: e, actual, .. } if e == expected && actual == expected - 1),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("{format} frame of 80x48")),
                "{err}"
            );
            let err = encode_raw(&frame(Vec::new(), format, 0, 0), 80, true).unwrap_err();
            assert!(matches!(err, ConvertError::Unsupported { .. }), "{err}");
        }
        let jpeg = jpeg_of(&picture(W, H), W, H, ColorType::Rgb);
        let err = encode_raw(&frame(jpeg, PixelFormat::Mjpeg, W, H), 80, false).unwrap_err();
        assert!(matches!(err, ConvertError::Unsupported { .. }), "{err}");
        let err = encode_raw(
            &frame(vec![0; 2 * 7 * 4], PixelFormat::Yuyv, 7, 4),
            80,
            false,
        )
        .unwrap_err();
        assert!(matches!(err, ConvertError::Unsupported { .. }), "{err}");
        let err = encode_raw(
            &frame(vec![0; 3 * 70_000], PixelFormat::Rgb, 70_000, 1),
            80,
            false,
        )
        .unwrap_err();
        assert!(matches!(err, ConvertError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn mjpeg_mirrors_with_or_without_tables() {
        let rgb = picture(W, H);
        let grey: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
        let grey_rgb: Vec<u8> = grey.iter().flat_map(|&v| [v; 3]).collect();
        for (jpeg, expected) in [
            (jpeg_of(&rgb, W, H, ColorType::Rgb), &rgb),
            (
                as_avi1(&strip_dht(&jpeg_of(&rgb, W, H, ColorType::Rgb))),
                &rgb,
            ),
            (strip_dht(&jpeg_of(&grey, W, H, ColorType::Luma)), &grey_rgb),
        ] {
            let (w, h, decoded) = decode(&mirror_jpeg(&jpeg, 90).unwrap()).unwrap();
            assert_eq!((w, h), (W, H));
            assert_close(&decoded, &mirrored(expected, W), W, H, "mirrored MJPEG");
        }
        assert!(matches!(
            mirror_jpeg(b"\xff\xd8\xff\xe0 nonsense", 80),
            Err(ConvertError::Decode(_))
        ));
    }
}

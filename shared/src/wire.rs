//! The wire format of mjpeg-relay's two stream variants, as bytes.
//!
//! Both variants are a sequence of parts separated by `--` + [`BOUNDARY`] lines; every part is one
//! complete JPEG. They differ in where the boundary goes and which headers a part carries, because
//! they serve different readers (see `docs/wire-format.md` for the why):
//!
//! - classic, [`Layout::Advance`] (default for `<img>`): each JPEG is followed, in the same write,
//!   by the boundary *and the next part's headers*. Chrome hands a part to the decoder only once the
//!   next part's header block has arrived, so this makes it paint each frame as soon as it lands.
//!   The next frame is not known yet, so these parts carry only `Content-Type`.
//! - classic, [`Layout::Strict`]: every part carries `Content-Length`, `X-Sequence` and
//!   `X-Timestamp`, and the
//!   boundary line follows each frame at once, for parsers that need lengths.
//! - fetch-readable ([`Layout::Frames`]): served as `application/octet-stream` (WebKit refuses
//!   `reader.read()` on multipart/x-mixed-replace) with the same `boundary=` parameter. Every part
//!   carries `Content-Length`, [`HEADER_SEQUENCE`] and [`HEADER_TIMESTAMP`], and ends with CRLF, so a
//!   reader that honours `Content-Length` has the frame without waiting for the next boundary.

use std::fmt::Write as _;

/// The boundary every stream uses (without the leading `--`).
pub const BOUNDARY: &str = "mjpegrelayframe";
/// `Content-Type` of the classic stream (`/streams/NAME.mjpg`).
pub const CLASSIC_CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=mjpegrelayframe";
/// `Content-Type` of the fetch-readable stream (`/streams/NAME.frames`).
pub const FRAMES_CONTENT_TYPE: &str = "application/octet-stream; boundary=mjpegrelayframe";
/// `Content-Type` of each part and of snapshots.
pub const JPEG_CONTENT_TYPE: &str = "image/jpeg";
/// Part header: the frame's capture time, Unix seconds with six decimals (`1763700000.123456`).
pub const HEADER_TIMESTAMP: &str = "X-Timestamp";
/// Part header: the frame's sequence number in its stream, counting from 1; gaps are frames this
/// viewer skipped.
pub const HEADER_SEQUENCE: &str = "X-Sequence";
/// Response header on snapshots and streams: the stream's name.
pub const HEADER_STREAM: &str = "X-Stream";

/// How a stream's parts are laid out on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Classic, boundary and next headers right after each frame (Chrome paints at once).
    Advance,
    /// Classic, `Content-Length`, `X-Sequence` and `X-Timestamp` on every part.
    Strict,
    /// Fetch-readable: `Content-Length`, `X-Sequence`, `X-Timestamp` on every part.
    Frames,
}

impl Layout {
    /// Every layout, in a fixed order (index = [`Layout::index`]).
    pub const ALL: [Layout; 3] = [Layout::Advance, Layout::Strict, Layout::Frames];

    /// A small dense index, for per-layout caches.
    pub fn index(self) -> usize {
        match self {
            Layout::Advance => 0,
            Layout::Strict => 1,
            Layout::Frames => 2,
        }
    }

    /// The response `Content-Type` for this layout.
    pub fn content_type(self) -> &'static str {
        match self {
            Layout::Advance | Layout::Strict => CLASSIC_CONTENT_TYPE,
            Layout::Frames => FRAMES_CONTENT_TYPE,
        }
    }

    /// Bytes a viewer receives once, before its first part.
    pub fn preamble(self) -> &'static [u8] {
        match self {
            // The first part's headers, so that the first frame is followed by the second part's.
            Layout::Advance => b"--mjpegrelayframe\r\nContent-Type: image/jpeg\r\n\r\n",
            Layout::Strict => b"--mjpegrelayframe\r\n",
            Layout::Frames => b"",
        }
    }

    /// Appends one part carrying `jpeg` to `out`, exactly as it goes on the wire after the
    /// preamble. `seq` and `timestamp_micros` are written where the layout carries them.
    pub fn write_part(self, out: &mut Vec<u8>, jpeg: &[u8], seq: u64, timestamp_micros: u64) {
        out.reserve(jpeg.len() + 160);
        match self {
            Layout::Advance => {
                out.extend_from_slice(jpeg);
                out.extend_from_slice(b"\r\n--mjpegrelayframe\r\nContent-Type: image/jpeg\r\n\r\n");
            }
            Layout::Strict => {
                let mut head = String::with_capacity(128);
                let _ = write!(
                    head,
                    "Content-Type: image/jpeg\r\nContent-Length: {}\r\n{}: {}\r\n{}: {}\r\n\r\n",
                    jpeg.len(),
                    HEADER_SEQUENCE,
                    seq,
                    HEADER_TIMESTAMP,
                    format_timestamp(timestamp_micros)
                );
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(jpeg);
                out.extend_from_slice(b"\r\n--mjpegrelayframe\r\n");
            }
            Layout::Frames => {
                let mut head = String::with_capacity(160);
                let _ = write!(
                    head,
                    "--{}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n{}: {}\r\n{}: {}\r\n\r\n",
                    BOUNDARY,
                    jpeg.len(),
                    HEADER_SEQUENCE,
                    seq,
                    HEADER_TIMESTAMP,
                    format_timestamp(timestamp_micros)
                );
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(jpeg);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// Formats Unix microseconds as the `X-Timestamp` value: seconds with exactly six decimals.
pub fn format_timestamp(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// Parses an `X-Timestamp` value (seconds, with any number of decimals up to microseconds, or
/// none) into Unix microseconds. Other servers send fewer decimals; more than six are truncated.
pub fn parse_timestamp(value: &str) -> Option<u64> {
    let value = value.trim();
    let (secs, frac) = match value.split_once('.') {
        Some((s, f)) => (s, f),
        None => (value, ""),
    };
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let mut micros: u64 = 0;
    for i in 0..6 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        micros = micros * 10 + digit;
    }
    secs.checked_mul(1_000_000)?.checked_add(micros)
}

/// Extracts the boundary from a `Content-Type` value such as
/// `multipart/x-mixed-replace; boundary="--frame"`. Quotes are removed; a leading `--`, which some
/// servers wrongly include in the parameter, is kept here and handled by the parser.
pub fn boundary_from_content_type(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_accept_other_servers_precision() {
        assert_eq!(format_timestamp(1_763_700_000_123_456), "1763700000.123456");
        assert_eq!(format_timestamp(5), "0.000005");
        assert_eq!(
            parse_timestamp("1763700000.123456"),
            Some(1_763_700_000_123_456)
        );
        assert_eq!(parse_timestamp("1763700000.5"), Some(1_763_700_000_500_000));
        assert_eq!(parse_timestamp("1763700000"), Some(1_763_700_000_000_000));
        assert_eq!(parse_timestamp(" 12.1234567 "), Some(12_123_456));
        assert_eq!(parse_timestamp("12.x"), None);
        assert_eq!(parse_timestamp("-1.0"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn boundary_parameter_forms() {
        assert_eq!(
            boundary_from_content_type(CLASSIC_CONTENT_TYPE),
            Some(BOUNDARY)
        );
        assert_eq!(
            boundary_from_content_type(FRAMES_CONTENT_TYPE),
            Some(BOUNDARY)
        );
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace;boundary=\"--myboundary\""),
            Some("--myboundary")
        );
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace; charset=x; BOUNDARY=ffmpeg"),
            Some("ffmpeg")
        );
        assert_eq!(boundary_from_content_type("image/jpeg"), None);
        assert_eq!(
            boundary_from_content_type("multipart/x-mixed-replace; boundary="),
            None
        );
    }

    #[test]
    fn frames_part_is_self_delimiting() {
        let mut out = Vec::new();
        Layout::Frames.write_part(&mut out, b"\xff\xd8JPEG\xff\xd9", 7, 1_000_000_250_000);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("--mjpegrelayframe\r\nContent-Type: image/jpeg\r\n"));
        assert!(text.contains("Content-Length: 8\r\n"));
        assert!(text.contains("X-Sequence: 7\r\n"));
        assert!(text.contains("X-Timestamp: 1000000.250000\r\n\r\n"));
        assert!(out.ends_with(b"\xff\xd9\r\n"));
    }

    #[test]
    fn advance_part_carries_the_next_parts_headers() {
        let mut out = Vec::new();
        Layout::Advance.write_part(&mut out, b"JPEG", 1, 0);
        assert_eq!(
            out,
            b"JPEG\r\n--mjpegrelayframe\r\nContent-Type: image/jpeg\r\n\r\n"
        );
        assert!(Layout::Advance.preamble().ends_with(b"\r\n\r\n"));
    }
}

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
//!   A frame from a pipeline also carries its stage times ([`HEADER_STAGE_PREFIX`]`NAME`), the
//!   relay's receipt last ([`STAGE_RECEIVED`]).
//! - fetch-readable with metadata ([`Layout::FramesMeta`], `?meta=1`): as `Frames`, and a frame
//!   that has metadata is preceded by a JSON part ([`META_CONTENT_TYPE`]) with the same
//!   `X-Sequence`.
//!
//! A part of a rendition (a frame resized or re-encoded for the viewer, `?width=`, `?size=`,
//! `?quality=`, or drawn over, `?overlay=1`) says which in [`HEADER_RENDITION`] on the layouts
//! that carry headers ([`Rendition`]).

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
/// The name under `/streams/` of the wall (`/streams/wall.frames?names=a,b`, several streams in
/// one response, [`Layout::Wall`]); no stream may be called that.
pub const WALL: &str = "wall";
/// Streams one wall may carry (the relay refuses more; the dashboard's wall puts no more on it).
pub const WALL_MAX_STREAMS: usize = 32;
/// Response header on snapshots and streams: the stream's name. On a wall
/// ([`Layout::Wall`]) a part header too, naming the stream each part belongs to.
pub const HEADER_STREAM: &str = "X-Stream";
/// Part header prefix of a pipeline stage's time: `X-Stage-Inferred: 1763700000.123456` (Unix
/// seconds, as [`HEADER_TIMESTAMP`]), in the order the stages happened.
pub const HEADER_STAGE_PREFIX: &str = "X-Stage-";
/// The stage every relay adds when it receives a frame from a pusher or an upstream. Stage names
/// are lower case, as HTTP/2 carries every header name (a pusher's `X-Stage-Inferred` is the
/// stage `inferred`).
pub const STAGE_RECEIVED: &str = "received";
/// `Content-Type` of a frame's metadata part.
pub const META_CONTENT_TYPE: &str = "application/json";
/// Part and snapshot header: the rendition the JPEG is ([`Rendition`]); absent on the source's
/// own frames.
pub const HEADER_RENDITION: &str = "X-Rendition";

/// What [`HEADER_RENDITION`] says: the picture's size, the JPEG quality it was encoded at, and
/// whether the frame's metadata is drawn into it. Written `640x360;q=70`, with `;overlay` after
/// it when drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rendition {
    pub width: u32,
    pub height: u32,
    pub quality: u8,
    pub overlay: bool,
}

impl std::fmt::Display for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{};q={}", self.width, self.height, self.quality)?;
        if self.overlay {
            f.write_str(";overlay")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Rendition {
    type Err = ();

    /// Reads what [`Rendition`]'s `Display` writes (whitespace around the parts allowed);
    /// anything else is `Err`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.split(';').map(str::trim);
        let (w, h) = parts.next().ok_or(())?.split_once('x').ok_or(())?;
        let mut r = Rendition {
            width: w.parse().map_err(|_| ())?,
            height: h.parse().map_err(|_| ())?,
            quality: 0,
            overlay: false,
        };
        for part in parts {
            match part.split_once('=') {
                Some(("q", q)) => r.quality = q.parse().map_err(|_| ())?,
                None if part == "overlay" => r.overlay = true,
                _ => return Err(()),
            }
        }
        if r.quality == 0 {
            return Err(());
        }
        Ok(r)
    }
}

/// What a part carries besides the JPEG.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartInfo<'a> {
    pub seq: u64,
    /// Capture time, Unix microseconds.
    pub timestamp_micros: u64,
    /// Pipeline stages, (name, Unix microseconds), in order.
    pub stages: &'a [(String, u64)],
    /// The frame's metadata (JSON), for [`Layout::FramesMeta`].
    pub meta: Option<&'a [u8]>,
    /// The rendition this JPEG is, if not the source's own frame.
    pub rendition: Option<Rendition>,
    /// The stream the frame belongs to, for [`Layout::Wall`].
    pub stream: Option<&'a str>,
}

/// How a stream's parts are laid out on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// Classic, boundary and next headers right after each frame (Chrome paints at once).
    Advance,
    /// Classic, `Content-Length`, `X-Sequence` and `X-Timestamp` on every part.
    Strict,
    /// Fetch-readable: `Content-Length`, `X-Sequence`, `X-Timestamp` (and stages) on every part.
    Frames,
    /// `Frames`, with each frame's metadata as a JSON part right before it (`?meta=1`).
    FramesMeta,
    /// `Frames` of several streams in one response (`/streams/wall.frames`), each part naming
    /// its stream in [`HEADER_STREAM`].
    Wall,
}

impl Layout {
    /// Every layout, in a fixed order (index = [`Layout::index`]).
    pub const ALL: [Layout; 5] = [
        Layout::Advance,
        Layout::Strict,
        Layout::Frames,
        Layout::FramesMeta,
        Layout::Wall,
    ];

    /// A small dense index, for per-layout caches.
    pub fn index(self) -> usize {
        match self {
            Layout::Advance => 0,
            Layout::Strict => 1,
            Layout::Frames => 2,
            Layout::FramesMeta => 3,
            Layout::Wall => 4,
        }
    }

    /// The response `Content-Type` for this layout.
    pub fn content_type(self) -> &'static str {
        match self {
            Layout::Advance | Layout::Strict => CLASSIC_CONTENT_TYPE,
            Layout::Frames | Layout::FramesMeta | Layout::Wall => FRAMES_CONTENT_TYPE,
        }
    }

    /// Bytes a viewer receives once, before its first part.
    pub fn preamble(self) -> &'static [u8] {
        match self {
            // The first part's headers, so that the first frame is followed by the second part's.
            Layout::Advance => b"--mjpegrelayframe\r\nContent-Type: image/jpeg\r\n\r\n",
            Layout::Strict => b"--mjpegrelayframe\r\n",
            Layout::Frames | Layout::FramesMeta | Layout::Wall => b"",
        }
    }

    /// Appends one part carrying `jpeg` to `out`, exactly as it goes on the wire after the
    /// preamble. `seq` and `timestamp_micros` are written where the layout carries them.
    pub fn write_part(self, out: &mut Vec<u8>, jpeg: &[u8], seq: u64, timestamp_micros: u64) {
        let info = PartInfo {
            seq,
            timestamp_micros,
            ..PartInfo::default()
        };
        self.write_part_with(out, jpeg, &info);
    }

    /// [`Layout::write_part`], with what a pipeline said about the frame: stages on the
    /// fetch-readable layouts, the metadata part on [`Layout::FramesMeta`].
    pub fn write_part_with(self, out: &mut Vec<u8>, jpeg: &[u8], info: &PartInfo) {
        let (seq, timestamp_micros) = (info.seq, info.timestamp_micros);
        out.reserve(jpeg.len() + 160 + info.meta.map_or(0, |m| m.len() + 100));
        match self {
            Layout::Advance => {
                out.extend_from_slice(jpeg);
                out.extend_from_slice(b"\r\n--mjpegrelayframe\r\nContent-Type: image/jpeg\r\n\r\n");
            }
            Layout::Strict => {
                let mut head = String::with_capacity(160);
                let _ = write!(
                    head,
                    "Content-Type: image/jpeg\r\nContent-Length: {}\r\n{}: {}\r\n{}: {}\r\n",
                    jpeg.len(),
                    HEADER_SEQUENCE,
                    seq,
                    HEADER_TIMESTAMP,
                    format_timestamp(timestamp_micros)
                );
                if let Some(r) = info.rendition {
                    let _ = write!(head, "{HEADER_RENDITION}: {r}\r\n");
                }
                head.push_str("\r\n");
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(jpeg);
                out.extend_from_slice(b"\r\n--mjpegrelayframe\r\n");
            }
            Layout::Frames | Layout::FramesMeta | Layout::Wall => {
                let mut head = String::with_capacity(160);
                if let (Layout::FramesMeta, Some(meta)) = (self, info.meta) {
                    let _ = write!(
                        head,
                        "--{BOUNDARY}\r\nContent-Type: {META_CONTENT_TYPE}\r\nContent-Length: {}\r\n\
                         {HEADER_SEQUENCE}: {seq}\r\n\r\n",
                        meta.len(),
                    );
                    out.extend_from_slice(head.as_bytes());
                    out.extend_from_slice(meta);
                    out.extend_from_slice(b"\r\n");
                    head.clear();
                }
                let _ = write!(
                    head,
                    "--{}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n{}: {}\r\n{}: {}\r\n",
                    BOUNDARY,
                    jpeg.len(),
                    HEADER_SEQUENCE,
                    seq,
                    HEADER_TIMESTAMP,
                    format_timestamp(timestamp_micros)
                );
                for (name, micros) in info.stages {
                    let _ = write!(
                        head,
                        "{HEADER_STAGE_PREFIX}{name}: {}\r\n",
                        format_timestamp(*micros)
                    );
                }
                if let Some(r) = info.rendition {
                    let _ = write!(head, "{HEADER_RENDITION}: {r}\r\n");
                }
                if let (Layout::Wall, Some(name)) = (self, info.stream) {
                    let _ = write!(head, "{HEADER_STREAM}: {name}\r\n");
                }
                head.push_str("\r\n");
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(jpeg);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// True for a stage name a header can carry: letters, digits and `-`, at most 64 of them.
pub fn valid_stage_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
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
    fn frames_parts_carry_stages_in_order_and_meta_first() {
        let stages = vec![
            ("inferred".to_string(), 2_000_000),
            ("received".to_string(), 3_000_000),
        ];
        let info = PartInfo {
            seq: 9,
            timestamp_micros: 1_000_000,
            stages: &stages,
            meta: Some(br#"{"boxes":[]}"#),
            rendition: None,
            stream: None,
        };
        let mut plain = Vec::new();
        Layout::Frames.write_part_with(&mut plain, b"JPEG", &info);
        let text = String::from_utf8_lossy(&plain);
        assert!(
            !text.contains("application/json"),
            "no metadata without meta=1"
        );
        let inferred = text.find("X-Stage-inferred: 2.000000\r\n").unwrap();
        let received = text.find("X-Stage-received: 3.000000\r\n").unwrap();
        assert!(inferred < received);
        let mut with_meta = Vec::new();
        Layout::FramesMeta.write_part_with(&mut with_meta, b"JPEG", &info);
        let text = String::from_utf8_lossy(&with_meta);
        assert!(text.starts_with(
            "--mjpegrelayframe\r\nContent-Type: application/json\r\nContent-Length: 12\r\nX-Sequence: 9\r\n\r\n{\"boxes\":[]}\r\n--mjpegrelayframe\r\nContent-Type: image/jpeg"
        ), "{text}");
        assert!(with_meta.ends_with(&plain), "the JPEG part is the same");
        assert!(
            valid_stage_name("Inferred-2") && !valid_stage_name("a b") && !valid_stage_name("")
        );
    }

    #[test]
    fn renditions_are_named_on_the_parts_that_carry_headers_and_read_back() {
        let r = Rendition {
            width: 320,
            height: 180,
            quality: 70,
            overlay: true,
        };
        assert_eq!(r.to_string(), "320x180;q=70;overlay");
        assert_eq!(" 320x180 ; q=70 ; overlay".parse(), Ok(r));
        let plain = Rendition {
            overlay: false,
            ..r
        };
        assert_eq!("320x180;q=70".parse(), Ok(plain));
        for bad in [
            "",
            "320x180",
            "320x180;q=0",
            "320;q=70",
            "320x180;q=70;big",
            "axb;q=1",
        ] {
            assert_eq!(bad.parse::<Rendition>(), Err(()), "{bad:?}");
        }
        let info = PartInfo {
            seq: 3,
            timestamp_micros: 1_000_000,
            rendition: Some(plain),
            ..PartInfo::default()
        };
        for layout in [Layout::Frames, Layout::FramesMeta, Layout::Strict] {
            let mut out = Vec::new();
            layout.write_part_with(&mut out, b"\xff\xd8JPEG\xff\xd9", &info);
            let mut parser = crate::multipart::MultipartParser::new(BOUNDARY);
            parser.push(layout.preamble());
            parser.push(&out);
            let part = parser.next_part().unwrap().expect("a whole part");
            assert_eq!(part.rendition(), Some(plain), "{layout:?}");
            assert_eq!(part.sequence(), Some(3));
        }
        let mut out = Vec::new();
        Layout::Advance.write_part_with(&mut out, b"JPEG", &info);
        assert!(!String::from_utf8_lossy(&out).contains(HEADER_RENDITION));
    }

    #[test]
    fn wall_parts_name_their_stream_and_interleave() {
        // A wall is parts of several streams in whatever order their frames came.
        let mut body = Layout::Wall.preamble().to_vec();
        for (stream, seq) in [("front", 7), ("back", 1), ("front", 8)] {
            let info = PartInfo {
                seq,
                timestamp_micros: 1_000_000,
                stream: Some(stream),
                ..PartInfo::default()
            };
            Layout::Wall.write_part_with(&mut body, b"\xff\xd8JPEG\xff\xd9", &info);
        }
        let mut parser =
            crate::multipart::MultipartParser::from_content_type(Layout::Wall.content_type())
                .unwrap();
        parser.push(&body);
        let mut got = Vec::new();
        while let Some(part) = parser.next_part().unwrap() {
            assert_eq!(&part.body[..], b"\xff\xd8JPEG\xff\xd9");
            got.push((part.stream().unwrap().to_string(), part.sequence().unwrap()));
        }
        let want = [("front", 7), ("back", 1), ("front", 8)].map(|(s, n)| (s.to_string(), n));
        assert_eq!(got, want);
        // The other layouts never name the stream on a part (the response header does).
        let info = PartInfo {
            stream: Some("front"),
            ..PartInfo::default()
        };
        for layout in [
            Layout::Advance,
            Layout::Strict,
            Layout::Frames,
            Layout::FramesMeta,
        ] {
            let mut out = Vec::new();
            layout.write_part_with(&mut out, b"JPEG", &info);
            assert!(
                !String::from_utf8_lossy(&out).contains(HEADER_STREAM),
                "{layout:?}"
            );
        }
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

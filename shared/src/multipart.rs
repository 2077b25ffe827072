//! Incremental multipart parser for MJPEG streams (this relay's and other servers').
//!
//! Owns the reading side of the wire format in [`crate::wire`], lenient enough for the streams
//! that IP cameras, ffmpeg and Flask-style servers actually send.
//!
//! Contract:
//! - bytes arrive in chunks of any size via `push`; `next_part` returns `Ok(None)` when more input
//!   is needed (partial input is the normal state, never an error).
//! - parts with `Content-Length` are returned as soon as their payload is complete, without waiting
//!   for the next boundary; parts without it end at the next boundary line.
//! - quoted boundaries, a leading `--` in the parameter, a missing CRLF before a boundary, LF-only
//!   line ends, a preamble before the first boundary, and a close delimiter `--B--` are handled.
//! - a part (or header block, or preamble) over the size limit gives an error instead of growing
//!   without bound; the parser then resynchronises at the next boundary.
//!
//! Memory stays bounded by about the part limit plus [`MAX_HEADER_BYTES`] plus one pushed chunk,
//! and each byte is searched a bounded number of times however the input is split, provided the
//! caller drains `next_part` after each `push`.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memmem::Finder;

/// Default limit on one part's payload: 16 MiB.
pub const DEFAULT_MAX_PART_SIZE: usize = 16 * 1024 * 1024;
/// Limit on one part's header block.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// One part of a multipart stream: its headers and its payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Header lines in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The payload (for MJPEG, one JPEG).
    pub body: Bytes,
}

impl Part {
    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// `X-Timestamp` as Unix microseconds.
    pub fn timestamp_micros(&self) -> Option<u64> {
        self.header(crate::wire::HEADER_TIMESTAMP)
            .and_then(crate::wire::parse_timestamp)
    }
    /// `X-Sequence`.
    pub fn sequence(&self) -> Option<u64> {
        self.header(crate::wire::HEADER_SEQUENCE)
            .and_then(|v| v.trim().parse().ok())
    }
    /// `X-Stream`: on a wall, the stream this part belongs to.
    pub fn stream(&self) -> Option<&str> {
        self.header(crate::wire::HEADER_STREAM).map(str::trim)
    }

    /// The part's `Content-Type`, without parameters, in lower case.
    pub fn content_type(&self) -> Option<String> {
        self.header("Content-Type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// `X-Rendition`: the rendition this part is; None for the source's own frames (or a value
    /// that does not parse).
    pub fn rendition(&self) -> Option<crate::wire::Rendition> {
        self.header(crate::wire::HEADER_RENDITION)?.parse().ok()
    }

    /// `X-Stage-NAME` headers as (NAME in lower case, Unix microseconds), in the order sent; a
    /// header whose name or time does not parse is left out.
    pub fn stages(&self) -> Vec<(String, u64)> {
        let prefix = crate::wire::HEADER_STAGE_PREFIX;
        self.headers
            .iter()
            .filter_map(|(name, value)| {
                let stage = name
                    .get(..prefix.len())
                    .filter(|p| p.eq_ignore_ascii_case(prefix))
                    .map(|_| &name[prefix.len()..])?;
                let micros = crate::wire::parse_timestamp(value)?;
                crate::wire::valid_stage_name(stage).then(|| (stage.to_ascii_lowercase(), micros))
            })
            .collect()
    }
}

/// Why the parser refused input. After any of these the parser skips to the next boundary and
/// carries on, so a caller may log, count and keep reading.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("part of {size} bytes or more exceeds the limit of {limit} bytes")]
    PartTooLarge { size: usize, limit: usize },
    #[error("part header block exceeds {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("malformed part header line: {line:?}")]
    BadHeader { line: String },
    #[error("bad Content-Length {value:?}")]
    BadContentLength { value: String },
    #[error("no boundary found in the first {limit} bytes")]
    NoBoundary { limit: usize },
    #[error("no boundary parameter in content type {content_type:?}")]
    NoBoundaryParameter { content_type: String },
}

/// How far the parser looks for a boundary line (in the preamble, or after a `Content-Length`
/// payload) before it reports [`ParseError::NoBoundary`]. Skipped bytes are dropped as they are
/// scanned, so this bounds how long garbage goes unreported, not memory.
const SEEK_LIMIT: usize = 64 * 1024;
/// Longest run of spaces and tabs accepted after a boundary (RFC 2046 "transport padding");
/// anything longer means the match was not a boundary line.
const MAX_PADDING: usize = 256;
/// Longest header line quoted in [`ParseError::BadHeader`], so binary garbage makes a short error.
const MAX_QUOTED_LINE: usize = 200;

/// The parser. See the module docs.
#[derive(Debug)]
pub struct MultipartParser {
    delimiter: Delimiter,
    max_part_size: usize,
    buf: BytesMut,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Looking for the next boundary line and dropping whatever precedes it: the preamble, the
    /// CRLF (or camera junk) after a `Content-Length` payload, or the rest of a refused part.
    /// `quiet` after an error, which was already reported; otherwise [`ParseError::NoBoundary`]
    /// after every [`SEEK_LIMIT`] bytes skipped.
    Seek { quiet: bool, skipped: usize },
    /// Reading header lines; `buf` starts at the current line, of which `scan` bytes hold no LF.
    Headers {
        headers: Vec<(String, String)>,
        size: usize,
        scan: usize,
    },
    /// A `Content-Length` payload of `len` bytes.
    Sized {
        headers: Vec<(String, String)>,
        len: usize,
    },
    /// A payload that ends at the next boundary; no delimiter starts before `scan`.
    Open {
        headers: Vec<(String, String)>,
        scan: usize,
    },
    /// After the close delimiter; all further input is ignored.
    Finished,
}

impl State {
    fn seek() -> Self {
        State::Seek {
            quiet: false,
            skipped: 0,
        }
    }
    /// Where the parser goes after refusing something: the next boundary, silently.
    fn resync() -> Self {
        State::Seek {
            quiet: true,
            skipped: 0,
        }
    }
    fn headers() -> Self {
        State::Headers {
            headers: Vec::new(),
            size: 0,
            scan: 0,
        }
    }
}

/// What one step of the state machine produced.
enum Step {
    Again,
    NeedMore,
    Part(Part),
}

impl MultipartParser {
    /// A parser for `boundary` (with or without a leading `--`; quotes already removed).
    pub fn new(boundary: &str) -> Self {
        MultipartParser {
            delimiter: Delimiter::new(boundary),
            max_part_size: DEFAULT_MAX_PART_SIZE,
            buf: BytesMut::new(),
            state: State::seek(),
        }
    }

    /// A parser for the boundary named in a `Content-Type` header value.
    pub fn from_content_type(content_type: &str) -> Result<Self, ParseError> {
        crate::wire::boundary_from_content_type(content_type)
            .map(Self::new)
            .ok_or_else(|| ParseError::NoBoundaryParameter {
                content_type: content_type.to_owned(),
            })
    }

    /// Sets the payload size limit (default [`DEFAULT_MAX_PART_SIZE`]).
    pub fn with_max_part_size(mut self, limit: usize) -> Self {
        self.max_part_size = limit;
        self
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        // The epilogue after the close delimiter means nothing; holding it would only cost memory.
        if !self.is_finished() {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete part, `Ok(None)` if more input is needed.
    pub fn next_part(&mut self) -> Result<Option<Part>, ParseError> {
        loop {
            match self.step()? {
                Step::Again => {}
                Step::NeedMore => return Ok(None),
                Step::Part(part) => return Ok(Some(part)),
            }
        }
    }

    /// True once the close delimiter `--B--` has been read.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Bytes held but not yet returned as parts.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn step(&mut self) -> Result<Step, ParseError> {
        let limit = self.max_part_size;
        let buf = &mut self.buf;
        match &mut self.state {
            State::Finished => Ok(Step::NeedMore),
            State::Seek { quiet, skipped } => match self.delimiter.find(buf, 0) {
                Found::Line { end, close, .. } => {
                    buf.advance(end);
                    self.next_delimited_part(close);
                    Ok(Step::Again)
                }
                Found::Incomplete(at) => {
                    buf.advance(at);
                    *skipped += at;
                    Ok(Step::NeedMore)
                }
                Found::Absent(resume) => {
                    buf.advance(resume);
                    *skipped += resume;
                    if !*quiet && *skipped > SEEK_LIMIT {
                        *skipped = 0;
                        return Err(ParseError::NoBoundary { limit: SEEK_LIMIT });
                    }
                    Ok(Step::NeedMore)
                }
            },
            State::Headers {
                headers,
                size,
                scan,
            } => {
                let Some(lf) = memchr::memchr(b'\n', &buf[*scan..]) else {
                    *scan = buf.len();
                    if *size + buf.len() > MAX_HEADER_BYTES {
                        self.state = State::resync();
                        return Err(ParseError::HeadersTooLarge {
                            limit: MAX_HEADER_BYTES,
                        });
                    }
                    return Ok(Step::NeedMore);
                };
                let line_len = *scan + lf + 1;
                *size += line_len;
                *scan = 0;
                if *size > MAX_HEADER_BYTES {
                    self.state = State::resync();
                    return Err(ParseError::HeadersTooLarge {
                        limit: MAX_HEADER_BYTES,
                    });
                }
                let line = trim_line_end(&buf[..line_len]);
                if line.is_empty() {
                    buf.advance(line_len);
                    let headers = std::mem::take(headers);
                    return self.start_payload(headers).map(|()| Step::Again);
                }
                let Some(header) = parse_header(line) else {
                    let line = quote_line(line);
                    // The line stays buffered: if it is itself a boundary line (a part with no
                    // blank line after its headers), resynchronising starts right there.
                    self.state = State::resync();
                    return Err(ParseError::BadHeader { line });
                };
                headers.push(header);
                buf.advance(line_len);
                Ok(Step::Again)
            }
            State::Sized { headers, len } => {
                if buf.len() < *len {
                    return Ok(Step::NeedMore);
                }
                let body = buf.split_to(*len).freeze();
                let headers = std::mem::take(headers);
                self.state = State::seek();
                Ok(Step::Part(Part { headers, body }))
            }
            State::Open { headers, scan } => match self.delimiter.find(buf, *scan) {
                Found::Line { start, end, close } => {
                    let mut body = buf.split_to(start).freeze();
                    buf.advance(end - start);
                    // The CRLF before a boundary belongs to the delimiter, not to the payload.
                    let eol = if body.ends_with(b"\r\n") {
                        2
                    } else {
                        usize::from(body.ends_with(b"\n"))
                    };
                    body.truncate(body.len() - eol);
                    let headers = std::mem::take(headers);
                    self.next_delimited_part(close);
                    if body.len() > limit {
                        return Err(ParseError::PartTooLarge {
                            size: body.len(),
                            limit,
                        });
                    }
                    Ok(Step::Part(Part { headers, body }))
                }
                Found::Incomplete(at) | Found::Absent(at) => {
                    *scan = at;
                    // A delimiter can start no earlier than two dashes before `scan`, and one
                    // CRLF before it is not payload, so the payload is at least this long.
                    let size = at.saturating_sub(4);
                    if size > limit {
                        self.state = State::resync();
                        return Err(ParseError::PartTooLarge { size, limit });
                    }
                    Ok(Step::NeedMore)
                }
            },
        }
    }

    /// Moves on from a complete header block to its payload.
    fn start_payload(&mut self, headers: Vec<(String, String)>) -> Result<(), ParseError> {
        let length = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"));
        let Some((_, value)) = length else {
            self.state = State::Open { headers, scan: 0 };
            return Ok(());
        };
        let Ok(len) = value.parse::<usize>() else {
            let value = value.clone();
            self.state = State::resync();
            return Err(ParseError::BadContentLength { value });
        };
        if len > self.max_part_size {
            self.state = State::resync();
            return Err(ParseError::PartTooLarge {
                size: len,
                limit: self.max_part_size,
            });
        }
        self.state = State::Sized { headers, len };
        Ok(())
    }

    /// Moves on after a delimiter line: to the next part's headers, or nowhere after `--B--`.
    fn next_delimited_part(&mut self, close: bool) {
        if close {
            self.buf = BytesMut::new();
            self.state = State::Finished;
        } else {
            self.state = State::headers();
        }
    }
}

/// `--` + boundary, and how to recognise it as a delimiter line.
#[derive(Debug)]
struct Delimiter {
    /// Finds `--` + the boundary without any leading `--` the parameter carried.
    finder: Finder<'static>,
    /// The parameter carried a leading `--`, so a line may read `--` + parameter (`----B`) as
    /// RFC 2046 says, or just the parameter (`--B`) as the server that wrote it meant; searching
    /// for the shorter form finds both.
    dashed: bool,
}

/// Where the first delimiter line at or after some position is.
enum Found {
    /// A whole delimiter line occupies `start..end`; `close` if it is `--B--`.
    Line {
        start: usize,
        end: usize,
        close: bool,
    },
    /// A match at this offset whose line has not fully arrived; look again from here.
    Incomplete(usize),
    /// No delimiter; none can start before this offset, as it leaves room for a partial match.
    Absent(usize),
}

/// What follows a boundary match.
enum Tail {
    Incomplete,
    NotDelimiter,
    /// A delimiter line, this many bytes after the boundary (padding and line end).
    Line(usize),
    Close,
}

impl Delimiter {
    fn new(boundary: &str) -> Self {
        let core = boundary.strip_prefix("--");
        let needle = format!("--{}", core.unwrap_or(boundary));
        Delimiter {
            finder: Finder::new(needle.as_bytes()).into_owned(),
            dashed: core.is_some(),
        }
    }

    fn find(&self, hay: &[u8], mut from: usize) -> Found {
        let needle_len = self.finder.needle().len();
        loop {
            let Some(offset) = self.finder.find(&hay[from..]) else {
                let resume = hay.len().saturating_sub(needle_len.saturating_sub(1));
                return Found::Absent(resume.max(from));
            };
            let at = from + offset;
            let close = match classify_tail(&hay[at + needle_len..]) {
                Tail::Incomplete => return Found::Incomplete(at),
                Tail::NotDelimiter => {
                    from = at + 1;
                    continue;
                }
                Tail::Line(len) => (false, at + needle_len + len),
                Tail::Close => (true, at + needle_len + 2),
            };
            let start = if self.dashed && at >= 2 && &hay[at - 2..at] == b"--" {
                at - 2
            } else {
                at
            };
            return Found::Line {
                start,
                end: close.1,
                close: close.0,
            };
        }
    }
}

/// Tells a boundary line (`--B`, optional spaces or tabs, CRLF or LF) or close delimiter (`--B--`)
/// from a payload that merely contains `--B`, given the bytes after `--B`.
fn classify_tail(tail: &[u8]) -> Tail {
    match tail {
        [] | [b'-'] => return Tail::Incomplete,
        // Whatever follows the close delimiter is epilogue, so there is no need to wait for it.
        [b'-', b'-', ..] => return Tail::Close,
        _ => {}
    }
    let padding = tail
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    if padding > MAX_PADDING {
        return Tail::NotDelimiter;
    }
    match &tail[padding..] {
        [] | [b'\r'] => Tail::Incomplete,
        [b'\n', ..] => Tail::Line(padding + 1),
        [b'\r', b'\n', ..] => Tail::Line(padding + 2),
        _ => Tail::NotDelimiter,
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `Name: value` with the name and value trimmed; `None` without a colon or a name.
fn parse_header(line: &[u8]) -> Option<(String, String)> {
    let colon = memchr::memchr(b':', line)?;
    let name = String::from_utf8_lossy(&line[..colon]).trim().to_owned();
    let value = String::from_utf8_lossy(&line[colon + 1..])
        .trim()
        .to_owned();
    (!name.is_empty()).then_some((name, value))
}

fn quote_line(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(MAX_QUOTED_LINE)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Layout, BOUNDARY};
    use proptest::prelude::*;

    /// Feeds `input` in chunks ending at `cuts` (any order, out-of-range ones ignored), draining
    /// the parser after every push as a real reader would.
    fn feed(
        parser: &mut MultipartParser,
        input: &[u8],
        cuts: &[usize],
    ) -> Vec<Result<Part, ParseError>> {
        let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut from = 0;
        for cut in cuts {
            parser.push(&input[from..cut]);
            from = cut;
            loop {
                match parser.next_part() {
                    Ok(Some(part)) => out.push(Ok(part)),
                    Ok(None) => break,
                    Err(e) => out.push(Err(e)),
                }
            }
        }
        out
    }

    fn parts(parser: &mut MultipartParser, input: &[u8], cuts: &[usize]) -> Vec<Part> {
        feed(parser, input, cuts)
            .into_iter()
            .map(|r| r.expect("no errors"))
            .collect()
    }

    fn bodies(parts: &[Part]) -> Vec<&[u8]> {
        parts.iter().map(|p| &p.body[..]).collect()
    }

    fn every_byte(input: &[u8]) -> Vec<usize> {
        (1..input.len()).collect()
    }

    fn stream(layout: Layout, payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = layout.preamble().to_vec();
        for (i, payload) in payloads.iter().enumerate() {
            layout.write_part(
                &mut out,
                payload,
                i as u64 + 1,
                1_700_000_000_000_000 + i as u64 * 33_333,
            );
        }
        out
    }

    proptest! {
        #[test]
        fn every_layout_round_trips_however_split(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
            cuts in prop::collection::vec(0usize..2000, 0..40),
        ) {
            for layout in Layout::ALL {
                let input = stream(layout, &payloads);
                let mut parser = MultipartParser::from_content_type(layout.content_type()).unwrap();
                let got = parts(&mut parser, &input, &cuts);
                prop_assert_eq!(got.len(), payloads.len());
                for (i, (part, payload)) in got.iter().zip(&payloads).enumerate() {
                    prop_assert_eq!(&part.body[..], &payload[..]);
                    prop_assert_eq!(part.header("content-type"), Some(wire::JPEG_CONTENT_TYPE));
                    let micros = 1_700_000_000_000_000 + i as u64 * 33_333;
                    match layout {
                        Layout::Advance => prop_assert_eq!(part.timestamp_micros(), None),
                        Layout::Strict | Layout::Frames | Layout::FramesMeta | Layout::Wall => {
                            prop_assert_eq!(part.timestamp_micros(), Some(micros));
                            prop_assert_eq!(part.sequence(), Some(i as u64 + 1));
                        }
                    }
                }
                prop_assert!(!parser.is_finished());
            }
        }

        #[test]
        fn one_byte_chunks(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 1..4),
        ) {
            for layout in Layout::ALL {
                let input = stream(layout, &payloads);
                let mut parser = MultipartParser::new(BOUNDARY);
                let got = parts(&mut parser, &input, &every_byte(&input));
                prop_assert_eq!(bodies(&got), payloads.iter().map(|p| &p[..]).collect::<Vec<_>>());
            }
        }
    }

    proptest! {
        // Each case decodes every JPEG in both captures, which is slow in debug builds.
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn captures_parse_however_split(cuts in prop::collection::vec(0usize..30_000, 0..60)) {
            check_ffmpeg_capture(&cuts);
            check_flask_capture(&cuts);
        }
    }

    /// A parser that searched the whole buffered part on every push would take minutes here
    /// (32768 pushes of a part growing to 2 MiB); remembering how far it searched takes no time.
    #[test]
    fn big_parts_in_small_chunks_are_searched_once() {
        let payload: Vec<u8> = (0..2 << 20).map(|i: u32| (i % 239) as u8).collect();
        for layout in Layout::ALL {
            let input = stream(layout, std::slice::from_ref(&payload));
            let cuts: Vec<usize> = (1..input.len() / 64).map(|i| i * 64).collect();
            let mut parser = MultipartParser::new(BOUNDARY);
            let got = parts(&mut parser, &input, &cuts);
            assert!(got.len() == 1 && got[0].body == payload, "{layout:?}");
        }
    }

    #[test]
    fn content_length_part_comes_out_before_the_next_boundary() {
        let jpeg = b"\xff\xd8 a frame \xff\xd9";
        for layout in [Layout::Strict, Layout::Frames] {
            let mut input = layout.preamble().to_vec();
            layout.write_part(&mut input, jpeg, 3, 5_000_000);
            // Exactly the headers and payload: no CRLF, no boundary after it yet.
            let end = input.windows(jpeg.len()).position(|w| w == jpeg).unwrap() + jpeg.len();
            let mut parser = MultipartParser::new(BOUNDARY);
            let got = parts(&mut parser, &input[..end], &[]);
            assert_eq!(bodies(&got), [&jpeg[..]], "{layout:?}");
            assert_eq!(got[0].timestamp_micros(), Some(5_000_000));
            assert_eq!(parser.buffered(), 0);
            // The rest of the stream still parses.
            parser.push(&input[end..]);
            let mut more = Vec::new();
            layout.write_part(&mut more, b"next", 4, 6_000_000);
            assert_eq!(bodies(&parts(&mut parser, &more, &[])), [b"next"]);
        }
    }

    #[test]
    fn quoted_boundary_and_lf_only_lines() {
        let mut parser =
            MultipartParser::from_content_type("multipart/x-mixed-replace;boundary=\"my frame\"")
                .unwrap();
        let input = b"--my frame\nContent-Type: image/jpeg\n\nONE\n\
            --my frame\ncontent-length: 3\n\nTWO\n--my frame\n";
        let got = parts(&mut parser, input, &[]);
        assert_eq!(bodies(&got), [b"ONE", b"TWO"]);
        assert_eq!(
            got[1].headers,
            [("content-length".to_owned(), "3".to_owned())]
        );
        assert_eq!(got[0].header("CONTENT-TYPE"), Some("image/jpeg"));
    }

    #[test]
    fn missing_boundary_parameter() {
        assert_eq!(
            MultipartParser::from_content_type("multipart/x-mixed-replace").unwrap_err(),
            ParseError::NoBoundaryParameter {
                content_type: "multipart/x-mixed-replace".into()
            }
        );
    }

    #[test]
    fn leading_dashes_in_the_parameter_accept_both_line_forms() {
        let content_type = "multipart/x-mixed-replace; boundary=--myboundary";
        // As RFC 2046 reads it: `--` + parameter.
        let rfc = b"----myboundary\r\nContent-Type: image/jpeg\r\n\r\nA\r\n\
            ----myboundary\r\n\r\nB\r\n----myboundary--\r\n";
        // As the server meant it: the parameter is the whole line.
        let meant = b"--myboundary\r\nContent-Type: image/jpeg\r\n\r\nA\r\n\
            --myboundary\r\n\r\nB\r\n--myboundary--\r\n";
        for input in [&rfc[..], &meant[..]] {
            for cuts in [vec![], every_byte(input)] {
                let mut parser = MultipartParser::from_content_type(content_type).unwrap();
                assert_eq!(bodies(&parts(&mut parser, input, &cuts)), [b"A", b"B"]);
                assert!(parser.is_finished());
            }
        }
        // A plain parameter does not take the extra dashes as part of the delimiter.
        let mut parser = MultipartParser::new("b");
        assert_eq!(
            bodies(&parts(&mut parser, b"--b\r\n\r\nx--\r\n--b\r\n", &[])),
            [b"x--"]
        );
    }

    #[test]
    fn boundary_right_after_the_payload() {
        let input =
            b"--frame\r\n\r\n\xff\xd8one\xff\xd9--frame\r\n\r\n\xff\xd8two\xff\xd9--frame  \t\r\n";
        for cuts in [vec![], every_byte(input)] {
            let mut parser = MultipartParser::new("frame");
            let got = parts(&mut parser, input, &cuts);
            assert_eq!(
                bodies(&got),
                [&b"\xff\xd8one\xff\xd9"[..], b"\xff\xd8two\xff\xd9"]
            );
            assert!(got[0].headers.is_empty());
        }
    }

    #[test]
    fn strips_only_one_line_end_before_the_boundary() {
        let input = b"--f\r\n\r\nA\r\n\r\n--f\r\n\r\nB\n\n--f\r\n\r\nC\r\r\n--f\n";
        let mut parser = MultipartParser::new("f");
        assert_eq!(
            bodies(&parts(&mut parser, input, &[])),
            [&b"A\r\n"[..], b"B\n", b"C\r"]
        );
    }

    #[test]
    fn boundary_lookalikes_inside_a_payload_are_payload() {
        let input = b"--f\r\n\r\nx--fy\r\n--f-\r\n--f \tz\r\n--f\r\n";
        for cuts in [vec![], every_byte(input)] {
            let mut parser = MultipartParser::new("f");
            assert_eq!(
                bodies(&parts(&mut parser, input, &cuts)),
                [&b"x--fy\r\n--f-\r\n--f \tz"[..]]
            );
        }
    }

    #[test]
    fn preamble_is_skipped_and_endless_junk_reported() {
        let input = b"HTTP junk\r\n--frame-not\r\nmore\r\n--frame\r\n\r\nA\r\n--frame\r\n";
        let mut parser = MultipartParser::new("frame");
        assert_eq!(bodies(&parts(&mut parser, input, &[3, 20])), [b"A"]);

        let mut parser = MultipartParser::new("frame");
        let junk = vec![b'j'; 3 * SEEK_LIMIT];
        let got = feed(
            &mut parser,
            &junk,
            &(1..300).map(|i| i * 1000).collect::<Vec<_>>(),
        );
        assert!(got.len() >= 2);
        assert!(got
            .iter()
            .all(|r| *r == Err(ParseError::NoBoundary { limit: SEEK_LIMIT })));
        assert!(parser.buffered() < 16);
        // A boundary straddling two chunks is still found after the junk.
        let got = parts(&mut parser, b"--fr", &[]);
        assert!(got.is_empty());
        assert_eq!(
            bodies(&parts(&mut parser, b"ame\r\n\r\nB\r\n--frame\r\n", &[])),
            [b"B"]
        );
    }

    #[test]
    fn close_delimiter_finishes_and_ignores_the_rest() {
        let input = b"--frame\r\n\r\nA\r\n--frame--\r\nepilogue\r\n--frame\r\n\r\nB\r\n--frame\r\n";
        for cuts in [vec![], every_byte(input)] {
            let mut parser = MultipartParser::new("frame");
            assert_eq!(bodies(&parts(&mut parser, input, &cuts)), [b"A"]);
            assert!(parser.is_finished());
            assert_eq!(parser.buffered(), 0);
            parser.push(b"--frame\r\n\r\nC\r\n--frame\r\n");
            assert_eq!(parser.buffered(), 0);
            assert_eq!(parser.next_part(), Ok(None));
        }
        // Also right after a Content-Length payload.
        let mut parser = MultipartParser::new("frame");
        let input = b"--frame\r\nContent-Length: 1\r\n\r\nA\r\n--frame--";
        assert_eq!(bodies(&parts(&mut parser, input, &[])), [b"A"]);
        assert!(parser.is_finished());
    }

    #[test]
    fn junk_after_a_content_length_payload_is_skipped() {
        let input = b"--frame\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9\0\0camera junk\r\n\
            --frame\r\nContent-Length: 1\r\n\r\nB\
            --frame\r\nContent-Length: 1\r\n\r\nC\n\
            --frame\r\nContent-Length: 1\r\n\r\nD";
        for cuts in [vec![], every_byte(input)] {
            let mut parser = MultipartParser::new("frame");
            assert_eq!(
                bodies(&parts(&mut parser, input, &cuts)),
                [&b"\xff\xd8\xff\xd9"[..], b"B", b"C", b"D"]
            );
        }
    }

    #[test]
    fn payload_at_the_limit_passes_and_over_it_fails() {
        let limit = 10;
        let input = b"--f\r\nContent-Length: 10\r\n\r\n0123456789\r\n\
            --f\r\n\r\n0123456789\r\n\
            --f\r\nContent-Length: 11\r\n\r\n0123456789A\r\n\
            --f\r\n\r\n0123456789A\r\n\
            --f\r\n\r\nok\r\n--f\r\n";
        let mut parser = MultipartParser::new("f").with_max_part_size(limit);
        let got = feed(&mut parser, input, &[]);
        let summary: Vec<_> = got
            .iter()
            .map(|r| r.as_ref().map(|p| &p.body[..]))
            .collect();
        assert_eq!(
            summary,
            [
                Ok(&b"0123456789"[..]),
                Ok(&b"0123456789"[..]),
                Err(&ParseError::PartTooLarge { size: 11, limit }),
                Err(&ParseError::PartTooLarge { size: 11, limit }),
                Ok(&b"ok"[..]),
            ]
        );
    }

    /// An endless part 10x over the limit, arriving in small chunks, holds bounded memory, gives
    /// one error, and the next part parses.
    fn endless_part(headers: &[u8]) {
        let limit = 4096;
        let chunk = 100;
        let bound = limit + MAX_HEADER_BYTES + chunk;
        let mut parser = MultipartParser::new(BOUNDARY).with_max_part_size(limit);
        let mut errors = Vec::new();
        let mut push = |parser: &mut MultipartParser, data: &[u8]| {
            for piece in data.chunks(chunk) {
                parser.push(piece);
                loop {
                    match parser.next_part() {
                        Ok(Some(part)) => panic!("unexpected part {part:?}"),
                        Ok(None) => break,
                        Err(e) => errors.push(e),
                    }
                }
                assert!(parser.buffered() <= bound, "{} buffered", parser.buffered());
            }
        };
        push(&mut parser, b"--mjpegrelayframe\r\n");
        push(&mut parser, headers);
        let noise: Vec<u8> = (0..10 * limit).map(|i| (i * 7 % 251) as u8).collect();
        push(&mut parser, &noise);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            matches!(errors[0], ParseError::PartTooLarge { limit: 4096, .. }),
            "{errors:?}"
        );
        assert!(
            parser.buffered() < 2 * BOUNDARY.len(),
            "{} buffered",
            parser.buffered()
        );
        let mut good = Vec::new();
        Layout::Frames.write_part(&mut good, b"good", 9, 1);
        good.extend_from_slice(b"--mjpegrelayframe\r\n");
        let got = parts(&mut parser, &good, &[]);
        assert_eq!(bodies(&got), [b"good"]);
        assert_eq!(got[0].sequence(), Some(9));
    }

    #[test]
    fn endless_part_without_length_is_bounded() {
        endless_part(b"Content-Type: image/jpeg\r\n\r\n");
    }

    #[test]
    fn endless_part_with_length_is_bounded() {
        endless_part(b"Content-Type: image/jpeg\r\nContent-Length: 40960\r\n\r\n");
    }

    #[test]
    fn bad_header_line_resynchronises() {
        let input = b"--f\r\nContent-Type: image/jpeg\r\nnot a header\r\n\r\nLOST\r\n\
            --f\r\n\r\nA\r\n\
            --f\r\n--f\r\nX-Ok: 1\r\n\r\nB\r\n--f\r\n";
        for cuts in [vec![], every_byte(input)] {
            let mut parser = MultipartParser::new("f");
            let got = feed(&mut parser, input, &cuts);
            let summary: Vec<_> = got
                .iter()
                .map(|r| r.as_ref().map(|p| &p.body[..]))
                .collect();
            assert_eq!(
                summary,
                [
                    Err(&ParseError::BadHeader {
                        line: "not a header".into()
                    }),
                    Ok(&b"A"[..]),
                    // A part without even a blank line: its "header" is the next boundary line.
                    Err(&ParseError::BadHeader { line: "--f".into() }),
                    Ok(&b"B"[..]),
                ]
            );
            assert_eq!(got[3].as_ref().unwrap().header("x-ok"), Some("1"));
        }
    }

    #[test]
    fn bad_content_length_resynchronises() {
        let input = b"--f\r\nContent-Length: 12x\r\n\r\nLOST\r\n\
            --f\r\nContent-Length:  2 \r\n\r\nOK\r\n--f\r\n";
        let mut parser = MultipartParser::new("f");
        let got = feed(&mut parser, input, &[]);
        assert_eq!(
            got[0],
            Err(ParseError::BadContentLength {
                value: "12x".into()
            })
        );
        assert_eq!(&got[1].as_ref().unwrap().body[..], b"OK");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn oversized_header_block_resynchronises() {
        let mut input = b"--f\r\n".to_vec();
        for i in 0..MAX_HEADER_BYTES / 10 {
            input.extend_from_slice(format!("X-{i:05}: y\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\nLOST\r\n--f\r\n\r\nA\r\n--f\r\n");
        // And one endless header line, which must not be held whole.
        input.extend_from_slice(&[b'h'; 3 * MAX_HEADER_BYTES]);
        input.extend_from_slice(b"\r\n--f\r\n\r\nB\r\n--f\r\n");
        let mut parser = MultipartParser::new("f");
        let cuts: Vec<usize> = (1..input.len() / 500).map(|i| i * 500).collect();
        let got = feed(&mut parser, &input, &cuts);
        let summary: Vec<_> = got
            .iter()
            .map(|r| r.as_ref().map(|p| &p.body[..]))
            .collect();
        let too_large = ParseError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
        };
        assert_eq!(
            summary,
            [
                Err(&too_large),
                Ok(&b"A"[..]),
                Err(&too_large),
                Ok(&b"B"[..])
            ]
        );
    }

    #[test]
    fn payloads_share_the_receive_buffer() {
        let mut parser = MultipartParser::new("f");
        parser.push(b"--f\r\nContent-Length: 3\r\n\r\nabc\r\n--f\r\n\r\ndef\r\n--f\r\n");
        let a = parser.next_part().unwrap().unwrap().body;
        let b = parser.next_part().unwrap().unwrap().body;
        assert_eq!((&a[..], &b[..]), (&b"abc"[..], &b"def"[..]));
        // Both are views of the one receive buffer: `def` starts where it was received, after
        // `abc`, the delimiter line and the empty header block.
        assert_eq!(
            b.as_ptr() as usize - a.as_ptr() as usize,
            "abc\r\n--f\r\n\r\n".len()
        );
    }

    /// Real capture of `ffmpeg -f mpjpeg` (see testdata/README.md): boundary `ffmpeg`, headers
    /// `Content-type` and `Content-length`, a boundary line after every part.
    const FFMPEG: &[u8] = include_bytes!("../testdata/ffmpeg-mpjpeg.bin");
    /// Real capture of a Flask app yielding `--frame` parts without Content-Length (see
    /// testdata/README.md), cut off by the client wherever the timeout fell.
    const FLASK: &[u8] = include_bytes!("../testdata/flask-mjpeg.bin");

    fn assert_jpeg(body: &[u8], width: u16, height: u16) {
        assert!(
            body.starts_with(b"\xff\xd8") && body.ends_with(b"\xff\xd9"),
            "not a whole JPEG"
        );
        let mut decoder = zune_jpeg::JpegDecoder::new(std::io::Cursor::new(body));
        let pixels = decoder.decode().expect("decodes");
        let info = decoder.info().unwrap();
        assert_eq!((info.width, info.height), (width, height));
        assert_eq!(pixels.len(), usize::from(width) * usize::from(height) * 3);
    }

    fn check_ffmpeg_capture(cuts: &[usize]) {
        let mut parser =
            MultipartParser::from_content_type("multipart/x-mixed-replace;boundary=ffmpeg")
                .unwrap();
        let got = parts(&mut parser, FFMPEG, cuts);
        assert_eq!(got.len(), 5);
        for part in &got {
            assert_eq!(part.header("content-type"), Some("image/jpeg"));
            assert_eq!(
                part.header("Content-Length"),
                Some(part.body.len().to_string().as_str())
            );
            assert_jpeg(&part.body, 160, 120);
        }
        assert_eq!(parser.buffered(), 0);
    }

    fn check_flask_capture(cuts: &[usize]) {
        // Independent count of complete parts: each ends where `\r\n--frame\r\n` begins.
        let complete = FLASK
            .windows(11)
            .filter(|w| w == b"\r\n--frame\r\n")
            .count();
        assert!(complete >= 3);
        let mut parser =
            MultipartParser::from_content_type("multipart/x-mixed-replace; boundary=frame")
                .unwrap();
        let got = parts(&mut parser, FLASK, cuts);
        assert_eq!(got.len(), complete);
        for part in &got {
            assert_eq!(
                part.headers,
                [("Content-Type".to_owned(), "image/jpeg".to_owned())]
            );
            assert_jpeg(&part.body, 128, 96);
        }
    }

    #[test]
    fn real_captures_in_various_chunk_sizes() {
        for size in [1, 2, 7, 64, 1000, 4096, 1 << 20] {
            let cuts: Vec<usize> = (1..)
                .map(|i| i * size)
                .take_while(|&c| c < 30_000)
                .collect();
            check_ffmpeg_capture(&cuts);
            check_flask_capture(&cuts);
        }
    }
}

//! The shared multipart parser on arbitrary bytes, cut into arbitrary chunks.
//!
//! Checked on every input: no panic; no part over the size limit; and the parts are the same
//! whether the input arrives whole or in pieces (partial input is normal for this parser; a
//! network may cut anywhere).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mjpeg_shared::multipart::{MultipartParser, Part};

/// Well under the inputs' length (`-max_len=4096`), so parts over the limit do occur.
const LIMIT: usize = 512;

/// Parts (as headers and body) from feeding `chunks` one by one; errors are skipped, as the
/// relay's readers do.
fn parse(chunks: &[&[u8]]) -> Vec<(Vec<(String, String)>, Vec<u8>)> {
    let mut parser = MultipartParser::new("frame").with_max_part_size(LIMIT);
    let mut parts = Vec::new();
    for chunk in chunks {
        parser.push(chunk);
        loop {
            match parser.next_part() {
                Ok(Some(Part { headers, body })) => {
                    assert!(body.len() <= LIMIT, "part of {} bytes over {LIMIT}", body.len());
                    parts.push((headers, body.to_vec()));
                }
                Ok(None) => break,
                Err(_) => {}
            }
        }
    }
    parts
}

fuzz_target!(|data: &[u8]| {
    // The first byte sets the chunk size (1..=64 bytes); the rest is the stream.
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let size = usize::from(first % 64) + 1;
    let whole = parse(&[stream]);
    let pieces: Vec<&[u8]> = stream.chunks(size).collect();
    let chunked = parse(&pieces);
    assert_eq!(whole, chunked, "parts differ when the input comes in {size}-byte chunks");
    // The content-type path too: arbitrary text as a header value.
    if let Ok(text) = std::str::from_utf8(stream) {
        let _ = MultipartParser::from_content_type(text);
    }
});

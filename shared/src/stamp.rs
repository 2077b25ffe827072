//! The frame stamp: a block code of a frame's sequence number and capture time, painted into the
//! picture so that whoever sees only pixels (a plain `<img>` drawn onto a canvas) can tell which
//! frame it shows and when it was captured.
//!
//! Owns the stamp's layout, both ways: painting it (the server's test pattern) and reading it back
//! (the dashboard and the tests).
//!
//! Layout:
//! - a grid of COLS x ROWS square blocks of BLOCK px at the top-left corner (x = 0, y = 0),
//!   aligned to the 8x8 JPEG DCT grid, black (0) or white (1) blocks.
//! - row 0: the fixed sync pattern SYNC (16 bits, MSB first, left to right) so a decoder can tell
//!   a stamp from arbitrary picture content.
//! - rows 1..=7: 112 bits MSB first, row by row: seq (low 32 bits, u32 big-endian), capture time
//!   (u64 Unix microseconds, big-endian), CRC-16/IBM-3740 (aka CCITT-FALSE) of those 12 bytes.
//! - decoding averages the centre 4x4 pixels of each block (luma) and thresholds at 128; survives
//!   JPEG at quality 50 and 4:2:0 chroma.
//!
//! Why it survives: each block is exactly one uniform 8x8 DCT block, which JPEG keeps as its DC
//! coefficient alone, and the stamp's 128x64 px are whole 16x16 macroblocks, so subsampled chroma
//! (neutral for black and white) does not mix with the picture next to it either. Reading only the
//! centre of each block keeps clear of what ringing or chroma upsampling leaks in at the edges.

/// Side of one block in pixels (one JPEG DCT block).
pub const BLOCK: usize = 8;
/// Blocks per row.
pub const COLS: usize = 16;
/// Rows of blocks (one sync row, seven data rows).
pub const ROWS: usize = 8;
/// Stamp width in pixels.
pub const WIDTH: usize = BLOCK * COLS;
/// Stamp height in pixels.
pub const HEIGHT: usize = BLOCK * ROWS;
/// Row 0's fixed pattern.
pub const SYNC: u16 = 0b1010_1100_1101_0011;

/// What a stamp carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The frame's sequence number modulo 2^32.
    pub seq: u32,
    /// Capture time, Unix microseconds.
    pub capture_micros: u64,
}

/// CRC-16/IBM-3740 (aka CCITT-FALSE).
const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740);

/// Payload bytes: seq (4) and capture time (8) big-endian, then their CRC (2).
const PAYLOAD_BYTES: usize = 14;

/// Paints `stamp` at the top-left of a packed RGB24 image (`width * height * 3` bytes).
/// Does nothing if the image is smaller than the stamp.
pub fn draw_rgb(stamp: Stamp, rgb: &mut [u8], width: usize, height: usize) {
    if !fits(rgb.len(), width, height, 3) {
        return;
    }
    for (row, bits) in encode_rows(stamp).into_iter().enumerate() {
        for col in 0..COLS {
            let value = if bit(bits, col) { 255 } else { 0 };
            for y in row * BLOCK..(row + 1) * BLOCK {
                let line = (y * width + col * BLOCK) * 3;
                rgb[line..line + BLOCK * 3].fill(value);
            }
        }
    }
}

/// Reads a stamp back from a packed image of `channels` bytes per pixel (3 = RGB, 4 = RGBA as from
/// a canvas's `getImageData`; 1 or 2 are read as grey). `None` if the image is too small, the sync
/// row does not match, or the check value is wrong.
pub fn decode(pixels: &[u8], width: usize, height: usize, channels: usize) -> Option<Stamp> {
    if channels == 0 || !fits(pixels.len(), width, height, channels) {
        return None;
    }
    let mut rows = [0u16; ROWS];
    for (row, bits) in rows.iter_mut().enumerate() {
        for col in 0..COLS {
            if block_is_white(pixels, width, channels, col, row) {
                *bits |= 1 << (COLS - 1 - col);
            }
        }
    }
    if rows[0] != SYNC {
        return None;
    }
    let mut payload = [0u8; PAYLOAD_BYTES];
    for (pair, bits) in payload.chunks_exact_mut(2).zip(&rows[1..]) {
        pair.copy_from_slice(&bits.to_be_bytes());
    }
    let (data, check) = payload.split_at(12);
    if CRC16.checksum(data) != u16::from_be_bytes([check[0], check[1]]) {
        return None;
    }
    Some(Stamp {
        seq: u32::from_be_bytes(data[..4].try_into().ok()?),
        capture_micros: u64::from_be_bytes(data[4..].try_into().ok()?),
    })
}

/// The stamp's rows of bits, MSB = leftmost block: the sync row, then the payload two bytes a row.
fn encode_rows(stamp: Stamp) -> [u16; ROWS] {
    let mut payload = [0u8; PAYLOAD_BYTES];
    payload[..4].copy_from_slice(&stamp.seq.to_be_bytes());
    payload[4..12].copy_from_slice(&stamp.capture_micros.to_be_bytes());
    let crc = CRC16.checksum(&payload[..12]);
    payload[12..].copy_from_slice(&crc.to_be_bytes());
    let mut rows = [SYNC; ROWS];
    for (bits, pair) in rows[1..].iter_mut().zip(payload.chunks_exact(2)) {
        *bits = u16::from_be_bytes([pair[0], pair[1]]);
    }
    rows
}

fn bit(bits: u16, col: usize) -> bool {
    bits >> (COLS - 1 - col) & 1 == 1
}

/// The image is at least as large as the stamp and `len` bytes hold all of it.
fn fits(len: usize, width: usize, height: usize, channels: usize) -> bool {
    let needed = width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(channels));
    width >= WIDTH && height >= HEIGHT && needed.is_some_and(|n| len >= n)
}

/// Mean luma of the block's centre 4x4 pixels, thresholded at 128.
fn block_is_white(pixels: &[u8], width: usize, channels: usize, col: usize, row: usize) -> bool {
    const MARGIN: usize = (BLOCK - 4) / 2;
    let mut sum = 0u32;
    for y in row * BLOCK + MARGIN..row * BLOCK + MARGIN + 4 {
        for x in col * BLOCK + MARGIN..col * BLOCK + MARGIN + 4 {
            let at = (y * width + x) * channels;
            sum += luma(&pixels[at..at + channels]);
        }
    }
    sum >= 128 * 16
}

/// BT.601 luma in integers (the weights sum to 256, so white stays 255); grey input as is.
fn luma(pixel: &[u8]) -> u32 {
    match *pixel {
        [r, g, b, ..] => (u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29) >> 8,
        [grey, ..] => u32::from(grey),
        [] => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A busy, colourful picture: gradients plus pseudo-random noise, the worst neighbour for a
    /// stamp that has to survive chroma subsampling.
    fn noisy_rgb(width: usize, height: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 24) as u8;
                rgb.extend_from_slice(&[
                    (x * 255 / width) as u8 ^ noise,
                    (y * 255 / height) as u8,
                    noise.wrapping_mul(3).wrapping_add((x + y) as u8),
                ]);
            }
        }
        rgb
    }

    fn jpeg_round_trip(rgb: &[u8], width: usize, height: usize, quality: u8) -> Vec<u8> {
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, quality)
            .encode(
                rgb,
                width as u16,
                height as u16,
                jpeg_encoder::ColorType::Rgb,
            )
            .unwrap();
        let mut decoder = zune_jpeg::JpegDecoder::new(std::io::Cursor::new(&jpeg));
        let decoded = decoder.decode().unwrap();
        assert_eq!(decoded.len(), rgb.len());
        decoded
    }

    const STAMP: Stamp = Stamp {
        seq: 0xdead_beef,
        capture_micros: 1_763_700_000_123_456,
    };

    #[test]
    fn paints_exact_black_and_white_blocks_and_nothing_else() {
        let (width, height) = (WIDTH + 3, HEIGHT + 1);
        let mut rgb = vec![77u8; width * height * 3];
        draw_rgb(STAMP, &mut rgb, width, height);
        for y in 0..height {
            for x in 0..width {
                let px = &rgb[(y * width + x) * 3..][..3];
                if x < WIDTH && y < HEIGHT {
                    assert!(
                        px == [0, 0, 0] || px == [255, 255, 255],
                        "{px:?} at {x},{y}"
                    );
                    // Uniform within each block.
                    let corner = (y / BLOCK * BLOCK * width + x / BLOCK * BLOCK) * 3;
                    assert_eq!(px, &rgb[corner..corner + 3]);
                } else {
                    assert_eq!(px, [77, 77, 77], "outside the stamp at {x},{y}");
                }
            }
        }
        // Row 0 is SYNC, MSB at the left.
        for col in 0..COLS {
            let white = rgb[(BLOCK / 2 * width + col * BLOCK + BLOCK / 2) * 3] == 255;
            assert_eq!(white, SYNC >> (15 - col) & 1 == 1, "sync block {col}");
        }
        assert_eq!(decode(&rgb, width, height, 3), Some(STAMP));
    }

    #[test]
    fn payload_layout_is_seq_time_crc_big_endian() {
        let rows = encode_rows(STAMP);
        assert_eq!(rows[0], SYNC);
        assert_eq!(rows[1..3], [0xdead, 0xbeef]);
        let micros = STAMP.capture_micros.to_be_bytes();
        assert_eq!(rows[3], u16::from_be_bytes([micros[0], micros[1]]));
        assert_eq!(rows[6], u16::from_be_bytes([micros[6], micros[7]]));
        let mut data = 0xdead_beef_u32.to_be_bytes().to_vec();
        data.extend_from_slice(&micros);
        assert_eq!(
            rows[7],
            crc::Crc::<u16>::new(&crc::CRC_16_IBM_3740).checksum(&data)
        );
        // CRC-16/IBM-3740's check value, so the constant is the documented variant.
        assert_eq!(CRC16.checksum(b"123456789"), 0x29b1);
    }

    #[test]
    fn round_trips_on_raw_rgb_and_rgba() {
        let (width, height) = (WIDTH, HEIGHT);
        let mut rgb = noisy_rgb(width, height, 1);
        draw_rgb(STAMP, &mut rgb, width, height);
        assert_eq!(decode(&rgb, width, height, 3), Some(STAMP));
        // As a canvas's getImageData gives it: RGBA.
        let rgba: Vec<u8> = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        assert_eq!(decode(&rgba, width, height, 4), Some(STAMP));
        let grey: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
        assert_eq!(decode(&grey, width, height, 1), Some(STAMP));
    }

    #[test]
    fn extreme_values_round_trip() {
        for stamp in [
            Stamp {
                seq: 0,
                capture_micros: 0,
            },
            Stamp {
                seq: u32::MAX,
                capture_micros: u64::MAX,
            },
        ] {
            let mut rgb = vec![0u8; WIDTH * HEIGHT * 3];
            draw_rgb(stamp, &mut rgb, WIDTH, HEIGHT);
            assert_eq!(decode(&rgb, WIDTH, HEIGHT, 3), Some(stamp));
        }
    }

    #[test]
    fn a_flipped_block_fails_the_crc() {
        let (width, height) = (200, 100);
        let mut rgb = noisy_rgb(width, height, 2);
        draw_rgb(STAMP, &mut rgb, width, height);
        for (col, row) in [(0, 1), (7, 3), (15, 7)] {
            let mut flipped = rgb.clone();
            for y in row * BLOCK..(row + 1) * BLOCK {
                for x in col * BLOCK..(col + 1) * BLOCK {
                    let at = (y * width + x) * 3;
                    flipped[at..at + 3].iter_mut().for_each(|v| *v = 255 - *v);
                }
            }
            assert_eq!(
                decode(&flipped, width, height, 3),
                None,
                "block {col},{row}"
            );
        }
    }

    #[test]
    fn too_small_or_short_images_give_none() {
        let mut rgb = vec![0u8; WIDTH * HEIGHT * 3];
        draw_rgb(STAMP, &mut rgb, WIDTH, HEIGHT);
        assert_eq!(decode(&rgb, WIDTH, HEIGHT, 3), Some(STAMP));
        assert_eq!(decode(&rgb, WIDTH - 1, HEIGHT, 3), None);
        assert_eq!(decode(&rgb[..rgb.len() - 1], WIDTH, HEIGHT, 3), None);
        assert_eq!(decode(&rgb, WIDTH, HEIGHT, 0), None);
        assert_eq!(decode(&rgb, usize::MAX, usize::MAX, 3), None);
        // Drawing into a too-small image leaves it alone.
        let mut small = vec![9u8; (WIDTH - 8) * HEIGHT * 3];
        draw_rgb(STAMP, &mut small, WIDTH - 8, HEIGHT);
        assert!(small.iter().all(|&v| v == 9));
        let mut short = vec![9u8; 100];
        draw_rgb(STAMP, &mut short, WIDTH, HEIGHT);
        assert!(short.iter().all(|&v| v == 9));
    }

    #[test]
    fn pictures_without_a_stamp_give_none() {
        let (width, height) = (160, 120);
        for seed in 1..50 {
            assert_eq!(
                decode(&noisy_rgb(width, height, seed), width, height, 3),
                None
            );
        }
        for value in [0, 127, 128, 255] {
            assert_eq!(
                decode(&vec![value; width * height * 3], width, height, 3),
                None
            );
        }
        // The sync row alone is not enough.
        let mut rgb = noisy_rgb(width, height, 3);
        draw_rgb(STAMP, &mut rgb, width, height);
        let row1 = BLOCK * width * 3;
        rgb[row1..row1 + BLOCK * width * 3].fill(128);
        assert_eq!(decode(&rgb, width, height, 3), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Odd sizes (not multiples of 8 or 16) and a noisy, colourful background, through JPEG at
        /// quality 50 with 4:2:0 chroma, the encoder's default below quality 90.
        #[test]
        fn survives_jpeg_quality_50(
            seq: u32,
            capture_micros: u64,
            seed: u64,
            extra_w in 0usize..90,
            extra_h in 0usize..40,
        ) {
            let (width, height) = (WIDTH + extra_w, HEIGHT + extra_h);
            let stamp = Stamp { seq, capture_micros };
            let mut rgb = noisy_rgb(width, height, seed);
            draw_rgb(stamp, &mut rgb, width, height);
            let decoded = jpeg_round_trip(&rgb, width, height, 50);
            prop_assert_eq!(decode(&decoded, width, height, 3), Some(stamp));
        }
    }

    #[test]
    fn survives_lower_quality_too() {
        let (width, height) = (320, 240);
        let mut rgb = noisy_rgb(width, height, 7);
        draw_rgb(STAMP, &mut rgb, width, height);
        for quality in [10, 25, 50, 75, 95] {
            let decoded = jpeg_round_trip(&rgb, width, height, quality);
            assert_eq!(
                decode(&decoded, width, height, 3),
                Some(STAMP),
                "quality {quality}"
            );
        }
    }
}

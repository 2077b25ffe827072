//! Drawing into packed RGB24 buffers: rectangles, 8x8-font text, JPEG decoding and encoding.
//! Shared by the test pattern, the NO SIGNAL picture of every live source ([`super::feed`]), the
//! camera's mirror view and the metadata overlay ([`super::overlay`]).

/// Fills a rectangle, clipped to the image.
pub fn fill(
    rgb: &mut [u8],
    width: usize,
    height: usize,
    rect: (usize, usize, usize, usize),
    color: [u8; 3],
) {
    let (x0, y0, w, h) = rect;
    for y in y0..(y0 + h).min(height) {
        for x in x0..(x0 + w).min(width) {
            rgb[(y * width + x) * 3..][..3].copy_from_slice(&color);
        }
    }
}

/// Draws `text` with the public-domain 8x8 font, each font pixel `scale` pixels wide, clipped.
pub fn text(
    rgb: &mut [u8],
    width: usize,
    height: usize,
    at: (usize, usize),
    scale: usize,
    text: &str,
    color: [u8; 3],
) {
    use font8x8::UnicodeFonts;
    let (x0, y0) = at;
    for (ci, ch) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let rect = (x0 + (ci * 8 + col) * scale, y0 + row * scale, scale, scale);
                    fill(rgb, width, height, rect, color);
                }
            }
        }
    }
}

/// A decoded JPEG: packed pixels of `channels` bytes (3, RGB; 1 for a greyscale JPEG).
pub struct Decoded {
    pub pixels: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub channels: usize,
}

/// Decodes a JPEG with zune-jpeg, as RGB (or one channel for a greyscale JPEG).
pub fn decode(jpeg: &[u8]) -> Result<Decoded, String> {
    use zune_jpeg::zune_core::bytestream::ZCursor;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    let pixels = decoder.decode().map_err(|e| format!("{e:?}"))?;
    let (Some((width, height)), Some(colorspace)) =
        (decoder.dimensions(), decoder.output_colorspace())
    else {
        return Err("no image size after decoding".into());
    };
    let channels = colorspace.num_components();
    if !matches!(channels, 1 | 3) {
        return Err(format!("decoded to {channels} channels, expected 1 or 3"));
    }
    Ok(Decoded {
        pixels,
        width,
        height,
        channels,
    })
}

/// Encodes packed RGB as a baseline 4:2:0 JPEG.
pub fn encode_rgb(
    rgb: &[u8],
    width: usize,
    height: usize,
    quality: u8,
    size_hint: usize,
) -> Result<Vec<u8>, jpeg_encoder::EncodingError> {
    let mut out = Vec::with_capacity(size_hint);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    encoder.encode(
        rgb,
        width as u16,
        height as u16,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

//! Reading what the relay needs from a JPEG's headers, without decoding it.

/// True if `data` starts like a JPEG (SOI marker followed by another marker).
pub fn looks_like_jpeg(data: &[u8]) -> bool {
    data.len() >= 4 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF
}

/// Width and height from the first start-of-frame segment, walking the marker segments from the
/// start. `None` if the data ends first or is not a JPEG.
pub fn dimensions(data: &[u8]) -> Option<(u32, u32)> {
    if !looks_like_jpeg(data) {
        return None;
    }
    let mut i = 2;
    while i + 4 <= data.len() {
        if data[i] != 0xFF {
            return None;
        }
        let marker = data[i + 1];
        // Fill bytes and markers without a length (TEM, RSTn, a stray SOI/EOI).
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0x01 || (0xD0..=0xD9).contains(&marker) {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range.
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let seg = data.get(i + 4..i + 2 + len)?;
            let height = u16::from_be_bytes([*seg.get(1)?, *seg.get(2)?]);
            let width = u16::from_be_bytes([*seg.get(3)?, *seg.get(4)?]);
            return (width > 0 && height > 0).then_some((u32::from(width), u32::from(height)));
        }
        if marker == 0xDA || len < 2 {
            return None;
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_size_of_an_encoded_jpeg() {
        let rgb = vec![128u8; 40 * 24 * 3];
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&rgb, 40, 24, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        assert!(looks_like_jpeg(&out));
        assert_eq!(dimensions(&out), Some((40, 24)));
    }

    #[test]
    fn refuses_non_jpeg_and_truncated_data() {
        assert!(!looks_like_jpeg(b"\x89PNG\r\n\x1a\n"));
        assert_eq!(dimensions(b"\xff\xd8\xff\xe0\x00"), None);
        assert_eq!(dimensions(b""), None);
    }
}

//! Renditions: a frame at another size or JPEG quality, or with its metadata drawn in
//! (`?width=`, `?size=`, `?quality=`, `?overlay=1`), made from the source's JPEG: decode
//! (zune-jpeg), resize (fast_image_resize: SIMD convolution, Hamming filter, which keeps detail
//! like a bicubic filter at a bilinear's cost when shrinking), draw the metadata
//! ([`super::overlay`]), encode (jpeg-encoder). `docs/renditions.md` has the measurements behind
//! the choices.
//!
//! Pure functions of a JPEG and a [`Rendition`]: the fan-out makes each rendition of a frame once,
//! off the async workers, and shares it (`fanout::frame`).

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use mjpeg_shared::meta::shapes_of;
use mjpeg_shared::wire;

use super::{draw, overlay};

/// JPEG quality of a rendition that names none: a rendition is a second generation of the
/// source's JPEG, so a little above the usual 80 keeps it close to the first.
pub const DEFAULT_QUALITY: u8 = 85;
/// The qualities a viewer may ask for.
pub const QUALITIES: std::ops::RangeInclusive<u8> = 10..=95;
/// The smallest rendition side: below it a picture shows nothing (and JPEG blocks are 8x8).
pub const MIN_SIDE: u32 = 16;

/// A picture size asked for, resolved against each frame's own size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// This width; the height follows the aspect ratio, rounded to even.
    Width(u32),
    /// Exactly this size.
    Size(u32, u32),
}

impl Target {
    /// The size this target gives a `w` x `h` frame; never larger than the frame (a smaller
    /// frame than the stream said stays as it is).
    pub fn resolve(self, (w, h): (u32, u32)) -> (u32, u32) {
        let (tw, th) = match self {
            Target::Width(tw) => {
                let th = (f64::from(tw) * f64::from(h) / f64::from(w.max(1)) / 2.0).round() * 2.0;
                (tw, (th as u32).max(2))
            }
            Target::Size(tw, th) => (tw, th),
        };
        (tw.min(w), th.min(h))
    }
}

/// What a viewer asked for. The default is the source's own frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rendition {
    pub target: Option<Target>,
    pub quality: Option<u8>,
    /// Draw the frame's metadata in.
    pub overlay: bool,
}

impl Rendition {
    /// The source's own frame: nothing to make.
    pub fn is_source(&self) -> bool {
        *self == Rendition::default()
    }

    /// Reads `width`, `size`, `quality` and `overlay` from a query (other keys are not its
    /// business), and checks them against the stream's size when known (`source`), so a request
    /// for more than the source has is refused up front. A target equal to the source's size is
    /// no target.
    pub fn from_query<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        source: Option<(u32, u32)>,
    ) -> Result<Rendition, String> {
        let mut r = Rendition::default();
        for (key, value) in pairs {
            match key {
                "width" => {
                    let w = value
                        .parse::<u32>()
                        .ok()
                        .filter(|w| *w >= MIN_SIDE)
                        .ok_or_else(|| {
                            format!("width {value:?} is not a number of pixels from {MIN_SIDE}")
                        })?;
                    r.target = Some(Target::Width(w));
                }
                "size" => {
                    let bad = || {
                        format!("size {value:?} is not WIDTHxHEIGHT, each from {MIN_SIDE} (e.g. 320x180)")
                    };
                    let (w, h) = value.split_once(['x', 'X']).ok_or_else(bad)?;
                    let (w, h) = (
                        w.parse::<u32>().map_err(|_| bad())?,
                        h.parse::<u32>().map_err(|_| bad())?,
                    );
                    if w < MIN_SIDE || h < MIN_SIDE {
                        return Err(bad());
                    }
                    r.target = Some(Target::Size(w, h));
                }
                "quality" => {
                    r.quality = Some(
                        value
                            .parse::<u8>()
                            .ok()
                            .filter(|q| QUALITIES.contains(q))
                            .ok_or_else(|| {
                                format!(
                                    "quality {value:?} is not a JPEG quality from {} to {}",
                                    QUALITIES.start(),
                                    QUALITIES.end()
                                )
                            })?,
                    );
                }
                "overlay" => r.overlay = super::options::parse_flag("overlay", value)?,
                _ => {}
            }
        }
        if let (Some(target), Some((sw, sh))) = (r.target, source) {
            let (w, h) = match target {
                Target::Width(w) => (w, 0),
                Target::Size(w, h) => (w, h),
            };
            if w > sw || h > sh {
                return Err(format!(
                    "{} is larger than the source, which is {sw}x{sh}; renditions only shrink",
                    match target {
                        Target::Width(w) => format!("width {w}"),
                        Target::Size(w, h) => format!("size {w}x{h}"),
                    }
                ));
            }
        }
        Ok(r.for_frame(true, source))
    }

    /// The rendition as it applies to a frame of `size` (when known) with or without metadata:
    /// a target that is the frame's own size is none, and without metadata there is nothing to
    /// draw. One form for one output, so that equal asks share one making: with a target, the
    /// default quality asked for by name is the default.
    pub fn for_frame(self, has_meta: bool, size: Option<(u32, u32)>) -> Rendition {
        let target = match (self.target, size) {
            (Some(t), Some(size)) if t.resolve(size) == size => None,
            (t, _) => t,
        };
        let quality = match (target, self.quality) {
            (Some(_), Some(DEFAULT_QUALITY)) => None,
            (_, q) => q,
        };
        Rendition {
            target,
            quality,
            overlay: self.overlay && has_meta,
        }
    }
}

/// The query that asks for it: `width=320&quality=50&overlay=1`.
impl std::fmt::Display for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        match self.target {
            Some(Target::Width(w)) => parts.push(format!("width={w}")),
            Some(Target::Size(w, h)) => parts.push(format!("size={w}x{h}")),
            None => {}
        }
        if let Some(q) = self.quality {
            parts.push(format!("quality={q}"));
        }
        if self.overlay {
            parts.push("overlay=1".into());
        }
        f.write_str(&parts.join("&"))
    }
}

/// `jpeg` made into `r`, with `meta` drawn in if asked; and what it is, for `X-Rendition`.
/// `None` when the JPEG does not decode, or when an overlay is all that was asked and there is
/// nothing to draw (the caller then serves the frame as it is).
pub fn render(
    jpeg: &[u8],
    meta: Option<&[u8]>,
    r: &Rendition,
) -> Option<(Vec<u8>, wire::Rendition)> {
    let shapes = match (r.overlay, meta) {
        (true, Some(meta)) => shapes_of(meta),
        _ => Vec::new(),
    };
    if r.target.is_none() && r.quality.is_none() && shapes.is_empty() {
        // An overlay with nothing to draw: the frame as it is.
        return None;
    }
    let decoded = draw::decode(jpeg).ok()?;
    let (w, h) = (decoded.width as u32, decoded.height as u32);
    let rgb = if decoded.channels == 3 {
        decoded.pixels
    } else {
        decoded.pixels.iter().flat_map(|&v| [v, v, v]).collect()
    };
    let (tw, th) = r.target.map_or((w, h), |t| t.resolve((w, h)));
    let mut rgb = if (tw, th) == (w, h) {
        rgb
    } else {
        resize(rgb, (w, h), (tw, th))?
    };
    overlay::draw(&mut rgb, tw as usize, th as usize, &shapes);
    let quality = r.quality.unwrap_or(DEFAULT_QUALITY);
    // Sized by the source's bytes per pixel, so one allocation usually holds it.
    let hint = jpeg.len() * (tw * th) as usize / (w * h).max(1) as usize;
    let out = draw::encode_rgb(&rgb, tw as usize, th as usize, quality, hint + hint / 4).ok()?;
    let made = wire::Rendition {
        width: tw,
        height: th,
        quality,
        overlay: !shapes.is_empty(),
    };
    Some((out, made))
}

/// Packed RGB from `from` to `to` pixels.
fn resize(rgb: Vec<u8>, from: (u32, u32), to: (u32, u32)) -> Option<Vec<u8>> {
    let src = Image::from_vec_u8(from.0, from.1, rgb, PixelType::U8x3).ok()?;
    let mut dst = Image::new(to.0, to.1, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Hamming));
    Resizer::new().resize(&src, &mut dst, &options).ok()?;
    Some(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str, source: Option<(u32, u32)>) -> Result<Rendition, String> {
        let pairs: Vec<(&str, &str)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        Rendition::from_query(pairs, source)
    }

    #[test]
    fn queries_resolve_against_the_source_and_refuse_what_it_cannot_give() {
        let hd = Some((1280, 720));
        assert!(query("", hd).unwrap().is_source());
        assert!(query("t=123&fps=5", hd).unwrap().is_source());
        let r = query("width=320", hd).unwrap();
        assert_eq!(r.target, Some(Target::Width(320)));
        assert_eq!(Target::Width(320).resolve((1280, 720)), (320, 180));
        // Height follows the aspect ratio, rounded to even.
        assert_eq!(Target::Width(100).resolve((640, 480)), (100, 76));
        assert_eq!(
            query("size=320x240&quality=50", hd).unwrap().quality,
            Some(50)
        );
        // The source's own size is no rendition; with a quality it still is one.
        assert!(query("size=1280x720", hd).unwrap().is_source());
        assert!(query("width=1280", hd).unwrap().is_source());
        assert!(!query("width=1280&quality=40", hd).unwrap().is_source());
        let err = query("width=1920", hd).unwrap_err();
        assert!(err.contains("1280x720"), "{err}");
        assert!(query("size=640x800", hd).unwrap_err().contains("1280x720"));
        // Unknown source size: taken as asked, clamped per frame.
        assert_eq!(
            query("width=4000", None).unwrap().target,
            Some(Target::Width(4000))
        );
        assert_eq!(Target::Width(4000).resolve((640, 480)), (640, 480));
        for bad in [
            "width=abc",
            "width=8",
            "size=320",
            "size=8x8",
            "quality=5",
            "quality=96",
            "overlay=maybe",
        ] {
            assert!(query(bad, hd).is_err(), "{bad}");
        }
        assert_eq!(
            query("quality=40&size=320x240&overlay=yes", hd)
                .unwrap()
                .to_string(),
            "size=320x240&quality=40&overlay=1"
        );
        let o = query("overlay=1", hd).unwrap();
        assert!(
            o.overlay && o.for_frame(true, None).overlay && o.for_frame(false, None).is_source()
        );
        // One form for one output.
        assert_eq!(query("width=320&quality=85", hd), query("width=320", hd));
        assert_ne!(query("quality=85", hd), query("", hd));
        let unknown = query("width=640", None).unwrap();
        assert!(!unknown.is_source() && unknown.for_frame(false, Some((640, 480))).is_source());
    }

    #[test]
    fn renders_the_size_and_quality_asked_and_draws_only_when_asked() {
        let (w, h) = (640usize, 360usize);
        let rgb: Vec<u8> = (0..w * h)
            .flat_map(|i| [(i % w * 255 / w) as u8, (i / w * 255 / h) as u8, 90])
            .collect();
        let jpeg = draw::encode_rgb(&rgb, w, h, 90, 0).unwrap();
        let meta = br##"{"boxes":[{"x":0.25,"y":0.25,"w":0.5,"h":0.5,"color":"#ff0000"}]}"##;
        let small = Rendition {
            target: Some(Target::Width(160)),
            quality: Some(50),
            overlay: false,
        };
        let (out, made) = render(&jpeg, Some(meta), &small).unwrap();
        assert_eq!(crate::jpeg::dimensions(&out), Some((160, 90)));
        assert_eq!(
            made,
            wire::Rendition {
                width: 160,
                height: 90,
                quality: 50,
                overlay: false
            }
        );
        assert!(
            out.len() < jpeg.len() / 4,
            "{} vs {}",
            out.len(),
            jpeg.len()
        );
        // The picture is the same picture: its corners keep their colours.
        let img = draw::decode(&out).unwrap();
        let px = |x: usize, y: usize| &img.pixels[(y * 160 + x) * 3..][..3];
        assert!(
            px(2, 2)[0] < 30 && px(157, 2)[0] > 220,
            "{:?} {:?}",
            px(2, 2),
            px(157, 2)
        );
        // With overlay: the box's left edge (x = 0.25 x 160) is red.
        let (out, made) = render(
            &jpeg,
            Some(meta),
            &Rendition {
                overlay: true,
                ..small
            },
        )
        .unwrap();
        assert!(made.overlay);
        let img = draw::decode(&out).unwrap();
        let edge = &img.pixels[(45 * 160 + 40) * 3..][..3];
        assert!(edge[0] > 180 && edge[1] < 90, "{edge:?}");
        assert!(render(b"not a jpeg", None, &small).is_none());
        // An overlay with nothing to draw is no rendition.
        let only_overlay = Rendition {
            overlay: true,
            ..Rendition::default()
        };
        assert!(render(&jpeg, Some(br#"{"boxes":[]}"#), &only_overlay).is_none());
    }
}

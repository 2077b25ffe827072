//! `test`: the built-in moving test pattern, the source when nothing else is given.
//!
//! Each frame shows colour bars, a sweeping bar (so motion and dropped frames are visible), a
//! human-readable UTC clock and frame number, and at the top-left the machine-readable stamp of
//! [`mjpeg_shared::stamp`]: the frame's sequence number and capture time, which a reader of pixels
//! (the dashboard's `<img>` comparison) decodes to measure what it is showing.
//!
//! It also plays a one-object vision pipeline, so the pipeline features show out of the box: an
//! orange square bounces over the bars, each frame's metadata boxes it exactly
//! (`docs/metadata.md`), and the frame carries one stage, `encoded`, the time its JPEG was done.
//!
//! Rendering and JPEG encoding run on tokio's blocking pool, so a few milliseconds of CPU per
//! frame never delay the async workers that write to viewers.

use bytes::Bytes;
use mjpeg_shared::stamp::{self, Stamp};

use super::options::{parse_fps, parse_size, unknown_param, Parts, MAX_SOURCE_FPS};
use super::{draw, Pacer, Pipeline, Source, SourceError, SourceFrame, SourceInfo};
use crate::clock::unix_micros_now;

/// `test`, `test?size=WxH&fps=N` (default 640x480 at 30 fps).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestOptions {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

impl std::str::FromStr for TestOptions {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let parts = Parts::split(spec)?;
        parts.no_arg("test?size=WxH&fps=N")?;
        let mut o = TestOptions {
            width: 640,
            height: 480,
            fps: 30.0,
        };
        for (key, value) in parts.params {
            match key {
                "size" => (o.width, o.height) = parse_size(value)?,
                "fps" => o.fps = parse_fps(value, MAX_SOURCE_FPS)?,
                other => return Err(unknown_param("test", other, "size, fps")),
            }
        }
        Ok(o)
    }
}

impl std::fmt::Display for TestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "test?size={}x{}&fps={}",
            self.width, self.height, self.fps
        )
    }
}

/// JPEG quality of the pattern: sharp text at about 40-50 KB per 640x480 frame.
const QUALITY: u8 = 80;
/// The pattern's one pipeline stage: its JPEG is done.
pub const STAGE_ENCODED: &str = "encoded";
/// The bouncing square's colour.
pub const OBJECT_COLOR: [u8; 3] = [255, 128, 0];

pub struct TestPattern {
    width: u32,
    height: u32,
    fps: f64,
    pacer: Pacer,
    frame_no: u64,
    /// The renderer travels to the blocking pool and back each frame; `None` only meanwhile.
    renderer: Option<Box<Renderer>>,
}

impl TestPattern {
    pub fn new(options: &TestOptions) -> Self {
        let TestOptions { width, height, fps } = *options;
        TestPattern {
            width,
            height,
            fps,
            pacer: Pacer::new(fps),
            frame_no: 0,
            renderer: Some(Box::new(Renderer::new(
                width as usize,
                height as usize,
                fps,
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Source for TestPattern {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        self.pacer.tick().await;
        // Counted only once the frame is delivered, so the number painted in the picture stays
        // equal to the stream's sequence number even after a failed frame.
        let frame_no = self.frame_no + 1;
        let mut renderer = self
            .renderer
            .take()
            .ok_or_else(|| SourceError::Failed("test pattern renderer was lost".into()))?;
        let (renderer, result) = tokio::task::spawn_blocking(move || {
            let captured_micros = unix_micros_now();
            let jpeg = renderer.render(frame_no, captured_micros);
            let encoded_micros = unix_micros_now();
            (renderer, jpeg.map(|j| (captured_micros, encoded_micros, j)))
        })
        .await
        .map_err(|e| {
            // The renderer went down with the task; the next frame starts from a fresh one.
            self.renderer = Some(Box::new(Renderer::new(
                self.width as usize,
                self.height as usize,
                self.fps,
            )));
            SourceError::Failed(format!("test pattern render task failed: {e}"))
        })?;
        self.renderer = Some(renderer);
        let (captured_micros, encoded_micros, (jpeg, object)) =
            result.map_err(|e| SourceError::Failed(format!("JPEG encoding failed: {e}")))?;
        self.frame_no = frame_no;
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let meta = format!(
            r#"{{"boxes":[{{"x":{:.6},"y":{:.6},"w":{:.6},"h":{:.6},"label":"square","track":1}}]}}"#,
            object.0 as f64 / w,
            object.1 as f64 / h,
            object.2 as f64 / w,
            object.2 as f64 / h,
        );
        Ok(SourceFrame {
            captured_micros,
            jpeg,
            width: self.width,
            height: self.height,
            pipeline: Pipeline {
                stages: vec![(STAGE_ENCODED.to_string(), encoded_micros)],
                meta: Some(Bytes::from(meta)),
            },
        })
    }

    fn pause(&mut self) {
        self.pacer.reset();
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "test",
            fps: self.fps,
            width: Some(self.width),
            height: Some(self.height),
            ..Default::default()
        }
    }
}

/// Draws and encodes frames. Owns its buffers so a frame allocates nothing but its JPEG.
pub struct Renderer {
    width: usize,
    height: usize,
    fps: f64,
    background: Vec<u8>,
    rgb: Vec<u8>,
    /// Last JPEG's size, to size the next output buffer in one allocation.
    last_len: usize,
}

const BARS: [[u8; 3]; 7] = [
    [192, 192, 192],
    [192, 192, 0],
    [0, 192, 192],
    [0, 192, 0],
    [192, 0, 192],
    [192, 0, 0],
    [0, 0, 192],
];

impl Renderer {
    pub fn new(width: usize, height: usize, fps: f64) -> Self {
        let mut background = vec![0u8; width * height * 3];
        let bars_end = height * 2 / 3;
        for y in 0..height {
            for x in 0..width {
                let px = if y < bars_end {
                    BARS[x * BARS.len() / width]
                } else {
                    // A grey ramp: shows banding and compression artefacts.
                    let v = (x * 255 / width.max(1)) as u8;
                    [v, v, v]
                };
                background[(y * width + x) * 3..][..3].copy_from_slice(&px);
            }
        }
        Renderer {
            width,
            height,
            fps,
            rgb: background.clone(),
            background,
            last_len: 0,
        }
    }

    /// Renders frame `frame_no` captured at `captured_micros` and encodes it; also says where
    /// the square is, in pixels (left, top, side).
    pub fn render(
        &mut self,
        frame_no: u64,
        captured_micros: u64,
    ) -> Result<(Bytes, (usize, usize, usize)), jpeg_encoder::EncodingError> {
        let (w, h) = (self.width, self.height);
        self.rgb.copy_from_slice(&self.background);

        // A white bar sweeping across the bars, one full pass every two seconds.
        let frames_per_pass = (self.fps * 2.0).max(8.0) as u64;
        let bar_w = (w / 40).max(4);
        let x0 = ((frame_no % frames_per_pass) as usize * w) / frames_per_pass as usize;
        self.fill(x0, 0, bar_w, h * 2 / 3, [255, 255, 255]);

        // Clock and frame number on a dark panel below the stamp.
        let scale = (w / 320).clamp(1, 4);
        let secs = captured_micros / 1_000_000;
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03} UTC",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            (captured_micros / 1000) % 1000
        );
        let lines = [
            "MJPEG-RELAY TEST".to_string(),
            clock,
            format!("FRAME {frame_no}"),
            format!("{w}x{h} {} FPS", fps_label(self.fps)),
        ];
        let line_h = 10 * scale;
        let panel_y = stamp::HEIGHT + 8;
        let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        let panel_w = ((longest + 1) * 8 * scale).min(w);
        self.fill(0, panel_y, panel_w, lines.len() * line_h + 6, [16, 16, 16]);
        for (i, line) in lines.iter().enumerate() {
            self.text(4, panel_y + 4 + i * line_h, scale, line, [255, 255, 255]);
        }

        // The square bounces across in 4 s and down in 3 s (a path that only repeats after
        // 12 s), by the frame number so that a paused stream resumes where it was. Drawn over
        // the text panel, below the stamp by a JPEG block row (16 pixels, the chroma block, so
        // its colour never bleeds into the stamp) and by the height of the label the overlay
        // and the dashboard draw above its box (so no label covers the stamp either); but for
        // pictures too small to have that room.
        let label = 10 * (w.max(h) / 480).clamp(1, 4) + 8;
        let below_stamp = stamp::HEIGHT + 16 + label;
        let top = if h >= below_stamp + 8 { below_stamp } else { 0 };
        let side = (h / 6).max(8).min(w).min(h - top);
        let t = frame_no as f64 / self.fps.max(0.01);
        let bounce = |period: f64, span: usize| {
            let phase = (t / period).fract() * 2.0;
            let along = if phase < 1.0 { phase } else { 2.0 - phase };
            (along * span as f64).round() as usize
        };
        let object = (
            bounce(4.0, w - side),
            top + bounce(3.0, h - top - side),
            side,
        );
        self.fill(object.0, object.1, side, side, OBJECT_COLOR);

        stamp::draw_rgb(
            Stamp {
                seq: frame_no as u32,
                capture_micros: captured_micros,
            },
            &mut self.rgb,
            w,
            h,
        );

        let out = draw::encode_rgb(&self.rgb, w, h, QUALITY, self.last_len + self.last_len / 4)?;
        self.last_len = out.len();
        Ok((Bytes::from(out), object))
    }

    fn fill(&mut self, x0: usize, y0: usize, fw: usize, fh: usize, color: [u8; 3]) {
        draw::fill(
            &mut self.rgb,
            self.width,
            self.height,
            (x0, y0, fw, fh),
            color,
        );
    }

    fn text(&mut self, x0: usize, y0: usize, scale: usize, text: &str, color: [u8; 3]) {
        draw::text(
            &mut self.rgb,
            self.width,
            self.height,
            (x0, y0),
            scale,
            text,
            color,
        );
    }
}

/// `30`, `12.5`, `0.25`: the rate as a person writes it.
fn fps_label(fps: f64) -> String {
    let text = format!("{fps:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_decodable_frame_with_its_stamp_at_every_size() {
        for (w, h, fps) in [(160, 120, 0.01), (640, 480, 30.0), (1920, 1080, 12.5)] {
            let mut r = Renderer::new(w, h, fps);
            let (jpeg, (x, y, side)) = r.render(7, 1_700_000_000_123_456).unwrap();
            assert_eq!(crate::jpeg::dimensions(&jpeg), Some((w as u32, h as u32)));
            // The stamp is drawn into the picture (decoding the JPEG is the tests crate's job).
            let s = stamp::decode(&r.rgb, w, h, 3).expect("stamp in the rendered picture");
            assert_eq!((s.seq, s.capture_micros), (7, 1_700_000_000_123_456));
            // The square is where it says, below the stamp.
            assert!(side >= 8 && x + side <= w && y + side <= h && y >= stamp::HEIGHT);
            let centre = (y + side / 2) * w + x + side / 2;
            assert_eq!(r.rgb[centre * 3..][..3], OBJECT_COLOR);
        }
    }

    #[test]
    fn fps_labels() {
        assert_eq!(fps_label(30.0), "30");
        assert_eq!(fps_label(12.5), "12.5");
        assert_eq!(fps_label(0.01), "0.01");
    }
}

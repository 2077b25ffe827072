//! `test`: the built-in moving test pattern, the source when nothing else is given.
//!
//! Each frame shows colour bars, a sweeping bar (so motion and dropped frames are visible), a
//! human-readable UTC clock and frame number, and at the top-left the machine-readable stamp of
//! [`mjpeg_shared::stamp`]: the frame's sequence number and capture time, which a reader of pixels
//! (the dashboard's `<img>` comparison) decodes to measure what it is showing.
//!
//! Rendering and JPEG encoding run on tokio's blocking pool, so a few milliseconds of CPU per
//! frame never delay the async workers that write to viewers.

use bytes::Bytes;
use mjpeg_shared::stamp::{self, Stamp};

use super::options::{parse_fps, parse_size, unknown_param, Parts, MAX_SOURCE_FPS};
use super::{draw, Pacer, Source, SourceError, SourceFrame, SourceInfo};
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
            (renderer, jpeg.map(|j| (captured_micros, j)))
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
        let (captured_micros, jpeg) =
            result.map_err(|e| SourceError::Failed(format!("JPEG encoding failed: {e}")))?;
        self.frame_no = frame_no;
        Ok(SourceFrame {
            captured_micros,
            jpeg,
            width: self.width,
            height: self.height,
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

    /// Renders frame `frame_no` captured at `captured_micros` and encodes it.
    pub fn render(
        &mut self,
        frame_no: u64,
        captured_micros: u64,
    ) -> Result<Bytes, jpeg_encoder::EncodingError> {
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
        Ok(Bytes::from(out))
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
            let jpeg = r.render(7, 1_700_000_000_123_456).unwrap();
            assert_eq!(crate::jpeg::dimensions(&jpeg), Some((w as u32, h as u32)));
            // The stamp is drawn into the picture (decoding the JPEG is the tests crate's job).
            let s = stamp::decode(&r.rgb, w, h, 3).expect("stamp in the rendered picture");
            assert_eq!((s.seq, s.capture_micros), (7, 1_700_000_000_123_456));
        }
    }

    #[test]
    fn fps_labels() {
        assert_eq!(fps_label(30.0), "30");
        assert_eq!(fps_label(12.5), "12.5");
        assert_eq!(fps_label(0.01), "0.01");
    }
}

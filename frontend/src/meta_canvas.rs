//! A frame's metadata drawn over it on the canvas: the shapes [`mjpeg_shared::meta`] reads (the
//! same reading the relay's `overlay=1` draws into JPEGs), scaled to the picture, with the
//! relay's line widths and labels above their boxes (in the browser's font, a little larger).
//!
//! Drawn in the same animation frame as the picture it belongs to, right after it, so a box is
//! never seen over another frame.

use mjpeg_shared::meta::{Shape, TEXT_COLOR};
use web_sys::CanvasRenderingContext2d;

fn css([r, g, b]: [u8; 3]) -> String {
    format!("rgb({r},{g},{b})")
}

/// Draws `shapes` over a `w` x `h` picture.
pub fn draw(ctx: &CanvasRenderingContext2d, w: f64, h: f64, shapes: &[Shape]) {
    // As the relay's overlay: lines a little thicker on bigger pictures, text readable.
    let line = (w.max(h) / 320.0).floor().clamp(1.0, 6.0);
    let font_px = 10.0 * (w.max(h) / 480.0).floor().clamp(1.0, 4.0) + 2.0;
    ctx.save();
    ctx.set_line_width(line);
    ctx.set_line_join("round");
    ctx.set_font(&format!("{font_px}px sans-serif"));
    ctx.set_text_baseline("top");
    let px = |(x, y): (f64, f64)| (x.clamp(0.0, 1.0) * w, y.clamp(0.0, 1.0) * h);
    for shape in shapes {
        match shape {
            Shape::Box { rect, label, color } => {
                let (x0, y0) = px((rect.0, rect.1));
                let (x1, y1) = px((rect.0 + rect.2, rect.1 + rect.3));
                ctx.set_stroke_style_str(&css(*color));
                // Inside the rectangle, as the relay draws it.
                ctx.stroke_rect(
                    x0 + line / 2.0,
                    y0 + line / 2.0,
                    (x1 - x0 - line).max(0.0),
                    (y1 - y0 - line).max(0.0),
                );
                if let Some(label) = label {
                    tag(
                        ctx,
                        (x0, (y0 - font_px - 4.0).max(0.0)),
                        font_px,
                        label,
                        *color,
                    );
                }
            }
            Shape::Polyline {
                points,
                closed,
                color,
            } => {
                ctx.set_stroke_style_str(&css(*color));
                ctx.begin_path();
                for (i, p) in points.iter().enumerate() {
                    let (x, y) = px(*p);
                    if i == 0 {
                        ctx.move_to(x, y);
                    } else {
                        ctx.line_to(x, y);
                    }
                }
                if *closed {
                    ctx.close_path();
                }
                ctx.stroke();
            }
            Shape::Point { at, label, color } => {
                let (x, y) = px(*at);
                let r = line * 2.0 + 1.0;
                ctx.set_fill_style_str(&css(*color));
                ctx.begin_path();
                let _ = ctx.arc(x, y, r, 0.0, std::f64::consts::TAU);
                ctx.fill();
                if let Some(label) = label {
                    tag(
                        ctx,
                        (x + r + 2.0, y - font_px / 2.0),
                        font_px,
                        label,
                        *color,
                    );
                }
            }
            Shape::Text { line: n, text } => {
                let y = 4.0 + *n as f64 * (font_px + 6.0);
                tag(ctx, (4.0, y), font_px, text, TEXT_COLOR);
            }
        }
    }
    ctx.restore();
}

/// Text on a dark band, so it reads on any picture.
fn tag(
    ctx: &CanvasRenderingContext2d,
    (x, y): (f64, f64),
    font_px: f64,
    text: &str,
    color: [u8; 3],
) {
    let width = ctx
        .measure_text(text)
        .map(|m| m.width())
        .unwrap_or(text.chars().count() as f64 * font_px * 0.6);
    ctx.set_fill_style_str("rgba(0,0,0,0.75)");
    ctx.fill_rect(x, y, width + 6.0, font_px + 4.0);
    ctx.set_fill_style_str(&css(color));
    let _ = ctx.fill_text(text, x + 3.0, y + 2.0);
}

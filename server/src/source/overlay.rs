//! A frame's metadata drawn into its picture, for pages that can only show an `<img>`
//! (`.mjpg?overlay=1`, `.jpg?overlay=1`): the shapes [`mjpeg_shared::meta`] reads (the schema
//! the dashboard draws too), scaled to the picture, drawn with [`super::draw`]. Decoding and
//! encoding are the rendition's ([`super::rendition`]): an overlay is a rendition, at the
//! source's size or any other.

use mjpeg_shared::meta::{Shape, TEXT_COLOR};

use super::draw;

/// Draws `shapes` into a packed RGB picture of `w` x `h`.
pub fn draw(rgb: &mut [u8], w: usize, h: usize, shapes: &[Shape]) {
    // Lines a little thicker on bigger pictures; text at a readable size.
    let line = (w.max(h) / 320).clamp(1, 6);
    let scale = (w.max(h) / 480).clamp(1, 4);
    for shape in shapes {
        match shape.clone() {
            Shape::Box { rect, label, color } => {
                let (x, y, bw, bh) = pixels(rect, w, h);
                outline(rgb, w, h, (x, y, bw, bh), line, color);
                if let Some(label) = label {
                    tag(
                        rgb,
                        w,
                        h,
                        (x, y.saturating_sub(8 * scale + 2)),
                        scale,
                        &label,
                        color,
                    );
                }
            }
            Shape::Polyline {
                points,
                closed,
                color,
            } => {
                let back = closed.then(|| [points[points.len() - 1], points[0]]);
                for pair in points.windows(2).chain(back.as_ref().map(|b| &b[..])) {
                    let (from, to) = (point(pair[0], w, h), point(pair[1], w, h));
                    segment(rgb, w, h, from, to, line, color);
                }
            }
            Shape::Point { at, label, color } => {
                let (x, y) = point(at, w, h);
                let r = line * 2 + 1;
                draw::fill(
                    rgb,
                    w,
                    h,
                    (
                        x.saturating_sub(r),
                        y.saturating_sub(r),
                        2 * r + 1,
                        2 * r + 1,
                    ),
                    color,
                );
                if let Some(label) = label {
                    tag(
                        rgb,
                        w,
                        h,
                        (x + r + 2, y.saturating_sub(4 * scale)),
                        scale,
                        &label,
                        color,
                    );
                }
            }
            Shape::Text { line: n, text } => {
                let y = 4 + n * (8 * scale + 4);
                tag(rgb, w, h, (4, y), scale, &text, TEXT_COLOR);
            }
        }
    }
}

/// A fraction of the picture in pixels, clamped to it.
fn coord(f: f64, size: usize) -> usize {
    (f.clamp(0.0, 1.0) * size as f64).round() as usize
}

fn point((x, y): (f64, f64), w: usize, h: usize) -> (usize, usize) {
    (
        coord(x, w).min(w.saturating_sub(1)),
        coord(y, h).min(h.saturating_sub(1)),
    )
}

fn pixels(
    (x, y, bw, bh): (f64, f64, f64, f64),
    w: usize,
    h: usize,
) -> (usize, usize, usize, usize) {
    let (x0, y0) = (coord(x, w), coord(y, h));
    let (x1, y1) = (coord(x + bw, w), coord(y + bh, h));
    (x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
}

/// A rectangle's outline, `line` pixels thick, inside the rectangle.
fn outline(
    rgb: &mut [u8],
    w: usize,
    h: usize,
    (x, y, bw, bh): (usize, usize, usize, usize),
    line: usize,
    color: [u8; 3],
) {
    let t = line.min(bw).min(bh).max(1);
    draw::fill(rgb, w, h, (x, y, bw, t), color);
    draw::fill(rgb, w, h, (x, (y + bh).saturating_sub(t), bw, t), color);
    draw::fill(rgb, w, h, (x, y, t, bh), color);
    draw::fill(rgb, w, h, ((x + bw).saturating_sub(t), y, t, bh), color);
}

/// A straight line, `line` pixels thick.
fn segment(
    rgb: &mut [u8],
    w: usize,
    h: usize,
    (x0, y0): (usize, usize),
    (x1, y1): (usize, usize),
    line: usize,
    color: [u8; 3],
) {
    let steps = x0.abs_diff(x1).max(y0.abs_diff(y1)).max(1);
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let x = (x0 as f64 + (x1 as f64 - x0 as f64) * t).round() as usize;
        let y = (y0 as f64 + (y1 as f64 - y0 as f64) * t).round() as usize;
        draw::fill(
            rgb,
            w,
            h,
            (
                x.saturating_sub(line / 2),
                y.saturating_sub(line / 2),
                line,
                line,
            ),
            color,
        );
    }
}

/// Text on a dark band, so it reads on any picture.
fn tag(
    rgb: &mut [u8],
    w: usize,
    h: usize,
    at: (usize, usize),
    scale: usize,
    text: &str,
    color: [u8; 3],
) {
    let width = text.chars().count() * 8 * scale + 4;
    draw::fill(rgb, w, h, (at.0, at.1, width, 8 * scale + 2), [0, 0, 0]);
    draw::text(rgb, w, h, (at.0 + 2, at.1 + 1), scale, text, color);
}

#[cfg(test)]
mod tests {
    use super::*;
    use mjpeg_shared::meta::shapes_of;

    #[test]
    fn boxes_are_drawn_where_the_fractions_say_and_nothing_else_changes() {
        let (w, h) = (320usize, 240usize);
        let mut rgb = vec![100u8; w * h * 3];
        let meta =
            br##"{"boxes":[{"x":0.25,"y":0.25,"w":0.5,"h":0.5,"color":"#ff0000"}],"extra":1}"##;
        draw(&mut rgb, w, h, &shapes_of(meta));
        let px = |x: usize, y: usize| &rgb[(y * w + x) * 3..][..3];
        // On the left edge of the box: red; inside it and far from it, the grey it was.
        assert_eq!(px(80, 120), [255, 0, 0]);
        for (x, y) in [(10, 10), (160, 120), (300, 230), (82, 120)] {
            assert_eq!(px(x, y), [100, 100, 100], "({x},{y})");
        }
    }
}

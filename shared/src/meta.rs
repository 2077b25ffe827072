//! What a frame's metadata draws (`docs/metadata.md`): boxes with their labels, polylines,
//! points and text lines, in fractions of the picture, so the same metadata fits any size.
//!
//! One reading of the schema for every reader that draws: the relay's `overlay=1` (into the
//! JPEG) and the dashboard (onto its canvas). Metadata that is not the schema (other shapes,
//! unknown fields, numbers that are not finite) draws nothing and is not an error: the relay
//! passes metadata on untouched and draws what it understands.

use serde_json::Value;

/// The colour of a shape that names none: a green that reads on most pictures.
pub const DEFAULT_COLOR: [u8; 3] = [0, 255, 96];
/// The colour of the text lines.
pub const TEXT_COLOR: [u8; 3] = [255, 255, 255];
/// The most shapes drawn of one frame's metadata, and the most points of one polyline: what a
/// picture can show, far fewer than 64 KB of JSON could ask to draw (each costs the viewer's
/// main thread or the relay's overlay time, every frame).
pub const MAX_SHAPES: usize = 256;
pub const MAX_POINTS: usize = 1024;

/// One thing to draw, in fractions of the picture's width and height (0 to 1, from the top-left
/// corner).
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// A rectangle's outline: top-left corner, width, height; its label with the score.
    Box {
        rect: (f64, f64, f64, f64),
        label: Option<String>,
        color: [u8; 3],
    },
    /// A line through the points, joined back to the first when `closed`.
    Polyline {
        points: Vec<(f64, f64)>,
        closed: bool,
        color: [u8; 3],
    },
    /// A dot, with its label.
    Point {
        at: (f64, f64),
        label: Option<String>,
        color: [u8; 3],
    },
    /// Line `line` (0 first) of the text in the top-left corner.
    Text { line: usize, text: String },
}

/// The shapes in a metadata body; none when it is not JSON or not the schema.
pub fn shapes_of(json: &[u8]) -> Vec<Shape> {
    serde_json::from_slice::<Value>(json)
        .map(|v| shapes(&v))
        .unwrap_or_default()
}

/// The schema's shapes in `meta`, in drawing order (boxes, polylines, points, text), at most
/// [`MAX_SHAPES`]; anything else is skipped.
pub fn shapes(meta: &Value) -> Vec<Shape> {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).filter(|n| n.is_finite());
    let color = |v: &Value| {
        v.get("color")
            .and_then(Value::as_str)
            .and_then(parse_color)
            .unwrap_or(DEFAULT_COLOR)
    };
    let list = |k: &str| meta.get(k).and_then(Value::as_array).into_iter().flatten();
    let mut out = Vec::new();
    for b in list("boxes") {
        if out.len() >= MAX_SHAPES {
            break;
        }
        let (Some(x), Some(y), Some(w), Some(h)) =
            (num(b, "x"), num(b, "y"), num(b, "w"), num(b, "h"))
        else {
            continue;
        };
        let label = b
            .get("label")
            .and_then(Value::as_str)
            .map(|l| match num(b, "score") {
                Some(s) => format!("{l} {:.0}%", s * 100.0),
                None => l.to_string(),
            });
        out.push(Shape::Box {
            rect: (x, y, w, h),
            label,
            color: color(b),
        });
    }
    for p in list("polylines") {
        if out.len() >= MAX_SHAPES {
            break;
        }
        let points: Vec<(f64, f64)> = p
            .get("points")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|xy| Some((xy.get(0)?.as_f64()?, xy.get(1)?.as_f64()?)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .take(MAX_POINTS)
            .collect();
        if points.len() > 1 {
            out.push(Shape::Polyline {
                points,
                closed: p.get("closed").and_then(Value::as_bool).unwrap_or(false),
                color: color(p),
            });
        }
    }
    for p in list("points") {
        if out.len() >= MAX_SHAPES {
            break;
        }
        if let (Some(x), Some(y)) = (num(p, "x"), num(p, "y")) {
            out.push(Shape::Point {
                at: (x, y),
                label: p.get("label").and_then(Value::as_str).map(String::from),
                color: color(p),
            });
        }
    }
    for (line, text) in list("text").filter_map(Value::as_str).enumerate() {
        if out.len() >= MAX_SHAPES {
            break;
        }
        out.push(Shape::Text {
            line,
            text: text.to_string(),
        });
    }
    out
}

/// `#rrggbb`.
pub fn parse_color(s: &str) -> Option<[u8; 3]> {
    let hex = s
        .strip_prefix('#')
        .filter(|h| h.len() == 6 && h.is_ascii())?;
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example_and_skips_what_it_does_not_know() {
        let shapes = shapes_of(
            br##"{
              "boxes": [{"x": 0.12, "y": 0.30, "w": 0.20, "h": 0.35, "label": "person",
                         "score": 0.91, "color": "#ff8800", "track": 17},
                        {"x": 0.5, "y": "not a number", "w": 0.1, "h": 0.1}],
              "polylines": [{"points": [[0.1, 0.9], [0.5, 0.5], [0.9, 0.9]], "closed": true},
                            {"points": [[0.1, 0.1]]}],
              "points": [{"x": 0.5, "y": 0.5, "label": "centroid", "color": "red"}],
              "text": ["2 people", 3, "inference 12 ms"],
              "mine": {"anything": true}
            }"##,
        );
        assert_eq!(
            shapes,
            vec![
                Shape::Box {
                    rect: (0.12, 0.30, 0.20, 0.35),
                    label: Some("person 91%".into()),
                    color: [255, 136, 0],
                },
                Shape::Polyline {
                    points: vec![(0.1, 0.9), (0.5, 0.5), (0.9, 0.9)],
                    closed: true,
                    color: DEFAULT_COLOR,
                },
                Shape::Point {
                    at: (0.5, 0.5),
                    label: Some("centroid".into()),
                    color: DEFAULT_COLOR,
                },
                Shape::Text {
                    line: 0,
                    text: "2 people".into()
                },
                Shape::Text {
                    line: 1,
                    text: "inference 12 ms".into()
                },
            ]
        );
        let many = format!(r#"{{"text":[{}]}}"#, vec!["\"x\""; 5000].join(","));
        assert_eq!(shapes_of(many.as_bytes()).len(), MAX_SHAPES);
        assert!(shapes_of(b"not json").is_empty());
        assert!(shapes_of(br#"{"unknown":[1]}"#).is_empty());
        assert_eq!(parse_color("#00ff80"), Some([0, 255, 128]));
        assert_eq!(parse_color("red"), None);
    }
}

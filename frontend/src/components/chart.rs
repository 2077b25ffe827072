//! A small chart of the last minute: latency (median per second) and FPS, one point a second.

use std::rc::Rc;

use yew::prelude::*;

use crate::stats::{Point, HISTORY_POINTS};

const W: f64 = 240.0;
const H: f64 = 48.0;

#[derive(Properties, PartialEq)]
pub struct ChartProps {
    pub history: Rc<Vec<Point>>,
}

/// SVG polyline point lists for `values`, scaled to `max`; a None (no figure for that second)
/// ends one line and the next value starts another, so gaps show as gaps.
fn lines(values: impl Iterator<Item = Option<f64>>, max: f64) -> Vec<String> {
    let step = W / (HISTORY_POINTS - 1) as f64;
    let mut out = vec![String::new()];
    for (i, v) in values.enumerate() {
        match v {
            Some(v) => {
                let y = H - (v / max).clamp(0.0, 1.0) * (H - 2.0) - 1.0;
                let line = out.last_mut().expect("never empty");
                line.push_str(&format!("{:.1},{:.1} ", i as f64 * step, y));
            }
            None if !out.last().expect("never empty").is_empty() => out.push(String::new()),
            None => {}
        }
    }
    out.retain(|l| !l.is_empty());
    out
}

#[component]
pub fn Chart(props: &ChartProps) -> Html {
    let h = &props.history;
    // Right-align: the newest point is at the right edge.
    let pad = HISTORY_POINTS.saturating_sub(h.len());
    let padded = || std::iter::repeat_n(None, pad);
    let max_fps = h.iter().map(|p| p.fps).fold(1.0, f64::max) * 1.1;
    let max_lat = h.iter().filter_map(|p| p.latency_ms).fold(10.0, f64::max) * 1.1;
    let fps = lines(padded().chain(h.iter().map(|p| Some(p.fps))), max_fps);
    let lat = lines(padded().chain(h.iter().map(|p| p.latency_ms)), max_lat);
    html! {
        <figure class="chart">
            <svg viewBox={format!("0 0 {W} {H}")} preserveAspectRatio="none" role="img"
                aria-label="latency and FPS over the last minute">
                { for fps.into_iter().map(|points| html! { <polyline class="fps" {points} /> }) }
                { for lat.into_iter().map(|points| html! { <polyline class="latency" {points} /> }) }
            </svg>
            <figcaption>
                <span class="latency">{ format!("latency (0–{max_lat:.0} ms)") }</span>
                { " · " }
                <span class="fps">{ format!("fps (0–{max_fps:.0})") }</span>
                { " · last minute" }
            </figcaption>
        </figure>
    }
}

//! The fetch path's picture: a canvas the [`crate::player::Player`] paints, its overlay and
//! chart; in its place a plain `<img>` while the player falls back.

use mjpeg_shared::api::Endpoints;
use yew::prelude::*;

use super::chart::Chart;
use super::img_view::ImgView;
use super::overlay::Overlay;
use crate::hooks::{use_player, Canvas};
use crate::player::Mode;

#[derive(Properties, PartialEq)]
pub struct FetchViewProps {
    pub name: AttrValue,
    /// Relay restarts seen (for the fallback `<img>`).
    pub epoch: u32,
    /// Receives the median latency at overlay rate (None in fallback).
    #[prop_or_default]
    pub on_p50: Callback<Option<f64>>,
    /// Draw each frame's metadata (boxes, labels, lines, text) over it.
    #[prop_or(true)]
    pub show_meta: bool,
    /// Ask the relay to send each frame at the size and quality the link carries (`adapt=1`).
    #[prop_or(true)]
    pub adapt: bool,
}

#[component]
pub fn FetchView(props: &FetchViewProps) -> Html {
    let canvas = use_node_ref();
    // With each frame's metadata, if it has any (a stream without sends exactly what it would
    // without `meta=1`); switching `adapt` is a new URL, so the player reconnects.
    let url = AttrValue::from(format!(
        "{}?meta=1{}",
        Endpoints::for_stream(&props.name).frames,
        if props.adapt { "&adapt=1" } else { "" }
    ));
    let canvases = use_memo(canvas.clone(), |node| {
        vec![Canvas {
            stream: None,
            node: node.clone(),
        }]
    });
    let views = use_player(Some(url), canvases, props.show_meta);
    let view = views.first().cloned();
    let mode = view
        .as_ref()
        .map(|v| v.mode.clone())
        .unwrap_or(Mode::Connecting);
    let fallback = matches!(mode, Mode::Fallback { .. });
    {
        let p50 = view
            .as_ref()
            .filter(|_| !fallback)
            .and_then(|v| v.stats.latency)
            .map(|l| l.p50_ms);
        let on_p50 = props.on_p50.clone();
        use_effect_with(p50.map(f64::to_bits), move |_| on_p50.emit(p50));
    }
    let note = match &mode {
        Mode::Waiting => Some("connected; waiting for the first frame".to_string()),
        Mode::Reconnecting { reason } => Some(format!("reconnecting: {reason}")),
        _ => None,
    };
    html! {
        <div class="pane fetch" data-state={mode.state()}>
            // The canvas stays mounted (hidden) during a fallback: the player keeps it.
            <div class={classes!("picture", fallback.then_some("hidden"))}>
                <canvas ref={canvas} width="640" height="480" />
                if let (false, Some(v)) = (fallback, &view) {
                    <Overlay role="primary" stream={props.name.clone()} transport={mode.transport()} state={mode.state()}
                        stats={v.stats.clone()} first_paint_ms={v.first_paint_ms}
                        open_bitmaps={Some(v.open_bitmaps)} note={note.map(AttrValue::from)}
                        meta_shapes={Some(v.meta_shapes)}
                        rendition={AttrValue::from(v.rendition.map_or("source".to_string(), |r| r.to_string()))} />
                }
            </div>
            if let Mode::Fallback { reason, retry } = &mode {
                // No on_p50: the "<img> - fetch" difference means nothing while both are <img>s.
                <ImgView name={props.name.clone()} transport="img-fallback" role="primary"
                    epoch={props.epoch}
                    note={AttrValue::from(format!(
                        "showing a plain <img>: fetch streaming is unavailable ({reason}){}",
                        if *retry { "; retrying fetch with backoff" } else { "" }
                    ))} />
            } else if let Some(v) = &view {
                <Chart history={v.stats.history.clone()} />
            }
        </div>
    }
}

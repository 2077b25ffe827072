//! One stream: its status from the API, controls (play/pause, compare, snapshot), the picture
//! (fetch path, optionally beside a plain `<img>`, or paused), and the embed panel.

use std::rc::Rc;

use mjpeg_shared::api::StreamInfo;
use yew::prelude::*;

use super::embed::EmbedPanel;
use super::fetch_view::FetchView;
use super::img_view::ImgView;
use super::paused::Paused;
use crate::budget::Grant;

#[derive(Properties, PartialEq)]
pub struct StreamCardProps {
    pub info: Rc<StreamInfo>,
    pub grant: Grant,
    /// Relay restarts seen (plain `<img>`s reload on a change).
    pub epoch: u32,
    pub compare: bool,
    pub on_play: Callback<bool>,
    pub on_compare: Callback<bool>,
}

#[component]
pub fn StreamCard(props: &StreamCardProps) -> Html {
    let info = &props.info;
    let snapshot = crate::hooks::use_img_url(
        info.name.clone().into(),
        info.endpoints.snapshot.clone(),
        true,
    );
    let name = AttrValue::from(info.name.clone());
    let fetch_p50 = use_state_eq(|| None::<f64>);
    let show_meta = use_state_eq(|| true);
    // The relay picks each frame's size and quality by what the link carries (`?adapt=1`).
    let adapt = use_state_eq(|| true);
    let img_p50 = use_state_eq(|| None::<f64>);
    let playing = props.grant == Grant::Play;

    let size = match (info.width, info.height) {
        (Some(w), Some(h)) => format!("{w}×{h}"),
        _ => "size unknown".into(),
    };
    let meta = format!(
        "{} · {size} · {} fps · {} viewer{}",
        info.kind,
        info.source_fps,
        info.viewers,
        if info.viewers == 1 { "" } else { "s" }
    );
    let toggle_play = {
        let (on_play, want) = (props.on_play.clone(), props.grant == Grant::PausedByUser);
        Callback::from(move |_| on_play.emit(want))
    };
    let toggle_adapt = {
        let adapt = adapt.clone();
        Callback::from(move |_| adapt.set(!*adapt))
    };
    let toggle_meta = {
        let show_meta = show_meta.clone();
        Callback::from(move |_| show_meta.set(!*show_meta))
    };
    let toggle_compare = {
        let (on_compare, want) = (props.on_compare.clone(), !props.compare);
        Callback::from(move |_| on_compare.emit(want))
    };
    let diff = match (*fetch_p50, *img_p50) {
        (Some(f), Some(i)) if props.compare && playing => Some(i - f),
        _ => None,
    };

    let picture = match props.grant {
        Grant::Play => html! {
            <div class="panes">
                <FetchView name={name.clone()} epoch={props.epoch} show_meta={*show_meta} adapt={*adapt} on_p50={
                    let s = fetch_p50.clone(); Callback::from(move |v| s.set(v))
                } />
                if props.compare {
                    <ImgView name={name.clone()} transport="img" role="compare" epoch={props.epoch} on_p50={
                        let s = img_p50.clone(); Callback::from(move |v| s.set(v))
                    } />
                }
            </div>
        },
        Grant::PausedByUser => html! {
            <Paused name={name.clone()} reason="paused by you: it holds no connection" />
        },
        Grant::PausedNoSlot { slots } => html! {
            <Paused name={name.clone()} reason={format!(
                "paused: the {slots} stream connections this page may hold are in use by the \
                 streams above. Over HTTP/1.1 a browser opens 6 connections per host, shared by \
                 all its tabs, and the dashboard keeps 2 free for its own requests. Pause \
                 another stream, or put the relay behind an HTTPS front end that speaks HTTP/2."
            )} />
        },
    };

    html! {
        <section class="card" data-stream={name.clone()}>
            <header>
                <h2>{ name.clone() }</h2>
                <span class="meta">{ meta }</span>
                <code class="source">{ info.source.clone() }</code>
                if let Some(err) = &info.last_error {
                    <div class="error">{ err.clone() }</div>
                }
            </header>
            <div class="controls">
                <button class="play" onclick={toggle_play}>
                    { if props.grant == Grant::PausedByUser { "Play" } else { "Pause" } }
                </button>
                <label>
                    <input type="checkbox" class="compare" checked={props.compare}
                        onchange={toggle_compare} />
                    { " compare with a plain <img>" }
                </label>
                <label title="draw each frame's boxes, lines and text (its metadata) over it">
                    <input type="checkbox" class="show-meta" checked={*show_meta}
                        onchange={toggle_meta} />
                    { " boxes" }
                </label>
                <label title="let the relay lower quality, then size, when the link cannot carry full frames fresh (reconnects)">
                    <input type="checkbox" class="adapt" checked={*adapt}
                        onchange={toggle_adapt} />
                    { " adapt" }
                </label>
                <a class="button snapshot" href={snapshot}
                    download={format!("{}.jpg", info.name)}>{ "Snapshot" }</a>
                if let Some(d) = diff {
                    <span class="diff" data-compare-diff-ms={format!("{d:.2}")}>
                        { format!("<img> − fetch: {d:+.1} ms") }
                    </span>
                }
            </div>
            { picture }
            <EmbedPanel name={name} />
        </section>
    }
}

//! A viewer that holds no connection: the stream's latest frame as one snapshot, and why it is
//! paused.

use mjpeg_shared::api::Endpoints;
use yew::prelude::*;

use crate::hooks::use_img_url;

#[derive(Properties, PartialEq)]
pub struct PausedProps {
    pub name: AttrValue,
    pub reason: AttrValue,
}

#[component]
pub fn Paused(props: &PausedProps) -> Html {
    // One snapshot when the viewer pauses, under a URL no cache has seen.
    let at = use_memo((), |_| js_sys::Date::now() as u64);
    let src = use_img_url(
        props.name.clone(),
        format!("{}?t={}", Endpoints::for_stream(&props.name).snapshot, *at),
        false,
    );
    html! {
        <div class="pane paused">
            <div class="picture">
                <img {src} alt={format!("stream {}, paused", props.name)} />
                <div class="overlay primary" data-transport="none" data-state="paused">
                    <div class="big">{ "paused" }</div>
                    <div class="note">{ props.reason.clone() }</div>
                </div>
            </div>
        </div>
    }
}

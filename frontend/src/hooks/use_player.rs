//! Runs a [`Player`] on a canvas while `url` is set, and hands its figures to the component at
//! overlay rate. `show_meta` is the viewer's switch for drawing frames' metadata, read by the
//! player at each paint (switching it never reconnects).

use std::cell::Cell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use web_sys::HtmlCanvasElement;
use yew::prelude::*;

use super::{ClockHandle, OVERLAY_MS};
use crate::player::{Player, PlayerView};

#[hook]
pub fn use_player(url: AttrValue, canvas: NodeRef, show_meta: bool) -> Option<PlayerView> {
    let clock = use_context::<ClockHandle>().unwrap_or_default();
    let view = use_state_eq(|| None::<PlayerView>);
    let show = use_memo((), |_| Rc::new(Cell::new(show_meta)));
    show.set(show_meta);
    {
        let show = (*show).clone();
        let view = view.clone();
        use_effect_with(url, move |url| {
            let running =
                canvas.cast::<HtmlCanvasElement>().and_then(|canvas| {
                    match Player::start(url.to_string(), canvas, show) {
                        Ok(player) => {
                            let player = Rc::new(player);
                            let p = player.clone();
                            let tick = Interval::new(OVERLAY_MS, move || {
                                view.set(Some(p.view(clock.estimate())));
                            });
                            Some((player, tick))
                        }
                        Err(e) => {
                            web_sys::console::error_1(&format!("player for {url}: {e}").into());
                            None
                        }
                    }
                });
            // Dropping the interval drops the last handle: the player aborts its request.
            move || drop(running)
        });
    }
    (*view).clone()
}

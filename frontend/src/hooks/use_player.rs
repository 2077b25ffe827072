//! Runs a [`Player`] on one or more canvases while `url` is set, and hands each canvas's
//! figures to the component at overlay rate. `show_meta` is the viewer's switch for drawing
//! frames' metadata, read by the player at each paint (switching it never reconnects).
//!
//! A stream's viewer passes one canvas with no stream name (it takes every part); a wall passes
//! one per stream on it, named as its parts' `X-Stream` name them.

use std::cell::Cell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use web_sys::HtmlCanvasElement;
use yew::prelude::*;

use super::{ClockHandle, OVERLAY_MS};
use crate::player::{Player, PlayerView, Screen};

/// A canvas for the player, and the stream it shows (`None`: the only one).
#[derive(Clone, PartialEq)]
pub struct Canvas {
    pub stream: Option<AttrValue>,
    pub node: NodeRef,
}

/// The figures of each of `canvases`, in their order; empty while nothing plays, and until the
/// player for this `url` and these canvases has figures (never a stopped player's figures, nor
/// another set's in this set's order). A new `url` or a new set of canvases starts a new player
/// (and connection).
#[hook]
pub fn use_player(
    url: Option<AttrValue>,
    canvases: Rc<Vec<Canvas>>,
    show_meta: bool,
) -> Rc<Vec<PlayerView>> {
    let clock = use_context::<ClockHandle>().unwrap_or_default();
    // The figures, with the player (URL and canvases) they are for.
    type Of = (Option<AttrValue>, Rc<Vec<Canvas>>);
    let views = use_state_eq(|| None::<(Of, Rc<Vec<PlayerView>>)>);
    let show = use_memo((), |_| Rc::new(Cell::new(show_meta)));
    show.set(show_meta);
    {
        let show = (*show).clone();
        let views = views.clone();
        use_effect_with((url.clone(), canvases.clone()), move |(url, canvases)| {
            // A stopped player's figures go with it (the same URL back after a hidden tab is a
            // new player).
            views.set(None);
            let screens: Result<Vec<Screen>, String> = canvases
                .iter()
                .map(|c| {
                    let canvas = c
                        .node
                        .cast::<HtmlCanvasElement>()
                        .ok_or_else(|| "its canvas is not on the page".to_string())?;
                    Screen::new(c.stream.as_ref().map(|s| s.to_string()), canvas)
                })
                .collect();
            let running = match (url, screens) {
                (Some(url), Ok(screens)) if !screens.is_empty() => {
                    let player = Rc::new(Player::start(url.to_string(), screens, show));
                    let (p, of) = (player.clone(), (Some(url.clone()), canvases.clone()));
                    let tick = Interval::new(OVERLAY_MS, move || {
                        views.set(Some((of.clone(), Rc::new(p.views(clock.estimate())))));
                    });
                    Some((player, tick))
                }
                (Some(url), Err(e)) => {
                    web_sys::console::error_1(&format!("player for {url}: {e}").into());
                    None
                }
                _ => None,
            };
            // Dropping the interval drops the last handle: the player aborts its request.
            move || drop(running)
        });
    }
    // The effect clears the figures when a player starts; this match only guards the one render
    // between `url` or `canvases` changing and that effect running, when the state still holds
    // the old player's figures.
    match &*views {
        Some(((u, c), v)) if *u == url && *c == canvases => v.clone(),
        _ => Rc::default(),
    }
}

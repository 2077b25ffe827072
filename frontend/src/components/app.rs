//! The dashboard: the relay's streams, a viewer each, within the browser's connection budget
//! (`/`, or `/?stream=NAME` for one stream's viewer alone); or at `/wall`, all of them as tiles
//! on one connection ([`Wall`]).

use std::collections::HashSet;
use std::rc::Rc;

use yew::prelude::*;

use super::stream_card::StreamCard;
use super::token_prompt::TokenPrompt;
use super::wall::Wall;
use crate::budget::{self, Grant, Want};
use crate::hooks::{use_clock_probe, use_streams, ClockHandle};
use crate::web;

/// What the user asked for, by stream name: playing unless paused; compare off unless on.
#[derive(Clone, Default, PartialEq)]
struct Prefs {
    paused: HashSet<String>,
    compare: HashSet<String>,
}

enum Pref {
    Play(String, bool),
    Compare(String, bool),
}

impl Reducible for Prefs {
    type Action = Pref;
    // A reducer, not state copied at render time: two clicks between renders both count.
    fn reduce(self: Rc<Self>, action: Pref) -> Rc<Self> {
        let mut next = (*self).clone();
        let (set, name, on) = match action {
            Pref::Play(name, play) => (&mut next.paused, name, !play),
            Pref::Compare(name, on) => (&mut next.compare, name, on),
        };
        if on {
            set.insert(name);
        } else {
            set.remove(&name);
        }
        Rc::new(next)
    }
}

/// Which page this is, from the address.
#[derive(Clone, PartialEq)]
enum Page {
    /// Every stream's viewer, or only the one named.
    Dashboard {
        only: Option<String>,
    },
    Wall,
}

impl Page {
    fn here() -> Page {
        let location = web::window().location();
        if location.pathname().unwrap_or_default() == "/wall" {
            return Page::Wall;
        }
        let only = location
            .search()
            .ok()
            .and_then(|q| web_sys::UrlSearchParams::new_with_str(&q).ok())
            .and_then(|q| q.get("stream"));
        Page::Dashboard { only }
    }
}

#[component]
pub fn App() -> Html {
    let page = use_memo((), |_| Page::here());
    let (clock, estimate) = use_clock_probe();
    let streams = use_streams();
    let prefs = use_reducer(Prefs::default);
    let protocol = use_memo((), |_| web::page_protocol());
    let slots = budget::slots_for(&protocol);

    let list = streams.list.clone().unwrap_or_default();
    let list: Rc<Vec<_>> = match &*page {
        Page::Dashboard { only: Some(name) } => {
            Rc::new(list.iter().filter(|s| s.name == *name).cloned().collect())
        }
        _ => list,
    };
    let wants: Vec<Want> = list
        .iter()
        .map(|s| Want {
            playing: !prefs.paused.contains(&s.name),
            connections: 1 + usize::from(prefs.compare.contains(&s.name)),
        })
        .collect();
    let grants = budget::allocate(&wants, slots);
    let used: usize = match *page {
        // The wall is one connection, whatever it shows.
        Page::Wall => usize::from(!list.is_empty()),
        Page::Dashboard { .. } => wants
            .iter()
            .zip(&grants)
            .filter(|(_, g)| **g == Grant::Play)
            .map(|(w, _)| w.connections)
            .sum(),
    };

    let cards = list.iter().zip(grants).map(|(info, grant)| {
        let name = info.name.clone();
        let on_play = {
            let (prefs, name) = (prefs.clone(), name.clone());
            Callback::from(move |play: bool| prefs.dispatch(Pref::Play(name.clone(), play)))
        };
        let on_compare = {
            let (prefs, name) = (prefs.clone(), name.clone());
            Callback::from(move |on: bool| prefs.dispatch(Pref::Compare(name.clone(), on)))
        };
        html! {
            <StreamCard key={name.clone()} info={Rc::new(info.clone())} {grant} epoch={streams.epoch}
                compare={prefs.compare.contains(&name)} {on_play} {on_compare} />
        }
    });

    let clock_text = match estimate {
        Some(e) => format!("clock ±{:.1} ms", e.error_us / 1000.0),
        None => "clock: probing".into(),
    };
    let proto = if protocol.is_empty() {
        "http/1.1?"
    } else {
        protocol.as_str()
    };
    html! {
        <ContextProvider<ClockHandle> context={clock}>
            <header class="top">
                <h1>{ "mjpeg-relay" }</h1>
                <span data-streams={list.len().to_string()}>
                    { format!("{} stream{}", list.len(), if list.len() == 1 { "" } else { "s" }) }
                </span>
                <span class="budget" data-used={used.to_string()} data-slots={slots.to_string()}>
                    { format!("{used} of {slots} stream connections in use ({proto})") }
                </span>
                <span>{ clock_text }</span>
                if streams.auth.is_some() {
                    <span class="error" data-api-error="true">{ "the relay needs credentials" }</span>
                } else if let Some(err) = &streams.error {
                    <span class="error" data-api-error="true">{ format!("relay unreachable: {err}; retrying") }</span>
                }
                if *page == Page::Wall {
                    <a class="button" href="/">{ "Streams" }</a>
                } else {
                    <a class="button to-wall" href="/wall"
                        title="every stream as a tile, all on one connection">{ "Wall" }</a>
                }
                if crate::auth::token().is_some() {
                    <button class="forget-token" onclick={Callback::from(|_| {
                        crate::auth::set_token("");
                        let _ = web::window().location().reload();
                    })}>{ "Forget token" }</button>
                }
            </header>
            if *page == Page::Wall && streams.auth.is_none() && !list.is_empty() {
                <Wall list={list.clone()} />
            } else {
            <main class="streams">
                if let Some(need) = streams.auth {
                    <TokenPrompt {need} />
                } else if streams.list.is_none() {
                    <p>{ "Asking the relay for its streams…" }</p>
                } else if let (true, Page::Dashboard { only: Some(name) }) = (list.is_empty(), &*page) {
                    <p>{ format!("The relay serves no stream named {name:?}. ") }
                        <a href="/">{ "All streams" }</a></p>
                } else if list.is_empty() {
                    <p>{ "The relay serves no streams." }</p>
                }
                { for cards }
            </main>
            }
        </ContextProvider<ClockHandle>>
    }
}

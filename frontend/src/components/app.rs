//! The dashboard: the relay's streams, a viewer each, within the browser's connection budget.

use std::collections::HashMap;
use std::rc::Rc;

use yew::prelude::*;

use super::stream_card::StreamCard;
use crate::budget::{self, Grant, Want};
use crate::hooks::{use_clock_probe, use_streams, ClockHandle};
use crate::web;

#[component]
pub fn App() -> Html {
    let (clock, estimate) = use_clock_probe();
    let streams = use_streams();
    // What the user asked for, by stream name: playing unless paused; compare off unless on.
    let paused = use_state(HashMap::<String, bool>::new);
    let compare = use_state(HashMap::<String, bool>::new);
    let protocol = use_memo((), |_| web::page_protocol());
    let slots = budget::slots_for(&protocol);

    let list = streams.list.clone().unwrap_or_default();
    let wants: Vec<Want> = list
        .iter()
        .map(|s| Want {
            playing: !paused.get(&s.name).copied().unwrap_or(false),
            connections: 1 + usize::from(compare.get(&s.name).copied().unwrap_or(false)),
        })
        .collect();
    let grants = budget::allocate(&wants, slots);
    let used: usize = wants
        .iter()
        .zip(&grants)
        .filter(|(_, g)| **g == Grant::Play)
        .map(|(w, _)| w.connections)
        .sum();

    let cards = list.iter().zip(grants).map(|(info, grant)| {
        let name = info.name.clone();
        let on_play = {
            let (paused, name) = (paused.clone(), name.clone());
            Callback::from(move |play: bool| {
                let mut next = (*paused).clone();
                next.insert(name.clone(), !play);
                paused.set(next);
            })
        };
        let on_compare = {
            let (compare, name) = (compare.clone(), name.clone());
            Callback::from(move |on: bool| {
                let mut next = (*compare).clone();
                next.insert(name.clone(), on);
                compare.set(next);
            })
        };
        html! {
            <StreamCard key={name.clone()} info={Rc::new(info.clone())} {grant}
                compare={compare.get(&name).copied().unwrap_or(false)} {on_play} {on_compare} />
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
                if let Some(err) = &streams.error {
                    <span class="error" data-api-error="true">{ format!("relay unreachable: {err}; retrying") }</span>
                }
            </header>
            <main class="streams">
                if streams.list.is_none() {
                    <p>{ "Asking the relay for its streams…" }</p>
                } else if list.is_empty() {
                    <p>{ "The relay serves no streams." }</p>
                }
                { for cards }
            </main>
        </ContextProvider<ClockHandle>>
    }
}

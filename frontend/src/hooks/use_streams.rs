//! The relay's stream list, polled from `/api/streams`. A failed poll keeps the last list (so
//! viewers stay mounted and reconnect by themselves when the relay comes back) and says why.
//!
//! A 401 or 403 is reported as such, so that the dashboard can ask for the token.
//!
//! It also notices when the relay restarted: a poll succeeds after one failed, or a stream's
//! `frames_produced` went down. A plain `<img>` needs that news: Chrome fires no event when a
//! multipart image's stream ends cleanly, so it would show its last frame forever.

use std::rc::Rc;

use mjpeg_shared::api::{StreamInfo, StreamList};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::web;

const POLL_MS: u32 = 2_000;

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Streams {
    /// None until the first answer.
    pub list: Option<Rc<Vec<StreamInfo>>>,
    /// Why the last poll failed, if it did.
    pub error: Option<String>,
    /// Relay restarts seen since the page loaded.
    pub epoch: u32,
    /// The relay wants credentials (401) or refused the ones sent (403).
    pub auth: Option<AuthNeeded>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthNeeded {
    /// None sent, or none kept yet.
    Missing,
    /// The kept token (or the browser's Basic credentials) were refused.
    Refused,
}

#[hook]
pub fn use_streams() -> Streams {
    let state = use_state_eq(Streams::default);
    {
        let state = state.clone();
        use_effect_with((), move |_| {
            let alive = Rc::new(());
            let weak = Rc::downgrade(&alive);
            spawn_local(async move {
                let mut last: Option<Rc<Vec<StreamInfo>>> = None;
                let (mut epoch, mut failed) = (0, false);
                while weak.upgrade().is_some() {
                    let next = match web::get_json::<StreamList>("/api/streams").await {
                        Ok(list) => {
                            if failed || restarted(last.as_deref(), &list.streams) {
                                epoch += 1;
                            }
                            failed = false;
                            last = Some(Rc::new(list.streams));
                            Streams {
                                list: last.clone(),
                                error: None,
                                epoch,
                                auth: None,
                            }
                        }
                        Err(e) => {
                            failed = last.is_some();
                            Streams {
                                list: last.clone(),
                                auth: match e.status {
                                    401 => Some(AuthNeeded::Missing),
                                    403 => Some(AuthNeeded::Refused),
                                    _ => None,
                                },
                                error: Some(e.message),
                                epoch,
                            }
                        }
                    };
                    if weak.upgrade().is_none() {
                        break;
                    }
                    state.set(next);
                    web::sleep_ms(POLL_MS).await;
                }
            });
            move || drop(alive)
        });
    }
    (*state).clone()
}

/// A stream counts fewer frames than before: the relay started over.
fn restarted(before: Option<&Vec<StreamInfo>>, now: &[StreamInfo]) -> bool {
    before.is_some_and(|before| {
        now.iter().any(|s| {
            before
                .iter()
                .any(|b| b.name == s.name && s.frames_produced < b.frames_produced)
        })
    })
}

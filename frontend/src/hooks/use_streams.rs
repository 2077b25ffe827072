//! The relay's stream list, polled from `/api/streams`. A failed poll keeps the last list (so
//! viewers stay mounted and reconnect by themselves when the relay comes back) and says why.

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
                while weak.upgrade().is_some() {
                    let next = match web::get_json::<StreamList>("/api/streams").await {
                        Ok(list) => {
                            last = Some(Rc::new(list.streams));
                            Streams {
                                list: last.clone(),
                                error: None,
                            }
                        }
                        Err(e) => Streams {
                            list: last.clone(),
                            error: Some(e),
                        },
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

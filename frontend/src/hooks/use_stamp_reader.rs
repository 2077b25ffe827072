//! Reads frame stamps off an `<img>` (see [`StampReader`]) for the component's lifetime, and
//! hands the figures over at overlay rate. `generation` changes when the `<img>` reconnects.

use std::rc::Rc;

use gloo_timers::callback::Interval;
use web_sys::HtmlImageElement;
use yew::prelude::*;

use super::{ClockHandle, OVERLAY_MS};
use crate::stamp_reader::{StampReader, StampView};

#[hook]
pub fn use_stamp_reader(img: NodeRef, generation: u32) -> Option<StampView> {
    let clock = use_context::<ClockHandle>().unwrap_or_default();
    let view = use_state_eq(|| None::<StampView>);
    let reader = use_mut_ref(|| None::<Rc<StampReader>>);
    {
        let (view, reader) = (view.clone(), reader.clone());
        use_effect_with((), move |_| {
            let running = img
                .cast::<HtmlImageElement>()
                .and_then(|img| StampReader::start(img).ok())
                .map(|r| {
                    let r = Rc::new(r);
                    *reader.borrow_mut() = Some(r.clone());
                    let p = r.clone();
                    let tick = Interval::new(OVERLAY_MS, move || {
                        view.set(Some(p.view(clock.estimate())));
                    });
                    (r, tick)
                });
            move || {
                reader.borrow_mut().take();
                drop(running)
            }
        });
    }
    {
        let reader = reader.clone();
        use_effect_with(generation, move |_| {
            if let Some(r) = reader.borrow().as_ref() {
                r.restart();
            }
        });
    }
    (*view).clone()
}

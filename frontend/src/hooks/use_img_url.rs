//! The URL an `<img>` (or a link) of a stream loads, once it is known: with a signed query when
//! the relay needs a token ([`crate::auth::img_url`], which may ask the relay first).

use std::cell::Cell;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use yew::prelude::*;

/// A link kept for a long time (the Snapshot button) is signed again this often, well inside the
/// signature's hour; an `<img>` is not (a new `src` would restart its stream, and a stream
/// already open plays on past the expiry).
const RESIGN_MS: u32 = 10 * 60 * 1000;

/// `url` (a path of `stream`'s endpoints) as it should be loaded; `None` while it is being
/// signed, or if signing failed (the `<img>` then has no `src`). With `refresh`, signed again
/// every [`RESIGN_MS`].
#[hook]
pub fn use_img_url(stream: AttrValue, url: String, refresh: bool) -> Option<String> {
    let out = use_state_eq(|| None::<String>);
    let tick = use_state_eq(|| 0u32);
    // Answers to an older request are dropped: only the newest may set the URL.
    let generation = use_mut_ref(|| Rc::new(Cell::new(0u64)));
    {
        let out = out.clone();
        let generation = generation.borrow().clone();
        use_effect_with((stream, url, *tick), move |(stream, url, _)| {
            let mine = generation.get() + 1;
            generation.set(mine);
            let (stream, url) = (stream.clone(), url.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let signed = crate::auth::img_url(&stream, &url).await;
                if generation.get() == mine {
                    out.set(signed);
                }
            });
        });
    }
    {
        let tick = tick.clone();
        use_effect_with(refresh, move |refresh| {
            let interval =
                refresh.then(|| Interval::new(RESIGN_MS, move || tick.set(tick.wrapping_add(1))));
            move || drop(interval)
        });
    }
    (*out).clone()
}

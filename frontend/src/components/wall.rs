//! The wall (`/wall`): every stream as a tile in a grid, all on one connection
//! (`wall.frames?names=...`, [`crate::tiles`]), each a rendition as wide as its tile in device
//! pixels, with a compact overlay carrying the full overlay's `data-` attributes. A click on a
//! tile opens that stream's full viewer.
//!
//! Nothing runs unseen: a tile outside the viewport (IntersectionObserver) is left off the wall,
//! and a hidden tab (visibilitychange) plays nothing, so the relay stops sending those streams
//! and counts no viewer for them. Each change opens the wall anew with the streams still seen,
//! after [`SETTLE_MS`] without another change (a scroll is many changes).

use std::cell::RefCell;
use std::rc::Rc;

use gloo_timers::callback::Timeout;
use mjpeg_shared::api::StreamInfo;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{Element, IntersectionObserver, IntersectionObserverEntry, ResizeObserver};
use yew::prelude::*;

use super::overlay::Overlay;
use crate::hooks::{use_player, Canvas};
use crate::stats::Snapshot;
use crate::{tiles, web};

/// How long the set of seen tiles, or the window's size, must hold before the wall is opened
/// anew.
const SETTLE_MS: u32 = 150;

#[derive(Properties, PartialEq)]
pub struct WallProps {
    pub list: Rc<Vec<StreamInfo>>,
}

/// A stream's tile: its element (observed) and its canvas (painted).
#[derive(Clone, PartialEq)]
struct Tile {
    name: AttrValue,
    element: NodeRef,
    canvas: NodeRef,
}

#[component]
pub fn Wall(props: &WallProps) -> Html {
    let names: Vec<AttrValue> = props
        .list
        .iter()
        .map(|s| AttrValue::from(s.name.clone()))
        .collect();
    let tiles = use_memo(names, |names| {
        names
            .iter()
            .map(|name| Tile {
                name: name.clone(),
                element: NodeRef::default(),
                canvas: NodeRef::default(),
            })
            .collect::<Vec<_>>()
    });
    let seen = use_state_eq(Vec::<AttrValue>::new);
    let hidden = use_state_eq(web::page_hidden);
    let tile_px = use_state_eq(|| 0u32);

    use_seen_tiles(tiles.clone(), seen.setter());
    {
        let hidden = hidden.setter();
        use_effect_with((), move |_| {
            let listener = web::Listener::new(&web::document(), "visibilitychange", move || {
                hidden.set(web::page_hidden())
            });
            move || drop(listener)
        });
    }
    {
        // The tiles' width in device pixels, now and once a change of the first tile's size
        // settles (a window resize, a scrollbar coming or going: a new width is a new
        // connection).
        let tile_px = tile_px.setter();
        use_effect_with(tiles.clone(), move |tiles| {
            let first = tiles.first().and_then(|t| t.canvas.cast::<Element>());
            let measure = {
                let first = first.clone();
                Rc::new(move || {
                    let css = first.as_ref().map_or(0, |c| c.client_width());
                    let dpr = web::window().device_pixel_ratio();
                    tile_px.set((f64::from(css.max(0)) * dpr).round() as u32);
                })
            };
            measure();
            let settle: Rc<RefCell<Option<Timeout>>> = Rc::default();
            let on_resize = {
                let settle = settle.clone();
                Closure::<dyn FnMut()>::new(move || {
                    let measure = measure.clone();
                    *settle.borrow_mut() = Some(Timeout::new(SETTLE_MS, move || measure()));
                })
            };
            let observer = ResizeObserver::new(on_resize.as_ref().unchecked_ref()).ok();
            if let (Some(observer), Some(first)) = (&observer, &first) {
                observer.observe(first);
            }
            move || {
                if let Some(observer) = observer {
                    observer.disconnect();
                }
                settle.borrow_mut().take();
                drop_later(on_resize);
            }
        });
    }

    // The wall: the streams seen, in the list's order, while the tab is visible.
    let on_wall: Vec<&StreamInfo> = if *hidden {
        Vec::new()
    } else {
        props
            .list
            .iter()
            .filter(|s| seen.iter().any(|n| n.as_str() == s.name))
            .collect()
    };
    let on_wall = tiles::on_wall(&on_wall);
    let url = tiles::wall_url(
        &on_wall
            .iter()
            .map(|s| (s.name.as_str(), s.width))
            .collect::<Vec<_>>(),
        *tile_px,
    )
    .map(AttrValue::from);
    let playing: Vec<AttrValue> = on_wall
        .iter()
        .map(|s| AttrValue::from(s.name.clone()))
        .collect();
    let canvases = use_memo((playing.clone(), tiles.clone()), |(playing, tiles)| {
        tiles
            .iter()
            .filter(|t| playing.contains(&t.name))
            .map(|t| Canvas {
                stream: Some(t.name.clone()),
                node: t.canvas.clone(),
            })
            .collect::<Vec<_>>()
    });
    let views = use_player(url.clone(), canvases.clone(), true);

    let cells = props.list.iter().zip(tiles.iter()).map(|(info, tile)| {
        let view = canvases
            .iter()
            .position(|c| c.stream.as_ref() == Some(&tile.name))
            .and_then(|i| views.get(i));
        let overlay = match view {
            Some(v) => html! {
                <Overlay role="tile" compact=true stream={tile.name.clone()} transport={v.mode.transport()}
                    state={v.mode.state()} stats={v.stats.clone()}
                    first_paint_ms={v.first_paint_ms} open_bitmaps={Some(v.open_bitmaps)}
                    meta_shapes={Some(v.meta_shapes)}
                    rendition={AttrValue::from(v.rendition.map_or("source".to_string(), |r| r.to_string()))} />
            },
            None => html! {
                <Overlay role="tile" compact=true transport="none"
                    state={if *hidden { "hidden" } else { "unseen" }}
                    stats={Snapshot::default()} />
            },
        };
        let open = {
            let name = tile.name.clone();
            Callback::from(move |_| {
                let _ = web::window()
                    .location()
                    .set_href(&format!("/?stream={name}"));
            })
        };
        html! {
            <section class="tile" key={tile.name.to_string()} data-stream={tile.name.clone()}
                ref={tile.element.clone()} onclick={open}
                title={format!("{}: open the full viewer", tile.name)}>
                <div class="picture">
                    <canvas ref={tile.canvas.clone()}
                        width={info.width.unwrap_or(640).to_string()}
                        height={info.height.unwrap_or(360).to_string()} />
                    <span class="name">{ tile.name.clone() }</span>
                    { overlay }
                </div>
            </section>
        }
    });
    html! {
        <main class="wall" data-wall-url={url}>
            { for cells }
        </main>
    }
}

/// Keeps `seen` to the names of the tiles in the viewport, in no particular order, once they
/// have held for [`SETTLE_MS`].
#[hook]
fn use_seen_tiles(tiles: Rc<Vec<Tile>>, seen: UseStateSetter<Vec<AttrValue>>) {
    use_effect_with(tiles, move |tiles| {
        let now: Rc<RefCell<Vec<AttrValue>>> = Rc::default();
        let settle: Rc<RefCell<Option<Timeout>>> = Rc::default();
        let on_change = {
            let settle = settle.clone();
            Closure::<dyn FnMut(js_sys::Array)>::new(move |entries: js_sys::Array| {
                let mut names = now.borrow_mut();
                for entry in entries.iter() {
                    let entry: IntersectionObserverEntry = entry.unchecked_into();
                    let Some(name) = entry.target().get_attribute("data-stream") else {
                        continue;
                    };
                    names.retain(|n| n.as_str() != name);
                    if entry.is_intersecting() {
                        names.push(AttrValue::from(name));
                    }
                }
                let (next, seen) = (names.clone(), seen.clone());
                *settle.borrow_mut() = Some(Timeout::new(SETTLE_MS, move || seen.set(next)));
            })
        };
        let observer = IntersectionObserver::new(on_change.as_ref().unchecked_ref()).ok();
        if let Some(observer) = &observer {
            for tile in tiles.iter() {
                if let Some(el) = tile.element.cast::<Element>() {
                    observer.observe(&el);
                }
            }
        }
        move || {
            if let Some(observer) = observer {
                observer.disconnect();
            }
            settle.borrow_mut().take();
            drop_later(on_change);
        }
    });
}

/// Drops an observer's callback a second from now, not at once: a disconnected observer may
/// still deliver a notification it had queued, and calling a dropped closure throws.
fn drop_later<T: ?Sized + 'static>(callback: Closure<T>) {
    Timeout::new(1_000, move || drop(callback)).forget();
}

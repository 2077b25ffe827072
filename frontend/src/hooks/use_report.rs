//! Tells the relay what this viewer sees: every [`REPORT_EVERY_SECS`] while it plays, the
//! overlay's figures go to `POST /api/streams/NAME/report` (with the kept credentials), so the
//! relay's `/metrics` and `/api/streams/NAME` show viewers' latency and fps. Best effort: a
//! report that fails is not sent again; the next one follows. None goes while the tab is hidden
//! (nothing is shown, so 0 fps would be no viewer's experience).
//!
//! The page's reports go one at a time, from one queue holding at most one per viewer (a newer
//! replaces it): a wall's sixteen tiles reporting at once would otherwise make the browser open
//! up to six connections, where the wall must cost one, and reports must not pile up behind
//! streams that hold every connection.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use gloo_timers::callback::Interval;
use mjpeg_shared::api::{ReportedFigures, ViewerReport, REPORT_EVERY_SECS};
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::web;

/// Reports `figures` for `stream` while both are set; the newest given is sent at each tick.
#[hook]
pub fn use_report(stream: Option<AttrValue>, figures: Option<ReportedFigures>) {
    // One id per viewer for as long as it is on the page: its reports replace one another.
    let id = use_memo((), |_| viewer_id());
    let latest = use_mut_ref(|| None::<ViewerReport>);
    *latest.borrow_mut() = figures.map(|figures| ViewerReport {
        viewer: (*id).clone(),
        figures,
    });
    use_effect_with(stream, move |stream| {
        let tick = stream.clone().map(|name| {
            let path: Rc<str> = format!("/api/streams/{name}/report").into();
            Interval::new(REPORT_EVERY_SECS as u32 * 1000, move || {
                let Some(report) = latest.borrow().clone() else {
                    return;
                };
                if !web::page_hidden() {
                    send(path.clone(), report);
                }
            })
        });
        move || drop(tick)
    });
}

thread_local! {
    /// Reports waiting to go, at most one per viewer, oldest first.
    static QUEUE: RefCell<VecDeque<(Rc<str>, ViewerReport)>> = const { RefCell::new(VecDeque::new()) };
    /// A task is sending the queue.
    static SENDING: Cell<bool> = const { Cell::new(false) };
}

/// Queues `report` for `path` (replacing the viewer's waiting one) and starts the sender.
fn send(path: Rc<str>, report: ViewerReport) {
    QUEUE.with_borrow_mut(
        |q| match q.iter_mut().find(|(_, r)| r.viewer == report.viewer) {
            Some(waiting) => *waiting = (path, report),
            None => q.push_back((path, report)),
        },
    );
    if SENDING.replace(true) {
        return;
    }
    spawn_local(async {
        while let Some((path, report)) = QUEUE.with_borrow_mut(|q| q.pop_front()) {
            let _ = web::post_json(&path, &report).await;
        }
        SENDING.set(false);
    });
}

/// 16 random letters and digits.
fn viewer_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..16)
        .map(|_| {
            CHARS[(js_sys::Math::random() * CHARS.len() as f64) as usize % CHARS.len()] as char
        })
        .collect()
}

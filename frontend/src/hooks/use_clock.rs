//! The page's one clock-offset estimator, probing `/api/time`: a burst at start so latencies
//! are known within a second, then every few seconds so the estimate follows drift and the
//! fastest of the last [`crate::clock::KEEP`] probes stays recent.
//!
//! A probe's round trip is the network stack's (request sent to first byte back, from
//! Resource Timing: [`web::request_window_us`]) where the browser gives it. The moments script
//! sees wait behind whatever else the main thread is doing (decoding and painting frames, a
//! wall of them), which made the error bound 3-5 ms on loopback; the network stack's are well
//! under a millisecond there.

use std::cell::RefCell;
use std::rc::Rc;

use mjpeg_shared::api::ServerTime;
use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::clock::{ClockEstimator, Estimate};
use crate::web;

/// Probes sent at start, [`BURST_GAP_MS`] apart.
const BURST: u32 = 5;
const BURST_GAP_MS: u32 = 150;
/// Then one probe this often.
const PERIOD_MS: u32 = 5_000;

/// Shared handle to the estimator (context value; equal when it is the same estimator).
#[derive(Clone, Default)]
pub struct ClockHandle(Rc<RefCell<ClockEstimator>>);

impl PartialEq for ClockHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl ClockHandle {
    pub fn estimate(&self) -> Option<Estimate> {
        self.0.borrow().estimate()
    }
}

/// Starts probing for the lifetime of the calling component; returns the handle and the
/// estimate as of the last probe (for display).
#[hook]
pub fn use_clock_probe() -> (ClockHandle, Option<Estimate>) {
    let handle = use_memo((), |_| ClockHandle::default());
    let estimate = use_state_eq(|| None::<Estimate>);
    {
        let (handle, estimate) = ((*handle).clone(), estimate.clone());
        use_effect_with((), move |_| {
            let alive = Rc::new(());
            let weak = Rc::downgrade(&alive);
            spawn_local(async move {
                let mut sent = 0;
                while weak.upgrade().is_some() {
                    if let Some((t0, server_us, t3)) = probe(sent).await {
                        handle.0.borrow_mut().add(t0, server_us, t3);
                        if weak.upgrade().is_some() {
                            estimate.set(handle.estimate());
                        }
                    }
                    sent += 1;
                    web::sleep_ms(if sent < BURST {
                        BURST_GAP_MS
                    } else {
                        PERIOD_MS
                    })
                    .await;
                }
            });
            move || drop(alive)
        });
    }
    ((*handle).clone(), *estimate)
}

/// Probe number `n`: (sent, the relay's time, answered), local times in microseconds; None when
/// the relay did not answer. Each probe has its own URL, so its timing entry is its own.
async fn probe(n: u32) -> Option<(f64, f64, f64)> {
    web::clear_resource_timings();
    let t0 = web::now_us();
    let (time, url) = web::get_json_from::<ServerTime>(&format!("/api/time?probe={n}"))
        .await
        .ok()?;
    let t3 = web::now_us();
    // Both windows hold the moment the relay stamped its answer: it lies in where they meet.
    let (t0, t3) = web::request_window_us(&url)
        .await
        .map(|(sent, answered)| (sent.max(t0), answered.min(t3)))
        .filter(|(sent, answered)| sent <= answered)
        .unwrap_or((t0, t3));
    Some((t0, time.unix_micros as f64, t3))
}

//! Unit tests of the parts that need a browser (the fetch-path player, the `<img>` stamp
//! reader), run in headless Chromium by `wasm-bindgen-test-runner` (scripts/test.sh). The
//! frames are real JPEGs made by the browser's own encoder (`canvas.toBlob`), carrying the
//! frame stamp, served from Blob URLs so no relay is needed.

use js_sys::{Array, Promise, Uint8Array};
use mjpeg_shared::stamp::{self, Stamp};
use mjpeg_shared::wire::{Layout, PartInfo, Rendition, FRAMES_CONTENT_TYPE};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{Clamped, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{
    Blob, BlobPropertyBag, CanvasRenderingContext2d, HtmlCanvasElement, HtmlImageElement,
    ImageData, Url,
};

use crate::clock::Estimate;
use crate::player::{Player, PlayerView, Screen};
use crate::stamp_reader::StampReader;
use crate::web;

wasm_bindgen_test_configure!(run_in_browser);

const W: u32 = 160;
const H: u32 = 120;

fn canvas(w: u32, h: u32) -> HtmlCanvasElement {
    let c: HtmlCanvasElement = web::window()
        .document()
        .unwrap()
        .create_element("canvas")
        .unwrap()
        .unchecked_into();
    c.set_width(w);
    c.set_height(h);
    c
}

fn ctx(c: &HtmlCanvasElement) -> CanvasRenderingContext2d {
    web::context_2d(c, false).unwrap()
}

/// A grey W x H JPEG, encoded by the browser, with `stamp` painted in if given.
async fn jpeg(stamp: Option<Stamp>) -> Vec<u8> {
    let mut rgb = vec![90u8; (W * H * 3) as usize];
    if let Some(s) = stamp {
        stamp::draw_rgb(s, &mut rgb, W as usize, H as usize);
    }
    let rgba: Vec<u8> = rgb
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let c = canvas(W, H);
    let data = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), W, H).unwrap();
    ctx(&c).put_image_data(&data, 0.0, 0.0).unwrap();
    let done = Promise::new(&mut |resolve, _| {
        let cb = Closure::once_into_js(move |blob: JsValue| {
            resolve.call1(&JsValue::NULL, &blob).unwrap();
        });
        c.to_blob_with_type_and_encoder_options(cb.unchecked_ref(), "image/jpeg", &0.9.into())
            .unwrap();
    });
    let blob: Blob = JsFuture::from(done).await.unwrap().unchecked_into();
    let buf = JsFuture::from(blob.array_buffer()).await.unwrap();
    Uint8Array::new(&buf).to_vec()
}

fn blob_url(bytes: &[u8], content_type: &str) -> String {
    let opts = BlobPropertyBag::new();
    opts.set_type(content_type);
    let blob =
        Blob::new_with_u8_array_sequence_and_options(&Array::of1(&Uint8Array::from(bytes)), &opts)
            .unwrap();
    Url::create_object_url_with_blob(&blob).unwrap()
}

/// Polls `check` every 20 ms for up to `ms`; returns its first Some.
async fn until<T>(ms: u32, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..ms / 20 {
        if let Some(v) = check() {
            return Some(v);
        }
        web::sleep_ms(20).await;
    }
    check()
}

#[wasm_bindgen_test]
async fn player_paints_the_newest_frame_of_a_frames_body_and_closes_every_bitmap() {
    let mut body = Vec::new();
    for seq in 1..=3u32 {
        let s = Stamp {
            seq,
            capture_micros: 1_700_000_000_000_000 + u64::from(seq) * 33_333,
        };
        Layout::Frames.write_part(
            &mut body,
            &jpeg(Some(s)).await,
            u64::from(seq),
            s.capture_micros,
        );
    }
    let url = blob_url(&body, FRAMES_CONTENT_TYPE);
    let c = canvas(1, 1);
    let player = Player::single(url.clone(), c.clone(), Default::default()).unwrap();

    // The moment frame 3 is painted and nothing is left open (the player, finding the body
    // ended, plays it again a moment later: any pass's end will do).
    let view = until(5_000, || {
        let v = player.view(None);
        played_through(&v, 3, 3).then_some(v)
    })
    .await
    .unwrap_or_else(|| panic!("frame 3 painted within 5 s: {:?}", player.view(None)));
    // Every part was either painted or superseded by a newer one (the condition above), and
    // frame 3, the newest, was painted.
    assert!(view.stats.frames >= 1, "{view:?}");
    assert_eq!(view.stats.skipped_upstream, 0);
    assert_eq!((view.stats.width, view.stats.height), (W, H));
    assert_eq!((c.width(), c.height()), (W, H));

    // The canvas shows frame 3: its stamp, read back from the pixels.
    let px = ctx(&c)
        .get_image_data(0.0, 0.0, stamp::WIDTH as f64, stamp::HEIGHT as f64)
        .unwrap()
        .data();
    let shown = stamp::decode(&px, stamp::WIDTH, stamp::HEIGHT, 4).expect("a stamp on the canvas");
    assert_eq!(shown.seq, 3);
    drop(player);
    Url::revoke_object_url(&url).unwrap();
}

#[wasm_bindgen_test]
async fn a_wall_player_paints_each_part_on_the_screen_of_its_stream() {
    // Stream a's frames 1..=3 and b's 11..=12 interleaved, and one of c, which this player
    // does not show.
    let mut body = Vec::new();
    for (stream, seq) in [
        ("a", 1),
        ("b", 11),
        ("c", 21),
        ("a", 2),
        ("b", 12),
        ("a", 3),
    ] {
        let s = Stamp {
            seq,
            capture_micros: 1_700_000_000_000_000 + u64::from(seq) * 33_333,
        };
        let info = PartInfo {
            seq: u64::from(seq),
            timestamp_micros: s.capture_micros,
            stream: Some(stream),
            ..PartInfo::default()
        };
        Layout::Wall.write_part_with(&mut body, &jpeg(Some(s)).await, &info);
    }
    let url = blob_url(&body, FRAMES_CONTENT_TYPE);
    let (a, b) = (canvas(1, 1), canvas(1, 1));
    let screens = vec![
        Screen::new(Some("a".into()), a.clone()).unwrap(),
        Screen::new(Some("b".into()), b.clone()).unwrap(),
    ];
    let player = Player::start(url.clone(), screens, Default::default());
    let views = until(5_000, || {
        let v = player.views(None);
        (played_through(&v[0], 3, 3) && played_through(&v[1], 2, 12)).then_some(v)
    })
    .await
    .unwrap_or_else(|| panic!("both streams painted within 5 s: {:?}", player.views(None)));
    // Each screen counted only its own stream's frames: no gap in a's 1..3 or b's 11..12.
    assert_eq!(views.len(), 2);
    for v in &views {
        assert_eq!(v.stats.skipped_upstream, 0, "{v:?}");
        assert_eq!(v.undecodable, 0, "{v:?}");
    }
    // And each canvas shows the newest frame of its stream.
    for (c, want) in [(&a, 3), (&b, 12)] {
        let px = ctx(c)
            .get_image_data(0.0, 0.0, stamp::WIDTH as f64, stamp::HEIGHT as f64)
            .unwrap()
            .data();
        let shown = stamp::decode(&px, stamp::WIDTH, stamp::HEIGHT, 4).expect("a stamp");
        assert_eq!(shown.seq, want);
    }
    drop(player);
    Url::revoke_object_url(&url).unwrap();
}

/// True once every part of a body of `parts` frames, the last numbered `last`, was painted or
/// superseded, so the canvas shows frame `last`. `last_seq` alone is the newest *received*,
/// which may still be decoding while an older frame is on the canvas. A player replays a body
/// that ended (it reconnects), so this holds at the end of any pass: with the newest received
/// the last (`parts` times k received) and nothing waiting to be painted (at most two parts
/// unresolved, one decoding and one waiting for it), a multiple of `parts` resolved is all.
fn played_through(v: &PlayerView, parts: u64, last: u64) -> bool {
    let resolved = v.stats.frames + v.stats.skipped_here;
    resolved > 0 && resolved % parts == 0 && v.stats.last_seq == Some(last) && v.open_bitmaps == 0
}

/// The RGBA pixel at (x, y) of the canvas.
fn pixel(c: &HtmlCanvasElement, x: u32, y: u32) -> Vec<u8> {
    ctx(c)
        .get_image_data(f64::from(x), f64::from(y), 1.0, 1.0)
        .unwrap()
        .data()
        .to_vec()
}

const RENDITION: Rendition = Rendition {
    width: W,
    height: H,
    quality: 60,
    overlay: false,
};

#[wasm_bindgen_test]
async fn metadata_is_drawn_over_its_own_frame_only_and_stages_make_the_waterfall() {
    // Frame 1 has a box on the left, frame 2 none, frame 3 one on the right, with stages: once
    // frame 3 is painted, only its box is on the canvas.
    let left = br##"{"boxes":[{"x":0.05,"y":0.25,"w":0.3,"h":0.5,"color":"#ff0000"}]}"##;
    let right = br##"{"boxes":[{"x":0.6,"y":0.25,"w":0.3,"h":0.5,"color":"#ff00ff"}]}"##;
    let capture = 1_700_000_000_000_000u64;
    let stages = [
        ("inferred".to_string(), capture + 20_000),
        ("received".to_string(), capture + 22_000),
    ];
    let mut body = Vec::new();
    for (seq, meta, stages) in [
        (1, Some(&left[..]), &[][..]),
        (2, None, &[][..]),
        (3, Some(&right[..]), &stages[..]),
    ] {
        let info = PartInfo {
            seq,
            timestamp_micros: capture,
            stages,
            meta,
            // Frame 3 is a rendition (what the dashboard shows as data-rendition).
            rendition: (seq == 3).then_some(RENDITION),
            stream: None,
        };
        Layout::FramesMeta.write_part_with(&mut body, &jpeg(None).await, &info);
    }
    let url = blob_url(&body, FRAMES_CONTENT_TYPE);
    let clock = Some(Estimate {
        offset_us: 0.0,
        error_us: 100.0,
    });
    for show in [true, false] {
        let c = canvas(1, 1);
        let player = Player::single(url.clone(), c.clone(), std::rc::Rc::new(show.into())).unwrap();
        // Every part painted or superseded, and nothing left open: frame 3, the newest, is on
        // the canvas; and presented (the animation frame after its draw), so the waterfall is
        // frame 3's.
        let view = until(5_000, || {
            let v = player.view(clock);
            let presented = v
                .stats
                .waterfall
                .as_ref()
                .is_some_and(|w| w.segments.len() == 5);
            (played_through(&v, 3, 3) && presented).then_some(v)
        })
        .await
        .unwrap_or_else(|| panic!("frame 3 painted within 5 s: {:?}", player.view(clock)));
        // The right box's left edge (x = 0.6 W, 2 px line inside it), and where the left
        // box's edge was.
        let right_edge = pixel(&c, W * 6 / 10, H / 2);
        let left_edge = pixel(&c, W / 20, H / 2);
        let grey = |p: &[u8]| p[..3].iter().all(|v| v.abs_diff(90) < 12);
        assert!(
            grey(&left_edge),
            "frame 1's box is not over frame 3: {left_edge:?}"
        );
        if show {
            assert_eq!(right_edge[..3], [255, 0, 255], "frame 3's box");
            assert_eq!(view.meta_shapes, 1);
        } else {
            assert!(grey(&right_edge), "the switch is off: {right_edge:?}");
            assert_eq!(view.meta_shapes, 0);
        }
        assert_eq!(
            view.rendition,
            Some(RENDITION),
            "frame 3 says it is a rendition"
        );
        // Frame 3's checkpoints, and the segments add up to the total.
        let w = view.stats.waterfall.expect("a waterfall");
        let names: Vec<&str> = w.segments.iter().map(|(n, _)| &**n).collect();
        assert_eq!(
            names,
            ["inferred", "received", "arrived", "painted", "presented"]
        );
        assert_eq!((w.segments[0].1, w.segments[1].1), (20.0, 2.0));
        let sum: f64 = w.segments.iter().map(|(_, ms)| ms).sum();
        assert!((sum - w.total_ms).abs() < 1e-3, "{w:?}");
        drop(player);
    }
    Url::revoke_object_url(&url).unwrap();
}

#[wasm_bindgen_test]
async fn a_body_that_is_not_multipart_is_reported_as_a_parse_error() {
    // What a middlebox that rewrites the response looks like: the right type, other bytes.
    let url = blob_url(&vec![b'x'; 100_000], FRAMES_CONTENT_TYPE);
    let player = Player::single(url.clone(), canvas(1, 1), Default::default()).unwrap();
    // /api/time does not answer here, so the player takes the relay for down rather than
    // falling back: the parse error is what it must report.
    let view = until(5_000, || {
        let v = player.view(None);
        matches!(v.mode, crate::player::Mode::Reconnecting { .. }).then_some(v)
    })
    .await
    .expect("the attempt ended");
    let crate::player::Mode::Reconnecting { reason } = view.mode else {
        unreachable!()
    };
    assert!(reason.contains("could not be parsed"), "{reason}");
    assert_eq!(view.stats.frames, 0);
    drop(player);
    Url::revoke_object_url(&url).unwrap();
}

#[wasm_bindgen_test]
async fn stamp_reader_reads_an_img_and_knows_a_picture_without_a_stamp() {
    let clock = Some(Estimate {
        offset_us: 0.0,
        error_us: 100.0,
    });
    let stamped = Stamp {
        seq: 42,
        capture_micros: 1_700_000_000_123_456,
    };
    for (stamp, want) in [(Some(stamped), Some(42)), (None, None)] {
        let url = blob_url(&jpeg(stamp).await, "image/jpeg");
        let img = HtmlImageElement::new().unwrap();
        img.set_src(&url);
        let reader = StampReader::start(img).unwrap();
        until(5_000, || reader.view(clock).showing.then_some(()))
            .await
            .expect("the image loaded within 5 s");
        // Some animation frames later the stamp is read (waited for up to 5 s), or known to be
        // absent (none read for 1 s).
        let wait = if want.is_some() { 5_000 } else { 1_000 };
        let view = until(wait, || Some(reader.view(clock)).filter(|v| v.stamped))
            .await
            .unwrap_or_else(|| reader.view(clock));
        assert_eq!(view.stamped, want.is_some(), "{view:?}");
        assert_eq!(view.stats.last_seq, want);
        assert_eq!(view.stats.frames, u64::from(want.is_some()));
        Url::revoke_object_url(&url).unwrap();
    }
}

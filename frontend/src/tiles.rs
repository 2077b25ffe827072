//! What the wall asks the relay for: which streams (those a person can see) and at what width
//! (the tile's, in device pixels), as one `wall.frames` URL. Plain Rust, host-tested.

use mjpeg_shared::wire::{WALL, WALL_MAX_STREAMS};

/// Tile widths are rounded up to this many device pixels, so that a window resized by a few
/// pixels keeps its renditions (a new width is a new connection and new renditions).
pub const WIDTH_STEP: u32 = 32;

/// The wall's URL for `seen` streams (in the order given; at most [`WALL_MAX_STREAMS`] of them,
/// the rest are left off), each `(name, its source width if known)`, in tiles `tile_px` device
/// pixels wide. `None` when there is nothing to play or the tiles are not measured yet.
///
/// The width is the tile's rounded up to [`WIDTH_STEP`], and never more than the narrowest
/// known source's (the relay refuses to enlarge, and one width applies to every stream on a
/// wall); when every source's width is known and none is wider than that, the wall asks for no
/// width and gets the sources' own frames. A source of unknown size (a push stream before its
/// first frame) beside known ones takes the width as asked: the relay clamps it per frame.
/// When no size is known (a wall of sources that sleep until watched, as on first load) it asks
/// for none: once the sizes are known a wider source costs one reconnect with a width, and a
/// wall of narrow sources none.
pub fn wall_url(seen: &[(&str, Option<u32>)], tile_px: u32) -> Option<String> {
    let seen = on_wall(seen);
    if seen.is_empty() || tile_px == 0 {
        return None;
    }
    let names = seen.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(",");
    let want = tile_px.div_ceil(WIDTH_STEP) * WIDTH_STEP;
    let known = || seen.iter().filter_map(|(_, w)| *w);
    let all_known = seen.iter().all(|(_, w)| w.is_some());
    let width = match known().max() {
        None => None,
        Some(widest) if all_known && want >= widest => None,
        Some(_) => known().min().map(|narrowest| want.min(narrowest)),
    };
    Some(format!(
        "/streams/{WALL}.frames?names={names}{}",
        width.map(|w| format!("&width={w}")).unwrap_or_default()
    ))
}

/// The streams of `seen` that go on the wall: the first [`WALL_MAX_STREAMS`].
pub fn on_wall<T>(seen: &[T]) -> &[T] {
    &seen[..seen.len().min(WALL_MAX_STREAMS)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_for_the_tile_width_rounded_up_and_never_more_than_a_source_has() {
        let seen = [("a", Some(1280)), ("b", Some(640))];
        assert_eq!(
            wall_url(&seen, 300).as_deref(),
            Some("/streams/wall.frames?names=a,b&width=320")
        );
        // b cannot be enlarged: both get b's width, a shrunk to it.
        assert_eq!(
            wall_url(&seen, 700).as_deref(),
            Some("/streams/wall.frames?names=a,b&width=640")
        );
        // Tiles as wide as every source: their own frames.
        assert_eq!(
            wall_url(&seen, 1300).as_deref(),
            Some("/streams/wall.frames?names=a,b")
        );
        // No size known yet (sources asleep until watched): no width until they are.
        assert_eq!(
            wall_url(&[("c", None), ("d", None)], 320).as_deref(),
            Some("/streams/wall.frames?names=c,d")
        );
        // A source of unknown size beside known ones takes the width as asked (the relay clamps
        // it per frame), even when the known one is narrower than the tile: c must not come at
        // full size.
        assert_eq!(
            wall_url(&[("a", Some(320)), ("c", None)], 640).as_deref(),
            Some("/streams/wall.frames?names=a,c&width=320")
        );
    }

    #[test]
    fn nothing_seen_or_unmeasured_asks_for_nothing_and_a_wall_stays_under_the_cap() {
        assert_eq!(wall_url(&[], 320), None);
        assert_eq!(wall_url(&[("a", Some(640))], 0), None);
        let names: Vec<String> = (0..40).map(|i| format!("s{i}")).collect();
        let seen: Vec<(&str, Option<u32>)> = names.iter().map(|n| (n.as_str(), None)).collect();
        let url = wall_url(&seen, 320).unwrap();
        let listed = url
            .split("names=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        assert_eq!(listed.split(',').count(), WALL_MAX_STREAMS);
    }
}

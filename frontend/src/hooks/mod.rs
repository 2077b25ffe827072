//! Hooks: the glue between the plain modules (clock, player, stamp reader) and the component
//! tree. Each one refreshes its component at overlay rate ([`OVERLAY_MS`]), never per frame.

mod use_clock;
mod use_img_url;
mod use_player;
mod use_report;
mod use_stamp_reader;
mod use_streams;

pub use use_clock::{use_clock_probe, ClockHandle};
pub use use_img_url::use_img_url;
pub use use_player::{use_player, Canvas};
pub use use_report::use_report;
pub use use_stamp_reader::use_stamp_reader;
pub use use_streams::{use_streams, AuthNeeded};

/// How often overlays refresh: a few times a second, readable and cheap.
pub const OVERLAY_MS: u32 = 250;

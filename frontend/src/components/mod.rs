//! Function components, one per file.

mod app;
mod chart;
mod embed;
mod fetch_view;
mod img_view;
mod overlay;
mod paused;
mod stream_card;
mod token_prompt;
mod wall;

pub use app::App;

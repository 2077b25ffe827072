//! The `mjpeg-relay` binary; everything lives in the library (see `lib.rs` for the map).
fn main() -> std::process::ExitCode {
    mjpeg_relay::main_entry()
}

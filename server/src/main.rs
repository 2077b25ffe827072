//! The `mjpeg-relay` binary; everything lives in the library (`lib.rs` has the map, `cli.rs`
//! the command).
fn main() -> std::process::ExitCode {
    mjpeg_relay::cli::main()
}

//! `mjpeg-relay` itself (same entry point), built for the black-box CLI tests.
fn main() -> std::process::ExitCode {
    mjpeg_relay::cli::main()
}

//! Rebuild when the dashboard (`dist/`, embedded by `src/http/dashboard.rs`) changes, appears or
//! goes: rust-embed's own tracking sees only the files that were there when it last ran.
fn main() {
    println!("cargo:rerun-if-changed=../dist");
    println!("cargo:rerun-if-changed=build.rs");
}

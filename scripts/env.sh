# Sourced by the other scripts: puts the project's tools (Trunk, wasm-bindgen in ~/.cargo/bin,
# wasm-opt from .tools/) on PATH.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$root/.tools/node_modules/.bin:$PATH"
# Trunk's update check cannot reach its server here; skip it.
export TRUNK_SKIP_VERSION_CHECK=true
cd "$root"

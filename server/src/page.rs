//! The page served at `/` when no built dashboard is found: the classic stream in a plain `<img>`
//! (exactly what a legacy page would embed) and how to build the real dashboard.

/// The page for the given stream names; the first one is shown.
pub fn builtin_index(streams: &[String], dashboard_dir: &str) -> String {
    let first = streams.first().map(String::as_str).unwrap_or("main");
    let links: String = streams
        .iter()
        .map(|s| {
            format!(
                "<li><code>{s}</code>: <a href=\"/streams/{s}.mjpg\">.mjpg</a> \
                 <a href=\"/streams/{s}.jpg\">.jpg</a> <a href=\"/api/streams/{s}\">api</a></li>"
            )
        })
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>mjpeg-relay</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;background:#111;color:#ddd}}
img{{max-width:100%;background:#000}} code{{color:#9cf}} a{{color:#9cf}}</style></head>
<body>
<h1>mjpeg-relay</h1>
<p><img id="stream" src="/streams/{first}.mjpg" alt="stream {first}"></p>
<p>Embed it in any page: <code>&lt;img src="http://HOST:PORT/streams/{first}.mjpg"&gt;</code></p>
<ul>{links}</ul>
<p>This is the built-in page. The dashboard (latency and FPS overlays) is served here once it is
built into <code>{dashboard_dir}</code>: run <code>scripts/run.sh</code>, or
<code>trunk build --release</code> from the repository root.</p>
</body>
</html>
"#
    )
}

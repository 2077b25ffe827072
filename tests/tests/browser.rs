//! A real browser: headless Chromium (driven over WebDriver by chromedriver) shows the classic
//! stream in a plain `<img>`, live.
//!
//! The page's pixels are read back through a same-origin canvas and the frame stamp decoded, so
//! the test knows which frame the browser is *showing*, not just that bytes arrived.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use mjpeg_relay_tests::{eventually, now_micros, TestRelay};
use mjpeg_shared::stamp;
use serde_json::json;

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser() -> anyhow::Result<(Driver, Client)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("chromedriver (installed by scripts/setup.sh): {e}"))?;
    let profile = tempfile::tempdir()?;
    let driver = Driver {
        child,
        port,
        _profile: profile,
    };
    let caps = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            // As root, without a GPU, and with no network beyond loopback (see TOOLCHAIN.md).
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{}", driver.port);
    let client = eventually(Duration::from_secs(15), || {
        let caps = caps.clone();
        let url = url.clone();
        async move {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            Ok(ClientBuilder::new(connector)
                .capabilities(caps)
                .connect(&url)
                .await
                .ok())
        }
    })
    .await?;
    Ok((driver, client))
}

/// Draws the page's `<img id=stream>` onto a canvas and returns (width, height, RGBA pixels of
/// the stamp area), or None before the image has painted.
async fn stamp_pixels(client: &Client) -> anyhow::Result<Option<(usize, usize, Vec<u8>)>> {
    let script = r#"
        const img = document.getElementById('stream');
        if (!img || !img.complete || img.naturalWidth === 0) return null;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const w = Math.min(c.width, arguments[0]), h = Math.min(c.height, arguments[1]);
        const data = ctx.getImageData(0, 0, w, h).data;
        return [img.naturalWidth, img.naturalHeight, w, h, btoa(String.fromCharCode.apply(null, data))];
    "#;
    let v = client
        .execute(script, vec![json!(stamp::WIDTH), json!(stamp::HEIGHT)])
        .await?;
    if v.is_null() {
        return Ok(None);
    }
    let a = v.as_array().unwrap();
    let (nw, nh) = (
        a[0].as_u64().unwrap() as usize,
        a[1].as_u64().unwrap() as usize,
    );
    let (w, h) = (
        a[2].as_u64().unwrap() as usize,
        a[3].as_u64().unwrap() as usize,
    );
    let rgba = base64_decode(a[4].as_str().unwrap());
    // Re-pack into a stamp-sized image for the decoder.
    let mut out = vec![0u8; stamp::WIDTH * stamp::HEIGHT * 4];
    for y in 0..h {
        out[y * stamp::WIDTH * 4..][..w * 4].copy_from_slice(&rgba[y * w * 4..][..w * 4]);
    }
    let _ = (nw, nh);
    Ok(Some((nw, nh, out)))
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | A.iter().position(|&x| x == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn chromium_paints_the_classic_stream_live_in_a_plain_img() -> anyhow::Result<()> {
    let relay = TestRelay::start(&["main=test?size=640x480&fps=30"]).await?;
    let (_driver, client) = browser().await?;
    client.goto(&format!("http://{}/", relay.addr)).await?;

    // The built-in page embeds /streams/main.mjpg in <img id=stream>; read what it shows.
    let first = eventually(Duration::from_secs(10), || async {
        Ok(stamp_pixels(&client).await?.and_then(|(w, h, px)| {
            assert_eq!((w, h), (640, 480));
            stamp::decode(&px, stamp::WIDTH, stamp::HEIGHT, 4)
        }))
    })
    .await?;
    // It is live: some time later the browser shows a later frame, and a recent one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = eventually(Duration::from_secs(10), || async {
        Ok(stamp_pixels(&client)
            .await?
            .and_then(|(_, _, px)| stamp::decode(&px, stamp::WIDTH, stamp::HEIGHT, 4))
            .filter(|s| s.seq > first.seq))
    })
    .await?;
    let age_ms = now_micros().saturating_sub(later.capture_micros) / 1000;
    assert!(
        later.seq >= first.seq + 5,
        "the <img> moved on: frame {} then {}",
        first.seq,
        later.seq
    );
    assert!(age_ms < 1000, "the <img> shows a frame {age_ms} ms old");

    let logs = client
        .execute("return (window.__errors || []).length", vec![])
        .await?;
    assert_eq!(logs, json!(0));
    client.close().await?;
    relay.stop().await?;
    Ok(())
}

/// What the `<img id=stream>` shows: its stamp, decoded.
async fn shown(client: &Client) -> anyhow::Result<Option<stamp::Stamp>> {
    Ok(stamp_pixels(client)
        .await?
        .and_then(|(_, _, px)| stamp::decode(&px, stamp::WIDTH, stamp::HEIGHT, 4)))
}

/// Waits for the stream to publish a new frame, then gives the browser `settle` to paint it,
/// and returns (newest published seq, seq the `<img>` shows).
async fn newest_and_shown(
    relay: &TestRelay,
    client: &Client,
    settle: Duration,
) -> anyhow::Result<(u64, u32)> {
    let last = relay.json("/api/streams/main").await?["last_seq"]
        .as_u64()
        .unwrap_or(0);
    let newest = eventually(Duration::from_secs(5), || async {
        let seq = relay.json("/api/streams/main").await?["last_seq"]
            .as_u64()
            .unwrap_or(0);
        Ok((seq > last).then_some(seq))
    })
    .await?;
    tokio::time::sleep(settle).await;
    let shown = shown(client).await?.map(|s| s.seq).unwrap_or(0);
    Ok((newest, shown))
}

#[tokio::test]
async fn chromium_shows_the_newest_frame_not_the_one_before() -> anyhow::Result<()> {
    // At 1 fps a frame painted one frame late would be a whole second late. The default layout
    // sends the next part's headers right after each frame so that Chrome paints it at once.
    let relay = TestRelay::start(&["main=test?size=320x240&fps=1"]).await?;
    let (_driver, client) = browser().await?;
    client.goto(&format!("http://{}/", relay.addr)).await?;
    eventually(Duration::from_secs(10), || async { shown(&client).await }).await?;
    for _ in 0..3 {
        let (newest, shown) = newest_and_shown(&relay, &client, Duration::from_millis(300)).await?;
        assert_eq!(
            u64::from(shown),
            newest,
            "300 ms after frame {newest} was published, the <img> shows {shown}"
        );
    }

    // For the record, the strict layout (boundary after the frame, no advance headers): Chrome
    // waits for the next part's headers, so it shows the frame before. Printed, not asserted:
    // it documents Chrome's behaviour (FIELD-NOTES), not ours.
    client
        .execute(
            "document.getElementById('stream').src = '/streams/main.mjpg?layout=strict'",
            vec![],
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (newest, shown) = newest_and_shown(&relay, &client, Duration::from_millis(300)).await?;
    eprintln!("strict layout: 300 ms after frame {newest} was published, Chromium shows {shown}");
    client.close().await?;
    relay.stop().await?;
    Ok(())
}

//! Headless Chromium for the browser tests, driven over WebDriver (chromedriver + fantoccini),
//! and helpers that read what the page shows: the dashboard's overlay `data-` attributes and
//! frame stamps decoded from pixels.
//!
//! Chromium tests take [`exclusive`] so that one browser runs at a time: on a 2-core machine two
//! browsers painting 30 fps each would measure each other.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use mjpeg_shared::stamp::{self, Stamp};
use serde_json::{json, Value};

use crate::eventually;

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: chromedriver and the Chromium it started. Killing only
        // chromedriver (as when a test fails before closing its session) would leave Chromium
        // running after the test.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
}

/// How long one WebDriver command of these helpers may take (a page that hangs fails the test).
pub const WEBDRIVER_TIMEOUT: Duration = Duration::from_secs(30);

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held for the length of a browser test.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with the flags that work here as root and
    /// offline (TOOLCHAIN.md), plus `extra` flags.
    pub async fn start(extra: &[&str]) -> Result<Browser> {
        Self::launch(extra, "normal").await
    }

    /// [`Browser::start`] for pages that never finish loading (images waiting for a connection
    /// that a multipart stream holds for ever): navigation returns at DOMContentLoaded, and
    /// later commands do not wait for the load either.
    pub async fn start_eager(extra: &[&str]) -> Result<Browser> {
        Self::launch(extra, "eager").await
    }

    /// Starts chromedriver and Chromium, and starts them afresh when a session is not made in
    /// time: a CI run on a loaded machine once saw Chromium hang at start for over 15 s while the
    /// next launch, a second later, took under one.
    async fn launch(extra: &[&str], page_load_strategy: &str) -> Result<Browser> {
        const ATTEMPTS: usize = 3;
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match Self::launch_once(extra, page_load_strategy).await {
                Ok(browser) => return Ok(browser),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!(
            "Chromium did not start in {ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        )
    }

    async fn launch_once(extra: &[&str], page_load_strategy: &str) -> Result<Browser> {
        /// How long one chromedriver may take to make a session.
        const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        // The profile and Chromium's own temporary folders in one folder, removed on drop: a
        // Chromium that is killed leaves its scoped_dir folders (25 MB each) behind.
        let profile = tempfile::tempdir()?;
        let tmp = profile.path().join("tmp");
        std::fs::create_dir(&tmp)?;
        let log = profile.path().join("chromedriver.log");
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .env("TMPDIR", &tmp)
            // Its own process group, so that Drop can end Chromium with it.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow!("chromedriver (installed by scripts/setup.sh): {e}"))?;
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1024",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("data").display()
        ));
        args.extend(extra.iter().map(|s| s.to_string()));
        let driver = Driver {
            child,
            _profile: profile,
        };
        let caps = json!({
            "pageLoadStrategy": page_load_strategy,
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args }
        });
        let caps = caps.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        // Until chromedriver listens, connecting fails at once; then making the session starts
        // Chromium, which is what may hang.
        let deadline = tokio::time::Instant::now() + SESSION_TIMEOUT;
        let mut last_error = String::from("no attempt finished");
        while tokio::time::Instant::now() < deadline {
            let mut builder = ClientBuilder::new(HttpConnector::new());
            builder.capabilities(caps.clone());
            match tokio::time::timeout_at(deadline, builder.connect(&url)).await {
                Ok(Ok(client)) => {
                    return Ok(Browser {
                        client,
                        _driver: driver,
                    })
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "making the session hung".into(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        bail!(
            "no WebDriver session within {SESSION_TIMEOUT:?} ({last_error}); chromedriver's log ends:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }

    /// Errors the page recorded (index.html collects console errors, uncaught exceptions and
    /// unhandled rejections in `window.__errors`).
    pub async fn errors(&self) -> Result<Vec<String>> {
        let v = self.run("return window.__errors || null", vec![]).await?;
        match v {
            Value::Array(a) => Ok(a.iter().map(|e| e.to_string()).collect()),
            _ => bail!("the page has no error log: not the dashboard's index.html"),
        }
    }

    /// The `data-` attributes of stream `name`'s overlay with `role` (`primary` or `compare`),
    /// or None while it is not on the page.
    pub async fn overlay(&self, name: &str, role: &str) -> Result<Option<Overlay>> {
        let v = self
            .run(
                "const el = document.querySelector(`[data-stream=\"${arguments[0]}\"] .overlay.${arguments[1]}`);
                 return el ? Object.assign({}, el.dataset) : null;",
                vec![json!(name), json!(role)],
            )
            .await?;
        Ok((!v.is_null()).then_some(Overlay(v)))
    }

    /// Every tile's overlay on the wall (`/wall`), with its stream's name as `stream` and its
    /// canvas's width in CSS pixels as `tileWidth`.
    pub async fn wall_tiles(&self) -> Result<Vec<Overlay>> {
        let v = self
            .run(
                "return [...document.querySelectorAll('.tile[data-stream]')].map(t => {
                     const o = t.querySelector('.overlay.tile');
                     return Object.assign({stream: t.dataset.stream,
                         tileWidth: String(t.querySelector('canvas').clientWidth)}, o ? o.dataset : {});
                 });",
                vec![],
            )
            .await?;
        Ok(v.as_array()
            .map(|a| a.iter().cloned().map(Overlay).collect())
            .unwrap_or_default())
    }

    /// Animation frames the page runs per second, over about one second: the most frames it
    /// can show per second, and the length of one display frame (1000 / it, ms).
    pub async fn animation_frames_per_second(&self) -> Result<f64> {
        // Intervals between frames' timestamps over the time they span, not frames counted.
        let count = self.client.execute_async(
            "const done = arguments[arguments.length - 1];
             let first = null, n = 0;
             const tick = (t) => {
                 if (first === null) first = t; else n++;
                 if (t - first < 1000) requestAnimationFrame(tick); else done(n * 1000 / (t - first));
             };
             requestAnimationFrame(tick);",
            vec![],
        );
        let v = tokio::time::timeout(WEBDRIVER_TIMEOUT, count)
            .await
            .map_err(|_| anyhow!("counting animation frames took over {WEBDRIVER_TIMEOUT:?}"))??;
        v.as_f64()
            .with_context(|| format!("not a count of animation frames: {v}"))
    }

    /// Decodes the frame stamp from the top-left of the first element matching `selector`
    /// (a canvas or an image), drawn onto a same-origin canvas. None before it shows a stamp.
    pub async fn stamp(&self, selector: &str) -> Result<Option<Stamp>> {
        let v = self
            .run(
                "const el = document.querySelector(arguments[0]);
                 if (!el) return null;
                 const w = el.naturalWidth ?? el.width, h = el.naturalHeight ?? el.height;
                 if (!w || !h || w < arguments[1] || h < arguments[2]) return null;
                 const c = document.createElement('canvas');
                 c.width = arguments[1]; c.height = arguments[2];
                 const ctx = c.getContext('2d');
                 ctx.drawImage(el, 0, 0, c.width, c.height, 0, 0, c.width, c.height);
                 const d = ctx.getImageData(0, 0, c.width, c.height).data;
                 let s = ''; for (let i = 0; i < d.length; i++) s += String.fromCharCode(d[i]);
                 return btoa(s);",
                vec![json!(selector), json!(stamp::WIDTH), json!(stamp::HEIGHT)],
            )
            .await?;
        let Some(b64) = v.as_str() else {
            return Ok(None);
        };
        let rgba = base64::engine::general_purpose::STANDARD.decode(b64)?;
        Ok(stamp::decode(&rgba, stamp::WIDTH, stamp::HEIGHT, 4))
    }

    /// Runs `script` in the page, for at most [`WEBDRIVER_TIMEOUT`].
    async fn run(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        tokio::time::timeout(WEBDRIVER_TIMEOUT, self.client.execute(script, args))
            .await
            .map_err(|_| anyhow!("a script did not return within {WEBDRIVER_TIMEOUT:?}"))?
            .map_err(Into::into)
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        let click = async {
            self.client
                .find(fantoccini::Locator::Css(css))
                .await?
                .click()
                .await?;
            anyhow::Ok(())
        };
        tokio::time::timeout(WEBDRIVER_TIMEOUT, click)
            .await
            .map_err(|_| anyhow!("clicking {css} took over {WEBDRIVER_TIMEOUT:?}"))?
    }

    pub async fn close(self) -> Result<()> {
        tokio::time::timeout(WEBDRIVER_TIMEOUT, self.client.close())
            .await
            .map_err(|_| anyhow!("closing the browser took over {WEBDRIVER_TIMEOUT:?}"))??;
        Ok(())
    }
}

/// Waits until stream `name`'s overlay with `role` satisfies `pred`; returns it.
pub async fn overlay_where(
    browser: &Browser,
    name: &str,
    role: &str,
    within: Duration,
    pred: impl Fn(&Overlay) -> bool,
) -> Result<Overlay> {
    let last = std::cell::RefCell::new(None);
    let found = eventually(within, || async {
        let o = browser.overlay(name, role).await?;
        let ok = o.as_ref().is_some_and(&pred);
        *last.borrow_mut() = o.clone();
        Ok(ok.then_some(o).flatten())
    })
    .await;
    found.map_err(|e| anyhow::anyhow!("{e}; last overlay of {name}/{role}: {:?}", last.borrow()))
}

/// The overlay says the viewer plays through fetch.
pub fn playing_fetch(o: &Overlay) -> bool {
    o.str("transport") == Some("fetch") && o.str("state") == Some("playing")
}

/// Waits until stream `name`'s viewer plays through fetch.
pub async fn wait_playing(browser: &Browser, name: &str) -> Result<Overlay> {
    overlay_where(
        browser,
        name,
        "primary",
        Duration::from_secs(15),
        playing_fetch,
    )
    .await
}

/// An overlay's `data-` attributes (camelCased as in `element.dataset`).
#[derive(Clone, Debug)]
pub struct Overlay(pub Value);

impl Overlay {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }
    pub fn num(&self, key: &str) -> Option<f64> {
        self.str(key).and_then(|s| s.parse().ok())
    }
}

/// The built dashboard (`dist/` at the repository root), or an error saying how to build it.
pub fn dist() -> Result<PathBuf> {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist");
    if !dist.join("index.html").is_file() {
        bail!(
            "the dashboard is not built at {}: run `trunk build --release` from the repository \
             root (scripts/test.sh does)",
            dist.display()
        );
    }
    Ok(dist)
}

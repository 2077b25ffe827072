//! `files:DIR`: the JPEG files of a folder, looped in name order at a fixed rate, as the
//! "emulated camera" of the classic Flask articles. Files are sent as they are, never re-encoded.
//!
//! The folder is listed once at startup; files that do not start like a JPEG are skipped with a
//! warning, and a folder with none is a startup error. Each file is read when it is due, so a
//! large folder costs no memory; a file that has since gone or changed into something else is
//! skipped with a warning.

use std::path::PathBuf;

use bytes::Bytes;

use super::options::{parse_fps, unknown_param, Parts, MAX_SOURCE_FPS};
use super::{Pacer, SetupError, Source, SourceError, SourceFrame, SourceInfo};
use crate::clock::unix_micros_now;
use crate::jpeg;

/// `files:DIR`, `files:DIR?fps=N` (default 30 fps).
#[derive(Clone, Debug, PartialEq)]
pub struct FilesOptions {
    pub dir: PathBuf,
    pub fps: f64,
}

impl std::str::FromStr for FilesOptions {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let parts = Parts::split(spec)?;
        let dir = parts
            .arg
            .filter(|a| !a.is_empty())
            .ok_or("source \"files\" needs a folder: files:DIR")?;
        let mut fps = 30.0;
        for (key, value) in parts.params {
            match key {
                "fps" => fps = parse_fps(value, MAX_SOURCE_FPS)?,
                other => return Err(unknown_param("files", other, "fps")),
            }
        }
        Ok(FilesOptions {
            dir: PathBuf::from(dir),
            fps,
        })
    }
}

impl std::fmt::Display for FilesOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "files:{}?fps={}", self.dir.display(), self.fps)
    }
}

pub struct FilesSource {
    files: Vec<PathBuf>,
    next: usize,
    fps: f64,
    pacer: Pacer,
    size: Option<(u32, u32)>,
}

impl FilesSource {
    pub fn open(options: &FilesOptions) -> Result<Self, SetupError> {
        let (dir, fps) = (options.dir.as_path(), options.fps);
        let entries = std::fs::read_dir(dir).map_err(|e| {
            SetupError::Invalid(format!("cannot read folder {}: {e}", dir.display()))
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        let mut size = None;
        for path in paths {
            let mut head = [0u8; 4];
            let ok = std::fs::File::open(&path)
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok();
            if ok && jpeg::looks_like_jpeg(&head) {
                if size.is_none() {
                    size = std::fs::read(&path).ok().and_then(|d| jpeg::dimensions(&d));
                }
                files.push(path);
            } else {
                tracing::warn!(file = %path.display(), "not a JPEG; skipped");
            }
        }
        if files.is_empty() {
            return Err(SetupError::Invalid(format!(
                "no JPEG files in {} (files must start with the JPEG marker FF D8 FF)",
                dir.display()
            )));
        }
        tracing::info!(dir = %dir.display(), files = files.len(), "files source ready");
        Ok(FilesSource {
            files,
            next: 0,
            fps,
            pacer: Pacer::new(fps),
            size,
        })
    }
}

#[async_trait::async_trait]
impl Source for FilesSource {
    async fn next_frame(&mut self) -> Result<SourceFrame, SourceError> {
        self.pacer.tick().await;
        // Try each file at most once per call, so a folder whose files all vanished reports an
        // error instead of spinning.
        for _ in 0..self.files.len() {
            let path = &self.files[self.next];
            self.next = (self.next + 1) % self.files.len();
            match tokio::fs::read(path).await {
                Ok(data) if jpeg::looks_like_jpeg(&data) => {
                    // The frame exists once it is read; that is its capture time.
                    let captured_micros = unix_micros_now();
                    let (width, height) = jpeg::dimensions(&data).unwrap_or((0, 0));
                    if width > 0 {
                        self.size = Some((width, height));
                    }
                    return Ok(SourceFrame {
                        captured_micros,
                        jpeg: Bytes::from(data),
                        width,
                        height,
                        pipeline: Default::default(),
                    });
                }
                Ok(_) => tracing::warn!(file = %path.display(), "no longer a JPEG; skipped"),
                Err(err) => tracing::warn!(file = %path.display(), %err, "cannot read; skipped"),
            }
        }
        Err(SourceError::Failed(
            "none of the folder's files could be read as JPEG".into(),
        ))
    }

    fn pause(&mut self) {
        self.pacer.reset();
    }

    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "files",
            fps: self.fps,
            width: self.size.map(|s| s.0),
            height: self.size.map(|s| s.1),
            ..Default::default()
        }
    }
}

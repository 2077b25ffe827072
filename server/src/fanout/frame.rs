//! A captured frame: one JPEG, encoded once, shared by every viewer.
//!
//! The wire bytes of a frame in each layout are built at most once, the first time a viewer of that
//! layout needs them, and then handed to every other viewer as a cheap clone of one buffer, with
//! the HTTP/1.1 chunk framing the relay's writer sends around them (`net::takeover::Chunk`). A
//! viewer never copies or re-encodes a frame.
//!
//! Renditions (another size or quality, or the metadata drawn in; [`crate::source::rendition`])
//! go the same way: each is made at most once per frame, on the blocking pool (off the async
//! workers), by the first viewer who asks; every other viewer of it awaits that one making and
//! shares its JPEG and parts. Nobody asking costs nothing.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use mjpeg_shared::wire::{self, Layout, PartInfo};

use crate::net::takeover::Chunk;
use crate::source::rendition::{self, Rendition};
use crate::source::Pipeline;

/// Renditions kept with one frame: the stream's cap (`--max-renditions`, at most 64) keeps the
/// live ones within it.
const MAX_VARIANTS: usize = 64;

/// One frame as published by a stream.
#[derive(Debug)]
pub struct Frame {
    /// The stream's name (a wall's parts carry it).
    pub stream: Arc<str>,
    /// Position in the stream, counting from 1.
    pub seq: u64,
    /// When the picture was taken, Unix microseconds.
    pub captured_micros: u64,
    /// The JPEG.
    pub jpeg: Bytes,
    /// Width and height in pixels (0 when the JPEG's header could not be read).
    pub width: u32,
    pub height: u32,
    /// Stages and metadata from a pipeline, if it came from one.
    pub pipeline: Pipeline,
    parts: [OnceLock<Chunk>; Layout::ALL.len()],
    /// The renditions viewers asked of this frame (a handful at most: the stream caps them).
    variants: Mutex<Vec<(Rendition, Arc<Variant>)>>,
}

/// One rendition of a frame: its JPEG and what it is (`None`: the source's JPEG stands in, as
/// it did not decode), and its parts.
#[derive(Debug, Default)]
struct Variant {
    made: tokio::sync::OnceCell<(Bytes, Option<wire::Rendition>)>,
    parts: [OnceLock<Chunk>; Layout::ALL.len()],
}

impl Frame {
    pub fn with_pipeline(
        stream: Arc<str>,
        seq: u64,
        captured_micros: u64,
        jpeg: Bytes,
        (width, height): (u32, u32),
        pipeline: Pipeline,
    ) -> Self {
        Frame {
            stream,
            seq,
            captured_micros,
            jpeg,
            width,
            height,
            pipeline,
            parts: Default::default(),
            variants: Mutex::new(Vec::new()),
        }
    }

    /// The variant of rendition `r`, kept with the frame (at most [`MAX_VARIANTS`], the oldest
    /// forgotten first: a frame that stays the newest for long, asked for one rendition after
    /// another, must not hold them all; viewers of a forgotten one keep their own `Arc`).
    fn variant(&self, r: Rendition) -> Arc<Variant> {
        let mut variants = self.variants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, v)) = variants.iter().find(|(k, _)| *k == r) {
            return v.clone();
        }
        if variants.len() >= MAX_VARIANTS {
            variants.remove(0);
        }
        let v = Arc::new(Variant::default());
        variants.push((r, v.clone()));
        v
    }

    /// `r` as it applies to this frame: nothing to draw without metadata, and a size that is the
    /// frame's own is no resize (whether or not the stream's size was known when `r` was asked).
    fn effective(&self, r: Rendition) -> Rendition {
        r.for_frame(
            self.pipeline.meta.is_some(),
            Some((self.width, self.height)).filter(|(w, h)| *w > 0 && *h > 0),
        )
    }

    /// Rendition `r` of this frame, and what it is for `X-Rendition` (`None` for the source's
    /// own JPEG): made once per frame on the blocking pool by the first viewer who asks, the
    /// others waiting for that one making. The making is a task of its own, so a viewer that
    /// leaves meanwhile does not waste it. `counter` is called only by the viewer that makes it,
    /// and what it returns is told, once, what was made and the CPU time it took (viewers served
    /// from the cache build nothing). A JPEG that does not decode, or an overlay with nothing to
    /// draw, is served as it is.
    pub async fn rendition<C>(
        self: &Arc<Self>,
        r: Rendition,
        counter: impl FnOnce() -> C,
    ) -> (Bytes, Option<wire::Rendition>)
    where
        C: FnOnce(&wire::Rendition, Duration) + Send + 'static,
    {
        let r = self.effective(r);
        if r.is_source() {
            return (self.jpeg.clone(), None);
        }
        self.made(r, &self.variant(r), counter).await
    }

    /// [`Frame::part`] of rendition `r` ([`Frame::rendition`]).
    pub async fn rendition_part<C>(
        self: &Arc<Self>,
        layout: Layout,
        r: Rendition,
        counter: impl FnOnce() -> C,
    ) -> Chunk
    where
        C: FnOnce(&wire::Rendition, Duration) + Send + 'static,
    {
        match self.part_or_variant(layout, r) {
            Ok(part) => part,
            Err((r, variant)) => {
                let made = self.made(r, &variant, counter).await;
                self.variant_part(layout, &variant, made)
            }
        }
    }

    /// [`Frame::rendition_part`] when nothing is left to make: the source's own, or a rendition
    /// made already. `None` while it is still to be made or being made. A viewer takes it so
    /// without a future, which it would have to box.
    pub fn rendition_part_made(&self, layout: Layout, r: Rendition) -> Option<Chunk> {
        self.part_or_variant(layout, r).ok()
    }

    /// The part of rendition `r` if nothing is left to make, else the rendition (made
    /// [`Frame::effective`]) and its variant, to be made: looked up once for both.
    fn part_or_variant(
        &self,
        layout: Layout,
        r: Rendition,
    ) -> Result<Chunk, (Rendition, Arc<Variant>)> {
        let r = self.effective(r);
        if r.is_source() {
            return Ok(self.part(layout));
        }
        let variant = self.variant(r);
        match variant.made.get() {
            Some(made) => Ok(self.variant_part(layout, &variant, made.clone())),
            None => Err((r, variant)),
        }
    }

    /// The part of a variant made as `made` (served as the source's if it did not decode or
    /// had nothing to draw).
    fn variant_part(
        &self,
        layout: Layout,
        variant: &Variant,
        (jpeg, what): (Bytes, Option<wire::Rendition>),
    ) -> Chunk {
        if what.is_none() {
            return self.part(layout);
        }
        variant.parts[layout.index()]
            .get_or_init(|| self.build_part(layout, &jpeg, what))
            .clone()
    }

    /// What `variant`, of `r` (already [`Frame::effective`], not the source), holds, made if
    /// nobody has yet.
    async fn made<C>(
        self: &Arc<Self>,
        r: Rendition,
        variant: &Arc<Variant>,
        counter: impl FnOnce() -> C,
    ) -> (Bytes, Option<wire::Rendition>)
    where
        C: FnOnce(&wire::Rendition, Duration) + Send + 'static,
    {
        if let Some(done) = variant.made.get() {
            return done.clone();
        }
        let (frame, made, cell) = (self.clone(), counter(), variant.clone());
        let making = tokio::spawn(async move {
            cell.made
                .get_or_init(|| async {
                    let (jpeg, meta) = (frame.jpeg.clone(), frame.pipeline.meta.clone());
                    let rendered = tokio::task::spawn_blocking(move || {
                        let cpu = thread_cpu_time();
                        let out = rendition::render(&jpeg, meta.as_deref(), &r);
                        (out, thread_cpu_time().saturating_sub(cpu))
                    })
                    .await;
                    match rendered {
                        Ok((Some((jpeg, what)), cpu)) => {
                            made(&what, cpu);
                            (Bytes::from(jpeg), Some(what))
                        }
                        _ => (frame.jpeg.clone(), None),
                    }
                })
                .await
                .clone()
        });
        making.await.unwrap_or_else(|_| (self.jpeg.clone(), None))
    }

    /// `jpeg` (this frame's, or a rendition of it) as one part in `layout`, with the frame's
    /// sequence number, capture time, stages and metadata, and which rendition it is; framed as
    /// one HTTP/1.1 chunk in the same buffer, for the viewers the relay writes itself.
    fn build_part(&self, layout: Layout, jpeg: &[u8], rendition: Option<wire::Rendition>) -> Chunk {
        let info = PartInfo {
            seq: self.seq,
            timestamp_micros: self.captured_micros,
            stages: &self.pipeline.stages,
            meta: self.pipeline.meta.as_deref(),
            rendition,
            stream: Some(&self.stream),
        };
        // Part headers are under 300 bytes but for the metadata.
        let size = jpeg.len() + 300 + self.pipeline.meta.as_ref().map_or(0, |m| m.len());
        Chunk::framed(size, |out| layout.write_part_with(out, jpeg, &info))
    }

    /// This frame as one part of a stream in `layout`, built on first use.
    pub fn part(&self, layout: Layout) -> Chunk {
        self.parts[layout.index()]
            .get_or_init(|| self.build_part(layout, &self.jpeg, None))
            .clone()
    }
}

/// CPU time of the calling thread (what a rendition costs, whatever else the machine does).
fn thread_cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What hyper and HTTP/1.0 viewers get of a part is exactly the layout's part: the framing
    /// around it is the relay writer's alone.
    #[test]
    fn a_part_without_its_framing_is_the_layouts_part() {
        let frame = Frame::with_pipeline(
            "cam".into(),
            7,
            1_700_000_000_000_000,
            Bytes::from_static(b"\xFF\xD8jpeg\xFF\xD9"),
            (4, 2),
            Pipeline::default(),
        );
        for layout in Layout::ALL {
            let mut want = Vec::new();
            let info = PartInfo {
                seq: 7,
                timestamp_micros: 1_700_000_000_000_000,
                stages: &[],
                meta: None,
                rendition: None,
                stream: Some("cam"),
            };
            layout.write_part_with(&mut want, &frame.jpeg, &info);
            let part = frame.part(layout);
            assert_eq!(part.len(), want.len(), "{layout:?}");
            assert_eq!(&part.into_data()[..], &want[..], "{layout:?}");
        }
    }
}

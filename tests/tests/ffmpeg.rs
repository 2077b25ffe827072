//! A third-party reader: ffmpeg decodes the classic stream in both layouts.

use std::process::Command;
use std::time::Duration;

use mjpeg_relay_tests::TestRelay;

async fn ffmpeg_reads(relay: &TestRelay, path: &str) -> anyhow::Result<()> {
    let url = format!("http://{}{}", relay.addr, path);
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostdin",
                "-loglevel",
                "info",
                "-rw_timeout",
                "10000000",
            ])
            .args(["-i", &url, "-frames:v", "30", "-f", "null", "-"])
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffmpeg failed on {path}:\n{log}");
    assert!(
        log.contains("Input #0, mpjpeg"),
        "ffmpeg saw an MJPEG multipart stream on {path}:\n{log}"
    );
    assert!(
        log.contains("frame=   30"),
        "ffmpeg decoded 30 frames from {path}:\n{log}"
    );
    assert!(
        !log.contains("error"),
        "ffmpeg reported errors on {path}:\n{log}"
    );
    Ok(())
}

#[tokio::test]
async fn ffmpeg_decodes_the_classic_stream_in_both_layouts() -> anyhow::Result<()> {
    assert!(
        Command::new("ffmpeg").arg("-version").output().is_ok(),
        "ffmpeg is installed by scripts/setup.sh"
    );
    let relay = TestRelay::start(&["main=test?size=320x240&fps=30"]).await?;
    ffmpeg_reads(&relay, "/streams/main.mjpg").await?;
    ffmpeg_reads(&relay, "/streams/main.mjpg?layout=strict").await?;
    relay.stop().await?;
    Ok(())
}

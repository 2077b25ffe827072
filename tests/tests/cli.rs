//! The real `mjpeg-relay` binary: argument errors, startup errors, signals.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_relay_tests::{RelayProcess, StreamReader};
use mjpeg_shared::api::StreamList;

fn relay() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mjpeg-relay-under-test"));
    cmd.stdin(Stdio::null());
    cmd
}

#[test]
fn a_bad_stream_spec_exits_2_naming_the_bad_part() {
    for (arg, expect) in [
        ("main", "NAME=SOURCE"),
        ("main=webcam", "unknown source \"webcam\""),
        ("main=test?size=99999x1", "size \"99999x1\""),
        ("bad/name=test", "\"bad/name\""),
    ] {
        let out = relay().args(["--stream", arg]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(expect),
            "{arg}: stderr {err:?} should mention {expect:?}"
        );
    }
}

#[test]
fn a_files_folder_without_jpegs_stops_startup_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = relay()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--stream",
            &format!("cam=files:{}", dir.path().display()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no JPEG files in") && err.contains("\"cam\""),
        "{err}"
    );
}

#[test]
fn help_explains_every_flag_with_examples() {
    let out = relay().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--listen",
        "--stream",
        "--dashboard",
        "--log",
        "Examples:",
        "test?size=",
        "files:DIR",
        "/streams/NAME.frames",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[tokio::test]
async fn sigterm_with_100_viewers_connected_exits_within_two_seconds() -> anyhow::Result<()> {
    let mut cmd = relay();
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--stream",
        "main=test?size=320x240&fps=30",
    ]);
    let mut relay_process = RelayProcess::spawn(cmd)?;
    let addr = relay_process.addr;
    let child = &mut relay_process.child;

    // 100 viewers, both endpoints, each with a frame in hand.
    let mut viewers = Vec::new();
    for i in 0..100 {
        let path = if i % 2 == 0 {
            "/streams/main.mjpg"
        } else {
            "/streams/main.frames"
        };
        let mut v = StreamReader::open(addr, path, None).await?;
        v.next_part(Duration::from_secs(5)).await?;
        viewers.push(v);
    }
    let started = Instant::now();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()?
        .success());
    let deadline = started + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            panic!("relay still running 5 s after SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = started.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    Ok(())
}

#[test]
fn a_bad_config_file_exits_2_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n\n[[stream]]\nname = \"main\"\nsorce = \"test\"\n",
    )
    .unwrap();
    let out = relay()
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("relay.toml") && err.contains("line 5") && err.contains("sorce"),
        "{err}"
    );
}

#[tokio::test]
async fn a_config_file_serves_its_streams_and_flags_override_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("relay.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:1\"  # overridden below\n\n[[stream]]\nname = \"front\"\nsource = \"test?size=160x120&fps=5\"\n\n[[stream]]\nname = \"back\"\nsource = \"test?size=320x240&fps=5\"\n",
    )?;
    let mut cmd = relay();
    cmd.args([
        "--config",
        path.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--stream",
        "back=test?size=160x120&fps=2",
    ]);
    let process = RelayProcess::spawn(cmd)?;
    let addr = process.addr;
    {
        let list: StreamList = mjpeg_relay_tests::get(addr, "/api/streams").await?.json()?;
        let streams: Vec<(String, String)> = list
            .streams
            .into_iter()
            .map(|s| (s.name, s.source))
            .collect();
        assert_eq!(
            streams,
            [
                ("front".to_string(), "test?size=160x120&fps=5".to_string()),
                ("back".to_string(), "test?size=160x120&fps=2".to_string()),
            ],
            "the file's streams in order, the flag's version of `back`"
        );
    }
    Ok(())
}

#[test]
fn duplicate_streams_and_bad_push_specs_are_refused_without_echoing_tokens() {
    let out = relay()
        .args(["--stream", "a=test", "--stream", "a=test?fps=5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("given twice"),
        "{out:?}"
    );
    let out = relay()
        .args(["--stream", "cam=push?token=S3CRET&replace=2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("replace \"2\""), "says what is wrong: {err}");
    assert!(!err.contains("S3CRET"), "never shows the token: {err}");
}

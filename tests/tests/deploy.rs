//! The deployment files in `deploy/` are what the tools they are for accept: the systemd unit
//! passes `systemd-analyze verify` without a single warning, and the nginx site (HTTPS, HTTP/2,
//! the shipped locations file) passes `nginx -t` with a real certificate. The locations file is
//! also run for real, in front of the relay, in `tests/tests/nginx.rs`. The Debian package is
//! built, installed with dpkg, run as its user and purged.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_systemd_unit_verifies_cleanly() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // verify insists that ExecStart's binary exists: point it at the relay binary of this build.
    let unit = std::fs::read_to_string(repo().join("deploy/mjpeg-relay.service"))?.replace(
        "/usr/bin/mjpeg-relay",
        env!("CARGO_BIN_EXE_mjpeg-relay-under-test"),
    );
    let path = dir.path().join("mjpeg-relay.service");
    std::fs::write(&path, unit)?;
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .context("systemd-analyze (package systemd, installed by scripts/setup.sh)")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert_eq!(said.trim(), "", "systemd-analyze has remarks");
    Ok(())
}

#[test]
fn the_nginx_site_passes_nginx_t() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["cameras.example.com".to_string()])?;
    std::fs::write(d.join("fullchain.pem"), cert.cert.pem())?;
    std::fs::write(d.join("privkey.pem"), cert.signing_key.serialize_pem())?;
    let locations = repo()
        .join("deploy/nginx/mjpeg-relay-locations.conf")
        .canonicalize()?;
    let site = std::fs::read_to_string(repo().join("deploy/nginx.conf"))?
        .replace(
            "/etc/letsencrypt/live/cameras.example.com",
            &d.display().to_string(),
        )
        .replace(
            "/etc/nginx/snippets/mjpeg-relay-locations.conf",
            &locations.display().to_string(),
        );
    let unreplaced = site
        .lines()
        .any(|l| !l.trim_start().starts_with('#') && l.contains("/etc/"));
    assert!(!unreplaced, "every path of the site was replaced:\n{site}");
    std::fs::write(d.join("site.conf"), site)?;
    let dd = d.display();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "pid {dd}/nginx.pid;\nerror_log {dd}/error.log;\nevents {{}}\n\
             http {{ client_body_temp_path {dd}/b; proxy_temp_path {dd}/p; \
             fastcgi_temp_path {dd}/f; uwsgi_temp_path {dd}/u; scgi_temp_path {dd}/s;\n\
             include {dd}/site.conf; }}\n"
        ),
    )?;
    let out = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-e")
        .arg(d.join("error.log"))
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .output()
        .context("nginx (installed by scripts/setup.sh)")?;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("syntax is ok") && said.contains("test is successful"),
        "{said}"
    );
    Ok(())
}

/// Purges the package when the test ends, however it ends.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "mjpeg-relay"])
            .output();
    }
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(out.status.success(), "{cmd:?} failed: {text}");
    Ok(text)
}

/// The .deb (scripts/package.sh, cargo-deb) installed with the real dpkg: the binary, the unit,
/// the configuration readable by the service's user only, the user itself; the installed binary
/// run as that user from `/` serves the dashboard built into it and a stream; purging removes all
/// of it, the user included.
#[tokio::test]
async fn the_deb_installs_runs_as_its_user_and_purges_cleanly() -> Result<()> {
    use mjpeg_relay_tests::{get, RelayProcess};
    anyhow::ensure!(
        run(Command::new("id").arg("-u"))?.trim() == "0",
        "installing a package needs root"
    );
    // The test purges the package when it ends: never one someone installed on this machine.
    let installed = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "mjpeg-relay"])
        .output()?;
    anyhow::ensure!(
        !String::from_utf8_lossy(&installed.stdout).contains("installed"),
        "mjpeg-relay is installed on this machine; this test would replace and purge it"
    );
    // Built as a user would build it; the outer cargo's variables would point it elsewhere.
    let mut build = Command::new("bash");
    build.arg(repo().join("scripts/package.sh"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            build.env_remove(key);
        }
    }
    let built = run(&mut build)?;
    let deb = built
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".deb"))
        .context("package.sh names the .deb")?
        .trim()
        .to_string();
    let _installed = Installed;
    run(Command::new("dpkg").args(["-i", &deb]))?;

    let user = run(Command::new("getent").args(["passwd", "mjpeg-relay"]))?;
    assert!(user.trim_end().ends_with("/usr/sbin/nologin"), "{user}");
    let modes = run(Command::new("stat").args([
        "-c",
        "%n %a %U:%G",
        "/etc/mjpeg-relay",
        "/etc/mjpeg-relay/config.toml",
        "/etc/mjpeg-relay/env",
        "/lib/systemd/system/mjpeg-relay.service",
        "/usr/bin/mjpeg-relay",
    ]))?;
    for want in [
        "/etc/mjpeg-relay 750 root:mjpeg-relay",
        "/etc/mjpeg-relay/config.toml 640 root:mjpeg-relay",
        "/etc/mjpeg-relay/env 600 root:root",
        "/lib/systemd/system/mjpeg-relay.service 644 root:root",
        "/usr/bin/mjpeg-relay 755 root:root",
    ] {
        assert!(modes.contains(want), "{want} in:\n{modes}");
    }

    // As the service runs it: its user, from /, its config, nothing beside the binary.
    // setpriv execs the relay itself (runuser would fork, and killing it would leave the relay).
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=mjpeg-relay",
        "--regid=mjpeg-relay",
        "--init-groups",
    ])
    .arg("/usr/bin/mjpeg-relay")
    .args(["--config", "/etc/mjpeg-relay/config.toml"])
    .args(["--listen", "127.0.0.1:0"])
    .current_dir("/");
    let relay = RelayProcess::spawn(cmd)?;
    let index = get(relay.addr, "/").await?;
    assert_eq!(index.status, 200);
    assert!(index.text().contains("mjpeg-frontend"), "{}", index.text());
    let snapshot = get(relay.addr, "/streams/main.jpg").await?;
    assert_eq!(snapshot.status, 200);
    mjpeg_relay_tests::decode_jpeg(&snapshot.body)?;
    drop(relay);

    run(Command::new("dpkg").args(["--purge", "mjpeg-relay"]))?;
    for gone in [
        "/usr/bin/mjpeg-relay",
        "/etc/mjpeg-relay",
        "/lib/systemd/system/mjpeg-relay.service",
    ] {
        assert!(
            !std::path::Path::new(gone).exists(),
            "{gone} left after purge"
        );
    }
    let user = Command::new("getent")
        .args(["passwd", "mjpeg-relay"])
        .output()?;
    assert!(!user.status.success(), "the user is gone after purge");
    Ok(())
}

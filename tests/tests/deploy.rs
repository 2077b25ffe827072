//! The deployment files in `deploy/` are what the tools they are for accept: the systemd unit
//! passes `systemd-analyze verify` without a single warning, and the nginx site (HTTPS, HTTP/2,
//! the shipped locations file) passes `nginx -t` with a real certificate. The locations file is
//! also run for real, in front of the relay, in `tests/tests/nginx.rs`.

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
        "/usr/local/bin/mjpeg-relay",
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

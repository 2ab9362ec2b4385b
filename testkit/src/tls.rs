//! A throwaway test CA and a server certificate it signed for 127.0.0.1 and localhost, made with
//! openssl, for the servers that tests run with TLS.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::require_program;

/// File names, inside the directory given to [`make_certificates`].
pub const CA_CERT: &str = "ca.pem";
pub const SERVER_CERT: &str = "cert.pem";
pub const SERVER_KEY: &str = "key.pem";

/// Writes [`CA_CERT`] (and its key), and [`SERVER_CERT`] with [`SERVER_KEY`]: a P-256 server
/// certificate for `IP:127.0.0.1` and `DNS:localhost`, valid two days, signed by the CA.
pub fn make_certificates(dir: &Path) -> Result<()> {
    require_program("openssl");
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("running openssl")?;
        if !out.status.success() {
            bail!(
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let new_ec_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509", "-days", "2", "-subj", "/CN=testkit CA"][..],
        &["-keyout", "ca-key.pem", "-out", CA_CERT],
        &new_ec_key,
    ];
    openssl(&ca.concat())?;
    let request = [
        &["req", "-subj", "/CN=localhost"][..],
        &["-keyout", SERVER_KEY, "-out", "req.pem"],
        &new_ec_key,
    ];
    openssl(&request.concat())?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         extendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.pem",
        "-CA",
        CA_CERT,
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        SERVER_CERT,
    ])
}

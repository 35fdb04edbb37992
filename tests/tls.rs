//! TLS end to end, with a CA and a server certificate made in the test (rcgen): `ibsight
//! serve` terminates TLS from `[server.tls]`; `ibsight agent` posts to its `https` URL with
//! `--ca-file`, and the on-call's CLI reads over it; a client that does not trust the CA, or
//! speaks plain HTTP, gets nothing; a bad key stops the start, naming the setting and file.

mod common;

use common::{binary, Server};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

struct Pki {
    ca: String,
    cert: String,
    key: String,
}

/// A CA, and a certificate it signed for localhost and 127.0.0.1.
fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server cert");
    Pki {
        ca: ca_cert.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_tls_and_the_agent_and_cli_post_and_read_over_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = pki();
    let ca = write(dir.path(), "ca.pem", &pki.ca);
    let cert = write(dir.path(), "server.pem", &pki.cert);
    let key = write(dir.path(), "server.key", &pki.key);
    let config = write(
        dir.path(),
        "tls.toml",
        &format!("[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n"),
    );
    let srv = Server::start_full(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--config", &config],
        &[],
        &[],
    );
    let port = srv.url.rsplit(':').next().expect("port").to_string();
    let https = format!("https://localhost:{port}");

    // A client that trusts the CA reads over TLS; one that does not, or plain HTTP, does not.
    let ca_cert = reqwest::Certificate::from_pem(pki.ca.as_bytes()).expect("ca");
    let trusting = reqwest::Client::builder()
        .tls_certs_only([ca_cert])
        .build()
        .expect("client");
    let health = trusting
        .get(format!("{https}/healthz"))
        .send()
        .await
        .expect("https with the CA");
    assert_eq!(health.status().as_u16(), 200);
    let ip = trusting
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("https by IP");
    assert_eq!(ip.status().as_u16(), 200);
    let err = reqwest::Client::new()
        .get(format!("{https}/healthz"))
        .send()
        .await
        .expect_err("a client without the CA must fail");
    assert!(err.is_connect(), "{err:?}");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_err(),
        "plain HTTP to the TLS port must get no answer"
    );

    // The agent posts to the https URL with --ca-file; without it, it delivers nothing.
    let fs = tempfile::tempdir().expect("sysfs");
    common::sysfs_hca(fs.path());
    let refused = Command::new(binary())
        .args([
            "agent",
            "--once",
            "--deliver-timeout-s",
            "3",
            "--target",
            &https,
            "--sysfs",
        ])
        .arg(fs.path())
        .env_remove("IBSIGHT_CA_FILE")
        .output()
        .expect("agent");
    assert!(
        !refused.status.success(),
        "an agent that does not trust the CA delivered"
    );
    let out = Command::new(binary())
        .args([
            "agent",
            "--once",
            "--target",
            &https,
            "--ca-file",
            &ca,
            "--sysfs",
        ])
        .arg(fs.path())
        .output()
        .expect("agent");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stream: Value = trusting
        .get(format!("{https}/v1/streams/node042_mlx5_0/p1"))
        .send()
        .await
        .expect("stream")
        .json()
        .await
        .expect("json");
    assert_eq!(
        stream["counters"]["SymbolErrorCounter"]["value"], 7,
        "{stream}"
    );

    // The on-call's CLI over TLS.
    let out = Command::new(binary())
        .args([
            "incidents",
            "--json",
            "--state",
            "all",
            "--target",
            &https,
            "--ca-file",
            &ca,
        ])
        .output()
        .expect("incidents");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["incidents"].is_array(), "{v}");
    srv.terminate();

    // A key that is not a key stops the start, naming the setting and the file; so does half
    // a TLS config.
    let bad_key = write(dir.path(), "bad.key", "not a key\n");
    for (name, tls, names) in [
        (
            "bad",
            format!("cert_file = \"{cert}\"\nkey_file = \"{bad_key}\"\n"),
            "bad.key",
        ),
        ("half", format!("cert_file = \"{cert}\"\n"), "is required"),
    ] {
        let config = write(
            dir.path(),
            &format!("{name}.toml"),
            &format!("[server.tls]\n{tls}"),
        );
        let out = Command::new(binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--config",
                &config,
                "--data-dir",
            ])
            .arg(dir.path().join(name))
            .output()
            .expect("serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: serve started");
        assert!(
            err.contains("server.tls.key_file") && err.contains(names),
            "{name}: {err}"
        );
    }
}

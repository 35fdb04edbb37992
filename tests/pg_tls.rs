//! TLS to PostgreSQL with libpq's `sslmode` meaning, against a private server
//! (scripts/pg-server) given a certificate made here (rcgen) and a pg_hba.conf that refuses
//! plain connections: `disable` is refused, `prefer` and `require` encrypt, `verify-full`
//! checks the chain and the host name, `verify-ca` the chain only, and a server signed by
//! another CA is refused by both.

mod common;

use common::pg::{pg_server, Servers};
use ibsight::events::pg_store::PgStore;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::path::Path;
use std::time::{Duration, Instant};

/// A CA named `name`, and a server certificate and key it signed for `localhost` only.
fn pki(name: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("server cert");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Write a file the server (run as `nobody` when the tests run as root) can read, 0600.
fn server_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    if unsafe { libc::geteuid() } == 0 {
        let nobody = std::process::Command::new("id")
            .args(["-u", "nobody"])
            .output()
            .expect("id");
        let uid: u32 = String::from_utf8_lossy(&nobody.stdout)
            .trim()
            .parse()
            .expect("uid");
        std::os::unix::fs::chown(path, Some(uid), None).expect("chown");
    }
}

fn port_of(url: &str) -> String {
    url.split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .expect("port")
        .to_string()
}

/// Open a store with `url` and say whether its connection is encrypted.
fn open(url: &str, schema: &str) -> Result<bool, String> {
    let store = PgStore::open_with(url, schema, 2, None).map_err(|e| e.to_string())?;
    store.run(|pool| async move {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get::<_, bool>(0))
    })
}

#[test]
fn sslmode_means_what_it_means_to_libpq() {
    // The shared server is not used, but its presence says PostgreSQL is installed.
    if common::pg::pg_url().is_none() {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("pg");
    let mut servers = Servers(Vec::new());
    let plain = pg_server(&["start", dir.to_str().expect("utf8")]);
    servers.0.push(dir.clone());
    let port = port_of(&plain);

    let (ca, cert, key) = pki("ibsight test CA");
    let (other_ca, _, _) = pki("another CA");
    let data = dir.join("data");
    server_file(&data.join("server.crt"), &cert);
    server_file(&data.join("server.key"), &key);
    let ca_file = root.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).expect("ca");
    let other_ca_file = root.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, &other_ca).expect("other ca");
    // TLS on, and plain connections refused.
    let hba = data.join("pg_hba.conf");
    let rules = std::fs::read_to_string(&hba).expect("pg_hba");
    std::fs::write(
        &hba,
        format!("hostnossl all all 127.0.0.1/32 reject\n{rules}"),
    )
    .expect("hba");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&plain, tokio_postgres::NoTls)
            .await
            .expect("connect plain");
        tokio::spawn(conn);
        for sql in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
            client.batch_execute(sql).await.expect(sql);
        }
    });

    let base =
        format!("host=localhost hostaddr=127.0.0.1 port={port} user=ibsight dbname=postgres");
    let ca = ca_file.display();
    // The reload takes a moment: wait for the first encrypted connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match open(&format!("{base} sslmode=require"), "tls_require") {
            Ok(encrypted) => {
                assert!(encrypted, "sslmode=require must encrypt");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "TLS never came up: {e}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    assert_eq!(
        open(&format!("{base} sslmode=prefer"), "tls_prefer"),
        Ok(true)
    );
    assert_eq!(
        open(&base, "tls_default"),
        Ok(true),
        "prefer is the default"
    );
    let refused = open(&format!("{base} sslmode=disable"), "tls_disable").expect_err("plain");
    assert!(
        refused.contains("pg_hba") || refused.contains("no encryption"),
        "{refused}"
    );

    assert_eq!(
        open(
            &format!("{base} sslmode=verify-full sslrootcert={ca}"),
            "tls_full"
        ),
        Ok(true)
    );
    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca accepts.
    let by_ip = format!("host=127.0.0.1 port={port} user=ibsight dbname=postgres");
    let wrong_name = open(
        &format!("{by_ip} sslmode=verify-full sslrootcert={ca}"),
        "tls_ip",
    )
    .expect_err("the name is checked");
    assert!(
        wrong_name.contains("not valid for name \"127.0.0.1\""),
        "{wrong_name}"
    );
    assert_eq!(
        open(
            &format!("{by_ip} sslmode=verify-ca sslrootcert={ca}"),
            "tls_ca"
        ),
        Ok(true)
    );
    // Another CA's bundle: the chain does not check, in either mode.
    let other = other_ca_file.display();
    for mode in ["verify-ca", "verify-full"] {
        let e = open(
            &format!("{base} sslmode={mode} sslrootcert={other}"),
            "tls_other",
        )
        .expect_err("unknown issuer");
        assert!(
            e.contains("invalid peer certificate: UnknownIssuer"),
            "{mode}: {e}"
        );
    }
    // Settings that cannot work are named.
    let e = open(&format!("{base} sslmode=verify-full"), "tls_x").expect_err("no root");
    assert!(e.contains("store.url") && e.contains("sslrootcert"), "{e}");
    drop(servers);
}

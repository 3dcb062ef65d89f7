//! TLS to MySQL verifies the server: on a MariaDB server of the test's own that speaks TLS
//! with a certificate of a test CA (made with the `openssl` command), the configuration's
//! options connect when `DATABASE_SSL_CA` holds that CA, and are refused (503, never a
//! connection) with another CA or with none (a database secret's default, verify_identity
//! against the public roots). `required`, the mode before, took any certificate.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kv_shared::config::{DatabaseConfig, Runtime};
use kv_shared::store::{Store, StoreError};

use crate::faults::PrivateMariaDb;

/// Runs `openssl` with `args` in `dir`; panics if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA (`<name>.pem`, `<name>-key.pem`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (cert, key, subject) = (
        format!("{name}.pem"),
        format!("{name}-key.pem"),
        format!("/CN=kv test {name}"),
    );
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", &key, "-out",
            &cert, "-subj", &subject,
        ],
    );
}

/// `ca.pem` and the server's certificate for 127.0.0.1 and localhost, signed by it, and
/// `other-ca.pem`, a CA that signed nothing of the server's.
fn make_certificates(dir: &Path) {
    make_ca(dir, "ca");
    make_ca(dir, "other-ca");
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server-cert.pem",
        ],
    );
}

/// The store the configuration of `vars` describes, and whether it reaches the database.
async fn ping(vars: &[(&str, &str)]) -> Result<(), StoreError> {
    let lookup = |name: &str| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    };
    let config = DatabaseConfig::from_sources(Runtime::Local, &lookup, None)
        .await
        .unwrap_or_else(|error| panic!("{vars:?}: {error}"));
    let store = Store::connect_lazy(config.database, &config.pool);
    let pinged = store.ping().await;
    store.close().await;
    pinged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_of_another_ca_is_refused() {
    if Command::new("openssl").arg("version").output().is_err() {
        assert!(!test_support::is_ci(), "CI needs the openssl command");
        eprintln!("skipped: the openssl command is not installed");
        return;
    }
    let certificates = tempfile::tempdir().unwrap();
    make_certificates(certificates.path());
    let Some(database) = PrivateMariaDb::start_with_tls(Some(certificates.path().to_owned())).await
    else {
        return;
    };
    let url = format!("{}/kv", database.url);
    let ca = certificates.path().join("ca.pem");
    let other_ca = certificates.path().join("other-ca.pem");
    let (ca, other_ca) = (ca.to_str().unwrap(), other_ca.to_str().unwrap());
    let timeout = ("DATABASE_ACQUIRE_TIMEOUT_SECONDS", "10");

    // The right CA: verify_identity (the default with DATABASE_SSL_CA) connects.
    ping(&[("DATABASE_URL", &url), ("DATABASE_SSL_CA", ca), timeout])
        .await
        .expect("the server's CA is trusted");
    // Another CA, or none but the public roots: refused, as unavailable (503).
    for vars in [
        vec![
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_SSL_CA", other_ca),
            timeout,
        ],
        vec![
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_SSL_CA", other_ca),
            ("DATABASE_SSL_MODE", "verify_ca"),
            timeout,
        ],
        vec![
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_SSL_MODE", "verify_identity"),
            timeout,
        ],
    ] {
        // rustls's verdict, which sqlx passes on as an I/O error of the handshake.
        match ping(&vars).await {
            Err(StoreError::Unavailable(error))
                if format!("{error:?}").contains("InvalidCertificate(UnknownIssuer)") => {}
            other => panic!("{vars:?}: expected the certificate refused, got {other:?}"),
        }
    }
    // The old mode, required, took any certificate.
    let required = format!("{url}?ssl-mode=required");
    tokio::time::timeout(
        Duration::from_secs(30),
        ping(&[("DATABASE_URL", &required)]),
    )
    .await
    .unwrap()
    .expect("required encrypts without verifying");
}

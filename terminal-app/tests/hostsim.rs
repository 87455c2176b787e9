//! `kassa certs` and `kassa host-sim` as separate processes, reached over mutual TLS by a
//! terminal link using a second terminal's certificate.

mod common;

use std::process::Command;
use std::time::Duration;

use acquirer::{Credentials, Link, LinkConfig, LinkErrorKind};
use zeroize::Zeroizing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_host_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let o = Command::new(env!("CARGO_BIN_EXE_kassa"))
        .args([
            "certs",
            "--out",
            certs.to_str().unwrap(),
            "--terminal",
            "KASSA002",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "[[rules]]\nmti = \"0800\"\nrespond = \"00\"\n").unwrap();
    let (mut child, addr) = common::spawn_announcing(Command::new(common::KASSA).args([
        "host-sim",
        "--listen",
        "127.0.0.1:0",
        "--certs",
        certs.to_str().unwrap(),
        "--for-secs",
        "20",
        "--rules",
        rules.to_str().unwrap(),
    ]));
    let read = |name: &str| std::fs::read(certs.join(name)).unwrap();
    let creds = Credentials {
        ca_pem: read("ca.pem"),
        cert_pem: read("terminal-KASSA002.pem"),
        key_pem: Zeroizing::new(read("terminal-KASSA002.key")),
    };
    let cfg = LinkConfig {
        address: addr.clone(),
        server_name: "127.0.0.1".into(),
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(5),
        dialect: &acquirer::iso8583::BCD87,
        allow_tls12: false,
    };
    let mut link = Link::new(cfg.clone(), &creds).unwrap();
    let echo = acquirer::messages::network(
        acquirer::messages::NetworkCode::Echo,
        1,
        "1130000000",
        "KASSA002",
    );
    let ex = link.exchange(&echo).await.unwrap();
    assert_eq!(ex.response.mti, 810);
    assert_eq!(ex.response.get_str(39).as_deref(), Some("00"));
    assert_eq!(ex.tls_version, "TLSv1.3");
    // A terminal from another PKI is refused.
    let other = sim::DevPki::generate("Other CA", "X").unwrap();
    let mut stranger = Link::new(cfg, &other.terminal_credentials()).unwrap();
    let e = stranger.exchange(&echo).await.unwrap_err();
    assert_eq!(e.kind, LinkErrorKind::HostCertificateRejected, "{e}");
    let _ = child.kill();
    let _ = child.wait();
}

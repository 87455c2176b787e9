//! The serial scanner driver against a simulated scanner on a real pseudo-terminal pair.

use std::time::Duration;

use drivers::{CodeScanner, ScannerErrorKind, SerialScanner};
use sim::scanner::ScannerPty;

#[tokio::test]
async fn codes_noise_and_silence_through_a_pseudo_terminal() {
    let sim = ScannerPty::spawn().unwrap();
    let mut scanner = SerialScanner::open(&sim.path, 9600).unwrap();
    assert!(scanner.label().starts_with("serial:/dev/pts/"));
    // A code scanned before the terminal asks is dropped (it was not for this payment).
    sim.handle.scan("134567890123456789");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let h = sim.handle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        h.scan("281234567890123456");
    });
    let code = scanner.read_code(Duration::from_secs(5)).await.unwrap();
    assert_eq!(code.as_str(), "281234567890123456");
    // Noise on the line is an error, not a code.
    let h = sim.handle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.send_raw(b"\x00\xfe\x13#!\r\n");
    });
    let e = scanner.read_code(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(e.kind, ScannerErrorKind::Noise);
    // A half line and then nothing: a timeout with its reason code.
    let h = sim.handle.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.send_raw(b"62123");
    });
    let e = scanner
        .read_code(Duration::from_millis(400))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ScannerErrorKind::Timeout);
    assert_eq!(e.kind.code(), "scanner_timeout");
}

#[test]
fn a_missing_scanner_is_named() {
    let e = SerialScanner::open(std::path::Path::new("/dev/ttyNOPE9"), 9600).unwrap_err();
    assert_eq!(e.kind, ScannerErrorKind::NoScanner);
    assert!(
        e.to_string().contains("/dev/ttyNOPE9 does not exist"),
        "{e}"
    );
}

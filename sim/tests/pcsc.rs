//! The PC/SC driver through a real pcsc-lite: pcscd with vsmartcard's virtual reader (vpcd),
//! and a virtual card connected to it (`sim::vicc`). Runs with the `pcsc` feature
//! (scripts/check-hardware-builds starts pcscd); without a running pcscd with vpcd the test
//! fails, unless KASSA_PCSC_OPTIONAL is set.
#![cfg(feature = "pcsc")]

use std::time::Duration;

use drivers::pcsc_reader::{PcscReader, list_readers};
use drivers::{CardReader, ReaderErrorKind, VirtualCard};

const SELECT_PPSE: &[u8] = b"\x00\xA4\x04\x00\x0E2PAY.SYS.DDF01\x00";
const APDU: Duration = Duration::from_secs(2);

fn vpcd_addr() -> String {
    format!("127.0.0.1:{}", sim::vicc::VPCD_PORT)
}

fn tap(card: Box<dyn VirtualCard>) -> tokio::sync::oneshot::Sender<()> {
    let (stop, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move { sim::vicc::serve(&vpcd_addr(), card, rx).await });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_through_pcscd_tap_select_remove_tap_again() {
    let readers = match list_readers() {
        Ok(r) if r.iter().any(|n| n.contains("Virtual PCD")) => r,
        other if std::env::var_os("KASSA_PCSC_OPTIONAL").is_some() => {
            eprintln!("skipped: no pcscd with vpcd ({other:?})");
            return;
        }
        other => panic!("pcscd with vsmartcard-vpcd is needed: {other:?}"),
    };
    assert!(!readers.is_empty());
    let mut r = PcscReader::new(Some("Virtual PCD".into())).unwrap();
    // No card yet: a timeout with its reason.
    let e = r
        .wait_for_card(Duration::from_millis(600))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::Timeout, "{e}");
    let stop = tap(Box::new(sim::builtin_card("visa").unwrap().unwrap()));
    let info = r.wait_for_card(Duration::from_secs(5)).await.unwrap();
    assert_eq!(info.technology, 'A');
    let mut direct = sim::builtin_card("visa").unwrap().unwrap();
    let want = direct.process(SELECT_PPSE);
    let got = r.transceive(SELECT_PPSE, APDU).await.unwrap();
    assert_eq!(got, want);
    // The card leaves: the next command is card_lost, and removal is seen.
    let _ = stop.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = r.transceive(SELECT_PPSE, APDU).await.unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::CardLost, "{e}");
    r.wait_for_removal(Duration::from_secs(2)).await.unwrap();
    // Tapped again (after the two seconds vpcd takes to notice a removal: it polls), it is
    // found and answers.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let stop = tap(Box::new(sim::builtin_card("mastercard").unwrap().unwrap()));
    r.wait_for_card(Duration::from_secs(5)).await.unwrap();
    let got = r.transceive(SELECT_PPSE, APDU).await.unwrap();
    assert_eq!(&got[got.len() - 2..], &[0x90, 0x00]);
    let _ = stop.send(());
}

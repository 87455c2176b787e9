//! The PN532 UART driver against the PN532 simulator, over a real pseudo-terminal pair.

use std::time::{Duration, Instant};

use drivers::pn532::uart::UartTransport;
use drivers::{CardReader, Pn532, Pn532Config, ReaderErrorKind, VirtualCard};
use sim::pn532::{Pn532Fault, Pn532Pty, Pn532SimConfig};

const SELECT_PPSE: &[u8] = b"\x00\xA4\x04\x00\x0E2PAY.SYS.DDF01\x00";

fn visa() -> Box<dyn VirtualCard> {
    Box::new(sim::builtin_card("visa").unwrap().unwrap())
}

fn reader(pty: &Pn532Pty) -> Pn532<UartTransport<drivers::pn532::uart::SerialPort>> {
    let t = UartTransport::open(&pty.path, 115_200).unwrap();
    Pn532::new(
        t,
        Pn532Config {
            ack_timeout: Duration::from_millis(60),
            ..Pn532Config::default()
        },
    )
}

const APDU: Duration = Duration::from_millis(400);

/// A card that answers every command with `n` bytes and 90 00.
struct Big(usize);
impl VirtualCard for Big {
    fn uid(&self) -> Vec<u8> {
        vec![0x08, 1, 2, 3]
    }
    fn process(&mut self, capdu: &[u8]) -> Vec<u8> {
        let mut r: Vec<u8> = (0..self.0).map(|i| (i as u8) ^ capdu[1]).collect();
        r.extend_from_slice(&[0x90, 0x00]);
        r
    }
}

#[tokio::test]
async fn firmware_tap_and_select_byte_for_byte() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    let fw = r.init().await.unwrap();
    assert_eq!((fw.ic, fw.version, fw.revision), (0x32, 1, 6));
    assert!(
        r.name().starts_with("PN532 v1.6 on uart:/dev/pts/"),
        "{}",
        r.name()
    );
    pty.handle.tap(visa());
    let info = r.wait_for_card(Duration::from_secs(2)).await.unwrap();
    assert_eq!(info.technology, 'A');
    // The answer through the PN532 is exactly what the card says directly.
    let mut direct = sim::builtin_card("visa").unwrap().unwrap();
    let want = direct.process(SELECT_PPSE);
    let got = r.transceive(SELECT_PPSE, APDU).await.unwrap();
    assert_eq!(got, want);
    assert_eq!(&got[got.len() - 2..], &[0x90, 0x00]);
    pty.handle.remove();
    r.wait_for_removal(Duration::from_secs(1)).await.unwrap();
    let s = pty.handle.stats();
    assert_eq!(s.apdus, 1);
    assert_eq!(s.activations, 1);
}

#[tokio::test]
async fn long_answers_are_chained_and_long_commands_too() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    pty.handle.tap(Box::new(Big(600)));
    r.wait_for_card(Duration::from_secs(2)).await.unwrap();
    let got = r
        .transceive(&[0x00, 0xB2, 0x01, 0x0C, 0x00], APDU)
        .await
        .unwrap();
    assert_eq!(got.len(), 602);
    assert_eq!(got[599], (599u32 as u8) ^ 0xB2);
    // A 300-byte command goes in two InDataExchange frames with MI set on the first.
    let mut long = vec![0x80, 0xCA, 0x00, 0x00];
    long.extend(std::iter::repeat_n(0x11, 296));
    let got = r.transceive(&long, APDU).await.unwrap();
    assert_eq!(got.len(), 602);
    assert_eq!(pty.handle.stats().apdus, 2);
}

#[tokio::test]
async fn a_bad_checksum_is_asked_again_and_garbage_skipped() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    pty.handle.tap(visa());
    r.wait_for_card(Duration::from_secs(2)).await.unwrap();
    pty.handle.inject(Pn532Fault::BadChecksum);
    let got = r.transceive(SELECT_PPSE, APDU).await.unwrap();
    assert_eq!(&got[got.len() - 2..], &[0x90, 0x00]);
    assert_eq!(r.stats().nacks, 1);
    assert_eq!(pty.handle.stats().nacks, 1);
    pty.handle.inject(Pn532Fault::Garbage);
    let got = r.transceive(SELECT_PPSE, APDU).await.unwrap();
    assert_eq!(&got[got.len() - 2..], &[0x90, 0x00]);
}

#[tokio::test]
async fn a_card_that_leaves_is_card_lost_and_comes_back() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    pty.handle.tap(visa());
    r.wait_for_card(Duration::from_secs(2)).await.unwrap();
    pty.handle.inject(Pn532Fault::CardLost {
        apdu: 2,
        back_after: Some(Duration::from_millis(200)),
    });
    r.transceive(SELECT_PPSE, APDU).await.unwrap();
    let e = r.transceive(SELECT_PPSE, APDU).await.unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::CardLost, "{e}");
    let e = r.transceive(SELECT_PPSE, APDU).await.unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::CardLost);
    // The cardholder taps again: the reader finds the card and it answers.
    let t = Instant::now();
    r.wait_for_card(Duration::from_secs(2)).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    let got = r.transceive(SELECT_PPSE, APDU).await.unwrap();
    assert_eq!(&got[got.len() - 2..], &[0x90, 0x00]);
}

#[tokio::test]
async fn a_reset_mid_apdu_is_reported_and_the_reader_recovers() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    pty.handle.tap(visa());
    r.wait_for_card(Duration::from_secs(2)).await.unwrap();
    pty.handle.inject(Pn532Fault::ResetMidApdu { apdu: 1 });
    let t = Instant::now();
    let e = r.transceive(SELECT_PPSE, APDU).await.unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::ReaderReset, "{e}");
    // The APDU timeout, then one initialisation.
    assert!(
        t.elapsed() < APDU + Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.stats().reinits, 1);
    let s = pty.handle.stats();
    assert_eq!(s.resets, 1);
    assert!(s.wakeups >= 2, "{s:?}");
    // Ready again: the card is found and answers.
    r.wait_for_card(Duration::from_secs(2)).await.unwrap();
    let got = r.transceive(SELECT_PPSE, APDU).await.unwrap();
    assert_eq!(&got[got.len() - 2..], &[0x90, 0x00]);
}

#[tokio::test]
async fn a_silent_reader_is_no_answer_then_recovers_by_itself() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    r.init().await.unwrap();
    pty.handle
        .inject(Pn532Fault::NoAnswer(Duration::from_millis(1500)));
    // Nothing answers: the wait ends at its timeout with the reason.
    let t = Instant::now();
    let e = r
        .wait_for_card(Duration::from_millis(700))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::NoAnswer, "{e}");
    assert!(
        t.elapsed() < Duration::from_millis(700 + 700),
        "{:?}",
        t.elapsed()
    );
    // Once it answers again, polling finds the card without a restart.
    pty.handle.tap(visa());
    let info = r.wait_for_card(Duration::from_secs(3)).await.unwrap();
    assert_eq!(info.technology, 'A');
    assert!(r.stats().reinits >= 1);
}

#[tokio::test]
async fn two_cards_collide_and_no_card_times_out() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    let e = r
        .wait_for_card(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::Timeout);
    assert_eq!(e.detail, "no card within 300 ms");
    pty.handle.tap(visa());
    pty.handle.tap(Box::new(Big(4)));
    let e = r.wait_for_card(Duration::from_secs(1)).await.unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::Collision);
}

#[tokio::test]
async fn a_card_left_on_the_reader_is_reported() {
    let pty = Pn532Pty::spawn(Pn532SimConfig::default()).unwrap();
    let mut r = reader(&pty);
    pty.handle.tap(visa());
    r.wait_for_card(Duration::from_secs(1)).await.unwrap();
    let e = r
        .wait_for_removal(Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ReaderErrorKind::Timeout);
    pty.handle.remove();
    r.wait_for_removal(Duration::from_secs(1)).await.unwrap();
}

#[test]
fn a_missing_port_is_no_reader() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = UartTransport::open(std::path::Path::new("/dev/ttyKASSA-none"), 115_200)
            .err()
            .unwrap();
        assert_eq!(e.kind, ReaderErrorKind::NoReader, "{e}");
        assert!(e.detail.contains("does not exist"), "{e}");
    });
}

mod buses {
    use super::*;
    use drivers::pn532::bus::{BusTransport, I2cBus, SpiBus};
    use sim::pn532::{Pn532I2c, Pn532SimHandle, Pn532Spi};

    async fn exercise<T: drivers::pn532::Transport>(mut r: Pn532<T>, handle: Pn532SimHandle) {
        let fw = r.init().await.unwrap();
        assert_eq!(fw.ic, 0x32);
        handle.tap(visa());
        r.wait_for_card(Duration::from_secs(2)).await.unwrap();
        let mut direct = sim::builtin_card("visa").unwrap().unwrap();
        let want = direct.process(SELECT_PPSE);
        assert_eq!(r.transceive(SELECT_PPSE, APDU).await.unwrap(), want);
        // A broken answer is read again (on a bus the transport's own NACK re-read, which
        // every answer longer than the header gets, already brings the frame back whole).
        let before = handle.stats().nacks;
        handle.inject(Pn532Fault::BadChecksum);
        assert_eq!(r.transceive(SELECT_PPSE, APDU).await.unwrap(), want);
        assert!(handle.stats().nacks > before);
        // A reset mid-APDU: reported, then the reader works again.
        handle.inject(Pn532Fault::ResetMidApdu { apdu: 1 });
        let e = r.transceive(SELECT_PPSE, APDU).await.unwrap_err();
        assert_eq!(e.kind, ReaderErrorKind::ReaderReset, "{e}");
        r.wait_for_card(Duration::from_secs(2)).await.unwrap();
        assert_eq!(r.transceive(SELECT_PPSE, APDU).await.unwrap(), want);
        handle.remove();
        r.wait_for_removal(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test]
    async fn spi_lsb_first_against_the_simulated_chip() {
        let handle = Pn532SimHandle::default();
        let chip = Pn532Spi::new(handle.clone(), Pn532SimConfig::default());
        let t = BusTransport::new(SpiBus::new(chip));
        exercise(Pn532::new(t, Pn532Config::default()), handle).await;
    }

    #[tokio::test]
    async fn i2c_against_the_simulated_chip() {
        let handle = Pn532SimHandle::default();
        let chip = Pn532I2c::new(handle.clone(), Pn532SimConfig::default());
        let t = BusTransport::new(I2cBus::new(chip));
        exercise(Pn532::new(t, Pn532Config::default()), handle).await;
    }
}

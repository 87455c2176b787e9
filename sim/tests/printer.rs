//! The ESC/POS serial printer driver against the simulated printer, over a real
//! pseudo-terminal pair.

use std::time::Duration;

use drivers::escpos::{
    self, Align, Block, Document, Encoding, EscPosConfig, Paper, Printed, Style,
};
use drivers::{EscPosPrinter, Printer, PrinterError};
use sim::printer::PrinterPty;

fn receipt() -> Document {
    let centre = Style {
        align: Align::Center,
        ..Style::default()
    };
    Document {
        blocks: vec![
            Block::Text(
                "Kassa Demo Shop".into(),
                Style {
                    bold: true,
                    ..centre
                },
            ),
            Block::Text("交易成功".into(), centre),
            Block::Text(
                "EUR 12.34".into(),
                Style {
                    double: true,
                    ..centre
                },
            ),
            Block::Qr("https://receipts.example/r/KASSA001-000042".into()),
            Block::Feed(3),
            Block::Cut,
        ],
    }
}

const CFG: EscPosConfig = EscPosConfig {
    paper: Paper::Mm58,
    encoding: Encoding::Gb18030,
    native_qr: true,
};

fn printer(pty: &PrinterPty) -> EscPosPrinter<tokio_serial::SerialStream> {
    let mut p = EscPosPrinter::serial(&pty.path, 9600, CFG).unwrap();
    p.status_timeout = Duration::from_millis(300);
    p
}

#[tokio::test]
async fn a_receipt_goes_out_byte_for_byte_and_reads_back() {
    let pty = PrinterPty::spawn().unwrap();
    let mut p = printer(&pty);
    p.print(&receipt()).await.unwrap();
    // The status was asked before and after the job.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pty.handle.queries(), 6);
    let want = escpos::encode(&receipt(), &CFG, &mut escpos::NoRenderer);
    assert_eq!(pty.handle.printed(), want);
    let paper = escpos::decode(&pty.handle.printed(), Encoding::Gb18030).unwrap();
    assert!(paper.contains(&Printed::Line(
        "交易成功".into(),
        Style {
            align: Align::Center,
            ..Style::default()
        }
    )));
    assert!(paper.contains(&Printed::Qr(
        "https://receipts.example/r/KASSA001-000042".into()
    )));
    assert_eq!(paper.last(), Some(&Printed::Cut));
}

#[tokio::test]
async fn paper_out_and_cover_open_are_reported_and_nothing_is_printed() {
    let pty = PrinterPty::spawn().unwrap();
    let mut p = printer(&pty);
    pty.handle.set_paper_out(true);
    let e = p.print(&receipt()).await.unwrap_err();
    assert_eq!(e, PrinterError::PaperOut);
    assert_eq!(e.code(), "paper_out");
    assert!(e.to_string().contains("reprint"));
    assert!(pty.handle.printed().is_empty());
    pty.handle.set_paper_out(false);
    pty.handle.set_cover_open(true);
    assert_eq!(
        p.print(&receipt()).await.unwrap_err(),
        PrinterError::CoverOpen
    );
    // Roll loaded, cover closed: the reprint goes through.
    pty.handle.set_cover_open(false);
    p.print(&receipt()).await.unwrap();
    assert!(!pty.handle.printed().is_empty());
}

#[tokio::test]
async fn a_printer_that_does_not_answer_times_out() {
    let pty = PrinterPty::spawn().unwrap();
    let mut p = printer(&pty);
    pty.handle.set_silent(true);
    let t = std::time::Instant::now();
    assert_eq!(
        p.print(&receipt()).await.unwrap_err(),
        PrinterError::Timeout(300)
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_missing_port_is_not_connected() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match EscPosPrinter::serial(std::path::Path::new("/dev/ttyKASSA-printer"), 9600, CFG) {
            Err(PrinterError::NotConnected(m)) => assert!(m.contains("/dev/ttyKASSA-printer")),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a missing port"),
        }
    });
}

#[tokio::test]
async fn a_network_printer_on_tcp_9100_style_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = sim::printer::PrinterSimHandle::default();
    let h = handle.clone();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        sim::printer::serve(s, h).await
    });
    let mut p = EscPosPrinter::tcp(&addr, CFG).await.unwrap();
    p.print(&receipt()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        handle.printed(),
        escpos::encode(&receipt(), &CFG, &mut escpos::NoRenderer)
    );
    // Nobody listening: not connected, with the address.
    drop(p);
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = free.local_addr().unwrap().to_string();
    drop(free);
    match EscPosPrinter::tcp(&gone, CFG).await {
        Err(PrinterError::NotConnected(m)) => assert!(m.contains(&gone)),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("connected to nothing"),
    }
}

#[tokio::test]
async fn a_usb_device_file_without_a_back_channel() {
    // A write-only device (status = false): the bytes go to the file as they are.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lp0");
    std::fs::write(&path, b"").unwrap();
    let mut p = EscPosPrinter::usb(&path, CFG).await.unwrap();
    p.query_status = false;
    p.print(&receipt()).await.unwrap();
    drop(p);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        escpos::encode(&receipt(), &CFG, &mut escpos::NoRenderer)
    );
    // With status queries, a device that never answers is a timeout, not a hang.
    let mut p = EscPosPrinter::usb(&path, CFG).await.unwrap();
    p.status_timeout = Duration::from_millis(200);
    assert!(p.print(&receipt()).await.is_err());
}

//! Receipts on the configured printer (`[printer]`): the virtual printer (standard output,
//! the emulator window), or an ESC/POS printer on a serial port, a USB device file or TCP.

use drivers::escpos::{self, Document};
use drivers::{EscPosPrinter, Printer, PrinterError};

use crate::config::Config;
use crate::paper::Fonts;

/// Prints `doc` on the hardware printer `[printer]` names. Lines the printer's encoding cannot
/// carry are drawn with the fonts of `language`. Returns the device's label.
pub async fn print_hardware(
    cfg: &Config,
    doc: &Document,
    language: &str,
) -> Result<String, (String, PrinterError)> {
    let p = &cfg.printer;
    let esc = cfg.escpos();
    let fonts = Box::new(Fonts::for_language(language));
    let label_of = |kind: &str| match kind {
        "serial" => format!("serial:{}@{}", p.port.clone().unwrap_or_default(), p.baud),
        "usb" => format!("usb:{}", p.port.clone().unwrap_or_default()),
        "tcp" => format!("tcp:{}", p.address.clone().unwrap_or_default()),
        other => other.to_string(),
    };
    let label = label_of(&p.kind);
    let fail = |e: PrinterError| (label.clone(), e);
    match p.kind.as_str() {
        "serial" => {
            let path = std::path::PathBuf::from(p.port.clone().unwrap_or_default());
            let mut pr = EscPosPrinter::serial(&path, p.baud, esc)
                .map_err(fail)?
                .with_renderer(fonts);
            pr.query_status = p.status;
            pr.print(doc).await.map_err(fail)?;
        }
        "usb" => {
            let path = std::path::PathBuf::from(p.port.clone().unwrap_or_default());
            let mut pr = EscPosPrinter::usb(&path, esc)
                .await
                .map_err(fail)?
                .with_renderer(fonts);
            pr.query_status = p.status;
            pr.print(doc).await.map_err(fail)?;
        }
        "tcp" => {
            let addr = p.address.clone().unwrap_or_default();
            let mut pr = EscPosPrinter::tcp(&addr, esc)
                .await
                .map_err(fail)?
                .with_renderer(fonts);
            pr.query_status = p.status;
            pr.print(doc).await.map_err(fail)?;
        }
        _ => {
            return Err((
                label,
                PrinterError::NotConnected("no hardware printer configured".into()),
            ));
        }
    }
    Ok(label)
}

/// [`print_hardware`] from synchronous code, on its own thread and runtime (the caller may
/// itself be inside a runtime).
pub fn print_blocking(
    cfg: &Config,
    doc: &Document,
    language: &str,
) -> Result<String, (String, PrinterError)> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    (
                        cfg.printer.kind.clone(),
                        PrinterError::NotConnected(e.to_string()),
                    )
                })?;
            rt.block_on(print_hardware(cfg, doc, language))
        })
        .join()
        .unwrap_or_else(|_| {
            Err((
                cfg.printer.kind.clone(),
                PrinterError::NotConnected("printing thread failed".into()),
            ))
        })
    })
}

/// Whether `[printer]` names a hardware printer.
pub fn is_hardware(cfg: &Config) -> bool {
    matches!(cfg.printer.kind.as_str(), "serial" | "usb" | "tcp")
}

/// The ESC/POS bytes of `doc` for `[printer]`, with lines the encoding cannot carry drawn
/// in `fonts`.
pub fn escpos_bytes_with(cfg: &Config, doc: &Document, fonts: &Fonts) -> Vec<u8> {
    struct Borrowed<'a>(&'a Fonts);
    impl escpos::LineRenderer for Borrowed<'_> {
        fn render(
            &mut self,
            text: &str,
            style: escpos::Style,
            width: u32,
        ) -> Option<escpos::Raster> {
            (!self.0.is_empty()).then(|| self.0.line(text, style, width))
        }
    }
    escpos::encode(doc, &cfg.escpos(), &mut Borrowed(fonts))
}

/// A picture of the paper the bytes would give, as the virtual printer shows it.
pub fn paper_png(
    cfg: &Config,
    bytes: &[u8],
    fonts: &Fonts,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let esc = cfg.escpos();
    let printed = escpos::decode(bytes, esc.encoding)?;
    let r = crate::paper::paper(&printed, esc.paper, fonts);
    crate::paper::save_png(&r, path)
}

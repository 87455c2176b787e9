//! The receipt printer trait, the ESC/POS printer over a serial port, a USB printer device
//! file or TCP port 9100, and the virtual printer of emulator mode (which keeps the same
//! ESC/POS bytes and decodes them back into what the paper shows).

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::escpos::{self, Document, EscPosConfig, LineRenderer, NoRenderer, Printed, Status};

/// Why printing failed. The transaction is never affected: the receipt stays in the journal
/// and can be printed again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrinterError {
    /// The printer is out of paper.
    #[error("printer: out of paper (load a new roll, then reprint)")]
    PaperOut,
    /// The cover is open.
    #[error("printer: cover open (close it, then reprint)")]
    CoverOpen,
    /// The printer says it is offline (an error state, or paper feed in progress).
    #[error("printer: offline")]
    Offline,
    /// The printer did not answer in time.
    #[error("printer: no answer within {0} ms (is it on and connected?)")]
    Timeout(u64),
    /// The printer is not connected or cannot be opened.
    #[error("printer: not connected ({0})")]
    NotConnected(String),
}

impl PrinterError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            PrinterError::PaperOut => "paper_out",
            PrinterError::CoverOpen => "cover_open",
            PrinterError::Offline => "printer_offline",
            PrinterError::Timeout(_) => "printer_timeout",
            PrinterError::NotConnected(_) => "printer_not_connected",
        }
    }
}

/// A receipt printer.
pub trait Printer: Send {
    /// Prints the document (and cuts, if it says so).
    fn print(&mut self, doc: &Document) -> impl Future<Output = Result<(), PrinterError>> + Send;
}

/// An ESC/POS printer on any byte stream.
pub struct EscPosPrinter<S> {
    port: S,
    config: EscPosConfig,
    renderer: Box<dyn LineRenderer + Send>,
    /// How long the printer has to answer a status query.
    pub status_timeout: Duration,
    /// Whether the printer answers `DLE EOT` (a write-only connection does not).
    pub query_status: bool,
    label: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> EscPosPrinter<S> {
    /// A printer on `port`.
    pub fn new(port: S, config: EscPosConfig, label: impl Into<String>) -> Self {
        EscPosPrinter {
            port,
            config,
            renderer: Box::new(NoRenderer),
            status_timeout: Duration::from_millis(1000),
            query_status: true,
            label: label.into(),
        }
    }

    /// Draws lines the printer's encoding cannot carry with `renderer`.
    pub fn with_renderer(mut self, renderer: Box<dyn LineRenderer + Send>) -> Self {
        self.renderer = renderer;
        self
    }

    /// Where the printer is.
    pub fn label(&self) -> &str {
        &self.label
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), PrinterError> {
        let io = |e: std::io::Error| PrinterError::NotConnected(format!("{}: {e}", self.label));
        let ms = self.status_timeout.as_millis() as u64 * 10;
        match tokio::time::timeout(Duration::from_millis(ms), async {
            self.port.write_all(bytes).await?;
            self.port.flush().await
        })
        .await
        {
            Ok(r) => r.map_err(io),
            Err(_) => Err(PrinterError::Timeout(ms)),
        }
    }

    /// Asks the printer for its state (`DLE EOT 1`, `2`, `4`).
    pub async fn status(&mut self) -> Result<Status, PrinterError> {
        self.write(&escpos::STATUS_QUERY).await?;
        let mut b = [0u8; 3];
        let ms = self.status_timeout.as_millis() as u64;
        match tokio::time::timeout(self.status_timeout, self.port.read_exact(&mut b)).await {
            Ok(Ok(_)) => Ok(Status::from_bytes(b)),
            Ok(Err(e)) => Err(PrinterError::NotConnected(format!("{}: {e}", self.label))),
            Err(_) => Err(PrinterError::Timeout(ms)),
        }
    }

    fn check(s: Status) -> Result<(), PrinterError> {
        if s.paper_out {
            Err(PrinterError::PaperOut)
        } else if s.cover_open {
            Err(PrinterError::CoverOpen)
        } else if s.offline {
            Err(PrinterError::Offline)
        } else {
            Ok(())
        }
    }
}

impl EscPosPrinter<tokio_serial::SerialStream> {
    /// A printer on a serial port.
    pub fn serial(path: &Path, baud: u32, config: EscPosConfig) -> Result<Self, PrinterError> {
        use tokio_serial::SerialPortBuilderExt;
        let port = tokio_serial::new(path.to_string_lossy(), baud)
            .open_native_async()
            .map_err(|e| PrinterError::NotConnected(format!("{}: {e}", path.display())))?;
        Ok(EscPosPrinter::new(
            port,
            config,
            format!("serial:{}@{baud}", path.display()),
        ))
    }
}

impl EscPosPrinter<tokio::net::TcpStream> {
    /// A network printer (raw TCP, port 9100 by convention).
    pub async fn tcp(addr: &str, config: EscPosConfig) -> Result<Self, PrinterError> {
        let s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| PrinterError::Timeout(3000))?
            .map_err(|e| PrinterError::NotConnected(format!("{addr}: {e}")))?;
        let _ = s.set_nodelay(true);
        Ok(EscPosPrinter::new(s, config, format!("tcp:{addr}")))
    }
}

impl EscPosPrinter<tokio::fs::File> {
    /// A USB printer's device file (/dev/usb/lp0; the usblp driver answers status queries
    /// on printers with a back channel).
    pub async fn usb(path: &Path, config: EscPosConfig) -> Result<Self, PrinterError> {
        let f = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .await
            .map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                    " (the user needs the group `lp`)"
                } else {
                    ""
                };
                PrinterError::NotConnected(format!("{}: {e}{hint}", path.display()))
            })?;
        Ok(EscPosPrinter::new(
            f,
            config,
            format!("usb:{}", path.display()),
        ))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Printer for EscPosPrinter<S> {
    async fn print(&mut self, doc: &Document) -> Result<(), PrinterError> {
        if self.query_status {
            Self::check(self.status().await?)?;
        }
        let bytes = escpos::encode(doc, &self.config, self.renderer.as_mut());
        self.write(&bytes).await?;
        if self.query_status {
            // Paper can run out in the middle: the receipt must then be printed again.
            Self::check(self.status().await?)?;
        }
        Ok(())
    }
}

/// A printer that keeps the ESC/POS bytes it was sent (the emulator shows them decoded).
#[derive(Clone)]
pub struct VirtualPrinter {
    config: EscPosConfig,
    jobs: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for VirtualPrinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualPrinter({:?})", self.config.paper)
    }
}

impl VirtualPrinter {
    /// An empty virtual printer.
    pub fn new(config: EscPosConfig) -> Self {
        VirtualPrinter {
            config,
            jobs: Arc::default(),
        }
    }

    /// The bytes of every receipt printed so far, oldest first.
    pub fn jobs(&self) -> Vec<Vec<u8>> {
        self.jobs.lock().map(|j| j.clone()).unwrap_or_default()
    }

    /// The last receipt as the paper shows it, decoded from its bytes.
    pub fn last(&self) -> Option<Result<Vec<Printed>, escpos::DecodeError>> {
        let jobs = self.jobs();
        jobs.last().map(|b| escpos::decode(b, self.config.encoding))
    }
}

impl Printer for VirtualPrinter {
    async fn print(&mut self, doc: &Document) -> Result<(), PrinterError> {
        let bytes = escpos::encode(doc, &self.config, &mut NoRenderer);
        self.jobs
            .lock()
            .map_err(|_| PrinterError::NotConnected("virtual printer poisoned".into()))?
            .push(bytes);
        Ok(())
    }
}

/// The text lines of a decoded receipt (images shown as a placeholder line).
pub fn text_of(printed: &[Printed]) -> String {
    let mut s = String::new();
    for p in printed {
        match p {
            Printed::Line(t, _) => s.push_str(t),
            Printed::Raster(r) => s.push_str(&format!("[image {}x{}]", r.width, r.height)),
            Printed::Qr(d) => s.push_str(&format!("[QR {d}]")),
            Printed::Feed(_) | Printed::Cut => continue,
        }
        s.push('\n');
    }
    s
}

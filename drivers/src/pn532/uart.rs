//! The PN532 on a serial port (HSU, UM0701-02 §6.2.3): the Pi's UART or a USB-serial
//! adapter, through tokio-serial.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::Transport;
use super::frame::{Frame, FrameBuffer, FrameError};
use crate::reader::{ReaderError, ReaderErrorKind};

/// The HSU wake-up: 0x55 0x55 then zeros long enough for the PN532 to leave power-down
/// (UM0701-02 §7.2.11, AN10682 §3).
pub const WAKE_UP: [u8; 16] = [0x55, 0x55, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// A PN532 behind any byte stream: a serial port, or one end of a pseudo-terminal in tests.
pub struct UartTransport<S> {
    port: S,
    rx: FrameBuffer,
    label: String,
}

/// The serial port type the driver opens.
pub type SerialPort = tokio_serial::SerialStream;

impl UartTransport<SerialPort> {
    /// Opens `path` at `baud` (115200 for the PN532's default HSU speed), 8N1, no flow
    /// control.
    pub fn open(path: &Path, baud: u32) -> Result<Self, ReaderError> {
        use tokio_serial::SerialPortBuilderExt;
        let port = tokio_serial::new(path.to_string_lossy(), baud)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(tokio_serial::Parity::None)
            .stop_bits(tokio_serial::StopBits::One)
            .flow_control(tokio_serial::FlowControl::None)
            .open_native_async()
            .map_err(|e| serial_error(path, e))?;
        Ok(UartTransport::new(
            port,
            format!("uart:{}@{baud}", path.display()),
        ))
    }
}

fn serial_error(path: &Path, e: tokio_serial::Error) -> ReaderError {
    let io = match e.kind {
        tokio_serial::ErrorKind::NoDevice => std::io::Error::from(std::io::ErrorKind::NotFound),
        tokio_serial::ErrorKind::Io(k) => std::io::Error::from(k),
        _ => std::io::Error::other(e.description.clone()),
    };
    // serialport reports EACCES as an I/O error; the file system tells us which it was.
    let io = match std::fs::File::open(path) {
        Err(f) if f.kind() == std::io::ErrorKind::PermissionDenied => f,
        Err(f) if f.kind() == std::io::ErrorKind::NotFound => f,
        _ => io,
    };
    crate::device::open_error(path, "PN532 serial port", &io)
}

impl<S> UartTransport<S> {
    /// A transport over an already open stream.
    pub fn new(port: S, label: impl Into<String>) -> Self {
        UartTransport {
            port,
            rx: FrameBuffer::new(),
            label: label.into(),
        }
    }
}

fn io_error(what: &str, e: std::io::Error) -> ReaderError {
    ReaderError::new(ReaderErrorKind::ReaderReset, format!("{what}: {e}"))
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Transport for UartTransport<S> {
    async fn wake(&mut self) -> Result<(), ReaderError> {
        self.rx.clear();
        self.send(&WAKE_UP).await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ReaderError> {
        self.port
            .write_all(bytes)
            .await
            .map_err(|e| io_error("serial write", e))?;
        self.port
            .flush()
            .await
            .map_err(|e| io_error("serial write", e))
    }

    async fn receive(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Result<Frame, FrameError>>, ReaderError> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 512];
        loop {
            if let Some(f) = self.rx.next_frame() {
                return Ok(Some(f));
            }
            match tokio::time::timeout_at(deadline, self.port.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => {
                    return Err(ReaderError::new(
                        ReaderErrorKind::NoReader,
                        format!("{}: the serial port closed", self.label),
                    ));
                }
                Ok(Ok(n)) => self.rx.push(&buf[..n]),
                Ok(Err(e)) => return Err(io_error("serial read", e)),
            }
        }
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

/// Serial ports this machine has, for `kassa readers`: the Pi's UARTs and USB-serial
/// adapters, whether or not a PN532 is behind them.
pub fn list_serial_ports() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = tokio_serial::available_ports()
        .unwrap_or_default()
        .into_iter()
        .map(|p| PathBuf::from(p.port_name))
        .collect();
    for extra in ["/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0"] {
        let p = PathBuf::from(extra);
        if p.exists() && !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort();
    out
}

//! A barcode scanner that lives in the process: on one end of a pseudo-terminal pair it sends
//! the codes it is told to "scan" as a serial scanner does (the code, then CR LF), or any raw
//! bytes (noise on the line, a half line).

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Scans codes on a [`ScannerPty`]. Cloneable.
#[derive(Clone, Debug)]
pub struct ScannerSimHandle {
    tx: mpsc::UnboundedSender<Vec<u8>>,
}

impl ScannerSimHandle {
    /// Scans `code`: the scanner sends it followed by CR LF.
    pub fn scan(&self, code: &str) {
        let mut b = code.as_bytes().to_vec();
        b.extend_from_slice(b"\r\n");
        let _ = self.tx.send(b);
    }

    /// Sends raw bytes (noise, a line without its end).
    pub fn send_raw(&self, bytes: &[u8]) {
        let _ = self.tx.send(bytes.to_vec());
    }
}

/// A simulated serial scanner on a new pseudo-terminal pair.
pub struct ScannerPty {
    /// The path the terminal opens.
    pub path: PathBuf,
    /// What to scan.
    pub handle: ScannerSimHandle,
    /// The running scanner.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    _keep: tokio_serial::SerialStream,
}

impl ScannerPty {
    /// Opens a pseudo-terminal pair and runs a scanner on its master side.
    pub fn spawn() -> std::io::Result<ScannerPty> {
        use tokio_serial::SerialPort;
        let (mut master, slave) =
            tokio_serial::SerialStream::pair().map_err(std::io::Error::other)?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| std::io::Error::other("pseudo-terminal without a name"))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let task = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                master.write_all(&bytes).await?;
                master.flush().await?;
            }
            Ok(())
        });
        Ok(ScannerPty {
            path,
            handle: ScannerSimHandle { tx },
            task,
            _keep: slave,
        })
    }
}

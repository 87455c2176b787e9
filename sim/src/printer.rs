//! A receipt printer that lives in the process: it takes ESC/POS bytes on one end of a
//! pseudo-terminal pair (or any byte stream), answers the real-time status queries
//! (`DLE EOT n`) from its state (paper out, cover open, offline), and keeps what it printed.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use drivers::escpos::Status;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Default)]
struct State {
    status: Status,
    silent: bool,
    printed: Vec<u8>,
    queries: u64,
}

/// Controls a simulated printer: its state, and what it printed. Cloneable.
#[derive(Clone, Default)]
pub struct PrinterSimHandle {
    state: Arc<Mutex<State>>,
}

impl PrinterSimHandle {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Takes the paper out (or loads a roll).
    pub fn set_paper_out(&self, out: bool) {
        self.with(|s| s.status.paper_out = out);
    }

    /// Opens (or closes) the cover.
    pub fn set_cover_open(&self, open: bool) {
        self.with(|s| s.status.cover_open = open);
    }

    /// Makes the printer ignore status queries (switched off, or a write-only link).
    pub fn set_silent(&self, silent: bool) {
        self.with(|s| s.silent = silent);
    }

    /// Every byte it printed (status queries excluded).
    pub fn printed(&self) -> Vec<u8> {
        self.with(|s| s.printed.clone())
    }

    /// Status queries answered.
    pub fn queries(&self) -> u64 {
        self.with(|s| s.queries)
    }
}

/// Runs the printer on a byte stream until it ends.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut port: S,
    handle: PrinterSimHandle,
) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match port.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(5) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        pending.extend_from_slice(&buf[..n]);
        // DLE EOT n is handled in real time, wherever it appears (as real printers do).
        let mut i = 0;
        let mut answers = Vec::new();
        let mut keep = Vec::new();
        while i < pending.len() {
            if pending[i] == 0x10 {
                match (pending.get(i + 1), pending.get(i + 2)) {
                    (Some(0x04), Some(&q)) if (1..=4).contains(&q) => {
                        let (status, silent) = handle.with(|s| {
                            s.queries += 1;
                            (s.status, s.silent)
                        });
                        if !silent {
                            let b = status.to_bytes();
                            answers.push(match q {
                                1 => b[0],
                                2 => b[1],
                                _ => b[2],
                            });
                        }
                        i += 3;
                        continue;
                    }
                    // Wait for the rest of a possible query.
                    (None, _) | (Some(0x04), None) => {
                        keep.extend_from_slice(&pending[i..]);
                        break;
                    }
                    _ => {}
                }
            }
            let b = pending[i];
            handle.with(|s| {
                // Without paper (or with the cover open) nothing reaches the paper.
                if !s.status.paper_out && !s.status.cover_open {
                    s.printed.push(b);
                }
            });
            i += 1;
        }
        pending = keep;
        if !answers.is_empty() {
            port.write_all(&answers).await?;
            port.flush().await?;
        }
    }
}

/// A simulated printer on a new pseudo-terminal pair.
pub struct PrinterPty {
    /// The path the terminal opens.
    pub path: PathBuf,
    /// State and output.
    pub handle: PrinterSimHandle,
    /// The running printer.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    _keep: tokio_serial::SerialStream,
}

impl PrinterPty {
    /// Opens a pseudo-terminal pair and runs a printer on its master side.
    pub fn spawn() -> std::io::Result<PrinterPty> {
        use tokio_serial::SerialPort;
        let (master, slave) = tokio_serial::SerialStream::pair().map_err(std::io::Error::other)?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| std::io::Error::other("pseudo-terminal without a name"))?;
        let handle = PrinterSimHandle::default();
        let task = tokio::spawn(serve(master, handle.clone()));
        Ok(PrinterPty {
            path,
            handle,
            task,
            _keep: slave,
        })
    }
}

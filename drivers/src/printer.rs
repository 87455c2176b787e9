//! The receipt printer trait and a virtual printer.

use std::future::Future;
use std::sync::{Arc, Mutex};

/// Why printing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrinterError {
    /// The printer is out of paper.
    #[error("printer: out of paper")]
    PaperOut,
    /// The printer did not answer in time.
    #[error("printer: timeout")]
    Timeout,
    /// The printer is not connected.
    #[error("printer: not connected ({0})")]
    NotConnected(String),
}

/// A printer that prints a receipt already laid out as lines of text.
pub trait Printer: Send {
    /// Prints the lines and cuts the paper.
    fn print(&mut self, lines: &[String]) -> impl Future<Output = Result<(), PrinterError>> + Send;
}

/// A printer that keeps what it printed in memory (the emulator shows it on screen).
#[derive(Debug, Clone, Default)]
pub struct VirtualPrinter {
    printed: Arc<Mutex<Vec<Vec<String>>>>,
}

impl VirtualPrinter {
    /// An empty virtual printer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every receipt printed so far, oldest first.
    pub fn receipts(&self) -> Vec<Vec<String>> {
        self.printed.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Printer for VirtualPrinter {
    async fn print(&mut self, lines: &[String]) -> Result<(), PrinterError> {
        let mut p = self
            .printed
            .lock()
            .map_err(|_| PrinterError::NotConnected("virtual printer poisoned".into()))?;
        p.push(lines.to_vec());
        Ok(())
    }
}

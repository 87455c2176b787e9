//! A thread that owns a blocking device (a libnfc device, a PC/SC context) and runs jobs on
//! it, so that the async side can put a deadline on every call: a driver call that hangs in
//! C code becomes a `timeout` for the caller, never a hang of the terminal.

use std::sync::mpsc;
use std::time::Duration;

use crate::reader::{ReaderError, ReaderErrorKind};

type Job<D> = Box<dyn FnOnce(&mut D) + Send>;

/// The handle to a device thread.
pub struct Worker<D> {
    tx: mpsc::Sender<Job<D>>,
    name: String,
}

impl<D: 'static> Worker<D> {
    /// Starts a thread named `name`; `make` builds the device on that thread (the device
    /// itself need not be `Send`).
    pub fn spawn(name: &str, make: impl FnOnce() -> D + Send + 'static) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job<D>>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut dev = make();
                while let Ok(job) = rx.recv() {
                    job(&mut dev);
                }
            })?;
        Ok(Worker {
            tx,
            name: name.to_string(),
        })
    }

    /// Runs `f` on the device thread and waits at most `timeout` for its result.
    pub async fn call<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut D) -> R + Send + 'static,
    ) -> Result<R, ReaderError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.tx
            .send(Box::new(move |d| {
                let _ = done.send(f(d));
            }))
            .map_err(|_| {
                ReaderError::new(ReaderErrorKind::NoReader, format!("{}: stopped", self.name))
            })?;
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(ReaderError::new(
                ReaderErrorKind::NoReader,
                format!("{}: the device thread ended", self.name),
            )),
            Err(_) => Err(ReaderError::new(
                ReaderErrorKind::Timeout,
                format!("{}: no answer within {} ms", self.name, timeout.as_millis()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_and_a_hang_is_a_timeout() {
        let w = Worker::spawn("test-dev", || 0u32).unwrap();
        assert_eq!(
            w.call(Duration::from_secs(1), |d| {
                *d += 1;
                *d
            })
            .await
            .unwrap(),
            1
        );
        assert_eq!(
            w.call(Duration::from_secs(1), |d| {
                *d += 1;
                *d
            })
            .await
            .unwrap(),
            2
        );
        let e = w
            .call(Duration::from_millis(50), |_| {
                std::thread::sleep(Duration::from_millis(300));
            })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ReaderErrorKind::Timeout);
        assert_eq!(e.detail, "test-dev: no answer within 50 ms");
    }
}

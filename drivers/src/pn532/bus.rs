//! The PN532 on a polled bus: SPI (UM0701-02 §6.2.5) and I2C (§6.2.4).
//!
//! Both buses make the host poll: on SPI a status read (`SR`, 0x02) answers 0x01 once a
//! frame is ready, then a data read (`DR`, 0x03) clocks it out; on I2C every read starts
//! with a status byte, 0x01 when ready. The host does not know a frame's length in
//! advance, so it reads the header, then sends a NACK, which makes the PN532 send the same
//! frame again, and reads it whole.
//!
//! The PN532 shifts SPI bytes least significant bit first. The Raspberry Pi's SPI
//! controllers only shift MSB first, so [`SpiBus`] reverses the bits of every byte in
//! software unless the device says it handles LSB-first itself.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::Transport;
use super::frame::{self, Frame, FrameBuffer, FrameError};
use crate::reader::{ReaderError, ReaderErrorKind};

/// SPI data write.
pub const SPI_DW: u8 = 0x01;
/// SPI status read.
pub const SPI_SR: u8 = 0x02;
/// SPI data read.
pub const SPI_DR: u8 = 0x03;
/// The PN532's 7-bit I2C address.
pub const I2C_ADDRESS: u16 = 0x24;

/// The operations a polled bus offers the transport. Blocking: the transport calls them on
/// tokio's blocking pool.
pub trait Bus: Send + 'static {
    /// Writes one frame.
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()>;
    /// True when the PN532 has a frame ready.
    fn ready(&mut self) -> io::Result<bool>;
    /// Reads `n` bytes of the ready frame (from its start).
    fn read(&mut self, n: usize) -> io::Result<Vec<u8>>;
    /// Where the bus is.
    fn describe(&self) -> String;
}

/// A full-duplex SPI device: one transfer with chip select held for its length.
pub trait SpiDevice: Send + 'static {
    /// Shifts `write` out and returns what was shifted in (same length).
    fn transfer(&mut self, write: &[u8]) -> io::Result<Vec<u8>>;
    /// True when the controller itself shifts LSB first.
    fn lsb_first(&self) -> bool {
        false
    }
    /// Where the device is.
    fn describe(&self) -> String;
}

/// An I2C device at the PN532's address.
pub trait I2cDevice: Send + 'static {
    /// Writes bytes in one I2C write.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Reads `buf.len()` bytes in one I2C read.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<()>;
    /// Where the device is.
    fn describe(&self) -> String;
}

/// The PN532's SPI protocol over an [`SpiDevice`].
pub struct SpiBus<D> {
    dev: D,
}

impl<D: SpiDevice> SpiBus<D> {
    /// Wraps a device.
    pub fn new(dev: D) -> Self {
        SpiBus { dev }
    }

    fn order(&self, bytes: &mut [u8]) {
        if !self.dev.lsb_first() {
            for b in bytes {
                *b = b.reverse_bits();
            }
        }
    }

    fn xfer(&mut self, mut out: Vec<u8>) -> io::Result<Vec<u8>> {
        self.order(&mut out);
        let mut got = self.dev.transfer(&out)?;
        if got.len() != out.len() {
            return Err(io::Error::other("short SPI transfer"));
        }
        self.order(&mut got);
        Ok(got)
    }
}

impl<D: SpiDevice> Bus for SpiBus<D> {
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(frame.len() + 1);
        out.push(SPI_DW);
        out.extend_from_slice(frame);
        self.xfer(out).map(|_| ())
    }

    fn ready(&mut self) -> io::Result<bool> {
        let got = self.xfer(vec![SPI_SR, 0x00])?;
        Ok(got[1] & 0x01 != 0)
    }

    fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; n + 1];
        out[0] = SPI_DR;
        let got = self.xfer(out)?;
        Ok(got[1..].to_vec())
    }

    fn describe(&self) -> String {
        format!("spi:{}", self.dev.describe())
    }
}

/// The PN532's I2C protocol over an [`I2cDevice`].
pub struct I2cBus<D> {
    dev: D,
}

impl<D: I2cDevice> I2cBus<D> {
    /// Wraps a device.
    pub fn new(dev: D) -> Self {
        I2cBus { dev }
    }
}

impl<D: I2cDevice> Bus for I2cBus<D> {
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        self.dev.write(frame)
    }

    fn ready(&mut self) -> io::Result<bool> {
        let mut b = [0u8; 1];
        self.dev.read(&mut b)?;
        Ok(b[0] & 0x01 != 0)
    }

    fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n + 1];
        self.dev.read(&mut buf)?;
        if buf[0] & 0x01 == 0 {
            return Err(io::Error::other("PN532 not ready during read"));
        }
        Ok(buf[1..].to_vec())
    }

    fn describe(&self) -> String {
        format!("i2c:{}", self.dev.describe())
    }
}

/// A [`Transport`] over a polled [`Bus`].
pub struct BusTransport<B> {
    bus: Arc<Mutex<B>>,
    label: String,
    /// How often the ready status is polled.
    pub poll: Duration,
}

impl<B: Bus> BusTransport<B> {
    /// A transport over `bus`.
    pub fn new(bus: B) -> Self {
        let label = bus.describe();
        BusTransport {
            bus: Arc::new(Mutex::new(bus)),
            label,
            poll: Duration::from_millis(1),
        }
    }

    async fn with_bus<R: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut B) -> io::Result<R> + Send + 'static,
    ) -> Result<R, ReaderError> {
        let bus = self.bus.clone();
        let label = self.label.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut b = bus
                .lock()
                .map_err(|_| io::Error::other("bus lock poisoned"))?;
            f(&mut b)
        })
        .await;
        match joined {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(ReaderError::new(
                ReaderErrorKind::ReaderReset,
                format!("{label}: {what}: {e}"),
            )),
            Err(e) => Err(ReaderError::new(
                ReaderErrorKind::NoReader,
                format!("{label}: {what}: {e}"),
            )),
        }
    }

    async fn wait_ready(&self, deadline: Instant) -> Result<bool, ReaderError> {
        loop {
            if self.with_bus("status", |b| b.ready()).await? {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// The length of a whole frame from its first bytes, if they hold a frame header.
fn frame_len(head: &[u8]) -> Option<usize> {
    let s = head.windows(2).position(|w| w == [0x00, 0xFF])?;
    let h = &head[s + 2..];
    match h {
        [0xFF, 0xFF, m, l, ..] => Some(s + 2 + 5 + (usize::from(*m) << 8 | usize::from(*l)) + 2),
        [len, _lcs, ..] => Some(s + 2 + 2 + usize::from(*len) + 2),
        _ => None,
    }
}

impl<B: Bus> Transport for BusTransport<B> {
    async fn wake(&mut self) -> Result<(), ReaderError> {
        // SPI and I2C wake the PN532 with the chip select or the address; a status read
        // is enough to bring it up.
        self.with_bus("wake", |b| b.ready()).await.map(|_| ())
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ReaderError> {
        let frame = bytes.to_vec();
        self.with_bus("write", move |b| b.write_frame(&frame)).await
    }

    async fn receive(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Result<Frame, FrameError>>, ReaderError> {
        let deadline = Instant::now() + timeout;
        if !self.wait_ready(deadline).await? {
            return Ok(None);
        }
        let head = self.with_bus("read", |b| b.read(8)).await?;
        let mut rx = FrameBuffer::new();
        rx.push(&head);
        match rx.next_frame() {
            Some(Ok(f @ (Frame::Ack | Frame::Nack | Frame::Error))) => return Ok(Some(Ok(f))),
            Some(Ok(f)) => return Ok(Some(Ok(f))),
            Some(Err(e)) => return Ok(Some(Err(e))),
            None => {}
        }
        let Some(total) = frame_len(&head) else {
            return Ok(Some(Err(FrameError::LengthChecksum)));
        };
        if total > frame::MAX_DATA + 12 {
            return Ok(Some(Err(FrameError::TooLong)));
        }
        // Ask for the frame again and read it whole.
        let nack = frame::NACK.to_vec();
        self.with_bus("write", move |b| b.write_frame(&nack))
            .await?;
        if !self.wait_ready(deadline).await? {
            return Ok(None);
        }
        let all = self.with_bus("read", move |b| b.read(total)).await?;
        let mut rx = FrameBuffer::new();
        rx.push(&all);
        Ok(Some(
            rx.next_frame().unwrap_or(Err(FrameError::LengthChecksum)),
        ))
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}

/// rppal's SPI and I2C, for a PN532 wired to the Pi's header.
#[cfg(feature = "pi")]
pub mod pi {
    use std::io;

    use super::{I2C_ADDRESS, I2cDevice, SpiDevice};
    use crate::reader::{ReaderError, ReaderErrorKind};

    fn rppal_spi_error(path: &str, e: rppal::spi::Error) -> ReaderError {
        match e {
            rppal::spi::Error::Io(io) => {
                crate::device::open_error(std::path::Path::new(path), "PN532 SPI", &io)
            }
            other => ReaderError::new(ReaderErrorKind::NoReader, format!("{path}: {other}")),
        }
    }

    /// `/dev/spidevB.S` on rppal, mode 0, LSB first where the controller can.
    pub struct RppalSpi {
        spi: rppal::spi::Spi,
        lsb: bool,
        path: String,
    }

    impl RppalSpi {
        /// Opens bus `bus` (0-6), chip select `ss` (0-2) at `hz` (the PN532 takes up to
        /// 5 MHz; 1 MHz is safe on jumper wires).
        pub fn open(bus: u8, ss: u8, hz: u32) -> Result<Self, ReaderError> {
            use rppal::spi::{BitOrder, Bus, Mode, SlaveSelect};
            let path = format!("/dev/spidev{bus}.{ss}");
            let b = match bus {
                0 => Bus::Spi0,
                1 => Bus::Spi1,
                2 => Bus::Spi2,
                3 => Bus::Spi3,
                4 => Bus::Spi4,
                5 => Bus::Spi5,
                6 => Bus::Spi6,
                _ => {
                    return Err(ReaderError::new(
                        ReaderErrorKind::NoReader,
                        format!("no SPI bus {bus}"),
                    ));
                }
            };
            let s = match ss {
                0 => SlaveSelect::Ss0,
                1 => SlaveSelect::Ss1,
                2 => SlaveSelect::Ss2,
                _ => {
                    return Err(ReaderError::new(
                        ReaderErrorKind::NoReader,
                        format!("no SPI chip select {ss}"),
                    ));
                }
            };
            let spi = rppal::spi::Spi::new(b, s, hz, Mode::Mode0)
                .map_err(|e| rppal_spi_error(&path, e))?;
            let lsb = spi.set_bit_order(BitOrder::LsbFirst).is_ok();
            Ok(RppalSpi { spi, lsb, path })
        }
    }

    impl SpiDevice for RppalSpi {
        fn transfer(&mut self, write: &[u8]) -> io::Result<Vec<u8>> {
            let mut read = vec![0u8; write.len()];
            self.spi
                .transfer(&mut read, write)
                .map_err(|e| io::Error::other(e.to_string()))?;
            Ok(read)
        }
        fn lsb_first(&self) -> bool {
            self.lsb
        }
        fn describe(&self) -> String {
            self.path.clone()
        }
    }

    /// `/dev/i2c-N` on rppal, the PN532 at address 0x24.
    pub struct RppalI2c {
        i2c: rppal::i2c::I2c,
        path: String,
    }

    impl RppalI2c {
        /// Opens I2C bus `bus` (1 on the Pi's header).
        pub fn open(bus: u8) -> Result<Self, ReaderError> {
            let path = format!("/dev/i2c-{bus}");
            let mut i2c = rppal::i2c::I2c::with_bus(bus).map_err(|e| match e {
                rppal::i2c::Error::Io(io) => {
                    crate::device::open_error(std::path::Path::new(&path), "PN532 I2C", &io)
                }
                other => ReaderError::new(ReaderErrorKind::NoReader, format!("{path}: {other}")),
            })?;
            i2c.set_slave_address(I2C_ADDRESS)
                .map_err(|e| ReaderError::new(ReaderErrorKind::NoReader, format!("{path}: {e}")))?;
            Ok(RppalI2c { i2c, path })
        }
    }

    impl I2cDevice for RppalI2c {
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.i2c
                .write(bytes)
                .map(|_| ())
                .map_err(|e| io::Error::other(e.to_string()))
        }
        fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
            self.i2c
                .read(buf)
                .map(|_| ())
                .map_err(|e| io::Error::other(e.to_string()))
        }
        fn describe(&self) -> String {
            format!("{}@0x{I2C_ADDRESS:02X}", self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what was shifted out and shifts in scripted bytes, like a logic analyser.
    struct Wire {
        out: Vec<Vec<u8>>,
        replies: Vec<Vec<u8>>,
    }
    impl SpiDevice for Wire {
        fn transfer(&mut self, write: &[u8]) -> io::Result<Vec<u8>> {
            self.out.push(write.to_vec());
            let mut r = if self.replies.is_empty() {
                vec![0; write.len()]
            } else {
                self.replies.remove(0)
            };
            r.resize(write.len(), 0);
            Ok(r)
        }
        fn describe(&self) -> String {
            "wire".into()
        }
    }

    #[test]
    fn spi_bytes_go_out_lsb_first() {
        let mut bus = SpiBus::new(Wire {
            out: vec![],
            replies: vec![vec![0x00, 0x80]],
        });
        // The status byte 0x01 arrives LSB first: 0x80 on an MSB-first controller.
        assert!(bus.ready().unwrap());
        bus.write_frame(&frame::ACK).unwrap();
        // SR = 0x02 -> 0x40; DW = 0x01 -> 0x80; 0xFF stays 0xFF.
        assert_eq!(bus.dev.out[0], vec![0x40, 0x00]);
        assert_eq!(
            bus.dev.out[1],
            vec![0x80, 0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00]
        );
    }

    #[test]
    fn frame_length_from_header() {
        assert_eq!(
            frame_len(&[0x00, 0x00, 0xFF, 0x03, 0xFD, 0xD5, 0x41, 0x00]),
            Some(10)
        );
        assert_eq!(
            frame_len(&[0x00, 0x00, 0xFF, 0xFF, 0xFF, 0x01, 0x08, 0xF7]),
            Some(1 + 2 + 5 + 264 + 2)
        );
        assert_eq!(frame_len(&[0x00, 0x00, 0x00]), None);
    }
}

//! A PN532 that lives in the process: it speaks the PN532 host link (NXP UM0701-02) on one
//! end of a pseudo-terminal pair, at the UART's real byte rate, and presents virtual cards
//! on its field. The terminal's PN532 driver opens the other end like any serial port, so
//! the driver is tested byte for byte against real serial I/O, and a person can point
//! `kassa pay --reader pn532-uart:PATH` at it.
//!
//! Faults ([`Pn532Fault`]) make it behave as real readers do on a bad day: a frame with a
//! wrong checksum, garbage on the line, silence, a card that leaves mid-APDU, a reset in
//! the middle of an exchange.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drivers::pn532::cmd;
use drivers::pn532::frame::{self, Frame, FrameBuffer, TFI_HOST, TFI_PN532};
use drivers::{RfTiming, VirtualCard};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A fault to inject. Each applies once, counted from when it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pn532Fault {
    /// The next response frame goes out with a wrong data checksum (a NACK gets it again,
    /// correct).
    BadChecksum,
    /// Line noise: garbage bytes before the next frame.
    Garbage,
    /// The reader says nothing at all (unplugged, unpowered) for this long.
    NoAnswer(Duration),
    /// The card leaves the field before answering the `apdu`-th command APDU from now, and
    /// comes back after `back_after` (the cardholder taps again), or never.
    CardLost {
        /// Which APDU (1 = the next one).
        apdu: u32,
        /// When the card is presented again.
        back_after: Option<Duration>,
    },
    /// The reader resets while processing the `apdu`-th command APDU from now: the command
    /// is acknowledged, then nothing comes back, and the chip waits to be woken up and
    /// configured again.
    ResetMidApdu {
        /// Which APDU (1 = the next one).
        apdu: u32,
    },
    /// The card takes `delay` to answer the `apdu`-th command APDU from now (a slow chip, or
    /// one that keeps asking for waiting time extensions): the answer comes, late.
    SlowCard {
        /// Which APDU (1 = the next one).
        apdu: u32,
        /// How long the card computes.
        delay: Duration,
    },
}

impl std::str::FromStr for Pn532Fault {
    type Err = String;

    /// `bad-checksum`, `garbage`, `no-answer:MS`, `card-lost:N` (back after 1 s),
    /// `reset:N`, `slow:N:MS`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        let num = |what: &str| -> Result<u64, String> {
            arg.parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("fault {s:?}: {what} must be a number above 0"))
        };
        match name {
            "bad-checksum" => Ok(Pn532Fault::BadChecksum),
            "garbage" => Ok(Pn532Fault::Garbage),
            "no-answer" => Ok(Pn532Fault::NoAnswer(Duration::from_millis(num("MS")?))),
            "card-lost" => Ok(Pn532Fault::CardLost {
                apdu: num("N")? as u32,
                back_after: Some(Duration::from_secs(1)),
            }),
            "reset" => Ok(Pn532Fault::ResetMidApdu {
                apdu: num("N")? as u32,
            }),
            "slow" => {
                let bad = || format!("fault {s:?}: slow:N:MS needs two numbers above 0");
                let (n, ms) = arg.split_once(':').ok_or_else(bad)?;
                let n = n.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(bad)?;
                let ms = ms.parse::<u64>().ok().filter(|m| *m > 0).ok_or_else(bad)?;
                Ok(Pn532Fault::SlowCard {
                    apdu: n,
                    delay: Duration::from_millis(ms),
                })
            }
            _ => Err(format!(
                "unknown fault {s:?} (bad-checksum, garbage, no-answer:MS, card-lost:N, reset:N, slow:N:MS)"
            )),
        }
    }
}

/// What the simulator saw, for tests and the emulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pn532SimStats {
    /// Information frames received from the host.
    pub commands: u64,
    /// Command APDUs passed to a card.
    pub apdus: u64,
    /// NACKs received (frames sent again).
    pub nacks: u64,
    /// ACKs received while a command was running (aborts).
    pub aborts: u64,
    /// Wake-up sequences seen.
    pub wakeups: u64,
    /// Resets injected.
    pub resets: u64,
    /// Activations (InListPassiveTarget that found a card).
    pub activations: u64,
}

#[derive(Default)]
struct Shared {
    cards: Vec<Box<dyn VirtualCard>>,
    /// A card that left mid-transaction, with the time it comes back.
    away: Option<(Box<dyn VirtualCard>, Option<tokio::time::Instant>)>,
    faults: VecDeque<Pn532Fault>,
    stats: Pn532SimStats,
}

/// Controls a running simulator: puts cards on its field, injects faults. Cloneable.
#[derive(Clone, Default)]
pub struct Pn532SimHandle {
    shared: Arc<Mutex<Shared>>,
}

impl Pn532SimHandle {
    fn with<R>(&self, f: impl FnOnce(&mut Shared) -> R) -> R {
        let mut g = self
            .shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut g)
    }

    /// Places a card on the field (a second card makes a collision).
    pub fn tap(&self, card: Box<dyn VirtualCard>) {
        self.with(|s| s.cards.push(card));
    }

    /// Takes every card off the field.
    pub fn remove(&self) {
        self.with(|s| {
            s.cards.clear();
            s.away = None;
        });
    }

    /// Queues a fault.
    pub fn inject(&self, fault: Pn532Fault) {
        self.with(|s| s.faults.push_back(fault));
    }

    /// Counters so far.
    pub fn stats(&self) -> Pn532SimStats {
        self.with(|s| s.stats)
    }
}

/// How the simulated chip talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pn532SimConfig {
    /// The UART's bit rate: each byte takes 10 bits (8N1) in both directions. 0: instant.
    pub baud: u32,
    /// The radio and the card's processing time for each APDU.
    pub rf: RfTiming,
    /// How long an InListPassiveTarget that finds nothing takes.
    pub empty_poll: Duration,
    /// The virtual cardholder: the card leaves this long after the last command APDU...
    pub hold: Option<Duration>,
    /// ...and is tapped again after this long.
    pub away: Duration,
}

impl Default for Pn532SimConfig {
    fn default() -> Self {
        Pn532SimConfig {
            baud: 115_200,
            rf: RfTiming::default(),
            empty_poll: Duration::from_millis(5),
            hold: None,
            away: Duration::from_secs(1),
        }
    }
}

impl Pn532SimConfig {
    fn line_time(&self, bytes: usize) -> Duration {
        if self.baud == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(bytes as u64 * 10 * 1_000_000 / u64::from(self.baud))
        }
    }
}

/// The chip's state between frames.
struct Chip {
    cfg: Pn532SimConfig,
    handle: Pn532SimHandle,
    /// False after a reset until woken (0x55 on HSU).
    awake: bool,
    /// SAMConfiguration seen since the last reset.
    configured: bool,
    field: bool,
    /// Index into `cards` of the activated target.
    active: bool,
    /// Host command chaining (MI in Tg): the command so far.
    chain_in: Vec<u8>,
    /// Response chaining (MI in the status): what is left to send.
    chain_out: Vec<u8>,
    /// The last response frame, for a NACK.
    last: Option<Vec<u8>>,
    /// APDUs counted for faults.
    apdu_seq: u32,
    /// Pending faults with their target APDU number (absolute).
    lost_at: Option<(u32, Option<Duration>)>,
    reset_at: Option<u32>,
    slow_at: Vec<(u32, Duration)>,
    bad_checksum: bool,
    garbage: bool,
    silent_until: Option<tokio::time::Instant>,
    last_apdu: Option<tokio::time::Instant>,
}

/// What the chip does with one frame.
enum Reply {
    /// Nothing (asleep, silent).
    Nothing,
    /// ACK, then the response after `delay`.
    Respond(Vec<u8>, Duration),
    /// ACK, then nothing ever (a reset mid-command).
    AckOnly,
    /// Send raw bytes at once (ACK/NACK/error frames, resends).
    Raw(Vec<u8>),
}

impl Chip {
    fn new(cfg: Pn532SimConfig, handle: Pn532SimHandle) -> Self {
        Chip {
            cfg,
            handle,
            awake: true,
            configured: false,
            field: false,
            active: false,
            chain_in: Vec::new(),
            chain_out: Vec::new(),
            last: None,
            apdu_seq: 0,
            lost_at: None,
            reset_at: None,
            slow_at: Vec::new(),
            bad_checksum: false,
            garbage: false,
            silent_until: None,
            last_apdu: None,
        }
    }

    /// Takes queued faults from the handle.
    fn arm_faults(&mut self) {
        let faults: Vec<Pn532Fault> = self.handle.with(|s| s.faults.drain(..).collect());
        for f in faults {
            match f {
                Pn532Fault::BadChecksum => self.bad_checksum = true,
                Pn532Fault::Garbage => self.garbage = true,
                Pn532Fault::NoAnswer(d) => {
                    self.silent_until = Some(tokio::time::Instant::now() + d);
                }
                Pn532Fault::CardLost { apdu, back_after } => {
                    self.lost_at = Some((self.apdu_seq + apdu.max(1), back_after));
                }
                Pn532Fault::ResetMidApdu { apdu } => {
                    self.reset_at = Some(self.apdu_seq + apdu.max(1));
                }
                Pn532Fault::SlowCard { apdu, delay } => {
                    self.slow_at.push((self.apdu_seq + apdu.max(1), delay));
                }
            }
        }
    }

    fn reset(&mut self) {
        self.awake = false;
        self.configured = false;
        self.field = false;
        self.active = false;
        self.chain_in.clear();
        self.chain_out.clear();
        self.last = None;
        self.handle.with(|s| s.stats.resets += 1);
    }

    fn respond(&mut self, code: u8, data: &[u8]) -> Vec<u8> {
        let mut d = Vec::with_capacity(data.len() + 1);
        d.push(code.wrapping_add(1));
        d.extend_from_slice(data);
        frame::encode(TFI_PN532, &d).unwrap_or_else(|_| frame::ERROR.to_vec())
    }

    /// The virtual cardholder takes the card away once the terminal is done with it.
    fn cardholder_leaves(&mut self) {
        let (Some(hold), Some(last)) = (self.cfg.hold, self.last_apdu) else {
            return;
        };
        let now = tokio::time::Instant::now();
        if now < last + hold {
            return;
        }
        self.last_apdu = None;
        self.active = false;
        let back = now + self.cfg.away;
        self.handle.with(|s| {
            if !s.cards.is_empty() {
                let card = s.cards.remove(0);
                s.away = Some((card, Some(back)));
            }
        });
    }

    fn bring_back_cards(&mut self) {
        let now = tokio::time::Instant::now();
        self.handle.with(|s| {
            if let Some((_, Some(at))) = &s.away
                && *at <= now
                && let Some((mut card, _)) = s.away.take()
            {
                card.reinsert();
                s.cards.push(card);
            }
        });
    }

    fn on_frame(&mut self, f: Frame) -> Reply {
        if let Some(until) = self.silent_until {
            if tokio::time::Instant::now() < until {
                return Reply::Nothing;
            }
            self.silent_until = None;
        }
        match f {
            Frame::Nack => {
                self.handle.with(|s| s.stats.nacks += 1);
                match &self.last {
                    Some(l) => Reply::Raw(l.clone()),
                    None => Reply::Nothing,
                }
            }
            Frame::Ack | Frame::Error => Reply::Nothing,
            Frame::Info { tfi, data } => {
                if !self.awake {
                    return Reply::Nothing;
                }
                self.handle.with(|s| s.stats.commands += 1);
                if tfi != TFI_HOST || data.is_empty() {
                    return Reply::Raw(frame::ERROR.to_vec());
                }
                self.arm_faults();
                self.command(data[0], &data[1..])
            }
        }
    }

    fn command(&mut self, code: u8, p: &[u8]) -> Reply {
        let now = Duration::ZERO;
        match code {
            cmd::GET_FIRMWARE_VERSION => {
                Reply::Respond(self.respond(code, &[0x32, 0x01, 0x06, 0x07]), now)
            }
            cmd::SAM_CONFIGURATION => {
                self.configured = true;
                Reply::Respond(self.respond(code, &[]), now)
            }
            cmd::RF_CONFIGURATION => {
                if p.first() == Some(&0x01) {
                    self.field = p.get(1).is_some_and(|v| v & 1 != 0);
                    if !self.field {
                        self.active = false;
                    }
                }
                Reply::Respond(self.respond(code, &[]), now)
            }
            cmd::IN_RELEASE => {
                self.active = false;
                Reply::Respond(self.respond(code, &[0x00]), now)
            }
            cmd::DIAGNOSE if p.first() == Some(&0x06) => {
                self.cardholder_leaves();
                let present = self.active && self.handle.with(|s| !s.cards.is_empty());
                let status = if present { 0x00 } else { 0x01 };
                Reply::Respond(self.respond(code, &[status]), Duration::from_millis(1))
            }
            cmd::IN_LIST_PASSIVE_TARGET => self.list(code, p),
            cmd::IN_DATA_EXCHANGE => self.exchange(code, p),
            // A command this simulator (like a PN532 in the wrong state) does not take.
            _ => Reply::Raw(frame::ERROR.to_vec()),
        }
    }

    fn list(&mut self, code: u8, p: &[u8]) -> Reply {
        if !self.configured || p.len() < 2 {
            return Reply::Respond(self.respond(code, &[0x00]), self.cfg.empty_poll);
        }
        self.cardholder_leaves();
        self.bring_back_cards();
        // The PN532 switches the field on by itself to poll.
        self.field = true;
        let max = usize::from(p[0].clamp(1, 2));
        let type_a = p[1] == 0x00;
        let uids: Vec<Vec<u8>> = self
            .handle
            .with(|s| s.cards.iter().map(|c| c.uid()).collect());
        if !type_a || uids.is_empty() {
            return Reply::Respond(self.respond(code, &[0x00]), self.cfg.empty_poll);
        }
        let n = uids.len().min(max);
        let mut out = vec![n as u8];
        for (i, uid) in uids.iter().take(n).enumerate() {
            // Tg, SENS_RES 00 04, SEL_RES 20 (ISO/IEC 14443-4), NFCID1, ATS.
            out.extend_from_slice(&[i as u8 + 1, 0x00, 0x04, 0x20, uid.len() as u8]);
            out.extend_from_slice(uid);
            out.extend_from_slice(&[0x06, 0x75, 0x77, 0x81, 0x02, 0x80]);
        }
        self.active = true;
        self.chain_out.clear();
        self.chain_in.clear();
        self.handle.with(|s| {
            s.stats.activations += 1;
            for c in s.cards.iter_mut() {
                // Activation is a power-on reset for the card.
                c.reinsert();
            }
        });
        // Anticollision and RATS: about 5 ms on the air.
        Reply::Respond(self.respond(code, &out), Duration::from_millis(5))
    }

    fn exchange(&mut self, code: u8, p: &[u8]) -> Reply {
        let Some((&tg, data)) = p.split_first() else {
            return Reply::Raw(frame::ERROR.to_vec());
        };
        if !self.active || tg & 0x3F != 1 {
            // 0x27: not acceptable in this context (no target).
            return Reply::Respond(self.respond(code, &[0x27]), Duration::ZERO);
        }
        const CHUNK: usize = 262;
        // The rest of a chained answer.
        if data.is_empty() && !self.chain_out.is_empty() {
            let take = self.chain_out.len().min(CHUNK);
            let rest: Vec<u8> = self.chain_out.drain(..take).collect();
            let mi = if self.chain_out.is_empty() {
                0x00
            } else {
                0x40
            };
            let mut out = vec![mi];
            out.extend_from_slice(&rest);
            return Reply::Respond(self.respond(code, &out), self.cfg.line_time(0));
        }
        self.chain_in.extend_from_slice(data);
        if tg & 0x40 != 0 {
            return Reply::Respond(self.respond(code, &[0x00]), Duration::from_millis(1));
        }
        let capdu = std::mem::take(&mut self.chain_in);
        self.apdu_seq += 1;
        self.last_apdu = Some(tokio::time::Instant::now());
        self.handle.with(|s| s.stats.apdus += 1);
        if self.reset_at == Some(self.apdu_seq) {
            self.reset_at = None;
            self.reset();
            return Reply::AckOnly;
        }
        if let Some((at, back)) = self.lost_at
            && at == self.apdu_seq
        {
            self.lost_at = None;
            self.active = false;
            let back_at = back.map(|d| tokio::time::Instant::now() + d);
            self.handle.with(|s| {
                if !s.cards.is_empty() {
                    let card = s.cards.remove(0);
                    s.away = Some((card, back_at));
                }
            });
            // The card never answers: the PN532 gives up after its timeout (status 01).
            return Reply::Respond(self.respond(code, &[0x01]), Duration::from_millis(20));
        }
        let answer = self.handle.with(|s| {
            let card = s.cards.first_mut()?;
            let r = card.process(&capdu);
            let gone = !card.present();
            if gone {
                let card = s.cards.remove(0);
                s.away = Some((card, None));
            }
            Some((r, gone))
        });
        match answer {
            Some((r, _)) if !r.is_empty() => {
                let mut delay = self.cfg.rf.exchange(&capdu, r.len());
                let seq = self.apdu_seq;
                for (_, slow) in self.slow_at.iter().filter(|(at, _)| *at == seq) {
                    delay += *slow;
                }
                self.slow_at.retain(|(at, _)| *at != seq);
                let take = r.len().min(CHUNK);
                self.chain_out = r[take..].to_vec();
                let mi = if self.chain_out.is_empty() {
                    0x00
                } else {
                    0x40
                };
                let mut out = vec![mi];
                out.extend_from_slice(&r[..take]);
                Reply::Respond(self.respond(code, &out), delay)
            }
            // No card, or it left without answering: the PN532 times out (status 01).
            _ => {
                self.active = false;
                Reply::Respond(self.respond(code, &[0x01]), Duration::from_millis(20))
            }
        }
    }
}

/// Runs the chip on a byte stream until the stream ends.
///
/// Timing: the bytes travel through the pseudo-terminal at once, so the chip holds each
/// response back until the modelled time has passed: the command's bytes and the ACK on the
/// line at [`Pn532SimConfig::baud`], the radio and the card ([`Pn532SimConfig::rf`]), and the
/// response's own bytes. One timer per response keeps the timer's rounding (about a
/// millisecond) from adding up.
pub async fn serve<S>(
    mut port: S,
    handle: Pn532SimHandle,
    cfg: Pn532SimConfig,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut chip = Chip::new(cfg, handle.clone());
    let mut rx = FrameBuffer::new();
    let mut buf = [0u8; 512];
    // A response being prepared, and when it is due.
    let mut pending: Option<(Vec<u8>, tokio::time::Instant)> = None;
    loop {
        if let Some((_, due)) = &pending
            && *due <= tokio::time::Instant::now()
            && let Some((resp, _)) = pending.take()
        {
            send_response(&mut port, &mut chip, resp).await?;
            continue;
        }
        let due = pending.as_ref().map(|(_, at)| *at);
        tokio::select! {
            read = port.read(&mut buf) => {
                let n = match read {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    // No one has the other end open (EIO on a pty): wait for someone.
                    Err(e) if e.raw_os_error() == Some(5) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let bytes = &buf[..n];
                // The HSU wake-up: 0x55 brings a sleeping (or just reset) PN532 up.
                if bytes.contains(&0x55) {
                    if !chip.awake {
                        chip.awake = true;
                    }
                    handle.with(|s| s.stats.wakeups += 1);
                }
                rx.push(bytes);
                // When the last of these bytes would have arrived on a real line.
                let arrived = tokio::time::Instant::now() + cfg.line_time(n);
                while let Some(f) = rx.next_frame() {
                    let f = match f {
                        Ok(f) => f,
                        // A broken frame from the host: ask for it again.
                        Err(_) => {
                            if chip.awake {
                                write_now(&mut port, &frame::NACK).await?;
                            }
                            continue;
                        }
                    };
                    if f == Frame::Ack && pending.take().is_some() {
                        handle.with(|s| s.stats.aborts += 1);
                        continue;
                    }
                    match chip.on_frame(f) {
                        Reply::Nothing => {}
                        Reply::Raw(bytes) => write_now(&mut port, &bytes).await?,
                        Reply::AckOnly => {
                            write_now(&mut port, &frame::ACK).await?;
                            pending = None;
                        }
                        Reply::Respond(resp, delay) => {
                            write_now(&mut port, &frame::ACK).await?;
                            let due = arrived
                                + cfg.line_time(frame::ACK.len() + resp.len())
                                + delay;
                            pending = Some((resp, due));
                        }
                    }
                }
            }
            _ = sleep_until_opt(due) => {
                if let Some((resp, _)) = pending.take() {
                    send_response(&mut port, &mut chip, resp).await?;
                }
            }
        }
    }
}

async fn send_response<S: AsyncWrite + Unpin>(
    port: &mut S,
    chip: &mut Chip,
    mut resp: Vec<u8>,
) -> std::io::Result<()> {
    chip.last = Some(resp.clone());
    let mut out = Vec::new();
    if std::mem::take(&mut chip.garbage) {
        out.extend_from_slice(&[0x13, 0x37, 0xFF, 0x00, 0x42]);
    }
    if std::mem::take(&mut chip.bad_checksum) {
        let n = resp.len();
        resp[n - 2] ^= 0x5A;
    }
    out.extend_from_slice(&resp);
    write_now(port, &out).await
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn write_now<S: AsyncWrite + Unpin>(port: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    port.write_all(bytes).await?;
    port.flush().await
}

/// A simulator on a new pseudo-terminal pair.
pub struct Pn532Pty {
    /// The path the terminal opens (`/dev/pts/N`).
    pub path: PathBuf,
    /// Puts cards on the field, injects faults.
    pub handle: Pn532SimHandle,
    /// The running simulator.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Keeps the terminal's side open so that the chip's side never reads EIO between
    /// two users of the path.
    _keep: tokio_serial::SerialStream,
}

impl Pn532Pty {
    /// Opens a pseudo-terminal pair and runs a simulator on its master side.
    pub fn spawn(cfg: Pn532SimConfig) -> std::io::Result<Pn532Pty> {
        use tokio_serial::SerialPort;
        let (master, slave) = tokio_serial::SerialStream::pair().map_err(std::io::Error::other)?;
        let path = slave
            .name()
            .map(PathBuf::from)
            .ok_or_else(|| std::io::Error::other("pseudo-terminal without a name"))?;
        let handle = Pn532SimHandle::default();
        let task = tokio::spawn(serve(master, handle.clone(), cfg));
        Ok(Pn532Pty {
            path,
            handle,
            task,
            _keep: slave,
        })
    }
}

/// The chip seen from a polled bus (SPI or I2C): frames queue up and become readable when
/// their time has come; a NACK puts the last frame back.
struct BusChip {
    chip: Chip,
    rx: FrameBuffer,
    /// Frames to be read, each with the instant it is ready.
    out: VecDeque<(Vec<u8>, std::time::Instant)>,
}

impl BusChip {
    fn new(handle: Pn532SimHandle, cfg: Pn532SimConfig) -> Self {
        BusChip {
            chip: Chip::new(cfg, handle),
            rx: FrameBuffer::new(),
            out: VecDeque::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        // On SPI and I2C the chip select or the address wakes the PN532.
        self.chip.awake = true;
        self.rx.push(bytes);
        while let Some(f) = self.rx.next_frame() {
            let now = std::time::Instant::now();
            let f = match f {
                Ok(f) => f,
                Err(_) => {
                    self.out.push_back((frame::NACK.to_vec(), now));
                    continue;
                }
            };
            match self.chip.on_frame(f) {
                Reply::Nothing => {}
                Reply::Raw(b) => self.out.push_back((b, now)),
                Reply::AckOnly => self.out.push_back((frame::ACK.to_vec(), now)),
                Reply::Respond(mut resp, delay) => {
                    self.out.push_back((frame::ACK.to_vec(), now));
                    self.chip.last = Some(resp.clone());
                    if std::mem::take(&mut self.chip.bad_checksum) {
                        let n = resp.len();
                        resp[n - 2] ^= 0x5A;
                    }
                    self.out.push_back((resp, now + delay));
                }
            }
        }
    }

    fn ready(&self) -> bool {
        self.out
            .front()
            .is_some_and(|(_, at)| *at <= std::time::Instant::now())
    }

    /// The first `n` bytes of the ready frame, which is then gone (zeros after its end).
    fn read(&mut self, n: usize) -> Vec<u8> {
        let mut b = if self.ready() {
            self.out.pop_front().map(|(f, _)| f).unwrap_or_default()
        } else {
            Vec::new()
        };
        b.resize(n, 0x00);
        b
    }
}

/// A PN532 on SPI, for the driver's SPI transport: it reads the host's bytes least
/// significant bit first, as the chip does, so a host that forgets to reverse the bits of
/// an MSB-first controller talks nonsense to it.
pub struct Pn532Spi {
    chip: BusChip,
}

impl Pn532Spi {
    /// A chip with its own handle for cards and faults.
    pub fn new(handle: Pn532SimHandle, cfg: Pn532SimConfig) -> Self {
        Pn532Spi {
            chip: BusChip::new(handle, cfg),
        }
    }
}

impl drivers::pn532::bus::SpiDevice for Pn532Spi {
    fn transfer(&mut self, write: &[u8]) -> std::io::Result<Vec<u8>> {
        use drivers::pn532::bus::{SPI_DR, SPI_DW, SPI_SR};
        // An MSB-first controller puts bit 7 on the wire first; the PN532 takes it as bit 0.
        let wire: Vec<u8> = write.iter().map(|b| b.reverse_bits()).collect();
        let Some((&op, rest)) = wire.split_first() else {
            return Ok(Vec::new());
        };
        let mut answer = vec![0u8; write.len()];
        match op {
            SPI_DW => self.chip.write(rest),
            SPI_SR if answer.len() > 1 => answer[1] = u8::from(self.chip.ready()),
            SPI_DR => {
                let data = self.chip.read(rest.len());
                answer[1..].copy_from_slice(&data);
            }
            _ => {}
        }
        Ok(answer.iter().map(|b| b.reverse_bits()).collect())
    }

    fn describe(&self) -> String {
        "simulated PN532".into()
    }
}

/// A PN532 on I2C at 0x24, for the driver's I2C transport.
pub struct Pn532I2c {
    chip: BusChip,
}

impl Pn532I2c {
    /// A chip with its own handle for cards and faults.
    pub fn new(handle: Pn532SimHandle, cfg: Pn532SimConfig) -> Self {
        Pn532I2c {
            chip: BusChip::new(handle, cfg),
        }
    }
}

impl drivers::pn532::bus::I2cDevice for Pn532I2c {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.chip.write(bytes);
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        // Every read starts with the status byte; the frame follows only when it is ready.
        let ready = self.chip.ready();
        buf.fill(0);
        if let Some(first) = buf.first_mut() {
            *first = u8::from(ready);
        }
        if ready && buf.len() > 1 {
            let n = buf.len() - 1;
            let data = self.chip.read(n);
            buf[1..].copy_from_slice(&data);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "simulated PN532@0x24".into()
    }
}

//! `kassa bench`: measurements for docs/PERFORMANCE.md, never asserted in tests.
//!
//! `kassa bench host` measures the authorization round trip to the host simulator over mutual
//! TLS on loopback (a kept connection, a new connection with a full handshake, a new
//! connection resuming the TLS 1.3 session) and the simulator's throughput with many
//! terminals at once. The requests carry a real field 55 from a virtual card, so the host
//! verifies a real ARQC each time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acquirer::messages::{AuthorizationRequest, ProcessingCode};
use acquirer::{Link, LinkConfig};
use anyhow::Context;
use drivers::VirtualCard;
use emv::entry::{EntryPoint, Step};
use serde::Serialize;
use zeroize::Zeroizing;

/// Latency figures in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Transactions measured.
    pub n: usize,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: u64,
}

fn latency(mut v: Vec<Duration>) -> Latency {
    v.sort();
    let n = v.len().max(1);
    let us = |d: Duration| d.as_micros() as u64;
    Latency {
        n: v.len(),
        p50_us: v.get(n / 2).copied().map(us).unwrap_or(0),
        p99_us: v
            .get((n * 99 / 100).min(n - 1))
            .copied()
            .map(us)
            .unwrap_or(0),
        max_us: v.last().copied().map(us).unwrap_or(0),
        mean_us: v.iter().map(|d| us(*d)).sum::<u64>() / n as u64,
    }
}

/// Everything `kassa bench host` reports.
#[derive(Debug, Clone, Serialize)]
pub struct HostBench {
    /// One kept connection, sequential authorizations.
    pub reused_connection: Latency,
    /// A new TCP connection and full TLS 1.3 handshake (client certificate) per authorization.
    pub new_connection_full_handshake: Latency,
    /// A new TCP connection per authorization, resuming the TLS 1.3 session.
    pub new_connection_resumed: Latency,
    /// Concurrent terminals, each on its own kept connection.
    pub terminals: usize,
    /// Authorizations in the throughput run.
    pub throughput_transactions: usize,
    /// Authorizations per second the simulator answered.
    pub throughput_per_second: f64,
}

/// A request with a real cryptogram from the virtual Visa card.
fn sample_request() -> anyhow::Result<AuthorizationRequest> {
    let mut card = sim::builtin_card("visa").context("visa card")??;
    let (config, input) = emv::testdata::terminal_and_input(1234);
    let mut txn = EntryPoint::new(&config).start(input)?;
    let mut step = txn.begin();
    let outcome = loop {
        match step {
            Step::Transmit(cmd) => step = txn.on_response(&card.process(&cmd.to_bytes()?)),
            Step::Outcome(o) => break o,
        }
    };
    let c = outcome.card.as_ref().context("card data")?;
    let track2 = outcome
        .data
        .get(emv::tags::TRACK2)
        .and_then(emv::card::Track2::parse)
        .context("track 2")?;
    Ok(AuthorizationRequest {
        processing: ProcessingCode::Purchase,
        pan: Zeroizing::new(c.pan.as_ref().context("PAN")?.expose().to_string()),
        amount_minor: 1234,
        transmission: "1129120000".into(),
        stan: 1,
        local_time: "120000".into(),
        local_date: "1129".into(),
        expiry_yymm: c.expiry_yymm.clone().map(Zeroizing::new),
        pos_entry_mode: "072".into(),
        psn: c.psn,
        pos_condition: acquirer::messages::PosCondition::Normal,
        track2: Some(Zeroizing::new(track2.expose_digits(true))),
        terminal_id: "KASSA001".into(),
        merchant_id: "KASSA-BENCH".into(),
        currency: 978,
        icc_data: outcome.online_data.clone(),
    })
}

/// Runs the host benchmark: `n` authorizations per latency series, `terminals` concurrent
/// terminals doing `n` authorizations between them for the throughput figure.
pub async fn host(n: usize, terminals: usize) -> anyhow::Result<HostBench> {
    let pki = sim::DevPki::generate("Bench CA", "KASSA001")?;
    let host = sim::HostSim::start(
        "127.0.0.1:0",
        pki.host_server_config(&pki.ca_cert)?,
        sim::HostConfig {
            issuers: sim::IssuerKey::from_profiles(&sim::builtin_profiles()),
            dialect: &acquirer::iso8583::BCD87,
            fault: None,
            rules: sim::HostRules::default(),
        },
    )
    .await?;
    let cfg = LinkConfig {
        address: host.local_addr().to_string(),
        server_name: "127.0.0.1".into(),
        connect_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(5),
        dialect: &acquirer::iso8583::BCD87,
        allow_tls12: false,
    };
    let tls = Arc::new(acquirer::link::client_config(
        &pki.terminal_credentials(),
        false,
    )?);
    let base = sample_request()?;
    let message = |stan: u32, tid: &str| {
        let mut r = base.clone();
        r.stan = stan % 999_999 + 1;
        r.terminal_id = tid.to_string();
        r.to_message()
    };
    let mut stan = 0u32;

    // Warm up (and check the setup works).
    let mut link = Link::with_tls(cfg.clone(), tls.clone());
    for _ in 0..20 {
        stan += 1;
        link.exchange(&message(stan, "KASSA001")?).await?;
    }
    let mut reused = Vec::with_capacity(n);
    for _ in 0..n {
        stan += 1;
        let m = message(stan, "KASSA001")?;
        let t = Instant::now();
        link.exchange(&m).await?;
        reused.push(t.elapsed());
    }
    link.close().await;

    let mut full = Vec::with_capacity(n);
    for _ in 0..n {
        stan += 1;
        let m = message(stan, "KASSA001")?;
        // A fresh TLS configuration has an empty session cache: a full handshake.
        let fresh = Arc::new(acquirer::link::client_config(
            &pki.terminal_credentials(),
            false,
        )?);
        let t = Instant::now();
        let mut l = Link::with_tls(cfg.clone(), fresh);
        l.exchange(&m).await?;
        full.push(t.elapsed());
        l.close().await;
    }

    let mut resumed = Vec::with_capacity(n);
    for _ in 0..n {
        stan += 1;
        let m = message(stan, "KASSA001")?;
        let t = Instant::now();
        let mut l = Link::with_tls(cfg.clone(), tls.clone());
        l.exchange(&m).await?;
        resumed.push(t.elapsed());
        l.close().await;
    }

    let per = n.div_ceil(terminals.max(1));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..terminals {
        let cfg = cfg.clone();
        let tls = tls.clone();
        let msgs: Vec<_> = (0..per)
            .map(|i| message((t * per + i) as u32 + 500_000, &format!("T{t:07}")))
            .collect::<Result<_, _>>()?;
        tasks.push(tokio::spawn(async move {
            let mut l = Link::with_tls(cfg, tls);
            for m in msgs {
                l.exchange(&m).await?;
            }
            l.close().await;
            Ok::<_, acquirer::LinkError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = start.elapsed();
    let total = per * terminals;
    Ok(HostBench {
        reused_connection: latency(reused),
        new_connection_full_handshake: latency(full),
        new_connection_resumed: latency(resumed),
        terminals,
        throughput_transactions: total,
        throughput_per_second: total as f64 / elapsed.as_secs_f64(),
    })
}

/// One card's taps through the PN532 UART driver and the PN532 simulator.
#[derive(Debug, Clone, Serialize)]
pub struct TapFigures {
    /// The virtual card.
    pub card: String,
    /// The kernel's outcome (the same every tap).
    pub outcome: String,
    /// Command APDUs per tap.
    pub apdus: usize,
    /// Bytes of command and response APDUs per tap.
    pub apdu_bytes: usize,
    /// Card detected to the kernel's outcome ("remove card"), measured.
    pub card_in_field: Latency,
    /// What the UART and the radio alone take for these exchanges (the model: every PN532
    /// frame, ACKs included, at 10 bits per byte; ISO 14443 at 106 kbit/s with the card's
    /// processing time), in microseconds.
    pub modelled_us: u64,
}

/// Everything `kassa bench reader` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderBench {
    /// The UART's speed.
    pub baud: u32,
    /// Taps per card.
    pub taps: usize,
    /// Per card.
    pub cards: Vec<TapFigures>,
    /// SELECT PPSE through the PN532 driver and the simulated chip over an in-memory pipe
    /// (no UART, no radio time): the driver's and the chip model's own cost per APDU.
    pub pn532_in_memory_per_apdu_us: f64,
    /// The same over a pseudo-terminal at unlimited speed: adds the kernel's tty layer.
    pub pn532_pty_per_apdu_us: f64,
    /// The virtual card alone answering SELECT PPSE (the part that is not the driver).
    pub card_alone_per_apdu_us: f64,
}

/// The line time of one PN532 frame carrying `data` bytes (TFI and command code included),
/// plus the 6-byte ACK, at `baud` and 10 bits per byte.
fn frame_us(data: usize, baud: u32) -> u64 {
    let frame = data + 7 + if data > 254 { 3 } else { 0 };
    ((frame + 6) as u64) * 10 * 1_000_000 / u64::from(baud)
}

async fn drive<R: drivers::CardReader>(
    reader: &mut R,
    config: &emv::config::TerminalConfig,
    amount: u64,
) -> anyhow::Result<(String, Vec<(Vec<u8>, Vec<u8>)>, Duration)> {
    let (_, mut input) = emv::testdata::terminal_and_input(amount);
    input.unpredictable_number = [0x12, 0x34, 0x56, 0x78];
    reader
        .wait_for_card(Duration::from_secs(5))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let t0 = Instant::now();
    let mut txn = EntryPoint::new(config).start(input)?;
    let mut step = txn.begin();
    let mut log = Vec::new();
    let outcome = loop {
        match step {
            Step::Transmit(cmd) => {
                let c = cmd.to_bytes()?;
                let r = reader
                    .transceive(&c, Duration::from_secs(2))
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                step = txn.on_response(&r);
                log.push((c, r));
            }
            Step::Outcome(o) => break o,
        }
    };
    let t = t0.elapsed();
    reader
        .wait_for_removal(Duration::from_secs(5))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((format!("{:?}", outcome.kind), log, t))
}

/// How long `n` exchanges of `capdu` take on a reader with a card ready.
async fn time_apdus<R: drivers::CardReader>(
    r: &mut R,
    capdu: &[u8],
    n: u32,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for _ in 0..n {
        r.transceive(capdu, Duration::from_secs(1))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(t.elapsed())
}

/// Runs the reader benchmark: `taps` taps of every built-in card through the PN532 UART
/// driver on a pseudo-terminal, the simulator pacing bytes at `baud` with typical card
/// timing; then the per-APDU costs without any line or radio time.
pub async fn reader(
    cfg: &crate::config::Config,
    taps: usize,
    baud: u32,
) -> anyhow::Result<ReaderBench> {
    use drivers::pn532::uart::UartTransport;
    use drivers::{CardReader, Pn532, Pn532Config};
    use sim::pn532::{Pn532Pty, Pn532SimConfig};
    let config = cfg
        .terminal_config()
        .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
    let rf = drivers::RfTiming::typical();
    let mut cards = Vec::new();
    // One well-behaved card of each scheme (the others carry deliberate defects).
    for name in [
        "visa",
        "wallet",
        "mastercard",
        "unionpay",
        "jcb",
        "amex",
        "discover",
    ] {
        let pty = Pn532Pty::spawn(Pn532SimConfig {
            baud,
            rf,
            hold: Some(Duration::ZERO),
            away: Duration::ZERO,
            ..Default::default()
        })?;
        pty.handle
            .tap(Box::new(sim::builtin_card(name).context("card")??));
        let mut r = Pn532::new(
            UartTransport::open(&pty.path, baud)?,
            Pn532Config::default(),
        );
        r.init().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..taps {
            let (outcome, log, t) = drive(&mut r, &config, 1234).await?;
            times.push(t);
            last = Some((outcome, log));
        }
        let (outcome, log) = last.context("no taps")?;
        let modelled: u64 = log
            .iter()
            .map(|(c, resp)| {
                // InDataExchange: D4 40 Tg + C-APDU; D5 41 status + R-APDU.
                frame_us(c.len() + 3, baud)
                    + frame_us(resp.len() + 3, baud)
                    + rf.exchange(c, resp.len()).as_micros() as u64
            })
            .sum();
        cards.push(TapFigures {
            card: name.to_string(),
            outcome,
            apdus: log.len(),
            apdu_bytes: log.iter().map(|(c, r)| c.len() + r.len()).sum(),
            card_in_field: latency(times),
            modelled_us: modelled,
        });
    }
    const N: u32 = 2000;
    let select: &[u8] = b"\x00\xA4\x04\x00\x0E2PAY.SYS.DDF01\x00";
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(N);
    // The driver over an in-memory pipe.
    let (a, b) = tokio::io::duplex(4096);
    let handle = sim::pn532::Pn532SimHandle::default();
    handle.tap(Box::new(sim::builtin_card("visa").context("visa")??));
    let instant = Pn532SimConfig {
        baud: 0,
        rf: drivers::RfTiming::default(),
        empty_poll: Duration::ZERO,
        ..Default::default()
    };
    tokio::spawn(sim::pn532::serve(b, handle, instant));
    let mut r = Pn532::new(UartTransport::new(a, "memory"), Pn532Config::default());
    r.wait_for_card(Duration::from_secs(2))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mem = per(time_apdus(&mut r, select, N).await?);
    // Over a pseudo-terminal, unpaced.
    let pty = Pn532Pty::spawn(instant)?;
    pty.handle
        .tap(Box::new(sim::builtin_card("visa").context("visa")??));
    let mut r = Pn532::new(
        UartTransport::open(&pty.path, 115_200)?,
        Pn532Config::default(),
    );
    r.wait_for_card(Duration::from_secs(2))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pty_us = per(time_apdus(&mut r, select, N).await?);
    // The card alone.
    let mut card = sim::builtin_card("visa").context("visa")??;
    let t = Instant::now();
    for _ in 0..N {
        std::hint::black_box(card.process(std::hint::black_box(select)));
    }
    let alone = per(t.elapsed());
    Ok(ReaderBench {
        baud,
        taps,
        cards,
        pn532_in_memory_per_apdu_us: mem,
        pn532_pty_per_apdu_us: pty_us,
        card_alone_per_apdu_us: alone,
    })
}

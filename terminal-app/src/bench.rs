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
        pin: None,
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

/// One tap: waits for the card, runs the kernel through `reader`, times card detected to the
/// outcome, then waits for the card to leave (taking it off the simulated reader through
/// `remove` when there is no one to lift it).
async fn drive<R: drivers::CardReader>(
    reader: &mut R,
    config: &emv::config::TerminalConfig,
    amount: u64,
    remove: Option<&drivers::SimReaderHandle>,
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
    if let Some(handle) = remove {
        handle.remove();
    }
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
            let (outcome, log, t) = drive(&mut r, &config, 1234, None).await?;
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

/// The cards `kassa bench` taps: one well-behaved card of each scheme.
const BENCH_CARDS: [&str; 7] = [
    "visa",
    "wallet",
    "mastercard",
    "unionpay",
    "jcb",
    "amex",
    "discover",
];

/// One card's tap against the radio's physical limit.
#[derive(Debug, Clone, Serialize)]
pub struct TapBudget {
    /// The virtual card.
    pub card: String,
    /// The kernel's outcome.
    pub outcome: String,
    /// Offline data authentication as the kernel did it (`fdda_ok`, `cda_ok`, `not_performed`).
    pub oda: String,
    /// Command/response pairs.
    pub apdus: usize,
    /// C-APDU and R-APDU bytes.
    pub apdu_bytes: usize,
    /// ISO 14443-4 framing added (PCB, CID, CRC: 5 bytes each way per exchange).
    pub frame_overhead_bytes: usize,
    /// Air time of those bytes at 106 kbit/s, 9 bits per byte (type A parity), microseconds.
    pub air_us: u64,
    /// Frame waiting time: the card's processing (typical: 4 ms per plain command, 40 ms
    /// per cryptogram or signature), microseconds.
    pub card_processing_us: u64,
    /// Air time plus processing: the physical floor of this tap, microseconds.
    pub modelled_us: u64,
    /// Kassa's own CPU time for the whole kernel (Entry Point, the kernel, ODA when it
    /// runs, cryptogram request), the card's time excluded, median, microseconds.
    pub kernel_cpu_us: f64,
    /// `kernel_cpu_us` as a share of `modelled_us`, percent.
    pub cpu_share_percent: f64,
    /// Card detected to the kernel's outcome ("remove card") through the simulated reader
    /// pacing every exchange at the modelled rate.
    pub card_in_field: Latency,
}

/// Taps every bench card: the exchange against the model, the kernel's CPU time, and the
/// card-in-field time through the simulated reader at the modelled rate.
pub async fn taps(cfg: &crate::config::Config, taps: usize) -> anyhow::Result<Vec<TapBudget>> {
    use drivers::{SimReader, VirtualCard};
    let config = cfg
        .terminal_config()
        .map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
    let rf = drivers::RfTiming::typical();
    let mut out = Vec::new();
    for name in BENCH_CARDS {
        // The kernel alone, the card's answers taken out of the clock.
        let mut cpu = Vec::new();
        let mut log = Vec::new();
        let mut outcome = None;
        for _ in 0..200 {
            let mut card = sim::builtin_card(name).context("card")??;
            let (_, mut input) = emv::testdata::terminal_and_input(1234);
            input.unpredictable_number = [0x12, 0x34, 0x56, 0x78];
            log.clear();
            let mut spent = Duration::ZERO;
            let t = Instant::now();
            let mut txn = EntryPoint::new(&config).start(input)?;
            let mut step = txn.begin();
            spent += t.elapsed();
            let o = loop {
                match step {
                    Step::Transmit(cmd) => {
                        let t = Instant::now();
                        let c = cmd.to_bytes()?;
                        spent += t.elapsed();
                        let r = card.process(&c);
                        let t = Instant::now();
                        step = txn.on_response(&r);
                        spent += t.elapsed();
                        log.push((c, r));
                    }
                    Step::Outcome(o) => break o,
                }
            };
            cpu.push(spent);
            outcome = Some(o);
        }
        let o = outcome.context("no run")?;
        cpu.sort();
        let kernel_cpu_us = cpu[cpu.len() / 2].as_secs_f64() * 1e6;
        let air_us: u64 = log
            .iter()
            .map(|(c, r)| ((c.len() + r.len() + 10) as u64 * 9 * 1_000_000) / 106_000)
            .sum();
        let modelled_us: u64 = log
            .iter()
            .map(|(c, r)| rf.exchange(c, r.len()).as_micros() as u64)
            .sum();
        // Through the simulated reader at the modelled rate.
        let (mut reader, tap) = SimReader::new("bench");
        reader = reader.with_timing(rf);
        let mut times = Vec::new();
        for _ in 0..taps {
            let card: Box<dyn VirtualCard> = Box::new(sim::builtin_card(name).context("card")??);
            tap.tap(card);
            let (_, _, t) = drive(&mut reader, &config, 1234, Some(&tap)).await?;
            times.push(t);
        }
        out.push(TapBudget {
            card: name.to_string(),
            outcome: format!("{:?}", o.kind),
            oda: o.oda.name().to_string(),
            apdus: log.len(),
            apdu_bytes: log.iter().map(|(c, r)| c.len() + r.len()).sum(),
            frame_overhead_bytes: log.len() * 10,
            air_us,
            card_processing_us: modelled_us.saturating_sub(air_us),
            modelled_us,
            kernel_cpu_us,
            cpu_share_percent: kernel_cpu_us / modelled_us.max(1) as f64 * 100.0,
            card_in_field: latency(times),
        });
    }
    Ok(out)
}

/// Start-up: a new `kassa` process drawing the idle screen with the software renderer and
/// writing it (`kassa tool screenshot`), measured from spawn to exit.
#[derive(Debug, Clone, Serialize)]
pub struct StartBench {
    /// Spawn to exit (the PNG written), per run.
    pub process: Latency,
    /// Inside the process: the window created and the first frame drawn, median, ms.
    pub render_ms: f64,
}

/// Runs `kassa tool screenshot` `runs` times.
pub fn start_time(runs: usize) -> anyhow::Result<StartBench> {
    let exe = std::env::current_exe().context("the kassa executable")?;
    let dir = std::env::temp_dir().join(format!("kassa-bench-start-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let png = dir.join("idle.png");
    let mut times = Vec::new();
    let mut render = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let o = std::process::Command::new(&exe)
            .args(["--data-dir"])
            .arg(&dir)
            .args(["tool", "screenshot", "--json", "--out"])
            .arg(&png)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()?;
        times.push(t.elapsed());
        anyhow::ensure!(
            o.status.success(),
            "kassa tool screenshot failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
        render.push(v["render_ms"].as_f64().unwrap_or(0.0));
    }
    let _ = std::fs::remove_dir_all(&dir);
    render.sort_by(f64::total_cmp);
    Ok(StartBench {
        process: latency(times),
        render_ms: render.get(render.len() / 2).copied().unwrap_or(0.0),
    })
}

/// Memory over a long emulator run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MemoryBench {
    /// Transactions run (each a full sale: tap, kernel, mTLS authorization, journal).
    pub transactions: usize,
    /// How many were approved.
    pub approved: usize,
    /// Peak resident set size (VmHWM), kilobytes.
    pub peak_rss_kb: u64,
    /// Resident set size at the end (VmRSS), kilobytes.
    pub end_rss_kb: u64,
    /// Wall time of the run, seconds.
    pub seconds: f64,
}

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Runs `n` emulator sales in this process (virtual cards taken in turn, the host simulator
/// over mutual TLS, the journal in a scratch directory) and reports the memory it needed.
pub async fn memory_run(cfg: &crate::config::Config, n: usize) -> anyhow::Result<MemoryBench> {
    use crate::emulator::{EmulatorEnv, Paths};
    use crate::engine::{Engine, Overrides, TxnExtras, TxnKind};
    let dir = std::env::temp_dir().join(format!("kassa-bench-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let paths = Paths {
        data_dir: dir.clone(),
    };
    let t = Instant::now();
    let result = async {
        let env = EmulatorEnv::start(&paths, cfg, None).await?;
        let (reader, tap) = drivers::SimReader::new("bench");
        let journal = crate::journal::Journal::open(&paths.journal())?;
        let vault = crate::vault::Vault::open(&paths.device_key())?;
        let mut engine = Engine::new(
            cfg.clone(),
            drivers::AnyReader::Sim(reader),
            env.link(cfg)?,
            journal,
            vault,
        )?;
        let mut approved = 0;
        for i in 0..n {
            let name = BENCH_CARDS[i % BENCH_CARDS.len()];
            tap.tap(Box::new(env.card(name).context("card")??));
            let r = engine
                .run_full(
                    TxnKind::Sale,
                    1000 + (i as u64 % 4000),
                    TxnExtras::default(),
                    None,
                    Overrides::default(),
                )
                .await?;
            if r.approved() {
                approved += 1;
            }
            tap.remove();
        }
        engine.link.close().await;
        anyhow::Ok(approved)
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(MemoryBench {
        transactions: n,
        approved: result?,
        peak_rss_kb: proc_status_kb("VmHWM:"),
        end_rss_kb: proc_status_kb("VmRSS:"),
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// The memory run in a fresh `kassa` process, so nothing else this process did counts.
pub fn memory(n: usize) -> anyhow::Result<MemoryBench> {
    let exe = std::env::current_exe().context("the kassa executable")?;
    let o = std::process::Command::new(exe)
        .args([
            "bench",
            "memory",
            "--transactions",
            &n.to_string(),
            "--json",
        ])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()?;
    anyhow::ensure!(
        o.status.success(),
        "kassa bench memory failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(serde_json::from_slice(&o.stdout)?)
}

/// Everything `kassa bench` reports, with the budgets of docs/PERFORMANCE.md.
#[derive(Debug, Clone, Serialize)]
pub struct AllBench {
    /// Per card: the exchange against the radio's limit and Kassa's CPU time.
    pub taps: Vec<TapBudget>,
    /// The authorization round trip and the simulator's throughput.
    pub host: HostBench,
    /// Process start to the idle screen drawn.
    pub start: StartBench,
    /// A 1000-transaction emulator run.
    pub memory: MemoryBench,
    /// The budgets, each with the figure measured and whether it holds.
    pub budgets: Vec<Budget>,
}

/// One budget.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    /// What is budgeted.
    pub name: String,
    /// The limit, in `unit`.
    pub limit: f64,
    /// The figure measured, in `unit`.
    pub measured: f64,
    /// `percent`, `ms`, `MB`.
    pub unit: String,
    /// Whether the figure is within the limit.
    pub met: bool,
}

fn budget(name: &str, limit: f64, measured: f64, unit: &str) -> Budget {
    Budget {
        name: name.into(),
        limit,
        measured,
        unit: unit.into(),
        met: measured <= limit,
    }
}

/// Runs every benchmark (`kassa bench`).
pub async fn all(cfg: &crate::config::Config) -> anyhow::Result<AllBench> {
    let taps = taps(cfg, 20).await?;
    let host = host(1000, 32).await?;
    let start = tokio::task::spawn_blocking(|| start_time(5)).await??;
    let memory = tokio::task::spawn_blocking(|| memory(1000)).await??;
    let worst_share = taps.iter().map(|t| t.cpu_share_percent).fold(0.0, f64::max);
    let visa = taps
        .iter()
        .find(|t| t.card == "visa")
        .map(|t| t.card_in_field.p99_us as f64 / 1000.0)
        .unwrap_or(f64::MAX);
    let budgets = vec![
        budget(
            "kernel CPU time per tap, share of air time (worst card)",
            2.0,
            worst_share,
            "percent",
        ),
        budget("Visa card in field (p99)", 250.0, visa, "ms"),
        budget(
            "start to idle screen drawn (p50)",
            300.0,
            start.process.p50_us as f64 / 1000.0,
            "ms",
        ),
        budget(
            "peak resident memory, 1000 transactions",
            60.0,
            memory.peak_rss_kb as f64 / 1024.0,
            "MB",
        ),
    ];
    Ok(AllBench {
        taps,
        host,
        start,
        memory,
        budgets,
    })
}

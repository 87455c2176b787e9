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

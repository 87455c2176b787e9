//! `kassa readers` and `kassa reader-sim`: finding and checking card readers, and a
//! simulated PN532 on a pseudo-terminal for trying the hardware path without hardware.

use std::time::Duration;

use anyhow::Context as _;
use drivers::{CardReader, ReaderSpec};
use serde::Serialize;

use crate::config::Config;
use crate::{EXIT_OTHER, EXIT_USAGE};

/// The PN532 driver's timeouts from `[reader]`.
pub fn pn532_config(cfg: &Config) -> drivers::Pn532Config {
    drivers::Pn532Config {
        command_timeout: Duration::from_millis(cfg.reader.apdu_timeout_ms.clamp(100, 5_000)),
        ..drivers::Pn532Config::default()
    }
}

#[derive(Serialize)]
struct Row {
    spec: String,
    kind: String,
    note: String,
}

#[derive(Serialize)]
struct Listing {
    configured: String,
    features: Vec<&'static str>,
    readers: Vec<Row>,
}

#[derive(Serialize)]
struct Probe {
    spec: String,
    ok: bool,
    name: Option<String>,
    firmware: Option<String>,
    reason: Option<String>,
    message: Option<String>,
}

/// `kassa readers [--json] [--probe SPEC]`.
pub fn readers(cfg: &Config, json: bool, probe: Option<&str>) -> anyhow::Result<u8> {
    if let Some(p) = probe {
        let spec: ReaderSpec = match p.parse() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("kassa readers: {e}");
                return Ok(EXIT_USAGE);
            }
        };
        if spec == ReaderSpec::Sim {
            eprintln!("kassa readers: --probe is for hardware readers");
            return Ok(EXIT_USAGE);
        }
        let rt = crate::runtime()?;
        let result = rt.block_on(async {
            let mut r = drivers::open::open(&spec, pn532_config(cfg))?;
            let fw = r.probe().await?;
            Ok::<_, drivers::ReaderError>((r.name(), fw))
        });
        let out = match &result {
            Ok((name, fw)) => Probe {
                spec: spec.to_string(),
                ok: true,
                name: Some(name.clone()),
                firmware: fw.clone(),
                reason: None,
                message: None,
            },
            Err(e) => Probe {
                spec: spec.to_string(),
                ok: false,
                name: None,
                firmware: None,
                reason: Some(e.kind.code().into()),
                message: Some(e.to_string()),
            },
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            match &result {
                Ok((name, _)) => println!("{}: ok, {name}", out.spec),
                Err(e) => println!("{}: {e}", out.spec),
            }
        }
        return Ok(if out.ok { 0 } else { EXIT_OTHER });
    }
    let found = drivers::open::discover();
    let listing = Listing {
        configured: cfg
            .reader_spec()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string()),
        features: drivers::open::features(),
        readers: found
            .into_iter()
            .map(|f| Row {
                spec: f.spec,
                kind: f.kind.into(),
                note: f.note,
            })
            .collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
    } else {
        println!("configured: {}", listing.configured);
        println!("drivers:    {}", listing.features.join(", "));
        if listing.readers.is_empty() {
            println!("no serial ports, SPI or I2C devices or readers found");
        }
        for r in &listing.readers {
            println!("{:<8} {:<40} {}", r.kind, r.spec, r.note);
        }
    }
    Ok(0)
}

/// Options of `kassa reader-sim`.
pub struct ReaderSimArgs<'a> {
    pub card: &'a str,
    pub baud: u32,
    pub rf: &'a str,
    pub hold_ms: u64,
    pub away_ms: u64,
    pub faults: &'a [String],
    pub json: bool,
    pub for_secs: Option<u64>,
}

/// `kassa reader-sim`.
pub fn reader_sim(args: ReaderSimArgs<'_>) -> anyhow::Result<u8> {
    let card = match sim::builtin_card(args.card) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("kassa reader-sim: {e}");
            return Ok(EXIT_USAGE);
        }
        None => {
            let names: Vec<_> = sim::builtin_profiles()
                .into_iter()
                .map(|p| p.name)
                .collect();
            eprintln!(
                "kassa reader-sim: unknown card {:?} (known: {})",
                args.card,
                names.join(", ")
            );
            return Ok(EXIT_USAGE);
        }
    };
    let rf = match args.rf {
        "typical" => drivers::RfTiming::typical(),
        "instant" => drivers::RfTiming::default(),
        other => {
            eprintln!("kassa reader-sim: --rf {other:?}: typical or instant");
            return Ok(EXIT_USAGE);
        }
    };
    let mut faults = Vec::new();
    for f in args.faults {
        match f.parse::<sim::pn532::Pn532Fault>() {
            Ok(sim::pn532::Pn532Fault::CardLost { apdu, .. }) => {
                faults.push(sim::pn532::Pn532Fault::CardLost {
                    apdu,
                    back_after: Some(Duration::from_millis(args.away_ms)),
                })
            }
            Ok(f) => faults.push(f),
            Err(e) => {
                eprintln!("kassa reader-sim: {e}");
                return Ok(EXIT_USAGE);
            }
        }
    }
    let rt = crate::runtime()?;
    rt.block_on(async {
        let pty = sim::pn532::Pn532Pty::spawn(sim::pn532::Pn532SimConfig {
            baud: args.baud,
            rf,
            hold: Some(Duration::from_millis(args.hold_ms)),
            away: Duration::from_millis(args.away_ms),
            ..Default::default()
        })
        .context("opening a pseudo-terminal")?;
        pty.handle.tap(Box::new(card));
        for f in faults {
            pty.handle.inject(f);
        }
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "path": pty.path.display().to_string(),
                    "reader": format!("pn532-uart:{}@{}", pty.path.display(), args.baud.max(1)),
                    "card": args.card,
                })
            );
        } else {
            println!(
                "kassa reader-sim: PN532 with card {} on {} (kassa pay --reader pn532-uart:{})",
                args.card,
                pty.path.display(),
                pty.path.display()
            );
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        match args.for_secs {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        let s = pty.handle.stats();
        eprintln!(
            "kassa reader-sim: {} commands, {} APDUs, {} activations, {} NACKs, {} resets",
            s.commands, s.apdus, s.activations, s.nacks, s.resets
        );
        Ok(0)
    })
}

//! `kassa tms ...`: the operator's tools for configuration bundles and the terminal's side
//! (docs/CLI.md, docs/FLEET.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use serde_json::json;

use crate::config::{HttpsUrl, TmsKeySection, TrustedKey};
use crate::tms::{self, Local, SigningKey, State};
use crate::tms_http::{self, Fetched};
use crate::{EXIT_HOST, EXIT_OTHER, EXIT_USAGE};

/// Prints `v` as JSON, or `text` (built from it) for people.
fn out(json_out: bool, v: &serde_json::Value, text: impl FnOnce() -> String) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

fn refused(json_out: bool, what: &str, e: &tms::TmsError) -> u8 {
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "valid": false, "applied": false, "reason": e.code(), "error": e.to_string(),
            }))
            .unwrap_or_default()
        );
    }
    eprintln!("kassa tms {what}: {} ({})", e, e.code());
    EXIT_OTHER
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// `kassa tms keygen`.
pub fn keygen(out_file: &Path, id: &str, json_out: bool) -> anyhow::Result<u8> {
    if out_file.exists() {
        eprintln!(
            "kassa tms keygen: {} exists; a signing key is never overwritten",
            out_file.display()
        );
        return Ok(EXIT_USAGE);
    }
    let key = SigningKey::generate()?;
    key.save(out_file)?;
    let public = key.public_hex();
    out(
        json_out,
        &json!({"id": id, "public_key": public, "file": out_file.display().to_string()}),
        || {
            format!(
                "signing key written to {} (keep it offline; mode 0600)\n\
                 trust it on terminals with:\n\n[[tms.keys]]\nid = \"{id}\"\npublic_key = \"{public}\"",
                out_file.display()
            )
        },
    );
    Ok(0)
}

/// `kassa tms sign`.
pub fn sign(
    payload: &Path,
    key_file: &Path,
    id: &str,
    out_file: &Path,
    json_out: bool,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(payload)
        .with_context(|| format!("reading {}", payload.display()))?;
    let key = match SigningKey::load(key_file) {
        Ok(k) => k,
        Err(e) => return Ok(refused(json_out, "sign", &e)),
    };
    let bytes = match tms::sign(&text, &key, id) {
        Ok(b) => b,
        Err(e) => return Ok(refused(json_out, "sign", &e)),
    };
    let version = tms::parse(&bytes).map(|b| b.version).unwrap_or(0);
    std::fs::write(out_file, &bytes).with_context(|| format!("writing {}", out_file.display()))?;
    out(
        json_out,
        &json!({"version": version, "key_id": id, "bytes": bytes.len(),
                "file": out_file.display().to_string()}),
        || {
            format!(
                "bundle version {version} signed by {id}: {} ({} bytes)",
                out_file.display(),
                bytes.len()
            )
        },
    );
    Ok(0)
}

fn read_bundle(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `kassa tms inspect`.
pub fn inspect(path: &Path, json_out: bool) -> anyhow::Result<u8> {
    let raw = read_bundle(path)?;
    let b = match tms::parse(&raw) {
        Ok(b) => b,
        Err(e) => return Ok(refused(json_out, "inspect", &e)),
    };
    let keys: Vec<&str> = b.signing_keys.iter().map(|k| k.id.as_str()).collect();
    out(
        json_out,
        &json!({
            "version": b.version, "created": b.created, "description": b.description,
            "sections": b.sections, "signed_by": b.signed_by, "signing_keys": keys,
            "verified": false, "payload": b.payload(),
        }),
        || {
            format!(
                "bundle version {} (not verified: `kassa tms verify`)\ncreated: {}\ndescription: {}\n\
                 sets: {}\nsigned by: {}\nhands signing to: {}\n\n{}",
                b.version,
                b.created.as_deref().unwrap_or("-"),
                b.description.as_deref().unwrap_or("-"),
                b.sections.join(", "),
                b.signed_by.join(", "),
                if keys.is_empty() {
                    "-".into()
                } else {
                    keys.join(", ")
                },
                b.payload()
            )
        },
    );
    Ok(0)
}

/// `--public-key ID=HEX` arguments.
fn keys_from_args(args: &[String]) -> Result<Vec<TrustedKey>, String> {
    args.iter()
        .map(|a| {
            let (id, hex) = a
                .split_once('=')
                .ok_or_else(|| format!("--public-key {a:?}: ID=HEX"))?;
            TmsKeySection {
                id: id.into(),
                public_key: hex.into(),
                not_after: None,
            }
            .trusted()
            .map_err(|e| format!("--public-key {a:?}: {e}"))
        })
        .collect()
}

/// `kassa tms verify`: against `--public-key`s, or the keys this terminal trusts now.
pub fn verify(
    path: &Path,
    public_keys: &[String],
    trusted_now: impl FnOnce() -> Vec<TrustedKey>,
    json_out: bool,
) -> anyhow::Result<u8> {
    let trusted = if public_keys.is_empty() {
        trusted_now()
    } else {
        match keys_from_args(public_keys) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("kassa tms verify: {e}");
                return Ok(EXIT_USAGE);
            }
        }
    };
    let raw = read_bundle(path)?;
    let result = tms::parse(&raw).and_then(|b| b.verify(&trusted, today()).map(|id| (b, id)));
    match result {
        Ok((b, id)) => {
            out(
                json_out,
                &json!({"valid": true, "version": b.version, "signed_by": id}),
                || format!("valid: version {} signed by {id}", b.version),
            );
            Ok(0)
        }
        Err(e) => Ok(refused(json_out, "verify", &e)),
    }
}

/// `kassa tms apply`.
pub fn apply(data_dir: &Path, local: &Local, path: &Path, json_out: bool) -> anyhow::Result<u8> {
    let raw = read_bundle(path)?;
    match tms::apply(data_dir, local, &raw, today(), None) {
        Ok(a) => {
            out(
                json_out,
                &json!({"applied": true, "version": a.version, "previous": a.previous,
                        "signed_by": a.signed_by}),
                || {
                    format!(
                        "applied: version {} (was {}), signed by {}",
                        a.version, a.previous, a.signed_by
                    )
                },
            );
            Ok(0)
        }
        Err(e) => Ok(refused(json_out, "apply", &e)),
    }
}

/// `kassa tms status`.
pub fn status(data_dir: &Path, local: &Local, json_out: bool) -> anyhow::Result<u8> {
    let state = State::load(data_dir)?;
    let (_, in_force) = tms::effective(data_dir, local);
    let trusted: Vec<String> = state
        .trusted(&local.config)
        .into_iter()
        .map(|k| k.id)
        .collect();
    let v = json!({
        "version": in_force.unwrap_or(0),
        "signed_by": state.signed_by,
        "applied_at": state.applied_at,
        "url": local.config.tms.url,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "last_poll": state.last_poll,
        "last_error": state.last_error.as_ref().map(|(c, m)| json!({"reason": c, "error": m})),
        "trusted_keys": trusted,
    });
    out(json_out, &v, || {
        format!(
            "bundle in force: {}\nsigned by: {}\napplied: {}\nurl: {}\nlast poll: {}\nlast error: {}\ntrusted keys: {}",
            in_force.map_or("none".to_string(), |v| format!("version {v}")),
            state.signed_by.as_deref().unwrap_or("-"),
            state.applied_at.as_deref().unwrap_or("-"),
            local
                .config
                .tms
                .url
                .as_deref()
                .unwrap_or("- (no [tms] url)"),
            state.last_poll.as_deref().unwrap_or("-"),
            state
                .last_error
                .as_ref()
                .map_or("-".to_string(), |(c, m)| format!("{c}: {m}")),
            if trusted.is_empty() {
                "none".into()
            } else {
                trusted.join(", ")
            },
        )
    });
    Ok(0)
}

/// The TLS client for the TMS host: `[tms]` ca/certificate/key, else `[acquirer]`'s, else the
/// data directory's development PKI.
fn client_tls(
    data_dir: &Path,
    cfg: &crate::config::Config,
) -> anyhow::Result<rustls::ClientConfig> {
    let pick = |a: &Option<PathBuf>, b: &Option<PathBuf>| a.clone().or_else(|| b.clone());
    let (ca, cert, key) = (
        pick(&cfg.tms.ca, &cfg.acquirer.ca),
        pick(&cfg.tms.certificate, &cfg.acquirer.certificate),
        pick(&cfg.tms.key, &cfg.acquirer.key),
    );
    let creds = match (ca, cert, key) {
        (Some(ca), Some(cert), Some(key)) => acquirer::Credentials {
            ca_pem: std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?,
            cert_pem: std::fs::read(&cert)
                .with_context(|| format!("reading {}", cert.display()))?,
            key_pem: zeroize::Zeroizing::new(
                std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?,
            ),
        },
        _ => sim::DevPki::load(&data_dir.join("pki"))
            .context(
                "no [tms] or [acquirer] certificates, and no development PKI in the data directory",
            )?
            .terminal_credentials(),
    };
    Ok(acquirer::link::client_config(
        &creds,
        cfg.acquirer.allow_tls12,
    )?)
}

/// What one poll did.
#[derive(Debug)]
pub enum PollOutcome {
    /// 304: the bundle in force stays.
    NotModified {
        /// The version in force.
        version: u64,
    },
    /// A new bundle, applied.
    Applied {
        /// What went in.
        applied: Box<tms::Applied>,
        /// Bytes downloaded.
        bytes: usize,
    },
    /// A bundle came and was refused; the configuration in force stays.
    Refused {
        /// Why.
        error: tms::TmsError,
        /// Bytes downloaded.
        bytes: usize,
    },
    /// No answer to judge (network, TLS, HTTP status, truncated download).
    Failed(tms_http::FetchError),
}

/// A TMS endpoint: the URL (`[tms] KEY`), the name its certificate must carry, and the TLS
/// client.
fn endpoint(
    data_dir: &Path,
    cfg: &crate::config::Config,
    url: Option<&str>,
    key: &str,
) -> anyhow::Result<(HttpsUrl, String, rustls::ClientConfig)> {
    let text = url.with_context(|| format!("no [tms] {key} configured"))?;
    let url = HttpsUrl::parse(text).map_err(anyhow::Error::msg)?;
    let server_name = cfg
        .tms
        .server_name
        .clone()
        .unwrap_or_else(|| url.host.clone());
    Ok((url, server_name, client_tls(data_dir, cfg)?))
}

/// One conditional GET of `[tms] url` (validators only for the bundle in force), applying a
/// new bundle. The state records the poll and any failure.
pub async fn poll_once(data_dir: &Path, local: &Local) -> anyhow::Result<PollOutcome> {
    let cfg = &local.config;
    let (url, server_name, tls) = endpoint(data_dir, cfg, cfg.tms.url.as_deref(), "url")?;
    let mut state = State::load(data_dir)?;
    // Validators of the bundle in force, and the ETag of the last one refused: either
    // unchanged on the server is a 304.
    let etags: Vec<String> = [
        state.version.gt(&0).then(|| state.etag.clone()).flatten(),
        state.refused_etag.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let etag = (!etags.is_empty()).then(|| etags.join(", "));
    let modified = if state.version > 0 && state.refused_etag.is_none() {
        state.last_modified.clone()
    } else {
        None
    };
    let fetched = tms_http::fetch(
        &url,
        &server_name,
        tls,
        etag.as_deref(),
        modified.as_deref(),
        std::time::Duration::from_secs(cfg.tms.timeout_s),
    )
    .await;
    state.last_poll = Some(chrono::Utc::now().to_rfc3339());
    Ok(match fetched {
        Ok(Fetched::NotModified) => {
            state.last_error = None;
            state.save(data_dir)?;
            tracing::info!(version = state.version, "tms poll: not modified");
            PollOutcome::NotModified {
                version: state.version,
            }
        }
        Ok(Fetched::Body {
            bytes,
            etag,
            last_modified,
        }) => {
            state.save(data_dir)?;
            let n = bytes.len();
            match tms::apply(
                data_dir,
                local,
                &bytes,
                today(),
                Some((etag, last_modified)),
            ) {
                Ok(a) => PollOutcome::Applied {
                    applied: Box::new(a),
                    bytes: n,
                },
                Err(error) => PollOutcome::Refused { error, bytes: n },
            }
        }
        Err(e) => {
            state.last_error = Some((e.code().to_string(), e.to_string()));
            state.save(data_dir)?;
            tracing::warn!(reason = e.code(), error = %e, "tms poll failed");
            PollOutcome::Failed(e)
        }
    })
}

/// `kassa tms poll`: one poll; exit 0 (not modified or applied), 1 (refused), 3 (no answer).
pub fn poll(data_dir: &Path, local: &Local, json_out: bool) -> anyhow::Result<u8> {
    if local.config.tms.url.is_none() {
        eprintln!("kassa tms poll: no [tms] url configured");
        return Ok(EXIT_USAGE);
    }
    let rt = crate::runtime()?;
    let outcome = rt.block_on(poll_once(data_dir, local))?;
    let in_force = || State::load(data_dir).map(|s| s.version).unwrap_or(0);
    let (v, text, code) = match &outcome {
        PollOutcome::NotModified { version } => (
            json!({"result": "not_modified", "version": version, "bytes": 0}),
            format!("not modified: version {version} stays in force"),
            0,
        ),
        PollOutcome::Applied { applied: a, bytes } => (
            json!({"result": "applied", "version": a.version, "previous": a.previous,
                   "signed_by": a.signed_by, "bytes": bytes}),
            format!(
                "applied: version {} (was {}), signed by {}, {bytes} bytes",
                a.version, a.previous, a.signed_by
            ),
            0,
        ),
        PollOutcome::Refused { error, bytes } => (
            json!({"result": "refused", "reason": error.code(), "error": error.to_string(),
                   "version": in_force(), "bytes": bytes}),
            format!("bundle refused: {error} ({})", error.code()),
            EXIT_OTHER,
        ),
        PollOutcome::Failed(e) => (
            json!({"result": "failed", "reason": e.code(), "error": e.to_string(),
                   "version": in_force(), "bytes": 0}),
            format!("{e} ({})", e.code()),
            EXIT_HOST,
        ),
    };
    if code != 0 {
        eprintln!("kassa tms poll: {text}");
        if json_out {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    } else {
        out(json_out, &v, || text);
    }
    Ok(code)
}

/// The terminal's background poller (the payment screen and the emulator): polls every
/// `[tms] poll_s` with jitter, backing off after failures, and hands each applied bundle to
/// `applied`, which puts it in force between two transactions.
pub async fn agent(
    data_dir: PathBuf,
    local: Local,
    applied: tokio::sync::mpsc::UnboundedSender<tms::Applied>,
) {
    let mut failures = 0u32;
    // The first poll soon after start, spread like the others.
    let mut wait = tms_http::next_poll(60, 0, jitter());
    loop {
        tokio::time::sleep(wait).await;
        let polled = if local.config.tms.url.is_some() {
            poll_once(&data_dir, &local).await
        } else {
            Ok(PollOutcome::NotModified { version: 0 })
        };
        match polled {
            Ok(PollOutcome::Applied { applied: a, .. }) => {
                failures = 0;
                if applied.send(*a).is_err() {
                    return;
                }
            }
            Ok(PollOutcome::NotModified { .. }) => failures = 0,
            // A refused bundle or no answer: ask less often until it changes.
            Ok(PollOutcome::Refused { .. }) | Ok(PollOutcome::Failed(_)) => failures += 1,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "tms poll not possible");
            }
        }
        if local.config.tms.heartbeat_url.is_some() {
            // The configuration in force now, bundle included, as `kassa status` shows it.
            let (cfg, version) = tms::effective(&data_dir, &local);
            match heartbeat_once(&data_dir, &cfg, version.unwrap_or(0)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(reason = e.code(), error = %e, "heartbeat not sent"),
                Err(e) => tracing::warn!(error = %e, "heartbeat not possible"),
            }
        }
        wait = tms_http::next_poll(local.config.tms.poll_s, failures, jitter());
    }
}

/// A random number in 0..1 for the poll jitter.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

/// The health report of this terminal now.
pub fn health_now(
    data_dir: &Path,
    cfg: &crate::config::Config,
    bundle_version: u64,
) -> anyhow::Result<crate::health::Health> {
    let journal = crate::journal::Journal::open_read(&data_dir.join("journal.db"))?;
    crate::health::snapshot(cfg, data_dir, &journal, bundle_version)
}

/// Posts the health report to `[tms] heartbeat_url`.
pub async fn heartbeat_once(
    data_dir: &Path,
    cfg: &crate::config::Config,
    bundle_version: u64,
) -> anyhow::Result<Result<(u16, crate::health::Health), tms_http::FetchError>> {
    let (url, server_name, tls) = endpoint(
        data_dir,
        cfg,
        cfg.tms.heartbeat_url.as_deref(),
        "heartbeat_url",
    )?;
    let health = health_now(data_dir, cfg, bundle_version)?;
    let body = serde_json::to_vec(&health)?;
    let sent = tms_http::post(
        &url,
        &server_name,
        tls,
        &body,
        std::time::Duration::from_secs(cfg.tms.timeout_s),
    )
    .await;
    Ok(sent.map(|status| (status, health)))
}

/// `kassa tms heartbeat`: one heartbeat now. Exit 0 sent, 3 not.
pub fn heartbeat(data_dir: &Path, local: &Local, json_out: bool) -> anyhow::Result<u8> {
    let (cfg, version) = tms::effective(data_dir, local);
    let cfg = &cfg;
    if cfg.tms.heartbeat_url.is_none() {
        eprintln!("kassa tms heartbeat: no [tms] heartbeat_url configured");
        return Ok(EXIT_USAGE);
    }
    let rt = crate::runtime()?;
    match rt.block_on(heartbeat_once(data_dir, cfg, version.unwrap_or(0)))? {
        Ok((status, health)) => {
            out(
                json_out,
                &json!({"sent": true, "status": status, "health": health}),
                || format!("heartbeat sent (HTTP {status})"),
            );
            Ok(0)
        }
        Err(e) => {
            if json_out {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"sent": false, "reason": e.code(), "error": e.to_string()})
                    )
                    .unwrap_or_default()
                );
            }
            eprintln!("kassa tms heartbeat: {e} ({})", e.code());
            Ok(EXIT_HOST)
        }
    }
}

/// `kassa tms serve`.
pub fn serve(dir: &Path, certs: &Path, listen: &str, for_secs: Option<u64>) -> anyhow::Result<u8> {
    if !dir.is_dir() {
        eprintln!("kassa tms serve: {} is not a directory", dir.display());
        return Ok(EXIT_USAGE);
    }
    let pki = match sim::DevPki::load(certs) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "kassa tms serve: {e} (create one with `kassa certs --out {}`)",
                certs.display()
            );
            return Ok(EXIT_USAGE);
        }
    };
    let tls = pki.host_server_config(&pki.ca_cert)?;
    let rt = crate::runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        println!(
            "kassa tms serve listening on {} (mutual TLS), serving {}",
            listener.local_addr()?,
            dir.display()
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let stats = Arc::new(tms_http::ServeStats::default());
        let stop = async move {
            match for_secs {
                Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tms_http::serve(listener, tls, dir.to_path_buf(), stats.clone(), stop).await;
        eprintln!(
            "requests: {}, 200: {}, 304: {}, body bytes: {}, refused handshakes: {}",
            stats.requests.load(Ordering::Relaxed),
            stats.full.load(Ordering::Relaxed),
            stats.not_modified.load(Ordering::Relaxed),
            stats.body_bytes.load(Ordering::Relaxed),
            stats.refused.load(Ordering::Relaxed)
        );
        anyhow::Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::{EmulatorEnv, Paths};
    use crate::engine::{Engine, Overrides, TxnExtras, TxnKind};

    /// The acceptance point "a valid bundle applied between two transactions without a
    /// restart": one engine, one journal, one link; a bundle lowering Visa's contactless limit
    /// goes in force between two sales of the same amount, as the payment screen's engine
    /// task does it (`gui::engine_task`), and the second sale obeys it.
    #[test]
    fn a_bundle_goes_in_force_between_two_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            data_dir: dir.path().to_path_buf(),
        };
        let key = SigningKey::generate().unwrap();
        let text = format!(
            "[[tms.keys]]\nid = \"ops\"\npublic_key = \"{}\"\n",
            key.public_hex()
        );
        let path = dir.path().join("kassa.toml");
        let config = crate::config::Config::parse(&path, &text).unwrap();
        let local = Local {
            file: Some((path, text)),
            config: config.clone(),
        };
        let rt = crate::runtime().unwrap();
        rt.block_on(async {
            let env = EmulatorEnv::start(&paths, &config, None).await.unwrap();
            let (reader, tap) = drivers::SimReader::new("test");
            let journal = crate::journal::Journal::open(&paths.journal()).unwrap();
            let vault = crate::vault::Vault::open(&paths.device_key()).unwrap();
            let mut engine = Engine::new(
                config.clone(),
                drivers::AnyReader::Sim(reader),
                env.link(&config).unwrap(),
                journal,
                vault,
            )
            .unwrap();
            let sale = async |engine: &mut Engine<drivers::AnyReader>| {
                tap.tap(Box::new(env.card("visa").unwrap().unwrap()));
                let r = engine
                    .run_full(
                        TxnKind::Sale,
                        30_00,
                        TxnExtras::default(),
                        None,
                        Overrides::default(),
                    )
                    .await
                    .unwrap();
                tap.remove();
                r
            };
            let first = sale(&mut engine).await;
            assert_eq!(first.outcome, "approved", "{:?}", first.reason);
            // The operator's bundle: Visa contactless only up to 20.00, a new shop name.
            let payload = "[bundle]\nversion = 1\n\n[terminal]\nmerchant_name = \"Fleet Shop\"\n\n\
                 [[aids]]\naid = \"A0000000031010\"\nkernel = 3\ncontactless_limit = \"20.00\"\n";
            let raw = tms::sign(payload, &key, "ops").unwrap();
            let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
            let applied = tms::apply(dir.path(), &local, &raw, today, None).unwrap();
            engine.reconfigure(applied.config).unwrap();
            let second = sale(&mut engine).await;
            assert_eq!(
                second.outcome, "try_another_interface",
                "{:?}",
                second.reason
            );
            assert_eq!(second.stan, first.stan + 1, "the same engine and journal");
            assert_eq!(engine.config.terminal.merchant_name, "Fleet Shop");
            engine.link.close().await;
        });
    }
}

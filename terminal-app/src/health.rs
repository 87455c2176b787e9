//! The terminal's health: what `kassa status` shows and the heartbeat sends (docs/FLEET.md):
//! software and bundle versions, the reader and the printer with reason codes, what
//! store-and-forward still owes the host, the battery, and the last error. Nothing in it is
//! card data.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::journal::Journal;

/// A device and how it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// What is configured (`pn532-uart:/dev/ttyS0`, `serial:/dev/ttyUSB0`, `virtual`...).
    pub configured: String,
    /// `ok`, `not_checked` (a network device, or nothing to look at), or a reason code:
    /// `no_device` (the device file is missing), `permission` (its permission bits do
    /// not let this process read and write it), `config` (the configuration does not name one).
    pub status: &'static str,
}

/// The last thing that went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    /// `journal` (a transaction) or `tms` (a configuration bundle).
    pub source: &'static str,
    /// The reason code.
    pub reason: String,
    /// When (RFC 3339 or the journal's time).
    pub at: Option<String>,
}

/// Store-and-forward: what the host is still owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Queue {
    /// Advices (offline approvals, completions).
    pub advices: usize,
    /// Reversals.
    pub reversals: usize,
    /// QR payments whose outcome is unknown.
    pub unknown: usize,
}

/// One health report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// Terminal ID.
    pub terminal_id: String,
    /// Kassa's version.
    pub software_version: &'static str,
    /// The configuration bundle in force (0: none).
    pub bundle_version: u64,
    /// The card reader.
    pub reader: Device,
    /// The receipt printer.
    pub printer: Device,
    /// What the host is owed.
    pub queue: Queue,
    /// Battery charge, percent (null on mains or when unreadable).
    pub battery_pct: Option<u8>,
    /// The last error, if any.
    pub last_error: Option<LastError>,
    /// When the report was made (RFC 3339, UTC).
    pub time: String,
}

/// How a device file stands, without opening it (opening a serial port can reset what is
/// on it, and the payment screen may hold it): it exists, and its permission bits let this
/// process read and write it.
fn file_status(path: &Path) -> &'static str {
    let Ok(meta) = std::fs::metadata(path) else {
        return "no_device";
    };
    if may_read_write(&meta) {
        "ok"
    } else {
        "permission"
    }
}

/// The numbers after `key` on its line of `/proc/self/status`.
fn proc_ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether this process's user or groups have read and write permission on a file, from its
/// mode bits (`/proc/self/status` gives the effective user and group and the groups).
#[cfg(unix)]
fn may_read_write(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // Uid:/Gid: real, effective, saved, filesystem.
    let euid = proc_ids(&status, "Uid:").get(1).copied();
    let egid = proc_ids(&status, "Gid:").get(1).copied();
    let groups = proc_ids(&status, "Groups:");
    let mode = meta.mode();
    match euid {
        // Cannot tell: do not claim a problem.
        None => true,
        Some(0) => true,
        Some(u) if u == meta.uid() => mode & 0o600 == 0o600,
        Some(_) if egid == Some(meta.gid()) || groups.contains(&meta.gid()) => {
            mode & 0o060 == 0o060
        }
        Some(_) => mode & 0o006 == 0o006,
    }
}

#[cfg(not(unix))]
fn may_read_write(_: &std::fs::Metadata) -> bool {
    true
}

fn reader(cfg: &Config) -> Device {
    use drivers::ReaderSpec as S;
    match cfg.reader_spec() {
        Err(_) => Device {
            configured: cfg.reader.kind.clone(),
            status: "config",
        },
        Ok(spec) => {
            let configured = spec.to_string();
            let status = match &spec {
                S::Sim => "ok",
                S::Pn532Uart { port, .. } => file_status(port),
                S::Pn532Spi { bus, cs, .. } => {
                    file_status(&PathBuf::from(format!("/dev/spidev{bus}.{cs}")))
                }
                S::Pn532I2c { bus } => file_status(&PathBuf::from(format!("/dev/i2c-{bus}"))),
                S::Pcsc { .. } | S::Libnfc { .. } => "not_checked",
            };
            Device { configured, status }
        }
    }
}

fn printer(cfg: &Config) -> Device {
    let p = &cfg.printer;
    match p.kind.as_str() {
        "virtual" | "none" => Device {
            configured: p.kind.clone(),
            status: "ok",
        },
        "serial" | "usb" => match &p.port {
            Some(port) => Device {
                configured: format!("{}:{port}", p.kind),
                status: file_status(Path::new(port)),
            },
            None => Device {
                configured: p.kind.clone(),
                status: "config",
            },
        },
        other => Device {
            configured: match &p.address {
                Some(a) => format!("{other}:{a}"),
                None => other.to_string(),
            },
            status: "not_checked",
        },
    }
}

/// Builds a report from the configuration, the journal and the bundle state.
pub fn snapshot(
    cfg: &Config,
    data_dir: &Path,
    journal: &Journal,
    bundle_version: u64,
) -> anyhow::Result<Health> {
    let c = journal.counts()?;
    let queue = Queue {
        advices: c.advices,
        reversals: c.reversals,
        unknown: c.unknown,
    };
    let journal_error = journal.last_error()?.map(|(reason, at)| LastError {
        source: "journal",
        reason,
        at: Some(at),
    });
    let tms_error = crate::tms::State::load(data_dir)
        .ok()
        .and_then(|s| s.last_error.map(|(code, _)| (code, s.last_poll)))
        .map(|(reason, at)| LastError {
            source: "tms",
            reason,
            at,
        });
    // The newer of the two (both times are RFC 3339-like and sort as text).
    let last_error = match (journal_error, tms_error) {
        (Some(j), Some(t)) => Some(if t.at > j.at { t } else { j }),
        (j, t) => j.or(t),
    };
    let battery_pct = cfg
        .update
        .battery
        .as_deref()
        .and_then(crate::update::battery);
    Ok(Health {
        terminal_id: cfg.terminal.terminal_id.clone(),
        software_version: env!("CARGO_PKG_VERSION"),
        bundle_version,
        reader: reader(cfg),
        printer: printer(cfg),
        queue,
        battery_pct,
        last_error,
        time: chrono::Utc::now().to_rfc3339(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_report_reason_codes() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        assert_eq!(reader(&cfg).status, "ok");
        cfg.reader.kind = format!("pn532-uart:{}/ttyNONE", dir.path().display());
        let r = reader(&cfg);
        assert_eq!(r.status, "no_device", "{r:?}");
        assert!(r.configured.starts_with("pn532-uart:"), "{r:?}");
        let port = dir.path().join("ttyFAKE");
        std::fs::write(&port, b"").unwrap();
        cfg.reader.kind = format!("pn532-uart:{}", port.display());
        assert_eq!(reader(&cfg).status, "ok");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Read-only for its owner: unusable (unless this runs as root, who may anyway).
            std::fs::set_permissions(&port, std::fs::Permissions::from_mode(0o400)).unwrap();
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let root = proc_ids(&status, "Uid:").get(1) == Some(&0);
            assert_eq!(reader(&cfg).status, if root { "ok" } else { "permission" });
        }
        cfg.printer.kind = "serial".into();
        cfg.printer.port = None;
        assert_eq!(printer(&cfg).status, "config");
        cfg.printer.port = Some(dir.path().join("lp9").display().to_string());
        assert_eq!(printer(&cfg).status, "no_device");
        cfg.printer.kind = "tcp".into();
        cfg.printer.address = Some("192.0.2.1:9100".into());
        assert_eq!(printer(&cfg).status, "not_checked");
    }
}

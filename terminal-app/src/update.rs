//! When a software update may be installed and the terminal rebooted into it
//! (`kassa update check`, docs/FLEET.md). The A/B installation itself is RAUC's; the updater
//! on the image (`kassa-update`) asks this gate before it installs and again before it
//! reboots.
//!
//! The gate is closed outside `[update] window`, below `[update] min_battery_pct` (or when the
//! battery cannot be read), while the host is owed anything (store-and-forward advices,
//! reversals, QR payments whose outcome is unknown), and while a transaction is in progress.

use serde::Serialize;

use crate::config::{Config, Window};
use crate::journal::Journal;

/// What the gate looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inputs {
    /// Local time now, `HH:MM`.
    pub now: String,
    /// Battery charge, percent; `None` when mains powered (no `[update] battery`).
    pub battery_pct: Option<u8>,
    /// The battery file is configured but could not be read.
    pub battery_unreadable: bool,
    /// Messages owed to the host.
    pub owed: usize,
    /// Transactions between their start and their outcome.
    pub in_progress: usize,
}

/// The reasons the gate is closed, in a fixed order; empty: an update may go in now.
pub fn blocked_by(
    window: Window,
    min_battery_pct: u8,
    now: chrono::NaiveTime,
    i: &Inputs,
) -> Vec<&'static str> {
    let mut why = Vec::new();
    if !window.contains(now) {
        why.push("outside_window");
    }
    if i.battery_unreadable {
        why.push("battery_unknown");
    } else if i.battery_pct.is_some_and(|p| p < min_battery_pct) {
        why.push("battery_low");
    }
    if i.owed > 0 {
        why.push("queue_not_empty");
    }
    if i.in_progress > 0 {
        why.push("transaction_in_progress");
    }
    why
}

/// Reads the battery's charge from a sysfs `capacity` file.
pub fn battery(path: &std::path::Path) -> Option<u8> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .filter(|p| *p <= 100)
}

/// Looks at the terminal now: clock, battery, journal.
pub fn inputs(cfg: &Config, journal: &Journal, now: chrono::NaiveTime) -> anyhow::Result<Inputs> {
    let (battery_pct, battery_unreadable) = match &cfg.update.battery {
        Some(p) => match battery(p) {
            Some(v) => (Some(v), false),
            None => (None, true),
        },
        None => (None, false),
    };
    let c = journal.counts()?;
    let owed = c.advices + c.reversals + c.unknown;
    let in_progress = c.in_progress;
    Ok(Inputs {
        now: now.format("%H:%M").to_string(),
        battery_pct,
        battery_unreadable,
        owed,
        in_progress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> chrono::NaiveTime {
        chrono::NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    fn idle(battery: Option<u8>) -> Inputs {
        Inputs {
            now: String::new(),
            battery_pct: battery,
            battery_unreadable: false,
            owed: 0,
            in_progress: 0,
        }
    }

    #[test]
    fn windows_and_midnight() {
        let night = Window::parse("23:30-04:00").unwrap();
        assert!(
            night.contains(t("23:30")) && night.contains(t("00:10")) && night.contains(t("03:59"))
        );
        assert!(
            !night.contains(t("04:00"))
                && !night.contains(t("12:00"))
                && !night.contains(t("23:29"))
        );
        let day = Window::parse("02:00-05:00").unwrap();
        assert!(day.contains(t("02:00")) && !day.contains(t("05:00")) && !day.contains(t("01:59")));
        for bad in ["", "02:00", "25:00-03:00", "02:00-02:00", "2-3"] {
            assert!(Window::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_condition_closes_the_gate() {
        let w = Window::parse("02:00-05:00").unwrap();
        assert!(blocked_by(w, 30, t("03:00"), &idle(None)).is_empty());
        assert!(blocked_by(w, 30, t("03:00"), &idle(Some(30))).is_empty());
        assert_eq!(
            blocked_by(w, 30, t("09:00"), &idle(None)),
            ["outside_window"]
        );
        assert_eq!(
            blocked_by(w, 30, t("03:00"), &idle(Some(29))),
            ["battery_low"]
        );
        let mut i = idle(None);
        i.battery_unreadable = true;
        assert_eq!(blocked_by(w, 30, t("03:00"), &i), ["battery_unknown"]);
        let mut i = idle(Some(80));
        i.owed = 2;
        i.in_progress = 1;
        assert_eq!(
            blocked_by(w, 30, t("12:00"), &i),
            [
                "outside_window",
                "queue_not_empty",
                "transaction_in_progress"
            ]
        );
    }
}

//! Crash reports: a panic anywhere writes `<data>/crash/crash-<UTC time>-<pid>.txt` (mode
//! 0600) with the version, thread, place, message and backtrace, and prints one line naming
//! the file on standard error. The standard hook is replaced, not chained: it would print the
//! message unredacted.
//!
//! Panic messages are not supposed to carry card data, but a report is written by code that
//! cannot know, so card numbers in it keep only their first six and last four digits, as
//! receipts show a PAN ([`emv::util::mask_digit_runs`] says which spellings it recognises).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use emv::util::mask_digit_runs;

/// The text of a report: what panicked, where, and the backtrace, redacted.
pub fn report_text(
    when: chrono::DateTime<chrono::Utc>,
    thread: &str,
    location: &str,
    message: &str,
    backtrace: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "kassa {} crash report", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(s, "time: {}", when.format("%Y-%m-%dT%H:%M:%SZ"));
    let _ = writeln!(s, "thread: {thread}");
    let _ = writeln!(s, "at: {location}");
    let _ = writeln!(s, "message: {message}");
    let _ = writeln!(s, "\nbacktrace:\n{backtrace}");
    mask_digit_runs(&s)
}

/// Writes `text` to a new report file under `dir`, readable by the owner only.
pub fn write_report(
    dir: &Path,
    when: chrono::DateTime<chrono::Utc>,
    text: &str,
) -> std::io::Result<PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(
        "crash-{}-{}.txt",
        when.format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(path)
}

/// Installs the panic hook that writes reports under `<data_dir>/crash`.
pub fn install(data_dir: &Path) {
    let dir = data_dir.join("crash");
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "(unknown)".into());
        let thread = std::thread::current()
            .name()
            .unwrap_or("(unnamed)")
            .to_string();
        let backtrace = std::backtrace::Backtrace::force_capture().to_string();
        let now = chrono::Utc::now();
        let text = report_text(now, &thread, &location, &message, &backtrace);
        let short = mask_digit_runs(&message);
        match write_report(&dir, now, &text) {
            Ok(path) => eprintln!(
                "kassa: crashed at {location}: {short} (report: {})",
                path.display()
            ),
            Err(e) => eprintln!("kassa: crashed at {location}: {short} (no report written: {e})"),
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_digit_runs_keep_six_and_four() {
        assert_eq!(
            mask_digit_runs("pan 4761739001010119 ok"),
            "pan 476173******0119 ok"
        );
        // Track 2 as text, and a PAN inside a hex dump of a record.
        assert_eq!(
            mask_digit_runs("4761739001010119D25122010000000000000F"),
            "476173******0119D251220**********0000F"
        );
        assert_eq!(
            mask_digit_runs("70135A084761739001010119"),
            "70135A084761********0119"
        );
        // Amounts, STANs and dates stay; so do other scripts.
        assert_eq!(
            mask_digit_runs("12.34 000017 2026-11-30 日本"),
            "12.34 000017 2026-11-30 日本"
        );
        assert_eq!(mask_digit_runs("12345678901"), "12345678901");
        assert_eq!(mask_digit_runs("123456789012"), "123456**9012");
    }

    #[test]
    fn a_report_names_the_place_and_hides_the_pan() {
        let when = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
        let text = report_text(
            when,
            "main",
            "terminal-app/src/engine.rs:42",
            "bad record for 5413330089010434",
            "0: kassa::main",
        );
        assert!(text.contains("at: terminal-app/src/engine.rs:42"), "{text}");
        assert!(text.contains("541333******0434"), "{text}");
        assert!(!text.contains("5413330089010434"), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = write_report(dir.path(), when, &text).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
    }
}

//! Helpers for tests that run `kassa` against a separate `kassa host-sim` process over mutual
//! TLS on loopback, with its ledger on disk.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const KASSA: &str = env!("CARGO_BIN_EXE_kassa");

/// A development PKI made by `kassa certs`.
pub fn certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    let o = Command::new(KASSA)
        .args(["certs", "--out", certs.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    certs
}

/// A running `kassa host-sim`.
pub struct Host {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Host {
    /// Starts the simulator on `listen` with its ledger in `ledger` and optional rules.
    pub fn start(certs: &Path, ledger: &Path, listen: &str, rules: Option<&Path>) -> Host {
        let mut cmd = host_command(certs, ledger, listen);
        if let Some(r) = rules {
            cmd.args(["--rules", r.to_str().unwrap()]);
        }
        let (child, addr) = spawn_announcing(&mut cmd);
        Host { child, addr }
    }

    /// Like [`Host::start`] with no rules, logging at trace level (`KASSA_LOG=trace`) to the
    /// file `log`.
    pub fn start_logging(certs: &Path, ledger: &Path, listen: &str, log: &Path) -> Host {
        let mut cmd = host_command(certs, ledger, listen);
        cmd.env("KASSA_LOG", "trace")
            .stderr(std::fs::File::create(log).unwrap());
        let (child, addr) = spawn_announcing(&mut cmd);
        Host { child, addr }
    }

    /// Stops it (SIGKILL: the ledger file is rewritten atomically after every request).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn host_command(certs: &Path, ledger: &Path, listen: &str) -> Command {
    let mut cmd = Command::new(KASSA);
    cmd.args([
        "host-sim",
        "--listen",
        listen,
        "--certs",
        certs.to_str().unwrap(),
        "--ledger",
        ledger.to_str().unwrap(),
    ]);
    cmd
}

/// Spawns `cmd` (a server) with its stdout piped and reads the first line, which names the
/// loopback address it listens on.
pub fn spawn_announcing(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, addr)
}

/// A running `kassa reader-sim`: a simulated PN532 with a virtual card on a pseudo-terminal,
/// the card away for 300 ms when it leaves.
pub struct ReaderSim {
    child: Child,
    /// `pn532-uart:/dev/pts/N@BAUD`.
    pub spec: String,
}

impl ReaderSim {
    /// Starts it with `card` and the `--fault`s.
    pub fn start(card: &str, faults: &[&str]) -> ReaderSim {
        let mut cmd = Command::new(KASSA);
        cmd.args(["reader-sim", "--card", card, "--json", "--for-secs", "60"]);
        cmd.args(["--away-ms", "300"]);
        for f in faults {
            cmd.args(["--fault", f]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        ReaderSim {
            child,
            spec: v["reader"].as_str().unwrap().to_string(),
        }
    }
}

impl Drop for ReaderSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A terminal configuration that talks to `addr` with the PKI in `certs`, plus `extra` TOML.
pub fn config(dir: &Path, certs: &Path, addr: &str, extra: &str) -> PathBuf {
    let p = dir.join("kassa.toml");
    let c = |f: &str| certs.join(f).display().to_string();
    std::fs::write(
        &p,
        format!(
            "{extra}\n[acquirer]\nsimulator = false\naddress = \"{addr}\"\nserver_name = \"127.0.0.1\"\n\
             ca = \"{}\"\ncertificate = \"{}\"\nkey = \"{}\"\nconnect_timeout_ms = 2000\n\
             response_timeout_ms = 3000\n",
            c("ca.pem"),
            c("terminal.pem"),
            c("terminal.key")
        ),
    )
    .unwrap();
    p
}

/// Runs `kassa --data-dir DATA --config CFG ARGS`.
pub fn kassa(data: &Path, cfg: &Path, args: &[&str]) -> Output {
    kassa_with(data, Some(cfg), args)
}

/// Runs `kassa --data-dir DATA [--config CFG] ARGS` (no configuration: the built-in defaults,
/// `$KASSA_CONFIG` ignored).
pub fn kassa_with(data: &Path, cfg: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(KASSA);
    c.arg("--data-dir").arg(data);
    if let Some(cfg) = cfg {
        c.arg("--config").arg(cfg);
    }
    c.args(args)
        .env_remove("KASSA_CONFIG")
        .env_remove("KASSA_TEST_PAUSE_AT")
        .output()
        .unwrap()
}

/// A run's standard output, parsed as JSON (a failure shows both streams).
pub fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// [`kassa`] with `--json`, parsed.
pub fn kassa_json(data: &Path, cfg: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    json_of(&kassa(data, cfg, &a))
}

/// Runs `kassa ARGS` until it reaches pause point `point` and returns it there, alive (the
/// caller kills it). Panics if it never gets there within a minute.
pub fn pause_at(data: &Path, cfg: &Path, args: &[&str], point: &str) -> Child {
    let mut child = Command::new(KASSA)
        .arg("--data-dir")
        .arg(data)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("KASSA_TEST_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let marker = format!("KASSA_PAUSED {point}");
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line == marker => return child,
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("{args:?} never reached {point} ({status:?}): {seen:?}");
            }
        }
    }
}

/// Runs `kassa ARGS` until it reaches pause point `point`, then kills it with SIGKILL.
pub fn kill_at(data: &Path, cfg: &Path, args: &[&str], point: &str) {
    let mut child = pause_at(data, cfg, args, point);
    // SIGKILL (std's Child::kill on Unix): no destructor, no flush, no goodbye.
    child.kill().unwrap();
    let _ = child.wait();
}

/// The simulator's ledger.
pub fn ledger(path: &Path) -> Vec<Value> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Every journal row, oldest first.
pub fn journal(data: &Path, cfg: &Path) -> Vec<Value> {
    let mut rows = kassa_json(data, cfg, &["journal", "list", "--limit", "100000"]);
    let rows = rows.as_array_mut().unwrap();
    rows.reverse();
    rows.clone()
}

/// Checks that the terminal's journal and the host's ledger agree: every approved
/// transaction is approved exactly once at the host with the same amount, nothing the
/// terminal does not count as approved is approved at the host, and nothing is still owed.
pub fn assert_agree(rows: &[Value], ledger: &[Value]) {
    let approved_at_host = |stan: u64| -> Vec<&Value> {
        ledger
            .iter()
            .filter(|e| {
                e["stan"].as_str().and_then(|s| s.parse::<u64>().ok()) == Some(stan)
                    && e["status"] == "approved"
                    && matches!(e["mti"].as_u64(), Some(100 | 200 | 220 | 221))
            })
            .collect()
    };
    for r in rows {
        let id = r["id"].as_i64().unwrap();
        let state = r["state"].as_str().unwrap();
        assert!(
            !matches!(state, "reversal_pending" | "void_pending" | "authorising"),
            "row {id} still {state}: {r}"
        );
        assert_ne!(r["advice"], "pending", "row {id} still owes an advice: {r}");
        assert_ne!(
            r["reversal"], "pending",
            "row {id} still owes a reversal: {r}"
        );
        let stan = r["stan"].as_u64().unwrap();
        if stan == 0 {
            continue;
        }
        let host = approved_at_host(stan);
        if matches!(state, "approved" | "offline_approved") {
            assert_eq!(
                host.len(),
                1,
                "row {id} ({state}) is approved {} times at the host: {r} {host:?}",
                host.len()
            );
            assert_eq!(
                host[0]["amount_minor"], r["amount_minor"],
                "row {id}: amounts differ"
            );
        } else {
            assert!(
                host.is_empty(),
                "row {id} is {state} but approved at the host: {host:?}"
            );
        }
    }
    for e in ledger {
        if e["status"] == "approved" && matches!(e["mti"].as_u64(), Some(100 | 200 | 220 | 221)) {
            let stan: u64 = e["stan"].as_str().unwrap().parse().unwrap();
            assert!(
                rows.iter().any(|r| r["stan"].as_u64() == Some(stan)
                    && matches!(r["state"].as_str(), Some("approved" | "offline_approved"))),
                "the host approved STAN {stan}, which the terminal does not count: {e}"
            );
        }
    }
}

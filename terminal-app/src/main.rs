//! `kassa`: the Kassa payment terminal.
//!
//! Exit codes (docs/CLI.md): 0 when a transaction reached an outcome (approved or not) or a
//! tool succeeded; 2 for bad input or usage; 3 when the host could not be reached (the journal
//! says whether a reversal is pending); 1 for anything else.
#![forbid(unsafe_code)]

mod bench;
mod config;
mod crash;
mod emulator;
mod engine;
#[cfg(any(feature = "desktop", feature = "device"))]
mod gui;
#[cfg(any(feature = "desktop", feature = "device"))]
mod gui_pin;
mod health;
mod journal;
mod keys;
mod notify;
mod ops;
mod paper;
mod pinpad;
mod print;
mod qrpay;
mod readers;
mod receipt;
mod report;
#[cfg(any(feature = "desktop", feature = "device"))]
mod sound;
mod tms;
mod tms_cli;
mod tms_http;
mod tool;
mod trace;
mod update;
mod vault;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use drivers::{RecordingReader, ReplayReader, SimReader};

use crate::config::Config;
use crate::emulator::{EmulatorEnv, Fault, Paths};
use crate::engine::{Engine, Failure, TxnKind};
use crate::journal::Journal;

/// Exit code: bad input or usage.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: the host could not be reached.
pub(crate) const EXIT_HOST: u8 = 3;
/// Exit code: anything else.
pub(crate) const EXIT_OTHER: u8 = 1;

#[derive(Debug, Parser)]
#[command(name = "kassa", version, about = "Kassa contactless payment terminal")]
struct Cli {
    /// Data directory (journal, PKI). Default: $KASSA_DATA_DIR or the user's data directory.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file. Default: $KASSA_CONFIG or <config dir>/kassa/kassa.toml if present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// More log output on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PayType {
    Sale,
    Refund,
    Preauth,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportKind {
    /// Running totals of the open batch.
    X,
    /// Batch close: reconciliation with the host (0500), then a new batch.
    Z,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open the terminal in a desktop window with virtual cards and the host simulator.
    Emulator {
        /// Quit this long after the idle screen is shown (a smoke test, e.g. under Xvfb).
        #[arg(long, value_name = "MS")]
        quit_after_ms: Option<u64>,
    },
    /// The device's payment screen, full screen (started by systemd): the configured reader,
    /// printer and lights, no emulator panels. A configuration that cannot be loaded is shown
    /// on the screen instead of exiting (docs/DEVICE.md).
    Run {
        /// Quit this long after the screen is shown (a smoke test).
        #[arg(long, value_name = "MS")]
        quit_after_ms: Option<u64>,
    },
    /// Run one headless transaction in emulator mode with a virtual card.
    Pay {
        /// Amount in the terminal's currency, e.g. 12.34.
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// Virtual card name (see `kassa cards`).
        #[arg(
            long,
            required_unless_present_any = ["card_file", "reader", "qr", "qr_code", "scan"],
            conflicts_with = "card_file"
        )]
        card: Option<String>,
        /// Pay by QR: the terminal shows a dynamic EMVCo code for the amount and waits for
        /// the host to say the customer's wallet paid (in emulator mode the simulated wallet
        /// scans it, see --wallet).
        #[arg(long, conflicts_with_all = ["card", "card_file", "reader", "qr_code"])]
        qr: bool,
        /// With --qr in emulator mode: what the simulated wallet does with the code:
        /// complete (pays), reject, or ignore (the customer walks away).
        #[arg(
            long,
            value_name = "ACTION",
            default_value = "complete",
            requires = "qr"
        )]
        wallet: String,
        /// With --qr: the wallet scans the code this many milliseconds after it is shown.
        #[arg(long, value_name = "MS", default_value_t = 200, requires = "qr")]
        wallet_delay_ms: u64,
        /// Pay with the customer's own QR code as a scanner read it (consumer-presented);
        /// `-` reads one line from stdin.
        #[arg(long, value_name = "CODE", conflicts_with_all = ["card", "card_file", "reader", "scan"])]
        qr_code: Option<String>,
        /// Pay with the customer's code read by the barcode scanner (`[qr] scanner_port`, or
        /// --scanner): waits up to `[qr] timeout_s` for a scan.
        #[arg(long, conflicts_with_all = ["card", "card_file", "reader", "qr"])]
        scan: bool,
        /// With --scan: the scanner's serial port instead of `[qr] scanner_port`.
        #[arg(long, value_name = "PATH", requires = "scan")]
        scanner: Option<PathBuf>,
        /// Your own card profile (docs/CARDS.md) instead of a built-in card.
        #[arg(long, value_name = "PATH")]
        card_file: Option<PathBuf>,
        /// Transaction type.
        #[arg(long = "type", value_enum, default_value = "sale")]
        kind: PayType,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Inject a fault to try a failure path.
        #[arg(long, value_enum)]
        fault: Option<Fault>,
        /// Rules for the emulator's host simulator (docs/CLI.md, `kassa host-sim`).
        #[arg(long, value_name = "FILE")]
        host_rules: Option<PathBuf>,
        /// Record the APDU exchange to FILE (docs/TRACES.md).
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// With --trace: replace PAN, track data and names in the trace with test values. This
        /// is the default; the flag is kept for scripts that pass it.
        #[arg(long)]
        mask: bool,
        /// With --trace: record the card's data as read (full PAN and track 2 in the file),
        /// for exact replays of test cards on a bench. Never for real cards.
        #[arg(long, conflicts_with = "mask")]
        unmasked: bool,
        /// How many times the virtual cardholder presents the card: 2 (the default) presents
        /// it once more when the terminal asks ("present card again"); 1 walks away.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
        taps: u32,
        /// A refund's original transaction (journal ID): same card, at most what is left of it.
        #[arg(long, value_name = "ID")]
        original: Option<i64>,
        /// Tip before the tap (taxi mode): a percentage of the amount ("10%") or an amount
        /// ("2.50"); the card is charged amount plus tip.
        #[arg(long, value_name = "TIP")]
        tip: Option<String>,
        /// Read the supervisor PIN (unreferenced refunds) from the first line of stdin.
        #[arg(long)]
        pin_stdin: bool,
        /// Play the cardholder at the PIN pad: when the card asks for an online PIN, read it
        /// from the next line of stdin (an empty line or end of input is Cancel). Needs a
        /// loaded PIN key (`kassa keys load`).
        #[arg(long)]
        card_pin_stdin: bool,
        /// The virtual cardholder taps after this many milliseconds (Ctrl-C before that
        /// cancels the transaction).
        #[arg(long, value_name = "MS", default_value_t = 0)]
        tap_delay_ms: u64,
        /// Use this card reader instead of `[reader]` in the config: `sim`,
        /// `pn532-uart:/dev/ttyS0[@BAUD]`, `pn532-spi:/dev/spidev0.0`, `pn532-i2c:/dev/i2c-1`,
        /// `pcsc[:NAME]`, `libnfc[:CONNSTRING]`. With a real reader the card is tapped by a
        /// person (or `kassa reader-sim`), not chosen with --card.
        #[arg(long, value_name = "SPEC", conflicts_with_all = ["card", "card_file", "tap_delay_ms"])]
        reader: Option<String>,
        /// Also write the receipt as the printer gets it: ESC/POS bytes, or a picture of the
        /// paper when PATH ends in .png (the virtual printer's view).
        #[arg(long, value_name = "PATH")]
        save_receipt: Option<PathBuf>,
        /// Which copy --save-receipt writes.
        #[arg(long, value_enum, default_value = "customer")]
        copy: CopyArg,
    },
    /// List the card readers (and places for one) this machine has; `--probe SPEC` wakes a
    /// reader and asks for its firmware.
    Readers {
        #[arg(long)]
        json: bool,
        /// A reader specification to open and check.
        #[arg(long, value_name = "SPEC")]
        probe: Option<String>,
    },
    /// Run a simulated PN532 reader with a virtual card on a new pseudo-terminal, for
    /// `kassa pay --reader pn532-uart:PATH` (docs/HARDWARE.md).
    ReaderSim {
        /// The virtual card on the reader's field (see `kassa cards`).
        #[arg(long, default_value = "visa")]
        card: String,
        /// The UART's speed: bytes take their real time on the line (0: instant).
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// Radio timing: `typical` (106 kbit/s, 4 ms per command, 40 ms per cryptogram) or
        /// `instant`.
        #[arg(long, default_value = "typical")]
        rf: String,
        /// The card leaves this long after the terminal's last command, and is presented
        /// again after --away-ms.
        #[arg(long, default_value_t = 150)]
        hold_ms: u64,
        /// How long the card is away before the next tap.
        #[arg(long, default_value_t = 1000)]
        away_ms: u64,
        /// Faults: `bad-checksum`, `garbage`, `no-answer:MS`, `card-lost:N`, `reset:N`,
        /// `slow:N:MS` (N: the Nth APDU from now). Repeatable.
        #[arg(long, value_name = "FAULT")]
        fault: Vec<String>,
        /// Print the pseudo-terminal's path as JSON.
        #[arg(long)]
        json: bool,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long, value_name = "SECONDS")]
        for_secs: Option<u64>,
    },
    /// Void an approved transaction of the open batch (default: the last one).
    Void {
        /// Journal ID (default: the newest approved transaction of the open batch).
        #[arg(long)]
        id: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Complete a pre-authorization with the final amount (no card needed).
    Complete {
        /// The pre-authorization's journal ID.
        #[arg(long)]
        id: i64,
        /// Final amount (at most `[terminal] completion_tolerance_pct` above the held amount).
        #[arg(long)]
        amount: String,
        /// Print JSON (the shape of `kassa pay --json`).
        #[arg(long)]
        json: bool,
    },
    /// Totals: `x` for the open batch, `z` to close it with the host.
    Report {
        /// x or z.
        #[arg(value_enum)]
        kind: ReportKind,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the kernel against a recorded APDU trace, then the emulator's host.
    Replay {
        /// The trace file.
        trace: PathBuf,
        /// Print one JSON object (the same shape as `kassa pay --json`).
        #[arg(long)]
        json: bool,
    },
    /// List the virtual cards (`kassa cards show NAME` prints one profile).
    Cards {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<CardsCommand>,
    },
    /// Run the acquirer/issuer host simulator on its own, for terminals elsewhere.
    HostSim {
        /// Address to listen on, e.g. 127.0.0.1:8583 (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8583")]
        listen: String,
        /// Directory with ca.pem, host.pem and host.key (from `kassa certs`).
        #[arg(long, value_name = "DIR")]
        certs: PathBuf,
        /// Behaviour rules (TOML; docs/CLI.md).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// ISO 8583 dialect.
        #[arg(long, default_value = "bcd87")]
        dialect: String,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long, value_name = "SECONDS")]
        for_secs: Option<u64>,
        /// Also know the issuer keys of these card profiles.
        #[arg(long, value_name = "PATH")]
        card_file: Vec<PathBuf>,
        /// Keep the ledger in FILE (JSON, rewritten after every request, loaded at start).
        #[arg(long, value_name = "FILE")]
        ledger: Option<PathBuf>,
    },
    /// Measure: with no subcommand every figure of docs/PERFORMANCE.md with its budget;
    /// `taps`, `host`, `reader`, `start`, `memory` one at a time.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        command: Option<BenchCommand>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a development PKI: a CA, a host certificate and terminal certificates.
    Certs {
        /// Directory to write to (must not hold a PKI yet).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// ID of the first terminal (terminal.pem).
        #[arg(long, default_value = "KASSA001")]
        terminal_id: String,
        /// Further terminals (terminal-ID.pem each).
        #[arg(long = "terminal", value_name = "ID")]
        terminals: Vec<String>,
    },
    /// Send what the journal owes the host now: advices, then reversals.
    Sync {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Inject a fault (as `kassa pay --fault`).
        #[arg(long, value_enum)]
        fault: Option<Fault>,
    },
    /// The PIN key store: load an AES DUKPT initial key, or show the key ID and counter.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Terminal management: sign, check and apply configuration bundles; poll the TMS host;
    /// serve bundles (docs/FLEET.md).
    Tms {
        #[command(subcommand)]
        command: TmsCommand,
    },
    /// The terminal's health: versions, reader and printer, what the host is owed, battery,
    /// last error (what the heartbeat sends).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Software updates: whether one may be installed now (docs/FLEET.md).
    Update {
        #[command(subcommand)]
        command: UpdateCommand,
    },
    /// Read the transaction journal.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// Decoders for EMV data: TLV, APDUs, DOLs.
    Tool {
        #[command(subcommand)]
        command: ToolCommand,
    },
}

#[derive(Debug, Subcommand)]
enum QrCommand {
    /// Decode a payload: every field with its name, the CRC checked (exit 1 when invalid).
    Decode {
        /// The payload as scanned (`-` reads one line from stdin).
        payload: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a payload (dynamic when it has an amount) and optionally its PNG.
    Encode(Box<QrEncodeCli>),
}

#[derive(Debug, clap::Args)]
struct QrEncodeCli {
    /// Merchant name (ID 59, at most 25 characters).
    #[arg(long)]
    merchant_name: String,
    /// Merchant city (ID 60, at most 15 characters).
    #[arg(long)]
    city: String,
    /// Merchant category code (ID 52).
    #[arg(long, default_value = "5999")]
    mcc: String,
    /// Currency, ISO 4217 numeric or alphabetic (ID 53).
    #[arg(long)]
    currency: String,
    /// Country, ISO 3166-1 alpha-2 (ID 58).
    #[arg(long)]
    country: String,
    /// Amount in major units, e.g. 12.34 (ID 54).
    #[arg(long)]
    amount: Option<String>,
    /// A static code (point of initiation 11) even with an amount.
    #[arg(long = "static")]
    static_code: bool,
    /// A merchant account template (IDs 26-51, in order): GUI[,ID=VALUE...].
    #[arg(long = "account", value_name = "GUI[,ID=VALUE...]")]
    accounts: Vec<String>,
    /// A card scheme's merchant identifier (IDs 02-25): ID=VALUE.
    #[arg(long = "scheme", value_name = "ID=VALUE")]
    schemes: Vec<String>,
    /// Reference label (ID 62.05).
    #[arg(long)]
    reference: Option<String>,
    /// Terminal label (ID 62.07).
    #[arg(long)]
    terminal_label: Option<String>,
    /// Bill number (ID 62.01).
    #[arg(long)]
    bill_number: Option<String>,
    /// Postal code (ID 61).
    #[arg(long)]
    postal_code: Option<String>,
    /// Tip or convenience fee (IDs 55-57): prompt, fixed:AMOUNT or percent:P.
    #[arg(long)]
    tip: Option<String>,
    /// Language of the alternate merchant name (ID 64.00), e.g. ZH.
    #[arg(long)]
    alt_language: Option<String>,
    /// Merchant name in that language (ID 64.01).
    #[arg(long)]
    alt_name: Option<String>,
    /// Merchant city in that language (ID 64.02).
    #[arg(long)]
    alt_city: Option<String>,
    /// Also write the code as a PNG.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ToolCommand {
    /// Decode BER-TLV as a tree with the meaning of each field (`-` reads stdin).
    Tlv {
        /// Hex; spaces and newlines are ignored. `-` reads it from stdin.
        hex: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Kernel whose meaning applies to kernel-specific tags (2 = Mastercard, 3 = Visa...).
        #[arg(long, default_value_t = 0)]
        kernel: u8,
        /// Show PAN, track data, names and expiry in full (masked by default).
        #[arg(long)]
        reveal: bool,
    },
    /// Name a command APDU and decode its response.
    Apdu {
        /// Command APDU, hex.
        capdu: String,
        /// Response APDU (data and SW1 SW2), hex.
        rapdu: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Kernel whose meaning applies to kernel-specific tags.
        #[arg(long, default_value_t = 0)]
        kernel: u8,
        /// Show PAN, track data, names and expiry in full.
        #[arg(long)]
        reveal: bool,
    },
    /// Decode an ISO 8583 message field by field (field 55 as a TLV tree).
    Iso8583 {
        /// The message, hex (`-` reads stdin).
        hex: String,
        /// Dialect: bcd87 or ascii87.
        #[arg(long, default_value = "bcd87")]
        dialect: String,
        /// The hex starts with the 2-byte length header.
        #[arg(long)]
        framed: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show the PAN, track data and expiry in full.
        #[arg(long)]
        reveal: bool,
    },
    /// Recover ODA certificates and signatures and name the first check that fails.
    Oda {
        /// The card's data objects as TLV hex (90, 92, 9F32, 9F46, 9F47, 9F48, 93 or 9F4B, 5A,
        /// 8F, ...); `-` reads stdin.
        tlv: String,
        /// RID of the CA key (default: from an AID in the TLV).
        #[arg(long)]
        rid: Option<String>,
        /// CA key index (default: 8F in the TLV).
        #[arg(long)]
        index: Option<String>,
        /// CA key modulus, when it is not one the terminal knows.
        #[arg(long)]
        modulus: Option<String>,
        /// CA key exponent with --modulus (default 03).
        #[arg(long)]
        exponent: Option<String>,
        /// Static data to be authenticated, hex.
        #[arg(long = "static", value_name = "HEX")]
        static_data: Option<String>,
        /// Terminal dynamic data for the signature hash, hex (default: fDDA 01 data from the TLV).
        #[arg(long, value_name = "HEX")]
        dynamic: Option<String>,
        /// Date for the expiry checks, YYYY-MM-DD (default today).
        #[arg(long)]
        date: Option<String>,
    },
    /// Compute and verify an application cryptogram (and the ARPC).
    Arqc {
        /// Cryptogram version: visa-10, visa-18, mastercard-16, mastercard-17, mastercard-20, mastercard-21.
        #[arg(long)]
        cvn: String,
        /// Issuer master key for ACs, 32 hex digits.
        #[arg(long)]
        imk: String,
        /// PAN digits.
        #[arg(long)]
        pan: String,
        /// PAN sequence number.
        #[arg(long, default_value_t = 0)]
        psn: u8,
        /// A cryptogram to check (exit 1 when it does not match).
        #[arg(long, value_name = "HEX")]
        verify: Option<String>,
        /// Also compute the ARPC for this authorization response code ("00" or 4 hex digits).
        #[arg(long, value_name = "ARC")]
        arpc: Option<String>,
        /// The data objects as TAG=HEX: 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 9F10.
        #[arg(required = true, value_name = "TAG=HEX")]
        data: Vec<String>,
    },
    /// Hash a supervisor PIN for `[operator] supervisor_pin` (the PIN is read from stdin).
    PinHash,
    /// Render the idle screen off-screen with the software renderer (no display needed) and
    /// write it as PNG: the device check that the screen draws, with text, on this machine.
    Screenshot {
        /// The PNG to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// DUKPT keys for a KSN: the initial key, the derivation key and the working keys.
    Dukpt {
        /// Base derivation key, 32 hex digits.
        #[arg(long)]
        bdk: String,
        /// Key serial number: 24 hex digits for AES (X9.24-3), 20 for TDES (X9.24-1).
        #[arg(long)]
        ksn: String,
        /// AES DUKPT (X9.24-3); without it TDES DUKPT (X9.24-1).
        #[arg(long)]
        aes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// An ISO 9564-1 PIN block: the clear PIN and PAN fields and, with a key, the block.
    Pinblock {
        /// 0 (TDES) or 4 (AES).
        #[arg(long)]
        format: u8,
        /// The PIN, 4 to 12 digits.
        #[arg(long)]
        pin: String,
        /// The PAN, 12 to 19 digits.
        #[arg(long)]
        pan: String,
        /// The PIN key, 32 hex digits (TDES double length for format 0, AES-128 for 4).
        #[arg(long)]
        key: Option<String>,
        /// Format 4's random fill, 16 hex digits (fixed to compare with published vectors).
        #[arg(long)]
        fill: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// EMVCo merchant-presented QR codes: decode one field by field, or make one.
    Qr {
        #[command(subcommand)]
        command: QrCommand,
    },
    /// List a data object list's entries with their names.
    Dol {
        /// The DOL, hex (`-` reads stdin).
        hex: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Kernel whose meaning applies to kernel-specific tags.
        #[arg(long, default_value_t = 0)]
        kernel: u8,
    },
}

/// `--copy`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CopyArg {
    Customer,
    Merchant,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Per card: APDUs and bytes against the modelled air time at 106 kbit/s, the kernel's
    /// CPU time, and the card-in-field time through the simulated reader at that rate.
    Taps {
        /// Taps per card through the simulated reader.
        #[arg(long, default_value_t = 20)]
        taps: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Process start to the idle screen drawn (`kassa tool screenshot` in a new process).
    Start {
        /// Runs.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Peak resident memory of an emulator run of many sales, in this process.
    Memory {
        /// Sales to run.
        #[arg(long, default_value_t = 1000)]
        transactions: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Authorization round trip over mutual TLS on loopback, and simulator throughput.
    Host {
        /// Authorizations per series.
        #[arg(long, default_value_t = 1000)]
        transactions: usize,
        /// Concurrent terminals for the throughput run.
        #[arg(long, default_value_t = 32)]
        terminals: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Taps through the PN532 UART driver and the PN532 simulator at the UART's byte rate:
    /// card-in-field time per card, and the driver's own cost per APDU.
    Reader {
        /// Taps per card.
        #[arg(long, default_value_t = 20)]
        taps: usize,
        /// The UART's speed.
        #[arg(long, default_value_t = 115_200)]
        baud: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CardsCommand {
    /// Print a card's profile (TOML).
    Show {
        /// Card name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Load an AES DUKPT (ANSI X9.24-3) initial key and its KSN, read from stdin as two hex
    /// lines (the key, 32 digits; the KSN, 24 digits): never on the command line. With
    /// --tdes, a TDES DUKPT (X9.24-1) IPEK (32 digits) and KSN (20 digits).
    Load {
        /// Load the development initial key instead, derived from the host simulator's
        /// published test BDK (emulator mode only: it protects nothing).
        #[arg(long)]
        test: bool,
        /// TDES DUKPT (X9.24-1): PINs go as ISO 9564 format 0 blocks with 10-byte KSNs, for
        /// acquirers that still use TDES.
        #[arg(long)]
        tdes: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Encrypt a PIN (read from stdin) as an ISO 9564 block (format 4 under AES, 0 under TDES) under the next DUKPT
    /// PIN key, as a transaction would (the counter advances): for testing a host's PIN
    /// decryption. Prints the KSN and the block.
    Encrypt {
        /// The card's PAN, 12 to 19 digits.
        #[arg(long)]
        pan: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The loaded key's ID, the last counter used and the next KSN (never the key).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TmsCommand {
    /// Make an operator signing key (Ed25519, PKCS#8, mode 0600) and print its public key.
    Keygen {
        /// Where to write the private key (never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// The key's name, as signatures and `[[tms.keys]]` cite it.
        #[arg(long, default_value = "ops")]
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a bundle payload (TOML, checked against the bundle schema first).
    Sign {
        /// The payload.
        payload: PathBuf,
        /// The signing key file (`kassa tms keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The key's name.
        #[arg(long, default_value = "ops")]
        id: String,
        /// The bundle file to write.
        #[arg(long)]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a bundle's signature: against `--public-key ID=HEX`, or the keys this terminal
    /// trusts now.
    Verify {
        /// The bundle.
        bundle: PathBuf,
        /// A trusted key, `ID=HEX` (repeatable).
        #[arg(long = "public-key", value_name = "ID=HEX")]
        public_keys: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show what a bundle holds, without verifying it.
    Inspect {
        /// The bundle.
        bundle: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify a bundle and make it the configuration in force (no rollback).
    Apply {
        /// The bundle.
        bundle: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask the `[tms] url` once for a newer bundle (conditional GET over mutual TLS).
    Poll {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The bundle in force, the last poll and the last refusal.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Post the health report (`kassa status --json`) to `[tms] heartbeat_url` now.
    Heartbeat {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve a folder of bundles over HTTPS with mutual TLS (ETag, Last-Modified, 304).
    Serve {
        /// The folder.
        dir: PathBuf,
        /// The development PKI (`kassa certs`): its host certificate, and its CA for clients.
        #[arg(long)]
        certs: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        for_secs: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum UpdateCommand {
    /// Whether an update may be installed and the terminal rebooted now: inside `[update]
    /// window`, battery at or above `min_battery_pct`, nothing owed to the host, no
    /// transaction in progress. Exit 0 when it may, 1 when not.
    Check {
        /// Judge at this local time (HH:MM) instead of now.
        #[arg(long, value_name = "HH:MM")]
        at: Option<String>,
        /// When allowed, also hold the terminal: no payment starts until `kassa update
        /// release`, the next start of the payment screen, or 30 minutes (for the reboot into
        /// the new slot).
        #[arg(long)]
        hold: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ends a hold taken by `check --hold` (the update did not go ahead).
    Release,
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// The most recent transactions, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One transaction with its state history.
    Show {
        /// Journal ID.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every transaction, oldest first, as CSV on stdout (masked PANs).
    Export {
        /// CSV (the only format).
        #[arg(long, required = true)]
        csv: bool,
    },
    /// Print a stored receipt again, marked as a duplicate.
    Reprint {
        /// Journal ID.
        id: i64,
    },
    /// What the host is still owed: advices (offline approvals, completions) and reversals.
    Queue {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KASSA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    crash::install(&data_dir(&cli));
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kassa: {}", one_line(&e));
            ExitCode::from(EXIT_OTHER)
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

/// The local configuration file (or the defaults), read and checked.
fn local_config(cli: &Cli) -> Result<tms::Local, config::ConfigError> {
    match emulator::config_path(cli.config.as_deref()) {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|source| config::ConfigError::Read {
                path: p.clone(),
                source,
            })?;
            let config = Config::parse(&p, &text)?;
            Ok(tms::Local {
                file: Some((p, text)),
                config,
            })
        }
        None => Ok(tms::Local {
            file: None,
            config: Config::default(),
        }),
    }
}

fn data_dir(cli: &Cli) -> std::path::PathBuf {
    cli.data_dir
        .clone()
        .unwrap_or_else(emulator::default_data_dir)
}

/// The configuration, read once per command.
struct Loaded {
    /// The local file (the background poller merges new bundles over it).
    local: tms::Local,
    /// The configuration in force: the local file with the applied bundle, if any, merged
    /// over it (docs/FLEET.md).
    config: Config,
    /// The version of that bundle.
    bundle_version: Option<u64>,
}

fn load(cli: &Cli) -> Result<Loaded, config::ConfigError> {
    let local = local_config(cli)?;
    let (config, bundle_version) = tms::effective(&data_dir(cli), &local);
    Ok(Loaded {
        local,
        config,
        bundle_version,
    })
}

/// `kassa status`.
fn status(paths: &Paths, cfg: &Config, bundle_version: u64, json: bool) -> anyhow::Result<u8> {
    let h = tms_cli::health_now(&paths.data_dir, cfg, bundle_version)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&h)?);
    } else {
        println!("terminal {}  kassa {}", h.terminal_id, h.software_version);
        println!(
            "configuration bundle: {}",
            if h.bundle_version == 0 {
                "none".to_string()
            } else {
                format!("version {}", h.bundle_version)
            }
        );
        println!("reader:  {} ({})", h.reader.configured, h.reader.status);
        println!("printer: {} ({})", h.printer.configured, h.printer.status);
        println!(
            "owed to the host: {} advice(s), {} reversal(s), {} unknown QR",
            h.queue.advices, h.queue.reversals, h.queue.unknown
        );
        println!(
            "battery: {}",
            h.battery_pct
                .map_or("mains (or not configured)".to_string(), |p| format!("{p}%"))
        );
        println!(
            "last error: {}",
            h.last_error
                .as_ref()
                .map_or("none".to_string(), |e| format!(
                    "{} ({}, {})",
                    e.reason,
                    e.source,
                    e.at.as_deref().unwrap_or("-")
                ))
        );
    }
    Ok(0)
}

/// `kassa update check`.
fn update_check(
    paths: &Paths,
    cfg: &Config,
    at: Option<&str>,
    hold: bool,
    json: bool,
) -> anyhow::Result<u8> {
    if hold && at.is_some() {
        eprintln!("kassa update check: --hold judges now; it does not go with --at");
        return Ok(EXIT_USAGE);
    }
    let now = match at {
        Some(t) => match chrono::NaiveTime::parse_from_str(t, "%H:%M") {
            Ok(t) => t,
            Err(_) => {
                eprintln!("kassa update check: --at {t:?} is not HH:MM");
                return Ok(EXIT_USAGE);
            }
        },
        None => chrono::Local::now().time(),
    };
    let window = config::Window::parse(&cfg.update.window).map_err(anyhow::Error::msg)?;
    let mut journal = Journal::open_read(&paths.journal())
        .with_context(|| format!("journal {}", paths.journal().display()))?;
    let inputs = update::inputs(cfg, &journal, now)?;
    let mut blocked = update::blocked_by(window, cfg.update.min_battery_pct, now, &inputs);
    // The hold is taken in the same write transaction that sees no transaction in progress.
    let held = if hold && blocked.is_empty() {
        match journal.hold_for_update()? {
            None => true,
            Some(reason) => {
                blocked.push(reason);
                false
            }
        }
    } else {
        false
    };
    let allowed = blocked.is_empty();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "allowed": allowed,
                "held": held,
                "blocked_by": blocked,
                "window": cfg.update.window,
                "now": inputs.now,
                "battery_pct": inputs.battery_pct,
                "min_battery_pct": cfg.update.min_battery_pct,
                "owed": inputs.owed,
                "in_progress": inputs.in_progress,
                "url": cfg.update.url,
            }))?
        );
    } else if allowed {
        println!(
            "an update may be installed now ({} in {})",
            inputs.now, cfg.update.window
        );
    } else {
        println!("not now: {}", blocked.join(", "));
    }
    Ok(if allowed { 0 } else { EXIT_OTHER })
}

/// `kassa tms ...`.
fn tms_command(cli: &Cli, command: &TmsCommand) -> anyhow::Result<u8> {
    let local = || {
        local_config(cli).map_err(|e| {
            eprintln!("kassa: {e}");
            EXIT_USAGE
        })
    };
    let dir = data_dir(cli);
    match command {
        TmsCommand::Keygen { out, id, json } => tms_cli::keygen(out, id, *json),
        TmsCommand::Sign {
            payload,
            key,
            id,
            out,
            json,
        } => tms_cli::sign(payload, key, id, out, *json),
        TmsCommand::Inspect { bundle, json } => tms_cli::inspect(bundle, *json),
        TmsCommand::Serve {
            dir: folder,
            certs,
            listen,
            for_secs,
        } => tms_cli::serve(folder, certs, listen, *for_secs),
        TmsCommand::Verify {
            bundle,
            public_keys,
            json,
        } => {
            let trusted = || match local() {
                Ok(l) => tms::State::load(&dir)
                    .map(|s| s.trusted(&l.config))
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            tms_cli::verify(bundle, public_keys, trusted, *json)
        }
        TmsCommand::Apply { bundle, json } => match local() {
            Ok(l) => tms_cli::apply(&dir, &l, bundle, *json),
            Err(code) => Ok(code),
        },
        TmsCommand::Poll { json } => match local() {
            Ok(l) => tms_cli::poll(&dir, &l, *json),
            Err(code) => Ok(code),
        },
        TmsCommand::Status { json } => match local() {
            Ok(l) => tms_cli::status(&dir, &l, *json),
            Err(code) => Ok(code),
        },
        TmsCommand::Heartbeat { json } => match local() {
            Ok(l) => tms_cli::heartbeat(&dir, &l, *json),
            Err(code) => Ok(code),
        },
    }
}

/// `kassa certs`.
fn certs(out: &std::path::Path, terminal_id: &str, terminals: &[String]) -> anyhow::Result<u8> {
    if sim::DevPki::exists(out) {
        eprintln!(
            "kassa certs: {} already holds a PKI; choose another --out",
            out.display()
        );
        return Ok(EXIT_USAGE);
    }
    let ids: Vec<&str> = terminals.iter().map(String::as_str).collect();
    let (pki, extra) =
        sim::DevPki::generate_with_terminals("Kassa Development Acquirer CA", terminal_id, &ids)?;
    pki.save(out)?;
    for (id, (cert, key)) in ids.iter().zip(&extra) {
        sim::pki::save_terminal(out, id, cert, key)?;
    }
    println!(
        "wrote {}: ca.pem ca.key host.pem host.key terminal.pem terminal.key{}",
        out.display(),
        ids.iter()
            .map(|i| format!(" terminal-{i}.pem terminal-{i}.key"))
            .collect::<String>()
    );
    Ok(0)
}

/// `kassa host-sim`.
fn host_sim(
    listen: &str,
    dir: &std::path::Path,
    rules: Option<&std::path::Path>,
    dialect: &str,
    for_secs: Option<u64>,
    card_files: &[PathBuf],
    ledger_file: Option<PathBuf>,
) -> anyhow::Result<u8> {
    let Some(dialect) = acquirer::iso8583::dialect(dialect) else {
        eprintln!("kassa host-sim: unknown dialect {dialect:?} (bcd87, ascii87)");
        return Ok(EXIT_USAGE);
    };
    let rules = match load_host_rules(rules) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    let pki = match sim::DevPki::load(dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "kassa host-sim: {e} (create one with `kassa certs --out {}`)",
                dir.display()
            );
            return Ok(EXIT_USAGE);
        }
    };
    let mut profiles = sim::builtin_profiles();
    for f in card_files {
        match sim::card::load_profile_file(f) {
            Ok(p) => profiles.push(p),
            Err(e) => {
                eprintln!("kassa host-sim: {e}");
                return Ok(EXIT_USAGE);
            }
        }
    }
    let rt = runtime()?;
    rt.block_on(async {
        let tls = pki.host_server_config(&pki.ca_cert)?;
        let host = sim::HostSim::start_with_ledger(
            listen,
            tls,
            sim::HostConfig {
                issuers: sim::IssuerKey::from_profiles(&profiles),
                dialect,
                fault: None,
                rules,
            },
            ledger_file,
        )
        .await
        .with_context(|| format!("listening on {listen}"))?;
        println!(
            "kassa host-sim listening on {} (mutual TLS, {})",
            host.local_addr(),
            dialect.name
        );
        use std::io::Write;
        let _ = std::io::stdout().flush();
        match for_secs {
            Some(s) => tokio::time::sleep(std::time::Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        let ledger = host.ledger();
        let approved = ledger
            .iter()
            .filter(|e| e.status == sim::EntryStatus::Approved)
            .count();
        let reversed = ledger
            .iter()
            .filter(|e| e.status == sim::EntryStatus::Reversed)
            .count();
        println!(
            "requests: {}, approved: {approved}, reversed: {reversed}",
            ledger.len()
        );
        Ok(0)
    })
}

/// Reads a host rules file; a bad file is bad input (exit 2).
fn load_host_rules(path: Option<&std::path::Path>) -> Result<sim::HostRules, u8> {
    let Some(path) = path else {
        return Ok(sim::HostRules::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("kassa: {}: {e}", path.display());
        EXIT_USAGE
    })?;
    sim::HostRules::parse(&text).map_err(|e| {
        eprintln!("kassa: {}: {e}", path.display());
        EXIT_USAGE
    })
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    // Tools need no configuration: a broken kassa.toml must not stop a decoder.
    match cli.command {
        Command::Tool { ref command } if !matches!(command, ToolCommand::Screenshot { .. }) => {
            return Ok(tool_command(command));
        }
        Command::Certs {
            ref out,
            ref terminal_id,
            ref terminals,
        } => return certs(out, terminal_id, terminals),
        Command::HostSim {
            ref listen,
            ref certs,
            ref rules,
            ref dialect,
            for_secs,
            ref card_file,
            ref ledger,
        } => {
            return host_sim(
                listen,
                certs,
                rules.as_deref(),
                dialect,
                for_secs,
                card_file,
                ledger.clone(),
            );
        }
        _ => {}
    }
    if let Command::Run { quit_after_ms } = cli.command {
        return device_run(&cli, quit_after_ms);
    }
    if let Command::Tms { ref command } = cli.command {
        return tms_command(&cli, command);
    }
    let paths = Paths {
        data_dir: data_dir(&cli),
    };
    // The key store needs the data directory, not the configuration.
    if let Command::Keys { ref command } = cli.command {
        return keys_command(&paths, command);
    }
    let Loaded {
        local,
        config: cfg,
        bundle_version,
    } = match load(&cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kassa: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    match cli.command {
        Command::Tms { .. } => Ok(EXIT_USAGE), // handled before the configuration
        Command::Update {
            command: UpdateCommand::Check { ref at, hold, json },
        } => update_check(&paths, &cfg, at.as_deref(), hold, json),
        Command::Update {
            command: UpdateCommand::Release,
        } => {
            Journal::open(&paths.journal())?.release_update_hold()?;
            println!("no update hold now: payments may start");
            Ok(0)
        }
        Command::Status { json } => status(&paths, &cfg, bundle_version.unwrap_or(0), json),
        Command::Cards { json, ref command } => cards(
            json,
            command
                .as_ref()
                .map(|CardsCommand::Show { name }| name.as_str()),
        ),
        Command::Pay {
            ref amount,
            qr,
            ref wallet,
            wallet_delay_ms,
            ref qr_code,
            scan,
            ref scanner,
            ref card,
            ref card_file,
            kind,
            json,
            fault,
            ref trace,
            mask,
            unmasked,
            ref host_rules,
            taps,
            original,
            ref tip,
            pin_stdin,
            card_pin_stdin,
            tap_delay_ms,
            ref reader,
            ref save_receipt,
            copy,
        } => pay(
            &paths,
            cfg,
            PayArgs {
                host_rules: match load_host_rules(host_rules.as_deref()) {
                    Ok(r) => r,
                    Err(code) => return Ok(code),
                },
                amount,
                qr,
                wallet,
                wallet_delay_ms,
                qr_code: qr_code.as_deref(),
                scan,
                scanner: scanner.as_deref(),
                card: card.as_deref(),
                card_file: card_file.as_deref(),
                kind,
                json,
                fault,
                trace: trace.as_deref(),
                mask,
                unmasked,
                taps,
                original,
                tip: tip.as_deref(),
                pin_stdin,
                card_pin_stdin,
                tap_delay_ms,
                reader: reader.as_deref(),
                save_receipt: save_receipt.as_deref(),
                copy,
            },
        ),
        Command::Readers { json, ref probe } => readers::readers(&cfg, json, probe.as_deref()),
        Command::ReaderSim {
            ref card,
            baud,
            ref rf,
            hold_ms,
            away_ms,
            ref fault,
            json,
            for_secs,
        } => readers::reader_sim(readers::ReaderSimArgs {
            card,
            baud,
            rf,
            hold_ms,
            away_ms,
            faults: fault,
            json,
            for_secs,
        }),
        Command::Void { id, json } => ops::void(&paths, cfg, id, json),
        Command::Complete {
            id,
            ref amount,
            json,
        } => ops::complete(&paths, cfg, id, amount, json),
        Command::Report { kind, json } => ops::report(
            &paths,
            cfg,
            match kind {
                ReportKind::X => "x",
                ReportKind::Z => "z",
            },
            json,
        ),
        Command::Replay { ref trace, json } => replay(&paths, cfg, trace, json),
        Command::Emulator { quit_after_ms } => {
            emulator_window(&paths, cfg, quit_after_ms, Some(local))
        }
        Command::Journal { ref command } => journal_command(&paths, &cfg, command),
        Command::Keys { .. } => Ok(EXIT_USAGE), // handled before the configuration
        Command::Sync { json, fault } => ops::sync(&paths, cfg, json, fault),
        Command::Certs { .. } | Command::HostSim { .. } | Command::Run { .. } => Ok(EXIT_USAGE),
        Command::Bench {
            command: None,
            json,
        } => {
            let rt = runtime()?;
            let b = rt.block_on(bench::all(&cfg))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                print_taps(&b.taps);
                let h = &b.host;
                println!(
                    "host round trip (mTLS 1.3, loopback): kept p50 {} us p99 {} us; new connection p50 {} us p99 {} us",
                    h.reused_connection.p50_us,
                    h.reused_connection.p99_us,
                    h.new_connection_full_handshake.p50_us,
                    h.new_connection_full_handshake.p99_us
                );
                println!(
                    "start to idle screen drawn: p50 {:.0} ms (first frame {:.0} ms)",
                    b.start.process.p50_us as f64 / 1000.0,
                    b.start.render_ms
                );
                println!(
                    "{} sales: peak resident {:.1} MB, {:.1} s",
                    b.memory.transactions,
                    b.memory.peak_rss_kb as f64 / 1024.0,
                    b.memory.seconds
                );
                println!("budgets:");
                for x in &b.budgets {
                    println!(
                        "  {:<58} {:>9.3} {:<7} limit {:>6} {}",
                        x.name,
                        x.measured,
                        x.unit,
                        x.limit,
                        if x.met { "met" } else { "MISSED" }
                    );
                }
            }
            Ok(0)
        }
        Command::Bench {
            command: Some(BenchCommand::Taps { taps, json }),
            ..
        } => {
            if taps == 0 {
                eprintln!("kassa bench taps: --taps must be above zero");
                return Ok(EXIT_USAGE);
            }
            let rt = runtime()?;
            let b = rt.block_on(bench::taps(&cfg, taps))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                print_taps(&b);
            }
            Ok(0)
        }
        Command::Bench {
            command: Some(BenchCommand::Start { runs, json }),
            ..
        } => {
            if runs == 0 {
                eprintln!("kassa bench start: --runs must be above zero");
                return Ok(EXIT_USAGE);
            }
            let b = bench::start_time(runs)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "start to idle screen drawn: p50 {:.1} ms, p99 {:.1} ms (first frame {:.1} ms)",
                    b.process.p50_us as f64 / 1000.0,
                    b.process.p99_us as f64 / 1000.0,
                    b.render_ms
                );
            }
            Ok(0)
        }
        Command::Bench {
            command: Some(BenchCommand::Memory { transactions, json }),
            ..
        } => {
            if transactions == 0 {
                eprintln!("kassa bench memory: --transactions must be above zero");
                return Ok(EXIT_USAGE);
            }
            let rt = runtime()?;
            let b = rt.block_on(bench::memory_run(&cfg, transactions))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "{} sales ({} approved) in {:.1} s: peak resident {:.1} MB, at the end {:.1} MB",
                    b.transactions,
                    b.approved,
                    b.seconds,
                    b.peak_rss_kb as f64 / 1024.0,
                    b.end_rss_kb as f64 / 1024.0
                );
            }
            Ok(0)
        }
        Command::Bench {
            command:
                Some(BenchCommand::Host {
                    transactions,
                    terminals,
                    json,
                }),
            ..
        } => {
            if transactions == 0 || terminals == 0 {
                eprintln!("kassa bench host: --transactions and --terminals must be above zero");
                return Ok(EXIT_USAGE);
            }
            let rt = runtime()?;
            let b = rt.block_on(bench::host(transactions, terminals))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "authorization round trip, mutual TLS 1.3 on loopback, {} per series:",
                    transactions
                );
                for (name, l) in [
                    ("kept connection", &b.reused_connection),
                    (
                        "new connection, full handshake",
                        &b.new_connection_full_handshake,
                    ),
                    (
                        "new connection, TLS 1.3 resumption",
                        &b.new_connection_resumed,
                    ),
                ] {
                    println!(
                        "  {name:<36} p50 {:>6} us  p99 {:>6} us  max {:>6} us  mean {:>6} us",
                        l.p50_us, l.p99_us, l.max_us, l.mean_us
                    );
                }
                println!(
                    "simulator throughput: {:.0} authorizations/s ({} terminals, {} authorizations)",
                    b.throughput_per_second, b.terminals, b.throughput_transactions
                );
            }
            Ok(0)
        }
        Command::Bench {
            command: Some(BenchCommand::Reader { taps, baud, json }),
            ..
        } => {
            if taps == 0 || baud == 0 {
                eprintln!("kassa bench reader: --taps and --baud must be above zero");
                return Ok(EXIT_USAGE);
            }
            let rt = runtime()?;
            let b = rt.block_on(bench::reader(&cfg, taps, baud))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b)?);
            } else {
                println!(
                    "taps through the PN532 UART driver at {} baud, typical card timing, {} per card:",
                    b.baud, b.taps
                );
                println!(
                    "  {:<12} {:<14} {:>5} {:>6} {:>9} {:>9} {:>10}",
                    "CARD", "OUTCOME", "APDUS", "BYTES", "P50 MS", "P99 MS", "MODEL MS"
                );
                for c in &b.cards {
                    println!(
                        "  {:<12} {:<14} {:>5} {:>6} {:>9.1} {:>9.1} {:>10.1}",
                        c.card,
                        c.outcome,
                        c.apdus,
                        c.apdu_bytes,
                        c.card_in_field.p50_us as f64 / 1000.0,
                        c.card_in_field.p99_us as f64 / 1000.0,
                        c.modelled_us as f64 / 1000.0
                    );
                }
                println!(
                    "per APDU (SELECT PPSE): PN532 driver + simulated chip in memory {:.1} us, over a pty {:.1} us, the card alone {:.1} us",
                    b.pn532_in_memory_per_apdu_us,
                    b.pn532_pty_per_apdu_us,
                    b.card_alone_per_apdu_us
                );
            }
            Ok(0)
        }
        Command::Tool {
            command: ToolCommand::Screenshot { ref out, json },
        } => screenshot(&cfg, out, json),
        Command::Tool { ref command } => Ok(tool_command(command)),
    }
}

/// `kassa tool screenshot`: the idle screen as the configuration shows it, drawn by Slint's
/// software renderer into memory (no window system), saved as PNG.
fn screenshot(cfg: &Config, out: &std::path::Path, json: bool) -> anyhow::Result<u8> {
    use ui::slint::ComponentHandle;
    let started = std::time::Instant::now();
    let portrait = cfg.ui.layout != "landscape";
    let (w, h) = match cfg.ui.layout.as_str() {
        "landscape" => (800, 480),
        "portrait-854" => (480, 854),
        _ => (480, 800),
    };
    let off = ui::offscreen::Offscreen::install(w, h)
        .map_err(|e| anyhow::anyhow!("off-screen renderer: {e}"))?;
    let window = ui::MainWindow::new().map_err(|e| anyhow::anyhow!("screen: {e}"))?;
    window.show().map_err(|e| anyhow::anyhow!("screen: {e}"))?;
    if let Ok(l) = ui::lang::select(&cfg.ui.language) {
        window
            .global::<ui::PresentAdapter>()
            .set_language(l.code.into());
    }
    let theme = window.global::<ui::Theme>();
    theme.set_portrait(portrait);
    theme.set_tall(cfg.ui.layout == "portrait-854");
    theme.set_large_text(cfg.ui.large_text);
    theme.set_high_contrast(cfg.ui.high_contrast);
    window
        .global::<ui::IdleAdapter>()
        .set_merchant(cfg.terminal.merchant_name.clone().into());
    window
        .global::<ui::AppAdapter>()
        .set_screen(ui::Screen::Idle);
    let frame = off.render();
    let render_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The background's colour is the most common pixel; text and buttons are the rest.
    let bg = frame.pixel(0, 0);
    let drawn = frame.count_not(bg);
    frame.save_png(out).map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": out.display().to_string(),
                "width": frame.width,
                "height": frame.height,
                "drawn_pixels": drawn,
                "render_ms": (render_ms * 10.0).round() / 10.0,
            })
        );
    } else {
        println!(
            "kassa tool screenshot: {} ({}x{}, {drawn} pixels drawn over the background, {render_ms:.1} ms)",
            out.display(),
            frame.width,
            frame.height
        );
    }
    Ok(if drawn > 0 { 0 } else { EXIT_OTHER })
}

fn tool_command(command: &ToolCommand) -> u8 {
    use emv::explain::Options;
    let result = match command {
        ToolCommand::Tlv {
            hex,
            json,
            kernel,
            reveal,
        } => tool::tlv(
            hex,
            *json,
            Options {
                kernel: *kernel,
                reveal: *reveal,
            },
        ),
        ToolCommand::Apdu {
            capdu,
            rapdu,
            json,
            kernel,
            reveal,
        } => tool::apdu(
            capdu,
            rapdu.as_deref(),
            *json,
            Options {
                kernel: *kernel,
                reveal: *reveal,
            },
        ),
        ToolCommand::Dol { hex, json, kernel } => tool::dol(hex, *json, *kernel),
        ToolCommand::Dukpt {
            bdk,
            ksn,
            aes,
            json,
        } => tool::dukpt(bdk, ksn, *aes, *json),
        ToolCommand::Pinblock {
            format,
            pin,
            pan,
            key,
            fill,
            json,
        } => tool::pinblock(*format, pin, pan, key.as_deref(), fill.as_deref(), *json),
        ToolCommand::Qr {
            command: QrCommand::Decode { payload, json },
        } => {
            return match tool::qr_decode(payload, *json) {
                Ok((text, valid)) => {
                    println!("{text}");
                    if valid { 0 } else { EXIT_OTHER }
                }
                Err(tool::ToolError(msg)) => {
                    eprintln!("kassa tool {msg}");
                    EXIT_USAGE
                }
            };
        }
        ToolCommand::Qr {
            command: QrCommand::Encode(a),
        } => tool::qr_encode(
            &tool::QrEncodeArgs {
                merchant_name: &a.merchant_name,
                city: &a.city,
                mcc: &a.mcc,
                currency: &a.currency,
                country: &a.country,
                amount: a.amount.as_deref(),
                static_code: a.static_code,
                accounts: &a.accounts,
                schemes: &a.schemes,
                reference: a.reference.as_deref(),
                terminal_label: a.terminal_label.as_deref(),
                bill_number: a.bill_number.as_deref(),
                postal_code: a.postal_code.as_deref(),
                tip: a.tip.as_deref(),
                alt_language: a.alt_language.as_deref(),
                alt_name: a.alt_name.as_deref(),
                alt_city: a.alt_city.as_deref(),
            },
            a.png.as_deref(),
            a.json,
        ),
        // Handled where the configuration is loaded.
        ToolCommand::Screenshot { .. } => return EXIT_USAGE,
        ToolCommand::PinHash => {
            let mut line = zeroize::Zeroizing::new(String::new());
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!("kassa tool pin-hash: cannot read the PIN from stdin");
                return EXIT_USAGE;
            }
            let pin = line.trim_end_matches(['\r', '\n']);
            if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
                eprintln!("kassa tool pin-hash: a supervisor PIN is 4 to 12 digits");
                return EXIT_USAGE;
            }
            match config::hash_pin(pin) {
                Ok(h) => Ok(h),
                Err(e) => Err(tool::ToolError(format!("pin-hash: {e}"))),
            }
        }
        ToolCommand::Iso8583 {
            hex,
            dialect,
            framed,
            json,
            reveal,
        } => tool::iso8583(
            hex,
            dialect,
            *framed,
            *json,
            Options {
                kernel: 0,
                reveal: *reveal,
            },
        ),
        ToolCommand::Oda {
            tlv,
            rid,
            index,
            modulus,
            exponent,
            static_data,
            dynamic,
            date,
        } => {
            let capks = Config::default()
                .terminal_config()
                .map(|c| c.capks)
                .unwrap_or_default();
            let args = tool::OdaArgs {
                tlv,
                rid: rid.as_deref(),
                index: index.as_deref(),
                modulus: modulus.as_deref(),
                exponent: exponent.as_deref(),
                static_data: static_data.as_deref(),
                dynamic: dynamic.as_deref(),
                date: date.as_deref(),
                capks,
            };
            return match tool::oda(&args) {
                Ok((text, passed)) => {
                    println!("{text}");
                    if passed { 0 } else { EXIT_OTHER }
                }
                Err(tool::ToolError(msg)) => {
                    eprintln!("kassa tool {msg}");
                    EXIT_USAGE
                }
            };
        }
        ToolCommand::Arqc {
            cvn,
            imk,
            pan,
            psn,
            verify,
            arpc,
            data,
        } => {
            let args = tool::ArqcArgs {
                cvn,
                imk,
                pan,
                psn: *psn,
                data,
                verify: verify.as_deref(),
                arpc: arpc.as_deref(),
            };
            return match tool::arqc(&args) {
                Ok((text, matched)) => {
                    println!("{text}");
                    if matched { 0 } else { EXIT_OTHER }
                }
                Err(tool::ToolError(msg)) => {
                    eprintln!("kassa tool {msg}");
                    EXIT_USAGE
                }
            };
        }
    };
    match result {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(tool::ToolError(msg)) => {
            eprintln!("kassa tool {msg}");
            EXIT_USAGE
        }
    }
}

fn keys_command(paths: &Paths, command: &KeysCommand) -> anyhow::Result<u8> {
    let vault = vault::Vault::open(&paths.device_key())?;
    let mut journal = Journal::open(&paths.journal())
        .with_context(|| format!("journal {}", paths.journal().display()))?;
    match command {
        KeysCommand::Load { test, tdes, json } => {
            let key = if *test {
                if *tdes {
                    let (k, ksn) = sim::pinkeys::test_tdes_initial_key();
                    keys::InitialKey::Tdes(k, ksn)
                } else {
                    let (k, ksn) = sim::pinkeys::test_aes_initial_key();
                    keys::InitialKey::Aes(k, ksn)
                }
            } else {
                let mut text = zeroize::Zeroizing::new(String::new());
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .context("reading the key from stdin")?;
                let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
                let (Some(key), Some(ksn)) = (lines.next(), lines.next()) else {
                    eprintln!(
                        "kassa keys load: stdin needs two lines: the initial key and the KSN (hex)"
                    );
                    return Ok(EXIT_USAGE);
                };
                let key = zeroize::Zeroizing::new(emv::util::unhex(key).unwrap_or_default());
                let Ok(key) = acquirer::pin::Key16::from_slice(&key) else {
                    eprintln!("kassa keys load: the initial key is 32 hex digits");
                    return Ok(EXIT_USAGE);
                };
                let ksn = emv::util::unhex(ksn).unwrap_or_default();
                if *tdes {
                    let Ok(ksn) = <[u8; 10]>::try_from(ksn.as_slice()) else {
                        eprintln!("kassa keys load: a TDES KSN is 20 hex digits (X9.24-1)");
                        return Ok(EXIT_USAGE);
                    };
                    keys::InitialKey::Tdes(key, ksn)
                } else {
                    let Ok(ksn) = acquirer::pin::aes_dukpt::Ksn::from_slice(&ksn) else {
                        eprintln!("kassa keys load: the KSN is 24 hex digits (X9.24-3)");
                        return Ok(EXIT_USAGE);
                    };
                    keys::InitialKey::Aes(key, ksn)
                }
            };
            keys::load(&paths.data_dir, &vault, &mut journal, &key, *test)?;
            let s = keys::status(&paths.data_dir, &vault, &journal)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!(
                    "loaded{}: {} DUKPT, initial key ID {}, counter {}",
                    if *test {
                        " the TEST key (simulator BDK, emulator only)"
                    } else {
                        ""
                    },
                    s.scheme.to_uppercase(),
                    s.initial_key_id,
                    s.counter
                );
            }
            Ok(0)
        }
        KeysCommand::Encrypt { pan, json } => {
            let mut line = zeroize::Zeroizing::new(String::new());
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!("kassa keys encrypt: cannot read the PIN from stdin");
                return Ok(EXIT_USAGE);
            }
            let pin = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
            // Check the PIN and PAN before a counter is spent on them.
            if let Err(e) = acquirer::pin::format4_pin_field(&pin, &[0; 8])
                .and(acquirer::pin::format4_pan_field(pan))
            {
                eprintln!("kassa keys encrypt: {e}");
                return Ok(EXIT_USAGE);
            }
            let key = match keys::next_pin_key(&paths.data_dir, &vault, &mut journal) {
                Ok(k) => k,
                Err(e) => {
                    eprintln!("kassa keys encrypt: {e} ({})", e.code());
                    return Ok(EXIT_OTHER);
                }
            };
            let mut fill = [0u8; 8];
            getrandom::fill(&mut fill).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let enciphered = key.encipher(&pin, pan, &fill)?;
            let (ksn, block) = (
                emv::util::hex(enciphered.ksn()),
                emv::util::hex(enciphered.block()),
            );
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"ksn": ksn, "pin_block": block})
                    )?
                );
            } else {
                println!("ksn        {ksn}\npin_block  {block}");
            }
            Ok(0)
        }
        KeysCommand::Status { json } => match keys::status(&paths.data_dir, &vault, &journal) {
            Ok(s) => {
                if *json {
                    println!("{}", serde_json::to_string_pretty(&s)?);
                } else {
                    println!(
                        "initial key ID {}, counter {}, next KSN {}",
                        s.initial_key_id,
                        s.counter,
                        s.next_ksn.as_deref().unwrap_or("none (exhausted)")
                    );
                }
                Ok(0)
            }
            Err(e) => {
                eprintln!("kassa keys status: {e} ({})", e.code());
                Ok(EXIT_OTHER)
            }
        },
    }
}

fn journal_command(paths: &Paths, cfg: &Config, command: &JournalCommand) -> anyhow::Result<u8> {
    let path = paths.journal();
    if !path.is_file() {
        eprintln!("kassa journal: no journal at {}", path.display());
        return Ok(EXIT_OTHER);
    }
    // Reading never recovers (a running payment's rows stay as they are); a reprint writes.
    let mut journal = match command {
        JournalCommand::Reprint { .. } => Journal::open(&path),
        _ => Journal::open_read(&path),
    }
    .with_context(|| format!("journal {}", path.display()))?;
    match command {
        JournalCommand::Export { .. } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            ops::export_csv(&journal, &mut out)?;
            Ok(0)
        }
        JournalCommand::Reprint { id } => match journal.receipt(*id)?.or_else(|| {
            // Never laid out (a crash right after the approval): rebuilt from the journal.
            journal
                .get(*id)
                .ok()
                .flatten()
                .filter(|r| matches!(r.state.as_str(), "approved" | "offline_approved"))
                .map(|r| receipt::render_row(cfg, &r))
        }) {
            Some(text) if print::is_hardware(cfg) => {
                let extras = receipt::Extras {
                    qr: None,
                    cut: true,
                    duplicate: true,
                };
                let doc = receipt::text_document(&text, &extras, &cfg.ui.language);
                match print::print_blocking(cfg, &doc, &cfg.ui.language) {
                    Ok(device) => {
                        println!("kassa journal reprint: printed on {device}");
                        if journal.get(*id)?.is_some_and(|r| r.printed_at.is_none()) {
                            journal.set_printed(*id)?;
                        }
                        Ok(0)
                    }
                    Err((device, e)) => {
                        eprintln!("kassa journal reprint: {device}: {e}");
                        Ok(EXIT_OTHER)
                    }
                }
            }
            Some(text) => {
                println!("{:^32}", "*** DUPLICATE ***");
                print!("{text}");
                if journal.get(*id)?.is_some_and(|r| r.printed_at.is_none()) {
                    journal.set_printed(*id)?;
                }
                Ok(0)
            }
            None => {
                eprintln!("kassa journal reprint: transaction {id} has no receipt");
                Ok(EXIT_USAGE)
            }
        },
        JournalCommand::Queue { json } => {
            let rows: Vec<_> = journal
                .all()?
                .into_iter()
                .filter(|r| r.advice == "pending" || r.reversal == "pending")
                .collect();
            if *json {
                let items: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "id": r.id,
                            "type": r.txn_type,
                            "amount_minor": r.amount_minor,
                            "state": r.state,
                            "pan": r.pan_masked,
                            "owed": if r.advice == "pending" { "advice" } else { "reversal" },
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!("{} message(s) owed to the host", rows.len());
                for r in &rows {
                    println!(
                        "{:>5}  {:<10} {:>12}  {:<16} {:<17} {}",
                        r.id,
                        r.txn_type,
                        ui::amount::format_minor(r.amount_minor, cfg.terminal.currency_exponent),
                        r.state,
                        r.pan_masked.clone().unwrap_or_default(),
                        if r.advice == "pending" {
                            "advice"
                        } else {
                            "reversal"
                        }
                    );
                }
            }
            Ok(0)
        }
        JournalCommand::List { limit, json } => {
            let rows = journal.recent(*limit)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:>5}  {:<24} {:<7} {:>12} {:>6}  {:<18} {:<17} {:<4} REVERSAL",
                    "ID", "CREATED", "TYPE", "AMOUNT", "STAN", "STATE", "PAN", "RC"
                );
                for r in rows {
                    println!(
                        "{:>5}  {:<24} {:<7} {:>12} {:>6}  {:<18} {:<17} {:<4} {}",
                        r.id,
                        r.created_at,
                        r.txn_type,
                        r.amount_minor,
                        r.stan,
                        r.state,
                        r.pan_masked.unwrap_or_default(),
                        r.response_code.unwrap_or_default(),
                        r.reversal
                    );
                }
            }
            Ok(0)
        }
        JournalCommand::Show { id, json } => match journal.get(*id)? {
            Some(r) => {
                if *json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!("id          {}", r.id);
                    println!("created     {}", r.created_at);
                    println!("type        {}", r.txn_type);
                    println!("amount      {} (currency {})", r.amount_minor, r.currency);
                    println!("stan        {:06}", r.stan);
                    println!("state       {}", r.state);
                    println!("reason      {}", r.reason.unwrap_or_default());
                    println!("pan         {}", r.pan_masked.unwrap_or_default());
                    println!("scheme      {}", r.scheme.unwrap_or_default());
                    println!("aid         {}", r.aid.unwrap_or_default());
                    println!("response    {}", r.response_code.unwrap_or_default());
                    println!("auth code   {}", r.auth_code.unwrap_or_default());
                    println!("rrn         {}", r.rrn.unwrap_or_default());
                    println!("reversal    {}", r.reversal);
                    println!("history:");
                    for line in r.history.lines() {
                        println!("  {line}");
                    }
                }
                Ok(0)
            }
            None => {
                eprintln!("kassa journal: no transaction {id}");
                Ok(EXIT_USAGE)
            }
        },
    }
}

#[cfg(any(feature = "desktop", feature = "device"))]
fn emulator_window(
    paths: &Paths,
    cfg: Config,
    quit_after_ms: Option<u64>,
    tms_local: Option<tms::Local>,
) -> anyhow::Result<u8> {
    if !gui::display_available() {
        eprintln!("{}", gui::NO_DISPLAY);
        return Ok(EXIT_OTHER);
    }
    let rt = runtime()?;
    gui::run(
        &rt,
        paths,
        cfg,
        quit_after_ms.map(std::time::Duration::from_millis),
        tms_local,
    )?;
    Ok(0)
}

#[cfg(not(any(feature = "desktop", feature = "device")))]
fn emulator_window(
    _paths: &Paths,
    _cfg: Config,
    _quit: Option<u64>,
    _tms: Option<tms::Local>,
) -> anyhow::Result<u8> {
    eprintln!(
        "kassa emulator: this build has no desktop window (feature `desktop`); run `kassa pay --amount 12.34 --card visa`"
    );
    Ok(EXIT_OTHER)
}

/// `kassa run`: the payment screen on the device.
#[cfg(any(feature = "desktop", feature = "device"))]
fn device_run(cli: &Cli, quit_after_ms: Option<u64>) -> anyhow::Result<u8> {
    let paths = Paths {
        data_dir: data_dir(cli),
    };
    // A configuration that does not load is shown on the screen and logged, and the process
    // stays up: a restart would not fix it, and a crash loop would hide the message.
    let (cfg, local) = match load(cli) {
        Ok(l) => (Ok(l.config), Some(l.local)),
        Err(e) => {
            tracing::error!(error = %e, "configuration not loaded");
            eprintln!("kassa run: {e}");
            (Err(e.to_string()), None)
        }
    };
    let rt = runtime()?;
    gui::run_device(
        &rt,
        &paths,
        cfg,
        quit_after_ms.map(std::time::Duration::from_millis),
        local,
    )?;
    Ok(0)
}

#[cfg(not(any(feature = "desktop", feature = "device")))]
fn device_run(_cli: &Cli, _quit: Option<u64>) -> anyhow::Result<u8> {
    eprintln!("kassa run: this build has no screen (features `desktop` or `device`)");
    Ok(EXIT_OTHER)
}

fn cards(json: bool, show: Option<&str>) -> anyhow::Result<u8> {
    let profiles = sim::builtin_profiles();
    if let Some(name) = show {
        return Ok(match sim::card::builtin_profile_text(name) {
            Some(text) => {
                print!("{text}");
                0
            }
            None => {
                let names: Vec<_> = profiles.iter().map(|p| p.name.as_str()).collect();
                eprintln!(
                    "kassa cards: unknown card {name:?} (known: {})",
                    names.join(", ")
                );
                EXIT_USAGE
            }
        });
    }
    let rows: Vec<serde_json::Value> = profiles
        .iter()
        .map(|p| {
            let aid = emv::util::unhex(&p.application.aid).unwrap_or_default();
            let langs = emv::entry::parse_languages(p.card.language.as_bytes());
            serde_json::json!({
                "name": p.name,
                "scheme": emv::card::Scheme::from_aid(&aid).name(),
                "aid": p.application.aid,
                "pan": emv::card::mask_digits(&p.card.pan),
                "language": langs.first(),
                "languages": langs,
                "oda": p.application.oda.name(),
                "cvm": p.cvm_summary(),
                "expect": p.expect,
                "description": p.description,
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<15} {:<11} {:<17} {:<17} {:<4} {:<5} {:<28} DESCRIPTION",
            "NAME", "SCHEME", "AID", "PAN", "LANG", "ODA", "CVM"
        );
        for r in &rows {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            println!(
                "{:<15} {:<11} {:<17} {:<17} {:<4} {:<5} {:<28} {}",
                s("name"),
                s("scheme"),
                s("aid"),
                s("pan"),
                s("language"),
                s("oda"),
                s("cvm"),
                s("description")
            );
        }
    }
    Ok(0)
}

/// Options of `kassa pay` after parsing.
struct PayArgs<'a> {
    host_rules: sim::HostRules,
    amount: &'a str,
    qr: bool,
    wallet: &'a str,
    wallet_delay_ms: u64,
    qr_code: Option<&'a str>,
    scan: bool,
    scanner: Option<&'a std::path::Path>,
    card: Option<&'a str>,
    card_file: Option<&'a std::path::Path>,
    kind: PayType,
    json: bool,
    fault: Option<Fault>,
    trace: Option<&'a std::path::Path>,
    mask: bool,
    unmasked: bool,
    taps: u32,
    original: Option<i64>,
    tip: Option<&'a str>,
    pin_stdin: bool,
    card_pin_stdin: bool,
    tap_delay_ms: u64,
    reader: Option<&'a str>,
    save_receipt: Option<&'a std::path::Path>,
    copy: CopyArg,
}

/// Stores the receipt in the journal, prints the result (the receipt goes to the virtual
/// printer, standard output) and marks an approved receipt printed. Returns the exit code.
fn finish(
    journal: &mut Journal,
    cmd: &str,
    cfg: &Config,
    result: &engine::TxnResult,
    card_name: &str,
    json: bool,
) -> u8 {
    let text = receipt::render_text(cfg, result, receipt::Copy::Customer);
    ops::store_receipt(journal, result, &text);
    let printer = print_customer_receipt(cfg, result);
    if let Some(reason) = &printer.reason {
        eprintln!(
            "kassa {cmd}: receipt not printed on {} ({reason}); it is kept in the journal: kassa journal reprint {}",
            printer.device, result.journal_id
        );
    }
    let code = report_result(cmd, cfg, result, card_name, json, &printer);
    if result.approved()
        && printer.printed
        && let Err(e) = journal.set_printed(result.journal_id)
    {
        tracing::warn!(error = %e, "receipt not marked printed");
    }
    code
}

/// The customer receipt on `[printer]`: the virtual printer is standard output (the text
/// report) and the JSON's `receipt`; a hardware printer gets ESC/POS with the e-receipt QR
/// code and a cut. A printer failure never changes the transaction.
fn print_customer_receipt(cfg: &Config, result: &engine::TxnResult) -> report::PrinterPart {
    let reached_card = result.kernel.is_some() || result.host.is_some();
    match cfg.printer.kind.as_str() {
        "none" => report::PrinterPart {
            device: "none".into(),
            printed: false,
            reason: None,
        },
        _ if !print::is_hardware(cfg) => report::PrinterPart {
            device: "virtual".into(),
            printed: true,
            reason: None,
        },
        _ if !reached_card => report::PrinterPart {
            device: cfg.printer.kind.clone(),
            printed: false,
            reason: None,
        },
        _ => {
            let language = receipt::language(cfg, result, receipt::Copy::Customer);
            let extras = receipt::Extras {
                qr: cfg.e_receipt_url(result.journal_id, result.batch, result.stan),
                cut: true,
                duplicate: false,
            };
            let doc = receipt::document(
                cfg,
                result,
                receipt::Copy::Customer,
                cfg.escpos().paper.columns(),
                &extras,
            );
            match print::print_blocking(cfg, &doc, &language) {
                Ok(device) => report::PrinterPart {
                    device,
                    printed: true,
                    reason: None,
                },
                Err((device, e)) => {
                    tracing::warn!(error = %e, "receipt not printed");
                    report::PrinterPart {
                        device,
                        printed: false,
                        reason: Some(e.code().into()),
                    }
                }
            }
        }
    }
}

fn pay(paths: &Paths, mut cfg: Config, args: PayArgs<'_>) -> anyhow::Result<u8> {
    // The terminal asks no more often than the virtual cardholder will come back.
    cfg.reader.max_presentations = cfg.reader.max_presentations.min(args.taps);
    // Bad input first: nothing is started for it. Refusals by the terminal's rules (an
    // amount over the maximum, a refund above its original, a wrong supervisor PIN) are
    // journalled with their reason code.
    let kind = match args.kind {
        PayType::Sale => TxnKind::Sale,
        PayType::Refund => TxnKind::Refund,
        PayType::Preauth => TxnKind::PreAuth,
    };
    if args.original.is_some() && kind != TxnKind::Refund {
        eprintln!("kassa pay: --original is for refunds (--type refund)");
        return Ok(EXIT_USAGE);
    }
    if args.tip.is_some() && kind != TxnKind::Sale {
        eprintln!("kassa pay: --tip is for sales");
        return Ok(EXIT_USAGE);
    }
    let exp = cfg.terminal.currency_exponent;
    let fare = match config::parse_amount(args.amount, exp) {
        Ok(0) => {
            eprintln!("kassa pay: {}", config::AmountError::Zero);
            return Ok(EXIT_USAGE);
        }
        Ok(a) => a,
        Err(e) => {
            eprintln!("kassa pay: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let mut refusal: Option<ops::Refusal> = None;
    let mut tip_minor = 0;
    if let Some(t) = args.tip {
        if !cfg.tips_enabled() {
            refusal = Some((
                "tips_disabled".into(),
                "tips are not enabled on this terminal ([terminal] tips, or mode = \"taxi\")"
                    .into(),
            ));
        } else {
            match ops::parse_tip(t, exp) {
                Ok(tip) => tip_minor = ops::tip_minor(fare, tip),
                Err(e) => {
                    eprintln!("kassa pay: {}", e.1);
                    return Ok(EXIT_USAGE);
                }
            }
        }
    }
    let amount_minor = fare + tip_minor;
    if refusal.is_none() && amount_minor > cfg.max_amount_minor() {
        refusal = Some((
            "amount_over_maximum".into(),
            format!(
                "amount {} is over the configured maximum of {}",
                ui::amount::format_minor(amount_minor, exp),
                cfg.terminal.max_amount
            ),
        ));
    }
    let extras = engine::TxnExtras {
        original_id: args.original,
        tip_minor,
    };
    if args.qr || args.qr_code.is_some() || args.scan {
        return pay_qr(paths, cfg, &args, amount_minor, extras, refusal);
    }
    // Which reader: --reader, else the virtual one when a virtual card is named, else the
    // config's [reader].
    let spec: drivers::ReaderSpec = match (args.reader, args.card.or(args.card_file.map(|_| ""))) {
        (Some(r), _) => match r.parse() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("kassa pay: {e}");
                return Ok(EXIT_USAGE);
            }
        },
        (None, Some(_)) => drivers::ReaderSpec::Sim,
        (None, None) => match cfg.reader_spec() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("kassa pay: {e}");
                return Ok(EXIT_USAGE);
            }
        },
    };
    let real_reader = spec != drivers::ReaderSpec::Sim;
    let mut extra = Vec::new();
    let card_name = match (args.card, args.card_file) {
        _ if real_reader => spec.to_string(),
        (_, Some(path)) => match sim::card::load_profile_file(path) {
            Ok(p) => {
                let name = p.name.clone();
                extra.push(p);
                name
            }
            Err(e) => {
                eprintln!("kassa pay: {e}");
                return Ok(EXIT_USAGE);
            }
        },
        (Some(name), None) => {
            let known = sim::builtin_profiles();
            if !known.iter().any(|p| p.name == name) {
                let names: Vec<_> = known.iter().map(|p| p.name.as_str()).collect();
                eprintln!(
                    "kassa pay: unknown card {name:?} (known: {})",
                    names.join(", ")
                );
                return Ok(EXIT_USAGE);
            }
            name.to_string()
        }
        (None, None) => {
            eprintln!("kassa pay: --card NAME or --card-file PATH is needed");
            return Ok(EXIT_USAGE);
        }
    };
    if (args.mask || args.unmasked) && args.trace.is_none() {
        eprintln!(
            "kassa pay: --{} needs --trace FILE",
            if args.mask { "mask" } else { "unmasked" }
        );
        return Ok(EXIT_USAGE);
    }
    let pin = if args.pin_stdin {
        let mut line = zeroize::Zeroizing::new(String::new());
        if std::io::stdin().read_line(&mut line).is_err() {
            eprintln!("kassa pay: cannot read the supervisor PIN from stdin");
            return Ok(EXIT_USAGE);
        }
        Some(zeroize::Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_string(),
        ))
    } else {
        None
    };
    if refusal.is_none() && kind == TxnKind::Refund {
        let mut journal = Journal::open(&paths.journal())
            .with_context(|| format!("journal {}", paths.journal().display()))?;
        let checked = match args.original {
            Some(orig) => ops::check_refund(&journal, &cfg, orig, amount_minor),
            None => {
                ops::check_supervisor_pin(&mut journal, &cfg, pin.as_deref().map(|p| p.as_str()))
            }
        };
        refusal = checked.err();
    }
    if let Some((code, message)) = refusal {
        let mut journal = Journal::open(&paths.journal())
            .with_context(|| format!("journal {}", paths.journal().display()))?;
        let result = engine::TxnResult::refused(
            &mut journal,
            kind,
            amount_minor,
            cfg.terminal.currency,
            extras,
            &code,
            message,
        )?;
        return Ok(finish(
            &mut journal,
            "pay",
            &cfg,
            &result,
            &card_name,
            args.json,
        ));
    }
    let rt = runtime()?;
    rt.block_on(async {
        let env = EmulatorEnv::start_with(paths, &cfg, args.fault, extra, args.host_rules.clone())
            .await?;
        if env.pki_created {
            tracing::info!(dir = %paths.pki().display(), "created a development PKI");
        }
        let (reader, tap, card) = if real_reader {
            match drivers::open::open(&spec, readers::pn532_config(&cfg)) {
                Ok(r) => (r, None, None),
                Err(e) => {
                    eprintln!("kassa pay: {e}");
                    return Ok(EXIT_OTHER);
                }
            }
        } else {
            let (reader, tap) = SimReader::new("virtual reader");
            let card = env.card(&card_name).context("card vanished")??;
            (
                drivers::AnyReader::Sim(reader.with_timing(cfg.rf_timing())),
                Some(tap),
                Some(card),
            )
        };
        let link = env.link(&cfg)?;
        let journal = Journal::open(&paths.journal())
            .with_context(|| format!("journal {}", paths.journal().display()))?;
        let vault = vault::Vault::open(&paths.device_key())?;
        // The virtual cardholder presents the card again when the terminal asks; a person
        // at a real reader is asked on stderr.
        let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
        let again = tap.clone();
        let quiet = args.json;
        tokio::spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                match (ev, &again) {
                    (engine::EngineEvent::PresentAgain(_), Some(t)) => {
                        t.present_again();
                    }
                    (engine::EngineEvent::PresentAgain(_), None) if !quiet => {
                        eprintln!("kassa pay: present the card again");
                    }
                    (engine::EngineEvent::WaitingForCard, None) if !quiet => {
                        eprintln!("kassa pay: tap a card on the reader");
                    }
                    _ => {}
                }
            }
        });
        let mut engine = Engine::new(
            cfg.clone(),
            RecordingReader::new(reader),
            link,
            journal,
            vault,
        )?
        .with_events(ev_tx);
        if args.card_pin_stdin {
            engine = engine.with_pin_pad(Box::new(pinpad::StdinPinPad), paths.data_dir.clone());
            // Say why no PIN will be asked for, rather than leave a card's other CVM or its
            // decline unexplained.
            if !engine.online_pin_ready() {
                eprintln!(
                    "kassa pay: no usable PIN key (kassa keys status): the terminal offers cards no online PIN"
                );
            }
        }
        // The operator's Ctrl-C cancels the transaction at whatever step it is.
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = cancel_tx.send(true);
            }
        });
        // Tap the card as soon as the terminal is ready for it (or after --tap-delay-ms).
        if let (Some(tap), Some(card)) = (tap, card) {
            if args.tap_delay_ms == 0 {
                tap.tap(Box::new(card));
            } else {
                let delay = std::time::Duration::from_millis(args.tap_delay_ms);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    tap.tap(Box::new(card));
                });
            }
        }
        let result = engine
            .run_full(
                kind,
                amount_minor,
                extras,
                Some(cancel_rx),
                engine::Overrides::default(),
            )
            .await?;
        engine.link.close().await;
        if let Some(path) = args.trace {
            let data = result
                .kernel
                .as_ref()
                .map(|o| o.data.clone())
                .unwrap_or_default();
            let mut t = trace::build(&card_name, &data, engine.reader.exchanges());
            // Card data never reaches a file unless asked for (--unmasked).
            if args.unmasked {
                eprintln!(
                    "kassa pay: {} holds the card's full PAN and track data (--unmasked)",
                    path.display()
                );
            } else {
                trace::mask(&mut t);
            }
            std::fs::write(path, t.to_text())
                .with_context(|| format!("writing trace {}", path.display()))?;
        }
        if let Some(path) = args.save_receipt {
            save_receipt(&cfg, &result, args.copy, path)?;
        }
        Ok(finish(
            &mut engine.journal,
            "pay",
            &cfg,
            &result,
            &card_name,
            args.json,
        ))
    })
}

/// `kassa pay --qr` and `--qr-code`: a QR sale, the simulated wallet playing the customer
/// on a merchant-presented code in emulator mode.
fn pay_qr(
    paths: &Paths,
    cfg: Config,
    args: &PayArgs<'_>,
    amount_minor: u64,
    extras: engine::TxnExtras,
    refusal: Option<ops::Refusal>,
) -> anyhow::Result<u8> {
    let name = if args.qr {
        "qr"
    } else if args.scan {
        "scanner"
    } else {
        "qr-code"
    };
    if !matches!(args.kind, PayType::Sale) {
        eprintln!("kassa pay: QR payments are sales (--type sale)");
        return Ok(EXIT_USAGE);
    }
    let wallet: sim::WalletAction = match args.wallet.parse() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("kassa pay: --wallet: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let source = match args.qr_code {
        None if args.scan => None,
        None => Some(qrpay::QrSource::Show),
        Some(code) => {
            let code = if code == "-" {
                let mut line = zeroize::Zeroizing::new(String::new());
                if std::io::stdin().read_line(&mut line).is_err() {
                    eprintln!("kassa pay: cannot read the QR code from stdin");
                    return Ok(EXIT_USAGE);
                }
                zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
            } else {
                zeroize::Zeroizing::new(code.to_string())
            };
            if code.is_empty() || code.chars().any(|c| c.is_control()) {
                eprintln!("kassa pay: --qr-code: not a code (empty or control characters)");
                return Ok(EXIT_USAGE);
            }
            Some(qrpay::QrSource::Scanned(code))
        }
    };
    let scanner_path = match (args.scan, args.scanner, &cfg.qr.scanner_port) {
        (false, _, _) => None,
        (true, Some(p), _) => Some(p.to_path_buf()),
        (true, None, Some(p)) => Some(PathBuf::from(p)),
        (true, None, None) => {
            eprintln!("kassa pay: --scan needs [qr] scanner_port or --scanner PATH");
            return Ok(EXIT_USAGE);
        }
    };
    let refusal = refusal.or_else(|| {
        (!cfg.qr.enabled).then(|| {
            (
                "qr_disabled".to_string(),
                "QR payments are not enabled on this terminal ([qr] enabled)".to_string(),
            )
        })
    });
    if let Some((code, message)) = refusal {
        let mut journal = Journal::open(&paths.journal())
            .with_context(|| format!("journal {}", paths.journal().display()))?;
        let result = engine::TxnResult::refused(
            &mut journal,
            TxnKind::Sale,
            amount_minor,
            cfg.terminal.currency,
            extras,
            &code,
            message,
        )?;
        return Ok(finish(&mut journal, "pay", &cfg, &result, name, args.json));
    }
    let rt = runtime()?;
    rt.block_on(async {
        // The customer's code from the scanner, before anything else starts.
        let source = match (source, scanner_path) {
            (Some(s), _) => s,
            (None, Some(path)) => match scan_code(&path, &cfg, args.json).await {
                Ok(code) => qrpay::QrSource::Scanned(code),
                Err(e) => {
                    let mut journal = Journal::open(&paths.journal())
                        .with_context(|| format!("journal {}", paths.journal().display()))?;
                    let result = engine::TxnResult::ended_early(
                        &mut journal,
                        TxnKind::Sale,
                        amount_minor,
                        cfg.terminal.currency,
                        extras,
                        (journal::TxnState::CardError, engine::Failure::Other),
                        e.kind.code(),
                        e.to_string(),
                    )?;
                    return Ok(finish(&mut journal, "pay", &cfg, &result, name, args.json));
                }
            },
            (None, None) => return Ok(EXIT_USAGE),
        };
        let env =
            EmulatorEnv::start_with(paths, &cfg, args.fault, Vec::new(), args.host_rules.clone())
                .await?;
        let link = env.link(&cfg)?;
        let journal = Journal::open(&paths.journal())
            .with_context(|| format!("journal {}", paths.journal().display()))?;
        let vault = vault::Vault::open(&paths.device_key())?;
        let (reader, _tap) = SimReader::new("no reader (QR)");
        let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut engine = Engine::new(
            cfg.clone(),
            RecordingReader::new(drivers::AnyReader::Sim(reader)),
            link,
            journal,
            vault,
        )?
        .with_events(ev_tx);
        let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = cancel_tx.send(true);
            }
        });
        // The customer's wallet: scans the code on the screen and does what --wallet says.
        let host = env.host.as_ref();
        let quiet = args.json;
        let delay = std::time::Duration::from_millis(args.wallet_delay_ms);
        let wallet_plays = async {
            while let Some(ev) = ev_rx.recv().await {
                if let engine::EngineEvent::QrShown { payload, .. } = ev {
                    if !quiet {
                        eprintln!("kassa pay: scan to pay: {payload}");
                    }
                    tokio::time::sleep(delay).await;
                    match host {
                        Some(h) => {
                            if let Err(e) = h.wallet(&payload, wallet) {
                                eprintln!("kassa pay: the simulated wallet: {e}");
                            }
                        }
                        None if !quiet => {
                            eprintln!("kassa pay: waiting for the customer's wallet");
                        }
                        None => {}
                    }
                }
            }
            std::future::pending::<std::convert::Infallible>().await
        };
        let result = tokio::select! {
            r = engine.run_qr(amount_minor, extras, source, Some(cancel_rx)) => r?,
            never = wallet_plays => match never {},
        };
        engine.link.close().await;
        if let Some(path) = args.save_receipt {
            save_receipt(&cfg, &result, args.copy, path)?;
        }
        Ok(finish(
            &mut engine.journal,
            "pay",
            &cfg,
            &result,
            name,
            args.json,
        ))
    })
}

/// Waits for the customer's code on the serial scanner at `path`.
async fn scan_code(
    path: &std::path::Path,
    cfg: &Config,
    quiet: bool,
) -> Result<zeroize::Zeroizing<String>, drivers::ScannerError> {
    use drivers::CodeScanner;
    let mut scanner = drivers::AnyScanner::open(path, cfg.qr.scanner_baud)?;
    if !quiet {
        eprintln!("kassa pay: scan the customer's code ({})", scanner.label());
    }
    scanner
        .read_code(std::time::Duration::from_secs(cfg.qr.timeout_s))
        .await
}

/// The per-card tap table of `kassa bench` and `kassa bench taps`.
fn print_taps(taps: &[bench::TapBudget]) {
    println!(
        "taps at 106 kbit/s with typical card timing (model) and through the simulated reader:"
    );
    println!(
        "  {:<11} {:<14} {:<14} {:>5} {:>6} {:>8} {:>9} {:>10} {:>8} {:>10}",
        "CARD",
        "OUTCOME",
        "ODA",
        "APDUS",
        "BYTES",
        "AIR MS",
        "MODEL MS",
        "KERNEL US",
        "CPU %",
        "FIELD P99"
    );
    for t in taps {
        println!(
            "  {:<11} {:<14} {:<14} {:>5} {:>6} {:>8.1} {:>9.1} {:>10.1} {:>8.4} {:>8.1}ms",
            t.card,
            t.outcome,
            t.oda,
            t.apdus,
            t.apdu_bytes,
            t.air_us as f64 / 1000.0,
            t.modelled_us as f64 / 1000.0,
            t.kernel_cpu_us,
            t.cpu_share_percent,
            t.card_in_field.p99_us as f64 / 1000.0
        );
    }
}

/// `--save-receipt`: the receipt as `[printer]` would get it (paper width, encoding, QR code,
/// cut), as ESC/POS bytes or, for a .png path, as the picture the virtual printer draws.
fn save_receipt(
    cfg: &Config,
    result: &engine::TxnResult,
    copy: CopyArg,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let copy = match copy {
        CopyArg::Customer => receipt::Copy::Customer,
        CopyArg::Merchant => receipt::Copy::Merchant,
    };
    let language = receipt::language(cfg, result, copy);
    let extras = receipt::Extras {
        qr: cfg.e_receipt_url(result.journal_id, result.batch, result.stan),
        cut: true,
        duplicate: false,
    };
    let doc = receipt::document(cfg, result, copy, cfg.escpos().paper.columns(), &extras);
    // One scan of the system fonts serves both the images in the bytes and the picture.
    let fonts = paper::Fonts::for_language(&language);
    let bytes = print::escpos_bytes_with(cfg, &doc, &fonts);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        print::paper_png(cfg, &bytes, &fonts, path)
            .with_context(|| format!("writing {}", path.display()))
    } else {
        std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))
    }
}

/// Prints a finished transaction (text or JSON) and returns the exit code.
fn report_result(
    cmd: &str,
    cfg: &Config,
    result: &engine::TxnResult,
    card_name: &str,
    json: bool,
    printer: &report::PrinterPart,
) -> u8 {
    let receipt_text = receipt::render_text(cfg, result, receipt::Copy::Customer);
    if json {
        let mut report = report::PayReport::new(cfg, result, receipt_text.clone());
        report.printer = report::PrinterPart {
            device: printer.device.clone(),
            printed: printer.printed,
            reason: printer.reason.clone(),
        };
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("kassa {cmd}: {e}");
                return EXIT_OTHER;
            }
        }
    } else {
        let verdict = result.outcome.replace('_', " ").to_uppercase();
        let pan = result
            .kernel
            .as_ref()
            .and_then(|o| o.card.as_ref())
            .and_then(|c| c.pan.as_ref())
            .map(|p| p.masked())
            .unwrap_or_default();
        let extra = match &result.host {
            Some(h) => format!(
                "rc {} {}{}",
                h.response_code,
                h.response_text,
                h.auth_code
                    .as_ref()
                    .map(|c| format!(", auth {c}"))
                    .unwrap_or_default()
            ),
            None => String::new(),
        };
        println!(
            "{verdict}  {} {}  {card_name} {pan}  {extra}",
            cfg.terminal.currency_code,
            ui::amount::format_minor(result.amount_minor, cfg.terminal.currency_exponent)
        );
        if printer.device == "virtual" {
            println!();
            print!("{receipt_text}");
        }
    }
    match &result.error {
        None => 0,
        Some(e) => {
            let what = match result.journal_state {
                journal::TxnState::ReversalPending => "reversal pending",
                journal::TxnState::HostUnreachable => "not authorised, nothing to reverse",
                _ => "not completed",
            };
            eprintln!(
                "kassa {cmd}: {}; journal #{}: {what}",
                e.message, result.journal_id
            );
            match e.failure {
                Failure::Refused => EXIT_USAGE,
                Failure::Host => EXIT_HOST,
                Failure::Other => EXIT_OTHER,
            }
        }
    }
}

/// `kassa replay TRACE`: the kernel against a recorded card, then (as `kassa pay`) the
/// emulator's host simulator.
fn replay(
    paths: &Paths,
    mut cfg: Config,
    file: &std::path::Path,
    json: bool,
) -> anyhow::Result<u8> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kassa replay: {}: {e}", file.display());
            return Ok(EXIT_USAGE);
        }
    };
    let t = match drivers::Trace::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kassa replay: {}: {e}", file.display());
            return Ok(EXIT_USAGE);
        }
    };
    let h = match trace::header_data(&t) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("kassa replay: {}: {e}", file.display());
            return Ok(EXIT_USAGE);
        }
    };
    let Some(amount) = h.amount else {
        eprintln!(
            "kassa replay: {}: the header lacks 9F02 (amount)",
            file.display()
        );
        return Ok(EXIT_USAGE);
    };
    // The recorded terminal data replaces the configuration's where it differs.
    if let Some(c) = h.country {
        cfg.terminal.country = c;
    }
    if let Some(c) = h.currency {
        cfg.terminal.currency = c;
        if let Some(cur) = emv::codes::currency(c) {
            cfg.terminal.currency_code = cur.alpha.to_string();
            cfg.terminal.currency_exponent = cur.exponent;
        }
    }
    if let Some(ttq) = h.ttq {
        // Pre-processing sets byte 2 bits 8-7 again from the amount and limits.
        let base = format!(
            "{:02X}{:02X}{:02X}{:02X}",
            ttq[0],
            ttq[1] & 0x3F,
            ttq[2],
            ttq[3]
        );
        for a in &mut cfg.aids {
            a.ttq = Some(base.clone());
        }
    }
    let kind = if h.txn_type == Some(0x20) {
        TxnKind::Refund
    } else {
        TxnKind::Sale
    };
    let card_name = t
        .metadata
        .iter()
        .find(|(k, _)| k == "card")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "replay".into());
    let overrides = engine::Overrides {
        unpredictable_number: h.unpredictable_number,
        date: h.date,
        time: h.time,
    };
    let rt = runtime()?;
    rt.block_on(async {
        let env = EmulatorEnv::start(paths, &cfg, None).await?;
        let link = env.link(&cfg)?;
        let journal = Journal::open(&paths.journal())
            .with_context(|| format!("journal {}", paths.journal().display()))?;
        let vault = vault::Vault::open(&paths.device_key())?;
        let mut engine = Engine::new(cfg.clone(), ReplayReader::new(t), link, journal, vault)?;
        let result = engine.run_with(kind, amount, None, overrides).await?;
        engine.link.close().await;
        Ok(finish(
            &mut engine.journal,
            "replay",
            &cfg,
            &result,
            &card_name,
            json,
        ))
    })
}

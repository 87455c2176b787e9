//! `kassa.toml`: the terminal's configuration. Every section has defaults that make the
//! emulator work out of the box; unknown keys are refused with their name and line.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use emv::card::KernelId;
use emv::config::{Combination, EmvModeParams, TerminalConfig};

/// Errors in configuration or amounts typed by a person.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a wrong type (the message names key and line).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, on one line.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file (or "defaults").
        path: PathBuf,
        /// The key, dotted.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Terminal and merchant identity, currency, limits.
    pub terminal: TerminalSection,
    /// How to reach the acquirer.
    pub acquirer: AcquirerSection,
    /// The AIDs the terminal accepts and their kernel parameters.
    pub aids: Vec<AidSection>,
    /// Timeouts for the card reader.
    pub reader: ReaderSection,
    /// Certification authority public keys for offline data authentication. Empty means the
    /// Kassa test CAs (emulator mode); a device must list its acquirer's keys.
    pub capks: Vec<CapkSection>,
    /// Store-and-forward: approving while the host is unreachable.
    pub offline: OfflineSection,
    /// Supervisor PIN and lock-out.
    pub operator: OperatorSection,
    /// The touch screen: language, layout, accessibility.
    pub ui: UiSection,
    /// The contactless status lights and buzzer.
    pub indicators: IndicatorsSection,
    /// The receipt printer.
    pub printer: PrinterSection,
    /// QR payments (EMVCo merchant-presented codes on screen, customer codes scanned).
    pub qr: QrSection,
    /// Terminal management: where signed configuration bundles come from and whose signatures
    /// are trusted (docs/FLEET.md).
    pub tms: TmsSection,
    /// When a software update may be installed (docs/FLEET.md).
    pub update: UpdateSection,
}

/// `[update]`: the conditions for installing a software update and rebooting into it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateSection {
    /// The signed update bundle's HTTPS URL (for the updater, `kassa-update`).
    pub url: Option<String>,
    /// Local time window, `HH:MM-HH:MM` (may cross midnight), when an update may be installed.
    pub window: String,
    /// Below this battery charge (percent) nothing is installed.
    pub min_battery_pct: u8,
    /// The battery's charge in percent (a sysfs `capacity` file); none: mains powered.
    pub battery: Option<PathBuf>,
}

impl Default for UpdateSection {
    fn default() -> Self {
        UpdateSection {
            url: None,
            window: "02:00-05:00".into(),
            min_battery_pct: 30,
            battery: None,
        }
    }
}

/// A daily time window in local time; `end` before `start` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First minute inside.
    pub start: chrono::NaiveTime,
    /// First minute after.
    pub end: chrono::NaiveTime,
}

impl Window {
    /// `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Window, String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not HH:MM-HH:MM"))?;
        let t = |s: &str| {
            chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|_| format!("{s:?} is not HH:MM"))
        };
        let w = Window {
            start: t(a)?,
            end: t(b)?,
        };
        if w.start == w.end {
            return Err(format!("{text:?} is empty"));
        }
        Ok(w)
    }

    /// Whether `now` falls inside.
    pub fn contains(&self, now: chrono::NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= now && now < self.end
        } else {
            now >= self.start || now < self.end
        }
    }
}

/// `[tms]`: signed configuration bundles.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TmsSection {
    /// The bundle's HTTPS URL (`https://host[:port]/path`); none: bundles only by `kassa tms
    /// apply`.
    pub url: Option<String>,
    /// Seconds between polls (with up to 20% jitter; failures back off doubling to 24 h).
    pub poll_s: u64,
    /// The name the server's certificate must carry; default the URL's host.
    pub server_name: Option<String>,
    /// CA that issued the server's certificate (PEM); default `[acquirer] ca`.
    pub ca: Option<PathBuf>,
    /// The terminal's client certificate (PEM); default `[acquirer] certificate`.
    pub certificate: Option<PathBuf>,
    /// Its private key (PEM, not readable by others); default `[acquirer] key`.
    pub key: Option<PathBuf>,
    /// Seconds a download may take before it is abandoned.
    pub timeout_s: u64,
    /// Where the heartbeat (the health report, `kassa status --json`) is posted after each
    /// poll; none: no heartbeat.
    pub heartbeat_url: Option<String>,
    /// The operator's Ed25519 public keys whose signatures on bundles are trusted, until a
    /// bundle names their successors (`signing_keys`).
    pub keys: Vec<TmsKeySection>,
}

impl Default for TmsSection {
    fn default() -> Self {
        TmsSection {
            url: None,
            poll_s: 900,
            server_name: None,
            ca: None,
            certificate: None,
            key: None,
            timeout_s: 30,
            heartbeat_url: None,
            keys: Vec::new(),
        }
    }
}

/// One trusted bundle-signing key: `[[tms.keys]]`, or `[[signing_keys]]` in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TmsKeySection {
    /// The key's name, as signatures cite it.
    pub id: String,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// Last day the key may sign (YYYY-MM-DD); none: no end.
    pub not_after: Option<String>,
}

/// A bundle-signing key that can be checked against: its name, public key and last day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The name signatures cite.
    pub id: String,
    /// Ed25519 public key.
    pub public_key: [u8; 32],
    /// Last day it may sign.
    pub not_after: Option<chrono::NaiveDate>,
}

impl TmsKeySection {
    /// The key, checked: a non-empty name, 32 bytes of hex, a real date.
    pub fn trusted(&self) -> Result<TrustedKey, String> {
        if self.id.trim().is_empty() || self.id.len() > 64 {
            return Err("id must be 1-64 characters".into());
        }
        let public_key: [u8; 32] = emv::util::unhex(&self.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("public_key must be 64 hex digits (an Ed25519 public key)")?;
        let not_after = match &self.not_after {
            Some(d) => Some(
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| format!("not_after {d:?} is not YYYY-MM-DD"))?,
            ),
            None => None,
        };
        Ok(TrustedKey {
            id: self.id.clone(),
            public_key,
            not_after,
        })
    }
}

/// An `https://host[:port]/path` URL, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    /// Host name or address.
    pub host: String,
    /// Port (443 by default).
    pub port: u16,
    /// Path with its query, starting with `/`.
    pub path: String,
}

impl HttpsUrl {
    /// Splits `url`; only `https` is accepted.
    pub fn parse(url: &str) -> Result<HttpsUrl, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url:?} is not an https:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "{url:?}: no host (or user information, not allowed)"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{url:?}: bad port {p:?}"))?,
            ),
            _ => (authority, 443),
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(format!(
                "{url:?}: the path has spaces or control characters"
            ));
        }
        Ok(HttpsUrl {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            path: path.to_string(),
        })
    }
}

/// `[qr]`: mobile payments by QR code.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QrSection {
    /// QR payments offered (the amount screen's QR button, `kassa pay --qr`).
    pub enabled: bool,
    /// The globally unique identifier of the QR network in the merchant account template
    /// (ID 26.00): an AID or a reverse domain name from the acquirer.
    pub network_gui: String,
    /// The merchant's identifier in that network (ID 26.01); default `terminal.merchant_id`.
    pub network_merchant_id: Option<String>,
    /// Merchant city in the code (ID 60, at most 15 characters).
    pub merchant_city: String,
    /// ISO 639-1 language of the merchant's name in another script (ID 64.00), e.g. "ZH".
    pub alt_language: Option<String>,
    /// The merchant's name in that language (ID 64.01, at most 25 characters, any script).
    pub alt_name: Option<String>,
    /// The city in that language (ID 64.02).
    pub alt_city: Option<String>,
    /// How often the terminal asks the host whether the customer has paid, milliseconds.
    pub poll_ms: u64,
    /// How long the customer has to pay before the order is cancelled, seconds.
    pub timeout_s: u64,
    /// A serial barcode scanner for the customer's code: the port (e.g. /dev/ttyACM0).
    pub scanner_port: Option<String>,
    /// The scanner's bits per second.
    pub scanner_baud: u32,
}

impl Default for QrSection {
    fn default() -> Self {
        QrSection {
            enabled: true,
            network_gui: "A000000333010101".into(),
            network_merchant_id: None,
            merchant_city: "Berlin".into(),
            alt_language: None,
            alt_name: None,
            alt_city: None,
            poll_ms: 1000,
            timeout_s: 120,
            scanner_port: None,
            scanner_baud: 9600,
        }
    }
}

/// `[printer]`: the receipt printer (ESC/POS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrinterSection {
    /// `virtual` (standard output for `kassa pay`, the emulator window's paper), `serial`,
    /// `usb` (a device file such as /dev/usb/lp0), `tcp` (port 9100) or `none`.
    pub kind: String,
    /// serial: the port; usb: the device file.
    pub port: Option<String>,
    /// serial: bits per second.
    pub baud: u32,
    /// tcp: host:port.
    pub address: Option<String>,
    /// Paper width in mm: 58 or 80.
    pub paper: u32,
    /// How the printer takes text: latin (WPC1252), gb18030, gbk, big5, utf-8.
    pub encoding: String,
    /// QR codes with the printer's GS ( k (false: as images).
    pub native_qr: bool,
    /// The printer answers status queries (DLE EOT): paper out and cover open are detected
    /// before printing. Off for write-only connections.
    pub status: bool,
    /// The e-receipt address shown as a QR code on screen and printed on the receipt:
    /// `{reference}` becomes the transaction reference (terminal ID, batch, STAN), `{tid}`,
    /// `{batch}`, `{stan}` and `{id}` their parts. No card data goes into it.
    pub e_receipt_url: Option<String>,
}

impl Default for PrinterSection {
    fn default() -> Self {
        PrinterSection {
            kind: "virtual".into(),
            port: None,
            baud: 9600,
            address: None,
            paper: 58,
            encoding: "latin".into(),
            native_qr: true,
            status: true,
            e_receipt_url: None,
        }
    }
}

/// `[indicators]`: the four contactless status lights and the buzzer (EMV Book A §9.2,
/// §9.4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndicatorsSection {
    /// `screen` (drawn on the payment screen: the emulator, or a device without LEDs),
    /// `gpio` (LEDs and a buzzer on the Pi's header) or `none`.
    pub kind: String,
    /// The four lights' GPIO pins (BCM numbers), left to right.
    pub lights: Vec<u8>,
    /// The buzzer's GPIO pin; hardware PWM on 12/13/18/19, software PWM elsewhere.
    pub buzzer: Option<u8>,
    /// LEDs wired to light when the pin is low.
    pub active_low: bool,
}

impl Default for IndicatorsSection {
    fn default() -> Self {
        IndicatorsSection {
            kind: "screen".into(),
            lights: vec![17, 27, 22, 23],
            buzzer: Some(18),
            active_low: false,
        }
    }
}

/// `[ui]`: the touch screen.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSection {
    /// The merchant's language (one of the UI's twelve: en, zh_CN, zh_TW, ja, ko, ru, fr, de,
    /// es, th, vi, pt); customer screens switch to the card's language and back.
    pub language: String,
    /// `portrait` (480x800 handheld), `portrait-854` (480x854), or `landscape` (800x480
    /// countertop).
    pub layout: String,
    /// Customer text 1.5 times larger.
    pub large_text: bool,
    /// Black, white and yellow.
    pub high_contrast: bool,
    /// Spoken prompts with espeak-ng, where the device has it.
    pub voice: bool,
    /// The Book A success and alert tones (aplay, where the device has it).
    pub sound: bool,
    /// The language buttons on the present-card screen (up to four).
    pub customer_languages: Vec<String>,
    /// Seconds the cardholder has to enter an online PIN (5-120); then the entry ends as
    /// `pin_timeout`.
    pub pin_timeout_s: u64,
}

impl Default for UiSection {
    fn default() -> Self {
        UiSection {
            language: "en".into(),
            layout: "portrait".into(),
            large_text: true,
            high_contrast: false,
            voice: false,
            sound: true,
            customer_languages: ["en", "zh_CN", "ja", "ko"].map(String::from).to_vec(),
            pin_timeout_s: 30,
        }
    }
}

/// `[terminal] mode`: what kind of device this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A merchant's countertop terminal: sale, refund, void, pre-authorization, end of day.
    #[default]
    Countertop,
    /// A taxi driver's battery handheld: fare plus tip, store-and-forward through dead zones,
    /// the reader idles between transactions (no busy polling).
    Taxi,
}

/// `[offline]`: store-and-forward. When the host cannot be reached before the request
/// leaves, a sale the card would let go online (ODA not failed, card not expired, CVM done)
/// is approved offline (response code Y3) within these caps, and forwarded as an advice
/// (0220) when the link returns. Refunds, pre-authorizations and completions are never
/// approved offline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineSection {
    /// Allowed at all. Default: true in taxi mode, false on a countertop.
    pub enabled: Option<bool>,
    /// Largest single offline approval ("25.00").
    pub max_amount: String,
    /// Largest total of offline approvals not yet forwarded.
    pub max_total: String,
    /// Most offline approvals not yet forwarded.
    pub max_count: u32,
    /// Schemes allowed offline (visa, mastercard, amex, jcb, discover, unionpay).
    pub schemes: Vec<String>,
}

impl Default for OfflineSection {
    fn default() -> Self {
        OfflineSection {
            enabled: None,
            max_amount: "50.00".into(),
            max_total: "250.00".into(),
            max_count: 20,
            schemes: ["visa", "mastercard", "amex", "jcb", "discover", "unionpay"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// `[operator]`: the supervisor PIN that unreferenced refunds need.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorSection {
    /// The supervisor PIN's hash, `pbkdf2-sha256$ITERATIONS$SALT$HASH` (from `kassa tool
    /// pin-hash`). Without it, unreferenced refunds are refused.
    pub supervisor_pin: Option<String>,
    /// Wrong PINs in a row before the lock-out.
    pub max_pin_failures: u32,
    /// Lock-out after too many wrong PINs, seconds.
    pub lockout_s: u64,
}

impl Default for OperatorSection {
    fn default() -> Self {
        OperatorSection {
            supervisor_pin: None,
            max_pin_failures: 3,
            lockout_s: 900,
        }
    }
}

/// PBKDF2 iterations for a new supervisor PIN hash.
pub const PIN_HASH_ITERATIONS: u32 = 100_000;

/// Hashes a supervisor PIN for `[operator] supervisor_pin` (PBKDF2-HMAC-SHA256, random salt).
pub fn hash_pin(pin: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random source: {e}"))?;
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(PIN_HASH_ITERATIONS).expect("non-zero"),
        &salt,
        pin.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${PIN_HASH_ITERATIONS}${}${}",
        emv::util::hex(&salt),
        emv::util::hex(&out)
    ))
}

/// Parses a supervisor PIN hash: (iterations, salt, hash).
fn parse_pin_hash(s: &str) -> Option<(std::num::NonZeroU32, Vec<u8>, Vec<u8>)> {
    let mut parts = s.split('$');
    if parts.next()? != "pbkdf2-sha256" {
        return None;
    }
    let iterations = std::num::NonZeroU32::new(parts.next()?.parse().ok()?)?;
    let salt = emv::util::unhex(parts.next()?).ok()?;
    let hash = emv::util::unhex(parts.next()?).ok()?;
    if parts.next().is_some() || salt.len() < 8 || hash.len() != 32 {
        return None;
    }
    Some((iterations, salt, hash))
}

/// Checks a PIN against a hash from [`hash_pin`] (constant time).
pub fn verify_pin(hash: &str, pin: &str) -> bool {
    parse_pin_hash(hash).is_some_and(|(iterations, salt, want)| {
        ring::pbkdf2::verify(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            pin.as_bytes(),
            &want,
        )
        .is_ok()
    })
}

/// One `[[capks]]` entry: a CA public key (EMV Book 2 §5.1; check sum per Book 2 §11.2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapkSection {
    /// RID, 10 hex digits.
    pub rid: String,
    /// Index, 2 hex digits.
    pub index: String,
    /// Modulus, hex.
    pub modulus: String,
    /// Exponent, hex (`03` or `010001`).
    pub exponent: String,
    /// SHA-1 check sum as published, hex (checked when given).
    pub checksum: Option<String>,
    /// Last day of validity, YYYY-MM-DD.
    pub expiry: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            terminal: TerminalSection::default(),
            acquirer: AcquirerSection::default(),
            aids: vec![
                AidSection::default(),
                AidSection {
                    aid: "A0000003330101".into(),
                    kernel: 7,
                    // TTQ byte 4 bit 8: fDDA version 01 supported (Book C-7).
                    ttq: Some("22004080".into()),
                    ..AidSection::default()
                },
                // Mastercard credit/debit (and Maestro by partial match on the RID would be
                // too wide: Maestro has its own AID) on kernel 2; no TTQ.
                AidSection {
                    aid: "A0000000041010".into(),
                    kernel: 2,
                    ttq: None,
                    ..AidSection::default()
                },
                AidSection {
                    aid: "A0000000043060".into(),
                    kernel: 2,
                    ttq: None,
                    ..AidSection::default()
                },
                AidSection {
                    aid: "A00000002501".into(),
                    kernel: 4,
                    ttq: None,
                    ..AidSection::default()
                },
                AidSection {
                    aid: "A0000000651010".into(),
                    kernel: 5,
                    ttq: None,
                    ..AidSection::default()
                },
                // Discover D-PAS (and Diners, same RID) on kernel 6 with a TTQ.
                AidSection {
                    aid: "A0000001523010".into(),
                    kernel: 6,
                    ttq: Some("22004000".into()),
                    ..AidSection::default()
                },
            ],
            reader: ReaderSection::default(),
            capks: Vec::new(),
            offline: OfflineSection::default(),
            operator: OperatorSection::default(),
            ui: UiSection::default(),
            indicators: IndicatorsSection::default(),
            printer: PrinterSection::default(),
            qr: QrSection::default(),
            tms: TmsSection::default(),
            update: UpdateSection::default(),
        }
    }
}

/// `[terminal]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalSection {
    /// Terminal ID (ISO 8583 field 41), 8 characters.
    pub terminal_id: String,
    /// Merchant ID (field 42), up to 15 characters.
    pub merchant_id: String,
    /// Merchant name for receipts.
    pub merchant_name: String,
    /// Merchant address line for receipts.
    pub merchant_address: String,
    /// ISO 3166-1 numeric country code (9F1A).
    pub country: u16,
    /// ISO 4217 numeric currency (5F2A).
    pub currency: u16,
    /// ISO 4217 alphabetic currency, for display.
    pub currency_code: String,
    /// Decimals of the currency.
    pub currency_exponent: u8,
    /// Largest amount the terminal accepts, as a decimal string ("5000.00").
    pub max_amount: String,
    /// Merchant category code.
    pub mcc: u16,
    /// Kernel 2 torn transaction log: how long a torn record may be recovered, seconds
    /// (Book C-2 DF811C, Max Lifetime of Torn Transaction Log Record).
    pub torn_lifetime_s: u32,
    /// `countertop` or `taxi`.
    pub mode: Mode,
    /// Tips before the tap (percentages or an amount). Default: true in taxi mode.
    pub tips: Option<bool>,
    /// The tip percentages the screen offers.
    pub tip_presets: Vec<u8>,
    /// How far a completion may exceed its pre-authorization, percent.
    pub completion_tolerance_pct: u8,
}

impl Default for TerminalSection {
    fn default() -> Self {
        TerminalSection {
            terminal_id: "KASSA001".into(),
            merchant_id: "KASSA0000000001".into(),
            merchant_name: "Kassa Demo Shop".into(),
            merchant_address: "Alexanderplatz 1, Berlin".into(),
            country: 276,
            currency: 978,
            currency_code: "EUR".into(),
            currency_exponent: 2,
            max_amount: "5000.00".into(),
            mcc: 5999,
            torn_lifetime_s: 300,
            mode: Mode::Countertop,
            tips: None,
            tip_presets: vec![10, 15, 20],
            completion_tolerance_pct: 15,
        }
    }
}

/// `[acquirer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcquirerSection {
    /// Start the built-in acquirer/issuer simulator in-process (emulator mode). False: connect
    /// to `address` (a real acquirer, or a separate `kassa host-sim`).
    pub simulator: bool,
    /// `host:port` of the acquirer. Ignored while `simulator` is true.
    pub address: String,
    /// Name the host certificate must carry.
    pub server_name: String,
    /// ISO 8583 dialect: `bcd87` or `ascii87`.
    pub dialect: String,
    /// TCP connect plus TLS handshake limit.
    pub connect_timeout_ms: u64,
    /// Limit for the authorization response.
    pub response_timeout_ms: u64,
    /// Allow TLS 1.2 besides 1.3.
    pub allow_tls12: bool,
    /// Acquirer CA (PEM). Default: `<data dir>/pki/ca.pem`.
    pub ca: Option<PathBuf>,
    /// Terminal certificate (PEM). Default: `<data dir>/pki/terminal.pem`.
    pub certificate: Option<PathBuf>,
    /// Terminal key (PEM). Default: `<data dir>/pki/terminal.key`.
    pub key: Option<PathBuf>,
}

impl Default for AcquirerSection {
    fn default() -> Self {
        AcquirerSection {
            simulator: true,
            address: "127.0.0.1:8583".into(),
            server_name: "127.0.0.1".into(),
            dialect: "bcd87".into(),
            connect_timeout_ms: 5_000,
            response_timeout_ms: 15_000,
            allow_tls12: false,
            ca: None,
            certificate: None,
            key: None,
        }
    }
}

/// One `[[aids]]` entry: an AID, its kernel and limits (Book B Table 3-1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AidSection {
    /// AID in hex.
    pub aid: String,
    /// Kernel ID (3 = Visa).
    pub kernel: u8,
    /// Accept card AIDs that extend this one.
    pub partial_match: bool,
    /// Contactless transaction limit (decimal string); at or above it, no contactless.
    pub contactless_limit: Option<String>,
    /// Contactless floor limit; above it, online.
    pub floor_limit: Option<String>,
    /// CVM required limit; at or above it, a CVM.
    pub cvm_limit: Option<String>,
    /// Terminal Transaction Qualifiers, hex (kernel 3).
    pub ttq: Option<String>,
    /// Allow a zero amount.
    pub zero_amount_allowed: bool,
    /// Status check: an amount of one currency unit goes online.
    pub status_check: bool,
    /// Use the card's extended selection data (9F29) in the final SELECT.
    pub extended_selection: bool,
    /// Kernels 2, 4, 5: Terminal Action Code - Default, 10 hex digits.
    pub tac_default: Option<String>,
    /// Kernels 2, 4, 5: Terminal Action Code - Denial.
    pub tac_denial: Option<String>,
    /// Kernels 2, 4, 5: Terminal Action Code - Online.
    pub tac_online: Option<String>,
    /// Kernel 2: Kernel Configuration (DF811B), 2 hex digits.
    pub kernel_configuration: Option<String>,
    /// Kernels 2, 4, 5: Terminal Capabilities byte 2 above the CVM limit (DF8118), hex.
    pub cvm_capability_cvm_required: Option<String>,
    /// Kernels 2, 4, 5: Terminal Capabilities byte 2 at or below it (DF8119), hex.
    pub cvm_capability_no_cvm: Option<String>,
    /// Kernel 2: contactless limit for cards that verify the cardholder themselves
    /// (DF8125); the `contactless_limit` applies to the others.
    pub on_device_cvm_limit: Option<String>,
    /// Kernel 2: Max Number of Torn Transaction Log Records (DF811D); 0 turns recovery off.
    pub torn_log_max: Option<u8>,
}

impl Default for AidSection {
    fn default() -> Self {
        AidSection {
            aid: "A0000000031010".into(),
            kernel: 3,
            partial_match: true,
            contactless_limit: Some("1000.00".into()),
            floor_limit: Some("0.00".into()),
            cvm_limit: Some("50.00".into()),
            ttq: Some("23004000".into()),
            zero_amount_allowed: false,
            status_check: false,
            extended_selection: true,
            tac_default: None,
            tac_denial: None,
            tac_online: None,
            kernel_configuration: None,
            cvm_capability_cvm_required: None,
            cvm_capability_no_cvm: None,
            on_device_cvm_limit: None,
            torn_log_max: None,
        }
    }
}

/// `[reader]`: which reader and its timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReaderSection {
    /// `sim` (emulator mode), `pn532-uart`, `pn532-spi`, `pn532-i2c`, `pcsc` or `libnfc`.
    pub kind: String,
    /// The device: a serial port for pn532-uart (/dev/ttyS0), /dev/spidevB.C for
    /// pn532-spi, /dev/i2c-N for pn532-i2c, a libnfc connection string for libnfc.
    pub port: Option<String>,
    /// pn532-uart: bits per second.
    pub baud: u32,
    /// pcsc: part of the reader's name (the first reader when absent).
    pub name: Option<String>,
    /// How long to wait for a tap.
    pub card_timeout_ms: u64,
    /// Limit for one APDU exchange.
    pub apdu_timeout_ms: u64,
    /// Emulator mode: radio bit rate of the simulated reader (106000...); 0 answers at once.
    pub sim_bitrate: u32,
    /// Emulator mode: a virtual card's processing time per plain command, ms.
    pub sim_processing_ms: u64,
    /// Emulator mode: a virtual card's processing time per cryptographic command, ms.
    pub sim_crypto_ms: u64,
    /// How many times one transaction may ask for the card (the first tap and each "present
    /// card again" after Outcome Try Again).
    pub max_presentations: u32,
}

impl Default for ReaderSection {
    fn default() -> Self {
        ReaderSection {
            kind: "sim".into(),
            port: None,
            baud: 115_200,
            name: None,
            card_timeout_ms: 60_000,
            apdu_timeout_ms: 2_000,
            sim_bitrate: 0,
            sim_processing_ms: 0,
            sim_crypto_ms: 0,
            max_presentations: 3,
        }
    }
}

/// The kernel 2/4/5 parameters of an `[[aids]]` entry over the defaults of
/// [`EmvModeParams`].
fn emv_mode(
    a: &AidSection,
    key: &dyn Fn(&str) -> String,
    exp: u8,
) -> Result<EmvModeParams, (String, String)> {
    let mut p = EmvModeParams::default();
    let bytes =
        |k: &str, v: &Option<String>, n: usize| -> Result<Option<Vec<u8>>, (String, String)> {
            v.as_deref()
                .map(|h| {
                    emv::util::unhex(h)
                        .ok()
                        .filter(|b| b.len() == n)
                        .ok_or_else(|| (key(k), format!("must be {n} bytes of hex")))
                })
                .transpose()
        };
    let five = |v: Vec<u8>| <[u8; 5]>::try_from(v).expect("length checked");
    if let Some(v) = bytes("tac_default", &a.tac_default, 5)? {
        p.tac_default = five(v);
    }
    if let Some(v) = bytes("tac_denial", &a.tac_denial, 5)? {
        p.tac_denial = five(v);
    }
    if let Some(v) = bytes("tac_online", &a.tac_online, 5)? {
        p.tac_online = five(v);
    }
    if let Some(v) = bytes("kernel_configuration", &a.kernel_configuration, 1)? {
        p.kernel_configuration = v[0];
    }
    if let Some(v) = bytes(
        "cvm_capability_cvm_required",
        &a.cvm_capability_cvm_required,
        1,
    )? {
        p.cvm_capability_cvm_required = v[0];
    }
    if let Some(v) = bytes("cvm_capability_no_cvm", &a.cvm_capability_no_cvm, 1)? {
        p.cvm_capability_no_cvm_required = v[0];
    }
    if let Some(l) = &a.on_device_cvm_limit {
        p.on_device_cvm_txn_limit =
            Some(parse_amount(l, exp).map_err(|e| (key("on_device_cvm_limit"), e.to_string()))?);
    }
    if let Some(n) = a.torn_log_max {
        p.torn_log_max = n;
    }
    Ok(p)
}

/// Why an amount typed by a person is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Empty.
    #[error("amount is empty")]
    Empty,
    /// A minus sign.
    #[error("amount {0:?} is negative")]
    Negative(String),
    /// Not digits and one decimal point.
    #[error("amount {0:?} is not a number like 12.34")]
    NotANumber(String),
    /// More decimals than the currency has.
    #[error("amount {text:?} has more than {exponent} decimals")]
    TooManyDecimals {
        /// What was typed.
        text: String,
        /// The currency's decimals.
        exponent: u8,
    },
    /// Zero.
    #[error("amount must be greater than zero")]
    Zero,
    /// Above the configured maximum.
    #[error("amount {text} is over the configured maximum of {max}")]
    OverMaximum {
        /// What was typed.
        text: String,
        /// The maximum, as configured.
        max: String,
    },
}

/// Parses a decimal amount ("12.34", "12", "12.5") into minor units for a currency with
/// `exponent` decimals.
pub fn parse_amount(text: &str, exponent: u8) -> Result<u64, AmountError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(AmountError::Empty);
    }
    if t.starts_with('-') {
        return Err(AmountError::Negative(t.into()));
    }
    let (whole, frac) = match t.split_once('.') {
        Some((w, f)) => (w, f),
        None => (t, ""),
    };
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    if whole.is_empty() && frac.is_empty() || !digits(whole) || !digits(frac) || whole.len() > 12 {
        return Err(AmountError::NotANumber(t.into()));
    }
    if frac.len() > exponent as usize {
        return Err(AmountError::TooManyDecimals {
            text: t.into(),
            exponent,
        });
    }
    let scale = 10u64.pow(exponent as u32);
    let w: u64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| AmountError::NotANumber(t.into()))?
    };
    let f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>()
            .map_err(|_| AmountError::NotANumber(t.into()))?
            * 10u64.pow((exponent as usize - frac.len()) as u32)
    };
    w.checked_mul(scale)
        .and_then(|v| v.checked_add(f))
        .ok_or_else(|| AmountError::NotANumber(t.into()))
}

/// The dynamic merchant-presented code for `amount_minor` (EMVCo MPM §4): the QR network's
/// merchant account template (26), the merchant category code, currency, amount, country,
/// name (the first 25 characters of `[terminal] merchant_name`) and city, the reference and
/// terminal label (62.05, 62.07), and the name in another script when configured (64).
pub fn merchant_code(
    cfg: &Config,
    amount_minor: u64,
    reference: &str,
) -> Result<String, emv::qr::QrError> {
    let t = &cfg.terminal;
    let q = &cfg.qr;
    let country = emv::codes::country(t.country)
        .map(|c| c.alpha2.to_string())
        .unwrap_or_default();
    let language = match (&q.alt_language, &q.alt_name) {
        (Some(l), Some(n)) => Some(MerchantLanguage {
            language: l.clone(),
            name: n.clone(),
            city: q.alt_city.clone(),
            rfu: vec![],
        }),
        _ => None,
    };
    use emv::qr::{
        AdditionalData, Initiation, MerchantAccount, MerchantLanguage, MerchantQr, Template,
    };
    MerchantQr {
        initiation: Some(Initiation::Dynamic),
        accounts: vec![MerchantAccount::Template(Template {
            id: 26,
            gui: q.network_gui.clone(),
            fields: vec![(
                1,
                q.network_merchant_id
                    .clone()
                    .unwrap_or_else(|| t.merchant_id.clone()),
            )],
        })],
        mcc: format!("{:04}", t.mcc),
        currency: format!("{:03}", t.currency),
        amount: Some(emv::qr::amount_text(amount_minor, t.currency_exponent)),
        tip: None,
        country,
        merchant_name: t.merchant_name.chars().take(25).collect(),
        merchant_city: q.merchant_city.clone(),
        postal_code: None,
        additional: Some(AdditionalData {
            reference_label: Some(reference.to_string()),
            terminal_label: Some(t.terminal_id.trim().to_string()),
            ..AdditionalData::default()
        }),
        language,
        rfu: vec![],
        unreserved: vec![],
    }
    .encode()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Config {
    /// Parses and checks configuration text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: one_line(&e.to_string()),
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    /// Checks values that parse but could not work.
    pub fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.into(),
            key: key.into(),
            message,
        };
        let t = &self.terminal;
        if t.terminal_id.len() != 8 || !t.terminal_id.bytes().all(|c| (0x20..0x7F).contains(&c)) {
            return Err(invalid(
                "terminal.terminal_id",
                "must be 8 printable ASCII characters".into(),
            ));
        }
        if t.merchant_id.is_empty() || t.merchant_id.len() > 15 {
            return Err(invalid(
                "terminal.merchant_id",
                "must be 1-15 characters".into(),
            ));
        }
        if t.country > 999 || t.currency > 999 {
            return Err(invalid(
                "terminal.country/currency",
                "must be ISO numeric codes (0-999)".into(),
            ));
        }
        if t.currency_exponent > 3 {
            return Err(invalid("terminal.currency_exponent", "must be 0-3".into()));
        }
        parse_amount(&t.max_amount, t.currency_exponent)
            .map_err(|e| invalid("terminal.max_amount", e.to_string()))?;
        if acquirer::iso8583::dialect(&self.acquirer.dialect).is_none() {
            return Err(invalid(
                "acquirer.dialect",
                format!(
                    "unknown dialect {:?} (bcd87, ascii87)",
                    self.acquirer.dialect
                ),
            ));
        }
        if self.acquirer.connect_timeout_ms == 0 || self.acquirer.response_timeout_ms == 0 {
            return Err(invalid("acquirer", "timeouts must be above zero".into()));
        }
        // The terminal's TLS key authenticates it to the acquirer: a copy anyone on the
        // device can read lets them pose as the terminal.
        if let Some(key) = &self.acquirer.key {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(key)
                && meta.permissions().mode() & 0o077 != 0
            {
                return Err(invalid(
                    "acquirer.key",
                    format!(
                        "{} can be read by other users (mode {:o}); chmod 600 it",
                        key.display(),
                        meta.permissions().mode() & 0o777
                    ),
                ));
            }
        }
        if self.aids.is_empty() {
            return Err(invalid("aids", "at least one AID is needed".into()));
        }
        if let Err(e) = self.reader_spec() {
            return Err(invalid("reader.kind", e.reason));
        }
        let p = &self.printer;
        match (p.kind.as_str(), &p.port, &p.address) {
            ("virtual" | "none", _, _) | ("serial" | "usb", Some(_), _) | ("tcp", _, Some(_)) => {}
            ("serial" | "usb", None, _) => {
                return Err(invalid(
                    "printer.port",
                    "the printer's device is needed".into(),
                ));
            }
            ("tcp", _, None) => {
                return Err(invalid(
                    "printer.address",
                    "host:port is needed (port 9100 on most printers)".into(),
                ));
            }
            (other, _, _) => {
                return Err(invalid(
                    "printer.kind",
                    format!("unknown kind {other:?} (virtual, serial, usb, tcp, none)"),
                ));
            }
        }
        if p.paper != 58 && p.paper != 80 {
            return Err(invalid("printer.paper", "58 or 80 (mm)".into()));
        }
        if let Err(e) = p.encoding.parse::<drivers::escpos::Encoding>() {
            return Err(invalid("printer.encoding", e));
        }
        if let Some(u) = &p.e_receipt_url
            && !u.contains('{')
        {
            return Err(invalid(
                "printer.e_receipt_url",
                "needs a placeholder: {reference}, {tid}, {batch}, {stan} or {id}".into(),
            ));
        }
        match self.indicators.kind.as_str() {
            "screen" | "none" => {}
            "gpio" => {
                if self.indicators.lights.len() != 4 {
                    return Err(invalid(
                        "indicators.lights",
                        "needs four GPIO pins, left to right".into(),
                    ));
                }
                if let Some(p) = self
                    .indicators
                    .lights
                    .iter()
                    .chain(self.indicators.buzzer.iter())
                    .find(|p| **p > 27)
                {
                    return Err(invalid(
                        "indicators.lights",
                        format!("GPIO {p} is not on the 40-pin header (0-27)"),
                    ));
                }
            }
            other => {
                return Err(invalid(
                    "indicators.kind",
                    format!("unknown kind {other:?} (screen, gpio, none)"),
                ));
            }
        }
        for (key, v) in [
            ("offline.max_amount", &self.offline.max_amount),
            ("offline.max_total", &self.offline.max_total),
        ] {
            parse_amount(v, t.currency_exponent).map_err(|e| invalid(key, e.to_string()))?;
        }
        for s in &self.offline.schemes {
            if !["visa", "mastercard", "amex", "jcb", "discover", "unionpay"].contains(&s.as_str())
            {
                return Err(invalid(
                    "offline.schemes",
                    format!(
                        "unknown scheme {s:?} (visa, mastercard, amex, jcb, discover, unionpay)"
                    ),
                ));
            }
        }
        if let Some(h) = &self.operator.supervisor_pin
            && parse_pin_hash(h).is_none()
        {
            return Err(invalid(
                "operator.supervisor_pin",
                "must be a hash from `kassa tool pin-hash` (pbkdf2-sha256$...)".into(),
            ));
        }
        // The language table lives in the UI crate, which the configuration fuzz target
        // (fuzz/fuzz_targets/config.rs) does not build: only there is this check left out.
        #[cfg(not(fuzzing))]
        for (key, code) in std::iter::once(("ui.language", &self.ui.language)).chain(
            self.ui
                .customer_languages
                .iter()
                .map(|c| ("ui.customer_languages", c)),
        ) {
            if ui::lang::by_code(code).is_none() {
                return Err(invalid(
                    key,
                    format!(
                        "unknown language {code:?} (en, zh_CN, zh_TW, ja, ko, ru, fr, de, es, th, vi, pt)"
                    ),
                ));
            }
        }
        if self.ui.customer_languages.len() > 4 {
            return Err(invalid(
                "ui.customer_languages",
                "at most four language buttons".into(),
            ));
        }
        if !(5..=120).contains(&self.ui.pin_timeout_s) {
            return Err(invalid(
                "ui.pin_timeout_s",
                "must be 5 to 120 seconds".into(),
            ));
        }
        if !["portrait", "portrait-854", "landscape"].contains(&self.ui.layout.as_str()) {
            return Err(invalid(
                "ui.layout",
                format!(
                    "unknown layout {:?} (portrait, portrait-854, landscape)",
                    self.ui.layout
                ),
            ));
        }
        if self.operator.max_pin_failures == 0 {
            return Err(invalid(
                "operator.max_pin_failures",
                "must be above zero".into(),
            ));
        }
        if t.completion_tolerance_pct > 100 {
            return Err(invalid(
                "terminal.completion_tolerance_pct",
                "must be 0-100".into(),
            ));
        }
        if t.tip_presets.iter().any(|p| *p == 0 || *p > 100) {
            return Err(invalid(
                "terminal.tip_presets",
                "percentages must be 1-100".into(),
            ));
        }
        self.terminal_config().map_err(|(k, m)| invalid(&k, m))?;
        Window::parse(&self.update.window).map_err(|m| invalid("update.window", m))?;
        if self.update.min_battery_pct > 100 {
            return Err(invalid("update.min_battery_pct", "must be 0-100".into()));
        }
        if let Some(url) = &self.update.url {
            HttpsUrl::parse(url).map_err(|m| invalid("update.url", m))?;
        }
        let tms = &self.tms;
        if !(60..=86_400).contains(&tms.poll_s) {
            return Err(invalid("tms.poll_s", "must be 60-86400".into()));
        }
        if !(5..=600).contains(&tms.timeout_s) {
            return Err(invalid("tms.timeout_s", "must be 5-600".into()));
        }
        if let Some(url) = &tms.url {
            HttpsUrl::parse(url).map_err(|m| invalid("tms.url", m))?;
        }
        if let Some(url) = &tms.heartbeat_url {
            HttpsUrl::parse(url).map_err(|m| invalid("tms.heartbeat_url", m))?;
        }
        for (i, k) in tms.keys.iter().enumerate() {
            k.trusted()
                .map_err(|m| invalid(&format!("tms.keys[{i}]"), m))?;
        }
        if self.qr.enabled {
            if self.qr.poll_ms < 200 || self.qr.poll_ms > 60_000 {
                return Err(invalid("qr.poll_ms", "must be 200-60000".into()));
            }
            if self.qr.timeout_s < 5 || self.qr.timeout_s > 3600 {
                return Err(invalid("qr.timeout_s", "must be 5-3600".into()));
            }
            // The code the terminal would show for the largest amount must obey the EMVCo
            // rules: a name, city or GUI that breaks one is named here, not at the till.
            let max = parse_amount(&t.max_amount, t.currency_exponent)
                .unwrap_or(1)
                .max(1);
            merchant_code(self, max, "K0000000000000000000")
                .map_err(|e| invalid(&format!("qr ({e})"), e.rule.to_string()))?;
        }
        Ok(())
    }

    /// The ESC/POS settings of `[printer]` (checked at load).
    pub fn escpos(&self) -> drivers::escpos::EscPosConfig {
        drivers::escpos::EscPosConfig {
            paper: if self.printer.paper == 80 {
                drivers::escpos::Paper::Mm80
            } else {
                drivers::escpos::Paper::Mm58
            },
            encoding: self
                .printer
                .encoding
                .parse()
                .unwrap_or(drivers::escpos::Encoding::Latin),
            native_qr: self.printer.native_qr,
        }
    }

    /// The e-receipt address of a transaction, from `[printer] e_receipt_url`.
    pub fn e_receipt_url(&self, journal_id: i64, batch: i64, stan: u32) -> Option<String> {
        let t = self.printer.e_receipt_url.as_ref()?;
        let tid = &self.terminal.terminal_id;
        let reference = format!("{tid}-{batch:03}-{stan:06}");
        Some(
            t.replace("{reference}", &reference)
                .replace("{tid}", tid)
                .replace("{batch}", &format!("{batch:03}"))
                .replace("{stan}", &format!("{stan:06}"))
                .replace("{id}", &journal_id.to_string()),
        )
    }

    /// The reader `[reader]` names.
    pub fn reader_spec(&self) -> Result<drivers::ReaderSpec, drivers::open::SpecError> {
        let r = &self.reader;
        let text = match (r.kind.as_str(), &r.port, &r.name) {
            ("pn532-uart", Some(p), _) => format!("pn532-uart:{p}@{}", r.baud),
            ("pcsc", _, Some(n)) => format!("pcsc:{n}"),
            (k, Some(p), _) if k != "sim" && k != "pcsc" => format!("{k}:{p}"),
            (k, _, _) => k.to_string(),
        };
        text.parse()
    }

    /// The simulated reader's timing (emulator mode).
    pub fn rf_timing(&self) -> drivers::RfTiming {
        drivers::RfTiming {
            bitrate: self.reader.sim_bitrate,
            processing: std::time::Duration::from_millis(self.reader.sim_processing_ms),
            crypto: std::time::Duration::from_millis(self.reader.sim_crypto_ms),
        }
    }

    /// Store-and-forward allowed (`[offline] enabled`, by default on in taxi mode).
    pub fn offline_enabled(&self) -> bool {
        self.offline
            .enabled
            .unwrap_or(self.terminal.mode == Mode::Taxi)
    }

    /// Tips allowed (`[terminal] tips`, by default on in taxi mode).
    pub fn tips_enabled(&self) -> bool {
        self.terminal
            .tips
            .unwrap_or(self.terminal.mode == Mode::Taxi)
    }

    /// An `[offline]` amount in minor units (checked by [`Config::check`]).
    pub fn offline_amount(&self, text: &str) -> u64 {
        parse_amount(text, self.terminal.currency_exponent).unwrap_or(0)
    }

    /// The maximum amount in minor units.
    pub fn max_amount_minor(&self) -> u64 {
        parse_amount(&self.terminal.max_amount, self.terminal.currency_exponent).unwrap_or(0)
    }

    /// Parses an amount typed by a person and checks it against the maximum.
    pub fn amount(&self, text: &str) -> Result<u64, AmountError> {
        let minor = parse_amount(text, self.terminal.currency_exponent)?;
        if minor == 0 {
            return Err(AmountError::Zero);
        }
        if minor > self.max_amount_minor() {
            return Err(AmountError::OverMaximum {
                text: text.trim().into(),
                max: self.terminal.max_amount.clone(),
            });
        }
        Ok(minor)
    }

    /// The kernel configuration. Errors name the key.
    pub fn terminal_config(&self) -> Result<TerminalConfig, (String, String)> {
        let exp = self.terminal.currency_exponent;
        let mut combinations = Vec::new();
        for (i, a) in self.aids.iter().enumerate() {
            let key = |k: &str| format!("aids[{i}].{k}");
            let aid = emv::util::unhex(&a.aid)
                .ok()
                .filter(|v| (5..=16).contains(&v.len()))
                .ok_or_else(|| (key("aid"), "must be 5-16 bytes of hex".to_string()))?;
            let limit = |k: &str, v: &Option<String>| -> Result<Option<u64>, (String, String)> {
                v.as_deref()
                    .map(|s| parse_amount(s, exp).map_err(|e| (key(k), e.to_string())))
                    .transpose()
            };
            let ttq = match &a.ttq {
                Some(h) => Some(
                    emv::util::unhex(h)
                        .ok()
                        .and_then(|v| <[u8; 4]>::try_from(v).ok())
                        .ok_or_else(|| (key("ttq"), "must be 4 bytes of hex".to_string()))?,
                ),
                None => None,
            };
            combinations.push(Combination {
                aid,
                kernel: KernelId(a.kernel),
                partial_match: a.partial_match,
                contactless_txn_limit: limit("contactless_limit", &a.contactless_limit)?,
                floor_limit: limit("floor_limit", &a.floor_limit)?,
                cvm_required_limit: limit("cvm_limit", &a.cvm_limit)?,
                ttq,
                zero_amount_allowed: a.zero_amount_allowed,
                status_check: a.status_check,
                extended_selection: a.extended_selection,
                emv_mode: emv_mode(a, &key, exp)?,
            });
        }
        let capks = if self.capks.is_empty() {
            let mut keys = sim::emvpki::ca_public_keys();
            keys.extend(published_test_capks().map_err(|e| ("capks".to_string(), e))?);
            keys
        } else {
            self.capks
                .iter()
                .enumerate()
                .map(|(i, c)| capk(i, c))
                .collect::<Result<_, _>>()?
        };
        Ok(TerminalConfig {
            capks,
            country: self.terminal.country,
            terminal_type: 0x22,
            // 9F33: manual key entry off, ICC; signature (paper), no CVM, online PIN; SDA, DDA, CDA.
            capabilities: [0x20, 0x68, 0xC8],
            additional_capabilities: [0x60, 0x00, 0xF0, 0xA0, 0x01],
            merchant_category_code: self.terminal.mcc,
            terminal_id: self.terminal.terminal_id.clone(),
            combinations,
        })
    }
}

/// The schemes' published test CA public keys (terminal-app/data/test-capks.toml), each with
/// its check sum verified.
pub fn published_test_capks() -> Result<Vec<emv::oda::CaPublicKey>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        capks: Vec<CapkSection>,
    }
    let f: File =
        toml::from_str(include_str!("../data/test-capks.toml")).map_err(|e| e.to_string())?;
    f.capks
        .iter()
        .enumerate()
        .map(|(i, c)| capk(i, c).map_err(|(k, m)| format!("test-capks.toml {k}: {m}")))
        .collect()
}

/// Checks and converts one `[[capks]]` entry.
fn capk(i: usize, c: &CapkSection) -> Result<emv::oda::CaPublicKey, (String, String)> {
    let key = |k: &str| format!("capks[{i}].{k}");
    let hex = |k: &str, v: &str| emv::util::unhex(v).map_err(|_| (key(k), "not hex".to_string()));
    let rid: [u8; 5] = hex("rid", &c.rid)?
        .try_into()
        .map_err(|_| (key("rid"), "must be 5 bytes".to_string()))?;
    let index = *hex("index", &c.index)?
        .first()
        .filter(|_| c.index.len() == 2)
        .ok_or_else(|| (key("index"), "must be 1 byte".to_string()))?;
    let modulus = hex("modulus", &c.modulus)?;
    if !(64..=248).contains(&modulus.len()) {
        return Err((key("modulus"), "must be 512-1984 bits".into()));
    }
    let exponent = hex("exponent", &c.exponent)?;
    if exponent != [3] && exponent != [1, 0, 1] {
        return Err((key("exponent"), "must be 03 or 010001".into()));
    }
    let expiry = match &c.expiry {
        Some(d) => {
            let parts: Vec<u16> = d.split('-').filter_map(|p| p.parse().ok()).collect();
            match parts.as_slice() {
                [y, m, dd] if *m >= 1 && *m <= 12 && *dd >= 1 && *dd <= 31 => {
                    Some(emv::util::Date {
                        year: *y,
                        month: *m as u8,
                        day: *dd as u8,
                    })
                }
                _ => return Err((key("expiry"), "must be YYYY-MM-DD".into())),
            }
        }
        None => None,
    };
    let mut pk = emv::oda::CaPublicKey {
        rid,
        index,
        modulus,
        exponent,
        checksum: None,
        expiry,
    };
    let computed = pk.compute_checksum(&emv::oda::RustCrypto);
    if let Some(cs) = &c.checksum {
        let given = hex("checksum", cs)?;
        if given != computed {
            return Err((
                key("checksum"),
                "does not match SHA-1(RID || index || modulus || exponent)".into(),
            ));
        }
    }
    pk.checksum = Some(computed);
    Ok(pk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("12.34", 2), Ok(1234));
        assert_eq!(parse_amount("12", 2), Ok(1200));
        assert_eq!(parse_amount("12.5", 2), Ok(1250));
        assert_eq!(parse_amount(".5", 2), Ok(50));
        assert_eq!(parse_amount("1000", 0), Ok(1000));
        assert!(matches!(
            parse_amount("-1", 2),
            Err(AmountError::Negative(_))
        ));
        assert!(matches!(
            parse_amount("1.234", 2),
            Err(AmountError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            parse_amount("1,23", 2),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("1.2.3", 2),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(parse_amount("", 2), Err(AmountError::Empty)));
        assert!(matches!(
            parse_amount(".", 2),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            parse_amount("99999999999999", 2),
            Err(AmountError::NotANumber(_))
        ));
        let c = Config::default();
        assert_eq!(c.amount("5000.00"), Ok(500_000));
        assert!(matches!(
            c.amount("5000.01"),
            Err(AmountError::OverMaximum { .. })
        ));
        assert_eq!(c.amount("0.00"), Err(AmountError::Zero));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("terminal.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cfg = Config::default();
        cfg.acquirer.key = Some(key.clone());
        let e = cfg.check(Path::new("kassa.toml")).unwrap_err().to_string();
        assert!(e.contains("acquirer.key") && e.contains("644"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        cfg.check(Path::new("kassa.toml")).unwrap();
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let text = "[terminal]\nterminal_id = \"KASSA002\"\ncurency = 978\n";
        let e = Config::parse(Path::new("k.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(e.contains("curency"), "{e}");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn capks_are_checked() {
        let cfg = Config::default().terminal_config().unwrap();
        // The Kassa test CAs and the 16 published scheme test keys, all check sums verified.
        assert_eq!(cfg.capks.len(), 6 + 16);
        assert!(
            cfg.capks
                .iter()
                .any(|k| k.rid == [0xA0, 0, 0, 0, 3] && k.index == 0x92)
        );
        let visa = &cfg.capks[0];
        let text = format!(
            "[[capks]]\nrid = \"A000000003\"\nindex = \"A1\"\nmodulus = \"{}\"\nexponent = \"03\"\nchecksum = \"{}\"\nexpiry = \"2030-12-31\"\n",
            emv::util::hex(&visa.modulus),
            emv::util::hex(&visa.checksum.unwrap())
        );
        let c = Config::parse(Path::new("k.toml"), &text).unwrap();
        assert_eq!(c.terminal_config().unwrap().capks.len(), 1);
        let bad = text.replace("\"03\"\nchecksum", "\"010001\"\nchecksum");
        let e = Config::parse(Path::new("k.toml"), &bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("capks[0].checksum"), "{e}");
    }

    #[test]
    fn ui_layout_and_languages_are_checked() {
        let p = Path::new("kassa.toml");
        let e = Config::parse(p, "[ui]\nlayout = \"upside-down\"\n").unwrap_err();
        assert!(e.to_string().contains("ui.layout"), "{e}");
        assert!(
            e.to_string().contains("portrait, portrait-854, landscape"),
            "{e}"
        );
        let e = Config::parse(p, "[ui]\nlanguage = \"hu\"\n").unwrap_err();
        assert!(e.to_string().contains("ui.language"), "{e}");
        let e = Config::parse(
            p,
            "[ui]\ncustomer_languages = [\"en\", \"ja\", \"ko\", \"de\", \"fr\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("at most four"), "{e}");
        let c = Config::parse(p, "[ui]\nlanguage = \"zh_TW\"\nlayout = \"landscape\"\n").unwrap();
        assert_eq!(c.ui.language, "zh_TW");
        let c = Config::parse(p, "[terminal]\nmode = \"taxi\"\n").unwrap();
        assert!(c.tips_enabled() && c.offline_enabled());
        assert!(!Config::default().tips_enabled() && !Config::default().offline_enabled());
        let h = hash_pin("2468").unwrap();
        assert!(verify_pin(&h, "2468") && !verify_pin(&h, "2469"));
        let e = Config::parse(p, "[operator]\nsupervisor_pin = \"2468\"\n").unwrap_err();
        assert!(e.to_string().contains("pin-hash"), "{e}");
    }

    #[test]
    fn defaults_are_valid_and_partial_files_merge() {
        Config::default().check(Path::new("defaults")).unwrap();
        let c = Config::parse(Path::new("k.toml"), "[terminal]\nmax_amount = \"20.00\"\n").unwrap();
        assert_eq!(c.max_amount_minor(), 2000);
        assert_eq!(c.terminal.terminal_id, "KASSA001");
        let e = Config::parse(Path::new("k.toml"), "[acquirer]\ndialect = \"xml\"\n").unwrap_err();
        assert!(e.to_string().contains("acquirer.dialect"), "{e}");
        let e = Config::parse(Path::new("k.toml"), "[[aids]]\naid = \"A0\"\n").unwrap_err();
        assert!(e.to_string().contains("aids[0].aid"), "{e}");
    }
}

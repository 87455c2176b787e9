//! The acquirer/issuer host simulator: ISO 8583 over mutual TLS on a local port, serving many
//! terminals at once.
//!
//! - 0100/0200: verifies the ARQC in field 55 with the issuer master key of the card's PAN and
//!   the cryptogram version named in the IAD, checks expiry and the account balance, answers
//!   with an authorization code, RRN and the ARPC (method 1 or 2), or a decline (05, 51, 54...).
//! - 0220/0221: records an advice of an offline approval.
//! - 0400/0401: reverses the original (found by terminal and STAN), restoring the balance.
//! - 0500: reconciles the terminal's batch totals with its ledger (00 in balance, 95 not).
//! - 0800: sign-on, sign-off, echo.
//! - QR payments ([`acquirer::qr`]): a 0200 with POS entry mode 032 registers a
//!   merchant-presented order (answer 09, pending) or decides a consumer-presented code at
//!   once (wallet formats it knows: EMVCo CPM, UnionPay, WeChat Pay and Alipay payment
//!   codes); 0600 reports an order's status (00 paid, 09 pending, 25 unknown); 0400 cancels
//!   or refunds it. [`HostSim::wallet`] plays the customer's wallet: it scans the code the
//!   terminal shows and pays it, rejects it, or does nothing.
//!
//! Rules ([`HostRules`], a TOML file for `kassa host-sim --rules`) inject behaviour: a response
//! code above an amount or for a PAN, a delay, a dropped connection, a wrong STAN, silence.
//! Every decision goes into a ledger (masked PANs) that tests and reconciliation read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use acquirer::iso8583::{Dialect, Message, mask};
use acquirer::link::{read_frame, write_frame};
use acquirer::messages::{BatchTotals, batch_totals};
use acquirer::pin::{EncipheredPin, PinDigits};
use emv::crypto::{
    AcData, Cvn, Key16, application_cryptogram, derive_icc_master_key, issuer_authentication_data,
};
use emv::tags as t;
use emv::tlv::{self, TagStore};
use rustls::ServerConfig;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::card::Profile;

/// An issuer the simulator acts for: cards whose PAN starts with `pan_prefix` have
/// cryptograms under keys derived from `imk_ac`, and the PIN `pin` (checked when a request
/// carries an online PIN).
#[derive(Clone, Debug)]
pub struct IssuerKey {
    /// PAN prefix (BIN or full PAN).
    pub pan_prefix: String,
    /// Issuer master key for application cryptograms.
    pub imk_ac: Key16,
    /// The cardholder's PIN as the issuer holds it (test cards only); `Debug` hides it.
    pub pin: Option<PinDigits>,
}

/// How many wrong online PINs in a row the issuer allows before answering 75 (PIN tries
/// exceeded) to every further PIN for that card.
pub const ONLINE_PIN_TRY_LIMIT: u8 = 3;

impl IssuerKey {
    /// The issuer keys of the given card profiles (one entry per card PAN).
    pub fn from_profiles(profiles: &[Profile]) -> Vec<IssuerKey> {
        profiles
            .iter()
            .filter_map(|p| {
                Some(IssuerKey {
                    pan_prefix: p.card.pan.clone(),
                    imk_ac: Key16::from_hex(&p.keys.imk_ac)?,
                    pin: p
                        .card
                        .pin
                        .as_deref()
                        .and_then(|pin| PinDigits::parse(pin).ok()),
                })
            })
            .collect()
    }
}

/// Faults the host can be told to have for every request (`kassa pay --fault host-silent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFault {
    /// Read requests and never answer them.
    Silent,
}

/// What a rule does to a request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Close the connection without answering (after reading the request).
    Drop,
    /// Answer with the STAN plus one.
    WrongStan,
    /// Never answer (keep the connection open).
    Silent,
    /// Send the first half of the response frame, then close the connection.
    Truncate,
}

/// One rule. Every matcher given must match; then the effects apply.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Matches amounts (field 4, minor units) above this.
    pub amount_above: Option<u64>,
    /// Matches PANs ending with these digits.
    pub pan_ends_with: Option<String>,
    /// Matches this MTI, e.g. "0100".
    pub mti: Option<String>,
    /// Answer with this response code instead of deciding.
    pub respond: Option<String>,
    /// Answer after this many milliseconds.
    pub delay_ms: Option<u64>,
    /// Drop, answer with a wrong STAN, or stay silent.
    pub action: Option<RuleAction>,
    /// Apply to the first matching request only.
    #[serde(default)]
    pub once: bool,
}

/// A card account with a balance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The card's PAN ends with these digits.
    pub pan_ends_with: String,
    /// Open-to-buy in minor units.
    pub balance: u64,
}

/// The host's behaviour, from a TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRules {
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Balance of cards not listed in `accounts`; none means unlimited.
    pub default_balance: Option<u64>,
    /// Per-card balances.
    #[serde(default)]
    pub accounts: Vec<Account>,
}

impl HostRules {
    /// Parses rules TOML; errors name the key and line.
    pub fn parse(text: &str) -> Result<HostRules, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }
}

/// Host configuration.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Issuers whose cryptograms it verifies.
    pub issuers: Vec<IssuerKey>,
    /// The ISO 8583 dialect.
    pub dialect: &'static Dialect,
    /// A fault to inject for every request, if any.
    pub fault: Option<HostFault>,
    /// Rules and balances.
    pub rules: HostRules,
}

/// What happened to a request, as the ledger keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// Approved (or advised).
    Approved,
    /// Declined.
    Declined,
    /// Approved, then reversed.
    Reversed,
    /// No answer was sent (silent rule, dropped connection).
    Unanswered,
    /// A reversal, network or reconciliation message.
    Administrative,
    /// A QR order registered and waiting for the customer's wallet.
    Pending,
}

/// One request as the host saw it. The PAN is masked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    /// Request MTI.
    pub mti: u16,
    /// STAN of the request.
    pub stan: String,
    /// Terminal ID.
    pub terminal_id: String,
    /// Masked PAN.
    pub pan: String,
    /// Amount in minor units.
    pub amount_minor: u64,
    /// True for refunds (processing code 20).
    pub refund: bool,
    /// Response code sent back (empty when no answer was sent).
    pub response_code: String,
    /// Authorization code sent back.
    pub auth_code: Option<String>,
    /// Status.
    pub status: EntryStatus,
    /// Why, in words.
    pub reason: String,
    /// True once included in a reconciled batch.
    pub settled: bool,
    /// A pre-authorization (0100 with POS condition code 06): funds held, not settled itself.
    #[serde(default)]
    pub preauth: bool,
    /// A pre-authorization a completion (0220 naming it in field 90) has settled.
    #[serde(default)]
    pub completed: bool,
    /// A QR payment's reference (field 48.02).
    #[serde(default)]
    pub qr_reference: Option<String>,
    /// The wallet that paid a QR payment.
    #[serde(default)]
    pub wallet: Option<String>,
    /// An online PIN came with the request: whether it was the cardholder's.
    #[serde(default)]
    pub pin_verified: Option<bool>,
    /// The KSN the PIN block came under (field 53, hex): no two may ever be the same.
    #[serde(default)]
    pub pin_ksn: Option<String>,
}

/// A running host simulator.
pub struct HostSim {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
    ledger_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for HostSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSim").field("addr", &self.addr).finish()
    }
}

#[derive(Default)]
struct State {
    ledger: Vec<LedgerEntry>,
    /// Balances by full PAN, in memory only.
    balances: HashMap<String, u64>,
    /// Indices of `once` rules already used.
    spent_rules: Vec<usize>,
    /// The last batch each terminal closed: a repeated 0500 (its answer was lost) gets the
    /// same answer again. In memory only.
    last_closed: HashMap<String, BatchTotals>,
    /// Wrong online PINs in a row, by full PAN. In memory only.
    pin_failures: HashMap<String, u8>,
}

struct Shared {
    cfg: HostConfig,
    state: Arc<Mutex<State>>,
    sequence: AtomicU32,
    /// Where the ledger is kept across restarts, if anywhere.
    ledger_file: Option<std::path::PathBuf>,
}

/// Reads a ledger file written by a simulator started with a ledger file. A missing file is an
/// empty ledger.
pub fn read_ledger(path: &std::path::Path) -> std::io::Result<Vec<LedgerEntry>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Writes the ledger atomically (a temporary file, then rename): a reader never sees half of
/// it, and a simulator killed mid-write keeps the previous version.
fn write_ledger(path: &std::path::Path, ledger: &[LedgerEntry]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let json = serde_json::to_vec_pretty(ledger)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

impl HostSim {
    /// Listens on `listen` (e.g. `127.0.0.1:0`) with the given TLS configuration, which should
    /// require client certificates.
    pub async fn start(
        listen: &str,
        tls: ServerConfig,
        cfg: HostConfig,
    ) -> std::io::Result<HostSim> {
        Self::start_with_ledger(listen, tls, cfg, None).await
    }

    /// [`start`](Self::start), keeping the ledger in `ledger_file` (JSON, rewritten after
    /// every request; an existing file is loaded first, so a restarted simulator remembers
    /// what it approved, reversed and was advised of).
    pub async fn start_with_ledger(
        listen: &str,
        tls: ServerConfig,
        cfg: HostConfig,
        ledger_file: Option<std::path::PathBuf>,
    ) -> std::io::Result<HostSim> {
        let ledger = match &ledger_file {
            Some(p) => read_ledger(p)?,
            None => Vec::new(),
        };
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let state = Arc::new(Mutex::new(State {
            ledger,
            ..State::default()
        }));
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0)
            % 100_000;
        let shared = Arc::new(Shared {
            cfg,
            state: state.clone(),
            sequence: AtomicU32::new(seed),
            ledger_file: ledger_file.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(tcp, acceptor, shared).await {
                        tracing::debug!(%peer, error = %e, "host simulator connection ended");
                    }
                });
            }
        });
        Ok(HostSim {
            addr,
            state,
            task,
            ledger_file,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The requests seen so far.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state
            .lock()
            .map(|s| s.ledger.clone())
            .unwrap_or_default()
    }

    /// Plays the customer's wallet on a merchant-presented code: `payload` is what the
    /// wallet scanned from the terminal's screen. The code must be a valid EMVCo code whose
    /// reference (62.05) names a pending order of the same amount.
    pub fn wallet(&self, payload: &str, action: WalletAction) -> Result<WalletResult, String> {
        let qr = emv::qr::MerchantQr::decode(payload).map_err(|e| e.to_string())?;
        let reference = qr
            .reference()
            .ok_or("the code has no reference (62.05)")?
            .to_string();
        let exponent = qr
            .currency
            .parse::<u16>()
            .ok()
            .and_then(emv::codes::currency)
            .map(|c| c.exponent)
            .unwrap_or(2);
        let amount = qr
            .amount
            .as_deref()
            .and_then(|a| emv::qr::amount_minor(a, exponent))
            .ok_or("the code has no amount: a static code needs the customer to type one")?;
        let wallet = wallet_of(&qr);
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let order = state
            .ledger
            .iter_mut()
            .rev()
            .find(|e| e.qr_reference.as_deref() == Some(reference.as_str()) && e.mti == 200)
            .ok_or_else(|| format!("no order {reference} at the host"))?;
        if order.status != EntryStatus::Pending {
            return Err(format!(
                "order {reference} is {:?}, not pending",
                order.status
            ));
        }
        if order.amount_minor != amount {
            return Err(format!(
                "the code says {amount}, the order {}",
                order.amount_minor
            ));
        }
        let result = match action {
            WalletAction::Ignore => WalletResult {
                reference,
                response_code: "09".into(),
                auth_code: None,
            },
            WalletAction::Reject => {
                order.status = EntryStatus::Declined;
                order.response_code = "05".into();
                order.reason = "the customer rejected the payment in the wallet".into();
                WalletResult {
                    reference,
                    response_code: "05".into(),
                    auth_code: None,
                }
            }
            WalletAction::Complete => {
                let secs = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let auth = auth_code(secs ^ u64::from(order.amount_minor as u32), secs);
                order.status = EntryStatus::Approved;
                order.response_code = "00".into();
                order.auth_code = Some(auth.clone());
                order.wallet = Some(wallet.to_string());
                order.pan = "wallet".into();
                order.reason = format!("paid with {wallet}");
                WalletResult {
                    reference,
                    response_code: "00".into(),
                    auth_code: Some(auth),
                }
            }
        };
        if let Some(path) = &self.ledger_file
            && let Err(e) = write_ledger(path, &state.ledger)
        {
            tracing::warn!(error = %e, path = %path.display(), "ledger not written");
        }
        Ok(result)
    }

    /// Stops listening. Open connections end when their peers close them.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for HostSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the simulated wallet does with a code it scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletAction {
    /// The customer confirms: the order is paid.
    Complete,
    /// The customer (or the wallet's issuer) refuses: the order is declined (05).
    Reject,
    /// The customer walks away: the order stays pending until the terminal gives up.
    Ignore,
}

impl std::str::FromStr for WalletAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "complete" => Ok(WalletAction::Complete),
            "reject" => Ok(WalletAction::Reject),
            "ignore" => Ok(WalletAction::Ignore),
            _ => Err(format!(
                "unknown wallet action {s:?} (complete, reject, ignore)"
            )),
        }
    }
}

/// What the wallet did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletResult {
    /// The order's reference.
    pub reference: String,
    /// 00 paid, 05 rejected, 09 still pending.
    pub response_code: String,
    /// The authorization code of a paid order.
    pub auth_code: Option<String>,
}

/// The wallet network a merchant-presented code is paid through, by its first merchant
/// account: UnionPay's AID prefix or scheme IDs, else the template's GUI.
fn wallet_of(qr: &emv::qr::MerchantQr) -> String {
    use emv::qr::MerchantAccount;
    match qr.accounts.first() {
        Some(MerchantAccount::Scheme { id, .. }) => MerchantAccount::scheme_name(*id)
            .unwrap_or("Wallet")
            .to_string(),
        Some(MerchantAccount::Template(t)) if t.gui.starts_with("A000000333") => "UnionPay".into(),
        Some(MerchantAccount::Template(t)) if t.gui.eq_ignore_ascii_case("br.gov.bcb.pix") => {
            "Pix".into()
        }
        Some(MerchantAccount::Template(t)) => t.gui.clone(),
        None => "Wallet".into(),
    }
}

/// The wallet a consumer-presented code belongs to, by the formats the simulator knows:
/// an EMVCo consumer-presented code (base64 of BER-TLV starting 85 05 "CPV01"), and the
/// numeric payment codes of UnionPay (19 digits from 62), WeChat Pay (18 digits from 10-15)
/// and Alipay (16-24 digits from 25-30).
pub fn consumer_code_wallet(code: &str) -> Option<&'static str> {
    // EMVCo CPM §4: the payload format indicator 85 05 "CPV01" comes first.
    if let Some(head) = base64_prefix(code, 7)
        && head == [0x85, 0x05, b'C', b'P', b'V', b'0', b'1']
    {
        return Some("EMVCo CPM");
    }
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = code.get(..2)?.parse().ok()?;
    match (code.len(), prefix) {
        (19, 62) => Some("UnionPay"),
        (18, 10..=15) => Some("WeChat Pay"),
        (16..=24, 25..=30) => Some("Alipay"),
        _ => None,
    }
}

/// The first `n` bytes of standard base64 text, if the whole text is base64.
fn base64_prefix(text: &str, n: usize) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let body = text.trim_end_matches('=');
    if !text.len().is_multiple_of(4) || text.len() - body.len() > 2 {
        return None;
    }
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (out.len() >= n).then(|| out[..n].to_vec())
}

/// An authorization code that differs per approval: six alphanumerics.
fn auth_code(seq: u64, secs: u64) -> String {
    let n = seq.wrapping_mul(2_654_435_761) ^ secs;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    (0..6)
        .map(|i| ALPHABET[((n >> (5 * i)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// A QR payment request (0200, POS entry mode 032) or status request (0600).
fn decide_qr(
    req: &Message,
    entry: &mut LedgerEntry,
    state: &mut State,
    resp: &mut Message,
    forced: Option<&str>,
    seq: u64,
    secs: u64,
) -> (String, String) {
    use acquirer::qr::{QrMode, field48, parse_field48, sub};
    let Some(items) = req.get_str(48).and_then(|f| parse_field48(&f).ok()) else {
        return ("30".into(), "field 48 missing or malformed".into());
    };
    let get = |id: u8| items.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone());
    let (Some(mode), Some(reference)) = (
        get(sub::MODE).and_then(|m| QrMode::from_code(&m)),
        get(sub::REFERENCE),
    ) else {
        return ("30".into(), "QR mode or reference missing".into());
    };
    entry.qr_reference = Some(reference.clone());
    let tid = entry.terminal_id.clone();
    let mut echo = vec![(sub::REFERENCE, reference.clone())];
    let outcome = if req.mti == 600 {
        entry.status = EntryStatus::Administrative;
        let order = state.ledger.iter().rev().find(|e| {
            e.mti == 200 && e.terminal_id == tid && e.qr_reference.as_deref() == Some(&reference)
        });
        match order {
            None => ("25".into(), "no such QR order".into()),
            Some(o) => match o.status {
                EntryStatus::Pending => ("09".into(), "waiting for the wallet".into()),
                EntryStatus::Approved => {
                    if let Some(a) = &o.auth_code {
                        resp.set_str(38, a);
                    }
                    if let Some(w) = &o.wallet {
                        echo.push((sub::WALLET, w.clone()));
                    }
                    ("00".into(), "paid".into())
                }
                EntryStatus::Reversed => ("05".into(), "cancelled".into()),
                _ if !o.response_code.is_empty() => (o.response_code.clone(), "declined".into()),
                _ => ("05".into(), "not paid".into()),
            },
        }
    } else if state.ledger.iter().any(|e| {
        e.mti == 200 && e.terminal_id == tid && e.qr_reference.as_deref() == Some(&reference)
    }) {
        entry.status = EntryStatus::Declined;
        ("94".into(), "duplicate QR reference".into())
    } else if let Some(code) = forced {
        entry.status = if code == "00" {
            EntryStatus::Approved
        } else {
            EntryStatus::Declined
        };
        (code.to_string(), "rule: forced response code".into())
    } else {
        match mode {
            QrMode::MerchantPresented => {
                entry.status = EntryStatus::Pending;
                (
                    "09".into(),
                    "order registered; waiting for the wallet".into(),
                )
            }
            QrMode::ConsumerPresented => {
                let code = get(sub::CONSUMER_CODE).unwrap_or_default();
                match consumer_code_wallet(&code) {
                    Some(wallet) => {
                        let auth = auth_code(seq, secs);
                        resp.set_str(38, &auth);
                        entry.auth_code = Some(auth);
                        entry.status = EntryStatus::Approved;
                        entry.wallet = Some(wallet.to_string());
                        entry.pan = "wallet".into();
                        echo.push((sub::WALLET, wallet.to_string()));
                        ("00".into(), format!("paid with {wallet}"))
                    }
                    None => {
                        entry.status = EntryStatus::Declined;
                        ("14".into(), "not a payment code of a known wallet".into())
                    }
                }
            }
        }
    };
    let refs: Vec<(u8, &str)> = echo.iter().map(|(i, v)| (*i, v.as_str())).collect();
    resp.set_str(48, &field48(&refs));
    outcome
}

/// What to do with one request.
struct Decision {
    response: Option<Message>,
    delay: Duration,
    drop: bool,
    truncate: bool,
}

async fn serve(tcp: TcpStream, acceptor: TlsAcceptor, shared: Arc<Shared>) -> std::io::Result<()> {
    tcp.set_nodelay(true)?;
    let mut tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timeout"))??;
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(300), read_frame(&mut tls)).await
        {
            Ok(Ok(f)) => f,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()), // idle connection
        };
        let request = match Message::decode(&frame, shared.cfg.dialect) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "host simulator: undecodable request; closing");
                return Ok(());
            }
        };
        let d = decide(&request, &shared);
        if let Some(path) = &shared.ledger_file {
            let state = match shared.state.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            if let Err(e) = write_ledger(path, &state.ledger) {
                tracing::warn!(error = %e, path = %path.display(), "ledger not written");
            }
        }
        if !d.delay.is_zero() {
            tokio::time::sleep(d.delay).await;
        }
        if d.drop {
            return Ok(());
        }
        if let Some(r) = d.response {
            let bytes = r
                .encode(shared.cfg.dialect)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            if d.truncate {
                use tokio::io::AsyncWriteExt;
                let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
                frame.extend_from_slice(&bytes[..bytes.len() / 2]);
                tls.write_all(&frame).await?;
                tls.flush().await?;
                let _ = tls.shutdown().await;
                return Ok(());
            }
            write_frame(&mut tls, &bytes).await?;
        }
    }
}

/// Why the issuer declined, or how it approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerDecision {
    /// Cryptogram verified; ARPC computed with ARC "00".
    Approve {
        /// Issuer authentication data (tag 91).
        issuer_auth_data: Vec<u8>,
    },
    /// Declined with this response code and reason.
    Decline {
        /// ISO 8583 response code.
        code: &'static str,
        /// Reason.
        reason: String,
        /// Issuer authentication data when a cryptogram could still be answered.
        issuer_auth_data: Vec<u8>,
    },
}

/// The issuer's check of an authorization: finds the key for the PAN, verifies the ARQC with
/// the cryptogram version named in the IAD, and produces the issuer authentication data.
pub fn issuer_decide(
    issuers: &[IssuerKey],
    pan: &str,
    psn: u8,
    icc: &TagStore,
    amount_minor: u64,
) -> IssuerDecision {
    let decline = |code, reason: &str| IssuerDecision::Decline {
        code,
        reason: reason.to_string(),
        issuer_auth_data: Vec::new(),
    };
    let Some(issuer) = issuers.iter().find(|i| pan.starts_with(&i.pan_prefix)) else {
        return decline("14", "no issuer for this PAN");
    };
    let Some(mk) = derive_icc_master_key(&issuer.imk_ac, pan, psn) else {
        return decline("14", "PAN not numeric");
    };
    let Some(cvn) = icc.get(t::IAD).and_then(Cvn::from_iad) else {
        return decline("30", "unsupported cryptogram version");
    };
    let data = match AcData::from_store(icc) {
        Ok(i) => i,
        Err(tag) => return decline("30", &format!("field 55 lacks {tag}")),
    };
    if emv::util::parse_bcd_n(&data.amount_authorised) != Some(amount_minor) {
        return decline("13", "field 4 and 9F02 differ");
    }
    let Some(arqc) = icc
        .get(t::APPLICATION_CRYPTOGRAM)
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
    else {
        return decline("30", "field 55 lacks 9F26");
    };
    if application_cryptogram(cvn, &mk, &data) != Some(arqc) {
        return decline("05", "ARQC verification failed");
    }
    IssuerDecision::Approve {
        issuer_auth_data: issuer_authentication_data(cvn, &mk, &data, arqc, *b"00"),
    }
}

/// The issuer's check of an online PIN (fields 52 and 53): derives the PIN key from the
/// simulator's test BDK for the KSN's scheme ([`crate::pinkeys`]), deciphers the block
/// against the PAN and compares it with the card's PIN. Wrong PINs are counted per card:
/// the [`ONLINE_PIN_TRY_LIMIT`]th in a row, and every PIN after it, answers 75; a right PIN
/// before that clears the count. A block that does not decipher (another key, damaged) is
/// 55 without counting against the cardholder.
pub fn check_online_pin(
    issuers: &[IssuerKey],
    pan: &str,
    block: &[u8],
    ksn: Option<&[u8]>,
    failures: &mut HashMap<String, u8>,
) -> Result<(), (&'static str, String)> {
    let wrong = |why: &str| ("55", why.to_string());
    let failed = failures.get(pan).copied().unwrap_or(0);
    if failed >= ONLINE_PIN_TRY_LIMIT {
        return Err(("75", "PIN tries exceeded".into()));
    }
    let Some(ksn) = ksn else {
        return Err(wrong("PIN block without a KSN (field 53)"));
    };
    let enciphered =
        EncipheredPin::from_fields(block, ksn).map_err(|e| wrong(&format!("PIN data: {e}")))?;
    let entered = enciphered
        .decipher(&crate::pinkeys::aes_bdk(), &crate::pinkeys::tdes_bdk(), pan)
        .map_err(|e| wrong(&format!("PIN block does not decipher under the BDK: {e}")))?;
    let Some(on_file) = issuers
        .iter()
        .find(|i| pan.starts_with(&i.pan_prefix))
        .and_then(|i| i.pin.as_ref())
    else {
        return Err(wrong("no PIN on file for this card"));
    };
    if entered.matches(on_file) {
        failures.remove(pan);
        return Ok(());
    }
    let failed = failed + 1;
    failures.insert(pan.to_string(), failed);
    if failed >= ONLINE_PIN_TRY_LIMIT {
        Err((
            "75",
            format!("incorrect PIN ({failed} of {ONLINE_PIN_TRY_LIMIT}): tries exceeded"),
        ))
    } else {
        Err((
            "55",
            format!("incorrect PIN ({failed} of {ONLINE_PIN_TRY_LIMIT})"),
        ))
    }
}

/// This month as YYMM, the form of ISO 8583 field 14.
fn current_yymm() -> u32 {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    (now.year() as u32 % 100) * 100 + now.month()
}

fn rule_matches(r: &Rule, req: &Message, pan: &str, amount: u64) -> bool {
    r.amount_above.is_none_or(|a| amount > a)
        && r.pan_ends_with.as_deref().is_none_or(|s| pan.ends_with(s))
        && r.mti.as_deref().is_none_or(|m| m == req.mti_str())
}

fn echo_fields(req: &Message, resp: &mut Message) {
    for n in [2u8, 3, 4, 7, 11, 12, 13, 41, 42, 49, 90] {
        if let Some(v) = req.get(n) {
            resp.set(n, v.to_vec());
        }
    }
}

fn decide(req: &Message, shared: &Shared) -> Decision {
    let stan = req.get_str(11).unwrap_or_default();
    let tid = req.get_str(41).unwrap_or_default();
    let pan_from_track2 = || {
        req.get_str(35)
            .and_then(|t2| t2.split(['=', 'D']).next().map(str::to_string))
    };
    let pan = req.get_str(2).or_else(pan_from_track2).unwrap_or_default();
    let amount: u64 = req.get_str(4).and_then(|a| a.parse().ok()).unwrap_or(0);
    let refund = req.get_str(3).is_some_and(|p| p.starts_with("20"));
    let mut entry = LedgerEntry {
        mti: req.mti,
        stan: stan.clone(),
        terminal_id: tid.clone(),
        pan: mask(&pan),
        amount_minor: amount,
        refund,
        response_code: String::new(),
        auth_code: None,
        status: EntryStatus::Administrative,
        reason: String::new(),
        settled: false,
        preauth: matches!(req.mti, 100 | 200) && req.get_str(25).as_deref() == Some("06"),
        completed: false,
        qr_reference: None,
        wallet: None,
        pin_verified: None,
        pin_ksn: req
            .get(53)
            .map(|k| k.iter().map(|b| format!("{b:02X}")).collect()),
    };
    let mut state = match shared.state.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    let mut decision = Decision {
        response: None,
        delay: Duration::ZERO,
        drop: false,
        truncate: false,
    };
    // Rules first.
    let mut forced_code: Option<String> = None;
    let mut wrong_stan = false;
    let rule = shared.cfg.rules.rules.iter().enumerate().find(|(i, r)| {
        rule_matches(r, req, &pan, amount) && !(r.once && state.spent_rules.contains(i))
    });
    if let Some((i, r)) = rule {
        if r.once {
            state.spent_rules.push(i);
        }
        decision.delay = Duration::from_millis(r.delay_ms.unwrap_or(0));
        forced_code = r.respond.clone();
        match r.action {
            Some(RuleAction::Drop) => decision.drop = true,
            Some(RuleAction::Silent) => {
                decision.drop = false;
                entry.reason = "rule: silent".into();
                entry.status = if matches!(req.mti, 100 | 200) {
                    EntryStatus::Unanswered
                } else {
                    EntryStatus::Administrative
                };
                state.ledger.push(entry);
                return decision;
            }
            Some(RuleAction::WrongStan) => wrong_stan = true,
            Some(RuleAction::Truncate) => decision.truncate = true,
            None => {}
        }
    }
    if shared.cfg.fault == Some(HostFault::Silent) {
        entry.reason = "fault: silent host".into();
        entry.status = EntryStatus::Unanswered;
        state.ledger.push(entry);
        return decision;
    }
    let mut resp = Message::new(req.mti + 10);
    echo_fields(req, &mut resp);
    let seq = shared.sequence.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let is_qr = (req.mti == 200 && req.get_str(22).as_deref() == Some("032")) || req.mti == 600;
    let (code, reason, iad): (String, String, Vec<u8>) = match req.mti {
        _ if is_qr => {
            let (c, r) = decide_qr(
                req,
                &mut entry,
                &mut state,
                &mut resp,
                forced_code.as_deref(),
                u64::from(seq),
                secs,
            );
            (c, r, Vec::new())
        }
        100 | 200 => {
            entry.status = EntryStatus::Declined;
            let psn: u8 = req.get_str(23).and_then(|p| p.parse().ok()).unwrap_or(0);
            let mut icc = TagStore::new();
            let icc_ok = req
                .get(55)
                .map(|d| icc.absorb(d, |_| true).is_ok())
                .unwrap_or(false);
            let expired = req
                .get_str(14)
                .and_then(|e| e.parse::<u32>().ok())
                .is_some_and(|yymm| yymm < current_yymm());
            let (code, reason, iad) = if let Some(c) = &forced_code {
                (
                    c.clone(),
                    "rule: forced response code".to_string(),
                    Vec::new(),
                )
            } else if !icc_ok {
                (
                    "30".into(),
                    "field 55 missing or malformed".to_string(),
                    Vec::new(),
                )
            } else if expired {
                ("54".into(), "expired card".to_string(), Vec::new())
            } else {
                let decision = issuer_decide(&shared.cfg.issuers, &pan, psn, &icc, amount);
                let pin = match (&decision, req.get(52)) {
                    (IssuerDecision::Approve { .. }, Some(block)) => Some(check_online_pin(
                        &shared.cfg.issuers,
                        &pan,
                        block,
                        req.get(53),
                        &mut state.pin_failures,
                    )),
                    _ => None,
                };
                if let Some(p) = &pin {
                    entry.pin_verified = Some(p.is_ok());
                }
                match (decision, pin) {
                    (_, Some(Err((code, reason)))) => (code.to_string(), reason, Vec::new()),
                    (IssuerDecision::Approve { issuer_auth_data }, _) => {
                        let balance = state.balances.get(&pan).copied().or_else(|| {
                            shared
                                .cfg
                                .rules
                                .accounts
                                .iter()
                                .find(|a| pan.ends_with(&a.pan_ends_with))
                                .map(|a| a.balance)
                                .or(shared.cfg.rules.default_balance)
                        });
                        match balance {
                            Some(b) if !refund && amount > b => (
                                "51".into(),
                                format!("insufficient funds (balance {b})"),
                                Vec::new(),
                            ),
                            Some(b) => {
                                let nb = if refund {
                                    b.saturating_add(amount)
                                } else {
                                    b - amount
                                };
                                state.balances.insert(pan.clone(), nb);
                                ("00".into(), "ARQC verified".to_string(), issuer_auth_data)
                            }
                            None => ("00".into(), "ARQC verified".to_string(), issuer_auth_data),
                        }
                    }
                    (
                        IssuerDecision::Decline {
                            code,
                            reason,
                            issuer_auth_data,
                        },
                        _,
                    ) => (code.to_string(), reason, issuer_auth_data),
                }
            };
            if code == "00" {
                entry.status = EntryStatus::Approved;
                let auth = auth_code(u64::from(seq), secs);
                resp.set_str(38, &auth);
                entry.auth_code = Some(auth);
            }
            (code, reason, iad)
        }
        220 | 221 => {
            entry.status = EntryStatus::Approved;
            entry.auth_code = req.get_str(38);
            // A repeat (0221) or a second copy of an advice the host already has, whatever has
            // happened to it since (reversed, settled), is acknowledged and not booked again.
            let dup = state.ledger.iter().any(|e| {
                matches!(e.mti, 220 | 221)
                    && e.terminal_id == tid
                    && e.stan == stan
                    && e.status != EntryStatus::Administrative
            });
            if dup {
                entry.status = EntryStatus::Administrative;
                (
                    "00".into(),
                    "duplicate advice acknowledged".to_string(),
                    Vec::new(),
                )
            } else {
                // A completion names its pre-authorization in field 90: the hold is released
                // and the completed amount charged instead.
                let original = req
                    .get_str(90)
                    .and_then(|f| f.get(4..10).map(str::to_string));
                let preauth = original.and_then(|o| {
                    state.ledger.iter_mut().rev().find(|e| {
                        e.preauth
                            && e.terminal_id == tid
                            && e.stan == o
                            && e.status == EntryStatus::Approved
                    })
                });
                match preauth {
                    Some(p) if p.completed => {
                        entry.status = EntryStatus::Declined;
                        (
                            "94".into(),
                            "pre-authorization already completed".to_string(),
                            Vec::new(),
                        )
                    }
                    Some(p) => {
                        p.completed = true;
                        let held = p.amount_minor;
                        if let Some(b) = state.balances.get_mut(&pan) {
                            *b = (*b + held).saturating_sub(amount);
                        }
                        ("00".into(), "completion recorded".to_string(), Vec::new())
                    }
                    None => ("00".into(), "advice recorded".to_string(), Vec::new()),
                }
            }
        }
        400 | 401 => {
            let original_stan = req
                .get_str(90)
                .and_then(|f| f.get(4..10).map(str::to_string))
                .unwrap_or_else(|| stan.clone());
            let found = state.ledger.iter_mut().rev().find(|e| {
                matches!(e.mti, 100 | 200 | 220 | 221)
                    && e.terminal_id == tid
                    && e.stan == original_stan
                    && matches!(
                        e.status,
                        EntryStatus::Approved
                            | EntryStatus::Unanswered
                            | EntryStatus::Reversed
                            | EntryStatus::Pending
                    )
            });
            let reason = match found {
                Some(e) if e.status == EntryStatus::Reversed => "already reversed".to_string(),
                Some(e) => {
                    let was_approved = e.status == EntryStatus::Approved;
                    e.status = EntryStatus::Reversed;
                    let (amt, refund) = (e.amount_minor, e.refund);
                    // A void's reversal carries no card data: the account is the original's.
                    let original_pan = e.pan.clone();
                    let key = if pan.is_empty() {
                        state
                            .balances
                            .keys()
                            .find(|k| mask(k) == original_pan)
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        pan.clone()
                    };
                    if was_approved && let Some(b) = state.balances.get_mut(&key) {
                        *b = if refund {
                            b.saturating_sub(amt)
                        } else {
                            b.saturating_add(amt)
                        };
                    }
                    "reversed".to_string()
                }
                None => "nothing to reverse".to_string(),
            };
            ("00".into(), reason, Vec::new())
        }
        500 => {
            // Pre-authorizations are not settled themselves: their completions are.
            let mine = |e: &&mut LedgerEntry| {
                e.terminal_id == tid
                    && !e.settled
                    && !e.preauth
                    && e.status == EntryStatus::Approved
                    && matches!(e.mti, 100 | 200 | 220 | 221)
            };
            let mut host = BatchTotals::default();
            for e in state.ledger.iter_mut().filter(mine) {
                if e.refund {
                    host.credits += 1;
                    host.credits_amount += e.amount_minor;
                } else {
                    host.debits += 1;
                    host.debits_amount += e.amount_minor;
                }
            }
            match batch_totals(req) {
                Some(terminal) if terminal == host => {
                    for e in state.ledger.iter_mut().filter(mine) {
                        e.settled = true;
                    }
                    state.last_closed.insert(tid.clone(), terminal);
                    ("00".into(), "batch in balance".to_string(), Vec::new())
                }
                // The same close again (the terminal never got the answer), nothing since.
                Some(terminal)
                    if host == BatchTotals::default()
                        && state.last_closed.get(&tid) == Some(&terminal) =>
                {
                    (
                        "00".into(),
                        "batch already closed (repeat)".to_string(),
                        Vec::new(),
                    )
                }
                Some(terminal) => (
                    "95".into(),
                    format!("out of balance: terminal {terminal:?}, host {host:?}"),
                    Vec::new(),
                ),
                None => ("30".into(), "totals missing".to_string(), Vec::new()),
            }
        }
        800 => (
            "00".into(),
            format!("network management {}", req.get_str(70).unwrap_or_default()),
            Vec::new(),
        ),
        other => (
            "12".into(),
            format!("MTI {other:04} not supported"),
            Vec::new(),
        ),
    };
    if let Some(n) = req.get(70) {
        resp.set(70, n.to_vec());
    }
    resp.set_str(37, &format!("{:06}{:06}", secs % 1_000_000, seq));
    resp.set_str(39, &code);
    if !iad.is_empty() {
        let mut f55 = Vec::new();
        tlv::encode(t::ISSUER_AUTH_DATA, &iad, &mut f55);
        resp.set(55, f55);
    }
    if wrong_stan {
        let s: u32 = stan.parse().unwrap_or(0);
        resp.set_str(11, &format!("{:06}", (s + 1) % 1_000_000));
    }
    entry.response_code = code;
    entry.reason = reason;
    if decision.drop {
        entry.reason = format!("rule: connection dropped ({})", entry.reason);
        if entry.status == EntryStatus::Approved || entry.status == EntryStatus::Declined {
            entry.status = EntryStatus::Unanswered;
        }
    }
    state.ledger.push(entry);
    decision.response = Some(resp);
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_name_bad_keys() {
        let r = HostRules::parse(
            "default_balance = 5000\n[[rules]]\namount_above = 100000\nrespond = \"05\"\n[[rules]]\nmti = \"0100\"\naction = \"silent\"\nonce = true\n",
        )
        .unwrap();
        assert_eq!(r.rules.len(), 2);
        assert_eq!(r.rules[1].action, Some(RuleAction::Silent));
        let e = HostRules::parse("[[rules]]\nrespnd = \"05\"\n").unwrap_err();
        assert!(e.contains("respnd") && e.contains("line 2"), "{e}");
    }
}

//! The acquirer/issuer host simulator: ISO 8583 over mutual TLS on a local port.
//!
//! It requires a client certificate from the configured CA, decodes 0100 authorization
//! requests, verifies the ARQC in field 55 with the issuer master key of the card's BIN, and
//! answers 0110: `00` with an authorization code, RRN and ARPC when the cryptogram is right,
//! `05` when it is wrong. Every decision goes into a ledger that tests and the emulator read.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use acquirer::iso8583::{Dialect, Message, mask};
use acquirer::link::{read_frame, write_frame};
use emv::crypto::{
    AcData, Cvn, Key16, application_cryptogram, derive_icc_master_key, issuer_authentication_data,
};
use emv::tags as t;
use emv::tlv::{self, TagStore};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::card::Profile;

/// An issuer the simulator acts for: cards whose PAN starts with `pan_prefix` have
/// cryptograms under keys derived from `imk_ac`.
#[derive(Clone, Debug)]
pub struct IssuerKey {
    /// PAN prefix (BIN or full PAN).
    pub pan_prefix: String,
    /// Issuer master key for application cryptograms.
    pub imk_ac: Key16,
}

impl IssuerKey {
    /// The issuer keys of the given card profiles (one entry per card PAN).
    pub fn from_profiles(profiles: &[Profile]) -> Vec<IssuerKey> {
        profiles
            .iter()
            .filter_map(|p| {
                Some(IssuerKey {
                    pan_prefix: p.card.pan.clone(),
                    imk_ac: Key16::from_hex(&p.keys.imk_ac)?,
                })
            })
            .collect()
    }
}

/// Faults the host can be told to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFault {
    /// Read requests and never answer them.
    Silent,
}

/// Host configuration.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Issuers whose cryptograms it verifies.
    pub issuers: Vec<IssuerKey>,
    /// The ISO 8583 dialect.
    pub dialect: &'static Dialect,
    /// A fault to inject, if any.
    pub fault: Option<HostFault>,
}

/// One decision of the host, as kept in its ledger. The PAN is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Response code sent back (empty when no answer was sent).
    pub response_code: String,
    /// Why, in words.
    pub reason: String,
}

/// A running host simulator.
pub struct HostSim {
    addr: SocketAddr,
    ledger: Arc<Mutex<Vec<LedgerEntry>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for HostSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSim").field("addr", &self.addr).finish()
    }
}

struct Shared {
    cfg: HostConfig,
    ledger: Arc<Mutex<Vec<LedgerEntry>>>,
    sequence: AtomicU32,
}

impl HostSim {
    /// Listens on `listen` (e.g. `127.0.0.1:0`) with the given TLS configuration, which should
    /// require client certificates.
    pub async fn start(
        listen: &str,
        tls: ServerConfig,
        cfg: HostConfig,
    ) -> std::io::Result<HostSim> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let ledger = Arc::new(Mutex::new(Vec::new()));
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0)
            % 100_000;
        let shared = Arc::new(Shared {
            cfg,
            ledger: ledger.clone(),
            sequence: AtomicU32::new(seed),
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
        Ok(HostSim { addr, ledger, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The decisions taken so far.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.ledger.lock().map(|l| l.clone()).unwrap_or_default()
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
        let (response, entry) = decide(&request, &shared);
        if let Ok(mut l) = shared.ledger.lock() {
            l.push(entry);
        }
        match response {
            Some(r) => {
                let bytes = r.encode(shared.cfg.dialect).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                })?;
                write_frame(&mut tls, &bytes).await?;
            }
            None => {
                // Silent: keep the connection open and read on, never answering.
            }
        }
    }
}

/// Why the issuer declined, or how it approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerDecision {
    /// Cryptogram verified; ARPC computed with ARC "00".
    Approve {
        /// Issuer authentication data (tag 91): ARPC || ARC.
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
/// the cryptogram version named in the IAD, and produces the ARPC (method 1).
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
    let iad = issuer_authentication_data(cvn, &mk, &data, arqc, *b"00");
    IssuerDecision::Approve {
        issuer_auth_data: iad,
    }
}

/// This month as YYMM, the form of ISO 8583 field 14.
fn current_yymm() -> u32 {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    (now.year() as u32 % 100) * 100 + now.month()
}

fn decide(req: &Message, shared: &Shared) -> (Option<Message>, LedgerEntry) {
    let stan = req.get_str(11).unwrap_or_default();
    let tid = req.get_str(41).unwrap_or_default();
    let pan_from_track2 = || {
        req.get_str(35)
            .and_then(|t2| t2.split(['=', 'D']).next().map(str::to_string))
    };
    let pan = req.get_str(2).or_else(pan_from_track2).unwrap_or_default();
    let amount: u64 = req.get_str(4).and_then(|a| a.parse().ok()).unwrap_or(0);
    let mut entry = LedgerEntry {
        mti: req.mti,
        stan: stan.clone(),
        terminal_id: tid.clone(),
        pan: mask(&pan),
        amount_minor: amount,
        response_code: String::new(),
        reason: String::new(),
    };
    if shared.cfg.fault == Some(HostFault::Silent) {
        entry.reason = "fault: silent host".into();
        return (None, entry);
    }
    let mut resp = Message::new(req.mti + 10);
    for n in [2u8, 3, 4, 7, 11, 12, 13, 41, 42, 49] {
        if let Some(v) = req.get(n) {
            resp.set(n, v.to_vec());
        }
    }
    let (code, reason, iad): (&str, String, Vec<u8>) = if req.mti != 100 && req.mti != 200 {
        (
            "12",
            format!("MTI {:04} not supported", req.mti),
            Vec::new(),
        )
    } else {
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
        if !icc_ok {
            (
                "30",
                "field 55 missing or malformed".to_string(),
                Vec::new(),
            )
        } else if expired {
            ("54", "expired card".to_string(), Vec::new())
        } else {
            match issuer_decide(&shared.cfg.issuers, &pan, psn, &icc, amount) {
                IssuerDecision::Approve { issuer_auth_data } => {
                    ("00", "ARQC verified".to_string(), issuer_auth_data)
                }
                IssuerDecision::Decline {
                    code,
                    reason,
                    issuer_auth_data,
                } => (code, reason, issuer_auth_data),
            }
        }
    };
    let seq = shared.sequence.fetch_add(1, Ordering::Relaxed) % 1_000_000;
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    resp.set_str(37, &format!("{:06}{:06}", secs % 1_000_000, seq));
    if code == "00" {
        // An authorization code that differs per approval: six alphanumerics.
        let n = (seq as u64).wrapping_mul(2_654_435_761) ^ secs;
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
        let code: String = (0..6)
            .map(|i| ALPHABET[((n >> (5 * i)) % ALPHABET.len() as u64) as usize] as char)
            .collect();
        resp.set_str(38, &code);
    }
    resp.set_str(39, code);
    if !iad.is_empty() {
        let mut f55 = Vec::new();
        tlv::encode(t::ISSUER_AUTH_DATA, &iad, &mut f55);
        resp.set(55, f55);
    }
    entry.response_code = code.to_string();
    entry.reason = reason;
    (Some(resp), entry)
}

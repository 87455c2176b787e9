//! Virtual contactless cards: real card applications that answer APDUs from a profile, compute
//! real cryptograms and sign with real RSA keys.
//!
//! A [`Profile`] is a TOML file (`sim/profiles/*.toml`, embedded; or a user's own file). An
//! [`EmvCard`] built from it answers SELECT (PPSE and AID), GET PROCESSING OPTIONS, READ
//! RECORD, GET DATA, GENERATE AC (first and second, with CDA on request) and INTERNAL
//! AUTHENTICATE, in one of two styles:
//! - `qvsdc` (Visa qVSDC, UnionPay qPBOC): the cryptogram, and the fDDA signature when asked
//!   for, come back in the GPO response;
//! - `mchip` (Mastercard M/Chip and the EMV-mode kernels): GPO returns AIP and AFL, the
//!   cryptogram comes from GENERATE AC.

use std::fmt;

use emv::apdu::{Command, Response};
use emv::card::Track2;
use emv::crypto::{AcData, Cvn, Key16, application_cryptogram, derive_icc_master_key};
use emv::dol::{self, DolEntry};
use emv::entry::PPSE;
use emv::tags as t;
use emv::tlv::{self, Tag};
use emv::util::{bcd_n, cn, unhex};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::emvpki;
use crate::rsa::RsaKey;

/// A card profile as stored in a TOML file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name used on the command line (`--card visa`).
    pub name: String,
    /// One line for `kassa cards`.
    pub description: String,
    /// The outcome `kassa pay` should reach with this card on a terminal that implements its
    /// kernel: `approved`, `declined`, `try_another_interface`, `end_application`, `try_again`.
    pub expect: String,
    /// Card identity.
    pub card: CardProfile,
    /// The payment application.
    pub application: ApplicationProfile,
    /// Keys.
    pub keys: KeyProfile,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("aid", &self.application.aid)
            .finish_non_exhaustive()
    }
}

/// The card's identity.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardProfile {
    /// PAN digits.
    pub pan: String,
    /// PAN sequence number.
    pub psn: u8,
    /// Expiry YYMMDD.
    pub expiry: String,
    /// Effective date YYMMDD.
    pub effective: String,
    /// Service code, three digits.
    pub service_code: String,
    /// Track 2 discretionary data, digits.
    pub discretionary: String,
    /// Cardholder name (tag 5F20).
    pub cardholder_name: String,
    /// Issuer country, ISO 3166 numeric (5F28).
    pub issuer_country: u16,
    /// Application currency, ISO 4217 numeric (9F42).
    pub currency: u16,
    /// Language preference (5F2D): two-letter codes, most preferred first ("jaen").
    pub language: String,
    /// Initial application transaction counter.
    pub atc: u16,
    /// Offline PIN (4 to 12 digits), for VERIFY and the issuer's PIN CHANGE script. Test
    /// data only; held zeroizing in the card.
    pub pin: Option<String>,
}

/// How the card runs a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// Visa qVSDC / UnionPay qPBOC: the cryptogram in the GPO response.
    Qvsdc,
    /// M/Chip and EMV mode: GPO gives AIP and AFL, GENERATE AC gives the cryptogram.
    Mchip,
    /// Discover D-PAS (kernel 6): the cryptogram in the GPO response with the Card Processing
    /// Requirements (9F71); an offline approval is signed (CDA over the GPO response).
    Dpas,
}

/// Offline data authentication the card supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OdaMethod {
    /// None.
    None,
    /// Static data authentication (signed static application data, 93).
    Sda,
    /// Dynamic data authentication (INTERNAL AUTHENTICATE).
    Dda,
    /// Fast DDA in the qVSDC GPO response (9F4B, 9F69).
    Fdda,
    /// Combined DDA / application cryptogram generation (signature in GENERATE AC).
    Cda,
}

impl OdaMethod {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            OdaMethod::None => "none",
            OdaMethod::Sda => "sda",
            OdaMethod::Dda => "dda",
            OdaMethod::Fdda => "fdda",
            OdaMethod::Cda => "cda",
        }
    }
}

/// The application's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AppStatus {
    /// Usable.
    #[default]
    Active,
    /// Blocked: SELECT answers 6A81.
    Blocked,
}

/// Defects a card profile can ask for, to test how the terminal copes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Defect {
    /// The fDDA / DDA / CDA signature has one byte changed.
    WrongSignature,
    /// The records lack track 2 equivalent data (57).
    MissingTrack2,
    /// The AFL is empty; everything the terminal needs is in the GPO response.
    EmptyAfl,
    /// The PDOL asks for the unpredictable number twice.
    DuplicatePdolTag,
    /// The card leaves the field right after answering GPO (once: presented again, it
    /// works).
    TornAfterGpo,
    /// The card computes its GENERATE AC answer but leaves the field before sending it
    /// (once). Presented again, it gives the answer back to a matching RECOVER AC.
    TornAfterGac,
    /// The FCI of the application has a length that runs past its end.
    MalformedTlv,
    /// The cryptogram is computed under a key one bit off the issuer's.
    WrongAcKey,
}

/// The payment application.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationProfile {
    /// AID, hex.
    pub aid: String,
    /// Application label (50).
    pub label: String,
    /// Application priority indicator (87).
    pub priority: u8,
    /// Kernel identifier (9F2A) for the PPSE entry, hex; absent means the RID's default.
    pub kernel_id: Option<String>,
    /// Transaction style.
    pub flow: Flow,
    /// PDOL (9F38), hex; absent for cards without one.
    pub pdol: Option<String>,
    /// CDOL1 (8C), hex (mchip).
    pub cdol1: Option<String>,
    /// CDOL2 (8D), hex (mchip).
    pub cdol2: Option<String>,
    /// AIP (82), hex.
    pub aip: String,
    /// Card Transaction Qualifiers (9F6C), hex (qvsdc).
    pub ctq: Option<String>,
    /// Card Processing Requirements (9F71), hex (dpas): byte 1 b8 online PIN, b7 signature
    /// when a CVM is required.
    pub cpr: Option<String>,
    /// Form factor indicator (9F6E), hex.
    pub form_factor: Option<String>,
    /// Cryptogram version: visa-10, visa-18, mastercard-16, mastercard-17, mastercard-20,
    /// mastercard-21.
    pub cvn: String,
    /// Card verification results as the IAD carries them, hex (Visa: 4 bytes with the length
    /// byte; Mastercard: 6 bytes).
    pub cvr: String,
    /// Derivation key index, in the IAD.
    pub dki: u8,
    /// Offline data authentication.
    pub oda: OdaMethod,
    /// CVM list (8E), hex (mchip).
    pub cvm_list: Option<String>,
    /// Issuer action codes, hex.
    pub iac_default: Option<String>,
    /// Issuer action code - denial.
    pub iac_denial: Option<String>,
    /// Issuer action code - online.
    pub iac_online: Option<String>,
    /// Application usage control (9F07), hex.
    pub auc: Option<String>,
    /// Approve offline (TC) when the terminal does not require an online cryptogram.
    #[serde(default)]
    pub offline: bool,
    /// Card risk management declines: every GENERATE AC answers with an AAC.
    #[serde(default)]
    pub decline: bool,
    /// DRDOL (9F51), hex (mchip): the data a RECOVER AC must carry to get a torn
    /// transaction's answer back.
    pub drdol: Option<String>,
    /// Active or blocked.
    #[serde(default)]
    pub status: AppStatus,
    /// A defect to inject.
    pub defect: Option<Defect>,
}

/// Keys. Test keys only.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProfile {
    /// Issuer master key for application cryptograms, 32 hex digits.
    pub imk_ac: String,
    /// Issuer RSA key (name of a file in sim/keys/), for cards that do ODA.
    pub issuer_key: Option<String>,
    /// ICC RSA key (name of a file in sim/keys/), for DDA, fDDA and CDA.
    pub icc_key: Option<String>,
    /// Issuer master key for secure messaging integrity (IMK-SMI), 32 hex digits: issuer
    /// script commands must carry a MAC under the derived key (see [`crate::script`]).
    pub imk_smi: Option<String>,
    /// Issuer master key for secure messaging confidentiality (IMK-SMC), 32 hex digits.
    pub imk_smc: Option<String>,
}

/// A profile that cannot become a card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card profile {profile}: {field}{}: {problem}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
pub struct ProfileError {
    /// Profile name or file.
    pub profile: String,
    /// The offending field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// The field's line in the file, when known.
    pub line: Option<usize>,
}

/// The 1-based line of `field` ("section.key") in TOML text, if it is written there.
pub fn field_line(text: &str, field: &str) -> Option<usize> {
    let (section, key) = field.rsplit_once('.').unwrap_or(("", field));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.trim_matches(['[', ']']).to_string();
            continue;
        }
        if current == section
            && let Some((k, _)) = l.split_once('=')
            && k.trim() == key
        {
            return Some(i + 1);
        }
    }
    None
}

/// Reads and checks a user's profile file: TOML errors name the key and line; a field that
/// parses but cannot make a card names the field and its line.
pub fn load_profile_file(path: &std::path::Path) -> Result<Profile, ProfileError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
        profile: source.clone(),
        field: "file".into(),
        problem: e.to_string(),
        line: None,
    })?;
    let p = parse_profile(&source, &text)?;
    EmvCard::from_profile(&p).map_err(|mut e| {
        e.profile = source.clone();
        e.line = field_line(&text, &e.field);
        e
    })?;
    Ok(p)
}

/// The built-in profiles, embedded in the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    ("visa", include_str!("../profiles/visa.toml")),
    ("visa-ja", include_str!("../profiles/visa-ja.toml")),
    (
        "visa-offline",
        include_str!("../profiles/visa-offline.toml"),
    ),
    (
        "visa-expired",
        include_str!("../profiles/visa-expired.toml"),
    ),
    (
        "visa-blocked",
        include_str!("../profiles/visa-blocked.toml"),
    ),
    ("visa-badsig", include_str!("../profiles/visa-badsig.toml")),
    (
        "visa-no-track2",
        include_str!("../profiles/visa-no-track2.toml"),
    ),
    (
        "visa-empty-afl",
        include_str!("../profiles/visa-empty-afl.toml"),
    ),
    (
        "visa-dup-pdol",
        include_str!("../profiles/visa-dup-pdol.toml"),
    ),
    ("visa-torn", include_str!("../profiles/visa-torn.toml")),
    (
        "visa-bad-tlv",
        include_str!("../profiles/visa-bad-tlv.toml"),
    ),
    ("wallet", include_str!("../profiles/wallet.toml")),
    ("korea", include_str!("../profiles/korea.toml")),
    ("russia", include_str!("../profiles/russia.toml")),
    ("mastercard", include_str!("../profiles/mastercard.toml")),
    (
        "mastercard-torn",
        include_str!("../profiles/mastercard-torn.toml"),
    ),
    (
        "mastercard-decline",
        include_str!("../profiles/mastercard-decline.toml"),
    ),
    ("unionpay", include_str!("../profiles/unionpay.toml")),
    (
        "unionpay-debit",
        include_str!("../profiles/unionpay-debit.toml"),
    ),
    ("jcb", include_str!("../profiles/jcb.toml")),
    ("amex", include_str!("../profiles/amex.toml")),
    ("discover", include_str!("../profiles/discover.toml")),
];

/// Parses a profile from TOML text. `source` names the file in errors; the message names the
/// field and the line.
pub fn parse_profile(source: &str, text: &str) -> Result<Profile, ProfileError> {
    toml::from_str(text).map_err(|e: toml::de::Error| ProfileError {
        profile: source.to_string(),
        field: "toml".into(),
        problem: e.to_string().trim().replace('\n', " "),
        line: e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
    })
}

/// All built-in profiles.
pub fn builtin_profiles() -> Vec<Profile> {
    BUILTIN
        .iter()
        .map(|(name, text)| parse_profile(name, text).expect("built-in profiles are valid"))
        .collect()
}

impl Profile {
    /// The CVMs the card asks for above the CVM limit, in words: from the CTQ for qVSDC
    /// cards (Book C-3 Table A-?: byte 1 bits 8-7, byte 2 bit 8) or the CVM list.
    pub fn cvm_summary(&self) -> String {
        let a = &self.application;
        if let Some(ctq) = a
            .ctq
            .as_deref()
            .and_then(|c| unhex(c).ok())
            .filter(|c| c.len() >= 2)
        {
            let mut v = Vec::new();
            if ctq[1] & 0x80 != 0 {
                v.push("cdcvm");
            }
            if ctq[0] & 0x80 != 0 {
                v.push("online-pin");
            }
            if ctq[0] & 0x40 != 0 {
                v.push("signature");
            }
            if v.is_empty() {
                v.push("no-cvm");
            }
            return v.join(",");
        }
        match a.cvm_list.as_deref().and_then(|c| unhex(c).ok()) {
            Some(list) if list.len() > 8 => list[8..]
                .chunks(2)
                .map(|r| match r[0] & 0x3F {
                    0x02 => "online-pin",
                    0x1E => "signature",
                    0x1F => "no-cvm",
                    0x01 | 0x03 | 0x04 | 0x05 => "offline-pin",
                    _ => "other",
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => "no-cvm".into(),
        }
    }
}

/// The text of a built-in profile.
pub fn builtin_profile_text(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Faults a virtual card can be told to have from outside its profile (`kassa pay --fault`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardFault {
    /// Computes cryptograms under a key one bit off the issuer's: the host must decline.
    WrongAcKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selected {
    Nothing,
    Ppse,
    Application,
}

/// PIN Try Limit: the PIN try counter after a correct PIN or an unblock.
const PIN_TRY_LIMIT: u8 = 3;

/// A virtual card. A clone is the same card in the same state (same keys, same ATC): a test
/// that runs many transactions from one starting point clones one card rather than signing
/// its certificates again.
#[derive(Clone)]
pub struct EmvCard {
    name: String,
    app: ApplicationProfile,
    aid: Vec<u8>,
    language: String,
    pdol: Option<Vec<u8>>,
    pdol_entries: Vec<DolEntry>,
    cdol1_entries: Vec<DolEntry>,
    cdol2_entries: Vec<DolEntry>,
    aip: [u8; 2],
    afl: Vec<u8>,
    /// Objects returned in the GPO response besides the dynamic ones (empty-AFL cards).
    gpo_extra: Vec<u8>,
    records: Vec<(u8, u8, Vec<u8>)>,
    cvn: Cvn,
    iad_template: Vec<u8>,
    mk_ac: Key16,
    /// Secure-messaging master keys, when the profile has IMK-SMI and IMK-SMC.
    sm_keys: Option<crate::script::SmKeys>,
    /// Offline PIN and its try counter (9F17).
    pin: Option<zeroize::Zeroizing<String>>,
    pin_tries: u8,
    icc_key: Option<RsaKey>,
    atc: u16,
    uid: Vec<u8>,
    selected: Selected,
    /// PDOL data of the current transaction, for CDA's transaction data hash.
    pdol_data: Vec<u8>,
    /// CDOL1 data of the current transaction.
    cdol1_data: Vec<u8>,
    gac_count: u8,
    last_ac: [u8; 8],
    present: bool,
    /// A one-shot tear (defect) has happened.
    torn_fired: bool,
    /// The answer to the last command is lost with the card (no response at all).
    silent: bool,
    drdol_entries: Vec<DolEntry>,
    /// The torn GENERATE AC: the DRDOL data that identifies it and its response.
    torn_gac: Option<(Vec<u8>, Response)>,
}

impl fmt::Debug for EmvCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmvCard")
            .field("name", &self.name)
            .field("atc", &self.atc)
            .finish_non_exhaustive()
    }
}

fn hex_field(profile: &str, field: &str, value: &str) -> Result<Vec<u8>, ProfileError> {
    unhex(value).map_err(|at| ProfileError {
        profile: profile.into(),
        field: field.into(),
        problem: format!("not hex (position {at})"),
        line: None,
    })
}

/// Two bytes of BCD for MMYY from YYMMDD.
fn mmyy(yymmdd: &str) -> [u8; 2] {
    let b = unhex(yymmdd).unwrap_or_default();
    [
        b.get(1).copied().unwrap_or(0x12),
        b.first().copied().unwrap_or(0x30),
    ]
}

impl EmvCard {
    /// Builds the card from its profile: records, certificates (signed now with the test
    /// PKI), keys.
    pub fn from_profile(p: &Profile) -> Result<Self, ProfileError> {
        let name = p.name.as_str();
        let err = |field: &str, problem: &str| ProfileError {
            profile: name.into(),
            field: field.into(),
            problem: problem.into(),
            line: None,
        };
        let a = &p.application;
        let c = &p.card;
        let aid = hex_field(name, "application.aid", &a.aid)?;
        if !(5..=16).contains(&aid.len()) {
            return Err(err("application.aid", "must be 5-16 bytes"));
        }
        let mut pdol = a
            .pdol
            .as_deref()
            .map(|x| hex_field(name, "application.pdol", x))
            .transpose()?;
        if a.defect == Some(Defect::DuplicatePdolTag)
            && let Some(p) = pdol.as_mut()
        {
            p.extend_from_slice(&[0x9F, 0x37, 0x04]);
        }
        let pdol_entries = match &pdol {
            Some(p) => dol::parse(p).map_err(|e| err("application.pdol", &e.to_string()))?,
            None => Vec::new(),
        };
        let dol_of = |field: &str, v: &Option<String>| -> Result<Vec<DolEntry>, ProfileError> {
            match v {
                Some(x) => {
                    dol::parse(&hex_field(name, field, x)?).map_err(|e| err(field, &e.to_string()))
                }
                None => Ok(Vec::new()),
            }
        };
        let cdol1_entries = dol_of("application.cdol1", &a.cdol1)?;
        let drdol_entries = dol_of("application.drdol", &a.drdol)?;
        let cdol2_entries = dol_of("application.cdol2", &a.cdol2)?;
        if a.flow == Flow::Mchip && cdol1_entries.is_empty() {
            return Err(err("application.cdol1", "an mchip card needs a CDOL1"));
        }
        if matches!(a.flow, Flow::Qvsdc | Flow::Dpas) && pdol.is_none() {
            return Err(err(
                "application.pdol",
                "a qvsdc card needs a PDOL with the TTQ",
            ));
        }
        let aip: [u8; 2] = hex_field(name, "application.aip", &a.aip)?
            .try_into()
            .map_err(|_| err("application.aip", "must be 2 bytes"))?;
        let cvn = Cvn::from_name(&a.cvn)
            .ok_or_else(|| err("application.cvn", "unknown cryptogram version"))?;
        let cvr = hex_field(name, "application.cvr", &a.cvr)?;
        let iad_template = match cvn {
            Cvn::Visa10 | Cvn::Visa18 => {
                if cvr.len() != 4 {
                    return Err(err(
                        "application.cvr",
                        "a Visa CVR is 4 bytes with its length byte",
                    ));
                }
                let mut v = vec![0x06, a.dki, cvn.id()];
                v.extend_from_slice(&cvr);
                v
            }
            _ => {
                if cvr.len() != 6 {
                    return Err(err("application.cvr", "a Mastercard CVR is 6 bytes"));
                }
                // DKI, CVN, CVR (6), DAC/IDN (2), counters (8).
                let mut v = vec![a.dki, cvn.id()];
                v.extend_from_slice(&cvr);
                v.extend_from_slice(&[0x00, 0x00]);
                v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0xFF]);
                v
            }
        };
        if !emv::card::luhn(&c.pan) {
            return Err(err("card.pan", "Luhn check digit is wrong"));
        }
        let imk = Key16::from_hex(&p.keys.imk_ac)
            .ok_or_else(|| err("keys.imk_ac", "must be 32 hex digits"))?;
        let mut mk_ac = derive_icc_master_key(&imk, &c.pan, c.psn)
            .ok_or_else(|| err("card.pan", "must be digits"))?;
        if a.defect == Some(Defect::WrongAcKey) {
            let mut k = *mk_ac.expose();
            k[15] ^= 0x02;
            mk_ac = Key16::new(k);
        }
        let sm_key = |field: &str, v: &Option<String>| -> Result<Option<Key16>, ProfileError> {
            v.as_deref()
                .map(|x| {
                    let imk =
                        Key16::from_hex(x).ok_or_else(|| err(field, "must be 32 hex digits"))?;
                    derive_icc_master_key(&imk, &c.pan, c.psn)
                        .ok_or_else(|| err("card.pan", "must be digits"))
                })
                .transpose()
        };
        let sm_keys = match (
            sm_key("keys.imk_smi", &p.keys.imk_smi)?,
            sm_key("keys.imk_smc", &p.keys.imk_smc)?,
        ) {
            (Some(mk_smi), Some(mk_smc)) => Some(crate::script::SmKeys { mk_smi, mk_smc }),
            (None, None) => None,
            (None, Some(_)) => return Err(err("keys.imk_smi", "is needed with keys.imk_smc")),
            (Some(_), None) => return Err(err("keys.imk_smc", "is needed with keys.imk_smi")),
        };
        if let Some(pin) = &c.pin
            && crate::script::pin_block(pin).is_err()
        {
            return Err(err("card.pin", "must be 4 to 12 digits"));
        }
        let expiry = hex_field(name, "card.expiry", &c.expiry)?;
        if emv::util::Date::from_bcd(&expiry).is_none() {
            return Err(err("card.expiry", "must be YYMMDD"));
        }
        let effective = hex_field(name, "card.effective", &c.effective)?;
        if emv::util::Date::from_bcd(&effective).is_none() {
            return Err(err("card.effective", "must be YYMMDD"));
        }
        let track2 = Track2::build(&c.pan, &c.expiry[..4], &c.service_code, &c.discretionary)
            .ok_or_else(|| err("card.discretionary", "must be digits"))?;
        let opt_hex = |field: &str, v: &Option<String>| {
            v.as_deref().map(|x| hex_field(name, field, x)).transpose()
        };

        // Record 1 (SFI 1): track data. Record 2 (SFI 2): card data, signed for ODA.
        let mut rec1 = Vec::new();
        if a.defect != Some(Defect::MissingTrack2) {
            tlv::encode(t::TRACK2, &track2, &mut rec1);
        }
        tlv::encode(t::CARDHOLDER_NAME, c.cardholder_name.as_bytes(), &mut rec1);
        let mut rec2 = Vec::new();
        tlv::encode(t::PAN, &cn(&c.pan).expect("digits checked"), &mut rec2);
        tlv::encode(t::EXPIRY, &expiry, &mut rec2);
        tlv::encode(t::EFFECTIVE, &effective, &mut rec2);
        tlv::encode(
            t::ISSUER_COUNTRY,
            &bcd_n(c.issuer_country as u64, 2).unwrap_or_default(),
            &mut rec2,
        );
        tlv::encode(
            t::PSN,
            &bcd_n(c.psn as u64, 1).unwrap_or_default(),
            &mut rec2,
        );
        tlv::encode(
            t::APP_CURRENCY,
            &bcd_n(c.currency as u64, 2).unwrap_or_default(),
            &mut rec2,
        );
        tlv::encode(
            t::AUC,
            &opt_hex("application.auc", &a.auc)?.unwrap_or(vec![0xFF, 0x00]),
            &mut rec2,
        );
        tlv::encode(t::APP_VERSION_CARD, &[0x00, 0x02], &mut rec2);
        for (tag, field, v) in [
            (t::CVM_LIST, "application.cvm_list", &a.cvm_list),
            (t::IAC_DEFAULT, "application.iac_default", &a.iac_default),
            (t::IAC_DENIAL, "application.iac_denial", &a.iac_denial),
            (t::IAC_ONLINE, "application.iac_online", &a.iac_online),
            (t::CDOL1, "application.cdol1", &a.cdol1),
            (t::CDOL2, "application.cdol2", &a.cdol2),
            (torn_drdol_tag(), "application.drdol", &a.drdol),
        ] {
            if let Some(bytes) = opt_hex(field, v)? {
                tlv::encode(tag, &bytes, &mut rec2);
            }
        }
        if a.oda != OdaMethod::None {
            tlv::encode(Tag::new(0x9F4A), &[0x82], &mut rec2);
        }
        let wrap = |body: &[u8]| {
            let mut out = Vec::new();
            tlv::encode(t::RECORD_TEMPLATE, body, &mut out);
            out
        };
        let mut records = vec![(1u8, 1u8, wrap(&rec1)), (2, 1, wrap(&rec2))];
        let mut afl = vec![0x08, 1, 1, 0, 0x10, 1, 1, 1];
        let mut icc_key = None;
        if a.oda != OdaMethod::None {
            let rid: [u8; 5] = aid[..5].try_into().expect("5 bytes checked");
            let ca = emvpki::ca_key(&rid).map_err(|e| err("application.aid", &e.to_string()))?;
            let issuer_name = p
                .keys
                .issuer_key
                .as_deref()
                .ok_or_else(|| err("keys.issuer_key", "ODA needs an issuer key"))?;
            let issuer = crate::keys::key(issuer_name)
                .map_err(|e| err("keys.issuer_key", &e.to_string()))?;
            if issuer.len() > ca.len() {
                return Err(err("keys.issuer_key", "issuer key longer than the CA key"));
            }
            let cert_expiry = mmyy(&c.expiry);
            let ic = emvpki::issuer_certificate(
                &ca,
                &issuer,
                &c.pan[..6],
                cert_expiry,
                [0x00, 0x00, 0x01],
            );
            let mut rec3 = Vec::new();
            tlv::encode(t::CA_PK_INDEX, &[emvpki::KASSA_CA_INDEX], &mut rec3);
            tlv::encode(t::ISSUER_PK_CERT, &ic.cert, &mut rec3);
            tlv::encode(Tag::new(0x9F32), &ic.exponent, &mut rec3);
            if !ic.remainder.is_empty() {
                tlv::encode(t::ISSUER_PK_REMAINDER, &ic.remainder, &mut rec3);
            }
            // Static data to be authenticated: record 2's template value, then the AIP.
            let mut static_data = rec2.clone();
            static_data.extend_from_slice(&aip);
            let mut rec4 = Vec::new();
            if a.oda == OdaMethod::Sda {
                let ssad = emvpki::ssad(&issuer, [0xDA, 0xC1], &static_data);
                tlv::encode(t::SSAD, &ssad, &mut rec4);
            } else {
                let icc_name = p
                    .keys
                    .icc_key
                    .as_deref()
                    .ok_or_else(|| err("keys.icc_key", "DDA, fDDA and CDA need an ICC key"))?;
                let icc =
                    crate::keys::key(icc_name).map_err(|e| err("keys.icc_key", &e.to_string()))?;
                if icc.len() > issuer.len() {
                    return Err(err("keys.icc_key", "ICC key longer than the issuer key"));
                }
                let cc = emvpki::icc_certificate(
                    &issuer,
                    &icc,
                    &c.pan,
                    cert_expiry,
                    [0x00, 0x00, 0x02],
                    &static_data,
                );
                tlv::encode(t::ICC_PK_CERT, &cc.cert, &mut rec4);
                tlv::encode(Tag::new(0x9F47), &cc.exponent, &mut rec4);
                if !cc.remainder.is_empty() {
                    tlv::encode(Tag::new(0x9F48), &cc.remainder, &mut rec4);
                }
                if a.oda == OdaMethod::Dda {
                    tlv::encode(Tag::new(0x9F49), &[0x9F, 0x37, 0x04], &mut rec4);
                }
                icc_key = Some(icc);
            }
            records.push((3, 1, wrap(&rec3)));
            records.push((3, 2, wrap(&rec4)));
            afl.extend_from_slice(&[0x18, 1, 2, 0]);
        }
        let mut gpo_extra = Vec::new();
        if a.defect == Some(Defect::EmptyAfl) {
            // Everything the kernel needs comes in the GPO response.
            gpo_extra.extend_from_slice(&rec1);
            gpo_extra.extend_from_slice(&rec2);
            records.clear();
            afl.clear();
        }
        // A per-card UID from a hash of the PAN (the reader shows it; random on real cards).
        let uid = Sha256::digest(c.pan.as_bytes())[..4].to_vec();
        Ok(EmvCard {
            name: p.name.clone(),
            app: a.clone(),
            aid,
            language: c.language.clone(),
            pdol,
            pdol_entries,
            cdol1_entries,
            cdol2_entries,
            aip,
            afl,
            gpo_extra,
            records,
            cvn,
            iad_template,
            mk_ac,
            sm_keys,
            pin: c.pin.clone().map(zeroize::Zeroizing::new),
            pin_tries: PIN_TRY_LIMIT,
            icc_key,
            atc: c.atc,
            uid,
            selected: Selected::Nothing,
            pdol_data: Vec::new(),
            cdol1_data: Vec::new(),
            gac_count: 0,
            last_ac: [0; 8],
            present: true,
            torn_fired: false,
            silent: false,
            drdol_entries,
            torn_gac: None,
        })
    }

    /// Applies a fault from outside the profile.
    pub fn with_fault(mut self, fault: CardFault) -> Self {
        match fault {
            CardFault::WrongAcKey => {
                let mut k = *self.mk_ac.expose();
                k[15] ^= 0x02;
                self.mk_ac = Key16::new(k);
            }
        }
        self
    }

    /// The current application transaction counter.
    pub fn atc(&self) -> u16 {
        self.atc
    }

    /// The card's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn ppse_fci(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let kernel_id = self.app.kernel_id.as_deref().and_then(|k| unhex(k).ok());
        tlv::encode_constructed(t::FCI_TEMPLATE, &mut out, |o| {
            tlv::encode(t::DF_NAME, PPSE, o);
            tlv::encode_constructed(t::FCI_PROPRIETARY, o, |o| {
                tlv::encode_constructed(t::FCI_ISSUER_DISCRETIONARY, o, |o| {
                    tlv::encode_constructed(t::APPLICATION_TEMPLATE, o, |o| {
                        tlv::encode(t::AID_CARD, &self.aid, o);
                        tlv::encode(t::APPLICATION_LABEL, self.app.label.as_bytes(), o);
                        tlv::encode(t::PRIORITY, &[self.app.priority], o);
                        if let Some(k) = &kernel_id {
                            tlv::encode(t::KERNEL_ID, k, o);
                        }
                    });
                });
            });
        });
        out
    }

    fn adf_fci(&self) -> Vec<u8> {
        let mut out = Vec::new();
        tlv::encode_constructed(t::FCI_TEMPLATE, &mut out, |o| {
            tlv::encode(t::DF_NAME, &self.aid, o);
            tlv::encode_constructed(t::FCI_PROPRIETARY, o, |o| {
                tlv::encode(t::APPLICATION_LABEL, self.app.label.as_bytes(), o);
                tlv::encode(t::PRIORITY, &[self.app.priority], o);
                if let Some(p) = &self.pdol {
                    tlv::encode(t::PDOL, p, o);
                }
                tlv::encode(t::LANGUAGE_PREFERENCE, self.language.as_bytes(), o);
            });
        });
        if self.app.defect == Some(Defect::MalformedTlv) {
            // The template claims 16 bytes more than it has.
            out[1] = out[1].wrapping_add(16);
        }
        out
    }

    /// The value of `tag` in DOL-built data, or zeros.
    fn dol_value(entries: &[DolEntry], data: &[u8], tag: Tag, len: usize) -> Vec<u8> {
        dol::split(entries, data)
            .ok()
            .and_then(|parts| {
                parts
                    .into_iter()
                    .find(|(t, _)| *t == tag)
                    .map(|(_, v)| v.to_vec())
            })
            .filter(|v| v.len() == len)
            .unwrap_or_else(|| vec![0; len])
    }

    /// The cryptogram inputs from the terminal's data (PDOL data for qVSDC, CDOL data for
    /// GENERATE AC) and the card's own.
    fn ac_data(&self, entries: &[DolEntry], data: &[u8], atc: [u8; 2], iad: &[u8]) -> AcData {
        let v = |tag, len| Self::dol_value(entries, data, tag, len);
        AcData {
            amount_authorised: v(t::AMOUNT_AUTHORISED, 6).try_into().unwrap_or([0; 6]),
            amount_other: v(t::AMOUNT_OTHER, 6).try_into().unwrap_or([0; 6]),
            terminal_country: v(t::TERMINAL_COUNTRY, 2).try_into().unwrap_or([0; 2]),
            tvr: v(t::TVR, 5).try_into().unwrap_or([0; 5]),
            currency: v(t::TXN_CURRENCY, 2).try_into().unwrap_or([0; 2]),
            date: v(t::TXN_DATE, 3).try_into().unwrap_or([0; 3]),
            txn_type: v(t::TXN_TYPE, 1)[0],
            unpredictable_number: v(t::UNPREDICTABLE_NUMBER, 4).try_into().unwrap_or([0; 4]),
            aip: self.aip,
            atc,
            iad: iad.to_vec(),
        }
    }

    /// Sets the cryptogram types in the CVR (Visa byte 2, Mastercard byte 1: bits 6-5 for the
    /// first GENERATE AC, bits 8-7 for the second; 10 = ARQC / not requested).
    fn iad_for(&self, first: u8, second: u8) -> Vec<u8> {
        let mut iad = self.iad_template.clone();
        let at = match self.cvn {
            Cvn::Visa10 | Cvn::Visa18 => 4,
            _ => 2,
        };
        iad[at] = (iad[at] & 0x0F) | (second << 6) | (first << 4);
        iad
    }

    /// A card unpredictable number for fDDA: no random source here, so a hash of the key and
    /// the ATC (unpredictable to the terminal, reproducible for traces).
    fn card_un(&self) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.mk_ac.expose());
        h.update(self.atc.to_be_bytes());
        let d = h.finalize();
        [d[0], d[1], d[2], d[3]]
    }

    fn corrupt(&self, mut sig: Vec<u8>) -> Vec<u8> {
        if self.app.defect == Some(Defect::WrongSignature) && sig.len() > 40 {
            sig[40] ^= 0x01;
        }
        sig
    }

    fn gpo(&mut self, cmd: &Command) -> Response {
        if self.selected != Selected::Application {
            return Response::new(vec![], 0x6985);
        }
        let Ok(tpl) = tlv::expect_template(&cmd.data, t::COMMAND_TEMPLATE) else {
            return Response::new(vec![], 0x6700);
        };
        let data = tpl.value().to_vec();
        if data.len() != dol::data_len(&self.pdol_entries) {
            return Response::new(vec![], 0x6700);
        }
        self.pdol_data = data.clone();
        self.gac_count = 0;
        self.atc = self.atc.wrapping_add(1);
        let atc = self.atc.to_be_bytes();
        if self.app.defect == Some(Defect::TornAfterGpo) && !self.torn_fired {
            self.torn_fired = true;
            self.present = false;
        }
        let mut out = Vec::new();
        match self.app.flow {
            Flow::Mchip => {
                tlv::encode_constructed(t::RESPONSE_FORMAT2, &mut out, |o| {
                    tlv::encode(t::AIP, &self.aip, o);
                    tlv::encode(t::AFL, &self.afl, o);
                    o.extend_from_slice(&self.gpo_extra);
                });
            }
            Flow::Qvsdc => {
                let ttq = Self::dol_value(&self.pdol_entries, &data, t::TTQ, 4);
                let online_required = ttq[1] & 0x80 != 0;
                let oda_for_online = ttq[0] & 0x01 != 0;
                let offline = self.app.offline && !online_required;
                // CID: TC when the card approves offline, ARQC otherwise.
                let (cid, first) = if offline { (0x40, 0b01) } else { (0x80, 0b10) };
                let iad = self.iad_for(first, 0b10);
                let ac_data = self.ac_data(&self.pdol_entries, &data, atc, &iad);
                let ac = application_cryptogram(self.cvn, &self.mk_ac, &ac_data).unwrap_or([0; 8]);
                self.last_ac = ac;
                let ctq = self
                    .app
                    .ctq
                    .as_deref()
                    .and_then(|c| unhex(c).ok())
                    .unwrap_or(vec![0x00, 0x00]);
                // fDDA (Book C-3 Annex C): when the card approves offline, or when the reader
                // supports ODA for online authorisations. Version 01: the terminal data is
                // UN || amount || currency || 9F69.
                let fdda = (self.app.oda == OdaMethod::Fdda && (offline || oda_for_online))
                    .then(|| {
                        let icc = self.icc_key.as_ref()?;
                        let mut car = vec![0x01];
                        car.extend_from_slice(&self.card_un());
                        car.extend_from_slice(&ctq);
                        let mut tdata =
                            Self::dol_value(&self.pdol_entries, &data, t::UNPREDICTABLE_NUMBER, 4);
                        tdata.extend(Self::dol_value(
                            &self.pdol_entries,
                            &data,
                            t::AMOUNT_AUTHORISED,
                            6,
                        ));
                        tdata.extend(Self::dol_value(
                            &self.pdol_entries,
                            &data,
                            t::TXN_CURRENCY,
                            2,
                        ));
                        tdata.extend_from_slice(&car);
                        let dyn_data = [0x02, atc[0], atc[1]];
                        Some((self.corrupt(emvpki::sdad(icc, &dyn_data, &tdata)), car))
                    })
                    .flatten();
                let ff = self.app.form_factor.as_deref().and_then(|f| unhex(f).ok());
                tlv::encode_constructed(t::RESPONSE_FORMAT2, &mut out, |o| {
                    tlv::encode(t::AIP, &self.aip, o);
                    tlv::encode(t::AFL, &self.afl, o);
                    tlv::encode(t::ATC, &atc, o);
                    tlv::encode(t::CID, &[cid], o);
                    tlv::encode(t::APPLICATION_CRYPTOGRAM, &ac, o);
                    tlv::encode(t::IAD, &iad, o);
                    tlv::encode(t::CTQ, &ctq, o);
                    if let Some(ff) = &ff {
                        tlv::encode(t::FORM_FACTOR, ff, o);
                    }
                    if let Some((sdad, car)) = &fdda {
                        tlv::encode(t::SDAD, sdad, o);
                        tlv::encode(t::CARD_AUTH_RELATED_DATA, car, o);
                    }
                    o.extend_from_slice(&self.gpo_extra);
                });
            }
            Flow::Dpas => {
                let ttq = Self::dol_value(&self.pdol_entries, &data, t::TTQ, 4);
                let online_required = ttq[1] & 0x80 != 0;
                let cid = if self.app.decline {
                    0x00
                } else if self.app.offline && !online_required {
                    0x40
                } else {
                    0x80
                };
                let iad = self.iad_for(cid >> 6, 0b10);
                let ac_data = self.ac_data(&self.pdol_entries, &data, atc, &iad);
                let ac = application_cryptogram(self.cvn, &self.mk_ac, &ac_data).unwrap_or([0; 8]);
                self.last_ac = ac;
                let cpr = self
                    .app
                    .cpr
                    .as_deref()
                    .and_then(|c| unhex(c).ok())
                    .unwrap_or(vec![0x40, 0x00]);
                let mut objs = Vec::new();
                tlv::encode(t::AIP, &self.aip, &mut objs);
                tlv::encode(t::AFL, &self.afl, &mut objs);
                tlv::encode(t::ATC, &atc, &mut objs);
                tlv::encode(t::CID, &[cid], &mut objs);
                tlv::encode(t::IAD, &iad, &mut objs);
                tlv::encode(Tag::new(0x9F71), &cpr, &mut objs);
                // An offline approval carries its AC only inside a CDA-format signature whose
                // transaction data hash covers the PDOL data and the other response objects.
                let signed = (cid == 0x40 && self.app.oda == OdaMethod::Cda)
                    .then(|| {
                        let icc = self.icc_key.as_ref()?;
                        let mut h = sha1::Sha1::new();
                        sha1::Digest::update(&mut h, &data);
                        sha1::Digest::update(&mut h, &objs);
                        let tdhc: [u8; 20] = sha1::Digest::finalize(h).into();
                        let mut dyn_data = vec![0x02, atc[0], atc[1], cid];
                        dyn_data.extend_from_slice(&ac);
                        dyn_data.extend_from_slice(&tdhc);
                        let un =
                            Self::dol_value(&self.pdol_entries, &data, t::UNPREDICTABLE_NUMBER, 4);
                        Some(self.corrupt(emvpki::sdad(icc, &dyn_data, &un)))
                    })
                    .flatten();
                tlv::encode_constructed(t::RESPONSE_FORMAT2, &mut out, |o| {
                    o.extend_from_slice(&objs);
                    match &signed {
                        Some(sdad) => tlv::encode(t::SDAD, sdad, o),
                        None => tlv::encode(t::APPLICATION_CRYPTOGRAM, &ac, o),
                    }
                });
            }
        }
        Response::new(out, 0x9000)
    }

    /// GENERATE AC (Book 3 §6.5.5), with CDA when P1 bit 5 asks for it and the card supports it.
    fn generate_ac(&mut self, cmd: &Command) -> Response {
        if self.selected != Selected::Application
            || self.app.flow != Flow::Mchip
            || self.gac_count >= 2
        {
            return Response::new(vec![], 0x6985);
        }
        let second = self.gac_count == 1;
        let entries = if second {
            &self.cdol2_entries
        } else {
            &self.cdol1_entries
        };
        if cmd.data.len() != dol::data_len(entries) {
            return Response::new(vec![], 0x6700);
        }
        let entries = entries.clone();
        self.gac_count += 1;
        if !second {
            self.cdol1_data = cmd.data.clone();
        }
        let requested = cmd.p1 & 0xC0;
        // Card risk management: never better than asked; a first GENERATE AC asking for a TC
        // goes online unless the card approves offline.
        let cid = match (requested, second) {
            _ if self.app.decline => 0x00,
            (0x00, _) => 0x00,
            (0x40, false) if !self.app.offline => 0x80,
            (0x40, _) => 0x40,
            _ => 0x80,
        };
        let code = cid >> 6;
        let iad = if second {
            self.iad_for(0b10, code)
        } else {
            self.iad_for(code, 0b10)
        };
        let atc = self.atc.to_be_bytes();
        let ac_data = self.ac_data(&entries, &cmd.data, atc, &iad);
        let ac = application_cryptogram(self.cvn, &self.mk_ac, &ac_data).unwrap_or([0; 8]);
        self.last_ac = ac;
        // A JCB card (kernel 5) chooses the CVM from the Terminal Interchange Profile and says
        // so in the Cardholder Verification Status (9F50): signature when a CVM is required
        // and the reader takes signatures, otherwise none.
        let mut cv_status = Vec::new();
        if self.app.kernel_id.as_deref() == Some("05") {
            let tip = Self::dol_value(&self.pdol_entries, &self.pdol_data, Tag::new(0x9F53), 3);
            let status = match tip[0] {
                t if t & 0x80 != 0 && t & 0x40 != 0 => 0x10,
                _ => 0x00,
            };
            tlv::encode(Tag::new(0x9F50), &[status], &mut cv_status);
        }
        // Book 2 §6.6: no CDA signature on an AAC.
        let cda = cmd.p1 & 0x10 != 0
            && cid != 0x00
            && self.app.oda == OdaMethod::Cda
            && self.icc_key.is_some();
        let mut out = Vec::new();
        if cda {
            // Book 2 §6.6: the AC only inside the signature; the transaction data hash covers
            // PDOL data, CDOL1 data, (CDOL2 data), and the response objects except 9F4B.
            let mut resp_objs = Vec::new();
            tlv::encode(t::CID, &[cid], &mut resp_objs);
            tlv::encode(t::ATC, &atc, &mut resp_objs);
            tlv::encode(t::IAD, &iad, &mut resp_objs);
            resp_objs.extend_from_slice(&cv_status);
            let mut h = sha1::Sha1::new();
            sha1::Digest::update(&mut h, &self.pdol_data);
            sha1::Digest::update(&mut h, &self.cdol1_data);
            if second {
                sha1::Digest::update(&mut h, &cmd.data);
            }
            sha1::Digest::update(&mut h, &resp_objs);
            let tdhc: [u8; 20] = sha1::Digest::finalize(h).into();
            let mut dyn_data = vec![0x02, atc[0], atc[1], cid];
            dyn_data.extend_from_slice(&ac);
            dyn_data.extend_from_slice(&tdhc);
            let un = Self::dol_value(&entries, &cmd.data, t::UNPREDICTABLE_NUMBER, 4);
            let sdad = self.corrupt(emvpki::sdad(
                self.icc_key.as_ref().expect("checked"),
                &dyn_data,
                &un,
            ));
            tlv::encode_constructed(t::RESPONSE_FORMAT2, &mut out, |o| {
                o.extend_from_slice(&resp_objs);
                tlv::encode(t::SDAD, &sdad, o);
            });
        } else {
            tlv::encode_constructed(t::RESPONSE_FORMAT2, &mut out, |o| {
                tlv::encode(t::CID, &[cid], o);
                tlv::encode(t::ATC, &atc, o);
                tlv::encode(t::APPLICATION_CRYPTOGRAM, &ac, o);
                tlv::encode(t::IAD, &iad, o);
                o.extend_from_slice(&cv_status);
            });
        }
        let resp = Response::new(out, 0x9000);
        // A new GENERATE AC replaces any torn one the card remembered.
        self.torn_gac = None;
        if !second && self.app.defect == Some(Defect::TornAfterGac) && !self.torn_fired {
            // The card has counted this transaction and computed its answer, then left. With
            // a DRDOL it keeps the answer for RECOVER AC.
            self.torn_fired = true;
            self.present = false;
            self.silent = true;
            if !self.drdol_entries.is_empty() {
                self.torn_gac = Some((self.drdol_data(&entries, &cmd.data), resp.clone()));
            }
        }
        resp
    }

    /// The DRDOL data the terminal will send, taken from the CDOL1 data of the GENERATE AC
    /// (tags the CDOL1 does not carry count as zeros).
    fn drdol_data(&self, cdol1: &[DolEntry], data: &[u8]) -> Vec<u8> {
        let values = dol::split(cdol1, data).unwrap_or_default();
        dol::build(&self.drdol_entries, |tag| {
            values.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v)
        })
    }

    /// RECOVER AC (Book C-2, M/Chip): the torn GENERATE AC's answer, if the DRDOL data
    /// identifies it; 6985 otherwise.
    fn recover_ac(&mut self, cmd: &Command) -> Response {
        if self.selected != Selected::Application || self.app.flow != Flow::Mchip {
            return Response::new(vec![], 0x6985);
        }
        match &self.torn_gac {
            Some((expected, resp)) if *expected == cmd.data => {
                let resp = resp.clone();
                self.torn_gac = None;
                resp
            }
            _ => Response::new(vec![], 0x6985),
        }
    }

    /// INTERNAL AUTHENTICATE (DDA, Book 2 §6.5): signs the DDOL data.
    fn internal_authenticate(&mut self, cmd: &Command) -> Response {
        let Some(icc) = self
            .icc_key
            .as_ref()
            .filter(|_| self.app.oda == OdaMethod::Dda)
        else {
            return Response::new(vec![], 0x6D00);
        };
        let atc = self.atc.to_be_bytes();
        let dyn_data = [0x02, atc[0], atc[1]];
        let sdad = self.corrupt(emvpki::sdad(icc, &dyn_data, &cmd.data));
        let mut out = Vec::new();
        tlv::encode_constructed(t::RESPONSE_FORMAT2, &mut out, |o| {
            tlv::encode(t::SDAD, &sdad, o)
        });
        Response::new(out, 0x9000)
    }

    fn get_data(&self, cmd: &Command) -> Response {
        let tag = Tag::new(u32::from_be_bytes([0, 0, cmd.p1, cmd.p2]));
        let value = match tag.raw() {
            0x9F36 => self.atc.to_be_bytes().to_vec(),
            0x9F13 => self.atc.saturating_sub(1).to_be_bytes().to_vec(),
            0x9F17 => vec![self.pin_tries],
            0x9F4F => vec![
                0x9A, 0x03, 0x9F, 0x21, 0x03, 0x9F, 0x02, 0x06, 0x5F, 0x2A, 0x02, 0x9F, 0x36, 0x02,
            ],
            _ => return Response::new(vec![], 0x6A88),
        };
        let mut out = Vec::new();
        tlv::encode(tag, &value, &mut out);
        Response::new(out, 0x9000)
    }

    /// VERIFY with a plaintext PIN (Book 3 §6.5.12, P2 = 80): 9000, 63Cx with the tries
    /// left, 6983 when the try counter is exhausted.
    fn verify_pin(&mut self, cmd: &Command) -> Response {
        let Some(pin) = &self.pin else {
            return Response::new(vec![], 0x6A81);
        };
        if cmd.p2 != 0x80 || cmd.data.len() != 8 {
            return Response::new(vec![], 0x6A86);
        }
        if self.pin_tries == 0 {
            return Response::new(vec![], 0x6983);
        }
        let ok = crate::script::pin_block(pin).is_ok_and(|b| b[..] == cmd.data[..]);
        if ok {
            self.pin_tries = PIN_TRY_LIMIT;
            Response::new(vec![], 0x9000)
        } else {
            self.pin_tries -= 1;
            Response::new(vec![], 0x63C0 | u16::from(self.pin_tries))
        }
    }

    /// Issuer script commands with secure messaging (Book 3 §6.5; Book 2 §9): only inside a
    /// transaction that produced a cryptogram, and only with a MAC over that transaction's
    /// ATC and cryptogram (6988 otherwise).
    fn issuer_script(&mut self, cmd: &Command) -> Response {
        let Some(keys) = &self.sm_keys else {
            return Response::new(vec![], 0x6D00);
        };
        if self.selected != Selected::Application || self.last_ac == [0; 8] {
            return Response::new(vec![], 0x6985);
        }
        let ctx = crate::script::ScriptContext {
            atc: self.atc.to_be_bytes(),
            ac: self.last_ac,
        };
        let header = [cmd.cla, cmd.ins, cmd.p1, cmd.p2];
        match crate::script::open_script_command(header, &cmd.data, keys, &ctx) {
            Err(crate::script::ScriptError::BadMac) => Response::new(vec![], 0x6988),
            Err(_) => Response::new(vec![], 0x6700),
            Ok(new_pin) => {
                match (cmd.ins, cmd.p2) {
                    (0x1E, _) => self.app.status = AppStatus::Blocked,
                    (0x18, _) => self.app.status = AppStatus::Active,
                    (0x24, 0x00) => self.pin_tries = PIN_TRY_LIMIT,
                    (0x24, 0x02) => {
                        if self.pin.is_none() {
                            return Response::new(vec![], 0x6A81);
                        }
                        self.pin = new_pin;
                        self.pin_tries = PIN_TRY_LIMIT;
                    }
                    _ => return Response::new(vec![], 0x6A86),
                }
                Response::new(vec![], 0x9000)
            }
        }
    }

    fn handle(&mut self, cmd: &Command) -> Response {
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) if cmd.p1 == 0x04 => {
                if cmd.data == PPSE {
                    self.selected = Selected::Ppse;
                    Response::new(self.ppse_fci(), 0x9000)
                } else if !cmd.data.is_empty() && self.aid.starts_with(&cmd.data) {
                    if self.app.status == AppStatus::Blocked {
                        self.selected = Selected::Nothing;
                        return Response::new(vec![], 0x6A81);
                    }
                    self.selected = Selected::Application;
                    // A new transaction: scripts need its own cryptogram.
                    self.last_ac = [0; 8];
                    Response::new(self.adf_fci(), 0x9000)
                } else {
                    self.selected = Selected::Nothing;
                    Response::new(vec![], 0x6A82)
                }
            }
            (0x00, 0xA4) => Response::new(vec![], 0x6A86),
            (0x80, 0xA8) => self.gpo(cmd),
            (0x00, 0xB2) => {
                if self.selected != Selected::Application {
                    return Response::new(vec![], 0x6985);
                }
                if cmd.p2 & 0x07 != 0x04 {
                    return Response::new(vec![], 0x6A86);
                }
                let sfi = cmd.p2 >> 3;
                match self
                    .records
                    .iter()
                    .find(|(s, r, _)| *s == sfi && *r == cmd.p1)
                {
                    Some((_, _, body)) => Response::new(body.clone(), 0x9000),
                    None => Response::new(vec![], 0x6A83),
                }
            }
            (0x80, 0xAE) => self.generate_ac(cmd),
            (0x80, 0xD0) => self.recover_ac(cmd),
            (0x00, 0x88) => self.internal_authenticate(cmd),
            (0x80, 0xCA) => self.get_data(cmd),
            (0x00, 0x20) => self.verify_pin(cmd),
            (0x84, 0x1E | 0x18 | 0x24) => self.issuer_script(cmd),
            (0x00 | 0x80 | 0x84, _) => Response::new(vec![], 0x6D00),
            _ => Response::new(vec![], 0x6E00),
        }
    }
}

impl drivers::VirtualCard for EmvCard {
    fn uid(&self) -> Vec<u8> {
        self.uid.clone()
    }

    fn process(&mut self, capdu: &[u8]) -> Vec<u8> {
        let r = match Command::parse(capdu) {
            Ok(cmd) => self.handle(&cmd).to_bytes(),
            Err(_) => vec![0x67, 0x00],
        };
        if std::mem::take(&mut self.silent) {
            return Vec::new();
        }
        r
    }

    fn present(&self) -> bool {
        self.present
    }

    fn reinsert(&mut self) {
        // Power-on reset: nothing selected; counters and a torn answer survive.
        self.present = true;
        self.silent = false;
        self.selected = Selected::Nothing;
        self.gac_count = 0;
    }
}

/// DRDOL (9F51).
fn torn_drdol_tag() -> Tag {
    Tag::new(0x9F51)
}

/// The virtual card called `name` from the built-in fleet.
pub fn builtin_card(name: &str) -> Option<Result<EmvCard, ProfileError>> {
    builtin_profiles()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| EmvCard::from_profile(&p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drivers::VirtualCard;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn builtin_profiles_load() {
        let profiles = builtin_profiles();
        assert_eq!(profiles.len(), BUILTIN.len());
        for p in profiles {
            EmvCard::from_profile(&p).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                BUILTIN.iter().find(|(n, _)| *n == p.name).map(|(n, _)| *n),
                Some(p.name.as_str())
            );
        }
    }

    #[test]
    fn answers_ppse_select_gpo_and_records() {
        let mut card = builtin_card("visa").unwrap().unwrap();
        let r = card.process(&h("00A404000E325041592E5359532E444446303100"));
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        assert_eq!(r[0], 0x6F);
        assert!(
            tlv::find(&r[..r.len() - 2], t::AID_CARD).unwrap() == Some(&h("A0000000031010")[..])
        );
        let r = card.process(&h("00A4040007A000000003101000"));
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        // PDOL of 33 bytes.
        let pdol_data =
            h("22004000 000000001234 000000000000 0276 0000000000 0978 261129 00 DEADBEEF");
        let mut gpo = vec![0x80, 0xA8, 0x00, 0x00, 35, 0x83, 33];
        gpo.extend_from_slice(&pdol_data);
        gpo.push(0x00);
        let r = card.process(&gpo);
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00], "{}", hex::encode(&r));
        assert_eq!(
            tlv::find(&r[..r.len() - 2], t::ATC).unwrap(),
            Some(&[0x00, 0x02][..])
        );
        assert_eq!(card.atc(), 2);
        let r = card.process(&h("00B2010C00"));
        assert_eq!(r[0], 0x70);
        let r = card.process(&h("00B2031C00"));
        assert_eq!(r, vec![0x6A, 0x83]);
        // Wrong PDOL length.
        let r = card.process(&h("80A80000038301AA00"));
        assert_eq!(r, vec![0x67, 0x00]);
        assert_eq!(card.process(&h("80CA9F3600")), h("9F360200029000"));
        assert_eq!(card.process(&h("80CA9F1700")), h("9F1701039000"));
        assert_eq!(card.process(&h("80CADF0100")), vec![0x6A, 0x88]);
        assert_eq!(card.process(&h("00A4040005A00000000400")), vec![0x6A, 0x82]);
        assert_eq!(card.process(&h("00CA9F1700")), vec![0x6D, 0x00]);
        assert_eq!(card.process(&h("00")), vec![0x67, 0x00]);
    }

    #[test]
    fn blocked_application_answers_6a81() {
        let mut card = builtin_card("visa-blocked").unwrap().unwrap();
        assert_eq!(
            card.process(&h("00A4040007A000000003101000")),
            vec![0x6A, 0x81]
        );
    }

    #[test]
    fn profile_errors_name_the_field() {
        let text =
            include_str!("../profiles/visa.toml").replace("cvn = \"visa-10\"", "cvn = \"visa-99\"");
        let p = parse_profile("x.toml", &text).unwrap();
        let e = EmvCard::from_profile(&p).unwrap_err();
        assert_eq!(e.field, "application.cvn");
        let text = include_str!("../profiles/visa.toml").replace("atc = 1", "atc = 1\ncolour = 2");
        let e = parse_profile("x.toml", &text).unwrap_err();
        assert!(e.problem.contains("colour"), "{e}");
        assert!(e.problem.contains("line"), "{e}");
        let text =
            include_str!("../profiles/visa.toml").replace("4761739001010119", "4761739001010118");
        let e = EmvCard::from_profile(&parse_profile("x.toml", &text).unwrap()).unwrap_err();
        assert_eq!(e.field, "card.pan");
        assert_eq!(
            field_line(&text, "card.pan"),
            Some(text.lines().position(|l| l.starts_with("pan =")).unwrap() + 1)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(&path, &text).unwrap();
        let e = load_profile_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("mine.toml") && e.contains("card.pan (line "),
            "{e}"
        );
    }
}

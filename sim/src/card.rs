//! Virtual contactless cards that answer APDUs from a profile and compute real cryptograms.

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

/// A card profile as stored in a TOML file (see `sim/profiles/`).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name used on the command line (`--card visa`).
    pub name: String,
    /// One line for `kassa cards`.
    pub description: String,
    /// The payment application.
    pub application: ApplicationProfile,
    /// Card identity.
    pub card: CardProfile,
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

/// The application on the card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationProfile {
    /// AID, hex.
    pub aid: String,
    /// Application label (tag 50).
    pub label: String,
    /// Application priority indicator (tag 87).
    pub priority: u8,
    /// Language preference (tag 5F2D): two-letter codes, most preferred first ("jaen").
    pub language: String,
    /// PDOL (tag 9F38), hex.
    pub pdol: String,
    /// AIP (tag 82), hex.
    pub aip: String,
    /// AFL (tag 94), hex.
    pub afl: String,
    /// Card Transaction Qualifiers (tag 9F6C), hex.
    pub ctq: String,
    /// Form factor indicator (tag 9F6E), hex.
    pub form_factor: Option<String>,
    /// Cryptogram version number (10 = Visa CVN 10).
    pub cvn: u8,
    /// Derivation key index, in the IAD.
    pub dki: u8,
    /// Card Verification Results with their length byte, hex (4 bytes for CVN 10).
    pub cvr: String,
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
    /// Issuer country, ISO 3166 numeric.
    pub issuer_country: u16,
    /// Initial application transaction counter.
    pub atc: u16,
}

/// Keys. Test keys only.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyProfile {
    /// Issuer master key for application cryptograms, 32 hex digits.
    pub imk_ac: String,
}

/// A profile that cannot become a card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card profile {profile}: {field}: {problem}")]
pub struct ProfileError {
    /// Profile name or file.
    pub profile: String,
    /// The offending field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// The built-in profiles, embedded in the binary.
pub const BUILTIN: &[(&str, &str)] = &[("visa", include_str!("../profiles/visa.toml"))];

/// Parses a profile from TOML text. `source` names the file in errors.
pub fn parse_profile(source: &str, text: &str) -> Result<Profile, ProfileError> {
    toml::from_str(text).map_err(|e| ProfileError {
        profile: source.to_string(),
        field: "toml".into(),
        problem: e.to_string().trim().replace('\n', " "),
    })
}

/// All built-in profiles.
pub fn builtin_profiles() -> Vec<Profile> {
    BUILTIN
        .iter()
        .map(|(name, text)| parse_profile(name, text).expect("built-in profiles are valid"))
        .collect()
}

/// Faults a virtual card can be told to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardFault {
    /// Computes cryptograms under a key one bit off the issuer's: the host must decline.
    WrongAcKey,
}

/// A card application in the Visa qVSDC style: PPSE, SELECT, GPO returning the cryptogram,
/// READ RECORD.
pub struct VisaCard {
    name: String,
    aid: Vec<u8>,
    label: String,
    priority: u8,
    language: String,
    pdol: Vec<u8>,
    pdol_entries: Vec<DolEntry>,
    aip: [u8; 2],
    afl: Vec<u8>,
    ctq: Vec<u8>,
    form_factor: Option<Vec<u8>>,
    cvn: u8,
    dki: u8,
    cvr: [u8; 4],
    records: Vec<(u8, u8, Vec<u8>)>,
    mk_ac: Key16,
    atc: u16,
    uid: Vec<u8>,
    selected: Selected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selected {
    Nothing,
    Ppse,
    Application,
}

impl fmt::Debug for VisaCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VisaCard")
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
    })
}

impl VisaCard {
    /// Builds the card from its profile.
    pub fn from_profile(p: &Profile) -> Result<Self, ProfileError> {
        let name = p.name.as_str();
        let err = |field: &str, problem: &str| ProfileError {
            profile: name.into(),
            field: field.into(),
            problem: problem.into(),
        };
        let a = &p.application;
        let c = &p.card;
        let aid = hex_field(name, "application.aid", &a.aid)?;
        if !(5..=16).contains(&aid.len()) {
            return Err(err("application.aid", "must be 5-16 bytes"));
        }
        let pdol = hex_field(name, "application.pdol", &a.pdol)?;
        let pdol_entries =
            dol::parse(&pdol).map_err(|e| err("application.pdol", &e.to_string()))?;
        let aip: [u8; 2] = hex_field(name, "application.aip", &a.aip)?
            .try_into()
            .map_err(|_| err("application.aip", "must be 2 bytes"))?;
        let afl = hex_field(name, "application.afl", &a.afl)?;
        let reads = emv::parse_afl(&afl).map_err(|e| err("application.afl", &e.to_string()))?;
        let cvr: [u8; 4] = hex_field(name, "application.cvr", &a.cvr)?
            .try_into()
            .map_err(|_| err("application.cvr", "must be 4 bytes"))?;
        if a.cvn != 10 {
            return Err(err(
                "application.cvn",
                "only cryptogram version 10 is implemented",
            ));
        }
        let imk = Key16::from_hex(&p.keys.imk_ac)
            .ok_or_else(|| err("keys.imk_ac", "must be 32 hex digits"))?;
        let mk_ac = derive_icc_master_key(&imk, &c.pan, c.psn)
            .ok_or_else(|| err("card.pan", "must be digits"))?;
        if !emv::card::luhn(&c.pan) {
            return Err(err("card.pan", "Luhn check digit is wrong"));
        }
        let expiry = hex_field(name, "card.expiry", &c.expiry)?;
        if emv::util::Date::from_bcd(&expiry).is_none() {
            return Err(err("card.expiry", "must be YYMMDD"));
        }
        let effective = hex_field(name, "card.effective", &c.effective)?;
        let track2 = Track2::build(&c.pan, &c.expiry[..4], &c.service_code, &c.discretionary)
            .ok_or_else(|| err("card.discretionary", "must be digits"))?;

        // Record contents: record 1 carries track 2 and the name, record 2 the rest.
        let mut rec1 = Vec::new();
        tlv::encode(t::TRACK2, &track2, &mut rec1);
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
        tlv::encode(t::AUC, &[0xFF, 0x00], &mut rec2);
        let bodies = [rec1, rec2];
        let records = reads
            .iter()
            .enumerate()
            .map(|(i, &(sfi, rec))| {
                let body = bodies.get(i).cloned().unwrap_or_default();
                let mut out = Vec::new();
                tlv::encode(t::RECORD_TEMPLATE, &body, &mut out);
                (sfi, rec, out)
            })
            .collect();
        // A per-card UID derived from the PAN tail, so two virtual cards differ.
        let uid = c.pan.as_bytes().iter().rev().take(4).copied().collect();
        Ok(VisaCard {
            name: p.name.clone(),
            aid,
            label: a.label.clone(),
            priority: a.priority,
            language: a.language.clone(),
            pdol,
            pdol_entries,
            aip,
            afl,
            ctq: hex_field(name, "application.ctq", &a.ctq)?,
            form_factor: a
                .form_factor
                .as_deref()
                .map(|f| hex_field(name, "application.form_factor", f))
                .transpose()?,
            cvn: a.cvn,
            dki: a.dki,
            cvr,
            records,
            mk_ac,
            atc: c.atc,
            uid,
            selected: Selected::Nothing,
        })
    }

    /// Applies a fault.
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

    fn ppse_fci(&self) -> Vec<u8> {
        let mut out = Vec::new();
        tlv::encode_constructed(t::FCI_TEMPLATE, &mut out, |o| {
            tlv::encode(t::DF_NAME, PPSE, o);
            tlv::encode_constructed(t::FCI_PROPRIETARY, o, |o| {
                tlv::encode_constructed(t::FCI_ISSUER_DISCRETIONARY, o, |o| {
                    tlv::encode_constructed(t::APPLICATION_TEMPLATE, o, |o| {
                        tlv::encode(t::AID_CARD, &self.aid, o);
                        tlv::encode(t::APPLICATION_LABEL, self.label.as_bytes(), o);
                        tlv::encode(t::PRIORITY, &[self.priority], o);
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
                tlv::encode(t::APPLICATION_LABEL, self.label.as_bytes(), o);
                tlv::encode(t::PRIORITY, &[self.priority], o);
                tlv::encode(t::PDOL, &self.pdol, o);
                tlv::encode(t::LANGUAGE_PREFERENCE, self.language.as_bytes(), o);
            });
        });
        out
    }

    /// qVSDC GET PROCESSING OPTIONS: checks the PDOL data, increments the ATC and returns the
    /// cryptogram in a format 2 response.
    fn gpo(&mut self, cmd: &Command) -> Response {
        if self.selected != Selected::Application {
            return Response::new(vec![], 0x6985);
        }
        let Ok(tpl) = tlv::expect_template(&cmd.data, t::COMMAND_TEMPLATE) else {
            return Response::new(vec![], 0x6700);
        };
        let Ok(parts) = dol::split(&self.pdol_entries, tpl.value()) else {
            return Response::new(vec![], 0x6700);
        };
        let get = |tag: Tag, len: usize| -> Vec<u8> {
            parts
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, v)| v.to_vec())
                .unwrap_or_else(|| vec![0; len])
        };
        let fixed = |tag: Tag, len: usize| -> Vec<u8> { get(tag, len) };
        self.atc = self.atc.wrapping_add(1);
        let atc = self.atc.to_be_bytes();
        let mut iad = vec![0x06, self.dki, self.cvn];
        iad.extend_from_slice(&self.cvr);
        let input = AcData {
            amount_authorised: fixed(t::AMOUNT_AUTHORISED, 6).try_into().unwrap_or([0; 6]),
            amount_other: fixed(t::AMOUNT_OTHER, 6).try_into().unwrap_or([0; 6]),
            terminal_country: fixed(t::TERMINAL_COUNTRY, 2).try_into().unwrap_or([0; 2]),
            tvr: fixed(t::TVR, 5).try_into().unwrap_or([0; 5]),
            currency: fixed(t::TXN_CURRENCY, 2).try_into().unwrap_or([0; 2]),
            date: fixed(t::TXN_DATE, 3).try_into().unwrap_or([0; 3]),
            txn_type: fixed(t::TXN_TYPE, 1).first().copied().unwrap_or(0),
            unpredictable_number: fixed(t::UNPREDICTABLE_NUMBER, 4)
                .try_into()
                .unwrap_or([0; 4]),
            aip: self.aip,
            atc,
            iad: iad.clone(),
        };
        let ac = application_cryptogram(Cvn::Visa10, &self.mk_ac, &input).unwrap_or([0; 8]);
        let mut out = Vec::new();
        tlv::encode_constructed(t::RESPONSE_FORMAT2, &mut out, |o| {
            tlv::encode(t::AIP, &self.aip, o);
            tlv::encode(t::AFL, &self.afl, o);
            tlv::encode(t::ATC, &atc, o);
            tlv::encode(t::CID, &[0x80], o);
            tlv::encode(t::APPLICATION_CRYPTOGRAM, &ac, o);
            tlv::encode(t::IAD, &iad, o);
            tlv::encode(t::CTQ, &self.ctq, o);
            if let Some(ff) = &self.form_factor {
                tlv::encode(t::FORM_FACTOR, ff, o);
            }
        });
        Response::new(out, 0x9000)
    }

    fn handle(&mut self, cmd: &Command) -> Response {
        match (cmd.cla, cmd.ins) {
            (0x00, 0xA4) if cmd.p1 == 0x04 => {
                if cmd.data == PPSE {
                    self.selected = Selected::Ppse;
                    Response::new(self.ppse_fci(), 0x9000)
                } else if !cmd.data.is_empty() && self.aid.starts_with(&cmd.data) {
                    self.selected = Selected::Application;
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
            (0x00 | 0x80, _) => Response::new(vec![], 0x6D00),
            _ => Response::new(vec![], 0x6E00),
        }
    }
}

impl drivers::VirtualCard for VisaCard {
    fn uid(&self) -> Vec<u8> {
        self.uid.clone()
    }

    fn process(&mut self, capdu: &[u8]) -> Vec<u8> {
        match Command::parse(capdu) {
            Ok(cmd) => self.handle(&cmd).to_bytes(),
            Err(_) => vec![0x67, 0x00],
        }
    }
}

/// The virtual card called `name` from the built-in fleet.
pub fn builtin_card(name: &str) -> Option<Result<VisaCard, ProfileError>> {
    builtin_profiles()
        .into_iter()
        .find(|p| p.name == name)
        .map(|p| VisaCard::from_profile(&p))
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
        for p in builtin_profiles() {
            VisaCard::from_profile(&p).unwrap();
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
        let r = card.process(&h("00B2030C00"));
        assert_eq!(r, vec![0x6A, 0x83]);
        // Wrong PDOL length.
        let r = card.process(&h("80A80000038301AA00"));
        assert_eq!(r, vec![0x67, 0x00]);
        assert_eq!(card.process(&h("00A4040005A00000000400")), vec![0x6A, 0x82]);
        assert_eq!(card.process(&h("00CA9F1700")), vec![0x6D, 0x00]);
        assert_eq!(card.process(&h("00")), vec![0x67, 0x00]);
    }

    #[test]
    fn profile_errors_name_the_field() {
        let text = include_str!("../profiles/visa.toml")
            .replace("afl = \"08010200\"", "afl = \"08020100\"");
        let p = parse_profile("x.toml", &text).unwrap();
        let e = VisaCard::from_profile(&p).unwrap_err();
        assert_eq!(e.field, "application.afl");
        let text = include_str!("../profiles/visa.toml").replace("atc = 1", "atc = 1\ncolour = 2");
        let e = parse_profile("x.toml", &text).unwrap_err();
        assert!(e.problem.contains("colour"), "{e}");
        assert!(e.problem.contains("line"), "{e}");
    }
}

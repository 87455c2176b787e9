//! Recording and masking APDU traces (docs/TRACES.md), and reading a trace's terminal data.

use drivers::trace::{Exchange, Trace};
use emv::tags as t;
use emv::tlv::{self, Tag, TagStore};
use emv::util::{hex, unhex};

/// The terminal data a trace header carries, in this order.
pub const HEADER_TAGS: &[Tag] = &[
    t::UNPREDICTABLE_NUMBER,
    t::TXN_DATE,
    t::TXN_TIME,
    t::AMOUNT_AUTHORISED,
    t::TXN_CURRENCY,
    t::TERMINAL_COUNTRY,
    t::TXN_TYPE,
    t::TTQ,
];

/// Builds a trace from recorded exchanges and the transaction's data objects.
pub fn build(card: &str, data: &TagStore, exchanges: &[(Vec<u8>, Vec<u8>)]) -> Trace {
    let mut trace = Trace {
        metadata: vec![
            ("card".into(), card.into()),
            (
                "recorded-by".into(),
                format!("kassa {}", env!("CARGO_PKG_VERSION")),
            ),
            (
                "recorded-at".into(),
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
        ],
        ..Trace::default()
    };
    for tag in HEADER_TAGS {
        if let Some(v) = data.get(*tag) {
            trace.overrides.push((tag.to_string(), hex(v)));
        }
    }
    trace.exchanges = exchanges
        .iter()
        .map(|(c, r)| Exchange {
            line: 0,
            command: c.clone(),
            response: r.clone(),
        })
        .collect();
    trace
}

/// Track 2 Data in kernel 2 (9F6B).
const TRACK2_C2: Tag = Tag::new(0x9F6B);
/// ICC Public Key Certificate (9F46) and ICC PIN Encipherment Public Key Certificate (9F2D):
/// both recover, with the public issuer key, to data holding the full PAN (Book 2 §6.4).
const ICC_CERTS: [Tag; 2] = [Tag::new(0x9F46), Tag::new(0x9F2D)];

/// Test values that replace card data in a masked trace, digit for digit and byte for byte.
fn masked_value(tag: Tag, v: &[u8]) -> Vec<u8> {
    match tag {
        // Digits become 9s (keeping F padding and the track 2 separator D): 999999****9999.
        t::PAN | t::TRACK2 | t::TRACK2_DISCRETIONARY | TRACK2_C2 => v
            .iter()
            .map(|b| {
                let hi = if b >> 4 <= 9 { 9 } else { b >> 4 };
                let lo = if b & 0x0F <= 9 { 9 } else { b & 0x0F };
                (hi << 4) | lo
            })
            .collect(),
        // Certificates that would give the PAN back: zeros.
        _ if ICC_CERTS.contains(&tag) => vec![0; v.len()],
        // Names and track 1 become "TEST CARDHOLDER" repeated to the same length.
        _ => b"TEST CARDHOLDER "
            .iter()
            .cycle()
            .take(v.len())
            .copied()
            .collect(),
    }
}

/// Replaces the PAN, track data and names in every response with test values of the same
/// length. Signatures and certificates over that data stop verifying; cryptograms over the
/// PDOL data do not change.
pub fn mask(trace: &mut Trace) {
    for e in &mut trace.exchanges {
        if e.response.len() < 2 {
            continue;
        }
        let data_len = e.response.len() - 2;
        let mut patches = Vec::new();
        let walked = tlv::walk(&e.response[..data_len], |_, o| {
            if !o.is_constructed() && (tlv::is_sensitive(o.tag()) || ICC_CERTS.contains(&o.tag())) {
                patches.push((o.value_offset(), masked_value(o.tag(), o.value())));
            }
        });
        if walked.is_err() {
            // Not TLV: nothing tells where card data is, so none of it is kept.
            e.response[..data_len].fill(0);
            continue;
        }
        for (at, v) in patches {
            e.response[at..at + v.len()].copy_from_slice(&v);
        }
    }
    trace.metadata.push(("masked".into(), "yes".into()));
}

/// Terminal data from a trace header, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderData {
    /// 9F37.
    pub unpredictable_number: Option<[u8; 4]>,
    /// 9A.
    pub date: Option<emv::util::Date>,
    /// 9F21.
    pub time: Option<emv::util::Time>,
    /// 9F02, minor units.
    pub amount: Option<u64>,
    /// 5F2A.
    pub currency: Option<u16>,
    /// 9F1A.
    pub country: Option<u16>,
    /// 9C.
    pub txn_type: Option<u8>,
    /// 9F66.
    pub ttq: Option<[u8; 4]>,
}

/// Reads the header's `TAG=HEX` overrides. Errors name the tag.
pub fn header_data(trace: &Trace) -> Result<HeaderData, String> {
    let mut h = HeaderData::default();
    for (k, v) in &trace.overrides {
        let bytes =
            unhex(v).map_err(|at| format!("trace header {k}: invalid hex at digit {at}"))?;
        let bad = || format!("trace header {k}={v}: wrong length or format");
        let bcd = |b: &[u8]| emv::util::parse_bcd_n(b);
        match k.to_ascii_uppercase().as_str() {
            "9F37" => {
                h.unpredictable_number = Some(bytes.as_slice().try_into().map_err(|_| bad())?)
            }
            "9A" => h.date = Some(emv::util::Date::from_bcd(&bytes).ok_or_else(bad)?),
            "9F21" => {
                let [hh, mm, ss] = <[u8; 3]>::try_from(bytes.as_slice()).map_err(|_| bad())?;
                let d = |x: u8| bcd(&[x]).map(|v| v as u8).ok_or_else(bad);
                h.time = Some(emv::util::Time {
                    hour: d(hh)?,
                    minute: d(mm)?,
                    second: d(ss)?,
                });
            }
            "9F02" => h.amount = Some(bcd(&bytes).filter(|_| bytes.len() == 6).ok_or_else(bad)?),
            "5F2A" => {
                h.currency = Some(bcd(&bytes).filter(|_| bytes.len() == 2).ok_or_else(bad)? as u16)
            }
            "9F1A" => {
                h.country = Some(bcd(&bytes).filter(|_| bytes.len() == 2).ok_or_else(bad)? as u16)
            }
            "9C" => h.txn_type = Some(*bytes.first().filter(|_| bytes.len() == 1).ok_or_else(bad)?),
            "9F66" => h.ttq = Some(bytes.as_slice().try_into().map_err(|_| bad())?),
            _ => {} // Unknown overrides are kept in the file but not used.
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_lengths_and_structure() {
        let mut trace = Trace::parse(
            "> 00B2010C00\n< 701C5A0847617390010101195F200F4B415353412F5445535420434152449000\n",
        )
        .unwrap();
        let before = trace.exchanges[0].response.clone();
        mask(&mut trace);
        let after = &trace.exchanges[0].response;
        assert_eq!(after.len(), before.len());
        assert_eq!(&after[..4], &before[..4]);
        assert_eq!(hex(&after[4..12]), "9999999999999999");
        assert_eq!(&after[15..30], b"TEST CARDHOLDER");
        assert_eq!(&after[after.len() - 2..], &[0x90, 0x00]);
        assert!(!trace.to_text().contains("4761739001010119"));
    }

    #[test]
    fn masking_blanks_icc_certificates_and_non_tlv_responses() {
        // READ RECORD with 9F46 (ICC public key certificate: recovers to the PAN), then an
        // answer that is not TLV.
        let mut trace = Trace::parse(
            "> 00B2011C00\n< 70079F4604A1B2C3D49000\n> 80CA9F1700\n< 4761739001019000\n",
        )
        .unwrap();
        mask(&mut trace);
        assert_eq!(hex(&trace.exchanges[0].response), "70079F4604000000009000");
        assert_eq!(hex(&trace.exchanges[1].response), "0000000000009000");
    }

    #[test]
    fn header_data_is_checked() {
        let t = Trace::parse("# 9F37=DEADBEEF\n# 9A=261129\n# 9F02=000000001234\n# 9F21=120000\n")
            .unwrap();
        let h = header_data(&t).unwrap();
        assert_eq!(h.unpredictable_number, Some([0xDE, 0xAD, 0xBE, 0xEF]));
        assert_eq!(h.amount, Some(1234));
        assert_eq!(h.time.unwrap().hour, 12);
        let t = Trace::parse("# 9F37=DEAD\n").unwrap();
        assert!(header_data(&t).unwrap_err().contains("9F37"));
        let t = Trace::parse("# 9A=26ZZ29\n").unwrap();
        assert!(header_data(&t).is_err());
    }
}

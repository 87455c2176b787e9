//! QR payments over ISO 8583, as Kassa's dialect tables carry them.
//!
//! Two exchanges, whatever the code's direction:
//!
//! - **QR payment request** (0200 → 0210): field 3 `000000`, 4 amount, 7, 11, 12, 13, 22 `032`
//!   (PAN entry by bar code, no PIN capability), 25 `00`, 41, 42, 49, and field 48 with the QR
//!   sub-elements below. For a code on the terminal's screen (merchant-presented) the host
//!   registers the order and answers `09` (request in progress) until the wallet pays; for a
//!   code scanned from the customer's phone (consumer-presented) it usually decides at once.
//! - **QR status** (0600 → 0610, administrative): 7, 11, 41, 42, field 48 with the mode and
//!   reference, and field 90 naming the original 0200. The answer is `00` paid (with 37 and
//!   38), `09` still waiting, `25` no such order (it never reached the host), or a decline.
//!
//! Cancelling an order is the ISO 8583 reversal (0400) of its 0200
//! ([`crate::messages::reversal`] keeps field 48): a pending order is closed, a paid one is
//! refunded.
//!
//! Field 48 (ans, LLLVAR) holds sub-elements as a two-digit ID, a three-digit length and the
//! value: `01` mode (`MP` merchant-presented, `CP` consumer-presented), `02` the reference
//! (the MPM code's 62.05), `03` the consumer's code (CP only: a payment token, never logged),
//! `04` the CRC of the displayed code (MP only), and in answers `05` the wallet's name and
//! `06` the payer's masked account.

use std::fmt;

use zeroize::Zeroizing;

use crate::iso8583::Message;
use crate::messages::{MessageError, original_data_elements};

/// Which way the code travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrMode {
    /// The terminal shows the code (EMVCo merchant-presented mode); the wallet scans it.
    MerchantPresented,
    /// The terminal scans the code the customer's wallet shows (consumer-presented mode).
    ConsumerPresented,
}

impl QrMode {
    /// Field 48.01.
    pub fn code(self) -> &'static str {
        match self {
            QrMode::MerchantPresented => "MP",
            QrMode::ConsumerPresented => "CP",
        }
    }

    /// The mode for a field 48.01 value.
    pub fn from_code(s: &str) -> Option<QrMode> {
        match s {
            "MP" => Some(QrMode::MerchantPresented),
            "CP" => Some(QrMode::ConsumerPresented),
            _ => None,
        }
    }
}

/// Field 48 sub-element IDs.
pub mod sub {
    /// Mode: `MP` or `CP`.
    pub const MODE: u8 = 1;
    /// The payment's reference.
    pub const REFERENCE: u8 = 2;
    /// The consumer's code (consumer-presented).
    pub const CONSUMER_CODE: u8 = 3;
    /// The CRC of the displayed code (merchant-presented).
    pub const PAYLOAD_CRC: u8 = 4;
    /// The wallet that paid (answers).
    pub const WALLET: u8 = 5;
    /// The payer's masked account (answers).
    pub const PAYER: u8 = 6;
}

/// Encodes field 48 sub-elements (ID nn, length nnn, value).
pub fn field48(items: &[(u8, &str)]) -> String {
    let mut out = String::new();
    for (id, v) in items {
        out.push_str(&format!("{id:02}{:03}{v}", v.chars().count()));
    }
    out
}

/// Decodes field 48 sub-elements; a malformed one is an error naming field 48.
pub fn parse_field48(s: &str) -> Result<Vec<(u8, String)>, MessageError> {
    let bad = MessageError::Field {
        field: 48,
        what: "malformed QR sub-elements",
    };
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let head = rest.get(..5).ok_or(bad.clone())?;
        if !head.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad);
        }
        let id: u8 = head[..2].parse().map_err(|_| bad.clone())?;
        let len: usize = head[2..].parse().map_err(|_| bad.clone())?;
        let body = &rest[5..];
        let end = match body.char_indices().nth(len) {
            Some((i, _)) => i,
            None if body.chars().count() == len => body.len(),
            None => return Err(bad),
        };
        out.push((id, body[..end].to_string()));
        rest = &body[end..];
    }
    Ok(out)
}

fn pad_right(s: &str, width: usize) -> String {
    let mut out: String = s.chars().take(width).collect();
    while out.chars().count() < width {
        out.push(' ');
    }
    out
}

/// A QR payment request (0200).
///
/// `Debug` never shows the consumer's code.
#[derive(Clone)]
pub struct QrPaymentRequest {
    /// Which way the code travels.
    pub mode: QrMode,
    /// The reference the terminal gave the payment (at most 25 characters).
    pub reference: String,
    /// The code scanned from the customer (consumer-presented).
    pub consumer_code: Option<Zeroizing<String>>,
    /// The CRC of the code on the screen (merchant-presented).
    pub payload_crc: Option<String>,
    /// Amount in minor units (field 4).
    pub amount_minor: u64,
    /// Currency, ISO 4217 numeric (field 49).
    pub currency: u16,
    /// Transmission date and time, MMDDhhmmss (field 7).
    pub transmission: String,
    /// STAN (field 11), 1-999999.
    pub stan: u32,
    /// Local time hhmmss (field 12).
    pub local_time: String,
    /// Local date MMDD (field 13).
    pub local_date: String,
    /// Terminal ID (field 41).
    pub terminal_id: String,
    /// Merchant ID (field 42).
    pub merchant_id: String,
}

impl fmt::Debug for QrPaymentRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrPaymentRequest")
            .field("mode", &self.mode)
            .field("reference", &self.reference)
            .field(
                "consumer_code",
                &self.consumer_code.as_ref().map(|c| c.chars().count()),
            )
            .field("amount_minor", &self.amount_minor)
            .field("stan", &self.stan)
            .finish_non_exhaustive()
    }
}

impl QrPaymentRequest {
    /// The 0200.
    pub fn to_message(&self) -> Result<Message, MessageError> {
        let bad = |field, what| MessageError::Field { field, what };
        if self.stan == 0 || self.stan > 999_999 {
            return Err(bad(11, "STAN must be 1-999999"));
        }
        if self.amount_minor == 0 || self.amount_minor > 999_999_999_999 {
            return Err(bad(4, "amount must be 1 to 12 digits"));
        }
        if self.reference.is_empty() || self.reference.chars().count() > 25 {
            return Err(bad(48, "the reference is 1 to 25 characters"));
        }
        let mut items: Vec<(u8, &str)> = vec![
            (sub::MODE, self.mode.code()),
            (sub::REFERENCE, &self.reference),
        ];
        match self.mode {
            QrMode::ConsumerPresented => match &self.consumer_code {
                Some(c) if !c.is_empty() => items.push((sub::CONSUMER_CODE, c)),
                _ => return Err(bad(48, "a consumer-presented payment needs the code")),
            },
            QrMode::MerchantPresented => {
                if let Some(crc) = &self.payload_crc {
                    items.push((sub::PAYLOAD_CRC, crc));
                }
            }
        }
        let f48 = Zeroizing::new(field48(&items));
        let mut m = Message::new(200);
        m.set_str(3, "000000")
            .set_str(4, &format!("{:012}", self.amount_minor))
            .set_str(7, &self.transmission)
            .set_str(11, &format!("{:06}", self.stan))
            .set_str(12, &self.local_time)
            .set_str(13, &self.local_date)
            .set_str(22, "032")
            .set_str(25, "00")
            .set_str(41, &pad_right(&self.terminal_id, 8))
            .set_str(42, &pad_right(&self.merchant_id, 15))
            .set_str(48, &f48)
            .set_str(49, &format!("{:03}", self.currency));
        Ok(m)
    }
}

/// The status request (0600) for the QR payment `original` (its 0200).
pub fn status_request(
    original: &Message,
    stan: u32,
    transmission: &str,
) -> Result<Message, MessageError> {
    let f48 = original.get_str(48).ok_or(MessageError::Missing(48))?;
    let items = parse_field48(&f48)?;
    let get = |id: u8| {
        items
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_str())
    };
    let mode = get(sub::MODE).ok_or(MessageError::Missing(48))?;
    let reference = get(sub::REFERENCE).ok_or(MessageError::Missing(48))?;
    let mut m = Message::new(600);
    m.set_str(7, transmission)
        .set_str(11, &format!("{:06}", stan % 1_000_000))
        .set_str(
            48,
            &field48(&[(sub::MODE, mode), (sub::REFERENCE, reference)]),
        )
        .set_str(90, &original_data_elements(original));
    for n in [41u8, 42] {
        if let Some(v) = original.get(n) {
            m.set(n, v.to_vec());
        }
    }
    Ok(m)
}

/// What the host says about a QR payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrStatus {
    /// `00`: paid.
    Paid,
    /// `09`: the order exists and waits for the wallet.
    Pending,
    /// `25`: the host has no such order (the request never reached it).
    NotFound,
    /// Any other code: declined or refused (the code says why).
    Declined(String),
}

/// A 0210 or 0610 for a QR payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrResponse {
    /// STAN echoed (field 11).
    pub stan: u32,
    /// Response code (field 39).
    pub response_code: String,
    /// Authorization code (field 38), when paid.
    pub auth_code: Option<String>,
    /// Retrieval reference number (field 37).
    pub rrn: Option<String>,
    /// The reference echoed (48.02).
    pub reference: Option<String>,
    /// The wallet that paid (48.05), e.g. "UnionPay" or "Alipay+".
    pub wallet: Option<String>,
    /// The payer's masked account (48.06).
    pub payer: Option<String>,
}

impl QrResponse {
    /// Reads a 0210 or 0610.
    pub fn from_message(m: &Message) -> Result<QrResponse, MessageError> {
        let stan = m
            .get_str(11)
            .ok_or(MessageError::Missing(11))?
            .parse()
            .map_err(|_| MessageError::Field {
                field: 11,
                what: "not a number",
            })?;
        let items = match m.get_str(48) {
            Some(f) => parse_field48(&f)?,
            None => Vec::new(),
        };
        let get = |id: u8| items.iter().find(|(i, _)| *i == id).map(|(_, v)| v.clone());
        Ok(QrResponse {
            stan,
            response_code: m.get_str(39).ok_or(MessageError::Missing(39))?,
            auth_code: m.get_str(38).map(|s| s.trim().to_string()),
            rrn: m.get_str(37).map(|s| s.trim().to_string()),
            reference: get(sub::REFERENCE),
            wallet: get(sub::WALLET),
            payer: get(sub::PAYER),
        })
    }

    /// The payment's status by the response code.
    pub fn status(&self) -> QrStatus {
        match self.response_code.as_str() {
            "00" => QrStatus::Paid,
            "09" => QrStatus::Pending,
            "25" => QrStatus::NotFound,
            other => QrStatus::Declined(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso8583::{ASCII87, BCD87};

    fn mp() -> QrPaymentRequest {
        QrPaymentRequest {
            mode: QrMode::MerchantPresented,
            reference: "KKASSA001261130000042".into(),
            consumer_code: None,
            payload_crc: Some("1942".into()),
            amount_minor: 8800,
            currency: 156,
            transmission: "1130120000".into(),
            stan: 42,
            local_time: "120000".into(),
            local_date: "1130".into(),
            terminal_id: "KASSA001".into(),
            merchant_id: "KASSA-DEMO".into(),
        }
    }

    #[test]
    fn payment_request_exact_bytes_ascii87() {
        let m = mp().to_message().unwrap();
        let bytes = m.encode(&ASCII87).unwrap();
        let expected = concat!(
            "0200",
            "3238048000C18000", // bitmap: 3 4 7 11 12 13 22 25 41 42 48 49
            "000000",           // 3
            "000000008800",     // 4
            "1130120000",       // 7
            "000042",           // 11
            "120000",           // 12
            "1130",             // 13
            "032",              // 22 bar code, no PIN
            "00",               // 25
            "KASSA001",         // 41
            "KASSA-DEMO     ",  // 42
            "042",              // 48: LLL = 42
            "01002MP",          // 48.01 mode
            "02021KKASSA001261130000042", // 48.02 reference
            "040041942",        // 48.04 CRC of the displayed code
            "156",              // 49
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(Message::decode(&bytes, &ASCII87).unwrap(), m);
        // And through the BCD dialect.
        let b = m.encode(&BCD87).unwrap();
        assert_eq!(Message::decode(&b, &BCD87).unwrap(), m);
    }

    #[test]
    fn consumer_presented_needs_the_code_and_hides_it() {
        let mut r = mp();
        r.mode = QrMode::ConsumerPresented;
        r.payload_crc = None;
        assert!(r.to_message().is_err());
        r.consumer_code = Some(Zeroizing::new("281234567890123456".into()));
        let m = r.to_message().unwrap();
        assert_eq!(
            m.get_str(48).unwrap(),
            "01002CP02021KKASSA00126113000004203018281234567890123456"
        );
        assert!(!format!("{r:?}").contains("281234567890123456"));
    }

    #[test]
    fn status_request_names_the_original() {
        let original = mp().to_message().unwrap();
        let s = status_request(&original, 43, "1130120130").unwrap();
        assert_eq!(s.mti, 600);
        assert_eq!(s.get_str(11).unwrap(), "000043");
        assert_eq!(s.get_str(48).unwrap(), "01002MP02021KKASSA001261130000042");
        assert_eq!(
            s.get_str(90).unwrap(),
            "020000004211301200000000000000000000000000"
        );
        assert_eq!(s.get_str(41).unwrap(), "KASSA001");
        let bytes = s.encode(&BCD87).unwrap();
        assert_eq!(Message::decode(&bytes, &BCD87).unwrap(), s);
    }

    #[test]
    fn responses_read_status_wallet_and_payer() {
        let mut m = Message::new(610);
        m.set_str(11, "000043")
            .set_str(37, "633412000017")
            .set_str(38, "QR4242")
            .set_str(39, "00")
            .set_str(
                48,
                &field48(&[
                    (sub::REFERENCE, "KKASSA001261130000042"),
                    (sub::WALLET, "UnionPay"),
                    (sub::PAYER, "621234******1234"),
                ]),
            );
        let r = QrResponse::from_message(&m).unwrap();
        assert_eq!(r.status(), QrStatus::Paid);
        assert_eq!(r.wallet.as_deref(), Some("UnionPay"));
        assert_eq!(r.payer.as_deref(), Some("621234******1234"));
        assert_eq!(r.auth_code.as_deref(), Some("QR4242"));
        m.set_str(39, "09");
        assert_eq!(
            QrResponse::from_message(&m).unwrap().status(),
            QrStatus::Pending
        );
        m.set_str(39, "25");
        assert_eq!(
            QrResponse::from_message(&m).unwrap().status(),
            QrStatus::NotFound
        );
        m.set_str(39, "51");
        assert_eq!(
            QrResponse::from_message(&m).unwrap().status(),
            QrStatus::Declined("51".into())
        );
        m.set_str(48, "01");
        assert!(QrResponse::from_message(&m).is_err());
    }

    #[test]
    fn field48_round_trip_and_garbage() {
        let s = field48(&[(1, "MP"), (2, "金龙")]);
        assert_eq!(s, "01002MP02002金龙");
        assert_eq!(
            parse_field48(&s).unwrap(),
            vec![(1, "MP".to_string()), (2, "金龙".to_string())]
        );
        for junk in ["0", "01", "0100", "01009MP", "XX002MP", "01002"] {
            assert!(parse_field48(junk).is_err(), "{junk}");
        }
    }
}

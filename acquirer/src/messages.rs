//! Typed authorization messages (0100 / 0110) on top of [`Message`].

use std::fmt;

use zeroize::Zeroizing;

use crate::iso8583::{Message, mask};

/// What kind of financial operation a request is (processing code positions 1-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingCode {
    /// 00: purchase of goods or services.
    Purchase,
    /// 20: refund.
    Refund,
}

impl ProcessingCode {
    /// Field 3: the code followed by "from account: default, to account: default".
    pub fn field3(self) -> &'static str {
        match self {
            ProcessingCode::Purchase => "000000",
            ProcessingCode::Refund => "200000",
        }
    }
}

/// POS condition code (ISO 8583:1987 field 25).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PosCondition {
    /// 00: normal presentment.
    #[default]
    Normal,
    /// 06: pre-authorization request (the amount is held, a completion settles it).
    PreAuthorization,
}

impl PosCondition {
    /// Field 25.
    pub fn field25(self) -> &'static str {
        match self {
            PosCondition::Normal => "00",
            PosCondition::PreAuthorization => "06",
        }
    }
}

/// An authorization request (MTI 0100) from a contactless chip transaction.
///
/// `Debug` never shows the PAN in full, nor track 2 or the expiry.
#[derive(Clone)]
pub struct AuthorizationRequest {
    /// Processing code.
    pub processing: ProcessingCode,
    /// PAN digits (field 2).
    pub pan: Zeroizing<String>,
    /// Amount in minor units (field 4).
    pub amount_minor: u64,
    /// Transmission date and time, MMDDhhmmss (field 7).
    pub transmission: String,
    /// System trace audit number (field 11), 1-999999.
    pub stan: u32,
    /// Local time hhmmss (field 12).
    pub local_time: String,
    /// Local date MMDD (field 13).
    pub local_date: String,
    /// Expiry YYMM (field 14).
    pub expiry_yymm: Option<Zeroizing<String>>,
    /// POS entry mode (field 22): `071` contactless chip with PIN entry capability, `072`
    /// without.
    pub pos_entry_mode: String,
    /// Card sequence number (field 23).
    pub psn: Option<u8>,
    /// POS condition code (field 25).
    pub pos_condition: PosCondition,
    /// Track 2 equivalent, digits with `=` (field 35).
    pub track2: Option<Zeroizing<String>>,
    /// Terminal ID, 8 characters (field 41).
    pub terminal_id: String,
    /// Merchant ID, 15 characters (field 42).
    pub merchant_id: String,
    /// Currency, ISO 4217 numeric (field 49).
    pub currency: u16,
    /// EMV data, BER-TLV (field 55).
    pub icc_data: Vec<u8>,
    /// The enciphered online PIN and its KSN (fields 52 and 53), when the cardholder entered
    /// one.
    pub pin: Option<crate::pin::EncipheredPin>,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("processing", &self.processing)
            .field("pan", &mask(&self.pan))
            .field("amount_minor", &self.amount_minor)
            .field("stan", &self.stan)
            .field("terminal_id", &self.terminal_id)
            .field("currency", &self.currency)
            .field("icc_data_len", &self.icc_data.len())
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

/// A request could not be put into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A value does not fit its field.
    #[error("field {field}: {what}")]
    Field {
        /// Field number.
        field: u8,
        /// What is wrong.
        what: &'static str,
    },
    /// A required field is missing from a response.
    #[error("response lacks field {0}")]
    Missing(u8),
}

fn pad_right(s: &str, width: usize) -> String {
    let mut out: String = s.chars().take(width).collect();
    while out.chars().count() < width {
        out.push(' ');
    }
    out
}

impl AuthorizationRequest {
    /// The 0100 authorization request.
    pub fn to_message(&self) -> Result<Message, MessageError> {
        self.to_message_as(100)
    }

    /// The request as MTI `mti`: 0100 (authorization), 0200 (financial: sale or refund that
    /// settles), 0220 (completion or advice).
    pub fn to_message_as(&self, mti: u16) -> Result<Message, MessageError> {
        let bad = |field, what| MessageError::Field { field, what };
        if self.stan == 0 || self.stan > 999_999 {
            return Err(bad(11, "STAN must be 1-999999"));
        }
        if self.amount_minor > 999_999_999_999 {
            return Err(bad(4, "amount beyond 12 digits"));
        }
        let mut m = Message::new(mti);
        m.set_str(2, &self.pan)
            .set_str(3, self.processing.field3())
            .set_str(4, &format!("{:012}", self.amount_minor))
            .set_str(7, &self.transmission)
            .set_str(11, &format!("{:06}", self.stan))
            .set_str(12, &self.local_time)
            .set_str(13, &self.local_date);
        if let Some(e) = &self.expiry_yymm {
            m.set_str(14, e);
        }
        m.set_str(22, &self.pos_entry_mode);
        if let Some(psn) = self.psn {
            m.set_str(23, &format!("{psn:03}"));
        }
        m.set_str(25, self.pos_condition.field25());
        if let Some(t2) = &self.track2 {
            m.set_str(35, t2);
        }
        m.set_str(41, &pad_right(&self.terminal_id, 8))
            .set_str(42, &pad_right(&self.merchant_id, 15))
            .set_str(49, &format!("{:03}", self.currency));
        if let Some(pin) = &self.pin {
            m.set(52, pin.block().to_vec()).set(53, pin.ksn().to_vec());
        }
        if !self.icc_data.is_empty() {
            m.set(55, self.icc_data.clone());
        }
        Ok(m)
    }
}

/// An authorization response (MTI 0110).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationResponse {
    /// STAN echoed (field 11).
    pub stan: u32,
    /// Response code (field 39): `00` approved, `05` do not honour, ...
    pub response_code: String,
    /// Authorization code (field 38), when approved.
    pub auth_code: Option<String>,
    /// Retrieval reference number (field 37).
    pub rrn: Option<String>,
    /// Terminal ID echoed (field 41).
    pub terminal_id: Option<String>,
    /// Issuer EMV data (field 55): ARPC (91), scripts (71/72).
    pub icc_data: Vec<u8>,
}

impl AuthorizationResponse {
    /// Reads a 0110.
    pub fn from_message(m: &Message) -> Result<Self, MessageError> {
        let stan = m
            .get_str(11)
            .ok_or(MessageError::Missing(11))?
            .parse()
            .map_err(|_| MessageError::Field {
                field: 11,
                what: "not a number",
            })?;
        Ok(AuthorizationResponse {
            stan,
            response_code: m.get_str(39).ok_or(MessageError::Missing(39))?,
            auth_code: m.get_str(38).map(|s| s.trim().to_string()),
            rrn: m.get_str(37).map(|s| s.trim().to_string()),
            terminal_id: m.get_str(41),
            icc_data: m.get(55).map(<[u8]>::to_vec).unwrap_or_default(),
        })
    }

    /// True for response code `00` (and the other approval codes `08`, `10`, `11`).
    pub fn approved(&self) -> bool {
        matches!(self.response_code.as_str(), "00" | "08" | "10" | "11")
    }
}

/// Field 90, original data elements (n42): original MTI (4), STAN (6), transmission date and
/// time (10), acquiring and forwarding institution IDs (11 + 11, zeros here).
pub fn original_data_elements(original: &Message) -> String {
    format!(
        "{:04}{:0>6}{:0>10}{:011}{:011}",
        original.mti,
        original.get_str(11).unwrap_or_default(),
        original.get_str(7).unwrap_or_default(),
        0,
        0
    )
}

/// The reversal (0400, or the repeat 0401) of a request that may have reached the host
/// (ISO 8583:1987 §4.4.3): the original's card, amount and terminal fields, the same STAN, and
/// field 90 naming the original.
pub fn reversal(original: &Message, repeat: bool) -> Message {
    let mut m = Message::new(if repeat { 401 } else { 400 });
    for n in [2u8, 3, 4, 7, 11, 12, 13, 14, 22, 23, 25, 35, 41, 42, 48, 49] {
        if let Some(v) = original.get(n) {
            m.set(n, v.to_vec());
        }
    }
    m.set_str(90, &original_data_elements(original));
    m
}

/// An advice (0220, or the repeat 0221) of a transaction the terminal approved offline, with
/// the authorization code it used. Any PIN data (fields 52, 53) is left out.
pub fn advice(original: &Message, auth_code: &str, repeat: bool) -> Message {
    let mut m = original.clone();
    // A PIN block is verified once, in the authorization: it never travels again.
    m.remove(52).remove(53);
    m.mti = if repeat { 221 } else { 220 };
    m.set_str(38, auth_code);
    m
}

/// The completion (0220) of a pre-authorization (ISO 8583:1987 §4.3.8, as acquirers use it
/// for hotels and car hire): the pre-authorization's card, terminal and EMV fields, a new STAN
/// and transmission time, the final amount, the pre-authorization's approval code in field 38
/// and field 90 naming it. No card is present: the host settles the final amount against the
/// hold. Any PIN data (fields 52, 53) is left out.
pub fn completion(
    preauth: &Message,
    auth_code: &str,
    amount_minor: u64,
    stan: u32,
    transmission: &str,
) -> Message {
    let mut m = preauth.clone();
    m.remove(52).remove(53);
    m.mti = 220;
    m.set_str(4, &format!("{amount_minor:012}"))
        .set_str(7, transmission)
        .set_str(11, &format!("{:06}", stan % 1_000_000))
        .set_str(38, auth_code)
        .set_str(90, &original_data_elements(preauth));
    m
}

/// Network management (0800): sign-on (field 70 = 001), sign-off (002), echo test (301).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkCode {
    /// 001.
    SignOn,
    /// 002.
    SignOff,
    /// 301.
    Echo,
}

impl NetworkCode {
    /// Field 70.
    pub fn field70(self) -> &'static str {
        match self {
            NetworkCode::SignOn => "001",
            NetworkCode::SignOff => "002",
            NetworkCode::Echo => "301",
        }
    }
}

/// A network management request (0800).
pub fn network(code: NetworkCode, stan: u32, transmission: &str, terminal_id: &str) -> Message {
    let mut m = Message::new(800);
    m.set_str(7, transmission)
        .set_str(11, &format!("{:06}", stan % 1_000_000))
        .set_str(41, &pad_right(terminal_id, 8))
        .set_str(70, code.field70());
    m
}

/// Counts and totals of a batch, per direction (ISO 8583:1987 fields 74-89).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchTotals {
    /// Sales (debits to the cardholder): count.
    pub debits: u64,
    /// Sales: total, minor units.
    pub debits_amount: u64,
    /// Refunds (credits to the cardholder): count.
    pub credits: u64,
    /// Refunds: total, minor units.
    pub credits_amount: u64,
}

/// A reconciliation request (0500) closing the batch with the terminal's totals.
pub fn reconciliation(
    stan: u32,
    transmission: &str,
    terminal_id: &str,
    merchant_id: &str,
    currency: u16,
    t: BatchTotals,
) -> Message {
    let mut m = Message::new(500);
    let net = t.debits_amount as i128 - t.credits_amount as i128;
    m.set_str(7, transmission)
        .set_str(11, &format!("{:06}", stan % 1_000_000))
        .set_str(41, &pad_right(terminal_id, 8))
        .set_str(42, &pad_right(merchant_id, 15))
        .set_str(49, &format!("{currency:03}"))
        .set_str(74, &format!("{:010}", t.credits))
        .set_str(76, &format!("{:010}", t.debits))
        .set_str(86, &format!("{:016}", t.credits_amount))
        .set_str(88, &format!("{:016}", t.debits_amount))
        .set_str(
            97,
            &format!(
                "{}{:016}",
                if net >= 0 { 'D' } else { 'C' },
                net.unsigned_abs()
            ),
        );
    m
}

/// Reads the totals of a 0500 message.
pub fn batch_totals(m: &Message) -> Option<BatchTotals> {
    let n = |f| m.get_str(f).and_then(|s| s.parse::<u64>().ok());
    Some(BatchTotals {
        credits: n(74)?,
        debits: n(76)?,
        credits_amount: n(86)?,
        debits_amount: n(88)?,
    })
}

/// What a terminal must do on a response code (ISO 8583:1987 field 39 as acquirers use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Approved: complete the sale.
    Approve,
    /// Declined: tell the cardholder; do not retry.
    Decline,
    /// Declined for insufficient funds (51): another card or a smaller amount may work.
    InsufficientFunds,
    /// Wrong PIN (55): the cardholder may try again.
    RetryPin,
    /// Issuer or switch unavailable (91, 96): try later or stand in offline if allowed.
    TryLater,
    /// Pick up the card (04, 07, 41, 43): decline and keep it if the merchant can.
    PickUp,
}

/// The action for a response code.
pub fn action(code: &str) -> Action {
    match code {
        "00" | "08" | "10" | "11" => Action::Approve,
        "51" => Action::InsufficientFunds,
        "55" => Action::RetryPin,
        "91" | "96" | "68" => Action::TryLater,
        "04" | "07" | "41" | "43" => Action::PickUp,
        _ => Action::Decline,
    }
}

/// A short English text for an ISO 8583:1987 response code (the ones a terminal acts on).
pub fn response_text(code: &str) -> &'static str {
    match code {
        "00" => "Approved",
        "01" | "02" => "Refer to card issuer",
        "03" => "Invalid merchant",
        "04" | "07" => "Pick up card",
        "05" => "Do not honour",
        "08" => "Honour with identification",
        "10" => "Approved for partial amount",
        "12" => "Invalid transaction",
        "13" => "Invalid amount",
        "14" => "Invalid card number",
        "30" => "Format error",
        "41" => "Lost card",
        "43" => "Stolen card",
        "51" => "Insufficient funds",
        "54" => "Expired card",
        "55" => "Incorrect PIN",
        "57" => "Transaction not permitted to cardholder",
        "58" => "Transaction not permitted to terminal",
        "61" => "Exceeds withdrawal limit",
        "65" => "Exceeds withdrawal frequency",
        "75" => "PIN tries exceeded",
        "68" => "Response received too late",
        "91" => "Issuer unavailable",
        "95" => "Reconcile error",
        "94" => "Duplicate transmission",
        "96" => "System malfunction",
        // EMV authorisation response codes the terminal sets itself (Book 4 §A6).
        "Y1" => "Offline approved",
        "Y3" => "Approved offline, host unreachable",
        "Z1" => "Offline declined",
        "Z3" => "Declined offline, host unreachable",
        _ => "Declined",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> AuthorizationRequest {
        AuthorizationRequest {
            processing: ProcessingCode::Purchase,
            pan: Zeroizing::new("4761739001010119".into()),
            amount_minor: 1234,
            transmission: "1129120000".into(),
            stan: 42,
            local_time: "120000".into(),
            local_date: "1129".into(),
            expiry_yymm: Some(Zeroizing::new("3012".into())),
            pos_entry_mode: "072".into(),
            psn: Some(1),
            pos_condition: PosCondition::Normal,
            track2: Some(Zeroizing::new("4761739001010119=30122011234567899".into())),
            terminal_id: "KASSA001".into(),
            merchant_id: "KASSA-DEMO".into(),
            currency: 978,
            icc_data: vec![0x9F, 0x36, 0x02, 0x00, 0x01],
            pin: None,
        }
    }

    #[test]
    fn online_pin_travels_in_52_and_53_and_nowhere_else() {
        use crate::iso8583::{ASCII87, BCD87};
        use crate::pin::EncipheredPin;
        let mut r = req();
        r.pos_entry_mode = "071".into();
        r.pin = Some(
            EncipheredPin::from_fields(
                &hex::decode("52A00503BD34BA1383F6A7EE9FE2547F").unwrap(),
                &hex::decode("123456789012345600000002").unwrap(),
            )
            .unwrap(),
        );
        let m = r.to_message().unwrap();
        // BCD dialect: a one-byte BCD length before each binary value.
        let bcd = m.encode(&BCD87).unwrap();
        let f52 =
            hex::decode("1652A00503BD34BA1383F6A7EE9FE2547F12123456789012345600000002").unwrap();
        assert!(
            bcd.windows(f52.len()).any(|w| w == f52),
            "fields 52-53 in BCD"
        );
        // ASCII dialect: two ASCII digits of length, raw bytes.
        let ascii = m.encode(&ASCII87).unwrap();
        let mut f52a = b"16".to_vec();
        f52a.extend(hex::decode("52A00503BD34BA1383F6A7EE9FE2547F").unwrap());
        f52a.extend(b"12");
        f52a.extend(hex::decode("123456789012345600000002").unwrap());
        assert!(
            ascii.windows(f52a.len()).any(|w| w == f52a),
            "fields 52-53 in ASCII"
        );
        for d in [&BCD87, &ASCII87] {
            let back = Message::decode(&m.encode(d).unwrap(), d).unwrap();
            assert_eq!(back.get(52), m.get(52));
            assert_eq!(back.get(53), m.get(53));
        }
        // A PIN block is for the authorization only: never in a reversal, an advice or a
        // completion; and Debug shows the KSN only.
        assert_eq!(reversal(&m, false).get(52), None);
        assert_eq!(advice(&m, "Y10001", false).get(52), None);
        assert_eq!(advice(&m, "Y10001", false).get(53), None);
        assert_eq!(
            completion(&m, "123456", 100, 43, "1129120100").get(52),
            None
        );
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("52A005") && dbg.contains("Format4"), "{dbg}");
        // A block longer than the field allows is refused.
        let mut bad = m.clone();
        bad.set(52, vec![0u8; 17]);
        assert!(bad.encode(&BCD87).is_err());
    }

    #[test]
    fn builds_0100() {
        let m = req().to_message().unwrap();
        assert_eq!(m.mti, 100);
        assert_eq!(m.get_str(4).unwrap(), "000000001234");
        assert_eq!(m.get_str(11).unwrap(), "000042");
        assert_eq!(m.get_str(23).unwrap(), "001");
        assert_eq!(m.get_str(42).unwrap(), "KASSA-DEMO     ");
        assert_eq!(m.get_str(49).unwrap(), "978");
        let bytes = m.encode(&crate::iso8583::BCD87).unwrap();
        assert_eq!(
            crate::iso8583::Message::decode(&bytes, &crate::iso8583::BCD87).unwrap(),
            m
        );
        let mut bad = req();
        bad.stan = 0;
        assert!(bad.to_message().is_err());
    }

    #[test]
    fn debug_never_shows_pan_or_track2() {
        let s = format!("{:?}", req());
        assert!(!s.contains("4761739001010119"), "{s}");
        assert!(s.contains("476173******0119"), "{s}");
    }

    #[test]
    fn reversal_advice_network_reconciliation() {
        let original = req().to_message().unwrap();
        let r = reversal(&original, false);
        assert_eq!(r.mti, 400);
        assert_eq!(r.get_str(11).unwrap(), "000042");
        assert_eq!(r.get_str(4).unwrap(), "000000001234");
        assert_eq!(
            r.get_str(90).unwrap(),
            "010000004211291200000000000000000000000000"
        );
        assert!(r.get(55).is_none(), "no ICC data in a reversal");
        assert_eq!(reversal(&original, true).mti, 401);
        let a = advice(&original, "Y1OFFL", false);
        assert_eq!((a.mti, a.get_str(38).unwrap().as_str()), (220, "Y1OFFL"));
        let e = network(NetworkCode::Echo, 7, "1129120000", "KASSA001");
        assert_eq!(e.get_str(70).unwrap(), "301");
        let t = BatchTotals {
            debits: 3,
            debits_amount: 4500,
            credits: 1,
            credits_amount: 500,
        };
        let m = reconciliation(9, "1129235900", "KASSA001", "KASSA-DEMO", 978, t);
        assert_eq!(m.get_str(97).unwrap(), "D0000000000004000");
        let bytes = m.encode(&crate::iso8583::BCD87).unwrap();
        let back = crate::iso8583::Message::decode(&bytes, &crate::iso8583::BCD87).unwrap();
        assert_eq!(batch_totals(&back), Some(t));
        let bytes = m.encode(&crate::iso8583::ASCII87).unwrap();
        assert_eq!(
            batch_totals(
                &crate::iso8583::Message::decode(&bytes, &crate::iso8583::ASCII87).unwrap()
            ),
            Some(t)
        );
        assert_eq!(action("51"), Action::InsufficientFunds);
        assert_eq!(action("96"), Action::TryLater);
        assert_eq!(action("05"), Action::Decline);
    }

    #[test]
    fn preauthorization_and_completion() {
        let mut r = req();
        r.pos_condition = PosCondition::PreAuthorization;
        let pre = r.to_message().unwrap();
        assert_eq!(pre.get_str(25).unwrap(), "06");
        let c = completion(&pre, "AB12CD", 15000, 43, "1130093000");
        assert_eq!(c.mti, 220);
        assert_eq!(c.get_str(4).unwrap(), "000000015000");
        assert_eq!(c.get_str(11).unwrap(), "000043");
        assert_eq!(c.get_str(7).unwrap(), "1130093000");
        assert_eq!(c.get_str(38).unwrap(), "AB12CD");
        assert_eq!(c.get_str(25).unwrap(), "06");
        // Field 90 names the pre-authorization: 0100, its STAN 000042, its time.
        assert_eq!(
            c.get_str(90).unwrap(),
            "010000004211291200000000000000000000000000"
        );
        let bytes = c.encode(&crate::iso8583::BCD87).unwrap();
        let back = Message::decode(&bytes, &crate::iso8583::BCD87).unwrap();
        assert_eq!(back.get_str(90), c.get_str(90));
    }

    #[test]
    fn reads_0110() {
        let mut m = Message::new(110);
        m.set_str(11, "000042")
            .set_str(37, "633412000001")
            .set_str(38, "A1B2C3")
            .set_str(39, "00");
        let r = AuthorizationResponse::from_message(&m).unwrap();
        assert!(r.approved());
        assert_eq!(r.auth_code.as_deref(), Some("A1B2C3"));
        let mut m = Message::new(110);
        m.set_str(11, "000042");
        assert_eq!(
            AuthorizationResponse::from_message(&m),
            Err(MessageError::Missing(39))
        );
        assert_eq!(response_text("51"), "Insufficient funds");
    }
}

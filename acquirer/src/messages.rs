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
    /// The 0100 message.
    pub fn to_message(&self) -> Result<Message, MessageError> {
        let bad = |field, what| MessageError::Field { field, what };
        if self.stan == 0 || self.stan > 999_999 {
            return Err(bad(11, "STAN must be 1-999999"));
        }
        if self.amount_minor > 999_999_999_999 {
            return Err(bad(4, "amount beyond 12 digits"));
        }
        let mut m = Message::new(100);
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
        m.set_str(25, "00");
        if let Some(t2) = &self.track2 {
            m.set_str(35, t2);
        }
        m.set_str(41, &pad_right(&self.terminal_id, 8))
            .set_str(42, &pad_right(&self.merchant_id, 15))
            .set_str(49, &format!("{:03}", self.currency));
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
        "91" => "Issuer unavailable",
        "94" => "Duplicate transmission",
        "96" => "System malfunction",
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
            track2: Some(Zeroizing::new("4761739001010119=30122011234567899".into())),
            terminal_id: "KASSA001".into(),
            merchant_id: "KASSA-DEMO".into(),
            currency: 978,
            icc_data: vec![0x9F, 0x36, 0x02, 0x00, 0x01],
        }
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

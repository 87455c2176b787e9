//! Command and response APDUs (ISO/IEC 7816-4 short form, EMV Book 1 §9 and Book 3 §6).

use std::fmt;

/// What was wrong with APDU bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    /// Fewer than the 4 header bytes of a command.
    #[error("command APDU shorter than 4 bytes")]
    ShortCommand,
    /// Lc announces more or fewer bytes than are present.
    #[error("Lc={lc} but {actual} data bytes follow")]
    BadLc {
        /// The Lc byte.
        lc: usize,
        /// Data bytes actually present (after Lc, before an optional Le).
        actual: usize,
    },
    /// Fewer than the 2 status bytes of a response.
    #[error("response APDU shorter than 2 bytes (SW1 SW2)")]
    ShortResponse,
    /// Command data longer than a short APDU carries.
    #[error("command data of {0} bytes exceeds 255")]
    DataTooLong(usize),
}

/// A command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte.
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (Lc is its length; empty means no Lc).
    pub data: Vec<u8>,
    /// Expected response length: `None` for no Le, `Some(0)` for `00` (up to 256 bytes).
    pub le: Option<u8>,
}

impl Command {
    /// SELECT by DF name (Book 1 §11.3): `00 A4 04 00 Lc name 00`.
    pub fn select(name: &[u8]) -> Self {
        Command {
            cla: 0x00,
            ins: 0xA4,
            p1: 0x04,
            p2: 0x00,
            data: name.to_vec(),
            le: Some(0),
        }
    }

    /// GET PROCESSING OPTIONS (Book 3 §6.5.8): `80 A8 00 00 Lc 83 L pdol-data 00`.
    pub fn get_processing_options(pdol_data: &[u8]) -> Self {
        let mut data = Vec::with_capacity(pdol_data.len() + 3);
        crate::tlv::encode(crate::tags::COMMAND_TEMPLATE, pdol_data, &mut data);
        Command {
            cla: 0x80,
            ins: 0xA8,
            p1: 0x00,
            p2: 0x00,
            data,
            le: Some(0),
        }
    }

    /// READ RECORD (Book 3 §6.5.11): `00 B2 record (SFI<<3 | 4) 00`.
    pub fn read_record(sfi: u8, record: u8) -> Self {
        Command {
            cla: 0x00,
            ins: 0xB2,
            p1: record,
            p2: (sfi << 3) | 0x04,
            data: Vec::new(),
            le: Some(0),
        }
    }

    /// GET RESPONSE (ISO/IEC 7816-4 §7.6.1): `00 C0 00 00 Le`.
    pub fn get_response(le: u8) -> Self {
        Command {
            cla: 0x00,
            ins: 0xC0,
            p1: 0x00,
            p2: 0x00,
            data: Vec::new(),
            le: Some(le),
        }
    }

    /// Serialises the command (cases 1-4, short form).
    pub fn to_bytes(&self) -> Result<Vec<u8>, ApduError> {
        if self.data.len() > 255 {
            return Err(ApduError::DataTooLong(self.data.len()));
        }
        let mut out = Vec::with_capacity(6 + self.data.len());
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            out.push(le);
        }
        Ok(out)
    }

    /// Parses a short-form command APDU (cases 1-4).
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        if bytes.len() < 4 {
            return Err(ApduError::ShortCommand);
        }
        let (header, body) = bytes.split_at(4);
        let (data, le) = match body.len() {
            0 => (Vec::new(), None),
            1 => (Vec::new(), Some(body[0])),
            _ => {
                let lc = body[0] as usize;
                let rest = &body[1..];
                match rest.len() {
                    n if n == lc && lc > 0 => (rest.to_vec(), None),
                    n if n == lc + 1 && lc > 0 => (rest[..lc].to_vec(), Some(rest[lc])),
                    n => return Err(ApduError::BadLc { lc, actual: n }),
                }
            }
        };
        Ok(Command {
            cla: header[0],
            ins: header[1],
            p1: header[2],
            p2: header[3],
            data,
            le,
        })
    }
}

impl fmt::Debug for Command {
    /// Shows the header and the data length, never the data (it may carry PIN blocks).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Command({:02X} {:02X} {:02X} {:02X}, {} data bytes, le={:?})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

/// A response APDU: data and the status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data (without SW1 SW2).
    pub data: Vec<u8>,
    /// SW1 SW2 as one number, e.g. `0x9000`.
    pub sw: u16,
}

/// Status word for normal processing.
pub const SW_OK: u16 = 0x9000;

impl Response {
    /// Splits raw bytes into data and status word.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        if bytes.len() < 2 {
            return Err(ApduError::ShortResponse);
        }
        let (data, sw) = bytes.split_at(bytes.len() - 2);
        Ok(Response {
            data: data.to_vec(),
            sw: u16::from_be_bytes([sw[0], sw[1]]),
        })
    }

    /// A response with data and status.
    pub fn new(data: Vec<u8>, sw: u16) -> Self {
        Response { data, sw }
    }

    /// Serialises as data followed by SW1 SW2.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&self.sw.to_be_bytes());
        out
    }

    /// SW1.
    pub fn sw1(&self) -> u8 {
        (self.sw >> 8) as u8
    }

    /// SW2.
    pub fn sw2(&self) -> u8 {
        self.sw as u8
    }

    /// True for `90 00`.
    pub fn is_ok(&self) -> bool {
        self.sw == SW_OK
    }
}

impl fmt::Debug for Response {
    /// Shows the status word and the data length, never the data (it may carry track 2).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Response({} data bytes, SW={:04X})",
            self.data.len(),
            self.sw
        )
    }
}

/// What the transport layer does with a response (ISO/IEC 7816-3/-4 T=0 rules that EMV Book 1
/// §9.3.1 carries over, and which some contactless cards still use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The response is final: hand it to the kernel.
    Done(Response),
    /// Send this command next (GET RESPONSE for `61xx`, the re-issued command for `6Cxx`).
    Send(Command),
}

/// Reassembles responses across `61xx` and `6Cxx` for one command at a time.
#[derive(Debug, Clone, Default)]
pub struct Assembler {
    pending: Option<Command>,
    collected: Vec<u8>,
    rounds: u8,
}

/// Most GET RESPONSE / re-issue rounds accepted for one command before giving up.
pub const MAX_TRANSPORT_ROUNDS: u8 = 32;

impl Assembler {
    /// Remembers `cmd` as the command being sent.
    pub fn sent(&mut self, cmd: &Command) {
        self.pending = Some(cmd.clone());
        self.collected.clear();
        self.rounds = 0;
    }

    /// Applies the transport rules to `resp`.
    ///
    /// - `61xx`: data is available; send GET RESPONSE with Le=xx and append what comes.
    /// - `6Cxx`: wrong Le; re-send the same command with Le=xx.
    ///
    /// After [`MAX_TRANSPORT_ROUNDS`] the last response is returned as it is.
    pub fn receive(&mut self, resp: Response) -> Transport {
        let Some(pending) = self.pending.as_ref() else {
            return Transport::Done(resp);
        };
        if self.rounds >= MAX_TRANSPORT_ROUNDS {
            return Transport::Done(self.finish(resp));
        }
        match resp.sw1() {
            0x61 => {
                self.rounds += 1;
                self.collected.extend_from_slice(&resp.data);
                Transport::Send(Command::get_response(resp.sw2()))
            }
            0x6C => {
                self.rounds += 1;
                let mut again = pending.clone();
                again.le = Some(resp.sw2());
                self.collected.clear();
                Transport::Send(again)
            }
            _ => Transport::Done(self.finish(resp)),
        }
    }

    fn finish(&mut self, resp: Response) -> Response {
        self.pending = None;
        let mut data = std::mem::take(&mut self.collected);
        data.extend_from_slice(&resp.data);
        Response { data, sw: resp.sw }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn select_ppse_bytes() {
        let c = Command::select(b"2PAY.SYS.DDF01");
        assert_eq!(
            c.to_bytes().unwrap(),
            h("00A404000E325041592E5359532E444446303100")
        );
    }

    #[test]
    fn gpo_and_read_record_bytes() {
        let c = Command::get_processing_options(&h("36000000"));
        assert_eq!(c.to_bytes().unwrap(), h("80A8000006830436000000 00"));
        assert_eq!(
            Command::get_processing_options(&[]).to_bytes().unwrap(),
            h("80A80000028300 00")
        );
        assert_eq!(
            Command::read_record(1, 2).to_bytes().unwrap(),
            h("00B2020C00")
        );
        assert_eq!(
            Command::read_record(2, 1).to_bytes().unwrap(),
            h("00B2011400")
        );
    }

    #[test]
    fn parse_cases() {
        let c1 = Command::parse(&h("00A40400")).unwrap();
        assert!(c1.data.is_empty() && c1.le.is_none());
        let c2 = Command::parse(&h("00B2010C00")).unwrap();
        assert_eq!(c2.le, Some(0));
        let c3 = Command::parse(&h("00A4040002AABB")).unwrap();
        assert_eq!((c3.data.as_slice(), c3.le), (&h("AABB")[..], None));
        let c4 = Command::parse(&h("00A4040002AABB00")).unwrap();
        assert_eq!((c4.data.as_slice(), c4.le), (&h("AABB")[..], Some(0)));
        assert_eq!(
            Command::parse(&h("00A4040005AABB")),
            Err(ApduError::BadLc { lc: 5, actual: 2 })
        );
        assert_eq!(Command::parse(&h("00A404")), Err(ApduError::ShortCommand));
        for c in [c1, c2, c3, c4] {
            assert_eq!(Command::parse(&c.to_bytes().unwrap()).unwrap(), c);
        }
    }

    #[test]
    fn response_split() {
        let r = Response::parse(&h("6F00 9000")).unwrap();
        assert_eq!((r.data.as_slice(), r.sw), (&[0x6F, 0x00][..], 0x9000));
        assert!(r.is_ok());
        assert_eq!(Response::parse(&[0x90]), Err(ApduError::ShortResponse));
        let dbg = format!(
            "{:?}",
            Response::parse(&h("5A084761739001010119 9000")).unwrap()
        );
        assert!(!dbg.contains("4761"), "{dbg}");
    }

    #[test]
    fn get_response_chain() {
        let mut a = Assembler::default();
        let cmd = Command::read_record(1, 1);
        a.sent(&cmd);
        assert_eq!(
            a.receive(Response::new(vec![], 0x6110)),
            Transport::Send(Command::get_response(0x10))
        );
        assert_eq!(
            a.receive(Response::new(h("7002"), 0x6102)),
            Transport::Send(Command::get_response(0x02))
        );
        assert_eq!(
            a.receive(Response::new(h("5A00"), 0x9000)),
            Transport::Done(Response::new(h("70025A00"), 0x9000))
        );
    }

    #[test]
    fn wrong_le_reissues() {
        let mut a = Assembler::default();
        let cmd = Command::read_record(1, 1);
        a.sent(&cmd);
        let mut expected = cmd.clone();
        expected.le = Some(0x1C);
        assert_eq!(
            a.receive(Response::new(vec![], 0x6C1C)),
            Transport::Send(expected)
        );
        assert_eq!(
            a.receive(Response::new(h("7000"), 0x9000)),
            Transport::Done(Response::new(h("7000"), 0x9000))
        );
    }

    #[test]
    fn endless_61xx_stops() {
        let mut a = Assembler::default();
        a.sent(&Command::read_record(1, 1));
        let mut last = None;
        for _ in 0..100 {
            match a.receive(Response::new(vec![0xAA], 0x6101)) {
                Transport::Send(_) => {}
                Transport::Done(r) => {
                    last = Some(r);
                    break;
                }
            }
        }
        let r = last.expect("assembler gave up");
        assert_eq!(r.sw, 0x6101);
        assert_eq!(r.data.len(), MAX_TRANSPORT_ROUNDS as usize + 1);
    }
}

//! A transport wrapper that makes any virtual card answer the way T=0 cards do (ISO/IEC 7816-3
//! and -4, EMV Book 1 §9.3): data is announced with `61xx` and fetched with GET RESPONSE, and a
//! command whose Le does not match the data gets `6Cxx`. Some contactless cards keep these
//! habits; the kernel's transport layer must cope.

use drivers::VirtualCard;
use emv::apdu::Command;

/// How the wrapper answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T0Style {
    /// Announce response data with `61xx` and deliver it in GET RESPONSE chunks of at most
    /// `chunk` bytes.
    GetResponse {
        /// Largest chunk per GET RESPONSE.
        chunk: u8,
    },
    /// Answer `6Cxx` to a command whose Le is not the exact data length, then deliver the data
    /// when the command is re-sent with that Le.
    WrongLe,
}

/// A virtual card behind T=0-style transport rules.
pub struct T0Card<C> {
    inner: C,
    style: T0Style,
    pending: Vec<u8>,
    pending_sw: [u8; 2],
    held: Option<(Vec<u8>, Vec<u8>)>,
}

impl<C: VirtualCard> T0Card<C> {
    /// Wraps `inner`.
    pub fn new(inner: C, style: T0Style) -> Self {
        T0Card {
            inner,
            style,
            pending: Vec::new(),
            pending_sw: [0x90, 0x00],
            held: None,
        }
    }

    fn next_chunk(&mut self, le: u8, chunk: u8) -> Vec<u8> {
        let want = if le == 0 { 256 } else { le as usize };
        let n = want.min(chunk as usize).min(self.pending.len());
        let mut out: Vec<u8> = self.pending.drain(..n).collect();
        if self.pending.is_empty() {
            out.extend_from_slice(&self.pending_sw);
        } else {
            out.extend_from_slice(&[0x61, self.pending.len().min(chunk as usize) as u8]);
        }
        out
    }
}

impl<C: VirtualCard> VirtualCard for T0Card<C> {
    fn uid(&self) -> Vec<u8> {
        self.inner.uid()
    }

    fn process(&mut self, capdu: &[u8]) -> Vec<u8> {
        let Ok(cmd) = Command::parse(capdu) else {
            return vec![0x67, 0x00];
        };
        match self.style {
            T0Style::GetResponse { chunk } => {
                if cmd.ins == 0xC0 {
                    if self.pending.is_empty() {
                        return vec![0x69, 0x85];
                    }
                    return self.next_chunk(cmd.le.unwrap_or(0), chunk);
                }
                let resp = self.inner.process(capdu);
                let (data, sw) = resp.split_at(resp.len().saturating_sub(2));
                if data.is_empty() {
                    return resp;
                }
                self.pending = data.to_vec();
                self.pending_sw = [sw[0], sw[1]];
                vec![0x61, self.pending.len().min(chunk as usize) as u8]
            }
            T0Style::WrongLe => {
                // A re-issued command gets the answer computed the first time: the card does
                // not execute it twice (the ATC moves once).
                if let Some((header, resp)) = self.held.take() {
                    let data_len = resp.len() - 2;
                    if header == capdu[..4] && cmd.le == Some(data_len as u8) {
                        return resp;
                    }
                }
                let resp = self.inner.process(capdu);
                let data_len = resp.len().saturating_sub(2);
                let le = cmd.le.map(|l| if l == 0 { 256 } else { l as usize });
                if data_len > 0 && data_len < 256 && le != Some(data_len) {
                    self.held = Some((capdu[..4].to_vec(), resp));
                    return vec![0x6C, data_len as u8];
                }
                resp
            }
        }
    }
}

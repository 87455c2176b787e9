//! A virtual card in a real PC/SC stack: it connects to vpcd, the virtual reader driver of
//! vsmartcard (Debian package `vsmartcard-vpcd`) that pcscd loads, and answers the APDUs
//! pcscd forwards. The terminal's PC/SC driver then talks to a reader called "Virtual PCD"
//! through pcsc-lite exactly as to a USB reader. Disconnecting is taking the card away.
//!
//! The vpcd protocol: each message is a 2-byte big-endian length and its bytes. A 1-byte
//! message from vpcd is a control: 00 power off, 01 power on, 02 reset, 04 get ATR (answered
//! with the ATR); anything longer is a command APDU, answered with the response APDU.

use drivers::VirtualCard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// vpcd's default port (0x8C7B).
pub const VPCD_PORT: u16 = 35963;

/// The ATR a PC/SC contactless reader builds for an ISO/IEC 14443-4 card without historical
/// bytes (PC/SC part 3 §3.1.3.2.3): 3B 80 80 01 and the check byte.
pub const CONTACTLESS_ATR: [u8; 5] = [0x3B, 0x80, 0x80, 0x01, 0x01];

/// Serves `card` to vpcd at `addr` until vpcd closes the connection or `stop` fires (the
/// card leaves). Returns how many APDUs it answered.
pub async fn serve(
    addr: &str,
    mut card: Box<dyn VirtualCard>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<u64> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut apdus = 0;
    loop {
        let mut len = [0u8; 2];
        tokio::select! {
            r = s.read_exact(&mut len) => {
                if r.is_err() {
                    return Ok(apdus);
                }
            }
            _ = &mut stop => return Ok(apdus),
        }
        let n = usize::from(u16::from_be_bytes(len));
        let mut msg = vec![0u8; n];
        s.read_exact(&mut msg).await?;
        let reply = match msg.as_slice() {
            [0x00] => None,
            [0x01] | [0x02] => {
                card.reinsert();
                None
            }
            [0x04] => Some(CONTACTLESS_ATR.to_vec()),
            [_] => None,
            apdu => {
                apdus += 1;
                Some(card.process(apdu))
            }
        };
        if let Some(r) = reply {
            let mut out = (r.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&r);
            s.write_all(&out).await?;
        }
    }
}

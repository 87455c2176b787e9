//! The contactless audio indications of EMV Book A §9.4: the Success Tone when the card has
//! been read, the Alert Tone when it failed. Played with `aplay` where the device has it (the
//! emulator on a desktop, a device with an ALSA output); a GPIO buzzer belongs to the
//! indicator drivers.

/// Which tone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Book A §9.4: one tone, 1500 Hz, 500 ms.
    Success,
    /// Book A §9.4: two tones of 750 Hz, 200 ms each, 200 ms apart.
    Alert,
}

const RATE: u32 = 16_000;

/// The tone as 16-bit mono PCM samples: (frequency Hz, milliseconds on, then off) segments.
fn segments(tone: Tone) -> &'static [(u32, u32, u32)] {
    match tone {
        Tone::Success => &[(1500, 500, 0)],
        Tone::Alert => &[(750, 200, 200), (750, 200, 0)],
    }
}

/// The tone as a WAV file (RIFF, PCM, 16 kHz, 16-bit mono).
pub fn wav(tone: Tone) -> Vec<u8> {
    let mut pcm: Vec<i16> = Vec::new();
    for &(freq, on_ms, off_ms) in segments(tone) {
        let n = RATE * on_ms / 1000;
        for i in 0..n {
            let t = i as f64 / RATE as f64;
            // A short fade in and out keeps the speaker from clicking.
            let edge = (i.min(n - 1 - i) as f64 / (RATE as f64 * 0.005)).min(1.0);
            let v = (2.0 * std::f64::consts::PI * freq as f64 * t).sin() * 0.5 * edge;
            pcm.push((v * i16::MAX as f64) as i16);
        }
        pcm.extend(std::iter::repeat_n(0, (RATE * off_ms / 1000) as usize));
    }
    let data_len = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Plays the tone in the background with `aplay`, if it is installed; otherwise nothing.
pub fn play(tone: Tone) {
    std::thread::spawn(move || {
        use std::io::Write;
        let child = std::process::Command::new("aplay")
            .args(["-q", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut c) = child {
            if let Some(mut stdin) = c.stdin.take() {
                let _ = stdin.write_all(&wav(tone));
            }
            let _ = c.wait();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the zero crossings of the samples (a tone of f Hz crosses 2f times a second).
    fn crossings(samples: &[i16]) -> usize {
        samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count()
    }

    fn samples(wav: &[u8]) -> Vec<i16> {
        wav[44..]
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn tones_follow_book_a() {
        let s = wav(Tone::Success);
        assert_eq!(&s[..4], b"RIFF");
        assert_eq!(&s[8..16], b"WAVEfmt ");
        let pcm = samples(&s);
        // 500 ms at 16 kHz.
        assert_eq!(pcm.len(), 8000);
        // 1500 Hz for half a second: about 1500 zero crossings.
        let c = crossings(&pcm);
        assert!((1490..=1510).contains(&c), "{c}");
        let a = samples(&wav(Tone::Alert));
        // 200 on, 200 off, 200 on.
        assert_eq!(a.len(), 9600);
        assert!(a[3200..6400].iter().all(|&v| v == 0), "silent gap");
        let c = crossings(&a[..3200]);
        // 750 Hz for 200 ms: about 300 crossings.
        assert!((295..=305).contains(&c), "{c}");
    }
}

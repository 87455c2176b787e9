//! The contactless status lights and the buzzer (EMV Contactless Book A §9.2 "Visual
//! status indicators", option of four lights, and §9.4 "Audio indications").
//!
//! A status ([`Status`]) becomes a sequence of steps ([`sequence`]); a [`Sequencer`] plays
//! it on a thread against an [`Output`]: GPIO pins on the device ([`gpio`], feature `pi`),
//! or a callback that the emulator window draws ([`SimIndicator`]). Dropping the
//! sequencer switches everything off.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The reader's status, as the cardholder should see and hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Not ready: all lights off.
    NotReady,
    /// Idle between transactions: the first light flashes briefly every five seconds.
    Idle,
    /// Ready to read: the first light on.
    Ready,
    /// A card is being read: the first two lights.
    Processing,
    /// Card read successfully: the third and then the fourth light, and the success tone.
    Success,
    /// Processing error: lights off and the alert tone.
    Error,
}

/// One step of a sequence: these lights and this tone for this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Lights 1 to 4.
    pub lights: [bool; 4],
    /// Buzzer frequency in Hz, or silence.
    pub tone_hz: Option<u32>,
    /// How long the step lasts.
    pub duration: Duration,
}

const fn step(lights: [bool; 4], tone_hz: Option<u32>, ms: u64) -> Step {
    Step {
        lights,
        tone_hz,
        duration: Duration::from_millis(ms),
    }
}

const OFF: [bool; 4] = [false; 4];
const ONE: [bool; 4] = [true, false, false, false];
const TWO: [bool; 4] = [true, true, false, false];
const THREE: [bool; 4] = [true, true, true, false];
const ALL: [bool; 4] = [true; 4];

/// The steps for `status` and whether they repeat. The last step of a sequence that does
/// not repeat stays on until the next status.
///
/// Book A §9.2: Idle flashes the first light about 200 ms every 5 s; Processing adds the
/// second; Card Read Successfully adds the third, then the fourth about 250 ms later, all
/// on for at least 750 ms. §9.4: the Success Tone is 1500 Hz for 500 ms; the Alert Tone two
/// 750 Hz beeps of 200 ms, 200 ms apart.
pub fn sequence(status: Status) -> (&'static [Step], bool) {
    const IDLE: &[Step] = &[step(ONE, None, 200), step(OFF, None, 4800)];
    const READY: &[Step] = &[step(ONE, None, 0)];
    const PROCESSING: &[Step] = &[step(TWO, None, 0)];
    const SUCCESS: &[Step] = &[
        step(THREE, Some(1500), 250),
        step(ALL, Some(1500), 250),
        step(ALL, None, 500),
        step(ALL, None, 0),
    ];
    const ERROR: &[Step] = &[
        step(OFF, Some(750), 200),
        step(OFF, None, 200),
        step(OFF, Some(750), 200),
        step(OFF, None, 0),
    ];
    const NOT_READY: &[Step] = &[step(OFF, None, 0)];
    match status {
        Status::NotReady => (NOT_READY, false),
        Status::Idle => (IDLE, true),
        Status::Ready => (READY, false),
        Status::Processing => (PROCESSING, false),
        Status::Success => (SUCCESS, false),
        Status::Error => (ERROR, false),
    }
}

/// Something that shows the status to the cardholder.
pub trait Indicator: Send {
    /// Starts showing `status`, replacing the sequence that was running.
    fn show(&mut self, status: Status);
}

/// Where a sequence is played: lights and a buzzer.
pub trait Output: Send + 'static {
    /// Sets the four lights and the buzzer.
    fn set(&mut self, lights: [bool; 4], tone_hz: Option<u32>);
}

enum Msg {
    Show(Status),
    Stop,
}

/// Plays status sequences on an [`Output`] from its own thread.
pub struct Sequencer {
    tx: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

impl Sequencer {
    /// Starts the thread; the output starts at [`Status::NotReady`].
    pub fn new(mut out: impl Output) -> std::io::Result<Sequencer> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("kassa-indicator".into())
            .spawn(move || {
                out.set(OFF, None);
                let mut current = Status::NotReady;
                'outer: loop {
                    let (steps, repeat) = sequence(current);
                    let mut i = 0;
                    loop {
                        let s = steps[i];
                        out.set(s.lights, s.tone_hz);
                        let last = i + 1 == steps.len();
                        let wait = if last && !repeat {
                            None
                        } else {
                            Some(s.duration)
                        };
                        let msg = match wait {
                            None => rx.recv().ok(),
                            Some(d) => match rx.recv_timeout(d) {
                                Ok(m) => Some(m),
                                Err(mpsc::RecvTimeoutError::Timeout) => {
                                    i = (i + 1) % steps.len();
                                    continue;
                                }
                                Err(mpsc::RecvTimeoutError::Disconnected) => None,
                            },
                        };
                        match msg {
                            Some(Msg::Show(s)) => {
                                current = s;
                                continue 'outer;
                            }
                            Some(Msg::Stop) | None => break 'outer,
                        }
                    }
                }
                out.set(OFF, None);
            })?;
        Ok(Sequencer {
            tx,
            thread: Some(thread),
        })
    }
}

impl Indicator for Sequencer {
    fn show(&mut self, status: Status) {
        let _ = self.tx.send(Msg::Show(status));
    }
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An output that calls a function: the emulator window draws the lights, a test records
/// them.
pub struct CallbackOutput<F>(pub F);

impl<F: FnMut([bool; 4], Option<u32>) + Send + 'static> Output for CallbackOutput<F> {
    fn set(&mut self, lights: [bool; 4], tone_hz: Option<u32>) {
        (self.0)(lights, tone_hz)
    }
}

/// The simulated indicator of emulator mode: a sequencer whose output is a callback.
pub type SimIndicator = Sequencer;

/// An indicator that shows nothing (no lights fitted).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoIndicator;

impl Indicator for NoIndicator {
    fn show(&mut self, _status: Status) {}
}

/// The number of lights on from the left, as the emulator's status lights draw them.
pub fn lit(lights: [bool; 4]) -> i32 {
    lights.iter().take_while(|l| **l).count() as i32
}

/// Lights and a buzzer on the Pi's GPIO header (rppal).
#[cfg(feature = "pi")]
pub mod gpio {
    use super::Output;
    use crate::reader::{ReaderError, ReaderErrorKind};

    /// Which pins (BCM numbers) and how the buzzer is driven.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct GpioPins {
        /// The four lights, left to right.
        pub lights: [u8; 4],
        /// The buzzer, if fitted.
        pub buzzer: Option<u8>,
        /// Lights that light when the pin is low.
        pub active_low: bool,
    }

    enum Buzzer {
        /// Hardware PWM (GPIO 12/18 channel 0, 13/19 channel 1 on a Pi 4).
        Hardware(rppal::pwm::Pwm),
        /// rppal's software PWM on any pin.
        Software(rppal::gpio::OutputPin),
    }

    /// The GPIO output. Pins are reset to inputs when it is dropped (rppal's reset on drop),
    /// after being switched off.
    pub struct GpioOutput {
        lights: Vec<rppal::gpio::OutputPin>,
        buzzer: Option<Buzzer>,
        active_low: bool,
    }

    fn gpio_err(e: impl std::fmt::Display) -> ReaderError {
        let text = e.to_string();
        let kind = if text.contains("ermission") {
            ReaderErrorKind::Permission
        } else {
            ReaderErrorKind::NoReader
        };
        ReaderError::new(
            kind,
            format!("GPIO: {text} (the user needs the group `gpio`)"),
        )
    }

    impl GpioOutput {
        /// Claims the pins.
        pub fn open(pins: &GpioPins) -> Result<Self, ReaderError> {
            let gpio = rppal::gpio::Gpio::new().map_err(gpio_err)?;
            let mut lights = Vec::new();
            for p in pins.lights {
                lights.push(gpio.get(p).map_err(gpio_err)?.into_output_low());
            }
            let buzzer = match pins.buzzer {
                None => None,
                Some(p) => {
                    let channel = match p {
                        12 | 18 => Some(rppal::pwm::Channel::Pwm0),
                        13 | 19 => Some(rppal::pwm::Channel::Pwm1),
                        _ => None,
                    };
                    match channel.and_then(|c| rppal::pwm::Pwm::new(c).ok()) {
                        Some(pwm) => Some(Buzzer::Hardware(pwm)),
                        None => Some(Buzzer::Software(
                            gpio.get(p).map_err(gpio_err)?.into_output_low(),
                        )),
                    }
                }
            };
            Ok(GpioOutput {
                lights,
                buzzer,
                active_low: pins.active_low,
            })
        }
    }

    impl Output for GpioOutput {
        fn set(&mut self, lights: [bool; 4], tone_hz: Option<u32>) {
            for (pin, on) in self.lights.iter_mut().zip(lights) {
                if on != self.active_low {
                    pin.set_high();
                } else {
                    pin.set_low();
                }
            }
            match (&mut self.buzzer, tone_hz) {
                (Some(Buzzer::Hardware(pwm)), Some(hz)) => {
                    let _ = pwm.set_frequency(f64::from(hz), 0.5);
                    let _ = pwm.enable();
                }
                (Some(Buzzer::Hardware(pwm)), None) => {
                    let _ = pwm.disable();
                }
                (Some(Buzzer::Software(pin)), Some(hz)) => {
                    let _ = pin.set_pwm_frequency(f64::from(hz), 0.5);
                }
                (Some(Buzzer::Software(pin)), None) => {
                    let _ = pin.clear_pwm();
                    pin.set_low();
                }
                (None, _) => {}
            }
        }
    }

    impl Drop for GpioOutput {
        fn drop(&mut self) {
            self.set([false; 4], None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    #[test]
    fn sequences_follow_book_a() {
        let (idle, repeat) = sequence(Status::Idle);
        assert!(repeat);
        let period: Duration = idle.iter().map(|s| s.duration).sum();
        assert_eq!(period, Duration::from_secs(5));
        assert_eq!(idle[0].lights, ONE);
        let (ok, repeat) = sequence(Status::Success);
        assert!(!repeat);
        let tone: Duration = ok
            .iter()
            .filter(|s| s.tone_hz == Some(1500))
            .map(|s| s.duration)
            .sum();
        assert_eq!(tone, Duration::from_millis(500));
        assert_eq!(ok.last().unwrap().lights, ALL);
        let (err, _) = sequence(Status::Error);
        let beeps: Vec<_> = err.iter().filter(|s| s.tone_hz.is_some()).collect();
        assert_eq!(beeps.len(), 2);
        assert!(
            beeps
                .iter()
                .all(|b| b.tone_hz == Some(750) && b.duration.as_millis() == 200)
        );
        assert_eq!(lit(TWO), 2);
    }

    type Seen = Arc<Mutex<Vec<([bool; 4], Option<u32>, Instant)>>>;

    #[test]
    fn the_sequencer_plays_and_switches_off_on_drop() {
        let seen: Seen = Arc::default();
        let rec = seen.clone();
        let mut seq = Sequencer::new(CallbackOutput(move |l, t| {
            rec.lock().unwrap().push((l, t, Instant::now()));
        }))
        .unwrap();
        seq.show(Status::Processing);
        seq.show(Status::Success);
        // Wait (without asserting on time) until the sequence reached its end state.
        let start = Instant::now();
        while seen.lock().unwrap().last().map(|s| (s.0, s.1)) != Some((ALL, None))
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(seq);
        let seen = seen.lock().unwrap();
        let states: Vec<_> = seen.iter().map(|s| (s.0, s.1)).collect();
        // Off at start, processing, the success steps, then off when dropped.
        assert_eq!(states.first(), Some(&(OFF, None)));
        assert!(states.contains(&(THREE, Some(1500))));
        assert!(states.contains(&(ALL, Some(1500))));
        assert_eq!(states.last(), Some(&(OFF, None)));
        // The fourth light follows the third (Book A: about 250 ms later).
        let third = seen.iter().position(|s| s.0 == THREE).unwrap();
        let fourth = seen.iter().position(|s| s.0 == ALL).unwrap();
        assert!(fourth > third);
    }
}

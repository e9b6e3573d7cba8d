//! The built-in sounds, synthesized here (no recorded or third-party audio): a few bell-like
//! notes, each a sine with two soft overtones under a short attack and an exponential decay,
//! mixed and rendered to a 16-bit mono WAV in memory.
//!
//! - start: two quick, quiet notes upwards (A5, E6), a quarter of a second;
//! - success: a rising C major arpeggio (C5 E5 G5 C6);
//! - failure: two lower notes falling a major third (E4 to C4), with a rougher timbre;
//! - orchestration: a strummed chord (G4 C5 E5 G5) crowned by a high C6, about a second.

use super::Cue;

/// Samples per second of the built-in sounds.
pub const SAMPLE_RATE: u32 = 44_100;
/// The loudest sample, as a fraction of full scale: pleasant next to other sounds, never clipping.
const PEAK: f32 = 0.45;

/// One note: when it starts and how long it rings (seconds), its pitch (Hz), loudness and how
/// strong its overtones are.
struct Note {
    at: f32,
    len: f32,
    freq: f32,
    gain: f32,
    bright: f32,
}

const fn note(at: f32, len: f32, freq: f32, gain: f32, bright: f32) -> Note {
    Note { at, len, freq, gain, bright }
}

fn score(cue: Cue) -> Vec<Note> {
    match cue {
        Cue::Start => vec![note(0.0, 0.16, 880.0, 0.7, 0.2), note(0.07, 0.18, 1318.51, 0.6, 0.2)],
        Cue::Success => vec![
            note(0.0, 0.30, 523.25, 0.8, 0.3),
            note(0.08, 0.30, 659.25, 0.8, 0.3),
            note(0.16, 0.30, 783.99, 0.8, 0.3),
            note(0.24, 0.42, 1046.50, 0.9, 0.3),
        ],
        Cue::Failure => vec![note(0.0, 0.28, 329.63, 0.9, 0.7), note(0.2, 0.5, 261.63, 1.0, 0.7)],
        Cue::Orchestration => vec![
            note(0.0, 0.9, 392.00, 0.6, 0.35),
            note(0.05, 0.9, 523.25, 0.6, 0.35),
            note(0.10, 0.9, 659.25, 0.6, 0.35),
            note(0.15, 0.9, 783.99, 0.6, 0.35),
            note(0.35, 0.8, 1046.50, 0.8, 0.25),
        ],
    }
}

/// The built-in sound of `cue`, as the bytes of a WAV file.
pub fn default_wav(cue: Cue) -> Vec<u8> {
    let samples = render(&score(cue));
    wav(&samples, 1, SAMPLE_RATE)
}

fn render(notes: &[Note]) -> Vec<f32> {
    let rate = SAMPLE_RATE as f32;
    let end = notes.iter().map(|n| n.at + n.len).fold(0.0_f32, f32::max);
    let mut mix = vec![0.0_f32; (end * rate).ceil() as usize];
    for n in notes {
        let start = (n.at * rate) as usize;
        let len = (n.len * rate) as usize;
        let attack = 0.006 * rate;
        let release = 0.02 * rate;
        for i in 0..len {
            let t = i as f32 / rate;
            let phase = std::f32::consts::TAU * n.freq * t;
            let tone = phase.sin() + n.bright * 0.5 * (2.0 * phase).sin() + n.bright * 0.2 * (3.0 * phase).sin();
            let i = i as f32;
            // A short linear attack, an exponential decay over the note, and a release to silence
            // at its end, so that nothing clicks.
            let envelope = (i / attack).min(1.0) * (-4.0 * t / n.len).exp() * ((len as f32 - i) / release).min(1.0);
            if let Some(slot) = mix.get_mut(start + i as usize) {
                *slot += n.gain * envelope * tone;
            }
        }
    }
    let loudest = mix.iter().fold(0.0_f32, |m, s| m.max(s.abs()));
    if loudest > 0.0 {
        for s in &mut mix {
            *s *= PEAK / loudest;
        }
    }
    mix
}

/// A 16-bit PCM WAV file of interleaved samples in -1.0..=1.0.
pub fn wav(samples: &[f32], channels: u16, sample_rate: u32) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16_u32.to_le_bytes());
    out.extend_from_slice(&1_u16.to_le_bytes()); // PCM
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * u32::from(channels) * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16_u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples.iter().take(data_len as usize / 2) {
        let value = (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
        out.extend_from_slice(&value.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rodio::Source as _;

    use super::*;

    const CUES: [Cue; 4] = [Cue::Start, Cue::Success, Cue::Failure, Cue::Orchestration];

    fn decode(bytes: &[u8]) -> (u16, u32, Vec<f32>) {
        let decoder = rodio::Decoder::new(std::io::Cursor::new(bytes.to_vec())).expect("rodio decodes it");
        let (channels, rate) = (decoder.channels().get(), decoder.sample_rate().get());
        (channels, rate, decoder.collect())
    }

    #[test]
    fn the_built_in_sounds_are_short_valid_wavs_that_rodio_decodes() {
        for cue in CUES {
            let bytes = default_wav(cue);
            assert_eq!(&bytes[0..4], b"RIFF", "{cue:?}");
            assert_eq!(&bytes[8..16], b"WAVEfmt ", "{cue:?}");
            assert_eq!(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize, bytes.len() - 8);
            let (channels, rate, samples) = decode(&bytes);
            assert_eq!((channels, rate), (1, SAMPLE_RATE), "{cue:?}");
            assert_eq!(samples.len(), (bytes.len() - 44) / 2, "{cue:?}: every sample decodes");
            let length = Duration::from_secs_f64(samples.len() as f64 / f64::from(rate));
            assert!(
                length >= Duration::from_millis(150) && length <= Duration::from_millis(1500),
                "{cue:?}: {length:?}"
            );
            let loudest = samples.iter().fold(0.0_f32, |m, s| m.max(s.abs()));
            assert!((0.3..=0.5).contains(&loudest), "{cue:?}: peak {loudest}");
            // It starts and ends in silence: no click.
            assert!(samples[0].abs() < 0.01 && samples[samples.len() - 1].abs() < 0.01, "{cue:?}");
        }
    }

    #[test]
    fn the_built_in_sounds_are_distinct() {
        let sounds: Vec<Vec<u8>> = CUES.iter().map(|&c| default_wav(c)).collect();
        let lengths: Vec<usize> = sounds.iter().map(Vec::len).collect();
        for i in 0..sounds.len() {
            for j in i + 1..sounds.len() {
                assert_ne!(lengths[i], lengths[j], "{:?} and {:?} last as long", CUES[i], CUES[j]);
            }
        }
        // The failure sound is the low one: its pitch (zero crossings per second) is well below
        // the success sound's.
        let crossings = |cue: Cue| {
            let (_, rate, samples) = decode(&default_wav(cue));
            let n = samples.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
            n as f64 / (samples.len() as f64 / f64::from(rate))
        };
        assert!(crossings(Cue::Failure) * 1.5 < crossings(Cue::Success));
        assert!(crossings(Cue::Start) > crossings(Cue::Success));
    }

    #[test]
    fn wav_keeps_channels_and_rate() {
        let bytes = wav(&[0.0, 0.5, -0.5, 1.0], 2, 8000);
        let (channels, rate, samples) = decode(&bytes);
        assert_eq!((channels, rate, samples.len()), (2, 8000, 4));
        assert!((samples[1] - 0.5).abs() < 0.001 && (samples[3] - 1.0).abs() < 0.001);
    }
}

//! Sounds: which one each event plays (built-in, or the user's file), checking the user's files
//! at start-up, and playing them on a dedicated thread.
//!
//! A configured file is decoded whole with rodio as the sound thread starts (WAV, FLAC, MP3 and
//! Ogg Vorbis; at most [`MAX_SECONDS`] are kept) and rendered to a WAV in memory, like the
//! built-in sounds ([`super::synth`]). A file that cannot be read or decoded is reported once,
//! naming its variable, and the built-in sound plays instead.
//!
//! Playing: with the `native-audio` cargo feature, in-process through rodio's output (cpal);
//! otherwise, or when that fails, through the first of the platform's players that works
//! (`afplay`; `paplay`, `pw-play`, `aplay`; PowerShell's `SoundPlayer`; `mpv`, `ffplay`), given
//! a copy of the WAV in a private temporary directory, with its output thrown away. When nothing
//! can play, one debug line says why and the sounds stay quiet.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use rodio::Source as _;
use serde_json::json;

use super::Shared;
use super::synth;
use crate::config::SoundFiles;

/// The longest part of a user's sound file that is played.
pub const MAX_SECONDS: u32 = 10;
/// The largest sound file accepted.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// How long a player may take before it is stopped.
const PLAYER_TIMEOUT: Duration = Duration::from_secs(MAX_SECONDS as u64 + 5);

/// Which sound an event plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cue {
    Start,
    Success,
    Failure,
    Orchestration,
}

impl Cue {
    pub const ALL: [Cue; 4] = [Cue::Start, Cue::Success, Cue::Failure, Cue::Orchestration];

    /// The variable that names the user's own file for it.
    pub fn variable(self) -> &'static str {
        match self {
            Cue::Start => "CLAUDE_WORKER_START_SOUND",
            Cue::Success => "CLAUDE_WORKER_SUCCESS_SOUND",
            Cue::Failure => "CLAUDE_WORKER_FAILURE_SOUND",
            Cue::Orchestration => "CLAUDE_WORKER_ORCHESTRATION_SOUND",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cue::Start => "start",
            Cue::Success => "success",
            Cue::Failure => "failure",
            Cue::Orchestration => "orchestration",
        }
    }

    fn file(self, files: &SoundFiles) -> Option<&PathBuf> {
        match self {
            Cue::Start => files.start.as_ref(),
            Cue::Success => files.success.as_ref(),
            Cue::Failure => files.failure.as_ref(),
            Cue::Orchestration => files.orchestration.as_ref(),
        }
    }
}

/// Why a sound file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SoundError {
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    #[error("it is larger than {} MiB", MAX_FILE_BYTES / 1024 / 1024)]
    TooLarge,
    #[error("it is not a sound rodio can decode (WAV, FLAC, MP3 or Ogg Vorbis): {}", describe(.0))]
    Decode(#[from] rodio::decoder::DecoderError),
    #[error("it holds no audio")]
    Empty,
}

/// rodio's words for a decoding error, with the detail its message leaves out.
fn describe(e: &rodio::decoder::DecoderError) -> String {
    match e {
        rodio::decoder::DecoderError::IoError(detail) => detail.clone(),
        other => other.to_string().trim_end_matches('.').to_owned(),
    }
}

/// A sound ready to play: WAV bytes, and where it came from ("default" or the file's path).
#[derive(Clone, Debug)]
pub struct Sound {
    pub wav: Arc<Vec<u8>>,
    pub origin: String,
}

/// Decodes a sound file with rodio and renders at most [`MAX_SECONDS`] of it to a WAV.
pub fn load_file(path: &Path) -> Result<Vec<u8>, SoundError> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_FILE_BYTES {
        return Err(SoundError::TooLarge);
    }
    let mut builder =
        rodio::Decoder::builder().with_data(std::io::BufReader::new(file)).with_byte_len(len).with_seekable(true);
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        builder = builder.with_hint(ext);
    }
    let decoder = builder.build()?;
    let (channels, rate) = (decoder.channels().get(), decoder.sample_rate().get());
    let max = usize::try_from(u64::from(rate) * u64::from(channels) * u64::from(MAX_SECONDS)).unwrap_or(usize::MAX);
    let samples: Vec<f32> = decoder.take(max).collect();
    if samples.is_empty() {
        return Err(SoundError::Empty);
    }
    Ok(synth::wav(&samples, channels, rate))
}

/// The sound of each cue: the user's file when it loads, else the built-in one. A file that does
/// not load is reported here, once.
pub fn load_sounds(files: &SoundFiles) -> Vec<(Cue, Sound)> {
    Cue::ALL
        .into_iter()
        .map(|cue| {
            let sound = cue.file(files).and_then(|path| match load_file(path) {
                Ok(wav) => Some(Sound { wav: Arc::new(wav), origin: path.display().to_string() }),
                Err(e) => {
                    tracing::warn!(
                        "{}={}: {e}; the built-in {} sound plays instead",
                        cue.variable(),
                        path.display(),
                        cue.name()
                    );
                    None
                }
            });
            let sound =
                sound.unwrap_or_else(|| Sound { wav: Arc::new(synth::default_wav(cue)), origin: "default".to_owned() });
            (cue, sound)
        })
        .collect()
}

/// Starts the sound thread; `None` (after a warning) when it cannot be started.
pub(super) fn start(files: &SoundFiles, shared: Arc<Shared>, queue: usize) -> Option<SyncSender<(&'static str, Cue)>> {
    let (tx, rx) = sync_channel(queue);
    let files = files.clone();
    let spawned = std::thread::Builder::new().name("claude-worker-sound".to_owned()).spawn(move || {
        let sounds = load_sounds(&files);
        run(&sounds, &rx, &shared);
    });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!("cannot start the sound thread ({e}): no sounds");
            None
        }
    }
}

fn run(sounds: &[(Cue, Sound)], rx: &Receiver<(&'static str, Cue)>, shared: &Shared) {
    let mut output = Output::new();
    while let Ok((event, cue)) = rx.recv() {
        if let Some((_, sound)) = sounds.iter().find(|(c, _)| *c == cue) {
            let played = output.play(cue, sound);
            let (backend, error) = match &played {
                Ok(backend) => (*backend, None),
                Err(why) => ("none", Some(why.clone())),
            };
            shared.record(&json!({
                "kind": "sound",
                "event": event,
                "cue": cue.name(),
                "sound": sound.origin,
                "backend": backend,
                "played": played.is_ok(),
                "error": error,
            }));
        }
        shared.done();
    }
}

/// What plays sounds in this process.
struct Output {
    /// The platform's players found on the PATH; the one that last worked first.
    players: Vec<(&'static str, PathBuf)>,
    /// Where the WAVs are written for the players (made on first use).
    dir: Option<tempfile::TempDir>,
    /// Whether "nothing can play" was already logged.
    reported: bool,
}

impl Output {
    fn new() -> Output {
        let players = PLAYERS
            .iter()
            .filter_map(|(name, _)| crate::runner::find_executable(Path::new(name)).map(|path| (*name, path)))
            .collect();
        Output { players, dir: None, reported: false }
    }

    /// Plays a sound to its end; says through what, or why it could not.
    fn play(&mut self, cue: Cue, sound: &Sound) -> Result<&'static str, String> {
        let mut failures = Vec::new();
        #[cfg(feature = "native-audio")]
        match native::play(&sound.wav) {
            Ok(()) => return Ok("rodio"),
            Err(e) => failures.push(format!("rodio: {e}")),
        }
        if self.players.is_empty() {
            failures.push(format!("no sound player found (looked for {})", player_names()));
        } else {
            match self.file_for(cue, sound) {
                Ok(file) => {
                    for i in 0..self.players.len() {
                        let (name, program) = &self.players[i];
                        match run_player(name, program, &file) {
                            Ok(()) => {
                                let name = *name;
                                // The one that works is tried first next time.
                                self.players[..=i].rotate_right(1);
                                return Ok(name);
                            }
                            Err(e) => failures.push(format!("{name}: {e}")),
                        }
                    }
                }
                Err(e) => failures.push(format!("cannot write the sound for the player: {e}")),
            }
        }
        let why = failures.join("; ");
        if !self.reported {
            self.reported = true;
            tracing::debug!("cannot play sounds here ({why}); they stay quiet");
        }
        Err(why)
    }

    fn file_for(&mut self, cue: Cue, sound: &Sound) -> std::io::Result<PathBuf> {
        if self.dir.is_none() {
            self.dir = Some(tempfile::Builder::new().prefix("claude-worker-sounds-").tempdir()?);
        }
        let dir = self.dir.as_ref().map(tempfile::TempDir::path).ok_or(std::io::ErrorKind::NotFound)?;
        let path = dir.join(format!("{}.wav", cue.name()));
        if !path.exists() {
            let partial = dir.join(format!("{}.wav.partial", cue.name()));
            // In a private directory of our own; still, never through a link, and private.
            std::io::Write::write_all(&mut crate::files::create_replacing(&partial)?, sound.wav.as_slice())?;
            std::fs::rename(&partial, &path)?;
        }
        Ok(path)
    }
}

/// The players tried, in order, and their arguments before the file.
#[cfg(target_os = "macos")]
const PLAYERS: &[(&str, &[&str])] =
    &[("afplay", &[]), ("mpv", &["--no-video", "--really-quiet", "--no-terminal"]), ("ffplay", FFPLAY)];
#[cfg(target_os = "windows")]
const PLAYERS: &[(&str, &[&str])] = &[
    ("powershell", &["-NoProfile", "-NonInteractive", "-Command"]),
    ("mpv", &["--no-video", "--really-quiet", "--no-terminal"]),
    ("ffplay", FFPLAY),
];
#[cfg(not(any(target_os = "macos", target_os = "windows")))]
const PLAYERS: &[(&str, &[&str])] = &[
    ("paplay", &[]),
    ("pw-play", &[]),
    ("aplay", &["-q"]),
    ("mpv", &["--no-video", "--really-quiet", "--no-terminal"]),
    ("ffplay", FFPLAY),
];
const FFPLAY: &[&str] = &["-nodisp", "-autoexit", "-loglevel", "quiet"];

fn player_names() -> String {
    PLAYERS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

/// Runs one player on a file to its end (at most [`PLAYER_TIMEOUT`]), its output thrown away.
fn run_player(name: &str, program: &Path, file: &Path) -> Result<(), String> {
    let args = PLAYERS.iter().find(|(n, _)| *n == name).map_or(&[][..], |(_, args)| *args);
    let mut command = Command::new(program);
    command.args(args);
    if name == "powershell" {
        let quoted = file.display().to_string().replace('\'', "''");
        command.arg(format!("(New-Object Media.SoundPlayer '{quoted}').PlaySync()"));
    } else {
        command.arg(file);
    }
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + PLAYER_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still playing after {PLAYER_TIMEOUT:?}; stopped"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// In-process playback through rodio's output device.
#[cfg(feature = "native-audio")]
mod native {
    use std::time::{Duration, Instant};

    /// Plays WAV bytes on the default output device to their end.
    pub(super) fn play(wav: &[u8]) -> Result<(), String> {
        // alsa-lib prints its errors (no card, unknown PCM) to stderr: on this thread, they are
        // kept and become part of the reason instead.
        #[cfg(target_os = "linux")]
        let alsa_errors = alsa::Output::local_error_handler().ok();
        #[cfg(target_os = "linux")]
        let with_alsa = |e: String| {
            let said = alsa_errors.as_ref().map(|o| o.borrow().to_string()).unwrap_or_default();
            match said.lines().last() {
                Some(last) => format!("{e} (ALSA: {last})"),
                None => e,
            }
        };
        #[cfg(not(target_os = "linux"))]
        let with_alsa = |e: String| e;
        let mut sink = rodio::DeviceSinkBuilder::open_default_sink().map_err(|e| with_alsa(e.to_string()))?;
        sink.log_on_drop(false);
        let player = rodio::play(sink.mixer(), std::io::Cursor::new(wav.to_vec())).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + super::PLAYER_TIMEOUT;
        while !player.empty() {
            if Instant::now() >= deadline {
                return Err("the output device stopped taking samples".to_owned());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // What is queued in the device's buffer plays before the device is closed.
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_falls_back_to_the_built_in_sound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broken = dir.path().join("x.wav");
        std::fs::write(&broken, b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk not a sound").expect("write");
        let err = load_file(&broken).expect_err("not a sound");
        assert!(err.to_string().contains("decode") || err.to_string().contains("no audio"), "{err}");
        let missing = dir.path().join("missing.wav");
        assert!(matches!(load_file(&missing), Err(SoundError::Read(_))));

        let good = dir.path().join("good.wav");
        std::fs::write(&good, synth::wav(&[0.0, 0.25, 0.5, 0.25], 1, 8000)).expect("write");
        let files = SoundFiles { start: Some(broken.clone()), success: Some(good.clone()), ..SoundFiles::default() };
        let sounds = load_sounds(&files);
        let origin = |cue: Cue| sounds.iter().find(|(c, _)| *c == cue).map(|(_, s)| s.origin.clone());
        assert_eq!(origin(Cue::Start).as_deref(), Some("default"));
        assert_eq!(origin(Cue::Success), Some(good.display().to_string()));
        assert_eq!(origin(Cue::Failure).as_deref(), Some("default"));
    }

    #[test]
    fn a_long_file_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = dir.path().join("long.wav");
        let rate = 8000;
        std::fs::write(&long, synth::wav(&vec![0.1; (rate * (MAX_SECONDS + 3)) as usize], 1, rate)).expect("write");
        let wav = load_file(&long).expect("loads");
        assert_eq!(wav.len(), 44 + 2 * (rate * MAX_SECONDS) as usize);
    }
}

//! Synth mode (ddsp-vst's): frames of f0, loudness and voicing from note events, with an ADSR
//! envelope and optional vibrato, to drive a model from a keyboard or a MIDI file.

use super::{FrameIn, FrameSource, SILENT_DB};
use crate::features::midi::Note;

/// How notes become frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoteShape {
    /// Attack time, s: the envelope rises linearly from its current level to 1.
    pub attack: f64,
    /// Decay time, s: then falls linearly to `sustain`.
    pub decay: f64,
    /// Sustain level, `(0, 1]` of the peak.
    pub sustain: f64,
    /// Release time, s: after note-off it falls linearly to 0.
    pub release: f64,
    /// Loudness of a velocity-127 note at the envelope's peak, dB (the training data's loud
    /// notes: magenta's loudness of a full-scale tone is about 0 dB, played notes -20 to -40).
    pub peak_db: f64,
    /// dB between velocity 127 and velocity 1.
    pub velocity_range_db: f64,
    /// Vibrato rate, Hz.
    pub vibrato_hz: f64,
    /// Vibrato depth, cents either way (0: none).
    pub vibrato_cents: f64,
}

impl Default for NoteShape {
    fn default() -> Self {
        Self {
            attack: 0.02,
            decay: 0.1,
            sustain: 0.8,
            release: 0.15,
            peak_db: -25.0,
            velocity_range_db: 30.0,
            vibrato_hz: 5.5,
            vibrato_cents: 0.0,
        }
    }
}

/// Held keys tracked for last-note priority (a 17th key held drops the oldest).
const MAX_HELD: usize = 16;

/// A monophonic note player: note events in (scheduled from a list, or live through
/// [`Self::note_on`] / [`Self::note_off`]), one [`FrameIn`] per frame out. The newest held key
/// sounds; releasing it falls back to the one held before (legato: the envelope carries on);
/// the release runs once no key is held. Allocates nothing after construction.
#[derive(Clone, Debug)]
pub struct NotePlayer {
    shape: NoteShape,
    frame_rate: f64,
    /// Scheduled notes (by start) and the next to start; note-offs come from `ends`.
    notes: Vec<Note>,
    next_note: usize,
    /// Held keys, oldest first, with their velocities and scheduled ends (live: infinite).
    held: [(u8, u8, f64); MAX_HELD],
    n_held: usize,
    /// Frames produced.
    frame: u64,
    /// Envelope level and the f0/velocity it plays (the last key, also through the release).
    level: f64,
    key: u8,
    velocity: u8,
    /// Seconds since the current key started (attack and decay follow it; vibrato too).
    since_on: f64,
    /// Level when the attack started (legato and retrigger start from where the level is).
    attack_from: f64,
    /// Release: the level it started from and the seconds since.
    release: Option<(f64, f64)>,
    /// Frames to render after the last scheduled note (its release), then the source ends.
    end_frame: Option<u64>,
}

impl NotePlayer {
    /// A live player at `frame_rate` frames per second: it never ends; play it with
    /// [`Self::note_on`] and [`Self::note_off`].
    pub fn live(shape: NoteShape, frame_rate: f64) -> Self {
        Self {
            shape,
            frame_rate,
            notes: Vec::new(),
            next_note: 0,
            held: [(0, 0, f64::INFINITY); MAX_HELD],
            n_held: 0,
            frame: 0,
            level: 0.0,
            key: 69,
            velocity: 0,
            since_on: 0.0,
            attack_from: 0.0,
            release: None,
            end_frame: None,
        }
    }

    /// A player of `notes` (any order) that ends after the last note's release.
    pub fn from_notes(notes: &[Note], shape: NoteShape, frame_rate: f64) -> Self {
        let mut notes: Vec<Note> = notes
            .iter()
            .filter(|n| n.end > n.start && n.start.is_finite() && n.end.is_finite())
            .copied()
            .collect();
        notes.sort_by(|a, b| a.start.total_cmp(&b.start));
        let last = notes.iter().map(|n| n.end).fold(0.0, f64::max);
        let end = ((last + shape.release.max(0.0)) * frame_rate).ceil() as u64 + 1;
        Self {
            notes,
            end_frame: Some(end),
            ..Self::live(shape, frame_rate)
        }
    }

    /// Frames the player will produce (`None` when live).
    pub fn len_frames(&self) -> Option<u64> {
        self.end_frame
    }

    /// Press `key` with `velocity` (1-127; 0 is a note-off, as in MIDI).
    pub fn note_on(&mut self, key: u8, velocity: u8) {
        self.press(key, velocity, f64::INFINITY);
    }

    /// Release `key`.
    pub fn note_off(&mut self, key: u8) {
        if let Some(i) = self.held[..self.n_held].iter().position(|h| h.0 == key) {
            self.held.copy_within(i + 1..self.n_held, i);
            self.n_held -= 1;
            self.after_release();
        }
    }

    fn press(&mut self, key: u8, velocity: u8, end: f64) {
        if velocity == 0 {
            self.note_off(key);
            return;
        }
        if let Some(i) = self.held[..self.n_held].iter().position(|h| h.0 == key) {
            self.held.copy_within(i + 1..self.n_held, i);
            self.n_held -= 1;
        }
        if self.n_held == MAX_HELD {
            self.held.copy_within(1.., 0);
            self.n_held -= 1;
        }
        self.held[self.n_held] = (key, velocity.min(127), end);
        self.n_held += 1;
        self.start_key(key, velocity.min(127));
    }

    fn start_key(&mut self, key: u8, velocity: u8) {
        let legato = self.n_held > 1 && self.release.is_none();
        self.key = key;
        self.velocity = velocity;
        if !legato {
            self.since_on = 0.0;
            self.attack_from = self.level;
        }
        self.release = None;
    }

    /// A key went up: fall back to the newest key still held, or release.
    fn after_release(&mut self) {
        match self.n_held {
            0 => {
                if self.release.is_none() {
                    self.release = Some((self.level, 0.0));
                }
            }
            n => {
                let (key, velocity, _) = self.held[n - 1];
                self.key = key;
                self.velocity = velocity;
            }
        }
    }

    /// Apply the scheduled events up to time `t`.
    fn schedule(&mut self, t: f64) {
        // Ends first (a note ending as another starts at the same time releases it first).
        while let Some(i) = self.held[..self.n_held].iter().position(|h| h.2 <= t) {
            let key = self.held[i].0;
            self.note_off(key);
        }
        while let Some(n) = self.notes.get(self.next_note).copied() {
            if n.start > t {
                break;
            }
            self.next_note += 1;
            if n.end > t {
                self.press(n.key, n.velocity, n.end);
            }
        }
    }

    /// The envelope level after `dt` more seconds.
    fn advance(&mut self, dt: f64) {
        let s = &self.shape;
        self.level = match &mut self.release {
            Some((from, since)) => {
                *since += dt;
                if s.release > 0.0 {
                    (*from * (1.0 - *since / s.release)).max(0.0)
                } else {
                    0.0
                }
            }
            None if self.velocity == 0 => 0.0,
            None => {
                self.since_on += dt;
                let t = self.since_on;
                let sustain = s.sustain.clamp(0.0, 1.0);
                if t < s.attack {
                    self.attack_from + (1.0 - self.attack_from) * t / s.attack
                } else if t < s.attack + s.decay {
                    1.0 - (1.0 - sustain) * (t - s.attack) / s.decay
                } else {
                    sustain
                }
            }
        };
    }
}

impl FrameSource for NotePlayer {
    fn next_frame(&mut self) -> Option<FrameIn> {
        if self.end_frame.is_some_and(|end| self.frame >= end) {
            return None;
        }
        let t = self.frame as f64 / self.frame_rate;
        self.schedule(t);
        self.advance(1.0 / self.frame_rate);
        self.frame += 1;
        if self.level <= 0.0 {
            return Some(FrameIn {
                f0_hz: crate::dsp::midi_to_hz_f64(self.key as f64) as f32,
                loudness_db: SILENT_DB,
                voicing: 0.0,
            });
        }
        let s = &self.shape;
        let vibrato = s.vibrato_cents
            * (2.0 * std::f64::consts::PI * s.vibrato_hz * self.since_on).sin()
            / 100.0;
        let f0 = crate::dsp::midi_to_hz_f64(self.key as f64 + vibrato);
        let velocity_db = -s.velocity_range_db * (127.0 - self.velocity as f64) / 126.0;
        let db = s.peak_db + velocity_db + 20.0 * self.level.log10();
        Some(FrameIn {
            f0_hz: f0 as f32,
            loudness_db: db.max(SILENT_DB as f64) as f32,
            voicing: 1.0,
        })
    }
}

//! Notes from a Standard MIDI File: start, end, key and velocity in seconds, every track and
//! channel merged, tempo changes applied.

use crate::error::{Error, Result};
use std::path::Path;

/// One note: it sounds from `start` to `end` seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Note {
    /// Note-on time, s.
    pub start: f64,
    /// Note-off time, s.
    pub end: f64,
    /// MIDI key (69 = A4 = 440 Hz).
    pub key: u8,
    /// Note-on velocity, 1-127.
    pub velocity: u8,
}

/// The notes of a MIDI file, by start time. A note-on without its note-off ends at the file's
/// last event; SMPTE (frame-based) timing is read at its frames per second.
pub fn read_midi(path: &Path) -> Result<Vec<Note>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| Error::Input {
        path: path.to_path_buf(),
        reason,
    };
    let smf = midly::Smf::parse(&bytes).map_err(|e| bad(format!("not a MIDI file: {e}")))?;
    // Seconds per tick: metrical timing follows the tempo; SMPTE timing is fixed.
    let (ticks_per_quarter, fixed) = match smf.header.timing {
        midly::Timing::Metrical(t) if t.as_int() > 0 => (t.as_int() as f64, None),
        midly::Timing::Metrical(_) => return Err(bad("0 ticks per quarter note".into())),
        midly::Timing::Timecode(fps, sub) => {
            (1.0, Some(1.0 / (fps.as_f32() as f64 * sub.max(1) as f64)))
        }
    };
    let mut events: Vec<(u64, usize, midly::TrackEventKind)> = Vec::new();
    for (t, track) in smf.tracks.iter().enumerate() {
        let mut tick = 0u64;
        for e in track {
            tick += e.delta.as_int() as u64;
            events.push((tick, t, e.kind));
        }
    }
    events.sort_by_key(|(tick, track, _)| (*tick, *track));
    let (mut us_per_quarter, mut last_tick, mut seconds) = (500_000.0f64, 0u64, 0.0f64);
    let mut notes = Vec::new();
    let mut open: Vec<(u8, u8, f64, u8)> = Vec::new(); // channel, key, start, velocity
    for (tick, _, kind) in events {
        let per_tick = fixed.unwrap_or(us_per_quarter / 1e6 / ticks_per_quarter);
        seconds += (tick - last_tick) as f64 * per_tick;
        last_tick = tick;
        match kind {
            midly::TrackEventKind::Meta(midly::MetaMessage::Tempo(t)) if t.as_int() > 0 => {
                us_per_quarter = t.as_int() as f64
            }
            midly::TrackEventKind::Midi { channel, message } => {
                let channel = channel.as_int();
                match message {
                    midly::MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                        open.push((channel, key.as_int(), seconds, vel.as_int()))
                    }
                    midly::MidiMessage::NoteOn { key, .. }
                    | midly::MidiMessage::NoteOff { key, .. } => {
                        let key = key.as_int();
                        if let Some(i) = open.iter().position(|o| o.0 == channel && o.1 == key) {
                            let (_, key, start, velocity) = open.remove(i);
                            notes.push(Note {
                                start,
                                end: seconds,
                                key,
                                velocity,
                            });
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for (_, key, start, velocity) in open {
        notes.push(Note {
            start,
            end: seconds,
            key,
            velocity,
        });
    }
    notes.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.key.cmp(&b.key)));
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use midly::num::{u4, u7, u15, u24, u28};
    use midly::{
        Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind,
    };

    fn event(delta: u32, kind: TrackEventKind<'static>) -> TrackEvent<'static> {
        TrackEvent {
            delta: u28::new(delta),
            kind,
        }
    }

    fn midi(channel: u8, message: MidiMessage) -> TrackEventKind<'static> {
        TrackEventKind::Midi {
            channel: u4::new(channel),
            message,
        }
    }

    /// Two tracks, a tempo change half way, a note-on of velocity 0 as note-off, the same key
    /// on two channels, and a note left open: the times follow the tempo map.
    #[test]
    fn notes_follow_the_tempo_map_across_tracks_and_channels() {
        let on = |key: u8, vel: u8| MidiMessage::NoteOn {
            key: u7::new(key),
            vel: u7::new(vel),
        };
        let off = |key: u8| MidiMessage::NoteOff {
            key: u7::new(key),
            vel: u7::new(0),
        };
        // 480 ticks per quarter; 120 bpm (0.5 s per quarter), then 60 bpm from tick 960 (1 s).
        let tempo = vec![
            event(
                0,
                TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000))),
            ),
            event(
                960,
                TrackEventKind::Meta(MetaMessage::Tempo(u24::new(1_000_000))),
            ),
            event(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
        ];
        let notes = vec![
            event(0, midi(0, on(60, 100))),
            event(0, midi(1, on(60, 50))),
            event(480, midi(0, off(60))),    // 0.5 s
            event(480, midi(1, on(60, 0))),  // 1.0 s: velocity 0 ends channel 1's key 60
            event(480, midi(0, on(64, 90))), // 2.0 s (60 bpm from 1.0 s)
            event(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
        ];
        let smf = Smf {
            header: Header::new(Format::Parallel, Timing::Metrical(u15::new(480))),
            tracks: vec![tempo, notes],
        };
        let dir = std::env::temp_dir().join(format!("ddsp-midi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("song.mid");
        smf.save(&path).unwrap();
        let got = read_midi(&path).unwrap();
        let expect = [(0.0, 0.5, 60, 100), (0.0, 1.0, 60, 50), (2.0, 2.0, 64, 90)];
        assert_eq!(got.len(), expect.len(), "{got:?}");
        let mut got = got;
        got.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));
        for (n, (start, end, key, velocity)) in got.iter().zip(expect) {
            assert!(
                (n.start - start).abs() < 1e-9 && (n.end - end).abs() < 1e-9,
                "{n:?}"
            );
            assert_eq!((n.key, n.velocity), (key, velocity));
        }
        std::fs::write(dir.join("bad.mid"), b"MThd nonsense").unwrap();
        let err = read_midi(&dir.join("bad.mid")).unwrap_err().to_string();
        assert!(
            err.contains("bad.mid") && err.contains("not a MIDI file"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

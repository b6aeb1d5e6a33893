//! Control dumps (`--dump-controls-every`): the original tool's CSV files.

use std::fmt::Write;
use std::path::Path;

use super::control_stats::distribution_summary;
use super::plots::ControlSnapshot;
use crate::config::Config;
use crate::dsp::to_vec;
use crate::error::Result;
use crate::io::write_atomic;
use crate::synth::SynthControls;

/// Frames of batch item 0 dumped in detail: a quarter, half and three quarters in.
pub fn dump_frames(frames: usize) -> Vec<usize> {
    let mut v: Vec<usize> = [frames / 4, frames / 2, 3 * frames / 4].to_vec();
    v.dedup();
    v
}

/// Write, under `dir`, for batch item 0 (and return the same controls for plotting):
/// - `step_NNNNNNNN_control_summary.csv`: per frame f0, harmonic gain, noise gain (mean band
///   magnitude), harmonic entropy, top-harmonic share, spectral centroid (in harmonics);
/// - `step_NNNNNNNN_b0_fF_harmonics.csv`: harmonic amplitudes (`gain * distribution`);
/// - `step_NNNNNNNN_b0_fF_wavetable.csv`: one cycle (256 samples) of the additive waveform;
/// - `step_NNNNNNNN_b0_fF_noise_filter.csv`: noise band magnitudes with their frequencies.
pub fn dump_controls(
    dir: &Path,
    step: usize,
    controls: &SynthControls,
    config: &Config,
) -> Result<ControlSnapshot> {
    let [_, f, k] = controls.distribution.dims();
    let f0 = to_vec(controls.f0_hz.clone());
    let amp = to_vec(controls.amplitude.clone());
    let dist = to_vec(controls.distribution.clone());
    let (noise, m) = match &controls.noise_magnitudes {
        Some(n) => (to_vec(n.clone()), n.dims()[2]),
        None => (vec![0.0; f], 1),
    };
    let prefix = super::run::step_label(step);
    let mut snapshot = ControlSnapshot {
        step,
        f0_hz: Vec::with_capacity(f),
        gain: Vec::with_capacity(f),
        noise: Vec::with_capacity(f),
        entropy: Vec::with_capacity(f),
        distribution: Vec::with_capacity(f),
    };
    let mut s = String::from(
        "frame,f0_hz,harmonic_gain,noise_gain,harmonic_entropy,top_harmonic_share,centroid_harmonic\n",
    );
    for t in 0..f {
        let row = &dist[t * k..(t + 1) * k];
        let total: f32 = row.iter().sum::<f32>().max(1e-12);
        let p: Vec<f32> = row.iter().map(|v| v / total).collect();
        let (entropy, top, centroid) = distribution_summary(row);
        let noise_gain = noise[t * m..(t + 1) * m].iter().sum::<f32>() / m as f32;
        let _ = writeln!(
            s,
            "{t},{},{},{noise_gain},{entropy},{top},{centroid}",
            f0[t], amp[t]
        );
        snapshot.f0_hz.push(f0[t] as f64);
        snapshot.gain.push(amp[t] as f64);
        snapshot.noise.push(noise_gain as f64);
        snapshot.entropy.push(entropy as f64);
        snapshot
            .distribution
            .push(p.iter().map(|v| *v as f64).collect());
    }
    write_atomic(
        &dir.join(format!("{prefix}_control_summary.csv")),
        s.as_bytes(),
    )?;
    for t in dump_frames(f) {
        let a: Vec<f32> = dist[t * k..(t + 1) * k]
            .iter()
            .map(|d| d * amp[t])
            .collect();
        let mut h = String::from("harmonic,frequency_hz,amplitude\n");
        for (i, v) in a.iter().enumerate() {
            let _ = writeln!(h, "{},{},{v}", i + 1, (i + 1) as f32 * f0[t]);
        }
        write_atomic(
            &dir.join(format!("{prefix}_b0_f{t}_harmonics.csv")),
            h.as_bytes(),
        )?;
        let mut w = String::from("phase,sample\n");
        for j in 0..256 {
            let x = j as f64 / 256.0;
            let v: f64 = a
                .iter()
                .enumerate()
                .map(|(i, ai)| *ai as f64 * (2.0 * std::f64::consts::PI * (i + 1) as f64 * x).sin())
                .sum();
            let _ = writeln!(w, "{x},{v}");
        }
        write_atomic(
            &dir.join(format!("{prefix}_b0_f{t}_wavetable.csv")),
            w.as_bytes(),
        )?;
        if controls.noise_magnitudes.is_some() {
            let mut n = String::from("band,frequency_hz,magnitude\n");
            let nyquist = config.sample_rate / 2.0;
            for (i, v) in noise[t * m..(t + 1) * m].iter().enumerate() {
                let hz = if m > 1 {
                    i as f64 * nyquist / (m - 1) as f64
                } else {
                    0.0
                };
                let _ = writeln!(n, "{i},{hz},{v}");
            }
            write_atomic(
                &dir.join(format!("{prefix}_b0_f{t}_noise_filter.csv")),
                n.as_bytes(),
            )?;
        }
    }
    Ok(snapshot)
}

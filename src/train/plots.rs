//! PNG plots of a run, drawn natively with `plotters`: loss curves, control plots per step and
//! across steps, and spectrograms of target vs prediction.

use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Draw into `path` through a temporary file and a rename.
fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(
        &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    ensure_font();
    if let Some(parent) = path.parent() {
        crate::io::create_dir_all(parent)?;
    }
    // Unique per writer, and ending in .png (plotters picks the format by extension).
    let mut tmp = crate::io::temp_path(path).into_os_string();
    tmp.push(".png");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        draw(&root).map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::write(path, e))
}

fn finite_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    }
}

/// A named series of `(x, y)` points.
pub type Series = (String, Vec<(f64, f64)>);

fn line_chart(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    series: &[Series],
    log_y: bool,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let tf = |v: f64| if log_y { v.max(1e-12).log10() } else { v };
    let (x0, x1) = finite_range(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
    let (y0, y1) = finite_range(series.iter().flat_map(|(_, p)| p.iter().map(|q| tf(q.1))));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(if log_y { "log10" } else { "" })
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .filter(|p| tf(p.1).is_finite())
                    .map(|p| (p.0, tf(p.1))),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

fn heatmap(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    values: &[Vec<f64>],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let cols = values.len().max(1);
    let rows = values.first().map(Vec::len).unwrap_or(1).max(1);
    let (lo, hi) = finite_range(values.iter().flatten().copied());
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0..cols, 0..rows)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("frame")
        .y_desc(y_desc)
        .draw()?;
    chart.draw_series(values.iter().enumerate().flat_map(|(x, col)| {
        col.iter().enumerate().map(move |(y, v)| {
            // Non-finite cells (a diverged render) take the colour of the lowest value.
            let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
            let t = if t.is_finite() { t } else { 0.0 };
            Rectangle::new([(x, y), (x + 1, y + 1)], ViridisRGB::get_color(t).filled())
        })
    }))?;
    Ok(())
}

/// The columns of a CSV log under `logs` (none if it does not exist) as named series over its
/// first column, skipping the columns `skip` names; `prefix` goes before each name.
fn read_series(logs: &Path, name: &str, prefix: &str, skip: &[&str]) -> Vec<Series> {
    let Ok(text) = std::fs::read_to_string(logs.join(name)) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    header
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, h)| !skip.contains(h))
        .map(|(i, h)| {
            let points = rows
                .iter()
                .filter(|r| r.len() > i)
                .map(|r| (r[0], r[i]))
                .collect();
            (format!("{prefix}{h}"), points)
        })
        .collect()
}

/// Loss curves from the run's `train.csv` and `val.csv` (log scale): one line per column.
pub fn plot_losses(logs: &Path, out: &Path) -> Result<()> {
    let skip = [
        "lr",
        "grad_norm",
        "f0_cents_median",
        "loudness_l1_db",
        "f0_l1_cents",
        "outlier_ratio",
    ];
    let read = |name: &str| -> Vec<Series> {
        let prefix = if name == "val.csv" { "val " } else { "" };
        read_series(logs, name, prefix, &skip)
    };
    let train = read("train.csv");
    let val = read("val.csv");
    draw_png(out, (1000, 700), |root| {
        let (top, bottom) = root.split_vertically(350);
        line_chart(&top, "training loss terms", "step", &train, true)?;
        line_chart(
            &bottom,
            "validation (paper spectral loss)",
            "step",
            &val,
            true,
        )?;
        Ok(())
    })
}

/// `logs/controls.csv` drawn: the harmonic distribution's entropy and top share, the
/// amplitudes, and the noise-to-harmonic ratio, over the steps (nothing before the first row).
pub fn plot_control_stats(logs: &Path, out: &Path) -> Result<()> {
    let all = read_series(logs, "controls.csv", "", &[]);
    if all.is_empty() {
        return Ok(());
    }
    let pick = |names: &[&str]| -> Vec<Series> {
        all.iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .cloned()
            .collect()
    };
    let shape = pick(&["harmonic_entropy", "top_harmonic_share"]);
    let level = pick(&["amplitude_sum", "gain_min", "gain_max"]);
    let noise = pick(&["noise_to_harmonic_db"]);
    draw_png(out, (1000, 900), |root| {
        let rows = root.split_evenly((3, 1));
        line_chart(
            &rows[0],
            "harmonic distribution (entropy, nats; top share)",
            "step",
            &shape,
            false,
        )?;
        line_chart(&rows[1], "harmonic amplitudes", "step", &level, false)?;
        line_chart(
            &rows[2],
            "noise to harmonic ratio, dB",
            "step",
            &noise,
            false,
        )?;
        Ok(())
    })
}

/// One step's controls for batch item 0, as read from the decoder.
#[derive(Clone, Debug)]
pub struct ControlSnapshot {
    /// Training step.
    pub step: usize,
    /// f0 per frame, Hz.
    pub f0_hz: Vec<f64>,
    /// Harmonic gain per frame.
    pub gain: Vec<f64>,
    /// Mean noise magnitude per frame.
    pub noise: Vec<f64>,
    /// Harmonic entropy per frame.
    pub entropy: Vec<f64>,
    /// Normalised harmonic distribution per frame.
    pub distribution: Vec<Vec<f64>>,
}

/// Per-step control plot: f0, gains and entropy over frames, and the harmonic distribution.
pub fn plot_controls(s: &ControlSnapshot, out: &Path) -> Result<()> {
    let frames = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect()
    };
    draw_png(out, (1000, 1100), |root| {
        let parts = root.split_evenly((4, 1));
        let f0 = [("f0".to_string(), frames(&s.f0_hz))];
        line_chart(
            &parts[0],
            &format!("step {}: f0 (Hz)", s.step),
            "frame",
            &f0,
            false,
        )?;
        let gains = [
            ("harmonic gain".to_string(), frames(&s.gain)),
            ("noise gain".to_string(), frames(&s.noise)),
        ];
        line_chart(&parts[1], "gains", "frame", &gains, false)?;
        let entropy = [("entropy (nats)".to_string(), frames(&s.entropy))];
        line_chart(&parts[2], "harmonic entropy", "frame", &entropy, false)?;
        let log_dist: Vec<Vec<f64>> = s
            .distribution
            .iter()
            .map(|c| c.iter().map(|v| v.max(1e-6).log10()).collect())
            .collect();
        heatmap(
            &parts[3],
            "harmonic distribution (log10)",
            "harmonic",
            &log_dist,
        )?;
        Ok(())
    })
}

/// Control evolution across steps: harmonic gain and entropy per frame, one line per step.
pub fn plot_controls_compare(snapshots: &[ControlSnapshot], out: &Path) -> Result<()> {
    let by = |f: fn(&ControlSnapshot) -> &Vec<f64>| -> Vec<Series> {
        snapshots
            .iter()
            .map(|s| {
                let pts = f(s)
                    .iter()
                    .enumerate()
                    .map(|(i, y)| (i as f64, *y))
                    .collect();
                (format!("step {}", s.step), pts)
            })
            .collect()
    };
    draw_png(out, (1000, 700), |root| {
        let (top, bottom) = root.split_vertically(350);
        line_chart(
            &top,
            "harmonic gain across steps",
            "frame",
            &by(|s| &s.gain),
            false,
        )?;
        line_chart(
            &bottom,
            "harmonic entropy across steps",
            "frame",
            &by(|s| &s.entropy),
            false,
        )?;
        Ok(())
    })
}

/// Log-magnitude spectrogram (dB) with 512-sample Hann frames every 128 samples.
pub fn spectrogram_db(audio: &[f32]) -> Vec<Vec<f64>> {
    let (n_fft, hop) = (512, 128);
    let frames = audio.len().saturating_sub(n_fft) / hop + 1;
    crate::features::loudness::frame_spectra(
        &crate::features::SampleView::whole(audio),
        n_fft,
        hop,
        0,
        0..frames,
        |bins| {
            bins.iter()
                .map(|c| 20.0 * (c.norm() + 1e-6).log10())
                .collect()
        },
    )
}

/// Spectrograms of target and prediction, one above the other.
pub fn plot_spectrograms(target: &[f32], prediction: &[f32], out: &Path) -> Result<()> {
    let t = spectrogram_db(target);
    let p = spectrogram_db(prediction);
    draw_png(out, (1000, 700), |root| {
        let (top, bottom) = root.split_vertically(350);
        heatmap(&top, "target (dB)", "bin", &t)?;
        heatmap(&bottom, "prediction (dB)", "bin", &p)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_as_png_files() {
        let dir = std::env::temp_dir().join(format!("ddsp-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sig: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        plot_spectrograms(&sig, &sig, &dir.join("spec.png")).unwrap();
        // A diverged prediction (NaN) still plots instead of panicking.
        plot_spectrograms(&sig, &[f32::NAN; 8000], &dir.join("nan.png")).unwrap();
        let snap = ControlSnapshot {
            step: 3,
            f0_hz: vec![220.0; 20],
            gain: (0..20).map(|i| i as f64 / 20.0).collect(),
            noise: vec![0.01; 20],
            entropy: vec![1.5; 20],
            distribution: vec![vec![0.5, 0.3, 0.2]; 20],
        };
        plot_controls(&snap, &dir.join("controls.png")).unwrap();
        plot_controls_compare(
            &[snap.clone(), ControlSnapshot { step: 9, ..snap }],
            &dir.join("cmp.png"),
        )
        .unwrap();
        std::fs::write(
            dir.join("train.csv"),
            "step,lr,total,spectral\n1,0.001,3.0,1.0\n2,0.001,2.0,0.5\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("val.csv"),
            "step,spectral_paper,f0_cents_median\n0,9.0,10\n2,5.0,8\n",
        )
        .unwrap();
        plot_losses(&dir, &dir.join("losses.png")).unwrap();
        for f in [
            "spec.png",
            "nan.png",
            "controls.png",
            "cmp.png",
            "losses.png",
        ] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            assert_eq!(&bytes[1..4], b"PNG", "{f} is a PNG");
            assert!(bytes.len() > 5000, "{f} has content");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

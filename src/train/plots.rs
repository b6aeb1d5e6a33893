//! PNG plots of a run, drawn natively with `plotters`: loss curves (raw and smoothed), control
//! statistics, control plots per step and across steps, and spectrograms of target vs
//! prediction with their axes in seconds and Hz. Each figure can be had as PNG bytes (the
//! report embeds them) or written to a file through a temporary name and a rename.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
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

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn = std::result::Result<(), Box<dyn std::error::Error>>;

/// Line colours (Tableau 10): distinct from each other, none too pale on white.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The colour of series `i` in every plot, as CSS hex (`#1f77b4`), for legends outside them.
pub fn color_hex(i: usize) -> String {
    let RGBColor(r, g, b) = color(i);
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Draw a figure of `size` pixels and encode it as PNG bytes.
pub fn png_bytes(size: (u32, u32), draw: impl FnOnce(&Area) -> Drawn) -> Result<Vec<u8>> {
    ensure_font();
    let encode = |e: &dyn std::fmt::Display| Error::Encode(format!("PNG plot: {e}"));
    let (w, h) = size;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| encode(&e))?;
        draw(&root).map_err(|e| encode(&e))?;
        root.present().map_err(|e| encode(&e))?;
    }
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Plots are mostly flat colour: the best compression keeps reports small.
    encoder.set_compression(png::Compression::Best);
    encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
    encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&rgb))
        .map_err(|e| encode(&e))?;
    Ok(bytes)
}

/// Write PNG bytes to `path` through a temporary file and a rename; a plotting error names
/// `path`.
fn write_png(path: &Path, bytes: Result<Vec<u8>>) -> Result<()> {
    let bytes = bytes.map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    crate::io::write_atomic(path, &bytes)
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

/// The range of the positive finite values, widened a little, for a log axis.
fn positive_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = finite_range(values.filter(|v| *v > 0.0));
    if lo <= 0.0 {
        return (0.1, 10.0);
    }
    if hi / lo < 1.5 {
        (lo / 1.25, hi * 1.25)
    } else {
        (lo / 1.05, hi * 1.05)
    }
}

/// An axis tick label: no trailing zeros (`100`, `0.25`), exponent notation below 0.001.
fn tick(v: &f64) -> String {
    if *v != 0.0 && v.abs() < 1e-3 {
        return format!("{v:.0e}");
    }
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// A named series of `(x, y)` points.
pub type Series = (String, Vec<(f64, f64)>);

/// The smoothing weight for a curve of `n` points: `1 - 100 / n` clamped to 0.6..=0.9, so the
/// moving average spans about 1% of the points (its time constant is `1 / (1 - w)` points),
/// between TensorBoard's default 0.6 for curves of up to 250 points and 0.9 (10 points) from
/// 1000 points on.
pub fn ema_weight(n: usize) -> f64 {
    (1.0 - 100.0 / n.max(1) as f64).clamp(0.6, 0.9)
}

/// TensorBoard's smoothing: an exponential moving average with weight `w`, debiased so that
/// early points are not pulled toward 0: `m_k = w m_{k-1} + (1 - w) y_k` from `m_0 = 0`, and
/// the smoothed value is `m_k / (1 - w^k)`, `k` counting the finite values so far. A
/// non-finite value is passed through and left out of the average.
pub fn smooth_ema(values: &[f64], w: f64) -> Vec<f64> {
    let (mut m, mut k) = (0.0, 0);
    values
        .iter()
        .map(|&y| {
            if !y.is_finite() {
                return y;
            }
            m = w * m + (1.0 - w) * y;
            k += 1;
            m / (1.0 - w.powi(k))
        })
        .collect()
}

/// What one panel of line plots shows.
struct Chart<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    log_y: bool,
    /// Each series drawn faint, with its [`smooth_ema`] on top (labelled).
    smooth: bool,
}

fn line_chart(area: &Area, c: &Chart, series: &[Series]) -> Drawn {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let usable = |y: f64| y.is_finite() && (!c.log_y || y > 0.0);
    if !points().any(|p| p.0.is_finite() && usable(p.1)) {
        area.titled(c.title, ("sans-serif", 18))?.draw(&Text::new(
            "not recorded",
            (area.dim_in_pixel().0 as i32 / 2 - 50, 60),
            ("sans-serif", 16),
        ))?;
        return Ok(());
    }
    let (x0, x1) = finite_range(points().map(|p| p.0));
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(c.title, ("sans-serif", 18))
        .margin(10)
        .margin_right(25)
        .x_label_area_size(40)
        .y_label_area_size(70);
    if c.log_y {
        let (y0, y1) = positive_range(points().map(|p| p.1));
        let chart = builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
        draw_lines(chart, c, series)
    } else {
        let (y0, y1) = finite_range(points().map(|p| p.1));
        let pad = (y1 - y0) * 0.05;
        let chart = builder.build_cartesian_2d(x0..x1, y0 - pad..y1 + pad)?;
        draw_lines(chart, c, series)
    }
}

fn draw_lines<'a, Y>(
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    c: &Chart,
    series: &[Series],
) -> Drawn
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(c.x_desc)
        .y_desc(c.y_desc)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    let usable = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!c.log_y || p.1 > 0.0);
    for (i, (name, points)) in series.iter().enumerate() {
        let color = color(i);
        let line: Vec<(f64, f64)> = if c.smooth {
            chart.draw_series(LineSeries::new(
                points.iter().copied().filter(usable),
                color.mix(0.25).stroke_width(1),
            ))?;
            let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
            let smoothed = smooth_ema(&ys, ema_weight(ys.len()));
            points.iter().zip(smoothed).map(|(p, y)| (p.0, y)).collect()
        } else {
            points.clone()
        };
        chart
            .draw_series(LineSeries::new(
                line.into_iter().filter(usable),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()?;
    Ok(())
}

/// How a heatmap's cell indices map onto an axis: cell `i` spans `start + i * step` to
/// `start + (i + 1) * step`, drawn within `range`.
#[derive(Clone, Copy)]
struct CellAxis<'a> {
    desc: &'a str,
    start: f64,
    step: f64,
    range: (f64, f64),
}

impl CellAxis<'_> {
    fn span(&self, i: usize) -> (f64, f64) {
        let a = self.start + i as f64 * self.step;
        let (lo, hi) = self.range;
        (a.clamp(lo, hi), (a + self.step).clamp(lo, hi))
    }
}

/// `values[x][y]` as coloured cells (viridis), colours spanning `lo..hi`.
fn heatmap(
    area: &Area,
    title: &str,
    (x, y): (CellAxis, CellAxis),
    values: &[Vec<f64>],
    (lo, hi): (f64, f64),
) -> Drawn {
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .margin_right(25)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x.range.0..x.range.1, y.range.0..y.range.1)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x.desc)
        .y_desc(y.desc)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style(("sans-serif", 15))
        .draw()?;
    chart.draw_series(values.iter().enumerate().flat_map(|(i, col)| {
        let (x0, x1) = x.span(i);
        col.iter().enumerate().map(move |(j, v)| {
            let (y0, y1) = y.span(j);
            // Non-finite cells (a diverged render) take the colour of the lowest value.
            let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
            let t = if t.is_finite() { t } else { 0.0 };
            Rectangle::new([(x0, y0), (x1, y1)], ViridisRGB::get_color(t).filled())
        })
    }))?;
    Ok(())
}

/// The columns of CSV file `path` as named series over its first column, skipping the
/// columns `skip` names; `None` when the file cannot be read (it does not exist).
pub fn read_csv_series(path: &Path, skip: &[&str]) -> Option<Vec<Series>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.trim().parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let series = header
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
            (h.to_string(), points)
        })
        .collect();
    Some(series)
}

/// The loss columns of a run's `logs/train.csv` and `logs/val.csv` (the learning rate, the
/// gradient norm and the validation metrics that are no loss left out), named by column.
#[derive(Clone, Debug, Default)]
pub struct LossLogs {
    /// `total` and every loss term per training step; `None` when `train.csv` is missing.
    pub train: Option<Vec<Series>>,
    /// `spectral_paper` per validation; `None` when `val.csv` is missing.
    pub val: Option<Vec<Series>>,
}

impl LossLogs {
    /// Read them from a run's `logs` folder.
    pub fn read(logs: &Path) -> LossLogs {
        let skip = [
            "lr",
            "grad_norm",
            "f0_cents_median",
            "loudness_l1_db",
            "f0_l1_cents",
            "outlier_ratio",
        ];
        LossLogs {
            train: read_csv_series(&logs.join("train.csv"), &skip),
            val: read_csv_series(&logs.join("val.csv"), &skip),
        }
    }

    /// The series of column `name` of the training or validation log.
    pub fn column(&self, val: bool, name: &str) -> Option<&Series> {
        let log = if val { &self.val } else { &self.train };
        log.as_ref()?.iter().find(|(n, _)| n == name)
    }
}

/// What a loss column of `train.csv` or `val.csv` measures, as a legend label. The spectral
/// loss comes in two terms (`crate::loss::SpectralTerms`), each summed over the FFT sizes:
/// `spectral` compares linear magnitudes, `logmag` their logarithms.
pub fn loss_label(column: &str) -> String {
    match column {
        "total" => "total (weighted sum of the terms)".into(),
        "spectral" => "spectral: linear-magnitude term".into(),
        "logmag" => "logmag: log-magnitude term".into(),
        "mse" => "mse: waveform squared error".into(),
        "loudness" => "loudness term".into(),
        "entropy" => "entropy regulariser".into(),
        "concentration" => "concentration regulariser".into(),
        "spectral_paper" => "spectral loss (magnitude + log-magnitude, L1, FFT 2048-64)".into(),
        other => other.into(),
    }
}

const VAL_TITLE: &str = "validation: the paper's multi-scale spectral loss";

fn labelled(series: &Option<Vec<Series>>) -> Vec<Series> {
    series
        .iter()
        .flatten()
        .map(|(n, p)| (loss_label(n), p.clone()))
        .collect()
}

/// The training panel above (`train_title`, smoothed), the validation panel below.
fn loss_panels(train_title: &str, train: &[Series], val: &[Series]) -> Result<Vec<u8>> {
    png_bytes((1000, 760), |root| {
        let (top, bottom) = root.split_vertically(400);
        let chart = |title, smooth| Chart {
            title,
            x_desc: "step",
            y_desc: "loss (log scale)",
            log_y: true,
            smooth,
        };
        let title = format!("{train_title}: faint every step, solid smoothed (EMA)");
        line_chart(&top, &chart(&title, true), train)?;
        line_chart(&bottom, &chart(VAL_TITLE, false), val)?;
        Ok(())
    })
}

/// One run's loss curves as PNG bytes: every training term (raw and smoothed) above, the
/// validation loss below.
pub fn loss_curves_png(logs: &LossLogs) -> Result<Vec<u8>> {
    loss_panels(
        "training loss",
        &labelled(&logs.train),
        &labelled(&logs.val),
    )
}

/// Several runs' loss curves overlaid, one colour per run: the training `total` (raw and
/// smoothed) above, the validation loss below.
pub fn loss_overlay_png(runs: &[(String, LossLogs)]) -> Result<Vec<u8>> {
    let pick = |val: bool, column: &str| -> Vec<Series> {
        runs.iter()
            .map(|(name, logs)| {
                let points = logs.column(val, column).map(|s| s.1.clone());
                (name.clone(), points.unwrap_or_default())
            })
            .collect()
    };
    loss_panels(
        "total training loss",
        &pick(false, "total"),
        &pick(true, "spectral_paper"),
    )
}

/// Loss curves from the run's `train.csv` and `val.csv` in `logs`, written to `out`.
pub fn plot_losses(logs: &Path, out: &Path) -> Result<()> {
    write_png(out, loss_curves_png(&LossLogs::read(logs)))
}

/// `logs/controls.csv` drawn: the harmonic distribution's entropy and top share, the
/// amplitudes, and the noise-to-harmonic ratio, over the steps; `None` before its first row.
pub fn control_stats_png(logs: &Path) -> Result<Option<Vec<u8>>> {
    let all = read_csv_series(&logs.join("controls.csv"), &[]).unwrap_or_default();
    if all.is_empty() {
        return Ok(None);
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
    let chart = |title, y_desc| Chart {
        title,
        x_desc: "step",
        y_desc,
        log_y: false,
        smooth: false,
    };
    png_bytes((1000, 900), |root| {
        let rows = root.split_evenly((3, 1));
        line_chart(
            &rows[0],
            &chart("harmonic distribution", "nats; share"),
            &shape,
        )?;
        line_chart(&rows[1], &chart("harmonic amplitudes", "amplitude"), &level)?;
        line_chart(&rows[2], &chart("noise to harmonic ratio", "dB"), &noise)?;
        Ok(())
    })
    .map(Some)
}

/// [`control_stats_png`] written to `out` (nothing before `controls.csv` has a row).
pub fn plot_control_stats(logs: &Path, out: &Path) -> Result<()> {
    match control_stats_png(logs) {
        Ok(None) => Ok(()),
        bytes => write_png(out, bytes.map(Option::unwrap_or_default)),
    }
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

fn over_frames(v: &[f64]) -> Vec<(f64, f64)> {
    v.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect()
}

fn frame_chart<'a>(title: &'a str, y_desc: &'a str) -> Chart<'a> {
    Chart {
        title,
        x_desc: "frame",
        y_desc,
        log_y: false,
        smooth: false,
    }
}

/// Per-step control plot: f0, gains and entropy over frames, and the harmonic distribution.
pub fn plot_controls(s: &ControlSnapshot, out: &Path) -> Result<()> {
    let bytes = png_bytes((1000, 1100), |root| {
        let parts = root.split_evenly((4, 1));
        let f0 = [("f0".to_string(), over_frames(&s.f0_hz))];
        let title = format!("step {}: f0", s.step);
        line_chart(&parts[0], &frame_chart(&title, "Hz"), &f0)?;
        let gains = [
            ("harmonic gain".to_string(), over_frames(&s.gain)),
            ("noise gain".to_string(), over_frames(&s.noise)),
        ];
        line_chart(&parts[1], &frame_chart("gains", "amplitude"), &gains)?;
        let entropy = [("entropy".to_string(), over_frames(&s.entropy))];
        line_chart(
            &parts[2],
            &frame_chart("harmonic entropy", "nats"),
            &entropy,
        )?;
        let log_dist: Vec<Vec<f64>> = s
            .distribution
            .iter()
            .map(|c| c.iter().map(|v| v.max(1e-6).log10()).collect())
            .collect();
        let harmonics = s.distribution.first().map_or(1, Vec::len);
        let axes = (
            CellAxis {
                desc: "frame",
                start: 0.0,
                step: 1.0,
                range: (0.0, s.distribution.len().max(1) as f64),
            },
            // Harmonic k (from 1) centred on k.
            CellAxis {
                desc: "harmonic",
                start: 0.5,
                step: 1.0,
                range: (0.5, harmonics as f64 + 0.5),
            },
        );
        let range = finite_range(log_dist.iter().flatten().copied());
        heatmap(
            &parts[3],
            "harmonic distribution (log10)",
            axes,
            &log_dist,
            range,
        )?;
        Ok(())
    });
    write_png(out, bytes)
}

/// Control evolution across steps: harmonic gain and entropy per frame, one line per step.
pub fn plot_controls_compare(snapshots: &[ControlSnapshot], out: &Path) -> Result<()> {
    let by = |f: fn(&ControlSnapshot) -> &Vec<f64>| -> Vec<Series> {
        snapshots
            .iter()
            .map(|s| (format!("step {}", s.step), over_frames(f(s))))
            .collect()
    };
    let bytes = png_bytes((1000, 700), |root| {
        let (top, bottom) = root.split_vertically(350);
        line_chart(
            &top,
            &frame_chart("harmonic gain across steps", "amplitude"),
            &by(|s| &s.gain),
        )?;
        line_chart(
            &bottom,
            &frame_chart("harmonic entropy across steps", "nats"),
            &by(|s| &s.entropy),
        )?;
        Ok(())
    });
    write_png(out, bytes)
}

/// FFT size of [`spectrogram_db`], samples.
pub const SPECTROGRAM_N_FFT: usize = 512;
/// Hop of [`spectrogram_db`], samples.
pub const SPECTROGRAM_HOP: usize = 128;
/// The dynamic range a spectrogram plot shows below its loudest cell, dB.
pub const SPECTROGRAM_RANGE_DB: f64 = 80.0;

/// Centre frequency of FFT bin `bin` of an `n_fft`-point FFT, Hz.
pub fn bin_hz(bin: usize, n_fft: usize, sample_rate: f64) -> f64 {
    bin as f64 * sample_rate / n_fft as f64
}

/// Time of the centre of frame `frame`, seconds, for frames of `n_fft` samples starting every
/// `hop` samples at sample 0 (as [`spectrogram_db`]'s).
pub fn frame_seconds(frame: usize, hop: usize, n_fft: usize, sample_rate: f64) -> f64 {
    (frame * hop) as f64 / sample_rate + n_fft as f64 / 2.0 / sample_rate
}

/// Log-magnitude spectrogram (dB), `[frame][bin]`: Hann frames of [`SPECTROGRAM_N_FFT`]
/// samples every [`SPECTROGRAM_HOP`] samples, frame `i` starting at sample `i * hop`.
pub fn spectrogram_db(audio: &[f32]) -> Vec<Vec<f64>> {
    let (n_fft, hop) = (SPECTROGRAM_N_FFT, SPECTROGRAM_HOP);
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

/// A spectrogram panel: time in seconds across, frequency in Hz up to Nyquist.
fn spectrogram_chart(
    area: &Area,
    title: &str,
    db: &[Vec<f64>],
    seconds: f64,
    sample_rate: f64,
    range: (f64, f64),
) -> Drawn {
    let (n_fft, hop) = (SPECTROGRAM_N_FFT, SPECTROGRAM_HOP);
    let time = CellAxis {
        desc: "time (s)",
        start: frame_seconds(0, hop, n_fft, sample_rate) - hop as f64 / 2.0 / sample_rate,
        step: hop as f64 / sample_rate,
        range: (0.0, seconds.max(1e-3)),
    };
    let bin = bin_hz(1, n_fft, sample_rate);
    let frequency = CellAxis {
        desc: "frequency (Hz)",
        start: -bin / 2.0,
        step: bin,
        range: (0.0, sample_rate / 2.0),
    };
    heatmap(area, title, (time, frequency), db, range)
}

/// Spectrograms of target and prediction at `sample_rate`, one above the other, in a figure
/// of `size` pixels; both share one colour scale, [`SPECTROGRAM_RANGE_DB`] below the loudest
/// cell of either.
pub fn spectrograms_png(
    target: &[f32],
    prediction: &[f32],
    sample_rate: f64,
    size: (u32, u32),
) -> Result<Vec<u8>> {
    let t = spectrogram_db(target);
    let p = spectrogram_db(prediction);
    let (_, hi) = finite_range(t.iter().chain(&p).flatten().copied());
    let range = (hi - SPECTROGRAM_RANGE_DB, hi);
    let seconds = target.len().max(prediction.len()) as f64 / sample_rate;
    png_bytes(size, |root| {
        let (top, bottom) = root.split_vertically(size.1 / 2);
        spectrogram_chart(&top, "target (dB)", &t, seconds, sample_rate, range)?;
        spectrogram_chart(&bottom, "prediction (dB)", &p, seconds, sample_rate, range)?;
        Ok(())
    })
}

/// [`spectrograms_png`] at 1000 x 700 written to `out`.
pub fn plot_spectrograms(
    target: &[f32],
    prediction: &[f32],
    sample_rate: f64,
    out: &Path,
) -> Result<()> {
    write_png(
        out,
        spectrograms_png(target, prediction, sample_rate, (1000, 700)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_as_png_files() {
        let dir = std::env::temp_dir().join(format!("ddsp-plots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sig: Vec<f32> = (0..8000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        plot_spectrograms(&sig, &sig, 16000.0, &dir.join("spec.png")).unwrap();
        // A diverged prediction (NaN) still plots instead of panicking.
        plot_spectrograms(&sig, &[f32::NAN; 8000], 16000.0, &dir.join("nan.png")).unwrap();
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
            "step,lr,total,spectral,logmag\n1,0.001,3.0,1.0,2.0\n2,0.001,2.0,0.5,1.5\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("val.csv"),
            "step,spectral_paper,f0_cents_median\n0,9.0,10\n2,5.0,8\n",
        )
        .unwrap();
        plot_losses(&dir, &dir.join("losses.png")).unwrap();
        std::fs::write(
            dir.join("controls.csv"),
            "step,harmonic_entropy,top_harmonic_share\n1,2.0,0.3\n5,1.5,0.4\n",
        )
        .unwrap();
        plot_control_stats(&dir, &dir.join("stats.png")).unwrap();
        for f in [
            "spec.png",
            "nan.png",
            "controls.png",
            "cmp.png",
            "losses.png",
            "stats.png",
        ] {
            let bytes = std::fs::read(dir.join(f)).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{f} is a PNG");
            assert!(bytes.len() > 5000, "{f} has content");
        }
        // No temporary file is left beside them.
        crate::testing::assert_no_temp_files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loss_logs_keep_the_loss_columns_and_labels_say_what_each_term_is() {
        let dir = std::env::temp_dir().join(format!("ddsp-losslogs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("train.csv"),
            "step,lr,total,spectral,logmag,grad_norm\n1,0.1,3,1,2,9\n2,0.1,2,0.5,1.5,8\n",
        )
        .unwrap();
        let logs = LossLogs::read(&dir);
        let names: Vec<&str> = logs
            .train
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.0.as_str())
            .collect();
        assert_eq!(names, ["total", "spectral", "logmag"]);
        assert_eq!(
            logs.column(false, "logmag").unwrap().1,
            [(1.0, 2.0), (2.0, 1.5)]
        );
        assert!(logs.val.is_none(), "no val.csv: not recorded");
        assert_eq!(loss_label("spectral"), "spectral: linear-magnitude term");
        assert_eq!(loss_label("logmag"), "logmag: log-magnitude term");
        assert_eq!(loss_label("something_new"), "something_new");
        // A figure is still drawn without validation rows, and without any rows at all.
        for logs in [logs, LossLogs::default()] {
            let png = loss_curves_png(&logs).unwrap();
            assert_eq!(&png[1..4], b"PNG");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The EMA against the formula worked by hand: w = 0.6, y = 1, 2, 4.
    /// m1 = 0.4, debias 1 - 0.6 = 0.4: 1.0.
    /// m2 = 0.6 * 0.4 + 0.4 * 2 = 1.04, debias 1 - 0.36 = 0.64: 1.625.
    /// m3 = 0.6 * 1.04 + 0.4 * 4 = 2.224, debias 1 - 0.216 = 0.784: 2.836734...
    #[test]
    fn ema_smoothing_matches_the_formula_by_hand() {
        let s = smooth_ema(&[1.0, 2.0, 4.0], 0.6);
        let want = [1.0, 1.625, 2.224 / 0.784];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{s:?} vs {want:?}");
        }
        // A NaN passes through and does not count: the next value continues from 1.625
        // with k = 3, as if the NaN were not there.
        let s = smooth_ema(&[1.0, 2.0, f64::NAN, 4.0], 0.6);
        assert!(s[2].is_nan());
        assert!((s[3] - 2.224 / 0.784).abs() < 1e-12);
        // A constant curve stays constant (the debias undoes the start at 0).
        assert!(
            smooth_ema(&[5.0; 7], 0.9)
                .iter()
                .all(|v| (v - 5.0).abs() < 1e-12)
        );
        // The weight: 0.6 up to 250 points, 1 - 100/n between, 0.9 from 1000.
        assert_eq!(ema_weight(0), 0.6);
        assert_eq!(ema_weight(20), 0.6);
        assert_eq!(ema_weight(250), 0.6);
        assert!((ema_weight(500) - 0.8).abs() < 1e-12);
        assert_eq!(ema_weight(1000), 0.9);
        assert_eq!(ema_weight(100_000), 0.9);
    }

    #[test]
    fn spectrogram_axes_map_bins_to_hz_and_frames_to_seconds() {
        // 512-point FFT at 16 kHz: 31.25 Hz per bin, bin 256 is Nyquist.
        assert_eq!(bin_hz(0, 512, 16000.0), 0.0);
        assert_eq!(bin_hz(1, 512, 16000.0), 31.25);
        assert_eq!(bin_hz(256, 512, 16000.0), 8000.0);
        assert_eq!(bin_hz(100, 2048, 48000.0), 2343.75);
        // Frame i starts at i * 128 samples; its centre is 256 samples later.
        assert_eq!(frame_seconds(0, 128, 512, 16000.0), 0.016);
        assert_eq!(
            frame_seconds(10, 128, 512, 16000.0),
            (1280.0 + 256.0) / 16000.0
        );
        // A 440 Hz sine peaks in the bin nearest 440 Hz (bin 14: 437.5 Hz).
        let sr = 16000.0;
        let sine: Vec<f32> = (0..4096)
            .map(|i| (2.0 * std::f64::consts::PI * 440.0 * i as f64 / sr).sin() as f32)
            .collect();
        let db = spectrogram_db(&sine);
        assert_eq!(db.len(), (4096 - 512) / 128 + 1);
        let peak = (0..db[3].len())
            .max_by(|&a, &b| db[3][a].total_cmp(&db[3][b]))
            .unwrap();
        assert!((bin_hz(peak, SPECTROGRAM_N_FFT, sr) - 440.0).abs() <= 31.25 / 2.0);
    }
}

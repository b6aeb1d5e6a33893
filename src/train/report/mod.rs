//! `ddspe2e report`: one self-contained HTML page about one or more runs, to look at rather
//! than to parse. It shows each run's summary, loss curves (several runs also overlaid in one
//! plot), validation metrics, control statistics, spectrograms and audio players for the
//! renders of a few checkpoints, `eval` metrics and the configuration (settings that differ
//! between runs highlighted). Images are PNGs and audio 16-bit WAVs, both embedded as base64
//! `data:` URIs; the style sheet is inline: the page loads nothing else and can be mailed or
//! archived as it is. A part a run does not have is shown as "not recorded".

mod html;
mod run;

use std::path::{Path, PathBuf};

use super::plots;
use crate::error::{Error, Result};
use run::{Part, RenderStep, RunData};

/// Rendered steps embedded per run: the first, the last and evenly spaced ones between.
pub const MAX_RENDER_STEPS: usize = 4;
/// Clips embedded per rendered step (the first by name).
pub const CLIPS_PER_STEP: usize = 1;
/// Size of the embedded spectrogram figures, pixels.
const SPECTROGRAM_SIZE: (u32, u32) = (900, 600);

/// Where `report` writes by default: `RUN/report.html` for a single run; `None` for several
/// (the caller must choose).
pub fn default_output(runs: &[PathBuf]) -> Option<PathBuf> {
    match runs {
        [run] => Some(run.join("report.html")),
        _ => None,
    }
}

/// Write the report on `runs` to `out` (default [`default_output`]) atomically, and return
/// its path. Errors name a `RUN` that is no run directory.
pub fn write_report(runs: &[PathBuf], out: Option<&Path>) -> Result<PathBuf> {
    let out = match out {
        Some(out) => out.to_path_buf(),
        None => default_output(runs).ok_or_else(|| {
            Error::Config("a report on several runs needs an output file (--out FILE)".into())
        })?,
    };
    let html = report_html(runs)?;
    crate::io::write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

/// The report on `runs` as one HTML page.
pub fn report_html(runs: &[PathBuf]) -> Result<String> {
    if runs.is_empty() {
        return Err(Error::Config("a report needs at least one run".into()));
    }
    let data = runs
        .iter()
        .map(|dir| RunData::read(dir))
        .collect::<Result<Vec<_>>>()?;
    let names = display_names(runs);
    let page = Page {
        runs: names.into_iter().zip(data).collect(),
    };
    page.html()
}

/// Each run's folder name, or its whole path where two runs share a folder name.
fn display_names(runs: &[PathBuf]) -> Vec<String> {
    let base = |p: &PathBuf| {
        p.file_name()
            .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
    };
    let names: Vec<String> = runs.iter().map(base).collect();
    runs.iter()
        .zip(&names)
        .map(|(p, n)| {
            if names.iter().filter(|m| *m == n).count() > 1 {
                p.display().to_string()
            } else {
                n.clone()
            }
        })
        .collect()
}

/// `k` indices out of `0..n`: all of them when `n <= k`, else the first, the last and evenly
/// spaced ones between.
pub fn pick_evenly(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    if k <= 1 {
        return vec![n - 1];
    }
    let mut picked: Vec<usize> = (0..k)
        .map(|i| ((i * (n - 1)) as f64 / (k - 1) as f64).round() as usize)
        .collect();
    picked.dedup();
    picked
}

struct Page {
    runs: Vec<(String, RunData)>,
}

/// `(section id, heading)` in page order.
const SECTIONS: [(&str, &str); 7] = [
    ("summary", "Runs"),
    ("losses", "Loss curves"),
    ("validation", "Validation metrics"),
    ("controls", "Control statistics"),
    ("renders", "Renders"),
    ("eval", "Evaluation"),
    ("config", "Configuration"),
];

impl Page {
    /// The page. Each section gives its lead paragraph (static HTML, no run data) and its
    /// content.
    fn html(&self) -> Result<String> {
        let names: Vec<&str> = self.runs.iter().map(|(n, _)| n.as_str()).collect();
        let title = format!("ddsp report: {}", names.join(", "));
        let mut body = String::new();
        for (id, heading) in SECTIONS {
            let (lead, content) = match id {
                "summary" => (String::new(), self.summary()),
                "losses" => self.losses()?,
                "validation" => self.validation(),
                "controls" => self.controls()?,
                "renders" => self.renders()?,
                "eval" => self.evals(),
                _ => self.config(),
            };
            body.push_str(&format!(
                "<section id=\"{id}\"><h2>{heading}</h2>{}{content}</section>\n",
                if lead.is_empty() {
                    String::new()
                } else {
                    format!("<p class=\"lead\">{lead}</p>")
                }
            ));
        }
        let nav: String = SECTIONS
            .iter()
            .map(|(id, heading)| format!("<a href=\"#{id}\">{heading}</a>"))
            .collect();
        let dirs: Vec<String> = self
            .runs
            .iter()
            .map(|(_, r)| r.dir.display().to_string())
            .collect();
        Ok(format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{}</style></head><body>\
             <header><h1>{}</h1><p>{}</p><nav>{nav}</nav></header><main>\n{body}</main>\
             <footer class=\"note\" style=\"padding:0 32px 24px\">Written by ddsp {} \
             (ddspe2e report).</footer></body></html>\n",
            html::escape(&title),
            html::STYLE,
            html::escape(&title),
            html::escape(&dirs.join(" · ")),
            env!("CARGO_PKG_VERSION"),
        ))
    }

    /// One column per run, each headed by the run's name and plot colour (no heading for a
    /// single run).
    fn columns(&self, mut cell: impl FnMut(&RunData) -> Result<String>) -> Result<String> {
        let mut html = format!(
            "<div class=\"runs\" style=\"--columns:{}\">",
            self.runs.len()
        );
        for (i, (name, run)) in self.runs.iter().enumerate() {
            html.push_str("<div class=\"run\">");
            if self.runs.len() > 1 {
                html.push_str(&format!(
                    "<h3><span class=\"swatch\" style=\"background:{}\"></span>{}</h3>",
                    plots::color_hex(i),
                    html::escape(name)
                ));
            }
            html.push_str(&cell(run)?);
            html.push_str("</div>");
        }
        html.push_str("</div>");
        Ok(html)
    }

    /// A table with a row per `(label, value per run)`; rows whose values differ between runs
    /// are highlighted when `highlight`.
    fn runs_table(&self, rows: Vec<(String, Vec<String>)>, highlight: bool) -> String {
        let mut header = vec![String::new()];
        header.extend(self.runs.iter().map(|(n, _)| n.clone()));
        if self.runs.len() == 1 {
            header[1] = String::new();
        }
        let rows: Vec<(String, Vec<String>)> = rows
            .into_iter()
            .map(|(label, values)| {
                let differs = highlight && values.iter().any(|v| *v != values[0]);
                let mut cells = vec![format!("<th>{}</th>", html::escape(&label))];
                cells.extend(values.iter().map(|v| html::cell(v)));
                (if differs { "differs" } else { "" }.to_string(), cells)
            })
            .collect();
        html::table(&header, &rows)
    }

    fn summary(&self) -> String {
        let meta = |f: &dyn Fn(&super::RunMeta) -> String| -> Vec<String> {
            self.runs
                .iter()
                .map(|(_, r)| match &r.meta {
                    Part::Found(m) => f(m),
                    Part::Missing => "not recorded".into(),
                    Part::Unreadable(_) => "unreadable".into(),
                })
                .collect()
        };
        let dirs = self
            .runs
            .iter()
            .map(|(_, r)| r.dir.display().to_string())
            .collect();
        let rows = vec![
            ("directory".to_string(), dirs),
            ("status".into(), meta(&|m| String::from(m.status.clone()))),
            (
                "steps".into(),
                meta(&|m| format!("{} of {}", m.steps, m.steps_requested)),
            ),
            (
                "best validation loss".into(),
                meta(&|m| match (m.best_val_loss, m.best_step) {
                    (Some(v), Some(s)) => format!("{} at step {s}", html::number(v)),
                    (Some(v), None) => html::number(v),
                    _ => "none yet".into(),
                }),
            ),
            ("started (UTC)".into(), meta(&|m| utc(m.started_unix))),
            (
                "training time".into(),
                meta(&|m| match m.ended_unix {
                    Some(end) => duration(end.saturating_sub(m.started_unix)),
                    None => "not finished".into(),
                }),
            ),
            ("device".into(), meta(&|m| m.device.clone())),
            ("cache".into(), meta(&|m| m.cache.clone())),
            (
                "skipped steps".into(),
                meta(&|m| m.skipped_steps.to_string()),
            ),
            ("ddsp version".into(), meta(&|m| m.crate_version.clone())),
        ];
        let mut html = self.runs_table(rows, false);
        for (name, run) in &self.runs {
            if let Part::Unreadable(why) = &run.meta {
                html.push_str(&html::unreadable(&format!("{name}'s run metadata"), why));
            }
        }
        html
    }

    fn losses(&self) -> Result<(String, String)> {
        let lead = "Training losses per step from logs/train.csv, drawn faint, with a \
                    TensorBoard-style smoothed line (an exponential moving average, debiased) \
                    on top. The spectral loss is two terms, each summed over the FFT sizes: \
                    <code>spectral</code> compares linear magnitudes, <code>logmag</code> log magnitudes; <code>total</code> is \
                    their weighted sum with any other terms. Validation (logs/val.csv) is the \
                    paper's multi-scale spectral loss on the validation chunks, whatever the \
                    training objective.";
        let mut html = String::new();
        if self.runs.len() > 1 {
            let logs: Vec<(String, plots::LossLogs)> = self
                .runs
                .iter()
                .map(|(n, r)| (n.clone(), r.losses.clone()))
                .collect();
            html.push_str("<h4>All runs: total training loss and validation loss</h4>");
            html.push_str(&html::png(
                &plots::loss_overlay_png(&logs)?,
                "loss curves of all runs",
            ));
            html.push_str("<h4>Each run's loss terms</h4>");
        }
        html.push_str(&self.columns(|run| {
            let mut cell = String::new();
            if run.losses.train.is_none() {
                cell.push_str(&html::not_recorded("training losses (logs/train.csv)"));
            }
            if run.losses.val.is_none() {
                cell.push_str(&html::not_recorded("validation (logs/val.csv)"));
            }
            if run.losses.train.is_some() || run.losses.val.is_some() {
                cell.push_str(&html::png(
                    &plots::loss_curves_png(&run.losses)?,
                    "loss curves",
                ));
            }
            Ok(cell)
        })?);
        Ok((lead.into(), html))
    }

    fn validation(&self) -> (String, String) {
        let lead = "magenta's resynthesis metrics on the validation chunks, at the first, the \
                    best (lowest spectral loss) and the last validation.";
        let html = self.columns(|run| Ok(validation_table(run.val.as_deref())));
        (lead.into(), html.unwrap_or_default())
    }

    fn controls(&self) -> Result<(String, String)> {
        let lead = "What the decoder outputs (logs/controls.csv, on the first step and every \
                    logEvery-th): the harmonic distribution's entropy and top-harmonic share, \
                    the harmonic amplitudes, and the noise-to-harmonic ratio.";
        let html = self.columns(|run| {
            let logs = run.dir.join("logs");
            let stored = logs.join("control_stats.png");
            let mut cell = String::new();
            match (&run.controls, plots::control_stats_png(&logs)?) {
                (Some(series), Some(png)) => {
                    cell.push_str(&html::png(&png, "control statistics"));
                    cell.push_str(&last_row_table(series));
                }
                _ if stored.is_file() => match crate::io::read_regular(&stored) {
                    Ok(png) => cell.push_str(&html::png(&png, "control statistics")),
                    Err(e) => cell.push_str(&html::unreadable(
                        &stored.display().to_string(),
                        &e.to_string(),
                    )),
                },
                _ => cell.push_str(&html::not_recorded(
                    "control statistics (no logs/controls.csv: a dry run, a run from before \
                     they were logged, or one stopped before its first step)",
                )),
            }
            Ok(cell)
        })?;
        Ok((lead.into(), html))
    }

    fn renders(&self) -> Result<(String, String)> {
        let lead = format!(
            "Fixed validation chunks rendered at checkpoints (renders/step_N/): spectrograms \
             of the target above the model's prediction, and players for both. Up to \
             {MAX_RENDER_STEPS} steps and {CLIPS_PER_STEP} clip per step are embedded, to keep \
             this page small; the rest stay in the run's renders folder."
        );
        let html = self.columns(|run| Ok(renders_cell(run)))?;
        Ok((lead, html))
    }

    fn evals(&self) -> (String, String) {
        let lead = "Summaries of <code>ddspe2e eval</code> (eval/*/metrics.json).";
        let html = self.columns(|run| {
            if run.evals.is_empty() {
                return Ok(html::not_recorded(
                    "evaluations (no eval/*/metrics.json: ddspe2e eval --run RUN writes one)",
                ));
            }
            let mut cell = String::new();
            for eval in &run.evals {
                match eval {
                    Part::Found(e) => {
                        cell.push_str(&format!("<h4>{}</h4>", html::escape(&e.name)));
                        cell.push_str(&html::note(&e.what));
                        let rows = e
                            .summary
                            .iter()
                            .map(|(k, v)| {
                                let head = format!("<th>{}</th>", html::escape(k));
                                (String::new(), vec![head, html::num_cell(v)])
                            })
                            .collect::<Vec<_>>();
                        cell.push_str(&html::table(&["metric".into(), "value".into()], &rows));
                    }
                    Part::Unreadable(why) => cell.push_str(&html::unreadable("an evaluation", why)),
                    Part::Missing => {}
                }
            }
            Ok(cell)
        });
        (lead.into(), html.unwrap_or_default())
    }

    fn config(&self) -> (String, String) {
        let mut keys: Vec<&str> = Vec::new();
        for (_, run) in &self.runs {
            if let Part::Found(config) = &run.config {
                for (k, _) in config {
                    if !keys.contains(&k.as_str()) {
                        keys.push(k);
                    }
                }
            }
        }
        let mut html = String::new();
        for (name, run) in &self.runs {
            match &run.config {
                Part::Missing => html.push_str(&html::not_recorded(&format!(
                    "{name}'s configuration (resolved_config.json)"
                ))),
                Part::Unreadable(why) => {
                    html.push_str(&html::unreadable(&format!("{name}'s configuration"), why))
                }
                Part::Found(_) => {}
            }
        }
        if keys.is_empty() {
            return ("resolved_config.json of each run.".into(), html);
        }
        let rows: Vec<(String, Vec<String>)> = keys
            .iter()
            .map(|key| {
                let values = self
                    .runs
                    .iter()
                    .map(|(_, run)| match &run.config {
                        Part::Found(c) => c
                            .iter()
                            .find(|(k, _)| k == key)
                            .map_or_else(|| "—".to_string(), |(_, v)| v.clone()),
                        _ => "—".to_string(),
                    })
                    .collect();
                (key.to_string(), values)
            })
            .collect();
        if self.runs.len() == 1 {
            // Three tables side by side: a long list of short rows.
            let per = rows.len().div_ceil(3);
            html.push_str("<div class=\"runs\" style=\"--columns:3\">");
            for chunk in rows.chunks(per) {
                let table = self.runs_table(chunk.to_vec(), false);
                html.push_str(&format!(
                    "<div>{}</div>",
                    table.replacen("<table>", "<table class=\"fill\">", 1)
                ));
            }
            html.push_str("</div>");
            return (
                "resolved_config.json: every setting of the run.".into(),
                html,
            );
        }
        let differing: Vec<(String, Vec<String>)> = rows
            .iter()
            .filter(|(_, v)| v.iter().any(|x| *x != v[0]))
            .cloned()
            .collect();
        if differing.is_empty() {
            html.push_str(&html::note("All runs have the same settings."));
        } else {
            html.push_str(&format!(
                "<h4>{} differ{}</h4>",
                plural(differing.len(), "setting"),
                if differing.len() == 1 { "s" } else { "" }
            ));
            html.push_str(&format!(
                "<div class=\"wide\">{}</div>",
                self.runs_table(differing, true)
            ));
        }
        html.push_str(&format!(
            "<details><summary>All {} settings (differences highlighted)</summary>\
             <div class=\"wide\">{}</div></details>",
            rows.len(),
            self.runs_table(rows, true)
        ));
        ("resolved_config.json of each run.".into(), html)
    }
}

/// What a column of `val.csv` measures.
fn val_label(column: &str) -> String {
    match column {
        "spectral_paper" => "spectral loss".into(),
        "loudness_l1_db" => "loudness L1 (dB)".into(),
        "f0_l1_cents" => "f0 L1 (cents)".into(),
        "f0_cents_median" => "f0 median distance (cents)".into(),
        "outlier_ratio" => "f0 outlier ratio".into(),
        other => other.into(),
    }
}

/// The first, best and last rows of `val.csv`.
fn validation_table(val: Option<&[plots::Series]>) -> String {
    let Some(val) = val.filter(|v| v.first().is_some_and(|s| !s.1.is_empty())) else {
        return html::not_recorded("validation (logs/val.csv)");
    };
    let loss = &val[0].1;
    let best = (0..loss.len())
        .filter(|&i| loss[i].1.is_finite())
        .min_by(|&a, &b| loss[a].1.total_cmp(&loss[b].1))
        .unwrap_or(0);
    let picks = [("first", 0), ("best", best), ("last", loss.len() - 1)];
    let mut header = vec!["metric".to_string()];
    header.extend(
        picks
            .iter()
            .map(|(what, i)| format!("{what} (step {})", loss[*i].0)),
    );
    let rows: Vec<(String, Vec<String>)> = val
        .iter()
        .map(|(name, points)| {
            let mut cells = vec![format!("<th>{}</th>", html::escape(&val_label(name)))];
            cells.extend(picks.iter().map(|(_, i)| {
                html::num_cell(&points.get(*i).map_or("—".into(), |p| html::number(p.1)))
            }));
            (String::new(), cells)
        })
        .collect();
    html::table(&header, &rows)
}

/// The last row of a CSV log, one table row per column.
fn last_row_table(series: &[plots::Series]) -> String {
    let step = series
        .first()
        .and_then(|s| s.1.last())
        .map_or(String::new(), |p| format!(" (step {})", p.0));
    let rows: Vec<(String, Vec<String>)> = series
        .iter()
        .filter_map(|(name, points)| {
            let v = points.last()?.1;
            let head = format!("<th>{}</th>", html::escape(name));
            Some((String::new(), vec![head, html::num_cell(&html::number(v))]))
        })
        .collect();
    html::table(&["statistic".into(), format!("last{step}")], &rows)
}

/// The renders of one run: the embedded steps' spectrograms and players.
fn renders_cell(run: &RunData) -> String {
    let steps: Vec<&RenderStep> = match &run.renders {
        Part::Found(steps) => steps.iter().filter(|s| !s.clips.is_empty()).collect(),
        Part::Unreadable(why) => return html::unreadable("renders", why),
        Part::Missing => Vec::new(),
    };
    if steps.is_empty() {
        return html::not_recorded("renders (no renders/step_N/ with target and prediction WAVs)");
    }
    let shown: Vec<&RenderStep> = pick_evenly(steps.len(), MAX_RENDER_STEPS)
        .into_iter()
        .map(|i| steps[i])
        .collect();
    let clips: Vec<&String> = shown[shown.len() - 1]
        .clips
        .iter()
        .take(CLIPS_PER_STEP)
        .collect();
    let most_clips = steps.iter().map(|s| s.clips.len()).max().unwrap_or(0);
    let mut html = String::new();
    let step_list: Vec<String> = shown.iter().map(|s| s.step.to_string()).collect();
    let mut left_out = Vec::new();
    if shown.len() < steps.len() {
        left_out.push(format!(
            "steps {} of the {} rendered",
            step_list.join(", "),
            steps.len()
        ));
    }
    if most_clips > clips.len() {
        left_out.push(format!("{} of {most_clips} clips per step", clips.len()));
    }
    if !left_out.is_empty() {
        html.push_str(&html::note(&format!(
            "Shown: {}; the others are in {}.",
            left_out.join("; "),
            run.dir.join("renders").display()
        )));
    }
    for clip in clips {
        // The validation chunks are fixed: a target the same at every step plays once.
        let targets: Vec<Result<crate::features::audio::Decoded>> = shown
            .iter()
            .map(|s| crate::features::audio::read_audio(&s.wav(clip, "target")))
            .collect();
        let same_target = targets
            .iter()
            .all(|t| matches!((t, &targets[0]), (Ok(a), Ok(b)) if a.samples == b.samples));
        if same_target && shown.len() > 1 {
            html.push_str(&format!(
                "<h4>clip {}: target (the same at every step)</h4>",
                html::escape(clip)
            ));
            html.push_str(&player("target", &targets[0]));
        }
        html.push_str("<div class=\"steps\">");
        for (step, target) in shown.iter().zip(&targets) {
            html.push_str(&format!(
                "<div><h4>step {}, clip {}</h4>",
                step.step,
                html::escape(clip)
            ));
            let prediction = crate::features::audio::read_audio(&step.wav(clip, "prediction"));
            match (target, &prediction) {
                (Ok(t), Ok(p)) => match plots::spectrograms_png(
                    &t.samples,
                    &p.samples,
                    t.sample_rate as f64,
                    SPECTROGRAM_SIZE,
                ) {
                    Ok(png) => html.push_str(&html::png(
                        &png,
                        &format!("spectrograms at step {}", step.step),
                    )),
                    Err(e) => html.push_str(&html::unreadable("the spectrogram", &e.to_string())),
                },
                (Err(e), _) | (_, Err(e)) => {
                    html.push_str(&html::unreadable("a render", &e.to_string()))
                }
            }
            if !(same_target && shown.len() > 1) {
                html.push_str(&player("target", target));
            }
            html.push_str(&player("prediction", &prediction));
            html.push_str("</div>");
        }
        html.push_str("</div>");
    }
    html
}

/// A player for decoded audio, re-encoded as 16-bit WAV; or why there is none.
fn player(label: &str, audio: &Result<crate::features::audio::Decoded>) -> String {
    let wav = audio.as_ref().map_err(|e| e.to_string()).and_then(|a| {
        crate::features::audio::wav_bytes_16bit(&a.samples, a.sample_rate)
            .map_err(|e| e.to_string())
    });
    match wav {
        Ok(wav) => html::wav_player(label, &wav),
        Err(why) => html::unreadable(label, &why),
    }
}

/// `1 setting`, `2 settings`.
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `YYYY-MM-DD HH:MM` of a Unix time.
fn utc(secs: u64) -> String {
    let [y, m, d, h, min, _] = super::utc_fields(secs);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{min:02}")
}

/// `1 h 02 min`, `3 min 05 s`, `12 s`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs / 60 % 60),
    }
}

#[cfg(test)]
mod tests;

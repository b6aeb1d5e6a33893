//! The HTML pieces of a report: escaping, embedded images and audio (base64 `data:` URIs),
//! tables, and the page's style sheet. Nothing here refers to anything outside the page.

use base64::Engine;

/// `text` with `&`, `<`, `>`, `"` and `'` escaped, for element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `bytes` as a `data:` URI of type `mime`, base64-encoded.
pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// A PNG image, embedded.
pub fn png(bytes: &[u8], alt: &str) -> String {
    format!(
        "<img src=\"{}\" alt=\"{}\">",
        data_uri("image/png", bytes),
        escape(alt)
    )
}

/// An audio player for a WAV file, embedded, with a label before it.
pub fn wav_player(label: &str, wav: &[u8]) -> String {
    format!(
        "<div class=\"clip\"><span>{}</span><audio controls preload=\"metadata\" src=\"{}\"></audio></div>",
        escape(label),
        data_uri("audio/wav", wav)
    )
}

/// A paragraph saying that `what` was not recorded (in grey).
pub fn not_recorded(what: &str) -> String {
    format!("<p class=\"missing\">not recorded: {}</p>", escape(what))
}

/// A paragraph saying that `what` could not be read, and why.
pub fn unreadable(what: &str, why: &str) -> String {
    format!(
        "<p class=\"missing\">could not read {}: {}</p>",
        escape(what),
        escape(why)
    )
}

/// A small note (grey, smaller type).
pub fn note(text: &str) -> String {
    format!("<p class=\"note\">{}</p>", escape(text))
}

/// A table cell holding `text` (escaped).
pub fn cell(text: &str) -> String {
    format!("<td>{}</td>", escape(text))
}

/// A table cell holding a number's text, right-aligned.
pub fn num_cell(text: &str) -> String {
    format!("<td class=\"num\">{}</td>", escape(text))
}

/// A table with a header row (none when every heading is empty); `rows` are `(class, cells)` with cells from [`cell`] (or
/// `<th>`s), `class` empty or a CSS class for the row.
pub fn table(header: &[String], rows: &[(String, Vec<String>)]) -> String {
    let mut html = String::from("<table>");
    if header.iter().any(|h| !h.is_empty()) {
        html.push_str("<thead><tr>");
        for h in header {
            html.push_str(&format!("<th>{}</th>", escape(h)));
        }
        html.push_str("</tr></thead>");
    }
    html.push_str("<tbody>");
    for (class, cells) in rows {
        if class.is_empty() {
            html.push_str("<tr>");
        } else {
            html.push_str(&format!("<tr class=\"{}\">", escape(class)));
        }
        html.push_str(&cells.concat());
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    html
}

/// A number with about four significant digits (whole numbers as they are), no exponent for
/// everyday magnitudes.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e7) {
        return format!("{v:.3e}");
    }
    let digits = if v.fract() == 0.0 {
        0
    } else {
        (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize
    };
    format!("{v:.digits$}")
}

/// The page's style sheet (inline: the page needs no other file).
pub const STYLE: &str = r#"
:root { --ink: #1d2330; --muted: #6b7180; --line: #e3e6ec; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f8; color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { background: var(--ink); color: #fff; padding: 22px 32px 18px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 600; }
header p { margin: 0; color: #c9cedb; }
nav { margin-top: 10px; }
nav a { color: #9ec5ff; margin-right: 16px; text-decoration: none; font-size: 14px; }
main { padding: 4px 32px 48px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px;
  padding: 18px 22px 20px; margin: 22px 0; }
section > h2 { margin: 0 0 6px; font-size: 20px; font-weight: 600; }
section > p.lead { margin: 0 0 14px; color: var(--muted); font-size: 14px; }
.runs { display: grid; grid-template-columns: repeat(var(--columns), minmax(0, 1fr)); gap: 22px; }
.run > h3 { margin: 4px 0 10px; font-size: 16px; font-weight: 600; display: flex;
  align-items: center; gap: 8px; }
.swatch { width: 14px; height: 14px; border-radius: 3px; display: inline-block; }
h4 { margin: 16px 0 6px; font-size: 14px; font-weight: 600; }
img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line);
  border-radius: 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 10px; }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
thead th { background: #f0f2f6; font-weight: 600; }
tbody th { font-weight: 500; color: #3a4150; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td { overflow-wrap: anywhere; }
table.fill { width: 100%; }
.steps { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr));
  gap: 6px 22px; }
tr.differs td, tr.differs th { background: #fff3cd; }
.missing { color: var(--muted); font-style: italic; margin: 6px 0; }
.note { color: var(--muted); font-size: 13px; margin: 6px 0; }
.clip { display: grid; grid-template-columns: 92px 1fr; align-items: center; gap: 10px;
  margin: 4px 0; font-size: 13px; color: #3a4150; }
audio { width: 100%; height: 34px; }
details summary { cursor: pointer; color: #2b5fb4; margin: 8px 0; }
.wide { overflow-x: auto; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; background: #f0f2f6;
  padding: 0 3px; border-radius: 3px; }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_numbers_keep_four_digits() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(number(0.0), "0");
        assert_eq!(number(5.2279468), "5.228");
        assert_eq!(number(33.5593), "33.56");
        assert_eq!(number(1234.6), "1235");
        assert_eq!(number(0.0811235), "0.08112");
        assert_eq!(number(0.00001), "1.000e-5");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(
            data_uri("text/plain", b"hi!"),
            "data:text/plain;base64,aGkh"
        );
        assert_eq!(number(9.0), "9");
        assert_eq!(number(-50.0), "-50");
        assert_eq!(num_cell("1.5"), "<td class=\"num\">1.5</td>");
        assert_eq!(cell("a<b"), "<td>a&lt;b</td>");
    }
}

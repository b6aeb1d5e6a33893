//! Every config key as a command-line flag: names, aliases, value parsing and precedence.

use serde_json::{Map, Value};
use std::path::Path;

use super::{Config, HarmonicHeadMode};
use crate::error::{Error, Result};

/// Command-line spellings of the original tool that are not the kebab form of a key.
const FLAG_ALIASES: &[(&str, &str)] = &[
    ("clip-mode", "gradClipMode"),
    ("loudness-weight", "loudnessLossWeight"),
    ("loudness-weight-end", "loudnessLossWeightEnd"),
    ("loudness-warmup-steps", "loudnessLossWarmupSteps"),
    ("loudness-ramp-steps", "loudnessLossRampSteps"),
];

/// `sampleRate` -> `sample-rate`.
pub fn camel_to_kebab(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `sample-rate` -> `sampleRate`.
pub fn kebab_to_camel(flag: &str) -> String {
    let mut out = String::with_capacity(flag.len());
    let mut upper = false;
    for c in flag.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// One overridable option, as the command line sees it.
#[derive(Clone, Debug)]
pub struct OptionSpec {
    /// JSON key (camelCase).
    pub key: String,
    /// Command-line flags without the leading `--` (kebab form first, then aliases).
    pub flags: Vec<String>,
    /// The built-in default as a command-line value (`null` when unset).
    pub default: String,
}

impl Config {
    /// Every option with its flags and default, in declaration order.
    pub fn option_specs() -> Vec<OptionSpec> {
        let defaults = Self::default().to_map();
        defaults
            .into_iter()
            .map(|(key, value)| {
                let mut flags = vec![camel_to_kebab(&key)];
                flags.extend(
                    FLAG_ALIASES
                        .iter()
                        .filter(|(_, k)| *k == key)
                        .map(|(f, _)| f.to_string()),
                );
                let default = match &value {
                    Value::String(s) => s.clone(),
                    Value::Array(items) => items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                OptionSpec {
                    key,
                    flags,
                    default,
                }
            })
            .collect()
    }

    /// The JSON key a command-line flag (without `--`) sets, if any.
    pub fn key_for_flag(flag: &str) -> Option<String> {
        if let Some((_, key)) = FLAG_ALIASES.iter().find(|(f, _)| *f == flag) {
            return Some(key.to_string());
        }
        let key = kebab_to_camel(flag);
        Self::default().to_map().contains_key(&key).then_some(key)
    }

    fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("Config always serialises to a JSON object"),
        }
    }

    /// Apply command-line overrides given as `(flag or key, value text)` pairs, in order.
    ///
    /// Values are read by the type of the option: numbers, `true|false`, enum names
    /// (`softmax-db`), comma-separated lists (`64,128,256`, empty for none), and `none`/`null`
    /// to unset an optional value.
    pub fn apply_overrides<S: AsRef<str>, V: AsRef<str>>(
        &mut self,
        overrides: &[(S, V)],
    ) -> Result<()> {
        let defaults = Self::default().to_map();
        let mut map = self.to_map();
        for (name, text) in overrides {
            let name = name.as_ref().trim_start_matches("--");
            let text = text.as_ref().trim();
            let key = if defaults.contains_key(name) {
                name.to_string()
            } else {
                Self::key_for_flag(name)
                    .ok_or_else(|| Error::Config(format!("unknown option `--{name}`")))?
            };
            let value = parse_override_value(&defaults[&key], text);
            let mut trial = map.clone();
            trial.insert(key.clone(), value);
            serde_json::from_value::<Config>(Value::Object(trial.clone())).map_err(|e| {
                Error::Config(format!(
                    "option `{key}` (--{}): cannot use `{text}`: {e}",
                    camel_to_kebab(&key)
                ))
            })?;
            map = trial;
        }
        *self = serde_json::from_value(Value::Object(map))
            .map_err(|e| Error::Config(format!("invalid overrides: {e}")))?;
        Ok(())
    }

    /// Resolve a config: defaults, then the JSON file if given, then overrides; validated.
    pub fn from_sources<S: AsRef<str>, V: AsRef<str>>(
        file: Option<&Path>,
        overrides: &[(S, V)],
    ) -> Result<Self> {
        let mut config = match file {
            Some(path) => Self::from_json_file(path)?,
            None => Self::default(),
        };
        config.apply_overrides(overrides)?;
        if config.normalized_harmonic_head {
            config.harmonic_head_mode = HarmonicHeadMode::Normalized;
        }
        config.validate()?;
        Ok(config)
    }
}

fn parse_override_value(default: &Value, text: &str) -> Value {
    if matches!(text, "none" | "null") {
        return Value::Null;
    }
    match default {
        Value::Bool(_) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => Value::String(other.to_string()),
        },
        Value::Array(_) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(parse_scalar)
                .collect(),
        ),
        Value::String(_) => Value::String(text.to_string()),
        _ => parse_scalar(text),
    }
}

fn parse_scalar(text: &str) -> Value {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| v.is_number() || v.is_boolean())
        .unwrap_or_else(|| Value::String(text.to_string()))
}

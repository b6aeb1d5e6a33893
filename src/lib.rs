//! # ddsp
//!
//! Differentiable Digital Signal Processing (Engel et al., ICLR 2020) on
//! [Burn](https://burn.dev): synthesizers, effects, losses and decoders as Burn modules that
//! run on any Burn device (wgpu, CUDA, the pure-Rust `flex` CPU backend), with or without
//! autodiff; plus the feature extraction, cache and training loop behind the `ddspe2e`
//! example.
//!
//! Layering (each module depends only on those listed before it):
//! [`error`], [`io`], [`schedule`], [`device`] — foundations; [`dsp`] — pure differentiable
//! DSP functions; [`features`] — plain-Rust audio features; [`synth`] — synthesizers and
//! effects as Burn modules, with the scaling of their raw controls; [`loss`] — training
//! objectives; [`decoder`] — features to raw controls; [`metrics`] — magenta's resynthesis
//! metrics; [`config`] — the one serde config, translated into those modules' configs;
//! [`data`] — the feature cache and batches; [`model`] — decoder + synth; [`train`] — the
//! training loop; [`infer`] — a trained model on new audio, in pieces, and its evaluation;
//! [`stream`] — realtime rendering block by block on the host.

#![warn(missing_docs)]

pub mod config;
pub mod data;
pub mod decoder;
pub mod device;
pub mod dsp;
pub mod error;
pub mod features;
pub mod fuzzing;
pub mod infer;
pub mod io;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod schedule;
pub mod stream;
pub mod synth;
pub mod train;

#[cfg(test)]
pub(crate) mod testing;

pub use config::Config;
pub use device::{DeviceChoice, SelectedDevice};
pub use error::{Error, Result};

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

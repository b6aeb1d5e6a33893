//! See `ddsp::fuzzing::audio` for what the input is and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ddsp::fuzzing::audio(data);
});

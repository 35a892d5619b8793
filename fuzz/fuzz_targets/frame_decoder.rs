//! The request frame decoder fed arbitrary bytes in arbitrary chunks under
//! one of four limits; see `tests::fuzz::decode_frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tests::fuzz::decode_frames(data));

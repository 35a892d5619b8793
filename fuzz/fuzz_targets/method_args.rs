//! Every `#[remote]` method linked in (the timer's) called through the
//! registry with an arbitrary name and payload; see `tests::fuzz::call_method`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tests::fuzz::call_method(data));

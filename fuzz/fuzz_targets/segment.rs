//! Arbitrary bytes over a live queue segment, then open/get/put: must return.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmproc_fuzz::run_segment(data));

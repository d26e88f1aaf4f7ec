//! Random queue operation sequences against a `VecDeque` model.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmproc_fuzz::run_ops(data));

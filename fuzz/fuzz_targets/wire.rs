//! Arbitrary bytes as serde messages: shmproc's codec against postcard's.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shmproc_fuzz::run_wire(data));

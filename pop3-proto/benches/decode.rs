//! Criterion benchmark: RETR stream decoding against a memmem baseline.
fn main() {}

//! Helpers shared by the fuzz targets: reading a small header off the front of the input,
//! chunking the rest, and splitting fields.
//!
//! Every target reads its input as `header ++ payload`, where the payload is raw protocol bytes
//! (so that the seed corpus can be the transcripts' server bytes, and the dictionary tokens land
//! where they matter), and the header holds the knobs (config switches, split seeds).

/// Reads bytes off the front of the input; past the end it yields zeros.
#[derive(Debug)]
pub struct Header<'a> {
    bytes: &'a [u8],
}

impl<'a> Header<'a> {
    /// Splits `data` into a header of `len` bytes (zero-padded if short) and the payload.
    pub fn split(data: &'a [u8], len: usize) -> (Self, &'a [u8]) {
        let cut = len.min(data.len());
        (
            Self {
                bytes: &data[..cut],
            },
            &data[cut..],
        )
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | (u32::from(self.u16()) << 16)
    }
}

/// A tiny deterministic generator (xorshift32) for chunk sizes.
#[derive(Debug, Clone)]
pub struct Rng(u32);

impl Rng {
    /// A generator seeded with `seed` (0 is fine).
    pub fn new(seed: u32) -> Self {
        Self(seed ^ 0x9e37_79b9)
    }

    /// The next value.
    pub fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Cuts `payload` into chunks. `mode` picks the shape: 0 whole, 1 byte by byte, otherwise
/// random sizes from 1 to `mode` (as drawn from `seed`).
pub fn chunks(payload: &[u8], mode: u8, seed: u32) -> Vec<&[u8]> {
    match mode {
        0 => vec![payload],
        1 => payload.chunks(1).collect(),
        max => {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            let mut rest = payload;
            while !rest.is_empty() {
                let n = (rng.next() % u32::from(max)) as usize + 1;
                let (a, b) = rest.split_at(n.min(rest.len()));
                out.push(a);
                rest = b;
            }
            out
        }
    }
}

/// The lines of `payload`, split after each LF (the last may lack it), each without its LF and
/// without one CR before it.
pub fn lines(payload: &[u8]) -> impl Iterator<Item = &[u8]> {
    payload
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

/// The fields of `payload`, separated by 0xFF.
pub fn fields(payload: &[u8]) -> Vec<&[u8]> {
    payload.split(|&b| b == 0xff).collect()
}

/// A field as a string (lossy).
pub fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

/// Whether `needle` occurs in `hay`, ASCII case-insensitively.
pub fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether `inner` lies inside `outer` (the same memory).
pub fn is_subslice(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    i >= o && i + inner.len() <= o + outer.len()
}

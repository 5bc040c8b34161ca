//! Arithmetic datasets of any size, in the example's shape (`{"a": int, "b": int}` per line),
//! so a job runs long enough for a steady figure. The items come from a fixed-seed generator:
//! the same size gives the same bytes, so an upload of it is deduplicated by its digest.

/// `items` lines of `{"a": A, "b": B}` with A and B below 1,000, as the example's.
pub fn arith(items: u64) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut out = Vec::with_capacity(items as usize * 24);
    for _ in 0..items {
        let (a, b) = (next(&mut state) % 1_000, next(&mut state) % 1_000);
        out.extend_from_slice(format!("{{\"a\": {a}, \"b\": {b}}}\n").as_bytes());
    }
    out
}

/// splitmix64: a tiny generator; the figures need varied items, not good randomness.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

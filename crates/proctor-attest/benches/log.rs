//! Log throughput in memory: appends per second up to 1,000,000 entries, then the time to
//! generate inclusion and consistency proofs at that size.
//!
//! Targets (issue 3): at least 50,000 appends/s in memory, a proof in under 100 µs at one
//! million entries. Run with `cargo bench -p proctor-attest`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use proctor_attest::proof::{verify_consistency, verify_inclusion};
use proctor_attest::{MemoryStore, log, merkle};

const ENTRIES: u64 = 1_000_000;
/// About the size of a signed result envelope.
const ENTRY_BYTES: usize = 1_500;
const PROOFS: u64 = 20_000;

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Mean, median and 99th percentile in microseconds. The percentiles say more than the
/// worst case on a shared machine, where one descheduling costs milliseconds.
fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    format!(
        "{:.2} µs mean, {:.2} µs median, {:.2} µs p99",
        micros(mean),
        micros(times[times.len() / 2]),
        micros(times[times.len() * 99 / 100])
    )
}

fn main() {
    let mut store = MemoryStore::new();
    let mut entry = vec![b'x'; ENTRY_BYTES];
    let started = Instant::now();
    let mut lap = Instant::now();
    let mut lap_from = 0;
    for i in 0..ENTRIES {
        entry[..8].copy_from_slice(&i.to_le_bytes());
        black_box(block_on(log::append(&mut store, &entry)).expect("append"));
        let done = i + 1;
        if done == 10_000 || done == 100_000 || done == ENTRIES {
            let rate = (done - lap_from) as f64 / lap.elapsed().as_secs_f64();
            println!(
                "append ({ENTRY_BYTES}-byte entries): {rate:>10.0} appends/s over entries {lap_from}..{done}"
            );
            lap = Instant::now();
            lap_from = done;
        }
    }
    let total = started.elapsed();
    println!(
        "append: {:.0} appends/s overall, {ENTRIES} entries in {:.2} s",
        ENTRIES as f64 / total.as_secs_f64(),
        total.as_secs_f64()
    );

    let head = block_on(log::tree_head(&mut store)).expect("head");
    let mut rng = Lcg(42);

    let mut times = Vec::with_capacity(PROOFS as usize);
    let mut checked = 0;
    for _ in 0..PROOFS {
        let index = rng.below(ENTRIES);
        let t = Instant::now();
        let proof = block_on(log::inclusion_proof(&mut store, index, ENTRIES)).expect("proof");
        times.push(t.elapsed());
        // Check a sample outside the timing, to be sure the proofs are real.
        if index.is_multiple_of(16) {
            entry[..8].copy_from_slice(&index.to_le_bytes());
            verify_inclusion(
                index,
                ENTRIES,
                &merkle::leaf_hash(&entry),
                &proof,
                &head.root,
            )
            .expect("inclusion proof verifies");
            checked += 1;
        }
    }
    println!(
        "inclusion proof at {ENTRIES}: {}, over {PROOFS} random leaves ({checked} verified)",
        summary(times)
    );

    let mut times = Vec::with_capacity(PROOFS as usize);
    for i in 0..PROOFS {
        let old = 1 + rng.below(ENTRIES - 1);
        let t = Instant::now();
        let proof = block_on(log::consistency_proof(&mut store, old, ENTRIES)).expect("proof");
        times.push(t.elapsed());
        if i.is_multiple_of(64) {
            let old_root = block_on(log::root_at(&mut store, old)).expect("root");
            verify_consistency(old, ENTRIES, &old_root, &head.root, &proof)
                .expect("consistency proof verifies");
        }
    }
    println!(
        "consistency proof to {ENTRIES}: {}, over {PROOFS} random old sizes",
        summary(times)
    );
}

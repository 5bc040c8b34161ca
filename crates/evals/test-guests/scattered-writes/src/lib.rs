//! Writes a marker into every other 4 KiB page of three zones, as an interpreter's heap is
//! written (thousands of separate runs), and checks first that none of an earlier sample's
//! markers is there. The zones: a data segment (the memory image: reset means the image's
//! bytes again), zeroed statics (no image: reset means zeros), and heap grown at run time,
//! whose last part is written densely, past what a pool slot keeps resident, so that a reset
//! both copies back and gives pages to the kernel.

use std::ptr::{addr_of, addr_of_mut};

use proctor_guest::{Eval, EvalInfo, Metric, SampleError, scores};

const PAGE: usize = 4096;
const IMAGE_BYTE: u8 = 0xa5;

/// In the image: 256 pages, 128 of them written.
static mut IMAGE: [u8; 1 << 20] = [IMAGE_BYTE; 1 << 20];
/// Zeroed, not in the image: 2,048 pages, 1,024 of them written.
static mut ZEROED: [u8; 8 << 20] = [0; 8 << 20];
/// Grown at run time: 8 MiB written every other page, then 40 MiB every page.
const HEAP_SPARSE: usize = 8 << 20;
const HEAP_DENSE: usize = 40 << 20;

struct Guest;

/// Checks that every other page of `zone` starts with `pristine`, then marks them; returns
/// whether all were pristine.
///
/// # Safety
/// `zone` must point to `len` bytes this sample owns.
unsafe fn check_and_mark(zone: *mut u8, len: usize, pristine: u8, stride: usize) -> bool {
    let mut fresh = true;
    let mut offset = 0;
    while offset < len {
        // SAFETY: `offset < len`, inside the zone.
        unsafe {
            let byte = zone.add(offset);
            fresh &= byte.read_volatile() == pristine;
            byte.write_volatile(!pristine);
        }
        offset += stride;
    }
    fresh
}

impl Eval for Guest {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "scattered-writes",
            "1.0.0",
            vec![
                Metric::new(
                    "image",
                    "the data segment was as the image has it",
                    0.0,
                    1.0,
                ),
                Metric::new("zeroed", "the zeroed statics were zero", 0.0, 1.0),
                Metric::new("heap", "memory grown at run time was zero", 0.0, 1.0),
            ],
        )
    }

    fn run_sample(_index: u32) -> Result<(), SampleError> {
        // SAFETY: one sample runs at a time in an instance; nothing else touches the statics.
        let (image, zeroed) = unsafe {
            (
                check_and_mark(
                    addr_of_mut!(IMAGE).cast(),
                    (*addr_of!(IMAGE)).len(),
                    IMAGE_BYTE,
                    2 * PAGE,
                ),
                check_and_mark(
                    addr_of_mut!(ZEROED).cast(),
                    (*addr_of!(ZEROED)).len(),
                    0,
                    2 * PAGE,
                ),
            )
        };
        // Fresh pages from `memory.grow` are zero; the allocator relies on it for `vec![0; n]`.
        let mut heap = vec![0u8; HEAP_SPARSE + HEAP_DENSE];
        let base = heap.as_mut_ptr();
        // SAFETY: both ranges are inside `heap`.
        let grown = unsafe {
            check_and_mark(base, HEAP_SPARSE, 0, 2 * PAGE)
                & check_and_mark(base.add(HEAP_SPARSE), HEAP_DENSE, 0, PAGE)
        };
        std::hint::black_box(&heap);
        for (metric, fresh) in [("image", image), ("zeroed", zeroed), ("heap", grown)] {
            scores::report(metric, if fresh { 1.0 } else { 0.0 });
        }
        Ok(())
    }
}

proctor_guest::export_eval!(Guest);

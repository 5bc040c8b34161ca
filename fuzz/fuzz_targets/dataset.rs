//! An uploaded dataset: any bytes. Parsing either refuses them or yields at most `max_lines`
//! items, each one non-empty line of the file as written, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proctor_core::Dataset;

fuzz_target!(|data: &[u8]| {
    if let Ok(dataset) = Dataset::parse(data, 1_000) {
        assert!((1..=1_000).contains(&dataset.len()));
        for i in 0..dataset.len() {
            let item = dataset.item(i).expect("every counted item is there");
            assert!(!item.is_empty() && !item.contains('\n'), "{item:?}");
        }
        assert!(dataset.item(dataset.len()).is_none());
    }
});

//! Witnesses' cosignatures: each witness's size, the cosignatures by size, and the sizes a
//! quorum cosigned, largest first.

use proctor_store::StoreError;
use proctor_store::cosignatures::Cosignature;

use crate::on_every_backend;

fn cosignature(witness: &str, size: u64) -> Cosignature {
    Cosignature {
        witness: witness.to_owned(),
        size,
        root: [size as u8; 32],
        line: format!("\u{2014} {witness} sig-of-{size}"),
        cosigned_at: 1_700_000_000 + size,
    }
}

#[tokio::test]
async fn the_sizes_a_quorum_cosigned_come_largest_first_with_their_lines() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        assert_eq!(store.witness_size("a").await?, None);
        store.set_witness_size("a", 7).await?;
        assert_eq!(store.witness_size("a").await?, Some(7));
        // a cosigns 2, 4, 6; b cosigns 2 and 4; c only 6.
        for (witness, size) in [("a", 2), ("b", 2), ("a", 4), ("b", 4), ("a", 6), ("c", 6)] {
            store.add_cosignature(&cosignature(witness, size)).await?;
        }
        // A cosignature moves the witness's size with it.
        assert_eq!(store.witness_size("a").await?, Some(6));
        assert_eq!(store.witness_size("b").await?, Some(4));
        assert!(store.has_cosignature("b", 4).await?);
        assert!(!store.has_cosignature("b", 6).await?);

        let sizes = store.cosigned_sizes(2, 16).await?;
        let got: Vec<(u64, Vec<&str>)> = sizes
            .iter()
            .map(|s| {
                (
                    s.size,
                    s.cosignatures.iter().map(|c| c.witness.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (6, vec!["a", "c"]),
                (4, vec!["a", "b"]),
                (2, vec!["a", "b"])
            ]
        );
        assert_eq!(sizes[0].cosignatures[1], cosignature("c", 6));
        assert_eq!(store.cosigned_sizes(2, 1).await?.len(), 1);
        assert!(store.cosigned_sizes(3, 16).await?.is_empty());

        // The same witness and size again replaces the line (a re-cosigned checkpoint).
        let mut again = cosignature("c", 6);
        again.line = "\u{2014} c newer".into();
        store.add_cosignature(&again).await?;
        let sizes = store.cosigned_sizes(2, 1).await?;
        assert_eq!(sizes[0].cosignatures[1].line, "\u{2014} c newer");

        assert!(matches!(
            store.add_cosignature(&cosignature("a", 0)).await,
            Err(StoreError::Invalid(_))
        ));
    })
}

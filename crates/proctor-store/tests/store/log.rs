//! The log in SQL: concurrent appends never fork, proofs verify, rollbacks leave nothing.

use proctor_attest::merkle::leaf_hash;
use proctor_attest::proof::{verify_consistency, verify_inclusion};
use proctor_store::{EntryKind, Store, StoreError};
use sqlx::Row;

use crate::common::{Fixture, sign};
use crate::on_every_backend;

async fn node_count(db: &crate::common::TestDb) -> anyhow::Result<i64> {
    // A connection of its own, outside the store's API, to see what is really there.
    let count = if db.is_postgres() {
        let pool = sqlx::PgPool::connect(&db.url).await?;
        let n = sqlx::query("SELECT COUNT(*) AS n FROM log_nodes")
            .fetch_one(&pool)
            .await?
            .try_get("n")?;
        pool.close().await;
        n
    } else {
        let pool = sqlx::SqlitePool::connect(&db.url).await?;
        let n = sqlx::query("SELECT COUNT(*) AS n FROM log_nodes")
            .fetch_one(&pool)
            .await?
            .try_get("n")?;
        pool.close().await;
        n
    };
    Ok(count)
}

#[tokio::test]
async fn appends_from_many_tasks_and_two_servers_never_fork() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        // Two pools on one database are two servers; on SQLite they share the file too.
        let second = db.store().await?;
        let mut tasks = Vec::new();
        for task in 0..8 {
            let s: Store = if task % 2 == 0 {
                store.clone()
            } else {
                second.clone()
            };
            let new = fx.job();
            tasks.push(tokio::spawn(async move {
                let mut heads = Vec::new();
                for _ in 0..8 {
                    s.submit_job(&new, sign("accepted")).await?;
                    heads.push(s.tree_head().await?);
                }
                Ok::<_, StoreError>(heads)
            }));
        }
        let mut heads = Vec::new();
        for task in tasks {
            heads.extend(task.await??);
        }
        second.close().await;

        let final_head = store.tree_head().await?;
        assert_eq!(final_head.size, 64);
        let entries = store.log_entries(0, 1000).await?;
        assert_eq!(entries.len(), 64);
        for (i, entry) in entries.iter().enumerate() {
            // Each entry was signed with the index it took, under the head lock.
            assert_eq!(entry.index, i as u64);
            assert!(entry.envelope.ends_with(format!(" {i}").as_bytes()));
            assert_eq!(entry.kind, EntryKind::Accepted);
            let proof = store.inclusion_proof(entry.index, final_head.size).await?;
            verify_inclusion(
                entry.index,
                final_head.size,
                &leaf_hash(&entry.envelope),
                &proof,
                &final_head.root,
            )?;
        }
        // Every head anyone saw along the way is a prefix of the final tree.
        for head in heads {
            assert_eq!(store.root_at(head.size).await?, head.root);
            let proof = store.consistency_proof(head.size, final_head.size).await?;
            verify_consistency(
                head.size,
                final_head.size,
                &head.root,
                &final_head.root,
                &proof,
            )?;
        }
    })
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_entry_and_no_node() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        store.submit_job(&fx.job(), sign("accepted")).await?;
        let head = store.tree_head().await?;
        let nodes = node_count(&db).await?;

        let mut tx = store.begin().await?;
        let job = tx.enqueue(&fx.job()).await?;
        let entry = tx
            .append_entry(EntryKind::Accepted, job.id, |slot| {
                Ok(format!("x {}", slot.index).into_bytes())
            })
            .await?;
        assert_eq!(entry.index, 1);
        tx.rollback().await?;

        // Dropped without commit: the same.
        let mut tx = store.begin().await?;
        let job2 = tx.enqueue(&fx.job()).await?;
        tx.append_entry(EntryKind::Accepted, job2.id, |_| Ok(b"y".to_vec()))
            .await?;
        drop(tx);

        assert_eq!(store.tree_head().await?, head);
        assert_eq!(node_count(&db).await?, nodes);
        assert!(matches!(
            store.log_entry(1).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.job(job.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.job(job2.id).await,
            Err(StoreError::NotFound(_))
        ));

        // The next append takes the index the rolled-back one would have had.
        let (_, next) = store.submit_job(&fx.job(), sign("accepted")).await?;
        assert_eq!(next.index, 1);
    })
}

#[tokio::test]
async fn a_job_cannot_have_two_entries_of_one_kind() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        let (job, _) = store.submit_job(&fx.job(), sign("accepted")).await?;
        let mut tx = store.begin().await?;
        let dup = tx
            .append_entry(EntryKind::Accepted, job.id, |_| Ok(b"again".to_vec()))
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        drop(tx);
        assert_eq!(store.tree_head().await?.size, 1);
    })
}

#[tokio::test]
async fn proofs_beyond_the_head_are_not_found() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let empty = store.tree_head().await?;
        assert_eq!(empty.size, 0);
        assert_eq!(empty.root, proctor_attest::merkle::empty_root());
        let fx = Fixture::new(&store).await?;
        store.submit_job(&fx.job(), sign("accepted")).await?;
        assert!(matches!(
            store.inclusion_proof(1, 1).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.inclusion_proof(0, 2).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.consistency_proof(1, 2).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.consistency_proof(2, 1).await,
            Err(StoreError::Invalid(_))
        ));
        assert!(store.inclusion_proof(0, 1).await?.is_empty());
    })
}

//! Reservation blocks (issue 12): leased under the grant's lock, settled in batches, never
//! more than the budget by any number of leasers on any number of servers, and a block left
//! open counted at its worst case.

use proctor_store::{
    Batch, Block, Budget, Budgets, Hold, JobDemand, Step, Store, StoreError, Want,
};

use crate::common::{Fixture, sign, sign_under};
use crate::grants::grant;
use crate::on_every_backend;

/// Leases a block as a meter does (`Err` for a refusal).
async fn lease(
    store: &Store,
    (grant, job): (proctor_store::GrantId, proctor_store::JobId),
    batches: &[(proctor_store::BlockId, Batch)],
    want: Want,
) -> Result<Block, StoreError> {
    store
        .meter(Step {
            grant,
            job,
            batches,
            lease: Some(want),
        })
        .await?
        .lease
        .ok_or(StoreError::Invalid("no lease"))?
}

/// What drawing `drawn` queries of `worst` tokens from `block`, each billed at its worst case,
/// and giving back the rest comes to.
fn drew(block: &Block, drawn: u64, worst: u64) -> Batch {
    Batch {
        settled: drawn,
        settled_worst: drawn * worst,
        input_tokens: drawn * (worst - 10),
        output_tokens: drawn * 10,
        returned: block.queries - drawn,
        returned_tokens: block.tokens - drawn * worst,
    }
}

#[tokio::test]
async fn thirty_two_leasers_on_two_servers_spend_exactly_the_budget_in_blocks_of_any_size()
-> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        const WORST: u64 = 40;
        const TOKENS: u64 = 30_000;
        let fx = Fixture::new(&store).await?;
        let second = db.store().await?;
        // Tokens run out first: 30,000 / 40 = 750 queries of the 5,000 the grant allows (which
        // stays above what 32 leasers of at most 64 queries each can hold at once).
        let g = grant(
            &store,
            &fx,
            Budgets {
                queries_total: Some(5_000),
                tokens_total: Some(TOKENS),
                ..Budgets::default()
            },
        )
        .await?;
        let (job, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let mut tasks = Vec::new();
        for task in 0..32_u64 {
            let s = if task % 2 == 0 {
                store.clone()
            } else {
                second.clone()
            };
            let key = (g.id, job.id);
            tasks.push(tokio::spawn(async move {
                // Blocks of 1 to 64 queries; each task draws about half of each block and
                // gives the rest back with its next lease, as a meter does.
                let mut settled = 0_u64;
                let mut pending: Vec<(proctor_store::BlockId, Batch)> = Vec::new();
                let mut size = 1 + task * 2;
                loop {
                    let want = Want {
                        queries: size,
                        tokens: size * WORST,
                        min_tokens: WORST,
                    };
                    match lease(&s, key, &pending, want).await {
                        Ok(block) => {
                            assert!(block.queries >= 1 && block.queries <= size, "{block:?}");
                            assert!(block.tokens >= WORST, "{block:?}");
                            let drawn = (block.queries.div_ceil(2)).min(block.tokens / WORST);
                            settled += drawn;
                            pending = vec![(block.id, drew(&block, drawn, WORST))];
                        }
                        Err(StoreError::BudgetExhausted(budget)) => {
                            assert_eq!(budget, Budget::TokensTotal);
                            // The refused step applied the last batch all the same.
                            return Ok::<_, StoreError>(settled);
                        }
                        Err(err) => return Err(err),
                    }
                    size = size % 64 + 1;
                }
            }));
        }
        let mut settled = 0;
        for task in tasks {
            settled += task.await??;
        }
        assert_eq!(settled, TOKENS / WORST);
        let remaining = store.remaining_budget(g.id).await?;
        assert_eq!(remaining.tokens_total.used, TOKENS);
        assert_eq!(remaining.tokens_total.reserved, 0);
        assert_eq!(remaining.queries_total.used, TOKENS / WORST);
        assert_eq!(remaining.queries_total.reserved, 0);
        assert_eq!(store.metered_usage(job.id).await?.queries, TOKENS / WORST);
        let report = store.usage_report(fx.vendor).await?;
        assert_eq!(report[0].in_flight, 0);
        second.close().await;
    })
}

#[tokio::test]
async fn a_block_left_open_counts_at_its_worst_case_and_a_late_batch_counts_nothing_twice()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(&store, &fx, Budgets::default()).await?;
        let (job, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let key = (g.id, job.id);
        let block = lease(
            &store,
            key,
            &[],
            Want {
                queries: 10,
                tokens: 400,
                min_tokens: 40,
            },
        )
        .await?;
        assert_eq!((block.queries, block.tokens), (10, 400));
        // Three queries settled (25 tokens each as billed), then the worker dies.
        let three = Batch {
            settled: 3,
            settled_worst: 120,
            input_tokens: 60,
            output_tokens: 15,
            ..Batch::default()
        };
        store
            .meter(Step {
                grant: g.id,
                job: job.id,
                batches: &[(block.id, three)],
                lease: None,
            })
            .await?;
        assert_eq!(store.usage_report(fx.vendor).await?[0].in_flight, 7);
        store.cancel(job.id, "worker died", sign("result")).await?;
        assert_eq!(store.abandon_blocks_of_ended().await?, 1);
        assert_eq!(store.abandon_blocks(job.id).await?, 0);
        let remaining = store.remaining_budget(g.id).await?;
        assert_eq!(remaining.queries_total.used, 10);
        assert_eq!(remaining.tokens_total.used, 75 + 280);
        assert_eq!(remaining.queries_total.reserved, 0);
        assert_eq!(remaining.tokens_total.reserved, 0);
        let usage = store.metered_usage(job.id).await?;
        assert_eq!(
            (usage.queries, usage.input_tokens, usage.output_tokens),
            (10, 60 + 280, 15)
        );
        // The dead worker's last batch, written late, is not counted again.
        let late = Batch {
            settled: 1,
            settled_worst: 40,
            input_tokens: 20,
            output_tokens: 5,
            ..Batch::default()
        };
        let stepped = store
            .meter(Step {
                grant: g.id,
                job: job.id,
                batches: &[(block.id, late)],
                lease: None,
            })
            .await?;
        assert_eq!(stepped.ignored, 1);
        assert_eq!(store.remaining_budget(g.id).await?.queries_total.used, 10);
        assert_eq!(store.usage_report(fx.vendor).await?[0].in_flight, 0);

        // A batch cannot name another job's block.
        let (other, _, _) = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let foreign = store
            .meter(Step {
                grant: g.id,
                job: other.id,
                batches: &[(block.id, late)],
                lease: None,
            })
            .await;
        assert!(
            matches!(foreign, Err(StoreError::Invalid(_))),
            "{foreign:?}"
        );
    })
}

#[tokio::test]
async fn a_dp_job_leases_blocks_from_its_hold_only_and_what_it_gives_back_returns_to_the_hold()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                queries_total: Some(20),
                tokens_total: Some(2_000),
                epsilon_total: Some(10.0),
                ..Budgets::default()
            },
        )
        .await?;
        let demand = JobDemand {
            epsilon: Some(0.5),
            bits: 12.5,
            hold: Some(Hold {
                queries: 10,
                tokens: 1_000,
            }),
        };
        let (held, _, _) = store
            .submit_job_under(g.id, &demand, &fx.job(), sign_under("accepted"))
            .await?;
        let key = (g.id, held.id);
        let hold = async |store: &Store| -> anyhow::Result<Option<Hold>> {
            Ok(store.job_grant(held.id).await?.and_then(|j| j.hold))
        };
        let first = lease(
            &store,
            key,
            &[],
            Want {
                queries: 8,
                tokens: 800,
                min_tokens: 100,
            },
        )
        .await?;
        assert_eq!((first.queries, first.tokens), (8, 800));
        assert_eq!(
            hold(&store).await?,
            Some(Hold {
                queries: 2,
                tokens: 200
            })
        );
        // Three drawn, the rest back to the hold with the next lease, which asks for more
        // than the hold has and gets the hold.
        let back = Batch {
            settled: 3,
            settled_worst: 300,
            input_tokens: 150,
            output_tokens: 30,
            returned: 5,
            returned_tokens: 500,
        };
        let second = lease(
            &store,
            key,
            &[(first.id, back)],
            Want {
                queries: 100,
                tokens: 10_000,
                min_tokens: 100,
            },
        )
        .await?;
        assert_eq!((second.queries, second.tokens), (7, 700));
        assert_eq!(
            hold(&store).await?,
            Some(Hold {
                queries: 0,
                tokens: 0
            })
        );
        let exhausted = lease(&store, key, &[], Want::one(100)).await;
        assert!(
            matches!(
                exhausted,
                Err(StoreError::BudgetExhausted(Budget::JobWorstCase))
            ),
            "{exhausted:?}"
        );
        // The grant's counts never moved for the hold's blocks but by what was settled.
        let remaining = store.remaining_budget(g.id).await?;
        assert_eq!(remaining.queries_total.used, 3);
        assert_eq!(remaining.queries_total.reserved, 7);
        assert_eq!(remaining.tokens_total.used, 180);
        assert_eq!(remaining.tokens_total.reserved, 700);
    })
}

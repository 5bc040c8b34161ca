//! Dataset exposure: counted per (dataset, vendor) when a job is accepted, stated by the job's
//! pre-registration as it stood before the job, and shown to the dataset's owners only.

use proctor_attest::Exposure;
use proctor_store::{Budgets, JobDemand, Role, Tier};

use crate::common::{Fixture, sign_under};
use crate::grants::grant;
use crate::on_every_backend;

#[tokio::test]
async fn three_jobs_on_one_dataset_count_three_exposures_each_stated_as_it_was_before()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(&store, &fx, Budgets::default()).await?;
        let mut stated = Vec::new();
        for _ in 0..3 {
            let (_, _, entry) = store
                .submit_job_under(
                    g.id,
                    &JobDemand::default(),
                    &fx.job(),
                    sign_under("accepted"),
                )
                .await?;
            let text = String::from_utf8(entry.envelope)?;
            stated.push(text.split_once(" exposure ").map(|(_, e)| e.to_owned()));
        }
        // Each job's entry states the exposure before it: 10 samples a job.
        assert_eq!(
            stated,
            [Some("0 0".into()), Some("1 10".into()), Some("2 20".into())]
        );
        let view = store
            .exposure_of(fx.evaluator, &fx.dataset)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the owner sees its dataset's exposure"))?;
        assert_eq!(view.len(), 1);
        assert_eq!(
            (view[0].vendor, view[0].vendor_name.as_str()),
            (fx.vendor, "acme")
        );
        assert_eq!(view[0].exposure, Exposure { jobs: 3, items: 30 });
    })
}

#[tokio::test]
async fn the_exposure_before_a_job_recounts_what_its_acceptance_counted() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(&store, &fx, Budgets::default()).await?;
        let mut counted = Vec::new();
        for _ in 0..3 {
            let (job, _, entry) = store
                .submit_job_under(g.id, &JobDemand::default(), &fx.job(), |_, exposure, _| {
                    counted.push(exposure);
                    Ok(b"accepted".to_vec())
                })
                .await?;
            // What a job accepted before exposure was counted gets instead (its v2
            // pre-registration states none): the same figures, from the rows.
            let recounted = store.exposure_before(job.id, entry.index).await?;
            assert_eq!(Some(&recounted), counted.last());
        }
        assert_eq!(counted[2], Exposure { jobs: 2, items: 20 });
        assert!(
            store
                .exposure_before(proctor_store::JobId::new(), 0)
                .await
                .is_err(),
            "no such job"
        );
    })
}

#[tokio::test]
async fn another_account_cannot_read_the_owners_view_until_it_holds_the_same_bytes()
-> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(&store, &fx, Budgets::default()).await?;
        store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let other = store
            .create_account("other-lab", Role::Evaluator, Some(Tier::Academic))
            .await?;
        assert_eq!(store.exposure_of(other.id, &fx.dataset).await?, None);
        assert_eq!(store.exposure_of(fx.vendor, &fx.dataset).await?, None);
        // The count is the bytes', not the uploader's: whoever uploads them sees it.
        store
            .put_dataset(other.id, b"{\"a\":1,\"b\":2}\n", 1)
            .await?;
        let theirs = store.exposure_of(other.id, &fx.dataset).await?;
        assert_eq!(
            theirs.map(|v| v.iter().map(|x| x.exposure).collect::<Vec<_>>()),
            Some(vec![Exposure { jobs: 1, items: 10 }])
        );
    })
}

#[tokio::test]
async fn a_refused_job_counts_no_exposure() -> anyhow::Result<()> {
    on_every_backend!(|store, _db| {
        let fx = Fixture::new(&store).await?;
        let g = grant(
            &store,
            &fx,
            Budgets {
                jobs_per_day: Some(1),
                ..Budgets::default()
            },
        )
        .await?;
        store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await?;
        let refused = store
            .submit_job_under(
                g.id,
                &JobDemand::default(),
                &fx.job(),
                sign_under("accepted"),
            )
            .await;
        assert!(refused.is_err());
        let view = store.exposure_of(fx.evaluator, &fx.dataset).await?;
        assert_eq!(
            view.map(|v| v.iter().map(|x| x.exposure).collect::<Vec<_>>()),
            Some(vec![Exposure { jobs: 1, items: 10 }])
        );
    })
}

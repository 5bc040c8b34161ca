//! The public log page's search: entries by eval, dataset, model name and kind, newest first,
//! paged by index.

use proctor_store::{EntryFilter, EntryKind, EvalDescription, NewJob, NewModel};

use crate::common::{Fixture, sign};
use crate::on_every_backend;

#[tokio::test]
async fn entries_are_found_by_what_their_jobs_ran_newest_first() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let fx = Fixture::new(&store).await?;
        // A second eval, dataset and model beside the fixture's.
        let description = EvalDescription {
            name: "other".into(),
            version: "0.1.0".into(),
            metrics: "[]".into(),
        };
        let (other_eval, _) = store
            .put_eval(fx.evaluator, b"\0asm other component", &description)
            .await?;
        let (other_dataset, _) = store.put_dataset(fx.evaluator, b"{\"a\":3}\n", 1).await?;
        let other_model = store
            .register_model(&NewModel {
                owner: fx.vendor,
                name: "echo".into(),
                version: "2".into(),
                adapter: "builtin".into(),
                config: r#"{"model":"builtin:echo"}"#.into(),
                credential: None,
            })
            .await?;
        // Entries 0..4: the fixture's job, one on the other eval, one on the other dataset, one
        // on the other model, each a pre-registration.
        let jobs = [
            fx.job(),
            NewJob {
                eval: other_eval.digest,
                ..fx.job()
            },
            NewJob {
                dataset: other_dataset.digest,
                ..fx.job()
            },
            NewJob {
                model: other_model.id,
                ..fx.job()
            },
        ];
        let mut ids = Vec::new();
        for job in &jobs {
            ids.push(store.submit_job(job, sign("accepted")).await?.0.id);
        }
        let indexes = |entries: Vec<proctor_store::LogEntry>| {
            entries.iter().map(|e| e.index).collect::<Vec<_>>()
        };

        let all = EntryFilter::default();
        assert_eq!(
            indexes(store.log_entries_matching(&all, None, 10).await?),
            [3, 2, 1, 0]
        );
        // Paging: below an index, at most `limit`.
        assert_eq!(
            indexes(store.log_entries_matching(&all, Some(3), 2).await?),
            [2, 1]
        );
        assert_eq!(
            indexes(store.log_entries_matching(&all, Some(0), 10).await?),
            Vec::<u64>::new()
        );

        let by_eval = EntryFilter {
            eval: Some(other_eval.digest),
            ..EntryFilter::default()
        };
        let found = store.log_entries_matching(&by_eval, None, 10).await?;
        assert_eq!(indexes(found.clone()), [1]);
        assert_eq!(found[0].job, ids[1]);
        let by_dataset = EntryFilter {
            dataset: Some(fx.dataset),
            ..EntryFilter::default()
        };
        assert_eq!(
            indexes(store.log_entries_matching(&by_dataset, None, 10).await?),
            [3, 1, 0]
        );
        let by_model = EntryFilter {
            model: Some("echo".into()),
            ..EntryFilter::default()
        };
        assert_eq!(
            indexes(store.log_entries_matching(&by_model, None, 10).await?),
            [3]
        );
        // Every field given must match.
        let both = EntryFilter {
            eval: Some(fx.eval),
            model: Some("arith".into()),
            ..EntryFilter::default()
        };
        assert_eq!(
            indexes(store.log_entries_matching(&both, None, 10).await?),
            [2, 0]
        );
        let results = EntryFilter {
            kind: Some(EntryKind::Result),
            ..EntryFilter::default()
        };
        assert!(
            store
                .log_entries_matching(&results, None, 10)
                .await?
                .is_empty()
        );
        let unknown = EntryFilter {
            model: Some("nobody's".into()),
            ..EntryFilter::default()
        };
        assert!(
            store
                .log_entries_matching(&unknown, None, 10)
                .await?
                .is_empty()
        );
    })
}

//! Accounts, tokens, models, content-addressed uploads.

use proctor_core::digest::Sha256Digest;
use proctor_store::{EvalDescription, NewModel, Role, StoreError, Tier, Upload};
use sqlx::Row;

use crate::on_every_backend;

fn description() -> EvalDescription {
    EvalDescription {
        name: "arith".into(),
        version: "0.1.0".into(),
        metrics: r#"[{"name":"accuracy","min":0,"max":1}]"#.into(),
    }
}

#[tokio::test]
async fn a_duplicate_account_name_is_a_conflict() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let a = store.create_account("acme", Role::Vendor, None).await?;
        assert_eq!(store.account_by_name("acme").await?, a);
        let again = store.create_account("acme", Role::Regulator, None).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert_eq!(store.list_accounts().await?, vec![a]);
    })
}

#[tokio::test]
async fn only_evaluators_have_a_tier() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let e = store.create_account("lab", Role::Evaluator, None).await;
        assert!(matches!(e, Err(StoreError::Invalid("tier"))), "{e:?}");
        let v = store
            .create_account("acme", Role::Vendor, Some(Tier::Commercial))
            .await;
        assert!(matches!(v, Err(StoreError::Invalid("tier"))), "{v:?}");
        let ok = store
            .create_account("lab", Role::Evaluator, Some(Tier::Auditor))
            .await?;
        assert_eq!(store.account(ok.id).await?.tier, Some(Tier::Auditor));
    })
}

#[tokio::test]
async fn a_token_finds_its_account_and_its_secret_is_nowhere_in_the_database() -> anyhow::Result<()>
{
    on_every_backend!(|store, db| {
        let account = store
            .create_account("lab", Role::Evaluator, Some(Tier::Academic))
            .await?;
        let token = store.create_token(account.id, "laptop").await?;
        assert!(token.secret.starts_with("pct_"));
        assert!(!format!("{token:?}").contains(&token.secret));
        assert_eq!(
            store.account_for_token(&token.secret).await?,
            Some(account.clone())
        );
        assert_eq!(store.account_for_token("pct_guess").await?, None);

        if let Some(path) = &db.sqlite_path {
            // Every byte SQLite wrote: the database file and its write-ahead log.
            let mut bytes = std::fs::read(path)?;
            let mut wal = path.clone().into_os_string();
            wal.push("-wal");
            bytes.extend(std::fs::read(&wal).unwrap_or_default());
            let secret = token.secret.as_bytes();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret));
            let hex_part = &token.secret.as_bytes()[4..];
            assert!(!bytes.windows(hex_part.len()).any(|w| w == hex_part));
        } else {
            let pool = sqlx::PgPool::connect(&db.url).await?;
            let rows = sqlx::query("SELECT CAST(t.* AS TEXT) AS row FROM api_tokens t")
                .fetch_all(&pool)
                .await?;
            assert_eq!(rows.len(), 1);
            for row in rows {
                let text: String = row.try_get("row")?;
                assert!(!text.contains(&token.secret[4..]), "{text}");
            }
            pool.close().await;
        }

        store.revoke_token(token.info.id).await?;
        assert_eq!(store.account_for_token(&token.secret).await?, None);
        let tokens = store.tokens_of(account.id).await?;
        assert!(tokens[0].revoked_at.is_some());
    })
}

#[tokio::test]
async fn the_first_admin_is_made_once() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let (admin, token) = store
            .bootstrap_admin("admin")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no admin made"))?;
        assert_eq!(admin.role, Role::Admin);
        assert_eq!(store.account_for_token(&token.secret).await?, Some(admin));
        assert!(store.bootstrap_admin("admin").await?.is_none());
        assert!(store.bootstrap_admin("root").await?.is_none());
    })
}

#[tokio::test]
async fn uploading_the_same_eval_twice_keeps_one_copy_and_both_owners() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let a = store
            .create_account("lab-a", Role::Evaluator, Some(Tier::Academic))
            .await?;
        let b = store
            .create_account("lab-b", Role::Evaluator, Some(Tier::Auditor))
            .await?;
        let bytes = b"\0asm the same component";
        let (first, upload) = store.put_eval(a.id, bytes, &description()).await?;
        assert_eq!(upload, Upload::Created);
        assert_eq!(first.digest, Sha256Digest::of(bytes));
        assert_eq!(first.size, bytes.len() as u64);
        let (again, upload) = store.put_eval(a.id, bytes, &description()).await?;
        assert_eq!((again.clone(), upload), (first.clone(), Upload::Existing));
        // New to b, whoever holds the same bytes: b reads its own upload, never a's.
        let (by_b, upload) = store.put_eval(b.id, bytes, &description()).await?;
        assert_eq!(upload, Upload::Created);
        assert_eq!((by_b.digest, by_b.size), (first.digest, first.size));
        assert!(by_b.created_at >= first.created_at);
        assert_eq!(store.eval_of(b.id, &first.digest).await?, Some(by_b));
        assert_eq!(store.eval_bytes(&first.digest).await?, bytes.to_vec());
        assert!(store.owns_eval(a.id, &first.digest).await?);
        assert!(store.owns_eval(b.id, &first.digest).await?);
        assert_eq!(store.evals_of(a.id).await?, vec![first.clone()]);
        let unknown = store.eval(&Sha256Digest::of(b"other")).await;
        assert!(matches!(unknown, Err(StoreError::NotFound("eval"))));
    })
}

#[tokio::test]
async fn uploading_the_same_dataset_twice_is_idempotent() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let a = store
            .create_account("lab", Role::Evaluator, Some(Tier::Academic))
            .await?;
        let other = store
            .create_account("lab-2", Role::Evaluator, Some(Tier::Academic))
            .await?;
        let bytes = b"{\"a\":1}\n{\"a\":2}\n";
        let (first, upload) = store.put_dataset(a.id, bytes, 2).await?;
        assert_eq!(upload, Upload::Created);
        assert_eq!(first.items, 2);
        let (again, upload) = store.put_dataset(a.id, bytes, 2).await?;
        assert_eq!((again, upload), (first.clone(), Upload::Existing));
        assert_eq!(store.dataset_bytes(&first.digest).await?, bytes.to_vec());
        assert_eq!(store.datasets_of(a.id).await?, vec![first.clone()]);
        assert!(!store.owns_dataset(other.id, &first.digest).await?);
    })
}

#[tokio::test]
async fn model_names_are_unique_per_vendor_and_credentials_stay_apart() -> anyhow::Result<()> {
    on_every_backend!(|store, db| {
        let acme = store.create_account("acme", Role::Vendor, None).await?;
        let globex = store.create_account("globex", Role::Vendor, None).await?;
        let new = |owner, credential: Option<Vec<u8>>| NewModel {
            owner,
            name: "chat".into(),
            version: "2025-01".into(),
            adapter: "openai".into(),
            config: r#"{"base_url":"http://127.0.0.1:1/v1"}"#.into(),
            credential,
        };
        let sealed = vec![0u8, 1, 2, 255];
        let model = store
            .register_model(&new(acme.id, Some(sealed.clone())))
            .await?;
        assert!(model.has_credential);
        let dup = store.register_model(&new(acme.id, None)).await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        let other = store.register_model(&new(globex.id, None)).await?;
        assert!(!other.has_credential);
        assert_eq!(store.model_credential(model.id).await?, Some(sealed));
        assert_eq!(store.model_credential(other.id).await?, None);
        assert_eq!(store.model_by_name(acme.id, "chat").await?, model);
        assert_eq!(store.models_of(globex.id).await?, vec![other]);
        let nobody = store
            .register_model(&new(proctor_store::AccountId::new(), None))
            .await;
        assert!(matches!(nobody, Err(StoreError::NotFound(_))), "{nobody:?}");
    })
}

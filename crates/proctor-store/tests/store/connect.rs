//! Connecting: the URLs the store takes and the ones it refuses.

use proctor_store::{Backend, Role, Store, StoreError};

#[tokio::test]
async fn an_in_memory_sqlite_store_works_for_its_lifetime() -> anyhow::Result<()> {
    let store = Store::connect("sqlite::memory:").await?;
    assert_eq!(store.backend(), Backend::Sqlite);
    store.create_account("acme", Role::Vendor, None).await?;
    // One connection holds the database: a transaction and reads after it see the same data.
    let mut tx = store.begin().await?;
    let now = tx.now().await?;
    tx.commit().await?;
    assert!(now.as_millis() > 0);
    assert_eq!(store.list_accounts().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn reconnecting_to_a_migrated_database_keeps_its_data() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display());
    let store = Store::connect(&url).await?;
    store.create_account("acme", Role::Vendor, None).await?;
    store.close().await;
    let again = Store::connect(&url).await?;
    assert_eq!(again.account_by_name("acme").await?.name, "acme");
    Ok(())
}

#[tokio::test]
async fn an_unknown_database_url_is_refused() {
    let refused = Store::connect("mysql://localhost/proctor").await;
    assert!(
        matches!(refused, Err(StoreError::UnsupportedUrl(_))),
        "{refused:?}"
    );
}

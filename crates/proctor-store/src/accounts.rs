//! Accounts, roles and API tokens.
//!
//! A token's secret is shown once, by [`Store::create_token`]; the database keeps only its
//! sha256, so a copy of the database grants nothing. Secrets carry 256 random bits, so an
//! unsalted hash is enough and lookup is one indexed equality.

use std::fmt;

use proctor_core::digest::Sha256Digest;
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{Result, StoreError, classify};
use crate::ids::{AccountId, TokenId};
use crate::rows::{opt_text, opt_timestamp, parse_id, parse_text, timestamp};
use crate::store::{Store, Tx};
use crate::text_enum::text_enum;
use crate::time::Timestamp;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages accounts and tokens.
    Admin,
    /// Owns models.
    Vendor,
    /// Uploads evals and datasets, submits jobs.
    Evaluator,
    /// Reads attestations.
    Regulator,
}

/// An evaluator's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// A university or research group.
    Academic,
    /// An independent auditor.
    Auditor,
    /// A regulator's own evaluation team.
    Regulator,
    /// A company.
    Commercial,
}

text_enum!(
    Role,
    "role",
    Admin = "admin",
    Vendor = "vendor",
    Evaluator = "evaluator",
    Regulator = "regulator"
);
text_enum!(
    Tier,
    "tier",
    Academic = "academic",
    Auditor = "auditor",
    Regulator = "regulator",
    Commercial = "commercial"
);

/// An account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Its unique name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Set for evaluators only.
    pub tier: Option<Tier>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// An API token's metadata (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Its id.
    pub id: TokenId,
    /// Whose it is.
    pub account: AccountId,
    /// A label chosen when it was made.
    pub label: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A freshly made token: the only time its secret exists outside the caller's hands.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its metadata.
    pub info: TokenInfo,
    /// The bearer secret: `pct_` and 64 hex digits.
    pub secret: String,
}

impl fmt::Debug for NewToken {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

const ACCOUNT_COLUMNS: &str = "id, name, role, tier, created_at";
const TOKEN_COLUMNS: &str = "id, account_id, label, created_at, revoked_at";

fn account_from_row(row: &AnyRow) -> Result<Account> {
    Ok(Account {
        id: parse_id(row, "id")?,
        name: row.try_get("name")?,
        role: parse_text(row, "role")?,
        tier: opt_text(row, "tier")?,
        created_at: timestamp(row, "created_at")?,
    })
}

fn token_from_row(row: &AnyRow) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: parse_id(row, "id")?,
        account: parse_id(row, "account_id")?,
        label: row.try_get("label")?,
        created_at: timestamp(row, "created_at")?,
        revoked_at: opt_timestamp(row, "revoked_at")?,
    })
}

/// Creates the admin account `name` in `tx` ([`StoreError::Conflict`] when the name is taken).
async fn insert_admin(tx: &mut Tx, name: &str) -> Result<Account> {
    let sql = tx.backend.sql(&format!(
        "INSERT INTO accounts (id, name, role, tier, created_at) \
         VALUES ($1, $2, 'admin', NULL, {{now}}) RETURNING {ACCOUNT_COLUMNS}"
    ));
    let row = sqlx::query(&sql)
        .bind(AccountId::new().to_string())
        .bind(name)
        .fetch_one(&mut *tx.inner)
        .await
        .map_err(|e| classify(e, "account name", "account"))?;
    account_from_row(&row)
}

fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Invalid("system randomness"))?;
    Ok(format!("pct_{}", hex::encode(bytes)))
}

fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256Digest::of(secret.as_bytes()).0.to_vec()
}

impl Store {
    /// Creates an account. `tier` must be set for evaluators and only for them.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when the name is taken; [`StoreError::Invalid`] for a tier
    /// on a non-evaluator or an evaluator without one, or an empty name.
    pub async fn create_account(
        &self,
        name: &str,
        role: Role,
        tier: Option<Tier>,
    ) -> Result<Account> {
        if name.is_empty() {
            return Err(StoreError::Invalid("account name"));
        }
        if (role == Role::Evaluator) != tier.is_some() {
            return Err(StoreError::Invalid("tier"));
        }
        let sql = self.backend.sql(&format!(
            "INSERT INTO accounts (id, name, role, tier, created_at) \
             VALUES ($1, $2, $3, $4, {{now}}) RETURNING {ACCOUNT_COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(AccountId::new().to_string())
            .bind(name)
            .bind(role.as_str())
            .bind(tier.map(Tier::as_str))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| classify(e, "account name", "account"))?;
        account_from_row(&row)
    }

    /// The account with this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn account(&self, id: AccountId) -> Result<Account> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("account"))?;
        account_from_row(&row)
    }

    /// The account with this name.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn account_by_name(&self, name: &str) -> Result<Account> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("account"))?;
        account_from_row(&row)
    }

    /// Every account, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Makes a token for `account`; the returned secret is never stored and cannot be shown
    /// again.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`] for an unknown account.
    pub async fn create_token(&self, account: AccountId, label: &str) -> Result<NewToken> {
        let secret = new_secret()?;
        let sql = self.backend.sql(&format!(
            "INSERT INTO api_tokens (id, account_id, secret_sha256, label, created_at) \
             VALUES ($1, $2, $3, $4, {{now}}) RETURNING {TOKEN_COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(TokenId::new().to_string())
            .bind(account.to_string())
            .bind(secret_hash(&secret))
            .bind(label)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| classify(e, "token", "account"))?;
        Ok(NewToken {
            info: token_from_row(&row)?,
            secret,
        })
    }

    /// The account a bearer secret belongs to, or `None` for an unknown or revoked token.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn account_for_token(&self, secret: &str) -> Result<Option<Account>> {
        let sql = "SELECT a.id, a.name, a.role, a.tier, a.created_at FROM api_tokens t \
                   JOIN accounts a ON a.id = t.account_id \
                   WHERE t.secret_sha256 = $1 AND t.revoked_at IS NULL";
        let row = sqlx::query(sql)
            .bind(secret_hash(secret))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    /// The tokens of an account, revoked ones included.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn tokens_of(&self, account: AccountId) -> Result<Vec<TokenInfo>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE account_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(account.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// Revokes a token; revoking it again changes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError::NotFound`].
    pub async fn revoke_token(&self, token: TokenId) -> Result<()> {
        let sql = self
            .backend
            .sql("UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, {now}) WHERE id = $1");
        let done = sqlx::query(&sql)
            .bind(token.to_string())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("token"));
        }
        Ok(())
    }

    /// On first start: creates the admin account `name` and a token for it, in one
    /// transaction, if no admin exists yet; `None` if one does (also when another server won
    /// the race).
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`].
    pub async fn bootstrap_admin(&self, name: &str) -> Result<Option<(Account, NewToken)>> {
        let created = self
            .transaction(async |tx| {
                let existing: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE role = 'admin'")
                        .fetch_one(&mut *tx.inner)
                        .await?;
                if existing > 0 {
                    return Ok(None);
                }
                let account = insert_admin(tx, name).await?;
                let secret = new_secret()?;
                let sql = self.backend.sql(&format!(
                    "INSERT INTO api_tokens (id, account_id, secret_sha256, label, created_at) \
                     VALUES ($1, $2, $3, 'bootstrap', {{now}}) RETURNING {TOKEN_COLUMNS}"
                ));
                let row = sqlx::query(&sql)
                    .bind(TokenId::new().to_string())
                    .bind(account.id.to_string())
                    .bind(secret_hash(&secret))
                    .fetch_one(&mut *tx.inner)
                    .await?;
                let info = token_from_row(&row)?;
                Ok(Some((account, NewToken { info, secret })))
            })
            .await;
        match created {
            // Another server created an admin of this name between our count and our insert.
            Err(StoreError::Conflict(_)) => Ok(None),
            other => other,
        }
    }
}

/// A bearer secret in the form the service issues: `pct_` and 64 lowercase hex digits (256
/// bits). Given from outside (the first admin's `PROCTOR_ADMIN_TOKEN`), it is stored as any
/// token is, by its sha256; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(String);

impl TokenSecret {
    /// `text` as a secret, or `None` when it is not `pct_` and 64 lowercase hex digits.
    pub fn parse(text: &str) -> Option<TokenSecret> {
        let hex = text.strip_prefix("pct_")?;
        let well_formed =
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        well_formed.then(|| TokenSecret(text.to_owned()))
    }

    /// The secret itself, to send as a bearer token.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(..)")
    }
}

/// What [`Store::ensure_admin_token`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminToken {
    /// The secret is already a live token of this admin: nothing changed.
    Present(Account),
    /// The secret became a new token of this existing admin (the oldest).
    Added(Account),
    /// There was no admin: this one was created, with the secret as its token.
    Created(Account),
    /// The secret is a token that was revoked; it stays revoked.
    Revoked,
    /// The secret is a token of an account that is not an admin; nothing changed.
    NotAdmin,
}

impl Store {
    /// Makes sure `secret` is a live token of an admin: when no token has this secret, it
    /// becomes a token (labelled `PROCTOR_ADMIN_TOKEN`) of the oldest admin, or of a new admin
    /// named `name` when there is none. Idempotent; a replica starting at the same time with
    /// the same secret creates nothing twice. Other tokens, older admin secrets included, stay
    /// as they are.
    ///
    /// # Errors
    ///
    /// [`StoreError::Conflict`] when there is no admin and `name` is another account's;
    /// [`StoreError::Database`].
    pub async fn ensure_admin_token(&self, name: &str, secret: &TokenSecret) -> Result<AdminToken> {
        match self.try_ensure_admin_token(name, secret).await {
            // Another server inserted the same token or the same admin between our read and
            // our write: read again, once.
            Err(StoreError::Conflict(_)) => self.try_ensure_admin_token(name, secret).await,
            other => other,
        }
    }

    async fn try_ensure_admin_token(&self, name: &str, secret: &TokenSecret) -> Result<AdminToken> {
        let hash = secret_hash(secret.expose());
        self.transaction(async |tx| {
            let sql = "SELECT a.id, a.name, a.role, a.tier, a.created_at, t.revoked_at \
                       FROM api_tokens t JOIN accounts a ON a.id = t.account_id \
                       WHERE t.secret_sha256 = $1";
            let existing = sqlx::query(sql)
                .bind(hash.clone())
                .fetch_optional(&mut *tx.inner)
                .await?;
            if let Some(row) = existing {
                let account = account_from_row(&row)?;
                return Ok(match (account.role, opt_timestamp(&row, "revoked_at")?) {
                    (Role::Admin, None) => AdminToken::Present(account),
                    (Role::Admin, Some(_)) => AdminToken::Revoked,
                    _ => AdminToken::NotAdmin,
                });
            }
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE role = 'admin' \
                 ORDER BY created_at, id LIMIT 1"
            );
            let oldest = sqlx::query(&sql).fetch_optional(&mut *tx.inner).await?;
            let (account, created) = match oldest {
                Some(row) => (account_from_row(&row)?, false),
                None => (insert_admin(tx, name).await?, true),
            };
            let sql = self.backend.sql(
                "INSERT INTO api_tokens (id, account_id, secret_sha256, label, created_at) \
                 VALUES ($1, $2, $3, 'PROCTOR_ADMIN_TOKEN', {now})",
            );
            sqlx::query(&sql)
                .bind(TokenId::new().to_string())
                .bind(account.id.to_string())
                .bind(hash)
                .execute(&mut *tx.inner)
                .await
                .map_err(|e| classify(e, "token", "account"))?;
            Ok(if created {
                AdminToken::Created(account)
            } else {
                AdminToken::Added(account)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::TokenSecret;

    #[test]
    fn a_token_secret_is_pct_and_64_lowercase_hex_digits() {
        let good = format!("pct_{}", "0123456789abcdef".repeat(4));
        assert_eq!(
            TokenSecret::parse(&good).map(|s| s.expose().to_owned()),
            Some(good.clone())
        );
        assert!(TokenSecret::parse(&good.to_uppercase()).is_none());
        assert!(TokenSecret::parse(&good.replace("pct_", "pat_")).is_none());
        assert!(TokenSecret::parse(&good[..good.len() - 1]).is_none());
        assert!(TokenSecret::parse(&format!("{good}0")).is_none());
        assert!(TokenSecret::parse(&format!("{good}\n")).is_none());
        assert!(TokenSecret::parse("").is_none());
        assert!(TokenSecret::parse(&good.replace('a', "g")).is_none());
        assert_eq!(
            format!("{:?}", TokenSecret::parse(&good)),
            "Some(TokenSecret(..))"
        );
    }
}

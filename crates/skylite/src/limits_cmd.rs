//! The per-database limit flags of `skylite db create` and `skylite db set`, and `db set`
//! itself (`PATCH /v1/admin/databases/NAME`).
//!
//! `--max-size-bytes N`, `--statement-timeout-ms N`, `--txn-timeout-ms N`; on `db set`, the
//! value `none` clears a limit (the server's flag applies again) and a flag left out keeps it.

use clap::Args;
use hyper::Method;
use serde_json::{Map, Value};

use crate::remote::{Server, ServerArgs};

/// The limit flags.
#[derive(Args, Default)]
pub struct LimitArgs {
    /// Largest database size in bytes (writes beyond it fail with DATABASE_FULL; reads go on).
    #[arg(long, value_name = "BYTES|none")]
    max_size_bytes: Option<String>,
    /// Longest a statement may run on this database, in milliseconds (0: no limit).
    #[arg(long, value_name = "MS|none")]
    statement_timeout_ms: Option<String>,
    /// Longest a transaction may hold the write lock while others wait, in milliseconds.
    #[arg(long, value_name = "MS|none")]
    txn_timeout_ms: Option<String>,
}

impl LimitArgs {
    /// The `limits` object of the admin API: given flags only; `none` is `null`.
    pub fn to_json(&self) -> Result<Map<String, Value>, String> {
        let mut limits = Map::new();
        for (key, value) in [
            ("max_size_bytes", &self.max_size_bytes),
            ("statement_timeout_ms", &self.statement_timeout_ms),
            ("txn_timeout_ms", &self.txn_timeout_ms),
        ] {
            let Some(value) = value else { continue };
            let json = if value.eq_ignore_ascii_case("none") {
                Value::Null
            } else {
                let n: u64 = value.trim().parse().map_err(|_| {
                    format!(
                        "--{}: expected a number or `none`, got {value:?}",
                        key.replace('_', "-")
                    )
                })?;
                Value::from(n)
            };
            limits.insert(key.to_owned(), json);
        }
        Ok(limits)
    }
}

/// `skylite db set NAME --max-size-bytes ...`.
#[derive(Args)]
pub struct SetArgs {
    /// The database.
    name: String,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    server: ServerArgs,
}

/// Changes a database's limits and prints them.
pub async fn set(args: SetArgs) -> anyhow::Result<()> {
    let limits = args.limits.to_json().map_err(anyhow::Error::msg)?;
    if limits.is_empty() {
        anyhow::bail!(
            "nothing to set: give --max-size-bytes, --statement-timeout-ms or --txn-timeout-ms"
        );
    }
    let server = Server::new(&args.server.resolve()?)?;
    let answer = server
        .json(
            Method::PATCH,
            &format!("/v1/admin/databases/{}", args.name),
            Some(serde_json::json!({ "limits": limits })),
        )
        .await
        .map_err(|e| e.doing(format_args!("cannot change the limits of `{}`", args.name)))?;
    println!("limits of `{}`: {}", args.name, answer["limits"]);
    Ok(())
}

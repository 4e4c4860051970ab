//! The blocking client against a server, no async anywhere: reads SKYLITE_URL and
//! SKYLITE_AUTH_TOKEN (or TURSO_*, LIBSQL_*, or a `.env` file).
//!
//! ```sh
//! export SKYLITE_URL=http://127.0.0.1:8080 SKYLITE_AUTH_TOKEN=$(skylite token create --data-dir ./skylite-data)
//! cargo run -p skylite-client --example blocking_remote
//! ```

use skylite_client::blocking::Client;

fn main() -> skylite_client::Result<()> {
    let db = Client::from_env()?;
    db.execute_multiple(
        "CREATE TABLE IF NOT EXISTS example_counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
         INSERT OR IGNORE INTO example_counters VALUES ('visits', 0);",
    )?;

    let tx = db.transaction()?;
    tx.execute(
        "UPDATE example_counters SET n = n + 1 WHERE name = ?",
        ["visits"],
    )?;
    let rows = tx.execute("SELECT n FROM example_counters WHERE name = ?", ["visits"])?;
    let n: i64 = match rows.first() {
        Some(row) => row.get("n")?,
        None => 0,
    };
    tx.commit()?;
    println!("visits: {n}");
    Ok(())
}

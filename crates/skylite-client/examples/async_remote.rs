//! The async client against a server: reads SKYLITE_URL and SKYLITE_AUTH_TOKEN (or TURSO_*,
//! LIBSQL_*, or a `.env` file), then creates a table, writes with a batch and a transaction,
//! and reads the rows back into a struct.
//!
//! ```sh
//! export SKYLITE_URL=http://127.0.0.1:8080 SKYLITE_AUTH_TOKEN=$(skylite token create --data-dir ./skylite-data)
//! cargo run -p skylite-client --example async_remote
//! ```

use serde::Deserialize;
use skylite_client::{named_params, Client, Statement};

#[derive(Debug, Deserialize)]
struct Note {
    id: i64,
    body: String,
    stars: Option<i64>,
}

#[tokio::main]
async fn main() -> skylite_client::Result<()> {
    let db = Client::from_env().await?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS example_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, stars INTEGER)",
        (),
    )
    .await?;

    // All or nothing.
    db.batch([
        Statement::with_params("INSERT INTO example_notes (body) VALUES (?)", ["first"]),
        Statement::with_params(
            "INSERT INTO example_notes (body, stars) VALUES (?, ?)",
            ("second", 5),
        ),
    ])
    .await?;

    // An interactive transaction; dropping it without commit would roll it back.
    let tx = db.transaction().await?;
    tx.execute(
        "UPDATE example_notes SET stars = coalesce(stars, 0) + :n",
        named_params! { ":n" => 1 },
    )
    .await?;
    tx.commit().await?;

    let rows = db
        .execute(
            "SELECT id, body, stars FROM example_notes ORDER BY id DESC LIMIT 5",
            (),
        )
        .await?;
    for note in rows.deserialize::<Note>()? {
        println!("{:>4}  {:<20} {:?}", note.id, note.body, note.stars);
    }

    // Errors carry SQLite's code.
    if let Err(e) = db
        .execute("INSERT INTO example_notes (body) VALUES (NULL)", ())
        .await
    {
        println!("expected failure: {:?} ({e})", e.sqlite_code());
    }
    Ok(())
}

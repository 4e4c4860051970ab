//! A local SQLite file on the same engine, no server: the same API as for a server, in both
//! flavours. The file is `./example-local.db` unless a path is given.
//!
//! ```sh
//! cargo run -p skylite-client --example local_file -- /tmp/app.db
//! ```

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Item {
    id: i64,
    name: String,
    data: Vec<u8>,
}

fn main() -> skylite_client::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "example-local.db".into());
    let url = format!("file:{path}");

    // Blocking.
    let db = skylite_client::blocking::Client::connect(&url, "")?;
    db.execute(
        "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)",
        (),
    )?;
    db.execute(
        "INSERT INTO items (name, data) VALUES (?, ?)",
        ("blocking", vec![0u8, 1, 2]),
    )?;

    // Async, on the same file.
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let db = skylite_client::Client::connect(&url, "").await?;
        db.execute(
            "INSERT INTO items (name, data) VALUES (?, ?)",
            ("async", vec![3u8, 0, 4]),
        )
        .await?;
        let items: Vec<Item> = db
            .execute("SELECT * FROM items ORDER BY id", ())
            .await?
            .deserialize()?;
        for item in items {
            println!("{:>4}  {:<10} {:?}", item.id, item.name, item.data);
        }
        Ok::<_, skylite_client::Error>(())
    })?;
    Ok(())
}

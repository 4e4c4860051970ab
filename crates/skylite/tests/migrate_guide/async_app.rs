use skylite_client::Client;

#[tokio::main]
async fn main() -> skylite_client::Result<()> {
    let db = Client::from_env().await?; // SKYLITE_URL and SKYLITE_AUTH_TOKEN from .env
    for row in &db.execute("SELECT id, name FROM users ORDER BY id", ()).await? {
        println!("{} {}", row.get::<i64>("id")?, row.get::<String>("name")?);
    }
    Ok(())
}

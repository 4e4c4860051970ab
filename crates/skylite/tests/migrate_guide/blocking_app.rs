use skylite_client::blocking::Client;

fn main() -> skylite_client::Result<()> {
    let db = Client::from_env()?; // SKYLITE_URL and SKYLITE_AUTH_TOKEN from .env
    #[derive(serde::Deserialize)]
    struct User { id: i64, name: String }
    let users: Vec<User> = db.execute("SELECT id, name FROM users ORDER BY id", ())?.deserialize()?;
    for u in users {
        println!("{} {}", u.id, u.name);
    }
    Ok(())
}

import { createClient } from "@libsql/client";

process.loadEnvFile(".env"); // the lines `skylite db env app --write` appended
const db = createClient({
  url: process.env.TURSO_DATABASE_URL, // http://host:8080/db/app/ (keep the trailing slash)
  authToken: process.env.TURSO_AUTH_TOKEN,
});
const { rows } = await db.execute("SELECT id, name FROM users ORDER BY id");
for (const row of rows) console.log(row.id, row.name);
db.close();

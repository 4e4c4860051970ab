import { createClient, type Client, type ResultSet, type Row } from "@libsql/client";

interface User {
  id: number;
  name: string;
}

function toUser(row: Row): User {
  if (typeof row.id !== "number" || typeof row.name !== "string") {
    throw new TypeError("expected users(id INTEGER, name TEXT)");
  }
  return { id: row.id, name: row.name };
}

process.loadEnvFile(".env"); // the lines `skylite db env app --write` appended
const url = process.env.TURSO_DATABASE_URL; // http://host:8080/db/app/ (keep the trailing slash)
if (url === undefined) throw new Error("TURSO_DATABASE_URL is not set");
const db: Client = createClient({ url, authToken: process.env.TURSO_AUTH_TOKEN });
const result: ResultSet = await db.execute("SELECT id, name FROM users ORDER BY id");
const users: User[] = result.rows.map(toUser);
for (const user of users) console.log(user.id, user.name);
db.close();

import asyncio
import os

from dotenv import load_dotenv
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

load_dotenv(".env")  # the lines `skylite db env app --write` appended


def database_url() -> str:
    """Before: "sqlite+aiosqlite:///app.db". Now the skylite database named in .env."""
    url = os.environ["TURSO_DATABASE_URL"].rstrip("/")  # http://host:8080/db/app
    secure = "true" if url.startswith(("https://", "libsql://")) else "false"
    token = os.environ["TURSO_AUTH_TOKEN"]
    return f"sqlite+skylite://{url.split('://', 1)[1]}?secure={secure}&authToken={token}"


async def main() -> None:
    engine = create_async_engine(database_url())  # still async end to end
    async with engine.connect() as conn:
        for row in await conn.execute(text("SELECT id, name FROM users ORDER BY id")):
            print(row.id, row.name)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())

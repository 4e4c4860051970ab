import os

from dotenv import load_dotenv
from sqlalchemy import create_engine, text

load_dotenv(".env")  # the lines `skylite db env app --write` appended
url = os.environ["TURSO_DATABASE_URL"].rstrip("/")  # http://host:8080/db/app
secure = "true" if url.startswith("https://") else "false"
engine = create_engine(f"sqlite+libsql://{url.split('://', 1)[1]}?secure={secure}",
                       connect_args={"auth_token": os.environ["TURSO_AUTH_TOKEN"]})
with engine.connect() as conn:
    for row in conn.execute(text("SELECT id, name FROM users ORDER BY id")):
        print(row.id, row.name)

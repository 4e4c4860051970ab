"""A FastAPI app on async SQLAlchemy (ORM) over skylite: the shape of a real service.

Configuration comes from the environment or `.env` (see `.env.example`):
SKYLITE_URL (e.g. http://127.0.0.1:8080/db/app) and SKYLITE_AUTH_TOKEN. The schema is
managed by Alembic (`alembic upgrade head`, migrations/ beside this file).

    uvicorn app:app
"""
import os
import urllib.parse

from dotenv import load_dotenv
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

load_dotenv()


def database_url() -> str:
    """The SQLAlchemy URL for SKYLITE_URL + SKYLITE_AUTH_TOKEN."""
    url = urllib.parse.urlsplit(os.environ["SKYLITE_URL"])
    query = {"secure": "true" if url.scheme in ("https", "libsql", "wss") else "false"}
    token = os.environ.get("SKYLITE_AUTH_TOKEN")
    if token:
        query["authToken"] = token
    return f"sqlite+skylite://{url.netloc}{url.path or '/'}?{urllib.parse.urlencode(query)}"


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    done: Mapped[bool] = mapped_column(default=False)


engine = create_async_engine(database_url(), pool_pre_ping=True)
Session = async_sessionmaker(engine, expire_on_commit=False)
app = FastAPI(title="notes")


async def session():
    async with Session() as s:
        yield s


class NoteIn(BaseModel):
    title: str
    done: bool = False


class NoteOut(NoteIn):
    id: int


@app.post("/notes", response_model=NoteOut, status_code=201)
async def create_note(note: NoteIn, s: AsyncSession = Depends(session)):
    row = Note(title=note.title, done=note.done)
    s.add(row)
    await s.commit()
    return NoteOut(id=row.id, title=row.title, done=row.done)


@app.get("/notes", response_model=list[NoteOut])
async def list_notes(s: AsyncSession = Depends(session)):
    rows = (await s.scalars(select(Note).order_by(Note.id))).all()
    return [NoteOut(id=r.id, title=r.title, done=r.done) for r in rows]


@app.get("/notes/{note_id}", response_model=NoteOut)
async def get_note(note_id: int, s: AsyncSession = Depends(session)):
    row = await s.get(Note, note_id)
    if row is None:
        raise HTTPException(404, "no such note")
    return NoteOut(id=row.id, title=row.title, done=row.done)


@app.post("/notes/{note_id}/done", response_model=NoteOut)
async def finish_note(note_id: int, s: AsyncSession = Depends(session)):
    row = await s.get(Note, note_id)
    if row is None:
        raise HTTPException(404, "no such note")
    row.done = True
    await s.commit()
    return NoteOut(id=row.id, title=row.title, done=row.done)

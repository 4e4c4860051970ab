"""A tiny bookshelf app on SQLAlchemy 2 ORM + sqlalchemy-libsql, configured like a Turso app.

Configuration comes from a `.env` file (python-dotenv), with the variables Turso users set:
    TURSO_DATABASE_URL=libsql://my-db-org.turso.io    (or http://127.0.0.1:8080 for a plain-http server)
    TURSO_AUTH_TOKEN=...                               (optional)
sqlalchemy-libsql wants `sqlite+libsql://HOST[:PORT]/?secure=true|false`: secure=false selects
plain http, secure=true https; the token goes in connect_args["auth_token"].
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit

from dotenv import load_dotenv
from sqlalchemy import Engine, ForeignKey, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.types import UserDefinedType


class Blob(UserDefinedType):
    """BLOB column passing bytes through as-is. SQLAlchemy's LargeBinary needs the DB-API
    `Binary` constructor, which libsql-experimental (the driver under sqlalchemy-libsql) lacks."""

    cache_ok = True

    def get_col_spec(self, **kw):
        return "BLOB"


def engine_from_env(env_file: str | os.PathLike | None = None) -> Engine:
    """Builds the engine from TURSO_DATABASE_URL / TURSO_AUTH_TOKEN (loaded from .env)."""
    load_dotenv(env_file, override=True)
    url = urlsplit(os.environ["TURSO_DATABASE_URL"])
    if url.scheme not in ("libsql", "https", "http"):
        raise ValueError(f"unsupported TURSO_DATABASE_URL scheme {url.scheme!r}")
    secure = "false" if url.scheme == "http" else "true"
    token = os.environ.get("TURSO_AUTH_TOKEN") or None
    return create_engine(
        f"sqlite+libsql://{url.netloc}{url.path or '/'}?secure={secure}",
        connect_args={"auth_token": token} if token else {},
    )


def make_models(prefix: str = ""):
    """Returns (Base, Author, Book); `prefix` lets several copies share one database."""

    class Base(DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = f"{prefix}authors"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(100), unique=True)
        books: Mapped[list["Book"]] = relationship(
            back_populates="author", cascade="all, delete-orphan", order_by="Book.id"
        )

    class Book(Base):
        __tablename__ = f"{prefix}books"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str] = mapped_column(String(200))
        year: Mapped[int | None]
        rating: Mapped[float | None]
        cover: Mapped[bytes | None] = mapped_column(Blob())
        author_id: Mapped[int] = mapped_column(ForeignKey(f"{prefix}authors.id"))
        author: Mapped[Author] = relationship(back_populates="books")

    return Base, Author, Book


class Bookshelf:
    """The app's operations, each in its own session/transaction."""

    def __init__(self, engine: Engine, prefix: str = ""):
        self.engine = engine
        self.Base, self.Author, self.Book = make_models(prefix)

    def create_schema(self) -> None:
        self.Base.metadata.create_all(self.engine)

    def add_author(self, name: str, books: list[dict]) -> int:
        with Session(self.engine) as s, s.begin():
            author = self.Author(name=name, books=[self.Book(**b) for b in books])
            s.add(author)
            s.flush()
            return author.id

    def titles_by(self, name: str) -> list[str]:
        with Session(self.engine) as s:
            author = s.scalars(select(self.Author).where(self.Author.name == name)).one()
            return [b.title for b in author.books]

    def book(self, title: str):
        with Session(self.engine, expire_on_commit=False) as s:
            return s.scalars(select(self.Book).where(self.Book.title == title)).one_or_none()

    def retitle(self, old: str, new: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.scalars(select(self.Book).where(self.Book.title == old)).one().title = new

    def delete_author(self, name: str) -> None:
        with Session(self.engine) as s, s.begin():
            s.delete(s.scalars(select(self.Author).where(self.Author.name == name)).one())

    def counts(self) -> tuple[int, int]:
        with Session(self.engine) as s:
            return (
                s.scalar(select(func.count()).select_from(self.Author)),
                s.scalar(select(func.count()).select_from(self.Book)),
            )

    def import_then_abandon(self, name: str, titles: list[str]) -> None:
        """Adds an author and books, sends them to the database, then rolls back."""
        with Session(self.engine) as s:
            s.add(self.Author(name=name, books=[self.Book(title=t) for t in titles]))
            s.flush()
            s.rollback()

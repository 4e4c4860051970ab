"""Tiny SQLAlchemy + sqlalchemy-libsql app used by test_sqlalchemy_app.py."""

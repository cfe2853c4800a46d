"""Screening progress (each user's position per image) in PostgreSQL: exactvc.screening.ScreeningStore."""

from __future__ import annotations

import json
from typing import Any

from .postgres import Database


class PgScreeningStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, repo: str, image: str, user: str) -> dict[str, Any] | None:
        with self.db.tx() as cur:
            cur.execute("SELECT state FROM screening WHERE repo = %s AND image = %s AND who = %s", (repo, image, user))
            row = cur.fetchone()
        return json.loads(row[0]) if row else None

    def put(self, repo: str, image: str, user: str, state: dict[str, Any]) -> None:
        with self.db.tx() as cur:
            cur.execute("INSERT INTO screening (repo, image, who, state) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (repo, image, who) DO UPDATE SET state = EXCLUDED.state",
                        (repo, image, user, json.dumps(state)))

    def reset(self, repo: str, image: str, user: str) -> None:
        with self.db.tx() as cur:
            cur.execute("DELETE FROM screening WHERE repo = %s AND image = %s AND who = %s", (repo, image, user))

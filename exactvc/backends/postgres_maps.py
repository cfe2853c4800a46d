"""Open annotation maps in PostgreSQL (every server process on the database): exactvc.mapstore.MapStore."""

from __future__ import annotations

import json
import time

from ..mapstore import MapRecord, _who, spec_json, spec_of
from .postgres import Database


class PgMapStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, rec: MapRecord, opener: str | None) -> None:
        with self.db.tx() as cur:
            cur.execute('INSERT INTO maps (id, repo, "commit", spec, created) VALUES (%s, %s, %s, %s, %s) '
                        "ON CONFLICT (id) DO NOTHING",
                        (rec.map_id, rec.repo, rec.commit, spec_json(rec.spec), time.time()))
            cur.execute("INSERT INTO map_openers (id, who) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (rec.map_id, _who(opener)))

    def get(self, map_id: str) -> MapRecord | None:
        with self.db.tx() as cur:
            cur.execute('SELECT repo, "commit", spec FROM maps WHERE id = %s', (map_id,))
            row = cur.fetchone()
        return None if row is None else MapRecord(map_id, row[0], row[1], spec_of(json.loads(row[2])))

    def opened_by(self, map_id: str, user: str | None) -> bool:
        with self.db.tx() as cur:
            cur.execute("SELECT 1 FROM map_openers WHERE id = %s AND who = %s", (map_id, _who(user)))
            return cur.fetchone() is not None

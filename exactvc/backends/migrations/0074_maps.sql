-- open annotation maps (exactvc/mapstore.py): any server process resolves a map id another one answered
-- (its repository, commit and spec rebuild the same layout); who opened it (the blind-mode rule)
CREATE TABLE IF NOT EXISTS maps (
    id       text PRIMARY KEY,
    repo     text NOT NULL,
    "commit" text NOT NULL,
    spec     text NOT NULL,
    created  double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS map_openers (
    id  text NOT NULL REFERENCES maps (id) ON DELETE CASCADE,
    who text NOT NULL,
    PRIMARY KEY (id, who)
);

-- background jobs (detector runs) of every server process on this database: polled and cancelled from any
-- process; a running job whose heartbeat is old is failed by the reader (exactvc/jobs.py)
CREATE TABLE IF NOT EXISTS jobs (
    id        text PRIMARY KEY,
    repo      text NOT NULL,
    "user"    text NOT NULL,
    plugin    text NOT NULL,
    image     text NOT NULL,
    state     text NOT NULL,
    progress  double precision NOT NULL,
    message   text NOT NULL,
    result    text,
    error     text,
    owner     text NOT NULL,
    created   double precision NOT NULL,
    heartbeat double precision NOT NULL,
    cancel    boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS jobs_by_repo ON jobs (repo, created);

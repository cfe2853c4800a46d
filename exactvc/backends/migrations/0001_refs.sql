-- refs of every repository, moved by compare-and-swap; every move logged
CREATE TABLE IF NOT EXISTS refs (
    repo   text NOT NULL,
    name   text NOT NULL,
    target bytea NOT NULL,
    PRIMARY KEY (repo, name)
);
CREATE TABLE IF NOT EXISTS heads (
    repo  text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS reflog (
    id      bigserial PRIMARY KEY,
    repo    text NOT NULL,
    name    text NOT NULL,
    old     text NOT NULL,
    new     text NOT NULL,
    time    bigint NOT NULL,
    who     text NOT NULL,
    message text NOT NULL
);
CREATE INDEX IF NOT EXISTS reflog_ref ON reflog (repo, name, id);

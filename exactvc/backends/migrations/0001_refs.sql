-- refs, HEAD and the reflog of every repository; one row per ref
CREATE TABLE refs (
    repo   text  NOT NULL,
    name   text  NOT NULL,
    target bytea NOT NULL,
    PRIMARY KEY (repo, name)
);
CREATE TABLE heads (
    repo  text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE reflog (
    id      bigserial PRIMARY KEY,
    repo    text   NOT NULL,
    name    text   NOT NULL,
    old     text   NOT NULL,
    new     text   NOT NULL,
    time    bigint NOT NULL,
    who     text   NOT NULL,
    message text   NOT NULL
);
CREATE INDEX reflog_by_ref ON reflog (repo, name, id);

-- the server's own data (what SQLite keeps in ROOT/.exact-server.sqlite, .exact-screening.sqlite and
-- .exact-compat.sqlite without --db): users, tokens (hashed), passwords (argon2id), sessions (hashed),
-- sign-in limits, teams, roles, repository settings, pull requests, screening progress, EXACT ids
CREATE TABLE users (
    id         bigserial PRIMARY KEY,
    name       text    NOT NULL UNIQUE,
    active     boolean NOT NULL,
    site_admin boolean NOT NULL DEFAULT false,
    created    bigint  NOT NULL
);
CREATE TABLE tokens (
    hash    text   PRIMARY KEY,
    user_id bigint NOT NULL,
    created bigint NOT NULL
);
CREATE INDEX tokens_user ON tokens (user_id);
CREATE TABLE teams (name text PRIMARY KEY);
CREATE TABLE team_members (
    team    text   NOT NULL,
    user_id bigint NOT NULL,
    PRIMARY KEY (team, user_id)
);
CREATE TABLE roles (
    repo text NOT NULL,
    kind text NOT NULL,
    who  text NOT NULL,
    role text NOT NULL,
    PRIMARY KEY (repo, kind, who)
);
CREATE TABLE passwords (
    user_id bigint PRIMARY KEY,
    hash    text   NOT NULL,
    updated bigint NOT NULL
);
CREATE TABLE sessions (
    hash      text   PRIMARY KEY,
    user_id   bigint NOT NULL,
    csrf      text   NOT NULL,
    created   bigint NOT NULL,
    last_seen bigint NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
-- keys of sign-in limits and of EXACT ids hold NUL separators: bytea (UTF-8), as text cannot
CREATE TABLE login_failures (
    key   bytea   PRIMARY KEY,
    count integer NOT NULL,
    first bigint  NOT NULL
);
CREATE TABLE repo_settings (
    repo               text    PRIMARY KEY,
    anonymous_read     boolean NOT NULL DEFAULT false,
    protected          text    NOT NULL DEFAULT 'main',
    required_approvals integer NOT NULL DEFAULT 0,
    mode               text    NOT NULL DEFAULT 'cooperative',
    opinions           integer NOT NULL DEFAULT 1
);
-- bumped by every change to users, tokens, passwords, teams, roles or settings: caches key on it
CREATE TABLE access_version (one boolean PRIMARY KEY DEFAULT true CHECK (one), v bigint NOT NULL);
INSERT INTO access_version VALUES (true, 0);

CREATE TABLE pulls (
    repo          text    NOT NULL,
    number        integer NOT NULL,
    title         text    NOT NULL,
    body          text    NOT NULL,
    author        text    NOT NULL,
    state         text    NOT NULL,
    source        text    NOT NULL,
    target        text    NOT NULL,
    base          text    NOT NULL,
    head          text    NOT NULL,
    created       bigint  NOT NULL,
    updated       bigint  NOT NULL,
    merge_commit  text,
    review_commit text,
    origin        text,
    PRIMARY KEY (repo, number)
);
CREATE TABLE pull_numbers (repo text PRIMARY KEY, last integer NOT NULL);
CREATE TABLE pull_revisions (
    repo    text    NOT NULL,
    number  integer NOT NULL,
    seq     integer NOT NULL,
    head    text    NOT NULL,
    base    text    NOT NULL,
    created bigint  NOT NULL,
    PRIMARY KEY (repo, number, seq)
);
CREATE TABLE pull_reviews (
    id      bigserial PRIMARY KEY,
    repo    text    NOT NULL,
    number  integer NOT NULL,
    author  text    NOT NULL,
    kind    text    NOT NULL,
    body    text    NOT NULL,
    head    text    NOT NULL,
    created bigint  NOT NULL
);
CREATE INDEX pull_reviews_by_pull ON pull_reviews (repo, number, id);
CREATE TABLE pull_comments (
    id       bigserial PRIMARY KEY,
    repo     text    NOT NULL,
    number   integer NOT NULL,
    thread   bigint,
    author   text    NOT NULL,
    body     text    NOT NULL,
    head     text    NOT NULL,
    anchor   text,
    resolved boolean NOT NULL DEFAULT false,
    created  bigint  NOT NULL
);
CREATE INDEX pull_comments_by_pull ON pull_comments (repo, number, id);
CREATE TABLE pull_decisions (
    repo       text    NOT NULL,
    number     integer NOT NULL,
    image      text    NOT NULL,
    annotation text    NOT NULL,
    decision   text    NOT NULL,
    version    text    NOT NULL,
    author     text    NOT NULL,
    created    bigint  NOT NULL,
    PRIMARY KEY (repo, number, image, annotation)
);
CREATE TABLE pull_checks (
    repo   text    NOT NULL,
    number integer NOT NULL,
    head   text    NOT NULL,
    result text    NOT NULL,
    PRIMARY KEY (repo, number, head)
);
CREATE TABLE pull_overrides (
    repo    text    NOT NULL,
    number  integer NOT NULL,
    head    text    NOT NULL,
    author  text    NOT NULL,
    created bigint  NOT NULL,
    PRIMARY KEY (repo, number, head)
);

CREATE TABLE screening (
    repo  text NOT NULL,
    image text NOT NULL,
    who   text NOT NULL,
    state text NOT NULL,
    PRIMARY KEY (repo, image, who)
);

CREATE TABLE compat_ids (
    kind text   NOT NULL,
    num  bigint NOT NULL,
    key  bytea  NOT NULL,
    PRIMARY KEY (kind, num),
    UNIQUE (kind, key)
);
CREATE TABLE compat_counters (kind text PRIMARY KEY, last bigint NOT NULL);
CREATE TABLE compat_settings (repo text PRIMARY KEY, read_branch text NOT NULL);

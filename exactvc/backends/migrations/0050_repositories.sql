-- the repositories of a server on shared backends: any machine's ROOT makes its folder for one on first use
-- (numbered apart from the metadata stores' migrations, which are numbered from 0002)
CREATE TABLE IF NOT EXISTS repositories (
    name    text PRIMARY KEY,
    config  jsonb NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);

-- Personal access tokens, by the SHA-256 of the token; revoking deletes.
CREATE TABLE berth_oauth_pats (
    token_hash TEXT NOT NULL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    info       TEXT NOT NULL
);

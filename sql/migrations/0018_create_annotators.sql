-- Who may label a queue: one row per invited annotator, holding only the SHA-256 of the token
-- in their link (the token itself is shown once, by `assay annotate invite`). A request body
-- never names its annotator; the token (or a trusted proxy's header) does.
CREATE TABLE assay.annotators (
    queue_id      bigint NOT NULL REFERENCES assay.annotation_queues ON DELETE CASCADE,
    annotator     text NOT NULL,        -- normalised: NFKC, casefolded, one script
    token_sha256  text NOT NULL UNIQUE,
    invited_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    PRIMARY KEY (queue_id, annotator)
);

-- Golden datasets: named sets of items (an input, optional context and expected answer). Items
-- are immutable: an edit writes the next revision and retires the one before, so a check can
-- always say exactly which items it ran on (the dataset's content digest).
CREATE TABLE assay.datasets (
    name         text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    description  text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assay.dataset_items (
    dataset            text NOT NULL REFERENCES assay.datasets (name) ON DELETE CASCADE,
    item_id            text NOT NULL,
    revision           integer NOT NULL CHECK (revision >= 1),
    input              text NOT NULL,
    context            jsonb NOT NULL DEFAULT '[]'::jsonb,
    expected           text,
    tags               text[] NOT NULL DEFAULT '{}',
    metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
    source_deployment  text,
    source_log_id      text,
    content_hash       text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    retired_at         timestamptz,
    PRIMARY KEY (dataset, item_id, revision)
);
-- At most one current revision per item.
CREATE UNIQUE INDEX dataset_items_current ON assay.dataset_items (dataset, item_id)
    WHERE retired_at IS NULL;

-- KB-4410 §F: per-family configuration (cutoffs, and later the family flag
-- birth_admission_required of KB-7D57 step 11). Empty as found.
CREATE TABLE dot_config (
  collection_name varchar NOT NULL,
  config_key      varchar NOT NULL,
  config_value    jsonb NOT NULL,
  updated_at      timestamptz NOT NULL DEFAULT now(),
  updated_by      varchar,
  CONSTRAINT dot_config_pkey PRIMARY KEY (collection_name, config_key)
);

"""Versioned migrations of the catalog, for both engines. Append a new entry to MIGRATIONS; never edit one that has
shipped. The few words the engines spell differently are placeholders, filled in by ``migrations``; a migration
that only one engine needs is a dict by engine (the other records the version and runs nothing)."""

from __future__ import annotations

DIALECT_WORDS = {
    "duckdb": {"uncompressed": " USING COMPRESSION uncompressed", "floats": "FLOAT[]", "length": "len",
               "uint64": "UBIGINT", "trigram_index": ""},
    # PostgreSQL has no unsigned 64-bit integer: NUMERIC(20) holds every perceptual hash exactly.
    "postgresql": {"uncompressed": "", "floats": "REAL[]", "length": "cardinality", "uint64": "NUMERIC(20)",
                   # Substring search (q=) as LIKE '%...%' over a trigram index instead of a scan of every row.
                   "trigram_index": "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE INDEX assets_search_text_trigrams "
                                    "ON assets USING gin (search_text gin_trgm_ops);"},
}  # fmt: skip

MIGRATIONS: list[tuple[int, str | dict[str, str]]] = [
    (
        1,
        """
        CREATE TABLE assets (
            id VARCHAR PRIMARY KEY,
            owner VARCHAR NOT NULL,
            type VARCHAR NOT NULL DEFAULT 'image',
            status VARCHAR NOT NULL,
            original_file_name VARCHAR NOT NULL,
            content_type VARCHAR NOT NULL,
            extension VARCHAR NOT NULL,
            size BIGINT NOT NULL,
            width INTEGER,
            height INTEGER,
            checksum_sha256 VARCHAR NOT NULL,
            storage_provider VARCHAR NOT NULL,
            storage_profile_id VARCHAR,
            -- Unique by construction (it holds the asset's own id). No UNIQUE constraint: its index doubled
            -- the cost of every insert, and lookups by key are pruned by zone maps (keys grow with time).
            storage_key VARCHAR NOT NULL,
            is_public BOOLEAN NOT NULL,
            description VARCHAR,
            alt_text VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            -- lower(file name, description, alt text): what `q` searches. Kept uncompressed: scanning it is
            -- then about twice as fast, which keeps search at a million assets well under 50 ms.
            search_text VARCHAR{uncompressed}
        );
        CREATE TABLE derivatives (
            asset_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            content_type VARCHAR NOT NULL,
            extension VARCHAR NOT NULL,
            size BIGINT NOT NULL,
            width INTEGER,
            height INTEGER,
            checksum_sha256 VARCHAR NOT NULL,
            storage_key VARCHAR NOT NULL,  -- unique by construction, as for assets
            created_at TIMESTAMP NOT NULL,
            -- copies of the asset's owner and visibility, so usage stats filter one table instead of joining
            owner VARCHAR NOT NULL,
            is_public BOOLEAN NOT NULL,
            PRIMARY KEY (asset_id, kind)
        );
        CREATE TABLE structured_results (
            asset_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            payload_json VARCHAR NOT NULL,
            model_id VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (asset_id, kind)
        );
        CREATE TABLE skill_executions (
            id VARCHAR PRIMARY KEY,
            asset_id VARCHAR NOT NULL,
            skill_name VARCHAR NOT NULL,
            trigger_source VARCHAR NOT NULL,
            parameters_json VARCHAR,
            started_at TIMESTAMP NOT NULL,
            completed_at TIMESTAMP,
            succeeded BOOLEAN NOT NULL,
            owner VARCHAR NOT NULL,  -- copies of the asset's, as in derivatives
            is_public BOOLEAN NOT NULL
        );
        CREATE INDEX skill_executions_asset ON skill_executions (asset_id);
        CREATE TABLE skill_steps (
            execution_id VARCHAR NOT NULL,
            position INTEGER NOT NULL,
            step_name VARCHAR NOT NULL,
            succeeded BOOLEAN NOT NULL,
            error_message VARCHAR,
            started_at TIMESTAMP NOT NULL,
            completed_at TIMESTAMP NOT NULL,
            PRIMARY KEY (execution_id, position)
        );
        -- The durable enrichment queue: a row per asset waiting for (or in) processing.
        CREATE TABLE jobs (
            id VARCHAR PRIMARY KEY,
            asset_id VARCHAR NOT NULL,
            skills VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        -- Append-only usage log, exported to Parquet for analytics.
        CREATE TABLE events (
            id VARCHAR NOT NULL,
            occurred_at TIMESTAMP NOT NULL,
            kind VARCHAR NOT NULL,
            asset_id VARCHAR,
            actor VARCHAR,
            content_type VARCHAR,
            size BIGINT,
            skill_name VARCHAR,
            succeeded BOOLEAN
        );
        CREATE TABLE api_keys (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            key_hash VARCHAR NOT NULL UNIQUE,
            prefix VARCHAR NOT NULL,
            scopes VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            revoked_at TIMESTAMP
        );
        -- Stored files that must be removed: uploads in flight (removed on commit) and deletes that failed.
        CREATE TABLE storage_cleanup (
            storage_key VARCHAR NOT NULL,
            storage_profile_id VARCHAR,
            reason VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        2,
        """
        -- One image embedding per (asset, model, weights), L2-normalised. One table serves models of any width,
        -- so the column is a FLOAT list whose length the CHECK ties to dim (cast to FLOAT[dim] where needed).
        CREATE TABLE embeddings (
            asset_id VARCHAR NOT NULL,
            model VARCHAR NOT NULL,     -- open_clip model name, e.g. ViT-B-32
            weights VARCHAR NOT NULL,   -- pretrained tag, or checkpoint file name and content hash
            dim INTEGER NOT NULL,
            vector {floats} NOT NULL CHECK ({length}(vector) = dim),
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (asset_id, model, weights)
        );
        -- 64-bit perceptual hash (DCT) of each image, computed by the thumbnail skill from the pixels it
        -- already decoded: finds near-identical copies (resized, recompressed) without a model.
        CREATE TABLE image_hashes (
            asset_id VARCHAR PRIMARY KEY,
            phash {uint64} NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        3,
        """
        -- Storage provider profiles. Secrets are kept here so the server can reach its storage after a restart;
        -- the API never returns them and the export never includes this table.
        CREATE TABLE storage_profiles (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            display_name VARCHAR,
            provider_type VARCHAR NOT NULL,
            is_enabled BOOLEAN NOT NULL,
            is_default BOOLEAN NOT NULL,
            configuration_json VARCHAR NOT NULL,
            secret_json VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        4,
        # JWT subjects move into their own namespace (see auth.jwt_owner): every owner that is not an API key's,
        # a Jupyter user's or the configured keys' came from a JWT. A subject that itself began with "key:" or
        # "jupyter:" cannot be told apart any more; it stays with the kind it spells.
        """
        UPDATE assets SET owner = 'jwt:' || owner
            WHERE NOT (owner LIKE 'key:%' OR owner LIKE 'jupyter:%' OR owner = 'config-key');
        UPDATE derivatives SET owner = 'jwt:' || owner
            WHERE NOT (owner LIKE 'key:%' OR owner LIKE 'jupyter:%' OR owner = 'config-key');
        UPDATE skill_executions SET owner = 'jwt:' || owner
            WHERE NOT (owner LIKE 'key:%' OR owner LIKE 'jupyter:%' OR owner = 'config-key');
        UPDATE events SET actor = 'jwt:' || actor
            WHERE actor IS NOT NULL AND NOT (actor LIKE 'key:%' OR actor LIKE 'jupyter:%' OR actor = 'config-key');
        """,
    ),
    (
        5,
        """
        -- Several servers share the queue of a team library: a server claims a job for a lease that it renews
        -- while the job runs; a job whose lease has run out (its server died) is claimed again by another.
        ALTER TABLE jobs ADD COLUMN lease_owner VARCHAR;
        ALTER TABLE jobs ADD COLUMN lease_expires_at TIMESTAMP;
        -- What every server of a team library must learn from the others' writes (embeddings for its search
        -- index, revoked keys, profile changes): each server reads the rows recorded since its last look.
        CREATE SEQUENCE change_sequence;
        CREATE TABLE changes (
            seq BIGINT PRIMARY KEY DEFAULT nextval('change_sequence'),
            kind VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            recorded_at TIMESTAMP NOT NULL DEFAULT now()
        );
        {trigram_index}
        """,
    ),
    (
        6,
        {
            "postgresql": """
        -- The list's orders walked in an index instead of sorting every matching row (DuckDB sorts fast enough).
        CREATE INDEX assets_by_created ON assets (created_at, id);
        CREATE INDEX assets_by_size ON assets (size, id);
        CREATE INDEX jobs_asset ON jobs (asset_id);
        -- Tallies: what list totals and usage stats add up, so that they sum a few hundred rows instead of
        -- counting a million. Every change of a counted row appends its +1 and -1 here (the triggers below), so
        -- that servers writing at once never wait on a shared counter; the sweeper folds the rows into one per
        -- group now and then. Readers add up the rows of their groups.
        CREATE TABLE asset_tallies (
            owner VARCHAR NOT NULL, is_public BOOLEAN NOT NULL, content_type VARCHAR NOT NULL,
            status VARCHAR NOT NULL, n BIGINT NOT NULL, bytes BIGINT NOT NULL
        );
        CREATE TABLE derivative_tallies (owner VARCHAR NOT NULL, is_public BOOLEAN NOT NULL, n BIGINT NOT NULL);
        CREATE TABLE execution_tallies (
            owner VARCHAR NOT NULL, is_public BOOLEAN NOT NULL, skill_name VARCHAR NOT NULL, n BIGINT NOT NULL
        );
        CREATE FUNCTION tally_assets() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO asset_tallies
                    VALUES (OLD.owner, OLD.is_public, OLD.content_type, OLD.status, -1, -OLD.size);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO asset_tallies
                    VALUES (NEW.owner, NEW.is_public, NEW.content_type, NEW.status, 1, NEW.size);
            END IF;
            RETURN NULL;
        END $$;
        CREATE FUNCTION tally_derivatives() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO derivative_tallies VALUES (OLD.owner, OLD.is_public, -1);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO derivative_tallies VALUES (NEW.owner, NEW.is_public, 1);
            END IF;
            RETURN NULL;
        END $$;
        CREATE FUNCTION tally_executions() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'INSERT' THEN
                INSERT INTO execution_tallies VALUES (OLD.owner, OLD.is_public, OLD.skill_name, -1);
            END IF;
            IF TG_OP <> 'DELETE' THEN
                INSERT INTO execution_tallies VALUES (NEW.owner, NEW.is_public, NEW.skill_name, 1);
            END IF;
            RETURN NULL;
        END $$;
        -- The triggers first: they lock the tables, so no write can slip between them and the first count.
        CREATE TRIGGER assets_tally AFTER INSERT OR DELETE OR UPDATE OF owner, is_public, content_type, status, size
            ON assets FOR EACH ROW EXECUTE FUNCTION tally_assets();
        CREATE TRIGGER derivatives_tally AFTER INSERT OR DELETE OR UPDATE OF owner, is_public
            ON derivatives FOR EACH ROW EXECUTE FUNCTION tally_derivatives();
        CREATE TRIGGER executions_tally AFTER INSERT OR DELETE OR UPDATE OF owner, is_public, skill_name
            ON skill_executions FOR EACH ROW EXECUTE FUNCTION tally_executions();
        INSERT INTO asset_tallies SELECT owner, is_public, content_type, status, count(*), sum(size)
            FROM assets GROUP BY owner, is_public, content_type, status;
        INSERT INTO derivative_tallies SELECT owner, is_public, count(*) FROM derivatives GROUP BY owner, is_public;
        INSERT INTO execution_tallies SELECT owner, is_public, skill_name, count(*)
            FROM skill_executions GROUP BY owner, is_public, skill_name;
        """
        },
    ),
    (
        7,
        {
            "postgresql": """
        -- What `q` counts: a copy of the columns the list filters on, a third of the assets table's size, kept by
        -- the trigger below. Counting a common word's matches visits a heap page per match: 24,000 pages of the
        -- assets table for 35,000 matches at a million assets, 8,000 here (bench/README.md).
        CREATE TABLE asset_search (
            id VARCHAR PRIMARY KEY, owner VARCHAR NOT NULL, is_public BOOLEAN NOT NULL,
            content_type VARCHAR NOT NULL, status VARCHAR NOT NULL, search_text VARCHAR
        );
        CREATE FUNCTION copy_asset_search() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                DELETE FROM asset_search WHERE id = OLD.id;
            ELSIF TG_OP = 'UPDATE' THEN
                UPDATE asset_search SET owner = NEW.owner, is_public = NEW.is_public, content_type = NEW.content_type,
                    status = NEW.status, search_text = NEW.search_text WHERE id = OLD.id;
            ELSE
                INSERT INTO asset_search
                    VALUES (NEW.id, NEW.owner, NEW.is_public, NEW.content_type, NEW.status, NEW.search_text);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER assets_search AFTER INSERT OR DELETE OR UPDATE OF owner, is_public, content_type, status,
            search_text ON assets FOR EACH ROW EXECUTE FUNCTION copy_asset_search();
        INSERT INTO asset_search SELECT id, owner, is_public, content_type, status, search_text FROM assets;
        CREATE INDEX asset_search_trigrams ON asset_search USING gin (search_text gin_trgm_ops);
        """
        },
    ),
]


def migrations(dialect: str) -> list[tuple[int, str]]:
    """The migrations in the SQL of one engine ("duckdb" or "postgresql")."""
    return [
        (version, ddl.format(**DIALECT_WORDS[dialect]) if isinstance(ddl, str) else ddl.get(dialect, ""))
        for version, ddl in MIGRATIONS
    ]

"""Versioned migrations of the catalog, for both engines. Append a new entry to MIGRATIONS; never edit one that has
shipped. The few words the engines spell differently are placeholders, filled in by ``migrations``."""

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

MIGRATIONS: list[tuple[int, str]] = [
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
]


def migrations(dialect: str) -> list[tuple[int, str]]:
    """The migrations in the SQL of one engine ("duckdb" or "postgresql")."""
    return [(version, ddl.format(**DIALECT_WORDS[dialect])) for version, ddl in MIGRATIONS]

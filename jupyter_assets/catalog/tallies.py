"""The tallies of a team library's catalog: the counts that list totals and usage stats add up, appended by
triggers as rows change (schema.py, migration 6) and folded here now and then. A one-server DuckDB catalog has no
tallies: it counts its rows directly, its column scans being fast enough."""

from __future__ import annotations

from .concern import Concern
from .cursor import Cursor
from .engines import advisory_key

# Each tally table, the columns it groups by and what it sums.
TALLIES = {
    "asset_tallies": (("owner", "is_public", "content_type", "status"), ("n", "bytes")),
    "derivative_tallies": (("owner", "is_public"), ("n",)),
    "execution_tallies": (("owner", "is_public", "skill_name"), ("n",)),
}


class Tallies(Concern):
    def fold(self) -> None:
        """Fold each group's rows into one, so that readers add up a few rows. Rows appended by transactions
        still under way are left for the next fold. One server folds at a time; the others skip their turn."""
        if self._core.is_shared:
            self._write(_fold)


def _fold(tx: Cursor) -> None:
    if not tx.execute("SELECT pg_try_advisory_xact_lock(?)", [advisory_key("tally-fold")]).fetchone()[0]:
        return
    for table, (groups, sums) in TALLIES.items():
        columns = ", ".join(groups)
        tx.execute(
            f"WITH folded AS (DELETE FROM {table} RETURNING *) "
            f"INSERT INTO {table} SELECT {columns}, {', '.join(f'sum({s})' for s in sums)} FROM folded "
            f"GROUP BY {columns} HAVING {' OR '.join(f'sum({s}) <> 0' for s in sums)}"
        )

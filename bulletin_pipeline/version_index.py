"""The versions of a table as verify indexes them: which run wrote a version more than once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import pyarrow as pa
import pyarrow.compute as pc


def version_key(record_id: int, version: str) -> int:
    digest = hashlib.blake2b(f"{record_id}\x1f{version}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class VersionIndex:
    """The versions of one table: a 64-bit hash of (`id`, version), the file holding it and the run
    that wrote it (its `dl_inserted_at`, one per run), 16 bytes a record (3.2 MB for 200,000),
    grouped once all files are read."""

    def __init__(self) -> None:
        self._keys: List[pa.Array] = []
        self._files: List[pa.Array] = []
        self._runs: List[pa.Array] = []
        self._run_numbers: Dict[Any, int] = {}

    def runs(self, stamps: Optional[pa.Array], rows: int, fallback: str) -> pa.Array:
        """A number per row for the run that wrote it: its `dl_inserted_at`, else `fallback` (the file's load)."""
        if stamps is None:
            number = self._run_numbers.setdefault(("load", fallback), len(self._run_numbers))
            return pa.repeat(pa.scalar(number, pa.int32()), rows)
        distinct = pc.unique(stamps)
        numbers = [self._run_numbers.setdefault(v, len(self._run_numbers)) for v in distinct.to_pylist()]
        return pc.take(pa.array(numbers, pa.int32()), pc.index_in(stamps, value_set=distinct))

    def add(self, file_index: int, keys: List[int], runs: pa.Array) -> None:
        if keys:
            self._keys.append(pa.array(keys, pa.uint64()))
            self._files.append(pa.repeat(pa.scalar(file_index, pa.int32()), len(keys)))
            self._runs.append(runs)

    def repeats(self) -> Repeats:
        """Versions one run wrote more than once, and versions written by more than one run."""
        if not self._keys:
            return Repeats()
        rows = pa.table(
            {
                "key": pa.concat_arrays(self._keys),
                "file": pa.concat_arrays(self._files),
                "run": pa.concat_arrays(self._runs),
            }
        )
        per_run = rows.group_by(["key", "run"]).aggregate([("file", "count")])
        per_key = per_run.group_by("key").aggregate([("run", "count")])
        found = Repeats(written_again=pc.sum(pc.subtract(per_key["run_count"], 1)).as_py() or 0)
        repeated = per_run.filter(pc.greater(per_run["file_count"], 1))
        if repeated.num_rows:
            found.extra_rows = pc.sum(pc.subtract(repeated["file_count"], 1)).as_py()
            held = rows.join(repeated.select(["key", "run"]), keys=["key", "run"], join_type="inner")
            for entry in held.group_by("file").aggregate([("key", "count")]).to_pylist():
                found.files[entry["file"]] = entry["key_count"]
        return found


@dataclass
class Repeats:
    extra_rows: int = 0  # rows beyond the first of a version within its run
    files: Dict[int, int] = field(default_factory=dict)  # file index -> its rows holding such a version
    written_again: int = 0  # versions written by more than one run, beyond the first

"""What a campaign keeps on disk under ``--out``, so that a killed campaign loses nothing.

``state/campaign.json`` (rewritten atomically: a temporary file and ``os.replace``) holds the
run under way: its number, the config's fingerprint, the budget and the seconds spent of it,
each pair's statistics, the timeline and the baseline it is judged against. Workers append
each finding to ``state/findings-RUN.jsonl`` the moment it is found (`worker.append_line`).
``state/history.json`` holds every finished run's summary and every signature seen, with the
first and last run that saw it. Started again with the same command, a run whose state says
``running`` resumes: same run number, same baseline, the budget less what was spent.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError
from ..internal.files import write_atomic
from ..internal.text import dumps_json

FORMAT = 1


def write_json(path: Path, data: object) -> None:
    """Replace ``path`` atomically: a reader or a SIGKILL sees the old file or the new one."""
    write_atomic(path, dumps_json(data, indent=1))


def read_json(path: Path, default):
    """``path``'s JSON, or ``default`` when it does not exist; a damaged file is bad input."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: the campaign's state cannot be read ({exc}); "
                         "remove the --out folder's state/ to start afresh") from None


def read_lines(path: Path, offsets: dict[str, int] | None = None) -> list[dict]:
    """The JSON objects of ``path``'s whole lines; with ``offsets``, only those it gained since
    the last call (a line still being written is read next time; one cut by a kill is skipped)."""
    offsets = {} if offsets is None else offsets
    try:
        with open(path, "rb") as f:
            f.seek(offsets.get(str(path), 0))
            data = f.read()
    except FileNotFoundError:
        return []
    complete = data[:data.rfind(b"\n") + 1]
    offsets[str(path)] = offsets.get(str(path), 0) + len(complete)
    out = []
    for line in complete.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def finding_records(records: list[dict]) -> list[dict]:
    """The findings among a findings log's records and an atheris harness' events (whose
    "finding" events name the case file ``path``), as findings log records."""
    out = []
    for r in records:
        if r.get("event") == "finding":
            r = {**r, "case_file": r.get("path"), "mode": "atheris"}
        elif "event" in r:
            continue
        if isinstance(r.get("signature"), str) and isinstance(r.get("property"), str):
            out.append(r)
    return out


class StateDir:
    """The ``state/`` folder of an ``--out`` folder."""

    def __init__(self, out: Path) -> None:
        self.root = out / "state"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot create {self.root}: {exc.strerror or exc}") from None
        self.campaign = self.root / "campaign.json"
        self.history = self.root / "history.json"
        self.examples = self.root / "examples"
        self.inputs = self.root / "inputs"

    def findings_log(self, run: int) -> Path:
        return self.root / f"findings-{run}.jsonl"

    def finding_files(self, run: int) -> list[Path]:
        """Where run ``run``'s findings are: the workers' log, and each atheris slice's events."""
        log = self.findings_log(run)
        return [log, *sorted(self.root.glob(f"{log.stem}.atheris-*.jsonl"))]

    def load(self) -> dict | None:
        data = read_json(self.campaign, None)
        if data is not None and data.get("format") != FORMAT:
            raise UsageError(f"{self.campaign}: written by another chainfuzz version; "
                             "remove the --out folder's state/ to start afresh")
        return data

    def save(self, data: dict) -> None:
        write_json(self.campaign, data)

    def load_history(self) -> dict:
        return read_json(self.history, {"runs": [], "signatures": {}})

    def save_history(self, data: dict) -> None:
        write_json(self.history, data)

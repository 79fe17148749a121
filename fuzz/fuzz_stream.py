"""Atheris harness "stream": tokenizer.stream_decode, on a tokenizer.

A thin wrapper over ``python -m chainfuzz.fuzzing stream`` (what ``chainfuzz fuzz`` runs). The
target is ``$CHAINFUZZ_TARGET`` or the first argument; chainfuzz's options (--crashes DIR,
--events FILE, --no-instrument), libFuzzer's flags and corpus folders follow, e.g.::

    python fuzz/fuzz_stream.py TARGET -max_total_time=60 work-corpus/ corpus/stream/
"""

import os
import sys

from chainfuzz.fuzzing import main

if __name__ == "__main__":
    args = sys.argv[1:]
    target = os.environ.get("CHAINFUZZ_TARGET")
    if target is None and args and not args[0].startswith("-"):
        target = args.pop(0)
    if target is None:
        sys.exit(f"usage: {sys.argv[0]} TARGET [--crashes DIR] [libFuzzer flags] [corpus folders]")
    sys.exit(main(["stream", target, *args]))

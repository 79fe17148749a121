"""Atheris harness "stream": tokenizer.stream_decode, on a tokenizer.

A thin wrapper over ``python -m chainfuzz.fuzz.harness stream`` (what ``chainfuzz fuzz`` runs). The
target is ``$CHAINFUZZ_TARGET`` or the first argument; chainfuzz's options (--crash, --crashes DIR,
--events FILE, --no-instrument), libFuzzer's flags and corpus folders follow, e.g.::

    python fuzz/fuzz_stream.py TARGET -max_total_time=60 work-corpus/ src/chainfuzz/fuzz/seeds/stream/
"""

import sys

from chainfuzz.fuzz.harness import script_main

if __name__ == "__main__":
    sys.exit(script_main("stream"))
